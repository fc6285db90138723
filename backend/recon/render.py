"""Render the garment as the camera sees it: with the body in front of or behind it.

The garment and the posed body are rasterised together; a per-vertex flag (1 on the
garment, 0 on the body) interpolated and antialiased with the other passes gives the
garment's visible coverage. So where an arm passes in front of a skirt, the render
shows no skirt, like the target mask, and the silhouette gradient at that boundary
moves the garment, not the arm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..render.camera import Camera
from ..render.passes import Lighting, render_passes


@dataclass(frozen=True)
class GarmentRender:
    """One batch of garment renders, every image ``(B, H, W, C)`` float.

    mask: C=1 visible garment coverage in [0, 1] (antialiased).
    diffuse: C=1 headlight shading ``clamp(n . view, 0, 1)`` of whatever is visible.
    depth: C=1 camera depth in metres of whatever is visible (0 on background).
    color: C=3 vertex albedo x lighting, or None without albedo.
    rast: the raster; triangle ids ``1..F`` are garment faces, larger ones the body.
    """

    mask: torch.Tensor
    diffuse: torch.Tensor
    depth: torch.Tensor
    color: torch.Tensor | None
    rast: torch.Tensor

    def visible_faces(self, face_count: int) -> torch.Tensor:
        """(F,) bool: garment faces covering at least one pixel in any view."""
        ids = self.rast[..., 3].detach().long().reshape(-1)
        # column 0: background; 1..F: garment faces; F + 1: any body face
        seen = torch.zeros(face_count + 2, dtype=torch.bool, device=ids.device)
        seen[ids.clamp(max=face_count + 1)] = True
        return seen[1:face_count + 1]

    def visible_faces_per_view(self, face_count: int) -> torch.Tensor:
        """(B, F) bool: garment faces covering at least one pixel, per view."""
        ids = self.rast[..., 3].detach().long().reshape(self.rast.shape[0], -1)
        seen = torch.zeros(ids.shape[0], face_count + 2, dtype=torch.bool, device=ids.device)
        seen.scatter_(1, ids.clamp(max=face_count + 1), True)
        return seen[:, 1:face_count + 1]


def render_garment(rasterizer, vertices: torch.Tensor, faces: torch.Tensor, camera: Camera,
                   body_vertices: torch.Tensor | None = None,
                   body_faces: torch.Tensor | None = None,
                   albedo: torch.Tensor | None = None,
                   lighting: Lighting | None = None, topology=None) -> GarmentRender:
    """Render a batch of garment poses.

    Args:
        vertices: (B, V, 3) world garment vertices, metres. faces: (F, 3) int32.
        camera: B cameras. body_vertices: (B, Vb, 3) posed body or None (no occluder);
        body_faces: (Fb, 3) int32.
        albedo: (V, 3) linear RGB per garment vertex, or None.
        lighting: for ``color`` (default: albedo only).
        topology: the rasterizer topology of the combined faces (made once per topology
            by the caller; looked up in the rasterizer's cache when None).
    """
    count = vertices.shape[1]
    flag = vertices.new_ones(count, 1)
    verts = vertices
    tris = combined_faces(faces, body_faces if body_vertices is not None else None, count)
    if body_vertices is not None:
        verts = torch.cat([vertices, body_vertices.to(vertices)], dim=1)
        flag = torch.cat([flag, vertices.new_zeros(body_vertices.shape[1], 1)])
    extra = [flag]
    if albedo is not None:
        pad = verts.shape[1] - count
        extra.append(torch.cat([albedo.to(vertices), albedo.new_zeros(pad, 3).to(vertices)]))
    attributes = torch.cat(extra, dim=1)
    passes = render_passes(rasterizer, verts, tris, camera,
                           attributes=attributes, topology=topology)
    mask = passes.attributes[..., 0:1]
    color = None
    if albedo is not None:
        light = lighting if lighting is not None else Lighting(
            ambient=vertices.new_ones(3))
        color = passes.attributes[..., 1:4] * light.shade(passes.normals)
    return GarmentRender(mask=mask, diffuse=passes.diffuse, depth=passes.depth, color=color,
                         rast=passes.rast)


def combined_faces(faces: torch.Tensor, body_faces: torch.Tensor | None,
                   vertex_count: int) -> torch.Tensor:
    """The face array ``render_garment`` rasterises (for building its topology once)."""
    if body_faces is None:
        return faces.to(torch.int32).contiguous()
    return torch.cat([faces, body_faces + vertex_count]).to(torch.int32).contiguous()
