"""Errors of the body layer."""

from __future__ import annotations

from ..errors import BackendError


class BodyError(BackendError):
    """A body model, body track or body file is malformed, or a body model is missing.

    ``problems`` lists every individual problem (validation collects them all, so a
    file can be fixed in one go); the message summarises them.
    """

    def __init__(self, message: str, problems: list[str] | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.problems = list(problems) if problems else [message]

    @classmethod
    def collected(cls, where: str, problems: list[str], shown: int = 10,
                  hint: str | None = None) -> BodyError:
        """One error for several problems; the message lists the first ``shown``."""
        if len(problems) == 1:
            return cls(f"{where}: {problems[0]}", problems, hint=hint)
        lines = problems[:shown]
        if len(problems) > shown:
            lines.append(f"... and {len(problems) - shown} more")
        message = f"{where}: {len(problems)} problem(s):\n  " + "\n  ".join(lines)
        return cls(message, problems, hint=hint)
