"""The product demo, one command: a synthetic capture, reconstructed, imported, rendered.

Usage (with the bpy module, e.g. this project's venv; ``./dev demo`` runs it):

    .venv/bin/python tools/demo.py [--out .cache/demo] [--quick] [--frames N]
        [--garment skirt] [--motion walk] [--preview-frames 4] [--samples 16]

Stages, each announced with its progress and timed:

1. ``generate``: the synthetic capture (``tools/make_synthetic.py``'s code, preset
   ``demo``: an Anny body walking in a Blender-simulated skirt, 30 Cycles frames at
   256 px) into OUT/capture. A complete capture made with the same settings is reused,
   so a second run skips this stage.
2. ``reconstruct``: ``python -m backend reconstruct OUT/capture --out OUT/result
   --preset draft --device cpu`` (the texture stage writes texture.png and UVs; the
   capture's ``gt/`` adds the ground-truth scores to metrics.json). Every run
   reconstructs anew.
3. ``import``: the capture's ``gt/scene.blend`` (body, camera, lights, floor) gets the
   result as a native animated garment (Import Garment Result's code: one shape key
   per frame, UVs, a textured Principled material) beside the body; the ground-truth
   garment moves to a hidden "Ground Truth" collection and the footage becomes the
   camera's background. Saved as OUT/demo.blend.
4. ``render``: Cycles renders a few frames from the capture camera at low samples;
   OUT/preview.png shows each as a pair, footage | render, both cropped to the square
   around the body (``--docs-preview`` also writes the README's smaller copy,
   docs/demo_preview.png).

Then a summary: the ground-truth figures of metrics.json (Chamfer distance x1e3, normal
consistency, point-to-surface distance, ...; the untouched template's beside them),
the texture's PSNR/SSIM, and the seconds of every stage. OUT/summary.json holds the
same. Blender's own console output goes to OUT/logs/blender.log, the backend's log to
OUT/job/stderr.log. A failure prints one line naming the stage and exits 1 (details,
tracebacks included, in OUT/logs/demo.log).

The backend runs with as many torch threads as the load average leaves cores free
(``--threads`` or OMP_NUM_THREADS choose): on 2 cores shared with other jobs (load
average 4-5) the draft training took 721 s with two threads, which keep waiting for
each other, and 60-70 s with one.

``--quick`` is the test suite's smoke run: the tiny preset with 4 frames, a handful
of optimisation steps at 64 px, one preview frame (well under a minute on 2 cores);
its figures mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from make_synthetic import PACKAGE, REPO, backend_environment, load_extension

log = logging.getLogger("demo")

STAGES = ("generate", "reconstruct", "import", "render")
DEFAULT_OUT = REPO / ".cache" / "demo"
QUICK_OUT = REPO / ".cache" / "demo-quick"
DOCS_PREVIEW = REPO / "docs" / "demo_preview.png"
DOCS_PREVIEW_MAX_BYTES = 280_000
"""The README's copy stays under this size (a committed file)."""

QUICK_PRESET = "demo-quick"
QUICK_RECON = {"warmup_steps": 6, "joint_steps": 6, "resolution_px": 64, "frames_per_step": 2,
               "template_edge_m": 0.05, "texture_size": 128, "texture_steps": 6,
               "eval_samples": 2000}
"""``--quick``: the draft preset with these fields replaced (a smoke run, not a result)."""
_QUICK_BOOTSTRAP = (
    "import dataclasses, json, sys\n"
    "from backend.recon import settings\n"
    "settings.PRESETS[sys.argv[1]] = dataclasses.replace(settings.PRESETS['draft'], "
    "**json.loads(sys.argv[2]))\n"
    "from backend.cli import main\n"
    "sys.exit(main(sys.argv[3:]))\n"
)
"""``python -c`` program: the backend's command line with one more quality preset."""

RESULT_ENTRIES = {"garment.npz", "texture.png", "texture_dynamic", "metrics.json", "log.jsonl",
                  "checkpoint", "garment_cache.abc", "garment_cache.usdc"}
"""What a result folder may hold; the demo only replaces a folder holding nothing else."""

