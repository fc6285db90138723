"""Which side of a closed triangle mesh a point is on, given its nearest surface point.
numpy only (no bpy): the nearest point comes from Blender's BVH tree in ``cloth``.

Signing by the nearest face's normal alone fails where the nearest point is a vertex
or lies on an edge: every face around it is equally near, and the one a search
happens to return may face away from the point (a dress hem in front of the toes
reads as 26 cm inside the foot). The angle-weighted pseudo-normal of that vertex, or
the summed normal of the edge's two faces, always gives the right side for a closed
mesh (Baerentzen and Aanaes, "Signed distance computation using the angle weighted
pseudonormal", IEEE TVCG 2005).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURE_TOLERANCE = 1e-4
"""Barycentric weight below which the nearest point counts as on an edge or vertex."""


@dataclass(frozen=True, eq=False)
class FeatureNormals:
    """Outward normals of a triangle mesh's faces, edges and vertices (not unit length:
    only their direction is used).

    Attributes:
        faces: (F, 3) int64 the mesh's triangles.
        face: (F, 3) float64 unit face normals.
        edge_keys: (E,) int64 sorted keys ``min(a, b) * V + max(a, b)`` of the edges.
        edge: (E, 3) float64 sum of the normals of the faces sharing each edge.
        vertex: (V, 3) float64 angle-weighted sum of the normals of the faces at each
            vertex.
    """

    faces: np.ndarray
    face: np.ndarray
    edge_keys: np.ndarray
    edge: np.ndarray
    vertex: np.ndarray


def feature_normals(vertices: np.ndarray, faces: np.ndarray) -> FeatureNormals:
    """Face, edge and vertex pseudo-normals of a mesh: ``vertices`` (V, 3), ``faces``
    (F, 3) counter-clockwise seen from outside."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    tri = v[f]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    unit = normal / np.where(length > 0, length, 1.0)
    vertex = np.zeros_like(v)
    for k in range(3):  # the angle at corner k weights that face for vertex f[:, k]
        a = tri[:, (k + 1) % 3] - tri[:, k]
        b = tri[:, (k + 2) % 3] - tri[:, k]
        cos = np.einsum("ij,ij->i", a, b) / np.maximum(
            np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-300)
        np.add.at(vertex, f[:, k], np.arccos(np.clip(cos, -1, 1))[:, None] * unit)
    keys = _edge_keys(f, len(v))                                    # (F, 3)
    edge_keys, inverse = np.unique(keys.ravel(), return_inverse=True)
    edge = np.zeros((len(edge_keys), 3))
    np.add.at(edge, inverse, np.repeat(unit, 3, axis=0))
    return FeatureNormals(faces=f, face=unit, edge_keys=edge_keys, edge=edge, vertex=vertex)


def side_normals(normals: FeatureNormals, vertices: np.ndarray, nearest: np.ndarray,
                 face_index: np.ndarray) -> np.ndarray:
    """(N, 3) the pseudo-normal that decides the side of each query: of its nearest
    face when the nearest point (N, 3) lies inside that face (``face_index`` (N,)), of
    the edge or vertex it lies on otherwise. ``vertices`` (V, 3) are the mesh's."""
    v = np.asarray(vertices, np.float64)
    f = normals.faces[np.asarray(face_index, np.int64)]
    bary = _barycentric(np.asarray(nearest, np.float64), v[f])
    small = bary < FEATURE_TOLERANCE
    zeros = small.sum(axis=1)
    out = normals.face[face_index].copy()
    on_edge = zeros == 1
    if on_edge.any():  # the edge opposite the corner whose weight vanished
        k = np.argmax(small[on_edge], axis=1)
        rows = f[on_edge]
        a = rows[np.arange(len(k)), (k + 1) % 3]
        b = rows[np.arange(len(k)), (k + 2) % 3]
        key = np.minimum(a, b) * len(v) + np.maximum(a, b)
        out[on_edge] = normals.edge[np.searchsorted(normals.edge_keys, key)]
    at_vertex = zeros >= 2
    if at_vertex.any():  # the corner that holds (almost) all the weight
        corner = f[at_vertex, np.argmax(bary[at_vertex], axis=1)]
        out[at_vertex] = normals.vertex[corner]
    return out


def _edge_keys(faces: np.ndarray, vertex_count: int) -> np.ndarray:
    a = faces
    b = np.roll(faces, -1, axis=1)
    return np.minimum(a, b) * vertex_count + np.maximum(a, b)


def _barycentric(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(N, 3) barycentric weights of points ``p`` (N, 3) on triangles ``tri`` (N, 3, 3)
    (the projection onto each triangle's plane; degenerate triangles: all weight on
    the nearest corner)."""
    e0, e1 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    d = p - tri[:, 0]
    d00, d01, d11 = (np.einsum("ij,ij->i", x, y) for x, y in ((e0, e0), (e0, e1), (e1, e1)))
    d20, d21 = np.einsum("ij,ij->i", d, e0), np.einsum("ij,ij->i", d, e1)
    denom = d00 * d11 - d01 * d01
    ok = denom > 1e-30
    safe = np.where(ok, denom, 1.0)
    s = (d11 * d20 - d01 * d21) / safe
    t = (d00 * d21 - d01 * d20) / safe
    bary = np.stack([1 - s - t, s, t], axis=1)
    if not ok.all():
        corner = np.argmin(np.linalg.norm(tri - p[:, None], axis=2), axis=1)
        bary[~ok] = np.eye(3)[corner[~ok]]
    return bary
