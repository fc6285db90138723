"""Small mesh helpers the render layer and its tests need: icospheres, vertex normals,
a uniform Laplacian.

Layouts: vertices are ``(V, 3)`` or batched ``(B, V, 3)`` float tensors (metres when
they are world positions); faces are ``(F, 3)`` int32 or int64 vertex indices, one
row per triangle, counter-clockwise seen from outside for the meshes built here.
"""

from __future__ import annotations

import math

import torch

from .errors import RenderError


def icosphere(
    subdivisions: int,
    radius: float = 1.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A geodesic sphere: a regular icosahedron whose faces are split 4:1
    ``subdivisions`` times, every new vertex pushed onto the sphere.

    Returns ``(verts, faces)``: verts ``(10 * 4**s + 2, 3)`` of ``dtype`` (radius
    ``radius``, centred at the origin), faces ``(20 * 4**s, 3)`` int32, outward
    (counter-clockwise seen from outside), both on ``device``.
    """
    if not isinstance(subdivisions, int) or not 0 <= subdivisions <= 8:
        raise RenderError(f"subdivisions must be an int in [0, 8]; got {subdivisions!r}")
    phi = (1.0 + math.sqrt(5.0)) / 2.0
    verts = [
        (-1, phi, 0), (1, phi, 0), (-1, -phi, 0), (1, -phi, 0),
        (0, -1, phi), (0, 1, phi), (0, -1, -phi), (0, 1, -phi),
        (phi, 0, -1), (phi, 0, 1), (-phi, 0, -1), (-phi, 0, 1),
    ]
    faces = [
        (0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11),
        (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6), (7, 1, 8),
        (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9),
        (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1),
    ]
    v = torch.tensor(verts, dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True)
    f = torch.tensor(faces, dtype=torch.int64)
    for _ in range(subdivisions):
        # One midpoint per undirected edge, shared by the two faces that hold it.
        edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], dim=0)
        edges, _ = edges.sort(dim=1)
        unique, inverse = torch.unique(edges, dim=0, return_inverse=True)
        mid = v[unique[:, 0]] + v[unique[:, 1]]
        mid = mid / mid.norm(dim=1, keepdim=True)
        m = inverse.view(3, -1) + v.shape[0]  # midpoint index of edge (01), (12), (20)
        v = torch.cat([v, mid], dim=0)
        a, b, c = f[:, 0], f[:, 1], f[:, 2]
        m01, m12, m20 = m[0], m[1], m[2]
        f = torch.cat([
            torch.stack([a, m01, m20], dim=1),
            torch.stack([b, m12, m01], dim=1),
            torch.stack([c, m20, m12], dim=1),
            torch.stack([m01, m12, m20], dim=1),
        ], dim=0)
    return (v * radius).to(dtype=dtype, device=device), f.to(torch.int32).to(device)


def icosphere_level_for(faces: int) -> int:
    """The smallest subdivision level whose icosphere has at least ``faces`` faces."""
    level = 0
    while 20 * 4**level < faces and level < 8:
        level += 1
    return level


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Smooth, area-weighted vertex normals.

    verts: ``(V, 3)`` or ``(B, V, 3)`` float, any device. faces: ``(F, 3)`` int32/int64
    on the same device. Returns unit normals of the same shape, dtype and device as
    ``verts`` (a vertex touched by no face gets a zero vector). Differentiable.
    Orientation follows the winding: counter-clockwise faces give outward normals.
    """
    if verts.dim() not in (2, 3) or verts.shape[-1] != 3:
        raise RenderError(f"verts must have shape (V,3) or (B,V,3); got {tuple(verts.shape)}")
    if faces.dim() != 2 or faces.shape[-1] != 3:
        raise RenderError(f"faces must have shape (F,3); got {tuple(faces.shape)}")
    batched = verts.dim() == 3
    v = verts if batched else verts.unsqueeze(0)
    batch, n_verts = v.shape[0], v.shape[1]
    f = faces.long()
    v0, v1, v2 = v[:, f[:, 0]], v[:, f[:, 1]], v[:, f[:, 2]]
    e1, e2 = v1 - v0, v2 - v0
    face_n = torch.stack([  # cross(e1, e2): length = 2 * area
        e1[..., 1] * e2[..., 2] - e1[..., 2] * e2[..., 1],
        e1[..., 2] * e2[..., 0] - e1[..., 0] * e2[..., 2],
        e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0],
    ], dim=-1)
    offset = (torch.arange(batch, device=v.device) * n_verts).view(batch, 1, 1)
    idx = (f.unsqueeze(0) + offset).reshape(-1)  # (B * F * 3,), corner-major per face
    contrib = face_n.unsqueeze(2).expand(-1, -1, 3, -1).reshape(-1, 3)
    n = torch.zeros(batch * n_verts, 3, dtype=v.dtype, device=v.device)
    n = n.index_add(0, idx, contrib).view(batch, n_verts, 3)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(n.dtype).tiny ** 0.5)
    return n if batched else n[0]


def uniform_laplacian(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Umbrella Laplacian ``L(v)_i = mean of the neighbours of i - v_i``.

    verts: ``(V, 3)`` or ``(B, V, 3)`` float; faces ``(F, 3)`` integer. Returns a
    tensor shaped like ``verts`` (zero for isolated vertices). Differentiable.
    """
    f = faces.long()
    edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], dim=0)
    edges = torch.cat([edges, edges.flip(1)], dim=0)
    edges = torch.unique(edges, dim=0)
    n_verts = verts.shape[-2]
    deg = torch.zeros(n_verts, dtype=verts.dtype, device=verts.device)
    deg = deg.index_add(0, edges[:, 0], torch.ones_like(edges[:, 0], dtype=verts.dtype))
    summed = torch.zeros_like(verts).index_add(-2, edges[:, 0], verts[..., edges[:, 1], :])
    mean = summed / deg.clamp_min(1.0).unsqueeze(-1)
    return torch.where(deg.unsqueeze(-1) > 0, mean - verts, torch.zeros_like(verts))
