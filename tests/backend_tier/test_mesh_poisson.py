"""``backend.mesh.poisson``: exact round trips vertices -> Jacobians -> vertices on
irregular meshes (closed, open with boundary, two components), the rest/identity and
scale/rotation cases, G and L against naive per-face/per-edge references, gradchecks,
batching, both solvers, and every MeshError."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial import Delaunay

from backend.mesh import MeshError, PoissonSystem, cholespy_available
from backend.mesh.poisson import (
    corner_gradients,
    cotangent_laplacian,
    face_geometry,
    gradient_operator,
    rest_jacobians,
)
from backend.render.mesh_utils import icosphere
from tests.backend_tier.render_helpers import DEVICES

REPO = Path(__file__).resolve().parents[2]

# cholespy is an optional dependency: its runs skip visibly (-ra) where it is missing;
# the scipy solver always runs.
SOLVERS = [
    pytest.param("cholespy", marks=pytest.mark.skipif(not cholespy_available(),
                                                      reason="cholespy is not installed")),
    "scipy",
]


def perturbed_sphere(seed: int = 0, level: int = 2):
    v, f = icosphere(level, dtype=torch.float64)
    rng = np.random.default_rng(seed)
    v = v.numpy() * rng.uniform(0.8, 1.2, size=(len(v), 1)) + rng.normal(0, 0.03, (len(v), 3))
    return v, f.numpy().astype(np.int64)


def open_patch(seed: int = 1, points: int = 120):
    """A randomly triangulated, wavy open patch: irregular triangles and a boundary."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-1.0, 1.0, size=(points, 2))
    faces = Delaunay(xy).simplices.astype(np.int64)
    z = 0.3 * np.sin(2.0 * xy[:, 0]) * np.cos(3.0 * xy[:, 1])
    return np.column_stack([xy, z]), faces


def two_components():
    vs, fs = perturbed_sphere(2, level=1)
    vp, fp = open_patch(3, points=60)
    return np.concatenate([vs, vp + [3.0, 0.5, -1.0]]), np.concatenate([fs, fp + len(vs)])


MESHES = {"sphere": perturbed_sphere, "patch": open_patch, "two_components": two_components}


def system(name: str, solver: str = "auto", device: str = "cpu", dtype=torch.float64):
    v, f = MESHES[name]()
    verts = torch.tensor(v, dtype=dtype, device=device)
    return PoissonSystem(verts, torch.tensor(f, device=device), solver=solver), verts


def normals_of(v, f):
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


# ------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("name", sorted(MESHES))
def test_vertices_of_jacobians_reproduce_the_mesh(name, solver):
    ps, v0 = system(name, solver)
    assert ps.solver_name == solver
    assert ps.num_components == (2 if name == "two_components" else 1)
    # A deformed mesh (not the rest one) must come back too, up to the pinned centroids.
    rng = np.random.default_rng(7)
    deformed = v0 + torch.tensor(rng.normal(0, 0.05, v0.shape))
    back = ps.vertices(ps.jacobians(deformed))
    labels = ps.component_labels.numpy()
    expected = deformed.numpy().copy()
    for c in range(ps.num_components):  # each component lands on its rest centroid
        expected[labels == c] += v0.numpy()[labels == c].mean(0) - expected[labels == c].mean(0)
    np.testing.assert_allclose(back.numpy(), expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ps.vertices(ps.jacobians(v0)).numpy(), v0.numpy(), atol=1e-6,
                               rtol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(MESHES))
def test_rest_and_identity_jacobians_reproduce_the_template_in_place(name, device):
    ps, v0 = system(name, device=device)
    v, f = (a.cpu().numpy() for a in (v0, ps.faces))
    n = normals_of(v, f)
    projector = np.eye(3) - n[:, :, None] * n[:, None, :]
    np.testing.assert_allclose(ps.jacobians(v0).cpu().numpy(), projector, atol=1e-9)
    np.testing.assert_allclose(ps.rest_jacobians.cpu().numpy(), projector, atol=1e-12)
    np.testing.assert_allclose(rest_jacobians(v, f), projector, atol=1e-12)
    # The rest Jacobians are not the identity ...
    assert np.abs(projector - np.eye(3)).max() > 0.5
    # ... but both give the template back: the normal column cannot be matched anyway.
    identity = torch.eye(3, dtype=torch.float64, device=device).expand(len(f), 3, 3)
    for jac in (ps.rest_jacobians, identity):
        np.testing.assert_allclose(ps.vertices(jac).cpu().numpy(), v, atol=1e-9, rtol=0)


