"""A contact sheet: one PNG grid showing a capture at a glance.

Columns are frames (at most ``frames_max``, evenly spread over the clip); rows are
the image sets present, in this order: footage, masks, normals, depth. Depth is grey,
from bright (the sheet's nearest depth) to dark (``DEPTH_SPAN_M`` farther or more),
black where unknown (0). Cells are separated and framed by ``GAP_PX`` white pixels,
so a sheet of ``rows x columns`` cells of ``w x h`` pixels is
``columns * (w + GAP_PX) + GAP_PX`` wide and ``rows * (h + GAP_PX) + GAP_PX`` high.
Cells larger than ``max_cell_px`` are shrunk by an integer stride.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..base import GarmentError
from .render import read_png, write_png

log = logging.getLogger(__name__)

ROWS = ("frames", "masks", "normals", "depth")
"""Image sets, in row order (the capture bundle's folder names)."""
GAP_PX = 2
"""White pixels between and around cells."""
DEPTH_SPAN_M = 1.5
"""Depth range shown from bright (nearest) to dark; anything farther is darkest."""


def write_contact_sheet(source: Path | str | Mapping[str, Sequence[np.ndarray]],
                        path: Path | str, frames_max: int = 8, max_cell_px: int = 256,
                        normals: Path | str | None = None, depth: Path | str | None = None
                        ) -> tuple[int, int]:
    """Write a PNG grid of a capture's images; returns its (width, height) in pixels.

    Args:
        source: a capture folder (``frames/``, ``masks/``, optional ``normals/`` and
            ``depth/`` with ``NNNNNN.png`` / ``NNNNNN.npy`` files), or a mapping from
            those names to per-frame arrays: frames (H, W, 3) uint8, masks (H, W)
            uint8 or bool, normals (H, W, 3) uint8 (encoded as in the bundle), depth
            (H, W) float metres (0 = unknown). ``frames`` is required; lists must be
            equally long.
        path: the PNG to write.
        frames_max: most columns.
        max_cell_px: cells whose longer side exceeds this are shrunk (integer stride).
        normals, depth: with a folder ``source``, read those rows from these folders
            instead of ``source/normals`` and ``source/depth`` (e.g. the exact maps
            under ``gt/``).
    Raises:
        GarmentError: no frames, mismatched lists or image sizes, unreadable files.
    """
    if frames_max < 1:
        raise GarmentError(f"Contact sheet frames_max must be >= 1, got {frames_max}")
    if isinstance(source, (str, Path)):
        folders = {"normals": normals, "depth": depth}
        rows = _read_folder(Path(source), frames_max,
                            {k: Path(v) for k, v in folders.items() if v is not None})
    else:
        rows = _pick(dict(source), frames_max)
    depth_range = _depth_range(rows)
    cells = [[_cell(name, image, depth_range) for image in images]
             for name, images in rows.items()]
    height, width = cells[0][0].shape[:2]
    for name, row in zip(rows, cells, strict=True):
        for i, cell in enumerate(row):
            if cell.shape[:2] != (height, width):
                raise GarmentError(f"Contact sheet: {name} image {i} is {cell.shape[1]}x"
                                   f"{cell.shape[0]} px, the frames are {width}x{height}")
    stride = max(1, -(-max(height, width) // max_cell_px))
    cells = [[c[::stride, ::stride] for c in row] for row in cells]
    h, w = cells[0][0].shape[:2]
    columns = len(cells[0])
    sheet = np.full((len(cells) * (h + GAP_PX) + GAP_PX,
                     columns * (w + GAP_PX) + GAP_PX, 3), 255, np.uint8)
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            y, x = GAP_PX + r * (h + GAP_PX), GAP_PX + c * (w + GAP_PX)
            sheet[y:y + h, x:x + w] = cell
    write_png(path, sheet)
    log.info("contact sheet %s: %d rows x %d frames", path, len(cells), columns)
    return sheet.shape[1], sheet.shape[0]


def _pick(lists: dict, frames_max: int) -> dict[str, list[np.ndarray]]:
    """The rows present, each cut to the same <= frames_max evenly spread frames."""
    unknown = sorted(set(lists) - set(ROWS))
    if unknown:
        raise GarmentError(f"Contact sheet: unknown image set(s) {unknown}; expected "
                           f"{', '.join(ROWS)}")
    present = {name: list(lists[name]) for name in ROWS if lists.get(name) is not None}
    if not present.get("frames"):
        raise GarmentError("Contact sheet: no frames given")
    count = len(present["frames"])
    for name, images in present.items():
        if len(images) != count:
            raise GarmentError(f"Contact sheet: {len(images)} {name} for {count} frames")
    index = _spread(count, frames_max)
    return {name: [images[i] for i in index] for name, images in present.items()}


def _read_folder(root: Path, frames_max: int, folders: dict[str, Path]
                 ) -> dict[str, list[np.ndarray]]:
    frame_files = sorted((root / "frames").glob("*.png"))
    if not frame_files:
        raise GarmentError(f"Contact sheet: no frames/*.png in {root}")
    stems = [frame_files[i].stem for i in _spread(len(frame_files), frames_max)]
    rows: dict[str, list[np.ndarray]] = {}
    for name in ROWS:
        folder = folders.get(name, root / name)
        if not folder.is_dir():
            if name in folders:
                raise GarmentError(f"Contact sheet: {name} folder {folder} does not exist")
            continue
        suffix = ".npy" if name == "depth" else ".png"
        files = [folder / (stem + suffix) for stem in stems]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise GarmentError(f"Contact sheet: {missing[0]} is missing")
        rows[name] = [np.load(f) if name == "depth" else read_png(f) for f in files]
    return rows


def _spread(count: int, most: int) -> list[int]:
    """At most ``most`` indices into ``count`` items, evenly spread, first and last in."""
    if count <= most:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, most)})


def _depth_range(rows: dict[str, list[np.ndarray]]) -> tuple[float, float]:
    """(near, far) of the grey scale: the nearest depth and at most DEPTH_SPAN_M
    beyond it, so a far floor does not flatten the person into one grey."""
    depths = [np.asarray(d, np.float64) for d in rows.get("depth", [])]
    known = np.concatenate([d[d > 0].ravel() for d in depths]) if depths else np.zeros(0)
    if known.size == 0:
        return 0.0, 1.0
    near = float(known.min())
    return near, min(float(known.max()), near + DEPTH_SPAN_M)


def _cell(name: str, image: np.ndarray, depth_range: tuple[float, float]) -> np.ndarray:
    """One (H, W, 3) uint8 cell of row ``name``."""
    image = np.asarray(image)
    if name == "depth":
        near, far = depth_range
        depth = image.astype(np.float64)
        grey = 255.0 - 200.0 * np.clip((depth - near) / max(far - near, 1e-9), 0.0, 1.0)
        image = np.where(depth > 0, grey, 0.0).round().astype(np.uint8)
    elif image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] < 3 or image.dtype != np.uint8:
        raise GarmentError(f"Contact sheet: a {name} image has shape {image.shape} "
                           f"{image.dtype}, expected (H, W[, 3]) uint8")
    return image[..., :3]
