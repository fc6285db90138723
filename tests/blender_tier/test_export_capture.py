"""Export Capture: a scene (clip, mask, camera, body) -> a capture bundle the backend accepts."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from PIL import Image

from backend.body import load_body, save_body
from backend.capture import load_capture, validate_capture
from tests.backend_tier.body_helpers import chain_body, rising_track
from tests.blender_tier.test_ui_rules import draw

REPO = Path(__file__).resolve().parents[2]
W, H = 40, 30
FRAMES = range(2, 8)


@pytest.fixture
def modules(addon):
    name = addon.__name__ + ".operators."
    return type("Modules", (), {
        "writer": importlib.import_module(name + "scene_capture.bundle_writer"),
        "inputs": importlib.import_module(name + "scene_capture.inputs"),
        "camera": importlib.import_module(name + "scene_capture.camera"),
        "operator": importlib.import_module(name + "export_capture"),
        "sidebar": importlib.import_module(addon.__name__ + ".panels.sidebar"),
    })


def frame_image(number):
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = 20 * number
    img[: H // 2, :, 1] = 255
    return img


@pytest.fixture
def scene(addon, tmp_path):
    """A scene ready to export: a 6-frame clip, an animated mask, a camera, a body."""
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = W, H
    scene.frame_start, scene.frame_end = FRAMES[0], FRAMES[-1]
    seq = tmp_path / "footage"
    seq.mkdir()
    for n in FRAMES:
        Image.fromarray(frame_image(n)).save(seq / f"plate_{n:03d}.png")
    clip = bpy.data.movieclips.load(str(seq / f"plate_{FRAMES[0]:03d}.png"))
    clip.frame_start = FRAMES[0]

    mask = bpy.data.masks.new("Skirt")
    spline = mask.layers.new(name="outline").splines.new()
    spline.points.add(3)
    for point, co in zip(spline.points, [(0.3, 0.3), (0.7, 0.3), (0.7, 0.6), (0.3, 0.6)],
                         strict=True):
        point.co = co
        point.handle_left_type = point.handle_right_type = "VECTOR"
    spline.use_cyclic = True

    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (0.0, -4.0, 0.5), (1.5708, 0.0, 0.0)
    camera.keyframe_insert("location", frame=FRAMES[0])
    camera.location.x = 0.4
    camera.keyframe_insert("location", frame=FRAMES[-1])

    path = save_body(tmp_path / "source_body.npz", chain_body(vertices=10),
                     rising_track(list(FRAMES)))
    assert bpy.ops.garment.add_body(filepath=str(path)) == {"FINISHED"}

    settings = scene.garment_recon
    settings.footage_clip, settings.mask, settings.camera = clip, mask, camera
    settings.garment_type = "dress"
    scene.frame_set(5)
    return scene


def export(folder, **kwargs):
    return bpy.ops.garment.export_capture(directory=str(folder), **kwargs)


def test_export_writes_a_capture_the_backend_validates(scene, modules, tmp_path):
    folder = tmp_path / "capture"
    scenes_before = len(bpy.data.scenes)
    assert export(folder) == {"FINISHED"}
    assert scene.frame_current == 5 and len(bpy.data.scenes) == scenes_before

    # the backend's own validator, as a user runs it
    proc = subprocess.run([sys.executable, "-m", "backend", "--format", "text", "validate",
                           str(folder)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = validate_capture(folder)
    assert report.dropped_frames == () and min(report.mask_coverage) > 0.05

    capture = load_capture(folder)
    assert capture.frames == tuple(FRAMES)
    assert (capture.width, capture.height) == (W, H)
    assert capture.garment_type == "dress" and capture.fps == 24.0
    expected = modules.camera.frame_cameras(scene, scene.garment_recon.camera, FRAMES,
                                            (W, H))
    for got, want in zip(capture.cameras, expected, strict=True):
        np.testing.assert_allclose(got.K, want.K)
        np.testing.assert_allclose(got.R, want.R, atol=1e-12)
        np.testing.assert_allclose(got.t, want.t, atol=1e-12)
    assert not np.allclose(capture.cameras[0].t, capture.cameras[-1].t), "the camera moves"
    for n in FRAMES:
        np.testing.assert_array_equal(np.asarray(Image.open(capture.frame_path(n))),
                                      frame_image(n))

    body, track = load_body(folder / "body.npz")
    source_body, source_track = load_body(tmp_path / "source_body.npz")
    np.testing.assert_array_equal(track.frame_numbers, list(FRAMES))
    np.testing.assert_allclose(body.rest_vertices, source_body.rest_vertices, atol=1e-5)
    np.testing.assert_allclose(track.bone_transforms, source_track.bone_transforms, atol=1e-5)
    assert scene.garment_recon.capture_folder == str(folder)
    assert modules.operator.last_export().ok


def test_progress_runs_through_every_stage(scene, modules, tmp_path):
    seen = []
    inputs = modules.inputs.CaptureInputs.from_scene(scene)
    result = modules.writer.export_capture(scene, inputs, tmp_path / "capture",
                                           progress=lambda *event: seen.append(event))
    assert result.warnings == () and result.removed == ()
    stages = [stage for stage, _, _ in seen]
    assert list(dict.fromkeys(stages)) == list(modules.writer.STAGES)
    for stage in modules.writer.STAGES:
        last = [e for e in seen if e[0] == stage][-1]
        assert last[1] == last[2], f"stage {stage} ends complete"
    assert ("frames", len(FRAMES), len(FRAMES)) in seen


def test_reexport_replaces_only_the_previous_capture(scene, tmp_path):
    folder = tmp_path / "capture"
    assert export(folder) == {"FINISHED"}
    notes = folder / "notes.txt"
    notes.write_text("mine")
    scene.frame_start = 4  # a shorter range: frames 2 and 3 of the old export must go
    assert export(folder) == {"FINISHED"}
    assert notes.read_text() == "mine"
    assert sorted(p.name for p in (folder / "frames").iterdir()) == [
        f"{n:06d}.png" for n in range(4, 8)]
    validate_capture(folder)


def test_non_empty_folder_needs_overwrite_and_keeps_the_users_files(scene, modules, tmp_path):
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"photo")
    with pytest.raises(RuntimeError, match="not empty and holds no readable capture.json"):
        export(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["holiday.jpg"]
    assert not modules.operator.last_export().ok
    log = draw(modules.sidebar.GARMENT_PT_run, bpy.context)
    assert any(kind == "label" and "not empty" in text for kind, text in log)
    assert export(folder, overwrite=True) == {"FINISHED"}
    assert (folder / "holiday.jpg").read_bytes() == b"photo"
    validate_capture(folder)


@pytest.mark.parametrize("problem, message", [
    ("no camera", "No camera: pick one"),
    ("clip missing", "is missing on disk"),
    ("range outside clip", r"frames 8\.\.9 are outside Movie clip"),
    ("mask range", r"Mask/frame range mismatch: mask \"Skirt\" covers frames 3\.\.7"),
    ("body not skinned", "is not skinned to an armature"),
    ("no body", "No body: pick"),
])
def test_input_problems_are_reported_and_nothing_is_written(scene, tmp_path, problem,
                                                            message):
    settings = scene.garment_recon
    if problem == "no camera":
        settings.camera = None
        scene.camera = None
    elif problem == "clip missing":
        settings.footage_clip.filepath = str(tmp_path / "moved" / "plate_002.png")
    elif problem == "range outside clip":
        scene.frame_end = 9
    elif problem == "mask range":
        settings.mask.frame_start, settings.mask.frame_end = 3, 7
    elif problem == "body not skinned":
        body = settings.body
        body.modifiers.remove(body.modifiers[0])
    elif problem == "no body":
        settings.body = None
    with pytest.raises(RuntimeError, match=message):
        export(tmp_path / "capture")
    assert not (tmp_path / "capture").exists()


def test_failure_after_writing_started_removes_the_new_files(scene, modules, tmp_path,
                                                             monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("compositor exploded")

    monkeypatch.setattr(modules.writer, "render_masks", broken)
    inputs = modules.inputs.CaptureInputs.from_scene(scene)
    folder = tmp_path / "capture"
    with pytest.raises(RuntimeError, match="compositor exploded"):
        modules.writer.export_capture(scene, inputs, folder)
    assert list(folder.iterdir()) == [], "frames, masks and body.npz are removed again"


def test_capture_json_is_written_last_and_lists_every_frame(scene, tmp_path):
    folder = tmp_path / "capture"
    export(folder)
    data = json.loads((folder / "capture.json").read_text())
    assert [entry["frame"] for entry in data["frames"]] == list(FRAMES)
    assert data["paths"]["body"] == "body.npz"
    newest = max((p for p in folder.rglob("*") if p.is_file()),
                 key=lambda p: p.stat().st_mtime_ns)
    assert newest.name == "capture.json"


def test_image_sequences_as_footage_and_masks(scene, modules, tmp_path):
    mattes = tmp_path / "mattes"
    mattes.mkdir()
    for n in FRAMES:
        matte = np.zeros((H, W), np.uint8)
        matte[5:20, n:n + 10] = 255
        Image.fromarray(matte).save(mattes / f"matte.{n:04d}.png")
    footage = bpy.data.images.load(str(tmp_path / "footage" / f"plate_{FRAMES[0]:03d}.png"))
    footage.source = "SEQUENCE"
    masks = bpy.data.images.load(str(mattes / f"matte.{FRAMES[0]:04d}.png"))
    masks.source = "SEQUENCE"
    settings = scene.garment_recon
    settings.footage_source, settings.footage_image = "IMAGE", footage
    settings.mask_source, settings.mask_image = "IMAGE", masks
    shown = {name for kind, name in draw(modules.sidebar.GARMENT_PT_inputs, bpy.context)
             if kind == "prop"}
    assert {"footage_image", "mask_image"} <= shown
    assert not {"footage_clip", "mask"} & shown
    folder = tmp_path / "capture"
    assert export(folder) == {"FINISHED"}
    report = validate_capture(folder)
    for n, coverage in zip(FRAMES, report.mask_coverage, strict=True):
        assert coverage == pytest.approx(15 * 10 / (W * H)), n
        np.testing.assert_array_equal(np.asarray(Image.open(folder / "frames" / f"{n:06d}.png")),
                                      frame_image(n))
