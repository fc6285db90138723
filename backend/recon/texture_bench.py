"""``bench texture``: how well our textured garment renders like the footage.

One geometry reconstruction (the preset, no texture), then on that same garment a
static texture and a static + dynamic one, each fitted with every ``holdout``-th frame
kept out. Printed per texture: PSNR/SSIM on the fitted frames, on the held-out frames
and, when the synthetic capture has one (``gt/second_view/``, a camera training never
saw), on the second view's frames.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from .errors import ReconError

log = logging.getLogger(__name__)

SECOND_VIEW_DIR = "second_view"
COLUMNS = (("texture", "texture", "{}"),
           ("fitted PSNR", "fitted_psnr_db", "{:.2f}"), ("fitted SSIM", "fitted_ssim", "{:.4f}"),
           ("held-out PSNR", "held_out_psnr_db", "{:.2f}"),
           ("held-out SSIM", "held_out_ssim", "{:.4f}"),
           ("2nd view PSNR", "second_view_psnr_db", "{:.2f}"),
           ("2nd view SSIM", "second_view_ssim", "{:.4f}"),
           ("coverage", "fitted_coverage", "{:.3f}"),
           ("2nd view coverage", "second_view_coverage", "{:.3f}"),
           ("fit s", "fit_s", "{:.1f}"))
"""Table columns: header, row key, format (None prints as ``-``). PSNR/SSIM are taken
where the footage and our render both show the garment; coverage is the share of the
footage's garment pixels our render covers. Stdlib-only at import (the CLI registers
the command without loading torch)."""


def second_view_images(root: Path, device, dtype):
    """The second camera's capture of a synthetic capture (``gt/second_view``) as
    ``capture_images``, or None."""
    folder = root / "gt" / SECOND_VIEW_DIR
    if not (folder / "capture.json").is_file():
        return None
    return capture_images(folder, device, dtype)


def capture_images(folder: Path, device, dtype):
    """A capture folder's ``(frames, cameras(index), images(index))`` at its full size:
    ``cameras`` gives the ``Camera`` of frame indices, ``images`` their
    ``(rgb (B, H, W, 3) linear, mask (B, H, W, 1))``."""
    import numpy as np
    import torch

    from ..capture import load_capture
    from ..capture.images import read_mask, read_rgb
    from ..render.camera import Camera

    view = load_capture(folder)
    cams = [view.camera(f) for f in view.frames]
    stack = lambda name: torch.as_tensor(np.stack([getattr(c, name) for c in cams]),  # noqa: E731
                                         dtype=dtype, device=device)
    K, R, t = stack("K"), stack("R"), stack("t")

    def cameras(index):
        return Camera.create(K.index_select(0, index), R.index_select(0, index),
                             t.index_select(0, index), view.width, view.height)

    def images(index):
        frames = [view.frames[i] for i in index.tolist()]
        rgb = np.stack([read_rgb(view.frame_path(f)) for f in frames]).astype(np.float32)
        mask = np.stack([read_mask(view.mask_path(f)) for f in frames]).astype(np.float32)
        rgb = torch.as_tensor(rgb / 255.0, device=device, dtype=dtype) ** 2.2
        return rgb, torch.as_tensor(mask, device=device, dtype=dtype)[..., None]

    return view.frames, cameras, images


def preview_strip(views, world, faces, uvs, models, frames, rasterizer, body, body_faces,
                  size: int = 192):
    """``(rows * size, (1 + len(models)) * size, 3)`` uint8: per (view, frame) one row of
    footage | each model's render over the footage, cropped to the square around the
    footage's garment mask (display values)."""
    import torch

    with torch.no_grad():
        return _preview_strip(views, world, faces, uvs, models, frames, rasterizer, body,
                              body_faces, size)


