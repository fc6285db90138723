"""The result bundle: what a reconstruction writes and Blender imports (DESIGN.md).

A result is a folder::

    garment.npz                 faces, per-corner UVs, canonical and per-frame vertices
    texture.png                 static albedo (sRGB), optional
    texture_dynamic/NNNNNN.png  per-frame baked texture, optional
    metrics.json                losses, timings, GT metrics when the capture has them
    log.jsonl                   every progress event of the job (written by EventStream)
    checkpoint/                 state to resume after a cancel or crash

garment.npz arrays (all C-contiguous, little-endian):

    faces               (F, 3) int32   vertex indices, counter-clockwise seen from outside
    uv                  (F, 3, 2) float32  per-corner texture coordinates in [0, 1], v up
                        (Blender's convention); absent when the result has no UVs
    canonical_vertices  (V, 3) float32 garment in the body's rest space, metres, Z up
    vertices            (T, V, 3) float32 per-frame world-space positions, metres, Z up
    frame_numbers       (T,) int32     Blender frame number of each row of ``vertices``

Every file is written under a temporary name and renamed, so a crash mid-write
never leaves a half-written bundle that looks complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..capture.bundle import frame_file_name
from ..capture.images import read_rgb, write_png
from ..errors import BackendError
from ..fileio import ARRAY_FILE_ERRORS, atomic_write

GARMENT_FILE = "garment.npz"
TEXTURE_FILE = "texture.png"
DYNAMIC_TEXTURE_DIR = "texture_dynamic"
METRICS_FILE = "metrics.json"
LOG_FILE = "log.jsonl"
CHECKPOINT_DIR = "checkpoint"


class ResultError(BackendError):
    """A result bundle is malformed or incomplete."""


@dataclass
class GarmentResult:
    """An animated garment mesh (array layouts in the module docstring)."""

    faces: np.ndarray
    canonical_vertices: np.ndarray
    vertices: np.ndarray
    frame_numbers: np.ndarray
    uv: np.ndarray | None = None

    def __post_init__(self):
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int32)
        self.canonical_vertices = np.ascontiguousarray(self.canonical_vertices, dtype=np.float32)
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float32)
        self.frame_numbers = np.ascontiguousarray(self.frame_numbers, dtype=np.int32)
        if self.uv is not None:
            self.uv = np.ascontiguousarray(self.uv, dtype=np.float32)

    def check(self, where: str = GARMENT_FILE) -> None:
        """Raise ResultError naming the array whose shape or values are wrong."""
        V = self.canonical_vertices.shape[0] if self.canonical_vertices.ndim == 2 else -1
        _expect_shape(where, "canonical_vertices", self.canonical_vertices, (None, 3))
        _expect_shape(where, "faces", self.faces, (None, 3))
        _expect_shape(where, "vertices", self.vertices, (None, V, 3))
        _expect_shape(where, "frame_numbers", self.frame_numbers, (self.vertices.shape[0],))
        if self.uv is not None:
            _expect_shape(where, "uv", self.uv, (self.faces.shape[0], 3, 2))
        if len(self.faces) and (self.faces.min() < 0 or self.faces.max() >= V):
            raise ResultError(
                f"{where}: faces index vertices {self.faces.min()}..{self.faces.max()}, "
                f"but there are {V} vertices"
            )
        for name in ("canonical_vertices", "vertices", "uv"):
            arr = getattr(self, name)
            if arr is not None and not np.isfinite(arr).all():
                raise ResultError(f"{where}: {name} has non-finite values")
        if np.any(np.diff(self.frame_numbers) <= 0):
            raise ResultError(f"{where}: frame_numbers must be strictly increasing")


@dataclass
class ResultBundle:
    """A result folder, read back.

    ``texture``: (H, W, 3) uint8 sRGB or None; ``dynamic_textures``: frame number ->
    path of that frame's PNG (loaded on demand; they can be many).
    """

    root: Path
    garment: GarmentResult
    texture: np.ndarray | None = None
    dynamic_textures: dict[int, Path] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def write_result(
    root: Path,
    garment: GarmentResult,
    texture: np.ndarray | None = None,
    dynamic_textures: dict[int, np.ndarray] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write a result bundle into ``root`` (created if needed); returns ``root``.

    ``garment.npz`` is written last, so its presence marks a complete bundle.
    """
    root = Path(root)
    garment.check()
    root.mkdir(parents=True, exist_ok=True)
    if texture is not None:
        write_png(root / TEXTURE_FILE, texture)
    for frame, pixels in (dynamic_textures or {}).items():
        write_png(root / DYNAMIC_TEXTURE_DIR / frame_file_name(frame), pixels)
    if metrics is not None:
        with atomic_write(root / METRICS_FILE) as tmp:
            tmp.write_text(json.dumps(metrics, indent=1))
    arrays = {
        "faces": garment.faces,
        "canonical_vertices": garment.canonical_vertices,
        "vertices": garment.vertices,
        "frame_numbers": garment.frame_numbers,
    }
    if garment.uv is not None:
        arrays["uv"] = garment.uv
    with atomic_write(root / GARMENT_FILE) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return root


def read_result(root: Path | str) -> ResultBundle:
    """Read and check a result bundle.

    Raises:
        ResultError: garment.npz missing, unreadable, or with a missing/misshapen array.
    """
    root = Path(root)
    path = root / GARMENT_FILE
    required = ("faces", "canonical_vertices", "vertices", "frame_numbers")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in required if k not in npz.files]
            if missing:
                raise ResultError(f"{path}: missing array(s) {', '.join(missing)}")
            arrays = {k: npz[k] for k in npz.files if k in required + ("uv",)}
    except FileNotFoundError:
        raise ResultError(
            f"{path}: file is missing; the job did not finish (see {root / LOG_FILE})"
        ) from None
    except ARRAY_FILE_ERRORS as exc:
        raise ResultError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    garment = GarmentResult(**arrays)
    garment.check(str(path))

    texture = read_rgb(root / TEXTURE_FILE) if (root / TEXTURE_FILE).exists() else None
    dynamic = {}
    dyn_dir = root / DYNAMIC_TEXTURE_DIR
    if dyn_dir.is_dir():
        for p in sorted(dyn_dir.glob("*.png")):
            try:
                dynamic[int(p.stem)] = p
            except ValueError:
                raise ResultError(f"{p}: expected a frame-numbered name like 000001.png") from None
    metrics = {}
    if (root / METRICS_FILE).exists():
        try:
            metrics = json.loads((root / METRICS_FILE).read_text())
        except ValueError as exc:
            raise ResultError(f"{root / METRICS_FILE}: not valid JSON ({exc})") from None
    return ResultBundle(root, garment, texture, dynamic, metrics)


def _expect_shape(where: str, name: str, arr: np.ndarray, shape: tuple) -> None:
    ok = arr.ndim == len(shape) and all(
        w is None or w == g for w, g in zip(shape, arr.shape, strict=True)
    )
    if not ok:
        want = str(tuple("*" if w is None else w for w in shape)).replace("'", "")
        raise ResultError(f"{where}: {name} has shape {arr.shape}, expected {want}")

