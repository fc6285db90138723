"""``backend.render.camera`` conventions and ``render_passes`` (mask, normals, diffuse,
depth, albedo x lighting); every RenderError."""

import math

import pytest
import torch

from backend.render import (
    Camera,
    Lighting,
    RenderError,
    RenderPasses,
    TorchRasterizer,
    look_at,
    opencv_projection,
    render_passes,
)
from tests.backend_tier.render_helpers import DEVICES, opencv_camera, sphere


def test_projection_sends_opencv_pixels_to_raster_pixels():
    """clip -> NDC -> raster pixel coordinates equal K's projection, skew included, and
    NDC depth is -1 at near and +1 at far."""
    torch.manual_seed(0)
    K = torch.tensor([[50.0, 3.0, 20.3], [0.0, 55.0, 13.7], [0.0, 0.0, 1.0]],
                     dtype=torch.float64)
    R, t = look_at(torch.tensor([0.4, -3.0, 1.0], dtype=torch.float64),
                   torch.zeros(3, dtype=torch.float64),
                   torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    camera = Camera.create(K, R, t, 41, 29)
    pts = torch.randn(1, 50, 3, dtype=torch.float64) * 0.5
    cam = camera.to_camera(pts)
    clip = camera.clip(cam, 1.0, 5.0)
    ndc = clip[..., :3] / clip[..., 3:]
    col = (ndc[..., 0] + 1) * 41 / 2 - 0.5
    row = (ndc[..., 1] + 1) * 29 / 2 - 0.5
    uv = camera.project(pts)
    torch.testing.assert_close(col, uv[..., 0])
    torch.testing.assert_close(row, uv[..., 1])
    torch.testing.assert_close(clip[..., 3], cam[..., 2])  # w = camera depth
    edge = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 5.0]]], dtype=torch.float64)
    z = camera.clip(edge, 1.0, 5.0)
    torch.testing.assert_close(z[..., 2] / z[..., 3],
                               torch.tensor([[-1.0, 1.0]], dtype=torch.float64))


def test_look_at_puts_the_target_at_the_principal_point_and_up_upwards():
    camera = opencv_camera(32, 32, 30.0, eye=(2.0, -3.0, 1.0), target=(0.1, 0.2, 0.3))
    uv = camera.project(torch.tensor([[0.1, 0.2, 0.3], [0.1, 0.2, 0.8]]))[0]
    torch.testing.assert_close(uv[0], torch.tensor([15.5, 15.5]), atol=1e-4, rtol=0)
    assert uv[1, 1] < uv[0, 1]  # world up is image up (smaller row)
    R = camera.R[0]
    torch.testing.assert_close(R @ R.T, torch.eye(3), atol=1e-6, rtol=0)
    assert torch.det(R).item() == pytest.approx(1.0, abs=1e-6)


def _sphere_passes(device="cpu", dtype=torch.float32, textured=True, lighting=None):
    res, distance, radius = 48, 3.0, 1.0
    verts, faces = sphere(3, radius=radius, dtype=dtype, device=device)
    camera = opencv_camera(res, res, 40.0, eye=(0.0, -distance, 0.0), dtype=dtype,
                           device=device)
    u = 0.5 + torch.atan2(verts[:, 1], verts[:, 0]) / (2 * math.pi)
    v = 0.5 - torch.asin(verts[:, 2].clamp(-1, 1)) / math.pi
    albedo = torch.full((1, 8, 8, 3), 0.5, dtype=dtype, device=device)
    albedo[..., 1] = 0.25
    kwargs = dict(uv=torch.stack([u, v], 1), albedo=albedo, lighting=lighting) \
        if textured else {}
    passes = render_passes(TorchRasterizer(device), verts, faces, camera, **kwargs)
    return passes, camera


