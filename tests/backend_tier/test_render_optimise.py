"""End-to-end: silhouettes alone, through rasterize + antialias, drive a mesh to a target.

1. From a unit sphere, fit translation and scale to a target sphere's silhouettes.
2. Fit free vertex offsets (with a Laplacian smoothness term) over 6 views to a
   deformed target.
Both must reach mask IoU >= 0.99 in every view.
"""

import pytest
import torch

from backend.render import (
    TorchRasterizer,
    antialias,
    build_topology,
    rasterize,
    uniform_laplacian,
)
from tests.backend_tier.render_helpers import DEVICES, iou, ring_cameras, sphere


def _masks(camera, verts, faces, topology):
    """Antialiased masks ``(B, H, W, 1)`` and the raster."""
    cam = camera.to_camera(verts)
    clip = camera.clip(cam, 1.0, 8.0)
    rast, _ = rasterize(clip, faces, camera.resolution, grad_db=False)
    hard = (rast[..., 3:4] > 0).to(verts.dtype)
    return antialias(hard, rast, clip, faces, topology=topology), rast


def _hard(camera, verts, faces):
    with torch.no_grad():
        cam = camera.to_camera(verts)
        rast, _ = rasterize(camera.clip(cam, 1.0, 8.0), faces, camera.resolution,
                            grad_db=False)
    return rast[..., 3] > 0


@pytest.mark.parametrize("device", DEVICES)
def test_fit_translation_and_scale_to_a_target_silhouette(device):
    torch.manual_seed(0)
    verts, faces = sphere(3, radius=0.5, device=device)
    camera = ring_cameras(2, 64, 70.0, 3.0, device=device)
    topo = build_topology(faces)
    target_t = torch.tensor([0.18, -0.12, 0.1], device=device)
    target_s = torch.tensor(1.3, device=device)
    target = _hard(camera, verts * target_s + target_t, faces)
    assert iou(_hard(camera, verts, faces), target) < 0.7  # a real distance to cover

    t = torch.zeros(3, device=device, requires_grad=True)
    log_s = torch.zeros((), device=device, requires_grad=True)
    opt = torch.optim.Adam([t, log_s], lr=0.02)
    for _ in range(120):
        mask, _ = _masks(camera, verts * log_s.exp() + t, faces, topo)
        loss = ((mask[..., 0] - target.to(mask.dtype)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        fitted = _hard(camera, verts * log_s.exp() + t, faces)
    scores = [iou(fitted[i], target[i]) for i in range(2)]
    print("IoU per view", [round(s, 4) for s in scores])
    assert min(scores) >= 0.99, scores
    assert abs(log_s.exp().item() - 1.3) < 0.05


def _deformed(verts: torch.Tensor) -> torch.Tensor:
    """A smooth, convex-ish target: an ellipsoid with a bulge on one side."""
    x, y, z = verts.unbind(-1)
    bulge = 0.15 * torch.exp(-((x - 0.5) ** 2 + z**2) / 0.15)
    return torch.stack([1.25 * x + bulge, 0.85 * y, 1.05 * z], dim=-1)


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_fit_free_vertex_offsets_over_six_views_to_a_deformed_target(device):
    torch.manual_seed(0)
    verts, faces = sphere(3, radius=0.6, device=device)
    camera = ring_cameras(6, 80, 80.0, 3.2, device=device)
    topo = build_topology(faces)
    target_verts = _deformed(verts)
    target = _hard(camera, target_verts, faces)
    start = [iou(m, t) for m, t in zip(_hard(camera, verts, faces), target, strict=True)]
    assert max(start) < 0.95

    offsets = torch.zeros_like(verts, requires_grad=True)
    opt = torch.optim.Adam([offsets], lr=0.01)
    for step in range(300):
        v = verts + offsets
        mask, _ = _masks(camera, v, faces, topo)
        sil = ((mask[..., 0] - target.to(mask.dtype)) ** 2).mean()
        smooth = (uniform_laplacian(v, faces) ** 2).sum(-1).mean()
        loss = sil + 2.0 * smooth
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 200:
            for group in opt.param_groups:
                group["lr"] = 0.003
    fitted = _hard(camera, verts + offsets.detach(), faces)
    scores = [iou(fitted[i], target[i]) for i in range(6)]
    print("IoU per view", [round(s, 4) for s in scores])
    assert min(scores) >= 0.99, scores


def test_torch_rasterizer_methods_match_the_functions():
    verts, faces = sphere(2)
    camera = ring_cameras(1, 24, 20.0, 3.0)
    clip = camera.clip(camera.to_camera(verts))
    r = TorchRasterizer(walk=False)
    rast, db = r.rasterize(clip, faces, camera.resolution)
    rast2, db2 = rasterize(clip, faces, camera.resolution)
    assert torch.equal(rast, rast2) and torch.equal(db, db2)
    color = torch.rand(1, 24, 24, 2)
    assert torch.equal(r.antialias(color, rast, clip, faces),
                       antialias(color, rast, clip, faces, walk=False))
