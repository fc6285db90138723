"""Errors of the render layer."""

from __future__ import annotations

from ..errors import BackendError


class RenderError(BackendError):
    """Bad input to a render primitive: wrong shape, dtype or device, an index out of
    range, an unknown mode, or a rasterizer backend that cannot be used here.

    Messages state what was expected and what was given, e.g.
    ``"pos_clip must have shape (V,4) or (B,V,4); got (3,5)"``.
    """
