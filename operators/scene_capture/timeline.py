"""Frame ranges, and stepping a scene through frames with its frame restored."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import bpy

from ..base import GarmentError


def export_frames(scene, settings) -> tuple[int, ...]:
    """The Blender frame numbers to export: the scene's range or the sidebar's own.

    Every frame of the range (``frame_step`` is ignored: reconstruction wants them all).
    """
    if settings.use_scene_frame_range:
        start, end, where = scene.frame_start, scene.frame_end, f"scene '{scene.name}'"
    else:
        start, end, where = settings.frame_start, settings.frame_end, "the Garment sidebar"
    if end < start:
        raise GarmentError(f"Frame range {start}..{end} of {where} is empty: the end frame "
                           "must not come before the start frame")
    return tuple(range(start, end + 1))


def scene_fps(scene) -> float:
    """Frames per second of ``scene`` (``fps / fps_base``: 29.97 is 30 / 1.001)."""
    return scene.render.fps / scene.render.fps_base


def depsgraph_of(scene):
    """The evaluated dependency graph of ``scene`` (its view layer in the context, if any)."""
    context = bpy.context
    if context.scene == scene and context.view_layer is not None:
        return context.evaluated_depsgraph_get()
    return scene.view_layers[0].depsgraph


@contextmanager
def frame_restored(scene) -> Iterator[None]:
    """Restore the scene's frame (and subframe) when the block ends, however it ends."""
    before = (scene.frame_current, scene.frame_subframe)
    try:
        yield
    finally:
        scene.frame_set(before[0], subframe=before[1])


def set_frame(scene, frame: int):
    """Evaluate ``scene`` at ``frame``; returns its evaluated dependency graph."""
    scene.frame_set(int(frame))
    return depsgraph_of(scene)


def check_evaluated(obj, depsgraph, role: str) -> object:
    """``obj`` evaluated in ``depsgraph``; GarmentError if the view layer leaves it out
    (then Blender evaluates neither its animation nor its modifiers)."""
    evaluated = obj.evaluated_get(depsgraph)
    if not evaluated.is_evaluated:
        raise GarmentError(f"{role} '{obj.name}' is not evaluated in the view layer: it is "
                           "disabled in viewports or its collection is excluded; enable it")
    return evaluated
