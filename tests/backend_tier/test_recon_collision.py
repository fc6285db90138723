"""``losses.BodyCollision``: zero outside the body past the thickness, positive inside,
and a few optimiser steps push a vertex placed inside the body back out."""

import numpy as np
import torch

from backend.recon.losses import BodyCollision
from backend.render.mesh_utils import icosphere


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


def test_the_trainer_adds_the_term_when_weighted(capture, tmp_path):
    import dataclasses

    from backend.recon.run import prepare
    from backend.recon.settings import preset

    root, _ = capture
    base = preset("draft", resolution_px=64, template_edge_m=0.045)
    on = dataclasses.replace(base, losses=dataclasses.replace(base.losses, collision=0.1))
    for settings, expected in ((base, False), (on, True)):
        trainer = prepare(root, tmp_path / str(expected), settings).trainer
        with torch.no_grad():
            terms = trainer.losses(torch.arange(2), 64, dynamic=False)
        assert ("collision" in terms) is expected
        if expected:
            # the template hangs 15 mm off the skin: (nearly) nothing inside
            assert 0 <= float(terms["collision"]) < 0.05
