"""Read a result bundle on the Blender side: numpy for garment.npz, nothing else.

``backend.jobs.result.read_result`` decodes texture.png with Pillow, which Blender's
Python does not ship; here the arrays are read and checked with the backend's own
``GarmentResult.check`` and the images are left for Blender to load (material.py).
Everything is checked before any datablock is made, so a bad bundle creates nothing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...backend.fileio import ARRAY_FILE_ERRORS
from ...backend.jobs.result import (
    DYNAMIC_TEXTURE_DIR,
    GARMENT_FILE,
    LOG_FILE,
    TEXTURE_FILE,
    GarmentResult,
    ResultError,
)
from ..base import GarmentError

log = logging.getLogger(__name__)

REQUIRED_ARRAYS = ("faces", "canonical_vertices", "vertices", "frame_numbers")
OPTIONAL_ARRAYS = ("uv",)

# Blender keeps frame numbers within +-MAXFRAME (1048574); beyond, keys and image
# users clamp silently.
MAX_FRAME = 1048574
_FRAME_FILE = re.compile(r"-?\d+")


class ResultImportError(GarmentError):
    """A result bundle cannot be imported; the message names the file and key at fault."""


@dataclass
class LoadedResult:
    """A result folder, checked and ready to build from.

    garment: arrays as documented in ``backend.jobs.result`` (faces (F,3) int32,
        uv (F,3,2) float32 or None, vertices (T,V,3) float32 world metres Z up,
        frame_numbers (T,) int32 strictly increasing Blender frames).
    texture: path of texture.png (sRGB albedo) or None.
    dynamic_textures: Blender frame number -> path of that frame's PNG, sorted by frame.
    dropped_faces: indices (into the bundle's faces) of degenerate triangles left out.
    """

    root: Path
    garment: GarmentResult
    texture: Path | None = None
    dynamic_textures: dict[int, Path] = field(default_factory=dict)
    dropped_faces: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def load_result(result_dir: Path | str) -> LoadedResult:
    """Read garment.npz and find the textures of a result folder.

    Degenerate triangles (a vertex repeated) are dropped with a warning: Blender
    would otherwise build broken edges from them.

    Raises:
        ResultImportError: the folder or garment.npz is missing or unreadable, an array
            is missing, misshapen or non-finite, a frame number is out of Blender's
            range, a dynamic texture file is not named by its (non-negative) frame
            number, or the bundle has no frames or no faces.
    """
    root = Path(result_dir)
    if not root.is_dir():
        raise ResultImportError(f"Result folder '{root}' does not exist or is not a folder")
    path = root / GARMENT_FILE
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in REQUIRED_ARRAYS if k not in npz.files]
            if missing:
                raise ResultImportError(f"{path}: missing array(s) {', '.join(missing)}")
            arrays = {k: npz[k] for k in REQUIRED_ARRAYS + OPTIONAL_ARRAYS if k in npz.files}
    except FileNotFoundError:
        raise ResultImportError(
            f"{path}: file is missing; the job did not finish (see {root / LOG_FILE})"
        ) from None
    except ARRAY_FILE_ERRORS as exc:
        raise ResultImportError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    for name, arr in arrays.items():
        # int/float of any width is fine (cast below); strings or objects are not
        if arr.dtype.kind not in "iuf":
            raise ResultImportError(f"{path}: {name} has dtype {arr.dtype}, expected numbers")
    try:
        garment = GarmentResult(**arrays)
        garment.check(str(path))
    except ResultError as exc:
        raise ResultImportError(str(exc)) from None
    _check_counts(path, garment)
    dropped = _drop_degenerate_faces(path, garment)
    texture = root / TEXTURE_FILE
    return LoadedResult(
        root=root,
        garment=garment,
        texture=texture if texture.is_file() else None,
        dynamic_textures=_dynamic_textures(root / DYNAMIC_TEXTURE_DIR),
        dropped_faces=dropped,
    )


def _check_counts(path: Path, garment: GarmentResult) -> None:
    T, V = garment.vertices.shape[:2]
    if T == 0:
        raise ResultImportError(f"{path}: vertices has no frames (shape {garment.vertices.shape})")
    if V == 0 or len(garment.faces) == 0:
        raise ResultImportError(
            f"{path}: empty mesh ({V} vertices, {len(garment.faces)} faces)"
        )
    frames = garment.frame_numbers
    if frames.min() < -MAX_FRAME or frames.max() > MAX_FRAME:
        raise ResultImportError(
            f"{path}: frame_numbers span {frames.min()}..{frames.max()}, "
            f"outside Blender's range -{MAX_FRAME}..{MAX_FRAME}"
        )


def _drop_degenerate_faces(path: Path, garment: GarmentResult) -> np.ndarray:
    f = garment.faces
    bad = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 2] == f[:, 0])
    dropped = np.flatnonzero(bad)
    if len(dropped) == len(f):
        raise ResultImportError(f"{path}: every face repeats a vertex (no valid triangle)")
    if len(dropped):
        log.warning("%s: dropping %d degenerate face(s), first %d", path, len(dropped),
                    dropped[0])
        garment.faces = np.ascontiguousarray(f[~bad])
        if garment.uv is not None:
            garment.uv = np.ascontiguousarray(garment.uv[~bad])
    return dropped


def _dynamic_textures(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        return {}
    found = {}
    for p in folder.glob("*.png"):
        if not _FRAME_FILE.fullmatch(p.stem):
            raise ResultImportError(f"{p}: expected a frame-numbered name like 000001.png")
        frame = int(p.stem)
        if frame < 0:
            # Blender's image sequences read the digits only: "-00001" would load frame 1
            raise ResultImportError(
                f"{p}: negative frame numbers cannot be played as a Blender image sequence"
            )
        found[frame] = p
    return dict(sorted(found.items()))
