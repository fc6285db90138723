"""The Garment tab of the 3D viewport sidebar. Panels draw state, never compute."""

from __future__ import annotations

import bpy

from ..operators import export_capture, job_control, reconstruct_job
from .job_status import draw_job_state, draw_reconstruction

JOB_TITLES = {"check_backend": "Backend Check", reconstruct_job.JOB_KIND: "Reconstruction"}


class GarmentSidebarPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Garment"


class GARMENT_PT_inputs(GarmentSidebarPanel, bpy.types.Panel):
    """Footage, mask, camera, body and garment to reconstruct"""

    bl_label = "Inputs"

    def draw(self, context):
        settings = context.scene.garment_recon
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.operator("garment.add_demo_scene", icon="OUTLINER_OB_ARMATURE")

        col = layout.column()
        col.prop(settings, "footage_source")
        if settings.footage_source == "CLIP":
            col.prop(settings, "footage_clip")
        else:
            col.prop(settings, "footage_image")
        col.prop(settings, "mask_source")
        if settings.mask_source == "MASK":
            col.prop(settings, "mask")
        else:
            col.prop(settings, "mask_image")
        col.prop(settings, "camera")
        row = col.row(align=True)
        row.prop(settings, "body")
        row.operator("garment.add_body", text="", icon="ARMATURE_DATA")

        col = layout.column()
        col.prop(settings, "garment_type")
        if settings.garment_type == "template":
            col.prop(settings, "template_mesh")

        col = layout.column()
        col.prop(settings, "use_scene_frame_range")
        sub = col.column(align=True)
        if settings.use_scene_frame_range:
            sub.enabled = False
            sub.prop(context.scene, "frame_start", text="Start")
            sub.prop(context.scene, "frame_end", text="End")
        else:
            sub.prop(settings, "frame_start")
            sub.prop(settings, "frame_end")

        col = layout.column()
        col.prop(settings, "quality_preset")
        col.prop(settings, "texture")
        col.prop(settings, "remesh")
        col.prop(settings, "drop_empty_masks")


class GARMENT_PT_run(GarmentSidebarPanel, bpy.types.Panel):
    """Backend jobs: progress, ETA, cancel, and their outcome"""

    bl_label = "Run"

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        col.scale_y = 1.5
        col.operator("garment.reconstruct", icon="MOD_CLOTH")
        if reconstruct_job.can_resume(context.scene):
            layout.operator("garment.resume_reconstruction", icon="PLAY")
        recon = reconstruct_job.runner()
        if recon is not None:
            draw_reconstruction(layout, reconstruct_job.JOB_KIND, recon,
                                reconstruct_job.current())
        layout.operator("garment.export_capture", icon="EXPORT")
        layout.operator("garment.import_result", icon="IMPORT")
        outcome = export_capture.last_export()
        if outcome is not None:
            box = layout.box()
            for i, line in enumerate(outcome.message.splitlines()[:4]):
                box.label(text=line, icon=("CHECKMARK" if outcome.ok else "ERROR")
                          if i == 0 else "BLANK1")
        layout.operator("garment.check_backend", icon="CONSOLE")
        latest = job_control.latest_job()
        if latest is None:
            layout.label(text="No job has run in this session")
            return
        kind, runner = latest
        if kind != reconstruct_job.JOB_KIND:  # the reconstruction is drawn above
            draw_job_state(layout, kind, runner, JOB_TITLES.get(kind, kind))


CLASSES = (GARMENT_PT_inputs, GARMENT_PT_run)
