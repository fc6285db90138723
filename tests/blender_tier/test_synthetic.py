"""Synthetic captures end to end: prepare (backend job) -> cloth -> render -> bundle + gt/.

One tiny skirt capture is generated per session (``tiny_capture`` in conftest) and
checked the way a dataset user relies on it: the backend validates it; seams are
closed; the garment never sinks into the body; masks cover the garment the camera
sees; gt/ holds the result-bundle layout, maps, texture, scene and contact sheet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import bpy
import numpy as np
import pytest
from PIL import Image

from backend.body import load_body
from backend.capture import load_capture, validate_capture
from backend.capture.images import read_mask
from backend.jobs.result import read_result
from tests.blender_tier.synth_checks import body_depth, mask_coverage

pytestmark = pytest.mark.blender


@pytest.fixture
def synth(addon):
    """The extension's operators.synthetic.{settings, generate} modules."""
    import importlib
    import types

    base = f"{addon.__name__}.operators.synthetic"
    return types.SimpleNamespace(
        settings=importlib.import_module(f"{base}.settings"),
        generate=importlib.import_module(f"{base}.generate"),
        GarmentError=addon.operators.base.GarmentError)

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def generate_fresh(synth, settings, folder):
    """Generate a capture from an empty scene, the backend run from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    bpy.ops.wm.read_homefile(use_empty=True)
    synth.generate.generate_capture(bpy.context.scene, settings, folder, sys.executable,
                                    env=env, save_blend=False)


def test_settings_reject_bad_values_by_name(synth):
    settings, GarmentError = synth.settings, synth.GarmentError
    with pytest.raises(GarmentError, match="garment 'cape'"):
        settings.preset("tiny", garment="cape")
    with pytest.raises(GarmentError, match="frames must be >= 1"):
        settings.preset("demo", frames=0)
    with pytest.raises(GarmentError, match="Unknown synthetic preset 'huge'"):
        settings.preset("huge")
    with pytest.raises(GarmentError, match="colour"):
        settings.preset("tiny", colour="red")
    tiny = settings.PRESETS["tiny"]
    assert tiny.frames <= 12 and tiny.resolution == 128
    assert tiny.capture_frames == tuple(range(tiny.settle_frames + 1,
                                              tiny.settle_frames + 1 + tiny.frames))
    assert settings.PRESETS["demo"].frames == 30 and settings.PRESETS["demo"].resolution == 256
    assert settings.PRESETS["bench"].frames == 60 and settings.PRESETS["bench"].resolution == 512


def test_the_backend_validates_the_capture(tiny_capture):
    folder, _ = tiny_capture
    proc = subprocess.run([sys.executable, "-m", "backend", "--format", "text", "validate",
                           str(folder)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = validate_capture(folder)
    assert report.dropped_frames == () and min(report.mask_coverage) > 0.01


def test_gt_matches_the_capture_frames_and_layout(tiny_capture):
    folder, settings = tiny_capture
    capture = load_capture(folder)
    assert capture.frames == settings.capture_frames
    assert (capture.width, capture.height) == (settings.resolution,) * 2
    assert capture.garment_type == "skirt"
    gt = read_result(folder / "gt")
    g = gt.garment
    assert tuple(g.frame_numbers) == capture.frames
    assert g.vertices.shape[0] == len(capture.frames) and g.uv.shape == (len(g.faces), 3, 2)
    assert gt.texture is not None and gt.texture.shape[0] == settings.texture_size
    for frame in capture.frames:
        assert (folder / "gt" / "normals" / f"{frame:06d}.png").is_file()
        depth = np.load(folder / "gt" / "depth" / f"{frame:06d}.npy")
        assert depth.shape == (capture.height, capture.width) and np.isfinite(depth).all()
    assert (folder / "gt" / "scene.blend").is_file()
    sheet = Image.open(folder / "gt" / "contact_sheet.png")
    assert sheet.width >= 2 * settings.resolution and sheet.height >= 3 * settings.resolution
    summary = json.loads((folder / "gt" / "synth.json").read_text())
    assert summary["settings"]["garment"] == "skirt"
    assert set(summary["timings_s"]) >= {"prepare", "simulate", "render", "export"}
    # the capture's body is the rig the cloth collided with, on the captured frames
    _, track = load_body(folder / "body.npz")
    assert tuple(track.frame_numbers) == capture.frames


def test_seams_close_and_the_garment_stays_outside_the_body(tiny_capture):
    folder, _ = tiny_capture
    summary = json.loads((folder / "gt" / "synth.json").read_text())
    assert summary["stats"]["max_seam_gap_mm"] < 5.0
    body, track = load_body(folder / "body.npz")
    g = read_result(folder / "gt").garment
    for i, frame in enumerate(track.frame_numbers):
        depth = body_depth(g.vertices[i], track.posed_vertices[i], body.faces)
        assert depth.max() < 0.01, f"frame {frame}: a vertex is {depth.max() * 1e3:.1f} mm deep"


def test_masks_cover_the_garment_the_camera_sees(tiny_capture):
    folder, _ = tiny_capture
    capture = load_capture(folder)
    g = read_result(folder / "gt").garment
    for i, frame in enumerate(capture.frames):
        cam = capture.camera(frame)
        mask = read_mask(capture.mask_path(frame))
        depth = np.load(folder / "gt" / "depth" / f"{frame:06d}.npy")
        coverage = mask_coverage(g.vertices[i], mask, depth, cam.K, cam.R, cam.t)
        assert coverage >= 0.95, f"frame {frame}: masks cover {coverage:.1%} of visible GT"


def projected_span(folder, points_per_frame) -> float:
    """Largest share of the image width or height the points cover on any frame."""
    capture = load_capture(folder)
    spans = []
    for points, frame in zip(points_per_frame, capture.frames, strict=True):
        cam = capture.camera(frame)
        uv = (points @ cam.R.T + cam.t) @ cam.K.T
        uv = uv[:, :2] / uv[:, 2:]
        spans.append(max(np.ptp(uv[:, 0]) / capture.width, np.ptp(uv[:, 1]) / capture.height))
    return max(spans)


def test_the_camera_frames_the_person_tightly(tiny_capture):
    # place_camera fits the render's aspect ratio: the square image must be set first
    # (it once framed for 16:9 and showed the person at half the image height)
    folder, settings = tiny_capture
    _, track = load_body(folder / "body.npz")
    g = read_result(folder / "gt").garment
    person = [np.concatenate([b, v]) for b, v in zip(track.posed_vertices, g.vertices,
                                                      strict=True)]
    assert 0.7 < projected_span(folder, person) < 0.95


def test_garment_framing_fills_the_image_with_the_garment(synth, tmp_path):
    settings = synth.settings.preset("tiny", frames=2, resolution=64, samples=1,
                                     framing="garment")
    generate_fresh(synth, settings, tmp_path / "close")
    g = read_result(tmp_path / "close" / "gt").garment
    assert 0.7 < projected_span(tmp_path / "close", g.vertices) < 0.95
    with pytest.raises(synth.GarmentError, match="framing 'face' is not one of person, garment"):
        synth.settings.preset("tiny", framing="face")


def test_an_existing_folder_is_replaced_only_when_asked(synth, tmp_path, tiny_capture):
    generate, GarmentError = synth.generate, synth.GarmentError
    users = tmp_path / "users"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    settings = synth.settings.PRESETS["tiny"]
    with pytest.raises(GarmentError, match="not a synthetic capture"):
        generate.generate_capture(bpy.context.scene, settings, users, sys.executable)
    assert (users / "notes.txt").read_text() == "mine"
    folder, _ = tiny_capture
    with pytest.raises(GarmentError, match="allow overwriting"):
        generate.generate_capture(bpy.context.scene, settings, folder, sys.executable)


def test_a_failed_prepare_names_the_problem_and_leaves_nothing(synth, tmp_path):
    generate, GarmentError = synth.generate, synth.GarmentError
    settings = synth.settings.PRESETS["tiny"]
    folder = tmp_path / "out"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "nowhere")}
    with pytest.raises(GarmentError, match="Preparing the synthetic capture failed"):
        generate.generate_capture(bpy.context.scene, settings, folder, sys.executable, env=env)
    assert not folder.exists() and list(tmp_path.iterdir()) == []


def test_the_same_seed_gives_the_same_bundle(synth, tmp_path, tiny_capture):
    folder, settings = tiny_capture
    again = tmp_path / "again"
    generate_fresh(synth, settings, again)
    timing_files = {"gt/synth.json", "gt/source/prepare.json", "gt/scene.blend"}

    def files(root):
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - timing_files

    assert files(again) == files(folder)
    for name in sorted(files(folder)):
        assert (again / name).read_bytes() == (folder / name).read_bytes(), name


def test_add_demo_scene_makes_a_new_scene_ready_to_export(addon, prefs, tmp_path):
    import importlib

    prefs.working_folder = str(tmp_path / "work")
    user_scene = bpy.context.scene
    user_objects = {o.name for o in user_scene.objects}
    scenes = set(bpy.data.scenes)
    assert bpy.ops.garment.add_demo_scene(garment="skirt", motion="walk",
                                          quality="tiny") == {"FINISHED"}
    (scene,) = set(bpy.data.scenes) - scenes
    assert {o.name for o in user_scene.objects} == user_objects, "the user's scene is untouched"

    inputs = scene.garment_recon
    assert inputs.footage_source == "IMAGE" and inputs.mask_source == "IMAGE"
    assert inputs.camera is not None and inputs.body is not None
    assert inputs.garment_type == "skirt" and scene.camera == inputs.camera
    folder = tmp_path / "work" / "demo" / "skirt_walk_tiny"
    assert bpy.path.abspath(inputs.footage_image.filepath).startswith(str(folder / "frames"))
    assert (scene.frame_start, scene.frame_end) == (11, 18)
    truth = bpy.data.collections["Ground Truth"]
    assert truth.hide_render and len(truth.objects) == 1

    # the sidebar's inputs export as they are: what a new user does next
    writer = importlib.import_module(f"{addon.__name__}.operators.scene_capture.bundle_writer")
    out = writer.export_scene_capture(scene, tmp_path / "exported")
    exported = load_capture(out.folder if hasattr(out, "folder") else tmp_path / "exported")
    assert exported.frames == tuple(range(11, 19))
    original = load_capture(folder)
    for a, b in zip(exported.cameras, original.cameras, strict=True):
        np.testing.assert_allclose(a.K, b.K)
        np.testing.assert_allclose(a.t, b.t, atol=1e-9)


def test_a_failed_demo_scene_leaves_no_scene_or_datablocks(prefs, tmp_path):
    prefs.working_folder = str(tmp_path / "work")
    prefs.backend_python = "/bin/false"  # runs, but is no backend
    scenes = set(bpy.data.scenes)
    counts = {name: len(getattr(bpy.data, name)) for name in ("objects", "meshes", "images")}
    with pytest.raises(RuntimeError, match="Preparing the synthetic capture failed"):
        bpy.ops.garment.add_demo_scene(quality="tiny")
    assert set(bpy.data.scenes) == scenes
    assert {name: len(getattr(bpy.data, name)) for name in counts} == counts
    assert not (tmp_path / "work" / "demo" / "skirt_walk_tiny").exists()


GARMENT_MOTIONS = [(g, m) for g in ("skirt", "flared_skirt", "dress", "tshirt", "long_sleeve",
                                    "trousers", "shorts") for m in ("walk", "turn")]


@pytest.mark.slow
@pytest.mark.parametrize(("garment", "motion"), GARMENT_MOTIONS)
def test_every_garment_simulates_on_walk_and_turn(synth, tmp_path, garment, motion):
    """The issue's acceptance on the tiny preset: seams close (< 5 mm), nothing sinks
    into the body by more than 1 cm, masks cover >= 95% of the visible garment. Rendered
    at 256 px: at 128 px a tiny garment is ~20 px wide and ~150 of its vertices are
    visible, so a handful on the outline moves coverage by several percent."""
    settings = synth.settings.preset("tiny", garment=garment, motion=motion, resolution=256)
    folder = tmp_path / f"{garment}_{motion}"
    generate_fresh(synth, settings, folder)
    assert validate_capture(folder).dropped_frames == ()
    summary = json.loads((folder / "gt" / "synth.json").read_text())
    assert summary["stats"]["max_seam_gap_mm"] < 5.0
    capture = load_capture(folder)
    body, track = load_body(folder / "body.npz")
    g = read_result(folder / "gt").garment
    for i, frame in enumerate(capture.frames):
        depth_in = body_depth(g.vertices[i], track.posed_vertices[i], body.faces)
        assert depth_in.max() < 0.01, f"frame {frame}: {depth_in.max() * 1e3:.1f} mm deep"
        cam = capture.camera(frame)
        coverage = mask_coverage(g.vertices[i], read_mask(capture.mask_path(frame)),
                                 np.load(folder / "gt" / "depth" / f"{frame:06d}.npy"),
                                 cam.K, cam.R, cam.t)
        assert coverage >= 0.95, f"frame {frame}: masks cover {coverage:.1%}"


def test_gt_maps_can_be_given_as_noisy_estimates(synth, tmp_path):
    settings = synth.settings.preset("tiny", estimated=("normals", "depth"),
                                     estimate_noise=0.05, estimate_blur_px=1.0)
    folder = tmp_path / "estimated"
    generate_fresh(synth, settings, folder)
    capture = load_capture(folder)
    assert capture.extras == ("normals", "depth")
    assert validate_capture(folder).dropped_frames == ()
    frame = capture.frames[0]
    exact = np.asarray(Image.open(folder / "gt" / "normals" / f"{frame:06d}.png"), float)
    given = np.asarray(Image.open(capture.normal_path(frame)), float)
    person = np.abs(exact - 128).sum(-1) > 6
    assert person.any() and 0 < np.abs(given - exact)[person].mean() < 40
    exact_depth = np.load(folder / "gt" / "depth" / f"{frame:06d}.npy")
    given_depth = np.load(capture.depth_path(frame))
    assert ((given_depth > 0) == (exact_depth > 0)).mean() > 0.98
    assert not np.array_equal(given_depth, exact_depth)
