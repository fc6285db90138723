"""Surface sampling and exact closest points on triangle meshes, for the metrics.

Meshes are ``vertices`` ``(V, 3)`` float (metres) and ``faces`` ``(F, 3)`` integer
vertex indices; numpy arrays or torch tensors (copied to float64 numpy; this layer
never imports torch). Results are float64 numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
from scipy.spatial import cKDTree

from .errors import EvalError

_KNN = 8  # faces whose exact distance gives each query's first upper bound
_CHUNK = 4096  # queries per batch of the first (k nearest) bound
_MAX_PAIRS = 1_000_000  # (query, face) candidate pairs tested at once: bounds the memory


def as_array(value, name: str) -> np.ndarray:
    """``value`` as a numpy array; torch tensors are detached and copied to the host."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as exc:
        raise EvalError(f"{name} must be an array; got {type(value).__name__}") from exc


def mesh_arrays(vertices, faces, name: str = "mesh") -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(vertices float64 (V, 3), faces int64 (F, 3))``; ``name`` prefixes
    error messages (e.g. ``"prediction frame 12"``)."""
    v = as_array(vertices, f"{name} vertices")
    f = as_array(faces, f"{name} faces")
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise EvalError(f"{name} vertices must have shape (V, 3); got {v.shape}")
    if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
        raise EvalError(f"{name} vertices must be numeric; got dtype {v.dtype}")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise EvalError(f"{name} faces must have shape (F, 3) with F >= 1; got {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        raise EvalError(f"{name} faces must be integer vertex indices; got dtype {f.dtype}")
    v = v.astype(np.float64)
    f = f.astype(np.int64)
    if not np.isfinite(v).all():
        bad = np.flatnonzero(~np.isfinite(v).all(axis=1))
        raise EvalError(f"{name} vertices must be finite; vertex {int(bad[0])} is not "
                        f"({len(bad)} non-finite)")
    if f.min() < 0 or f.max() >= len(v):
        bad = np.flatnonzero(((f < 0) | (f >= len(v))).any(axis=1))
        raise EvalError(f"{name} face {int(bad[0])} indexes a vertex outside [0, {len(v)}): "
                        f"{f[bad[0]].tolist()}")
    return v, f


def _face_frames(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face areas ``(F,)`` (m^2) and unit normals ``(F, 3)`` (zero for zero-area faces)."""
    cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    double_area = np.linalg.norm(cross, axis=1)
    safe = np.where(double_area > 0, double_area, 1.0)
    return 0.5 * double_area, np.where(double_area[:, None] > 0, cross / safe[:, None], 0.0)


@dataclass(frozen=True)
class SurfaceSamples:
    """Points drawn on a mesh surface.

    ``points`` ``(N, 3)`` float64 (metres), ``normals`` ``(N, 3)`` the unit normal of
    the face each point lies on (by the winding), ``face_index`` ``(N,)`` int64 and
    ``barycentric`` ``(N, 3)`` float64 weights of that face's corners
    (``points = sum_k barycentric[:, k] * vertices[faces[face_index, k]]``).
    """

    points: np.ndarray
    normals: np.ndarray
    face_index: np.ndarray
    barycentric: np.ndarray

    def on(self, vertices, faces) -> np.ndarray:
        """The same surface locations (faces and barycentrics) on other vertex
        positions of the same topology: ``vertices`` ``(..., V, 3)`` -> ``(..., N, 3)``."""
        v = np.asarray(vertices, dtype=np.float64)
        corners = v[..., np.asarray(faces)[self.face_index], :]  # (..., N, 3, 3)
        return np.einsum("nk,...nkc->...nc", self.barycentric, corners)


