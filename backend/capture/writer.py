"""Getting a folder ready to receive a capture bundle, without losing anyone's files.

``capture.json`` itself is written by ``Capture.save`` (bundle.py). This module decides
what may happen to the folder first:

- missing or empty: created, fine;
- holds a readable capture: the previous export is replaced. Only the files its
  capture.json lists (frames, masks, normals, depth of its frames, its body file and
  capture.json) are removed; anything else in the folder stays;
- anything else (other files, or a capture.json that does not load): refused unless
  ``overwrite`` is set, and even then nothing is removed: files of the same name are
  replaced as they are written.

Free of bpy and torch: Blender's exporter and the backend share it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .bundle import CAPTURE_FILE, CapturePaths, load_capture
from .errors import CaptureError

log = logging.getLogger(__name__)


def prepare_capture_folder(root: Path | str, overwrite: bool = False,
                           paths: CapturePaths | None = None) -> tuple[Path, ...]:
    """Make ``root`` ready for a new capture; returns the files of a previous one removed.

    Args:
        root: the capture folder (created with its image folders if missing).
        overwrite: allow a non-empty folder that holds no readable capture.
        paths: the layout of the new capture (default CapturePaths()): its frames and
            masks folders are created.
    Raises:
        CaptureError: ``root`` is a file, or not empty and not a capture without
            ``overwrite``.
    """
    root = Path(root)
    paths = paths or CapturePaths()
    if root.exists() and not root.is_dir():
        raise CaptureError(f"{root}: is a file, not a folder; choose a folder for the capture")
    removed: list[Path] = []
    if root.is_dir() and any(root.iterdir()):
        previous = _previous_capture(root)
        if previous is not None:
            removed = _remove_listed(previous)
            log.info("%s: replaced a previous capture (%d files removed)", root, len(removed))
        elif not overwrite:
            raise CaptureError(
                f"{root}: folder is not empty and holds no readable {CAPTURE_FILE}; "
                "export with overwrite to write into it (files of the same name are "
                "replaced, nothing else is deleted) or choose an empty folder")
    for folder in (paths.frames, paths.masks):
        (root / folder).mkdir(parents=True, exist_ok=True)
    return tuple(removed)


def _previous_capture(root: Path):
    if not (root / CAPTURE_FILE).is_file():
        return None
    try:
        return load_capture(root)
    except CaptureError as exc:
        log.info("%s: not treated as a capture (%s)", root, exc)
        return None


def _remove_listed(capture) -> list[Path]:
    """Delete the files a loaded capture lists (those that exist); returns them."""
    listed = [capture.root / CAPTURE_FILE]
    for frame in capture.frames:
        listed += [capture.frame_path(frame), capture.mask_path(frame)]
        listed += [p for p in (capture.normal_path(frame), capture.depth_path(frame)) if p]
    if capture.body_path is not None:
        listed.append(capture.body_path)
    removed = []
    inside = capture.root.resolve()
    for path in listed:
        # capture.json names its folders: never follow them out of the capture
        if path.is_file() and path.resolve().is_relative_to(inside):
            path.unlink()
            removed.append(path)
    return removed
