"""A synthetic capture from start to end: prepare, simulate, dress, render, write.

Stages (``progress(stage, step, total)`` names them):

1. ``prepare``: the backend job writes the body track with its settle lead-in, the
   sewing pattern and the fabric texture (``backend_prepare``).
2. ``add body``: the body becomes an armature + skinned mesh (Add Body's code).
3. ``simulate``: Blender cloth over frames 1..S+N, seams welded, written back as a
   mesh cache so what is rendered is exactly the ground truth (``cloth``).
4. ``look`` + ``render``: materials, lights, camera; Cycles frames, garment masks,
   normal and depth passes of the captured frames (``look``, ``render``).
5. ``export``: Export Capture's own code writes the capture bundle from the scene
   (rendered frames as the footage, rendered masks as the mask sequence), exactly as
   a user's export would; then ``gt/`` (garment.npz in the result-bundle layout,
   texture, normal/depth maps, scene.blend, contact sheet, synth.json).
6. ``second view`` (only with ``SynthSettings.second_view_deg``): a second camera,
   the main one's azimuth plus that offset, renders RGB and masks of every captured
   frame into ``gt/second_view/``, a capture bundle of its own (``second_view``),
   for evaluation on a view training never sees. It runs after the main capture is
   written, which it leaves as it is; ``scene.camera`` stays the main camera.

The output folder is built in a staging folder beside it and moved into place at the
end, so a failed or cancelled run leaves nothing half-written under its name.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from ...backend.body import load_body
from ...backend.capture import load_capture
from ...backend.capture.bundle import CAPTURE_FILE, frame_file_name
from ...backend.jobs.result import GarmentResult, write_result
from ..base import GarmentError
from ..scene_capture.body_import import add_body
from ..scene_capture.bundle_writer import export_capture
from ..scene_capture.inputs import CaptureInputs
from . import cloth, contact_sheet, look, render, second_view
from .backend_prepare import run_prepare
from .settings import SynthSettings

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
STAGES = ("prepare", "add body", "simulate", "look", "render", "export", "second view")
GT_DIR = "gt"
SUMMARY_FILE = "synth.json"


@dataclass
class SceneParts:
    """The objects a synthetic scene is made of."""

    rig: object
    body: object
    garment: object
    camera: object
    frames: tuple[int, ...]
    images: dict = field(default_factory=dict)
    framed_vertices: np.ndarray | None = None
    """(T, V, 3) world points of ``frames`` the main camera keeps in view besides the
    garment: the body's vertices, or the garment's own for ``framing="garment"``."""
    second_camera: object = None
    """The second view's camera, when the settings ask for one."""


@dataclass
class SynthResult:
    """What ``generate_capture`` made and measured.

    ``timings`` are seconds per stage; ``stats`` the checks a dataset user wants to
    know (seam gaps, penetration depth, mask coverage, vertex counts).
    """

    folder: Path
    parts: SceneParts
    timings: dict[str, float]
    stats: dict

    @property
    def gt(self) -> Path:
        return self.folder / GT_DIR


def _stage_timer(timings: dict[str, float]):
    start = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - start[0], 3)
        start[0] = now
    return lap


def build_scene(scene, settings: SynthSettings, work: Path, progress: Progress | None = None,
                timings: dict[str, float] | None = None) -> tuple[SceneParts, object]:
    """Body, simulated garment, look and camera of ``settings`` in ``scene`` (empty or
    not: only objects are added, into a new collection). ``work`` holds the prepared
    body_sim.npz / pattern.npz / texture.png. Returns the parts and the cloth SimResult."""
    timings = timings if timings is not None else {}
    lap = _stage_timer(timings)
    first, last = settings.sim_frames
    scene.render.fps = int(round(settings.fps))
    scene.render.fps_base = scene.render.fps / settings.fps
    scene.frame_start, scene.frame_end = first, last

    collection = bpy.data.collections.new(f"Synthetic {settings.garment}")
    scene.collection.children.link(collection)
    view_layer = scene.view_layers[0]

    body, track = load_body(work / "body_sim.npz")
    rig, body_obj = add_body(body, track, collection, view_layer, name="Body",
                             progress=progress)
    lap("add body")

    garment = cloth.build_garment(scene, work / "pattern.npz", rig, body_obj,
                                  cloth.profile(settings.cloth), collection=collection)
    sim = cloth.simulate(scene, garment, frames=(first, last), progress=progress)
    garment = cloth.write_back(scene, garment, sim, collection=collection,
                               cache_path=work / "garment.pc2")
    lap("simulate")

    frames = settings.capture_frames
    look.apply_look(scene, garment, body_obj, look.LookSettings(
        texture_path=str(work / "texture.png"), background=settings.background,
        lighting=settings.lighting, floor=settings.floor, floor_height_m=0.0,
        seed=settings.seed))
    body_vertices = track.posed_vertices[[f - track.frame_numbers[0] for f in frames]]
    # place_camera frames for the render's aspect ratio, so that comes first
    scene.render.resolution_x = scene.render.resolution_y = settings.resolution
    scene.render.resolution_percentage = 100
    framed = body_vertices if settings.framing == "person" else np.stack(
        look.frame_points(scene, frames, garment, None))
    camera = look.place_camera(scene, frames, framed, garment, camera_settings(settings))
    scene.camera = camera
    scene.frame_start, scene.frame_end = frames[0], frames[-1]
    lap("look")
    parts = SceneParts(rig=rig, body=body_obj, garment=garment, camera=camera, frames=frames,
                       framed_vertices=framed)
    return parts, sim


