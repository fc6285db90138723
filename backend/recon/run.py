"""One reconstruction from a capture folder to a result folder (what ``run job.json``
and ``reconstruct`` do): check everything that can fail cheaply first, then load,
build the template, train, write the result bundle.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..capture import load_capture, validate_capture
from ..capture.bundle import Capture
from ..jobs.cancel import CancelToken
from ..jobs.events import EventStream
from ..jobs.result import GarmentResult, write_result
from ..jobs.spec import JobSettings
from .errors import ReconError
from .settings import ReconSettings

log = logging.getLogger(__name__)

TEMPLATE_FILES = ("template.ply", "template.obj")
"""Where a capture keeps its own template mesh (garment type ``template``)."""


@dataclass
class ReconResult:
    """The result folder written and the figures that go to metrics.json."""

    output: Path
    metrics: dict


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when torch sees a GPU, else the CPU; ``"cuda"`` must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ReconError("device 'cuda' was asked for, but this torch sees no CUDA GPU "
                         f"(torch {torch.__version__})",
                         hint="choose device 'cpu' or 'auto', or install a CUDA build of torch")
    if name not in ("cpu", "cuda"):
        raise ReconError(f"unknown device {name!r}; expected auto, cpu or cuda")
    return torch.device(name)


def template_file(capture: Capture) -> Path | None:
    for name in TEMPLATE_FILES:
        if (capture.root / name).is_file():
            return capture.root / name
    return None


def check_inputs(capture_root: Path, job: JobSettings) -> tuple[Capture, torch.device]:
    """Everything that can be refused before any work: capture.json, body, template
    file, device, frame range. Returns the capture (range applied) and the device."""
    capture = load_capture(capture_root)
    device = resolve_device(job.device)
    if capture.body_path is None or not capture.body_path.is_file():
        raise ReconError(f"{capture.root}: the capture has no body.npz; a reconstruction "
                         "needs the body that moves with the garment",
                         hint="export the capture with a body (sidebar > Body), or write "
                              "one with `python -m backend body`")
    if capture.garment_type == "template" and template_file(capture) is None:
        raise ReconError(f"{capture.root}: garment type 'template' needs "
                         f"{' or '.join(TEMPLATE_FILES)} in the capture folder")
    keep = [f for f in capture.frames
            if (job.frame_start is None or f >= job.frame_start)
            and (job.frame_end is None or f <= job.frame_end)]
    if not keep:
        raise ReconError(f"{capture.root}: no capture frame lies in the range "
                         f"{job.frame_start}..{job.frame_end} (the capture has "
                         f"{capture.frames[0]}..{capture.frames[-1]})")
    capture = capture.without_frames(set(capture.frames) - set(keep))
    return capture, device


@dataclass
class Prepared:
    """Everything ``reconstruct`` builds before training (tests drive the trainer)."""

    capture: Capture
    data: object
    template: object
    trainer: object
    settings: ReconSettings
    device: torch.device
    timings: dict


def prepare(capture_root: Path, output: Path, settings: ReconSettings,
            job: JobSettings | None = None, events: EventStream | None = None,
            cancel: CancelToken | None = None) -> Prepared:
    """Check the inputs, load the capture, build the template, the model and the
    trainer (which resumes from ``output/checkpoint`` when it holds one of the same
    inputs)."""
    from ..mesh.poisson import PoissonSystem
    from ..mesh.templates import TemplateSettings, build_template, load_template_mesh
    from ..render.context import get_rasterizer
    from .data import load_capture_data
    from .model import DisplacementGarment, JacobianGarment
    from .trainer import Trainer

    job = job or JobSettings()
    cancel = cancel or CancelToken(None)
    settings = settings.resolved()
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    capture, device = check_inputs(Path(capture_root), job)
    rasterizer = get_rasterizer(job.rasterizer, device)
    torch.manual_seed(settings.seed)

    def progress(step: int, total: int) -> None:
        cancel.check()
        if events is not None:
            events.progress("validate", step, total)

    report = validate_capture(capture, drop_empty_masks=job.drop_empty_masks, progress=progress)
    capture = report.capture
    for warning in report.warnings:
        if events is not None:
            events.warning(warning)
    timings["validate_s"] = time.monotonic() - t0

    t = time.monotonic()
    resolutions = (settings.resolution_px, max(16, settings.resolution_px // 2))
    data = load_capture_data(capture, resolutions, device, use_normals=settings.use_normals,
                             crop_margin=settings.crop_margin)
    timings["load_s"] = time.monotonic() - t

    t = time.monotonic()
    template_settings = TemplateSettings(target_edge_m=settings.template_edge_m)
    path = template_file(capture)
    if capture.garment_type == "template":
        template = load_template_mesh(path, data.body, template_settings)
    else:
        template = build_template(data.body, capture.garment_type, template_settings)
    if settings.method == "ngd":
        poisson = PoissonSystem(template.vertices, template.faces, device=device,
                                dtype=torch.float32)
        model = JacobianGarment(template, poisson, data.pose_codes, data.body.bone_count,
                                settings)
    else:
        model = DisplacementGarment(template, data.pose_codes, data.body.bone_count, settings)
    timings["template_s"] = time.monotonic() - t
    if events is not None:
        events.info(f"template {template.garment_type}: {template.vertex_count} vertices, "
                    f"{template.face_count} faces; {data.frame_count} frames on {device}",
                    vertices=template.vertex_count, faces=template.face_count)

    fingerprint = json.dumps({"frames": list(capture.frames), "garment": capture.garment_type,
                              "template": _array_digest(template.vertices, template.faces)})
    trainer = Trainer(model, data, settings, rasterizer, Path(output), events, cancel,
                      fingerprint)
    return Prepared(capture, data, template, trainer, settings, device, timings)


def reconstruct(capture_root: Path, output: Path, settings: ReconSettings,
                job: JobSettings | None = None, events: EventStream | None = None,
                cancel: CancelToken | None = None) -> ReconResult:
    """Reconstruct the garment of ``capture_root`` into ``output`` (see module docstring).

    Resumes from ``output/checkpoint`` when it holds a checkpoint of the same inputs.
    """
    prepared = prepare(capture_root, output, settings, job, events, cancel)
    capture, data, template, trainer = (prepared.capture, prepared.data, prepared.template,
                                        prepared.trainer)
    settings, device, timings = prepared.settings, prepared.device, prepared.timings
    outcome = trainer.train()
    timings["train_s"] = outcome.seconds

    metrics = {
        "method": settings.method,
        "settings": dataclasses.asdict(settings),
        "frames": len(capture.frames),
        "template": {"vertices": template.vertex_count, "faces": template.face_count,
                     "source": template.source},
        "device": str(device),
        "rasterizer": type(trainer.rasterizer).__name__,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "losses": outcome.history[-1] if outcome.history else {},
        "loss_history": outcome.history,
        "resumed_from_step": outcome.resumed_from,
        "mesh": {"vertices": int(len(outcome.canonical)), "faces": int(len(outcome.faces)),
                 "remesh_events": outcome.remesh_events},
        "postfit": outcome.postfit,
        "fit": {"mask_iou": float(np.mean(outcome.mask_iou)),
                "mask_iou_per_frame": [round(float(x), 5) for x in outcome.mask_iou]},
    }
    gt = capture.root / "gt"
    if (gt / "garment.npz").is_file():
        from ..eval.metrics import EvalSettings
        from ..eval.quality import evaluate_vertices

        t = time.monotonic()
        scene = evaluation_scene(capture, data)
        metrics["ground_truth"] = evaluate_vertices(
            outcome.vertices, outcome.faces, capture.frames, gt,
            EvalSettings(samples=settings.eval_samples), **scene)
        # the starting point, scored the same way: what the optimisation gained
        metrics["ground_truth_template"] = evaluate_vertices(
            skinned_template(template, data, settings), template.faces, capture.frames, gt,
            EvalSettings(samples=settings.eval_samples), **scene)
        metrics["timings"]["evaluate_s"] = round(time.monotonic() - t, 3)
    textured = None
    if settings.texture != "none":
        from .texture_stage import texture_garment

        textured = texture_garment(outcome.canonical, outcome.faces, outcome.vertices, data,
                                   settings, trainer.rasterizer, events, cancel)
        metrics["texture"] = textured.metrics
        metrics["timings"]["texture_s"] = textured.metrics["seconds"]
    garment = GarmentResult(faces=outcome.faces, canonical_vertices=outcome.canonical,
                            vertices=outcome.vertices,
                            frame_numbers=np.asarray(capture.frames),
                            uv=None if textured is None else textured.uv)
    write_result(Path(output), garment, metrics=metrics,
                 texture=None if textured is None else textured.texture,
                 dynamic_textures=None if textured is None else textured.dynamic)
    return ReconResult(Path(output), metrics)


def evaluation_scene(capture, data) -> dict:
    """What the ground-truth metrics need besides the meshes: each frame's camera
    centre (front and back halves) and posed body (penetrations)."""
    centres = [-np.asarray(c.R).T @ np.asarray(c.t) for c in map(capture.camera, capture.frames)]
    return {"view_points": np.asarray(centres),
            "body_vertices": data.body_vertices.detach().cpu().double().numpy(),
            "body_faces": data.body_faces.detach().cpu().numpy()}


def skinned_template(template, data, settings: ReconSettings) -> np.ndarray:
    """(T, V, 3) float32 world vertices of the untrained template, skinned per frame."""
    from .model import DisplacementGarment

    # an untrained baseline model is the template (zero offsets); it brings the skinning
    model = DisplacementGarment(template, data.pose_codes, data.body.bone_count,
                                settings.resolved())
    worlds = []
    with torch.no_grad():
        canonical = model.canonical(None)
        for start in range(0, data.frame_count, 16):
            frames = torch.arange(start, min(start + 16, data.frame_count),
                                  device=data.bone_transforms.device)
            worlds.append(model.world(canonical, data.bone_transforms.index_select(0, frames))
                          .cpu().numpy())
    return np.concatenate(worlds)


def _array_digest(*arrays: np.ndarray) -> str:
    import hashlib

    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]
