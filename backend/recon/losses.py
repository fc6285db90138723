"""Loss terms of the reconstruction (weights in ``settings.LossWeights``).

Images are ``(B, H, W, C)`` float tensors; masks in [0, 1]. Every term returns a scalar
tensor on the inputs' device, differentiable with respect to the prediction.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..render.mesh_utils import vertex_normals

HUBER_DELTA = 0.005
"""NGD's Huber delta for the diffuse term (on [0, 1] shading values)."""
DIFFUSE_HUBER_WEIGHT = 0.65
"""NGD's diffuse loss: 0.65 Huber + 0.35 (1 - SSIM)."""
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2


def silhouette_loss(pred_mask: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of coverage."""
    return (pred_mask - target_mask).square().mean()


def _gaussian_window(dtype, device) -> torch.Tensor:
    x = torch.arange(SSIM_WINDOW, dtype=dtype, device=device) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-x.square() / (2 * SSIM_SIGMA ** 2))
    return g / g.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5, images in [0, 1])
    of two ``(B, H, W, C)`` batches, computed per channel, zero-padded borders."""
    channels = pred.shape[-1]
    x = pred.permute(0, 3, 1, 2)
    y = target.permute(0, 3, 1, 2).to(x)
    g = _gaussian_window(x.dtype, x.device)
    pad = SSIM_WINDOW // 2

    def blur(img):
        img = F.conv2d(img, g.view(1, 1, 1, -1).expand(channels, 1, 1, -1), padding=(0, pad),
                       groups=channels)
        return F.conv2d(img, g.view(1, 1, -1, 1).expand(channels, 1, -1, 1), padding=(pad, 0),
                        groups=channels)

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    value = ((2 * mx * my + SSIM_C1) * (2 * sxy + SSIM_C2)) / (
        (mx * mx + my * my + SSIM_C1) * (sxx + syy + SSIM_C2))
    return value.mean()


def diffuse_loss(pred_diffuse: torch.Tensor, pred_mask: torch.Tensor,
                 target_diffuse: torch.Tensor) -> torch.Tensor:
    """NGD: 0.65 Huber(delta 0.005) + 0.35 (1 - SSIM) between the rendered garment's
    headlight shading and the one computed from the normal maps (0 off the garment)."""
    pred = pred_diffuse * pred_mask
    huber = F.huber_loss(pred, target_diffuse, delta=HUBER_DELTA) / HUBER_DELTA
    structure = 1 - ssim(pred, target_diffuse)
    return DIFFUSE_HUBER_WEIGHT * huber + (1 - DIFFUSE_HUBER_WEIGHT) * structure


def photometric_loss(pred_color: torch.Tensor, pred_mask: torch.Tensor,
                     target_rgb: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute colour difference where both masks cover the pixel."""
    weight = (pred_mask * target_mask).detach()
    return ((pred_color - target_rgb).abs() * weight).sum() / (3 * weight.sum()).clamp_min(1.0)


def depth_ranking_loss(pred_depth: torch.Tensor, pred_mask: torch.Tensor,
                       target_depth: torch.Tensor, target_mask: torch.Tensor,
                       pairs: int = 4096, min_gap_m: float = 0.01,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Depth ordering hinge (depth maps from estimators are only relative): for random
    pixel pairs inside both masks whose target depths differ by more than
    ``min_gap_m``, penalise a rendered order that disagrees."""
    valid = ((target_mask > 0.5) & (pred_mask.detach() > 0.5) & (target_depth > 0)).reshape(-1)
    index = torch.nonzero(valid).squeeze(1)
    if index.numel() < 2:
        return pred_depth.new_zeros(())
    pick = torch.randint(index.numel(), (2, pairs), generator=generator,
                         device=generator.device if generator is not None else None)
    pick = pick.to(index.device)
    a, b = index[pick[0]], index[pick[1]]
    pd, td = pred_depth.reshape(-1), target_depth.reshape(-1).to(pred_depth)
    gap = td[b] - td[a]
    use = gap.abs() > min_gap_m
    if not bool(use.any()):
        return pred_depth.new_zeros(())
    order = torch.sign(gap[use])
    return F.relu(-order * (pd[b][use] - pd[a][use])).mean()


class MeshRegulariser:
    """Laplacian and edge-length terms against a template (built once per topology).

    Args:
        template: (V, 3) float tensor; faces: (F, 3) int tensor on the same device.
    """

    def __init__(self, template: torch.Tensor, faces: torch.Tensor):
        f = faces.long()
        edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        edges = torch.unique(torch.sort(edges, dim=1).values, dim=0)
        self.edges = edges
        count = template.shape[0]
        both = torch.cat([edges, edges.flip(1)])
        degree = torch.zeros(count, dtype=template.dtype, device=template.device)
        degree.index_add_(0, both[:, 0], torch.ones(len(both), dtype=template.dtype,
                                                    device=template.device))
        # a gather and an index_add per call (no sparse tensor: the same dense kernels
        # on CPU and CUDA, and a few times faster than torch.sparse.mm here)
        self.rows, self.cols = both[:, 0], both[:, 1]
        self.inverse_degree = (1.0 / degree.clamp_min(1.0)).view(-1, 1)
        self.rest_laplacian = self.laplacian(template.unsqueeze(0))
        self.rest_lengths = (template[edges[:, 0]] - template[edges[:, 1]]).norm(dim=-1)
        self.scale = float(self.rest_lengths.mean())

    def laplacian(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) -> (B, V, 3) umbrella Laplacian (neighbour mean - vertex)."""
        total = torch.zeros_like(vertices).index_add_(1, self.rows,
                                                      vertices.index_select(1, self.cols))
        return total * self.inverse_degree - vertices

    def laplacian_loss(self, vertices: torch.Tensor) -> torch.Tensor:
        """Mean squared change of the Laplacian, in units of the mean edge length."""
        diff = (self.laplacian(vertices) - self.rest_laplacian) / self.scale
        return diff.square().sum(-1).mean()

    def edge_loss(self, vertices: torch.Tensor) -> torch.Tensor:
        """Mean squared relative change of edge lengths (stretch and compression)."""
        lengths = (vertices[:, self.edges[:, 0]] - vertices[:, self.edges[:, 1]]).norm(dim=-1)
        return ((lengths - self.rest_lengths) / self.rest_lengths.clamp_min(1e-6)).square().mean()


def cosine_decay(step: int, total: int, final_fraction: float) -> float:
    """Learning-rate factor: 1 at step 0, ``final_fraction`` at ``total``."""
    progress = min(max(step / max(total, 1), 0.0), 1.0)
    return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


def occlusion_order_loss(world: torch.Tensor, faces: torch.Tensor, camera, rast: torch.Tensor,
                         depth: torch.Tensor, target_mask: torch.Tensor,
                         margin_m: float, reach_m: float = float("inf")) -> torch.Tensor:
    """Garment behind the body where the footage shows garment.

    A garment vertex facing the camera whose pixel (nearest) shows the body in our
    render ``rast`` (triangle id past the garment's ``F`` faces) while ``target_mask``
    shows garment there lies behind the body where it should cover it: a skirt's
    front passed behind a thigh. The silhouette cannot fix that (its gradient moves
    the hole's edge sideways); this term pulls such vertices towards the camera until
    they are ``margin_m`` in front of the body's rendered ``depth``. Vertices more
    than ``reach_m`` behind that surface are left alone: there the garment the footage
    shows is more likely another part of it (a sleeve round an arm in front of the
    torso) than this vertex. Returns the mean over all vertices of
    ``((z - z_body + margin) / margin)^2`` for those vertices.

    Args:
        world: (B, V, 3) garment vertices. faces: (F, 3) garment faces.
        camera: the B cameras of the render. rast: (B, H, W, 4) its raster (garment and
            body); depth: (B, H, W, 1) its depth. target_mask: (B, H, W, 1) in [0, 1].
    """
    batch, height, width = rast.shape[:3]
    cam = camera.to_camera(world)                                         # (B, V, 3)
    with torch.no_grad():
        uv = camera.project(world)
        col, row = uv[..., 0].round().long(), uv[..., 1].round().long()
        inside = (col >= 0) & (col < width) & (row >= 0) & (row < height) & (cam[..., 2] > 0)
        pixel = (row.clamp(0, height - 1) * width + col.clamp(0, width - 1))
        ids = rast[..., 3].reshape(batch, -1).gather(1, pixel)
        body_depth = depth[..., 0].reshape(batch, -1).gather(1, pixel)
        wanted = target_mask[..., 0].reshape(batch, -1).gather(1, pixel) > 0.5
        # vertex normals in the camera frame: facing the camera when n . (-p) > 0
        facing = (vertex_normals(cam, faces) * -cam).sum(-1) > 0
        behind = cam[..., 2] - body_depth
        hidden = inside & wanted & facing & (ids > faces.shape[0]) & (behind < reach_m)
    excess = torch.relu(cam[..., 2] - body_depth + margin_m) / margin_m
    return torch.where(hidden, excess, torch.zeros_like(excess)).square().mean()
