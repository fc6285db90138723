"""The garment's appearance (NGD): a static UV texture ``T_S`` plus a dynamic texture
``T_D`` on the pose, fitted to the footage of an already reconstructed garment.

Model (``GarmentTexture``): ``T_S`` is an ``S x S`` linear-RGB image in ``[0, 1]``;
``T_D(u, v, code)`` is a small MLP on a 2D multiresolution hash encoding of the UV
coordinates and the frame's pose code, giving a residual RGB in
``[-dynamic_max, dynamic_max]`` (tanh) whose last layer starts at zero, so ``T_D``
starts as no change. A pixel's colour is ``clamp(T_S(uv) + T_D(uv, code), 0, 1)``,
``T_S`` read with trilinear mipmapping (the UV footprint of the pixel picks the level)
and ``T_D`` evaluated at the pixel's own UV, for covered pixels only.

Fitting (``fit_texture``): the geometry is fixed, so every frame is rasterised once and
its garment pixels (UV, UV derivatives, target colour, loss weight) are cached; each
step samples the texture for a few frames and minimises NGD's relative L2,
``|pred - target|^2 / (pred.detach()^2 + 0.01)``, plus ``ssim_weight * (1 - SSIM)``,
inside the rendered garment AND the target mask (eroded past the silhouette, whose
pixels mix in the background), with Adam. ``T_S`` starts as the footage projected into
the texture (mean colour per texel, holes filled from coarser levels), is kept in
``[0, 1]`` by projection after each step, and is fitted alone for the first
``dynamic_start`` of the steps (NGD's warm-up); the pose code gets Gaussian noise that
decays linearly to zero at ``noise_end``, as in the geometry trainer.

Conventions: UVs are Blender's (``backend.mesh.uv``: ``v`` up, ``(0, 0)`` bottom left),
per face corner ``(F, 3, 2)``. ``T_S`` is stored as an image, row 0 at the top
(``v = 1``), like ``coverage_mask`` and PNG files; ``backend.render.texture`` has
``v = 0`` at row 0, so it is sampled at ``(u, 1 - v)``. Cameras and frames as in
``backend.render.camera`` (OpenCV K, world-to-camera R|t, images top row first). Colours
are linear RGB in ``[0, 1]`` (the capture's sRGB PNGs ** 2.2, ``data.py``); the baked
PNG-ready images are 8-bit with the same 2.2 gamma.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..jobs.cancel import JobCancelled
from ..mesh.uv import MAX_TEXTURE_SIZE, MIN_TEXTURE_SIZE, UVAtlas, coverage_mask, dilate
from ..render.camera import Camera
from ..render.context import get_rasterizer
from ..render.texture import texture
from . import losses as L
from .encoding import HashEncoding
from .errors import ReconError
from .render import combined_faces

log = logging.getLogger(__name__)

GAMMA = 2.2
"""Linear RGB = (8-bit value / 255) ** GAMMA, as ``data.py`` decodes the frames."""
RELATIVE_L2_EPS = 0.01
"""NGD's relative L2: ``|pred - target|^2 / (pred.detach()^2 + RELATIVE_L2_EPS)``."""
INITS = ("backproject", "mean")
BAKE_CHUNK = 1 << 18
"""Texels per dynamic-texture evaluation when baking (bounds the working memory)."""


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class TextureSettings:
    """How the texture is modelled and fitted.

    Attributes:
        texture_size: ``S``, texels a side of ``T_S``: a power of two in [64, 8192]; the
            atlas must be unwrapped at the same size (``unwrap(..., texture_size=S)``).
        steps: optimisation steps.
        frames_per_step: frames rendered and fitted together each step.
        lr_static: Adam step size of the ``T_S`` texels, linear RGB units per step
            (about the largest change of one texel in one step).
        lr_dynamic: Adam step size of ``T_D``'s hash tables and MLP.
        lr_final_fraction: both rates decay (cosine) to this fraction at the last step.
        dynamic: fit ``T_D`` too (needs pose codes); False: ``T_S`` only.
        dynamic_start: fraction of the steps before ``T_D`` joins (NGD's static warm-up).
        hash_levels, hash_table_size_log2, hash_features: ``T_D``'s 2D hash grid: levels,
            entries per level (2^n) and features per entry.
        hash_base_resolution, hash_max_resolution: coarsest and finest grid, in cells
            across the unit UV square.
        mlp_width, mlp_depth: hidden width and hidden layer count of ``T_D``'s MLP
            (NGD: 64 x 2).
        dynamic_max: ``T_D``'s output bound (tanh-scaled), linear RGB units, in (0, 1].
        pose_noise: std of the Gaussian noise on the pose code at step 0, in units of
            the code (unit std per component, as ``CaptureData.pose_codes``); decays
            linearly to 0 at ``noise_end``.
        noise_end: fraction of the steps after which the pose code has no noise.
        ssim_weight: weight of ``1 - SSIM`` next to the relative L2 term.
        edge_erosion_px: pixels the loss region (rendered garment AND target mask) is
            eroded by, so silhouette pixels that mix in the background are not fitted.
        init: ``"backproject"`` (``T_S`` starts as the footage projected into it, the mean
            colour per texel, holes filled from coarser levels) or ``"mean"`` (the mean
            garment colour everywhere).
        progress_interval: steps between loss read-backs (a device sync) and
            ``progress`` calls.
        seed: fixes the MLP initialisation, the frame order and the pose noise.
    """

    texture_size: int = 1024
    steps: int = 400
    frames_per_step: int = 4
    lr_static: float = 0.01
    lr_dynamic: float = 3e-3
    lr_final_fraction: float = 0.1
    dynamic: bool = True
    dynamic_start: float = 0.3
    hash_levels: int = 8
    hash_table_size_log2: int = 16
    hash_features: int = 2
    hash_base_resolution: int = 8
    hash_max_resolution: int = 256
    mlp_width: int = 64
    mlp_depth: int = 2
    dynamic_max: float = 0.5
    pose_noise: float = 0.3
    noise_end: float = 0.6
    ssim_weight: float = 0.2
    edge_erosion_px: int = 1
    init: str = "backproject"
    progress_interval: int = 10
    seed: int = 0

    def __post_init__(self):
        problems = []
        ints = ("texture_size", "steps", "frames_per_step", "hash_levels",
                "hash_table_size_log2", "hash_features", "hash_base_resolution",
                "hash_max_resolution", "mlp_width", "mlp_depth", "edge_erosion_px",
                "progress_interval", "seed")
        floats = ("lr_static", "lr_dynamic", "lr_final_fraction", "dynamic_start",
                  "dynamic_max", "pose_noise", "noise_end", "ssim_weight")
        for name in ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                problems.append(f"{name} must be an int; got {value!r}")
        for name in floats:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not math.isfinite(value):
                problems.append(f"{name} must be a finite number; got {value!r}")
        if not isinstance(self.dynamic, bool):
            problems.append(f"dynamic must be true or false; got {self.dynamic!r}")
        if self.init not in INITS:
            problems.append(f"init must be one of {', '.join(INITS)}; got {self.init!r}")
        if problems:
            raise ConfigError("texture settings: " + "; ".join(problems))
        size = int(self.texture_size)
        if not (MIN_TEXTURE_SIZE <= size <= MAX_TEXTURE_SIZE and size & (size - 1) == 0):
            problems.append(f"texture_size must be a power of two in [{MIN_TEXTURE_SIZE}, "
                            f"{MAX_TEXTURE_SIZE}] texels; got {size}")
        for name in ("steps", "frames_per_step", "hash_levels", "hash_features",
                     "hash_base_resolution", "mlp_width", "mlp_depth", "progress_interval"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1; got {getattr(self, name)}")
        if not 4 <= self.hash_table_size_log2 <= 24:
            problems.append(f"hash_table_size_log2 must be in [4, 24]; got "
                            f"{self.hash_table_size_log2}")
        if self.hash_max_resolution < self.hash_base_resolution:
            problems.append(f"hash_max_resolution must be >= hash_base_resolution "
                            f"({self.hash_base_resolution}); got {self.hash_max_resolution}")
        for name in ("lr_static", "lr_dynamic"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0; got {getattr(self, name)}")
        for name in ("lr_final_fraction", "dynamic_start", "noise_end"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be in [0, 1]; got {getattr(self, name)}")
        if not 0 < self.dynamic_max <= 1:
            problems.append(f"dynamic_max must be in (0, 1] (linear RGB); got "
                            f"{self.dynamic_max}")
        for name in ("pose_noise", "ssim_weight", "edge_erosion_px", "seed"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0; got {getattr(self, name)}")
        if problems:
            raise ConfigError("texture settings: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: dict) -> TextureSettings:
        """Settings from a ``job.json`` mapping; an unknown key is an error naming it
        (missing keys keep their defaults)."""
        if not isinstance(values, dict):
            raise ConfigError(f"texture settings must be a mapping; got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown texture setting(s) {', '.join(map(str, unknown))}; "
                              f"expected some of {', '.join(sorted(known))}")
        return cls(**values)


# ------------------------------------------------------------------------------- model


def _straight_clamp(x: torch.Tensor) -> torch.Tensor:
    """``clamp(x, 0, 1)`` whose gradient passes as if unclamped: a colour pushed past
    1 by ``T_S + T_D`` must still feel a target below it (a plain clamp stops the
    gradient there for good)."""
    return x + (x.clamp(0.0, 1.0) - x).detach()


class GarmentTexture(nn.Module):
    """``T_S`` (+ optionally ``T_D``) of one garment; see the module docstring.

    Args:
        settings: the ``TextureSettings`` (texture size, ``T_D``'s architecture).
        pose_codes: ``(T, P)`` float, one pose code per capture frame (unit std per
            component, as ``CaptureData.pose_codes``); needed when ``settings.dynamic``,
            ignored otherwise. Its dtype and device are the model's.
        device, dtype: where and how the parameters live when there are no pose codes
            (default CPU, float32).

    Attributes:
        static: ``(S, S, 3)`` float ``nn.Parameter``, linear RGB in [0, 1], row 0 at
            the top (``v = 1``); ``fit_texture`` projects it back into [0, 1] after each
            step.
        observed: ``(S, S)`` bool buffer, texels the fit read at full resolution
            (``mark_observed``). Those past the charts' borders were fitted too (a
            bilinear read near a border mixes them in), so baking keeps them and dilates
            only the rest.
        pose_codes: ``(T, P)`` buffer, or None without ``T_D``.
        has_dynamic: whether ``T_D`` exists.
    """

    def __init__(self, settings: TextureSettings, pose_codes: torch.Tensor | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        if not isinstance(settings, TextureSettings):
            raise ReconError(f"settings must be a TextureSettings; got "
                             f"{type(settings).__name__}")
        self.settings = settings
        self.has_dynamic = bool(settings.dynamic)
        if self.has_dynamic:
            if not isinstance(pose_codes, torch.Tensor) or pose_codes.dim() != 2 \
                    or pose_codes.shape[0] < 1 or pose_codes.shape[1] < 1 \
                    or not pose_codes.is_floating_point():
                got = (f"shape {tuple(pose_codes.shape)}, dtype {pose_codes.dtype}"
                       if isinstance(pose_codes, torch.Tensor) else type(pose_codes).__name__)
                raise ReconError(f"pose_codes must be a (T, P) float tensor with T, P >= 1 "
                                 f"when settings.dynamic is on; got {got}",
                                 hint="pass the capture's pose codes or set dynamic=False")
            if not torch.isfinite(pose_codes).all():
                raise ReconError("pose_codes must be finite")
            device = pose_codes.device
        dtype = pose_codes.dtype if self.has_dynamic else (dtype or torch.float32)
        device = torch.device(device) if device is not None else torch.device("cpu")
        size = settings.texture_size
        self.static = nn.Parameter(torch.full((size, size, 3), 0.5, dtype=dtype, device=device))
        self.register_buffer("observed", torch.zeros(size, size, dtype=torch.bool,
                                                     device=device))
        if not self.has_dynamic:
            self.pose_codes = None
            return
        self.register_buffer("pose_codes", pose_codes.detach().clone())
        s = settings
        # Own RNG stream: the initialisation depends on settings.seed only, and the
        # caller's global torch RNG is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed)
            self.encoding = HashEncoding(levels=s.hash_levels,
                                         table_size_log2=s.hash_table_size_log2,
                                         features=s.hash_features,
                                         base_resolution=s.hash_base_resolution,
                                         max_resolution=s.hash_max_resolution,
                                         extent_m=1.0, in_features=2)
            self.uv_in = nn.Linear(self.encoding.out_features, s.mlp_width)
            self.code_in = nn.Linear(pose_codes.shape[1], s.mlp_width, bias=False)
            self.hidden = nn.ModuleList(nn.Linear(s.mlp_width, s.mlp_width)
                                        for _ in range(s.mlp_depth - 1))
            self.out = nn.Linear(s.mlp_width, 3)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        for module in (self.encoding, self.uv_in, self.code_in, self.hidden, self.out):
            module.to(device=device, dtype=dtype)

    @property
    def texture_size(self) -> int:
        return self.static.shape[0]

    @property
    def frame_count(self) -> int:
        """T, the number of pose codes (0 without ``T_D``)."""
        return 0 if self.pose_codes is None else self.pose_codes.shape[0]

    def static_parameters(self) -> list[nn.Parameter]:
        return [self.static]

    def dynamic_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name != "static"]

    @torch.no_grad()
    def mark_observed(self, uv: torch.Tensor, uv_da: torch.Tensor) -> None:
        """Add to ``observed`` the full-resolution texels that pixels at ``uv``
        ``(N, 2)`` (Blender UVs) with footprints ``uv_da`` ``(N, 4)`` read: the four
        bilinear taps of level 0, for pixels whose level of detail is below 1 (coarser
        pixels only see mip averages)."""
        size = self.texture_size
        ax = (uv_da[:, 0] ** 2 + uv_da[:, 2] ** 2) * size ** 2
        ay = (uv_da[:, 1] ** 2 + uv_da[:, 3] ** 2) * size ** 2
        fine = torch.maximum(ax, ay) < 4.0                  # lod = log2(footprint) < 1
        x = (uv[fine, 0] * size - 0.5).floor().long()
        y = ((1.0 - uv[fine, 1]) * size - 0.5).floor().long()
        flat = self.observed.view(-1)
        for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
            col = (x + dx).clamp(0, size - 1)
            row = (y + dy).clamp(0, size - 1)
            flat[(row * size + col).to(flat.device)] = True

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp ``T_S`` into [0, 1] in place (after an optimiser step)."""
        self.static.clamp_(0.0, 1.0)

    def codes(self, frames: torch.Tensor, noise_std: float = 0.0,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B, P)`` pose codes of ``frames`` (``(B,)`` int64 indices into
        ``pose_codes``), plus Gaussian noise of std ``noise_std`` (one draw per frame,
        from ``generator``, a CPU generator)."""
        code = self.pose_codes.index_select(0, frames.to(self.pose_codes.device))
        if noise_std > 0:
            noise = torch.randn(code.shape, generator=generator, dtype=code.dtype)
            code = code + noise_std * noise.to(code.device)
        return code

    def sample_static(self, uv: torch.Tensor, uv_da: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """``T_S`` at ``uv`` ``(N, 2)`` (Blender UVs) -> ``(N, 3)`` linear RGB in [0, 1].

        ``uv_da`` ``(N, 4)`` ``(du/dX, du/dY, dv/dX, dv/dY)`` per pixel (as
        ``interpolate`` returns them): trilinear mipmapping by the pixel's footprint;
        None: bilinear. Texels past the texture's border are clamped."""
        n = uv.shape[0]
        st = torch.stack([uv[:, 0], 1.0 - uv[:, 1]], dim=-1).to(self.static).view(1, 1, n, 2)
        tex = self.static.unsqueeze(0)
        if uv_da is None:
            out = texture(tex, st, filter_mode="linear", boundary_mode="clamp")
        else:
            # v runs the other way in the sampler: its derivatives change sign.
            flip = uv_da.new_tensor([1.0, 1.0, -1.0, -1.0])
            da = (uv_da * flip).to(self.static).view(1, 1, n, 4)
            out = texture(tex, st, da, filter_mode="linear-mipmap-linear",
                          boundary_mode="clamp")
        return out.view(n, 3)

    def dynamic_residual(self, uv: torch.Tensor, frames: torch.Tensor,
                         pixel_batch: torch.Tensor | None = None, noise_std: float = 0.0,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """``T_D`` at ``uv`` ``(N, 2)`` (Blender UVs): ``(N, 3)`` linear RGB residual in
        ``[-dynamic_max, dynamic_max]``.

        ``frames`` ``(B,)`` int64 frame indices; ``pixel_batch`` ``(N,)`` int64 in
        ``[0, B)``, the frame of each point (None: all of frame ``frames[0]``)."""
        if not self.has_dynamic:
            raise ReconError("this texture has no dynamic part (settings.dynamic is off)")
        code = self.code_in(self.codes(frames, noise_std, generator))       # (B, width)
        if pixel_batch is None:
            code = code[:1].expand(uv.shape[0], -1)
        else:
            code = code.index_select(0, pixel_batch)
        features = self.encoding((2.0 * uv - 1.0).to(self.static))
        h = torch.relu(self.uv_in(features) + code)
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.settings.dynamic_max * torch.tanh(self.out(h))

    def forward(self, uv: torch.Tensor, uv_da: torch.Tensor | None = None,
                frames: torch.Tensor | None = None, pixel_batch: torch.Tensor | None = None,
                noise_std: float = 0.0, generator: torch.Generator | None = None
                ) -> torch.Tensor:
        """Colour of ``N`` garment pixels: ``(N, 3)`` linear RGB in [0, 1].

        Args:
            uv: ``(N, 2)`` Blender UVs of the pixels. uv_da: ``(N, 4)`` their screen
                derivatives (mipmapping) or None (bilinear).
            frames: ``(B,)`` int64 frame indices (into ``pose_codes``) of the images the
                pixels belong to, or None: ``T_S`` only.
            pixel_batch: ``(N,)`` int64, each pixel's image in ``[0, B)``.
            noise_std, generator: pose-code noise (training only).
        """
        colour = self.sample_static(uv, uv_da)
        if frames is None or not self.has_dynamic:
            return colour
        residual = self.dynamic_residual(uv, frames, pixel_batch, noise_std, generator)
        return _straight_clamp(colour + residual)


# ---------------------------------------------------------------------------- renders


@dataclass(frozen=True)
class UVRaster:
    """The garment pixels of a batch of renders and where they land in UV space.

    Attributes:
        rast: ``(B, H, W, 4)`` the raster ``(u, v, z/w, triangle_id + 1)``; ids ``1..F``
            are garment faces, larger ones the body (occluder).
        rast_db: ``(B, H, W, 4)`` its screen derivatives.
        clip: ``(B, V + Vb, 4)`` clip-space vertices (garment, then body).
        tri: ``(F + Fb, 3)`` int32, the faces that were rasterised (``clip`` and ``tri``
            are what ``antialias`` needs).
        pixels: ``(N,)`` int64 flat indices ``b * H * W + row * W + col`` of the pixels
            where a garment face is visible.
        pixel_batch: ``(N,)`` int64, the image ``b`` of each of them.
        uv: ``(N, 2)`` their Blender UVs, interpolated from the corner UVs.
        uv_da: ``(N, 4)`` ``(du/dX, du/dY, dv/dX, dv/dY)``, per pixel (X = column,
            Y = row).
    """

    rast: torch.Tensor
    rast_db: torch.Tensor
    clip: torch.Tensor
    tri: torch.Tensor
    pixels: torch.Tensor
    pixel_batch: torch.Tensor
    uv: torch.Tensor
    uv_da: torch.Tensor

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(B, H, W)``."""
        return tuple(self.rast.shape[:3])

    def mask(self) -> torch.Tensor:
        """``(B, H, W, 1)`` float: 1 where the garment is visible, else 0."""
        b, h, w = self.shape
        flat = self.uv.new_zeros(b * h * w)
        return flat.index_fill(0, self.pixels, 1.0).view(b, h, w, 1)


@dataclass(frozen=True)
class TextureRender:
    """Textured renders: ``color`` ``(B, H, W, 3)`` linear RGB (0 off the garment),
    ``mask`` ``(B, H, W, 1)`` visible garment coverage in [0, 1] (antialiased when
    asked), ``rast`` ``(B, H, W, 4)`` (triangle ids ``1..F`` garment, larger body)."""

    color: torch.Tensor
    mask: torch.Tensor
    rast: torch.Tensor


def _tensor(x, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype)
    try:
        return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)
    except (TypeError, ValueError) as exc:
        raise ReconError(f"{name} must be an array; got {type(x).__name__}") from exc


def _checked_geometry(vertices, faces, uvs, camera, body_vertices, body_faces):
    """Validated ``(vertices (B, V, 3), faces (F, 3) int32, uvs (F, 3, 2),
    body_vertices or None, body_faces int32 or None)`` on ``vertices``' device."""
    if not isinstance(vertices, torch.Tensor) or vertices.dim() != 3 \
            or vertices.shape[-1] != 3 or not vertices.is_floating_point():
        got = (f"shape {tuple(vertices.shape)}, dtype {vertices.dtype}"
               if isinstance(vertices, torch.Tensor) else type(vertices).__name__)
        raise ReconError(f"vertices must be a (B, V, 3) float tensor (world, metres); got {got}")
    device, batch, count = vertices.device, vertices.shape[0], vertices.shape[1]
    faces_t = faces if isinstance(faces, torch.Tensor) else torch.as_tensor(np.asarray(faces))
    if faces_t.dim() != 2 or faces_t.shape[1] != 3 or faces_t.is_floating_point() \
            or faces_t.shape[0] < 1:
        raise ReconError(f"faces must be an (F, 3) int array with F >= 1; got shape "
                         f"{tuple(faces_t.shape)}, dtype {faces_t.dtype}")
    if int(faces_t.min()) < 0 or int(faces_t.max()) >= count:
        raise ReconError(f"faces index vertices outside [0, {count}) (got "
                         f"[{int(faces_t.min())}, {int(faces_t.max())}])")
    faces_t = faces_t.to(device=device, dtype=torch.int32).contiguous()
    uvs_t = _tensor(uvs, "uvs", vertices.dtype, device)
    if tuple(uvs_t.shape) != (faces_t.shape[0], 3, 2):
        raise ReconError(f"uvs must have shape (F, 3, 2) = ({faces_t.shape[0]}, 3, 2) "
                         f"(one Blender UV per face corner); got {tuple(uvs_t.shape)}")
    if not isinstance(camera, Camera):
        raise ReconError(f"camera must be a backend.render.Camera; got {type(camera).__name__}")
    if camera.batch not in (1, batch):
        raise ReconError(f"camera batch must be 1 or the vertices' batch {batch}; got "
                         f"{camera.batch}")
    if (body_vertices is None) != (body_faces is None):
        raise ReconError("body_vertices and body_faces go together (both or neither)")
    if body_vertices is None:
        return vertices, faces_t, uvs_t, None, None
    if not isinstance(body_vertices, torch.Tensor) or body_vertices.dim() != 3 \
            or body_vertices.shape[0] != batch or body_vertices.shape[-1] != 3:
        got = (tuple(body_vertices.shape) if isinstance(body_vertices, torch.Tensor)
               else type(body_vertices).__name__)
        raise ReconError(f"body_vertices must have shape (B, Vb, 3) with B = {batch}; got {got}")
    body_f = body_faces if isinstance(body_faces, torch.Tensor) \
        else torch.as_tensor(np.asarray(body_faces))
    if body_f.dim() != 2 or body_f.shape[1] != 3 or body_f.is_floating_point():
        raise ReconError(f"body_faces must be an (Fb, 3) int array; got shape "
                         f"{tuple(body_f.shape)}")
    if len(body_f) and (int(body_f.min()) < 0 or int(body_f.max()) >= body_vertices.shape[1]):
        raise ReconError(f"body_faces index vertices outside [0, {body_vertices.shape[1]})")
    return (vertices, faces_t, uvs_t, body_vertices.to(vertices),
            body_f.to(device=device, dtype=torch.int32))


def rasterize_uv(rasterizer, vertices: torch.Tensor, faces, uvs, camera: Camera,
                 body_vertices: torch.Tensor | None = None, body_faces=None) -> UVRaster:
    """Rasterise a batch of garment poses (the posed body, if given, occludes) and
    interpolate the corner UVs at the garment's visible pixels.

    Args:
        rasterizer: from ``get_rasterizer``.
        vertices: ``(B, V, 3)`` float world garment vertices, metres.
        faces: ``(F, 3)`` int garment faces.
        uvs: ``(F, 3, 2)`` Blender UVs per face corner (``UVAtlas.uvs``), array or tensor.
        camera: a ``Camera`` with batch B (or 1).
        body_vertices: ``(B, Vb, 3)`` posed body (world, metres) or None;
        body_faces: ``(Fb, 3)`` int, with it.

    Returns:
        a ``UVRaster``. Differentiable w.r.t. ``vertices`` through the barycentrics.
    """
    vertices, faces_t, uvs_t, body_v, body_f = _checked_geometry(
        vertices, faces, uvs, camera, body_vertices, body_faces)
    count, face_count = vertices.shape[1], faces_t.shape[0]
    if camera.batch == 1 and vertices.shape[0] > 1:
        # one camera for every pose: ``Camera.clip`` wants one camera per image
        b = vertices.shape[0]
        camera = Camera.create(camera.K.expand(b, 3, 3), camera.R.expand(b, 3, 3),
                               camera.t.expand(b, 3), camera.width, camera.height)
    tri = combined_faces(faces_t, body_f, count)
    verts = vertices if body_v is None else torch.cat([vertices, body_v], dim=1)
    clip = camera.clip(camera.to_camera(verts))
    rast, rast_db = rasterizer.rasterize(clip.contiguous(), tri, camera.resolution,
                                         grad_db=True)
    ids = rast[..., 3].detach().reshape(-1)
    pixels = torch.nonzero((ids > 0) & (ids <= face_count)).squeeze(1)
    b, h, w = rast.shape[:3]
    pixel_batch = torch.div(pixels, h * w, rounding_mode="floor")
    n = pixels.numel()
    if n == 0:
        empty = vertices.new_zeros(0, 2)
        return UVRaster(rast, rast_db, clip, tri, pixels, pixel_batch, empty,
                        vertices.new_zeros(0, 4))
    # Garment pixels only, packed into one (1, 1, N) image: the body's triangle ids
    # have no UVs, and shading the background would be wasted work.
    packed = rast.reshape(-1, 4).index_select(0, pixels).view(1, 1, n, 4)
    packed_db = rast_db.reshape(-1, 4).index_select(0, pixels).view(1, 1, n, 4)
    corner_uv = uvs_t.reshape(face_count * 3, 2).contiguous()
    uv_tri = torch.arange(face_count * 3, dtype=torch.int32,
                          device=vertices.device).view(face_count, 3)
    uv, uv_da = rasterizer.interpolate(corner_uv, packed.contiguous(), uv_tri,
                                       rast_db=packed_db.contiguous(), diff_attrs="all")
    return UVRaster(rast, rast_db, clip, tri, pixels, pixel_batch, uv.view(n, 2),
                    uv_da.view(n, 4))


def render_texture(rasterizer, model: GarmentTexture, vertices: torch.Tensor, faces, uvs,
                   camera: Camera, frames: torch.Tensor | None = None,
                   body_vertices: torch.Tensor | None = None, body_faces=None,
                   antialias: bool = False, topology=None) -> TextureRender:
    """Render the textured garment for a batch of frames.

    Args:
        rasterizer: from ``get_rasterizer``.
        model: the texture.
        vertices, faces, uvs, camera, body_vertices, body_faces: as ``rasterize_uv``.
        frames: ``(B,)`` int64 frame indices (into ``model.pose_codes``) of the images,
            for ``T_D``; None renders ``T_S`` only.
        antialias: antialias colour and mask across silhouettes (for display; the fit
            does not need it, the geometry being fixed).
        topology: the rasterizer's ``topology(tri)`` of the combined faces
            (``render.combined_faces``), made once per topology; looked up when None.

    Returns:
        a ``TextureRender``; ``T_S`` is read with trilinear mipmapping.
    """
    if not isinstance(model, GarmentTexture):
        raise ReconError(f"model must be a GarmentTexture; got {type(model).__name__}")
    raster = rasterize_uv(rasterizer, vertices, faces, uvs, camera, body_vertices, body_faces)
    b, h, w = raster.shape
    if frames is not None:
        frames = torch.as_tensor(frames, dtype=torch.int64)
        if frames.shape != (b,):
            raise ReconError(f"frames must have shape (B,) = ({b},); got {tuple(frames.shape)}")
        if model.has_dynamic and (int(frames.min()) < 0 or int(frames.max()) >= model.frame_count):
            raise ReconError(f"frames must index the model's {model.frame_count} pose codes; "
                             f"got {frames.tolist()}")
    colour = model(raster.uv, raster.uv_da, frames, raster.pixel_batch)
    values = torch.cat([colour.to(raster.uv), torch.ones_like(colour[:, :1])], dim=1)
    image = values.new_zeros(b * h * w, 4).index_put((raster.pixels,), values).view(b, h, w, 4)
    if antialias:
        if topology is None:
            topology = rasterizer.topology(raster.tri)
        image = rasterizer.antialias(image.contiguous(), raster.rast, raster.clip,
                                     raster.tri, topology=topology)
    return TextureRender(color=image[..., :3], mask=image[..., 3:4], rast=raster.rast)


# -------------------------------------------------------------------------------- fit


@dataclass(frozen=True)
class TextureFit:
    """The outcome of ``fit_texture``.

    Attributes:
        model: the fitted ``GarmentTexture`` (bake it with ``bake_static`` /
            ``bake_frame``).
        settings: the settings it ran with.
        losses: ``(step, mean loss over the steps since the previous entry)`` read
            every ``progress_interval`` steps and at the end.
        steps: steps run.
        seconds: wall time of the fit (caching the rasters included).
        pixels: garment pixels fitted (summed over frames).
    """

    model: GarmentTexture
    settings: TextureSettings
    losses: tuple[tuple[int, float], ...]
    steps: int
    seconds: float
    pixels: int


@dataclass
class _FrameCache:
    """One frame's fitted pixels: local flat index ``row * W + col``, UVs, UV
    derivatives, target colour, loss weight; bounding box rows ``[y0, y1)``, columns
    ``[x0, x1)``."""

    pixels: torch.Tensor
    uv: torch.Tensor
    uv_da: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor
    box: tuple[int, int, int, int]


def _canceller(cancel) -> Callable[[], None]:
    if cancel is None:
        return lambda: None
    check = getattr(cancel, "check", None)
    if callable(check):
        return check
    if callable(cancel):
        def run() -> None:
            if cancel():
                raise JobCancelled("texture fitting cancelled")
        return run
    raise ReconError(f"cancel must be a CancelToken, a callable returning True to cancel, "
                     f"or None; got {type(cancel).__name__}")


def _checked_targets(images, masks, frame_count: int, camera: Camera, device, dtype):
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[-1] != 3:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ReconError(f"images must be a (T, H, W, 3) linear-RGB tensor; got {got}")
    want = (frame_count, camera.height, camera.width)
    if tuple(images.shape[:3]) != want:
        raise ReconError(f"images must have shape (T, H, W, 3) = ({want[0]}, {want[1]}, "
                         f"{want[2]}, 3) (frames of the vertices, camera size); got "
                         f"{tuple(images.shape)}")
    if not isinstance(masks, torch.Tensor):
        raise ReconError(f"masks must be a (T, H, W, 1) tensor; got {type(masks).__name__}")
    if masks.dim() == 3:
        masks = masks.unsqueeze(-1)
    if tuple(masks.shape) != (*want, 1):
        raise ReconError(f"masks must have shape (T, H, W, 1) = ({want[0]}, {want[1]}, "
                         f"{want[2]}, 1); got {tuple(masks.shape)}")
    return images.to(device=device, dtype=dtype), masks.to(device=device, dtype=dtype)


def _eroded(weight: torch.Tensor, pixels: int) -> torch.Tensor:
    """Min over a ``(2p + 1)^2`` window of ``(B, H, W)`` weights (outside the image
    does not count)."""
    if pixels <= 0:
        return weight
    k = 2 * pixels + 1
    return -F.max_pool2d(-weight.unsqueeze(1), k, stride=1, padding=pixels).squeeze(1)


def _cache_frames(rasterizer, vertices, faces, uvs, camera, images, masks, body_vertices,
                  body_faces, chunk: int, erosion_px: int) -> list[_FrameCache]:
    """Rasterise every frame once (the geometry is fixed) and keep its fitted pixels."""
    frames = vertices.shape[0]
    _, h, w, _ = images.shape
    out = []
    with torch.no_grad():
        for start in range(0, frames, chunk):
            sel = torch.arange(start, min(start + chunk, frames), device=vertices.device)
            cams = camera if camera.batch == 1 else Camera.create(
                camera.K.index_select(0, sel), camera.R.index_select(0, sel),
                camera.t.index_select(0, sel), camera.width, camera.height)
            raster = rasterize_uv(
                rasterizer, vertices.index_select(0, sel), faces, uvs, cams,
                None if body_vertices is None else body_vertices.index_select(0, sel),
                body_faces)
            region = raster.mask()[..., 0] * masks.index_select(0, sel)[..., 0]
            weight = _eroded(region, erosion_px).reshape(-1)
            rgb = images.index_select(0, sel).reshape(-1, 3)
            for b in range(len(sel)):
                mine = raster.pixel_batch == b
                pix = raster.pixels[mine]
                wt = weight.index_select(0, pix)
                keep = wt > 0
                pix, wt = pix[keep], wt[keep]
                local = pix - b * h * w
                if pix.numel():
                    rows, cols = torch.div(local, w, rounding_mode="floor"), local % w
                    box = (int(rows.min()), int(rows.max()) + 1,
                           int(cols.min()), int(cols.max()) + 1)
                else:
                    box = (0, 0, 0, 0)
                out.append(_FrameCache(local, raster.uv[mine][keep], raster.uv_da[mine][keep],
                                       rgb.index_select(0, pix), wt, box))
    return out


def _pull_push(sums: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean colour per texel ``sums / weights`` with empty texels filled from the
    coarsest level of a 2x2 pyramid that has data there. ``sums`` ``(S, S, 3)``,
    ``weights`` ``(S, S)``; returns ``(S, S, 3)``."""
    pyramid = [(sums.permute(2, 0, 1).unsqueeze(0), weights.view(1, 1, *weights.shape))]
    while pyramid[-1][1].shape[-1] > 1:
        s, wt = pyramid[-1]
        pyramid.append((F.avg_pool2d(s, 2) * 4, F.avg_pool2d(wt, 2) * 4))
    s, wt = pyramid[-1]
    value = torch.where(wt > 0, s / wt.clamp_min(1e-12), torch.full_like(s, 0.5))
    for s, wt in reversed(pyramid[:-1]):
        up = F.interpolate(value, scale_factor=2, mode="nearest")
        value = torch.where(wt > 0, s / wt.clamp_min(1e-12), up)
    return value[0].permute(1, 2, 0)


def _initial_texture(caches: list[_FrameCache], size: int, how: str) -> torch.Tensor:
    uv = torch.cat([c.uv for c in caches])
    weight = torch.cat([c.weight for c in caches])
    target = torch.cat([c.target for c in caches])
    if how == "mean":
        mean = (target * weight[:, None]).sum(0) / weight.sum().clamp_min(1e-12)
        return mean.view(1, 1, 3).expand(size, size, 3).clone()
    # Nearest texel of each pixel (image rows run down from v = 1).
    col = (uv[:, 0] * size).floor().long().clamp(0, size - 1)
    row = ((1.0 - uv[:, 1]) * size).floor().long().clamp(0, size - 1)
    index = row * size + col
    sums = target.new_zeros(size * size, 3).index_add_(0, index, target * weight[:, None])
    weights = weight.new_zeros(size * size).index_add_(0, index, weight)
    return _pull_push(sums.view(size, size, 3), weights.view(size, size)).clamp(0.0, 1.0)


def fit_texture(vertices: torch.Tensor, faces, atlas: UVAtlas, camera: Camera,
                images: torch.Tensor, masks: torch.Tensor,
                settings: TextureSettings | None = None, *,
                pose_codes: torch.Tensor | None = None,
                body_vertices: torch.Tensor | None = None, body_faces=None,
                rasterizer=None, model: GarmentTexture | None = None,
                progress: Callable[[int, int, float], None] | None = None,
                cancel=None) -> TextureFit:
    """Fit ``T_S`` (and ``T_D``) to the footage of a fixed, reconstructed garment.

    Args:
        vertices: ``(T, V, 3)`` float world garment vertices per frame, metres; their
            device and dtype are the fit's.
        faces: ``(F, 3)`` int faces (the atlas' face order).
        atlas: the ``UVAtlas`` of the garment (``unwrap(..., texture_size=S)``), its
            ``texture_size`` equal to ``settings.texture_size``.
        camera: ``Camera`` batched over the T frames (or one shared camera), at the
            images' size.
        images: ``(T, H, W, 3)`` linear RGB targets in [0, 1] (``Targets.rgb``).
        masks: ``(T, H, W, 1)`` (or ``(T, H, W)``) garment masks in [0, 1].
        settings: ``TextureSettings`` (defaults if None).
        pose_codes: ``(T, P)`` float pose codes, unit std per component; required when
            ``settings.dynamic``.
        body_vertices: ``(T, Vb, 3)`` posed body (occluder) or None; body_faces
            ``(Fb, 3)`` int with it.
        rasterizer: from ``get_rasterizer`` (default: ``"auto"`` on the vertices' device).
        model: a ``GarmentTexture`` to continue from (e.g. resumed); default a new one.
        progress: ``progress(step, total, loss)`` every ``progress_interval`` steps and
            after the last (``loss``: mean over those steps).
        cancel: a ``CancelToken`` (its ``check()`` raises ``JobCancelled``) or a
            callable returning True to cancel; checked every step. A cancelled fit
            raises ``JobCancelled``; a ``model`` passed in keeps its progress.

    Returns:
        a ``TextureFit``.

    Raises:
        ReconError: bad shapes, an atlas of another size or face count, no garment pixel
            inside the target masks in any frame, missing pose codes for ``dynamic``.
        ConfigError: bad settings.
    """
    start_time = time.perf_counter()
    settings = TextureSettings() if settings is None else settings
    if not isinstance(settings, TextureSettings):
        raise ConfigError(f"settings must be a TextureSettings; got {type(settings).__name__}")
    if not isinstance(atlas, UVAtlas):
        raise ReconError(f"atlas must be a backend.mesh.uv.UVAtlas; got {type(atlas).__name__}")
    if atlas.texture_size != settings.texture_size:
        raise ReconError(f"settings.texture_size ({settings.texture_size}) must equal the "
                         f"atlas' texture_size ({atlas.texture_size})",
                         hint="unwrap with texture_size=settings.texture_size")
    vertices, faces_t, uvs_t, body_v, body_f = _checked_geometry(
        vertices, faces, atlas.uvs, camera, body_vertices, body_faces)
    frame_count, device, dtype = vertices.shape[0], vertices.device, vertices.dtype
    images, masks = _checked_targets(images, masks, frame_count, camera, device, dtype)
    if settings.dynamic and pose_codes is not None and pose_codes.shape[0] != frame_count:
        raise ReconError(f"pose_codes must have one row per frame ({frame_count}); got "
                         f"{tuple(pose_codes.shape)}")
    check_cancel = _canceller(cancel)
    if model is None:
        codes = pose_codes.to(device=device, dtype=dtype) \
            if isinstance(pose_codes, torch.Tensor) else pose_codes
        model = GarmentTexture(settings, codes, device=device, dtype=dtype)
        fresh = True
    else:
        if not isinstance(model, GarmentTexture) or model.texture_size != settings.texture_size:
            raise ReconError("model must be a GarmentTexture of settings.texture_size texels")
        fresh = False
    if rasterizer is None:
        rasterizer = get_rasterizer("auto", device)

    caches = _cache_frames(rasterizer, vertices, faces_t, uvs_t, camera, images, masks,
                           body_v, body_f, max(settings.frames_per_step, 1),
                           settings.edge_erosion_px)
    usable = [i for i, c in enumerate(caches) if c.pixels.numel() > 0]
    if not usable:
        raise ReconError("no frame shows a garment pixel inside its target mask: nothing "
                         "to fit the texture to",
                         hint="check that the cameras see the garment and the masks match")
    pixel_total = sum(int(c.pixels.numel()) for c in caches)
    for i in usable:
        model.mark_observed(caches[i].uv, caches[i].uv_da)
    if fresh:
        with torch.no_grad():
            model.static.copy_(_initial_texture([caches[i] for i in usable],
                                                settings.texture_size, settings.init))
    log.info("texture fit: %d frames (%d with garment pixels), %d pixels, %d^2 texels, "
             "dynamic %s; caching took %.1f s", frame_count, len(usable), pixel_total,
             settings.texture_size, model.has_dynamic, time.perf_counter() - start_time)

    s = settings
    static_opt = torch.optim.Adam(model.static_parameters(), lr=s.lr_static)
    dynamic_opt = (torch.optim.Adam(model.dynamic_parameters(), lr=s.lr_dynamic)
                   if model.has_dynamic else None)
    generator = torch.Generator().manual_seed(s.seed)
    per_step = min(s.frames_per_step, len(usable))
    order: list[int] = []
    _, height, width, _ = images.shape
    margin = L.SSIM_WINDOW // 2 + 1
    dynamic_from = int(math.ceil(s.dynamic_start * s.steps))
    noise_until = s.noise_end * s.steps
    running = torch.zeros((), dtype=dtype, device=device)
    since, history = 0, []

    for step in range(s.steps):
        check_cancel()
        factor = L.cosine_decay(step, s.steps, s.lr_final_fraction)
        for group in static_opt.param_groups:
            group["lr"] = s.lr_static * factor
        if len(order) < per_step:
            # every frame once per pass, in a fresh random order
            order += [usable[i] for i in torch.randperm(len(usable), generator=generator).tolist()]
        chosen, order = order[:per_step], order[per_step:]
        batch = [caches[i] for i in chosen]
        counts = torch.tensor([c.pixels.numel() for c in batch], device=device)
        pixel_batch = torch.repeat_interleave(torch.arange(len(batch), device=device), counts)
        uv = torch.cat([c.uv for c in batch])
        uv_da = torch.cat([c.uv_da for c in batch])
        target = torch.cat([c.target for c in batch])
        weight = torch.cat([c.weight for c in batch])

        dynamic = dynamic_opt is not None and step >= dynamic_from
        frames = torch.tensor(chosen, dtype=torch.int64, device=device) if dynamic else None
        noise = s.pose_noise * (1.0 - step / noise_until) if step < noise_until else 0.0
        pred = model(uv, uv_da, frames, pixel_batch, noise, generator)

        relative = (pred - target).square() / (pred.detach().square() + RELATIVE_L2_EPS)
        loss = (relative * weight[:, None]).sum() / (3.0 * weight.sum()).clamp_min(1.0)
        if s.ssim_weight > 0:
            # SSIM over the frames' common garment box; outside the loss region the
            # composite equals the target, so only fitted pixels count.
            y0 = max(min(c.box[0] for c in batch) - margin, 0)
            y1 = min(max(c.box[1] for c in batch) + margin, height)
            x0 = max(min(c.box[2] for c in batch) - margin, 0)
            x1 = min(max(c.box[3] for c in batch) + margin, width)
            frame_index = torch.tensor(chosen, device=device)
            crop = images[frame_index, y0:y1, x0:x1]                     # copies the box only
            local = torch.cat([c.pixels for c in batch])
            rows = torch.div(local, width, rounding_mode="floor") - y0
            cols = local % width - x0
            index = (pixel_batch * (y1 - y0) + rows) * (x1 - x0) + cols
            blended = target + weight[:, None] * (pred - target)
            composite = crop.reshape(-1, 3).index_put((index,), blended).view(crop.shape)
            loss = loss + s.ssim_weight * (1.0 - L.ssim(composite, crop))

        static_opt.zero_grad(set_to_none=True)
        if dynamic:
            for group in dynamic_opt.param_groups:
                group["lr"] = s.lr_dynamic * factor
            dynamic_opt.zero_grad(set_to_none=True)
        loss.backward()
        static_opt.step()
        if dynamic:
            dynamic_opt.step()
        model.project_()

        running = running + loss.detach()
        since += 1
        done = step + 1
        if done % s.progress_interval == 0 or done == s.steps:
            mean = float(running) / since          # one device sync per interval
            history.append((done, mean))
            running.zero_()
            since = 0
            if progress is not None:
                progress(done, s.steps, mean)

    seconds = time.perf_counter() - start_time
    log.info("texture fit: %d steps in %.1f s, final loss %.4g", s.steps, seconds,
             history[-1][1])
    return TextureFit(model=model, settings=s, losses=tuple(history), steps=s.steps,
                      seconds=seconds, pixels=pixel_total)


# ------------------------------------------------------------------------------ bake


def _kept_texels(model, atlas, coverage) -> np.ndarray:
    """``(S, S)`` bool: the texels a bake keeps (the atlas' coverage, plus those the fit
    observed past it); every other texel is filled from them."""
    if not isinstance(model, GarmentTexture):
        raise ReconError(f"model must be a GarmentTexture; got {type(model).__name__}")
    if not isinstance(atlas, UVAtlas):
        raise ReconError(f"atlas must be a backend.mesh.uv.UVAtlas; got {type(atlas).__name__}")
    if atlas.texture_size != model.texture_size:
        raise ReconError(f"the atlas' texture_size ({atlas.texture_size}) must equal the "
                         f"model's ({model.texture_size})")
    if coverage is None:
        cov = coverage_mask(atlas)
    else:
        cov = np.asarray(coverage)
        if cov.shape != (model.texture_size,) * 2 or cov.dtype != np.bool_:
            raise ReconError(f"coverage must be an (S, S) = {(model.texture_size,) * 2} bool "
                             f"array (coverage_mask(atlas)); got shape {cov.shape}, dtype "
                             f"{cov.dtype}")
    return cov | model.observed.cpu().numpy()


def _finished(linear: np.ndarray, kept: np.ndarray, atlas: UVAtlas) -> np.ndarray:
    """Grow the kept texels' colours past the charts' borders (``atlas.padding_px``, at
    least one texel, for bilinear reads), fill the rest with the mean garment colour
    (coarse mip levels read it), encode 8-bit with the 2.2 gamma."""
    pixels = max(int(atlas.padding_px), 1)
    grown = dilate(linear, kept, pixels)
    if kept.any():
        # what dilate left alone: farther than ``pixels`` (Chebyshev) from every chart
        t = torch.from_numpy(kept.astype(np.float32)).view(1, 1, *kept.shape)
        reached = F.max_pool2d(t, 2 * pixels + 1, stride=1, padding=pixels)[0, 0].numpy() > 0
        grown[~reached] = linear[kept].mean(axis=0)
    return to_srgb8(grown)


def to_srgb8(linear: np.ndarray) -> np.ndarray:
    """Linear RGB in [0, 1] ``(..., 3)`` -> ``np.uint8`` with the 2.2 gamma the capture
    is decoded with (``GAMMA``)."""
    value = np.clip(np.asarray(linear, np.float64), 0.0, 1.0) ** (1.0 / GAMMA)
    return np.round(value * 255.0).astype(np.uint8)


def texel_uvs(rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Blender UVs ``(N, 2)`` of the centres of texels ``(rows, cols)`` of an image with
    row 0 at the top: ``((col + 0.5) / S, 1 - (row + 0.5) / S)``."""
    return np.column_stack([(np.asarray(cols) + 0.5) / size,
                            1.0 - (np.asarray(rows) + 0.5) / size])


@torch.no_grad()
def _linear(model: GarmentTexture, kept: np.ndarray, frame_index) -> np.ndarray:
    if frame_index is not None and (
            isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer))
            or (model.has_dynamic and not 0 <= frame_index < model.frame_count)):
        raise ReconError(f"frame_index must be an int in [0, {model.frame_count}) (a "
                         f"position among the pose codes); got {frame_index!r}")
    tex = model.static.detach().clamp(0.0, 1.0).float().cpu().numpy().copy()
    if frame_index is None or not model.has_dynamic:
        return tex
    rows, cols = np.nonzero(kept)
    uv = torch.as_tensor(texel_uvs(rows, cols, model.texture_size), dtype=model.static.dtype,
                         device=model.static.device)
    frames = torch.tensor([int(frame_index)], device=model.static.device)
    for i in range(0, len(uv), BAKE_CHUNK):
        part = model.dynamic_residual(uv[i:i + BAKE_CHUNK], frames).float().cpu().numpy()
        r, c = rows[i:i + BAKE_CHUNK], cols[i:i + BAKE_CHUNK]
        tex[r, c] = np.clip(tex[r, c] + part, 0.0, 1.0)
    return tex


def baked_linear(model: GarmentTexture, atlas: UVAtlas, frame_index: int | None = None,
                 coverage: np.ndarray | None = None) -> np.ndarray:
    """``T_S`` (+ ``T_D`` of frame ``frame_index``, evaluated at the centres of the kept
    texels: the atlas' coverage plus ``model.observed``) as a ``(S, S, 3)`` float32
    linear-RGB image in [0, 1], row 0 at the top, not dilated. ``coverage``:
    ``coverage_mask(atlas)``, computed when None (pass it when baking many frames)."""
    return _linear(model, _kept_texels(model, atlas, coverage), frame_index)


def bake_static(model: GarmentTexture, atlas: UVAtlas,
                coverage: np.ndarray | None = None) -> np.ndarray:
    """``T_S`` as an ``(S, S, 3)`` ``np.uint8`` image (gamma 2.2, as the capture is
    decoded) in Blender's orientation: row 0 at the top = ``v = 1``, so it can be
    written with PIL and used with the atlas' UVs. The covered (and fit-observed)
    texels are kept, grown past the chart borders (``uv.dilate``, ``padding_px``
    rounds), the rest filled with the mean garment colour. ``coverage``:
    ``coverage_mask(atlas)`` if already known."""
    kept = _kept_texels(model, atlas, coverage)
    return _finished(_linear(model, kept, None), kept, atlas)


def bake_frame(model: GarmentTexture, atlas: UVAtlas, frame_index: int,
               coverage: np.ndarray | None = None) -> np.ndarray:
    """``clamp(T_S + T_D(frame_index), 0, 1)`` baked like ``bake_static``, ``T_D``
    evaluated at the kept texels' centres only; equals ``bake_static`` without ``T_D``.
    ``frame_index``: position of the frame among the pose codes (not its number)."""
    kept = _kept_texels(model, atlas, coverage)
    return _finished(_linear(model, kept, frame_index), kept, atlas)
