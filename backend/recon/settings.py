"""Reconstruction settings and the quality presets.

Every number the trainer uses lives here, with its unit; a preset is a named
``ReconSettings``. ``job.json`` chooses a preset; tests and benchmarks override single
fields with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..errors import ConfigError

METHODS = ("ngd", "displacement")
OPTIMIZERS = ("uniform", "adam")
ENCODINGS = ("frequency", "hash")
TEXTURES = ("none", "static", "dynamic")


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (0 switches a term off; None: the method's default,
    ``METHOD_DEFAULTS``).

    silhouette: MSE between rendered and target garment masks.
    diffuse: NGD's diffuse-image term, 0.65 Huber(0.005) + 0.35 (1 - SSIM); only when
        the capture has normal maps.
    photometric: rendered albedo x lighting vs the frame, inside the target mask; only
        when the capture has no normal maps (or ``photometric_with_normals``). 0.5:
        on the bench skirt (Cycles-rendered cloth, masks + RGB) both methods did best
        on normal consistency at 0.5-1 and ours on Chamfer too; at 2 the fitted
        shading, which cannot match Cycles' lighting, bent the surface (README).
    depth: pairwise depth-ordering hinge; only when the capture has depth maps.
    jacobian: mean squared distance of the Jacobians from the template's, visible faces
        (NGD's regulariser; the displacement baseline has no Jacobians).
    laplacian: squared uniform Laplacian of the canonical vertices relative to the
        template's (keeps the template's smoothness, not a flat sheet): the prior a
        per-vertex model needs (without it the baseline's surface turns jagged,
        normal consistency ~0.77); NGD's Poisson solve needs none.
    edge: squared relative change of edge lengths against the template (stretch).
        Off by default: it fights any flare or stretch the target has.
    collision: garment vertices inside the posed body or closer than
        ``ReconSettings.collision_thickness_m`` to it (``priors.BodyCollision``, by the
        nearest body triangle), squared depth in units of that thickness, mean over
        vertices.
    membrane, bending, gravity: the cloth's energy in joules in each rendered frame
        (``priors.ClothEnergy``: St. Venant-Kirchhoff strain and dihedral bending
        against the template, gravity potential; fabric parameters below), mean over
        the frames; faces and vertices the camera sees count
        ``ReconSettings.prior_visible_weight``.
    occlusion: garment vertices facing the camera that lie behind the body where the
        footage's mask shows garment (a skirt's front passed behind a thigh), pulled
        towards the camera to ``collision_thickness_m`` in front of the body, up to
        ``ReconSettings.occlusion_reach_m`` behind it (``losses.occlusion_order_loss``).
        0.001 measured better on every figure of the bench skirt and t-shirt (RGB).
    velocity, acceleration: squared first and second differences, over a window of
        ``ReconSettings.temporal_window`` consecutive frames, of the pose-dependent
        displacement (each frame's garment minus the static one, rest space), in
        template edge lengths (``priors.temporal_terms``); joint stage only.
    """

    silhouette: float = 1.0
    diffuse: float = 1.0
    photometric: float = 0.5
    depth: float = 0.1
    jacobian: float | None = None
    laplacian: float | None = None
    edge: float = 0.0
    collision: float = 0.0
    membrane: float = 0.0
    bending: float = 0.0
    gravity: float = 0.0
    velocity: float = 0.0
    acceleration: float = 0.0
    occlusion: float = 0.001


METHOD_DEFAULTS: dict[str, dict] = {
    "ngd": {"static_optimizer": "uniform", "lr_static": 0.2, "lr_dynamic": 5e-3,
            "jacobian": 0.02, "laplacian": 0.0},
    "displacement": {"static_optimizer": "adam", "lr_static": 0.1, "lr_dynamic": 1e-2,
                     "jacobian": 0.0, "laplacian": 0.5},
}
"""What a None setting becomes, per method: each method's best values from the same
sweep on the fast-tier synthetic skirt (tests/backend_tier/recon_helpers.py), so the
baseline is compared at its own best, not at ours."""


