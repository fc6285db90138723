"""Adaptive refinement of a triangle mesh: split the long edges of selected faces at
their midpoints, then flip edges in the refined region towards regular valence. This
is the topology step of NGD's gradient-based adaptive remeshing (after Dunyach et
al. 2013); choosing the faces (top quantile of the rendering-loss gradient) and the
length threshold is the caller's job.

Layouts (numpy, host memory, no torch): vertices ``(V, 3)`` float in metres, faces
``(F, 3)`` int vertex indices, counter-clockwise seen from outside (the winding gives
the normal, as in ``backend.mesh.poisson``), ``face_mask`` ``(F,)`` bool. The mesh may
be open and may have several connected components.

Split (one round; call again to refine further). Every edge of a selected face that
is longer than ``min_edge_len`` gets a new vertex at its midpoint. With ``max_faces``
the candidates are taken longest first and the list stops before the face count
would exceed it. A face with 1, 2 or 3 split edges (selected or not: a neighbour
across a split edge is split too, so the mesh stays conforming, without T-junctions)
becomes 2, 3 or 4 faces: one split edge joins its midpoint to the opposite corner; two
cut off the corner between them and split the remaining trapezoid along the diagonal
with the larger smallest angle; three make the 1-to-4 split. Every child keeps its
parent's winding and lies flat in its parent, so positions, areas and the boundary
polyline (a boundary edge may get its midpoint) are unchanged. Zero-area input faces
are not rejected here; split, they give zero-area children (``PoissonSystem`` rejects
those).

Flip (``flip=True``). The interior edges (exactly two faces, consistently oriented)
whose both faces are in the refined region (children of split faces, and the faces
sharing an edge with a split face) are flipped, in passes, while that lowers
``sum |valence - target|`` over the edge's two endpoints and two opposite corners
(target 6 inside, 4 on a boundary; valence = number of incident edges). A flip is
made only when the new edge does not exist yet, both new faces have unit normals
with cosine > ``FLIP_MIN_COS`` to the mean normal of the two old faces (no fold-over,
no flip across a sharp crease), and the pair's smallest angle stays at least
``min(its current smallest angle, FLIP_MIN_ANGLE_DEG)``. Each pass flips a set of
improving edges that share no vertex (the best one around each vertex, ranked by
valence gain, then by angle gain), so the gains are exact; passes stop when no edge
helps (at most ``FLIP_MAX_PASSES``). Faces outside the region keep their exact vertex
triples and their indices. Flips move no vertex, but on a curved surface the new
diagonal leaves the old faces' planes (by at most what the ``FLIP_MIN_COS`` bound
allows).

Output order. Old vertices come first, unchanged; the midpoint of split edge ``j``
is vertex ``V + j`` (split edges in increasing ``(min, max)`` vertex pair order).
Face ``i < F`` is face ``i`` itself when it was not split and not flipped, else its
first child; the other children follow, so ``face_parent[:F] == arange(F)`` as long
as no flip touched them. Per-vertex data moves with ``interpolate_vertex_values``
(midpoint mean), per-face data with ``face_parent`` or ``transfer_face_values``
(NGD's k-nearest-centroid transfer of the static Jacobians and optimiser moments).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from . import MeshError
from .topology import checked_mesh, face_normals

log = logging.getLogger(__name__)

FLIP_MIN_COS = 0.5
"""A flip is made only when both new faces' unit normals have a cosine above this with
the normalised mean of the two old faces' normals (0.5: at most 60 degrees)."""
FLIP_MIN_ANGLE_DEG = 10.0
"""A flip may lower the smallest angle of its face pair, but never below this (degrees)
nor below the pair's smallest angle before the flip, whichever is smaller."""
FLIP_MAX_PASSES = 64
"""Upper bound on flip passes (each flips a vertex-disjoint set of edges)."""


