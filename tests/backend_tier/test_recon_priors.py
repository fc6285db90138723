"""``recon.priors``: cloth energies (zero at rest, positive and correctly
differentiated under deformation, blind to rigid motion, the closed-form values of a
stretched square and a folded hinge), the body collision (nearest triangle: zero
outside past the thickness, positive inside, pushes inside vertices out) and the
temporal terms."""

import math

import numpy as np
import pytest
import torch

from backend.eval.sampling import closest_points
from backend.recon.errors import ReconError
from backend.recon.priors import BodyCollision, ClothEnergy, temporal_terms
from backend.render.mesh_utils import icosphere
from tests.backend_tier.mesh_helpers import perturbed_grid

FABRIC = {"stretch_n_m": 2000.0, "poisson_ratio": 0.3, "bending_n_m": 5e-5,
          "density_kg_m2": 0.15}


def grid_energy(n: int = 6, dtype=torch.float64):
    v, f = perturbed_grid(seed=3, n=n, wavy=True)
    vertices = torch.tensor(v, dtype=dtype)
    return vertices, ClothEnergy(vertices, torch.tensor(f), **FABRIC)


def rigid(vertices: torch.Tensor, seed: int = 0) -> torch.Tensor:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    rotation = torch.tensor(q, dtype=vertices.dtype)
    return vertices @ rotation.T + torch.tensor([0.3, -1.0, 2.0], dtype=vertices.dtype)


def test_energies_are_zero_at_rest_and_blind_to_rigid_motion():
    rest, energy = grid_energy()
    deformed = rest + 0.02 * torch.sin(7 * rest[:, [1, 2, 0]])
    for x in (rest, deformed):
        batch = torch.stack([x, rigid(x, 1)])
        for term in (energy.membrane, energy.bending):
            values = term(batch)
            assert torch.allclose(values[0], values[1], rtol=1e-9, atol=1e-15), term
    assert float(energy.membrane(rest[None]).abs().max()) < 1e-12
    assert float(energy.bending(rest[None]).abs().max()) < 1e-12
    assert float(energy.membrane(deformed[None])) > 1e-6
    assert float(energy.bending(deformed[None])) > 1e-9


def test_a_uniformly_stretched_square_stores_the_closed_form_membrane_energy():
    v, f = perturbed_grid(seed=0, n=5)
    rest = torch.tensor(v)
    energy = ClothEnergy(rest, torch.tensor(f), **FABRIC)
    s = 1.1
    stretched = rest * torch.tensor([s, 1.0, 1.0], dtype=rest.dtype)
    e = (s * s - 1) / 2           # Green strain along x; zero along y
    nu, young = FABRIC["poisson_ratio"], FABRIC["stretch_n_m"]
    mu, lam = young / (2 * (1 + nu)), young * nu / (1 - nu ** 2)
    expected = 1.0 * (mu * e * e + lam / 2 * e * e)            # unit square
    assert float(energy.membrane(stretched[None])[0]) == pytest.approx(expected, rel=1e-9)


def test_a_folded_hinge_stores_the_discrete_shells_bending_energy():
    rest = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, -1, 0]],
                        dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [1, 0, 3]])
    energy = ClothEnergy(rest, faces, **FABRIC)
    assert energy.hinges.shape == (1, 4)
    theta = 0.4
    folded = rest.clone()
    folded[3] = torch.tensor([0.5, -math.cos(theta), math.sin(theta)], dtype=torch.float64)
    angle = energy.dihedral_angles(folded[None])[0, 0]
    assert abs(float(angle)) == pytest.approx(theta, rel=1e-9)
    expected = FABRIC["bending_n_m"] * 1.5 * 1.0 / (0.5 + 0.5) * theta ** 2
    assert float(energy.bending(folded[None])[0]) == pytest.approx(expected, rel=1e-9)


