"""Reconstruct Garment and Resume Reconstruction: the sidebar's main button.

Reconstruct Garment checks the sidebar's inputs (Export Capture's checks, nothing is
written if one fails), exports them into a new job folder, writes ``job.json`` and
starts ``python -m backend run job.json``; it returns at once while a timer follows
the job (``job_control``), and the result is imported when the job is done
(``reconstruct_job``). Resume Reconstruction runs the same ``job.json`` again after a
cancel, a failure or a crash; the backend continues from its checkpoint.
"""

from __future__ import annotations

import shutil

import bpy
from bpy.props import EnumProperty

from . import reconstruct_job
from .base import GarmentError, GarmentOperator
from .job_runner import JobRunner, Status

_WAIT_ITEMS = (
    ("AUTO", "Auto", "Wait for the job only in background mode (no event loop there)"),
    ("WAIT", "Wait", "Block until the job ends, then import its result"),
    ("RETURN", "Return", "Return at once; a timer follows the job and imports its result"),
)
_BLOCKING = {"AUTO": None, "WAIT": True, "RETURN": False}


def _wait_property():
    return EnumProperty(name="Wait", items=_WAIT_ITEMS, default="AUTO",
                        options={"HIDDEN", "SKIP_SAVE"},
                        description="Whether the operator waits for the backend job")


def _poll_scene(cls, context) -> bool:
    if context.scene is None or context.mode != "OBJECT":
        cls.poll_message_set("Switch to Object Mode to reconstruct a garment")
        return False
    if reconstruct_job.is_running():
        cls.poll_message_set("A reconstruction is running; cancel it first")
        return False
    return True


class GARMENT_OT_reconstruct(GarmentOperator, bpy.types.Operator):
    """Reconstruct the garment of the sidebar's inputs and import it as an animated mesh"""

    bl_idname = "garment.reconstruct"
    bl_label = "Reconstruct Garment"
    bl_options = {"REGISTER"}

    wait: _wait_property()

    @classmethod
    def poll(cls, context):
        return _poll_scene(cls, context)

    def run(self, context):
        from ..backend.jobs.spec import JobSettings
        from .backend_env import backend_python, preferences, working_folder
        from .scene_capture.bundle_writer import STAGES, check_inputs, export_capture
        from .scene_capture.inputs import CaptureInputs
        from .scene_capture.progress import progress_bar

        scene = context.scene
        if reconstruct_job.is_running():
            raise GarmentError("A reconstruction is already running; cancel it first")
        prefs = preferences(context)
        backend_python(prefs)  # a bad interpreter is reported before the export
        inputs = CaptureInputs.from_scene(scene)
        check_inputs(scene, inputs)  # names the input at fault; nothing written yet
        settings = scene.garment_recon
        job_settings = JobSettings(
            preset=settings.quality_preset, device=prefs.device, rasterizer=prefs.rasterizer,
            drop_empty_masks=settings.drop_empty_masks, frame_start=inputs.frames[0],
            frame_end=inputs.frames[-1], remesh=settings.remesh, texture=settings.texture)
        folder = reconstruct_job.new_job_folder(working_folder(prefs), scene.name,
                                                inputs.garment_type)
        try:
            with progress_bar(context, STAGES) as progress:
                exported = export_capture(scene, inputs, folder / reconstruct_job.CAPTURE_DIR,
                                          progress=progress)
            reconstruct_job.write_job(folder, job_settings)
            for warning in exported.warnings:
                self.report({"WARNING"}, warning)
            runner = reconstruct_job.start(scene, prefs, folder, _BLOCKING[self.wait])
        except BaseException:
            if reconstruct_job.runner() is None or reconstruct_job.runner().job_dir != folder:
                shutil.rmtree(folder, ignore_errors=True)  # ours, made just now, unused
            raise
        return report_outcome(self, runner)


class GARMENT_OT_resume_reconstruction(GarmentOperator, bpy.types.Operator):
    """Continue the scene's cancelled, failed or interrupted reconstruction from its checkpoint"""

    bl_idname = "garment.resume_reconstruction"
    bl_label = "Resume Reconstruction"
    bl_options = {"REGISTER"}

    wait: _wait_property()

    @classmethod
    def poll(cls, context):
        if not _poll_scene(cls, context):
            return False
        if not reconstruct_job.can_resume(context.scene):
            cls.poll_message_set("No unfinished reconstruction in this scene")
            return False
        return True

    def run(self, context):
        from pathlib import Path

        from .backend_env import preferences

        scene = context.scene
        folder = Path(scene.garment_recon.last_job_folder)
        job_file = folder / reconstruct_job.JOB_FILE
        if not job_file.is_file():
            raise GarmentError(f"{job_file} is missing: the job folder was moved or deleted; "
                               "run Reconstruct Garment again")
        runner = reconstruct_job.start(scene, preferences(context), folder,
                                       _BLOCKING[self.wait])
        return report_outcome(self, runner)


def report_outcome(operator, runner: JobRunner) -> set[str]:
    """Report a started job (running), or the end of one that ran synchronously."""
    s = runner.state
    job = reconstruct_job.current()
    if not s.finished:
        operator.report({"INFO"}, f"Reconstructing in {job.folder}...")
        return {"FINISHED"}
    if s.status == Status.DONE:
        if job.garment is None:
            raise GarmentError(job.import_error or "the result was not imported")
        for warning in job.warnings:
            operator.report({"WARNING"}, warning)
        operator.report({"INFO"}, f"Reconstructed '{job.garment}': {s.summary or job.result}")
        return {"FINISHED"}
    if s.status == Status.CANCELLED:
        operator.report({"WARNING"}, "Reconstruction cancelled; Resume Reconstruction "
                        "continues it")
        return {"CANCELLED"}
    hint = f" ({s.hint})" if s.hint else ""
    tail = "\n".join(s.log_tail[-4:])
    raise GarmentError(f"Reconstruction failed: {s.error}{hint}"
                       + (f"\n{tail}" if tail else "")
                       + "\nResume Reconstruction continues it")


CLASSES = (GARMENT_OT_reconstruct, GARMENT_OT_resume_reconstruction)
