"""``backend.render.rasterize`` + ``interpolate``: coverage and ids against a brute-force
ray caster, the sphere's projected area, near-plane clipping, batching modes,
``rast_db`` against finite differences, gradchecks, and every RenderError."""

import math

import numpy as np
import pytest
import torch

from backend.render import Camera, RenderError, interpolate, rasterize
from backend.render.camera import scene_near_far
from tests.backend_tier.render_helpers import (
    DEVICES,
    opencv_camera,
    raycast_reference,
    sphere,
)


def _random_scene(seed: int, n_tris: int = 60):
    """Random, overlapping and interpenetrating triangles in the camera frame, some
    crossing the near plane and some reaching behind the camera."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform([-1.2, -1.2, 0.2], [1.2, 1.2, 4.0], size=(n_tris, 1, 3))
    verts = centres + rng.normal(scale=0.6, size=(n_tris, 3, 3))
    return verts.reshape(-1, 3), np.arange(3 * n_tris).reshape(-1, 3)


def _render_ids(verts_cam, faces, K, width, height, near, far, device="cpu",
                dtype=torch.float64):
    camera = Camera.create(torch.tensor(K, dtype=dtype, device=device),
                           torch.eye(3, dtype=dtype, device=device),
                           torch.zeros(3, dtype=dtype, device=device), width, height)
    vc = torch.tensor(verts_cam, dtype=dtype, device=device).unsqueeze(0)
    clip = camera.clip(vc, near, far)
    tri = torch.tensor(faces, dtype=torch.int32, device=device)
    rast, _ = rasterize(clip, tri, (height, width))
    return rast[0, :, :, 3].round().long().cpu().numpy()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", [0, 1])
def test_ids_match_a_brute_force_ray_caster_with_near_plane_clipping(device, seed):
    width, height = 48, 40
    K = np.array([[30.0, 0.0, 23.3], [0.0, 33.0, 19.6], [0.0, 0.0, 1.0]])
    verts, faces = _random_scene(seed)
    near, far = 0.5, 4.5
    # Some triangles must cross the near plane and some reach behind the camera, or
    # clipping is not exercised.
    z = verts[faces][..., 2]
    assert ((z.min(1) < near) & (z.max(1) > near)).sum() >= 5
    assert (z.min(1) < 0).sum() >= 1
    ours = _render_ids(verts, faces, K, width, height, near, far, device)
    ref = raycast_reference(verts, faces, K, width, height, near, far)
    assert (ref > 0).mean() > 0.3 and len(np.unique(ref)) > 20  # a non-trivial image
    agree = (ours == ref).mean()
    assert agree >= 0.999, f"only {agree:.4%} of pixels agree"


@pytest.mark.parametrize("device", DEVICES)
def test_sphere_ids_match_the_ray_caster(device):
    verts, faces = sphere(3, dtype=torch.float64)
    verts = verts.numpy() + np.array([0.1, -0.05, 3.0])
    K = np.array([[45.0, 0.0, 31.7], [0.0, 45.0, 32.2], [0.0, 0.0, 1.0]])
    ours = _render_ids(verts, faces.numpy(), K, 64, 64, 1.0, 10.0, device)
    ref = raycast_reference(verts, faces.numpy(), K, 64, 64, 1.0, 10.0)
    assert (ref > 0).sum() > 500
    assert (ours == ref).mean() >= 0.999


@pytest.mark.parametrize("device", DEVICES)
def test_sphere_area_matches_the_projected_disk(device):
    """A 20k-face sphere at 256^2 covers the analytic disk's area within 0.2 %.

    The principal point is off the pixel grid's symmetry axes: a disk centred exactly on
    the grid gives a systematic pixel-counting error of the same size as the tolerance.
    """
    res, distance, f = 256, 3.0, 256.0
    verts, faces = sphere(5, device=device)
    camera = opencv_camera(res, res, f, eye=(0.0, -distance, 0.0), cx=127.5 + 0.37,
                           cy=127.5 + 0.21, device=device)
    cam = camera.to_camera(verts)
    rast, _ = rasterize(camera.clip(cam), faces, camera.resolution, grad_db=False)
    area = (rast[..., 3] > 0).sum().item()
    half_angle = math.asin(1.0 / distance)
    disk = math.pi * (f * math.tan(half_angle)) ** 2
    assert abs(area / disk - 1.0) < 0.002, (area, disk)


def test_row_zero_is_the_top_of_the_image():
    """A triangle above the camera's optical axis (world +Z, seen with Z up) lands in
    the first rows, where the OpenCV projection of its vertices says it should."""
    camera = opencv_camera(32, 32, 30.0, eye=(0.0, -4.0, 0.0))
    verts = torch.tensor([[-1.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 2.0]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast, _ = rasterize(camera.clip(camera.to_camera(verts)), tri, camera.resolution)
    rows = torch.nonzero(rast[0, :, :, 3] > 0)[:, 0]
    uv = camera.project(verts)[0]
    assert rows.max().item() < 16
    assert abs(rows.min().item() - uv[2, 1].item()) <= 1.0  # apex row
    assert abs(rows.max().item() - uv[0, 1].item()) <= 1.0  # base row


def test_barycentrics_and_depth_are_perspective_correct():
    """Interpolating camera-frame positions gives points on the triangle, on the pixel's
    ray, whose NDC depth is rast's z/w."""
    torch.manual_seed(0)
    camera = opencv_camera(24, 20, 25.0, eye=(0.3, -3.0, 0.4), dtype=torch.float64)
    verts = torch.tensor([[-1.0, 0.5, -0.8], [1.2, -0.6, -0.5], [0.1, 0.9, 1.1]],
                         dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    cam = camera.to_camera(verts)
    near, far = 0.5, 8.0
    rast, _ = rasterize(camera.clip(cam, near, far), tri, camera.resolution)
    p, _ = interpolate(cam, rast, tri)
    cov = rast[0, :, :, 3] > 0
    assert cov.sum() > 40
    ii, jj = torch.nonzero(cov, as_tuple=True)
    pts = p[0][cov]
    uv = (pts @ camera.K[0].T)[:, :2] / pts[:, 2:3]
    torch.testing.assert_close(uv[:, 0], jj.double(), atol=1e-9, rtol=0)
    torch.testing.assert_close(uv[:, 1], ii.double(), atol=1e-9, rtol=0)
    zndc = (far + near) / (far - near) - 2 * far * near / ((far - near) * pts[:, 2])
    torch.testing.assert_close(rast[0][cov][:, 2], zndc, atol=1e-9, rtol=0)
    normal = torch.linalg.cross(cam[0, 1] - cam[0, 0], cam[0, 2] - cam[0, 0])
    torch.testing.assert_close((pts - cam[0, 0]) @ normal, torch.zeros(len(pts),
                               dtype=torch.float64), atol=1e-9, rtol=0)


def test_rast_db_matches_finite_differences_of_the_barycentrics():
    """du/dX etc. equal the change of the analytic barycentrics per pixel step."""
    camera = opencv_camera(40, 40, 30.0, eye=(0.5, -3.0, 0.8), dtype=torch.float64)
    verts = torch.tensor([[-1.5, 0.3, -1.0], [1.5, -0.9, -0.7], [0.1, 1.2, 1.6]],
                         dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    clip = camera.clip(camera.to_camera(verts), 0.5, 8.0)
    rast, rast_db = rasterize(clip, tri, camera.resolution)
    cov = (rast[0, :, :, 3] > 0)
    inner = cov[1:-1, 1:-1] & cov[2:, 1:-1] & cov[:-2, 1:-1] & cov[1:-1, 2:] & cov[1:-1, :-2]
    assert inner.sum() > 100
    r = rast[0]
    # Barycentrics are rational in (X, Y): central differences are accurate to O(h^2)
    # with h = 1 pixel, so compare with a tolerance scaled to the values.
    du_dx = (r[1:-1, 2:, 0] - r[1:-1, :-2, 0]) / 2
    dv_dy = (r[2:, 1:-1, 1] - r[:-2, 1:-1, 1]) / 2
    db = rast_db[0, 1:-1, 1:-1]
    torch.testing.assert_close(db[..., 0][inner], du_dx[inner], rtol=0.02, atol=2e-4)
    torch.testing.assert_close(db[..., 3][inner], dv_dy[inner], rtol=0.02, atol=2e-4)
    assert (rast_db[0][~cov] == 0).all()


def test_instanced_and_range_modes_agree():
    verts, faces = sphere(2)
    cams = [opencv_camera(32, 32, 28.0, eye=e) for e in ((0, -3.0, 0.5), (2.5, 1.0, -1.0))]
    clips = [c.clip(c.to_camera(verts), 0.5, 10.0)[0] for c in cams]
    inst, inst_db = rasterize(torch.stack(clips), faces, (32, 32))
    # Range mode: both meshes in one vertex buffer; item b draws its own faces.
    n_v, n_f = verts.shape[0], faces.shape[0]
    pos = torch.cat(clips)
    tri = torch.cat([faces, faces + n_v])
    ranges = torch.tensor([[0, n_f], [n_f, n_f]], dtype=torch.int32)
    rng, rng_db = rasterize(pos, tri, (32, 32), ranges=ranges)
    torch.testing.assert_close(rng[..., :3], inst[..., :3])
    ids_inst = inst[..., 3].long()
    ids_rng = rng[..., 3].long()
    assert torch.equal(ids_rng[0], ids_inst[0])
    assert torch.equal(ids_rng[1], torch.where(ids_inst[1] > 0, ids_inst[1] + n_f, 0))
    torch.testing.assert_close(rng_db, inst_db)
    # (V,4) without ranges = one image of every triangle
    single, _ = rasterize(clips[0], faces, (32, 32))
    torch.testing.assert_close(single, inst[:1])


def test_small_candidate_budget_gives_the_same_raster():
    """Chunking over faces (memory bound) does not change the result."""
    verts, faces = sphere(3)
    camera = opencv_camera(64, 64, 50.0, eye=(0.0, -3.0, 0.3))
    clip = camera.clip(camera.to_camera(verts))
    full, full_db = rasterize(clip, faces, (64, 64))
    chunked, chunked_db = rasterize(clip, faces, (64, 64), candidate_budget=257)
    assert torch.equal(full, chunked) and torch.equal(full_db, chunked_db)
    # one face much larger than the budget is split across chunks too
    big = torch.tensor([[[-3.0, -3.0, 0.0, 1.0], [3.0, -3.0, 0.0, 1.0], [0.0, 3.0, 0.0, 1.0]]])
    one = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    ref, _ = rasterize(big, one, (40, 30))
    split, _ = rasterize(big, one, (40, 30), candidate_budget=97)
    assert (ref[..., 3] > 0).sum() > 900 and torch.equal(ref, split)


def test_empty_and_offscreen_geometry_render_background():
    tri = torch.zeros(0, 3, dtype=torch.int32)
    rast, db = rasterize(torch.zeros(2, 5, 4), tri, (6, 7))
    assert rast.shape == (2, 6, 7, 4) and db.shape == (2, 6, 7, 4) and not rast.any()
    behind = torch.tensor([[[-1.0, -1.0, 0.0, -1.0], [1.0, -1.0, 0.0, -1.0],
                            [0.0, 1.0, 0.0, -1.0]]])
    rast, _ = rasterize(behind, torch.tensor([[0, 1, 2]], dtype=torch.int32), (8, 8))
    assert not rast.any()
    _, no_db = rasterize(behind, torch.tensor([[0, 1, 2]], dtype=torch.int32), (8, 8),
                         grad_db=False)
    assert no_db.shape == (1, 8, 8, 0)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_rasterize_interpolate_with_diff_attrs(device):
    """rasterize -> interpolate (values and pixel derivatives) is differentiable w.r.t.
    clip positions and attributes, in float64, away from coverage changes."""
    torch.manual_seed(3)
    tri = torch.tensor([[0, 1, 2], [2, 1, 3]], dtype=torch.int32, device=device)
    pos = torch.tensor([[[-0.8, -0.7, 0.1, 1.0], [0.9, -0.6, 0.3, 1.2],
                         [-0.5, 0.8, -0.2, 0.9], [0.7, 0.9, 0.4, 1.1]]],
                       dtype=torch.float64, device=device)
    pos = (pos + 0.01 * torch.randn_like(pos)).requires_grad_(True)
    attr = torch.randn(4, 3, dtype=torch.float64, device=device, requires_grad=True)

    def fn(pos, attr):
        rast, rast_db = rasterize(pos, tri, (10, 12))
        out, out_da = interpolate(attr, rast, tri, rast_db=rast_db, diff_attrs=[0, 2])
        return out, out_da, rast[..., :3]

    rast, _ = rasterize(pos.detach(), tri, (10, 12))
    assert (rast[..., 3] > 0).sum() > 40
    assert torch.autograd.gradcheck(fn, (pos, attr), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_rasterize_is_on_the_inputs_device_and_dtype():
    verts, faces = sphere(1, dtype=torch.float64)
    camera = opencv_camera(16, 16, 12.0, eye=(0.0, -3.0, 0.0), dtype=torch.float64)
    rast, db = rasterize(camera.clip(camera.to_camera(verts)), faces, (16, 16))
    assert rast.dtype == db.dtype == torch.float64


def test_near_far_come_from_the_scene():
    pts = torch.tensor([[[0.0, 0.0, 2.0], [0.1, 0.0, 5.0], [0.0, 0.0, -1.0]]])
    near, far = scene_near_far(pts)
    assert near.item() == pytest.approx(1.0) and far.item() == pytest.approx(10.0)


# ------------------------------------------------------------------- bad inputs

TRI = torch.tensor([[0, 1, 2]], dtype=torch.int32)
POS = torch.tensor([[[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0]]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pos_clip": torch.zeros(3, 5)}, r"pos_clip must have shape \(V,4\) or \(B,V,4\); "
                                          r"got \(3, 5\)"),
        ({"pos_clip": torch.zeros(1, 2, 3, 4)}, r"got \(1, 2, 3, 4\)"),
        ({"pos_clip": POS.half()}, "pos_clip must be float32 or float64; got torch.float16"),
        ({"pos_clip": [[0, 0, 0, 1]]}, "pos_clip must be a torch.Tensor; got list"),
        ({"tri": TRI.long()}, "tri must be int32 .*; got torch.int64"),
        ({"tri": torch.zeros(2, 4, dtype=torch.int32)}, r"tri must have shape \(F,3\); "
                                                        r"got \(2, 4\)"),
        ({"tri": torch.tensor([[0, 1, 3]], dtype=torch.int32)},
         r"tri indices must lie in \[0, 2\] .*got values in \[0, 3\]"),
        ({"tri": torch.tensor([[0, -1, 2]], dtype=torch.int32)},
         r"got values in \[-1, 2\]"),
        ({"resolution": (0, 4)}, r"resolution must be \(height, width\)"),
        ({"resolution": (4,)}, r"resolution must be \(height, width\)"),
        ({"resolution": (4.5, 4)}, r"resolution must be \(height, width\)"),
        ({"resolution": "64"}, r"resolution must be \(height, width\)"),
        ({"ranges": torch.tensor([[0, 1]], dtype=torch.int32)},
         r"ranges is only for range mode"),
        ({"candidate_budget": 0}, "candidate_budget must be a positive int; got 0"),
    ],
)
def test_rasterize_rejects_bad_input(kwargs, message):
    args = {"pos_clip": POS, "tri": TRI, "resolution": (4, 4)} | kwargs
    with pytest.raises(RenderError, match=message):
        rasterize(**args)


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        (torch.tensor([[0, 2]], dtype=torch.int32), r"ranges\[0\] = \(0, 2\) must satisfy"),
        (torch.tensor([[-1, 1]], dtype=torch.int32), r"ranges\[0\] = \(-1, 1\)"),
        (torch.tensor([[0, 1]], dtype=torch.int64), "ranges must be an int32 CPU tensor"),
        (torch.tensor([0, 1], dtype=torch.int32), r"ranges must be a \(B,2\) tensor"),
    ],
)
def test_rasterize_rejects_bad_ranges(ranges, message):
    with pytest.raises(RenderError, match=message):
        rasterize(POS[0], TRI, (4, 4), ranges=ranges)


