"""Errors of the reconstruction layer."""

from __future__ import annotations

from ..errors import BackendError


class ReconError(BackendError):
    """A reconstruction cannot start or continue: bad settings, inputs or checkpoint."""
