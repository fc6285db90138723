"""``backend.render.antialias``: the topology table, coverage of straight edges,
gradchecks, and the silhouette derivative of a dense sphere against a supersampled
finite-difference reference, with and without the walk; every RenderError."""

import pytest
import torch

from backend.render import (
    RenderError,
    Topology,
    antialias,
    build_topology,
    rasterize,
)
from tests.backend_tier.render_helpers import DEVICES, opencv_camera, sphere


def test_topology_of_a_closed_mesh_pairs_every_edge():
    _, faces = sphere(2)
    topo = build_topology(faces)
    f = torch.arange(faces.shape[0]).unsqueeze(1).expand(-1, 3)
    k = torch.arange(3).expand_as(f)
    assert (topo.neighbor >= 0).all()
    # the neighbour's neighbour across the same edge is the face itself
    assert torch.equal(topo.neighbor[topo.neighbor, topo.neighbor_edge], f)
    assert torch.equal(topo.neighbor_edge[topo.neighbor, topo.neighbor_edge], k)
    # the shared edge has the same two vertices seen from both faces
    t = topo.tri
    mine = torch.stack([t[f, (k + 1) % 3], t[f, (k + 2) % 3]], -1).sort(-1).values
    nb, ne = topo.neighbor, topo.neighbor_edge
    theirs = torch.stack([t[nb, (ne + 1) % 3], t[nb, (ne + 2) % 3]], -1).sort(-1).values
    assert torch.equal(mine, theirs)
    # the opposite vertex is the neighbour's third vertex, not on the edge
    assert torch.equal(topo.opposite, t[nb, ne])
    assert not (topo.opposite.unsqueeze(-1) == mine).any()


def test_topology_marks_boundary_and_non_manifold_edges():
    # Three triangles share edge (0, 1); triangle 3 hangs off triangle 0's edge (1, 2).
    tri = torch.tensor([[0, 1, 2], [1, 0, 3], [0, 1, 4], [2, 1, 5]], dtype=torch.int32)
    topo = build_topology(tri)
    assert topo.num_faces == 4
    # edge k=2 of face 0 is (0, 1): non-manifold -> no neighbour
    assert topo.neighbor[0, 2] == -1 and topo.neighbor[1, 2] == -1
    assert topo.neighbor[0, 0] == 3 and topo.opposite[0, 0] == 5
    assert topo.neighbor[3, 2] == 0 and topo.opposite[3, 2] == 0  # edge (2, 1)
    assert (topo.neighbor[0, 1] == -1) and (topo.opposite[0, 1] == -1)  # boundary


def _triangle_scene(dtype=torch.float64, device="cpu"):
    pos = torch.tensor([[[-0.71, -0.62, 0.2, 1.0], [0.83, -0.35, 0.1, 1.1],
                         [-0.12, 0.77, 0.3, 0.9]]], dtype=dtype, device=device)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32, device=device)
    return pos, tri


def test_antialiased_coverage_of_a_triangle_matches_its_area():
    """With straight edges the box-filter estimate is close to the exact area; the
    aliased pixel count is not as close."""
    res = 64
    pos, tri = _triangle_scene()
    rast, _ = rasterize(pos, tri, (res, res))
    mask = (rast[..., 3:4] > 0).double()
    aa = antialias(mask, rast, pos, tri)
    xy = (pos[0, :, :2] / pos[0, :, 3:]) * (res / 2)  # pixels
    e1, e2 = xy[1] - xy[0], xy[2] - xy[0]
    area = 0.5 * abs(e1[0] * e2[1] - e1[1] * e2[0]).item()
    err_aa = abs(aa.sum().item() - area)
    err_plain = abs(mask.sum().item() - area)
    assert err_aa < 0.5 < err_plain, (err_aa, err_plain, area)
    assert aa.min() >= 0 and aa.max() <= 1


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_antialias_single_triangle(device):
    pos, tri = _triangle_scene(device=device)
    rast, _ = rasterize(pos, tri, (12, 12))
    color = torch.rand(1, 12, 12, 2, dtype=torch.float64, device=device)
    color[..., 0] = rast[..., 3] > 0  # a mask channel and a random one

    def fn(pos, color):
        return antialias(color, rast, pos, tri)

    pos = pos.clone().requires_grad_(True)
    color = color.requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (pos, color), eps=1e-7, atol=1e-6)
    # silhouettes exist: the gradient w.r.t. positions is not zero
    g, = torch.autograd.grad(fn(pos, color)[..., 0].sum(), pos)
    assert g.abs().sum() > 1.0


