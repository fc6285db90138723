"""Add Demo Scene: a complete synthetic capture to try the tool on, without footage.

A new scene (the user's scenes are not touched) gets an Anny body doing a motion, a
garment simulated on it with Blender cloth, a camera, and the rendered footage and
garment masks as image sequences; the sidebar inputs are filled in, so Export Capture
and Reconstruct work at once. The ground-truth garment stays in a hidden collection
for comparison. The files (capture bundle + gt/) go to the working folder.
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty

from .base import GarmentOperator
from .synthetic.settings import GARMENTS, MOTIONS, PRESETS

_LABELS = {"skirt": "Skirt", "flared_skirt": "Flared Skirt", "dress": "Dress",
           "tshirt": "T-Shirt", "long_sleeve": "Long Sleeve", "trousers": "Trousers",
           "shorts": "Shorts"}
_GARMENT_ITEMS = [(g, _LABELS[g], "") for g in GARMENTS]
_MOTION_ITEMS = [(m, m.replace("_", " ").title(), "") for m in MOTIONS]
_QUALITY = {
    "tiny": ("Tiny", "8 frames at 128 px, coarse cloth: under a minute"),
    "demo": ("Demo", "30 frames at 256 px: a few minutes"),
    "bench": ("Benchmark", "60 frames at 512 px: several minutes"),
}
_QUALITY_ITEMS = [(k, *_QUALITY[k]) for k in PRESETS]


class GARMENT_OT_add_demo_scene(GarmentOperator, bpy.types.Operator):
    """Create a new scene with a simulated garment on a moving body, rendered footage,
    garment masks and a camera: a ready-made input for Reconstruct Garment"""

    bl_idname = "garment.add_demo_scene"
    bl_label = "Add Demo Scene"
    bl_options = {"REGISTER"}

    garment: EnumProperty(name="Garment", default="skirt",
                          items=_GARMENT_ITEMS)
    motion: EnumProperty(name="Motion", default="walk",
                         items=_MOTION_ITEMS)
    quality: EnumProperty(name="Quality", default="demo",
                          items=_QUALITY_ITEMS)
    overwrite: BoolProperty(name="Replace Earlier Demo", default=True,
                            description="Replace the files of an earlier demo of the same "
                            "garment, motion and quality in the working folder")

    @classmethod
    def poll(cls, context):
        return context.mode == "OBJECT"

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)

    def run(self, context):
        from .backend_env import backend_environment, backend_python, preferences, working_folder
        from .scene_capture.progress import progress_bar
        from .synthetic.generate import STAGES, generate_capture
        from .synthetic.settings import preset

        prefs = preferences(context)
        settings = preset(self.quality, garment=self.garment, motion=self.motion)
        folder = working_folder(prefs) / "demo" / f"{self.garment}_{self.motion}_{self.quality}"
        python = backend_python(prefs)
        scene = bpy.data.scenes.new(f"Garment Demo {_LABELS[self.garment]}")
        before = {name: set(getattr(bpy.data, name)) for name in _DATA}
        window = context.window
        user_scene = window.scene if window is not None else None
        try:
            if window is not None:
                window.scene = scene
            # Add Body and the cloth bake run operators: they must see the new scene
            with context.temp_override(scene=scene, view_layer=scene.view_layers[0]), \
                    progress_bar(context, STAGES) as progress:
                result = generate_capture(scene, settings, folder, python,
                                          env=backend_environment(prefs), progress=progress,
                                          overwrite=self.overwrite)
        except BaseException:
            if window is not None:
                window.scene = user_scene
            _remove_new(before)
            bpy.data.scenes.remove(scene)
            raise
        _fill_inputs(scene, settings, result)
        self.report({"INFO"}, f"Demo scene '{scene.name}': {settings.frames} frames of a "
                    f"{_LABELS[self.garment].lower()} in {folder}")
        return {"FINISHED"}


_DATA = ("objects", "meshes", "armatures", "actions", "materials", "images", "cameras",
         "lights", "collections", "worlds", "node_groups", "textures")


def _remove_new(before: dict) -> None:
    """Remove every datablock a failed run created (the user's are all in ``before``)."""
    for name in _DATA:
        collection = getattr(bpy.data, name)
        for block in [b for b in collection if b not in before[name]]:
            collection.remove(block)


def _fill_inputs(scene, settings, result) -> None:
    """Point the Garment sidebar of ``scene`` at the demo's footage, masks, camera, body;
    hide the ground-truth garment (kept for comparison)."""
    parts = result.parts
    inputs = scene.garment_recon
    inputs.footage_source = "IMAGE"
    inputs.footage_image = parts.images["footage"]
    inputs.mask_source = "IMAGE"
    inputs.mask_image = parts.images["masks"]
    inputs.camera = parts.camera
    inputs.body = parts.body
    inputs.garment_type = settings.garment
    inputs.use_scene_frame_range = True
    inputs.capture_folder = str(result.folder)
    scene.camera = parts.camera
    hide_ground_truth(scene, [parts.garment], parts.garment.users_collection[0])


def hide_ground_truth(scene, objects, parent) -> None:
    """Move ``objects`` into a new "Ground Truth" collection, a child of ``parent``,
    hidden in renders and in every view layer's viewport (kept for comparison)."""
    collection = bpy.data.collections.new("Ground Truth")
    parent.children.link(collection)
    for obj in objects:
        for owner in list(obj.users_collection):
            owner.objects.unlink(obj)
        collection.objects.link(obj)
    collection.hide_render = True
    for view_layer in scene.view_layers:
        layer = _find_layer(view_layer.layer_collection, collection)
        if layer is not None:
            layer.hide_viewport = True


def _find_layer(layer, collection):
    if layer.collection == collection:
        return layer
    for child in layer.children:
        found = _find_layer(child, collection)
        if found is not None:
            return found
    return None


CLASSES = (GARMENT_OT_add_demo_scene,)
