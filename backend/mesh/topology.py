"""Small numpy operations on triangle meshes that templates and remeshing share.

Layouts: vertices ``(V, 3)`` float, faces ``(F, 3)`` int vertex indices,
counter-clockwise seen from outside.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from . import MeshError

SHOWN_INDICES = 5
"""How many offending faces/vertices an error message names."""


def face_normals(vertices: np.ndarray, faces: np.ndarray, normalise: bool = True) -> np.ndarray:
    """(F, 3) face normals; unnormalised ones have length 2 x area."""
    v = vertices[faces]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    if normalise:
        n = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-20)
    return n


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals (zero for unused vertices)."""
    n = face_normals(vertices, faces, normalise=False)
    out = np.zeros_like(vertices, dtype=np.float64)
    for corner in range(3):
        np.add.at(out, faces[:, corner], n)
    length = np.linalg.norm(out, axis=1, keepdims=True)
    return np.where(length > 0, out / np.maximum(length, 1e-20), 0.0)


def edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) unique undirected edges, each as (smaller, larger) vertex index."""
    all_edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(all_edges, axis=1), axis=0)


def edge_lengths(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    e = edges(faces)
    return np.linalg.norm(vertices[e[:, 0]] - vertices[e[:, 1]], axis=1)


def face_components(faces: np.ndarray, vertex_count: int) -> np.ndarray:
    """(F,) connected-component label of each face (faces sharing a vertex connect)."""
    f = len(faces)
    rows = np.repeat(np.arange(f), 3)
    incidence = sparse.csr_matrix((np.ones(3 * f), (rows, faces.ravel())), shape=(f, vertex_count))
    _, labels = connected_components(incidence @ incidence.T, directed=False)
    return labels


def compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop unreferenced vertices. Returns (vertices, faces, kept) with ``kept`` the
    old index of each remaining vertex."""
    kept = np.unique(faces)
    remap = np.full(len(vertices), -1, np.int64)
    remap[kept] = np.arange(len(kept))
    return vertices[kept], remap[faces].astype(np.int32), kept


def subdivide(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One 1-to-4 midpoint subdivision: every edge gets its midpoint, every triangle
    becomes four with the same orientation. Shapes and positions are unchanged."""
    all_edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    unique, inverse = np.unique(np.sort(all_edges, axis=1), axis=0, return_inverse=True)
    mid = len(vertices) + inverse.reshape(3, -1).T      # (F, 3): midpoints of 01, 12, 20
    new_vertices = np.concatenate([vertices, vertices[unique].mean(axis=1)])
    a, b, c = faces.T
    ab, bc, ca = mid.T
    new_faces = np.concatenate([
        np.stack([a, ab, ca], 1), np.stack([ab, b, bc], 1),
        np.stack([ca, bc, c], 1), np.stack([ab, bc, ca], 1)])
    return new_vertices, new_faces.astype(np.int32)


def subdivide_to_edge_length(vertices: np.ndarray, faces: np.ndarray, target_m: float,
                             max_levels: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Subdivide uniformly until the mean edge is at most ``target_m`` (never coarsens)."""
    for _ in range(max_levels):
        if edge_lengths(vertices, faces).mean() <= target_m * 1.2:
            break
        vertices, faces = subdivide(vertices, faces)
    return vertices, faces


def boundary_edge_count(faces: np.ndarray) -> int:
    """Number of boundary edges (edges used by exactly one face)."""
    all_edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]),
                        axis=1)
    _, counts = np.unique(all_edges, axis=0, return_counts=True)
    return int((counts == 1).sum())


def listed_indices(indices: np.ndarray) -> str:
    """``"3, 7, 9 and 12 more"``: the first few offending indices for an error message."""
    shown = ", ".join(str(int(i)) for i in indices[:SHOWN_INDICES])
    extra = len(indices) - SHOWN_INDICES
    return shown + (f" and {extra} more" if extra > 0 else "")


def checked_mesh(vertices, faces, prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """``(vertices float64 (V, 3), faces int64 (F, 3))`` from array-likes, or MeshError
    naming the argument (``prefix`` + ``vertices``/``faces``) and the first culprits:
    wrong shape or dtype, a non-finite vertex, an index out of range, a face that
    repeats a vertex."""
    vn, fn = f"{prefix}vertices", f"{prefix}faces"
    v, f = np.asarray(vertices), np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 3:
        raise MeshError(f"{vn} must have shape (V, 3) with V >= 3; got {v.shape}")
    if not np.issubdtype(v.dtype, np.floating):
        raise MeshError(f"{vn} must be floating point; got dtype {v.dtype}")
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] < 1:
        raise MeshError(f"{fn} must have shape (F, 3) with F >= 1; got {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        raise MeshError(f"{fn} must be integer vertex indices; got dtype {f.dtype}")
    v, f = v.astype(np.float64), f.astype(np.int64)
    bad = np.flatnonzero(~np.isfinite(v).all(axis=1))
    if len(bad):
        raise MeshError(f"{vn} must be finite; vertex {listed_indices(bad)} is not "
                        f"(first: {v[bad[0]].tolist()})")
    bad = np.flatnonzero(((f < 0) | (f >= len(v))).any(axis=1))
    if len(bad):
        raise MeshError(f"{fn}: index out of range [0, {len(v)}) in face "
                        f"{listed_indices(bad)} (first: {f[bad[0]].tolist()})")
    bad = np.flatnonzero((f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 2] == f[:, 0]))
    if len(bad):
        raise MeshError(f"{fn}: face {listed_indices(bad)} repeats a vertex "
                        f"(first: {f[bad[0]].tolist()})")
    return v, f