def camera_settings(settings: SynthSettings) -> look.CameraSettings:
    """The main camera of ``settings`` (``look.place_camera``)."""
    return look.CameraSettings(mode=settings.camera, orbit_deg=settings.orbit_deg,
                               seed=settings.seed)


def generate_capture(scene, settings: SynthSettings, folder: Path | str, python: Path | str,
                     env: dict[str, str] | None = None, progress: Progress | None = None,
                     overwrite: bool = False, save_blend: bool = True) -> SynthResult:
    """Make the synthetic capture of ``settings`` in ``folder`` (see the module doc).

    Args:
        scene: the Blender scene to build in (the CLI passes an empty one; Add Demo
            Scene a new scene of its own).
        python: the backend interpreter (has torch and anny).
        env: the backend's environment (PYTHONPATH to this extension, ANNY_CACHE_DIR).
        overwrite: replace an existing synthetic capture in ``folder``; a folder
            holding anything else is never touched.
    Raises:
        GarmentError: bad settings, folder in the way, a failed stage (named).
    """
    folder = Path(folder).resolve()
    _check_target(folder, overwrite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    timings: dict[str, float] = {}
    try:
        work = staging / GT_DIR / "source"
        lap = _stage_timer(timings)
        run_prepare(python, settings.backend_args(work), staging / "job", env, progress)
        shutil.rmtree(staging / "job", ignore_errors=True)
        lap("prepare")

        parts, sim = build_scene(scene, settings, work, progress, timings)
        lap = _stage_timer(timings)
        report = render.render_capture_images(
            scene, parts.frames, parts.garment, staging / GT_DIR / "render",
            resolution=settings.resolution, samples=settings.samples, progress=progress,
            seed=settings.seed)
        lap("render")

        capture_dir = staging / "capture"
        _export(scene, settings, parts, staging / GT_DIR / "render", capture_dir, progress)
        stats = _write_gt(settings, parts, sim, staging, capture_dir)
        lap("export")
        stats["render_s_per_frame"] = round(float(np.mean(report.per_frame_s)), 3)
        if settings.second_view:
            view = second_view.render_second_view(
                scene, settings, parts.frames, parts.framed_vertices, parts.garment,
                camera_settings(settings), staging / GT_DIR / second_view.SECOND_VIEW_DIR,
                progress, main_cameras=report.cameras)
            parts.second_camera = view.camera
            stats["second_view"] = view.summary(settings)
            lap("second view")
        summary = {"settings": settings.to_dict(), "timings_s": timings, "stats": stats,
                   "blender": bpy.app.version_string}
        (staging / GT_DIR / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
        _move_into_place(staging, capture_dir, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _relocate(parts, staging, folder)
    if save_blend:
        bpy.ops.wm.save_as_mainfile(filepath=str(folder / GT_DIR / "scene.blend"),
                                    copy=True, check_existing=False)
    return SynthResult(folder=folder, parts=parts, timings=timings, stats=stats)


def _check_target(folder: Path, overwrite: bool) -> None:
    if not folder.exists():
        return
    if not folder.is_dir():
        raise GarmentError(f"Synthetic capture folder '{folder}' is a file")
    if not any(folder.iterdir()):
        return
    ours = (folder / CAPTURE_FILE).is_file() and (folder / GT_DIR / SUMMARY_FILE).is_file()
    if not ours:
        raise GarmentError(f"Folder '{folder}' holds files that are not a synthetic capture;"
                           " choose an empty or new folder")
    if not overwrite:
        raise GarmentError(f"Folder '{folder}' already holds a synthetic capture; "
                           "allow overwriting to replace it")


def _move_into_place(staging: Path, capture_dir: Path, folder: Path) -> None:
    shutil.move(str(staging / GT_DIR), str(capture_dir / GT_DIR))
    if folder.exists():
        # only a previous synthetic capture gets here (_check_target)
        shutil.rmtree(folder)
    capture_dir.rename(folder)


def _relocate(parts: SceneParts, staging: Path, folder: Path) -> None:
    """Point the scene's file paths from the staging folder to their final place:
    footage and masks to the capture's own frames/ and masks/, the texture and the
    garment's mesh cache to gt/."""
    moves = {str(staging / GT_DIR / "render" / "frames"): str(folder / "frames"),
             str(staging / GT_DIR / "render" / "masks"): str(folder / "masks"),
             str(staging / "capture"): str(folder), str(staging): str(folder)}

    def moved(path: str) -> str:
        for old, new in moves.items():
            if path.startswith(old):
                return new + path[len(old):]
        return path

    for image in bpy.data.images:
        if image.filepath:
            image.filepath = moved(bpy.path.abspath(image.filepath))
    for obj in bpy.data.objects:
        for modifier in getattr(obj, "modifiers", ()):
            if modifier.type == "MESH_CACHE":
                modifier.filepath = moved(bpy.path.abspath(modifier.filepath))


def _image_sequence(folder: Path, frames, name: str):
    """An Image datablock reading ``folder/NNNNNN.png`` as frame NNNNNN."""
    image = bpy.data.images.load(str(folder / frame_file_name(frames[0])), check_existing=False)
    image.name = name
    image.source = "SEQUENCE"
    return image


def _export(scene, settings, parts: SceneParts, render_dir: Path, capture_dir: Path,
            progress) -> None:
    footage = _image_sequence(render_dir / "frames", parts.frames, "Synthetic Footage")
    masks = _image_sequence(render_dir / "masks", parts.frames, "Synthetic Masks")
    masks.colorspace_settings.name = "Non-Color"
    parts.images = {"footage": footage, "masks": masks}
    inputs = CaptureInputs(footage=footage, mask=masks, camera=parts.camera, body=parts.body,
                           garment_type=settings.garment, frames=parts.frames, fps=settings.fps)
    export_capture(scene, inputs, capture_dir, overwrite=False, progress=progress)
    if settings.estimated:
        _add_estimates(settings, render_dir, capture_dir)


def _add_estimates(settings: SynthSettings, render_dir: Path, capture_dir: Path) -> None:
    """Give the capture the GT normal/depth maps as if an estimator had made them."""
    rng = np.random.default_rng(settings.seed + 1)
    capture = load_capture(capture_dir)
    paths = capture.paths
    for name in settings.estimated:
        source, target = render_dir / name, capture_dir / name
        target.mkdir(exist_ok=True)
        for frame in capture.frames:
            render.write_estimate(name, source, target, frame, rng,
                                  noise=settings.estimate_noise,
                                  blur_px=settings.estimate_blur_px)
        paths = dataclasses.replace(paths, **{name: name})
    dataclasses.replace(capture, paths=paths).save()


def _write_gt(settings: SynthSettings, parts: SceneParts, sim, staging: Path,
              capture_dir: Path) -> dict:
    gt = staging / GT_DIR
    welded = sim.welded()  # the topology write_back rendered: seams merged
    rows = [welded.frames.index(f) for f in parts.frames]
    vertices = welded.vertices[rows]
    result = GarmentResult(faces=welded.faces, canonical_vertices=welded.vertices[0],
                           vertices=vertices, frame_numbers=np.asarray(parts.frames),
                           uv=welded.uv)
    write_result(gt, result)
    shutil.copyfile(gt / "source" / "texture.png", gt / "texture.png")
    for name in ("normals", "depth"):
        if (gt / "render" / name).is_dir():
            shutil.move(str(gt / "render" / name), str(gt / name))
    # the rendered frames and masks are now the capture's frames/ and masks/
    shutil.rmtree(gt / "render")
    contact_sheet.write_contact_sheet(capture_dir, gt / "contact_sheet.png",
                                      normals=gt / "normals", depth=gt / "depth")
    sim_rows = [sim.frames.index(f) for f in parts.frames]
    return {
        "garment_vertices": int(vertices.shape[1]),
        "garment_faces": int(len(welded.faces)),
        "max_seam_gap_mm": round(float(np.max(np.asarray(sim.seam_gap_m)[sim_rows])) * 1e3, 3),
        "max_body_depth_mm": round(float(np.nanmax(np.asarray(sim.body_depth_m)[sim_rows]))
                                   * 1e3, 3),
        "sim_s_per_frame": round(float(sim.seconds_per_frame), 4),
        "frames": list(parts.frames),
    }