@dataclass(frozen=True)
class ReconSettings:
    """How a reconstruction runs.

    Attributes:
        method: ``"ngd"`` (Jacobian fields + Poisson) or ``"displacement"`` (the
            per-vertex baseline: static offsets + the same MLP predicting offsets).
        warmup_steps: stage 1, static part only (J_S, albedo, lighting).
        joint_steps: stage 2, static + dynamic parts.
        frames_per_step: frames rendered and optimised together each step.
        resolution_px: longest image side the capture is rendered at in the final
            phase; the first ``coarse_fraction`` of the steps use half of it.
        coarse_fraction: share of all steps rendered at half resolution.
        crop_margin: render each frame's square around its garment mask, grown by this
            fraction of the mask's box on every side, at ``resolution_px`` squared
            (``data.crop_boxes``); None renders whole frames (longest side
            ``resolution_px``). The margin leaves room for a template larger than the
            garment to be seen, and pulled in, by the silhouette term.
        template_edge_m: template mean edge length, metres.
        static_optimizer: ``"uniform"`` (``optim.UniformAdam``: one step size per
            tensor, so weakly constrained faces move less) or ``"adam"``, for the
            static Jacobians / offsets. None: the method's default.
        lr_static: learning rate of the static part: Jacobians (dimensionless) for
            ngd, offsets in template edge lengths for the baseline, so that one rate
            means a comparable relative deformation (``model.GarmentModel``). None:
            the method's default.
        lr_dynamic: Adam learning rate of the dynamic MLPs. None: the method's default.
        lr_appearance: Adam learning rate of albedo and lighting.
        lr_final_fraction: learning rates decay (cosine) to this fraction at the end.
        mlp_width, mlp_depth: hidden layer width and count of the dynamic MLP (NGD: 64 x 2).
        encoding: ``"frequency"`` (sin/cos of face position) or ``"hash"``
            (multiresolution hash grid).
        encoding_levels: frequency octaves, or hash levels (4 octaves measured
            better than 6 for both methods: finer ones let the dynamic part fit
            per-frame noise).
        hash_table_size_log2, hash_features: hash grid table size (2^n) and features
            per level.
        pose_noise: std of Gaussian noise added to the pose code at the start, in units
            of the code's per-component std; decays linearly to 0 at ``noise_end``.
        vertex_noise_m: std of noise added to skinned vertices at the start, metres;
            decays exponentially (x0.01 at ``noise_end``).
        noise_end: fraction of the steps after which there is no noise.
        dynamic_scale: output scale of the dynamic MLP (Jacobian units, or template
            edge lengths for the baseline's offsets).
        use_normals: use the capture's normal maps (NGD's diffuse term) when it has
            them; False reconstructs from masks + RGB only (photometric term).
        photometric_with_normals: also use the photometric term when normals exist.
        body_occlusion: render the body as an occluder so the garment is only compared
            where the camera sees it.
        collision_thickness_m: least distance from the skin the collision term and
            ``resolve_penetrations`` want.
        temporal_smoothing: after training, the rest-space garment (the pose-dependent
            deformation, before skinning) is smoothed over consecutive frames with a
            Gaussian of this std in frames (``postfit``); 0 = off.
        occlusion_reach_m: the occlusion loss leaves vertices further than this behind
            the body alone (``losses.occlusion_order_loss``).
        resolve_penetrations: after training, push garment vertices inside the body
            or nearer than ``collision_thickness_m`` out, neighbours following within
            about an edge ring (``postfit``).
        fabric_stretch_n_m, fabric_poisson_ratio, fabric_bending_n_m,
            fabric_density_kg_m2: the cloth of the membrane, bending and gravity terms:
            Young's modulus times thickness (N/m), Poisson ratio, bending stiffness
            (N m), areal density (kg/m^2). Defaults: the order of a woven cotton
            shirting (~150 g/m^2); only their proportions matter next to the weights.
        prior_visible_weight: the physical and temporal priors' weight on faces and
            vertices the camera sees in that frame (1 where it does not): the image
            terms decide the seen side, the priors the unseen one.
        temporal_window: consecutive frames the velocity and acceleration terms look at
            each step (around one of the step's rendered frames; >= 3).
        remesh: refine the garment during training where the image loss is hungry
            (NGD's adaptive remeshing, ``remeshing``; ours only, not the baseline).
        remesh_interval: steps between remeshing events (the first comes this many
            steps after the warm-up); each event uses the demand gathered since the last.
        remesh_stop: fraction of all steps after which there are no more events.
        remesh_quantile: (first, last) event's demand quantile: faces above it are
            refined (NGD: 0.85 rising to 0.95).
        remesh_min_edge: (first, last) event's shortest edge that is still split, as a
            fraction of ``template_edge_m`` (decays geometrically between them).
        remesh_max_faces_factor: the refined garment has at most this many times the
            template's faces.
        remesh_blend_steps: steps over which the dynamic MLP's inputs move from each
            new face's parent to the face itself after an event (NGD blends the dynamic
            part in over a few epochs so the loss does not jump).
        texture: ``"static"`` (a UV atlas and the static texture ``T_S``, the albedo to
            relight), ``"dynamic"`` (also ``T_D``, per-frame textures that carry the
            footage's lighting) or ``"none"`` (``texture_stage``).
        texture_size: texels a side of the texture (a power of two).
        texture_steps: optimisation steps of the texture fit.
        texture_holdout: keep every N-th frame out of the texture fit and report PSNR/SSIM
            on those frames too (0: fit every frame).
        checkpoint_interval_s: seconds between checkpoints (also on cancel and at the end).
        eval_samples: surface samples per mesh and frame for the ground-truth metrics of
            synthetic captures (NGD's protocol: 10000).
        seed: fixes every random choice.
    """

    method: str = "ngd"
    warmup_steps: int = 150
    joint_steps: int = 350
    frames_per_step: int = 4
    resolution_px: int = 256
    coarse_fraction: float = 0.3
    crop_margin: float | None = 0.25
    template_edge_m: float = 0.03
    static_optimizer: str | None = None
    lr_static: float | None = None
    lr_dynamic: float | None = None
    lr_appearance: float = 0.1
    lr_final_fraction: float = 0.1
    mlp_width: int = 64
    mlp_depth: int = 2
    encoding: str = "frequency"
    encoding_levels: int = 4
    hash_table_size_log2: int = 14
    hash_features: int = 2
    pose_noise: float = 0.3
    vertex_noise_m: float = 0.005
    noise_end: float = 0.6
    dynamic_scale: float = 1.0
    use_normals: bool = True
    photometric_with_normals: bool = False
    body_occlusion: bool = True
    collision_thickness_m: float = 0.004
    temporal_smoothing: float = 1.0
    resolve_penetrations: bool = True
    occlusion_reach_m: float = 0.05
    fabric_stretch_n_m: float = 2000.0
    fabric_poisson_ratio: float = 0.3
    fabric_bending_n_m: float = 5e-5
    fabric_density_kg_m2: float = 0.15
    prior_visible_weight: float = 0.1
    temporal_window: int = 5
    remesh: bool = False
    remesh_interval: int = 50
    remesh_stop: float = 0.8
    remesh_quantile: tuple[float, float] = (0.85, 0.95)
    remesh_min_edge: tuple[float, float] = (0.6, 0.35)
    remesh_max_faces_factor: float = 3.0
    remesh_blend_steps: int = 20
    losses: LossWeights = LossWeights()
    texture: str = "static"
    texture_size: int = 1024
    texture_steps: int = 300
    texture_holdout: int = 0
    checkpoint_interval_s: float = 120.0
    eval_samples: int = 10000
    seed: int = 0

    def __post_init__(self):
        problems = []
        if self.method not in METHODS:
            problems.append(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if self.static_optimizer not in (None, *OPTIMIZERS):
            problems.append(f"static_optimizer must be one of {', '.join(OPTIMIZERS)}; "
                            f"got {self.static_optimizer!r}")
        if self.encoding not in ENCODINGS:
            problems.append(f"encoding must be one of {', '.join(ENCODINGS)}; "
                            f"got {self.encoding!r}")
        for name in ("warmup_steps", "joint_steps"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0; got {getattr(self, name)}")
        if self.warmup_steps + self.joint_steps < 1:
            problems.append("warmup_steps + joint_steps must be >= 1")
        for name in ("frames_per_step", "mlp_width", "encoding_levels"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1; got {getattr(self, name)}")
        for name in ("remesh_quantile", "remesh_min_edge"):
            value = getattr(self, name)
            try:
                pair = tuple(float(x) for x in value)
            except (TypeError, ValueError):
                pair = ()
            ok = len(pair) == 2 and all(math.isfinite(x) for x in pair) and (
                all(0 <= x < 1 for x in pair) if name == "remesh_quantile"
                else all(x > 0 for x in pair))
            if not ok:
                bounds = "in [0, 1)" if name == "remesh_quantile" else "> 0"
                problems.append(f"{name} must be two numbers {bounds} (first, last event); "
                                f"got {value!r}")
            else:
                object.__setattr__(self, name, pair)   # JSON gives lists
        if self.texture not in TEXTURES:
            problems.append(f"texture must be one of {', '.join(TEXTURES)}; got {self.texture!r}")
        if not (isinstance(self.texture_size, int) and 64 <= self.texture_size <= 8192
                and self.texture_size & (self.texture_size - 1) == 0):
            problems.append("texture_size must be a power of two in [64, 8192]; got "
                            f"{self.texture_size!r}")
        if self.texture_steps < 1:
            problems.append(f"texture_steps must be >= 1; got {self.texture_steps}")
        if self.texture_holdout < 0:
            problems.append(f"texture_holdout must be >= 0; got {self.texture_holdout}")
        if self.temporal_window < 3:
            problems.append(f"temporal_window must be >= 3; got {self.temporal_window}")
        if not 0 <= self.fabric_poisson_ratio < 0.5:
            problems.append("fabric_poisson_ratio must be in [0, 0.5); got "
                            f"{self.fabric_poisson_ratio!r}")
        if not (math.isfinite(self.prior_visible_weight) and self.prior_visible_weight >= 0):
            problems.append("prior_visible_weight must be >= 0; got "
                            f"{self.prior_visible_weight!r}")
        for name in ("remesh_interval", "remesh_blend_steps"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1; got {getattr(self, name)}")
        if not (math.isfinite(self.remesh_max_faces_factor) and self.remesh_max_faces_factor >= 1):
            problems.append("remesh_max_faces_factor must be >= 1; got "
                            f"{self.remesh_max_faces_factor!r}")
        if self.crop_margin is not None and not (math.isfinite(self.crop_margin)
                                                 and 0 <= self.crop_margin <= 2):
            problems.append(f"crop_margin must be None or in [0, 2]; got {self.crop_margin!r}")
        if self.resolution_px < 16:
            problems.append(f"resolution_px must be >= 16; got {self.resolution_px}")
        for name in ("coarse_fraction", "noise_end", "lr_final_fraction", "remesh_stop"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be in [0, 1]; got {getattr(self, name)}")
        for name in ("template_edge_m", "lr_static", "lr_dynamic", "lr_appearance",
                     "checkpoint_interval_s", "dynamic_scale", "collision_thickness_m",
                     "occlusion_reach_m", "fabric_stretch_n_m", "fabric_bending_n_m",
                     "fabric_density_kg_m2"):
            value = getattr(self, name)
            if value is None and name in ("lr_static", "lr_dynamic"):
                continue
            if not (math.isfinite(value) and value > 0):
                problems.append(f"{name} must be > 0; got {value!r}")
        smoothing = self.temporal_smoothing
        if isinstance(smoothing, bool) or not (isinstance(smoothing, (int, float))
                                               and math.isfinite(smoothing) and smoothing >= 0):
            problems.append(f"temporal_smoothing must be >= 0 frames; got {smoothing!r}")
        if problems:
            raise ConfigError("reconstruction settings: " + "; ".join(problems))

    def resolved(self) -> ReconSettings:
        """A copy with every None (``static_optimizer``, ``lr_static``, ``lr_dynamic``,
        ``losses.jacobian``, ``losses.laplacian``) replaced by the method's default
        (``METHOD_DEFAULTS``). The trainer runs on this; keeping the Nones until then
        lets ``dataclasses.replace(settings, method=...)`` switch every default along."""
        defaults = METHOD_DEFAULTS[self.method]
        fields = {name: defaults[name] for name in ("static_optimizer", "lr_static", "lr_dynamic")
                  if getattr(self, name) is None}
        losses = {name: defaults[name] for name in ("jacobian", "laplacian")
                  if getattr(self.losses, name) is None}
        return dataclasses.replace(self, **fields,
                                   losses=dataclasses.replace(self.losses, **losses))

    @property
    def total_steps(self) -> int:
        return self.warmup_steps + self.joint_steps


PRIOR_LOSSES = ("collision", "membrane", "bending", "gravity", "velocity", "acceleration",
                "occlusion")
"""The physical and temporal priors as training losses (``LossWeights``). Only
``occlusion`` is on by default; each of the others measured worse on the bench
skirt's unseen half than the same prior applied after training (README)."""


def with_priors(settings: ReconSettings, on: bool = True) -> ReconSettings:
    """``settings`` with the default priors on (post-fit ``temporal_smoothing`` and
    ``resolve_penetrations``, the ``occlusion`` loss; values already set are kept), or
    with every prior off: those and all the ``PRIOR_LOSSES`` weights."""
    if on:
        default = ReconSettings()
        return dataclasses.replace(
            settings, temporal_smoothing=settings.temporal_smoothing or default.temporal_smoothing,
            resolve_penetrations=True,
            losses=dataclasses.replace(settings.losses, occlusion=settings.losses.occlusion
                                       or default.losses.occlusion))
    return dataclasses.replace(settings, temporal_smoothing=0.0, resolve_penetrations=False,
                               losses=dataclasses.replace(settings.losses,
                                                          **dict.fromkeys(PRIOR_LOSSES, 0.0)))


def priors_on(settings: ReconSettings) -> bool:
    """True when any physical or temporal prior is on, post-fit or as a loss."""
    return (settings.resolve_penetrations or settings.temporal_smoothing > 0
            or any(getattr(settings.losses, name) > 0 for name in PRIOR_LOSSES))


PRESETS: dict[str, ReconSettings] = {
    "draft": ReconSettings(warmup_steps=80, joint_steps=170, resolution_px=192,
                           template_edge_m=0.035, frames_per_step=4, texture_size=512,
                           texture_steps=120),
    "standard": ReconSettings(),
    "high": ReconSettings(warmup_steps=400, joint_steps=1100, resolution_px=512,
                          template_edge_m=0.018, frames_per_step=6, texture_size=2048,
                          texture_steps=600),
}
"""Quality presets; measured times and quality are in the README."""


def preset(name: str, **overrides) -> ReconSettings:
    """The preset called ``name`` with some fields replaced; names the bad key."""
    if name not in PRESETS:
        raise ConfigError(f"unknown quality preset {name!r}; expected one of {', '.join(PRESETS)}")
    known = {f.name for f in dataclasses.fields(ReconSettings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown reconstruction setting(s) {', '.join(unknown)}")
    return dataclasses.replace(PRESETS[name], **overrides)
