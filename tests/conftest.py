"""Test configuration shared by every tier.

Blender reads BLENDER_USER_RESOURCES when bpy is first imported, so it is pointed at
a throw-away folder here, before any test module can import bpy: installing the
extension in tests never touches the developer's own Blender configuration.
"""

import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_user_resources = tempfile.mkdtemp(prefix="garment-recon-blender-user-")
os.environ["BLENDER_USER_RESOURCES"] = _user_resources
os.environ["GARMENT_RECON_RAISE_ERRORS"] = "1"  # operator crashes fail tests, never hide


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(item.fspath).is_relative_to(REPO / "tests" / "blender_tier"):
            item.add_marker("blender")


def pytest_unconfigure(config):
    shutil.rmtree(_user_resources, ignore_errors=True)
