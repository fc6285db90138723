"""The running jobs of this Blender session, and the timer that follows them.

One ``JobRunner`` per job kind ("check_backend", "reconstruct"); panels read
``job(kind).state``. In background mode (``blender -b``, the bpy module) jobs run
synchronously: there is no event loop to fire timers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import bpy

from .base import GarmentError
from .job_runner import JobRunner

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.2

_runners: dict[str, JobRunner] = {}
_on_finish: dict[str, Callable[[JobRunner], None]] = {}


def job(kind: str) -> JobRunner | None:
    """The latest job of this kind (running or finished), or None."""
    return _runners.get(kind)


def latest_job() -> tuple[str, JobRunner] | None:
    """The most recently started job of any kind."""
    if not _runners:
        return None
    kind = next(reversed(_runners))
    return kind, _runners[kind]


def start_job(
    kind: str,
    argv: list[str],
    job_dir: Path,
    env: dict[str, str] | None = None,
    on_finish: Callable[[JobRunner], None] | None = None,
    blocking: bool | None = None,
    runner_class: type[JobRunner] = JobRunner,
    cancel_grace_s: float | None = None,
) -> JobRunner:
    """Start a job; blocks until it ends when ``blocking`` (default: background mode).

    ``runner_class`` (a JobRunner subclass) and ``cancel_grace_s`` (seconds between
    Cancel and terminate; None = the runner's default) tune the runner per job kind.

    Raises:
        GarmentError: a job of this kind is still running.
    """
    current = _runners.get(kind)
    if current is not None and not current.state.finished:
        raise GarmentError(f"A {kind.replace('_', ' ')} job is already running; cancel it first")
    options = {} if cancel_grace_s is None else {"cancel_grace_s": cancel_grace_s}
    runner = runner_class(argv, job_dir, env=env, **options)
    try:
        runner.start()
    except OSError as exc:
        raise GarmentError(f"Could not start the backend ({argv[0]}): {exc}") from None
    _runners.pop(kind, None)
    _runners[kind] = runner  # re-insert so latest_job() sees it last
    if on_finish is not None:
        _on_finish[kind] = on_finish
    else:
        _on_finish.pop(kind, None)
    if blocking if blocking is not None else bpy.app.background:
        runner.wait()
        _finished(kind, runner)
    elif not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=POLL_INTERVAL_S, persistent=True)
    return runner


def cancel_job(kind: str) -> bool:
    """Request cancellation; False when no such job is running."""
    runner = _runners.get(kind)
    if runner is None or runner.state.finished:
        return False
    runner.cancel()
    return True


def stop_all() -> None:
    """Kill every running job (the extension is being disabled or Blender quits)."""
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
    for runner in _runners.values():
        runner.kill()
    _runners.clear()
    _on_finish.clear()


def _tick() -> float | None:
    """Timer callback: poll every running job, redraw, stop when none is left."""
    running = False
    for kind, runner in list(_runners.items()):
        if runner.state.finished:
            continue
        if runner.poll():
            running = True
        else:
            _finished(kind, runner)
    _redraw()
    return POLL_INTERVAL_S if running else None


def _finished(kind: str, runner: JobRunner) -> None:
    s = runner.state
    if s.error:
        log.error("%s job %s: %s%s", kind, s.status, s.error, f" ({s.hint})" if s.hint else "")
    callback = _on_finish.pop(kind, None)
    if callback is not None:
        try:
            callback(runner)
        except Exception:
            log.exception("finishing the %s job failed", kind)


def _redraw() -> None:
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "PREFERENCES"}:
                area.tag_redraw()