def test_gradcheck_antialias_occluding_triangles_in_a_batch():
    """Two images (instanced mode); a nearer triangle overlaps a farther one, so some
    silhouette pixels have a covered, farther neighbour."""
    pos = torch.tensor([[-0.91, -0.83, 0.5, 1.0], [0.93, -0.71, 0.5, 1.0], [0.02, 0.9, 0.5, 1.0],
                        [-0.3, -0.35, -0.5, 1.0], [0.45, -0.2, -0.4, 1.0],
                        [0.1, 0.5, -0.6, 1.0]], dtype=torch.float64)
    pos = torch.stack([pos, pos * torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=torch.float64)])
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    rast, _ = rasterize(pos, tri, (14, 14))
    assert set(rast[..., 3].unique().tolist()) == {0.0, 1.0, 2.0}
    color = torch.rand(2, 14, 14, 3, dtype=torch.float64)
    pos.requires_grad_(True)

    def fn(pos):
        return antialias(color, rast, pos, tri)

    assert torch.autograd.gradcheck(fn, (pos,), eps=1e-7, atol=1e-6)
    g, = torch.autograd.grad(fn(pos).sum(), pos)
    assert g[:, 3:].abs().sum() > 0.1  # the front triangle's edges move the image


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_silhouette_derivatives_of_a_dense_sphere_match_supersampled_finite_differences(
        device):
    """d(sum mask)/d(scale) and d(sum mask * x)/d(tx) of a 20k-face sphere at 256^2,
    against central differences of 8x8-supersampled coverage (renders at 2048^2).

    With the walk both are within 20 %; nvdiffrast's plain rule (walk=False) finds only
    a few % of the silhouette, the known problem the walk solves.
    """
    res, ss = 256, 8
    verts, faces = sphere(5, device=device)
    camera = opencv_camera(res, res, 256.0, eye=(0.0, -3.0, 0.0), cx=127.5 + 0.37,
                           cy=127.5 + 0.21, device=device)
    big = opencv_camera(res * ss, res * ss, 256.0 * ss, eye=(0.0, -3.0, 0.0),
                        cx=(127.5 + 0.37 + 0.5) * ss - 0.5, cy=(127.5 + 0.21 + 0.5) * ss - 0.5,
                        device=device)
    topo = build_topology(faces)
    shift = torch.tensor([1.0, 0.0, 0.0], device=device)

    def clip(cam, scale, tx):
        return cam.clip(cam.to_camera(verts * scale + tx * shift), 1.0, 6.0)

    def x_ndc(n):  # pixel-centre x in NDC, per column
        return ((2 * torch.arange(n, device=device) + 1) / n - 1).float()

    def reference(scale, tx):
        with torch.no_grad():
            r, _ = rasterize(clip(big, scale, tx), faces, big.resolution, grad_db=False)
            m = (r[0, :, :, 3] > 0).float()
            return m.sum().item() / ss**2, (m * x_ndc(res * ss)).sum().item() / ss**2

    h = 0.004  # moves the silhouette by ~0.4 px at 256^2
    fd_scale = (reference(1 + h, 0.0)[0] - reference(1 - h, 0.0)[0]) / (2 * h)
    fd_tx = (reference(1.0, h)[1] - reference(1.0, -h)[1]) / (2 * h)

    ratios = {}
    for walk in (True, False):
        scale = torch.tensor(1.0, device=device, requires_grad=True)
        tx = torch.tensor(0.0, device=device, requires_grad=True)
        pos = clip(camera, scale, tx)
        rast, _ = rasterize(pos, faces, camera.resolution, grad_db=False)
        mask = (rast[..., 3:4] > 0).float()
        aa = antialias(mask, rast, pos, faces, topology=topo, walk=walk)
        g_scale, = torch.autograd.grad(aa.sum(), scale, retain_graph=True)
        g_tx, = torch.autograd.grad((aa[0, :, :, 0] * x_ndc(res)).sum(), tx)
        ratios[walk] = (g_scale.item() / fd_scale, g_tx.item() / fd_tx)
    print(f"silhouette gradient / supersampled FD: walk {ratios[True]}, "
          f"plain {ratios[False]}")
    assert all(abs(r - 1.0) < 0.2 for r in ratios[True]), ratios
    assert all(0.0 <= r < 0.25 for r in ratios[False]), ratios


