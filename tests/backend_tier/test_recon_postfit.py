"""``recon.postfit``: the priors applied after training. Temporal smoothing leaves
steady and linear motion alone and damps a one-frame jolt; pushing out of the body
brings every vertex to the thickness, moves only what is near the body, keeps the
surface's orientation; the trainer's outcome applies both when asked."""

import dataclasses

import numpy as np
import pytest
import torch

from backend.recon.errors import ReconError
from backend.recon.postfit import push_out_of_body, smooth_over_frames
from backend.recon.priors import BodyCollision
from backend.render.mesh_utils import icosphere
from tests.backend_tier.mesh_helpers import perturbed_grid


def test_smoothing_keeps_steady_and_linear_motion_and_damps_a_jolt():
    frames = torch.arange(9, dtype=torch.float64)
    steady = torch.ones(9, 4, 3)
    assert torch.allclose(smooth_over_frames(steady, 1.0), steady, atol=1e-6)
    linear = frames.view(-1, 1, 1) * torch.tensor([0.01, -0.02, 0.0]) + torch.zeros(9, 4, 3)
    smoothed = smooth_over_frames(linear, 1.0)
    # a symmetric kernel keeps a linear trajectory where it has all its taps
    assert torch.allclose(smoothed[3:6], linear[3:6], atol=1e-12)
    jolt = torch.zeros(9, 2, 3, dtype=torch.float64)
    jolt[4, 0, 2] = 0.01
    out = smooth_over_frames(jolt, 1.0)
    assert 0 < float(out[4, 0, 2]) < 0.005 and float(out[3, 0, 2]) > 0
    assert torch.allclose(out.sum(0), jolt.sum(0))              # nothing lost or gained
    assert torch.equal(out[:, 1], jolt[:, 1])                   # other vertices untouched
    assert smooth_over_frames(jolt, 0.0) is jolt
    with pytest.raises(ReconError, match=r"\(T, V, 3\)"):
        smooth_over_frames(torch.zeros(4, 3), 1.0)


def sphere_body():
    v, f = icosphere(3, dtype=torch.float64)
    return v.unsqueeze(0), f


def dented_sheet():
    """An irregular 0.8 m sheet (4 cm edges) 2 cm over the unit sphere's top; its middle
    sags 3 cm into the sphere."""
    v, f = perturbed_grid(seed=1, n=21)
    v = v * 0.8 - np.array([0.4, 0.4, 0.0])
    r = np.linalg.norm(v[:, :2], axis=1)
    v[:, 2] = 1.0 + 0.02 - 0.05 * np.exp(-(r / 0.12) ** 2)
    return v, f


def test_pushing_out_brings_every_vertex_to_the_thickness_and_moves_only_those_near():
    body, body_faces = sphere_body()
    collision = BodyCollision(body, body_faces, thickness_m=0.005)
    sheet, faces = dented_sheet()
    before, _ = collision.distance_and_direction(sheet, 0)
    assert (before < 0).sum() > 5
    moved, stats = push_out_of_body(sheet[None], faces, collision)
    after, _ = collision.distance_and_direction(moved[0], 0)
    assert after.min() > 0.005 - 2e-4
    assert stats["inside_before"] == int((before < 0).sum()) and stats["inside_after"] == 0
    shift = np.linalg.norm(moved[0] - sheet, axis=1)
    far = before > 0.05
    assert far.sum() > 100 and shift[far].max() < 1e-4          # the rest stays put
    assert stats["max_push_mm"] == pytest.approx(shift.max() * 1e3)

    def normals(v):
        n = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
        return n / np.linalg.norm(n, axis=1, keepdims=True)

    assert (np.einsum("fc,fc->f", normals(sheet), normals(moved[0])) > 0.5).all()


def test_each_row_is_pushed_out_of_its_own_frame_of_the_body():
    v, f = icosphere(3, dtype=torch.float64)
    body = torch.stack([v, v + torch.tensor([0.0, 0.0, -1.0])])   # frame 1: sphere lower
    collision = BodyCollision(body, f, thickness_m=0.005)
    sheet, faces = dented_sheet()
    moved, stats = push_out_of_body(np.stack([sheet, sheet]), faces, collision,
                                    frames=[1, 0])
    assert np.array_equal(moved[0], sheet)                       # clear of the low sphere
    assert not np.array_equal(moved[1], sheet)
    with pytest.raises(ReconError, match="2 frame indices for 1 frames"):
        push_out_of_body(sheet[None], faces, collision, frames=[0, 1])


def test_the_outcome_applies_the_post_fit_priors(capture, tmp_path):
    from backend.recon.run import prepare
    from backend.recon.settings import preset

    root, _ = capture
    # a 3 cm thickness: the template (15 mm off the skin) is then "too near" in places
    base = preset("draft", resolution_px=64, template_edge_m=0.045, warmup_steps=1,
                  joint_steps=1, collision_thickness_m=0.03)
    off = dataclasses.replace(base, resolve_penetrations=False, temporal_smoothing=0.0)
    plain = prepare(root, tmp_path / "off", off).trainer.outcome()
    trainer = prepare(root, tmp_path / "on", base).trainer
    settled = trainer.outcome()
    collision = BodyCollision(trainer.data.body_vertices, trainer.data.body_faces, 0.03)
    nearest = [collision.distance_and_direction(v, t)[0].min()
               for t, v in enumerate(plain.vertices)]
    assert min(nearest) < 0.025
    nearest = [collision.distance_and_direction(v, t)[0].min()
               for t, v in enumerate(settled.vertices)]
    assert min(nearest) > 0.03 - 1e-3
    assert settled.postfit["moved"] > 0 and settled.postfit["temporal_smoothing"] == 1.0
    assert plain.postfit == {"temporal_smoothing": 0.0}
    assert settled.mask_iou.shape == plain.mask_iou.shape
