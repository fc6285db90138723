"""Triangulate a flat panel outline with near-equilateral triangles of a given edge length.

The outline's points are kept as they are (they are the seam vertices both sides of a
seam share). Inside, points of a triangular lattice with spacing ``h`` fill the panel,
except near the outline; Delaunay triangulation (scipy/Qhull) joins everything and the
triangles outside the outline are dropped. A few rounds of smoothing with
re-triangulation then even out the band along the outline, where the lattice meets
the outline's points: each inner point may move towards the apexes of equilateral
triangles over its opposite edges, and does so only if that raises the smallest
angle around it (``improve_min_angles``, one colour class of non-neighbours at a time).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import SynthError
from .flatten import inside_polygon, polygon_distance

CLEAR_OF_OUTLINE = 0.55
"""Inner lattice points closer than this many edge lengths to the outline are dropped."""


def signed_area(polygon: np.ndarray) -> float:
    """Signed area of a closed 2-D polygon (> 0: counter-clockwise)."""
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def mesh_polygon(outline: np.ndarray, edge: float, smoothing: int = 10,
                 where: str = "panel") -> tuple[np.ndarray, np.ndarray]:
    """Triangulate the inside of a counter-clockwise outline.

    Args:
        outline: (B, 2) points of the closed outline, counter-clockwise, spaced about
            ``edge`` apart.
        edge: wanted edge length (same units as the outline).
        smoothing: rounds of smoothing of the inner points.
        where: the panel's name, for messages.
    Returns:
        (points (N, 2), triangles (T, 3) int64): ``points[:B]`` is ``outline``
        unchanged; triangles are counter-clockwise and every outline segment is an edge
        of exactly one triangle.
    """
    outline = np.asarray(outline, np.float64)
    if signed_area(outline) <= 0:
        raise SynthError(f"{where}: panel outline is not counter-clockwise")
    n_outline = len(outline)
    inner = _lattice(outline, edge)
    points = np.concatenate([outline, inner])
    triangles = _triangulate(points, outline)
    for _ in range(smoothing):
        proposal = _smooth(points, triangles, n_outline)
        ok = np.zeros(len(points), bool)
        ok[n_outline:] = inside_polygon(proposal[n_outline:], outline) & (
            polygon_distance(proposal[n_outline:], outline) > 0.25 * edge)
        proposal[~ok] = points[~ok]
        points, changed = improve_min_angles(points, proposal, triangles)
        if not changed:
            break
        triangles = _triangulate(points, outline)
    _check(points, triangles, n_outline, where)
    return points, triangles


def triangle_min_angles(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(T,) smallest interior angle of each triangle, radians (2-D or 3-D points)."""
    p = points[triangles]
    out = np.full(len(triangles), np.inf)
    for k in range(3):
        u = p[:, (k + 1) % 3] - p[:, k]
        v = p[:, (k + 2) % 3] - p[:, k]
        cos = (u * v).sum(1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1),
                                          1e-30)
        out = np.minimum(out, np.arccos(np.clip(cos, -1.0, 1.0)))
    return out


def improve_min_angles(points: np.ndarray, proposal: np.ndarray, triangles: np.ndarray,
                       measure=None, valid=None) -> tuple[np.ndarray, bool]:
    """Move vertices to their proposed positions only where that raises the smallest
    angle of the triangles around them.

    Vertices are taken one colour class at a time (no two neighbours move together),
    so each decision sees its neighbours where they will be.

    Args:
        points, proposal: (N, D) current and proposed positions (equal = no move).
        measure: positions -> (T,) triangle quality to raise (default: smallest
            angle of ``points``-space triangles).
        valid: positions -> (T,) bool, triangles that are acceptable (e.g. not
            folded); a move that makes one invalid is refused.
    Returns:
        (new positions, whether any vertex moved).
    """
    measure = measure or (lambda pts: triangle_min_angles(pts, triangles))
    n = len(points)
    wants = np.flatnonzero(np.any(proposal != points, axis=1))
    if not len(wants):
        return points, False
    colour = _colouring(n, triangles)
    current = points.copy()
    changed = False
    vert_tri = np.repeat(np.arange(len(triangles)), 3)
    corner = triangles.reshape(-1)
    for c in np.unique(colour[wants]):
        movers = wants[colour[wants] == c]
        trial = current.copy()
        trial[movers] = proposal[movers]
        before, after = measure(current), measure(trial)
        if valid is not None:
            after = np.where(valid(trial), after, -np.inf)
        worst_before = np.full(n, np.inf)
        worst_after = np.full(n, np.inf)
        np.minimum.at(worst_before, corner, before[vert_tri])
        np.minimum.at(worst_after, corner, after[vert_tri])
        accept = movers[worst_after[movers] > worst_before[movers] + 1e-9]
        if len(accept):
            current[accept] = proposal[accept]
            changed = True
    return current, changed


