"""The reconstruction's last stage: a UV atlas and a texture for the fitted garment.

After the geometry is trained, the final canonical mesh is unwrapped (``mesh.uv``) and
a texture is fitted to the footage on the fixed per-frame garment (``texturing``):
the static texture ``T_S`` always, the pose-dependent ``T_D`` with
``settings.texture == "dynamic"``. The result bundle gets per-corner UVs,
``texture.png`` (``T_S``) and, for a dynamic texture, ``texture_dynamic/NNNNNN.png``
per frame (``T_S + T_D`` baked). The dynamic texture carries the footage's lighting
(that is what makes renders match it); for relighting in Cycles the static one is the
albedo to use.

``settings.texture_holdout = N`` keeps every N-th frame out of the fit and reports
the textured render's PSNR/SSIM on those frames as well as on the fitted ones (the
novel-frame measure of ``bench texture``), where footage and render both show the
garment.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..eval.metrics import psnr, ssim
from ..jobs.cancel import CancelToken
from ..mesh.uv import coverage_mask, unwrap
from .data import CaptureData
from .render import combined_faces
from .settings import ReconSettings
from .texturing import (
    GAMMA,
    TextureSettings,
    bake_frame,
    bake_static,
    fit_texture,
    render_texture,
)

log = logging.getLogger(__name__)

EVAL_CHUNK = 8
"""Frames rendered together when scoring the texture."""


@dataclass
class TexturedGarment:
    """What the texture stage adds to a result: per-corner UVs ``(F, 3, 2)`` float32,
    ``texture`` ``(S, S, 3)`` uint8 sRGB, ``dynamic`` frame number -> baked texture
    (empty for a static texture) and ``metrics`` (sizes, timings, PSNR/SSIM); the
    fitted ``texturing.GarmentTexture`` (``model``, pose codes of every capture frame)
    for more renders."""

    uv: np.ndarray
    texture: np.ndarray
    dynamic: dict[int, np.ndarray] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    model: object = None


def texture_settings(settings: ReconSettings) -> TextureSettings:
    """The ``texturing.TextureSettings`` of a reconstruction's settings."""
    return TextureSettings(texture_size=settings.texture_size, steps=settings.texture_steps,
                           dynamic=settings.texture == "dynamic", seed=settings.seed)


