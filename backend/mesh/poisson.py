"""Per-face Jacobians of a triangle mesh and the prefactorised Poisson solve that turns
Jacobians back into vertices (NGD's deformation parameterisation, after Neural
Jacobian Fields).

Operators, for a mesh with rest vertices ``V0`` ``(V, 3)`` and faces ``(F, 3)``:

- ``G`` (``gradient_operator``), ``(3F, V)`` sparse: row ``3 f + c`` gives component
  ``c`` (x, y, z) of the gradient, over face ``f``, of a per-vertex scalar field
  interpolated linearly on the face. The gradient lies in the face's plane (it has no
  normal component). Per corner ``k`` of face ``f`` the hat function's gradient is
  ``n_f x e_k / (2 A_f)``, ``e_k`` the edge opposite corner ``k`` walked
  counter-clockwise, ``n_f`` the unit normal by the winding (``corner_gradients``).
- ``A`` face areas (m^2); mass ``M = diag(A)`` repeated per gradient component
  (``(3F, 3F)``).
- ``L = G^T M G`` ``(V, V)`` (``cotangent_laplacian``): the cotangent Laplacian,
  positive semi-definite, ``L_ij = -(cot a_ij + cot b_ij) / 2`` on edges, rows summing
  to zero. Its null space is the constants on each connected component.
- ``G^T M`` ``(V, 3F)``: the right-hand side operator of the Poisson solve.

Jacobian convention: ``J[..., f, i, :]`` is the gradient over face ``f`` of output
coordinate ``i``, i.e. ``J_f = (G_f X)^T`` as a 3x3 matrix whose rows are the output's
x, y, z and whose columns are the rest-space gradient directions. For the rest mesh
itself ``J_f = I - n_f n_f^T`` (the tangent projector of face ``f``), NOT the
identity: a surface gradient has no normal component. ``rest_jacobians`` gives these
for the regulariser. Identity Jacobians still reproduce the rest mesh exactly, because
the solve is a least-squares fit and the normal column of ``J_f`` cannot be matched
by any mesh (``G_f x`` is always tangent): only ``J_f P_f`` matters.

The solve (``PoissonSystem.vertices``) minimises ``sum_f A_f ||G_f x - J_f^T||^2``,
i.e. solves ``L x = G^T M J`` per output coordinate. ``L`` is singular (one constant
per connected component). Null-space handling: one vertex per component (its
lowest-index vertex) is pinned in the factorisation, its row and column of ``L``
replaced by the identity and its right-hand side set to zero; the (consistent) system
then has a unique solution with the pins at 0, which is finally shifted so that every
component has the centroid (plain vertex mean) that it has in the rest mesh. So
``vertices(jacobians(V0)) == V0`` to float error, rest or identity Jacobians
reproduce the template in place, and vertices used by no face stay where they are.

The factorisation is a float64 sparse Cholesky (cholespy: CHOLMOD on the CPU, its own
CUDA solve on the GPU) built once per topology on the system's device; the scipy
SuperLU fallback runs on the host and copies every right-hand side to it and back
when the tensors live on a GPU. ``python -m backend bench poisson`` compares the two;
see ``backend/mesh/bench.py``.
"""

from __future__ import annotations

import atexit
import logging
import warnings
import weakref

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

from . import MeshError
from .topology import checked_mesh, listed_indices

log = logging.getLogger(__name__)

SOLVERS = ("auto", "cholespy", "scipy")
"""``solver=`` choices: ``"auto"`` is cholespy when importable, else scipy."""
DEGENERATE_RATIO = 1e-12
"""A face is degenerate when twice its area is at most this times its longest squared
edge (a triangle whose smallest angle is below about 1e-12 rad, or with two
coincident corners): its gradient operator would divide by (nearly) zero."""
CUDA_MAX_RHS = 128
"""cholespy's CUDA solve takes at most this many right-hand-side columns per call."""


def cholespy_available() -> bool:
    """True when the cholespy package (sparse Cholesky on CPU and CUDA) imports."""
    try:
        import cholespy  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------- input