def _preview_strip(views, world, faces, uvs, models, frames, rasterizer, body, body_faces,
                   size: int):
    import numpy as np
    import torch
    import torch.nn.functional as F

    from .texturing import GAMMA, render_texture

    rows = []
    for cameras, images in views:
        for frame in frames:
            index = torch.tensor([int(frame)], device=world.device)
            rgb, mask = images(index)
            tiles = [rgb[0]]
            for model in models:
                render = render_texture(rasterizer, model, world.index_select(0, index), faces,
                                        uvs, cameras(index),
                                        frames=index if model.has_dynamic else None,
                                        body_vertices=None if body is None
                                        else body.index_select(0, index),
                                        body_faces=body_faces, antialias=True)
                # the render over the footage, so the crop shows the garment in place
                tiles.append(render.color[0] * render.mask[0] + rgb[0] * (1 - render.mask[0]))
            ys, xs = np.nonzero(mask[0, ..., 0].cpu().numpy() > 0.5)
            if len(ys) == 0:
                continue
            half = int(max(np.ptp(ys), np.ptp(xs)) * 0.6) + 4
            cy, cx = int(ys.mean()), int(xs.mean())
            h, w = mask.shape[1:3]
            top, left = max(0, cy - half), max(0, cx - half)
            bottom, right = min(h, cy + half), min(w, cx + half)
            crops = [F.interpolate(t[top:bottom, left:right].permute(2, 0, 1)[None].float(),
                                   size=(size, size), mode="bilinear", antialias=True)[0]
                     for t in tiles]
            rows.append(torch.cat(crops, dim=2))
    strip = torch.cat(rows, dim=1).clamp(0, 1) ** (1 / GAMMA)
    return (strip.permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def run_texture_bench(capture_root: Path, events=None, cancel=None,
                      preset_name: str = "standard", steps: int | None = None,
                      texture_steps: int | None = None, holdout: int = 5,
                      use_normals: bool = False, device: str = "auto", seed: int = 0,
                      work_dir: Path | None = None, preview: Path | None = None) -> dict:
    """Reconstruct ``capture_root`` once and score a static and a dynamic texture on it
    (module docstring). ``steps``/``texture_steps``: geometry and texture steps instead
    of the preset's. ``preview``: write a PNG of footage | static | static + dynamic
    render for three frames (held-out ones where there are) in the capture's view and
    the second view. Returns a JSON-ready dict with ``rows`` and the printed ``table``."""
    import numpy as np
    import torch

    from ..capture import load_capture
    from ..jobs.cancel import CancelToken
    from .bench import format_table, split_steps
    from .run import prepare
    from .settings import preset
    from .texture_stage import texture_garment, texture_scores

    cancel = cancel or CancelToken(None)
    capture = load_capture(capture_root)
    base = preset(preset_name, seed=seed, use_normals=use_normals, texture="none")
    if steps is not None:
        base = split_steps(base, steps)
    if texture_steps is not None:
        base = dataclasses.replace(base, texture_steps=texture_steps)
    own_work = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="bench-texture-")) if own_work else Path(work_dir)
    rows, models = [], []
    try:
        from ..jobs.spec import JobSettings

        prepared = prepare(capture.root, work / "geometry", base, JobSettings(device=device),
                           events, cancel)
        outcome = prepared.trainer.train()
        data, rasterizer = prepared.data, prepared.trainer.rasterizer
        world = torch.as_tensor(outcome.vertices, dtype=data.body_vertices.dtype,
                                device=data.body_vertices.device)
        body = data.body_vertices if base.body_occlusion else None
        body_faces = data.body_faces if base.body_occlusion else None
        second = second_view_images(capture.root, world.device, world.dtype)
        if second is not None and tuple(second[0]) != tuple(capture.frames):
            raise ReconError(f"{capture.root / 'gt' / SECOND_VIEW_DIR}: its frames differ from "
                             "the capture's")
        for mode in ("static", "dynamic"):
            cancel.check()
            settings = dataclasses.replace(base, texture=mode, texture_holdout=holdout)
            started = time.monotonic()
            textured = texture_garment(outcome.canonical, outcome.faces, outcome.vertices, data,
                                       settings, rasterizer, events, cancel)
            m = textured.metrics
            row = {"texture": "static" if mode == "static" else "static + dynamic",
                   "fitted_psnr_db": m["fitted"]["psnr_db"], "fitted_ssim": m["fitted"]["ssim"],
                   "fitted_coverage": m["fitted"]["coverage"],
                   "held_out_psnr_db": m.get("held_out", {}).get("psnr_db"),
                   "held_out_ssim": m.get("held_out", {}).get("ssim"),
                   "fit_s": m["fit_s"]}
            if second is not None:
                _, cameras, images = second
                scores = texture_scores(textured.model, world, outcome.faces, textured.uv,
                                        np.arange(len(capture.frames)), cameras, images,
                                        rasterizer, body, body_faces)
                row["second_view_psnr_db"], row["second_view_ssim"] = (scores["psnr_db"],
                                                                       scores["ssim"])
                row["second_view_coverage"] = scores["coverage"]
            row["seconds"] = round(time.monotonic() - started, 2)
            rows.append(row)
            models.append(textured.model)
            uvs = textured.uv
            if events is not None:
                events.info(f"texture {row['texture']}: fitted {row['fitted_psnr_db']:.2f} dB",
                            **row)
        if preview is not None:
            from ..capture.images import write_png
            from .texture_stage import fitted_frames

            count = len(capture.frames)
            held = fitted_frames(count, holdout)[1]
            shown = held if len(held) >= 3 else np.arange(count)
            shown = shown[np.linspace(0, len(shown) - 1, 3).round().astype(int)]
            _, main_cameras, main_images = capture_images(capture.root, world.device,
                                                          world.dtype)
            views = [(main_cameras, main_images)] + ([second[1:]] if second else [])
            write_png(Path(preview), preview_strip(views, world, outcome.faces, uvs, models,
                                                   shown, rasterizer, body, body_faces))
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    return {"capture": str(capture.root), "preset": preset_name, "steps": base.total_steps,
            "texture_steps": base.texture_steps, "holdout": holdout,
            "use_normals": use_normals, "second_view": second is not None, "rows": rows,
            "table": format_table(rows, COLUMNS)}


