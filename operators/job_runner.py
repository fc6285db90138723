"""Run a backend job as a subprocess and follow its JSON-lines events.

Plain Python (no bpy) so tests drive it directly. Blender calls ``poll()`` from a
``bpy.app.timers`` callback (see ``job_control``); poll never blocks: a reader
thread moves stdout lines into a queue and poll only drains it. stderr goes to
``<job_dir>/stderr.log``, whose last lines explain a process that died without an
error event (killed, out of memory, crashed interpreter).

Cancel writes the ``cancel`` file the backend checks every step; a job that has not
exited ``cancel_grace_s`` later is terminated, and killed after twice that.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..backend.jobs.cancel import CANCEL_FILE
from ..backend.jobs.events import ExitCode, parse_event

STDERR_FILE = "stderr.log"
LOG_TAIL_LINES = 12
_EOF = None  # queue sentinel: the backend closed stdout


class Status:
    """Job states shown in the UI (strings, so panels can print them)."""

    RUNNING = "running"
    CANCELLING = "cancelling"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    FINISHED = (DONE, FAILED, CANCELLED)


@dataclass
class JobState:
    """What panels draw. Updated only by ``JobRunner.poll`` (main thread).

    fraction: progress of the current stage in [0, 1]; eta_s: seconds left in the
    stage (None until known); message: the latest info/warning line; error/hint:
    the failure the user must see; log_tail: last stderr lines of a dead process.
    """

    status: str = Status.RUNNING
    stage: str = ""
    step: int = 0
    total: int = 0
    eta_s: float | None = None
    loss: float | None = None
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    hint: str | None = None
    result: str | None = None
    summary: str | None = None
    exit_code: int | None = None
    log_tail: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return min(max(self.step / self.total, 0.0), 1.0) if self.total > 0 else 0.0

    @property
    def finished(self) -> bool:
        return self.status in Status.FINISHED


class JobRunner:
    """One backend process and the state read from its events.

    Args:
        argv: the command, e.g. ``[python, "-m", "backend", "--job-dir", DIR, "doctor"]``.
        job_dir: the job folder (cancel file, stderr.log); created if missing.
        env: environment for the process (None = inherit).
        cancel_grace_s: seconds between the cancel file and terminate().
    """

    def __init__(
        self,
        argv: Sequence[str],
        job_dir: Path,
        env: dict[str, str] | None = None,
        cancel_grace_s: float = 10.0,
        clock=time.monotonic,
    ):
        self.argv = [str(a) for a in argv]
        self.job_dir = Path(job_dir)
        self.env = env
        self.cancel_grace_s = cancel_grace_s
        self.state = JobState()
        self._clock = clock
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._stdout_closed = False
        self._cancel_requested_at: float | None = None
        self._terminated = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> JobRunner:
        """Start the process (a stale cancel file from an earlier run is removed first)."""
        self.job_dir.mkdir(parents=True, exist_ok=True)
        (self.job_dir / CANCEL_FILE).unlink(missing_ok=True)
        with open(self.job_dir / STDERR_FILE, "wb") as stderr:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=self.env,
                cwd=self.job_dir,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
            )
        self._reader = threading.Thread(target=self._read_stdout, daemon=True,
                                         name=f"garment-job-{self._proc.pid}")
        self._reader.start()
        return self

    def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(_EOF)

    def poll(self) -> bool:
        """Apply queued events and check the process; True while the job runs.

        Never blocks: safe to call from a UI timer.
        """
        if self.state.finished or self._proc is None:
            return False
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is _EOF:
                self._stdout_closed = True
                break
            self._apply(line)
        self._escalate_cancel()
        code = self._proc.poll()
        if code is not None and self._stdout_closed:
            self._finish(code)
        return not self.state.finished

    def cancel(self) -> None:
        """Ask the job to stop at its next step (it keeps its checkpoints)."""
        if self.state.finished or self._cancel_requested_at is not None:
            return
        (self.job_dir / CANCEL_FILE).touch()
        self._cancel_requested_at = self._clock()
        self.state.status = Status.CANCELLING

    def wait(self, timeout_s: float | None = None, interval_s: float = 0.05) -> JobState:
        """Poll until the job finishes (used in background mode and tests).

        Raises:
            TimeoutError: still running after ``timeout_s`` (the job is left running).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.poll():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.argv} still running after {timeout_s} s")
            time.sleep(interval_s)
        return self.state

    def kill(self) -> None:
        """Stop the process now (Blender is quitting or the extension is disabled)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    # -- internals ---------------------------------------------------------------

    def _apply(self, line: str) -> None:
        event = parse_event(line)
        if event is None:
            return  # stray prints are not part of the protocol; stderr.log has the logs
        s = self.state
        kind = event["event"]
        if kind == "progress":
            s.stage = str(event.get("stage", ""))
            s.step = int(event.get("step") or 0)
            s.total = int(event.get("total") or 0)
            s.eta_s = event.get("eta_s")
            s.loss = event.get("loss")
        elif kind == "info":
            s.message = str(event.get("message", ""))
        elif kind == "warning":
            s.message = str(event.get("message", ""))
            s.warnings.append(s.message)
        elif kind == "error":
            s.error = str(event.get("message", ""))
            s.hint = event.get("hint")
        elif kind == "done":
            s.result = event.get("result")
            s.summary = event.get("summary")

    def _escalate_cancel(self) -> None:
        if self._cancel_requested_at is None or self._proc.poll() is not None:
            return
        waited = self._clock() - self._cancel_requested_at
        if waited > 2 * self.cancel_grace_s:
            self._proc.kill()
        elif waited > self.cancel_grace_s and not self._terminated:
            self._proc.terminate()
            self._terminated = True

    def _finish(self, code: int) -> None:
        s = self.state
        s.exit_code = code
        if code == ExitCode.OK and s.error is None:
            s.status = Status.DONE
            if s.summary is None and s.result is None:
                s.status = Status.FAILED
                s.error = "the backend exited without reporting a result"
        elif code == ExitCode.CANCELLED or (self._cancel_requested_at is not None and code < 0):
            s.status = Status.CANCELLED
            s.error = None
            s.message = "cancelled"
        else:
            s.status = Status.FAILED
            if s.error is None:
                how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                s.error = f"the backend process {how} without reporting an error"
                s.hint = "see the log lines below; out of memory is a common cause"
            s.log_tail = _tail(self.job_dir / STDERR_FILE, LOG_TAIL_LINES)


def _tail(path: Path, lines: int) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(fh.tell() - 16384, 0))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]