@dataclass(frozen=True)
class RemeshResult:
    """The refined mesh and where each new element came from. ``V``, ``F``: the input's
    vertex and face counts; ``V'``, ``F'``: the output's; ``S = V' - V``: split edges.

    Attributes:
        vertices: ``(V', 3)`` float64, metres. Rows ``[:V]`` are the input vertices,
            unchanged; row ``V + j`` is the midpoint of ``vertex_parents[j]``.
        faces: ``(F', 3)`` int32, counter-clockwise like the input (every face keeps the
            orientation of the face(s) it came from).
        vertex_parents: ``(S, 2)`` int64, indices into the INPUT vertices: the two ends
            of the edge whose midpoint new vertex ``V + j`` is (smaller index first).
            ``(0, 2)`` when nothing was split.
        face_parent: ``(F',)`` int64, indices into the INPUT faces: the face that new face
            ``i`` lies in. A face changed by flips lies in no single old face; it gets
            the parent of whichever of the two faces it replaced contains its centroid
            (after several flips, an old face near it, not necessarily containing it).
        split_edges: ``S``, the number of edges split.
        flipped_edges: the number of flips made (an edge may count more than once).
    """

    vertices: np.ndarray
    faces: np.ndarray
    vertex_parents: np.ndarray
    face_parent: np.ndarray
    split_edges: int
    flipped_edges: int

    @property
    def num_input_vertices(self) -> int:
        """``V``: the input's vertex count (the first ``V`` rows of ``vertices``)."""
        return len(self.vertices) - len(self.vertex_parents)


# ----------------------------------------------------------------------------- input


def _validated_options(n_faces: int, face_mask, min_edge_len, max_faces) -> np.ndarray:
    """The face mask as ``(F,)`` bool, or MeshError for any bad option."""
    m = np.asarray(face_mask)
    if m.dtype != np.bool_:
        raise MeshError(f"face_mask must be a boolean array (one flag per face); got dtype "
                        f"{m.dtype}")
    if m.shape != (n_faces,):
        raise MeshError(f"face_mask must have shape (F,) = ({n_faces},), one flag per face; "
                        f"got {m.shape}")
    if isinstance(min_edge_len, bool) or not isinstance(min_edge_len, (int, float, np.number)):
        raise MeshError(f"min_edge_len must be a number (metres); got "
                        f"{type(min_edge_len).__name__}")
    if not min_edge_len >= 0:  # also catches NaN
        raise MeshError(f"min_edge_len must be >= 0 metres; got {min_edge_len}")
    if max_faces is not None:
        if isinstance(max_faces, bool) or not isinstance(max_faces, (int, np.integer)):
            raise MeshError(f"max_faces must be an int or None; got {type(max_faces).__name__}")
        if max_faces < n_faces:
            raise MeshError(f"max_faces must be at least the input's face count {n_faces} "
                            f"(remeshing never removes faces); got {max_faces}")
    return m


# ------------------------------------------------------------------------- helpers


def _edge_table(faces: np.ndarray, n_vertices: int):
    """Undirected edges of ``faces``: ``keys`` ``(E,)`` sorted int64 ``lo * n + hi``,
    ``edge_of`` ``(F, 3)`` the edge of each half-edge (slot ``k`` runs from corner ``k``
    to corner ``k + 1``), ``counts`` ``(E,)`` the number of faces using each edge."""
    ends = np.roll(faces, -1, axis=1)
    lo = np.minimum(faces, ends).astype(np.int64)
    hi = np.maximum(faces, ends).astype(np.int64)
    keys, inverse, counts = np.unique((lo * n_vertices + hi).ravel(), return_inverse=True,
                                      return_counts=True)
    return keys, inverse.reshape(-1, 3), counts


