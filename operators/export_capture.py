"""Export Capture: write the scene's footage, masks, camera and body as a capture bundle.

The work is ``scene_capture.bundle_writer.export_capture`` (plain functions, reused by
Reconstruct Garment); this operator reads the sidebar settings, shows progress and
keeps the outcome (``last_export``) for the sidebar to draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
from bpy.props import BoolProperty, StringProperty

from .base import GarmentError, GarmentOperator


@dataclass(frozen=True)
class ExportOutcome:
    """The latest export of this session, for the sidebar.

    ok: whether it finished; message: the folder written, or the error to fix.
    """

    ok: bool
    message: str


_last: list[ExportOutcome] = []


def last_export() -> ExportOutcome | None:
    """The outcome of the latest Export Capture in this session, or None."""
    return _last[-1] if _last else None


def _remember(outcome: ExportOutcome) -> None:
    _last[:] = [outcome]


class GARMENT_OT_export_capture(GarmentOperator, bpy.types.Operator):
    """Write the footage, garment masks, camera and body of the frame range to a capture folder"""

    bl_idname = "garment.export_capture"
    bl_label = "Export Capture"

    directory: StringProperty(name="Capture Folder", subtype="DIR_PATH",
                              description="Folder to write the capture bundle into")
    overwrite: BoolProperty(
        name="Overwrite", default=False,
        description="Write into a non-empty folder that holds no capture (files of the same "
        "name are replaced; nothing else is deleted)")
    filter_folder: BoolProperty(default=True, options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        return context.mode == "OBJECT"

    def invoke(self, context, event):
        if not self.directory:
            self.directory = context.scene.garment_recon.capture_folder
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def run(self, context):
        try:
            return self._export(context)
        except GarmentError as exc:
            _remember(ExportOutcome(ok=False, message=str(exc)))
            raise

    def _export(self, context):
        from pathlib import Path

        from .scene_capture.bundle_writer import STAGES, export_scene_capture
        from .scene_capture.progress import progress_bar

        if not self.directory:
            raise GarmentError("Export Capture: no capture folder chosen")
        folder = Path(bpy.path.abspath(self.directory))
        scene = context.scene
        with progress_bar(context, STAGES) as progress:
            result = export_scene_capture(scene, folder, self.overwrite, progress)
        scene.garment_recon.capture_folder = str(folder)
        for warning in result.warnings:
            self.report({"WARNING"}, warning)
        capture = result.capture
        message = (f"Exported {len(capture.frames)} frames ({capture.width}x{capture.height}) "
                   f"to {folder}")
        _remember(ExportOutcome(ok=True, message=message))
        self.report({"INFO"}, message)
        return {"FINISHED"}


CLASSES = (GARMENT_OT_export_capture,)