def test_walk_steps_one_is_the_plain_rule():
    verts, faces = sphere(4)
    camera = opencv_camera(64, 64, 64.0, eye=(0.0, -3.0, 0.0))
    pos = camera.clip(camera.to_camera(verts)).requires_grad_(True)
    rast, _ = rasterize(pos, faces, camera.resolution)
    mask = (rast[..., 3:4] > 0).float()
    a = antialias(mask, rast, pos, faces, walk=False)
    b = antialias(mask, rast, pos, faces, max_walk_steps=1)
    c = antialias(mask, rast, pos, faces)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_pos_gradient_boost_scales_position_gradients_only():
    pos, tri = _triangle_scene()
    rast, _ = rasterize(pos, tri, (16, 16))
    color = (rast[..., 3:4] > 0).double()
    out = {}
    for boost in (1.0, 2.5):
        p = pos.clone().requires_grad_(True)
        image = antialias(color, rast, p, tri, pos_gradient_boost=boost)
        image.sum().backward()
        out[boost] = (image.detach(), p.grad)
    assert torch.equal(out[1.0][0], out[2.5][0])
    torch.testing.assert_close(out[2.5][1], 2.5 * out[1.0][1])
    assert out[1.0][1].abs().sum() > 0


def test_range_mode_matches_instanced_mode():
    verts, faces = sphere(3)
    cams = [opencv_camera(40, 40, 40.0, eye=e) for e in ((0, -3.0, 0.4), (2.0, 2.0, -1.0))]
    clips = torch.stack([c.clip(c.to_camera(verts), 1.0, 6.0)[0] for c in cams])
    color = torch.rand(2, 40, 40, 2)
    rast, _ = rasterize(clips, faces, (40, 40))
    inst = antialias(color, rast, clips, faces)
    n_v, n_f = verts.shape[0], faces.shape[0]
    tri = torch.cat([faces, faces + n_v])
    ranges = torch.tensor([[0, n_f], [n_f, n_f]], dtype=torch.int32)
    rast_r, _ = rasterize(clips.reshape(-1, 4), tri, (40, 40), ranges=ranges)
    torch.testing.assert_close(antialias(color, rast_r, clips.reshape(-1, 4), tri), inst)
    assert not torch.equal(inst, color)


# ------------------------------------------------------------------- bad inputs

def _inputs():
    pos, tri = _triangle_scene(dtype=torch.float32)
    rast, _ = rasterize(pos, tri, (8, 8))
    return {"color": torch.rand(1, 8, 8, 3), "rast": rast, "pos": pos, "tri": tri}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"color": torch.rand(8, 8, 3)}, r"color must have shape \(B,H,W,C\); got \(8, 8, 3\)"),
        ({"color": torch.rand(1, 8, 9, 3)}, r"color's \(B,H,W\) must match rast's \(1, 8, 8\)"),
        ({"color": torch.rand(1, 8, 8, 3).double()}, "must share one float dtype"),
        ({"rast": torch.zeros(1, 8, 8, 3)}, r"rast must have shape \(B,H,W,4\)"),
        ({"pos": torch.zeros(1, 3, 3)}, r"pos must have shape \(V,4\) or \(B,V,4\)"),
        ({"pos": torch.zeros(2, 3, 4)}, "pos's batch size must match rast's 1"),
        ({"tri": torch.tensor([[0, 1, 3]], dtype=torch.int32)},
         r"tri indices must lie in \[0, 2\]"),
        ({"tri": torch.tensor([[0, 1, 2]])}, "tri must be int32"),
        ({"topology": "hash"}, "topology must be build_topology"),
        ({"topology": build_topology(torch.tensor([[0, 1, 2], [1, 2, 3]], dtype=torch.int32))},
         r"topology must be build_topology\(tri\) for these 1 triangles; got 2"),
        ({"max_walk_steps": 0}, "max_walk_steps must be a positive int; got 0"),
    ],
)
def test_antialias_rejects_bad_input(kwargs, message):
    with pytest.raises(RenderError, match=message):
        antialias(**(_inputs() | kwargs))


@pytest.mark.parametrize(
    ("tri", "message"),
    [
        (torch.tensor([[0, 1, 2]]), "tri must be int32"),
        (torch.tensor([[0, 1]], dtype=torch.int32), r"tri must have shape \(F,3\); got \(1, 2\)"),
        (torch.tensor([[0, -1, 2]], dtype=torch.int32), "tri indices must be >= 0; got "
                                                        "minimum -1"),
    ],
)
def test_build_topology_rejects_bad_input(tri, message):
    with pytest.raises(RenderError, match=message):
        build_topology(tri)


def test_empty_topology():
    topo = build_topology(torch.zeros(0, 3, dtype=torch.int32))
    assert isinstance(topo, Topology) and topo.num_faces == 0
