"""The optimisation loop: stages, schedules, noise, progress, cancel and checkpoints.

Two stages (NGD): ``warmup`` optimises the static part only (J_S or static offsets,
albedo, lighting), ``joint`` adds the dynamic MLP. Each step renders
``frames_per_step`` random frames; the first ``coarse_fraction`` of the steps render at
half resolution. Pose-code noise decays linearly and vertex noise exponentially to
zero at ``noise_end``, so early steps fit the global shape (NGD).

With ``settings.remesh`` (ours only), the garment is refined every
``remesh_interval`` steps after the warm-up where the image loss's gradient per pixel
was largest since the last event (``remeshing``, ``Trainer.remesh``); training goes on
on the refined mesh with the same static shape, MLP, albedo and optimiser moments.

A checkpoint (model, optimisers, step, RNG, the refined mesh) is written every
``checkpoint_interval_s``, on cancel and at the end; a trainer created on the same
output folder with the same inputs continues from it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..eval.metrics import mask_iou
from ..fileio import atomic_write
from ..jobs.cancel import CancelToken, JobCancelled
from ..jobs.events import EventStream
from ..mesh.templates import GarmentTemplate
from ..render.passes import Lighting
from . import losses as L
from .data import CaptureData
from .errors import ReconError
from .optim import UniformAdam
from .postfit import push_out_of_body, smooth_over_frames
from .priors import BodyCollision, ClothEnergy, temporal_terms
from .remeshing import (
    FaceDemand,
    event_schedule,
    max_faces,
    parent_gather,
    refined_template,
    remesh_steps,
    select_faces,
    transferred_static_jacobians,
    vertex_interpolate,
)
from .render import combined_faces, render_garment
from .settings import ReconSettings

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "state.pt"
LOSS_REPORT_EVERY = 10
"""Steps between reading the loss back (a device sync) for progress events."""
OUTCOME_CHUNK = 16
"""Frames evaluated (and rendered for the mask IoU) together at the end."""


@dataclass
class TrainOutcome:
    """What training produced: per-frame world vertices ``(T, V, 3)`` and the static
    canonical mesh ``(V, 3)`` (numpy float32, metres), their faces ``(F, 3)`` int32 (the
    template's, or the refined mesh's after remeshing), per-vertex albedo ``(V, 3)`` or
    None, the loss history (every ``LOSS_REPORT_EVERY`` steps), training seconds, and
    ``mask_iou`` ``(T,)`` float64: IoU of the result's rendered garment mask (body in
    front where it occludes) with the capture's mask, per frame, at the final render
    resolution (both binarised at 0.5) -- a fit measure that needs no ground truth.
    ``remesh_events``: one dict per remeshing event (step, vertex and face counts
    before and after, faces selected). ``postfit``: the post-fit priors' settings and
    statistics (``postfit.push_out_of_body``)."""

    canonical: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    albedo: np.ndarray | None
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: int | None = None
    mask_iou: np.ndarray | None = None
    remesh_events: list[dict] = field(default_factory=list)
    postfit: dict = field(default_factory=dict)


class Appearance(torch.nn.Module):
    """Per-vertex albedo and the lighting of the photometric term (captures without
    normal maps): ambient, one world-fixed directional light (a room or the sun while
    the camera moves) and second-order spherical harmonics fixed to the camera (light
    that moves with it: a headlight, an on-camera flash, and the view-dependent part
    the other two miss). All learned; the SH start at zero."""

    def __init__(self, vertex_count: int, dtype, device):
        super().__init__()
        self.albedo_logit = torch.nn.Parameter(torch.zeros(vertex_count, 3, dtype=dtype,
                                                           device=device))
        self.ambient = torch.nn.Parameter(torch.full((3,), 0.6, dtype=dtype, device=device))
        self.light_direction = torch.nn.Parameter(torch.tensor([0.3, -0.5, 0.8], dtype=dtype,
                                                               device=device))
        self.light_color = torch.nn.Parameter(torch.full((3,), 0.6, dtype=dtype, device=device))
        self.camera_sh = torch.nn.Parameter(torch.zeros(9, 3, dtype=dtype, device=device))

    @property
    def albedo(self) -> torch.Tensor:
        return torch.sigmoid(self.albedo_logit)

    def lighting(self, rotations: torch.Tensor) -> Lighting:
        """Camera-frame lighting for world-to-camera rotations ``(B, 3, 3)``."""
        d = self.light_direction / self.light_direction.norm().clamp_min(1e-6)
        return Lighting(ambient=self.ambient.abs(), direction=rotations @ d,
                        color=self.light_color.abs(), sh=self.camera_sh)


class Trainer:
    """Optimise ``model`` on ``data``; see the module docstring.

    Args:
        model: a ``JacobianGarment`` or ``DisplacementGarment`` on the device.
        data: the loaded capture; its ``levels`` must hold ``settings.resolution_px``
            and half of it.
        rasterizer: from ``backend.render.get_rasterizer``.
        output: the result folder; checkpoints go to ``output/checkpoint``.
        events, cancel: the job's progress stream and cancel token.
        fingerprint: identifies the inputs (capture, template); a checkpoint made with
            another fingerprint is refused rather than silently mixed in.
    """

    def __init__(self, model, data: CaptureData, settings: ReconSettings, rasterizer,
                 output: Path, events: EventStream | None = None,
                 cancel: CancelToken | None = None, fingerprint: str = ""):
        settings = settings.resolved()
        self.model, self.data, self.settings = model, data, settings
        self.rasterizer = rasterizer
        self.output = Path(output)
        self.events = events
        self.cancel = cancel or CancelToken(None)
        self.fingerprint = _hash(fingerprint + json.dumps(dataclasses.asdict(settings),
                                                          sort_keys=True))
        self.generator = torch.Generator(device="cpu").manual_seed(settings.seed)
        normals = data.has_normals and settings.use_normals
        self.use_normals = normals and settings.losses.diffuse > 0
        self.use_photometric = settings.losses.photometric > 0 and (
            not normals or settings.photometric_with_normals)
        self.use_depth = data.has_depth and settings.losses.depth > 0
        self.collision = (BodyCollision(data.body_vertices, data.body_faces,
                                        settings.collision_thickness_m)
                          if settings.losses.collision > 0 else None)
        self.body_faces = data.body_faces if settings.body_occlusion else None
        self.initial_face_count = int(model.faces.shape[0])
        self.remesh_steps = remesh_steps(settings)
        self.remesh_events: list[dict] = []
        self._demand_images = None
        self._use_mesh(model)
        self._make_optimisers()
        self.step = 0
        self.history: list[dict] = []
        self.seconds = 0.0
        self.resumed_from = None
        self._load_checkpoint()

    def _use_mesh(self, model) -> None:
        """Everything built once per garment topology."""
        self.model = model
        self.regulariser = L.MeshRegulariser(model.template_vertices, model.faces)
        s, weights = self.settings, self.settings.losses
        self.cloth = ClothEnergy(
            model.template_vertices, model.faces, stretch_n_m=s.fabric_stretch_n_m,
            poisson_ratio=s.fabric_poisson_ratio, bending_n_m=s.fabric_bending_n_m,
            density_kg_m2=s.fabric_density_kg_m2) \
            if max(weights.membrane, weights.bending, weights.gravity) > 0 else None
        faces = combined_faces(model.faces.to(torch.int32), self.body_faces,
                               model.template_vertices.shape[0])
        self.topology = self.rasterizer.topology(faces)
        self.faces32 = model.faces.to(torch.int32).contiguous()
        self.demand = FaceDemand(int(model.faces.shape[0]), model.faces.device) \
            if self.remesh_steps else None

    def _make_optimisers(self) -> None:
        """Fresh appearance and optimisers for the current model (states start empty)."""
        s, model = self.settings, self.model
        device, dtype = model.template_vertices.device, model.template_vertices.dtype
        self.appearance = Appearance(model.template_vertices.shape[0], dtype, device) \
            if self.use_photometric else None
        static_opt = UniformAdam if s.static_optimizer == "uniform" else torch.optim.Adam
        self.static_opt = static_opt(model.static_parameters(), lr=s.lr_static)
        self.dynamic_opt = torch.optim.Adam(model.dynamic_parameters(), lr=s.lr_dynamic)
        self.appearance_opt = (torch.optim.Adam(self.appearance.parameters(),
                                                lr=s.lr_appearance)
                               if self.appearance is not None else None)

    # -- schedules -------------------------------------------------------------------

    def _noise(self, step: int) -> tuple[float, float]:
        s = self.settings
        end = max(s.noise_end * s.total_steps, 1)
        progress = step / end
        if progress >= 1:
            return 0.0, 0.0
        return s.pose_noise * (1 - progress), s.vertex_noise_m * 0.01 ** progress

    def _resolution(self, step: int) -> int:
        s = self.settings
        coarse = step < s.coarse_fraction * s.total_steps
        return max(16, s.resolution_px // 2) if coarse else s.resolution_px

    def _set_learning_rates(self, step: int) -> None:
        s = self.settings
        factor = L.cosine_decay(step, s.total_steps, s.lr_final_fraction)
        for opt, lr in ((self.static_opt, s.lr_static), (self.dynamic_opt, s.lr_dynamic),
                        (self.appearance_opt, s.lr_appearance)):
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = lr * factor

    # -- one step ----------------------------------------------------------------------

    def losses(self, frames: torch.Tensor, resolution: int, dynamic: bool,
               pose_noise: float = 0.0, vertex_noise_m: float = 0.0,
               demand: bool = False) -> dict[str, torch.Tensor]:
        """Every active loss term for the frame indices ``frames`` (unweighted); terms
        whose weight is 0 are not computed. With ``demand``, the rendered images of the
        image terms keep their gradient for ``FaceDemand`` (``self._demand_images``)."""
        data, model = self.data, self.model
        targets = data.levels[resolution]
        deformation = model(frames if dynamic else None, pose_noise, self.generator)
        canonical = deformation.canonical
        world = skinned = model.world(canonical, data.bone_transforms.index_select(0, frames))
        if vertex_noise_m > 0:
            world = world + vertex_noise_m * torch.randn(world.shape, generator=self.generator
                                                         ).to(world)
        camera = targets.cameras(frames)
        body = data.body_vertices.index_select(0, frames) if self.body_faces is not None else None
        render = render_garment(
            self.rasterizer, world, self.faces32, camera, body, self.body_faces,
            albedo=self.appearance.albedo if self.appearance is not None else None,
            lighting=self.appearance.lighting(camera.R) if self.appearance is not None else None,
            topology=self.topology)
        target_mask = targets.mask.index_select(0, frames)
        if demand:
            images = [image for image, used in ((render.diffuse, self.use_normals),
                                                (render.color, self.use_photometric)) if used]
            for image in images:
                image.retain_grad()
            self._demand_images = (images, render.rast, target_mask)
        terms = {"silhouette": L.silhouette_loss(render.mask, target_mask)}
        if self.use_normals:
            terms["diffuse"] = L.diffuse_loss(render.diffuse, render.mask,
                                              targets.diffuse.index_select(0, frames))
        if self.use_photometric:
            terms["photometric"] = L.photometric_loss(
                render.color, render.mask, targets.rgb.index_select(0, frames), target_mask)
        if self.use_depth:
            terms["depth"] = L.depth_ranking_loss(
                render.depth, render.mask, targets.depth.index_select(0, frames), target_mask,
                generator=self.generator)
        if self.collision is not None:
            terms["collision"] = self.collision(skinned, frames)
        weights = self.settings.losses
        if weights.occlusion > 0 and self.body_faces is not None:
            terms["occlusion"] = L.occlusion_order_loss(
                world, self.model.faces, camera, render.rast, render.depth, target_mask,
                self.settings.collision_thickness_m, self.settings.occlusion_reach_m)
        terms.update(self._prior_terms(frames, skinned, render, dynamic))
        if weights.jacobian > 0:
            visible = render.visible_faces(self.faces32.shape[0])
            terms["jacobian"] = model.regulariser(deformation, visible)
        if weights.laplacian > 0:
            terms["laplacian"] = self.regulariser.laplacian_loss(canonical)
        if weights.edge > 0:
            terms["edge"] = self.regulariser.edge_loss(canonical)
        return terms

    def _prior_terms(self, frames: torch.Tensor, world: torch.Tensor, render,
                     dynamic: bool) -> dict[str, torch.Tensor]:
        """The physical and temporal priors (``priors``) of the rendered ``frames``,
        weighted down where the camera sees the garment in that frame."""
        s, weights = self.settings, self.settings.losses
        temporal = dynamic and max(weights.velocity, weights.acceleration) > 0
        if self.cloth is None and not temporal:
            return {}
        face_count = self.faces32.shape[0]
        seen = render.visible_faces_per_view(face_count)                  # (B, F)
        low = s.prior_visible_weight
        face_weights = torch.where(seen, low, 1.0).to(world)
        vertex_seen = torch.zeros(world.shape[:2], dtype=world.dtype, device=world.device)
        faces = self.model.faces
        vertex_seen.scatter_reduce_(1, faces.reshape(1, -1).expand(len(seen), -1),
                                    seen.to(world).repeat_interleave(3, dim=1), "amax")
        vertex_weights = 1.0 - (1.0 - low) * vertex_seen
        terms = {}
        if self.cloth is not None:
            for name in ("membrane", "bending"):
                if getattr(weights, name) > 0:
                    terms[name] = getattr(self.cloth, name)(world, face_weights).mean()
            if weights.gravity > 0:
                terms["gravity"] = self.cloth.gravity(world, vertex_weights).mean()
        if temporal:
            count = self.data.frame_count
            width = min(s.temporal_window, count)
            if width >= 3:
                start = min(max(int(frames[0]) - width // 2, 0), count - width)
                window = torch.arange(start, start + width, device=frames.device)
                displacement = self.model.canonical(window) - self.model.canonical(None)
                velocity, acceleration = temporal_terms(displacement, self.model.unit_m,
                                                        vertex_weights[0])
                terms["velocity"], terms["acceleration"] = velocity, acceleration
        return terms

    def weighted(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        weights = self.settings.losses
        return sum(getattr(weights, name) * value for name, value in terms.items())

    def _train_step(self, step: int) -> dict[str, torch.Tensor]:
        s = self.settings
        dynamic = step >= s.warmup_steps
        count = min(s.frames_per_step, self.data.frame_count)
        frames = torch.randperm(self.data.frame_count, generator=self.generator)[:count]
        frames = frames.to(self.model.pose_codes.device)
        pose_noise, vertex_noise = self._noise(step)
        self._set_learning_rates(step)
        optimisers = [self.static_opt] + ([self.dynamic_opt] if dynamic else []) + (
            [self.appearance_opt] if self.appearance_opt is not None else [])
        for opt in optimisers:
            opt.zero_grad(set_to_none=True)
        if self.remesh_events:        # (also right after a resume: blend is not saved)
            since = step - self.remesh_events[-1]["step"]
            self.model.blend = min(1.0, since / max(s.remesh_blend_steps, 1))
        collect = (self.demand is not None
                   and s.warmup_steps <= step < self.remesh_steps[-1])
        terms = self.losses(frames, self._resolution(step), dynamic, pose_noise, vertex_noise,
                            demand=collect)
        total = self.weighted(terms)
        total.backward()
        if collect:
            images, rast, target_mask = self._demand_images
            self._demand_images = None
            grads = [image.grad for image in images if image.grad is not None]
            if grads:
                self.demand.add(sum(g.abs().sum(-1, keepdim=True) for g in grads), rast,
                                target_mask)
        for opt in optimisers:
            opt.step()
        terms = {name: value.detach() for name, value in terms.items()}
        terms["total"] = total.detach()
        return terms

    # -- the loop ------------------------------------------------------------------------

    def train(self) -> TrainOutcome:
        s = self.settings
        total = s.total_steps
        started = time.monotonic()
        last_checkpoint = started
        seconds_before = self.seconds
        try:
            while self.step < total:
                self.cancel.check()
                stage = "warmup" if self.step < s.warmup_steps else "joint"
                terms = self._train_step(self.step)
                self.step += 1
                if self.step in self.remesh_steps:
                    self.remesh()
                self.seconds = seconds_before + time.monotonic() - started
                if self.step % LOSS_REPORT_EVERY == 0 or self.step == total:
                    record = {name: float(value) for name, value in terms.items()}
                    if not math.isfinite(record["total"]):
                        raise ReconError(f"the optimisation diverged at step {self.step} "
                                         f"(loss {record['total']})",
                                         hint="try a lower learning rate or another preset")
                    self.history.append({"step": self.step, **record})
                    if self.events is not None:
                        self.events.progress(stage, self.step, total, loss=record["total"])
                elif self.events is not None:
                    self.events.progress(stage, self.step, total)
                if time.monotonic() - last_checkpoint >= s.checkpoint_interval_s:
                    self.save_checkpoint()
                    last_checkpoint = time.monotonic()
        except JobCancelled:
            self.save_checkpoint()
            raise
        self.save_checkpoint()
        return self.outcome()

    @torch.no_grad()
    def outcome(self) -> TrainOutcome:
        """The garment at every frame without noise, and the static canonical mesh,
        after the post-fit priors (``postfit``: temporal smoothing of the rest-space
        deformation, garment pushed out of the body)."""
        model, data, s = self.model, self.data, self.settings
        chunks = [torch.arange(start, min(start + OUTCOME_CHUNK, data.frame_count),
                               device=model.pose_codes.device)
                  for start in range(0, data.frame_count, OUTCOME_CHUNK)]
        if s.joint_steps > 0:
            rest = smooth_over_frames(torch.cat([model.canonical(f) for f in chunks]),
                                      s.temporal_smoothing)
        else:
            rest = model.canonical(None).expand(data.frame_count, -1, -1)
        world = torch.cat([model.world(rest[f], data.bone_transforms.index_select(0, f))
                           for f in chunks])
        postfit = {"temporal_smoothing": s.temporal_smoothing if s.joint_steps > 0 else 0.0}
        if s.resolve_penetrations:
            collision = self.collision or BodyCollision(data.body_vertices, data.body_faces,
                                                        s.collision_thickness_m)

            def progress(done: int, total: int) -> None:
                self.cancel.check()
                if self.events is not None:
                    self.events.progress("post-fit", done, total)

            moved, stats = push_out_of_body(world.cpu().numpy(), model.faces.cpu().numpy(),
                                            collision, progress=progress)
            world = torch.as_tensor(moved).to(world)
            postfit.update(stats)
        targets = data.levels[s.resolution_px]
        ious = []
        for frames in chunks:
            body = (data.body_vertices.index_select(0, frames)
                    if self.body_faces is not None else None)
            render = render_garment(self.rasterizer, world[frames], self.faces32,
                                    targets.cameras(frames), body, self.body_faces,
                                    topology=self.topology)
            ious.append(mask_iou(render.mask[..., 0].cpu().numpy(),
                                 targets.mask.index_select(0, frames)[..., 0].cpu().numpy()))
        canonical = model.canonical(None)[0]
        albedo = self.appearance.albedo.cpu().numpy() if self.appearance is not None else None
        return TrainOutcome(canonical=canonical.float().cpu().numpy(),
                            vertices=world.float().cpu().numpy(),
                            faces=model.faces.cpu().numpy().astype(np.int32), albedo=albedo,
                            remesh_events=list(self.remesh_events),
                            history=list(self.history), seconds=self.seconds,
                            resumed_from=self.resumed_from, mask_iou=np.concatenate(ious),
                            postfit=postfit)

    # -- remeshing -----------------------------------------------------------------------

    def remesh(self) -> dict | None:
        """One remeshing event (``remeshing``): refine the faces whose image-loss demand
        since the last event is above this event's quantile, then continue on the
        refined garment with the same static shape, dynamic MLP, albedo and optimiser
        moments. Returns the event's record, or None when nothing was refined."""
        s, model = self.settings, self.model
        index = self.remesh_steps.index(self.step) if self.step in self.remesh_steps else 0
        quantile, min_edge = event_schedule(s, index, len(self.remesh_steps), model.unit_m)
        budget = max_faces(s, self.initial_face_count)
        selected = select_faces(self.demand.mean(), self.demand.seen(), quantile)
        self.demand = FaceDemand(int(model.faces.shape[0]), model.faces.device)
        if not selected.any() or model.faces.shape[0] >= budget:
            return None
        started = time.monotonic()
        refined, result = refined_template(model.template, selected, min_edge, budget)
        if result.split_edges == 0:
            return None
        with torch.no_grad():
            canonical = vertex_interpolate(model.canonical(None)[0], result)
        new = self._rebuilt_model(refined)
        new.inherit(model, torch.as_tensor(result.face_parent, device=new.faces.device))
        with torch.no_grad():
            jacobians, offset = transferred_static_jacobians(new.poisson, canonical)
            new.static_jacobians.copy_(jacobians)
            new.static_translation.copy_(offset / new.unit_m)
        _swap_parameter(self.static_opt, model.static_jacobians, new.static_jacobians,
                        lambda value: parent_gather(value, result))
        if self.appearance is not None:
            old = self.appearance.albedo_logit
            fresh = torch.nn.Parameter(vertex_interpolate(old.detach(), result))
            self.appearance.albedo_logit = fresh
            _swap_parameter(self.appearance_opt, old, fresh,
                            lambda value: vertex_interpolate(value, result))
        self._use_mesh(new)
        record = {"step": self.step, "vertices": [int(model.template_vertices.shape[0]),
                                                  int(new.template_vertices.shape[0])],
                  "faces": [int(model.faces.shape[0]), int(new.faces.shape[0])],
                  "selected": int(selected.sum()), "split_edges": result.split_edges,
                  "flipped_edges": result.flipped_edges, "quantile": round(quantile, 4),
                  "min_edge_m": round(min_edge, 5),
                  "seconds": round(time.monotonic() - started, 3)}
        self.remesh_events.append(record)
        log.info("remesh at step %d: %d -> %d vertices, %d -> %d faces", self.step,
                 *record["vertices"], *record["faces"])
        if self.events is not None:
            self.events.info(f"remeshed at step {self.step}: {record['vertices'][0]} -> "
                             f"{record['vertices'][1]} vertices, {record['faces'][0]} -> "
                             f"{record['faces'][1]} faces", **record)
        return record

    def _rebuilt_model(self, template: GarmentTemplate):
        """A ``JacobianGarment`` on ``template`` that continues the current one: same
        frame (centre, extent, length unit), the same dynamic MLP and translation
        parameters (so the dynamic optimiser keeps them); static Jacobians at rest."""
        from ..mesh.poisson import PoissonSystem
        from .model import JacobianGarment

        old = self.model
        device = old.template_vertices.device
        poisson = PoissonSystem(template.vertices, template.faces, device=device,
                                dtype=old.template_vertices.dtype)
        new = JacobianGarment(template, poisson, old.pose_codes, old.bone_count, self.settings,
                              frame=old)
        new.encoding, new.mlp, new.shift = old.encoding, old.mlp, old.shift
        new.static_translation = old.static_translation
        return new

    def _mesh_state(self) -> dict | None:
        """The refined garment's template (for the checkpoint), None before remeshing."""
        if not self.remesh_events:
            return None
        t = self.model.template
        return {"vertices": t.vertices, "faces": t.faces, "weight_indices": t.weight_indices,
                "weight_values": t.weight_values, "garment_type": t.garment_type,
                "source": t.source}

    # -- checkpoints -----------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.output / "checkpoint" / CHECKPOINT_FILE

    def save_checkpoint(self) -> Path:
        state = {
            "fingerprint": self.fingerprint,
            "step": self.step,
            "seconds": self.seconds,
            "history": self.history,
            "model": self.model.state_dict(),
            "appearance": self.appearance.state_dict() if self.appearance is not None else None,
            "static_opt": self.static_opt.state_dict(),
            "dynamic_opt": self.dynamic_opt.state_dict(),
            "appearance_opt": (self.appearance_opt.state_dict()
                               if self.appearance_opt is not None else None),
            "generator": self.generator.get_state(),
            "remesh_events": self.remesh_events,
            "mesh": self._mesh_state(),
            "demand": (None if self.demand is None else
                       {"total": self.demand.total, "pixels": self.demand.pixels,
                        "steps": self.demand.steps}),
        }
        with atomic_write(self.checkpoint_path) as tmp:
            torch.save(state, tmp)
        log.info("checkpoint at step %d: %s", self.step, self.checkpoint_path)
        return self.checkpoint_path

    def _load_checkpoint(self) -> None:
        path = self.checkpoint_path
        if not path.is_file():
            return
        try:
            state = torch.load(path, map_location=self.model.template_vertices.device,
                               weights_only=False)
        except Exception as exc:  # a truncated or foreign file
            raise ReconError(f"{path}: cannot read the checkpoint ({exc})",
                             hint="delete the checkpoint folder to start over") from exc
        if state.get("fingerprint") != self.fingerprint:
            raise ReconError(
                f"{path}: this checkpoint belongs to another capture or other settings",
                hint="use a new output folder, or delete its checkpoint folder to start over")
        mesh = state.get("mesh")
        if mesh is not None:
            # the run was remeshed: rebuild the refined garment before loading into it
            self._use_mesh(self._rebuilt_model(GarmentTemplate(**mesh)))
            self._make_optimisers()
        self.remesh_events = list(state.get("remesh_events", []))
        demand = state.get("demand")
        if demand is not None and self.demand is not None:
            self.demand.total.copy_(demand["total"])
            self.demand.pixels.copy_(demand["pixels"])
            self.demand.steps = int(demand["steps"])
        self.model.load_state_dict(state["model"])
        if self.appearance is not None:
            self.appearance.load_state_dict(state["appearance"])
            self.appearance_opt.load_state_dict(state["appearance_opt"])
        self.static_opt.load_state_dict(state["static_opt"])
        self.dynamic_opt.load_state_dict(state["dynamic_opt"])
        self.generator.set_state(state["generator"])
        self.step = int(state["step"])
        self.seconds = float(state["seconds"])
        self.history = list(state["history"])
        self.resumed_from = self.step
        log.info("resumed from %s at step %d", path, self.step)
        if self.events is not None:
            self.events.info(f"resuming from the checkpoint at step {self.step}",
                             step=self.step)


def _swap_parameter(optimiser: torch.optim.Optimizer, old: torch.nn.Parameter,
                    new: torch.nn.Parameter, transfer) -> None:
    """Put ``new`` in ``old``'s place in ``optimiser``; its per-element state (moment
    estimates) goes through ``transfer`` (old-shaped tensor -> new-shaped one)."""
    for group in optimiser.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]
    state = optimiser.state.pop(old, None)
    if state is not None:
        optimiser.state[new] = {key: transfer(value) if torch.is_tensor(value)
                                and value.shape == old.shape else value
                                for key, value in state.items()}


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