def test_every_edge_of_a_closed_sphere_is_a_hinge_and_boundary_edges_are_not():
    v, f = icosphere(2, dtype=torch.float64)
    energy = ClothEnergy(v, f, **FABRIC)
    assert energy.hinges.shape[0] == 3 * f.shape[0] // 2
    assert float(energy.rest_angles.min()) > 0      # convex: every hinge turns the same way
    _, grid = grid_energy()
    f = grid.faces.numpy()
    edges = np.unique(np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]),
                              axis=1), axis=0)
    boundary = 4 * (6 - 1)
    assert grid.hinges.shape[0] == len(edges) - boundary


def test_membrane_and_bending_gradients_pass_gradcheck():
    rest, energy = grid_energy(n=4)
    start = (rest + 0.01 * torch.cos(5 * rest)).unsqueeze(0).requires_grad_(True)
    weights = torch.rand(1, energy.faces.shape[0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: energy.membrane(x, weights), (start,))
    assert torch.autograd.gradcheck(lambda x: energy.bending(x, weights), (start,))
    assert torch.autograd.gradcheck(energy.gravity, (start,))


def test_gravity_pulls_each_vertex_down_with_its_weight():
    rest, energy = grid_energy()
    x = rest.unsqueeze(0).requires_grad_(True)
    energy.gravity(x).sum().backward()
    assert torch.allclose(x.grad[0, :, :2], torch.zeros_like(x.grad[0, :, :2]))
    assert torch.allclose(x.grad[0, :, 2], 9.81 * energy.vertex_mass)
    # the vertices carry the whole cloth's mass, its area times the areal density
    area = float(energy.rest_area.sum())
    assert 1.0 < area < 1.2                          # the wavy unit square
    assert float(energy.vertex_mass.sum()) == pytest.approx(FABRIC["density_kg_m2"] * area,
                                                            rel=1e-9)


def test_visibility_weights_scale_each_face_and_vertex():
    rest, energy = grid_energy()
    deformed = (rest + 0.03 * torch.sin(5 * rest)).unsqueeze(0)
    ones = torch.ones(1, energy.faces.shape[0], dtype=torch.float64)
    assert torch.allclose(energy.membrane(deformed, 0.25 * ones), 0.25 * energy.membrane(deformed))
    assert torch.allclose(energy.bending(deformed, 0.25 * ones), 0.25 * energy.bending(deformed))
    none = torch.zeros(1, rest.shape[0], dtype=torch.float64)
    assert float(energy.gravity(deformed, none)) == 0.0


def test_temporal_terms_penalise_change_not_a_steady_offset():
    base = torch.randn(1, 50, 3, dtype=torch.float64)
    steady = base.expand(5, -1, -1)
    velocity, acceleration = temporal_terms(steady, unit_m=0.03)
    assert float(velocity) == 0.0 and float(acceleration) == 0.0
    t = torch.arange(5, dtype=torch.float64).view(-1, 1, 1)
    drifting = base + 0.003 * t                       # constant velocity: no acceleration
    velocity, acceleration = temporal_terms(drifting, unit_m=0.03)
    assert float(velocity) == pytest.approx(3 * 0.1 ** 2, rel=1e-9)
    assert float(acceleration) < 1e-20
    jitter = base + 0.003 * (-1.0) ** t
    assert float(temporal_terms(jitter, unit_m=0.03)[1]) > 0.1
    with pytest.raises(ReconError, match="at least 3 frames"):
        temporal_terms(steady[:2], unit_m=0.03)


def unit_sphere_body(frames: int = 2):
    v, f = icosphere(3, dtype=torch.float32)
    shifts = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]])[:frames]
    return v.unsqueeze(0) + shifts.unsqueeze(1), f.to(torch.int32)