def _to_numpy(value, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as exc:  # ragged lists and other non-arrays
        raise MeshError(f"{name} must be an array or tensor; got {type(value).__name__}") \
            from exc


def _validated_mesh(vertices, faces) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices float64 (V, 3), faces int64 (F, 3))`` as numpy arrays (tensors
    accepted), or MeshError; also rejects degenerate faces."""
    v, f = checked_mesh(_to_numpy(vertices, "vertices"), _to_numpy(faces, "faces"))
    p0, p1, p2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    double_area = np.linalg.norm(np.cross(p1 - p0, p2 - p0), axis=1)
    longest = np.maximum.reduce([((p1 - p0) ** 2).sum(1), ((p2 - p1) ** 2).sum(1),
                                 ((p0 - p2) ** 2).sum(1)])
    bad = np.flatnonzero(~(double_area > DEGENERATE_RATIO * longest))
    if len(bad):
        raise MeshError(
            f"degenerate (zero-area) face {listed_indices(bad)} of {len(f)}: its corners are "
            f"collinear or coincide (face {int(bad[0])}: area {0.5 * double_area[bad[0]]:.3g} "
            f"m^2); the gradient operator needs every face to have an area",
            hint="remove or collapse degenerate faces before building the Poisson system")
    return v, f


def _geometry(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(corner gradients (F, 3, 3) [face, corner, xyz], unit normals (F, 3), areas (F,))``
    of a validated mesh, float64."""
    p0, p1, p2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    cross = np.cross(p1 - p0, p2 - p0)
    double_area = np.linalg.norm(cross, axis=1)
    normals = cross / double_area[:, None]
    opposite = np.stack([p2 - p1, p0 - p2, p1 - p0], axis=1)  # edge opposite corner k, CCW
    grads = np.cross(normals[:, None, :], opposite) / double_area[:, None, None]
    return grads, normals, 0.5 * double_area


# ------------------------------------------------------------------ public operators


def face_geometry(vertices, faces) -> tuple[np.ndarray, np.ndarray]:
    """Unit face normals ``(F, 3)`` (by the winding: counter-clockwise seen from the
    side they point to) and face areas ``(F,)`` in m^2, both float64 numpy."""
    v, f = _validated_mesh(vertices, faces)
    _, normals, areas = _geometry(v, f)
    return normals, areas


def corner_gradients(vertices, faces) -> np.ndarray:
    """Gradient of each corner's hat function over its face, ``(F, 3, 3)`` float64
    ``[face, corner, xyz]`` (1/m): ``grad_f(x) = sum_k x[faces[f, k]] * g[f, k]``."""
    v, f = _validated_mesh(vertices, faces)
    return _geometry(v, f)[0]


def gradient_operator(vertices, faces) -> sp.csr_matrix:
    """``G``, ``(3F, V)`` float64 CSR: row ``3 f + c`` is component ``c`` of the
    gradient over face ``f`` of a per-vertex scalar (see the module docstring)."""
    v, f = _validated_mesh(vertices, faces)
    return _gradient_matrix(_geometry(v, f)[0], f, len(v))


def _gradient_matrix(grads: np.ndarray, f: np.ndarray, n_vertices: int) -> sp.csr_matrix:
    n_faces = len(f)
    rows = np.broadcast_to(3 * np.arange(n_faces)[:, None, None] + np.arange(3), grads.shape)
    cols = np.broadcast_to(f[:, :, None], grads.shape)
    return sp.csr_matrix((grads.ravel(), (rows.ravel(), cols.ravel())),
                         shape=(3 * n_faces, n_vertices))


def _laplacian(gradient: sp.csr_matrix, areas: np.ndarray) -> sp.csr_matrix:
    mass = sp.diags(np.repeat(areas, 3))
    lap = (gradient.T @ mass @ gradient).tocsr()
    return ((lap + lap.T) * 0.5).tocsr()  # exact symmetry for the Cholesky


def cotangent_laplacian(vertices, faces) -> sp.csr_matrix:
    """``L = G^T M G``, ``(V, V)`` float64 CSR, positive semi-definite (m^0: the
    cotangent weights are scale-free)."""
    v, f = _validated_mesh(vertices, faces)
    grads, _, areas = _geometry(v, f)
    return _laplacian(_gradient_matrix(grads, f, len(v)), areas)


