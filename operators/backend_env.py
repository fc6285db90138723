"""Where the backend runs: its interpreter, the working folder, the command line.

The backend is started as ``<python> -m backend`` with the extension folder on
PYTHONPATH, so the same code runs whether the interpreter is Blender's own or a
separate environment with torch (see the add-on preferences).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import bpy

from .base import GarmentError

ADDON_PACKAGE = __package__.rpartition(".")[0]
"""The extension's package name, e.g. ``bl_ext.user_default.garment_recon``."""
EXTENSION_ROOT = Path(__file__).resolve().parent.parent


def preferences(context=None):
    """This extension's AddonPreferences."""
    context = context or bpy.context
    return context.preferences.addons[ADDON_PACKAGE].preferences


def backend_python(prefs) -> Path:
    """The interpreter that runs the backend: the preference, or Blender's own.

    Raises:
        GarmentError: the preference names a file that does not exist or cannot run.
    """
    if not prefs.backend_python:
        return Path(sys.executable)
    path = Path(bpy.path.abspath(prefs.backend_python))
    if not path.is_file() or not os.access(path, os.X_OK):
        raise GarmentError(
            f"Backend Python '{path}' (Preferences > Add-ons > Garment Reconstruction) "
            "is not an executable file; clear it to use Blender's own Python"
        )
    return path


def working_folder(prefs) -> Path:
    """Root of job folders and caches: the preference, or the extension's user folder."""
    if prefs.working_folder:
        path = Path(bpy.path.abspath(prefs.working_folder))
    else:
        path = Path(bpy.utils.extension_path_user(ADDON_PACKAGE, path="work", create=True))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GarmentError(f"Working folder '{path}' cannot be created: {exc}") from None
    return path


def backend_command(prefs, job_dir: Path, *args: str) -> list[str]:
    """argv for ``python -m backend --job-dir JOB_DIR ARGS...``."""
    return [str(backend_python(prefs)), "-m", "backend", "--job-dir", str(job_dir), *args]


def backend_environment(prefs) -> dict[str, str]:
    """The job's environment: ours plus the extension on PYTHONPATH and cache folders."""
    env = dict(os.environ)
    paths = [str(EXTENSION_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("ANNY_CACHE_DIR", str(working_folder(prefs) / "cache" / "anny"))
    if prefs.smpl_model_folder:
        env["GARMENT_RECON_SMPL_DIR"] = bpy.path.abspath(prefs.smpl_model_folder)
    env["PYTHONUNBUFFERED"] = "1"
    return env
