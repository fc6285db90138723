"""Result bundle -> one animated, textured garment object (what the operator runs).

The object's mesh holds the FIRST frame's world positions, not the canonical
(rest-space) ones: with shape keys off, in Edit Mode and in cache mode's
un-modified mesh the garment then sits where the body is, and each frame's key is
a small delta from it (better float32 precision than a delta from rest space).
The object's transform is the identity, so object space is world space.

Import is all or nothing: the bundle is read and checked before anything is made,
every datablock made is tracked, and any failure removes them all. Only then is
the object linked to the scene; nothing else in the scene changes unless asked
(``set_frame_range``, ``replace_existing``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bpy

from .bundle import LoadedResult, ResultImportError, load_result
from .cache import FORMATS, attach_cache, cache_path, export_cache, unique_name
from .datablocks import Created, remove_garment
from .material import build_material
from .mesh import build_mesh
from .shape_keys import add_frame_shape_keys

log = logging.getLogger(__name__)

RESULT_PATH_PROP = "garment_result_path"
"""Object custom property: absolute path of the result folder it was imported from."""


@dataclass(frozen=True)
class ImportSettings:
    """How to import a result.

    use_cache: bake to an Alembic/USD file in the result folder and play it with a
        MeshSequenceCache modifier instead of keeping shape keys (memory-light mode
        for long clips; see cache.py).
    cache_format: "ABC" (Alembic, garment_cache.abc) or "USD" (garment_cache.usdc).
    replace_existing: remove the garment(s) of this scene imported from the same
        result folder (custom property ``garment_result_path``) and take the first
        one's name and collections; otherwise a new object with a unique name.
    set_frame_range: set the scene's frame range to the result's first..last frame.
    name: name of the new object and its datablocks.
    """

    use_cache: bool = False
    cache_format: str = "ABC"
    replace_existing: bool = False
    set_frame_range: bool = False
    name: str = "Garment"

    def __post_init__(self):
        if self.cache_format not in FORMATS:
            raise ResultImportError(
                f"cache_format must be one of {', '.join(FORMATS)}; got {self.cache_format!r}"
            )
        if not self.name.strip():
            raise ResultImportError("name must not be empty")


def find_imported(scene: bpy.types.Scene, result_dir: Path | str) -> list[bpy.types.Object]:
    """Objects of ``scene`` imported from ``result_dir`` (compared as absolute paths)."""
    key = str(Path(result_dir).resolve())
    return [o for o in scene.objects if o.get(RESULT_PATH_PROP) == key]


def import_result(
    context,
    result_dir: Path | str,
    settings: ImportSettings | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> bpy.types.Object:
    """Import a result folder as a garment object linked to the active collection.

    Args:
        context: a Blender context with a scene (the object goes to
            ``context.collection``, else the scene's master collection).
        result_dir: the result folder (garment.npz, texture.png, texture_dynamic/).
        settings: ImportSettings (defaults when None).
        on_warning: called with each non-fatal problem (e.g. degenerate faces dropped).

    Returns the new object: a mesh with a Basis and one ``frame_NNNN`` shape key per
    result frame, switched by a CONSTANT action on the shape keys (or, with
    ``use_cache``, a MeshSequenceCache modifier), a UV map, and a material.

    Raises:
        ResultImportError: the bundle is missing, malformed or non-finite, a texture
            cannot be decoded, or the cache cannot be written; nothing is created.
    """
    settings = settings or ImportSettings()
    warn = on_warning or (lambda message: None)
    t0 = time.perf_counter()
    loaded = load_result(result_dir)
    _warn_about(loaded, warn)
    scene = context.scene
    replaced = find_imported(scene, loaded.root) if settings.replace_existing else []

    created = Created()
    try:
        obj = _build(context, loaded, settings, created)
    except BaseException:
        created.rollback()
        raise
    obj[RESULT_PATH_PROP] = str(loaded.root.resolve())

    if replaced:
        name, collections = replaced[0].name, list(replaced[0].users_collection)
        for old in replaced:
            remove_garment(old)
        obj.name = name  # free now
    else:
        collections = [context.collection or scene.collection]
    for collection in collections:
        collection.objects.link(obj)
    if settings.set_frame_range:
        frames = loaded.garment.frame_numbers
        # order matters: Blender clamps start to end (and end to start) on assignment
        scene.frame_end = max(scene.frame_end, int(frames[-1]))
        scene.frame_start = int(frames[0])
        scene.frame_end = int(frames[-1])
    T, V = loaded.garment.vertices.shape[:2]
    log.info("imported %s: %d vertices x %d frames (%s) in %.2f s", loaded.root, V, T,
             "cache" if settings.use_cache else "shape keys", time.perf_counter() - t0)
    return obj


def _build(context, loaded: LoadedResult, settings: ImportSettings, created: Created):
    g = loaded.garment
    name = settings.name
    mesh = created.add(build_mesh(name, g.vertices[0], g.faces, g.uv))
    mesh.materials.append(
        build_material(name, loaded.texture, loaded.dynamic_textures, created)
    )
    if not settings.use_cache:
        obj = created.add(bpy.data.objects.new(name, mesh))
        action = created.add(bpy.data.actions.new(f"{name} Frames"))
        add_frame_shape_keys(obj, g.vertices, g.frame_numbers, action)
        return obj

    path = cache_path(loaded.root, settings.cache_format)
    temporary = Created()  # the shape-key object exists only to be exported
    try:
        tmp_name = unique_name("GarmentCache")
        tmp_mesh = temporary.add(mesh.copy())
        tmp_mesh.name = tmp_name
        tmp_obj = temporary.add(bpy.data.objects.new(tmp_name, tmp_mesh))
        action = temporary.add(bpy.data.actions.new(f"{tmp_name} Frames"))
        add_frame_shape_keys(tmp_obj, g.vertices, g.frame_numbers, action)
        inner = export_cache(context, tmp_obj, path, settings.cache_format,
                             int(g.frame_numbers[0]), int(g.frame_numbers[-1]))
    finally:
        temporary.rollback()
    obj = created.add(bpy.data.objects.new(name, mesh))
    attach_cache(context, obj, path, inner, created)
    return obj


def _warn_about(loaded: LoadedResult, warn: Callable[[str], None]) -> None:
    if len(loaded.dropped_faces):
        warn(f"{loaded.root}: left out {len(loaded.dropped_faces)} degenerate face(s) "
             f"(a vertex repeated), first face {loaded.dropped_faces[0]}")
    if loaded.garment.uv is None and (loaded.texture or loaded.dynamic_textures):
        warn(f"{loaded.root}: the result has textures but no UVs; they cannot be mapped")
