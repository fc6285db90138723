"""The garment deformation models: NGD's Jacobian fields and the displacement baseline.

Both map a batch of frames to garment vertices in the body's rest space
("canonical", ``(B, V, 3)``, returned in a ``Deformation``) and then to the world
through the body's skinning:

- ``JacobianGarment`` (NGD): per-face static Jacobians ``J_S`` ``(F, 3, 3)`` (optimised
  directly, initialised to the template's own) plus dynamic ones ``J_D`` from an MLP on
  (encoded face centroid, face normal, pose code); ``J = J_S + J_D`` goes through the
  prefactorised Poisson solve (``backend.mesh.poisson``) to vertices, then a static and
  a pose-driven translation (the solve fixes the centroid; see the class).
- ``DisplacementGarment`` (the DGarment-style baseline NGD compares with): per-vertex
  static offsets plus dynamic offsets from the same MLP on (encoded vertex position,
  vertex normal, pose code). Same template, data terms and budget; its own prior (the
  Laplacian term) and tuned rates (``settings.METHOD_DEFAULTS``).

The MLP's inputs are the template's rest-space centroids and normals (they identify
the face and do not change with the body's root motion) and the frame's pose code (the
pose); its last layer starts at zero, so the dynamic part starts as no change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..body.skinning import Skinning
from ..mesh.templates import GarmentTemplate
from .encoding import FrequencyEncoding, HashEncoding
from .settings import ReconSettings


class DynamicMLP(nn.Module):
    """``(per-element features (N, Df), pose codes (B, k)) -> (B, N, out)``.

    The first layer is split into an element part and a pose part and summed, so the
    (N x Df) product runs once per step however many frames are batched.
    """

    def __init__(self, element_features: int, code_features: int, out_features: int,
                 width: int, depth: int):
        super().__init__()
        self.element_in = nn.Linear(element_features, width)
        self.code_in = nn.Linear(code_features, width, bias=False)
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))
        self.out = nn.Linear(width, out_features)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, element: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.element_in(element).unsqueeze(0) + self.code_in(codes).unsqueeze(1))
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.out(h)


class PoseMLP(nn.Module):
    """``pose codes (B, k) -> (B, 1, out)``: per-frame quantities shared by every element
    (the dynamic translation); the last layer starts at zero."""

    def __init__(self, code_features: int, out_features: int, width: int):
        super().__init__()
        self.hidden = nn.Linear(code_features, width)
        self.out = nn.Linear(width, out_features)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(codes))).unsqueeze(1)


def make_encoding(settings: ReconSettings, extent_m: float) -> nn.Module:
    if settings.encoding == "hash":
        return HashEncoding(levels=settings.encoding_levels,
                            table_size_log2=settings.hash_table_size_log2,
                            features=settings.hash_features, extent_m=extent_m)
    return FrequencyEncoding(levels=settings.encoding_levels, extent_m=extent_m)


@dataclass
class Deformation:
    """One evaluation of a garment model.

    canonical: (B, V, 3) rest-space vertices, metres (B = 1 for the static shape).
    jacobians: (B, F, 3, 3) the per-face Jacobians that made them (NGD), else None.
    dynamic: (B, F, 3, 3) the dynamic part ``J_D`` alone (NGD, joint stage), else None.
    """

    canonical: torch.Tensor
    jacobians: torch.Tensor | None = None
    dynamic: torch.Tensor | None = None


class GarmentModel(nn.Module):
    """Shared parts: the template, its skinning, the pose codes and the MLP inputs.

    Args:
        template: the starting garment (rest space, with skinning weights).
        pose_codes: (T, k) float tensor, one code per capture frame, normalised to unit
            std per component (so ``pose_noise`` is in std units).
        bone_count: the body's bone count (for the skinning matrix).
        settings: the run's settings.
        frame: a model whose ``centre``, ``extent_m`` and ``unit_m`` this one keeps
            (a remeshed garment continues its predecessor); None: from ``template``.

    Lengths the optimiser moves (offsets, translations) are parameterised in units of
    the template's mean edge length ``unit_m``: a parameter change of 1 moves a vertex
    by about one edge, which is what a Jacobian change of 1 does to an edge. So one
    learning rate and one ``dynamic_scale`` mean the same relative deformation per step
    for both models (with offsets in metres the baseline's steps were ~20x larger).
    """

    def __init__(self, template: GarmentTemplate, pose_codes: torch.Tensor, bone_count: int,
                 settings: ReconSettings, frame: GarmentModel | None = None):
        super().__init__()
        self.settings = settings
        self.template = template
        self.bone_count = bone_count
        device, dtype = pose_codes.device, pose_codes.dtype
        self.register_buffer("template_vertices",
                             torch.as_tensor(template.vertices, dtype=dtype, device=device))
        self.register_buffer("faces", torch.as_tensor(template.faces, dtype=torch.int64,
                                                      device=device))
        self.register_buffer("pose_codes", pose_codes)
        self.skinning = Skinning(template.weight_indices, template.weight_values, bone_count,
                                 device=device, dtype=dtype)
        if frame is not None:
            # a remeshed model keeps its predecessor's frame: the MLP inputs and the
            # length unit of every offset must not jump (``remeshed``)
            centre, self.extent_m, self.unit_m = frame.centre, frame.extent_m, frame.unit_m
        else:
            centre = self.template_vertices.mean(0)
            self.extent_m = float((self.template_vertices - centre).abs().max()) * 1.05 + 1e-3
            f = self.faces
            edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
            lengths = self.template_vertices[edges[:, 0]] - self.template_vertices[edges[:, 1]]
            self.unit_m = float(lengths.norm(dim=-1).mean())
        self.register_buffer("centre", centre.clone())

    @property
    def frame_count(self) -> int:
        return self.pose_codes.shape[0]

    def codes(self, frames: torch.Tensor, noise_std: float = 0.0,
              generator: torch.Generator | None = None) -> torch.Tensor:
        code = self.pose_codes.index_select(0, frames)
        if noise_std > 0:
            code = code + noise_std * torch.randn(code.shape, generator=generator
                                                  ).to(code)
        return code

    def world(self, canonical: torch.Tensor, bone_transforms: torch.Tensor) -> torch.Tensor:
        """(B or 1, V, 3) canonical vertices -> (B, V, 3) world with (B, bones, 4, 4)
        skinning transforms."""
        return self.skinning(canonical.expand(bone_transforms.shape[0], -1, -1), bone_transforms)

    def forward(self, frames: torch.Tensor | None, noise_std: float = 0.0,
                generator: torch.Generator | None = None) -> Deformation:
        """The garment at the frame indices ``frames`` ((B,) int64; None: the static
        shape, B = 1), with pose-code noise of std ``noise_std``."""
        raise NotImplementedError

    def canonical(self, frames: torch.Tensor | None, noise_std: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """``forward(...).canonical``: (B, V, 3) rest-space vertices, metres."""
        return self(frames, noise_std, generator).canonical

    def regulariser(self, deformation: Deformation,
                    visible_faces: torch.Tensor | None = None) -> torch.Tensor:
        """The model's own prior (scalar); zero unless a subclass defines one."""
        return deformation.canonical.new_zeros(())

    def static_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def dynamic_parameters(self) -> list[nn.Parameter]:
        return list(self.mlp.parameters()) + list(self.encoding.parameters())


class JacobianGarment(GarmentModel):
    """NGD: canonical vertices from static + dynamic per-face Jacobians via Poisson.

    ``poisson`` is the template topology's ``backend.mesh.poisson.PoissonSystem``.
    The Poisson solve keeps the template's centroid (its gauge), so a translation is
    added after it: a static one (the whole garment sits higher or lower than the
    template) and a dynamic one from the pose code. Without the dynamic one a
    pose-driven swing of the hem, which moves the centroid, could only be matched by
    also dragging the waist the other way, which the silhouette forbids.
    """

    def __init__(self, template: GarmentTemplate, poisson, pose_codes: torch.Tensor,
                 bone_count: int, settings: ReconSettings, frame: GarmentModel | None = None):
        super().__init__(template, pose_codes, bone_count, settings, frame)
        self.poisson = poisson
        rest = poisson.rest_jacobians.to(device=pose_codes.device, dtype=pose_codes.dtype)
        self.register_buffer("rest_jacobians", rest)
        self.static_jacobians = nn.Parameter(rest.clone())
        self.static_translation = nn.Parameter(torch.zeros(3, dtype=rest.dtype, device=rest.device))
        v = self.template_vertices[self.faces]                      # (F, 3, 3)
        normal = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
        self.register_buffer("face_normals", normal / normal.norm(dim=-1, keepdim=True)
                             .clamp_min(1e-12))
        self.register_buffer("face_centroids", v.mean(1) - self.centre)
        self.register_buffer("face_areas", 0.5 * normal.norm(dim=-1))
        # the prior's weight per face: 1 on the template; a face split by a remesh hands
        # its weight to its children by area, so the prior does not grow with refinement
        self.register_buffer("face_weights", torch.ones_like(self.face_areas))
        # after a remesh the MLP first sees each new face where its parent was, then
        # its own place, as ``blend`` goes 0 -> 1 (``inherit``): the dynamic part
        # moves over smoothly instead of jumping
        self.register_buffer("inherited_centroids", self.face_centroids.clone())
        self.register_buffer("inherited_normals", self.face_normals.clone())
        self.blend = 1.0
        self.encoding = make_encoding(settings, self.extent_m)
        self.mlp = DynamicMLP(self.encoding.out_features + 3, pose_codes.shape[1], 9,
                              settings.mlp_width, settings.mlp_depth)
        self.shift = PoseMLP(pose_codes.shape[1], 3, settings.mlp_width)
        self.to(device=pose_codes.device, dtype=pose_codes.dtype)

    def static_parameters(self) -> list[nn.Parameter]:
        return [self.static_jacobians, self.static_translation]

    def dynamic_parameters(self) -> list[nn.Parameter]:
        return super().dynamic_parameters() + list(self.shift.parameters())

    def forward(self, frames: torch.Tensor | None, noise_std: float = 0.0,
                generator: torch.Generator | None = None) -> Deformation:
        static = self.static_jacobians.unsqueeze(0)
        translation = self.unit_m * self.static_translation
        if frames is None:
            return Deformation(self.poisson.vertices(static) + translation, static)
        codes = self.codes(frames, noise_std, generator)
        element = torch.cat([self.encoding(self.element_centroids()),
                             self.element_normals()], dim=-1)
        scale = self.settings.dynamic_scale
        dynamic = scale * self.mlp(element, codes).view(len(frames), -1, 3, 3)
        jacobians = static + dynamic
        shift = (self.unit_m * scale) * self.shift(codes)          # (B, 1, 3)
        return Deformation(self.poisson.vertices(jacobians) + translation + shift,
                           jacobians, dynamic)

    def element_centroids(self) -> torch.Tensor:
        """(F, 3) the face positions the dynamic MLP sees (``inherit``)."""
        if self.blend >= 1:
            return self.face_centroids
        return torch.lerp(self.inherited_centroids, self.face_centroids, self.blend)

    def element_normals(self) -> torch.Tensor:
        """(F, 3) the face normals the dynamic MLP sees (``inherit``)."""
        if self.blend >= 1:
            return self.face_normals
        return torch.lerp(self.inherited_normals, self.face_normals, self.blend)

    def inherit(self, parent: JacobianGarment, face_parent: torch.Tensor) -> None:
        """Start the dynamic MLP's inputs at ``parent``'s (the model before a remesh):
        new face ``i`` sees what face ``face_parent[i]`` saw, until ``blend`` reaches 1.
        Also takes over the parent faces' prior weights, shared out by area."""
        self.inherited_centroids.copy_(parent.element_centroids().index_select(0, face_parent))
        self.inherited_normals.copy_(parent.element_normals().index_select(0, face_parent))
        self.blend = 0.0
        share = self.face_areas / parent.face_areas.index_select(0, face_parent).clamp_min(1e-20)
        self.face_weights.copy_(parent.face_weights.index_select(0, face_parent) * share)

    def jacobians(self, frames: torch.Tensor | None, noise_std: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, F, 3, 3) per-frame Jacobians; (1, F, 3, 3) static ones when ``frames`` is
        None."""
        return self(frames, noise_std, generator).jacobians

    def regulariser(self, deformation: Deformation,
                    visible_faces: torch.Tensor | None = None) -> torch.Tensor:
        """Mean squared distance of the Jacobians from the template's over the visible
        faces (all when ``visible_faces`` is None; else a (F,) bool/float mask), each
        face weighted by ``face_weights`` (1 until a remesh splits it: its children
        share its weight by area, so the prior is the same before and after)."""
        diff = (deformation.jacobians - self.rest_jacobians).square().sum((-1, -2))  # (B, F)
        weight = self.face_weights
        if visible_faces is not None:
            weight = weight * visible_faces.to(diff.dtype)
        return (diff * weight).sum() / (weight.sum() * diff.shape[0]).clamp_min(1e-12)


class DisplacementGarment(GarmentModel):
    """The baseline: canonical = template + unit_m (static offsets + dynamic_scale x MLP
    offsets), offsets in template edge lengths (see ``GarmentModel``)."""

    def __init__(self, template: GarmentTemplate, pose_codes: torch.Tensor, bone_count: int,
                 settings: ReconSettings):
        super().__init__(template, pose_codes, bone_count, settings)
        self.static_offsets = nn.Parameter(torch.zeros_like(self.template_vertices))
        v = self.template_vertices[self.faces]
        normal = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
        vn = torch.zeros_like(self.template_vertices).index_add_(
            0, self.faces.reshape(-1), normal.repeat_interleave(3, dim=0))
        self.register_buffer("vertex_normals", vn / vn.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        self.register_buffer("vertex_positions", self.template_vertices - self.centre)
        self.encoding = make_encoding(settings, self.extent_m)
        self.mlp = DynamicMLP(self.encoding.out_features + 3, pose_codes.shape[1], 3,
                              settings.mlp_width, settings.mlp_depth)
        self.to(device=pose_codes.device, dtype=pose_codes.dtype)

    def static_parameters(self) -> list[nn.Parameter]:
        return [self.static_offsets]

    def forward(self, frames: torch.Tensor | None, noise_std: float = 0.0,
                generator: torch.Generator | None = None) -> Deformation:
        static = (self.template_vertices + self.unit_m * self.static_offsets).unsqueeze(0)
        if frames is None:
            return Deformation(static)
        element = torch.cat([self.encoding(self.vertex_positions), self.vertex_normals], dim=-1)
        dynamic = self.mlp(element, self.codes(frames, noise_std, generator))
        return Deformation(static + (self.unit_m * self.settings.dynamic_scale) * dynamic)
