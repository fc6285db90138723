"""PNG reading and writing for capture and result bundles (Pillow, imported lazily).

Arrays are numpy, row 0 = top of the image (OpenCV convention, as the cameras).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..fileio import atomic_write
from .errors import CaptureError

MASK_THRESHOLD = 127
"""A mask pixel is garment when its 8-bit value is above this (DESIGN.md)."""


@contextmanager
def _open_image(path: Path) -> Iterator:
    """Open with Pillow; any failure inside the block becomes a CaptureError naming ``path``.

    Pillow signals corrupt data with many exception types (OSError, SyntaxError from
    verify, DecompressionBombError for absurd header sizes, ...), hence the broad catch.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            yield im
    except FileNotFoundError:
        raise CaptureError(f"{path}: file is missing") from None
    except Exception as exc:
        raise CaptureError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image, reading only its header."""
    with _open_image(path) as im:
        return im.size


def check_readable(path: Path) -> tuple[int, int]:
    """Verify an image's whole stream (truncation, bad checksums) and return its size.

    Cheaper than decoding the pixels; used for footage frames, which validation
    need not hold in memory.
    """
    with _open_image(path) as im:
        size = im.size
        im.verify()
    return size


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image as (H, W, 3) uint8 RGB."""
    return _decode(path, "RGB")


def read_mask(path: Path) -> np.ndarray:
    """Decode a garment mask as an (H, W) bool array (True = garment, value > 127)."""
    return _decode(path, "L") > MASK_THRESHOLD


def _decode(path: Path, mode: str) -> np.ndarray:
    from PIL import Image

    with _open_image(path) as im:
        if im.mode in ("I;16", "I;16B", "I"):
            # 16-bit masks/frames: scale to 8 bits instead of clipping.
            arr = np.asarray(im, dtype=np.float64) / 257.0
            return np.asarray(Image.fromarray(arr.clip(0, 255).astype(np.uint8)).convert(mode))
        return np.asarray(im.convert(mode))


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write (H, W) or (H, W, 3|4) uint8 pixels, or an (H, W) bool mask, as PNG.

    Written atomically, so a crash never leaves a truncated image under the final name.
    """
    from PIL import Image

    pixels = np.asarray(pixels)
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    if pixels.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 or bool pixels, got {pixels.dtype}")
    with atomic_write(Path(path)) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
