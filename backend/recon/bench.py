"""``python -m backend bench quality``: reconstruct a synthetic capture with ours (NGD)
and with the displacement baseline, score both against the capture's ``gt/`` and print
one table.

Both methods run from the same preset with the same data terms, step budget, frames
per step, resolution schedule, template and seed; each keeps its own prior and its own
tuned learning rates and optimiser (``settings.METHOD_DEFAULTS``). A ``template`` row
scores the untrained template, skinned through the sequence, for scale. Figures, not
pass/fail; wall times depend on what else runs on the machine.

This module imports only the standard library at load time (the CLI builds its parser
from it); torch and the reconstruction load when the benchmark runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from .errors import ReconError

log = logging.getLogger(__name__)

COLUMNS = (
    ("method", "method", "{}"),
    ("CD x1e3", "chamfer_x1e3", "{:.3f}"),
    ("dist mm", "point_to_surface_mm", "{:.2f}"),
    ("NC", "normal_consistency", "{:.4f}"),
    ("CD front", "chamfer_front_x1e3", "{:.3f}"),
    ("CD back", "chamfer_back_x1e3", "{:.3f}"),
    ("inside/frame", "penetrating_vertices", "{:.1f}"),
    ("IoU", "mask_iou", "{:.4f}"),
    ("accel mm/f^2", "acceleration_error_mm", "{:.2f}"),
    ("time s", "wall_s", "{:.1f}"),
    ("peak RSS MiB", "peak_rss_mib", "{:.0f}"),
    ("CUDA peak MiB", "cuda_peak_mib", "{:.0f}"),
    ("faces", "faces", "{}"),
)
"""Table columns: header, row key, format (a None value prints as ``-``). ``time s`` is
the wall time of the whole ``reconstruct`` call (load, template, training, result,
ground-truth metrics); the JSON rows also hold ``train_s``, the training loop alone.
``CD front`` / ``CD back``: Chamfer x1e3 of the halves of the garment facing towards /
away from the camera (``eval.metrics``); ``inside/frame``: garment vertices inside the
posed body, mean per frame."""
ROWS = ("template", "ngd", "displacement")
STATIC_ROW = "ngd static-only"
REMESH_ROW = "ngd remesh"
SAME_TIME_ROW = "ngd same time"
PRIORS_ROW, NO_PRIORS_ROW = "ngd priors", "ngd no priors"
RSS_SAMPLE_S = 0.05


class PeakMemory:
    """Peak resident set size of this process, and torch's CUDA peak, while a block runs.

    On Linux a thread samples ``/proc/self/statm`` every ``RSS_SAMPLE_S`` seconds (a
    peak shorter than that can be missed). Elsewhere ``resource.getrusage`` gives the
    process's lifetime peak instead (``lifetime`` is then True), or nothing on Windows.
    ``peak_rss_mib`` and ``cuda_peak_mib`` (None without CUDA work) are set on exit.
    """

    def __init__(self, device=None):
        self.device = device
        self.peak_rss_mib: float | None = None
        self.cuda_peak_mib: float | None = None
        self.lifetime = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _rss_mib(self) -> float | None:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page / 2**20
        except (OSError, ValueError, IndexError):
            return None

    def _sample(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_S):
            rss = self._rss_mib()
            if rss is not None:
                self.peak_rss_mib = max(self.peak_rss_mib or 0.0, rss)

    def __enter__(self) -> PeakMemory:
        self.peak_rss_mib = self._rss_mib()
        if self.peak_rss_mib is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        if self._cuda():
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            rss = self._rss_mib()
            if rss is not None:
                self.peak_rss_mib = max(self.peak_rss_mib or 0.0, rss)
        else:
            try:
                import resource
            except ImportError:  # Windows
                pass
            else:
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                # kilobytes on Linux, bytes on macOS
                self.peak_rss_mib = peak / (2**20 if sys.platform == "darwin" else 2**10)
                self.lifetime = True
        if self._cuda():
            import torch

            self.cuda_peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20

    def _cuda(self) -> bool:
        return self.device is not None and getattr(self.device, "type", None) == "cuda"


class _Prefixed:
    """An EventStream seen through a prefix: stages become ``"<prefix> <stage>"`` and
    messages ``"<prefix>: <message>"``, so the two runs' progress stays apart."""

    def __init__(self, events, prefix: str):
        self.events, self.prefix = events, prefix

    def progress(self, stage: str, step: int, total: int, loss: float | None = None) -> None:
        self.events.progress(f"{self.prefix} {stage}", step, total, loss=loss)

    def info(self, message: str, **data) -> None:
        self.events.info(f"{self.prefix}: {message}", **data)

    def warning(self, message: str) -> None:
        self.events.warning(f"{self.prefix}: {message}")


