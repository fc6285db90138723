"""``python -m backend``: exit codes and the JSON-lines protocol, end to end.

The CLI runs as a real subprocess (the way Blender starts it), from the repository
root; ``backend.doctor`` and ``backend.cli.run_command`` are also tested in-process.
"""

import argparse
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend import doctor
from backend.capture import write_png
from backend.cli import run_command
from backend.errors import BackendError
from backend.jobs import CancelToken, EventStream, ExitCode, JobCancelled, parse_event
from backend.jobs.cancel import request_cancel

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_backend(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backend", *(str(a) for a in args)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
    )


def stdout_events(proc: subprocess.CompletedProcess) -> list[dict]:
    """Every stdout line must be a protocol event; returns them in order."""
    lines = proc.stdout.splitlines()
    assert lines, f"no stdout; stderr:\n{proc.stderr}"
    events = [parse_event(line) for line in lines]
    bad = [line for line, event in zip(lines, events, strict=True) if event is None]
    assert not bad, f"non-event lines on stdout: {bad}"
    # Exactly one final event, and it is the last one.
    finals = [e for e in events if e["event"] in ("done", "error")]
    assert finals == [events[-1]], events
    return events


# ---------------------------------------------------------------- subprocess


def test_help_exits_0_and_lists_the_commands():
    proc = run_backend("--help")
    assert proc.returncode == 0, proc.stderr
    assert "validate" in proc.stdout and "doctor" in proc.stdout


def test_unknown_command_exits_2_without_events():
    proc = run_backend("reconstruct-everything")
    assert proc.returncode == ExitCode.USAGE == 2
    assert proc.stdout == ""
    assert "invalid choice" in proc.stderr


def test_validate_good_bundle_exits_0_with_a_done_event(make_capture):
    capture = make_capture()
    proc = run_backend("validate", capture.root)

    assert proc.returncode == 0, proc.stderr
    events = stdout_events(proc)
    assert events[0]["event"] == "info"
    assert events[0]["data"] == {"frames": 4, "width": 16, "height": 12}
    assert "11..14" in events[0]["message"]
    progress = [e for e in events if e["event"] == "progress"]
    assert progress, events
    assert all(e["stage"] == "validate" and e["total"] == 4 for e in progress)
    assert progress[-1]["step"] == progress[-1]["total"]
    assert [e["step"] for e in progress] == sorted(e["step"] for e in progress)
    done = events[-1]
    assert done["event"] == "done"
    assert done["result"] == str(capture.root)
    assert done["summary"] == "capture is valid: 4 frame(s) to reconstruct"
    assert all(isinstance(e["t"], float | int) for e in events)


def test_validate_bad_bundle_exits_3_naming_the_missing_file(make_capture):
    capture = make_capture()
    missing = capture.frame_path(13)
    missing.unlink()

    proc = run_backend("validate", capture.root)

    assert proc.returncode == ExitCode.INVALID_INPUT == 3
    error = stdout_events(proc)[-1]
    assert error["event"] == "error"
    assert str(missing) in error["message"]
    assert "file is missing" in error["message"]


def test_validate_a_folder_without_capture_json_exits_3_with_a_hint(tmp_path):
    proc = run_backend("validate", tmp_path)

    assert proc.returncode == 3
    error = stdout_events(proc)[-1]
    assert str(tmp_path / "capture.json") in error["message"]
    assert error["hint"]


