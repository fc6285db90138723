"""The garment a reconstruction starts from, in the body's rest space.

Three kinds:
- tight garments (t-shirt, long sleeve, trousers, shorts) are the part of the body
  surface they cover, pushed outward by ``ease_m``. Which vertices are covered comes
  from the skinning weights (``backend.body.regions``): the torso between a hem and
  the neck, the arms or legs up to a fraction of their length (sleeve and leg cuts
  are planes across the limb, not bone borders).
- loose garments (skirt, flared skirt, dress) are a ruled surface: rings around the
  body from the waist (the chest for a dress) down to the hem, each ring just
  enclosing the body there, the radius never shrinking downwards (cloth hangs) and
  growing at least with the flare angle. Unlike body faces, it spans the gap
  between the legs, which is what a skirt does (DESIGN.md: not glued to the legs).
- any user mesh (OBJ/PLY through trimesh), already placed in the rest space.

All three get skinning weights from the body by ``transfer_weights`` and are refined
by uniform subdivision to ``target_edge_m`` (the template never gets coarser than the
body surface it came from). A loose garment's weights are then smoothed over its own
surface (``smooth_weights``): copied from the nearest body part, a skirt's hem would
follow each leg like a trouser leg does, folding into the gap between the legs at
every step; smoothed, the hem follows the mean of both legs, as hanging cloth does.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..body.model import SkinnedBody
from ..body.regions import LIMB_REGIONS, BodyFrame, body_frame, bone_regions, vertex_regions
from ..body.transfer import WeightTransferSettings, transfer_weights
from ..errors import BackendError
from . import topology

log = logging.getLogger(__name__)


class TemplateError(BackendError):
    """A garment template cannot be built from the inputs given."""


@dataclass(frozen=True)
class GarmentShape:
    """How a garment type sits on the body. Heights are fractions: of the torso (hip
    joints = 0, neck = 1) for torso cuts, of the leg (hip = 0, ankle = 1) for hems.

    Attributes:
        kind: ``"surface"`` (from the body's faces) or ``"ruled"`` (hanging rings).
        torso_bottom: surface: lowest torso height kept (negative = below the hips);
            None = the torso is not covered below ``torso_top``.
        torso_top: surface: highest torso height kept (1 = up to the neck bones).
        sleeve: surface: how far down the arm (0 shoulder, 1 wrist); None = no sleeves.
        leg: surface: how far down the leg (0 hip, 1 ankle); None = no legs.
        top: ruled: torso height of the top ring.
        hem: ruled: leg fraction of the bottom ring.
        flare_deg: ruled: least outward angle of the surface from vertical.
    """

    kind: str
    torso_bottom: float | None = None
    torso_top: float = 1.0
    sleeve: float | None = None
    leg: float | None = None
    top: float = 0.2
    hem: float = 0.5
    flare_deg: float = 5.0


GARMENT_SHAPES: dict[str, GarmentShape] = {
    "tshirt": GarmentShape("surface", torso_bottom=-0.12, sleeve=0.28),
    "long_sleeve": GarmentShape("surface", torso_bottom=-0.12, sleeve=0.92),
    "trousers": GarmentShape("surface", torso_bottom=-10.0, torso_top=0.2, leg=0.93),
    "shorts": GarmentShape("surface", torso_bottom=-10.0, torso_top=0.2, leg=0.4),
    "skirt": GarmentShape("ruled", top=0.2, hem=0.55, flare_deg=6.0),
    "flared_skirt": GarmentShape("ruled", top=0.2, hem=0.5, flare_deg=28.0),
    "dress": GarmentShape("ruled", top=0.62, hem=0.8, flare_deg=8.0),
}
"""Garment types the backend can build from a body (``"template"`` needs a mesh)."""


@dataclass(frozen=True)
class TemplateSettings:
    """Template resolution and fit.

    Attributes:
        target_edge_m: wanted mean edge length, metres (finer = slower, more detail).
        ease_m: distance of a tight garment from the skin, metres.
        loose_ease_m: least distance of a loose garment from the body, metres.
        weights: how skinning weights come from the body.
        loose_smoothing_m: length over which a loose garment's skinning weights are
            smoothed across its surface, metres (``smooth_weights``; 0 = not smoothed).
    """

    target_edge_m: float = 0.03
    ease_m: float = 0.008
    loose_ease_m: float = 0.015
    weights: WeightTransferSettings = WeightTransferSettings()
    loose_smoothing_m: float = 0.15

    def __post_init__(self):
        for name in ("target_edge_m", "ease_m", "loose_ease_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise TemplateError(f"template setting {name} must be > 0 metres; got {value!r}")
        if not (math.isfinite(self.loose_smoothing_m) and self.loose_smoothing_m >= 0):
            raise TemplateError("template setting loose_smoothing_m must be >= 0 metres; got "
                                f"{self.loose_smoothing_m!r}")


@dataclass(frozen=True, eq=False)
class GarmentTemplate:
    """A starting garment in the body's rest space.

    Attributes:
        vertices: (V, 3) float32 rest-space positions, metres.
        faces: (F, 3) int32, counter-clockwise seen from outside.
        weight_indices, weight_values: (V, K) int32 / float32 skinning weights over the
            body's bones (rows sum to 1).
        garment_type: a ``GARMENT_SHAPES`` key, or ``"template"`` for a user mesh.
        source: where it came from, e.g. ``"body-surface"``, ``"ruled"``, a file path.
    """

    vertices: np.ndarray
    faces: np.ndarray
    weight_indices: np.ndarray
    weight_values: np.ndarray
    garment_type: str
    source: str

    @property
    def vertex_count(self) -> int:
        return len(self.vertices)

    @property
    def face_count(self) -> int:
        return len(self.faces)


def build_template(body: SkinnedBody, garment_type: str,
                   settings: TemplateSettings | None = None) -> GarmentTemplate:
    """The template of ``garment_type`` for ``body`` (see the module docstring)."""
    settings = settings or TemplateSettings()
    if garment_type not in GARMENT_SHAPES:
        known = ", ".join(GARMENT_SHAPES)
        raise TemplateError(f"unknown garment type {garment_type!r}; expected one of {known}, "
                            "or a template mesh file")
    shape = GARMENT_SHAPES[garment_type]
    regions = bone_regions(body.bone_names)
    frame = body_frame(body, regions)
    if shape.kind == "surface":
        vertices, faces = _surface_garment(body, regions, frame, shape, settings)
        source = "body-surface"
    else:
        vertices, faces = _ruled_garment(body, regions, frame, shape, settings)
        source = "ruled"
    vertices, faces = topology.subdivide_to_edge_length(vertices, faces, settings.target_edge_m)
    smoothing = settings.loose_smoothing_m if shape.kind == "ruled" else 0.0
    return _with_weights(vertices, faces, body, settings, garment_type, source, smoothing)


def template_from_mesh(vertices: np.ndarray, faces: np.ndarray, body: SkinnedBody,
                       settings: TemplateSettings | None = None, source: str = "mesh"
                       ) -> GarmentTemplate:
    """A user's garment mesh (rest space, metres) as a template, weights from ``body``."""
    settings = settings or TemplateSettings()
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) < 3:
        raise TemplateError(f"{source}: vertices must be (V>=3, 3); got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise TemplateError(f"{source}: faces must be (F>=1, 3) triangles; got {faces.shape}")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise TemplateError(f"{source}: face indices must be in [0, {len(vertices)}); got "
                            f"[{faces.min()}, {faces.max()}]")
    if not np.isfinite(vertices).all():
        raise TemplateError(f"{source}: vertices contain NaN or infinity")
    areas = np.linalg.norm(topology.face_normals(vertices, faces, normalise=False), axis=1) / 2
    if (areas <= 1e-12).any():
        raise TemplateError(f"{source}: {(areas <= 1e-12).sum()} face(s) have zero area "
                            f"(first: face {int(np.argmax(areas <= 1e-12))})",
                            hint="Merge by distance and remove degenerate faces in Blender.")
    vertices, faces, _ = topology.compact(vertices, faces)
    return _with_weights(vertices, faces, body, settings, "template", source)


