"""After training: two priors applied exactly instead of as losses (DMap's projection
constraints).

- ``smooth_over_frames``: a Gaussian over consecutive frames of the rest-space garment,
  i.e. of the pose-dependent deformation only; the body's motion comes afterwards from
  the skinning, so it is neither delayed nor flattened. It takes out the
  frame-to-frame jitter the pose MLP leaves (acceleration error).
- ``push_out_of_body``: garment vertices inside the posed body or closer to it than a
  thickness move out along the body's distance gradient, and their neighbours follow
  with a short, smooth falloff (a screened Laplace problem per frame), so no dent or
  spike appears and vertices away from the body stay where the images put them.

As training losses the same two measured worse on the bench skirt's unseen half (the
optimiser reshapes the whole garment to satisfy a few vertices; README); applied here
they change only what they are about.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..mesh.topology import edges
from .errors import ReconError
from .priors import BodyCollision

FALLOFF_SCREENING = 10.0
"""Weight of ``|u|^2`` against the graph Laplacian energy of the displacement ``u`` in
``push_out_of_body``: 10 keeps the falloff within about one edge ring (1 spread it over
~3 rings and measured slightly worse on the bench skirt)."""
PUSH_PASSES = 4
"""Projection passes per frame: a push can bring neighbours within the thickness."""


def smooth_over_frames(canonical: torch.Tensor, sigma_frames: float) -> torch.Tensor:
    """``(T, V, 3)`` rest-space vertices per frame, Gaussian-smoothed over the frame axis
    with std ``sigma_frames`` (truncated at 3 sigma; the ends repeat the first and last
    frame). ``sigma_frames <= 0`` or a single frame returns the input."""
    if canonical.ndim != 3:
        raise ReconError(f"smooth_over_frames needs (T, V, 3) vertices; got "
                         f"{tuple(canonical.shape)}")
    if sigma_frames <= 0 or canonical.shape[0] < 2:
        return canonical
    radius = max(1, int(np.ceil(3 * sigma_frames)))
    taps = torch.arange(-radius, radius + 1, dtype=canonical.dtype, device=canonical.device)
    kernel = torch.exp(-0.5 * (taps / sigma_frames) ** 2)
    kernel = kernel / kernel.sum()
    # every (vertex, axis) trajectory is a channel of one 1D convolution
    series = canonical.permute(1, 2, 0).reshape(-1, 1, canonical.shape[0])
    padded = torch.nn.functional.pad(series, (radius, radius), mode="replicate")
    smoothed = torch.nn.functional.conv1d(padded, kernel.view(1, 1, -1))
    return smoothed.reshape(canonical.shape[1], 3, -1).permute(2, 0, 1).contiguous()


def graph_laplacian(faces: np.ndarray, vertex_count: int):
    """Uniform (combinatorial) graph Laplacian ``D - A`` of the mesh, scipy CSR."""
    import scipy.sparse as sp

    e = edges(np.asarray(faces))
    adjacency = sp.coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]],
                                                     np.r_[e[:, 1], e[:, 0]])),
                              shape=(vertex_count, vertex_count)).tocsr()
    return (sp.diags(np.asarray(adjacency.sum(1)).ravel()) - adjacency).tocsr()


def push_out_of_body(world: np.ndarray, faces: np.ndarray, collision: BodyCollision,
                     frames=None, progress: Callable[[int, int], None] | None = None
                     ) -> tuple[np.ndarray, dict]:
    """Move garment vertices out of the posed body to ``collision.thickness_m`` from it.

    Args:
        world: ``(T, V, 3)`` world vertices, metres.
        faces: ``(F, 3)`` the garment's faces (for the falloff's neighbourhoods).
        collision: the posed body per frame (``priors.BodyCollision``).
        frames: the body frame index of each row of ``world`` (default ``0..T-1``).
        progress: optional ``progress(done, total)`` per frame (it may raise to cancel).
    Returns:
        The moved vertices ``(T, V, 3)`` (float64) and statistics: ``inside_before``
        and ``inside_after`` (vertices with negative distance, summed over frames),
        ``moved`` (vertices that moved over 0.1 mm, summed) and ``max_push_mm``.

    Per frame, vertices nearer than the thickness get the push that brings them to it
    along the distance's gradient; the displacement ``u`` of every vertex minimises the
    graph Dirichlet energy (the sum over edges of ``|u_i - u_j|^2``) plus
    ``FALLOFF_SCREENING |u|^2``, with the pushed vertices held at their push (and
    earlier pushes kept), repeated up to ``PUSH_PASSES`` times.
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    world = np.asarray(world, np.float64)
    if world.ndim != 3 or world.shape[2] != 3:
        raise ReconError(f"push_out_of_body needs (T, V, 3) vertices; got {world.shape}")
    count, n = world.shape[:2]
    frames = np.arange(count) if frames is None else np.asarray(frames).reshape(-1)
    if len(frames) != count:
        raise ReconError(f"push_out_of_body: {len(frames)} frame indices for {count} frames")
    base = graph_laplacian(faces, n) + FALLOFF_SCREENING * sp.identity(n, format="csr")
    hold = 1e4 * (1.0 + FALLOFF_SCREENING)
    thickness = collision.thickness_m
    out = world.copy()
    stats = {"inside_before": 0, "inside_after": 0, "moved": 0, "max_push_mm": 0.0}
    for row in range(count):
        frame = int(frames[row])
        u = np.zeros((n, 3))
        for attempt in range(PUSH_PASSES):
            distance, direction = collision.distance_and_direction(world[row] + u, frame)
            if attempt == 0:
                stats["inside_before"] += int((distance < 0).sum())
            near = distance < thickness
            if not near.any():
                break
            target = u.copy()
            target[near] += (thickness - distance[near])[:, None] * direction[near]
            held = near | (np.abs(u).sum(1) > 0)
            weights = np.where(held, hold, 0.0)
            u = splu((base + sp.diags(weights)).tocsc()).solve(weights[:, None] * target)
        out[row] = world[row] + u
        distance, _ = collision.distance_and_direction(out[row], frame)
        stats["inside_after"] += int((distance < 0).sum())
        push = np.linalg.norm(u, axis=1)
        stats["moved"] += int((push > 1e-4).sum())
        stats["max_push_mm"] = max(stats["max_push_mm"], float(push.max()) * 1e3)
        if progress is not None:
            progress(row + 1, count)
    return out, stats
