"""Panels cut from garment surfaces, meshed, sewn together and laid out in UV space.

A panel is a region of one ``GridSurface``'s (alpha, m) plane bounded by a loop of
``Curve`` s. A curve used by two panels (or twice by one tube-shaped panel) is a
seam: it is resampled once, at the target edge length along its 3-D arc length, and
both sides take the same points, so seam vertex ``i`` of one panel and seam vertex
``i`` of the other coincide in 3-D (to well under a millimetre: curves between two
surfaces are interpolated on each) and form one sewing pair.

Each panel is laid flat (``backend.synthetic.flatten``), triangulated in the plane
(``backend.synthetic.mesher``) and its inner points are mapped back onto the surface;
there the triangles are improved in 3-D (tangential smoothing that only accepts moves
raising the smallest angle, then intrinsic Delaunay edge flips), since the flat layout
stretches curved parts a little. The flat layouts, rotated so that the garment's up
is +v and packed side by side at one common scale, are the UVs (and the ground-truth
texture's layout).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import SynthError
from .flatten import flatten_region
from .mesher import improve_min_angles, mesh_polygon, signed_area, triangle_min_angles
from .surfaces import TWO_PI, GridSurface


@dataclass(eq=False)
class Curve:
    """A panel boundary curve, known on one or more surfaces.

    Attributes:
        name: unique within a garment, e.g. ``"side.L"``, ``"armhole.L.front"``.
        params: surface name -> (K, 2) float64 parameters (alpha continuous along the
            curve, m) of the curve's K knots on that surface.
        points: (K, 3) the knots in the garment frame (on the first surface).
    """

    name: str
    params: dict[str, np.ndarray]
    points: np.ndarray
    _resampled: dict = field(default_factory=dict, repr=False)

    @classmethod
    def on(cls, name: str, surface: GridSurface, alpha, m) -> Curve:
        alpha = np.broadcast_to(np.asarray(alpha, np.float64), np.shape(m) or np.shape(alpha))
        m = np.broadcast_to(np.asarray(m, np.float64), alpha.shape)
        params = np.stack([alpha, m], axis=1).astype(np.float64)
        return cls(name=name, params={surface.name: params}, points=surface.at(alpha, m))

    @property
    def length(self) -> float:
        return float(np.linalg.norm(np.diff(self.points, axis=0), axis=1).sum())

    def resampled(self, edge: float) -> dict[str, np.ndarray]:
        """Surface name -> (n + 1, 2) parameters of the curve cut into n = round(length /
        edge) (at least 1) pieces of equal 3-D arc length; the same n for every surface."""
        if edge not in self._resampled:
            step = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
            s = np.concatenate([[0.0], np.cumsum(step)])
            n = max(1, int(round(s[-1] / edge)))
            t = np.linspace(0.0, s[-1], n + 1)
            self._resampled[edge] = {
                name: np.stack([np.interp(t, s, p[:, 0]), np.interp(t, s, p[:, 1])], axis=1)
                for name, p in self.params.items()}
        return self._resampled[edge]


@dataclass(frozen=True)
class LoopEdge:
    """One curve of a panel outline, walked forwards or backwards.

    ``turns`` shifts the curve's alpha by whole turns to place it in the panel's
    window; None picks the shift that brings it closest to the panel's centre angle.
    """

    curve: Curve
    reverse: bool = False
    turns: int | None = None


@dataclass(frozen=True, eq=False)
class PanelSpec:
    """A panel to cut: its surface, its outline (a closed loop of curves, walked
    counter-clockwise seen from outside the garment or clockwise: either works) and
    the angle its window is centred on."""

    name: str
    surface: GridSurface
    outward: int
    loop: tuple[LoopEdge, ...]
    alpha_centre: float


@dataclass(frozen=True, eq=False)
class PanelMesh:
    """A meshed panel.

    Attributes:
        vertices: (N, 3) float64 garment-frame positions, metres.
        flat: (N, 2) float64 flat (pattern) positions, metres; counter-clockwise
            triangles in this plane face away from the body in 3-D.
        params: (N, 2) surface parameters (alpha, m).
        triangles: (T, 3) int64.
        curve_vertices: curve name -> list of (n + 1,) vertex index arrays, one per use
            of the curve by this panel, ordered along the curve's own direction.
    """

    name: str
    vertices: np.ndarray
    flat: np.ndarray
    params: np.ndarray
    triangles: np.ndarray
    curve_vertices: dict[str, list[np.ndarray]]


def mesh_panel(spec: PanelSpec, edge: float) -> PanelMesh:
    """Outline, flatten, triangulate and map back one panel (see the module docstring)."""
    surface = spec.surface
    pieces, owners = [], []
    for entry in spec.loop:
        params = entry.curve.resampled(edge).get(surface.name)
        if params is None:
            raise SynthError(f"{spec.name}: curve {entry.curve.name!r} is not on surface "
                             f"{surface.name!r}")
        turns = entry.turns
        if turns is None:
            turns = int(round((spec.alpha_centre - params[:, 0].mean()) / TWO_PI))
        params = params + np.array([turns * TWO_PI, 0.0])
        order = np.arange(len(params))[::-1] if entry.reverse else np.arange(len(params))
        pieces.append(params[order])
        owners.append((entry.curve.name, order))
    # consecutive curves must meet: each piece's last point is the next one's first
    for k, piece in enumerate(pieces):
        nxt = pieces[(k + 1) % len(pieces)]
        gap = np.linalg.norm(surface.at(piece[-1:, 0], piece[-1:, 1])
                             - surface.at(nxt[:1, 0], nxt[:1, 1]))
        if gap > 1e-3:
            raise SynthError(f"{spec.name}: outline curves {owners[k][0]!r} and "
                             f"{owners[(k + 1) % len(pieces)][0]!r} do not meet "
                             f"({gap * 1000:.1f} mm apart)")
    outline_params = np.concatenate([p[:-1] for p in pieces])
    # flattened cells a few times smaller than the triangles are plenty (the surface
    # is smooth at that scale)
    flattening = flatten_region(surface, outline_params, spec.outward,
                                cell_m=float(np.clip(edge / 3, 0.008, 0.02)))
    outline = flattening.forward(outline_params[:, 0], outline_params[:, 1])
    if not np.isfinite(outline).all():
        raise SynthError(f"{spec.name}: the panel outline leaves its flattened patch")
    reverse = signed_area(outline) < 0
    if reverse:   # walk the outline counter-clockwise; the curve bookkeeping follows
        outline = outline[::-1]
        outline_params = outline_params[::-1]
    flat, triangles = mesh_polygon(outline, edge, where=spec.name)
    n_outline = len(outline)
    params = np.concatenate([outline_params, flattening.inverse(flat[n_outline:])])
    params = relax_on_surface(surface, params, triangles, n_outline)
    vertices = surface.at(params[:, 0], params[:, 1])
    flat[n_outline:] = flattening.forward(params[n_outline:, 0], params[n_outline:, 1])
    triangles = flip_to_delaunay(vertices, flat, triangles)

    # outline position of each curve's resampled points
    curve_vertices: dict[str, list[np.ndarray]] = {}
    start = 0
    for (name, order), piece in zip(owners, pieces, strict=True):
        positions = (start + np.arange(len(piece))) % n_outline
        if reverse:
            positions = (n_outline - 1 - positions) % n_outline
        idx = np.empty(len(piece), np.int64)
        idx[order] = positions
        curve_vertices.setdefault(name, []).append(idx)
        start += len(piece) - 1
    return PanelMesh(name=spec.name, vertices=vertices, flat=flat, params=params,
                     triangles=triangles, curve_vertices=curve_vertices)


def relax_on_surface(surface: GridSurface, params: np.ndarray, triangles: np.ndarray,
                     n_fixed: int, rounds: int = 8, step: float = 0.6) -> np.ndarray:
    """Improve the triangles in 3-D: each inner vertex may move part of the way towards
    the mean of its neighbours, projected onto the surface's tangent plane and taken
    back to surface parameters (Gauss-Newton on ``surface.at``), and does so only if
    that raises the smallest 3-D angle around it without folding a triangle in the
    parameter plane. Evens out the triangles where the flat layout is stretched."""
    params = params.copy()
    e = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    n = len(params)
    free = np.arange(n) >= n_fixed
    if not free.any():
        return params
    metric = _param_metric(surface, params)
    orient0 = np.sign(_signed_areas(params * metric, triangles))

    def quality(pr):
        return triangle_min_angles(surface.at(pr[:, 0], pr[:, 1]), triangles)

    def unfolded(pr):
        return np.sign(_signed_areas(pr * metric, triangles)) == orient0

    h = 1e-5
    for _ in range(rounds):
        p3 = surface.at(params[:, 0], params[:, 1])
        total = np.zeros((n, 3))
        count = np.zeros(n)
        for a, b in ((0, 1), (1, 0)):
            np.add.at(total, e[:, a], p3[e[:, b]])
            np.add.at(count, e[:, a], 1)
        delta = np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None] - p3, 0.0)
        pa, pm = params[free, 0], params[free, 1]
        da = (surface.at(pa + h, pm) - surface.at(pa - h, pm)) / (2 * h)
        dmm = (surface.at(pa, pm + h) - surface.at(pa, pm - h)) / (2 * h)
        jac = np.stack([da, dmm], axis=2)                               # (k, 3, 2)
        jtj = np.einsum("kia,kib->kab", jac, jac)
        jtd = np.einsum("kia,ki->ka", jac, delta[free])
        det = jtj[:, 0, 0] * jtj[:, 1, 1] - jtj[:, 0, 1] ** 2
        ok = det > 1e-18
        inv = np.zeros_like(jtj)
        inv[ok, 0, 0], inv[ok, 1, 1] = jtj[ok, 1, 1] / det[ok], jtj[ok, 0, 0] / det[ok]
        inv[ok, 0, 1] = inv[ok, 1, 0] = -jtj[ok, 0, 1] / det[ok]
        proposal = params.copy()
        proposal[free] += step * np.einsum("kab,kb->ka", inv, jtd)
        params, changed = improve_min_angles(params, proposal, triangles, quality, unfolded)
        if not changed:
            break
    return params


def flip_to_delaunay(vertices: np.ndarray, flat: np.ndarray, triangles: np.ndarray,
                     passes: int = 20) -> np.ndarray:
    """Flip inner edges whose two opposite angles (in 3-D) sum to more than 180 degrees
    (intrinsic Delaunay flips: they raise the smallest angles where the flat layout
    distorts the 3-D shape), as long as both new triangles stay counter-clockwise in
    the flat layout and the new edge does not exist yet."""
    tri = triangles.copy()
    for _ in range(passes):
        a = tri[:, [1, 2, 0]].reshape(-1)      # half-edge k of triangle t: (v[k+1], v[k+2])
        b = tri[:, [2, 0, 1]].reshape(-1)
        c = tri.reshape(-1)                    # ... opposite v[k]
        t_of = np.repeat(np.arange(len(tri)), 3)
        key = np.minimum(a, b) * len(vertices) + np.maximum(a, b)
        order = np.argsort(key, kind="stable")
        ks = key[order]
        pair = np.flatnonzero(ks[1:] == ks[:-1])
        h1, h2 = order[pair], order[pair + 1]
        angle1 = _corner_angle(vertices, c[h1], a[h1], b[h1])
        angle2 = _corner_angle(vertices, c[h2], a[h2], b[h2])
        excess = angle1 + angle2 - math.pi
        cand = np.flatnonzero(excess > 1e-6)
        if not len(cand):
            break
        cand = cand[np.argsort(-excess[cand], kind="stable")]
        existing = set(key.tolist())
        used = np.zeros(len(tri), bool)
        flipped = 0
        for k in cand:
            t1, t2 = t_of[h1[k]], t_of[h2[k]]
            if used[t1] or used[t2]:
                continue
            # t1 walks a -> b with c opposite; t2 walks b -> a with d opposite
            va, vb, vc = a[h1[k]], b[h1[k]], c[h1[k]]
            vd = c[h2[k]]
            new_key = min(vc, vd) * len(vertices) + max(vc, vd)
            if new_key in existing:
                continue
            n1, n2 = np.array([va, vd, vc]), np.array([vd, vb, vc])
            if _signed_areas(flat, np.stack([n1, n2])).min() <= 1e-14:
                continue
            tri[t1], tri[t2] = n1, n2
            used[t1] = used[t2] = True
            existing.add(new_key)
            flipped += 1
        if not flipped:
            break
    return tri


def _corner_angle(vertices: np.ndarray, at: np.ndarray, p: np.ndarray, q: np.ndarray
                  ) -> np.ndarray:
    u = vertices[p] - vertices[at]
    v = vertices[q] - vertices[at]
    cos = (u * v).sum(1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1),
                                      1e-30)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def _param_metric(surface: GridSurface, params: np.ndarray) -> np.ndarray:
    """(2,) scale of alpha and m to about metres (for orientation tests)."""
    p = surface.at(params[:, 0], params[:, 1])
    q = surface.at(params[:, 0] + 1e-3, params[:, 1])
    per_rad = float(np.median(np.linalg.norm(q - p, axis=1))) / 1e-3
    return np.array([max(per_rad, 1e-6), 1.0])


def _signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    p = points[triangles]
    return ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
            - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0]))


# ---------------------------------------------------------------- layout


def orient_up(mesh: PanelMesh) -> np.ndarray:
    """(N, 2) the panel's flat layout rotated so that the garment's up (+z) points to
    +v, centred on its bounding box. Rotation only: never mirrored."""
    flat = mesh.flat - mesh.flat.mean(axis=0)
    # least-squares gradient of height over the flat layout
    design = np.concatenate([flat, np.ones((len(flat), 1))], axis=1)
    grad = np.linalg.lstsq(design, mesh.vertices[:, 2], rcond=None)[0][:2]
    angle = math.atan2(grad[1], grad[0]) if np.linalg.norm(grad) > 1e-9 else math.pi / 2
    turn = math.pi / 2 - angle
    c, s = math.cos(turn), math.sin(turn)
    out = flat @ np.array([[c, s], [-s, c]])
    return out - (out.min(axis=0) + out.max(axis=0)) / 2


def pack_uv(layouts: list[np.ndarray], margin: float = 0.01) -> list[np.ndarray]:
    """Place flat layouts (metres, each centred) side by side in [0, 1]^2 at one common
    scale, ``margin`` (UV units) around and between them, as large as fits.

    Shelf packing, tallest first: rows of panels left to right, rows bottom to top.
    """
    sizes = np.array([l.max(axis=0) - l.min(axis=0) for l in layouts])
    order = np.argsort(-sizes[:, 1], kind="stable")

    def place(scale: float):
        x = y = margin
        row_h = 0.0
        spots = {}
        for k in order:
            w, h = sizes[k] * scale
            if x + w + margin > 1.0 and x > margin:
                x, y = margin, y + row_h + margin
                row_h = 0.0
            spots[k] = (x, y)
            x += w + margin
            row_h = max(row_h, h)
        fits = y + row_h + margin <= 1.0 and all(
            spots[k][0] + sizes[k, 0] * scale + margin <= 1.0 + 1e-12 for k in order)
        return fits, spots

    lo, hi = 0.0, 1.0 / max(float(sizes.max()), 1e-9)
    for _ in range(50):
        mid = (lo + hi) / 2
        if place(mid)[0]:
            lo = mid
        else:
            hi = mid
    scale = lo
    _, spots = place(scale)
    out = []
    for k, layout in enumerate(layouts):
        corner = layout.min(axis=0)
        out.append((layout - corner) * scale + np.array(spots[k]))
    return out


@dataclass(frozen=True, eq=False)
class Pattern:
    """A garment made of meshed, sewn panels (arrays in the garment frame).

    Attributes:
        vertices: (V, 3) float64 positions, metres; seam vertices exist once per panel.
        faces: (F, 3) int64, counter-clockwise seen from outside the garment.
        uv: (V, 2) float64 in [0, 1]: the packed panel layouts, v up.
        flat: (V, 2) float64 each panel's own flat layout, metres.
        face_panel: (F,) int64 panel index of each face; vertex_panel: (V,) likewise.
        panel_names: (P,) names.
        sew_pairs: (S, 2) int64 vertex pairs to sew (different panels, or the two
            sides of one tube).
        curve_vertices: curve name -> list of vertex index arrays (global), one per use.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    flat: np.ndarray
    face_panel: np.ndarray
    vertex_panel: np.ndarray
    panel_names: tuple[str, ...]
    sew_pairs: np.ndarray
    curve_vertices: dict[str, list[np.ndarray]]
    uv_scale: float