def rest_jacobians(vertices, faces) -> np.ndarray:
    """Jacobians of the rest mesh itself, ``(F, 3, 3)`` float64: ``I - n_f n_f^T``, the
    projector onto face ``f``'s plane (see the module docstring)."""
    normals, _ = face_geometry(vertices, faces)
    return np.eye(3) - normals[:, :, None] * normals[:, None, :]


# --------------------------------------------------------------------------- solvers


_LIVE_FACTORS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _release_factors() -> None:
    # A factor still referenced at exit (a traceback, a global) makes nanobind print
    # "leaked instance" warnings on stderr; dropping them first keeps stderr clean.
    for solver in list(_LIVE_FACTORS):
        solver._factor = None


class _CholespySolver:
    """Float64 sparse Cholesky factor (cholespy) on ``device``; solves stay there."""

    name = "cholespy"

    def __init__(self, matrix: sp.csr_matrix, device: torch.device):
        import cholespy

        coo = matrix.tocoo()
        rows = torch.as_tensor(coo.row.astype(np.int32), device=device)
        cols = torch.as_tensor(coo.col.astype(np.int32), device=device)
        vals = torch.as_tensor(coo.data.astype(np.float64), device=device)
        self._factor = cholespy.CholeskySolverD(matrix.shape[0], rows, cols, vals,
                                                cholespy.MatrixType.COO)
        self._cuda = device.type == "cuda"
        _LIVE_FACTORS.add(self)

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        rhs = rhs.contiguous()
        out = torch.empty_like(rhs)
        if rhs.shape[1] == 0:
            return out
        if not self._cuda:
            self._factor.solve(rhs, out)
            return out
        # cholespy's CUDA kernels run on the legacy default stream, as torch's own do
        # unless the caller switches streams.
        for start in range(0, rhs.shape[1], CUDA_MAX_RHS):
            chunk = rhs[:, start:start + CUDA_MAX_RHS].contiguous()
            result = torch.empty_like(chunk)
            self._factor.solve(chunk, result)
            out[:, start:start + CUDA_MAX_RHS] = result
        return out


class _ScipySolver:
    """SuperLU factor on the host (scipy): every solve copies the right-hand side to
    the host and the solution back when the tensors live on a GPU."""

    name = "scipy"

    def __init__(self, matrix: sp.csr_matrix, device: torch.device):
        from scipy.sparse.linalg import splu

        # Symmetric mode with no pivoting keeps L's symmetric sparsity (SPD matrix).
        self._lu = splu(matrix.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                        options={"SymmetricMode": True})

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        host = rhs.detach().to("cpu", torch.float64).numpy()
        if host.shape[1] == 0:
            return torch.zeros_like(rhs)
        return torch.from_numpy(self._lu.solve(host)).to(rhs.device)


def _make_solver(matrix: sp.csr_matrix, device: torch.device, solver: str):
    if solver not in SOLVERS:
        raise MeshError(f"solver must be one of {SOLVERS}; got {solver!r}")
    if solver == "scipy":
        return _ScipySolver(matrix, device)
    if not cholespy_available():
        if solver == "cholespy":
            raise MeshError("solver 'cholespy' was asked for but cholespy is not installed",
                            hint="pip install cholespy==2.1.0, or use solver='scipy'")
        log.warning("cholespy is not installed: the Poisson solve uses scipy's SuperLU on "
                    "the host%s", " (a host copy per solve)" if device.type != "cpu" else "")
        return _ScipySolver(matrix, device)
    try:
        return _CholespySolver(matrix, device)
    except Exception as exc:  # a CUDA driver cholespy cannot use, a failed factorisation
        if solver == "cholespy":
            raise MeshError(f"cholespy could not factorise the {matrix.shape[0]}-vertex "
                            f"Poisson system on {device}: {exc}") from exc
        log.warning("cholespy failed on %s (%s): falling back to scipy's SuperLU on the host",
                    device, exc)
        return _ScipySolver(matrix, device)


class _PoissonSolve(torch.autograd.Function):
    """``x = L'^{-1} b`` for ``b`` ``(V, K)`` float64; ``L'`` is symmetric, so the
    backward pass is the same solve of the incoming gradient (itself differentiable)."""

    @staticmethod
    def forward(ctx, rhs: torch.Tensor, solver) -> torch.Tensor:
        ctx.solver = solver
        return solver.solve(rhs)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if not ctx.needs_input_grad[0]:
            return None, None
        return _PoissonSolve.apply(grad, ctx.solver), None