def cmd_bench_texture(args: argparse.Namespace, events, cancel) -> None:
    report = run_texture_bench(args.capture, events, cancel, preset_name=args.preset,
                               steps=args.steps, texture_steps=args.texture_steps,
                               holdout=args.holdout, use_normals=args.normals,
                               device=args.device, seed=args.seed, work_dir=args.work_dir,
                               preview=args.preview)
    if args.out is not None:
        from ..fileio import atomic_write

        with atomic_write(args.out) as tmp:
            Path(tmp).write_text(json.dumps(report, indent=1))
    view = "with" if report["second_view"] else "without"
    events.done(result=str(args.out) if args.out else None,
                summary=f"{report['capture']}: preset {report['preset']}, {report['steps']} "
                f"geometry steps, {report['texture_steps']} texture steps, every "
                f"{report['holdout']}th frame held out, {view} a second view\n{report['table']}")


def add_texture_parser(bench) -> None:
    """Register ``bench texture`` on the ``bench`` subparsers of ``backend.cli``."""
    q = bench.add_parser("texture", help="reconstruct a synthetic capture once; PSNR/SSIM of "
                         "a static and a dynamic texture on fitted, held-out and second-view "
                         "frames")
    q.add_argument("--capture", type=Path, required=True, help="synthetic capture folder")
    q.add_argument("--preset", default="standard", help="draft, standard or high")
    q.add_argument("--steps", type=int, default=None, help="geometry steps instead of the "
                   "preset's")
    q.add_argument("--texture-steps", type=int, default=None,
                   help="texture steps instead of the preset's")
    q.add_argument("--holdout", type=int, default=5,
                   help="keep every N-th frame out of the texture fit (default 5)")
    q.add_argument("--normals", action="store_true",
                   help="use the capture's normal maps for the geometry (default: masks + RGB)")
    q.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--work-dir", type=Path, default=None,
                   help="keep the geometry run here (default: a temporary folder)")
    q.add_argument("--out", type=Path, default=None, help="write rows as JSON")
    q.add_argument("--preview", type=Path, default=None,
                   help="write a PNG: footage | static | static + dynamic render, three frames, "
                   "in the capture's view and the second view")
    q.set_defaults(func=cmd_bench_texture)