@pytest.mark.parametrize("solver", SOLVERS)
def test_float32_round_trip_keeps_the_dtype(solver):
    ps, v0 = system("patch", solver, dtype=torch.float32)
    assert ps.dtype == torch.float32 and ps.rest_jacobians.dtype == torch.float32
    jac = ps.jacobians(v0)
    back = ps.vertices(jac)
    assert jac.dtype == back.dtype == torch.float32
    assert (back - v0).abs().max() < 1e-5


# ------------------------------------------------------------------- known deformations


@pytest.mark.parametrize("name", sorted(MESHES))
def test_uniform_scale_and_rotation_about_each_component_centroid(name):
    ps, v0 = system(name)
    v = v0.numpy()
    labels = ps.component_labels.numpy()
    centroids = np.stack([v[labels == c].mean(0) for c in range(ps.num_components)])[labels]
    s = 1.7
    scaled = ps.vertices(s * ps.rest_jacobians).numpy()
    np.testing.assert_allclose(scaled, s * (v - centroids) + centroids, atol=1e-9, rtol=0)
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0],
                    [0.0, 0.0, 1.0]])
    rotated = ps.vertices(torch.tensor(rot) @ ps.rest_jacobians).numpy()
    np.testing.assert_allclose(rotated, (v - centroids) @ rot.T + centroids, atol=1e-9, rtol=0)


def test_the_solution_minimises_the_area_weighted_jacobian_mismatch():
    ps, v0 = system("patch")
    rng = np.random.default_rng(4)
    jac = torch.tensor(rng.normal(size=(ps.num_faces, 3, 3)))
    x = ps.vertices(jac).numpy()
    G = gradient_operator(*MESHES["patch"]())
    areas = ps.face_areas.numpy()
    target = jac.numpy().transpose(0, 2, 1).reshape(-1, 3)  # rows 3f+c: J_f^T

    def energy(y):
        return float((np.repeat(areas, 3)[:, None] * (G @ y - target) ** 2).sum())

    # Normal equations G^T M (G x - J^T) = 0, and any non-constant change costs energy.
    residual = G.T @ (np.repeat(areas, 3)[:, None] * (G @ x - target))
    assert np.abs(residual).max() < 1e-10 * np.abs(G.T @ (np.repeat(areas, 3)[:, None]
                                                          * target)).max()
    for _ in range(3):
        assert energy(x + 1e-3 * rng.normal(size=x.shape)) > energy(x)
    np.testing.assert_allclose(x.mean(0), v0.numpy().mean(0), atol=1e-12)


def test_vertices_used_by_no_face_stay_at_rest():
    v, f = open_patch()
    v = np.concatenate([v, [[5.0, 5.0, 5.0]]])
    ps = PoissonSystem(v, f)
    assert ps.num_components == 2
    out = ps.vertices(2.0 * ps.rest_jacobians).numpy()
    np.testing.assert_allclose(out[-1], [5.0, 5.0, 5.0], atol=1e-12)


# ------------------------------------------------------------------ operators vs naive


def test_gradient_operator_matches_a_naive_per_face_solve():
    v, f = open_patch()
    rng = np.random.default_rng(5)
    scalar = rng.normal(size=len(v))
    ours = (gradient_operator(v, f) @ scalar).reshape(-1, 3)
    n = normals_of(v, f)
    for face in range(len(f)):
        i, j, k = f[face]
        # The gradient g lies in the plane and reproduces the differences along the edges.
        A = np.stack([v[j] - v[i], v[k] - v[i], n[face]])
        g = np.linalg.solve(A, [scalar[j] - scalar[i], scalar[k] - scalar[i], 0.0])
        np.testing.assert_allclose(ours[face], g, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.einsum("fkc,fk->fc", corner_gradients(v, f), scalar[f]),
                               ours, atol=1e-12)
    normals, areas = face_geometry(v, f)
    np.testing.assert_allclose(areas, 0.5 * np.linalg.norm(
        np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1))
    np.testing.assert_allclose(normals, n, atol=1e-12)


def test_jacobians_match_the_gradient_operator_convention():
    ps, v0 = system("sphere")
    rng = np.random.default_rng(6)
    x = v0.numpy() + rng.normal(0, 0.1, v0.shape)
    gx = (ps.gradient @ x).reshape(-1, 3, 3)  # [f, c, i]
    jac = ps.jacobians(torch.tensor(x)).numpy()  # [f, i, c]
    np.testing.assert_allclose(jac, gx.transpose(0, 2, 1), atol=1e-12)


