"""Input encodings for the dynamic MLP, in plain torch (no tiny-cuda-nn).

Both map points ``(N, 3)`` (metres, roughly within a 2 m box around the body) to
features ``(N, out_features)`` and are differentiable with respect to their own
parameters; neither needs gradients with respect to the points (face centroids and
normals are inputs, not optimised). ``HashEncoding(in_features=2)`` is the 2D grid the
dynamic texture uses over UV coordinates (``backend.recon.texturing``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .errors import ReconError

# Three large primes, one per axis, to spread grid corners over the hash table (the
# usual spatial-hash construction: XOR of coordinate x prime).
_PRIMES = (1, 2654435761, 805459861)


class FrequencyEncoding(nn.Module):
    """``[x, sin(2^k pi x / extent), cos(2^k pi x / extent)]`` for k < ``levels``."""

    def __init__(self, levels: int = 6, extent_m: float = 1.0, in_features: int = 3):
        super().__init__()
        self.register_buffer("scales", (2.0 ** torch.arange(levels)) * math.pi / extent_m,
                             persistent=False)
        self.out_features = in_features * (1 + 2 * levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaled = x.unsqueeze(-1) * self.scales.to(x)              # (N, 3, L)
        return torch.cat([x, scaled.sin().flatten(-2), scaled.cos().flatten(-2)], dim=-1)


class HashEncoding(nn.Module):
    """A multiresolution hash grid (Mueller et al. 2022): per level, trilinear (3D) or
    bilinear (2D) interpolation of learned feature vectors stored at hashed grid
    corners.

    Args:
        levels: grid resolutions, geometric from ``base_resolution`` to
            ``max_resolution`` cells across ``[-extent_m, extent_m]``.
        table_size_log2: entries per level table (2^n).
        features: features per entry.
        in_features: 3 (points, 8 corners per cell; the default) or 2 (e.g. UV
            coordinates mapped to ``[-1, 1]`` with ``extent_m = 1``, 4 corners).

    ``forward``: ``(N, in_features)`` float -> ``(N, levels * features)``; coordinates
    outside ``[-extent_m, extent_m]`` are clamped to it.
    """

    def __init__(self, levels: int = 8, table_size_log2: int = 14, features: int = 2,
                 base_resolution: int = 4, max_resolution: int = 256, extent_m: float = 1.0,
                 in_features: int = 3):
        super().__init__()
        if in_features not in (2, 3):
            raise ReconError(f"HashEncoding in_features must be 2 or 3; got {in_features!r}")
        self.in_features = in_features
        growth = (max_resolution / base_resolution) ** (1 / max(levels - 1, 1))
        resolutions = [int(base_resolution * growth ** level) for level in range(levels)]
        self.register_buffer("resolutions", torch.tensor(resolutions, dtype=torch.int64),
                             persistent=False)
        self.table_size = 2 ** table_size_log2
        self.extent_m = extent_m
        tables = torch.empty(levels, self.table_size, features).uniform_(-1e-4, 1e-4)
        self.tables = nn.Parameter(tables)
        self.out_features = levels * features
        if in_features == 3:
            corners = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)])
        else:
            corners = torch.tensor([[i >> 1 & 1, i & 1] for i in range(4)])
        self.register_buffer("corners", corners, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_features == 2:
            return self._forward_2d(x)
        unit = ((x.detach() / self.extent_m + 1) / 2).clamp(0, 1)          # (N, 3) in [0, 1]
        levels = self.resolutions.numel()
        scaled = unit.unsqueeze(0) * self.resolutions.view(-1, 1, 1).to(x)  # (L, N, 3)
        base = scaled.floor().long()
        frac = scaled - base                                                # (L, N, 3)
        corner = base.unsqueeze(2) + self.corners.view(1, 1, 8, 3)          # (L, N, 8, 3)
        primes = torch.tensor(_PRIMES, device=x.device, dtype=torch.int64)
        hashed = corner * primes
        index = (hashed[..., 0] ^ hashed[..., 1] ^ hashed[..., 2]) % self.table_size  # (L, N, 8)
        offsets = (torch.arange(levels, device=x.device) * self.table_size).view(-1, 1, 1)
        flat = self.tables.reshape(-1, self.tables.shape[-1])
        values = flat[(index + offsets).reshape(-1)].view(*index.shape, -1)  # (L, N, 8, Fe)
        c = self.corners.view(1, 1, 8, 3).to(x)
        weight = torch.where(c > 0, frac.unsqueeze(2), 1 - frac.unsqueeze(2)).prod(-1)
        features = (values * weight.unsqueeze(-1)).sum(2)                   # (L, N, Fe)
        return features.permute(1, 0, 2).reshape(x.shape[0], -1)

    def _forward_2d(self, x: torch.Tensor) -> torch.Tensor:
        """The 3D path's hash (corner x primes, XOR, modulo the table size) and
        multilinear weights on two axes, written per axis and corner-first: the dynamic
        texture evaluates it at every garment pixel of a step (1e5-1e6 points), where
        (L, N, C, D) corner tensors cost about 3x as much."""
        unit = ((x.detach() / self.extent_m + 1) / 2).clamp(0, 1)          # (N, 2) in [0, 1]
        levels = self.resolutions.numel()
        res = self.resolutions.view(-1, 1).to(x)
        su, sv = unit[:, 0] * res, unit[:, 1] * res                         # (L, N)
        u0, v0 = su.floor(), sv.floor()
        fu, fv = su - u0, sv - v0
        hu0, hv0 = u0.long() * _PRIMES[0], v0.long() * _PRIMES[1]
        hu1, hv1 = hu0 + _PRIMES[0], hv0 + _PRIMES[1]
        # corners in ``self.corners`` order: (0, 0), (0, 1), (1, 0), (1, 1); the table
        # size is a power of two, so ``& (size - 1)`` is ``% size``
        index = torch.stack([hu0 ^ hv0, hu0 ^ hv1, hu1 ^ hv0, hu1 ^ hv1])  # (4, L, N)
        offsets = (torch.arange(levels, device=x.device) * self.table_size).view(1, -1, 1)
        index = (index & (self.table_size - 1)) + offsets
        flat = self.tables.reshape(-1, self.tables.shape[-1])
        values = flat[index.reshape(-1)].view(*index.shape, flat.shape[-1])  # (4, L, N, Fe)
        gu, gv = 1 - fu, 1 - fv
        weight = torch.stack([gu * gv, gu * fv, fu * gv, fu * fv])          # (4, L, N)
        features = (values * weight.unsqueeze(-1)).sum(0)                   # (L, N, Fe)
        return features.permute(1, 0, 2).reshape(x.shape[0], self.out_features)
