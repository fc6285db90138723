"""Cancel Job: ask a running backend job to stop (it keeps its checkpoints)."""

from __future__ import annotations

import bpy

from . import job_control
from .base import GarmentError, GarmentOperator


class GARMENT_OT_cancel_job(GarmentOperator, bpy.types.Operator):
    """Stop the running backend job at its next step; what it saved so far is kept"""

    bl_idname = "garment.cancel_job"
    bl_label = "Cancel Job"

    kind: bpy.props.StringProperty(
        name="Job", description="Which job to cancel, e.g. check_backend", default=""
    )

    def run(self, context):
        if not job_control.cancel_job(self.kind):
            raise GarmentError(f"No running '{self.kind}' job to cancel")
        self.report({"INFO"}, "Cancelling...")
        return {"FINISHED"}


CLASSES = (GARMENT_OT_cancel_job,)
