"""Blender tier: the built extension zip installed into a throw-away user folder."""

import importlib

import pytest

from tools.build_extension import build

ADDON_MODULE = "bl_ext.user_default.garment_recon"


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory):
    """The extension zip built (and validated) by Blender's own extension tool."""
    return build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def installed(extension_zip):
    """Install the zip once per session; disable the extension at the end."""
    import bpy

    result = bpy.ops.extensions.package_install_files(
        filepath=str(extension_zip), repo="user_default", enable_on_install=True
    )
    assert result == {"FINISHED"}
    yield
    if ADDON_MODULE in bpy.context.preferences.addons:
        bpy.ops.preferences.addon_disable(module=ADDON_MODULE)


@pytest.fixture
def addon(installed):
    """The installed, enabled extension package (``bl_ext.user_default.garment_recon``).

    Looked up per test: disabling and re-enabling may load the module anew.
    """
    return importlib.import_module(ADDON_MODULE)


@pytest.fixture(autouse=True)
def fresh_file():
    """Each Blender test starts from, and leaves, the factory-fresh home file."""
    import bpy

    bpy.ops.wm.read_homefile()
    yield
    bpy.ops.wm.read_homefile()


@pytest.fixture
def prefs(addon):
    """The extension's preferences, restored to defaults after the test."""
    import bpy

    preferences = bpy.context.preferences.addons[ADDON_MODULE].preferences
    yield preferences
    for name in ("backend_python", "working_folder", "smpl_model_folder"):
        setattr(preferences, name, "")
    preferences.device = "auto"
    preferences.rasterizer = "auto"


@pytest.fixture(scope="session")
def tiny_capture(installed, tmp_path_factory):
    """(folder, settings) of one tiny synthetic skirt capture, generated once per session
    by the installed extension (its backend half runs with this interpreter)."""
    import os
    import sys
    from pathlib import Path

    import bpy

    addon = importlib.import_module(ADDON_MODULE)
    generate = importlib.import_module(f"{ADDON_MODULE}.operators.synthetic.generate")
    settings = importlib.import_module(f"{ADDON_MODULE}.operators.synthetic.settings"
                                       ).PRESETS["tiny"]
    folder = tmp_path_factory.mktemp("synthetic") / "skirt_walk"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(addon.__file__).resolve().parent)
    bpy.ops.wm.read_homefile(use_empty=True)
    generate.generate_capture(
        bpy.context.scene, settings, folder, sys.executable, env=env)
    bpy.ops.wm.read_homefile()
    return folder, settings
