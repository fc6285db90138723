"""Input encodings for the dynamic MLP, in plain torch (no tiny-cuda-nn).

Both map points ``(N, 3)`` (metres, roughly within a 2 m box around the body) to
features ``(N, out_features)`` and are differentiable with respect to their own
parameters; neither needs gradients with respect to the points (face centroids and
normals are inputs, not optimised).
"""

from __future__ import annotations

import math

import torch
from torch import nn

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
    """A multiresolution hash grid (Mueller et al. 2022): per level, trilinear
    interpolation of learned feature vectors stored at hashed grid corners.

    Args:
        levels: grid resolutions, geometric from ``base_resolution`` to
            ``max_resolution`` cells across ``[-extent_m, extent_m]``.
        table_size_log2: entries per level table (2^n).
        features: features per entry.
    """

    def __init__(self, levels: int = 8, table_size_log2: int = 14, features: int = 2,
                 base_resolution: int = 4, max_resolution: int = 256, extent_m: float = 1.0):
        super().__init__()
        growth = (max_resolution / base_resolution) ** (1 / max(levels - 1, 1))
        resolutions = [int(base_resolution * growth ** level) for level in range(levels)]
        self.register_buffer("resolutions", torch.tensor(resolutions, dtype=torch.int64),
                             persistent=False)
        self.table_size = 2 ** table_size_log2
        self.extent_m = extent_m
        tables = torch.empty(levels, self.table_size, features).uniform_(-1e-4, 1e-4)
        self.tables = nn.Parameter(tables)
        self.out_features = levels * features
        corners = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)])
        self.register_buffer("corners", corners, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
