"""One shape key per result frame, switched on for exactly its own frames.

Keying (the cheapest that is exact): the key of frame f_k gets CONSTANT keys
(f_{k-1}, 0), (f_k, 1), (f_{k+1}, 0) — the first key omits the leading 0 and the last
the trailing 0. With constant interpolation and extrapolation its value is 1 on
[f_k, f_{k+1}) and 0 elsewhere, so:

- at any sub-frame of f_k (motion blur, frame_set(t, subframe)) exactly frame f_k shows;
- in a gap between result frames the last frame before the gap holds;
- before the first frame the first frame shows, after the last the last one.

At most 3 keys per shape key (3T - 2 in all); one key per frame and curve would not
do, since a constant curve extrapolates its first value backwards.
"""

from __future__ import annotations

import bpy
import numpy as np

from .animation import add_constant_fcurve, fcurves_for

BASIS_NAME = "Basis"


def frame_key_name(frame: int) -> str:
    """Shape key name of a Blender frame, e.g. ``frame_0012``."""
    return f"frame_{int(frame):04d}"


def switch_keys(frame_numbers: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per shape key, the (frames, values) of its CONSTANT F-curve (module docstring).

    frame_numbers: (T,) strictly increasing Blender frames. Returns T pairs of
    (K,) float32 arrays, K <= 3.
    """
    f = np.asarray(frame_numbers, np.int64)
    T = len(f)
    out = []
    for k in range(T):
        frames, values = [f[k]], [1.0]
        if k > 0:
            frames.insert(0, f[k - 1])
            values.insert(0, 0.0)
        if k < T - 1:
            frames.append(f[k + 1])
            values.append(0.0)
        out.append((np.array(frames, np.float32), np.array(values, np.float32)))
    return out


def add_frame_shape_keys(
    obj: bpy.types.Object,
    vertices: np.ndarray,
    frame_numbers: np.ndarray,
    action: bpy.types.Action,
) -> None:
    """Give ``obj`` a Basis plus one key per frame, and ``action`` the F-curves switching them.

    Args:
        obj: a mesh object without shape keys; its mesh holds the basis positions.
        vertices: (T, V, 3) float32 object-space positions (metres) per frame.
        frame_numbers: (T,) strictly increasing Blender frame of each row.
        action: an empty action (made by the caller, who owns its clean-up); it is
            assigned to the shape-key datablock.

    Relative keys add (key - basis) to the basis, so the
    evaluated positions equal ``vertices[k]`` up to float32 rounding (one ulp of the
    coordinate's magnitude).
    """
    obj.shape_key_add(name=BASIS_NAME, from_mix=False)
    vertices = np.ascontiguousarray(vertices, np.float32)
    names = [frame_key_name(f) for f in frame_numbers]
    for name, co in zip(names, vertices, strict=True):
        block = obj.shape_key_add(name=name, from_mix=False)
        block.points.foreach_set("co", co.ravel())
    key = obj.data.shape_keys
    fcurves = fcurves_for(key, action)
    for name, (frames, values) in zip(names, switch_keys(frame_numbers), strict=True):
        add_constant_fcurve(fcurves, f'key_blocks["{name}"].value', frames, values)
