"""Slow tier: the tiny synthetic skirt reconstructs end to end through the job protocol.

What Blender does when the user clicks Reconstruct: ``job.json`` -> ``python -m
backend run`` followed by the job runner (progress events, cancel file), then the
same command again resumes from the checkpoint the cancel left and finishes.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.blender, pytest.mark.slow]


def _runner(addon, job_dir: Path, job_file: Path):
    module = importlib.import_module(f"{addon.__name__}.operators.job_runner")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(addon.__file__).resolve().parent)
    argv = [sys.executable, "-m", "backend", "--job-dir", str(job_dir), "run", str(job_file)]
    return module.JobRunner(argv, job_dir, env=env, cancel_grace_s=120.0), module.Status


def test_tiny_skirt_reconstructs_through_a_job_with_cancel_and_resume(addon, tiny_capture,
                                                                       tmp_path):
    folder, settings = tiny_capture
    result = tmp_path / "result"
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({
        "capture": str(folder), "output": str(result), "seed": 0,
        "settings": {"preset": "draft", "device": "cpu"}}))

    runner, Status = _runner(addon, tmp_path / "job", job_file)
    runner.start()
    seen = []
    while runner.poll():
        state = runner.state
        if state.stage and (not seen or seen[-1] != state.stage):
            seen.append(state.stage)
        if state.stage == "joint" and state.step >= 10 and state.status == Status.RUNNING:
            runner.cancel()
        time.sleep(0.05)
    assert runner.state.status == Status.CANCELLED, (runner.state.error, runner.state.log_tail)
    assert {"warmup", "joint"} <= set(seen)
    assert (result / "checkpoint" / "state.pt").is_file()
    assert not (result / "garment.npz").exists()

    runner, Status = _runner(addon, tmp_path / "job2", job_file)
    state = runner.start().wait(timeout_s=900)
    assert state.status == Status.DONE, (state.error, state.log_tail)
    metrics = json.loads((result / "metrics.json").read_text())
    assert metrics["resumed_from_step"] > 0
    ours = metrics["ground_truth"]["summary"]["chamfer_x1e3"]
    template = metrics["ground_truth_template"]["summary"]["chamfer_x1e3"]
    assert ours < 0.7 * template, f"CD x1e3 {ours:.3f} vs the template's {template:.3f}"
    log = [json.loads(line)
           for line in (tmp_path / "job" / "log.jsonl").read_text().splitlines()]
    assert any(e["event"] == "progress" and e.get("eta_s") is not None for e in log)
