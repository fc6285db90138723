"""Helpers shared by the ``test_render_*`` modules (imported as
``tests.backend_tier.render_helpers``; not a test module itself).

- ``DEVICES``: parametrize values "cpu" and "cuda"; the CUDA one is skipped, with the
  reason, where torch has no CUDA device.
- ``raycast_reference``: an independent brute-force renderer (per-pixel ray /
  triangle intersection, Moller-Trumbore, in the OpenCV camera frame, float64 numpy)
  to check ``rasterize`` against.
- small scene builders (cameras looking at the origin, icospheres).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backend.render import Camera, icosphere, look_at

CUDA_SKIP_REASON = (
    "CUDA is not available here (torch.cuda.is_available() is False); the CUDA variant "
    "of this test runs on machines with an NVIDIA GPU"
)
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                  reason=CUDA_SKIP_REASON)),
]


def opencv_camera(width: int, height: int, f: float, eye, target=(0.0, 0.0, 0.0),
                  up=(0.0, 0.0, 1.0), cx: float | None = None, cy: float | None = None,
                  dtype=torch.float32, device="cpu") -> Camera:
    """A one-camera batch at ``eye`` looking at ``target`` (world Z up)."""
    cx = (width - 1) / 2 if cx is None else cx
    cy = (height - 1) / 2 if cy is None else cy
    K = torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]], dtype=dtype)
    R, t = look_at(torch.tensor(eye, dtype=dtype), torch.tensor(target, dtype=dtype),
                   torch.tensor(up, dtype=dtype))
    return Camera.create(K.to(device), R.to(device), t.to(device), width, height)


def ring_cameras(n: int, width: int, f: float, distance: float, dtype=torch.float32,
                 device="cpu") -> Camera:
    """``n`` cameras around the origin: azimuths evenly spaced, alternating elevations
    of +-35 degrees so the top and bottom are seen too."""
    Ks, Rs, ts = [], [], []
    for i in range(n):
        az = 2 * math.pi * i / n
        el = math.radians(35.0 if i % 2 == 0 else -35.0)
        eye = torch.tensor([distance * math.cos(el) * math.cos(az),
                            distance * math.cos(el) * math.sin(az),
                            distance * math.sin(el)], dtype=dtype)
        R, t = look_at(eye, torch.zeros(3, dtype=dtype), torch.tensor([0.0, 0.0, 1.0],
                                                                        dtype=dtype))
        Ks.append(torch.tensor([[f, 0, (width - 1) / 2], [0, f, (width - 1) / 2], [0, 0, 1]],
                               dtype=dtype))
        Rs.append(R[0])
        ts.append(t[0])
    return Camera.create(torch.stack(Ks).to(device), torch.stack(Rs).to(device),
                         torch.stack(ts).to(device), width, width)


def sphere(level: int, radius: float = 1.0, dtype=torch.float32, device="cpu"):
    return icosphere(level, radius=radius, dtype=dtype, device=device)


def raycast_reference(verts_cam: np.ndarray, faces: np.ndarray, K: np.ndarray, width: int,
                      height: int, near: float, far: float) -> np.ndarray:
    """Triangle id + 1 seen at every pixel centre (0 = background), by brute force.

    verts_cam ``(V, 3)`` camera frame (OpenCV), faces ``(F, 3)``, ``K`` ``(3, 3)``.
    The ray of pixel (column j, row i) goes through ``K^-1 (j, i, 1)``; a hit counts
    when its camera depth lies in ``[near, far]``; the nearest depth wins.
    """
    v = np.asarray(verts_cam, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    jj, ii = np.meshgrid(np.arange(width), np.arange(height))
    pix = np.stack([jj.ravel(), ii.ravel(), np.ones(jj.size)], axis=1).astype(np.float64)
    dirs = pix @ np.linalg.inv(K).T  # (P, 3), z = 1: ray parameter = camera depth
    p0, p1, p2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    e1, e2 = p1 - p0, p2 - p0  # (F, 3)
    best_depth = np.full(dirs.shape[0], np.inf)
    best_id = np.zeros(dirs.shape[0], dtype=np.int64)
    for start in range(0, f.shape[0], 256):
        sl = slice(start, start + 256)
        pvec = np.cross(dirs[:, None, :], e2[None, sl])  # (P, f, 3)
        det = np.einsum("pfk,fk->pf", pvec, e1[sl])
        ok = np.abs(det) > 1e-14
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        tvec = -p0[sl]  # ray origin is the camera centre (0, 0, 0)
        u = np.einsum("pfk,fk->pf", pvec, tvec) * inv
        qvec = np.cross(tvec, e1[sl])  # (f, 3)
        vv = np.einsum("pk,fk->pf", dirs, qvec) * inv
        depth = np.einsum("fk,fk->f", e2[sl], qvec)[None, :] * inv
        hit = ok & (u >= 0) & (vv >= 0) & (u + vv <= 1) & (depth >= near) & (depth <= far)
        depth = np.where(hit, depth, np.inf)
        arg = depth.argmin(axis=1)
        d = depth[np.arange(depth.shape[0]), arg]
        better = d < best_depth
        best_depth = np.where(better, d, best_depth)
        best_id = np.where(better, arg + start + 1, best_id)
    return best_id.reshape(height, width)


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """IoU of two boolean masks of the same shape."""
    inter = (a & b).sum().item()
    union = (a | b).sum().item()
    return inter / union if union else 1.0
