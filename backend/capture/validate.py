"""File-level validation of a capture bundle.

Every problem is collected (not just the first) so a user can fix a bundle in one
pass; each names the file, frame or field at fault. Frames whose mask is empty can
be dropped instead of rejected (``drop_empty_masks``), which returns a capture
without them and lists them in the report.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..body import BodyError, load_body
from ..body.bundle import BODY_FRAMES_KEY, BODY_TRANSFORMS_KEY  # noqa: F401  (re-exported)
from ..fileio import ARRAY_FILE_ERRORS
from .bundle import CAPTURE_FILE, Capture, load_capture
from .errors import CaptureError
from .images import check_readable, image_size, read_mask

_FRAME_FILE = re.compile(r"^(-?\d+)\.png$")

ProgressCallback = Callable[[int, int], None]
"""Called as progress(step, total) while frames are checked."""


@dataclass(frozen=True)
class ValidationReport:
    """What validation found in a capture that it accepted.

    Attributes:
        capture: the capture to reconstruct (without dropped frames).
        dropped_frames: frame numbers left out because their mask was empty.
        mask_coverage: fraction of garment pixels per kept frame, aligned with
            ``capture.frames``.
        warnings: problems that do not stop a reconstruction.
    """

    capture: Capture
    dropped_frames: tuple[int, ...]
    mask_coverage: tuple[float, ...]
    warnings: tuple[str, ...]


def validate_capture(
    capture: Capture | Path | str,
    drop_empty_masks: bool = False,
    progress: ProgressCallback | None = None,
) -> ValidationReport:
    """Check every file of a capture bundle against its capture.json.

    Checks: frames and masks exist for every listed frame and decode; their sizes
    (and those of normals/depth) match capture.json; the frame and mask folders
    hold the same frame numbers; no mask is empty (or those frames are dropped);
    the body track covers every frame.

    Args:
        capture: a loaded Capture or the bundle folder.
        drop_empty_masks: leave out frames with empty masks instead of rejecting.
        progress: optional callback, called once per checked frame.

    Raises:
        CaptureError: with ``problems`` listing everything found.
    """
    if not isinstance(capture, Capture):
        capture = load_capture(capture)
    problems: list[str] = []
    warnings: list[str] = []

    problems += _folder_mismatch(capture, warnings)

    expected = (capture.width, capture.height)
    empty: list[int] = []
    coverage: list[float] = []
    total = len(capture.frames)
    for step, frame in enumerate(capture.frames):
        frame_size = _checked(problems, check_readable, capture.frame_path(frame))
        _check_size(problems, capture.frame_path(frame), frame_size, expected)

        mask = _checked(problems, read_mask, capture.mask_path(frame))
        if mask is not None:
            mask_size = (mask.shape[1], mask.shape[0])
            _check_size(problems, capture.mask_path(frame), mask_size, expected)
            fraction = float(mask.mean())
            coverage.append(fraction)
            if fraction == 0.0:
                empty.append(frame)
        else:
            coverage.append(0.0)

        normal_path = capture.normal_path(frame)
        if normal_path is not None:
            normal_size = _checked(problems, image_size, normal_path)
            _check_size(problems, normal_path, normal_size, expected)
        depth_path = capture.depth_path(frame)
        if depth_path is not None:
            _check_depth(problems, depth_path, expected)
        if progress is not None:
            progress(step + 1, total)

    if empty:
        listed = ", ".join(str(f) for f in empty)
        if drop_empty_masks:
            warnings.append(f"dropped {len(empty)} frame(s) with an empty mask: {listed}")
        else:
            problems.append(
                f"{capture.root / capture.paths.masks}: empty mask (no pixel > 127) in "
                f"{len(empty)} frame(s): {listed}; paint the garment in these frames or "
                "drop them (validate --drop-empty-masks)"
            )
    if len(empty) == total and total:
        problems.append(f"{capture.root}: every frame has an empty mask; nothing to reconstruct")

    problems += _body_problems(capture)

    if problems:
        raise CaptureError.collected(capture.root, problems)
    kept = capture.without_frames(set(empty)) if empty else capture
    dropped = set(empty)
    kept_coverage = tuple(
        c for f, c in zip(capture.frames, coverage, strict=True) if f not in dropped
    )
    return ValidationReport(
        capture=kept,
        dropped_frames=tuple(empty),
        mask_coverage=kept_coverage,
        warnings=tuple(warnings),
    )


def _checked(problems: list[str], check, path: Path):
    """Run one file check; record its CaptureError as a problem and return None."""
    try:
        return check(path)
    except CaptureError as exc:
        problems.append(str(exc))
        return None


def _check_size(problems, path: Path, got: tuple[int, int] | None, expected: tuple[int, int]):
    if got is not None and tuple(got) != tuple(expected):
        problems.append(
            f"{path}: image is {got[0]}x{got[1]} px, capture.json says "
            f"{expected[0]}x{expected[1]}"
        )


def _check_depth(problems: list[str], path: Path, expected: tuple[int, int]) -> None:
    try:
        depth = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        problems.append(f"{path}: file is missing")
        return
    except ARRAY_FILE_ERRORS as exc:
        problems.append(f"{path}: unreadable depth map ({type(exc).__name__}: {exc})")
        return
    want = (expected[1], expected[0])
    if depth.shape != want:
        problems.append(f"{path}: depth map has shape {depth.shape}, expected (H, W) = {want}")
    elif not np.isfinite(depth).all():
        problems.append(f"{path}: depth map has non-finite values (use 0 for unknown)")


def _frame_numbers_in(folder: Path) -> set[int] | None:
    if not folder.is_dir():
        return None
    numbers = set()
    for entry in folder.iterdir():
        match = _FRAME_FILE.match(entry.name)
        if match:
            numbers.add(int(match.group(1)))
    return numbers


def _folder_mismatch(capture: Capture, warnings: list[str]) -> list[str]:
    """Frame/mask folders must exist and hold the same frame numbers."""
    problems = []
    frames_dir = capture.root / capture.paths.frames
    masks_dir = capture.root / capture.paths.masks
    in_frames = _frame_numbers_in(frames_dir)
    in_masks = _frame_numbers_in(masks_dir)
    for folder, numbers in ((frames_dir, in_frames), (masks_dir, in_masks)):
        if numbers is None:
            problems.append(f"{folder}: folder is missing")
    if in_frames is None or in_masks is None:
        return problems
    if in_frames != in_masks:
        only_frames = sorted(in_frames - in_masks)
        only_masks = sorted(in_masks - in_frames)
        detail = []
        if only_frames:
            detail.append(f"frames without a mask: {_short_list(only_frames)}")
        if only_masks:
            detail.append(f"masks without a frame: {_short_list(only_masks)}")
        problems.append(
            f"{masks_dir}: mask/frame mismatch: {len(in_masks)} mask file(s) for "
            f"{len(in_frames)} frame file(s); " + "; ".join(detail)
        )
    unlisted = sorted((in_frames & in_masks) - set(capture.frames))
    if unlisted:
        warnings.append(
            f"{frames_dir}: {len(unlisted)} frame(s) not listed in {CAPTURE_FILE} are "
            f"ignored: {_short_list(unlisted)}"
        )
    return problems


def _body_problems(capture: Capture) -> list[str]:
    path = capture.body_path
    if path is None:
        return []
    if not path.exists():
        return [f"{path}: file is missing (the capture needs a body track)"]
    try:
        _, track = load_body(path)
    except BodyError as exc:
        return [p if p.startswith(str(path)) else f"{path}: {p}" for p in exc.problems]
    body_frames = track.frame_numbers
    uncovered = sorted(set(capture.frames) - {int(f) for f in body_frames})
    if uncovered:
        return [
            f"{path}: body track has {len(body_frames)} frame(s), the capture has "
            f"{len(capture.frames)}; frames without a body pose: {_short_list(uncovered)}"
        ]
    return []


def _short_list(numbers: list[int], shown: int = 12) -> str:
    text = ", ".join(str(n) for n in numbers[:shown])
    return text + (f", ... ({len(numbers)} in all)" if len(numbers) > shown else "")
