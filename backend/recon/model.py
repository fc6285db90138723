"""The garment deformation models: NGD's Jacobian fields and the displacement baseline.

Both map a batch of frames to garment vertices in the body's rest space
("canonical", ``(B, V, 3)``) and then to the world through the body's skinning:

- ``JacobianGarment`` (NGD): per-face static Jacobians ``J_S`` ``(F, 3, 3)`` (optimised
  directly, initialised to the template's own) plus dynamic ones ``J_D`` from an MLP on
  (encoded face centroid, face normal, pose code); ``J = J_S + J_D`` goes through the
  prefactorised Poisson solve (``backend.mesh.poisson``) to vertices.
- ``DisplacementGarment`` (the DGarment-style baseline NGD compares with): per-vertex
  static offsets plus dynamic offsets from the same MLP on (encoded vertex position,
  vertex normal, pose code). Same template, losses and budget.

The MLP's inputs are the template's rest-space centroids and normals (they identify
the face and do not change with the body's root motion) and the frame's pose code (the
pose); its last layer starts at zero, so the dynamic part starts as no change.
"""

from __future__ import annotations

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


def make_encoding(settings: ReconSettings, extent_m: float) -> nn.Module:
    if settings.encoding == "hash":
        return HashEncoding(levels=settings.encoding_levels,
                            table_size_log2=settings.hash_table_size_log2,
                            features=settings.hash_features, extent_m=extent_m)
    return FrequencyEncoding(levels=settings.encoding_levels, extent_m=extent_m)


class GarmentModel(nn.Module):
    """Shared parts: the template, its skinning, the pose codes and the MLP inputs.

    Args:
        template: the starting garment (rest space, with skinning weights).
        pose_codes: (T, k) float tensor, one code per capture frame, normalised to unit
            std per component (so ``pose_noise`` is in std units).
        bone_count: the body's bone count (for the skinning matrix).
        settings: the run's settings.
    """

    def __init__(self, template: GarmentTemplate, pose_codes: torch.Tensor, bone_count: int,
                 settings: ReconSettings):
        super().__init__()
        self.settings = settings
        device, dtype = pose_codes.device, pose_codes.dtype
        self.register_buffer("template_vertices",
                             torch.as_tensor(template.vertices, dtype=dtype, device=device))
        self.register_buffer("faces", torch.as_tensor(template.faces, dtype=torch.int64,
                                                      device=device))
        self.register_buffer("pose_codes", pose_codes)
        self.skinning = Skinning(template.weight_indices, template.weight_values, bone_count,
                                 device=device, dtype=dtype)
        centre = self.template_vertices.mean(0)
        self.register_buffer("centre", centre)
        self.extent_m = float((self.template_vertices - centre).abs().max()) * 1.05 + 1e-3

    @property
    def frame_count(self) -> int:
        return self.pose_codes.shape[0]

    def codes(self, frames: torch.Tensor, noise_std: float = 0.0,
              generator: torch.Generator | None = None) -> torch.Tensor:
        code = self.pose_codes.index_select(0, frames)
        if noise_std > 0:
            code = code + noise_std * torch.randn(code.shape, generator=generator,
                                                  device=code.device, dtype=code.dtype)
        return code

    def world(self, canonical: torch.Tensor, bone_transforms: torch.Tensor) -> torch.Tensor:
        """(B or 1, V, 3) canonical vertices -> (B, V, 3) world with (B, bones, 4, 4)
        skinning transforms."""
        return self.skinning(canonical.expand(bone_transforms.shape[0], -1, -1), bone_transforms)

    def static_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def dynamic_parameters(self) -> list[nn.Parameter]:
        return list(self.mlp.parameters()) + list(self.encoding.parameters())


class JacobianGarment(GarmentModel):
    """NGD: canonical vertices from static + dynamic per-face Jacobians via Poisson.

    ``poisson`` is the template topology's ``backend.mesh.poisson.PoissonSystem``.
    """

    def __init__(self, template: GarmentTemplate, poisson, pose_codes: torch.Tensor,
                 bone_count: int, settings: ReconSettings):
        super().__init__(template, pose_codes, bone_count, settings)
        self.poisson = poisson
        rest = poisson.rest_jacobians.to(device=pose_codes.device, dtype=pose_codes.dtype)
        self.register_buffer("rest_jacobians", rest)
        self.static_jacobians = nn.Parameter(rest.clone())
        # The Poisson solve keeps the rest centroid; a learned shift lets the whole
        # garment sit higher or lower than the template.
        self.static_translation = nn.Parameter(torch.zeros(3, dtype=rest.dtype, device=rest.device))
        v = self.template_vertices[self.faces]                      # (F, 3, 3)
        normal = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
        self.register_buffer("face_normals", normal / normal.norm(dim=-1, keepdim=True)
                             .clamp_min(1e-12))
        self.register_buffer("face_centroids", v.mean(1) - self.centre)
        self.encoding = make_encoding(settings, self.extent_m)
        self.mlp = DynamicMLP(self.encoding.out_features + 3, pose_codes.shape[1], 9,
                              settings.mlp_width, settings.mlp_depth)

    def static_parameters(self) -> list[nn.Parameter]:
        return [self.static_jacobians, self.static_translation]

    def jacobians(self, frames: torch.Tensor | None, noise_std: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, F, 3, 3) per-frame Jacobians; (1, F, 3, 3) static ones when ``frames`` is
        None (warm-up)."""
        static = self.static_jacobians.unsqueeze(0)
        if frames is None:
            return static
        element = torch.cat([self.encoding(self.face_centroids), self.face_normals], dim=-1)
        dynamic = self.mlp(element, self.codes(frames, noise_std, generator))
        return static + self.settings.dynamic_scale * dynamic.view(len(frames), -1, 3, 3)

    def canonical(self, frames: torch.Tensor | None, noise_std: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        return (self.poisson.vertices(self.jacobians(frames, noise_std, generator))
                + self.static_translation)

    def regulariser(self, visible_faces: torch.Tensor | None = None,
                    frames: torch.Tensor | None = None) -> torch.Tensor:
        """Mean squared distance of the Jacobians from the template's, over visible faces
        (all faces when ``visible_faces`` is None; else a (F,) bool/float mask)."""
        diff = (self.jacobians(frames) - self.rest_jacobians).square().sum((-1, -2))  # (B, F)
        if visible_faces is None:
            return diff.mean()
        weight = visible_faces.to(diff.dtype)
        return (diff * weight).sum() / (weight.sum() * diff.shape[0]).clamp_min(1.0)


class DisplacementGarment(GarmentModel):
    """The baseline: canonical = template + static offsets + MLP offsets."""

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

    def static_parameters(self) -> list[nn.Parameter]:
        return [self.static_offsets]

    def canonical(self, frames: torch.Tensor | None, noise_std: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        static = (self.template_vertices + self.static_offsets).unsqueeze(0)
        if frames is None:
            return static
        element = torch.cat([self.encoding(self.vertex_positions), self.vertex_normals], dim=-1)
        dynamic = self.mlp(element, self.codes(frames, noise_std, generator))
        return static + self.settings.dynamic_scale * dynamic

    def regulariser(self, visible_faces: torch.Tensor | None = None,
                    frames: torch.Tensor | None = None) -> torch.Tensor:
        """No Jacobians: the baseline relies on the Laplacian and edge terms."""
        return self.static_offsets.new_zeros(())
