"""Check Backend: run ``python -m backend doctor`` through the job runner."""

from __future__ import annotations

import bpy

from . import job_control
from .backend_env import backend_command, backend_environment, preferences, working_folder
from .base import GarmentOperator

JOB_KIND = "check_backend"


class GARMENT_OT_check_backend(GarmentOperator, bpy.types.Operator):
    """Check that the backend Python can run reconstructions (torch, CUDA, disk, speed)"""

    bl_idname = "garment.check_backend"
    bl_label = "Check Backend"

    def run(self, context):
        prefs = preferences(context)
        work = working_folder(prefs)
        job_dir = work / "jobs" / JOB_KIND
        (job_dir / "log.jsonl").unlink(missing_ok=True)  # one report at a time
        argv = backend_command(prefs, job_dir, "doctor", "--work-dir", str(work))
        runner = job_control.start_job(JOB_KIND, argv, job_dir, env=backend_environment(prefs))
        state = runner.state
        if not state.finished:
            self.report({"INFO"}, "Checking the backend...")
            return {"FINISHED"}
        if state.error:
            hint = f" ({state.hint})" if state.hint else ""
            self.report({"ERROR"}, f"Backend check failed: {state.error}{hint}")
            return {"CANCELLED"}
        self.report({"INFO"}, "Backend check passed:\n" + (state.summary or ""))
        return {"FINISHED"}


CLASSES = (GARMENT_OT_check_backend,)