def assemble(meshes: list[PanelMesh], margin: float = 0.01) -> Pattern:
    """Join meshed panels into one Pattern: global indices, sewing pairs, packed UVs."""
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes])
    curve_vertices: dict[str, list[np.ndarray]] = {}
    for mesh, off in zip(meshes, offsets[:-1], strict=True):
        for name, uses in mesh.curve_vertices.items():
            curve_vertices.setdefault(name, []).extend(u + off for u in uses)
    pairs = []
    for name, uses in curve_vertices.items():
        if len(uses) == 2:
            pairs.append(np.stack(uses, axis=1))
        elif len(uses) > 2:
            raise SynthError(f"curve {name!r} bounds {len(uses)} panels; a seam joins two")
    sew = (np.unique(np.sort(np.concatenate(pairs), axis=1), axis=0)
           if pairs else np.zeros((0, 2), np.int64))
    sew = sew[sew[:, 0] != sew[:, 1]]
    layouts = [orient_up(m) for m in meshes]
    packed = pack_uv(layouts, margin)
    sizes = [l.max(axis=0) - l.min(axis=0) for l in layouts]
    packed_sizes = [p.max(axis=0) - p.min(axis=0) for p in packed]
    k = int(np.argmax([s[0] for s in sizes]))
    scale = float(packed_sizes[k][0] / max(sizes[k][0], 1e-12))
    return Pattern(
        vertices=np.concatenate([m.vertices for m in meshes]),
        faces=np.concatenate([m.triangles + off for m, off in zip(meshes, offsets, strict=False)]),
        uv=np.concatenate(packed),
        flat=np.concatenate([m.flat for m in meshes]),
        face_panel=np.concatenate([np.full(len(m.triangles), i) for i, m in enumerate(meshes)]),
        vertex_panel=np.concatenate([np.full(len(m.vertices), i) for i, m in enumerate(meshes)]),
        panel_names=tuple(m.name for m in meshes),
        sew_pairs=sew.astype(np.int64),
        curve_vertices=curve_vertices,
        uv_scale=scale,
    )
