"""Garment sewing patterns for synthetic captures, placed around a rest body.

``make_pattern(body, garment_type)`` sizes a garment to the body
(``backend.synthetic.garments``), meshes its panels at the target edge length
(``backend.synthetic.panels``), keeps every vertex at least ``min_clearance_m`` outside
the body (``backend.synthetic.clearance``), pins the waistband or the shoulders, and
gives every vertex skinning weights from the body (``backend.body.transfer``).

``save_pattern`` writes ``pattern.npz`` for the Blender cloth simulation; its keys
(all arrays, no pickles) and conventions:

==================  ===========  =======  ================================================
key                 shape        dtype    meaning
==================  ===========  =======  ================================================
vertices            (V, 3)       float32  WORLD positions at sim frame 1 (the rest body as
                                          body_sim.npz frame 1 places it), metres, Z up;
                                          seam vertices exist once per panel
faces               (F, 3)       int32    counter-clockwise seen from outside the garment
uv                  (V, 2)       float32  panel layout in [0, 1], v up (Blender); one
                                          texel density for all panels, no overlaps
face_panel          (F,)         int32    panel index of each face
panel_names         (P,)         str      e.g. front, back, sleeve.L
sew_pairs           (S, 2)       int32    vertices to sew (different panels, or the two
                                          sides of one tube); at most ~1 mm apart
pin_weight          (V,)         float32  1 = pinned (waistband / shoulder band), 0 free
weight_indices      (V, K)       int32    skinning bones (``bone_names`` order)
weight_values       (V, K)       float32  skinning weights, rows sum to 1
bone_names          (B,)         str      the body's bones, as in body_sim.npz
garment_type        ()           str      a capture garment type
edge_m              ()           float32  target edge length, metres
texture_kind        ()           str      print, stripes, checks or plain
==================  ===========  =======  ================================================
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..body.model import SkinnedBody
from ..body.transfer import WeightTransferSettings, transfer_weights
from ..fileio import ARRAY_FILE_ERRORS
from .clearance import BodySurface
from .errors import SynthError
from .garments import GARMENT_SPECS, plan_garment
from .measure import Measurements, body_shape, measure
from .npzio import write_npz
from .panels import Curve, assemble, mesh_panel

log = logging.getLogger(__name__)

GARMENT_TYPES: tuple[str, ...] = tuple(GARMENT_SPECS)
"""Garment types a pattern can be made for (the capture types less "template")."""
EDGE_RANGE_M = (0.005, 0.1)
"""Edge lengths the generator accepts, metres."""
PATTERN_KEYS = ("vertices", "faces", "uv", "face_panel", "panel_names", "sew_pairs",
                "pin_weight", "weight_indices", "weight_values", "bone_names",
                "garment_type", "edge_m", "texture_kind")


@dataclass(frozen=True)
class PatternSettings:
    """How a pattern is meshed and placed.

    Attributes:
        edge_m: target edge length of the triangles, metres (seams are resampled to
            it, so both sides of a seam get the same number of vertices).
        min_clearance_m: every vertex ends at least this far outside the body surface
            (the rest body); closer ones are pushed out along the surface normal.
        uv_margin: gap around and between the panels in UV space (fraction of the
            texture's side).
        weights: how skinning weights are transferred from the body.
    """

    edge_m: float = 0.02
    min_clearance_m: float = 0.006
    uv_margin: float = 0.01
    weights: WeightTransferSettings = field(default_factory=WeightTransferSettings)

    def __post_init__(self):
        lo, hi = EDGE_RANGE_M
        if not (math.isfinite(self.edge_m) and lo <= self.edge_m <= hi):
            raise SynthError(f"edge length must be between {lo} and {hi} m; got {self.edge_m}")
        if not (math.isfinite(self.min_clearance_m) and 0 <= self.min_clearance_m < 0.05):
            raise SynthError("min_clearance_m must be in [0, 0.05) m; got "
                             f"{self.min_clearance_m}")
        if not 0 <= self.uv_margin < 0.1:
            raise SynthError(f"uv_margin must be in [0, 0.1); got {self.uv_margin}")


@dataclass(frozen=True, eq=False)
class GarmentPattern:
    """A meshed garment around a rest body (layouts as in the module docstring, but
    ``vertices`` in the body's REST space).

    Attributes:
        flat: (V, 2) float32 each panel's own flat layout, metres (the sewing pattern).
        vertex_panel: (V,) int32 panel index of each vertex.
        measurements: the body's tape measurements the garment was sized from.
        stats: numbers worth reporting: counts, clearance, seam gaps, triangle angles.
    """

    garment_type: str
    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    flat: np.ndarray
    face_panel: np.ndarray
    vertex_panel: np.ndarray
    panel_names: tuple[str, ...]
    sew_pairs: np.ndarray
    pin_weight: np.ndarray
    weight_indices: np.ndarray
    weight_values: np.ndarray
    edge_m: float
    measurements: Measurements
    stats: dict

    @property
    def vertex_count(self) -> int:
        return len(self.vertices)

    @property
    def face_count(self) -> int:
        return len(self.faces)


def make_pattern(body: SkinnedBody, garment_type: str,
                 settings: PatternSettings | None = None) -> GarmentPattern:
    """The sewing pattern of ``garment_type`` sized to and placed around ``body``'s rest
    pose (see the module docstring)."""
    settings = settings or PatternSettings()
    if garment_type not in GARMENT_SPECS:
        raise SynthError(f"unknown garment type {garment_type!r}; choose one of "
                         f"{', '.join(GARMENT_TYPES)}")
    shape = body_shape(body)
    size = measure(shape)
    plan = plan_garment(garment_type, shape, size)
    meshes = [mesh_panel(spec, settings.edge_m) for spec in plan.panels]
    pattern = assemble(meshes, settings.uv_margin)

    surface = BodySurface(shape.vertices, shape.faces)
    before, _ = surface.signed_distance(pattern.vertices)
    vertices, moved = surface.push_out(pattern.vertices, settings.min_clearance_m)
    after, _ = surface.signed_distance(vertices)
    curves = {e.curve.name: e.curve for spec in plan.panels for e in spec.loop}
    spec = plan.spec
    pin = _pin_weights(vertices, [curves[n] for n in plan.pin_curves], spec.pin_band_m,
                       settings.edge_m)
    rest = shape.to_rest(vertices)
    indices, values = transfer_weights(rest.astype(np.float32), body, settings.weights)

    gaps = np.linalg.norm(vertices[pattern.sew_pairs[:, 0]] - vertices[pattern.sew_pairs[:, 1]],
                          axis=1) if len(pattern.sew_pairs) else np.zeros(1)
    angles = triangle_angles(vertices, pattern.faces)
    edges = _edge_lengths(vertices, pattern.faces)
    stats = {
        "vertices": int(len(vertices)), "faces": int(len(pattern.faces)),
        "panels": len(pattern.panel_names), "sew_pairs": int(len(pattern.sew_pairs)),
        "pinned": int((pin > 0.5).sum()),
        "clearance_before_m": float(before.min()), "clearance_min_m": float(after.min()),
        "pushed_out": int(moved.sum()),
        "seam_gap_max_m": float(gaps.max()),
        "min_angle_deg": float(angles.min()),
        "edge_mean_m": float(edges.mean()), "edge_min_m": float(edges.min()),
        "edge_max_m": float(edges.max()),
        "uv_metres_per_unit": float(1.0 / pattern.uv_scale),
    }
    log.info("%s pattern: %d vertices, %d faces, %d panels, %d sew pairs, clearance %.1f mm "
             "(%d pushed out)", garment_type, stats["vertices"], stats["faces"],
             stats["panels"], stats["sew_pairs"], 1000 * stats["clearance_min_m"],
             stats["pushed_out"])
    return GarmentPattern(
        garment_type=garment_type,
        vertices=rest.astype(np.float32),
        faces=pattern.faces.astype(np.int32),
        uv=pattern.uv.astype(np.float32),
        flat=pattern.flat.astype(np.float32),
        face_panel=pattern.face_panel.astype(np.int32),
        vertex_panel=pattern.vertex_panel.astype(np.int32),
        panel_names=pattern.panel_names,
        sew_pairs=pattern.sew_pairs.astype(np.int32),
        pin_weight=pin.astype(np.float32),
        weight_indices=indices, weight_values=values,
        edge_m=float(settings.edge_m), measurements=size, stats=stats)


def _pin_weights(vertices: np.ndarray, curves: list[Curve], band: float,
                 edge: float) -> np.ndarray:
    """1 within ``band`` of any pin curve, fading to 0 over one more edge length."""
    from scipy.spatial import cKDTree

    dense = np.concatenate([c.points for c in curves])
    dist, _ = cKDTree(dense).query(vertices)
    return np.clip((band + edge - dist) / edge, 0.0, 1.0)


def triangle_angles(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F, 3) interior angles of each triangle, degrees."""
    p = np.asarray(vertices, np.float64)[faces]
    out = np.empty(faces.shape)
    for k in range(3):
        a = p[:, (k + 1) % 3] - p[:, k]
        b = p[:, (k + 2) % 3] - p[:, k]
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1),
                                          1e-30)
        out[:, k] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return out


