"""The garment's material: Principled BSDF, static texture, optional per-frame texture.

- Static albedo (texture.png): loaded by Blender (no Pillow in Blender's Python),
  colour space sRGB set before its pixels are first read, then packed into the
  .blend so the file stays complete when the result folder moves.
- Dynamic texture (texture_dynamic/NNNNNN.png, named by Blender frame): an image
  sequence node, auto-refreshed, left as files (Blender cannot pack sequences).
  When present it drives Base Color; the static node stays in the tree, unlinked,
  for the user to swap in.

Frame mapping of the sequence. Blender picks file number
``clamp(frame - frame_start + 1, 0, frame_duration) + frame_offset``. With
``frame_start = d0`` (first texture frame), ``frame_duration = d_last - d0 + 1`` and
``frame_offset = d0 - 1`` that is the scene frame itself on [d0, d_last] and d_last
after it. Two things that alone would show a missing file are fixed by animating
``frame_offset`` with CONSTANT keys: frames before d0 (the clamp bottoms out at 0,
one below d0) and frames in a gap of the sequence (they hold the last texture
before the gap, like the shape keys hold the last frame). Without gaps that is two
keys.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from .animation import add_constant_fcurve, fcurves_for
from .bundle import ResultImportError
from .datablocks import Created

STATIC_NODE = "Static Texture"
DYNAMIC_NODE = "Dynamic Texture"


def sequence_mapping(frames: np.ndarray) -> tuple[int, int, np.ndarray, np.ndarray]:
    """ImageUser settings showing, at Blender frame f, the texture of the latest d <= f.

    Args:
        frames: (N,) strictly increasing frame numbers that have a texture file.

    Returns:
        (frame_start, frame_duration, key_frames (K,), key_offsets (K,)): the
        ImageUser's start and duration, and CONSTANT keys for ``frame_offset``
        (module docstring). Before the first texture frame the first one shows.
    """
    d = np.asarray(frames, np.int64)
    d0, duration = int(d[0]), int(d[-1] - d[0] + 1)
    f = np.arange(d0 - 1, d[-1] + 1)
    want = d[np.clip(np.searchsorted(d, f, side="right") - 1, 0, None)]
    offset = want - np.clip(f - d0 + 1, 0, duration)
    changes = np.flatnonzero(np.diff(offset, prepend=offset[0] - 1))
    return d0, duration, f[changes], offset[changes]


def load_image(path: Path, name: str, created: Created, colorspace: str = "sRGB"):
    """Load a PNG as an image datablock (tracked in ``created``); check it decodes.

    Raises:
        ResultImportError: the file cannot be read or decoded.
    """
    try:
        image = created.add(bpy.data.images.load(str(path), check_existing=False))
    except RuntimeError as exc:
        raise ResultImportError(f"{path}: cannot load image ({exc})") from None
    image.name = name
    image.colorspace_settings.name = colorspace  # before the pixels are first decoded
    if image.size[0] == 0 or image.size[1] == 0:  # size forces the decode
        raise ResultImportError(f"{path}: unreadable image (Blender decoded no pixels)")
    return image


def build_material(
    name: str,
    texture: Path | None,
    dynamic_textures: dict[int, Path],
    created: Created,
) -> bpy.types.Material:
    """A Principled BSDF material using the result's textures (module docstring).

    Args:
        name: material name; images are named after it.
        texture: path of texture.png or None (then a plain material).
        dynamic_textures: frame -> PNG path, sorted by frame; may be empty.
        created: every datablock made here is added to it.

    Raises:
        ResultImportError: a texture file cannot be decoded.
    """
    material = created.add(bpy.data.materials.new(name))
    if material.node_tree is None:  # Blender < 5.0 creates materials without nodes
        material.use_nodes = True
    tree = material.node_tree
    bsdf = next(n for n in tree.nodes if n.type == "BSDF_PRINCIPLED")
    base_color = bsdf.inputs["Base Color"]

    if texture is not None:
        image = load_image(texture, f"{name} Texture", created)
        image.pack()
        node = _image_node(tree, STATIC_NODE, image, location=(-400, 300))
        tree.links.new(node.outputs["Color"], base_color)

    if dynamic_textures:
        frames = np.fromiter(dynamic_textures, np.int64)
        first = dynamic_textures[int(frames[0])]
        image = load_image(first, f"{name} Dynamic Texture", created)
        image.source = "SEQUENCE"
        node = _image_node(tree, DYNAMIC_NODE, image, location=(-400, 0))
        start, duration, key_frames, key_offsets = sequence_mapping(frames)
        user = node.image_user
        user.frame_start = start
        user.frame_duration = duration
        user.frame_offset = int(key_offsets[-1])
        user.use_auto_refresh = True
        user.use_cyclic = False
        action = created.add(bpy.data.actions.new(f"{name} Texture Frames"))
        add_constant_fcurve(
            fcurves_for(tree, action),
            f'nodes["{DYNAMIC_NODE}"].image_user.frame_offset',
            key_frames,
            key_offsets,
        )
        tree.links.new(node.outputs["Color"], base_color)  # replaces the static link
    return material


def _image_node(tree, name: str, image, location):
    node = tree.nodes.new("ShaderNodeTexImage")
    node.name = node.label = name
    node.image = image
    node.location = location
    return node
