"""Create-or-nothing: track the datablocks an import makes, remove them on failure.

Also removes an imported garment with what only it used (replacement on re-import).
"""

from __future__ import annotations

import logging

import bpy

log = logging.getLogger(__name__)

# Removal order: users before what they use, so that use counts have dropped to zero
# by the time a datablock is considered.
_KINDS = (bpy.types.Object, bpy.types.Mesh, bpy.types.Material, bpy.types.Action,
          bpy.types.Image, bpy.types.CacheFile, bpy.types.Scene)


def _order(id_data) -> int:
    for i, kind in enumerate(_KINDS):
        if isinstance(id_data, kind):
            return i
    raise TypeError(f"no removal rule for {type(id_data).__name__}")


def _remove(id_data) -> None:
    # batch_remove handles every ID type (bpy.data.cache_files has no remove())
    bpy.data.batch_remove((id_data,))


class Created:
    """The datablocks made so far; ``rollback`` removes them all, users first.

    Only the wrappers kept here are used to remove, and nothing tracked is removed
    any other way, so no stale reference to a freed datablock is ever followed.
    """

    def __init__(self):
        self._ids: list[bpy.types.ID] = []

    def add(self, id_data):
        self._ids.append(id_data)
        return id_data

    def rollback(self) -> None:
        alive = []
        for id_data in self._ids:
            try:
                alive.append((_order(id_data), id_data))
            except ReferenceError:  # already freed with its owner
                continue
        for _, id_data in sorted(alive, key=lambda pair: pair[0]):
            try:
                _remove(id_data)
            except ReferenceError:  # freed with something removed before it
                continue
        self._ids.clear()


def remove_garment(obj: bpy.types.Object) -> None:
    """Remove ``obj`` and the datablocks it used that nothing else uses any more.

    Candidates: its mesh, the shape keys' action, the mesh's materials, their node
    trees' actions and images, and its cache files. A datablock another object (or
    a fake user) still uses is kept.
    """
    used: list[bpy.types.ID] = []
    mesh = obj.data if isinstance(obj.data, bpy.types.Mesh) else None
    if mesh is not None:
        used.append(mesh)
        key = mesh.shape_keys
        if key is not None and key.animation_data and key.animation_data.action:
            used.append(key.animation_data.action)
        for mat in mesh.materials:
            if mat is None:
                continue
            used.append(mat)
            tree = mat.node_tree
            if tree is None:
                continue
            if tree.animation_data and tree.animation_data.action:
                used.append(tree.animation_data.action)
            used.extend(n.image for n in tree.nodes if getattr(n, "image", None) is not None)
    used.extend(m.cache_file for m in obj.modifiers
                if m.type == "MESH_SEQUENCE_CACHE" and m.cache_file is not None)
    used = sorted({id_data.session_uid: id_data for id_data in used}.values(), key=_order)
    bpy.data.objects.remove(obj)
    for id_data in used:
        try:
            if id_data.users == 0:
                _remove(id_data)
        except ReferenceError:  # freed with its owner (a shape-key datablock's mesh)
            continue
