"""Build the garment's Blender mesh from numpy arrays (foreach_set, no Python lists)."""

from __future__ import annotations

import bpy
import numpy as np

UV_MAP_NAME = "UVMap"


def build_mesh(
    name: str,
    vertices: np.ndarray,
    faces: np.ndarray,
    uv: np.ndarray | None = None,
) -> bpy.types.Mesh:
    """A new triangle mesh datablock, smooth shaded, with a UV map when ``uv`` is given.

    Args:
        name: datablock name (Blender appends .001 etc. when taken).
        vertices: (V, 3) float, object-space positions in metres (Z up).
        faces: (F, 3) int, vertex indices, counter-clockwise seen from outside;
            no repeated index within a face (the caller drops degenerate faces).
        uv: (F, 3, 2) float per-corner texture coordinates, v up (Blender's
            convention), corner order matching ``faces``; or None.

    Polygon f uses loops 3f, 3f+1, 3f+2, so per-corner data maps one to one.
    """
    V, F = len(vertices), len(faces)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(V)
    mesh.vertices.foreach_set("co", np.ascontiguousarray(vertices, np.float32).ravel())
    mesh.loops.add(3 * F)
    mesh.loops.foreach_set("vertex_index", np.ascontiguousarray(faces, np.int32).ravel())
    mesh.polygons.add(F)
    # loop_total follows from loop_start in Blender >= 4.0 (it is read-only there)
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * F, 3, dtype=np.int32))
    if uv is not None:
        layer = mesh.uv_layers.new(name=UV_MAP_NAME)
        layer.data.foreach_set("uv", np.ascontiguousarray(uv, np.float32).ravel())
    mesh.update(calc_edges=True)
    mesh.shade_smooth()
    return mesh


def read_uv(mesh: bpy.types.Mesh, name: str = UV_MAP_NAME) -> np.ndarray:
    """The per-corner UVs of ``mesh`` as (F, 3, 2) float32 (triangle meshes only)."""
    out = np.empty(len(mesh.loops) * 2, np.float32)
    mesh.uv_layers[name].data.foreach_get("uv", out)
    return out.reshape(-1, 3, 2)

