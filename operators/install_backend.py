"""Install Backend: a private venv with the pinned backend requirements.

Runs ``python -m backend setup-env`` with Blender's own Python (stdlib only) as the
job kind "install_backend"; pip downloads from PyPI, so it needs Blender's "Allow
Online Access" and the manifest's network permission. When the job succeeds the
Backend Python preference is set to the new venv's interpreter.
"""

from __future__ import annotations

import sys
from pathlib import Path

import bpy

from . import job_control
from .backend_env import (
    ADDON_PACKAGE,
    EXTENSION_ROOT,
    backend_environment,
    preferences,
    working_folder,
)
from .base import GarmentError, GarmentOperator
from .job_runner import JobRunner, Status

JOB_KIND = "install_backend"
VENV_FOLDER = "backend-venv"
REQUIREMENTS = "backend.txt"
CONSTRAINTS = "constraints.txt"
REQUIREMENTS_FOLDERS = ("backend/requirements", "requirements")
"""Where the requirement files are, relative to the extension root: the built zip
ships them in ``backend/requirements`` (tools/build_extension.py), a source checkout
has them in ``requirements``."""
CANCEL_GRACE_S = 30.0
"""Seconds between Cancel and terminate: pip stops within a second of the cancel file."""
ONLINE_ACCESS_MESSAGE = (
    "Install Backend downloads packages from PyPI, but online access is off: turn on "
    "Edit > Preferences > System > Network > Allow Online Access (not possible in "
    "background mode without --online-mode)")


def online_access() -> bool:
    """Whether Blender allows extensions to use the internet."""
    return bool(getattr(bpy.app, "online_access", False))


def manifest_allows_network(root: Path = EXTENSION_ROOT) -> bool:
    """Whether ``blender_manifest.toml`` declares the ``network`` permission."""
    import tomllib

    try:
        manifest = tomllib.loads((root / "blender_manifest.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return bool(manifest.get("permissions", {}).get("network"))


def requirements_folder(root: Path = EXTENSION_ROOT) -> Path:
    """The folder holding backend.txt and constraints.txt.

    Raises:
        GarmentError: neither place has both files (a broken install).
    """
    for relative in REQUIREMENTS_FOLDERS:
        folder = root / relative
        if (folder / REQUIREMENTS).is_file() and (folder / CONSTRAINTS).is_file():
            return folder
    places = " or ".join(str(root / r) for r in REQUIREMENTS_FOLDERS)
    raise GarmentError(f"{REQUIREMENTS} and {CONSTRAINTS} not found in {places}; "
                       "reinstall the extension")


def venv_folder(prefs) -> Path:
    """The venv's folder: the extension's user folder, or the working folder when the
    add-on does not run as an installed extension."""
    try:
        return Path(bpy.utils.extension_path_user(ADDON_PACKAGE, path=VENV_FOLDER,
                                                  create=True))
    except ValueError:  # not a "bl_ext." package: running from a checkout
        return working_folder(prefs) / VENV_FOLDER


def _on_finish(runner: JobRunner) -> None:
    state = runner.state
    if state.status == Status.DONE and state.result:
        preferences().backend_python = state.result


class GARMENT_OT_install_backend(GarmentOperator, bpy.types.Operator):
    """Download torch and the other backend packages into a private Python environment
    and use it as the Backend Python (needs Allow Online Access; about 1 GB)"""

    bl_idname = "garment.install_backend"
    bl_label = "Install Backend"

    def run(self, context):
        if not online_access():
            raise GarmentError(ONLINE_ACCESS_MESSAGE)
        if not manifest_allows_network():
            raise GarmentError("Install Backend needs the 'network' permission in "
                               f"{EXTENSION_ROOT / 'blender_manifest.toml'}")
        prefs = preferences(context)
        folder = requirements_folder()
        target = venv_folder(prefs)
        job_dir = working_folder(prefs) / "jobs" / JOB_KIND
        (job_dir / "log.jsonl").unlink(missing_ok=True)
        argv = [sys.executable, "-m", "backend", "--job-dir", str(job_dir), "setup-env",
                "--target", str(target), "--requirements", str(folder / REQUIREMENTS),
                "--constraints", str(folder / CONSTRAINTS)]
        runner = job_control.start_job(JOB_KIND, argv, job_dir, env=backend_environment(prefs),
                                       on_finish=_on_finish, cancel_grace_s=CANCEL_GRACE_S)
        state = runner.state
        if not state.finished:
            self.report({"INFO"}, f"Installing the backend into {target}...")
            return {"FINISHED"}
        if state.error:
            hint = f" ({state.hint})" if state.hint else ""
            self.report({"ERROR"}, f"Install Backend failed: {state.error}{hint}")
            return {"CANCELLED"}
        self.report({"INFO"}, state.summary or "Backend installed")
        return {"FINISHED"}


CLASSES = (GARMENT_OT_install_backend,)
