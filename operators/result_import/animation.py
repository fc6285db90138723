"""F-curves made fast (keyframe_points.add + foreach_set) on slotted or legacy actions.

Blender 4.4 introduced slotted actions and 5.0 removed ``Action.fcurves``: F-curves
live in a channelbag per (layer, strip, slot). ``fcurves_for`` hides the difference:
it assigns the action (and on slotted Blenders a new slot) to the datablock and
returns the collection to call ``.new(data_path)`` on.
"""

from __future__ import annotations

import bpy
import numpy as np
from bpy_extras import anim_utils

# Keyframe.interpolation stored as its enum value; BEZT_IPO_CONST is 0 in DNA
_CONSTANT = 0


def fcurves_for(id_data: bpy.types.ID, action: bpy.types.Action):
    """Assign ``action`` to ``id_data`` and return where its F-curves go.

    Returns the channelbag's ``fcurves`` (Blender >= 4.5, slotted actions; the slot is
    created here, named after ``id_data``) or ``action.fcurves`` (4.2-4.4, legacy).
    """
    anim = id_data.animation_data or id_data.animation_data_create()
    ensure = getattr(anim_utils, "action_ensure_channelbag_for_slot", None)
    if ensure is None:  # legacy: one implicit slot, F-curves on the action itself
        anim.action = action
        return action.fcurves
    slot = action.slots.new(id_type=id_data.id_type, name=id_data.name)
    anim.action = action
    anim.action_slot = slot
    return ensure(action, slot).fcurves


def add_constant_fcurve(fcurves, data_path: str, frames: np.ndarray, values: np.ndarray):
    """One F-curve of CONSTANT (stepped) keys: holds each value until the next key.

    Args:
        fcurves: what ``fcurves_for`` returned.
        data_path: RNA path relative to the animated datablock.
        frames: (K,) increasing Blender frames of the keys.
        values: (K,) value at each key.

    Before the first key the curve holds the first value, after the last the last
    value (constant extrapolation), and a sub-frame shows the key at or before it.
    """
    fc = fcurves.new(data_path)
    K = len(frames)
    co = np.empty((K, 2), np.float32)
    co[:, 0] = frames
    co[:, 1] = values
    points = fc.keyframe_points
    points.add(K)
    points.foreach_set("co", co.ravel())
    points.foreach_set("interpolation", np.full(K, _CONSTANT, np.int32))
    fc.update()
    return fc
