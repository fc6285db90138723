"""Errors of the evaluation layer."""

from __future__ import annotations

from ..errors import BackendError


class EvalError(BackendError):
    """Bad input to a metric: wrong shape, dtype or range, mismatched frames or
    topologies, a mesh without area. Messages name the argument (and frame) at fault
    and state expected vs. got, e.g. ``"gt_masks must have shape (T, H, W) matching
    pred_masks (4, 32, 32); got (4, 32, 30)"``.
    """
