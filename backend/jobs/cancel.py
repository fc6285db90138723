"""Cancellation: a file named ``cancel`` in the job folder.

A file works across processes and platforms, survives a reader that died, and
needs no signal handling. The job checks it every step (one stat call) and stops
at the next safe point, keeping its checkpoints.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BackendError

CANCEL_FILE = "cancel"


class JobCancelled(BackendError):
    """Raised at a safe point after the cancel file appeared."""


class CancelToken:
    """Checks for ``<job_dir>/cancel``; never cancelled when there is no job folder."""

    def __init__(self, job_dir: Path | None):
        self.path = Path(job_dir) / CANCEL_FILE if job_dir is not None else None

    @property
    def cancelled(self) -> bool:
        return self.path is not None and self.path.exists()

    def check(self) -> None:
        """Raise JobCancelled if cancellation was requested."""
        if self.cancelled:
            raise JobCancelled(f"cancelled ({self.path} exists)")


def request_cancel(job_dir: Path) -> Path:
    """Ask the job running in ``job_dir`` to stop; returns the cancel file."""
    path = Path(job_dir) / CANCEL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path
