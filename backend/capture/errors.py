"""Errors of the capture layer."""

from pathlib import Path

from ..errors import BackendError


class CaptureError(BackendError):
    """A capture bundle is malformed.

    ``problems`` lists every individual problem found (validation collects them all
    so the user can fix a bundle in one go); the message summarises them.
    """

    def __init__(self, message: str, problems: list[str] | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.problems = list(problems) if problems else [message]

    @classmethod
    def collected(cls, where: Path, problems: list[str], shown: int = 10) -> "CaptureError":
        """One error for several problems: the message lists the first ``shown``."""
        lines = problems[:shown]
        if len(problems) > shown:
            lines.append(f"... and {len(problems) - shown} more")
        message = f"{where}: {len(problems)} problem(s):\n  " + "\n  ".join(lines)
        return cls(message, problems)
