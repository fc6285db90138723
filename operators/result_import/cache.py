"""Cache mode: bake the shape-key garment to Alembic or USD, play it back from disk.

The memory-light mode for long clips: a .blend with 300 shape keys of 20k vertices
holds 72 MB of positions (and Blender keeps them in memory); with a cache, the
.blend holds one frame and a MeshSequenceCache modifier streams the rest.

The shape-key object is exported with Blender's own exporter from a throw-away
scene that holds only that object, so the user's selection, frame and frame range
are never touched (the USD exporter reads the frame range from the scene; the
scene copies the user's fps because both formats store time in seconds).

Precision: both formats store positions as float32, like Blender; the Alembic
exporter converts Z-up to Y-up and the reader back (an exact sign swap), so
positions read back equal the shape-key positions to float32 rounding (<= 1e-6 m
for coordinates within 8 m of the origin).

The modifier reads only positions (``read_data = {'VERT'}``: topology, UVs and
material stay the mesh's own). A sub-frame shows the stored frame at or before it,
as in shape-key mode: vertex interpolation is off and the cache's frame is driven by
``floor(frame)`` (the USD reader would otherwise interpolate between samples). A
gap between result frames holds the last frame: the exporter samples every frame
of the range from the shape-key object, which holds it.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

import bpy

from .bundle import ResultImportError
from .datablocks import Created

log = logging.getLogger(__name__)

FORMATS = {"ABC": ".abc", "USD": ".usdc"}
CACHE_STEM = "garment_cache"
MODIFIER_NAME = "Garment Cache"


def cache_path(result_dir: Path, fmt: str) -> Path:
    """Where a new cache of a result goes: ``<result_dir>/garment_cache.abc`` (or .usdc).

    A file some CacheFile of this session still reads (an earlier import of the same
    result) is never overwritten: the next free ``garment_cache_N`` is used instead,
    so a replaced garment keeps playing until it is removed, and no open file is
    replaced (Windows refuses that). Re-importing with replacement therefore
    alternates between two files.
    """
    in_use = {Path(bpy.path.abspath(c.filepath)).resolve() for c in bpy.data.cache_files}
    suffix = FORMATS[fmt]
    path = Path(result_dir) / (CACHE_STEM + suffix)
    n = 1
    while path.resolve() in in_use:
        n += 1
        path = Path(result_dir) / f"{CACHE_STEM}_{n}{suffix}"
    return path


def unique_name(prefix: str) -> str:
    """A name no object or mesh has: exported prim paths are then predictable."""
    while True:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        if name not in bpy.data.objects and name not in bpy.data.meshes:
            return name


def export_cache(
    context,
    obj: bpy.types.Object,
    path: Path,
    fmt: str,
    frame_start: int,
    frame_end: int,
) -> str:
    """Bake ``obj`` (evaluated, i.e. with its shape keys) at every frame to ``path``.

    Args:
        obj: mesh object, linked to no scene, identity transform; its name and its
            mesh's name contain only letters, digits and underscores.
        fmt: "ABC" or "USD".
        frame_start, frame_end: inclusive Blender frame range to bake.

    Returns the path of the mesh inside the file (for the modifier's object_path).
    The file is written under a temporary name and renamed.

    Raises:
        ResultImportError: the exporter failed (e.g. the folder is not writable).
    """
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    scene = bpy.data.scenes.new(unique_name("GarmentCacheExport"))
    try:
        scene.render.fps = context.scene.render.fps
        scene.render.fps_base = context.scene.render.fps_base
        scene.frame_start, scene.frame_end = frame_start, frame_end
        scene.collection.objects.link(obj)
        view_layer = scene.view_layers[0]
        t0 = time.perf_counter()
        with context.temp_override(scene=scene, view_layer=view_layer):
            if fmt == "ABC":
                _call(
                    bpy.ops.wm.alembic_export,
                    filepath=str(tmp), start=frame_start, end=frame_end,
                    selected=False, uvs=False, normals=False, orcos=False,
                    export_hair=False, export_particles=False,
                    export_custom_properties=False, as_background_job=False,
                    evaluation_mode="RENDER", init_scene_frame_range=False,
                )
                inner = f"/{obj.name}/{obj.data.name}"
            else:
                _call(
                    bpy.ops.wm.usd_export,
                    filepath=str(tmp), selected_objects_only=False, export_animation=True,
                    export_shapekeys=False, export_armatures=False, export_materials=False,
                    export_uvmaps=False, export_normals=False, export_mesh_colors=False,
                    export_custom_properties=False, convert_orientation=False,
                    convert_world_material=False, root_prim_path="/root",
                    evaluation_mode="RENDER",
                )
                inner = f"/root/{obj.name}/{obj.data.name}"
        os.replace(tmp, path)
        log.info("cache %s: %d frames in %.2f s", path, frame_end - frame_start + 1,
                 time.perf_counter() - t0)
    except (RuntimeError, OSError) as exc:
        raise ResultImportError(f"{path}: could not write the {fmt} cache ({exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
        bpy.data.scenes.remove(scene)  # unlinks obj; the object itself stays
    return inner


def _call(operator, **options):
    """Run an exporter with the options this Blender knows (4.2 lacks some of 5.0's)."""
    known = operator.get_rna_type().properties.keys()
    unknown = sorted(set(options) - set(known))
    if unknown:
        log.debug("%s: options not in this Blender: %s", operator.idname_py(), unknown)
    return operator(**{k: v for k, v in options.items() if k in known})


def attach_cache(
    context, obj: bpy.types.Object, path: Path, inner_path: str, created: Created
) -> bpy.types.MeshSequenceCacheModifier:
    """Add a MeshSequenceCache modifier to ``obj`` reading positions from ``path``."""
    before = {c.session_uid for c in bpy.data.cache_files}
    # No data API creates a CacheFile (bpy.data.cache_files has no new/load).
    with context.temp_override(scene=context.scene):
        bpy.ops.cachefile.open(filepath=str(path))
    cache_file = created.add(next(c for c in bpy.data.cache_files if c.session_uid not in before))
    # Run as exec, the operator leaves the user count at 1 for a pointer it never
    # set; clear it so the modifier holds the only use (else it outlives the object).
    cache_file.user_clear()
    modifier = obj.modifiers.new(MODIFIER_NAME, "MESH_SEQUENCE_CACHE")
    modifier.cache_file = cache_file
    modifier.object_path = inner_path
    modifier.read_data = {"VERT"}
    modifier.use_vertex_interpolation = False
    # Hold each stored frame through its sub-frames: the USD reader interpolates time
    # samples linearly otherwise. A "simple expression" driver runs without Python,
    # so it works with script auto-execution off.
    cache_file.override_frame = True
    driver = cache_file.driver_add("frame").driver
    driver.type = "SCRIPTED"
    driver.expression = "floor(frame)"
    return modifier