def fitted_frames(frame_count: int, holdout: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the frames the texture is fitted to and of those held out (every
    ``holdout``-th from the third on, none for 0). Too few frames to spare: none
    held out."""
    everything = np.arange(frame_count)
    if holdout <= 1 or frame_count < 2 * holdout:
        return everything, everything[:0]
    held = everything[2::holdout]
    return np.setdiff1d(everything, held), held


def texture_garment(canonical: np.ndarray, faces: np.ndarray, vertices: np.ndarray,
                    data: CaptureData, settings: ReconSettings, rasterizer, events=None,
                    cancel: CancelToken | None = None) -> TexturedGarment:
    """Unwrap and texture a reconstructed garment.

    Args:
        canonical: ``(V, 3)`` static canonical mesh (unwrapped: its charts do not move
            with the frames); faces: ``(F, 3)`` int.
        vertices: ``(T, V, 3)`` world vertices of every capture frame, metres.
        data: the capture's training data (targets at ``settings.resolution_px``).
        settings: the reconstruction's settings (``texture*`` fields).
        events: an ``EventStream`` for ``texture`` progress, or None.
        cancel: checked every step (``JobCancelled`` propagates).
    """
    started = time.monotonic()
    cancel = cancel or CancelToken(None)
    device = data.body_vertices.device
    atlas = unwrap(canonical, faces, texture_size=settings.texture_size)
    unwrap_s = time.monotonic() - started
    targets = data.levels[settings.resolution_px]
    fit, held = fitted_frames(data.frame_count, settings.texture_holdout)
    fit_index = torch.as_tensor(fit, device=device)
    world = torch.as_tensor(vertices, dtype=targets.rgb.dtype, device=device)
    body = data.body_vertices.to(world) if settings.body_occlusion else None
    body_faces = data.body_faces if settings.body_occlusion else None
    options = texture_settings(settings)

    def progress(step: int, total: int, loss: float) -> None:
        if events is not None:
            events.progress("texture", step, total, loss=loss)

    result = fit_texture(
        world.index_select(0, fit_index), faces, atlas, targets.cameras(fit_index),
        targets.rgb.index_select(0, fit_index), targets.mask.index_select(0, fit_index),
        options, pose_codes=data.pose_codes.index_select(0, fit_index).to(world)
        if options.dynamic else None,
        body_vertices=None if body is None else body.index_select(0, fit_index),
        body_faces=body_faces, rasterizer=rasterizer, progress=progress, cancel=cancel)
    model = result.model
    if options.dynamic:
        # render and bake every capture frame: T_D reads each frame's own pose code
        model.pose_codes = data.pose_codes.to(world)
    coverage = coverage_mask(atlas)
    texture = bake_static(model, atlas, coverage)
    dynamic = {}
    if options.dynamic:
        for index, frame in enumerate(data.capture.frames):
            cancel.check()
            dynamic[int(frame)] = bake_frame(model, atlas, index, coverage)
    metrics = {
        "mode": settings.texture, "size": settings.texture_size, "steps": result.steps,
        "charts": atlas.chart_count, "utilisation": round(float(atlas.utilisation), 4),
        "unwrap_s": round(unwrap_s, 3), "fit_s": round(result.seconds, 3),
        "fitted_frames": len(fit), "held_out_frames": len(held),
        "fitted": _scores(model, world, faces, atlas.uvs, data, settings, rasterizer, fit,
                          body, body_faces),
    }
    if len(held):
        metrics["held_out"] = _scores(model, world, faces, atlas.uvs, data, settings,
                                      rasterizer, held, body, body_faces)
    metrics["seconds"] = round(time.monotonic() - started, 3)
    log.info("texture: %s", metrics)
    return TexturedGarment(uv=atlas.uvs.astype(np.float32), texture=texture, dynamic=dynamic,
                           metrics=metrics, model=model)


def _scores(model, world, faces, uvs, data: CaptureData, settings: ReconSettings, rasterizer,
            frames: np.ndarray, body, body_faces) -> dict:
    """``texture_scores`` on the capture's own targets (crops at the training size)."""
    targets = data.levels[settings.resolution_px]
    return texture_scores(model, world, faces, uvs, frames, targets.cameras,
                          lambda index: (targets.rgb.index_select(0, index),
                                         targets.mask.index_select(0, index)),
                          rasterizer, body, body_faces)


@torch.no_grad()
def texture_scores(model, world: torch.Tensor, faces, uvs, frames: np.ndarray, cameras,
                   images, rasterizer, body=None, body_faces=None) -> dict:
    """PSNR (dB) and SSIM of the textured garment's render against footage where both
    show the garment (the footage's mask and our render's coverage), in display
    (gamma 2.2) values, mean over ``frames`` (indices into ``world`` ``(T, V, 3)`` and
    the model's pose codes), plus ``coverage``: the share of the footage's garment
    pixels our render covers. ``cameras(index)`` gives the ``Camera`` of frame indices
    and ``images(index)`` their ``(rgb (B,H,W,3) linear, mask (B,H,W,1))``. Scoring
    the union instead would mostly score the silhouette (mask IoU and Chamfer do that):
    at IoU 0.91 the uncovered pixels alone cap PSNR near 17 dB."""
    topology = rasterizer.topology(combined_faces(
        torch.as_tensor(faces, dtype=torch.int32, device=world.device), body_faces,
        world.shape[1]))
    values = {"psnr_db": [], "ssim": [], "coverage": []}
    for start in range(0, len(frames), EVAL_CHUNK):
        index = torch.as_tensor(frames[start:start + EVAL_CHUNK], device=world.device)
        render = render_texture(
            rasterizer, model, world.index_select(0, index), faces, uvs, cameras(index),
            frames=index if model.has_dynamic else None,
            body_vertices=None if body is None else body.index_select(0, index),
            body_faces=body_faces, antialias=True, topology=topology)
        rgb, mask = images(index)
        pred = (render.color.clamp(0, 1) ** (1 / GAMMA)).cpu().numpy()
        gt = (rgb.to(render.color).clamp(0, 1) ** (1 / GAMMA)).cpu().numpy()
        garment = mask[..., 0].cpu().numpy() > 0.5
        inside = garment & (render.mask[..., 0].cpu().numpy() > 0.5)
        values["psnr_db"].extend(psnr(pred, gt, inside).tolist())
        values["ssim"].extend(ssim(pred, gt, inside).tolist())
        values["coverage"].extend((inside.sum((1, 2)) / np.maximum(garment.sum((1, 2)), 1)
                                   ).tolist())
    return {name: round(float(np.nanmean(v)), 4) for name, v in values.items()}
