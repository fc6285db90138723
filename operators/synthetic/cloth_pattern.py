"""pattern.npz (the sewing pattern ``python -m backend synth prepare`` writes) -> a
validated ``Pattern``. numpy only: no bpy, so it is checked the same way everywhere.

Array layouts (see the synthetic-capture contract; numpy, C-contiguous after loading):

===============  =======  =======  ==================================================
key              shape    dtype    meaning
===============  =======  =======  ==================================================
vertices         (V, 3)   float32  world positions at the pattern's frame (sim frame
                                   1: body in its rest pose, placed), metres, Z up;
                                   a seam vertex exists once per panel
faces            (F, 3)   int32    counter-clockwise seen from outside the garment
uv               (V, 2)   float32  panel layout in [0, 1], v up (Blender)
sew_pairs        (S, 2)   int32    vertex pairs sewn together (one per panel side)
pin_weight       (V,)     float32  1 = pinned to the body, 0 = free
weight_indices   (V, K)   int32    skinning bones of each vertex (``bone_names`` index)
weight_values    (V, K)   float32  their weights, >= 0, rows summing to 1
bone_names       (B,)     str      the body's bones, body_sim.npz order
face_panel       (F,)     int32    panel of each face (optional; default all 0)
panel_names      (P,)     str      (optional; default one "panel")
garment_type     ()       str      (optional) e.g. "skirt"
edge_m           ()       float32  (optional) target edge length, metres
texture_kind     ()       str      (optional) e.g. "stripes"
===============  =======  =======  ==================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...backend.fileio import ARRAY_FILE_ERRORS
from ..base import GarmentError

REQUIRED_KEYS = ("vertices", "faces", "uv", "sew_pairs", "pin_weight", "weight_indices",
                 "weight_values", "bone_names")
OPTIONAL_KEYS = ("face_panel", "panel_names", "garment_type", "edge_m", "texture_kind")
UV_TOLERANCE = 1e-4
"""How far outside [0, 1] a UV coordinate may lie (float32 rounding in the writer)."""
WEIGHT_SUM_TOLERANCE = 1e-3
"""How far a vertex's skinning weights may sum from 1."""


class PatternError(GarmentError):
    """A sewing pattern that cannot be simulated; the message names the file and key."""


