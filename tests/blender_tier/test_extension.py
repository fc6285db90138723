"""The extension zip installs in Blender 5.0 (bpy module), registers, runs Check Backend."""

import json
import os
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import bpy
import pytest

from tools.build_extension import validate

REPO = Path(__file__).resolve().parents[2]
ADDON_MODULE = "bl_ext.user_default.garment_recon"


def test_manifest_declares_id_licence_and_permissions():
    manifest = tomllib.loads((REPO / "blender_manifest.toml").read_text())
    assert manifest["id"] == "garment_recon"
    assert manifest["name"] == "Garment Reconstruction"
    assert manifest["blender_version_min"] == "4.2.0"
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert set(manifest["permissions"]) == {"files", "network"}
    assert manifest["permissions"]["network"] == "Install backend packages"


def test_zip_validates_and_holds_only_the_extension(extension_zip):
    validate(extension_zip)  # raises if Blender's validator rejects it
    names = zipfile.ZipFile(extension_zip).namelist()
    for needed in ("blender_manifest.toml", "__init__.py", "properties.py",
                   "backend/__main__.py", "backend/capture/validate.py",
                   "operators/job_runner.py", "panels/sidebar.py"):
        assert needed in names
    for name in names:
        top = name.split("/")[0]
        assert top not in {"tests", "tools", "docs", "requirements", ".ci", ".venv", ".cache",
                           ".git", "dist", "dev", "pyproject.toml", ".gitignore"}, name
        assert "__pycache__" not in name and not name.endswith(".pyc"), name


def test_install_registers_every_class_and_setting(addon):
    classes = (*addon.properties.CLASSES, *addon.operators.CLASSES, *addon.panels.CLASSES)
    assert len(classes) >= 6
    for cls in classes:
        assert cls.is_registered, cls.__name__
    assert bpy.ops.garment.check_backend.poll()

    settings = bpy.context.scene.garment_recon
    for name in ("footage_clip", "mask", "camera", "body", "garment_type", "template_mesh",
                 "use_scene_frame_range", "frame_start", "frame_end", "quality_preset"):
        assert name in settings.bl_rna.properties, name

    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    assert prefs.backend_python == ""  # empty = Blender's own interpreter
    assert prefs.device == "auto"
    assert {i.identifier for i in prefs.bl_rna.properties["device"].enum_items} == {
        "auto", "cpu", "cuda"}
    rasterizers = prefs.bl_rna.properties["rasterizer"].enum_items
    assert {i.identifier for i in rasterizers} == {"auto", "torch", "nvdiffrast"}
    assert "non-commercial" in rasterizers["nvdiffrast"].description
    assert "working_folder" in prefs.bl_rna.properties
    assert "smpl_model_folder" in prefs.bl_rna.properties


def test_garment_types_match_the_backend(addon):
    from backend.capture import GARMENT_TYPES

    ui_types = tuple(item[0] for item in addon.properties.GARMENT_TYPE_ITEMS)
    assert ui_types == GARMENT_TYPES


def test_check_backend_runs_doctor_and_reports_its_summary(addon, prefs):
    assert bpy.ops.garment.check_backend() == {"FINISHED"}
    runner = addon.operators.job_control.job("check_backend")
    state = runner.state
    assert state.status == "done", (state.error, state.log_tail)
    assert state.exit_code == 0
    assert "torch: 2.13.0" in state.summary
    assert "cuda: not available" in state.summary
    assert "speed[cpu]" in state.summary
    # the job folder keeps the event log, ending with the same summary
    events = [json.loads(line) for line in (runner.job_dir / "log.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "done" and events[-1]["summary"] == state.summary
    assert any(e["event"] == "progress" for e in events)


def test_check_backend_reports_a_missing_interpreter(addon, prefs, tmp_path):
    prefs.backend_python = str(tmp_path / "no-such-python")
    with pytest.raises(RuntimeError, match="no-such-python.*not an executable file"):
        bpy.ops.garment.check_backend()


def test_check_backend_reports_a_backend_without_torch(addon, prefs, tmp_path):
    # An interpreter where "import torch" fails: the real Python with a blocking module first.
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "torch.py").write_text("raise ImportError('torch blocked by the test')\n")
    wrapper = tmp_path / "python-without-torch"
    wrapper.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        PYTHONPATH="{blocker}:$PYTHONPATH" exec "{sys.executable}" "$@"
        """))
    wrapper.chmod(0o755)
    prefs.backend_python = str(wrapper)

    with pytest.raises(RuntimeError, match="Backend check failed.*torch"):
        bpy.ops.garment.check_backend()
    state = addon.operators.job_control.job("check_backend").state
    assert state.status == "failed"
    assert state.exit_code == 3
    assert "torch blocked by the test" in state.error
    assert "torch==2.13.0" in state.hint


def test_working_folder_preference_is_used(addon, prefs, tmp_path):
    prefs.working_folder = str(tmp_path / "work")
    assert bpy.ops.garment.check_backend() == {"FINISHED"}
    runner = addon.operators.job_control.job("check_backend")
    assert runner.job_dir.is_relative_to(tmp_path / "work")
    assert f"in {tmp_path / 'work'}" in runner.state.summary


def test_disable_unregisters_and_enable_restores(addon):
    classes = (*addon.properties.CLASSES, *addon.operators.CLASSES, *addon.panels.CLASSES)
    bpy.ops.preferences.addon_disable(module=ADDON_MODULE)
    try:
        assert not any(cls.is_registered for cls in classes)
        assert not hasattr(bpy.types.Scene, "garment_recon")
        assert not any(name.startswith("GARMENT_") for name in dir(bpy.types))
    finally:
        bpy.ops.preferences.addon_enable(module=ADDON_MODULE)
    assert hasattr(bpy.types.Scene, "garment_recon")
    assert bpy.ops.garment.check_backend.poll()


def test_extension_user_folder_is_inside_the_test_resources(addon):
    path = bpy.utils.extension_path_user(ADDON_MODULE, path="work", create=True)
    assert Path(path).is_relative_to(os.environ["BLENDER_USER_RESOURCES"])
