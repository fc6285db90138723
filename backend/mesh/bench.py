"""``python -m backend bench poisson``: factorisation and solve times of the Poisson
system, cholespy against scipy's SuperLU measured in the same run.

Figures, not pass/fail. The mesh is a jittered, wavy, open grid patch (a garment
panel) with about the asked number of vertices; the right-hand side is ``frames``
frames x 3 coordinates, solved in one call, as the trainer does.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

import numpy as np
import torch

from . import MeshError
from .poisson import PoissonSystem, _CholespySolver, _ScipySolver, cholespy_available

log = logging.getLogger(__name__)


def grid_patch(vertices: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 1 m x 1 m open patch, ``n x n`` vertices with ``n = round(sqrt(vertices))``,
    jittered in the plane by up to 30 % of a cell and waved in z (2 cm), every cell cut
    into two triangles along a random diagonal. Returns ``(vertices (n*n, 3) float64
    metres, faces (2 (n-1)^2, 3) int64)``, counter-clockwise seen from +z."""
    n = max(2, int(round(math.sqrt(vertices))))
    rng = np.random.default_rng(seed)
    cell = 1.0 / (n - 1)
    x, y = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n), indexing="ij")
    x = x + rng.uniform(-0.3, 0.3, x.shape) * cell
    y = y + rng.uniform(-0.3, 0.3, y.shape) * cell
    z = 0.02 * np.sin(7.0 * x) * np.cos(5.0 * y)
    verts = np.column_stack([x.ravel(), y.ravel(), z.ravel()])
    idx = np.arange(n * n).reshape(n, n)
    a, b = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel()
    c, d = idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    flip = rng.random(a.shape) < 0.5
    first = np.where(flip[:, None], np.stack([a, b, d], 1), np.stack([a, b, c], 1))
    second = np.where(flip[:, None], np.stack([b, c, d], 1), np.stack([a, c, d], 1))
    return verts, np.concatenate([first, second]).astype(np.int64)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn, device: torch.device, repeats: int, cancel=None) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        if cancel is not None:
            cancel.check()
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]


def _once_ms(fn, device: torch.device) -> tuple[float, object]:
    _sync(device)
    start = time.perf_counter()
    value = fn()
    _sync(device)
    return (time.perf_counter() - start) * 1e3, value


def _bench_one(verts_np: np.ndarray, faces_np: np.ndarray, dev: torch.device, frames: int,
               repeats: int, cancel, have_cholespy: bool) -> dict:
    verts = torch.as_tensor(verts_np, dtype=torch.float32, device=dev)
    faces = torch.as_tensor(faces_np, device=dev)
    solver = "cholespy" if have_cholespy else "scipy"
    build_ms, system = _once_ms(lambda: PoissonSystem(verts, faces, solver=solver), dev)
    matrix = system._pinned_laplacian
    gen = torch.Generator().manual_seed(0)
    jac32 = (system.rest_jacobians.cpu()
             + 0.05 * torch.randn(frames, system.num_faces, 3, 3, generator=gen)).to(dev)
    jac64 = jac32.double()
    rhs = torch.randn(system.num_vertices, 3 * frames, generator=gen,
                      dtype=torch.float64).to(dev)
    weights = torch.randn(frames, system.num_vertices, 3, generator=gen).to(dev)
    posed = verts.expand(frames, -1, -1).contiguous()

    def forward_backward():
        jac = jac32.detach().requires_grad_(True)
        (system.vertices(jac) * weights).sum().backward()

    row = {"vertices": system.num_vertices, "faces": system.num_faces, "device": str(dev),
           "frames": frames, "rhs_columns": 3 * frames, "build_ms": None, "factor_ms": None,
           "solve_ms": None}
    if have_cholespy:
        factor_ms, chol = _once_ms(lambda: _CholespySolver(matrix, dev), dev)
        row.update(build_ms=build_ms, factor_ms=factor_ms,
                   solve_ms=_median_ms(lambda: chol.solve(rhs), dev, repeats, cancel))
    row["vertices_ms"] = _median_ms(lambda: system.vertices(jac32), dev, repeats, cancel)
    row["vertices_f64_ms"] = _median_ms(lambda: system.vertices(jac64), dev, repeats, cancel)
    row["forward_backward_ms"] = _median_ms(forward_backward, dev, repeats, cancel)
    row["jacobians_ms"] = _median_ms(lambda: system.jacobians(posed), dev, repeats, cancel)
    scipy_factor_ms, lu = _once_ms(lambda: _ScipySolver(matrix, dev), dev)
    row["scipy_factor_ms"] = scipy_factor_ms
    row["scipy_solve_ms"] = _median_ms(lambda: lu.solve(rhs), dev, repeats, cancel)
    row["solve_speedup"] = row["scipy_solve_ms"] / row["solve_ms"] if row["solve_ms"] else None
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}


