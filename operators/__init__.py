"""Operators: Blender-side actions and I/O. bpy + numpy only; the backend runs in
a subprocess (job_runner), never in Blender's process."""

import bpy

from . import cancel_job, check_backend, job_control

CLASSES = (
    *check_backend.CLASSES,
    *cancel_job.CLASSES,
)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    job_control.stop_all()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