@dataclass(frozen=True, eq=False)
class Pattern:
    """A garment's sewing pattern (layouts in the module docstring), validated when built.

    Attributes:
        source: where it came from (a file path or ``"arrays"``), for messages.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    sew_pairs: np.ndarray
    pin_weight: np.ndarray
    weight_indices: np.ndarray
    weight_values: np.ndarray
    bone_names: tuple[str, ...]
    face_panel: np.ndarray
    panel_names: tuple[str, ...]
    garment_type: str = ""
    edge_m: float = 0.0
    texture_kind: str = ""
    source: str = "arrays"

    @property
    def vertex_count(self) -> int:
        return len(self.vertices)

    @property
    def face_count(self) -> int:
        return len(self.faces)


def load_pattern(path: Path | str) -> Pattern:
    """Read and validate a pattern.npz.

    Raises:
        PatternError: the file is missing or unreadable, a key is missing, or an array
            has the wrong shape, type or values (every problem is listed).
    """
    path = Path(path)
    if not path.is_file():
        raise PatternError(f"Pattern file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except ARRAY_FILE_ERRORS as exc:
        raise PatternError(f"Pattern file {path} is not a readable .npz file ({exc})") from None
    return pattern_from_arrays(arrays, source=str(path))


def pattern_from_arrays(arrays: Mapping[str, np.ndarray], source: str = "arrays") -> Pattern:
    """Validate pattern arrays (keys as in pattern.npz) into a Pattern.

    Raises:
        PatternError: naming ``source`` and every problem found.
    """
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise PatternError(f"Pattern {source} lacks key(s) {', '.join(missing)} "
                           f"(has {', '.join(sorted(arrays)) or 'none'})")
    problems: list[str] = []
    get = {key: np.asarray(arrays[key]) for key in (*REQUIRED_KEYS, *OPTIONAL_KEYS)
           if key in arrays}
    vertices = _floats(get["vertices"], "vertices", (None, 3), problems)
    V = len(vertices) if vertices is not None else None
    faces = _ints(get["faces"], "faces", (None, 3), problems)
    uv = _floats(get["uv"], "uv", (V, 2), problems)
    sew = _ints(get["sew_pairs"].reshape(-1, 2) if get["sew_pairs"].size == 0
                else get["sew_pairs"], "sew_pairs", (None, 2), problems)
    pin = _floats(get["pin_weight"], "pin_weight", (V,), problems)
    w_idx = _ints(get["weight_indices"], "weight_indices", (V, None), problems)
    w_val = _floats(get["weight_values"], "weight_values",
                    (V, w_idx.shape[1] if w_idx is not None else None), problems)
    bones = _strings(get["bone_names"], "bone_names", problems)
    F = len(faces) if faces is not None else None
    if "face_panel" in get:
        face_panel = _ints(get["face_panel"], "face_panel", (F,), problems)
    else:
        face_panel = np.zeros(F or 0, np.int32)
    panels = (_strings(get["panel_names"], "panel_names", problems)
              if "panel_names" in get else ("panel",))

    if V is not None and V < 3:
        problems.append(f"vertices: need at least 3, got {V}")
    if faces is not None and V is not None:
        if F == 0:
            problems.append("faces: none given")
        elif faces.min() < 0 or faces.max() >= V:
            problems.append(f"faces: vertex indices must lie in [0, {V}); got "
                            f"[{faces.min()}, {faces.max()}]")
        else:
            repeated = ((faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2])
                        | (faces[:, 0] == faces[:, 2]))
            if repeated.any():
                problems.append(f"faces: {int(repeated.sum())} face(s) repeat a vertex "
                                f"(first: face {int(np.argmax(repeated))})")
    if uv is not None and (uv.min(initial=0) < -UV_TOLERANCE
                           or uv.max(initial=1) > 1 + UV_TOLERANCE):
        problems.append(f"uv: must lie in [0, 1]; got [{uv.min():.4g}, {uv.max():.4g}]")
    if sew is not None and V is not None and len(sew):
        if sew.min() < 0 or sew.max() >= V:
            problems.append(f"sew_pairs: vertex indices must lie in [0, {V}); got "
                            f"[{sew.min()}, {sew.max()}]")
        elif (sew[:, 0] == sew[:, 1]).any():
            problems.append(f"sew_pairs: pair {int(np.argmax(sew[:, 0] == sew[:, 1]))} "
                            "sews a vertex to itself")
    if pin is not None and len(pin) and (pin.min() < 0 or pin.max() > 1):
        problems.append(f"pin_weight: must lie in [0, 1]; got [{pin.min():.4g}, "
                        f"{pin.max():.4g}]")
    if bones is not None and len(set(bones)) != len(bones):
        problems.append("bone_names: names repeat")
    if (w_idx is not None and bones is not None and w_idx.size
            and (w_idx.min() < 0 or w_idx.max() >= len(bones))):
        problems.append(f"weight_indices: bone indices must lie in [0, {len(bones)}); "
                        f"got [{w_idx.min()}, {w_idx.max()}]")
    if w_val is not None and len(w_val):
        sums = w_val.sum(axis=1)
        bad = np.abs(sums - 1) > WEIGHT_SUM_TOLERANCE
        if (w_val < 0).any():
            problems.append("weight_values: negative weights")
        elif bad.any():
            problems.append(f"weight_values: rows must sum to 1; vertex {int(np.argmax(bad))} "
                            f"sums to {sums[np.argmax(bad)]:.4g} ({int(bad.sum())} bad rows)")
    if face_panel is not None and len(face_panel) and (face_panel.min() < 0
                                                       or face_panel.max() >= len(panels)):
        problems.append(f"face_panel: panel indices must lie in [0, {len(panels)}); got "
                        f"[{face_panel.min()}, {face_panel.max()}]")
    if problems:
        raise PatternError(f"Pattern {source} is invalid: " + "; ".join(problems))
    return Pattern(
        vertices=vertices, faces=faces, uv=uv, sew_pairs=sew, pin_weight=pin,
        weight_indices=w_idx, weight_values=w_val, bone_names=bones,
        face_panel=face_panel, panel_names=panels,
        garment_type=_scalar_str(get.get("garment_type")),
        edge_m=float(get["edge_m"]) if "edge_m" in get and get["edge_m"].size == 1 else 0.0,
        texture_kind=_scalar_str(get.get("texture_kind")),
        source=source,
    )


def _shape_ok(array: np.ndarray, shape: tuple) -> bool:
    return array.ndim == len(shape) and all(
        want is None or got == want for got, want in zip(array.shape, shape, strict=True))


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"


def _floats(array: np.ndarray, key: str, shape: tuple, problems: list) -> np.ndarray | None:
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        problems.append(f"{key}: expected numbers, got dtype {array.dtype}")
        return None
    if not _shape_ok(array, shape):
        problems.append(f"{key}: expected shape {_shape_text(shape)}, got {array.shape}")
        return None
    if not np.isfinite(array).all():
        problems.append(f"{key}: contains NaN or infinite values")
        return None
    return np.ascontiguousarray(array, np.float32)


def _ints(array: np.ndarray, key: str, shape: tuple, problems: list) -> np.ndarray | None:
    if not np.issubdtype(array.dtype, np.integer):
        problems.append(f"{key}: expected integers, got dtype {array.dtype}")
        return None
    if not _shape_ok(array, shape):
        problems.append(f"{key}: expected shape {_shape_text(shape)}, got {array.shape}")
        return None
    return np.ascontiguousarray(array, np.int32)


def _strings(array: np.ndarray, key: str, problems: list) -> tuple[str, ...] | None:
    if array.dtype.kind not in "US" or array.ndim != 1:
        problems.append(f"{key}: expected a 1-D string array, got {array.dtype} "
                        f"{array.shape}")
        return None
    return tuple(_text(s) for s in array.tolist())


def _scalar_str(array: np.ndarray | None) -> str:
    return "" if array is None or array.size != 1 else _text(array.reshape(()).item())


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
