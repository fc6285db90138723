"""Differentiable rendering: one interface with nvdiffrast's four primitives
(``rasterize``, ``interpolate``, ``texture``, ``antialias``) and two implementations,
our own in plain PyTorch (default, CPU and CUDA) and nvdiffrast (optional, CUDA only,
non-commercial licence); OpenCV cameras; the reconstruction's render passes.

Typical use::

    rasterizer = get_rasterizer("auto", device=verts.device)   # once
    camera = Camera.create(K, R, t, width, height)
    passes = render_passes(rasterizer, verts, faces, camera)    # every step

This package imports torch (the CLI imports ``backend.render.bench`` lazily).
"""

from .antialias import Topology, antialias, build_topology
from .camera import Camera, look_at, opencv_projection, scene_near_far
from .context import (
    NvdiffrastRasterizer,
    Rasterizer,
    TorchRasterizer,
    clear_rasterizer_cache,
    get_rasterizer,
    nvdiffrast_available,
)
from .errors import RenderError
from .interpolate import interpolate
from .mesh_utils import icosphere, uniform_laplacian, vertex_normals
from .passes import Lighting, RenderPasses, render_passes
from .rasterize import rasterize
from .texture import texture, texture_construct_mip

__all__ = [
    "Camera",
    "Lighting",
    "NvdiffrastRasterizer",
    "Rasterizer",
    "RenderError",
    "RenderPasses",
    "Topology",
    "TorchRasterizer",
    "antialias",
    "build_topology",
    "clear_rasterizer_cache",
    "get_rasterizer",
    "icosphere",
    "interpolate",
    "look_at",
    "nvdiffrast_available",
    "opencv_projection",
    "rasterize",
    "render_passes",
    "scene_near_far",
    "texture",
    "texture_construct_mip",
    "uniform_laplacian",
    "vertex_normals",
]
