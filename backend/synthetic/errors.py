"""Errors of the synthetic-capture preparation (``python -m backend synth prepare``)."""

from __future__ import annotations

from ..errors import BackendError


class SynthError(BackendError):
    """A synthetic capture cannot be prepared from the arguments given: unknown garment
    type, motion or texture kind, a bad frame count or size, an output folder that
    would be overwritten, or a body the garment generator cannot dress."""