@pytest.mark.parametrize("device", DEVICES)
def test_sphere_passes_have_the_expected_values(device):
    passes, _ = _sphere_passes(device)
    assert isinstance(passes, RenderPasses)
    c = 23  # near the centre of the 48x48 image (the sphere's centre is at 23.5)
    assert passes.mask.shape == (1, 48, 48, 1) and passes.color.shape == (1, 48, 48, 3)
    assert passes.mask[0, c, c, 0] == 1 and passes.mask[0, 0, 0, 0] == 0
    n = passes.normals[0, c, c]
    assert n[2] < -0.98  # faces the camera: OpenCV z points away from it
    assert passes.diffuse[0, c, c, 0] > 0.98
    assert passes.depth[0, c, c, 0].item() == pytest.approx(2.0, abs=0.02)
    # headlight shading falls off towards the silhouette
    covered = passes.rast[0, :, :, 3] > 0
    rim = covered & torch.nn.functional.max_pool2d(
        (~covered).float()[None], 3, 1, 1)[0].bool()  # covered, next to background
    d = passes.diffuse[0, :, :, 0]
    assert d[rim].mean() < 0.6 and d[covered & ~rim].mean() > d[rim].mean() + 0.2
    # ambient 1, constant albedo -> colour = albedo where fully covered
    inner = covered & (passes.mask[0, :, :, 0] == 1)
    torch.testing.assert_close(passes.color[0][inner][:, 1],
                               torch.full((int(inner.sum()),), 0.25, device=device))
    for image in (passes.mask, passes.diffuse, passes.depth):
        assert (image[0][~covered] == 0).sum() > 0.5 * (~covered).sum()


def test_lighting_directional_and_sh_terms():
    light_dir = torch.tensor([0.0, 0.0, -1.0])  # towards the camera
    sh = torch.zeros(9, 3)
    sh[0] = 0.1 / 0.28209479177387814  # a constant 0.1
    lighting = Lighting(ambient=torch.full((3,), 0.2), direction=light_dir,
                        color=torch.full((3,), 0.5), sh=sh)
    passes, _ = _sphere_passes(lighting=lighting)
    c = 23
    n = passes.normals[0, c, c] / passes.normals[0, c, c].norm()
    expected = 0.5 * (0.2 + 0.5 * max(0.0, float(-n[2])) + 0.1)
    assert passes.color[0, c, c, 0].item() == pytest.approx(expected, rel=1e-4)
    # batched lighting parameters are accepted
    batched = Lighting(ambient=torch.full((1, 3), 0.2))
    out = batched.shade(torch.nn.functional.normalize(torch.randn(1, 2, 2, 3), dim=-1))
    torch.testing.assert_close(out, torch.full((1, 2, 2, 3), 0.2))


def test_passes_without_texture_and_their_gradients():
    passes, _ = _sphere_passes(textured=False)
    assert passes.color is None
    verts, faces = sphere(2)
    verts = verts.clone().requires_grad_(True)
    camera = opencv_camera(32, 32, 30.0, eye=(0.0, -3.0, 0.0))
    p = render_passes(TorchRasterizer(), verts, faces, camera)
    (p.mask.sum() + p.diffuse.sum() + p.depth.sum() + p.normals.sum()).backward()
    assert verts.grad is not None and verts.grad.abs().sum() > 0


def test_a_batch_of_cameras_renders_one_image_each():
    verts, faces = sphere(2)
    cams = [opencv_camera(24, 24, 20.0, eye=e) for e in ((0, -3.0, 0), (3.0, 0, 0))]
    camera = Camera.create(torch.cat([c.K for c in cams]), torch.cat([c.R for c in cams]),
                           torch.cat([c.t for c in cams]), 24, 24)
    both = render_passes(TorchRasterizer(), verts, faces, camera)
    one = render_passes(TorchRasterizer(), verts, faces, cams[1])
    assert both.mask.shape[0] == 2
    torch.testing.assert_close(both.diffuse[1:], one.diffuse)


def test_per_view_albedo_and_an_empty_view():
    """A (B, Ht, Wt, 3) albedo is sampled per view; a view that sees nothing is zero."""
    verts, faces = sphere(2)
    cams = [opencv_camera(24, 24, 20.0, eye=e) for e in ((0, -3.0, 0), (0, 3.0, 0))]
    camera = Camera.create(torch.cat([c.K for c in cams]), torch.cat([c.R for c in cams]),
                           torch.cat([c.t for c in cams]), 24, 24)
    albedo = torch.stack([torch.full((4, 4, 3), 0.2), torch.full((4, 4, 3), 0.7)])
    uv = torch.rand(verts.shape[0], 2)
    p = render_passes(TorchRasterizer(), verts, faces, camera, uv=uv, albedo=albedo)
    inner = p.mask[..., 0] == 1
    torch.testing.assert_close(p.color[0][inner[0]], torch.full((int(inner[0].sum()), 3), 0.2))
    torch.testing.assert_close(p.color[1][inner[1]], torch.full((int(inner[1].sum()), 3), 0.7))
    away = opencv_camera(24, 24, 20.0, eye=(0.0, -3.0, 0.0), target=(0.0, -6.0, 0.0))
    empty = render_passes(TorchRasterizer(), verts, faces, away, uv=uv, albedo=albedo[:1])
    for image in (empty.mask, empty.normals, empty.diffuse, empty.depth, empty.color):
        assert not image.any()