def sample_surface(vertices, faces, count: int = 10000,
                   seed: int | np.random.Generator = 0, name: str = "mesh") -> SurfaceSamples:
    """``count`` points uniformly distributed over the surface area: faces drawn with
    probability proportional to their area, points uniform within each face
    (``sqrt`` warp of two uniforms). ``seed``: an int or a numpy ``Generator``; the
    same seed on the same mesh gives the same points. Zero-area faces are never drawn;
    a mesh with no area at all is an EvalError."""
    v, f = mesh_arrays(vertices, faces, name)
    if not isinstance(count, (int, np.integer)) or count < 1:
        raise EvalError(f"sample count must be a positive int; got {count!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    areas, normals = _face_frames(v, f)
    total = areas.sum()
    if not total > 0:
        raise EvalError(f"{name} has no surface area to sample ({len(f)} faces, all "
                        "degenerate)")
    face_index = rng.choice(len(f), size=int(count), p=areas / total)
    r1, r2 = rng.random((2, int(count)))
    s = np.sqrt(r1)
    bary = np.stack([1.0 - s, s * (1.0 - r2), s * r2], axis=1)
    points = np.einsum("nk,nkc->nc", bary, v[f[face_index]])
    return SurfaceSamples(points=points, normals=normals[face_index], face_index=face_index,
                          barycentric=bary)


def closest_on_triangles(p, a, b, c):
    """Exact closest points on triangles ``(a, b, c)`` to points ``p`` (all ``(M, 3)``):
    returns ``(squared distance (M,), barycentric (M, 3))``. The projection onto the
    plane when it falls inside the triangle, else the nearest point on the three
    edges (degenerate triangles: edges only)."""
    def dot(x, y):
        return np.einsum("ij,ij->i", x, y)

    ab, ac, ap = b - a, c - a, p - a
    d00, d01, d11 = dot(ab, ab), dot(ab, ac), dot(ac, ac)
    d20, d21 = dot(ap, ab), dot(ap, ac)
    denom = d00 * d11 - d01 * d01  # |ab x ac|^2
    flat = denom > 1e-24 * np.maximum(d00 * d11, 1e-300)
    safe = np.where(flat, denom, 1.0)
    s = (d11 * d20 - d01 * d21) / safe
    t = (d00 * d21 - d01 * d20) / safe
    inside = flat & (s >= 0) & (t >= 0) & (s + t <= 1)

    best_d2 = np.full(len(p), np.inf)
    best_u = np.zeros(len(p))
    best_edge = np.zeros(len(p), dtype=np.int64)
    for index, (start, end) in enumerate(((a, b), (b, c), (c, a))):
        edge = end - start
        length2 = dot(edge, edge)
        rel = p - start
        u = np.clip(dot(rel, edge) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
        diff = rel - u[:, None] * edge
        d2 = dot(diff, diff)
        better = d2 < best_d2
        best_d2 = np.where(better, d2, best_d2)
        best_u = np.where(better, u, best_u)
        best_edge = np.where(better, index, best_edge)
    # Edge k runs from corner k to corner k+1: weights (1 - u) and u.
    bary = np.zeros((len(p), 3))
    rows = np.arange(len(p))
    bary[rows, best_edge] = 1.0 - best_u
    bary[rows, (best_edge + 1) % 3] = best_u
    plane_offset = ap - s[:, None] * ab - t[:, None] * ac
    d2 = np.where(inside, dot(plane_offset, plane_offset), best_d2)
    plane = np.stack([1.0 - s - t, s, t], axis=1)
    return d2, np.where(inside[:, None], plane, bary)


@dataclass(frozen=True)
class ClosestPoints:
    """For each query point: ``distance`` ``(N,)`` (metres, exact Euclidean distance to
    the surface), ``face_index`` ``(N,)`` int64 and ``barycentric`` ``(N, 3)`` of the
    closest surface point, and that point itself, ``points`` ``(N, 3)``."""

    distance: np.ndarray
    face_index: np.ndarray
    barycentric: np.ndarray
    points: np.ndarray


def closest_points(points, vertices, faces, name: str = "mesh") -> ClosestPoints:
    """Exact closest points on a triangle mesh to ``points`` ``(N, 3)``.

    Exact, not approximate: a k-d tree over face centroids gives each query an upper
    bound ``u`` (its exact distance to the faces of the 8 nearest centroids); every face
    that could be closer has its centroid within ``u + R`` of the query (``R`` the
    largest centroid-to-corner distance of the mesh), and all of those are tested. Cost
    grows with ``R`` over the typical face size: meshes mixing huge and tiny faces are
    slower, never wrong.
    """
    q = as_array(points, "points").astype(np.float64)
    if q.ndim != 2 or q.shape[1] != 3:
        raise EvalError(f"points must have shape (N, 3); got {q.shape}")
    v, f = mesh_arrays(vertices, faces, name)
    if len(q) == 0:
        return ClosestPoints(np.zeros(0), np.zeros(0, np.int64), np.zeros((0, 3)),
                             np.zeros((0, 3)))
    tri = v[f]  # (F, 3, 3)
    centroids = tri.mean(axis=1)
    reach = np.sqrt(((tri - centroids[:, None, :]) ** 2).sum(-1).max())
    tree = cKDTree(centroids)
    k = min(_KNN, len(f))
    slack = 1e-9 * (1.0 + np.abs(v).max())

    distance = np.empty(len(q))
    face_index = np.empty(len(q), dtype=np.int64)
    bary = np.empty((len(q), 3))
    _, near = tree.query(q, k=k)
    near = near.reshape(len(q), k)
    bound = np.empty(len(q))
    for start in range(0, len(q), _CHUNK):
        rows = np.repeat(np.arange(start, min(start + _CHUNK, len(q))), k)
        d2, _ = closest_on_triangles(q[rows], *(tri[near[start:start + _CHUNK].ravel(), i]
                                                 for i in range(3)))
        bound[start:start + _CHUNK] = np.sqrt(d2.reshape(-1, k).min(axis=1))
    radius = bound + reach + slack
    counts = tree.query_ball_point(q, radius, return_length=True)
    # Batches of queries whose candidate pairs fit in _MAX_PAIRS (one query at least).
    cumulative = np.cumsum(counts)
    start = 0
    while start < len(q):
        done = cumulative[start - 1] if start else 0
        end = int(np.searchsorted(cumulative, done + _MAX_PAIRS, side="right"))
        end = min(max(end, start + 1), len(q))
        balls = tree.query_ball_point(q[start:end], radius[start:end], return_sorted=False)
        n_cand = counts[start:end]
        cand = np.fromiter(chain.from_iterable(balls), dtype=np.int64, count=n_cand.sum())
        rows = np.repeat(np.arange(end - start), n_cand)
        d2, pair_bary = closest_on_triangles(q[start:end][rows],
                                              *(tri[cand, i] for i in range(3)))
        order = np.lexsort((d2, rows))  # grouped by query, nearest first
        first = order[np.concatenate([[0], np.cumsum(n_cand)[:-1]])]
        distance[start:end] = np.sqrt(d2[first])
        face_index[start:end] = cand[first]
        bary[start:end] = pair_bary[first]
        start = end
    closest = np.einsum("nk,nkc->nc", bary, tri[face_index])
    return ClosestPoints(distance=distance, face_index=face_index, barycentric=bary,
                         points=closest)
