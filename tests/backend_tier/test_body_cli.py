"""``python -m backend body ...`` as the subprocess Blender and scripts start."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from backend.body import load_body
from tests.backend_tier.smpl_files import random_params, write_smpl

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_backend(*args, timeout: float = 300) -> tuple[int, list[dict]]:
    proc = subprocess.run([sys.executable, "-m", "backend", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)
    lines = proc.stdout.splitlines()
    events = [json.loads(line) for line in lines]   # every stdout line must be an event
    return proc.returncode, events


def test_body_anny_writes_a_walking_body_and_reports_foot_sliding(tmp_path):
    out = tmp_path / "body.npz"
    rc, events = run_backend("body", "anny", "--motion", "walk", "--frames", "12", "--fps", "24",
                             "--topology", "notoes_collapse10pc", "--start-frame", "101",
                             "--out", out)
    assert rc == 0, events
    assert events[-1]["event"] == "done" and events[-1]["result"] == str(out)
    sliding = [e for e in events if e["event"] == "info" and "foot sliding" in e["message"]]
    assert sliding and "max_speed_m_s" in sliding[0]["data"]
    body, track = load_body(out)
    assert body.source == "anny:notoes_collapse10pc" and track.fps == 24
    assert list(track.frame_numbers) == list(range(101, 113))
    assert track.pose_code.codes.shape == (12, 4)


def test_body_smpl_from_a_parameter_file(tmp_path):
    write_smpl(tmp_path)
    np.savez(tmp_path / "seq.npz", **random_params(4, 23))
    out = tmp_path / "body.npz"
    rc, events = run_backend("body", "smpl", "--model", tmp_path, "--params",
                             tmp_path / "seq.npz", "--no-posed-vertices", "--out", out)
    assert rc == 0, events
    body, track = load_body(out)
    assert body.bone_count == 24 and track.fps == 30 and track.posed_vertices is None


def test_existing_output_is_not_overwritten_and_missing_model_exits_3(tmp_path):
    out = tmp_path / "body.npz"
    out.write_bytes(b"the user's file")
    rc, events = run_backend("body", "anny", "--frames", "2", "--out", out)
    assert rc == 3 and "already exists; pass --overwrite" in events[-1]["message"]
    assert out.read_bytes() == b"the user's file"

    np.savez(tmp_path / "seq.npz", **random_params(2, 23))
    rc, events = run_backend("body", "smpl", "--model", tmp_path / "models", "--params",
                             tmp_path / "seq.npz", "--out", tmp_path / "new.npz")
    assert rc == 3 and "no SMPL model file found" in events[-1]["message"]
    assert "SMPL model folder" in events[-1]["hint"]


def test_bench_body_prints_track_build_time_and_lbs_throughput():
    rc, events = run_backend("bench", "body")
    assert rc == 0, events
    messages = " | ".join(e.get("message", "") for e in events if e["event"] == "info")
    assert "100-frame walk track built in" in messages
    assert "LBS 5000 vertices x 100 frames on cpu" in messages and "frames/s" in messages
