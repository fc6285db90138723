"""Flatten a region of a grid surface into the plane: the panel's sewing-pattern shape.

The region's grid cells are split into triangles and laid flat with the local/global
"as rigid as possible" parameterisation (Liu, Zhang, Xu, Gotsman and Gortler 2008, "A
local/global approach to mesh parameterization"): alternately fit each triangle's best
rotation to its current flat shape (2x2 SVD) and solve one sparse cotangent-Laplacian
system for all flat positions. Developable regions (cones, cylinders: most of a skirt,
a sleeve) come out isometric; curved ones (over the shoulder) spread their stretch.

The result maps both ways between the surface parameters (alpha, m) and the flat
coordinates (metres): ``forward`` for the panel outline, ``inverse`` for the interior
points the mesher places.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .surfaces import TWO_PI, GridSurface


@dataclass(frozen=True, eq=False)
class Flattening:
    """A flattened patch of a GridSurface.

    Attributes:
        alpha0, m0: parameters of sub-grid node (0, 0): radians (unwrapped), metres.
        d_alpha, d_m: sub-grid steps, radians and metres.
        shape: (na, nm) sub-grid nodes.
        flat: (na, nm, 2) flat position of each node, metres (NaN where unused).
        triangles: (T, 3) node indices (flattened, row-major over (na, nm)) of the
            triangles that were laid flat; counter-clockwise in the flat plane.
    """

    alpha0: float
    m0: float
    d_alpha: float
    d_m: float
    shape: tuple[int, int]
    flat: np.ndarray
    triangles: np.ndarray

    def forward(self, alpha: np.ndarray, m: np.ndarray) -> np.ndarray:
        """(N, 2) flat positions of surface parameters (bilinear in the sub-grid)."""
        fa = (np.asarray(alpha) - self.alpha0) / self.d_alpha
        fm = (np.asarray(m) - self.m0) / self.d_m
        na, nm = self.shape
        k = np.clip(np.floor(fa).astype(np.int64), 0, na - 2)
        j = np.clip(np.floor(fm).astype(np.int64), 0, nm - 2)
        t = (fa - k)[:, None]
        s = (fm - j)[:, None]
        f = self.flat
        out = ((1 - t) * ((1 - s) * f[k, j] + s * f[k, j + 1])
               + t * ((1 - s) * f[k + 1, j] + s * f[k + 1, j + 1]))
        return out

    def inverse(self, flat_points: np.ndarray) -> np.ndarray:
        """(N, 2) surface parameters (alpha unwrapped, m) of flat positions.

        Each point is located in the flattened triangle that contains it (or, for a
        point just outside the patch, the nearest one) and its parameters are
        interpolated barycentrically.
        """
        from scipy.spatial import cKDTree

        flat = self.flat.reshape(-1, 2)
        tri = flat[self.triangles]                                   # (T, 3, 2)
        tree = cKDTree(tri.mean(axis=1))
        k = min(12, len(tri))
        _, cand = tree.query(flat_points, k=k)
        cand = cand.reshape(len(flat_points), k)
        bary = _barycentric(flat_points[:, None, :], tri[cand])        # (N, k, 3)
        worst = bary.min(axis=2)
        best = np.argmax(worst, axis=1)
        chosen = cand[np.arange(len(flat_points)), best]
        b = bary[np.arange(len(flat_points)), best]
        b = np.clip(b, 0.0, None)
        b /= b.sum(axis=1, keepdims=True)
        na, nm = self.shape
        nodes = self.triangles[chosen]                                 # (N, 3)
        alpha = self.alpha0 + (nodes // nm) * self.d_alpha
        m = self.m0 + (nodes % nm) * self.d_m
        return np.stack([(b * alpha).sum(axis=1), (b * m).sum(axis=1)], axis=1)


def _barycentric(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    v0, v1, v2 = b - a, c - a, p - a
    d00 = (v0 * v0).sum(-1)
    d01 = (v0 * v1).sum(-1)
    d11 = (v1 * v1).sum(-1)
    d20 = (v2 * v0).sum(-1)
    d21 = (v2 * v1).sum(-1)
    den = d00 * d11 - d01 * d01
    den = np.where(np.abs(den) < 1e-30, 1e-30, den)
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    return np.stack([1 - v - w, v, w], axis=-1)


def flatten_region(surface: GridSurface, outline: np.ndarray, outward: int,
                   cell_m: float = 0.012, pad_m: float = 0.03,
                   iterations: int = 12) -> Flattening:
    """Lay flat the part of ``surface`` around a closed outline.

    Args:
        surface: the surface the panel is cut from.
        outline: (K, 2) the panel outline in surface parameters (alpha unwrapped
            into one window, m), closed implicitly.
        outward: +1 if d/dalpha x d/dm points away from the body on this surface, -1
            otherwise; the flat layout is oriented so that counter-clockwise in the
            plane means outward in 3D.
        cell_m: about how big the flattened cells are, metres.
        pad_m: cells within this distance of the outline are flattened too.
        iterations: local/global rounds.
    """
    n_angles = surface.n_angles
    grid_da = TWO_PI / n_angles
    a_lo, a_hi = outline[:, 0].min(), outline[:, 0].max()
    m_lo, m_hi = outline[:, 1].min(), outline[:, 1].max()
    # angular step: about cell_m at the panel's typical radius of curvature
    row = surface.at(np.linspace(a_lo, a_hi, 64), np.full(64, 0.5 * (m_lo + m_hi)))
    arc = float(np.linalg.norm(np.diff(row, axis=0), axis=1).sum())
    per_rad = arc / max(a_hi - a_lo, 1e-9)
    step_a = max(1, int(round(cell_m / max(per_rad * grid_da, 1e-9))))
    step_m = max(1, int(round(cell_m / surface.dm)))
    d_alpha = step_a * grid_da
    d_m = step_m * surface.dm
    pad_a = pad_m / max(per_rad, 1e-9)
    i_lo = math.floor((a_lo - pad_a) / d_alpha)
    i_hi = math.ceil((a_hi + pad_a) / d_alpha)
    i_lo = max(i_lo, math.floor(a_hi / d_alpha) - n_angles // step_a)   # at most one turn
    j_lo = max(0, math.floor((m_lo - pad_m) / d_m))
    j_hi = min((surface.n_m - 1) // step_m, math.ceil((m_hi + pad_m) / d_m))
    alpha = np.arange(i_lo, i_hi + 1) * d_alpha
    m = np.arange(j_lo, j_hi + 1) * d_m
    na, nm = len(alpha), len(m)
    A, M = np.meshgrid(alpha, m, indexing="ij")
    xyz = surface.at(A.ravel(), M.ravel())

    # cells to flatten: centre inside the outline, or near it (in flat-ish metres)
    centre_a = (alpha[:-1] + alpha[1:]) / 2
    centre_m = (m[:-1] + m[1:]) / 2
    CA, CM = np.meshgrid(centre_a, centre_m, indexing="ij")
    metric = np.array([per_rad, 1.0])
    cells = np.stack([CA.ravel(), CM.ravel()], axis=1) * metric
    poly = outline * metric
    keep = inside_polygon(cells, poly) | (polygon_distance(cells, poly) <= pad_m)
    keep = keep.reshape(na - 1, nm - 1)
    k_idx, j_idx = np.nonzero(keep)
    n00 = k_idx * nm + j_idx
    n10 = (k_idx + 1) * nm + j_idx
    n01 = k_idx * nm + j_idx + 1
    n11 = (k_idx + 1) * nm + j_idx + 1
    # (alpha, m) -> (x, y) with y = outward * m keeps counter-clockwise = outward
    if outward > 0:
        tris = np.concatenate([np.stack([n00, n10, n11], 1), np.stack([n00, n11, n01], 1)])
    else:
        tris = np.concatenate([np.stack([n00, n11, n10], 1), np.stack([n00, n01, n11], 1)])
    used = np.unique(tris)

    # initial layout: arc length along each row (from the middle column), outward * m
    grid_xyz = xyz.reshape(na, nm, 3)
    seg = np.linalg.norm(np.diff(grid_xyz, axis=0), axis=2)             # (na-1, nm)
    x0 = np.concatenate([np.zeros((1, nm)), np.cumsum(seg, axis=0)])
    x0 -= x0[na // 2]
    init = np.stack([x0, outward * M], axis=2).reshape(-1, 2)

    flat = np.full((na * nm, 2), np.nan)
    flat[used] = _arap(xyz, tris, init, used, iterations)[used]
    return Flattening(alpha0=float(alpha[0]), m0=float(m[0]), d_alpha=d_alpha, d_m=d_m,
                      shape=(na, nm), flat=flat.reshape(na, nm, 2), triangles=tris)


def _arap(xyz: np.ndarray, tris: np.ndarray, init: np.ndarray, used: np.ndarray,
          iterations: int) -> np.ndarray:
    """Local/global ARAP parameterisation of a triangle mesh (see the module docstring).

    The local step's best rotation of a 2x2 matrix is closed-form (polar
    decomposition in 2-D), so no per-triangle SVD is needed."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import splu

    p = xyz[tris]                                                      # (T, 3, 3)
    e1 = p[:, 1] - p[:, 0]
    e2 = p[:, 2] - p[:, 0]
    l1 = np.linalg.norm(e1, axis=1)
    ax = e1 / np.maximum(l1, 1e-20)[:, None]
    a = (e2 * ax).sum(1)
    b = np.linalg.norm(e2 - a[:, None] * ax, axis=1)
    local = np.zeros((len(tris), 3, 2))                                # isometric 2-D copy
    local[:, 1, 0] = l1
    local[:, 2, 0] = a
    local[:, 2, 1] = b
    # cotangent of the angle at each corner; edge (i, j) is opposite corner k
    cot = np.zeros((len(tris), 3))
    for k in range(3):
        i, j = (k + 1) % 3, (k + 2) % 3
        u = local[:, i] - local[:, k]
        v = local[:, j] - local[:, k]
        cross = np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0])
        cot[:, k] = (u * v).sum(1) / np.maximum(cross, 1e-20)
    cot = np.clip(cot, 1e-3, 1e3)
    rows, cols, vals = [], [], []
    for k in range(3):
        i, j = tris[:, (k + 1) % 3], tris[:, (k + 2) % 3]
        w = cot[:, k]
        rows += [i, j, i, j]
        cols += [i, j, j, i]
        vals += [w, w, -w, -w]
    n = len(xyz)
    lap = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                     shape=(n, n)).tocsc()
    # unknowns: used nodes except the first (pinned: fixes the translation)
    free = used[1:]
    pinned = used[0]
    index = np.full(n, -1)
    index[free] = np.arange(len(free))
    solver = splu(lap[free][:, free].tocsc())
    coupling = lap[free][:, [pinned]]
    u = init.copy()
    for _ in range(iterations):
        # local: the best rotation of each triangle onto its current flat shape
        cov = np.zeros((len(tris), 2, 2))
        for k in range(3):
            i, j = (k + 1) % 3, (k + 2) % 3
            du = u[tris[:, i]] - u[tris[:, j]]
            dx = local[:, i] - local[:, j]
            cov += cot[:, k, None, None] * du[:, :, None] * dx[:, None, :]
        # the rotation R maximising trace(R^T cov) has angle atan2(c10 - c01, c00 + c11)
        angle = np.arctan2(cov[:, 1, 0] - cov[:, 0, 1], cov[:, 0, 0] + cov[:, 1, 1])
        cos, sin = np.cos(angle), np.sin(angle)
        rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1)   # (T, 2, 2)
        # global: one Laplacian solve for all flat positions
        rhs = np.zeros((n, 2))
        for k in range(3):
            ci, cj = (k + 1) % 3, (k + 2) % 3
            d = np.einsum("tab,tb->ta", rot, local[:, ci] - local[:, cj]) * cot[:, k, None]
            for axis in range(2):
                rhs[:, axis] += (np.bincount(tris[:, ci], d[:, axis], minlength=n)
                                 - np.bincount(tris[:, cj], d[:, axis], minlength=n))
        b = rhs[free] - coupling @ u[[pinned]]
        u[free] = np.stack([solver.solve(b[:, 0]), solver.solve(b[:, 1])], axis=1)
    return u


