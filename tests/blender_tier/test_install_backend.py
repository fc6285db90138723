"""Install Backend: refused without online access, ships its requirements, draws its job."""

import json
import sys
import zipfile
from pathlib import Path

import bpy
import pytest

from tests.blender_tier.test_ui_rules import recorded_preferences

REPO = Path(__file__).resolve().parents[2]
KIND = "install_backend"


def test_refused_without_online_access_and_no_job_starts(addon, prefs):
    assert bpy.app.online_access is False  # background mode without --online-mode
    with pytest.raises(RuntimeError, match="online access is off.*Allow Online Access"):
        bpy.ops.garment.install_backend()
    assert addon.operators.job_control.job(KIND) is None
    assert prefs.backend_python == ""


def test_the_zip_ships_the_requirements_and_the_network_permission(addon, extension_zip):
    with zipfile.ZipFile(extension_zip) as zf:
        for name in ("backend.txt", "constraints.txt"):
            shipped = zf.read(f"backend/requirements/{name}").decode()
            assert shipped == (REPO / "requirements" / name).read_text()
    install = addon.operators.install_backend
    folder = install.requirements_folder()
    assert folder == Path(addon.__file__).resolve().parent / "backend" / "requirements"
    assert "torch==2.13.0" in (folder / "backend.txt").read_text()
    assert install.manifest_allows_network()


def test_the_venv_goes_to_the_extension_user_folder(addon, prefs):
    import os

    target = addon.operators.install_backend.venv_folder(prefs)
    assert target.name == "backend-venv"
    assert target.is_relative_to(os.environ["BLENDER_USER_RESOURCES"])


def test_preferences_draw_the_button_hint_and_a_running_install(addon, prefs, tmp_path):
    log = recorded_preferences(addon, prefs)
    assert ("operator", "garment.install_backend") in log
    assert any(kind == "label" and "Allow Online Access" in text for kind, text in log)

    control = addon.operators.job_control
    argv = [sys.executable, "-c", (
        "import json, os, time\n"
        "print(json.dumps({'event': 'progress', 'stage': 'install', 'step': 3, 'total': 9,"
        " 'eta_s': None, 'loss': None}), flush=True)\n"
        "while not os.path.exists('cancel'): time.sleep(0.01)\n"
        "raise SystemExit(4)\n")]
    runner = control.start_job(KIND, argv, tmp_path / "job", blocking=False)
    try:
        while runner.state.stage != "install":
            runner.poll()
        log = recorded_preferences(addon, prefs)
        assert ("label", "Backend Install: running") in log
        assert ("progress", "install  3/9") in log
        assert ("operator", "garment.cancel_job") in log
        assert bpy.ops.garment.cancel_job(kind=KIND) == {"FINISHED"}
        runner.wait(timeout_s=30)
        log = recorded_preferences(addon, prefs)
        assert ("label", "Backend Install: cancelled") in log
    finally:
        runner.kill()


def test_a_finished_install_sets_the_backend_python(addon, prefs, tmp_path):
    python = tmp_path / "venv" / "bin" / "python"
    done = json.dumps({"event": "done", "result": str(python), "summary": "ready"})
    argv = [sys.executable, "-c", f"print({done!r})"]
    install = addon.operators.install_backend
    runner = addon.operators.job_control.start_job(
        KIND, argv, tmp_path / "job", on_finish=install._on_finish, blocking=True)
    assert runner.state.status == "done"
    assert prefs.backend_python == str(python)
