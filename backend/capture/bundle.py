"""The capture bundle: what the reconstruction reads (DESIGN.md, "Capture bundle").

A capture is a folder::

    capture.json          version, fps, image size, garment type, paths, per-frame cameras
    frames/NNNNNN.png     RGB footage, one file per Blender frame number
    masks/NNNNNN.png      garment mask, 8-bit, > 127 = garment
    normals/NNNNNN.png    optional: camera-space normals, RGB = (n * 0.5 + 0.5) * 255, OpenCV axes
    depth/NNNNNN.npy      optional: (H, W) float32 camera-space depth in metres, 0 = unknown
    body.npz              body model and its per-frame track (see backend/body)

``NNNNNN`` is the Blender frame number, zero-padded to six digits, never a position
in a sorted list. Cameras use the OpenCV convention: K in pixels with the image
origin at the top-left corner and +y down; R|t maps Z-up world metres to camera
space (x right, y down, z forward).

``load_capture`` reads and checks ``capture.json`` only (fast); file-level checks
live in ``validate.py``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..config import from_dict, to_dict
from ..errors import ConfigError
from ..fileio import atomic_write
from .errors import CaptureError

CAPTURE_VERSION = 1
"""The newest capture.json version this backend reads (and the one it writes)."""

CAPTURE_FILE = "capture.json"

GarmentType = Literal[
    "skirt", "flared_skirt", "dress", "tshirt", "long_sleeve", "trousers", "shorts", "template"
]
GARMENT_TYPES: tuple[str, ...] = GarmentType.__args__

ROTATION_TOLERANCE = 1e-4
"""Max |R^T R - I| entry and |det R - 1| for R to count as a rotation."""


@dataclass(frozen=True)
class CapturePaths:
    """Folder and file names inside the capture, relative to its root.

    ``normals``/``depth``/``body`` are None when the capture has none.
    """

    frames: str = "frames"
    masks: str = "masks"
    body: str | None = "body.npz"
    normals: str | None = None
    depth: str | None = None


@dataclass(frozen=True)
class FrameCamera:
    """One frame's camera, OpenCV convention.

    K: (3, 3) float64 intrinsics in pixels (fx, fy, cx, cy; origin top-left, +y down).
    R: (3, 3) float64 world-to-camera rotation.
    t: (3,) float64 world-to-camera translation in metres: x_cam = R @ x_world + t.
    """

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray


@dataclass
class Capture:
    """A capture bundle's metadata, as stored in capture.json.

    Attributes:
        root: the bundle folder.
        frames: Blender frame numbers, strictly increasing.
        cameras: one FrameCamera per entry of ``frames``.
        fps: frames per second of the footage.
        width, height: image size in pixels, shared by every image in the bundle.
        garment_type: one of GARMENT_TYPES.
        paths: where the images and body live inside ``root``.
        version: capture.json version.
    """

    root: Path
    frames: tuple[int, ...]
    cameras: tuple[FrameCamera, ...]
    fps: float
    width: int
    height: int
    garment_type: str
    paths: CapturePaths = field(default_factory=CapturePaths)
    version: int = CAPTURE_VERSION

    @property
    def extras(self) -> tuple[str, ...]:
        """Optional image sets this capture has, among ("normals", "depth")."""
        return tuple(name for name in ("normals", "depth") if getattr(self.paths, name))

    def frame_path(self, frame: int) -> Path:
        return self.root / self.paths.frames / frame_file_name(frame)

    def mask_path(self, frame: int) -> Path:
        return self.root / self.paths.masks / frame_file_name(frame)

    def normal_path(self, frame: int) -> Path | None:
        if not self.paths.normals:
            return None
        return self.root / self.paths.normals / frame_file_name(frame)

    def depth_path(self, frame: int) -> Path | None:
        if not self.paths.depth:
            return None
        return self.root / self.paths.depth / frame_file_name(frame, ".npy")

    @property
    def body_path(self) -> Path | None:
        return self.root / self.paths.body if self.paths.body else None

    def camera(self, frame: int) -> FrameCamera:
        try:
            return self.cameras[self.frames.index(frame)]
        except ValueError:
            raise CaptureError(f"{self.root / CAPTURE_FILE}: no frame {frame}") from None

    def without_frames(self, drop: set[int]) -> Capture:
        """A copy that leaves out the given frame numbers (files are untouched)."""
        keep = [i for i, f in enumerate(self.frames) if f not in drop]
        return dataclasses.replace(
            self,
            frames=tuple(self.frames[i] for i in keep),
            cameras=tuple(self.cameras[i] for i in keep),
        )

    def save(self) -> Path:
        """Write capture.json into ``root`` (atomically: temp file, then rename)."""
        data = {
            "version": self.version,
            "fps": self.fps,
            "image_size": [self.width, self.height],
            "garment_type": self.garment_type,
            "paths": to_dict(self.paths),
            "frames": [
                {
                    "frame": int(f),
                    "K": np.asarray(c.K, dtype=float).tolist(),
                    "R": np.asarray(c.R, dtype=float).tolist(),
                    "t": np.asarray(c.t, dtype=float).tolist(),
                }
                for f, c in zip(self.frames, self.cameras, strict=True)
            ],
        }
        path = self.root / CAPTURE_FILE
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(data, indent=1))
        return path


def frame_file_name(frame: int, suffix: str = ".png") -> str:
    """File name of a frame: its Blender frame number padded to six digits."""
    return f"{frame:06d}{suffix}"


def load_capture(root: Path | str) -> Capture:
    """Read and check capture.json (not the images; see ``validate_capture``).

    Raises:
        CaptureError: missing or malformed capture.json, unknown version, bad cameras.
            ``problems`` lists every camera problem found, each naming its frame.
    """
    root = Path(root)
    path = root / CAPTURE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CaptureError(
            f"{path}: file is missing",
            hint="a capture folder needs capture.json; export one from Blender",
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaptureError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CaptureError(f"{path}: expected a JSON object at the top level")

    version = data.get("version")
    if version != CAPTURE_VERSION:
        raise CaptureError(
            f"{path}: unknown capture version {version!r}; this backend reads version "
            f"{CAPTURE_VERSION}",
            hint="update the extension, or re-export the capture with this version",
        )
    try:
        header = from_dict(_CaptureFile, data, str(path))
    except ConfigError as exc:
        raise CaptureError(str(exc)) from None

    if len(header.image_size) != 2 or min(header.image_size) <= 0:
        raise CaptureError(
            f"{path}: image_size must be [width, height] > 0, got {list(header.image_size)}"
        )
    if not (math.isfinite(header.fps) and header.fps > 0):
        raise CaptureError(f"{path}: fps must be a positive number, got {header.fps}")
    if not header.frames:
        raise CaptureError(f"{path}: the capture lists no frames")

    problems = []
    numbers = [entry.frame for entry in header.frames]
    for prev, cur in zip(numbers, numbers[1:], strict=False):
        if cur <= prev:
            problems.append(
                f"{path}: frame numbers must be strictly increasing; frame {cur} follows {prev}"
            )
    cameras = []
    for entry in header.frames:
        camera, camera_problems = _parse_camera(entry)
        problems += [f"{path}: frame {entry.frame}: {p}" for p in camera_problems]
        cameras.append(camera)
    if problems:
        raise CaptureError.collected(path, problems)

    return Capture(
        root=root,
        frames=tuple(numbers),
        cameras=tuple(cameras),
        fps=header.fps,
        width=header.image_size[0],
        height=header.image_size[1],
        garment_type=header.garment_type,
        paths=header.paths,
        version=header.version,
    )


@dataclass(frozen=True)
class _FrameEntry:
    frame: int
    K: tuple[tuple[float, ...], ...]
    R: tuple[tuple[float, ...], ...]
    t: tuple[float, ...]


@dataclass(frozen=True)
class _CaptureFile:
    """capture.json as stored (parsed by ``config.from_dict``)."""

    version: int
    fps: float
    image_size: tuple[int, ...]
    garment_type: GarmentType
    frames: tuple[_FrameEntry, ...]
    paths: CapturePaths = field(default_factory=CapturePaths)


def _parse_camera(entry: _FrameEntry) -> tuple[FrameCamera, list[str]]:
    problems = []

    def as_array(name, value, shape):
        try:
            arr = np.array(value, dtype=np.float64)
        except ValueError:
            arr = None
        if arr is None or arr.shape != shape:
            problems.append(f"{name} must have shape {shape}, got {np.shape(value)}")
            return np.full(shape, np.nan)
        if not np.isfinite(arr).all():
            problems.append(f"{name} has non-finite values {arr.tolist()}")
        return arr

    K = as_array("K", entry.K, (3, 3))
    R = as_array("R", entry.R, (3, 3))
    t = as_array("t", entry.t, (3,))
    if np.isfinite(K).all():
        if not (K[0, 0] > 0 and K[1, 1] > 0):
            problems.append(f"K focal lengths must be > 0, got fx={K[0, 0]}, fy={K[1, 1]}")
        if not np.allclose(K[2], [0.0, 0.0, 1.0]):
            problems.append(f"K last row must be [0, 0, 1], got {K[2].tolist()}")
    if np.isfinite(R).all():
        ortho = np.abs(R.T @ R - np.eye(3)).max()
        det = np.linalg.det(R)
        if ortho > ROTATION_TOLERANCE or abs(det - 1.0) > ROTATION_TOLERANCE:
            problems.append(
                f"R is not a rotation (max |R^T R - I| = {ortho:.3g}, det = {det:.6g}; "
                "expected an orthonormal matrix with det 1)"
            )
    return FrameCamera(K=K, R=R, t=t), problems