class _SparseOperator:
    """A fixed float64 sparse matrix and its transpose, applied to dense float64
    tensors on one device: scipy CSR on the CPU (zero-copy numpy views; single-threaded,
    so a tiny product costs microseconds even when other processes hold the cores,
    where torch's CPU CSR product stalls for milliseconds on its thread pool), torch
    CSR (cuSPARSE) on a GPU."""

    def __init__(self, matrix: sp.spmatrix, device: torch.device | None = None, *,
                 _pair=None):
        if _pair is not None:  # the transposed view of an existing operator
            self._forward, self._transpose, self._cpu = _pair
            return
        csr = sp.csr_matrix(matrix, dtype=np.float64)
        csr.sum_duplicates()
        csr.sort_indices()
        transpose = csr.T.tocsr()
        self._cpu = device.type == "cpu"
        if self._cpu:
            self._forward, self._transpose = csr, transpose
        else:
            self._forward, self._transpose = (_torch_csr(csr, device),
                                              _torch_csr(transpose, device))

    def __matmul__(self, dense: torch.Tensor) -> torch.Tensor:
        if self._cpu:
            return torch.from_numpy(self._forward @ dense.detach().numpy())
        return self._forward @ dense

    def transposed(self) -> _SparseOperator:
        return _SparseOperator(None, _pair=(self._transpose, self._forward, self._cpu))


def _torch_csr(csr: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    index = torch.int32 if csr.nnz < 2**31 else torch.int64
    with warnings.catch_warnings():  # "sparse CSR support is in beta": we test what we use
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.as_tensor(csr.indptr, dtype=index, device=device),
            torch.as_tensor(csr.indices, dtype=index, device=device),
            torch.as_tensor(csr.data, dtype=torch.float64, device=device),
            size=csr.shape, check_invariants=False)


class _SparseApply(torch.autograd.Function):
    """``y = A x`` for a fixed sparse ``A`` and dense float64 ``x`` ``(N, K)``; the
    backward pass applies the precomputed ``A^T`` (itself differentiable)."""

    @staticmethod
    def forward(ctx, dense: torch.Tensor, op: _SparseOperator) -> torch.Tensor:
        ctx.op = op
        return op @ dense

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if not ctx.needs_input_grad[0]:
            return None, None
        return _SparseApply.apply(grad.contiguous(), ctx.op.transposed()), None