# ------------------------------------------------------------------- bad inputs

K = torch.eye(3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((torch.eye(4), torch.eye(3), torch.zeros(3), 4, 4),
         r"K must have shape \(3,3\) or \(B,3,3\); got \(4, 4\)"),
        ((K, torch.eye(3), torch.zeros(4), 4, 4), r"t must have shape \(3\) or \(B,3\)"),
        ((K.int(), torch.eye(3), torch.zeros(3), 4, 4), "K must be float32 or float64"),
        ((K, torch.eye(3).double(), torch.zeros(3), 4, 4), "must share dtype and device"),
        ((K.expand(2, 3, 3), torch.eye(3).expand(3, 3, 3), torch.zeros(3), 4, 4),
         "must share one batch size"),
        ((K, torch.eye(3), torch.zeros(3), 0, 4), "width must be a positive int"),
        ((K, torch.eye(3), torch.zeros(3), 4, 2.5), "height must be a positive int"),
        (("K", torch.eye(3), torch.zeros(3), 4, 4), "K must be a torch.Tensor; got str"),
    ],
)
def test_camera_rejects_bad_input(args, message):
    with pytest.raises(RenderError, match=message):
        Camera.create(*args)


def test_projection_and_points_reject_bad_input():
    with pytest.raises(RenderError, match="need 0 < near < far"):
        opencv_projection(K, 4, 4, 2.0, 1.0)
    camera = Camera.create(K.expand(2, 3, 3), torch.eye(3), torch.zeros(3), 4, 4)
    with pytest.raises(RenderError, match=r"points must have shape \(V,3\) or \(B,V,3\)"):
        camera.to_camera(torch.zeros(5, 2))
    with pytest.raises(RenderError, match="points' batch size must be 1 or the camera "
                                          "batch 2"):
        camera.to_camera(torch.zeros(3, 5, 3))
    with pytest.raises(RenderError, match="points must be a float tensor"):
        camera.to_camera(torch.zeros(5, 3, dtype=torch.int64))


def test_render_passes_rejects_bad_input():
    verts, faces = sphere(1)
    camera = opencv_camera(8, 8, 8.0, eye=(0.0, -3.0, 0.0))
    r = TorchRasterizer()
    with pytest.raises(RenderError, match="camera must be a backend.render.Camera; got dict"):
        render_passes(r, verts, faces, {})
    with pytest.raises(RenderError, match=r"verts must have shape \(V,3\) or \(B,V,3\); "
                                          r"got \(12, 4\)"):
        render_passes(r, torch.zeros(12, 4), faces, camera)
    with pytest.raises(RenderError, match="albedo needs uv"):
        render_passes(r, verts, faces, camera, albedo=torch.zeros(1, 4, 4, 3))
    with pytest.raises(RenderError, match=r"albedo must have shape \(1,Ht,Wt,3\)"):
        render_passes(r, verts, faces, camera, uv=torch.zeros(12, 2),
                      albedo=torch.zeros(4, 4, 3))
    with pytest.raises(RenderError, match="Lighting.color is required"):
        Lighting(ambient=torch.ones(3), direction=torch.ones(3)).shade(torch.ones(1, 2, 2, 3))
    with pytest.raises(RenderError, match=r"Lighting.ambient must have shape \(3,\)"):
        Lighting(ambient=torch.ones(4)).shade(torch.ones(1, 2, 2, 3))
    with pytest.raises(RenderError, match=r"Lighting.sh must have shape \(9, 3\)"):
        Lighting(ambient=torch.ones(3), sh=torch.ones(4, 3)).shade(torch.ones(1, 2, 2, 3))
