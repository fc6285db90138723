"""Small generated meshes shared by the mesh tests."""

import numpy as np
from scipy.spatial import Delaunay


def ccw_faces(v2: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Faces of a planar (x, y) triangulation, turned counter-clockwise seen from +z."""
    e1, e2 = v2[f[:, 1]] - v2[f[:, 0]], v2[f[:, 2]] - v2[f[:, 0]]
    flip = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] < 0
    f = f.copy()
    f[flip] = f[flip][:, ::-1]
    return f.astype(np.int64)


def perturbed_grid(seed: int = 0, n: int = 12, wavy: bool = False):
    """A Delaunay triangulation of a jittered n x n grid on the unit square (z = 0, or a
    wave): irregular valences, an open square boundary, normals towards +z."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, n))
    xy = np.column_stack([x.ravel(), y.ravel()])
    inside = ((xy > 0) & (xy < 1)).all(axis=1)
    xy[inside] += rng.uniform(-0.3, 0.3, size=(inside.sum(), 2)) / (n - 1)
    z = 0.2 * np.sin(3.0 * xy[:, 0]) * np.cos(2.0 * xy[:, 1]) if wavy else np.zeros(len(xy))
    return np.column_stack([xy, z]), ccw_faces(xy, Delaunay(xy).simplices)