def test_index_check_is_redone_after_an_in_place_edit():
    tri = TRI.clone()
    rasterize(POS, tri, (4, 4))  # valid: remembered
    tri[0, 2] = 7
    with pytest.raises(RenderError, match=r"got values in \[0, 7\]"):
        rasterize(POS, tri, (4, 4))


def test_rasterize_rejects_mixed_devices():
    meta_tri = TRI.to("meta")
    with pytest.raises(RenderError, match="tri must be on pos_clip's device cpu; got meta"):
        rasterize(POS, meta_tri, (4, 4))


def _rast():
    return rasterize(POS, TRI, (4, 4))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attr": torch.zeros(3)}, r"attr must have shape \(V,A\) or \(B,V,A\); got \(3,\)"),
        ({"attr": torch.zeros(3, 2, dtype=torch.int64)}, "attr must be a floating-point"),
        ({"attr": torch.zeros(3, 2, dtype=torch.float64)}, "attr must have rast's dtype"),
        ({"attr": torch.zeros(2, 3, 2)}, "attr's batch size must be 1 or rast's batch size 1"),
        ({"rast": torch.zeros(4, 4, 4)}, r"rast must have shape \(B,H,W,4\); got \(4, 4, 4\)"),
        ({"tri": TRI.long()}, "tri must be int32"),
        ({"tri": torch.tensor([[0, 1, 5]], dtype=torch.int32)},
         r"tri indices must lie in \[0, 2\] \(attr has 3 vertices\)"),
        ({"diff_attrs": "some"}, "diff_attrs must be 'all' or a list of ints"),
        ({"diff_attrs": [2], "rast_db": "db"}, r"attribute indices in \[0, 1\]; got \[2\]"),
        ({"diff_attrs": [0]}, "diff_attrs needs rast_db"),
        ({"diff_attrs": [0], "rast_db": torch.zeros(1, 4, 4, 3)}, "rast_db must have rast's "
                                                                    "shape"),
    ],
)
def test_interpolate_rejects_bad_input(kwargs, message):
    rast, rast_db = _rast()
    args = {"attr": torch.zeros(3, 2), "rast": rast, "tri": TRI} | kwargs
    if isinstance(args.get("rast_db"), str):
        args["rast_db"] = rast_db
    with pytest.raises(RenderError, match=message):
        interpolate(**args)
