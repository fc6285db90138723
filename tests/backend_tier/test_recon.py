"""Reconstruction core: settings, encodings, losses, the NGD model, and end-to-end runs
on a capture the backend renders itself from a known target (recon_helpers)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from backend.cli import main
from backend.errors import ConfigError
from backend.eval.metrics import ssim as ssim_reference
from backend.eval.metrics import surface_metrics
from backend.jobs.cancel import CancelToken, JobCancelled
from backend.jobs.spec import JobSettings
from backend.mesh.poisson import PoissonSystem
from backend.recon import losses as L
from backend.recon.encoding import FrequencyEncoding, HashEncoding
from backend.recon.errors import ReconError
from backend.recon.model import JacobianGarment
from backend.recon.run import check_inputs, reconstruct
from backend.recon.settings import preset
from tests.backend_tier.recon_helpers import write_synthetic_capture

FAST = {"warmup_steps": 50, "joint_steps": 100, "resolution_px": 96, "template_edge_m": 0.045,
        "eval_samples": 3000}


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    root = tmp_path_factory.mktemp("capture")
    info = write_synthetic_capture(root)
    return root, info


def mean_chamfer_x1e3(vertices, faces, target, target_faces):
    return 1e3 * np.mean([surface_metrics(vertices[i], faces, target[i], target_faces,
                                          samples=3000).chamfer_m2 for i in range(len(target))])


def test_settings_name_what_is_wrong():
    with pytest.raises(ConfigError, match="unknown quality preset 'ultra'"):
        preset("ultra")
    with pytest.raises(ConfigError, match="unknown reconstruction setting"):
        preset("draft", learning_rate=1)
    with pytest.raises(ConfigError, match="method must be one of ngd, displacement"):
        preset("draft", method="nerf")
    assert preset("high").total_steps > preset("standard").total_steps > preset("draft").total_steps


def test_encodings_have_their_stated_widths_and_the_hash_grid_learns():
    x = torch.rand(50, 3) - 0.5
    freq = FrequencyEncoding(levels=4)
    assert freq(x).shape == (50, freq.out_features) == (50, 27)
    grid = HashEncoding(levels=4, table_size_log2=10, features=2)
    out = grid(x)
    assert out.shape == (50, 8)
    out.square().sum().backward()
    assert grid.tables.grad.abs().sum() > 0


def test_ssim_matches_the_evaluators_independent_implementation():
    rng = np.random.default_rng(0)
    a = rng.random((2, 24, 24, 1))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    ours = float(L.ssim(torch.as_tensor(a), torch.as_tensor(b)))
    assert float(L.ssim(torch.as_tensor(a), torch.as_tensor(a))) == pytest.approx(1.0)
    reference = float(np.mean(ssim_reference(a, b)))
    assert ours == pytest.approx(reference, abs=0.02)


def test_depth_ranking_penalises_only_a_wrong_order():
    target = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 2, 2, 1)
    mask = torch.ones_like(target)
    g = torch.Generator().manual_seed(0)
    assert float(L.depth_ranking_loss(target * 0.5, mask, target, mask, generator=g)) == 0.0
    assert float(L.depth_ranking_loss(-target, mask, target, mask, generator=g)) > 0.5


def test_the_untrained_model_is_the_template_at_every_frame(capture):
    _, info = capture
    template = info["template"]
    system = PoissonSystem(template.vertices, template.faces, dtype=torch.float32)
    codes = torch.randn(8, 4)
    model = JacobianGarment(template, system, codes, 104, preset("draft"))
    canonical = model.canonical(torch.arange(8))
    assert canonical.shape == (8, template.vertex_count, 3)
    np.testing.assert_allclose(canonical.detach().numpy(),
                               np.broadcast_to(template.vertices, canonical.shape), atol=1e-5)
    assert float(model.regulariser()) < 1e-10


def test_reconstruction_recovers_a_known_garment_from_masks_and_normals(capture, tmp_path):
    root, info = capture
    faces = info["template"].faces
    before = mean_chamfer_x1e3(info["template_world"], faces, info["target"], faces)
    result = reconstruct(root, tmp_path / "out", preset("draft", **FAST))
    after = result.metrics["ground_truth"]["summary"]["chamfer_x1e3"]
    assert after < 0.4 * before, (before, after)        # >= 60 % lower Chamfer distance
    garment = np.load(tmp_path / "out" / "garment.npz")
    assert garment["vertices"].shape == info["target"].shape
    np.testing.assert_array_equal(garment["frame_numbers"], np.arange(1, 9))
    history = result.metrics["loss_history"]
    assert history[-1]["silhouette"] < 0.5 * history[0]["silhouette"]


class CancelAfter(CancelToken):
    """Requests a cancel after ``steps`` checks (one per training step)."""

    def __init__(self, steps):
        super().__init__(None)
        self.left = steps

    def check(self):
        self.left -= 1
        if self.left < 0:
            raise JobCancelled("cancelled by the test")


def test_a_cancelled_run_resumes_from_its_checkpoint_to_the_same_result(capture, tmp_path):
    root, _ = capture
    settings = preset("draft", **{**FAST, "warmup_steps": 10, "joint_steps": 20})
    reconstruct(root, tmp_path / "straight", settings)
    with pytest.raises(JobCancelled):
        reconstruct(root, tmp_path / "resumed", settings, cancel=CancelAfter(8 + 15))
    assert (tmp_path / "resumed" / "checkpoint" / "state.pt").is_file()
    assert not (tmp_path / "resumed" / "garment.npz").exists()
    resumed = reconstruct(root, tmp_path / "resumed", settings)
    assert resumed.metrics["resumed_from_step"] == 15
    a = np.load(tmp_path / "straight" / "garment.npz")["vertices"]
    b = np.load(tmp_path / "resumed" / "garment.npz")["vertices"]
    np.testing.assert_allclose(a, b, atol=1e-5)
    other = dataclasses.replace(settings, lr_static=settings.lr_static * 2)
    with pytest.raises(ReconError, match="belongs to another capture or other settings"):
        reconstruct(root, tmp_path / "resumed", other)


def test_bad_inputs_fail_before_any_work(capture, tmp_path):
    root, _ = capture
    if not torch.cuda.is_available():
        with pytest.raises(ReconError, match="device 'cuda' was asked for"):
            check_inputs(root, JobSettings(device="cuda"))
    with pytest.raises(ReconError, match="no capture frame lies in the range 50..60"):
        check_inputs(root, JobSettings(frame_start=50, frame_end=60))
    bodiless = tmp_path / "bodiless"
    bodiless.mkdir()
    data = json.loads((root / "capture.json").read_text())
    data["paths"]["body"] = None
    (bodiless / "capture.json").write_text(json.dumps(data))
    with pytest.raises(ReconError, match="has no body.npz"):
        check_inputs(bodiless, JobSettings())


def test_cli_reconstruct_and_evaluate(capture, tmp_path, capsys):
    root, _ = capture
    job = {"capture": str(root), "output": str(tmp_path / "out"), "seed": 0,
           "settings": {"preset": "draft", "device": "cpu", "frame_start": 2, "frame_end": 5}}
    (tmp_path / "job.json").write_text(json.dumps(job))
    assert main(["run", str(tmp_path / "job.json")]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["event"] == "done" and "CD x1e3" in events[-1]["summary"]
    stages = {e.get("stage") for e in events if e["event"] == "progress"}
    assert {"validate", "warmup", "joint"} <= stages
    garment = np.load(tmp_path / "out" / "garment.npz")
    np.testing.assert_array_equal(garment["frame_numbers"], [2, 3, 4, 5])
    assert main(["evaluate", str(tmp_path / "out"), "--gt", str(root / "gt"),
                 "--samples", "2000", "--out", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["frames"] == [2, 3, 4, 5] and metrics["summary"]["chamfer_x1e3"] > 0
    assert main(["reconstruct", str(root), "--out", str(tmp_path / "x"),
                 "--preset", "ultra"]) == 3
    assert "unknown quality preset 'ultra'" in capsys.readouterr().out
