"""Add Body: build an armature, a skinned mesh and their motion from a body.npz.

The file comes from ``python -m backend body anny|smpl`` (or an earlier export);
``scene_capture.body_import`` does the building. Exporting the result gives the file
back, so the body a capture is exported with is the one the backend made.
"""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from .base import GarmentError, GarmentOperator


class GARMENT_OT_add_body(GarmentOperator, bpy.types.Operator):
    """Add a skinned body and its motion (armature, mesh, action) from a body.npz file"""

    bl_idname = "garment.add_body"
    bl_label = "Add Body"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="Body File", subtype="FILE_PATH",
                             description="body.npz written by 'python -m backend body'")
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        return context.mode == "OBJECT"

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def run(self, context):
        from ..backend.body import BodyError, load_body
        from .scene_capture.body_import import add_body
        from .scene_capture.progress import progress_bar

        if not self.filepath:
            raise GarmentError("Add Body: no body file chosen")
        path = bpy.path.abspath(self.filepath)
        try:
            body, track = load_body(path)
        except BodyError as exc:
            raise GarmentError(str(exc)) from None
        with progress_bar(context, ("add body",)) as progress:
            _, mesh = add_body(body, track, context.collection, context.view_layer,
                               progress=progress)
        for obj in context.view_layer.objects.selected:
            obj.select_set(False)
        mesh.select_set(True)
        context.view_layer.objects.active = mesh
        context.scene.garment_recon.body = mesh
        frames = track.frame_numbers
        self.report({"INFO"}, f"Added body '{mesh.name}' ({body.source}): "
                    f"{body.vertex_count} vertices, {body.bone_count} bones, "
                    f"frames {frames[0]}..{frames[-1]}")
        return {"FINISHED"}


CLASSES = (GARMENT_OT_add_body,)
