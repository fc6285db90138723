"""A capture loaded for training: targets at the render resolutions, cameras, body track.

Everything the step loop reads is a tensor on the training device, made once here:
masks, linear RGB, NGD's diffuse target (from the normal maps), depth, per-frame
cameras scaled to each resolution, bone transforms, normalised pose codes and the
posed body (an occluder). Images are area-averaged down to the render size.

With ``crop_margin`` set, each frame is first cut to a square around its garment mask
(the mask's box grown by the margin on every side) and that square is what gets
rendered: the whole render budget goes to the garment instead of to the background
around a full-body shot (a skirt framed with the whole person covers ~2 % of the
pixels; in its crop ~40 %). A crop is a camera like any other -- the principal point
shifted, the focal length scaled -- so nothing downstream knows the difference.
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
        crops: (T, 3) int64 ``(x0, y0, side)`` square crop per frame in capture pixels
            (may reach past the image border), or None (whole frames).
    """

    capture: Capture
    body: SkinnedBody
    track: BodyTrack
    bone_transforms: torch.Tensor
    pose_codes: torch.Tensor
    body_vertices: torch.Tensor
    body_faces: torch.Tensor
    levels: dict[int, Targets]
    crops: np.ndarray | None = None

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


def crop_boxes(masks: np.ndarray, margin: float, min_side_px: int = 16) -> np.ndarray:
    """(T, H, W) bool masks -> (T, 3) int64 square crops ``(x0, y0, side)``.

    Each square is centred on its mask's bounding box, with a side of the box's longer
    side times ``1 + 2 margin`` (at least ``min_side_px``, at most large enough to hold
    the whole image), and shifted to lie inside the image where it fits. A frame with
    an empty mask gets the square around the whole image.
    """
    count, height, width = masks.shape
    full = max(height, width)
    boxes = np.zeros((count, 3), dtype=np.int64)
    for i, mask in enumerate(masks):
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            side, cx, cy = full, width / 2, height / 2
        else:
            bw, bh = cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0]
            side = int(np.ceil(max(bw, bh) * (1 + 2 * margin)))
            side = min(max(side, min_side_px), full)
            cx, cy = (cols[0] + cols[-1] + 1) / 2, (rows[0] + rows[-1] + 1) / 2
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        # inside the image where the square fits (no padding needed then)
        if side <= width:
            x0 = min(max(x0, 0), width - side)
        if side <= height:
            y0 = min(max(y0, 0), height - side)
        boxes[i] = (x0, y0, side)
    return boxes


def load_capture_data(capture: Capture, resolutions: tuple[int, ...], device: torch.device,
                      pose_components: int = 4, use_normals: bool = True,
                      crop_margin: float | None = None) -> CaptureData:
    """Read images, cameras and the body of ``capture`` (already validated).

    Args:
        resolutions: longest-side sizes in pixels to prepare targets for (with crops:
            the side of the square crop renders).
        pose_components: PCA components when body.npz has no pose code.
        use_normals: read the capture's normal maps (when it has them); False leaves
            them out (``diffuse`` targets None), as for a capture without them.
        crop_margin: None renders whole frames; a number crops each frame to the square
            around its garment mask grown by that fraction of the box on every side
            (``crop_boxes``).
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
    crops = crop_boxes(images["mask"], crop_margin) if crop_margin is not None else None
    levels = {r: _targets(capture, images, r, device, crops) for r in sorted(set(resolutions))}
    return CaptureData(
        capture=capture, body=body, track=track,
        bone_transforms=torch.as_tensor(transforms, dtype=torch.float32, device=device),
        pose_codes=torch.as_tensor(codes, dtype=torch.float32, device=device),
        body_vertices=torch.as_tensor(posed, dtype=torch.float32, device=device),
        body_faces=torch.as_tensor(body.faces, dtype=torch.int32, device=device),
        levels=levels, crops=crops)


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


def _crop(x: np.ndarray, boxes: np.ndarray, size: int, nearest: bool = False) -> torch.Tensor:
    """(T, H, W, C) -> (T, size, size, C) float32: each frame's square ``(x0, y0, side)``
    (zeros past the image border), resampled with antialiasing (``nearest`` for depth,
    where blending across an edge would invent depths)."""
    count, height, width, channels = x.shape
    out = torch.empty(count, channels, size, size, dtype=torch.float32)
    for i, (x0, y0, side) in enumerate(boxes):
        piece = np.zeros((side, side, channels), dtype=np.float32)
        sx0, sy0 = max(x0, 0), max(y0, 0)
        sx1, sy1 = min(x0 + side, width), min(y0 + side, height)
        if sx1 > sx0 and sy1 > sy0:
            piece[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = x[i, sy0:sy1, sx0:sx1]
        t = torch.from_numpy(piece).permute(2, 0, 1)[None]
        if nearest:
            out[i] = F.interpolate(t, size=(size, size), mode="nearest")[0]
        else:
            out[i] = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True,
                                   align_corners=False)[0]
    return out.permute(0, 2, 3, 1).contiguous()


def _targets(capture: Capture, images, longest_px: int, device,
             crops: np.ndarray | None = None) -> Targets:
    if crops is None:
        h, w = render_size(capture.width, capture.height, longest_px)
        sx, sy = w / capture.width, h / capture.height
        K = np.stack([scaled_intrinsics(c.K, sx, sy) for c in capture.cameras])

        def resample(x, nearest=False):
            if nearest:
                d = torch.as_tensor(np.asarray(x)).permute(0, 3, 1, 2)
                return F.interpolate(d, size=(h, w), mode="nearest").permute(0, 2, 3, 1)
            return _area(x, (h, w))
    else:
        h = w = longest_px
        K = []
        for c, (x0, y0, side) in zip(capture.cameras, crops, strict=True):
            shifted = c.K.astype(np.float64).copy()
            shifted[0, 2] -= x0
            shifted[1, 2] -= y0
            K.append(scaled_intrinsics(shifted, w / side, h / side))
        K = np.stack(K)

        def resample(x, nearest=False):
            return _crop(np.asarray(x, dtype=np.float32), crops, h, nearest)
    R = np.stack([c.R for c in capture.cameras])
    t = np.stack([c.t for c in capture.cameras])
    camera = Camera.create(torch.as_tensor(K, dtype=torch.float32, device=device),
                           torch.as_tensor(R, dtype=torch.float32, device=device),
                           torch.as_tensor(t, dtype=torch.float32, device=device), w, h)
    mask = resample(images["mask"][..., None].astype(np.float32)).clamp(0, 1)
    rgb = resample(images["rgb"].astype(np.float32) / 255.0).clamp(0, 1) ** 2.2
    diffuse = None
    if images["normals"] is not None:
        normals = resample(images["normals"].astype(np.float32) / 127.5 - 1.0)
        normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        diffuse = (normals * _view_directions(K, h, w)).sum(-1, keepdim=True).clamp(0, 1)
        diffuse = diffuse * (mask > 0.5)
    depth = None
    if images["depth"] is not None:
        depth = resample(images["depth"][..., None], nearest=True).contiguous()
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