def split_steps(settings, steps: int):
    """``settings`` with ``steps`` steps in all, split between warm-up and joint in the
    preset's proportion (at least one joint step when the preset has any)."""
    if not isinstance(steps, int) or steps < 2:
        raise ReconError(f"--steps must be an integer >= 2; got {steps!r}")
    total = settings.warmup_steps + settings.joint_steps
    warmup = round(steps * settings.warmup_steps / total)
    if settings.joint_steps > 0:
        warmup = min(warmup, steps - 1)
    return dataclasses.replace(settings, warmup_steps=warmup, joint_steps=steps - warmup)


def _row(name: str, metrics: dict, wall_s: float | None, memory: PeakMemory | None) -> dict:
    gt = metrics["ground_truth"]["summary"]
    return {
        "method": name,
        "chamfer_x1e3": gt.get("chamfer_x1e3"),
        "point_to_surface_mm": gt.get("point_to_surface_mm"),
        "normal_consistency": gt.get("normal_consistency"),
        "chamfer_front_x1e3": _x1e3(gt.get("chamfer_front_m2")),
        "chamfer_back_x1e3": _x1e3(gt.get("chamfer_back_m2")),
        "penetrating_vertices": gt.get("penetrating_vertices"),
        "mask_iou": metrics.get("fit", {}).get("mask_iou"),
        "acceleration_error_mm": gt.get("acceleration_error_mm"),
        "wall_s": wall_s,
        "train_s": metrics.get("timings", {}).get("train_s"),
        "peak_rss_mib": memory.peak_rss_mib if memory else None,
        "cuda_peak_mib": memory.cuda_peak_mib if memory else None,
        "faces": metrics.get("mesh", {}).get("faces"),
        "steps": _steps(metrics.get("settings")),
        "remesh_events": metrics.get("mesh", {}).get("remesh_events"),
        "per_frame_chamfer_x1e3": [None if c is None else 1e3 * c for c in
                                   metrics["ground_truth"]["per_frame"]["chamfer_m2"]],
    }


def _x1e3(value: float | None) -> float | None:
    return None if value is None else 1e3 * value


def _steps(settings: dict | None) -> int | None:
    return None if settings is None else settings["warmup_steps"] + settings["joint_steps"]


def format_table(rows: list[dict], columns=COLUMNS) -> str:
    """The rows as one aligned text table (``columns``: header, key, format)."""
    cells = [[header for header, _, _ in columns]]
    for row in rows:
        cells.append([("-" if row.get(key) is None else fmt.format(row[key]))
                      for _, key, fmt in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(line, widths, strict=True)))
                     for line in cells)


def _template_metrics(capture, settings, device, rasterizer) -> dict:
    """Ground-truth metrics and mask IoU of the untrained template, skinned per frame."""
    import numpy as np
    import torch

    from ..eval.metrics import EvalSettings, mask_iou
    from ..eval.quality import evaluate_vertices
    from ..mesh.templates import TemplateSettings, build_template, load_template_mesh
    from .data import load_capture_data
    from .render import render_garment
    from .run import evaluation_scene, skinned_template, template_file

    data = load_capture_data(capture, (settings.resolution_px,), device, use_normals=False,
                             crop_margin=settings.crop_margin)
    template_settings = TemplateSettings(target_edge_m=settings.template_edge_m)
    if capture.garment_type == "template":
        template = load_template_mesh(template_file(capture), data.body, template_settings)
    else:
        template = build_template(data.body, capture.garment_type, template_settings)
    world_all = torch.from_numpy(skinned_template(template, data, settings)).to(device)
    targets = data.levels[settings.resolution_px]
    faces = torch.from_numpy(np.asarray(template.faces)).to(device=device, dtype=torch.int32)
    ious = []
    with torch.no_grad():
        for start in range(0, data.frame_count, 16):
            frames = torch.arange(start, min(start + 16, data.frame_count), device=device)
            world = world_all.index_select(0, frames)
            body = data.body_vertices.index_select(0, frames) if settings.body_occlusion \
                else None
            render = render_garment(rasterizer, world, faces, targets.cameras(frames), body,
                                    data.body_faces if body is not None else None)
            ious.append(mask_iou(render.mask[..., 0].cpu().numpy(),
                                 targets.mask.index_select(0, frames)[..., 0].cpu().numpy()))
    gt = evaluate_vertices(world_all.cpu().numpy(), template.faces, capture.frames,
                           capture.root / "gt", EvalSettings(samples=settings.eval_samples),
                           **evaluation_scene(capture, data))
    return {"ground_truth": gt, "fit": {"mask_iou": float(np.mean(np.concatenate(ious)))}}


