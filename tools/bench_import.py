"""Benchmark Import Garment Result: import time and playback cost per frame.

Usage: python tools/bench_import.py [--vertices 20000] [--frames 300] [--playback 60]

Runs with the bpy module (the dev venv). Writes a synthetic result bundle (a
triangulated grid with a travelling wave) to a temporary folder, then for shape-key
mode and for each cache format prints one line per figure:

- import time: ``import_result`` from reading garment.npz to the linked object
  (cache modes include building the shape keys and the export);
- playback: mean over ``--playback`` consecutive frames of frame_set + the
  depsgraph-evaluated mesh of the garment (first frame excluded: caches warm up);
- .blend size: the file saved with the garment (shape keys live in it, caches not).

The extension is imported from this checkout as package ``garment_recon`` without
being installed or registered (the import code needs no registration).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "garment_recon"


def load_extension():
    """The checkout's operators.result_import, imported as ``garment_recon.operators...``."""
    if PACKAGE not in sys.modules:
        package = types.ModuleType(PACKAGE)
        package.__path__ = [str(REPO)]  # a package without running its register-only __init__
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.operators.result_import")


def grid_garment(n_vertices: int, n_frames: int):
    """(faces (F,3) int32, uv (F,3,2) float32, vertices (T,V,3) float32) of a waving grid."""
    nx = max(2, int(round(np.sqrt(n_vertices))))
    ny = max(2, int(np.ceil(n_vertices / nx)))
    x, y = np.meshgrid(np.linspace(-0.5, 0.5, nx), np.linspace(0.0, 1.0, ny))
    u, v = np.meshgrid(np.linspace(0, 1, nx), np.linspace(0, 1, ny))
    rest = np.stack([x.ravel(), np.zeros(x.size), y.ravel()], 1).astype(np.float32)
    uv_v = np.stack([u.ravel(), v.ravel()], 1).astype(np.float32)
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3),
                            np.stack([a, c, d], -1).reshape(-1, 3)]).astype(np.int32)
    t = np.arange(n_frames, dtype=np.float32)[:, None]
    verts = np.repeat(rest[None], n_frames, 0)
    verts[..., 1] = 0.05 * np.sin(6.0 * rest[None, :, 2] - 0.2 * t)
    return faces, uv_v[faces], verts


def playback_ms(bpy, obj, frames) -> float:
    scene = bpy.context.scene
    times = []
    for f in frames:
        t0 = time.perf_counter()
        scene.frame_set(int(f))
        mesh = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
        _ = len(mesh.vertices)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.mean(times[1:]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vertices", type=int, default=20000)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--playback", type=int, default=60, help="frames timed in playback")
    args = parser.parse_args(argv)

    import bpy

    from backend.jobs.result import GarmentResult, write_result

    ri = load_extension()
    faces, uv, verts = grid_garment(args.vertices, args.frames)
    V, T = verts.shape[1], verts.shape[0]
    frames = np.arange(1, T + 1, dtype=np.int32)
    with tempfile.TemporaryDirectory(prefix="garment-bench-") as tmp:
        root = write_result(Path(tmp) / "result",
                            GarmentResult(faces, verts[0], verts, frames, uv),
                            texture=np.full((256, 256, 3), 180, np.uint8))
        print(f"garment: {V} vertices, {len(faces)} faces, {T} frames")
        for label, settings in (
            ("shape keys", ri.ImportSettings()),
            ("Alembic cache", ri.ImportSettings(use_cache=True, cache_format="ABC")),
            ("USD cache", ri.ImportSettings(use_cache=True, cache_format="USD")),
        ):
            bpy.ops.wm.read_homefile(use_empty=True)
            t0 = time.perf_counter()
            obj = ri.import_result(bpy.context, root, settings)
            elapsed = time.perf_counter() - t0
            print(f"{label}: import {elapsed:.2f} s")
            ms = playback_ms(bpy, obj, frames[: args.playback + 1])
            print(f"{label}: playback {ms:.2f} ms/frame (frame_set + evaluated mesh)")
            blend = Path(tmp) / "bench.blend"
            bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True, compress=False)
            print(f"{label}: .blend {blend.stat().st_size / 1e6:.1f} MB")
            if settings.use_cache:
                cache = bpy.path.abspath(obj.modifiers[0].cache_file.filepath)
                print(f"{label}: cache file {Path(cache).stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # for backend.jobs.result (writing the bundle)
    sys.exit(main())
