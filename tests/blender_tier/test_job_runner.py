"""JobRunner (plain Python, driven directly) and job_control (the bpy glue).

Fake backends are tiny Python scripts that speak the event protocol, so each outcome
(done, error, crash, kill, cancel honoured or ignored) is produced on purpose.
"""

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def runner_module(addon):
    return addon.operators.job_runner


def fake_backend(body: str) -> list[str]:
    """argv running ``body`` with an ``emit(**event)`` helper that prints one event line."""
    prelude = textwrap.dedent("""\
        import json, os, sys, time
        def emit(**event):
            print(json.dumps(event), flush=True)
        """)
    return [sys.executable, "-c", prelude + textwrap.dedent(body)]


def run(runner_module, tmp_path, body, **kwargs):
    runner = runner_module.JobRunner(fake_backend(body), tmp_path / "job", **kwargs).start()
    return runner, runner.wait(timeout_s=30)


def test_progress_then_done(runner_module, tmp_path):
    _, state = run(runner_module, tmp_path, """
        emit(event="progress", stage="fit", step=1, total=4, eta_s=3.0, loss=0.5)
        emit(event="info", message="halfway")
        emit(event="progress", stage="fit", step=3, total=4, eta_s=1.0, loss=0.25)
        emit(event="done", result="/tmp/result", summary="all good")
        """)
    assert state.status == "done"
    assert state.exit_code == 0
    assert (state.stage, state.step, state.total) == ("fit", 3, 4)
    assert state.fraction == pytest.approx(0.75)
    assert state.loss == 0.25 and state.eta_s == 1.0
    assert state.message == "halfway"
    assert state.result == "/tmp/result" and state.summary == "all good"


def test_error_event_becomes_the_failure_message(runner_module, tmp_path):
    _, state = run(runner_module, tmp_path, """
        emit(event="warning", message="frame 7 has a tiny mask")
        emit(event="error", message="frames/000007.png: file is missing", hint="re-export")
        sys.exit(3)
        """)
    assert state.status == "failed"
    assert state.exit_code == 3
    assert state.error == "frames/000007.png: file is missing"
    assert state.hint == "re-export"
    assert state.warnings == ["frame 7 has a tiny mask"]


def test_killed_process_is_reported_with_its_last_log_lines(runner_module, tmp_path):
    _, state = run(runner_module, tmp_path, """
        emit(event="progress", stage="fit", step=1, total=10, eta_s=None, loss=None)
        print("allocating 90 GB for the frame batch", file=sys.stderr, flush=True)
        os.kill(os.getpid(), 9)
        """)
    assert state.status == "failed"
    assert state.exit_code == -9
    assert "killed by signal 9" in state.error
    assert state.log_tail == ["allocating 90 GB for the frame batch"]


def test_exit_zero_without_a_result_is_a_failure(runner_module, tmp_path):
    _, state = run(runner_module, tmp_path, "print('not an event')\n")
    assert state.status == "failed"
    assert "without reporting a result" in state.error


def test_cancel_is_honoured_by_a_cooperative_job(runner_module, tmp_path):
    runner = runner_module.JobRunner(fake_backend("""
        emit(event="progress", stage="fit", step=0, total=100, eta_s=None, loss=None)
        for step in range(3000):
            if os.path.exists("cancel"):  # cwd is the job folder
                emit(event="error", message="cancelled", hint=None)
                sys.exit(4)
            time.sleep(0.01)
        emit(event="done", result="x", summary="not cancelled")
        """), tmp_path / "job").start()
    while runner.state.stage != "fit":
        runner.poll()
    runner.cancel()
    assert runner.state.status == "cancelling"
    assert (tmp_path / "job" / "cancel").exists()
    state = runner.wait(timeout_s=30)
    assert state.status == "cancelled"
    assert state.exit_code == 4
    assert state.error is None