def load_template_mesh(path: Path | str, body: SkinnedBody,
                       settings: TemplateSettings | None = None) -> GarmentTemplate:
    """Read an OBJ or PLY garment (rest space, metres) and make it a template."""
    path = Path(path)
    if path.suffix.lower() not in (".obj", ".ply"):
        raise TemplateError(f"{path}: template meshes must be .obj or .ply; got {path.suffix!r}")
    if not path.is_file():
        raise TemplateError(f"{path}: template mesh not found")
    import trimesh

    try:
        mesh = trimesh.load(path, force="mesh", process=True)
    except Exception as exc:   # trimesh raises many types for malformed files
        raise TemplateError(f"{path}: cannot read the template mesh ({exc})") from exc
    if len(mesh.faces) == 0:
        raise TemplateError(f"{path}: the file has no faces")
    return template_from_mesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), body,
                              settings, source=str(path))


def smooth_weights(vertices: np.ndarray, faces: np.ndarray, indices: np.ndarray,
                   values: np.ndarray, bone_count: int, length_m: float,
                   max_influences: int) -> tuple[np.ndarray, np.ndarray]:
    """Skinning weights smoothed over the mesh: the screened Poisson solve
    ``(I + (length_m / h)^2 L) W = W0`` with ``L`` the mesh's graph Laplacian and ``h``
    its mean edge length, so features shorter than ``length_m`` fade and longer ones
    stay (the solve's kernel is about that wide, whatever the template's resolution).
    Rows still sum to one (the Laplacian of a constant is zero); the strongest
    ``max_influences`` bones are kept and renormalised.

    Args:
        indices, values: (V, K) sparse weights as ``transfer_weights`` gives them.
    Returns the smoothed (indices (V, K') int32, values (V, K') float32).
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    from ..body.model import sparse_weights

    count = len(vertices)
    dense = np.zeros((count, bone_count))
    np.add.at(dense, (np.repeat(np.arange(count), indices.shape[1]), indices.reshape(-1)),
              values.reshape(-1))
    used = np.flatnonzero(dense.any(axis=0))
    edges = topology.edges(faces)
    h = float(topology.edge_lengths(vertices, faces).mean())
    adjacency = sp.coo_matrix((np.ones(2 * len(edges)),
                               (np.concatenate([edges[:, 0], edges[:, 1]]),
                                np.concatenate([edges[:, 1], edges[:, 0]]))),
                              shape=(count, count)).tocsr()
    laplacian = sp.diags(np.asarray(adjacency.sum(axis=1)).ravel()) - adjacency
    system = (sp.identity(count) + (length_m / h) ** 2 * laplacian).tocsc()
    smoothed = np.zeros_like(dense)
    smoothed[:, used] = splu(system).solve(dense[:, used])
    return sparse_weights(np.clip(smoothed, 0.0, None), max_influences)


def _with_weights(vertices, faces, body, settings, garment_type, source,
                  smoothing_m: float = 0.0) -> GarmentTemplate:
    indices, values = transfer_weights(np.asarray(vertices, np.float32), body, settings.weights)
    if smoothing_m > 0:
        indices, values = smooth_weights(np.asarray(vertices, np.float64), faces, indices,
                                         values, body.bone_count, smoothing_m,
                                         settings.weights.max_influences)
    log.info("template %s from %s: %d vertices, %d faces", garment_type, source,
             len(vertices), len(faces))
    return GarmentTemplate(
        vertices=np.ascontiguousarray(vertices, np.float32),
        faces=np.ascontiguousarray(faces, np.int32),
        weight_indices=indices, weight_values=values, garment_type=garment_type, source=source)


def _limb_of(region: str) -> str | None:
    for limb, names in LIMB_REGIONS.items():
        if region in names:
            return limb
    return None


def _surface_garment(body, regions, frame: BodyFrame, shape: GarmentShape, settings):
    """The covered body faces, pushed out by ``ease_m`` along the body's normals."""
    rest = body.rest_vertices.astype(np.float64)
    labels, keys = vertex_regions(body, regions)
    torso_length = float(frame.height(frame.neck[None])[0])
    height = frame.height(rest) / torso_length
    keep = np.zeros(len(rest), bool)
    for index, key in enumerate(keys):
        member = labels == index
        if key is None or key.region == "head":
            continue
        if key.region == "torso":
            low = -np.inf if shape.torso_bottom is None else shape.torso_bottom
            keep |= member & (height >= low) & (height <= shape.torso_top)
            continue
        limb = _limb_of(key.region)
        reach = shape.sleeve if limb == "arm" else shape.leg
        if reach is None or key.side is None:
            continue
        keep |= member & (frame.limb_parameter(rest, limb, key.side) <= reach)
    faces = body.faces[keep[body.faces].all(axis=1)]
    if len(faces) == 0:
        raise TemplateError(f"body {body.source!r}: no body faces lie where this garment goes")
    # Keep the largest piece: the cuts can leave slivers (fingers, a toe) behind.
    labels = topology.face_components(faces, len(rest))
    faces = faces[labels == np.bincount(labels).argmax()]
    normals = topology.vertex_normals(rest, body.faces)
    vertices, faces, kept = topology.compact(rest + settings.ease_m * normals, faces)
    return vertices, faces