GT_LABELS = (
    ("chamfer_x1e3", "CD x1e3", "Chamfer distance, m^2 x 1e3 (NGD's protocol); lower is better"),
    ("normal_consistency", "NC", "normal consistency; higher is better"),
    ("point_to_surface_mm", "P2S mm", "mean point-to-surface distance"),
    ("chamfer_front_m2", "CD front m^2", "Chamfer on the half facing the camera"),
    ("chamfer_back_m2", "CD back m^2", "Chamfer on the half facing away"),
    ("mask_iou", "mask IoU", "silhouette overlap with the ground truth"),
    ("acceleration_error_mm", "accel mm", "temporal acceleration error, mm/frame^2"),
    ("penetrating_vertices", "in body", "garment vertices inside the body, mean per frame"),
    ("psnr_db", "PSNR dB", "render vs ground truth"),
    ("ssim", "SSIM", "render vs ground truth"),
)
"""Ground-truth summary keys of metrics.json in the order printed, with short labels."""


class DemoError(RuntimeError):
    """A stage failed: ``stage`` names it, the message says what, ``hint`` what to do."""

    def __init__(self, stage: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.stage = stage
        self.hint = hint


@dataclass
class DemoRun:
    """Where the demo writes, and what it measured."""

    out: Path
    quick: bool
    say: Callable[[str], None]
    seconds: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    threads: int | None = None
    """OMP_NUM_THREADS of the backend processes; None leaves the environment as it is."""

    @property
    def total_s(self) -> float:
        """Wall time since the run started (stages, start-up and the README copy)."""
        return round(time.perf_counter() - self.started, 2)

    @property
    def capture(self) -> Path:
        return self.out / "capture"

    @property
    def result(self) -> Path:
        return self.out / "result"

    @property
    def job(self) -> Path:
        return self.out / "job"

    @property
    def logs(self) -> Path:
        return self.out / "logs"

    @property
    def blend(self) -> Path:
        return self.out / "demo.blend"

    @property
    def preview(self) -> Path:
        return self.out / "preview.png"


def build_parser(settings_module) -> argparse.ArgumentParser:
    s = settings_module
    p = argparse.ArgumentParser(prog="tools/demo.py", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=None,
                   help=f"demo folder (default {DEFAULT_OUT.relative_to(REPO)}, with --quick "
                   f"{QUICK_OUT.relative_to(REPO)})")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: tiny capture of 4 frames, a few steps, one preview frame")
    p.add_argument("--garment", choices=s.GARMENTS, default="skirt")
    p.add_argument("--motion", choices=s.MOTIONS, default="walk")
    p.add_argument("--frames", type=int, default=None,
                   help="captured frames (default 30; 4 with --quick)")
    p.add_argument("--device", choices=["cpu", "auto", "cuda"], default="cpu",
                   help="where the backend reconstructs (default cpu)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of the backend (default: the cores other work leaves "
                   "free by the load average, at least 1; OMP_NUM_THREADS if set)")
    p.add_argument("--preview-frames", type=int, default=None,
                   help="frames in the preview (default 4; 1 with --quick)")
    p.add_argument("--samples", type=int, default=None,
                   help="Cycles samples per pixel of the preview (default 16; 4 with --quick)")
    p.add_argument("--regenerate", action="store_true",
                   help="make the capture again even if a matching one exists")
    p.add_argument("--docs-preview", type=Path, nargs="?", const=DOCS_PREVIEW, default=None,
                   help=f"also write the README's small copy of the preview (default path "
                   f"{DOCS_PREVIEW.relative_to(REPO)}); off by default, so a demo run leaves "
                   "the checkout unchanged")
    return p


def backend_threads(requested: int | None) -> tuple[int | None, str]:
    """Threads for the backend's torch, and why. Measured on 2 cores shared with three
    other jobs (load ~4.5): a rasterizer forward+backward took 70-80 ms with one thread
    and 300-1700 ms with two, which wait on each other whenever either is descheduled;
    so only the cores the load average leaves free are used. None: OMP_NUM_THREADS is
    already set and is kept."""
    cores = os.cpu_count() or 1
    if requested is not None:
        return requested, "--threads"
    if os.environ.get("OMP_NUM_THREADS"):
        return None, "OMP_NUM_THREADS"
    busy = os.getloadavg()[0]
    return max(1, min(cores, int(cores - busy + 0.5))), \
        f"{cores} cores, load average {busy:.1f} before the demo"


def environment(run: DemoRun) -> dict[str, str]:
    """The backend's environment (``make_synthetic.backend_environment``) with the
    demo's thread count."""
    env = backend_environment()
    if run.threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(run.threads)
    return env


def extension_module(name: str):
    """A module of this checkout's extension, e.g. ``"operators.job_runner"``."""
    load_extension()  # registers the package (once)
    return importlib.import_module(f"{PACKAGE}.{name}")


# --- console ----------------------------------------------------------------------

@contextlib.contextmanager
def console(log_file: Path):
    """Yield ``say(line)``, which prints to the real stdout, while file descriptor 1
    (where Blender prints its render and file messages) goes to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    saved = os.dup(1)
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    with open(log_file, "ab") as sink:
        os.dup2(sink.fileno(), 1)
    try:
        yield lambda line="": print(line, file=out, flush=True)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        out.close()


class Ticker:
    """Progress lines that stay readable in a log: a stage's first step, every tenth of
    its steps, its last step, and in between at most one line every ``interval_s``."""

    def __init__(self, say: Callable[[str], None], interval_s: float = 30.0):
        self.say = say
        self.interval_s = interval_s
        self.stage: str | None = None
        self.step = -1
        self.last = 0.0

    def __call__(self, stage: str, step: int, total: int, extra: str = "") -> None:
        now = time.monotonic()
        new = stage != self.stage
        if not new and step == self.step:
            return
        tenth = total > 0 and step * 10 // total != self.step * 10 // total
        if not (new or tenth or step >= total or now - self.last >= self.interval_s):
            return
        self.stage, self.step, self.last = stage, step, now
        self.say(f"      {stage} {step}/{total}{extra}")


# --- stages -----------------------------------------------------------------------

def synth_settings(args, settings_module):
    """The capture's SynthSettings: preset demo (tiny with --quick), skirt walking."""
    frames = args.frames if args.frames is not None else (4 if args.quick else None)
    overrides = {"garment": args.garment, "motion": args.motion}
    if frames is not None:
        overrides["frames"] = frames
    return settings_module.preset("tiny" if args.quick else "demo", **overrides)


def reusable(capture: Path, settings) -> bool:
    """Whether ``capture`` is a complete synthetic capture made with ``settings``."""
    generate, _ = load_extension()
    gt = capture / generate.GT_DIR
    needed = (capture / "capture.json", gt / generate.SUMMARY_FILE, gt / "scene.blend",
              gt / "garment.npz")
    if not all(path.is_file() for path in needed):
        return False
    try:
        made = json.loads((gt / generate.SUMMARY_FILE).read_text()).get("settings")
    except (OSError, ValueError, AttributeError):
        return False
    return made == json.loads(json.dumps(settings.to_dict()))


def stage_generate(run: DemoRun, settings, regenerate: bool) -> None:
    import bpy

    generate, _ = load_extension()
    if not regenerate and reusable(run.capture, settings):
        run.notes["generate"] = "reused"
        run.say(f"      reusing {run.capture} (same settings; --regenerate makes it anew)")
        return
    ticker = Ticker(run.say)
    bpy.ops.wm.read_homefile(use_empty=True)
    result = generate.generate_capture(
        bpy.context.scene, settings, run.capture, python=sys.executable,
        env=environment(run), progress=lambda stage, step, total: ticker(stage, step, total),
        overwrite=True, save_blend=True)
    times = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    run.say(f"      {len(settings.capture_frames)} frames at {settings.resolution} px ({times})")


def reconstruct_command(run: DemoRun, device: str) -> list[str]:
    """argv of the backend reconstruction (the draft preset, or --quick's smoke preset)."""
    tail = ["--job-dir", str(run.job), "--log-level", "INFO", "reconstruct", str(run.capture),
            "--out", str(run.result), "--device", device]
    if run.quick:
        return [sys.executable, "-c", _QUICK_BOOTSTRAP, QUICK_PRESET, json.dumps(QUICK_RECON),
                *tail, "--preset", QUICK_PRESET]
    return [sys.executable, "-m", "backend", *tail, "--preset", "draft"]


def clear_result(run: DemoRun) -> None:
    """Remove an earlier result (and its job log) so the reconstruction starts afresh;
    a folder holding anything a result does not is left alone (an error)."""
    if run.result.exists():
        foreign = sorted(p.name for p in run.result.iterdir() if p.name not in RESULT_ENTRIES)
        if foreign:
            raise DemoError("reconstruct", f"{run.result} holds files that are not a result "
                            f"({', '.join(foreign[:3])})", hint="choose another --out folder")
        shutil.rmtree(run.result)
    shutil.rmtree(run.job, ignore_errors=True)


def stage_reconstruct(run: DemoRun, device: str) -> dict:
    """Run the backend; returns metrics.json."""
    runner_module = extension_module("operators.job_runner")
    clear_result(run)
    runner = runner_module.JobRunner(reconstruct_command(run, device), run.job,
                                     env=environment(run))
    ticker = Ticker(run.say)
    message = ""
    runner.start()
    try:
        while runner.poll():
            s = runner.state
            if s.message and s.message != message:
                message = s.message
                run.say(f"      {message}")
            if s.total:
                eta = f", {s.eta_s:.0f} s left" if s.eta_s is not None else ""
                loss = f", loss {s.loss:.4g}" if s.loss is not None else ""
                ticker(s.stage, s.step, s.total, eta + loss)
            time.sleep(0.1)
    finally:
        runner.kill()  # only if still running: an interrupt or an error here
    s = runner.state
    if s.status != runner_module.Status.DONE:
        detail = s.error or "the backend stopped without a message"
        if s.log_tail:
            log.error("backend log tail:\n%s", "\n".join(s.log_tail))
        raise DemoError("reconstruct", detail,
                        hint=s.hint or f"the backend's log is {run.job / 'stderr.log'}")
    try:
        return json.loads((run.result / "metrics.json").read_text())
    except (OSError, ValueError) as exc:
        raise DemoError("reconstruct", f"{run.result / 'metrics.json'} cannot be read: "
                        f"{exc}") from None


def _footage_background(camera, frames_dir: Path, frames: list[int]) -> None:
    """Show the footage behind the camera view (viewport only): an image sequence
    whose file N is scene frame N."""
    import bpy

    image = bpy.data.images.load(str(frames_dir / f"{frames[0]:06d}.png"), check_existing=False)
    image.name = "Demo Footage"
    image.source = "SEQUENCE"
    camera.data.show_background_images = True
    background = camera.data.background_images.new()
    background.source = "IMAGE"
    background.image = image
    background.alpha = 1.0
    user = background.image_user
    user.frame_start = frames[0]
    user.frame_duration = frames[-1] - frames[0] + 1
    user.frame_offset = frames[0] - 1
    user.use_auto_refresh = True


def has_modifier(obj, kind: str) -> bool:
    """A mesh object with a modifier of ``kind`` (the body: ARMATURE; the ground-truth
    garment: MESH_CACHE)."""
    return obj.type == "MESH" and any(m.type == kind for m in obj.modifiers)


def stage_import(run: DemoRun, garment: str):
    """Open the capture's scene, import the result beside the body, save demo.blend.
    Returns the imported object."""
    import bpy

    result_import = extension_module("operators.result_import")
    labels = {key: label for key, label, _ in
              extension_module("properties").GARMENT_TYPE_ITEMS}
    scene_file = run.capture / "gt" / "scene.blend"
    if not scene_file.is_file():
        raise DemoError("import", f"{scene_file} is missing",
                        hint="run again with --regenerate")
    bpy.ops.wm.open_mainfile(filepath=str(scene_file), load_ui=False)
    scene = bpy.context.scene

    truth = [o for o in scene.objects if has_modifier(o, "MESH_CACHE")]
    bodies = [o for o in scene.objects if has_modifier(o, "ARMATURE")]
    if not bodies or scene.camera is None:
        raise DemoError("import", f"{scene_file} has no skinned body or no camera",
                        hint="run again with --regenerate")
    body = bodies[0]
    extension_module("operators.add_demo_scene").hide_ground_truth(scene, truth,
                                                                   scene.collection)
    collection = body.users_collection[0]
    settings = result_import.ImportSettings(name=f"Reconstructed {labels.get(garment, 'Garment')}",
                                            set_frame_range=True)
    warnings: list[str] = []
    with bpy.context.temp_override(scene=scene, view_layer=scene.view_layers[0],
                                   collection=collection):
        obj = result_import.import_result(bpy.context, run.result, settings,
                                          on_warning=warnings.append)
    for warning in warnings:
        run.say(f"      warning: {warning}")
    frames = [int(k.name.removeprefix("frame_")) for k in obj.data.shape_keys.key_blocks[1:]]
    _footage_background(scene.camera, run.capture / "frames", frames)
    scene.frame_set(frames[0])
    # relative to scene.blend now, remapped to demo.blend by the save: the folder can move
    bpy.ops.file.make_paths_relative()
    for path in (run.blend, run.blend.with_suffix(".blend1")):
        path.unlink(missing_ok=True)  # no backup copy of an earlier run's file
    bpy.ops.wm.save_as_mainfile(filepath=str(run.blend), check_existing=False)
    material = obj.active_material.name if obj.active_material else "none"
    run.say(f"      '{obj.name}': {len(obj.data.vertices)} vertices, {len(frames)} shape keys, "
            f"material '{material}' -> {run.blend}")
    return obj


def preview_frames(frames: list[int], count: int) -> list[int]:
    """``count`` frames spread over ``frames``, first and last included."""
    count = max(1, min(count, len(frames)))
    if count == 1:
        return [frames[len(frames) // 2]]
    return [frames[round(i * (len(frames) - 1) / (count - 1))] for i in range(count)]


def stage_render(run: DemoRun, obj, count: int, samples: int,
                 docs: Path | None = None) -> list[int]:
    """Cycles renders of ``count`` frames from the capture camera; the preview grid,
    and its small copy at ``docs`` (None: no copy). Returns the frames shown."""
    import bpy

    scene = bpy.context.scene
    frames = preview_frames([int(k.name.removeprefix("frame_"))
                             for k in obj.data.shape_keys.key_blocks[1:]], count)
    scene.cycles.samples = samples
    render = scene.render
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGB"
    render.image_settings.color_depth = "8"
    render.use_file_extension = True
    body = next(o for o in scene.objects if has_modifier(o, "ARMATURE"))
    renders, crops = [], []
    with tempfile.TemporaryDirectory(prefix="garment-demo-") as tmp:
        for i, frame in enumerate(frames, 1):
            t = time.perf_counter()
            scene.frame_set(frame)
            render.filepath = str(Path(tmp) / f"{frame:06d}")
            bpy.ops.render.render(write_still=True)
            path = Path(tmp) / f"{frame:06d}.png"
            if not path.is_file():
                raise DemoError("render", f"Cycles wrote no image for frame {frame}")
            renders.append(load_rgb(path))
            crops.append(person_box(scene, body, render.resolution_x, render.resolution_y))
            run.say(f"      frame {frame} ({i}/{len(frames)}): {time.perf_counter() - t:.1f} s "
                    f"at {render.resolution_x}x{render.resolution_y}, {samples} samples")
    footage = [load_rgb(run.capture / "frames" / f"{f:06d}.png") for f in frames]
    grid = preview_grid(footage, renders, frames, crops)
    grid.save(run.preview)
    run.say(f"      {run.preview}: {grid.width}x{grid.height}, pairs footage | render of "
            f"frames {', '.join(map(str, frames))}")
    if docs is not None:
        size = write_docs_preview(run.preview, docs)
        run.say(f"      README copy: {docs} ({size / 1024:.0f} KB)")
    return frames


def person_box(scene, body, width: int, height: int, margin: float = 0.08):
    """The square of the image (pixels: left, top, right, bottom; top-left origin)
    around the body at the scene's frame: the camera's projection of its evaluated
    bounding box, grown by ``margin`` of its size, kept inside the image."""
    import bpy
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    evaluated = body.evaluated_get(bpy.context.evaluated_depsgraph_get())
    points = [world_to_camera_view(scene, scene.camera, evaluated.matrix_world @ Vector(c))
              for c in evaluated.bound_box]
    xs = [p.x * width for p in points]
    ys = [(1.0 - p.y) * height for p in points]
    side = min(max(max(xs) - min(xs), max(ys) - min(ys)) * (1 + 2 * margin), width, height)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    left = min(max(cx - side / 2, 0.0), width - side)
    top = min(max(cy - side / 2, 0.0), height - side)
    return (round(left), round(top), round(left + side), round(top + side))


def load_rgb(path: Path):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def preview_grid(footage: list, renders: list, frames: list[int], crops: list | None = None):
    """Pairs footage | render, two pairs a row for an even count, else one row; each
    pair cropped to its box in ``crops`` (None: whole images), scaled to the footage's
    size and labelled in its top-left corner."""
    from PIL import Image, ImageDraw

    width, height = footage[0].size
    crops = crops or [None] * len(frames)
    per_row = 2 if len(frames) % 2 == 0 else len(frames)
    rows = -(-len(frames) // per_row)
    grid = Image.new("RGB", (2 * width * per_row, height * rows), (0, 0, 0))
    draw = ImageDraw.Draw(grid)
    for i, (shot, render, frame, box) in enumerate(zip(footage, renders, frames, crops,
                                                       strict=True)):
        x, y = 2 * width * (i % per_row), height * (i // per_row)
        for dx, image, text in ((0, shot, f"footage {frame}"), (width, render, "reconstruction")):
            if image.size != (width, height):
                image = image.resize((width, height), Image.LANCZOS)
            if box is not None:
                image = image.resize((width, height), Image.LANCZOS, box=box)
            grid.paste(image, (x + dx, y))
            draw.text((x + dx + 4, y + 3), text, fill=(0, 0, 0))
            draw.text((x + dx + 3, y + 2), text, fill=(255, 255, 255))
    return grid


def write_docs_preview(grid_path: Path, target: Path, max_bytes: int = DOCS_PREVIEW_MAX_BYTES):
    """A copy of the preview small enough to commit: PNG, shrunk and reduced to a
    256-colour palette until it fits ``max_bytes``. Returns its size in bytes."""
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(grid_path) as image:
        image = image.convert("RGB")
    scale = min(1.0, 1024 / image.width)
    while True:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        small = image.resize(size, Image.LANCZOS) if scale < 1 else image
        small = small.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        small.save(target, optimize=True)
        if target.stat().st_size <= max_bytes or scale < 0.3:
            return target.stat().st_size
        scale *= 0.85


# --- summary ----------------------------------------------------------------------

def summary_lines(metrics: dict, run: DemoRun) -> list[str]:
    lines = []
    gt = metrics.get("ground_truth", {}).get("summary") or {}
    template = metrics.get("ground_truth_template", {}).get("summary") or {}
    if gt:
        lines.append(f"Against the ground truth ({metrics.get('frames')} frames; the untouched "
                     "template in brackets):")
        for key, label, meaning in GT_LABELS:
            if gt.get(key) is None:
                continue
            before = template.get(key)
            bracket = f"({before:.4g})" if before is not None else ""
            lines.append(f"  {label:<13} {gt[key]:<9.4g} {bracket:<11} {meaning}")
    else:
        lines.append("No ground-truth figures in metrics.json (the capture has no gt/)")
    texture = metrics.get("texture")
    if texture:
        for part in ("fitted", "held_out"):
            scores = texture.get(part)
            if scores and scores.get("psnr_db") is not None:
                lines.append(f"  texture PSNR {scores['psnr_db']:.2f} dB, SSIM "
                             f"{scores.get('ssim', float('nan')):.3f} ({part.replace('_', ' ')} "
                             f"frames, {texture.get('mode')} {texture.get('size')} px)")
    timings = metrics.get("timings", {})
    inner = ", ".join(f"{name.removesuffix('_s')} {timings[name]:.1f} s"
                      for name in ("train_s", "texture_s", "evaluate_s") if name in timings)
    parts = []
    for stage in STAGES:
        if stage in run.seconds:
            note = run.notes.get(stage)
            if stage == "reconstruct" and inner:
                note = inner
            parts.append(f"{stage} {run.seconds[stage]:.1f} s" + (f" ({note})" if note else ""))
    lines.append("Times: " + " | ".join(parts) + f" | total {run.total_s:.1f} s")
    load = os.getloadavg()
    lines.append(f"Machine: {os.cpu_count()} CPU cores, load average {load[0]:.2f} / "
                 f"{load[1]:.2f} / {load[2]:.2f} (1/5/15 min)")
    return lines


def write_summary(run: DemoRun, metrics: dict, frames: list[int], docs: Path | None) -> None:
    summary = {
        "seconds": run.seconds, "notes": run.notes, "total_s": run.total_s,
        "ground_truth": metrics.get("ground_truth", {}).get("summary"),
        "ground_truth_template": metrics.get("ground_truth_template", {}).get("summary"),
        "texture": {k: metrics.get("texture", {}).get(k) for k in ("fitted", "held_out")},
        "reconstruct_timings_s": metrics.get("timings"),
        "preview_frames": frames, "blend": str(run.blend), "preview": str(run.preview),
        "docs_preview": str(docs) if docs else None, "load_average": os.getloadavg(),
        "backend_threads": run.threads,
    }
    (run.out / "summary.json").write_text(json.dumps(summary, indent=1))


# --- main -------------------------------------------------------------------------

def run_stage(run: DemoRun, index: int, name: str, title: str, work: Callable):
    """Announce, time and run one stage; any failure becomes a DemoError naming it."""
    run.say(f"[{index}/{len(STAGES)}] {name}: {title}")
    garment_error = extension_module("operators.base").GarmentError
    backend_error = extension_module("backend.errors").BackendError
    start = time.perf_counter()
    try:
        value = work()
    except DemoError:
        raise
    except (garment_error, backend_error) as exc:
        log.error("stage %s failed", name, exc_info=True)
        raise DemoError(name, str(exc)) from None
    except Exception as exc:
        log.error("stage %s crashed\n%s", name, traceback.format_exc())
        raise DemoError(name, f"internal error: {type(exc).__name__}: {exc}",
                        hint=f"the traceback is in {run.logs / 'demo.log'}") from None
    finally:
        run.seconds[name] = round(time.perf_counter() - start, 2)
    run.say(f"      {name} done in {run.seconds[name]:.1f} s")
    return value


def main(argv=None) -> int:
    started = time.perf_counter()
    _, settings_module = load_extension()
    args = build_parser(settings_module).parse_args(argv)
    out = (args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)).resolve()
    preview_count = args.preview_frames if args.preview_frames is not None else \
        (1 if args.quick else 4)
    samples = args.samples if args.samples is not None else (4 if args.quick else 16)
    docs = args.docs_preview
    try:
        settings = synth_settings(args, settings_module)
    except RuntimeError as exc:  # GarmentError: bad --frames
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if preview_count < 1 or samples < 1 or (args.threads is not None and args.threads < 1):
        print("error: --preview-frames, --samples and --threads must be at least 1",
              file=sys.stderr)
        return 2
    threads, why = backend_threads(args.threads)
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    handler = logging.FileHandler(logs / "demo.log", mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)

    with console(logs / "blender.log") as say:
        run = DemoRun(out=out, quick=args.quick, say=say, started=started, threads=threads)
        say(f"Garment reconstruction demo -> {out}" + (" (quick smoke run)" if args.quick else ""))
        say(f"Backend threads: {threads or os.environ.get('OMP_NUM_THREADS')} ({why})")
        stage = "setup"
        try:
            stage = "generate"
            run_stage(run, 1, "generate", f"synthetic capture, {settings.garment} "
                      f"{settings.motion}, {settings.frames} frames at {settings.resolution} px",
                      lambda: stage_generate(run, settings, args.regenerate))
            stage = "reconstruct"
            metrics = run_stage(run, 2, "reconstruct", "backend on the "
                                f"{args.device.upper() if args.device == 'cpu' else args.device}"
                                f", {'smoke' if args.quick else 'draft'} preset",
                                lambda: stage_reconstruct(run, args.device))
            stage = "import"
            obj = run_stage(run, 3, "import", "result into the capture's scene",
                            lambda: stage_import(run, settings.garment))
            stage = "render"
            frames = run_stage(run, 4, "render", f"Cycles preview, {preview_count} frame(s)",
                               lambda: stage_render(run, obj, preview_count, samples, docs))
        except DemoError as exc:
            say(f"error in stage '{exc.stage}': {exc}")
            if exc.hint:
                say(f"hint: {exc.hint}")
            say(f"details: {logs / 'demo.log'}")
            return 1
        except KeyboardInterrupt:
            say(f"interrupted during stage '{stage}'")
            return 130
        say("")
        say("=== Summary")
        for line in summary_lines(metrics, run):
            say(line)
        say(f"Scene: {run.blend}")
        say(f"Preview: {run.preview}")
        write_summary(run, metrics, frames, docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
