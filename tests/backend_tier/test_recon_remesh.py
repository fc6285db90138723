"""Adaptive remeshing inside training (``backend.recon.remeshing`` and
``Trainer.remesh``): demand per face, selection, the schedule, the exact transfer of
the static shape, a loss that does not jump across an event, and resume after one."""

import dataclasses

import numpy as np
import pytest
import torch

from backend.errors import ConfigError
from backend.jobs.cancel import JobCancelled
from backend.mesh.poisson import PoissonSystem
from backend.recon.remeshing import (
    FaceDemand,
    event_schedule,
    refined_template,
    remesh_steps,
    select_faces,
    transferred_static_jacobians,
    vertex_interpolate,
)
from backend.recon.run import prepare, reconstruct
from backend.recon.settings import preset
from tests.backend_tier.recon_helpers import CancelAfter

FAST = {"warmup_steps": 20, "joint_steps": 60, "resolution_px": 96, "template_edge_m": 0.045,
        "eval_samples": 2000, "remesh": True, "remesh_interval": 15}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_face_demand_is_the_mean_gradient_per_covered_pixel_inside_the_mask():
    demand = FaceDemand(face_count=3, device="cpu")
    ids = torch.tensor([[0, 1, 1, 2], [2, 3, 4, 1]], dtype=torch.float32)   # 4: the body
    rast = torch.zeros(1, 2, 4, 4)
    rast[0, ..., 3] = ids
    grad = torch.tensor([[9.0, 1.0, 3.0, 2.0], [4.0, 5.0, 7.0, 100.0]]).view(1, 2, 4, 1)
    mask = torch.ones(1, 2, 4, 1)
    mask[0, 1, 3] = 0                                  # outside the garment: not counted
    demand.add(grad.expand(-1, -1, -1, 2) / 2, rast, mask)   # channels are summed
    np.testing.assert_allclose(demand.mean(), [2.0, 3.0, 5.0])
    assert demand.seen().tolist() == [True, True, True]
    demand.add(torch.zeros(1, 2, 4, 1), rast, mask)     # a second step halves the mean
    np.testing.assert_allclose(demand.mean(), [1.0, 1.5, 2.5])


def test_the_selection_takes_the_seen_faces_above_the_quantile():
    demand = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 50.0])
    seen = np.array([True, True, True, True, True, False])
    assert select_faces(demand, seen, 0.75).tolist() == [False] * 3 + [True, True, False]
    assert not select_faces(np.zeros(6), seen, 0.5).any()
    assert not select_faces(demand, np.zeros(6, bool), 0.5).any()


def test_the_schedule_starts_after_the_warmup_and_tightens():
    settings = preset("standard", remesh=True, warmup_steps=100, joint_steps=400,
                      remesh_interval=50, remesh_stop=0.8)
    assert remesh_steps(settings) == [150, 200, 250, 300, 350, 400]
    assert remesh_steps(dataclasses.replace(settings, remesh=False)) == []
    assert remesh_steps(dataclasses.replace(settings, method="displacement")) == []
    first = event_schedule(settings, 0, 6, 0.03)
    last = event_schedule(settings, 5, 6, 0.03)
    assert first == pytest.approx((0.85, 0.6 * 0.03))
    assert last == pytest.approx((0.95, 0.35 * 0.03))


def test_remesh_settings_are_checked():
    with pytest.raises(ConfigError, match="remesh_quantile must be two numbers in"):
        preset("standard", remesh_quantile=(0.9,))
    with pytest.raises(ConfigError, match="remesh_min_edge must be two numbers > 0"):
        preset("standard", remesh_min_edge=(0.5, 0.0))
    with pytest.raises(ConfigError, match="remesh_interval must be >= 1"):
        preset("standard", remesh_interval=0)
    with pytest.raises(ConfigError, match="remesh_max_faces_factor must be >= 1"):
        preset("standard", remesh_max_faces_factor=0.5)


