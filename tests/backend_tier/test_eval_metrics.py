"""``backend.eval``: metrics on shapes with known answers (spheres, offset planes,
flipped windings, known masks, known MSE, analytic SSIM cases and a naive SSIM,
constant-velocity and quadratic motions), exact closest points against brute force,
the metrics record and its JSON, and every EvalError."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.eval import (
    EvalError,
    EvalSettings,
    MetricsRecord,
    acceleration_error,
    chamfer_distance,
    chamfer_points,
    closest_points,
    evaluate,
    mask_iou,
    psnr,
    sample_surface,
    ssim,
    surface_metrics,
    tracked_points,
)
from backend.eval.metrics import gaussian_window
from backend.eval.sampling import closest_on_triangles
from backend.render.mesh_utils import icosphere


def sphere(level: int = 3, radius: float = 1.0):
    v, f = icosphere(level, dtype=torch.float64)
    return v.numpy() * radius, f.numpy().astype(np.int64)


def plane(n: int = 11, size: float = 1.0, z: float = 0.0):
    """A flat n x n grid in z = const, counter-clockwise seen from +z."""
    x, y = np.meshgrid(np.linspace(0, size, n), np.linspace(0, size, n), indexing="ij")
    v = np.column_stack([x.ravel(), y.ravel(), np.full(n * n, z)])
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), \
        idx[:-1, 1:].ravel()
    return v, np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])


# ------------------------------------------------------------------ sampling, closest


def test_samples_are_uniform_over_the_area_and_lie_on_their_faces():
    v, f = plane(3)
    v = v.copy()
    v[v[:, 0] > 0.75, 0] *= 3.0  # one column of cells three times as wide
    s = sample_surface(v, f, 20000, seed=3)
    wide = (s.points[:, 0] > 0.5).mean()  # columns 0.5 and 2.5 wide: area share 2.5 / 3
    assert abs(wide - 2.5 / 3.0) < 0.01
    np.testing.assert_allclose(s.on(v, f), s.points, atol=1e-12)
    np.testing.assert_allclose(s.normals, np.tile([0.0, 0.0, 1.0], (20000, 1)))
    assert (s.barycentric >= 0).all() and np.allclose(s.barycentric.sum(1), 1.0)
    again = sample_surface(v, f, 20000, seed=3)
    np.testing.assert_array_equal(again.points, s.points)  # seeded


def test_closest_points_are_exact_against_brute_force():
    v, f = sphere(2)
    rng = np.random.default_rng(0)
    v = v * rng.uniform(0.85, 1.15, (len(v), 1))
    queries = np.concatenate([rng.normal(size=(300, 3)), np.zeros((1, 3)),  # the centre
                              sample_surface(v, f, 100, seed=1).points])
    got = closest_points(queries, v, f)
    rows = np.repeat(np.arange(len(queries)), len(f))
    faces = np.tile(np.arange(len(f)), len(queries))
    d2, _ = closest_on_triangles(queries[rows], *(v[f[faces, k]] for k in range(3)))
    np.testing.assert_allclose(got.distance, np.sqrt(d2.reshape(len(queries), -1).min(1)),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(got.points - queries, axis=1), got.distance,
                               atol=1e-12)
    assert got.distance[-100:].max() < 1e-12  # samples on the surface


def test_closest_point_regions_of_one_triangle():
    a, b, c = np.array([0.0, 0, 0]), np.array([1.0, 0, 0]), np.array([0.0, 1, 0])
    p = np.array([[0.2, 0.2, 0.5],    # above the inside: straight down
                  [-1.0, -1.0, 0.0],  # beyond vertex a
                  [0.5, -2.0, 1.0],   # beside edge ab
                  [1.0, 1.0, 0.0]])   # beside edge bc
    d2, bary = closest_on_triangles(p, *(np.tile(x, (4, 1)) for x in (a, b, c)))
    np.testing.assert_allclose(d2, [0.25, 2.0, 5.0, 0.5])
    np.testing.assert_allclose(bary, [[0.6, 0.2, 0.2], [1, 0, 0], [0.5, 0.5, 0], [0, 0.5, 0.5]])


# --------------------------------------------------------------------- surface metrics


def test_chamfer_of_point_clouds_identical_and_translated_is_zero():
    pts = np.random.default_rng(1).normal(size=(500, 3))
    assert chamfer_points(pts, pts) == 0.0
    assert chamfer_points(pts, pts + [0.4, -0.2, 3.0]) < 1e-24  # centring
    assert chamfer_points(pts, pts + [0.4, 0, 0], centre=False) > 0.1
    # Known value: clouds {0} and {d}, uncentred: d^2 each way.
    assert chamfer_points([[0, 0, 0]], [[0.0, 0.0, 0.3]], centre=False) == pytest.approx(0.18)


def test_identical_and_translated_meshes_differ_only_by_the_sampling_floor():
    v, f = sphere(4)
    same = surface_metrics(v, f, v, f)
    moved = surface_metrics(v, f, v + [0.3, -0.1, 0.2], f)
    assert chamfer_distance(v, f, v + [0.3, -0.1, 0.2], f) == pytest.approx(moved.chamfer_m2,
                                                                            rel=1e-12)
    # Independent samples: the floor is about (A_a + A_b) / (pi N) plus the jitter of
    # the two centroids (~10 % here); NGD's protocol has it too.
    area = 4 * math.pi
    assert 0.9 < same.chamfer_m2 / (2 * area / (math.pi * 10000)) < 1.3
    assert moved.chamfer_m2 == pytest.approx(same.chamfer_m2, rel=1e-9)  # centring
    assert same.point_to_surface_mm < 1e-9
    assert moved.point_to_surface_mm > 100.0  # placement counts in point-to-surface
    assert same.normal_consistency > 0.998
    assert same.samples == 10000 and same.chamfer_x1e3 == pytest.approx(same.chamfer_m2 * 1e3)


@pytest.mark.parametrize("d", [0.05, 0.3])
def test_concentric_spheres_give_two_d_squared_over_the_floor(d):
    v, f = sphere(4)
    floor = surface_metrics(v, f, v, f).chamfer_m2
    got = surface_metrics(v, f, v * (1 + d), f).chamfer_m2
    # Floor per direction scales with the target's area: r^2 and (r + d)^2.
    expected = 2 * d * d + floor * (1 + (1 + d) ** 2) / 2
    assert got == pytest.approx(expected, rel=0.01)


def test_plane_offset_by_d_point_to_surface_and_normals():
    v, f = plane()
    d = 0.004
    m = surface_metrics(v, f, v + [0, 0, d], f, samples=4000)
    assert m.point_to_surface_mm == pytest.approx(d * 1e3, rel=1e-9)
    assert m.normal_consistency == pytest.approx(1.0, abs=1e-12)
    flipped = surface_metrics(v, f[:, ::-1], v, f, samples=4000)
    assert flipped.normal_consistency == pytest.approx(1.0, abs=1e-12)  # |cos|
    assert flipped.point_to_surface_mm < 1e-9
    # A plane at right angles: normals orthogonal.
    upright = v[:, [0, 2, 1]]
    assert surface_metrics(v, f, upright, f, samples=4000).normal_consistency < 1e-9


# ----------------------------------------------------------------------------- images


def test_mask_iou_known_values_and_empty_frames():
    a = np.zeros((3, 8, 8), bool)
    b = np.zeros((3, 8, 8), bool)
    a[0, :4, :4] = True            # 16 px
    b[0, 2:6, :4] = True           # 16 px, overlap 8 -> 8 / 24
    a[1, :, :] = True
    b[1, :, :] = True              # identical -> 1
    # frame 2: both empty
    np.testing.assert_allclose(mask_iou(a, b), [1 / 3, 1.0, 1.0])
    assert np.isnan(mask_iou(a, b, empty=np.nan)[2])
    as_png = np.where(a, 255, 0).astype(np.uint8)  # the capture's >127 rule
    np.testing.assert_allclose(mask_iou(as_png, b.astype(np.float32)), [1 / 3, 1.0, 1.0])
    assert mask_iou(a[0], b[0]).shape == ()


def test_psnr_of_a_known_mse():
    gt = np.zeros((2, 16, 16, 3))
    pred = gt + 0.1                      # MSE 0.01 -> 20 dB
    pred[1] = gt[1]                       # identical -> inf
    np.testing.assert_allclose(psnr(pred, gt)[0], 20.0)
    assert psnr(pred, gt)[1] == np.inf
    mask = np.zeros((2, 16, 16), bool)
    mask[:, :4] = True
    pred[0, 4:] = 0.9                     # error outside the mask only
    np.testing.assert_allclose(psnr(pred, gt, mask)[0], 20.0)
    assert np.isnan(psnr(pred, gt, np.zeros_like(mask))[0])


def _naive_ssim(x, y, mask=None):
    """Direct per-window SSIM (sliding windows, 2-D Gaussian weights), one channel."""
    w2 = np.outer(gaussian_window(), gaussian_window())
    wx = np.lib.stride_tricks.sliding_window_view(x, (11, 11))
    wy = np.lib.stride_tricks.sliding_window_view(y, (11, 11))
    mx, my = (wx * w2).sum((-2, -1)), (wy * w2).sum((-2, -1))
    vx = (w2 * (wx - mx[..., None, None]) ** 2).sum((-2, -1))
    vy = (w2 * (wy - my[..., None, None]) ** 2).sum((-2, -1))
    cxy = (w2 * (wx - mx[..., None, None]) * (wy - my[..., None, None])).sum((-2, -1))
    c1, c2 = 0.01**2, 0.03**2
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    if mask is None:
        return s.mean()
    centres = mask[5:-5, 5:-5]
    return s[centres].mean()


def test_ssim_matches_a_naive_windowed_formulation():
    rng = np.random.default_rng(2)
    gt = rng.random((2, 24, 30, 3))
    pred = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1)
    got = ssim(pred, gt)
    for t in range(2):
        ref = np.mean([_naive_ssim(pred[t, ..., c], gt[t, ..., c]) for c in range(3)])
        assert got[t] == pytest.approx(ref, abs=1e-10)
    mask = np.zeros((2, 24, 30), bool)
    mask[:, 3:20, 8:25] = True
    got = ssim(pred, gt, mask)
    ref = np.mean([_naive_ssim(pred[0, ..., c], gt[0, ..., c], mask[0]) for c in range(3)])
    assert got[0] == pytest.approx(ref, abs=1e-10)


def test_ssim_analytic_cases():
    rng = np.random.default_rng(3)
    img = rng.random((16, 16, 1))
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    # Constant images a and a + c: no variance, so SSIM is the luminance term alone.
    a, c = 0.3, 0.2
    expected = (2 * a * (a + c) + 0.01**2) / (a**2 + (a + c) ** 2 + 0.01**2)
    assert ssim(np.full((16, 16, 3), a), np.full((16, 16, 3), a + c)) == pytest.approx(
        expected, abs=1e-12)
    assert ssim(img, 1.0 - img) < 0  # anti-correlated structure


# --------------------------------------------------------------------------- temporal


def test_acceleration_error_of_constant_velocity_and_quadratic_motion():
    v, _ = sphere(1)
    t = np.arange(6, dtype=np.float64)[:, None, None]
    velocity = np.array([0.01, -0.02, 0.005])
    accel = np.array([0.0, 0.0, -0.003])  # m / frame^2
    still = np.broadcast_to(v, (6, *v.shape))
    linear = v + t * velocity
    quadratic = v + t * velocity + 0.5 * t**2 * accel
    np.testing.assert_allclose(acceleration_error(linear, still), 0.0, atol=1e-15)
    np.testing.assert_allclose(acceleration_error(quadratic, linear), 0.003, rtol=1e-9)
    np.testing.assert_allclose(acceleration_error(quadratic, linear, fps=30.0),
                               0.003 * 900, rtol=1e-9)
    assert acceleration_error(quadratic, linear).shape == (4,)


def test_acceleration_error_through_different_topologies_uses_tracked_points():
    vp, fp = sphere(2)
    vg, fg = sphere(3, radius=1.01)
    t = np.arange(5, dtype=np.float64)[:, None, None]
    accel = np.array([0.002, 0.0, 0.0])
    pred = vp + 0.5 * t**2 * accel   # accelerating
    gt = vg + 0.01 * t               # constant velocity
    pred_tracks, gt_tracks = tracked_points(pred, fp, gt, fg, samples=500)
    assert pred_tracks.shape == gt_tracks.shape == (5, 500, 3)
    # Frame-0 tracks are the GT samples and their closest points on the prediction.
    d = np.linalg.norm(pred_tracks[0] - gt_tracks[0], axis=1)
    assert d.max() < 0.03
    np.testing.assert_allclose(acceleration_error(pred_tracks, gt_tracks), 0.002, rtol=1e-9)


# ----------------------------------------------------------------------------- record


def test_evaluate_builds_a_record_with_every_metric_and_valid_json():
    vp, fp = sphere(2)
    vg, fg = sphere(3)
    frames = [11, 12, 13]
    t = np.arange(3, dtype=np.float64)[:, None, None]
    pred_v = vp + 0.01 * t
    gt_v = vg + 0.01 * t
    masks = np.zeros((3, 16, 16), bool)
    masks[:, 4:12, 4:12] = True
    images = np.random.default_rng(4).random((3, 16, 16, 3))
    record = evaluate(frames, pred_vertices=pred_v, pred_faces=fp, gt_vertices=gt_v,
                      gt_faces=fg, pred_masks=masks, gt_masks=masks, pred_images=images,
                      gt_images=images, settings=EvalSettings(samples=2000))
    assert record.frames == (11, 12, 13) and record.samples == 2000
    assert len(record.chamfer_m2) == 3 and record.acceleration_method == "tracked"
    assert record.acceleration_error_mm == pytest.approx((0.0,), abs=1e-9)
    assert record.mask_iou == (1.0, 1.0, 1.0) and record.psnr_db == (math.inf,) * 3
    assert record.chamfer_x1e3 == pytest.approx(1e3 * np.mean(record.chamfer_m2))
    data = json.loads(json.dumps(record.to_dict(), allow_nan=False))
    assert data["frames"] == frames
    assert data["summary"]["psnr_db"] is None and data["per_frame"]["psnr_db"] == [None] * 3
    assert data["summary"]["ssim"] == pytest.approx(1.0)
    assert data["summary"]["chamfer_x1e3"] == pytest.approx(record.chamfer_x1e3)
    # Same topology: accelerations on the vertices themselves.
    same = evaluate(frames, pred_vertices=pred_v, pred_faces=fp, gt_vertices=pred_v,
                    gt_faces=fp, settings=EvalSettings(samples=500))
    assert same.acceleration_method == "vertices" and same.mask_iou is None
    assert "mask_iou" not in same.to_dict()["summary"]


def test_front_and_back_halves_split_by_the_camera():
    vg, fg = sphere(3)
    # the prediction is the sphere with bumps of +-5 % on its back (z < 0) that leave
    # its mean in place (the clouds are centred): the camera on +z sees no error
    vp = vg.copy()
    back = vp[:, 2] < 0
    vp[back] *= 1 + 0.05 * np.sign(np.sin(6 * vp[back, :1]) * np.sin(6 * vp[back, 1:2]))
    camera = np.array([0.0, 0.0, 4.0])
    m = surface_metrics(vp, fg, vg, fg, samples=4000, view_point=camera)
    floor = surface_metrics(vg, fg, vg, fg, samples=4000, view_point=camera)  # sampling only
    assert m.chamfer_front_m2 == pytest.approx(floor.chamfer_front_m2, rel=0.25)
    assert m.chamfer_back_m2 > 2 * floor.chamfer_back_m2
    assert m.chamfer_back_m2 - floor.chamfer_back_m2 > 10 * abs(m.chamfer_front_m2
                                                              - floor.chamfer_front_m2)
    # from the other side the halves swap
    flipped = surface_metrics(vp, fg, vg, fg, samples=4000, view_point=-camera)
    assert flipped.chamfer_front_m2 > 2 * floor.chamfer_back_m2
    assert flipped.chamfer_back_m2 == pytest.approx(floor.chamfer_front_m2, rel=0.25)
    # the prediction's winding does not matter: it takes its side from the ground truth
    reversed_faces = surface_metrics(vp, fg[:, ::-1], vg, fg, samples=4000, view_point=camera)
    assert reversed_faces.chamfer_back_m2 == pytest.approx(m.chamfer_back_m2, rel=0.02)
    assert surface_metrics(vp, fg, vg, fg, samples=500).chamfer_back_m2 is None


def test_body_penetrations_count_the_vertices_inside_the_body():
    from backend.eval.metrics import body_penetrations

    body, faces = sphere(3)
    points = np.array([[0.0, 0, 0], [0.5, 0.2, 0.1], [0.0, 0.0, 1.2], [2.0, 0, 0],
                       [0.0, -0.98, 0.0]])
    assert body_penetrations(points, body, faces) == 3
    record = evaluate([1, 2], pred_vertices=np.stack([points, points + [5.0, 0, 0]]),
                      pred_faces=np.array([[0, 1, 2]]), gt_vertices=np.stack([body, body]),
                      gt_faces=faces, view_points=np.array([[0, 0, 4.0], [0, 0, 4.0]]),
                      body_vertices=np.stack([body, body]), body_faces=faces,
                      settings=EvalSettings(samples=500))
    assert record.penetrating_vertices == (3.0, 0.0)
    assert len(record.chamfer_back_m2) == 2
    summary = record.to_dict()["summary"]
    assert summary["penetrating_vertices"] == 1.5 and summary["chamfer_front_m2"] > 0
    with pytest.raises(EvalError, match="body_vertices and body_faces together"):
        evaluate([1], pred_vertices=points[None], pred_faces=np.array([[0, 1, 2]]),
                 gt_vertices=body[None], gt_faces=faces, body_vertices=body[None])


def test_metrics_record_checks_its_lengths():
    with pytest.raises(EvalError, match=r"chamfer_m2 needs 3 values for 3 frames; got 2"):
        MetricsRecord(frames=(1, 2, 3), chamfer_m2=(0.1, 0.2))
    with pytest.raises(EvalError, match=r"acceleration_error_mm needs 1 values"):
        MetricsRecord(frames=(1, 2, 3), acceleration_error_mm=(0.1, 0.2),
                      acceleration_method="vertices")
    with pytest.raises(EvalError, match=r"acceleration_method must be given"):
        MetricsRecord(frames=(1, 2, 3), acceleration_error_mm=(0.1,))
    record = MetricsRecord(frames=(1, 2), mask_iou=(0.5, float("nan")))
    assert record.mean("mask_iou") == 0.5 and record.mean("ssim") is None


# ----------------------------------------------------------------------------- errors


def test_bad_inputs_name_the_culprit():
    v, f = plane(3)
    with pytest.raises(EvalError, match=r"prediction frame 7 vertices must have shape"):
        surface_metrics(v[:, :2], f, v, f, name="frame 7")
    bad = f.copy()
    bad[2, 0] = 99
    with pytest.raises(EvalError, match=r"ground truth face 2 indexes a vertex outside"):
        surface_metrics(v, f, v, bad)
    with pytest.raises(EvalError, match=r"no surface area"):
        sample_surface(np.zeros((4, 3)), f[:2] % 4)
    with pytest.raises(EvalError, match=r"gt_masks must have the shape of pred_masks"):
        mask_iou(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)))
    with pytest.raises(EvalError, match=r"at least 11x11"):
        ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))
    with pytest.raises(EvalError, match=r"channels last"):
        psnr(np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(EvalError, match=r"needs at least 3 frames"):
        acceleration_error(np.zeros((2, 4, 3)), np.zeros((2, 4, 3)))
    with pytest.raises(EvalError, match=r"gt_vertices must have the shape"):
        acceleration_error(np.zeros((3, 4, 3)), np.zeros((3, 5, 3)))
    with pytest.raises(EvalError, match=r"gt_masks has 2 frames but frames lists 3"):
        evaluate([1, 2, 3], pred_masks=np.zeros((3, 4, 4)), gt_masks=np.zeros((2, 4, 4)))
    with pytest.raises(EvalError, match=r"need pred_vertices, pred_faces"):
        evaluate([1], pred_vertices=v[None])
    with pytest.raises(EvalError, match=r"image_mask must be"):
        EvalSettings(image_mask="pred")


def test_the_evaluator_does_not_load_torch():
    script = "import sys, backend.eval; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


# ---------------------------------------------------------------------------- bundles


def _bundle(root, vertices, faces, frames):
    from backend.jobs.result import GarmentResult, write_result

    write_result(root, GarmentResult(faces=faces, canonical_vertices=vertices[0],
                                     vertices=vertices, frame_numbers=np.asarray(frames)))
    return root


def test_a_result_is_scored_against_gt_by_frame_number(tmp_path):
    from backend.eval.quality import evaluate_result, evaluate_vertices

    v, f = sphere(1)
    frames = np.arange(1, 8)  # gt holds frames 1..7
    t = frames[:, None, None].astype(np.float64)
    accel = np.array([0.0, 0.004, 0.0])  # m / frame^2
    gt = _bundle(tmp_path / "gt", v + 0.01 * t, f, frames)
    pred = v + 0.01 * t + 0.5 * t**2 * accel
    settings = EvalSettings(samples=500)
    # Frames 3..6 of the prediction, scored against gt frames 3..6 (not rows 0..3).
    result = _bundle(tmp_path / "out", pred[2:6], f, frames[2:6])
    metrics = evaluate_result(result, gt, settings)
    assert metrics["frames"] == [3, 4, 5, 6]
    assert metrics["acceleration_method"] == "vertices"
    assert metrics["summary"]["acceleration_error_mm"] == pytest.approx(4.0, rel=1e-4)
    # The same as scoring the (float32, as stored) vertices against gt rows 2..5.
    stored = pred[2:6].astype(np.float32)
    assert metrics == evaluate_vertices(stored, f, frames[2:6], gt, settings)
    direct = evaluate(frames[2:6], pred_vertices=stored, pred_faces=f,
                      gt_vertices=(v + 0.01 * t)[2:6].astype(np.float32), gt_faces=f,
                      settings=settings)
    assert metrics == direct.to_dict()
    # Every second frame: still per frame^2 of the Blender frame numbers.
    odd = evaluate_vertices(pred[::2], f, frames[::2], gt, settings)
    assert odd["summary"]["acceleration_error_mm"] == pytest.approx(4.0, rel=1e-4)
    uneven = evaluate_vertices(pred[[0, 1, 3]], f, [1, 2, 4], gt, settings)
    assert "acceleration_error_mm" not in uneven["summary"]
    with pytest.raises(EvalError, match=r"gt.garment\.npz has no frame 9 .*frames 1\.\.7"):
        evaluate_vertices(pred[:2], f, [1, 9], gt, settings)