def _ruled_garment(body, regions, frame: BodyFrame, shape: GarmentShape, settings):
    """Rings from the top down to the hem, each enclosing the body's legs and hips."""
    rest = body.rest_vertices.astype(np.float64)
    labels, keys = vertex_regions(body, regions)
    trunk = {i for i, k in enumerate(keys)
             if k is not None and (k.region == "torso" or _limb_of(k.region) == "leg")}
    points = rest[np.isin(labels, list(trunk))]
    local = np.stack([(points - frame.hip_centre) @ axis
                      for axis in (frame.lateral, frame.front, frame.up)], axis=1)
    torso_length = float(frame.height(frame.neck[None])[0])
    leg_length = -float(np.mean([frame.height(frame.ankles[s][None])[0] for s in frame.ankles]))
    z_top, z_hem = shape.top * torso_length, -shape.hem * leg_length
    step = settings.target_edge_m
    band = max(step, 0.015)
    near_top = np.abs(local[:, 2] - z_top) < band
    if near_top.sum() < 8:
        raise TemplateError(f"body {body.source!r}: too few body vertices at the garment's top "
                            f"({near_top.sum()}) to fit a {shape.kind} garment")
    centre = local[near_top, :2].mean(axis=0)
    radial = local[:, :2] - centre
    radius, angle = np.linalg.norm(radial, axis=1), np.arctan2(radial[:, 1], radial[:, 0])
    top_radius = float(radius[near_top].mean())
    around = max(16, math.ceil(2 * math.pi * top_radius / step))
    down = max(2, math.ceil((z_top - z_hem) / step))
    bins = ((angle + math.pi) / (2 * math.pi) * around).astype(int) % around
    heights = np.linspace(z_top, z_hem, down + 1)
    slope = math.tan(math.radians(shape.flare_deg))
    rings = np.zeros((down + 1, around))
    for row, z in enumerate(heights):
        body_radius = _ring_extent(radius, bins, np.abs(local[:, 2] - z) < band, around)
        wanted = body_radius + settings.loose_ease_m
        if row > 0:
            wanted = np.maximum(wanted, rings[row - 1] + slope * (heights[row - 1] - z))
        rings[row] = wanted
    theta = (np.arange(around) + 0.5) / around * 2 * math.pi - math.pi
    xy = centre + rings[..., None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    local_vertices = np.concatenate(
        [xy, np.broadcast_to(heights[:, None, None], (down + 1, around, 1))], axis=2).reshape(-1, 3)
    vertices = (frame.hip_centre + local_vertices[:, :1] * frame.lateral
                + local_vertices[:, 1:2] * frame.front + local_vertices[:, 2:] * frame.up)
    faces = _ring_faces(down, around)
    # Outward = away from the ring axis; flip the winding if the grid came out inward.
    normals = topology.face_normals(vertices, faces)
    centres = vertices[faces].mean(axis=1)
    axis_point = frame.hip_centre + centre[0] * frame.lateral + centre[1] * frame.front
    outward = centres - axis_point
    outward -= (outward @ frame.up)[:, None] * frame.up
    if float((normals * outward).sum()) < 0:
        faces = faces[:, ::-1]
    return vertices, np.ascontiguousarray(faces, np.int32)


def _ring_extent(radius, bins, selected, around) -> np.ndarray:
    """(around,) largest body radius per angular bin in a height band, widened by one
    bin each way; bins with no body vertex borrow from their neighbours."""
    extent = np.full(around, np.nan)
    if selected.any():
        found = np.zeros(around)
        np.maximum.at(found, bins[selected], radius[selected])
        present = np.zeros(around, bool)
        present[bins[selected]] = True
        extent[present] = found[present]
    if np.isnan(extent).all():
        return np.zeros(around)
    known = np.flatnonzero(~np.isnan(extent))
    positions = np.arange(around)
    extent = np.interp(positions, known, extent[known], period=around)
    return np.maximum.reduce([np.roll(extent, -1), extent, np.roll(extent, 1)])


def _ring_faces(rows: int, around: int) -> np.ndarray:
    """Two triangles per quad of a (rows + 1) x around grid closed around its columns."""
    r, c = np.meshgrid(np.arange(rows), np.arange(around), indexing="ij")
    a = r * around + c
    b = r * around + (c + 1) % around
    d = (r + 1) * around + c
    e = (r + 1) * around + (c + 1) % around
    return np.concatenate([np.stack([a, d, b], -1).reshape(-1, 3),
                           np.stack([b, d, e], -1).reshape(-1, 3)])
