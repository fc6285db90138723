"""The backend half of a synthetic capture, run as a job: body track, pattern, texture.

``python -m backend synth prepare`` needs torch and Anny, so it runs in the backend
process like every reconstruction (``job_runner``); this module waits for it, passes
its progress on and turns a failure into a GarmentError with the backend's message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..base import GarmentError
from ..job_runner import JobRunner, Status

STAGE = "prepare"


def run_prepare(python: Path | str, args: Sequence[str], job_dir: Path,
                env: dict[str, str] | None = None,
                progress: Callable[[str, int, int], None] | None = None,
                timeout_s: float = 1800.0) -> None:
    """Run ``python -m backend --job-dir JOB_DIR ARGS`` to the end.

    Raises:
        GarmentError: the job failed (its message and hint, or the last lines of its
            log when it died without one) or ran past ``timeout_s``.
    """
    argv = [str(python), "-m", "backend", "--job-dir", str(job_dir), *args]
    runner = JobRunner(argv, job_dir, env=env).start()
    deadline = time.monotonic() + timeout_s
    try:
        while runner.poll():
            if progress is not None and runner.state.total:
                progress(STAGE, min(runner.state.step, runner.state.total), runner.state.total)
            if time.monotonic() > deadline:
                raise GarmentError(f"Preparing the synthetic capture took over {timeout_s:.0f} s;"
                                   f" see {job_dir}")
            time.sleep(0.05)
    except BaseException:
        runner.kill()
        raise
    state = runner.state
    if state.status != Status.DONE:
        detail = state.error or "the backend stopped without a message"
        if state.hint:
            detail += f" ({state.hint})"
        if state.log_tail:
            detail += "\n" + "\n".join(state.log_tail[-6:])
        raise GarmentError(f"Preparing the synthetic capture failed: {detail}")
    if progress is not None:
        progress(STAGE, 1, 1)
