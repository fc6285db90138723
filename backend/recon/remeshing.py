"""Adaptive remeshing during training (NGD): where the image loss is hungry, the garment
gets more triangles.

- ``FaceDemand`` gathers, over the steps of a remeshing epoch, the per-pixel gradient
  magnitude of the image loss (diffuse or photometric) with respect to the rendered
  image, inside the target garment mask, per garment triangle (the rasterizer's
  triangle-id channel, one scatter-add per step) and averages it per pixel.
- ``select_faces`` picks the faces above a quantile of that demand.
- ``refined_template`` splits and flips the template there (``backend.mesh.remesh``)
  and carries its skinning weights over.
- ``transferred_static_jacobians`` gives the new mesh static Jacobians that reproduce
  the garment's static shape as it was just before the remesh.

The trainer (``Trainer._remesh``) swaps the model and the optimisers' parameters and
rebuilds the Poisson factor, the regulariser and the raster topology once per event.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..body.model import sparse_weights
from ..mesh.remesh import RemeshResult, interpolate_vertex_values, remesh
from ..mesh.templates import GarmentTemplate
from .settings import ReconSettings


class FaceDemand:
    """Per-face mean of ``|dL/dpixel|`` over the pixels each face covered (summed over
    the image's channels), accumulated over steps.

    Args:
        face_count: garment faces; triangle ids ``1..face_count`` are garment faces,
            larger ones the body (an occluder), 0 the background.
    """

    def __init__(self, face_count: int, device):
        self.face_count = face_count
        self.total = torch.zeros(face_count + 1, dtype=torch.float64, device=device)
        self.pixels = torch.zeros(face_count + 1, dtype=torch.float64, device=device)
        self.steps = 0

    def add(self, image_grad: torch.Tensor, rast: torch.Tensor,
            target_mask: torch.Tensor) -> None:
        """One step: ``image_grad`` ``(B, H, W, C)`` the loss gradient w.r.t. the
        rendered image, ``rast`` ``(B, H, W, 4)`` (triangle id in channel 3),
        ``target_mask`` ``(B, H, W, 1)``."""
        ids = rast[..., 3].detach().long().clamp(max=self.face_count + 1)
        inside = (target_mask[..., 0] > 0.5) & (ids > 0) & (ids <= self.face_count)
        ids = torch.where(inside, ids, torch.zeros_like(ids)).reshape(-1)
        magnitude = image_grad.detach().abs().sum(-1).reshape(-1).to(self.total.dtype)
        self.total.index_add_(0, ids, magnitude)
        self.pixels.index_add_(0, ids, torch.ones_like(magnitude))
        self.steps += 1

    def mean(self) -> np.ndarray:
        """``(F,)`` float64 mean demand per covered pixel; 0 for faces never seen."""
        total, pixels = self.total[1:], self.pixels[1:]
        return (total / pixels.clamp_min(1.0)).cpu().numpy()

    def seen(self) -> np.ndarray:
        """``(F,)`` bool: faces that covered a pixel inside the garment mask."""
        return (self.pixels[1:] > 0).cpu().numpy()


def select_faces(demand: np.ndarray, seen: np.ndarray, quantile: float) -> np.ndarray:
    """``(F,)`` bool: the seen faces whose demand is at or above the ``quantile`` of the
    seen faces' demand (an empty selection when nothing was seen or all demand is 0)."""
    if not seen.any():
        return np.zeros_like(seen)
    values = demand[seen]
    if not values.max() > 0:
        return np.zeros_like(seen)
    threshold = np.quantile(values, quantile)
    return seen & (demand >= threshold) & (demand > 0)


def remesh_steps(settings: ReconSettings) -> list[int]:
    """The steps after which the mesh is refined: every ``remesh_interval`` steps after
    the warm-up, up to ``remesh_stop`` of all steps (none for the baseline or when
    remeshing is off)."""
    if not settings.remesh or settings.method != "ngd":
        return []
    stop = int(settings.remesh_stop * settings.total_steps)
    first = settings.warmup_steps + settings.remesh_interval
    return list(range(first, stop + 1, settings.remesh_interval))


def event_schedule(settings: ReconSettings, index: int, count: int,
                   template_edge_m: float) -> tuple[float, float]:
    """``(quantile, min_edge_len_m)`` of the ``index``-th of ``count`` events: the
    quantile rises and the shortest edge that may still be split decays (geometrically)
    from the first event to the last."""
    t = index / max(count - 1, 1)
    q0, q1 = settings.remesh_quantile
    e0, e1 = settings.remesh_min_edge
    return q0 + (q1 - q0) * t, template_edge_m * e0 * (e1 / e0) ** t


def refined_template(template: GarmentTemplate, face_mask: np.ndarray, min_edge_len_m: float,
                     max_faces: int) -> tuple[GarmentTemplate, RemeshResult]:
    """Split and flip ``template`` where ``face_mask`` says (``backend.mesh.remesh``);
    new vertices get the mean of their edge's skinning weights (renormalised, the
    template's influence count kept), so the refined garment skins exactly as the old
    one did at the same points."""
    result = remesh(template.vertices.astype(np.float64), template.faces, face_mask,
                    min_edge_len_m, max_faces=max_faces)
    weights = _dense_weights(template, result)
    indices, values = sparse_weights(weights, template.weight_indices.shape[1])
    refined = GarmentTemplate(vertices=result.vertices.astype(np.float32),
                              faces=result.faces.astype(np.int32), weight_indices=indices,
                              weight_values=values, garment_type=template.garment_type,
                              source=template.source)
    return refined, result


def _dense_weights(template: GarmentTemplate, result: RemeshResult) -> np.ndarray:
    bones = int(template.weight_indices.max()) + 1
    dense = np.zeros((len(template.vertices), bones))
    np.put_along_axis(dense, template.weight_indices.astype(np.int64),
                      template.weight_values.astype(np.float64), axis=1)
    return interpolate_vertex_values(result, dense)


def transferred_static_jacobians(poisson, canonical: torch.Tensor
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Static Jacobians on the refined mesh that reproduce ``canonical`` ``(V', 3)`` (the
    static shape just before the remesh, interpolated to the new vertices), and the
    translation ``(3,)`` (metres) the Poisson solve's centroid gauge then needs.

    NGD copies each new face's Jacobian from the nearest old faces; computing it from
    the interpolated shape instead is exact (the surface does not move at all) and keeps
    only the integrable part of the old field, which is all the solve ever used.
    """
    canonical = canonical.to(device=poisson.device, dtype=poisson.dtype)
    jacobians = poisson.jacobians(canonical)
    solved = poisson.vertices(jacobians)
    return jacobians, (canonical - solved).mean(0)


def parent_gather(values: torch.Tensor, result: RemeshResult) -> torch.Tensor:
    """Per-face values ``(F, ...)`` -> ``(F', ...)``: each new face takes its parent's
    (optimiser moments of the static Jacobians)."""
    index = torch.as_tensor(result.face_parent, device=values.device)
    return values.index_select(0, index)


def vertex_interpolate(values: torch.Tensor, result: RemeshResult) -> torch.Tensor:
    """Per-vertex values ``(V, ...)`` -> ``(V', ...)``, new vertices the mean of their
    edge's two ends (albedo and its optimiser moments)."""
    parents = torch.as_tensor(result.vertex_parents, device=values.device)
    if parents.numel() == 0:
        return values.clone()
    midpoints = 0.5 * (values.index_select(0, parents[:, 0]) +
                       values.index_select(0, parents[:, 1]))
    return torch.cat([values, midpoints])


def max_faces(settings: ReconSettings, template_faces: int) -> int:
    """The face budget of the refined garment."""
    return max(template_faces, int(math.ceil(settings.remesh_max_faces_factor
                                             * template_faces)))
