"""PNG reading and writing for capture and result bundles (Pillow, imported lazily).

Arrays are numpy, row 0 = top of the image (OpenCV convention, as the cameras).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import CaptureError

MASK_THRESHOLD = 127
"""A mask pixel is garment when its 8-bit value is above this (DESIGN.md)."""


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image, reading only its header.

    Raises:
        CaptureError: the file is missing or not an image Pillow can identify.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise CaptureError(f"{path}: file is missing") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise CaptureError(f"{path}: unreadable image ({exc})") from None


def check_readable(path: Path) -> tuple[int, int]:
    """Verify an image's whole stream (truncation, bad checksums) and return its size.

    Cheaper than decoding the pixels; used for footage frames, which validation
    need not hold in memory.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            size = im.size
            im.verify()
    except FileNotFoundError:
        raise CaptureError(f"{path}: file is missing") from None
    except Exception as exc:  # Pillow raises many types for corrupt data
        raise CaptureError(f"{path}: unreadable image ({exc})") from None
    return size


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image as (H, W, 3) uint8 RGB."""
    return _decode(path, "RGB")


def read_mask(path: Path) -> np.ndarray:
    """Decode a garment mask as an (H, W) bool array (True = garment, value > 127)."""
    return _decode(path, "L") > MASK_THRESHOLD


def _decode(path: Path, mode: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I"):
                # 16-bit masks/frames: scale to 8 bits instead of clipping.
                arr = np.asarray(im, dtype=np.float64) / 257.0
                im = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
            return np.asarray(im.convert(mode))
    except FileNotFoundError:
        raise CaptureError(f"{path}: file is missing") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise CaptureError(f"{path}: unreadable image ({exc})") from None


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write (H, W) or (H, W, 3|4) uint8 pixels, or an (H, W) bool mask, as PNG.

    Written to a temporary name first and renamed, so a crash never leaves a
    truncated image under the final name.
    """
    from PIL import Image

    pixels = np.asarray(pixels)
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    if pixels.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 or bool pixels, got {pixels.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(pixels).save(tmp, format="PNG")
    os.replace(tmp, path)