def _min_angle(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """``(N,)`` smallest interior angle (radians) of the triangles with corners
    ``p0, p1, p2`` ``(N, 3)``; 0 for a degenerate one."""

    def corner(at, u, w):
        x, y = u - at, w - at
        return np.arctan2(np.linalg.norm(np.cross(x, y), axis=-1), (x * y).sum(-1))

    return np.minimum(np.minimum(corner(p0, p1, p2), corner(p1, p2, p0)), corner(p2, p0, p1))


def _triangles(*corners: np.ndarray) -> np.ndarray:
    return np.stack(corners, axis=1)


# --------------------------------------------------------------------------- split


def _split(v, f, mask, min_edge_len, max_faces):
    """One split round. Returns ``(vertices, faces int64, vertex_parents, face_parent,
    region)`` with ``region`` ``(F',)`` bool: the faces flips may change."""
    n_v, n_f = len(v), len(f)
    keys, edge_of, counts = _edge_table(f, n_v)
    ends = np.stack([keys // n_v, keys % n_v], axis=1)
    length = np.linalg.norm(v[ends[:, 0]] - v[ends[:, 1]], axis=1)
    wanted = np.zeros(len(keys), bool)
    wanted[edge_of[mask].ravel()] = True
    wanted &= length > min_edge_len
    chosen = np.flatnonzero(wanted)
    if max_faces is not None and len(chosen):
        # Splitting an edge adds one face per face using it.
        order = chosen[np.argsort(-length[chosen], kind="stable")]
        total = n_f + np.cumsum(counts[order])
        chosen = np.sort(order[:np.searchsorted(total, max_faces, side="right")])
    mid = np.full(len(keys), -1, np.int64)
    mid[chosen] = n_v + np.arange(len(chosen))
    parents = ends[chosen]
    new_v = np.concatenate([v, 0.5 * (v[parents[:, 0]] + v[parents[:, 1]])])

    is_split = mid[edge_of] >= 0  # (F, 3)
    n_split = is_split.sum(axis=1)
    out = f.copy()
    extra_faces, extra_parent = [], []

    def rotated(idx: np.ndarray, shift: np.ndarray):
        """Corners a, b, c of faces ``idx`` rotated to start at corner ``shift`` (the
        winding is kept), and the midpoint ids of their edges ab, bc, ca."""
        cols = (shift[:, None] + np.arange(3)) % 3
        corners = f[idx[:, None], cols].T
        mids = mid[edge_of[idx[:, None], cols]].T
        return corners, mids

    # One split edge: rotate it to ab; (a, m, c) + (m, b, c).
    idx = np.flatnonzero(n_split == 1)
    (a, b, c), (m, _, _) = rotated(idx, np.argmax(is_split[idx], axis=1))
    out[idx] = _triangles(a, m, c)
    extra_faces.append(_triangles(m, b, c))
    extra_parent.append(idx)

    # Two: rotate the unsplit edge to ca; corner (m0, b, m1) + the trapezoid a m0 m1 c
    # along the diagonal giving the larger smallest angle.
    idx = np.flatnonzero(n_split == 2)
    (a, b, c), (m0, m1, _) = rotated(idx, (np.argmin(is_split[idx], axis=1) + 1) % 3)
    pa, pc, p0, p1 = new_v[a], new_v[c], new_v[m0], new_v[m1]
    via_m1 = np.minimum(_min_angle(pa, p0, p1), _min_angle(pa, p1, pc))
    via_m0 = np.minimum(_min_angle(pa, p0, pc), _min_angle(p0, p1, pc))
    use_m1 = (via_m1 >= via_m0)[:, None]
    out[idx] = _triangles(m0, b, m1)
    extra_faces.append(np.where(use_m1, _triangles(a, m0, m1), _triangles(a, m0, c)))
    extra_faces.append(np.where(use_m1, _triangles(a, m1, c), _triangles(m0, m1, c)))
    extra_parent += [idx, idx]

    # Three: the 1-to-4 split; the middle face stays in the parent's slot.
    idx = np.flatnonzero(n_split == 3)
    (a, b, c), (mab, mbc, mca) = rotated(idx, np.zeros(len(idx), np.int64))
    out[idx] = _triangles(mab, mbc, mca)
    extra_faces += [_triangles(a, mab, mca), _triangles(mab, b, mbc), _triangles(mca, mbc, c)]
    extra_parent += [idx, idx, idx]

    faces = np.concatenate([out, *extra_faces])
    face_parent = np.concatenate([np.arange(n_f), *extra_parent])
    # Flips may touch the children and the faces sharing an edge with a split face.
    touched_edge = np.zeros(len(keys), bool)
    touched_edge[edge_of[n_split > 0].ravel()] = True
    region = np.concatenate([touched_edge[edge_of].any(axis=1),
                             np.ones(len(faces) - n_f, bool)])
    return new_v, faces, parents, face_parent, region


# ---------------------------------------------------------------------------- flip


def _flip(v, faces, face_parent, region) -> int:
    """Valence-improving flips inside ``region``, in place on ``faces`` and
    ``face_parent``. Returns the number of flips."""
    n_v = len(v)
    keys, edge_of, counts = _edge_table(faces, n_v)
    boundary = np.zeros(n_v, bool)
    b_keys = keys[counts == 1]
    boundary[b_keys // n_v] = True
    boundary[b_keys % n_v] = True
    target = np.where(boundary, 4, 6)
    floor = math.radians(FLIP_MIN_ANGLE_DEG)
    flipped = 0
    for step in range(FLIP_MAX_PASSES):
        if step:
            keys, edge_of, counts = _edge_table(faces, n_v)
        valence = np.bincount(np.concatenate([keys // n_v, keys % n_v]), minlength=n_v)
        # The two half-edges of every edge used by exactly two faces.
        half = np.argsort(edge_of.ravel(), kind="stable")
        first = np.cumsum(counts) - counts
        pair = np.flatnonzero(counts == 2)
        h1, h2 = half[first[pair]], half[first[pair] + 1]
        f1, k1 = np.divmod(h1, 3)
        f2, k2 = np.divmod(h2, 3)
        ok = region[f1] & region[f2]
        f1, k1, f2, k2 = f1[ok], k1[ok], f2[ok], k2[ok]
        a, b, c = faces[f1, k1], faces[f1, (k1 + 1) % 3], faces[f1, (k1 + 2) % 3]
        d = faces[f2, (k2 + 2) % 3]
        # f1 runs a -> b, f2 must run b -> a (consistent orientation).
        ok = (faces[f2, k2] == b) & (faces[f2, (k2 + 1) % 3] == a) & (c != d)
        dev_before = (np.abs(valence[a] - target[a]) + np.abs(valence[b] - target[b])
                      + np.abs(valence[c] - target[c]) + np.abs(valence[d] - target[d]))
        dev_after = (np.abs(valence[a] - 1 - target[a]) + np.abs(valence[b] - 1 - target[b])
                     + np.abs(valence[c] + 1 - target[c]) + np.abs(valence[d] + 1 - target[d]))
        gain = dev_before - dev_after
        ok &= gain > 0
        new_key = np.minimum(c, d).astype(np.int64) * n_v + np.maximum(c, d)
        at = np.minimum(np.searchsorted(keys, new_key), len(keys) - 1)
        ok &= keys[at] != new_key
        sel = np.flatnonzero(ok)
        if not len(sel):
            break
        f1, f2, a, b, c, d, gain = f1[sel], f2[sel], a[sel], b[sel], c[sel], d[sel], gain[sel]
        pa, pb, pc, pd = v[a], v[b], v[c], v[d]
        mean = face_normals(v, _triangles(a, b, c)) + face_normals(v, _triangles(b, a, d))
        mean_len = np.linalg.norm(mean, axis=1)
        mean = mean / np.maximum(mean_len, 1e-300)[:, None]
        new1 = np.cross(pd - pa, pc - pa)  # face (a, d, c)
        new2 = np.cross(pb - pd, pc - pd)  # face (d, b, c)
        len1, len2 = np.linalg.norm(new1, axis=1), np.linalg.norm(new2, axis=1)
        old_min = np.minimum(_min_angle(pa, pb, pc), _min_angle(pb, pa, pd))
        new_min = np.minimum(_min_angle(pa, pd, pc), _min_angle(pd, pb, pc))
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = ((mean_len > 1e-6) & (len1 > 0) & (len2 > 0)
                  & ((new1 * mean).sum(1) > FLIP_MIN_COS * len1)
                  & ((new2 * mean).sum(1) > FLIP_MIN_COS * len2)
                  & (new_min > 1e-6) & (new_min >= np.minimum(old_min, floor)))
        sel = np.flatnonzero(ok)
        if not len(sel):
            break
        f1, f2, a, b, c, d = f1[sel], f2[sel], a[sel], b[sel], c[sel], d[sel]
        pa, pb, pc, pd, mean = pa[sel], pb[sel], pc[sel], pd[sel], mean[sel]
        # A vertex-disjoint set: each flip is the best candidate at all four of its
        # vertices (valence gain first, then angle gain, then edge order).
        rank = np.lexsort((-(new_min[sel] - old_min[sel]), -gain[sel]))
        priority = np.empty(len(sel), np.int64)
        priority[rank] = np.arange(len(sel))[::-1]
        best = np.full(n_v, -1, np.int64)
        for corner in (a, b, c, d):
            np.maximum.at(best, corner, priority)
        win = ((best[a] == priority) & (best[b] == priority) & (best[c] == priority)
               & (best[d] == priority))
        f1, f2, a, b, c, d = f1[win], f2[win], a[win], b[win], c[win], d[win]
        pa, pb, pc, pd, mean = pa[win], pb[win], pc[win], pd[win], mean[win]
        parent1, parent2 = face_parent[f1], face_parent[f2]
        faces[f1] = _triangles(a, d, c)
        faces[f2] = _triangles(d, b, c)
        # Each new face takes the parent of the old face holding its centroid: c lies
        # left of a -> b (in f1), d right of it (in f2).
        edge = pb - pa
        for slot, centroid in ((f1, (pa + pd + pc) / 3.0), (f2, (pd + pb + pc) / 3.0)):
            left = (np.cross(edge, centroid - pa) * mean).sum(1) > 0
            face_parent[slot] = np.where(left, parent1, parent2)
        flipped += int(win.sum())
    else:
        log.debug("flip passes stopped at the limit of %d", FLIP_MAX_PASSES)
    return flipped


# -------------------------------------------------------------------------- public


def remesh(vertices, faces, face_mask, min_edge_len: float, max_faces: int | None = None,
           flip: bool = True) -> RemeshResult:
    """Split the long edges of the selected faces at their midpoints and flip edges in
    the refined region towards valence 6 (4 on a boundary); see the module docstring.

    Args:
        vertices: ``(V, 3)`` float (or int) array, metres.
        faces: ``(F, 3)`` int array, counter-clockwise from outside; open meshes and
            several components are fine.
        face_mask: ``(F,)`` bool, the faces to refine.
        min_edge_len: metres, >= 0: edges of selected faces longer than this are split
            (0: all of them).
        max_faces: upper bound on the output's face count (>= F), or None. The longest
            candidate edges go first; the list stops before the bound would be passed.
        flip: run the valence-improving flips after the split.

    Returns:
        A ``RemeshResult``: the input arrays reproduced (``face_parent`` the identity,
        ``vertex_parents`` empty) when no edge qualifies.

    Raises:
        MeshError: a wrong shape or dtype, an index out of range, a face repeating a
            vertex, a non-finite vertex, a ``face_mask`` of the wrong length,
            a negative or NaN ``min_edge_len``, or ``max_faces < F``.
    """
    v, f = checked_mesh(vertices, faces)
    mask = _validated_options(len(f), face_mask, min_edge_len, max_faces)
    start = time.perf_counter()
    new_v, new_f, parents, face_parent, region = _split(v, f, mask, float(min_edge_len),
                                                        max_faces)
    flipped = _flip(new_v, new_f, face_parent, region) if flip and len(parents) else 0
    log.debug("remesh: %d of %d faces selected, %d edges split, %d flipped, %d -> %d faces "
              "in %.1f ms", int(mask.sum()), len(f), len(parents), flipped, len(f),
              len(new_f), 1e3 * (time.perf_counter() - start))
    return RemeshResult(vertices=new_v, faces=new_f.astype(np.int32),
                        vertex_parents=parents.astype(np.int64),
                        face_parent=face_parent.astype(np.int64),
                        split_edges=len(parents), flipped_edges=flipped)


def interpolate_vertex_values(result: RemeshResult, values) -> np.ndarray:
    """Per-vertex data ``(V, ...)`` of the input mesh -> ``(V', ...)`` of ``result``:
    the old rows unchanged, each new vertex the mean of its edge's two ends (exact for
    data that is linear along the edge, e.g. positions or skinning weights; a convex
    combination stays one). Any trailing shape; floating dtypes are kept, other dtypes
    follow numpy's promotion of the mean."""
    values = np.asarray(values)
    n_old = result.num_input_vertices
    if values.ndim < 1 or values.shape[0] != n_old:
        raise MeshError(f"values must have shape (V, ...) with V = {n_old} (the input's "
                        f"vertex count); got {values.shape}")
    p = result.vertex_parents
    mids = (values[p[:, 0]] + values[p[:, 1]]) / 2
    if np.issubdtype(values.dtype, np.floating):
        mids = mids.astype(values.dtype)
    return np.concatenate([values, mids])


def transfer_face_values(old_vertices, old_faces, new_vertices, new_faces, values,
                         k: int = 3) -> np.ndarray:
    """Per-face data ``(F, ...)`` of an old mesh -> ``(F', ...)`` of a new one: at each new
    face centroid, the inverse-distance-weighted mean (weights ``1 / d``) of the values
    at the ``k`` nearest old face centroids, or an exact copy where a new centroid
    coincides (within 1e-12 of the old mesh's bounding-box diagonal) with an old one.
    ``k=1`` is the nearest old face's value. Any trailing shape; the result is float64
    unless ``values`` is float32 (then float32)."""
    ov, of = checked_mesh(old_vertices, old_faces, "old_")
    nv, nf = checked_mesh(new_vertices, new_faces, "new_")
    values = np.asarray(values)
    if values.ndim < 1 or values.shape[0] != len(of):
        raise MeshError(f"values must have shape (F, ...) with F = {len(of)} (the old face "
                        f"count); got {values.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise MeshError(f"k must be an int >= 1; got {k!r}")
    from scipy.spatial import cKDTree

    k = min(int(k), len(of))
    old_centroids = ov[of].mean(axis=1)
    new_centroids = nv[nf].mean(axis=1)
    dist, idx = cKDTree(old_centroids).query(new_centroids, k=k)
    dist, idx = dist.reshape(len(nf), k), idx.reshape(len(nf), k)
    scale = max(float(np.linalg.norm(np.ptp(ov, axis=0))), 1e-300)
    exact = dist[:, 0] <= 1e-12 * scale
    weights = 1.0 / np.where(exact[:, None], 1.0, dist)
    weights[exact] = 0.0
    weights[exact, 0] = 1.0  # the nearest one is the coinciding centroid
    weights /= weights.sum(axis=1, keepdims=True)
    dtype = np.float32 if values.dtype == np.float32 else np.float64
    flat = values.reshape(len(of), -1).astype(dtype)
    out = np.einsum("nk,nkc->nc", weights.astype(dtype), flat[idx])
    return out.reshape((len(nf), *values.shape[1:]))