@pytest.mark.parametrize("name", ["patch", "two_components"])
def test_laplacian_is_the_symmetric_psd_cotangent_laplacian(name):
    v, f = MESHES[name]()
    lap = cotangent_laplacian(v, f)
    dense = lap.toarray()
    np.testing.assert_array_equal(dense, dense.T)
    eig = np.linalg.eigvalsh(dense)
    assert eig.min() > -1e-10
    n_components = 2 if name == "two_components" else 1
    assert (np.abs(eig) < 1e-10).sum() == n_components  # constants per component only
    np.testing.assert_allclose(lap @ np.ones(len(v)), 0.0, atol=1e-12)
    # Naive reference: L_ij = -(cot a + cot b) / 2 over the angles facing edge ij.
    ref = np.zeros_like(dense)
    for face in f:
        for k in range(3):
            a, i, j = face[k], face[(k + 1) % 3], face[(k + 2) % 3]
            e1, e2 = v[i] - v[a], v[j] - v[a]
            w = 0.5 * np.dot(e1, e2) / np.linalg.norm(np.cross(e1, e2))
            ref[i, j] -= w
            ref[j, i] -= w
            ref[i, i] += w
            ref[j, j] += w
    np.testing.assert_allclose(dense, ref, atol=1e-10)


# ---------------------------------------------------------------- autograd and batching


@pytest.mark.parametrize("solver", SOLVERS)
def test_gradcheck_of_the_differentiable_solve_and_the_jacobians(solver):
    v, f = icosphere(0, dtype=torch.float64)
    v = v + 0.05 * torch.randn(v.shape, generator=torch.Generator().manual_seed(0),
                               dtype=torch.float64)
    # A second component, so per-component centring is inside the checked function.
    v = torch.cat([v, v[:4] + 3.0])
    f = torch.cat([f.long(), torch.tensor([[12, 13, 14], [12, 14, 15]])])
    ps = PoissonSystem(v, f, solver=solver)
    jac = (ps.rest_jacobians + 0.1 * torch.randn(2, ps.num_faces, 3, 3, dtype=torch.float64,
                                                 generator=torch.Generator().manual_seed(1)))
    # Full check on one frame; the batch and the double backward by random projections
    # (fast mode), which keeps this test well under a second.
    assert torch.autograd.gradcheck(ps.vertices, (jac[:1].clone().requires_grad_(True),))
    assert torch.autograd.gradcheck(ps.vertices, (jac.clone().requires_grad_(True),),
                                    fast_mode=True)
    assert torch.autograd.gradgradcheck(ps.vertices, (jac.clone().requires_grad_(True),),
                                        fast_mode=True)
    assert torch.autograd.gradcheck(ps.jacobians, (v.clone().requires_grad_(True),))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("solver", SOLVERS)
def test_batched_equals_looped(solver, device):
    ps, v0 = system("two_components", solver, device=device)
    rng = np.random.default_rng(8)
    jac = ps.rest_jacobians + torch.tensor(rng.normal(0, 0.2, (2, 3, ps.num_faces, 3, 3)),
                                           device=device)
    batched = ps.vertices(jac)
    assert batched.shape == (2, 3, ps.num_vertices, 3)
    for a in range(2):
        for b in range(3):
            torch.testing.assert_close(batched[a, b], ps.vertices(jac[a, b]), atol=1e-12,
                                       rtol=0)
    verts = batched.detach()
    looped = torch.stack([torch.stack([ps.jacobians(verts[a, b]) for b in range(3)])
                          for a in range(2)])
    torch.testing.assert_close(ps.jacobians(verts), looped, atol=1e-12, rtol=0)


def test_the_gpu_sparse_products_match_scipy():
    """On a GPU the sparse products run as torch CSR tensors: check that form (built
    here on the CPU) against scipy, both ways round."""
    from backend.mesh.poisson import _torch_csr

    v, f = open_patch()
    G = gradient_operator(v, f)
    x = torch.tensor(np.random.default_rng(9).normal(size=(len(v), 6)))
    y = torch.tensor(np.random.default_rng(10).normal(size=(G.shape[0], 6)))
    torch.testing.assert_close(_torch_csr(G.tocsr(), torch.device("cpu")) @ x,
                               torch.from_numpy(G @ x.numpy()), atol=1e-12, rtol=0)
    torch.testing.assert_close(_torch_csr(G.T.tocsr(), torch.device("cpu")) @ y,
                               torch.from_numpy(G.T @ y.numpy()), atol=1e-12, rtol=0)


