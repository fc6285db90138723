"""``python -m backend synth prepare``: the work folder for a synthetic capture (decimated
Anny, a short walk, a coarse garment), its lead-in body track, reproducibility and
every way the command refuses its input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.body import load_body
from backend.body.anny_body import AnnyPhenotype, motion_track
from backend.cli import main
from backend.synthetic.clearance import BodySurface
from backend.synthetic.leadin import LeadIn
from backend.synthetic.patterns import PATTERN_KEYS, load_pattern
from backend.synthetic.prepare import (
    BODY_FILE,
    PATTERN_FILE,
    PREPARE_FILE,
    TEXTURE_FILE,
    PrepareSettings,
    prepare,
)
from backend.synthetic.textures import TEXTURE_KINDS

REPO_ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = "notoes_collapse10pc"
FRAMES, SETTLE, FPS, SEED = 6, 8, 30.0, 2
ARGS = ["--garment", "skirt", "--motion", "walk", "--frames", str(FRAMES),
        "--settle-frames", str(SETTLE), "--fps", str(FPS), "--seed", str(SEED),
        "--edge-m", "0.05", "--texture", "auto", "--texture-size", "128",
        "--topology", TOPOLOGY]


def run_backend(*args, timeout: float = 300) -> tuple[int, list[dict]]:
    proc = subprocess.run([sys.executable, "-m", "backend", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)
    events = [json.loads(line) for line in proc.stdout.splitlines()]   # only events
    return proc.returncode, events


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "work"
    rc, events = run_backend("synth", "prepare", *ARGS, "--out", out)
    return out, rc, events


@pytest.fixture(scope="module")
def body_and_track(work):
    return load_body(work[0] / BODY_FILE)


def test_cli_writes_the_work_folder_with_progress_and_a_summary(work):
    out, rc, events = work
    assert rc == 0, events
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [BODY_FILE, PATTERN_FILE, TEXTURE_FILE, PREPARE_FILE])
    steps = [e["step"] for e in events if e["event"] == "progress"]
    assert steps[0] == 0 and steps[-1] == 5 and steps == sorted(steps)
    assert events[-1]["event"] == "done" and events[-1]["result"] == str(out)
    assert "skirt" in events[-1]["summary"] and f"captured {SETTLE + 1}..{SETTLE + FRAMES}" \
        in events[-1]["summary"]
    info = json.loads((out / PREPARE_FILE).read_text())
    assert info["frame_start"] == 1 and info["frame_end"] == SETTLE + FRAMES
    assert info["settle_frames"] == [1, SETTLE]
    assert info["capture_frames"] == [SETTLE + 1, SETTLE + FRAMES]
    assert info["files"] == {"body": BODY_FILE, "pattern": PATTERN_FILE,
                             "texture": TEXTURE_FILE}
    assert info["texture_kind"] == TEXTURE_KINDS[SEED % len(TEXTURE_KINDS)]
    assert info["settings"]["garment"] == "skirt" and info["settings"]["topology"] == TOPOLOGY
    assert info["pattern"]["panel_names"] == ["front", "back"]
    assert 0.6 < info["measurements_m"]["waist_girth"] < info["measurements_m"]["hip_girth"]


def test_body_track_is_the_lead_in_then_exactly_the_motion(body_and_track):
    body, track = body_and_track
    assert body.source == f"anny:{TOPOLOGY}" and track.fps == FPS
    np.testing.assert_array_equal(track.frame_numbers, np.arange(1, SETTLE + FRAMES + 1))
    assert track.posed_vertices.shape == (SETTLE + FRAMES, body.vertex_count, 3)
    assert track.pose_code.codes.shape == (SETTLE + FRAMES, 4)
    # the captured frames are motion_track's, frame for frame
    _, motion = motion_track("walk", FRAMES, FPS, topology=TOPOLOGY, start_frame=SETTLE + 1)
    np.testing.assert_array_equal(track.bone_transforms[SETTLE:], motion.bone_transforms)
    np.testing.assert_array_equal(track.posed_vertices[SETTLE:], motion.posed_vertices)


def test_lead_in_starts_at_rest_on_the_floor_and_eases_into_the_first_pose(body_and_track):
    body, track = body_and_track
    v = track.posed_vertices.astype(np.float64)
    shift = v[0] - body.rest_vertices
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-5)
    assert abs(v[0, :, 2].min()) < 1e-5                       # standing on the floor
    np.testing.assert_allclose(shift[0, :2], track.bone_transforms[SETTLE, 0, :2, 3],
                               atol=1e-5)                     # where the walk starts
    a = track.bone_transforms[0]                               # frame 1: one translation
    np.testing.assert_allclose(a[:, :3, :3], np.broadcast_to(np.eye(3), (len(a), 3, 3)),
                               atol=1e-5)
    np.testing.assert_allclose(a[:, :3, 3], np.broadcast_to(shift[0], (len(a), 3)), atol=1e-5)
    # holds still, then moves smoothly: no jump into the motion
    step = np.linalg.norm(np.diff(v, axis=0), axis=2).max(axis=1)
    hold = int(round(LeadIn(SETTLE).hold_fraction * SETTLE))
    assert step[:hold].max() < 1e-5
    assert step[SETTLE - 1] < 0.01                             # frame S -> S + 1
    assert step[:SETTLE].max() < 0.05
    weights = LeadIn(SETTLE).weights()
    assert weights[0] == 0 and (np.diff(weights) >= 0).all() and weights[-1] < 1


def test_pattern_is_placed_around_the_body_as_frame_one_places_it(work, body_and_track):
    out = work[0]
    body, track = body_and_track
    data = load_pattern(out / PATTERN_FILE)
    assert set(data) == set(PATTERN_KEYS)
    assert str(data["garment_type"]) == "skirt" and float(data["edge_m"]) == pytest.approx(0.05)
    assert str(data["texture_kind"]) == TEXTURE_KINDS[SEED % len(TEXTURE_KINDS)]
    assert data["bone_names"].tolist() == list(body.bone_names)
    assert data["panel_names"].tolist() == ["front", "back"]
    assert data["vertices"].dtype == np.float32 and data["faces"].dtype == np.int32
    posed = BodySurface(track.posed_vertices[0].astype(np.float64), body.faces.astype(np.int64))
    distance, _ = posed.signed_distance(data["vertices"])
    assert distance.min() > 0.005                              # outside the frame-1 body
    assert distance.max() < 0.25                               # and around it
    assert data["vertices"][:, 2].min() > 0.2                  # a skirt: off the floor


def test_texture_is_an_rgb_png_of_the_requested_size(work):
    with Image.open(work[0] / TEXTURE_FILE) as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.size == (128, 128)


def test_same_arguments_give_byte_identical_files_and_overwrite_keeps_other_files(work,
                                                                                 tmp_path):
    out = tmp_path / "again"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    settings = PrepareSettings(garment="skirt", motion="walk", frames=FRAMES,
                               settle_frames=SETTLE, fps=FPS, seed=SEED, edge_m=0.05,
                               texture="auto", texture_size=128, topology=TOPOLOGY)
    with pytest.raises(Exception, match="not empty; pass --overwrite"):
        prepare(settings, out)
    result = prepare(settings, out, overwrite=True)
    assert result.texture_kind == TEXTURE_KINDS[SEED % len(TEXTURE_KINDS)]
    for name in (BODY_FILE, PATTERN_FILE, TEXTURE_FILE):
        assert (out / name).read_bytes() == (work[0] / name).read_bytes(), name
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("change, message", [
    (["--garment", "hat"], "unknown garment type 'hat'"),
    (["--motion", "moonwalk"], "unknown motion 'moonwalk'"),
    (["--frames", "0"], "frames must be an integer from 1"),
    (["--settle-frames", "0"], "settle frames must be an integer from 1"),
    (["--fps", "0"], "fps must be > 0"),
    (["--seed", "-1"], "seed must be an integer >= 0"),
    (["--edge-m", "0.001"], "edge length must be between"),
    (["--texture", "velvet"], "unknown texture 'velvet'"),
    (["--texture-size", "8"], "texture size must be an integer from"),
    (["--topology", "sphere"], "unknown Anny topology 'sphere'"),
    (["--weight", "1.5"], "phenotype values must lie in [0, 1]; got weight=1.5"),
])
def test_bad_arguments_exit_3_naming_the_setting(tmp_path, capsys, change, message):
    args = dict(zip(ARGS[::2], ARGS[1::2], strict=True))
    args.update(dict(zip(change[::2], change[1::2], strict=True)))
    argv = ["synth", "prepare", *[x for kv in args.items() for x in kv],
            "--out", str(tmp_path / "work")]
    assert main(argv) == 3
    error = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert error["event"] == "error" and message in error["message"]
    assert not (tmp_path / "work").exists()                    # nothing written


def test_an_existing_work_folder_is_kept_unless_overwrite(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / BODY_FILE).write_bytes(b"the user's file")
    assert main(["synth", "prepare", *ARGS, "--out", str(work)]) == 3
    error = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert "folder exists and is not empty; pass --overwrite" in error["message"]
    assert (work / BODY_FILE).read_bytes() == b"the user's file"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["synth", "prepare", *ARGS, "--out", str(blocker)]) == 3
    assert "is not a folder" in json.loads(capsys.readouterr().out.splitlines()[-1])["message"]


def test_settings_default_to_the_documented_values():
    s = PrepareSettings(garment="dress")
    assert (s.motion, s.frames, s.settle_frames, s.fps, s.edge_m, s.texture,
            s.texture_size, s.topology) == ("walk", 30, 20, 30.0, 0.02, "auto", 1024, "anny")
    assert s.phenotype == AnnyPhenotype()