def _colouring(n: int, triangles: np.ndarray) -> np.ndarray:
    """Greedy vertex colouring of the triangles' edge graph: (N,) colour per vertex, no
    edge joining two vertices of one colour."""
    from scipy.sparse import coo_matrix

    e = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    adj = coo_matrix((np.ones(len(e) * 2), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])),
                     shape=(n, n)).tocsr()
    indptr, indices = adj.indptr.tolist(), adj.indices.tolist()
    colour = [-1] * n
    for v in range(n):
        taken = {colour[u] for u in indices[indptr[v]:indptr[v + 1]]}
        c = 0
        while c in taken:
            c += 1
        colour[v] = c
    return np.asarray(colour)


def _lattice(outline: np.ndarray, edge: float) -> np.ndarray:
    lo, hi = outline.min(axis=0), outline.max(axis=0)
    dy = edge * math.sqrt(3) / 2
    rows = np.arange(lo[1] + dy / 2, hi[1], dy)
    pts = []
    for r, y in enumerate(rows):
        xs = np.arange(lo[0] + (edge / 2 if r % 2 else 0.0), hi[0] + edge, edge)
        pts.append(np.stack([xs, np.full(len(xs), y)], axis=1))
    if not pts:
        return np.zeros((0, 2))
    pts = np.concatenate(pts)
    pts = pts[inside_polygon(pts, outline)]
    return pts[polygon_distance(pts, outline) >= CLEAR_OF_OUTLINE * edge]


def _triangulate(points: np.ndarray, outline: np.ndarray) -> np.ndarray:
    from scipy.spatial import Delaunay

    tri = Delaunay(points).simplices.astype(np.int64)
    p = points[tri]
    cross = ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
             - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0]))
    tri = np.where((cross < 0)[:, None], tri[:, [0, 2, 1]], tri)
    keep = inside_polygon(points[tri].mean(axis=1), outline) & (np.abs(cross) > 1e-14)
    return tri[keep]


def _smooth(points: np.ndarray, triangles: np.ndarray, n_fixed: int) -> np.ndarray:
    """Each inner point moves to the mean of the positions that would make each of its
    triangles equilateral over the opposite edge (the apex of that edge's equilateral
    triangle, on the point's side), averaged with the mean of its neighbours. The
    equilateral targets straighten the triangles along the fixed outline, which plain
    Laplacian smoothing leaves skewed."""
    target = np.zeros_like(points)
    count = np.zeros(len(points))
    half_root3 = math.sqrt(3) / 2
    for k in range(3):
        i = triangles[:, k]
        j = triangles[:, (k + 1) % 3]
        m = triangles[:, (k + 2) % 3]
        d = points[m] - points[j]
        apex = (points[j] + points[m]) / 2 + half_root3 * np.stack([-d[:, 1], d[:, 0]], 1)
        np.add.at(target, i, apex + 0.5 * (points[j] + points[m]))
        np.add.at(count, i, 2)
    out = points.copy()
    free = (np.arange(len(points)) >= n_fixed) & (count > 0)
    out[free] = target[free] / count[free, None]
    return out


def _check(points: np.ndarray, triangles: np.ndarray, n_outline: int, where: str) -> None:
    e = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    key = np.sort(e, axis=1)
    uniq, counts = np.unique(key, axis=0, return_counts=True)
    border = uniq[counts == 1]
    wanted = np.sort(np.stack([np.arange(n_outline), (np.arange(n_outline) + 1) % n_outline],
                              axis=1), axis=1)
    wanted = np.unique(wanted, axis=0)
    same = len(border) == len(wanted) and np.array_equal(
        border[np.lexsort(border.T[::-1])], wanted[np.lexsort(wanted.T[::-1])])
    problems = []
    if not same:
        problems.append(f"the triangulation's border has {len(border)} edges, the outline "
                        f"{len(wanted)}")
    if (counts > 2).any():
        problems.append(f"{int((counts > 2).sum())} non-manifold edge(s)")
    unused = np.setdiff1d(np.arange(len(points)), triangles)
    if len(unused):
        problems.append(f"{len(unused)} point(s) in no triangle")
    if problems:
        raise SynthError(f"{where}: cannot triangulate the panel: {'; '.join(problems)}",
                         hint="try another --edge-m; this is a bug in the pattern generator")
