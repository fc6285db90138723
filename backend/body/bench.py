"""``python -m backend bench body``: how fast bodies are built and garments skinned.

Figures, not pass/fail: the time to build a 100-frame Anny track once Anny's cache is
warm, and the LBS throughput for a 5k-vertex garment, next to the sparse-gather
variant measured in the same run as a reference.
"""

from __future__ import annotations

import time

import numpy as np

from ..jobs.cancel import CancelToken
from ..jobs.events import EventStream


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run_body_bench(events: EventStream, cancel: CancelToken,
                   topology: str = "notoes_collapse10pc", frames: int = 100,
                   garment_vertices: int = 5000, repeats: int = 5) -> dict[str, float]:
    import torch

    from .anny_body import AnnyPoser, load_anny
    from .motions import make_motion
    from .skinning import Skinning, skin_sparse
    from .transfer import transfer_weights

    load_anny(topology)                                  # builds or loads the cache
    cancel.check()
    start = time.perf_counter()
    poser = AnnyPoser(topology=topology)
    track = poser.track(make_motion("walk", frames, 30.0), np.arange(frames), 30.0)
    build_s = time.perf_counter() - start
    events.info(f"Anny {topology}: {frames}-frame walk track built in {build_s:.2f} s "
                "(warm cache, posed vertices and pose code included)",
                build_s=build_s, frames=frames, topology=topology)
    cancel.check()

    # a garment-sized point set around the body, skinned by transferred weights
    rng = np.random.default_rng(0)
    body = poser.body
    anchor = body.rest_vertices[rng.integers(0, body.vertex_count, garment_vertices)]
    points = anchor + rng.normal(scale=0.02, size=anchor.shape)
    indices, values = transfer_weights(points, body)
    results = {"anny_track_build_s": build_s}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        skin = Skinning(indices, values, body.bone_count, device)
        verts = torch.as_tensor(points, dtype=torch.float32, device=device)
        transforms = torch.as_tensor(track.bone_transforms, device=device)
        idx = torch.as_tensor(indices, device=device).long()
        val = torch.as_tensor(values, device=device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

        def dense(verts=verts, skin=skin, transforms=transforms, sync=sync):
            skin(verts, transforms)
            sync()

        def sparse(verts=verts, transforms=transforms, idx=idx, val=val, sync=sync):
            skin_sparse(verts, transforms, idx, val)
            sync()

        def dense_backward(verts=verts, skin=skin, transforms=transforms, sync=sync):
            v = verts.clone().requires_grad_(True)
            skin(v, transforms).square().sum().backward()
            sync()

        dense(), sparse()                                  # warm-up
        t_dense = _best_of(dense, repeats)
        t_sparse = _best_of(sparse, repeats)
        t_backward = _best_of(dense_backward, repeats)
        cancel.check()
        fps = frames / t_dense
        results[f"lbs_frames_per_s_{device}"] = fps
        events.info(
            f"LBS {garment_vertices} vertices x {frames} frames on {device}: "
            f"{fps:,.0f} frames/s forward ({t_dense * 1e3:.1f} ms), "
            f"{frames / t_backward:,.0f} frames/s forward+backward; sparse-gather reference "
            f"{frames / t_sparse:,.0f} frames/s (dense is {t_sparse / t_dense:.1f}x faster)",
            device=device, forward_ms=t_dense * 1e3, backward_ms=t_backward * 1e3,
            sparse_ms=t_sparse * 1e3)
    return results