def test_cancel_terminates_a_job_that_ignores_it(runner_module, tmp_path):
    runner = runner_module.JobRunner(
        fake_backend("""
            emit(event="progress", stage="stuck", step=0, total=1, eta_s=None, loss=None)
            time.sleep(60)
            """),
        tmp_path / "job",
        cancel_grace_s=0.2,
    ).start()
    while runner.state.stage != "stuck":
        runner.poll()
    runner.cancel()
    state = runner.wait(timeout_s=30)
    assert state.status == "cancelled"
    assert state.exit_code < 0  # ended by a signal, not by itself


def test_poll_does_not_wait_for_a_silent_job(runner_module, tmp_path):
    runner = runner_module.JobRunner(fake_backend("time.sleep(60)"), tmp_path / "job").start()
    try:
        assert runner.poll() is True
        assert runner._proc.poll() is None  # poll returned while the job still runs
        assert runner.state.status == "running"
    finally:
        runner.kill()
        runner.wait(timeout_s=30)
    assert runner.state.status == "failed"


def test_stale_cancel_file_is_removed_before_start(runner_module, tmp_path):
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "cancel").touch()
    _, state = run(runner_module, tmp_path, """
        emit(event="done", result=None, summary="ran")
        """)
    assert state.status == "done"
    assert not (job_dir / "cancel").exists()


def test_real_backend_validate_failure_names_the_file(runner_module, tmp_path):
    capture = tmp_path / "capture"
    capture.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = [sys.executable, "-m", "backend", "--job-dir", str(tmp_path / "job"),
            "validate", str(capture)]
    state = runner_module.JobRunner(argv, tmp_path / "job", env=env).start().wait(timeout_s=60)
    assert state.status == "failed"
    assert state.exit_code == 3
    assert str(capture / "capture.json") in state.error
    log = [json.loads(line) for line in (tmp_path / "job" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "error"


def test_job_control_refuses_a_second_job_of_the_same_kind(addon, tmp_path):
    control = addon.operators.job_control
    base = addon.operators.base
    argv = fake_backend("""
        while not os.path.exists("cancel"):
            time.sleep(0.01)
        sys.exit(4)
        """)
    runner = control.start_job("test_kind", argv, tmp_path / "a", blocking=False)
    try:
        with pytest.raises(base.GarmentError, match="already running"):
            control.start_job("test_kind", argv, tmp_path / "b", blocking=False)
        assert control.latest_job() == ("test_kind", runner)
        assert control.cancel_job("test_kind") is True
        assert runner.wait(timeout_s=30).status == "cancelled"
        assert control.cancel_job("test_kind") is False  # nothing left to cancel
    finally:
        runner.kill()


def test_cancel_operator_reports_when_nothing_runs(addon):
    import bpy

    with pytest.raises(RuntimeError, match="No running 'nothing' job"):
        bpy.ops.garment.cancel_job(kind="nothing")


def test_timer_tick_follows_a_job_to_the_end_and_calls_on_finish(addon, tmp_path):
    # Timers never fire under the bpy module; call the timer callback as Blender would.
    control = addon.operators.job_control
    finished = []
    runner = control.start_job(
        "tick_test",
        fake_backend("""
            emit(event="progress", stage="fit", step=1, total=2, eta_s=None, loss=None)
            time.sleep(0.3)
            emit(event="done", result="r", summary="ok")
            """),
        tmp_path / "job",
        on_finish=finished.append,
        blocking=False,
    )
    intervals = []
    for _ in range(600):
        interval = control._tick()
        intervals.append(interval)
        if interval is None:
            break
        time.sleep(0.02)
    assert intervals[0] == control.POLL_INTERVAL_S  # keeps polling while the job runs
    assert intervals[-1] is None  # and unregisters itself when nothing is left
    assert runner.state.status == "done"
    assert finished == [runner]


def test_disabling_the_extension_kills_running_jobs(addon, tmp_path):
    import bpy

    module = addon.__name__
    runner = addon.operators.job_control.start_job(
        "orphan_test", fake_backend("time.sleep(60)"), tmp_path / "job", blocking=False)
    try:
        bpy.ops.preferences.addon_disable(module=module)
        runner._proc.wait(timeout=10)  # raises if the process survived
        assert runner._proc.returncode == -9
    finally:
        runner.kill()
        bpy.ops.preferences.addon_enable(module=module)
