"""Drawing the add-on preferences (the properties live in ``properties.py``)."""

from __future__ import annotations

from ..operators import install_backend, job_control
from ..operators.check_backend import JOB_KIND
from .job_status import draw_job_state


def draw_preferences(prefs, context) -> None:
    layout = prefs.layout
    layout.use_property_split = True
    layout.use_property_decorate = False

    col = layout.column(heading="Backend")
    col.prop(prefs, "backend_python")
    row = col.row()
    row.enabled = install_backend.online_access()
    row.operator(install_backend.GARMENT_OT_install_backend.bl_idname, icon="IMPORT")
    if not install_backend.online_access():
        col.label(text="Install Backend needs Allow Online Access (Preferences > System > "
                  "Network)", icon="INFO")
    installer = job_control.job(install_backend.JOB_KIND)
    if installer is not None:
        draw_job_state(col, install_backend.JOB_KIND, installer, "Backend Install")
    col.prop(prefs, "device")
    col.prop(prefs, "rasterizer")
    if prefs.rasterizer == "nvdiffrast":
        col.label(text="nvdiffrast is licensed for non-commercial use only", icon="ERROR")
    col.prop(prefs, "working_folder")
    col.prop(prefs, "smpl_model_folder")

    layout.operator("garment.check_backend", icon="CONSOLE")
    runner = job_control.job(JOB_KIND)
    if runner is not None:
        draw_job_state(layout, JOB_KIND, runner, "Backend Check")
