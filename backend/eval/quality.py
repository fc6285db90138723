"""Ground-truth evaluation of a reconstruction against a synthetic capture's ``gt/``
folder, which has the result-bundle layout (``gt/garment.npz``: faces, per-frame
world-space vertices, frame numbers; ``backend/jobs/result.py``).

Frames are matched by Blender frame number, never by position: a result of frames
2..5 is scored against the ground truth's frames 2..5, whatever else ``gt/`` holds.
The returned dict is ``MetricsRecord.to_dict()`` (``summary``, ``per_frame``,
``frames``, ...), what ``metrics.json`` stores under ``ground_truth``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..jobs.result import read_result
from .errors import EvalError
from .metrics import EvalSettings, MetricsRecord, evaluate
from .sampling import as_array


def _gt_rows(gt_frames: np.ndarray, frames: np.ndarray, where: str) -> np.ndarray:
    """Row of each of ``frames`` in the ground truth's frame numbers, or EvalError."""
    lookup = {int(f): i for i, f in enumerate(gt_frames)}
    missing = [int(f) for f in frames if int(f) not in lookup]
    if missing:
        shown = ", ".join(str(f) for f in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise EvalError(f"{where} has no frame {shown} (it holds frames "
                        f"{int(gt_frames.min())}..{int(gt_frames.max())}, {len(gt_frames)} "
                        "in all)")
    return np.array([lookup[int(f)] for f in frames], dtype=np.int64)


def ground_truth_record(vertices, faces, frames, gt: Path | str,
                        settings: EvalSettings | None = None, **scene) -> MetricsRecord:
    """Score per-frame vertices ``(T, V, 3)`` (world space, metres) with ``faces``
    ``(F, 3)``, for Blender frame numbers ``frames`` ``(T,)``, against the ``gt``
    folder. Returns the ``MetricsRecord`` (surface metrics per frame, acceleration
    error when the frames allow it). ``scene``: ``view_points``, ``body_vertices`` and
    ``body_faces`` for ``metrics.evaluate`` (front/back halves, body penetration)."""
    v = as_array(vertices, "vertices")
    frame_numbers = as_array(frames, "frames").reshape(-1)
    if v.ndim != 3 or v.shape[0] != len(frame_numbers):
        raise EvalError(f"vertices must have shape (T, V, 3) with T = {len(frame_numbers)} "
                        f"frames; got {v.shape}")
    bundle = read_result(gt)
    where = str(Path(gt) / "garment.npz")
    rows = _gt_rows(bundle.garment.frame_numbers, frame_numbers, where)
    return evaluate(frame_numbers, pred_vertices=v, pred_faces=faces,
                    gt_vertices=bundle.garment.vertices[rows], gt_faces=bundle.garment.faces,
                    settings=settings, **scene)


def evaluate_vertices(vertices, faces, frames, gt: Path | str,
                      settings: EvalSettings | None = None, **scene) -> dict:
    """``ground_truth_record(...).to_dict()``: JSON-ready metrics for ``metrics.json``."""
    return ground_truth_record(vertices, faces, frames, gt, settings, **scene).to_dict()


def evaluate_result(result: Path | str, gt: Path | str,
                    settings: EvalSettings | None = None) -> dict:
    """Score a result bundle folder (``result/garment.npz``) against a ``gt`` folder;
    every frame of the result must exist in the ground truth. JSON-ready dict."""
    garment = read_result(result).garment
    return evaluate_vertices(garment.vertices, garment.faces, garment.frame_numbers, gt,
                             settings)
