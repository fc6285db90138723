"""A second camera for a synthetic capture: footage of a view training never sees.

After the main render and export, ``render_second_view`` adds a second camera
(``CAMERA_NAME``) and renders every captured frame through it, RGB and garment masks
only (``render.render_capture_images`` with the main render's resolution, samples,
seed and passes, so the images are made exactly like the footage), into a capture
bundle of its own, ``gt/second_view/``::

    capture.json          the second camera's K, R|t per frame; same frame numbers,
                          fps, image size and garment type as the main capture;
                          its body is the main capture's ``body.npz`` (``../../body.npz``)
    frames/NNNNNN.png     RGB
    masks/NNNNNN.png      garment masks (255 = visible garment)

``backend.capture.load_capture`` reads it like any capture (and ``validate_capture``
accepts it once the capture is in place).

Placement: ``look.place_camera`` with the main camera's settings, its start azimuth
moved by ``SynthSettings.second_view_deg`` (default +90: counter-clockwise seen from
above), looking at the same point (the centre of the clip's body and garment). An
orbiting main camera gives an orbiting second camera that keeps that azimuth offset
on every frame (so the second view never turns into a view training sees); a static
main camera a static second one. Height and lens are the main camera's, and so is
the distance, so the person appears at the training footage's scale; only where the
person would not fit this view with the main camera's margin does the second camera
step back further.

The main capture is finished before this runs and is not touched: with the setting
off its files are what they were, and the scene's camera (``scene.camera``, saved in
``gt/scene.blend``) stays the main one. The second camera stays in the scene.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...backend.capture import Capture, CapturePaths, FrameCamera
from ...backend.capture.writer import prepare_capture_folder
from . import look, render
from .settings import SynthSettings

log = logging.getLogger(__name__)

SECOND_VIEW_DIR = "second_view"
"""Folder of the second view inside ``gt/``."""
CAMERA_NAME = "Synthetic Camera Second View"
BODY_REFERENCE = "../../body.npz"
"""The second view's body: the main capture's, two folders up from ``gt/second_view``."""
FOLDERS = ("frames", "masks")
STAGE = "second view"

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SecondView:
    """What ``render_second_view`` made.

    Attributes:
        capture: the written capture (``capture.root`` is its folder).
        camera: the second camera object.
        start_azimuth_deg: its azimuth on the first captured frame.
        distance_m: its horizontal distance from the point it looks at.
        report: the render's report (timings, mask pixels per frame).
    """

    capture: Capture
    camera: object
    start_azimuth_deg: float
    distance_m: float
    report: render.RenderReport

    def summary(self, settings: SynthSettings) -> dict:
        """The second view's entry in ``synth.json``'s stats."""
        report = self.report
        per_frame = report.per_frame_s
        return {
            "folder": f"gt/{SECOND_VIEW_DIR}",
            "azimuth_offset_deg": float(settings.second_view_deg),
            "start_azimuth_deg": round(self.start_azimuth_deg, 4),
            "camera": settings.camera,
            "distance_m": round(self.distance_m, 4),
            "render_s_per_frame": round(sum(per_frame) / max(len(per_frame), 1), 3),
            "min_mask_pixels": int(min(report.mask_pixels)),
            "empty_mask_frames": [f for f, n in zip(report.frames, report.mask_pixels,
                                                    strict=True) if n == 0],
        }


def second_camera_settings(main: look.CameraSettings, offset_deg: float
                           ) -> look.CameraSettings:
    """The main camera's settings turned by ``offset_deg`` of azimuth, without jitter
    (the main camera's jittered start plus the offset, exactly)."""
    return dataclasses.replace(main, azimuth_deg=look.start_azimuth(main) + float(offset_deg),
                               azimuth_jitter_deg=0.0)


def framing_distance(cameras: Sequence[FrameCamera], height_m: float,
                     centre: np.ndarray) -> float:
    """Horizontal distance of ``look.place_camera``'s cameras (OpenCV, as in
    capture.json) from the point they look at, which lies ``height_m`` below them on
    the optical axis; where the axis is (near) level, from ``centre`` instead."""
    out = 0.0
    for camera in cameras:
        R, t = np.asarray(camera.R, np.float64), np.asarray(camera.t, np.float64)
        position, forward = -R.T @ t, R[2]
        if abs(forward[2]) > 1e-3 and height_m > 0:
            along = height_m / -forward[2]
            out = max(out, float(along * np.hypot(forward[0], forward[1])))
        else:
            out = max(out, float(np.hypot(*(position - np.asarray(centre))[:2])))
    return out


def _centre(body_vertices) -> np.ndarray:
    points = np.asarray(body_vertices, np.float64).reshape(-1, 3)
    return 0.5 * (points.min(0) + points.max(0))


def render_second_view(scene, settings: SynthSettings, frames, body_vertices, garment,
                       main_camera: look.CameraSettings, out_dir: Path | str,
                       progress: Progress | None = None,
                       main_cameras: Sequence[FrameCamera] | None = None) -> SecondView:
    """Place the second camera, render ``frames`` through it into ``out_dir``.

    Args:
        scene: the synthetic scene after the main render (look and passes set up).
        settings: the capture's settings (``second_view_deg`` set; resolution,
            samples, seed, fps and garment as the main render).
        frames: the captured Blender frame numbers.
        body_vertices: (T, V, 3) points of those frames the main camera framed besides
            the garment (the body's vertices, or the garment's own); garment: the
            garment object (also framed, and masked).
        main_camera: the main camera's ``look.CameraSettings``.
        out_dir: the second view's capture folder (created).
        progress: optional ``progress(stage, step, total)``; stage ``STAGE``.
        main_cameras: the main camera per frame (the main render's); the second
            camera keeps at least its distance. None = fit the distance to this view.
    Raises:
        GarmentError: from placing the camera or rendering.
    """
    if settings.second_view_deg is None:
        raise ValueError("render_second_view needs settings.second_view_deg")
    out_dir = Path(out_dir)
    camera_settings = second_camera_settings(main_camera, settings.second_view_deg)
    report_progress = None if progress is None else (
        lambda _stage, step, total: progress(STAGE, step, total))
    min_distance = None if not main_cameras else framing_distance(
        main_cameras, main_camera.height_m, _centre(body_vertices))
    previous = scene.camera
    try:
        camera = look.place_camera(scene, frames, body_vertices, garment, camera_settings,
                                   name=CAMERA_NAME, min_distance_m=min_distance)
        prepare_capture_folder(out_dir, paths=CapturePaths())
        report = render.render_capture_images(
            scene, frames, garment, out_dir, resolution=settings.resolution,
            samples=settings.samples, progress=report_progress, seed=settings.seed,
            folders=FOLDERS)
    finally:
        scene.camera = previous  # the main camera stays the scene's (scene.blend)
    capture = Capture(root=out_dir, frames=report.frames, cameras=report.cameras,
                      fps=settings.fps, width=report.size[0], height=report.size[1],
                      garment_type=settings.garment,
                      paths=CapturePaths(body=BODY_REFERENCE))
    capture.save()
    empty = [f for f, n in zip(report.frames, report.mask_pixels, strict=True) if n == 0]
    if empty:
        log.warning("second view: no garment visible in frame(s) %s", empty)
    distance = framing_distance(report.cameras, main_camera.height_m,
                                _centre(body_vertices))
    return SecondView(capture=capture, camera=camera,
                      start_azimuth_deg=float(camera_settings.azimuth_deg),
                      distance_m=distance, report=report)
