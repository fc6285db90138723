"""Evaluation against ground truth: NGD's Chamfer distance and normal consistency,
point-to-surface distance, mask IoU, PSNR/SSIM, temporal acceleration error, and the
``MetricsRecord`` written to ``metrics.json``.

numpy + scipy only (no torch): the evaluator runs on result bundles anywhere.
``quality`` scores a result bundle against a synthetic capture's ``gt/`` folder.
"""

from .errors import EvalError
from .metrics import (
    EvalSettings,
    MetricsRecord,
    SurfaceMetrics,
    acceleration_error,
    chamfer_distance,
    chamfer_points,
    chamfer_x1e3,
    evaluate,
    mask_iou,
    psnr,
    same_topology,
    ssim,
    surface_metrics,
    tracked_points,
)
from .sampling import ClosestPoints, SurfaceSamples, closest_points, sample_surface

__all__ = [
    "ClosestPoints",
    "EvalError",
    "EvalSettings",
    "MetricsRecord",
    "SurfaceMetrics",
    "SurfaceSamples",
    "acceleration_error",
    "chamfer_distance",
    "chamfer_points",
    "chamfer_x1e3",
    "closest_points",
    "evaluate",
    "mask_iou",
    "psnr",
    "same_topology",
    "sample_surface",
    "ssim",
    "surface_metrics",
    "tracked_points",
]
