"""A capture loaded for training: targets at the render resolutions, cameras, body track.

Everything the step loop reads is a tensor on the training device, made once here:
masks, linear RGB, NGD's diffuse target (from the normal maps), depth, per-frame
cameras scaled to each resolution, bone transforms, normalised pose codes and the
posed body (an occluder). Images are area-averaged down to the render size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..body import load_body
from ..body.model import BodyTrack, SkinnedBody
from ..body.pose_code import fit_pose_code
from ..capture.bundle import Capture
from ..capture.images import read_mask, read_rgb
from ..render.camera import Camera
from .errors import ReconError

log = logging.getLogger(__name__)


@dataclass
class Targets:
    """Training targets at one resolution, all ``(T, H, W, C)`` float on the device.

    mask: C=1 garment coverage in [0, 1]. rgb: C=3 linear RGB in [0, 1].
    diffuse: C=1 NGD's target ``clamp(n . view, 0, 1)`` from the normal maps, or None.
    depth: C=1 camera depth in metres (0 = unknown), or None.
    camera: a ``Camera`` batched over the T frames at this resolution.
    """

    mask: torch.Tensor
    rgb: torch.Tensor
    diffuse: torch.Tensor | None
    depth: torch.Tensor | None
    camera: Camera

    @property
    def resolution(self) -> tuple[int, int]:
        return self.mask.shape[1], self.mask.shape[2]

    def cameras(self, frames: torch.Tensor) -> Camera:
        """The cameras of the given frame indices."""
        c = self.camera
        return Camera.create(c.K.index_select(0, frames), c.R.index_select(0, frames),
                             c.t.index_select(0, frames), c.width, c.height)


@dataclass
class CaptureData:
    """A capture ready for the step loop.

    Attributes:
        capture: the capture (frames to use only).
        body: the skinned body; track: its motion restricted to ``capture.frames``.
        bone_transforms: (T, B, 4, 4) float32 rest -> world per frame, on the device.
        pose_codes: (T, k) float32 normalised to unit std per component (zero columns
            stay zero).
        body_vertices: (T, Vb, 3) float32 posed body per frame (occluder), world metres.
        body_faces: (Fb, 3) int32.
        levels: resolution -> ``Targets``, for the final and the coarse resolution.
    """

    capture: Capture
    body: SkinnedBody
    track: BodyTrack
    bone_transforms: torch.Tensor
    pose_codes: torch.Tensor
    body_vertices: torch.Tensor
    body_faces: torch.Tensor
    levels: dict[int, Targets]

    @property
    def frame_count(self) -> int:
        return len(self.capture.frames)

    @property
    def has_normals(self) -> bool:
        return next(iter(self.levels.values())).diffuse is not None

    @property
    def has_depth(self) -> bool:
        return next(iter(self.levels.values())).depth is not None


def render_size(width: int, height: int, longest_px: int) -> tuple[int, int]:
    """(H, W) with the longest side ``longest_px`` (never above the capture's size)."""
    scale = min(1.0, longest_px / max(width, height))
    return max(8, round(height * scale)), max(8, round(width * scale))


def scaled_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """K for an image resized by (sx, sy), pixel centres at integer coordinates."""
    out = K.astype(np.float64).copy()
    out[0, :] *= sx
    out[1, :] *= sy
    out[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    out[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return out


def load_capture_data(capture: Capture, resolutions: tuple[int, ...], device: torch.device,
                      pose_components: int = 4, use_normals: bool = True) -> CaptureData:
    """Read images, cameras and the body of ``capture`` (already validated).

    Args:
        resolutions: longest-side sizes in pixels to prepare targets for.
        pose_components: PCA components when body.npz has no pose code.
        use_normals: read the capture's normal maps (when it has them); False leaves
            them out (``diffuse`` targets None), as for a capture without them.
    """
    if capture.body_path is None:
        raise ReconError(f"{capture.root}: the capture has no body.npz; a reconstruction "
                         "needs the body that moves with the garment",
                         hint="Export the capture with a body, or make one with "
                              "`python -m backend body`.")
    body, track = load_body(capture.body_path)
    rows = _track_rows(track, capture)
    transforms = track.bone_transforms[rows]
    if track.pose_code is not None and track.pose_code.codes.shape[0] == len(track.frame_numbers):
        codes = track.pose_code.codes[rows]
    else:
        codes = fit_pose_code(transforms, body.bone_parents, pose_components).codes
    std = codes.std(axis=0)
    codes = codes / np.where(std > 1e-8, std, 1.0)
    if track.posed_vertices is not None:
        posed = track.posed_vertices[rows]
    else:
        from ..body.skinning import Skinning

        skin = Skinning(body.weight_indices, body.weight_values, body.bone_count)
        posed = skin(torch.as_tensor(body.rest_vertices), torch.as_tensor(transforms)).numpy()

    images = _read_images(capture, use_normals)
    levels = {r: _targets(capture, images, r, device) for r in sorted(set(resolutions))}
    return CaptureData(
        capture=capture, body=body, track=track,
        bone_transforms=torch.as_tensor(transforms, dtype=torch.float32, device=device),
        pose_codes=torch.as_tensor(codes, dtype=torch.float32, device=device),
        body_vertices=torch.as_tensor(posed, dtype=torch.float32, device=device),
        body_faces=torch.as_tensor(body.faces, dtype=torch.int32, device=device),
        levels=levels)


def _track_rows(track: BodyTrack, capture: Capture) -> np.ndarray:
    lookup = {int(f): i for i, f in enumerate(track.frame_numbers)}
    missing = [f for f in capture.frames if f not in lookup]
    if missing:
        raise ReconError(f"{capture.body_path}: the body track has no frame(s) "
                         f"{missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return np.array([lookup[f] for f in capture.frames])


def _read_images(capture: Capture, use_normals: bool = True) -> dict[str, np.ndarray | None]:
    """Full-resolution arrays: masks (T,H,W) bool, rgb (T,H,W,3) uint8, normals
    (T,H,W,3) uint8 or None, depth (T,H,W) float32 or None."""
    frames = capture.frames
    out = {
        "mask": np.stack([read_mask(capture.mask_path(f)) for f in frames]),
        "rgb": np.stack([read_rgb(capture.frame_path(f)) for f in frames]),
        "normals": None, "depth": None,
    }
    if capture.paths.normals and use_normals:
        out["normals"] = np.stack([read_rgb(capture.normal_path(f)) for f in frames])
    if capture.paths.depth:
        out["depth"] = np.stack([np.load(capture.depth_path(f)).astype(np.float32)
                                 for f in frames])
    return out


def _area(x: np.ndarray | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(T, H, W, C) -> (T, h, w, C) float32 by area averaging."""
    t = torch.as_tensor(np.asarray(x), dtype=torch.float32).permute(0, 3, 1, 2)
    if tuple(t.shape[2:]) != size:
        t = F.interpolate(t, size=size, mode="area")
    return t.permute(0, 2, 3, 1).contiguous()


def _targets(capture: Capture, images, longest_px: int, device) -> Targets:
    h, w = render_size(capture.width, capture.height, longest_px)
    sx, sy = w / capture.width, h / capture.height
    K = np.stack([scaled_intrinsics(c.K, sx, sy) for c in capture.cameras])
    R = np.stack([c.R for c in capture.cameras])
    t = np.stack([c.t for c in capture.cameras])
    camera = Camera.create(torch.as_tensor(K, dtype=torch.float32, device=device),
                           torch.as_tensor(R, dtype=torch.float32, device=device),
                           torch.as_tensor(t, dtype=torch.float32, device=device), w, h)
    mask = _area(images["mask"][..., None].astype(np.float32), (h, w))
    rgb = _area(images["rgb"].astype(np.float32) / 255.0, (h, w)) ** 2.2
    diffuse = None
    if images["normals"] is not None:
        normals = _area(images["normals"].astype(np.float32) / 127.5 - 1.0, (h, w))
        normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        diffuse = (normals * _view_directions(K, h, w)).sum(-1, keepdim=True).clamp(0, 1)
        diffuse = diffuse * (mask > 0.5)
    depth = None
    if images["depth"] is not None:
        d = torch.as_tensor(images["depth"])[:, None]
        depth = F.interpolate(d, size=(h, w), mode="nearest").permute(0, 2, 3, 1).contiguous()
    to = {"device": device}
    return Targets(mask=mask.to(**to), rgb=rgb.to(**to),
                   diffuse=None if diffuse is None else diffuse.to(**to),
                   depth=None if depth is None else depth.to(**to), camera=camera)


def _view_directions(K: np.ndarray, h: int, w: int) -> torch.Tensor:
    """(T, h, w, 3) unit vectors from each pixel's surface point towards the camera,
    camera frame (OpenCV axes)."""
    v, u = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    pixels = np.stack([u, v, np.ones_like(u)], -1).astype(np.float64)      # (h, w, 3)
    rays = np.einsum("tij,hwj->thwi", np.linalg.inv(K), pixels)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    return torch.as_tensor(-rays, dtype=torch.float32)
