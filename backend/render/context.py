"""Choosing a rasterizer: our pure-torch backend (default) or nvdiffrast (optional).

Both expose the same five methods with nvdiffrast's tensor layouts: ``rasterize``,
``interpolate``, ``texture``, ``antialias`` and ``topology`` (the per-topology table
``antialias`` needs, nvdiffrast's topology hash). Cameras, shading and losses call
these and never know which backend ran.

nvdiffrast is never bundled or required: its licence (NVIDIA Source Code License,
non-commercial) does not allow it as our default. It is used only when asked for and
when it both imports and can create a ``RasterizeCudaContext`` on a CUDA device.
A rasterizer (and its CUDA context) is created once per (kind, device) and reused:
``get_rasterizer`` returns the cached one.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

import torch

from .antialias import DEFAULT_MAX_WALK_STEPS, Topology, antialias, build_topology
from .errors import RenderError
from .interpolate import interpolate
from .rasterize import DEFAULT_CANDIDATE_BUDGET, rasterize
from .texture import texture

log = logging.getLogger(__name__)

KINDS = ("auto", "torch", "nvdiffrast")
NVDIFFRAST_HINT = (
    "install nvdiffrast (https://github.com/NVlabs/nvdiffrast; non-commercial licence) "
    "and use a CUDA device, or choose the 'torch' rasterizer"
)


class Rasterizer(Protocol):
    """What every backend provides; see ``TorchRasterizer`` for the argument layouts."""

    name: str
    device: torch.device

    def rasterize(self, pos, tri, resolution, ranges=None, grad_db=True): ...

    def interpolate(self, attr, rast, tri, rast_db=None, diff_attrs=None): ...

    def texture(self, tex, uv, uv_da=None, mip_level_bias=None, mip=None,
                filter_mode="auto", boundary_mode="wrap", max_mip_level=None): ...

    def antialias(self, color, rast, pos, tri, topology=None, pos_gradient_boost=1.0): ...

    def topology(self, tri): ...


class TorchRasterizer:
    """Our own differentiable rasterizer, plain PyTorch, on any device.

    ``walk`` / ``max_walk_steps``: the silhouette walk of ``antialias`` (on by default;
    see ``backend.render.antialias``). ``candidate_budget``: the memory bound of
    ``rasterize``. The methods take and return exactly what the functions of the same
    names in ``backend.render`` do.
    """

    name = "torch"

    def __init__(self, device: torch.device | str | None = None, walk: bool = True,
                 max_walk_steps: int = DEFAULT_MAX_WALK_STEPS,
                 candidate_budget: int = DEFAULT_CANDIDATE_BUDGET):
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.walk = walk
        self.max_walk_steps = max_walk_steps
        self.candidate_budget = candidate_budget
        self._topology_key: tuple | None = None
        self._topology: Topology | None = None

    def rasterize(self, pos, tri, resolution, ranges=None, grad_db=True):
        return rasterize(pos, tri, resolution, ranges=ranges, grad_db=grad_db,
                         candidate_budget=self.candidate_budget)

    def interpolate(self, attr, rast, tri, rast_db=None, diff_attrs=None):
        return interpolate(attr, rast, tri, rast_db=rast_db, diff_attrs=diff_attrs)

    def texture(self, tex, uv, uv_da=None, mip_level_bias=None, mip=None,
                filter_mode="auto", boundary_mode="wrap", max_mip_level=None):
        return texture(tex, uv, uv_da, mip_level_bias=mip_level_bias, mip=mip,
                       filter_mode=filter_mode, boundary_mode=boundary_mode,
                       max_mip_level=max_mip_level)

    def antialias(self, color, rast, pos, tri, topology=None, pos_gradient_boost=1.0):
        if topology is None:
            topology = self.topology(tri)
        return antialias(color, rast, pos, tri, topology=topology,
                         pos_gradient_boost=pos_gradient_boost, walk=self.walk,
                         max_walk_steps=self.max_walk_steps)

    def topology(self, tri: torch.Tensor) -> Topology:
        """``build_topology(tri)``, cached while ``tri`` is the same unmodified tensor."""
        key = (id(tri), tri.data_ptr(), tuple(tri.shape), tri._version, tri.device)
        if key != self._topology_key or self._topology is None:
            self._topology = build_topology(tri)
            self._topology_key = key
        return self._topology


class NvdiffrastRasterizer:
    """Adapter over nvdiffrast's torch API with ``TorchRasterizer``'s interface.

    Creates one ``RasterizeCudaContext`` on ``device`` (a CUDA device) at construction;
    raises ``RenderError`` when nvdiffrast does not import or the context fails.
    """

    name = "nvdiffrast"

    def __init__(self, device: torch.device | str | None = None):
        self.device = torch.device(device) if device is not None else torch.device("cuda")
        if self.device.type != "cuda":
            raise RenderError(f"nvdiffrast needs a CUDA device; got {self.device}",
                              hint=NVDIFFRAST_HINT)
        try:
            import nvdiffrast.torch as dr
        except Exception as exc:
            raise RenderError(f"nvdiffrast does not import ({type(exc).__name__}: {exc})",
                              hint=NVDIFFRAST_HINT) from exc
        try:
            self._ctx = dr.RasterizeCudaContext(device=self.device)
        except Exception as exc:
            raise RenderError(
                f"nvdiffrast imports but cannot create a CUDA context on {self.device} "
                f"({type(exc).__name__}: {exc})", hint=NVDIFFRAST_HINT) from exc
        self._dr = dr
        self._topology_key: tuple | None = None
        self._topology: Any = None

    def rasterize(self, pos, tri, resolution, ranges=None, grad_db=True):
        return self._dr.rasterize(self._ctx, pos, tri, resolution, ranges=ranges,
                                  grad_db=grad_db)

    def interpolate(self, attr, rast, tri, rast_db=None, diff_attrs=None):
        return self._dr.interpolate(attr, rast, tri, rast_db=rast_db, diff_attrs=diff_attrs)

    def texture(self, tex, uv, uv_da=None, mip_level_bias=None, mip=None,
                filter_mode="auto", boundary_mode="wrap", max_mip_level=None):
        return self._dr.texture(tex, uv, uv_da=uv_da, mip_level_bias=mip_level_bias,
                                mip=mip, filter_mode=filter_mode,
                                boundary_mode=boundary_mode, max_mip_level=max_mip_level)

    def antialias(self, color, rast, pos, tri, topology=None, pos_gradient_boost=1.0):
        if topology is None:
            topology = self.topology(tri)
        return self._dr.antialias(color, rast, pos, tri, topology_hash=topology,
                                  pos_gradient_boost=pos_gradient_boost)

    def topology(self, tri: torch.Tensor):
        """nvdiffrast's topology hash of ``tri``, cached like ``TorchRasterizer``'s."""
        key = (id(tri), tri.data_ptr(), tuple(tri.shape), tri._version, tri.device)
        if key != self._topology_key or self._topology is None:
            self._topology = self._dr.antialias_construct_topology_hash(tri)
            self._topology_key = key
        return self._topology


_CACHE: dict[tuple[str, str], Rasterizer] = {}
_AUTO: dict[str, str] = {}  # device -> the kind "auto" chose (so a failure is not retried)
_LOCK = threading.Lock()


def nvdiffrast_available(device: torch.device | str | None) -> tuple[bool, str]:
    """Whether nvdiffrast can serve ``device``: ``(ok, reason)``. Tries to import it and
    to create a context (cached on success, so the context is made once)."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type != "cuda":
        return False, f"device {dev} is not a CUDA device"
    try:
        _get("nvdiffrast", dev)
    except RenderError as exc:
        return False, str(exc)
    return True, "nvdiffrast imports and a CUDA context was created"