def test_transferred_static_jacobians_reproduce_the_surface(capture):
    """A bent garment, refined where it bends most: the Poisson solve of the
    transferred J_S is the old surface (new vertices on its faces), to float32 error."""
    _, info = capture
    template = info["template"]
    v = template.vertices.astype(np.float64)
    bent = v + 0.05 * np.sin(6 * v[:, [2, 0, 1]])                 # a smooth deformation
    old = PoissonSystem(v, template.faces, dtype=torch.float64)
    jac = old.jacobians(torch.as_tensor(bent))
    static = old.vertices(jac)                                 # what the old model renders
    bend = np.linalg.norm((jac - old.rest_jacobians).numpy(), axis=(1, 2))
    selected = bend > np.quantile(bend, 0.8)
    refined, result = refined_template(template, selected, 0.3 * 0.045,
                                       max_faces=3 * len(template.faces))
    assert result.split_edges > 0 and len(refined.faces) > len(template.faces)
    new = PoissonSystem(refined.vertices, refined.faces, dtype=torch.float64)
    expected = vertex_interpolate(static, result)
    jacobians, offset = transferred_static_jacobians(new, expected)
    solved = new.vertices(jacobians) + offset
    assert float((solved - expected).abs().max()) < 1e-6
    # skinning weights: valid rows, and the old vertices keep theirs
    np.testing.assert_allclose(refined.weight_values.sum(1), 1.0, atol=1e-5)
    k = template.weight_indices.shape[1]
    old_rows = refined.weight_values[:len(v), :k]
    np.testing.assert_allclose(np.sort(old_rows, 1), np.sort(template.weight_values, 1),
                               atol=1e-6)


def _fixed_losses(trainer) -> float:
    """The weighted loss on every frame, without noise, at full resolution."""
    frames = torch.arange(trainer.data.frame_count)
    with torch.no_grad():
        terms = trainer.losses(frames, trainer.settings.resolution_px, dynamic=True)
        return float(trainer.weighted(terms))


def test_the_loss_does_not_jump_across_a_remesh(capture, tmp_path):
    root, _ = capture
    settings = preset("draft", **FAST)
    trainer = prepare(root, tmp_path, settings).trainer
    first = trainer.remesh_steps[0]
    while trainer.step < first:
        trainer._train_step(trainer.step)
        trainer.step += 1
    faces = trainer.model.faces.shape[0]
    before = _fixed_losses(trainer)
    record = trainer.remesh()
    after = _fixed_losses(trainer)
    assert record is not None and trainer.model.faces.shape[0] > faces
    assert record["faces"] == [faces, trainer.model.faces.shape[0]]
    # measured: +2.4 %. The static shape moves over exactly and the dynamic MLP first sees
    # each new face where its parent was; what is left is the shading of the finer
    # mesh (smooth normals at the new vertices) and the dynamic part's finer solve
    assert abs(after - before) < 0.05 * before, (before, after)
    trainer._train_step(trainer.step)              # and training goes on on the new mesh


def test_a_remeshed_run_resumes_from_its_checkpoint_to_the_same_result(capture, tmp_path):
    root, _ = capture
    settings = preset("draft", **FAST)
    straight = reconstruct(root, tmp_path / "straight", settings)
    events = straight.metrics["mesh"]["remesh_events"]
    assert len(events) >= 2
    assert events[-1]["faces"][1] == straight.metrics["mesh"]["faces"] > events[0]["faces"][0]
    # cancel between the first and the second event: the checkpoint holds a refined mesh
    stop = events[0]["step"] + 5
    with pytest.raises(JobCancelled):
        reconstruct(root, tmp_path / "resumed", settings, cancel=CancelAfter(8 + stop))
    resumed = reconstruct(root, tmp_path / "resumed", settings)
    assert resumed.metrics["resumed_from_step"] == stop
    def timeless(records):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in records]

    assert timeless(resumed.metrics["mesh"]["remesh_events"]) == timeless(events)
    a = np.load(tmp_path / "straight" / "garment.npz")
    b = np.load(tmp_path / "resumed" / "garment.npz")
    np.testing.assert_array_equal(a["faces"], b["faces"])
    np.testing.assert_allclose(a["vertices"], b["vertices"], atol=1e-5)


@pytest.mark.parametrize("flag, expected", [("--remesh", True), ("--no-remesh", False),
                                            (None, preset("standard").remesh)])
def test_the_reconstruct_command_switches_remeshing(flag, expected, tmp_path, monkeypatch,
                                                    capsys):
    from backend import cli
    from backend.recon import run

    seen = {}

    def fake_reconstruct(capture, output, settings, job, events, cancel):
        seen["settings"] = settings
        raise ConfigError("stopped by the test")

    monkeypatch.setattr(run, "reconstruct", fake_reconstruct)
    args = ["reconstruct", str(tmp_path), "--out", str(tmp_path / "out")]
    assert cli.main(args + ([flag] if flag else [])) != 0
    assert seen["settings"].remesh is expected
