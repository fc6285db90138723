"""Checks on a synthetic capture that a dataset user relies on (numpy + scipy).

- ``body_depth``: how deep garment points sit inside the body (the backend's
  ``BodySurface`` signed distance, which settles signs at edges and corners).
- ``mask_coverage``: share of the garment vertices the camera sees that the mask
  covers.
"""

from __future__ import annotations

import numpy as np

from backend.synthetic.clearance import BodySurface


def body_depth(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N,) metres each point lies inside the body surface (V, 3)/(F, 3); <= 0 outside."""
    surface = BodySurface(np.asarray(vertices, np.float64), np.asarray(faces, np.int64))
    distance, _ = surface.signed_distance(np.asarray(points, np.float64))
    return -distance


def project(points: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray):
    """(pixel xy (N, 2), camera z (N,)) in the OpenCV convention of capture.json."""
    cam = points @ np.asarray(R).T + np.asarray(t)
    pix = cam @ np.asarray(K).T
    return pix[:, :2] / pix[:, 2:3], cam[:, 2]


def mask_coverage(points, mask: np.ndarray, depth: np.ndarray, K, R, t,
                  tolerance_m: float = 0.01, outline_px: int = 1) -> float:
    """Share of visible ``points`` that ``mask`` (H, W) bool covers.

    Visible: in the image, and the depth map at its pixel is the point's own depth
    (within ``tolerance_m``): not hidden by the body, and not a point whose pixel
    centre already sees the background. Covered: a garment pixel within
    ``outline_px`` of the point's pixel, since vertices on the garment's outline (its
    hem, say) lie exactly on the mask's border, where half a pixel decides.
    """
    xy, z = project(points, K, R, t)
    h, w = mask.shape
    px = np.round(xy).astype(int)
    inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h) & (z > 0)
    px, z = px[inside], z[inside]
    surface = depth[px[:, 1], px[:, 0]]
    visible = (surface > 0) & (np.abs(z - surface) <= tolerance_m)
    if not visible.any():
        return 0.0
    r = outline_px
    padded = np.pad(mask, r)
    near = np.zeros(len(px), bool)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            near |= padded[px[:, 1] + r + dy, px[:, 0] + r + dx]
    return float(near[visible].mean())