def run_quality_bench(capture_root: Path, events=None, cancel=None, preset_name: str = "standard",
                      steps: int | None = None, use_normals: bool = True, device: str = "auto",
                      seed: int = 0, samples: int | None = None, static_only: bool = False,
                      remesh: bool = False, priors: bool = False,
                      work_dir: Path | None = None) -> dict:
    """Reconstruct ``capture_root`` (which must hold ``gt/garment.npz``) with each method
    and score the results.

    Args:
        events: an ``EventStream`` (progress of each run with its stage prefixed by the
            method, one ``info`` per finished row) or None.
        cancel: a ``CancelToken`` (checked every step) or None.
        preset_name: the quality preset both methods start from.
        steps: total optimisation steps instead of the preset's (same split).
        use_normals: False drops the capture's normal maps (masks + RGB only).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        samples: surface samples per mesh and frame for the metrics (default: the
            preset's ``eval_samples``, NGD's 10000).
        static_only: add a row for ours without the dynamic part (all steps static).
        remesh: add a row for ours with adaptive remeshing (``ngd remesh``) and, when
            that took longer than ours without, one for ours without remeshing given
            as many more steps as makes its training time equal (``ngd same time``):
            the comparison at the same wall-clock budget. The ``ngd`` row uses the
            preset's remeshing setting as it is.
        priors: add ours with the physical and temporal priors switched the other way
            from the preset (``ngd priors`` or ``ngd no priors``; ``settings.with_priors``).
        work_dir: keep each run's result bundle under ``work_dir/<method>``
            (default: a temporary folder, deleted afterwards).

    Returns a JSON-ready dict: ``rows`` (one per method: the table's figures, ``train_s``
    and per-frame Chamfer), ``table`` (the printed text), ``capture``, ``preset``,
    ``settings`` per method, ``use_normals``, ``device``.
    """
    from ..capture import load_capture
    from ..jobs.cancel import CancelToken
    from ..jobs.spec import JobSettings
    from ..render.context import get_rasterizer
    from .run import reconstruct, resolve_device
    from .settings import preset, priors_on, with_priors

    capture_root = Path(capture_root)
    cancel = cancel or CancelToken(None)
    overrides = {"seed": seed, "use_normals": use_normals}
    if samples is not None:
        overrides["eval_samples"] = samples
    base = preset(preset_name, **overrides)     # an unknown preset fails here
    if steps is not None:
        base = split_steps(base, steps)
    capture = load_capture(capture_root)
    if not (capture.root / "gt" / "garment.npz").is_file():
        raise ReconError(f"{capture.root}: bench quality needs a synthetic capture with "
                         "ground truth (gt/garment.npz)",
                         hint="make one with the synthetic capture generator")
    if use_normals and not capture.paths.normals:
        log.warning("%s has no normal maps: both methods use masks + RGB", capture.root)
    torch_device = resolve_device(device)
    job = JobSettings(device=device)

    runs = [("ngd", base), ("displacement", dataclasses.replace(base, method="displacement"))]
    if static_only:
        runs.append((STATIC_ROW, dataclasses.replace(base, warmup_steps=base.total_steps,
                                                     joint_steps=0)))
    if remesh:
        runs.append((REMESH_ROW, dataclasses.replace(base, remesh=True)))
    if priors:
        on = priors_on(base)
        runs.append((NO_PRIORS_ROW if on else PRIORS_ROW, with_priors(base, not on)))
    own_work = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="bench-quality-")) if own_work else Path(work_dir)
    rows, used = [], {}
    try:
        rasterizer = get_rasterizer(job.rasterizer, torch_device)
        template = _template_metrics(capture, base, torch_device, rasterizer)
        rows.append(_row("template", template, None, None))
        for name, settings in runs:       # (the remesh row may append one more run)
            cancel.check()
            out = work / name.replace(" ", "-")
            if out.exists():
                shutil.rmtree(out)       # a fresh run, never a resume of an older one
            stream = _Prefixed(events, name) if events is not None else None
            started = time.monotonic()
            with PeakMemory(torch_device) as memory:
                result = reconstruct(capture_root, out, settings, job, stream, cancel)
            wall = time.monotonic() - started
            rows.append(_row(name, result.metrics, wall, memory))
            used[name] = result.metrics["settings"]
            if events is not None:
                events.info(f"{name}: CD x1e3 {rows[-1]['chamfer_x1e3']:.3f}, NC "
                            f"{rows[-1]['normal_consistency']:.4f}, {wall:.1f} s", **rows[-1])
            if name == REMESH_ROW:
                same_time = _same_time_settings(base, rows)
                if same_time is not None:
                    runs.append((SAME_TIME_ROW, same_time))
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    return {"capture": str(capture.root), "preset": preset_name,
            "steps": base.total_steps, "use_normals": use_normals, "device": str(torch_device),
            "rows": rows, "settings": used, "table": format_table(rows)}


