"""Operators: Blender-side actions and I/O. bpy + numpy only; the backend runs in
a subprocess (job_runner), never in Blender's process."""

import bpy

from . import (
    add_body,
    add_demo_scene,
    cancel_job,
    check_backend,
    export_capture,
    import_result,
    install_backend,
    job_control,
    reconstruct,
)

CLASSES = (
    *check_backend.CLASSES,
    *install_backend.CLASSES,
    *cancel_job.CLASSES,
    *export_capture.CLASSES,
    *add_body.CLASSES,
    *add_demo_scene.CLASSES,
    *import_result.CLASSES,
    *reconstruct.CLASSES,
)


def menu_import(self, _context):
    self.layout.operator("garment.import_result", text="Garment Result (folder)")


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.TOPBAR_MT_file_import.append(menu_import)


def unregister():
    job_control.stop_all()
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
