"""Capture bundle: the reconstruction's input folder (load, validate, save)."""

from .bundle import (
    CAPTURE_FILE,
    CAPTURE_VERSION,
    GARMENT_TYPES,
    Capture,
    CapturePaths,
    FrameCamera,
    frame_file_name,
    load_capture,
)
from .errors import CaptureError
from .images import read_mask, read_rgb, write_png
from .validate import BODY_FRAMES_KEY, BODY_TRANSFORMS_KEY, ValidationReport, validate_capture

__all__ = [
    "BODY_FRAMES_KEY",
    "BODY_TRANSFORMS_KEY",
    "CAPTURE_FILE",
    "CAPTURE_VERSION",
    "GARMENT_TYPES",
    "Capture",
    "CaptureError",
    "CapturePaths",
    "FrameCamera",
    "ValidationReport",
    "frame_file_name",
    "load_capture",
    "read_mask",
    "read_rgb",
    "validate_capture",
    "write_png",
]