def _same_time_settings(base, rows: list[dict]):
    """Ours without remeshing, with its steps scaled so that its training time matches
    the remeshing run's (None when remeshing was not slower)."""
    by_name = {row["method"]: row for row in rows}
    plain, refined = by_name.get("ngd"), by_name.get(REMESH_ROW)
    if not (plain and refined and plain.get("train_s") and refined.get("train_s")):
        return None
    ratio = refined["train_s"] / plain["train_s"]
    if ratio <= 1.02:
        return None
    return split_steps(dataclasses.replace(base, remesh=False),
                       max(2, round(base.total_steps * ratio)))


def cmd_bench_quality(args: argparse.Namespace, events, cancel) -> None:
    report = run_quality_bench(args.capture, events, cancel, preset_name=args.preset,
                               steps=args.steps, use_normals=not args.no_normals,
                               device=args.device, seed=args.seed, samples=args.samples,
                               static_only=args.static_only, remesh=args.remesh,
                               priors=args.priors, work_dir=args.work_dir)
    if args.out is not None:
        from ..fileio import atomic_write

        with atomic_write(args.out) as tmp:
            Path(tmp).write_text(json.dumps(report, indent=1))
    inputs = "masks + RGB" if args.no_normals else "masks + normals (if the capture has them)"
    events.done(result=str(args.out) if args.out else None,
                summary=f"{report['capture']}: preset {report['preset']}, {report['steps']} "
                f"steps, {inputs}, {report['device']}\n{report['table']}")


def add_quality_parser(bench) -> None:
    """Register ``bench quality`` on the ``bench`` subparsers of ``backend.cli``."""
    q = bench.add_parser("quality", help="reconstruct a synthetic capture with ours and the "
                         "displacement baseline; one table of ground-truth metrics")
    q.add_argument("--capture", type=Path, required=True,
                   help="synthetic capture folder with gt/garment.npz")
    q.add_argument("--preset", default="standard", help="draft, standard or high")
    q.add_argument("--steps", type=int, default=None,
                   help="total steps per method instead of the preset's")
    q.add_argument("--no-normals", action="store_true",
                   help="drop the capture's normal maps: masks + RGB only")
    q.add_argument("--static-only", action="store_true",
                   help="add a row for ours without the dynamic part")
    q.add_argument("--remesh", action="store_true",
                   help="add ours with adaptive remeshing, and ours without it at the same "
                   "training time")
    q.add_argument("--priors", action="store_true",
                   help="add ours with the physical and temporal priors switched the other "
                   "way from the preset")
    q.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--samples", type=int, default=None,
                   help="surface samples per mesh and frame (default: the preset's, 10000)")
    q.add_argument("--work-dir", type=Path, default=None,
                   help="keep each run's result folder here (default: a temporary folder)")
    q.add_argument("--out", type=Path, default=None, help="write rows and settings as JSON")
    q.set_defaults(func=cmd_bench_quality)
