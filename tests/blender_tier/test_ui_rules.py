"""Naming rules for operators/panels, and the panels' draw code run headless.

Blender never draws UI under the bpy module, so panels are drawn into a recording
layout that checks every ``prop()`` names a real RNA property and every
``operator()`` a registered operator.
"""

import importlib
import re

import bpy
import pytest


def test_operator_naming_and_base_class(addon):
    for cls in addon.operators.CLASSES:
        assert re.fullmatch(r"GARMENT_OT_[a-z_]+", cls.__name__), cls.__name__
        assert cls.bl_idname == "garment." + cls.__name__.removeprefix("GARMENT_OT_")
        assert issubclass(cls, addon.operators.base.GarmentOperator), cls.__name__
        assert cls.bl_label.istitle(), f"bl_label {cls.bl_label!r} must be Title Case"
        assert cls.__doc__ and cls.__doc__.strip(), f"{cls.__name__} needs a tooltip docstring"


def test_panel_naming(addon):
    for cls in addon.panels.CLASSES:
        assert re.fullmatch(r"GARMENT_PT_[a-z_]+", cls.__name__), cls.__name__
        assert cls.bl_category == "Garment" and cls.bl_space_type == "VIEW_3D"


class RecordingLayout:
    """Stands in for bpy.types.UILayout; records what a draw function shows."""

    def __init__(self, log):
        self.log = log
        self.enabled = True
        self.use_property_split = False
        self.use_property_decorate = True

    def _child(self, *args, **kwargs):
        return RecordingLayout(self.log)

    row = column = box = split = _child

    def label(self, text="", icon="NONE"):
        self.log.append(("label", text))

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, f"{data} has no property {name!r}"
        self.log.append(("prop", name))

    def operator(self, idname, **kwargs):
        group, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, group), name), idname
        assert getattr(getattr(bpy.ops, group), name).get_rna_type(), idname
        self.log.append(("operator", idname))

        class Props:
            pass

        return Props()

    def progress(self, factor=0.0, type="BAR", text=""):
        assert 0.0 <= factor <= 1.0
        self.log.append(("progress", text))


def draw(panel_cls, context):
    """Run a panel's draw() against a recording layout; returns what it showed."""
    log = []
    fake = type("FakePanel", (), {"layout": RecordingLayout(log)})()
    panel_cls.draw(fake, context)
    return log


@pytest.mark.parametrize("garment_type", ["skirt", "template"])
def test_inputs_panel_shows_every_input(addon, garment_type):
    settings = bpy.context.scene.garment_recon
    settings.garment_type = garment_type
    shown = {name for kind, name in draw(addon.panels.sidebar.GARMENT_PT_inputs, bpy.context)
             if kind == "prop"}
    assert {"footage_clip", "mask", "camera", "body", "garment_type",
            "use_scene_frame_range", "frame_start", "frame_end", "quality_preset"} <= shown
    assert ("template_mesh" in shown) == (garment_type == "template")


def test_run_panel_shows_progress_and_cancel_while_a_job_runs(addon, tmp_path):
    import sys

    control = addon.operators.job_control
    argv = [sys.executable, "-c", (
        "import json, os, time\n"
        "print(json.dumps({'event': 'progress', 'stage': 'fit', 'step': 2, 'total': 8,"
        " 'eta_s': 75.0, 'loss': 0.125}), flush=True)\n"
        "while not os.path.exists('cancel'): time.sleep(0.01)\n"
        "raise SystemExit(4)\n")]
    runner = control.start_job("panel_test", argv, tmp_path / "job", blocking=False)
    try:
        while runner.state.stage != "fit":
            runner.poll()
        log = draw(addon.panels.sidebar.GARMENT_PT_run, bpy.context)
        assert ("progress", "fit  2/8  ETA 1 min 15 s") in log
        assert ("operator", "garment.cancel_job") in log
        assert ("label", "Loss 0.125") in log
        runner.cancel()
        runner.wait(timeout_s=30)
        log = draw(addon.panels.sidebar.GARMENT_PT_run, bpy.context)
        assert ("operator", "garment.cancel_job") not in log
        assert ("label", "panel_test: cancelled") in log
    finally:
        runner.kill()


def recorded_preferences(addon, prefs) -> list:
    """What the add-on preferences draw, as ``RecordingLayout`` records it, for the
    current values of ``prefs`` (a stand-in object: RNA preferences cannot be given
    another layout)."""
    log = []
    fake = type("FakePrefs", (), {})()
    for name in prefs.bl_rna.properties.keys():  # noqa: SIM118 (RNA collections iterate values)
        if name != "rna_type":
            setattr(fake, name, getattr(prefs, name))
    fake.bl_rna = prefs.bl_rna
    fake.layout = RecordingLayout(log)
    preferences_ui = importlib.import_module(addon.__name__ + ".panels.preferences")
    preferences_ui.draw_preferences(fake, bpy.context)
    return log


def test_preferences_draw_the_backend_check_outcome(addon, prefs):
    assert bpy.ops.garment.check_backend() == {"FINISHED"}
    prefs.rasterizer = "nvdiffrast"
    log = recorded_preferences(addon, prefs)
    shown = {name for kind, name in log if kind == "prop"}
    assert {"backend_python", "device", "rasterizer", "working_folder",
            "smpl_model_folder"} <= shown
    assert ("label", "nvdiffrast is licensed for non-commercial use only") in log
    assert ("label", "Backend Check: done") in log
    assert any(kind == "label" and text.startswith("[ok  ] torch") for kind, text in log)
