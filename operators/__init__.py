"""Operators: Blender-side actions and I/O. bpy + numpy only; the backend runs in
a subprocess (job_runner), never in Blender's process."""

import bpy

from . import add_body, cancel_job, check_backend, export_capture, job_control

CLASSES = (
    *check_backend.CLASSES,
    *cancel_job.CLASSES,
    *export_capture.CLASSES,
    *add_body.CLASSES,
)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    job_control.stop_all()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
