"""Keyframes written straight into F-curves, on Blender 4.2 to 5.x.

Blender 4.4 introduced slotted actions (F-curves live in a channelbag per slot, under
layers and strips); 5.0 removed ``Action.fcurves``. ``ActionWriter`` hides the
difference. Keys are bulk-set with ``foreach_set`` (one call per curve, not one per key)
and interpolate linearly, so values between sampled frames do not overshoot.
"""

from __future__ import annotations

import bpy
import numpy as np


class ActionWriter:
    """A new action assigned to ``obj``; ``add_curve`` adds one keyed F-curve.

    Args:
        obj: the object to animate (its animation data is created if needed).
        name: the action's name.
    """

    def __init__(self, obj, name: str):
        self.action = bpy.data.actions.new(name)
        anim = obj.animation_data or obj.animation_data_create()
        anim.action = self.action
        if hasattr(self.action, "slots"):  # Blender 4.4+: slotted actions
            from bpy_extras.anim_utils import action_ensure_channelbag_for_slot

            slot = anim.action_slot or self.action.slots.new(id_type="OBJECT", name=obj.name)
            anim.action_slot = slot
            self._curves = action_ensure_channelbag_for_slot(self.action, slot).fcurves
            self._legacy = False
        else:
            self._curves = self.action.fcurves
            self._legacy = True

    def add_curve(self, data_path: str, index: int, frames: np.ndarray, values: np.ndarray,
                  group: str | None = None):
        """Key ``data_path[index]`` to ``values`` (T,) at ``frames`` (T,); returns the curve."""
        if self._legacy:
            curve = self._curves.new(data_path, index=index, action_group=group or "")
        else:
            curve = self._curves.new(data_path, index=index, group_name=group or "")
        points = curve.keyframe_points
        points.add(len(frames))
        co = np.empty((len(frames), 2), np.float32)
        co[:, 0] = frames
        co[:, 1] = values
        points.foreach_set("co", co.ravel())
        linear = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"]
        points.foreach_set("interpolation", np.full(len(frames), linear.value, np.int32))
        curve.update()
        return curve