def test_both_solvers_agree_and_gradients_flow_to_the_jacobians():
    if not cholespy_available():
        pytest.skip("cholespy is not installed")
    results = []
    for solver in ("cholespy", "scipy"):
        ps, _ = system("sphere", solver)
        jac = (1.3 * ps.rest_jacobians).requires_grad_(True)
        target = torch.linspace(0, 1, ps.num_vertices * 3, dtype=torch.float64).view(-1, 3)
        loss = (ps.vertices(jac) * target).sum()
        loss.backward()
        results.append((loss.detach(), jac.grad))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-10, rtol=0)
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-10, rtol=0)
    assert results[0][1].abs().max() > 1e-3


# --------------------------------------------------------------------------- errors


def _raises(match, fn, *args, **kwargs):
    with pytest.raises(MeshError, match=match):
        fn(*args, **kwargs)


def test_bad_meshes_are_rejected_with_the_culprit_named():
    v, f = open_patch()
    _raises(r"vertices must have shape \(V, 3\).*got \(120, 2\)", PoissonSystem, v[:, :2], f)
    _raises(r"faces must have shape \(F, 3\).*got \(5, 4\)", PoissonSystem, v,
            np.zeros((5, 4), int))
    _raises(r"faces must be integer", PoissonSystem, v, f.astype(np.float64))
    _raises(r"vertices must be floating", PoissonSystem, v.astype(np.int64), f)
    bad = f.copy()
    bad[3, 1] = len(v)
    _raises(r"out of range \[0, 120\) in face 3 ", PoissonSystem, v, bad)
    bad = f.copy()
    bad[4] = [bad[4, 0], bad[4, 0], bad[4, 2]]
    _raises(r"face 4 repeats a vertex", PoissonSystem, v, bad)
    nan = v.copy()
    nan[7, 2] = np.nan
    _raises(r"vertex 7 is not", PoissonSystem, nan, f)


def test_degenerate_faces_are_rejected_by_index():
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [0.5, 0.5, 0.0]])
    _raises(r"degenerate \(zero-area\) face 1 of 2", PoissonSystem, v,
            np.array([[0, 1, 2], [0, 1, 3]]))  # collinear corners
    coincident = np.concatenate([v, [[1.0, 0.0, 0.0]]])  # vertex 5 sits on vertex 1
    with pytest.raises(MeshError, match=r"face 0 of 2") as info:
        PoissonSystem(coincident, np.array([[1, 5, 2], [0, 1, 2]]))
    assert info.value.hint


def test_bad_method_inputs_are_rejected():
    ps, v0 = system("patch")
    _raises(r"vertices must have shape \(\.\.\., 120, 3\).*got \(119, 3\)",
            ps.jacobians, v0[:-1])
    _raises(rf"jacobians must have shape \(\.\.\., {ps.num_faces}, 3, 3\).*got \(2, 3, 3\)",
            ps.vertices, ps.rest_jacobians[:2])
    _raises(r"must be a torch.Tensor; got ndarray", ps.vertices, ps.rest_jacobians.numpy())
    _raises(r"floating-point tensor; got torch.int64", ps.jacobians, v0.long())
    _raises(r"is on meta but this PoissonSystem lives on cpu", ps.vertices,
            ps.rest_jacobians.to("meta"))
    v, f = open_patch()
    _raises(r"solver must be one of", PoissonSystem, v, f, solver="lu")
    _raises(r"dtype must be a floating torch.dtype", PoissonSystem, v, f, dtype=torch.int32)


def test_importing_the_mesh_package_does_not_load_torch():
    script = "import sys, backend.mesh; print('torch' in sys.modules, 'scipy' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_poisson_bench_reports_every_figure():
    from backend.mesh.bench import grid_patch, run_poisson_bench

    verts, faces = grid_patch(100)
    assert verts.shape == (100, 3) and faces.shape == (162, 3)
    normals, _ = face_geometry(verts, faces)
    assert (normals[:, 2] > 0.9).all()  # counter-clockwise seen from +z

    class Events:
        def __init__(self):
            self.rows = []

        def info(self, message, **data):
            self.rows.append((message, data))

    events = Events()
    rows = run_poisson_bench(events, sizes=(100,), frames=2, repeats=1, devices=["cpu"])
    assert len(rows) == 1 and events.rows[0][1] == rows[0]
    row = rows[0]
    assert row["vertices"] == 100 and row["rhs_columns"] == 6
    timed = ["vertices_ms", "vertices_f64_ms", "forward_backward_ms", "jacobians_ms",
             "scipy_factor_ms", "scipy_solve_ms"]
    if cholespy_available():
        timed += ["build_ms", "factor_ms", "solve_ms"]
    assert all(row[k] > 0 for k in timed), row
    with pytest.raises(MeshError, match="sizes must be ints >= 9"):
        run_poisson_bench(sizes=(4,))