def _dense(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor`` as a contiguous ``dtype`` tensor, in one copy (a dtype change and a
    layout change fused; ``Tensor.to`` alone returns a same-dtype tensor as it is)."""
    out = tensor.to(dtype, memory_format=torch.contiguous_format)
    return out if out.is_contiguous() else out.contiguous()


# ---------------------------------------------------------------------------- system


def _resolve_device(device, source) -> torch.device:
    dev = torch.device(device) if device is not None else (
        source.device if isinstance(source, torch.Tensor) else torch.device("cpu"))
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def _resolve_dtype(dtype, source) -> torch.dtype:
    if dtype is not None:
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise MeshError(f"dtype must be a floating torch.dtype; got {dtype!r}")
        return dtype
    if isinstance(source, torch.Tensor) and source.dtype.is_floating_point:
        return source.dtype
    if isinstance(source, np.ndarray) and source.dtype == np.float32:
        return torch.float32
    return torch.float64


class PoissonSystem:
    """Jacobians <-> vertices for one mesh topology, factorised once.

    ``rest_vertices`` ``(V, 3)`` float (numpy or torch, metres) and ``faces`` ``(F, 3)``
    integer (numpy or torch, counter-clockwise = the normal's side). ``device``: where
    the factor, the operators and the tensors given to the methods live (default: the
    device of ``rest_vertices``, else CPU). ``dtype``: the dtype of the rest
    attributes (default: that of ``rest_vertices``; numpy float64 -> torch.float64).
    ``solver``: ``"auto"`` (cholespy when importable), ``"cholespy"`` or ``"scipy"``
    (SuperLU on the host: a host copy per solve on GPU tensors). ``dtype`` and
    ``solver`` are keywords beyond the brief's signature, for tests and the benchmark.

    Both maps are sparse matrix products in float64 whatever the inputs' dtype
    (scipy CSR on the CPU, torch CSR on a GPU): the float32 -> float64 conversion is
    fused into the one layout copy that turns ``(..., F, 3, 3)`` into the
    ``(3F, 3 * batch)`` operand, and back on the way out, so it costs a few percent of
    ``vertices()`` (``python -m backend bench poisson`` times float32 against float64
    inputs). Float64 also avoids the cancellation of summing three large
    ``x_k * grad(phi_k)`` terms in float32 (an error of about 1e-5 in ``J`` for a mesh
    with 5 mm edges 1 m from the origin).
    Building costs one Laplacian assembly and one Cholesky; rebuild the system when the
    topology changes (remeshing). No host/device copies after construction with the
    cholespy solver; the scipy solver copies each right-hand side to the host and back.

    Attributes: ``num_vertices``, ``num_faces``, ``num_components`` (connected
    components, counting vertices used by no face), ``device``, ``dtype``,
    ``solver_name``; tensors on ``device`` in ``dtype``: ``rest_vertices`` ``(V, 3)``,
    ``faces`` ``(F, 3)`` int64, ``face_areas`` ``(F,)`` m^2, ``face_normals`` ``(F, 3)``,
    ``rest_jacobians`` ``(F, 3, 3)``, ``component_labels`` ``(V,)`` int64; scipy CSR
    float64: ``gradient`` (``G``, ``(3F, V)``) and ``laplacian`` (``L``, ``(V, V)``).
    """

    def __init__(self, rest_vertices, faces, *, device=None, dtype=None, solver: str = "auto"):
        v, f = _validated_mesh(rest_vertices, faces)
        self.device = _resolve_device(device, rest_vertices)
        self.dtype = _resolve_dtype(dtype, rest_vertices)
        self.num_vertices, self.num_faces = len(v), len(f)
        grads, normals, areas = _geometry(v, f)
        self.gradient = _gradient_matrix(grads, f, len(v))
        self.laplacian = _laplacian(self.gradient, areas)

        # Components by shared vertices (G x = 0 iff x is constant on each of them).
        edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        adjacency = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])),
                                  shape=(len(v), len(v)))
        n_comp, labels = connected_components(adjacency, directed=False)
        _, pins = np.unique(labels, return_index=True)  # lowest vertex of each component
        unused = len(v) - len(np.unique(f))
        if unused:
            log.warning("%d of %d vertices belong to no face; the Poisson solve keeps them "
                        "at their rest positions", unused, len(v))
        self.num_components = int(n_comp)
        keep = sp.diags(np.where(np.isin(np.arange(len(v)), pins), 0.0, 1.0))
        pinned = keep @ self.laplacian @ keep + (sp.identity(len(v)) - keep)
        self._pinned_laplacian = pinned.tocsr()  # what is factorised (the benchmark times it)
        self._solver = _make_solver(self._pinned_laplacian, self.device, solver)
        self.solver_name = self._solver.name

        # Sparse operators in the (rows 3f+c, columns 3b+i) layout of both maps. The pins'
        # right-hand side rows are zeroed inside the operator: keep G^T M -> K G^T M.
        self._grad_op = _SparseOperator(self.gradient, self.device)
        self._rhs_op = _SparseOperator(keep @ self.gradient.T @ sp.diags(np.repeat(areas, 3)),
                                       self.device)

        counts = np.bincount(labels, minlength=n_comp).astype(np.float64)
        centroids = np.zeros((n_comp, 3))
        np.add.at(centroids, labels, v)
        centroids /= counts[:, None]

        def on_device(array, dtype):
            return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=self.device)

        f64 = torch.float64
        self.faces = on_device(f, torch.int64)
        self.component_labels = on_device(labels, torch.int64)
        self._counts = on_device(counts[:, None, None], f64)  # (C, 1, 1)
        self._centroids = on_device(centroids[:, None, :], f64)  # (C, 1, 3)
        self._rest_offsets = on_device(centroids[labels][:, None, :], f64)  # (V, 1, 3)

        self.rest_vertices = on_device(v, self.dtype)
        self.face_areas = on_device(areas, self.dtype)
        self.face_normals = on_device(normals, self.dtype)
        self.rest_jacobians = on_device(np.eye(3) - normals[:, :, None] * normals[:, None, :],
                                        self.dtype)

    def __repr__(self) -> str:
        return (f"PoissonSystem({self.num_vertices} vertices, {self.num_faces} faces, "
                f"{self.num_components} component(s), {self.solver_name} on {self.device})")

    # -- validation

    def _check(self, tensor, name: str, tail: tuple[int, ...], tail_text: str) -> None:
        if not isinstance(tensor, torch.Tensor):
            raise MeshError(f"{name} must be a torch.Tensor; got {type(tensor).__name__}")
        if tensor.dim() < len(tail) or tuple(tensor.shape[-len(tail):]) != tail:
            raise MeshError(f"{name} must have shape (..., {tail_text}) for this "
                            f"{self.num_vertices}-vertex, {self.num_faces}-face mesh; "
                            f"got {tuple(tensor.shape)}")
        if not tensor.dtype.is_floating_point:
            raise MeshError(f"{name} must be a floating-point tensor; got {tensor.dtype}")
        if tensor.device != self.device:
            raise MeshError(f"{name} is on {tensor.device} but this PoissonSystem lives on "
                            f"{self.device}; build the system on the tensors' device")

    # -- the two maps

    def jacobians(self, vertices: torch.Tensor) -> torch.Tensor:
        """Per-face Jacobians of deformed vertices ``(..., V, 3)`` (float, on
        ``device``) -> ``(..., F, 3, 3)``, same dtype: ``J[..., f, i, c]`` = derivative of
        output coordinate ``i`` along rest-space direction ``c`` over face ``f``, i.e.
        ``(G_f X)^T``. Differentiable; leading dimensions are batch dimensions, all
        applied in one sparse product (computed in float64)."""
        self._check(vertices, "vertices", (self.num_vertices, 3), f"{self.num_vertices}, 3")
        batch = vertices.shape[:-2]
        columns = _dense(vertices.reshape(-1, self.num_vertices, 3).permute(1, 0, 2),
                         torch.float64).view(self.num_vertices, -1)  # (V, 3 * batch), column 3b+i
        grads = _SparseApply.apply(columns, self._grad_op)  # (3F, 3 * batch): row 3f+c
        jac = grads.view(self.num_faces, 3, -1, 3).permute(2, 0, 3, 1)  # [b, f, i, c]
        return _dense(jac, vertices.dtype).view(*batch, self.num_faces, 3, 3)

    def vertices(self, jacobians: torch.Tensor) -> torch.Tensor:
        """Vertices ``(..., V, 3)`` whose Jacobians best match ``jacobians``
        ``(..., F, 3, 3)`` (float, on ``device``; the convention of ``jacobians()``), in
        the area-weighted least-squares sense, each connected component placed at its
        rest centroid. Same dtype as the input (solved in float64). Differentiable: the
        backward pass is one more solve with the same factor. All leading dimensions
        (e.g. frames) go to the factor as one ``(V, 3 * batch)`` right-hand side."""
        self._check(jacobians, "jacobians", (self.num_faces, 3, 3), f"{self.num_faces}, 3, 3")
        batch = jacobians.shape[:-3]
        n = self.num_vertices
        # (3F, 3 * batch): row 3f+c, column 3b+i holds J[b, f, i, c], i.e. the J_f^T of G x.
        targets = _dense(jacobians.reshape(-1, self.num_faces, 3, 3).permute(1, 3, 0, 2),
                         torch.float64).view(3 * self.num_faces, -1)
        rhs = _SparseApply.apply(targets, self._rhs_op)  # K G^T M J^T, (V, 3 * batch)
        x = _PoissonSolve.apply(rhs, self._solver).view(n, -1, 3)  # (V, batch, 3)
        if self.num_components == 1:
            x = x - x.mean(dim=0, keepdim=True) + self._centroids
        else:
            sums = x.new_zeros(self.num_components, *x.shape[1:]).index_add(
                0, self.component_labels, x)
            x = x - (sums / self._counts)[self.component_labels] + self._rest_offsets
        return _dense(x.permute(1, 0, 2), jacobians.dtype).view(*batch, n, 3)