def inside_polygon(points: np.ndarray, polygon: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """(N,) whether each 2-D point lies inside the closed polygon (even-odd rule)."""
    a = polygon[None]
    b = np.roll(polygon, -1, axis=0)[None]
    out = np.empty(len(points), bool)
    for start in range(0, len(points), chunk):
        p = points[start:start + chunk, None, :]
        crosses = (a[..., 1] > p[..., 1]) != (b[..., 1] > p[..., 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = a[..., 0] + (p[..., 1] - a[..., 1]) * (b[..., 0] - a[..., 0]) / (
                b[..., 1] - a[..., 1])
        out[start:start + chunk] = (crosses & (p[..., 0] < x_at)).sum(axis=1) % 2 == 1
    return out


def polygon_distance(points: np.ndarray, polygon: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """(N,) distance from each 2-D point to the nearest edge of the closed polygon."""
    a = polygon[None]
    ab = np.roll(polygon, -1, axis=0)[None] - a
    length2 = np.maximum((ab * ab).sum(-1), 1e-30)
    out = np.empty(len(points))
    for start in range(0, len(points), chunk):
        ap = points[start:start + chunk, None, :] - a
        t = np.clip((ap * ab).sum(-1) / length2, 0, 1)
        d = ap - t[..., None] * ab
        out[start:start + chunk] = np.sqrt((d * d).sum(-1)).min(axis=1)
    return out