def test_validate_drop_empty_masks_exits_0_with_a_warning(make_capture):
    capture = make_capture()
    write_png(capture.mask_path(12), np.zeros((12, 16), dtype=bool))

    rejected = run_backend("validate", capture.root)
    proc = run_backend("validate", capture.root, "--drop-empty-masks")

    assert rejected.returncode == 3
    assert "12" in stdout_events(rejected)[-1]["message"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = stdout_events(proc)
    warnings = [e for e in events if e["event"] == "warning"]
    assert len(warnings) == 1
    assert "empty mask: 12" in warnings[0]["message"]
    assert events[-1]["summary"] == "capture is valid: 3 frame(s) to reconstruct, 1 dropped"


def test_job_dir_gets_log_jsonl_with_the_same_events(make_capture, tmp_path):
    capture = make_capture()
    job_dir = tmp_path / "job"  # created by the job

    proc = run_backend("--job-dir", job_dir, "validate", capture.root)

    assert proc.returncode == 0, proc.stderr
    log_lines = (job_dir / "log.jsonl").read_text().splitlines()
    assert log_lines == proc.stdout.splitlines()
    assert json.loads(log_lines[-1])["event"] == "done"


def test_text_format_prints_lines_for_people_and_json_to_the_log(make_capture, tmp_path):
    capture = make_capture()
    job_dir = tmp_path / "job"

    proc = run_backend("--format", "text", "--job-dir", job_dir, "validate", capture.root)

    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "capture is valid: 4 frame(s) to reconstruct"
    assert any(line.startswith("[validate] 4/4") for line in lines)
    assert all(parse_event(line) is None for line in lines)
    logged = [parse_event(line) for line in (job_dir / "log.jsonl").read_text().splitlines()]
    assert logged[-1]["event"] == "done"


def test_cancel_file_in_job_dir_makes_validate_exit_4(make_capture, tmp_path):
    capture = make_capture()
    job_dir = tmp_path / "job"
    cancel_file = request_cancel(job_dir)

    proc = run_backend("--job-dir", job_dir, "validate", capture.root)

    assert proc.returncode == ExitCode.CANCELLED == 4
    error = stdout_events(proc)[-1]
    assert error["event"] == "error"
    assert "cancelled" in error["message"] and str(cancel_file) in error["message"]
    assert error["hint"] and "run it again" in error["hint"]
    assert (job_dir / "log.jsonl").read_text().splitlines() == proc.stdout.splitlines()


def test_doctor_exits_0_and_summarises_this_machine(tmp_path):
    work_dir = tmp_path / "not" / "yet"
    proc = run_backend("doctor", "--work-dir", work_dir)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = stdout_events(proc)
    done = events[-1]
    assert done["event"] == "done"
    summary = done["summary"]
    checks = {e["data"]["check"]: e for e in events if e["event"] == "info"}
    assert {"python", "numpy", "scipy", "pillow", "torch", "cuda", "nvdiffrast", "anny",
            "disk", "speed[cpu]"} <= set(checks)
    assert "[ok  ] torch: " in summary
    assert checks["torch"]["data"]["version"].startswith("2.13.0")
    import torch  # the same torch the subprocess used

    if torch.cuda.is_available():
        assert "[ok  ] cuda: " in summary and "speed[cuda]" in summary
    else:
        assert "cuda: not available" in summary
        assert checks["cuda"]["data"]["available"] is False
    if importlib.util.find_spec("nvdiffrast") is None:
        assert "nvdiffrast: not installed" in summary
    assert "disk: " in summary and str(work_dir) in summary
    assert "speed[cpu]: " in summary and "GFLOP/s" in summary
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[-1]["step"] == progress[-1]["total"]
    assert not work_dir.exists()  # doctor only looks


# ---------------------------------------------------------------- backend.doctor in-process


def test_check_disk_on_a_folder_that_does_not_exist_yet(tmp_path):
    work_dir = tmp_path / "a" / "b"
    result = doctor.check_disk(work_dir)

    assert result.name == "disk"
    assert result.data["path"] == str(work_dir)
    assert result.data["free_bytes"] > 0
    assert str(work_dir) in result.detail
    assert not work_dir.exists()


def test_check_disk_warns_when_space_is_low(tmp_path, monkeypatch):
    class Usage:
        total, used, free = 10 * 1024**3, 9 * 1024**3, 1024**3

    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda path: Usage)
    result = doctor.check_disk(tmp_path)

    assert not result.ok and not result.required
    assert result.hint and "free some space" in result.hint
    assert result.line().startswith("[--  ] disk: 1.0 GiB free")


def test_check_torch_without_torch_hints_at_the_pinned_version(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes "import torch" fail
    result = doctor.check_torch()

    assert not result.ok and result.required
    assert "torch==2.13.0" in result.hint
    assert result.line().startswith("[FAIL] torch: not importable")


def test_run_doctor_with_a_failed_torch_check_raises_with_the_install_hint(
    tmp_path, monkeypatch
):
    real_check_torch = doctor.check_torch

    def torch_missing():
        with monkeypatch.context() as m:
            m.setitem(sys.modules, "torch", None)
            return real_check_torch()

    monkeypatch.setattr(doctor, "check_torch", torch_missing)
    out = io.StringIO()
    events = EventStream(out=out)

    with pytest.raises(BackendError) as info:
        doctor.run_doctor(events, CancelToken(None), work_dir=tmp_path)

    exc = info.value
    assert "torch==2.13.0" in exc.hint
    assert "cannot run reconstructions (torch: not importable" in str(exc)
    assert "[FAIL] torch" in str(exc)
    infos = [json.loads(line) for line in out.getvalue().splitlines()]
    checks = [e["data"]["check"] for e in infos if e["event"] == "info"]
    assert "torch" in checks
    assert not any(c.startswith("speed[") for c in checks)  # no speed test without torch


def test_run_doctor_stops_when_cancelled(tmp_path):
    request_cancel(tmp_path)
    with pytest.raises(JobCancelled):
        doctor.run_doctor(EventStream(out=io.StringIO()), CancelToken(tmp_path), tmp_path)


# ---------------------------------------------------------------- backend.cli.run_command


def run_in_process(func) -> tuple[int, list[dict]]:
    out = io.StringIO()
    events = EventStream(out=out)
    code = run_command(func, argparse.Namespace(command="test"), events, CancelToken(None))
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def test_run_command_maps_an_unexpected_exception_to_exit_1():
    def crash(args, events, cancel):
        events.info("working")
        raise KeyError("frames")

    code, events = run_in_process(crash)

    assert code == ExitCode.CRASHED == 1
    assert [e["event"] for e in events] == ["info", "error"]
    assert events[-1]["message"] == "internal error: KeyError: 'frames'"
    assert "bug" in events[-1]["hint"]


def test_run_command_maps_a_backend_error_to_exit_3_with_its_hint():
    def invalid(args, events, cancel):
        raise BackendError("capture.json: bad", hint="re-export it")

    code, events = run_in_process(invalid)

    assert code == 3
    assert events == [{"event": "error", "message": "capture.json: bad",
                       "hint": "re-export it", "t": events[0]["t"]}]


def test_run_command_maps_cancellation_to_exit_4():
    def cancelled(args, events, cancel):
        raise JobCancelled("cancelled (x exists)")

    code, events = run_in_process(cancelled)

    assert code == 4
    assert events[-1]["event"] == "error"


def test_run_command_returns_0_and_adds_no_event_on_success():
    def ok(args, events, cancel):
        events.done(summary="fine")

    code, events = run_in_process(ok)

    assert code == 0
    assert [e["event"] for e in events] == ["done"]
