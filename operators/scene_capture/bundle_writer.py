"""The whole export: scene -> capture bundle folder (DESIGN.md, "Capture bundle").

``export_capture`` is what Export Capture runs and what Reconstruct Garment will run
before starting a job. Order, so that mistakes surface before the slow part:

1. check every input (camera, footage on disk and covering the frames, masks, body
   rig and weights, image size against the render resolution) — nothing is written
   if one fails;
2. make the folder ready (``backend.capture.writer``: a previous capture's files are
   replaced, a folder with other files needs ``overwrite``);
3. step through the frames once: camera and body per frame (scene frame restored);
4. write body.npz, then frames/ and masks/ through a temporary compositor, then
   capture.json last, so a folder with capture.json is a finished export.

If a step after 1 fails, the files this export created are removed again (files that
were already there are left, even when they have been overwritten).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ...backend.body import save_body
from ...backend.capture import GARMENT_TYPES, Capture, CaptureError, CapturePaths
from ...backend.capture.writer import prepare_capture_folder
from ..base import GarmentError
from .body_export import BodySampler, find_rig
from .camera import check_camera, frame_camera, intrinsics
from .compositor import TemporaryCompositor
from .footage import check_source, path_is_usable, render_footage, source_size
from .inputs import CaptureInputs
from .masks import check_masks, render_masks
from .timeline import frame_restored, set_frame

log = logging.getLogger(__name__)

STAGES = ("scene", "body", "frames", "masks", "capture")
"""Progress stages, in order (``progress(stage, step, total)``)."""

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    Attributes:
        capture: the written capture (``capture.root`` is the folder).
        warnings: problems that did not stop the export (e.g. the body's LBS check).
        removed: files of a previous capture in the folder that were replaced.
        seconds: wall time of the export.
    """

    capture: Capture
    warnings: tuple[str, ...]
    removed: tuple[Path, ...]
    seconds: float

    @property
    def path(self) -> Path:
        """The capture folder."""
        return self.capture.root


def check_inputs(scene, inputs: CaptureInputs) -> tuple[tuple[int, int], BodySampler]:
    """Raise GarmentError for the first input that cannot be exported.

    Returns the image size (the footage's, width x height) and the body sampler.
    """
    frames = inputs.frames
    camera = inputs.camera if inputs.camera is not None else scene.camera
    check_camera(camera)
    if inputs.footage is None:
        raise GarmentError("No footage: pick a Movie Clip or an image sequence in the "
                           "Garment sidebar (Footage)")
    check_source(inputs.footage, frames)
    size = source_size(inputs.footage)
    intrinsics(scene, camera.data, size)  # the footage must have the render's aspect
    check_masks(inputs.mask, frames)
    if inputs.garment_type not in GARMENT_TYPES:
        raise GarmentError(f"Unknown garment type {inputs.garment_type!r}; expected one of "
                           f"{', '.join(GARMENT_TYPES)}")
    sampler = BodySampler(find_rig(inputs.body))
    return size, sampler


def export_capture(scene, inputs: CaptureInputs, folder: Path | str, overwrite: bool = False,
                   progress: Progress | None = None) -> ExportResult:
    """Write the capture bundle of ``inputs`` into ``folder``; returns what was written.

    Args:
        scene: the scene the inputs belong to (camera, render resolution, frames).
        inputs: ``CaptureInputs.from_scene(scene)``.
        folder: the capture folder (absolute; Blender's '//' paths resolved by the caller).
        overwrite: allow a non-empty folder that is not a capture (nothing is deleted).
        progress: optional ``progress(stage, step, total)``, stages as in ``STAGES``.
    Raises:
        GarmentError: an input cannot be exported, or the folder is not usable.
    """
    start = time.perf_counter()
    folder = Path(folder)
    path_is_usable(folder)
    size, sampler = check_inputs(scene, inputs)
    paths = CapturePaths()
    new_dirs = [d for d in (folder / paths.frames, folder / paths.masks) if not d.exists()]
    try:
        removed = prepare_capture_folder(folder, overwrite, paths)
    except CaptureError as exc:
        raise GarmentError(str(exc)) from None
    before = _existing_files(folder, paths)
    written: list[Path] = []
    try:
        cameras = _sample_scene(scene, inputs, size, sampler, progress)
        body, track, warnings = sampler.result(inputs.fps)
        written.append(save_body(folder / paths.body, body, track))
        _report(progress, "body", 1, 1)
        with TemporaryCompositor(size) as comp:
            render_footage(comp, inputs.footage, inputs.frames, folder / paths.frames,
                           progress, written)
            render_masks(comp, inputs.mask, inputs.frames, folder / paths.masks, progress,
                         written)
        capture = Capture(root=folder, frames=inputs.frames, cameras=tuple(cameras),
                          fps=inputs.fps, width=size[0], height=size[1],
                          garment_type=inputs.garment_type, paths=paths)
        written.append(capture.save())
        _report(progress, "capture", 1, 1)
    except BaseException:
        _remove_new(written, before, new_dirs)
        raise
    seconds = time.perf_counter() - start
    log.info("exported %d frames (%dx%d) to %s in %.1f s", len(inputs.frames), *size, folder,
             seconds)
    return ExportResult(capture=capture, warnings=tuple(warnings), removed=removed,
                        seconds=seconds)


def export_scene_capture(scene, folder: Path | str, overwrite: bool = False,
                         progress: Progress | None = None) -> ExportResult:
    """``export_capture`` of the inputs chosen in ``scene.garment_recon`` (the sidebar)."""
    return export_capture(scene, CaptureInputs.from_scene(scene), folder, overwrite, progress)


def _sample_scene(scene, inputs: CaptureInputs, size, sampler: BodySampler, progress):
    """Cameras per frame, and the body's rest pose and track (one pass over the frames)."""
    cameras = []
    total = len(inputs.frames)
    with frame_restored(scene), sampler.sampling_modifiers():
        for step, frame in enumerate(inputs.frames):
            depsgraph = set_frame(scene, frame)
            camera = inputs.camera if inputs.camera is not None else scene.camera
            cameras.append(frame_camera(scene, depsgraph, camera, size, frame))
            if step == 0:
                sampler.rest(depsgraph, frame)
            sampler.sample(depsgraph, frame)
            _report(progress, "scene", step + 1, total)
    return cameras


def _remove_new(written: list[Path], before: set[Path], new_dirs: list[Path]) -> None:
    """Undo a failed export: its new files, and the folders it made if left empty."""
    for path in written:
        if path not in before:
            path.unlink(missing_ok=True)
    for folder in new_dirs:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _existing_files(folder: Path, paths: CapturePaths) -> set[Path]:
    found = set()
    for sub in (folder, folder / paths.frames, folder / paths.masks):
        if sub.is_dir():
            found.update(p for p in sub.iterdir() if p.is_file())
    return found


def _report(progress: Progress | None, stage: str, step: int, total: int) -> None:
    if progress is not None:
        progress(stage, step, total)
