"""Import Garment Result: a result folder -> an animated, textured garment object."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from .base import GarmentError, GarmentOperator


class GARMENT_OT_import_result(GarmentOperator, bpy.types.Operator):
    """Import a reconstruction result folder as an animated, textured garment mesh"""

    bl_idname = "garment.import_result"
    bl_label = "Import Garment Result"
    bl_options = {"REGISTER", "UNDO"}

    directory: StringProperty(
        name="Result Folder",
        description="Folder holding garment.npz (and texture.png, texture_dynamic/)",
        subtype="DIR_PATH",
    )
    filter_folder: BoolProperty(default=True, options={"HIDDEN"})  # browse folders only
    use_cache: BoolProperty(
        name="Alembic / USD Cache Instead of Shape Keys",
        description=(
            "Bake the animation to a cache file in the result folder and play it with a "
            "Mesh Sequence Cache modifier: memory-light mode for very long clips"
        ),
        default=False,
    )
    cache_format: EnumProperty(
        name="Cache Format",
        items=(
            ("ABC", "Alembic", "garment_cache.abc in the result folder"),
            ("USD", "USD", "garment_cache.usdc in the result folder"),
        ),
        default="ABC",
    )
    replace_existing: BoolProperty(
        name="Replace Existing",
        description=(
            "Replace the garment previously imported from this same folder (keeps its "
            "name and collections) instead of adding a new object"
        ),
        default=False,
    )
    set_frame_range: BoolProperty(
        name="Set Frame Range",
        description="Set the scene's frame range to the result's frames",
        default=False,
    )

    @classmethod
    def poll(cls, context):
        if context.scene is None or context.mode != "OBJECT":
            cls.poll_message_set("Switch to Object Mode to import a garment")
            return False
        return True

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def run(self, context):
        from .result_import import ImportSettings, import_result

        if not self.directory:
            raise GarmentError("Choose a result folder (it holds garment.npz)")
        settings = ImportSettings(
            use_cache=self.use_cache,
            cache_format=self.cache_format,
            replace_existing=self.replace_existing,
            set_frame_range=self.set_frame_range,
        )
        folder = bpy.path.abspath(self.directory)
        # ResultImportError is a GarmentError: GarmentOperator.execute reports it
        obj = import_result(
            context, folder, settings,
            on_warning=lambda message: self.report({"WARNING"}, message),
        )
        # the new object becomes active; other objects' selection is left as it was
        try:
            obj.select_set(True)
            context.view_layer.objects.active = obj
        except RuntimeError:  # its collection is excluded from this view layer
            pass
        self.report({"INFO"}, f"Imported '{obj.name}' from {folder}")
        return {"FINISHED"}


CLASSES = (GARMENT_OT_import_result,)
