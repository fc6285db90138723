"""Settings: the scene's reconstruction inputs and the add-on preferences.

All scene settings live under ``Scene.garment_recon`` (one PropertyGroup per ID
type); the operator turns them into a job settings object, the backend never reads
Blender properties.
"""

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, PointerProperty, StringProperty

# Identifiers must match backend.capture.GARMENT_TYPES (a test checks it).
GARMENT_TYPE_ITEMS = (
    ("skirt", "Skirt", "Straight skirt hanging from the waist"),
    ("flared_skirt", "Flared Skirt", "Flared or circle skirt hanging from the waist"),
    ("dress", "Dress", "Long dress hanging from the shoulders"),
    ("tshirt", "T-Shirt", "Short-sleeved top"),
    ("long_sleeve", "Long Sleeve", "Long-sleeved top"),
    ("trousers", "Trousers", "Full-length trousers"),
    ("shorts", "Shorts", "Short trousers"),
    ("template", "Template Mesh", "Start from the mesh chosen below"),
)

PRESET_ITEMS = (
    ("draft", "Draft", "Fewest steps: a quick look at the result"),
    ("standard", "Standard", "The balance of time and quality for most shots"),
    ("high", "High", "Most steps and a 2048 px texture: final renders"),
)

# Identifiers must match backend.jobs.spec.Texture (job.json's settings.texture).
TEXTURE_ITEMS = (
    ("none", "None", "Geometry only: no UV map, no texture (the fastest)"),
    ("static", "Static", "A UV map and one texture: the garment's albedo, to relight"),
    ("dynamic", "Dynamic", "Also one texture per frame with the footage's own lighting and "
     "wrinkles (slower; an image sequence beside the result)"),
)


def _is_camera(_self, obj):
    return obj.type == "CAMERA"


def _is_mesh(_self, obj):
    return obj.type == "MESH"


class GarmentSceneSettings(bpy.types.PropertyGroup):
    """Inputs of a reconstruction, chosen in the sidebar (View3D > Sidebar > Garment)."""

    footage_source: EnumProperty(
        name="Footage Source", default="CLIP",
        items=(
            ("CLIP", "Movie Clip", "A Movie Clip: its start frame and offset map scene frames "
             "to footage frames"),
            ("IMAGE", "Image", "An Image datablock (image sequence or movie): scene frame N "
             "is file/frame N"),
        ),
        description="Where the footage comes from",
    )
    footage_clip: PointerProperty(
        name="Footage", type=bpy.types.MovieClip,
        description="Movie clip (movie file or image sequence) of the clothed person",
    )
    footage_image: PointerProperty(
        name="Footage Image", type=bpy.types.Image,
        description="Image sequence or movie of the clothed person; frame N is file N",
    )
    mask_source: EnumProperty(
        name="Mask Source", default="MASK",
        items=(
            ("MASK", "Mask", "A Mask datablock drawn in the Mask editor, animated as needed"),
            ("IMAGE", "Image", "An image sequence of masks (white = garment); frame N is "
             "file N"),
        ),
        description="Where the garment masks come from",
    )
    mask: PointerProperty(
        name="Garment Mask", type=bpy.types.Mask,
        description="Mask datablock outlining the garment in every frame (Mask editor)",
    )
    mask_image: PointerProperty(
        name="Mask Images", type=bpy.types.Image,
        description="Image sequence of garment masks (> 50 % grey = garment)",
    )
    camera: PointerProperty(
        name="Camera", type=bpy.types.Object, poll=_is_camera,
        description="Camera matching the footage (tracked or static)",
    )
    body: PointerProperty(
        name="Body", type=bpy.types.Object, poll=_is_mesh,
        description="Armature-skinned body mesh that moves with the person",
    )
    garment_type: EnumProperty(
        name="Garment Type", items=GARMENT_TYPE_ITEMS, default="skirt",
        description="Kind of garment; selects the starting template",
    )
    template_mesh: PointerProperty(
        name="Template", type=bpy.types.Object, poll=_is_mesh,
        description="Mesh to start from when the garment type is Template Mesh",
    )
    use_scene_frame_range: BoolProperty(
        name="Scene Frame Range", default=True,
        description="Reconstruct the scene's frame range; off to choose frames below",
    )
    frame_start: IntProperty(name="Start", default=1, description="First frame to reconstruct")
    frame_end: IntProperty(name="End", default=250, description="Last frame to reconstruct")
    quality_preset: EnumProperty(
        name="Quality", items=PRESET_ITEMS, default="standard",
        description="Trade reconstruction time for detail",
    )
    capture_folder: StringProperty(
        name="Capture Folder", subtype="DIR_PATH", default="",
        description="Where Export Capture wrote the capture bundle last (and writes next)",
    )
    texture: EnumProperty(
        name="Texture", items=TEXTURE_ITEMS, default="static",
        description="Which textures the reconstruction fits to the footage",
    )
    remesh: BoolProperty(
        name="Adaptive Remeshing", default=False,
        description="Refine the garment's mesh during reconstruction where the footage "
        "asks for detail (slower; off until it measures better on most shots)",
    )
    drop_empty_masks: BoolProperty(
        name="Skip Empty Masks", default=False,
        description="Leave out frames whose garment mask is empty instead of stopping "
        "with an error",
    )
    last_job_folder: StringProperty(
        name="Last Reconstruction", subtype="DIR_PATH", default="",
        description="Job folder of this scene's latest Reconstruct Garment (job.json, "
        "capture, result and checkpoint); Resume Reconstruction continues it",
    )
    last_job_imported: BoolProperty(
        name="Last Reconstruction Imported", default=False,
        description="Whether the latest reconstruction's result was imported into this "
        "scene (then there is nothing to resume)",
    )


class GarmentPreferences(bpy.types.AddonPreferences):
    """Where and how the backend runs."""

    bl_idname = __package__

    backend_python: StringProperty(
        name="Backend Python", subtype="FILE_PATH", default="",
        description="Python interpreter with torch that runs reconstructions; "
        "empty = Blender's own Python",
    )
    device: EnumProperty(
        name="Device",
        items=(
            ("auto", "Auto", "CUDA when the backend's torch sees an NVIDIA GPU, else the CPU"),
            ("cpu", "CPU", "Always the CPU"),
            ("cuda", "CUDA", "An NVIDIA GPU (fails if the backend has none)"),
        ),
        default="auto",
    )
    rasterizer: EnumProperty(
        name="Rasterizer",
        items=(
            ("auto", "Auto", "Our rasterizer; nvdiffrast only when installed with CUDA"),
            ("torch", "Built-in", "Our own differentiable rasterizer (CPU and CUDA)"),
            ("nvdiffrast", "nvdiffrast",
             "NVIDIA's rasterizer: fastest on CUDA, but licensed for non-commercial use only"),
        ),
        default="auto",
    )
    working_folder: StringProperty(
        name="Working Folder", subtype="DIR_PATH", default="",
        description="Jobs, captures and caches; empty = the extension's user folder",
    )
    smpl_model_folder: StringProperty(
        name="SMPL/SMPL-X Models", subtype="DIR_PATH", default="",
        description="Optional: folder with your own SMPL/SMPL-X model files "
        "(downloaded under their licence; never bundled)",
    )

    def draw(self, context):
        from .panels.preferences import draw_preferences

        draw_preferences(self, context)


CLASSES = (GarmentSceneSettings, GarmentPreferences)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.garment_recon = PointerProperty(type=GarmentSceneSettings)


def unregister():
    del bpy.types.Scene.garment_recon
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