def _normalise_device(device: torch.device) -> torch.device:
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return device


def _get(kind: str, device: torch.device) -> Rasterizer:
    key = (kind, str(device))
    with _LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = TorchRasterizer(device) if kind == "torch" else NvdiffrastRasterizer(device)
            _CACHE[key] = found
            log.info("created %s rasterizer on %s", kind, device)
        return found


def get_rasterizer(kind: str = "auto", device: torch.device | str | None = None
                   ) -> Rasterizer:
    """The rasterizer to use for tensors on ``device`` (default CPU).

    ``kind``: ``"torch"`` (ours), ``"nvdiffrast"`` (raises ``RenderError`` with a hint
    when it cannot be used), or ``"auto"``: nvdiffrast only when it imports AND a
    ``RasterizeCudaContext`` constructs on ``device`` (a CUDA device); otherwise torch.
    The same object is returned for the same (kind, device) every time, so a context is
    created once and reused.
    """
    if kind not in KINDS:
        raise RenderError(f"rasterizer kind must be one of {KINDS}; got {kind!r}")
    try:
        dev = torch.device(device) if device is not None else torch.device("cpu")
    except (RuntimeError, TypeError) as exc:
        raise RenderError(f"device must be a torch device or its name; got {device!r}") \
            from exc
    dev = _normalise_device(dev)
    if kind == "auto":
        chosen = _AUTO.get(str(dev))
        if chosen is None:
            ok, reason = nvdiffrast_available(dev)
            log.info("auto rasterizer on %s: %s (%s)", dev, "nvdiffrast" if ok else "torch",
                     reason)
            chosen = _AUTO[str(dev)] = "nvdiffrast" if ok else "torch"
        kind = chosen
    return _get(kind, dev)


def clear_rasterizer_cache() -> None:
    """Forget every cached rasterizer (and nvdiffrast context); mainly for tests."""
    with _LOCK:
        _CACHE.clear()
        _AUTO.clear()
