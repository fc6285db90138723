"""Checks on a synthetic capture that a dataset user relies on (numpy + scipy).

- ``signed_distance``: exact point-to-triangle distance to a closed body surface,
  negative inside (sign from the nearest triangle's normal; a point nearest to an
  edge or vertex takes the normal of the triangle found first).
- ``mask_coverage``: share of the garment vertices the camera sees (projected inside
  the image, at the depth the depth map has at their pixel) that fall inside the mask.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def _closest_on_triangles(p, a, b, c):
    """Closest points on triangles (a, b, c) to points p, all (N, 3) (Ericson's regions)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = np.einsum("ij,ij->i", ab, ap), np.einsum("ij,ij->i", ac, ap)
    bp = p - b
    d3, d4 = np.einsum("ij,ij->i", ab, bp), np.einsum("ij,ij->i", ac, bp)
    cp = p - c
    d5, d6 = np.einsum("ij,ij->i", ab, cp), np.einsum("ij,ij->i", ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    denom = va + vb + vc
    with np.errstate(divide="ignore", invalid="ignore"):
        v = vb / denom
        w = vc / denom
        out = a + ab * v[:, None] + ac * w[:, None]               # inside the face
        # edge regions
        t_ab = d1 / (d1 - d3)
        t_ac = d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    on_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    on_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    on_bc = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
    out = np.where(on_bc[:, None], b + (c - b) * np.nan_to_num(t_bc)[:, None], out)
    out = np.where(on_ac[:, None], a + ac * np.nan_to_num(t_ac)[:, None], out)
    out = np.where(on_ab[:, None], a + ab * np.nan_to_num(t_ab)[:, None], out)
    # vertex regions
    out = np.where(((d6 >= 0) & (d5 <= d6))[:, None], c, out)
    out = np.where(((d3 >= 0) & (d4 <= d3))[:, None], b, out)
    out = np.where(((d1 <= 0) & (d2 <= 0))[:, None], a, out)
    return out


def signed_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                    candidates: int = 24) -> np.ndarray:
    """(N,) signed distance (metres) of ``points`` (N, 3) to the surface (V, 3)/(F, 3);
    negative inside. Exact among the ``candidates`` triangles whose centroids are
    nearest to each point (enough for body meshes with even triangles)."""
    points = np.asarray(points, np.float64)
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True).clip(1e-12)
    k = min(candidates, len(tri))
    _, near = cKDTree(tri.mean(1)).query(points, k=k)
    near = near.reshape(len(points), k)
    best = np.full(len(points), np.inf)
    sign = np.ones(len(points))
    for j in range(k):
        f = near[:, j]
        closest = _closest_on_triangles(points, tri[f, 0], tri[f, 1], tri[f, 2])
        offset = points - closest
        dist = np.linalg.norm(offset, axis=1)
        better = dist < best - 1e-12
        best = np.where(better, dist, best)
        side = np.einsum("ij,ij->i", offset, normals[f])
        sign = np.where(better, np.where(side < 0, -1.0, 1.0), sign)
    return sign * best


def project(points: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray):
    """(pixel xy (N, 2), camera z (N,)) in the OpenCV convention of capture.json."""
    cam = points @ np.asarray(R).T + np.asarray(t)
    pix = cam @ np.asarray(K).T
    return pix[:, :2] / pix[:, 2:3], cam[:, 2]


def mask_coverage(points, mask: np.ndarray, depth: np.ndarray, K, R, t,
                  tolerance_m: float = 0.01) -> float:
    """Share of visible ``points`` whose pixel is garment in ``mask`` (H, W) bool.

    Visible: in the image, and the depth map at its pixel is the point's own depth
    (within ``tolerance_m``): not hidden by the body, and not a silhouette point whose
    pixel centre already sees the background."""
    xy, z = project(points, K, R, t)
    h, w = mask.shape
    px = np.round(xy).astype(int)
    inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h) & (z > 0)
    px, z = px[inside], z[inside]
    surface = depth[px[:, 1], px[:, 0]]
    visible = (surface > 0) & (np.abs(z - surface) <= tolerance_m)
    if not visible.any():
        return 0.0
    return float(mask[px[visible, 1], px[visible, 0]].mean())
