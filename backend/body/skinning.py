"""Linear blend skinning in torch, batched over frames.

The garment's canonical vertices go through this every optimisation step, so it is
differentiable with respect to the vertices (and the transforms), runs on whatever
device its inputs are on, and never synchronises with the host.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import BodyError


class Skinning:
    """Skinning weights of one topology, ready on a device: build once, call every step.

    Args:
        weight_indices: (V, K) int array/tensor, bone index of each influence.
        weight_values: (V, K) float array/tensor, rows summing to 1.
        bone_count: B, the number of bones the transforms will have.
        device, dtype: where and in what precision to keep the weights.

    The weights are kept as a dense (V, B) matrix: one matrix product per call blends
    every bone's transform for every vertex, which is faster on CPU and GPU than
    gathering K transforms per vertex for the bone counts bodies have (B <= ~200;
    ``python -m backend bench skinning`` prints both).
    """

    def __init__(self, weight_indices, weight_values, bone_count: int,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        idx = torch.as_tensor(np.asarray(weight_indices), dtype=torch.int64)
        val = torch.as_tensor(np.asarray(weight_values), dtype=dtype)
        if idx.ndim != 2 or val.shape != idx.shape:
            raise BodyError(f"skinning weights: indices {tuple(idx.shape)} and values "
                            f"{tuple(val.shape)} must both have shape (V, K)")
        if idx.numel() and (idx.min() < 0 or idx.max() >= bone_count):
            raise BodyError(f"skinning weights: bone indices must lie in 0..{bone_count - 1}; "
                            f"got {int(idx.min())}..{int(idx.max())}")
        dense = torch.zeros(idx.shape[0], bone_count, dtype=dtype)
        dense.scatter_add_(1, idx, val)
        self.weights = dense.to(device)
        """(V, B) dense weights on the target device."""

    @property
    def vertex_count(self) -> int:
        return self.weights.shape[0]

    @property
    def bone_count(self) -> int:
        return self.weights.shape[1]

    def __call__(self, vertices: torch.Tensor, bone_transforms: torch.Tensor) -> torch.Tensor:
        """Pose ``vertices`` with every frame's bone transforms.

        Args:
            vertices: (V, 3) rest-space positions shared by all frames, or (T, V, 3) one
                set per frame; float, on the weights' device.
            bone_transforms: (T, B, 4, 4) rest-space -> world skinning transforms (only
                the top 3 rows are read), same dtype and device.
        Returns:
            (T, V, 3) world positions.
        """
        _check_shapes(vertices, bone_transforms, self.vertex_count, self.bone_count)
        if vertices.device != self.weights.device or vertices.dtype != self.weights.dtype:
            raise BodyError(f"vertices are {vertices.dtype} on {vertices.device} but the "
                            f"skinning weights are {self.weights.dtype} on "
                            f"{self.weights.device}; build Skinning with that device and dtype")
        frames = bone_transforms.shape[0]
        top = bone_transforms[:, :, :3, :].reshape(frames, self.bone_count, 12)
        blended = torch.matmul(self.weights, top).view(frames, self.vertex_count, 3, 4)
        return _apply_affine(blended, vertices)


def skin_sparse(vertices: torch.Tensor, bone_transforms: torch.Tensor,
                weight_indices: torch.Tensor, weight_values: torch.Tensor) -> torch.Tensor:
    """The same skinning, gathering each vertex's K transforms (no dense weight matrix).

    Shapes as ``Skinning.__call__``; ``weight_indices`` (V, K) int64 and
    ``weight_values`` (V, K) on the vertices' device. Memory grows with T * V * 12
    only, independent of B; used for the benchmark and as an independent reference.
    """
    frames, bones = bone_transforms.shape[:2]
    _check_shapes(vertices, bone_transforms, weight_indices.shape[0], bones)
    top = bone_transforms[:, :, :3, :]
    blended = None
    for k in range(weight_indices.shape[1]):
        term = top[:, weight_indices[:, k]] * weight_values[:, k, None, None]
        blended = term if blended is None else blended + term
    return _apply_affine(blended, vertices)


def _apply_affine(blended: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    # blended (T, V, 3, 4); vertices (V, 3) or (T, V, 3)
    return (blended[..., :3] @ vertices.unsqueeze(-1)).squeeze(-1) + blended[..., 3]


def _check_shapes(vertices: torch.Tensor, transforms: torch.Tensor, n_verts: int,
                  n_bones: int) -> None:
    if transforms.ndim != 4 or transforms.shape[1:] != (n_bones, 4, 4):
        raise BodyError(f"bone_transforms must have shape (T, {n_bones}, 4, 4); "
                        f"got {tuple(transforms.shape)}")
    frames = transforms.shape[0]
    if not (vertices.shape == (n_verts, 3) or vertices.shape == (frames, n_verts, 3)):
        raise BodyError(f"vertices must have shape ({n_verts}, 3) or ({frames}, {n_verts}, 3) "
                        f"to match the skinning weights and transforms; "
                        f"got {tuple(vertices.shape)}")
    if vertices.dtype != transforms.dtype or vertices.device != transforms.device:
        raise BodyError(f"vertices ({vertices.dtype}, {vertices.device}) and bone_transforms "
                        f"({transforms.dtype}, {transforms.device}) must share dtype and device")