def _edge_lengths(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    return np.linalg.norm(vertices[e[:, 0]] - vertices[e[:, 1]], axis=1)


# ---------------------------------------------------------------- pattern.npz


def save_pattern(path: Path | str, pattern: GarmentPattern, frame_transform: np.ndarray,
                 bone_names: tuple[str, ...], texture_kind: str) -> Path:
    """Write ``pattern.npz`` (module docstring), the rest-space vertices placed in the
    world by ``frame_transform`` (4, 4): the body's rest-to-world transform at sim
    frame 1 (the rest pose, so the same for every bone)."""
    transform = np.asarray(frame_transform, np.float64)
    if transform.shape != (4, 4):
        raise SynthError(f"frame transform must be (4, 4); got {transform.shape}")
    world = pattern.vertices.astype(np.float64) @ transform[:3, :3].T + transform[:3, 3]
    return write_npz(path, {
        "vertices": world.astype(np.float32),
        "faces": pattern.faces.astype(np.int32),
        "uv": pattern.uv.astype(np.float32),
        "face_panel": pattern.face_panel.astype(np.int32),
        "panel_names": np.array(pattern.panel_names, dtype=str),
        "sew_pairs": pattern.sew_pairs.astype(np.int32),
        "pin_weight": pattern.pin_weight.astype(np.float32),
        "weight_indices": pattern.weight_indices.astype(np.int32),
        "weight_values": pattern.weight_values.astype(np.float32),
        "bone_names": np.array(bone_names, dtype=str),
        "garment_type": np.array(pattern.garment_type),
        "edge_m": np.array(pattern.edge_m, np.float32),
        "texture_kind": np.array(texture_kind),
    })


def load_pattern(path: Path | str) -> dict[str, np.ndarray]:
    """Read and check a pattern.npz; raises SynthError naming the file and key at fault."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise SynthError(f"{path}: file not found") from None
    except ARRAY_FILE_ERRORS as exc:
        raise SynthError(f"{path}: unreadable pattern file ({type(exc).__name__}: {exc})",
                         hint="prepare it again with 'python -m backend synth prepare'"
                         ) from None
    missing = [k for k in PATTERN_KEYS if k not in data]
    if missing:
        raise SynthError(f"{path}: missing key(s) {', '.join(missing)}")
    v, f = data["vertices"], data["faces"]
    problems = []
    if v.ndim != 2 or v.shape[1] != 3 or not np.isfinite(v).all():
        problems.append(f"vertices: expected finite (V, 3); got {v.shape}")
    n = len(v)
    if f.ndim != 2 or f.shape[1] != 3 or f.min(initial=0) < 0 or f.max(initial=0) >= n:
        problems.append(f"faces: expected (F, 3) indices into {n} vertices")
    for key, shape in (("uv", (n, 2)), ("pin_weight", (n,)), ("face_panel", (len(f),))):
        if data[key].shape != shape:
            problems.append(f"{key}: shape {data[key].shape}, expected {shape}")
    if data["weight_indices"].shape != data["weight_values"].shape or \
            len(data["weight_indices"]) != n:
        problems.append("weight_indices and weight_values must both be (V, K)")
    s = data["sew_pairs"]
    if s.ndim != 2 or s.shape[1] != 2 or (s.size and (s.min() < 0 or s.max() >= n)):
        problems.append(f"sew_pairs: expected (S, 2) indices into {n} vertices")
    if problems:
        raise SynthError(f"{path}: " + "; ".join(problems))
    return data
