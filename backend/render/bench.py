"""``python -m backend bench raster``: time the full render pass set, forward + backward.

Speed goals are checked here, by printed figures, never by timed unit tests. Each
figure comes with a reference measured in the same run on the same device (a fixed
float32 matmul), so runs on busy or different machines can be compared by the ratio.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from functools import partial

import torch

from .camera import Camera, look_at
from .context import get_rasterizer
from .errors import RenderError
from .mesh_utils import icosphere, icosphere_level_for
from .passes import Lighting, render_passes

log = logging.getLogger(__name__)

REFERENCE_MATMUL_SIZE = 1024


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_ms(fn, device: torch.device, repeats: int, cancel=None) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` runs (2 warm-ups)."""
    for _ in range(2):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        if cancel is not None:
            cancel.check()
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


def default_devices() -> list[torch.device]:
    """CPU, plus the current CUDA device when there is one."""
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda", torch.cuda.current_device()))
    return devices


def _scene(device: torch.device, faces: int, resolution: int):
    level = icosphere_level_for(faces)
    verts, tri = icosphere(level, radius=0.5, device=device)
    # Spherical texture coordinates (per vertex; the seam is irrelevant for timing).
    u = 0.5 + torch.atan2(verts[:, 1], verts[:, 0]) / (2 * math.pi)
    v = 0.5 - torch.asin((verts[:, 2] / 0.5).clamp(-1, 1)) / math.pi
    uv = torch.stack([u, v], dim=1)
    f = 1.2 * resolution
    K = torch.tensor([[f, 0.0, resolution / 2 - 0.5], [0.0, f, resolution / 2 - 0.5],
                      [0.0, 0.0, 1.0]], device=device)
    R, t = look_at(torch.tensor([0.0, -2.0, 0.3], device=device),
                   torch.zeros(3, device=device), torch.tensor([0.0, 0.0, 1.0], device=device))
    camera = Camera.create(K, R, t, resolution, resolution)
    gen = torch.Generator().manual_seed(0)
    albedo = torch.rand(1, 256, 256, 3, generator=gen).to(device)
    lighting = Lighting(ambient=torch.full((3,), 0.4, device=device),
                        direction=torch.tensor([0.0, -0.6, -0.8], device=device),
                        color=torch.full((3,), 0.6, device=device))
    return verts, tri, uv, camera, albedo, lighting


def _step(scene, backward: bool) -> None:
    """One forward (+ backward) of the full pass set; every pass enters the loss."""
    rasterizer, verts, tri, uv, camera, albedo, lighting, topology = scene
    with torch.set_grad_enabled(backward):
        p = render_passes(rasterizer, verts, tri, camera, uv=uv, albedo=albedo,
                          lighting=lighting, topology=topology)
        loss = p.mask.sum() + p.normals.sum() + p.diffuse.sum() + p.depth.sum() + p.color.sum()
    if backward:
        loss.backward()
        verts.grad = None
        albedo.grad = None


def run_raster_bench(
    events,
    cancel=None,
    devices: Sequence[torch.device | str] | None = None,
    resolutions: Sequence[int] = (256, 512),
    faces: int = 20000,
    repeats: int = 10,
    kind: str = "torch",
) -> list[dict]:
    """Time forward + backward of the full pass set (mask, normals, diffuse, depth,
    textured colour, antialias) of an icosphere with at least ``faces`` faces, for each
    device and square resolution.

    ``events``: a ``backend.jobs.events.EventStream`` (``info`` is called once per
    figure); ``cancel``: a ``CancelToken`` checked between runs, or None. ``devices``
    defaults to CPU plus CUDA when present; ``kind`` is the rasterizer
    (``get_rasterizer``'s kinds). Returns one dict per (device, resolution) with
    ``device``, ``rasterizer``, ``resolution``, ``faces``, ``ms`` (median
    forward+backward), ``ms_forward``, ``reference_ms`` (a 1024^3 float32 matmul on the
    same device) and ``ratio`` (``ms / reference_ms``). Timings are wall clock and
    depend on what else runs on the machine.
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise RenderError(f"repeats must be a positive int; got {repeats!r}")
    if not isinstance(faces, int) or faces < 20:
        raise RenderError(f"faces must be an int >= 20; got {faces!r}")
    results = []
    for device in (default_devices() if devices is None else devices):
        dev = torch.device(device)
        rasterizer = get_rasterizer(kind, dev)
        a = torch.randn(REFERENCE_MATMUL_SIZE, REFERENCE_MATMUL_SIZE, device=dev)
        b = torch.randn(REFERENCE_MATMUL_SIZE, REFERENCE_MATMUL_SIZE, device=dev)
        ref_ms = _time_ms(lambda a=a, b=b: a @ b, dev, repeats, cancel)
        for res in resolutions:
            verts, tri, uv, camera, albedo, lighting = _scene(dev, faces, int(res))
            verts.requires_grad_(True)
            albedo.requires_grad_(True)
            scene = (rasterizer, verts, tri, uv, camera, albedo, lighting,
                     rasterizer.topology(tri))
            ms = _time_ms(partial(_step, scene, True), dev, repeats, cancel)
            ms_fwd = _time_ms(partial(_step, scene, False), dev, repeats, cancel)
            row = {
                "device": str(dev), "rasterizer": rasterizer.name, "resolution": int(res),
                "faces": int(tri.shape[0]), "ms": round(ms, 2),
                "ms_forward": round(ms_fwd, 2), "reference_ms": round(ref_ms, 2),
                "ratio": round(ms / ref_ms, 2),
            }
            results.append(row)
            events.info(
                f"raster {rasterizer.name} on {dev}: {res}x{res}, {row['faces']} faces: "
                f"{ms:.1f} ms forward+backward ({ms_fwd:.1f} ms forward), "
                f"{row['ratio']:.2f}x a {REFERENCE_MATMUL_SIZE}^3 matmul ({ref_ms:.1f} ms)",
                **row,
            )
    return results