def test_the_penalty_is_zero_outside_and_grows_with_depth():
    body, faces = unit_sphere_body()
    collision = BodyCollision(body, faces, thickness_m=0.01)
    frames = torch.tensor([0, 1])
    outside = torch.tensor([[[0.0, 0.0, 1.05]], [[0.5, 0.0, 1.05]]])   # 5 cm off the skin
    assert float(collision(outside, frames)) == 0.0
    shallow = torch.tensor([[[0.0, 0.0, 0.98]], [[0.5, 0.0, 0.98]]])
    deep = torch.tensor([[[0.0, 0.0, 0.9]], [[0.5, 0.0, 0.9]]])
    assert 0 < float(collision(shallow, frames)) < float(collision(deep, frames))
    # each frame is tested against its own posed body: the frame-1 point is inside only
    # the sphere of frame 1
    mixed = torch.tensor([[[0.5, 0.0, 1.05]], [[0.5, 0.0, 0.9]]])
    assert float(collision(mixed, torch.tensor([1, 0]))) == 0.0
    assert float(collision(mixed, torch.tensor([0, 1]))) > 0.0


def test_a_few_steps_push_an_inside_vertex_out():
    body, faces = unit_sphere_body(frames=1)
    collision = BodyCollision(body, faces, thickness_m=0.01)
    rng = np.random.default_rng(0)
    direction = rng.normal(size=(20, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    points = torch.tensor(0.9 * direction, dtype=torch.float32).unsqueeze(0).requires_grad_(True)
    optimiser = torch.optim.Adam([points], lr=0.02)
    for _ in range(10):
        optimiser.zero_grad()
        collision(points, torch.tensor([0])).backward()
        optimiser.step()
    radius = points.detach()[0].norm(dim=-1)
    assert float(radius.min()) > 0.995, radius        # out, up to the mesh's facets
    assert float(collision(points.detach(), torch.tensor([0]))) < 0.05


def test_the_signed_distance_is_the_exact_distance_to_the_nearest_triangle():
    v, f = icosphere(1, dtype=torch.float64)             # coarse: nearest vertex != triangle
    body = v.unsqueeze(0)
    collision = BodyCollision(body, f, thickness_m=0.01)
    rng = np.random.default_rng(1)
    direction = rng.normal(size=(300, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    points = direction * rng.uniform(0.7, 1.2, size=(300, 1))
    signed = collision.signed_distance(torch.tensor(points).unsqueeze(0), torch.tensor([0]))[0]
    exact = closest_points(points, v.numpy(), f.numpy()).distance
    # inside the (convex) body exactly where the point is inside the polyhedron
    inside = np.array([(np.cross(t[1] - t[0], t[2] - t[0]) * (p - t[0])).sum(-1).max() < 0
                       for p in points for t in [v.numpy()[f.numpy()].transpose(1, 0, 2)]])
    assert np.allclose(np.abs(signed.numpy()), exact, atol=1e-9)
    assert np.array_equal(signed.numpy() < 0, inside)


PRIORS = ("collision", "membrane", "bending", "gravity", "velocity", "acceleration")


def test_the_trainer_adds_each_prior_when_weighted(capture, tmp_path):
    import dataclasses

    from backend.recon.run import prepare
    from backend.recon.settings import preset

    root, _ = capture
    base = preset("draft", resolution_px=64, template_edge_m=0.045)
    on = dataclasses.replace(base, losses=dataclasses.replace(
        base.losses, **dict.fromkeys(PRIORS, 0.1)))
    trainer = prepare(root, tmp_path / "off", base).trainer
    with torch.no_grad():
        assert not set(PRIORS) & set(trainer.losses(torch.arange(2), 64, dynamic=True))
    trainer = prepare(root, tmp_path / "on", on).trainer
    with torch.no_grad():
        static = trainer.losses(torch.arange(2), 64, dynamic=False)
    # the temporal terms watch the pose-dependent part: not in the warm-up
    assert set(PRIORS) - set(static) == {"velocity", "acceleration"}
    # the template hangs 15 mm off the skin: (nearly) nothing inside
    assert 0 <= float(static["collision"]) < 0.05
    # the untrained template is its own rest state; skinned to the frames it strains
    # a little (linear blend skinning is not rigid), under 1 % over the ~0.4 m^2 skirt
    canonical = trainer.model.template_vertices.unsqueeze(0)
    assert abs(float(trainer.cloth.membrane(canonical)[0])) < 1e-9
    assert 0 <= float(static["membrane"]) < 0.1 and float(static["bending"]) >= 0
    assert float(static["gravity"]) > 0
    terms = trainer.losses(torch.arange(2), 64, dynamic=True)
    assert set(PRIORS) <= set(terms)
    # the dynamic part starts at zero: nothing moves between frames yet
    assert float(terms["velocity"].detach()) < 1e-12
    trainer.weighted(terms).backward()


def test_visible_faces_per_view_never_counts_the_body_as_a_garment_face():
    from backend.recon.render import GarmentRender

    ids = torch.tensor([[0.0, 1, 3], [4, 7, 0]])        # 3 garment faces; 4 and 7: body
    rast = torch.zeros(2, 1, 3, 4)
    rast[..., 3] = ids.view(2, 1, 3)
    render = GarmentRender(mask=rast[..., :1], diffuse=rast[..., :1], depth=rast[..., :1],
                           color=None, rast=rast)
    assert render.visible_faces_per_view(3).tolist() == [[True, False, True],
                                                         [False, False, False]]
    assert render.visible_faces(3).tolist() == [True, False, True]


def test_the_occlusion_term_pulls_a_garment_hidden_behind_the_body_forwards():
    from backend.recon.losses import occlusion_order_loss
    from backend.recon.render import render_garment
    from backend.render.camera import Camera
    from backend.render.context import get_rasterizer

    K = torch.tensor([[64.0, 0, 31.5], [0, 64.0, 31.5], [0, 0, 1]])
    camera = Camera.create(K, torch.eye(3), torch.zeros(3), 64, 64)
    body = torch.tensor([[[-0.2, -0.2, 1.0], [0.2, -0.2, 1.0], [0.2, 0.2, 1.0],
                          [-0.2, 0.2, 1.0]]])
    body_faces = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)
    grid, faces = perturbed_grid(seed=2, n=9)
    # a 0.6 m sheet 20 cm behind the body's square, wound to face the camera
    sheet = torch.tensor(np.c_[0.6 * grid[:, :2] - 0.3, np.full(len(grid), 1.2)],
                         dtype=torch.float32).unsqueeze(0).requires_grad_(True)
    facing = torch.as_tensor(faces[:, [0, 2, 1]], dtype=torch.int32)
    rasterizer = get_rasterizer("torch", torch.device("cpu"))

    def loss(vertices, tris, target, reach_m=float("inf")):
        render = render_garment(rasterizer, vertices, tris, camera, body, body_faces)
        return occlusion_order_loss(vertices, tris, camera, render.rast, render.depth,
                                    target, margin_m=0.01, reach_m=reach_m)

    garment_everywhere = torch.ones(1, 64, 64, 1)
    value = loss(sheet, facing, garment_everywhere)
    assert float(value.detach()) > 0
    (grad,) = torch.autograd.grad(value, sheet)
    seen_at = sheet[0, :, :2].detach().abs() / 1.2       # where they project: x/z, y/z
    hidden = (seen_at < 0.19).all(1)                     # the body's square spans 0.2
    assert (grad[0, hidden, 2] > 0).all()                   # descent moves them forwards
    clear = (seen_at > 0.21).any(1)                      # beside the body
    assert clear.sum() > 20 and torch.equal(grad[0, clear], torch.zeros_like(grad[0, clear]))
    assert torch.equal(grad[0, :, :2], torch.zeros_like(grad[0, :, :2]))
    with torch.no_grad():
        # nothing to pull where the footage shows no garment, for a sheet facing away,
        # or once the sheet is in front of the body
        assert float(loss(sheet, facing, torch.zeros(1, 64, 64, 1))) == 0.0
        assert float(loss(sheet, torch.as_tensor(faces, dtype=torch.int32),
                          garment_everywhere)) == 0.0
        front = sheet.detach().clone()
        front[..., 2] = 0.95
        assert float(loss(front, facing, garment_everywhere)) == 0.0
        # 20 cm behind is out of a 10 cm reach, within a 30 cm one
        assert float(loss(sheet, facing, garment_everywhere, reach_m=0.1)) == 0.0
        assert float(loss(sheet, facing, garment_everywhere, reach_m=0.3)) == float(value)
