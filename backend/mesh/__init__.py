"""Mesh layer: the Jacobian/Poisson system (``poisson``), its benchmark (``bench``),
adaptive refinement (``remesh``), templates, and the UV atlas (``uv``).

Importing this package is cheap: it loads neither torch nor scipy. The names below are
resolved on first use (PEP 562), so ``from backend.mesh import PoissonSystem`` works
and ``import backend.mesh`` stays light.
"""

from __future__ import annotations

import importlib

from ..errors import BackendError


class MeshError(BackendError):
    """Bad mesh input: wrong shape or dtype, an index out of range, a degenerate
    (zero-area) face, a tensor on the wrong device, an unknown solver.

    Messages name the argument and the offending face/vertex and state expected vs.
    got, e.g. ``"jacobians must have shape (..., 120, 3, 3); got (2, 119, 3, 3)"``.
    """


_LAZY = {
    "PoissonSystem": "poisson",
    "cotangent_laplacian": "poisson",
    "corner_gradients": "poisson",
    "face_geometry": "poisson",
    "gradient_operator": "poisson",
    "rest_jacobians": "poisson",
    "cholespy_available": "poisson",
    "run_poisson_bench": "bench",
    "remesh": "remesh",
    "RemeshResult": "remesh",
    "unwrap": "uv",
    "UVAtlas": "uv",
}

__all__ = ["MeshError", *sorted(_LAZY)]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this hook
    return value