def run_poisson_bench(
    events=None,
    cancel=None,
    sizes: Sequence[int] = (5000, 20000, 50000),
    frames: int = 8,
    repeats: int = 5,
    devices: Sequence[torch.device | str] | None = None,
) -> list[dict]:
    """Time the Poisson system on a ``grid_patch`` of each size in ``sizes``
    (vertices), on each device (default: CPU, plus CUDA when present).

    ``events``: a ``backend.jobs.events.EventStream`` (``info`` once per row) or None
    (rows are logged); ``cancel``: a ``CancelToken`` checked between timings, or None.
    Returns one dict per (size, device), times in milliseconds (medians of
    ``repeats`` after a warm-up; factorisations are timed once):

    - ``vertices``, ``faces``, ``device``, ``frames``, ``rhs_columns`` (``3 * frames``);
    - ``build_ms``: ``PoissonSystem(...)`` with cholespy (validation, G, L, components,
      factorisation, operator uploads); ``factor_ms``: the cholespy factorisation alone;
    - ``solve_ms``: one cholespy solve of the ``(V, 3 * frames)`` float64 right-hand side;
    - ``vertices_ms``: ``system.vertices`` of float32 ``(frames, F, 3, 3)`` Jacobians
      (layout + float64 copy, ``G^T M`` product, solve, centring, float32 copy);
      ``vertices_f64_ms``: the same from float64 Jacobians (the difference is the cost
      of the dtype conversions); ``forward_backward_ms``: ``vertices`` + backward (two
      solves, two sparse products); ``jacobians_ms``: ``system.jacobians`` of
      ``(frames, V, 3)`` float32 vertices;
    - ``scipy_factor_ms``, ``scipy_solve_ms``: SuperLU on the host for the same matrix
      and right-hand side (including the host copies on a GPU device);
    - ``solve_speedup``: ``scipy_solve_ms / solve_ms``.

    Without cholespy the cholespy figures are None and the system uses scipy.
    Wall-clock figures: on a machine shared with other work they vary by 2x or more.
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise MeshError(f"repeats must be a positive int; got {repeats!r}")
    if not isinstance(frames, int) or frames < 1:
        raise MeshError(f"frames must be a positive int; got {frames!r}")
    for size in sizes:
        if not isinstance(size, int) or size < 9:
            raise MeshError(f"sizes must be ints >= 9 (vertices); got {size!r}")
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    have_cholespy = cholespy_available()
    rows = []
    for size in sizes:
        verts_np, faces_np = grid_patch(size)
        for device in devices:
            if cancel is not None:
                cancel.check()
            dev = torch.device(device)
            row = _bench_one(verts_np, faces_np, dev, frames, repeats, cancel, have_cholespy)
            rows.append(row)
            message = (
                f"poisson {row['vertices']} vertices on {dev}, {frames} frames x 3: "
                + (f"cholespy factor {row['factor_ms']:.1f} ms, solve {row['solve_ms']:.1f} ms; "
                   if have_cholespy else "cholespy not installed; ")
                + f"vertices() {row['vertices_ms']:.1f} ms (float64 in: "
                f"{row['vertices_f64_ms']:.1f} ms), forward+backward "
                f"{row['forward_backward_ms']:.1f} ms, jacobians() {row['jacobians_ms']:.1f} ms; "
                f"scipy SuperLU factor {row['scipy_factor_ms']:.1f} ms, solve "
                f"{row['scipy_solve_ms']:.1f} ms")
            if events is not None:
                events.info(message, **row)
            else:
                log.info(message)
    return rows
