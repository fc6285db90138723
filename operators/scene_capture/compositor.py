"""A temporary scene whose compositor writes one PNG per frame.

Blender's MovieClip and Mask datablocks expose no pixels to Python; the compositor's
Movie Clip, Image and Mask nodes turn them into images exactly as Blender shows them
(the clip's start frame and offset, the mask's animation at that frame). The scene is
our own, created for the export and removed afterwards with its node tree, so the
user's compositor, render settings and frame are never touched.

Blender 5.0 keeps a scene's compositor in ``scene.compositing_node_group`` (a
CompositorNodeTree node group whose Group Output is the result); 4.x uses the embedded
``scene.node_tree`` with a Composite node.
"""

from __future__ import annotations

import logging
from pathlib import Path

import bpy

from ..base import GarmentError

log = logging.getLogger(__name__)

RENDER_RESULT = "Render Result"


class TemporaryCompositor:
    """Context manager: ``with TemporaryCompositor((w, h)) as comp: comp.render(...)``.

    Args:
        size: (width, height) in pixels of every image written.
        name: name of the temporary scene and node tree (Blender may suffix it).
    """

    def __init__(self, size: tuple[int, int], name: str = "Garment Export (temporary)"):
        self.size = (int(size[0]), int(size[1]))
        self.name = name
        self.scene = None
        self.tree = None
        self._output_socket = None
        self._had_render_result = False

    def __enter__(self) -> TemporaryCompositor:
        self._had_render_result = RENDER_RESULT in bpy.data.images
        scene = bpy.data.scenes.new(self.name)
        self.scene = scene
        render = scene.render
        render.resolution_x, render.resolution_y = self.size
        render.resolution_percentage = 100
        render.pixel_aspect_x = render.pixel_aspect_y = 1.0
        render.dither_intensity = 0.0  # dithering adds noise to every 8-bit value
        render.use_compositing = True
        render.use_sequencer = False
        render.use_file_extension = True
        # no date, file or render-time metadata in the PNGs: the same footage must give
        # byte-identical frames (and a user's file names stay out of the bundle)
        for name in dir(render):
            if name.startswith("use_stamp"):
                setattr(render, name, False)
        settings = render.image_settings
        settings.file_format = "PNG"
        settings.color_depth = "8"
        settings.compression = 15
        if hasattr(scene, "compositing_node_group"):  # Blender 5.0+
            tree = bpy.data.node_groups.new(self.name, "CompositorNodeTree")
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
            self._output_socket = tree.nodes.new("NodeGroupOutput").inputs[0]
            scene.compositing_node_group = tree
            self.tree = tree
        else:  # Blender 4.x: the scene's embedded tree, removed with the scene
            scene.use_nodes = True
            tree = scene.node_tree
            tree.nodes.clear()
            self._output_socket = tree.nodes.new("CompositorNodeComposite").inputs["Image"]
        self._nodes = tree.nodes
        self._links = tree.links
        return self

    def __exit__(self, *exc) -> None:
        if self.scene is not None:
            bpy.data.scenes.remove(self.scene)
            self.scene = None
        if self.tree is not None:
            bpy.data.node_groups.remove(self.tree)
            self.tree = None
        if not self._had_render_result and RENDER_RESULT in bpy.data.images:
            bpy.data.images.remove(bpy.data.images[RENDER_RESULT])

    def set_source(self, node_type: str, output: int | str = 0, **props):
        """Replace the tree's input with a new ``node_type`` node (props set on it) whose
        ``output`` socket becomes the result; returns the node."""
        for node in list(self._nodes):
            if node.bl_idname not in ("NodeGroupOutput", "CompositorNodeComposite"):
                self._nodes.remove(node)
        node = self._nodes.new(node_type)
        for key, value in props.items():
            setattr(node, key, value)
        self._links.new(node.outputs[output], self._output_socket)
        return node

    def render(self, frame: int, path: Path, color_mode: str = "RGB",
               view_transform: str = "Standard") -> None:
        """Composite ``frame`` and write it to ``path`` as an 8-bit PNG.

        Args:
            color_mode: "RGB" (footage) or "BW" (masks, one grey channel).
            view_transform: "Standard" writes sRGB images unchanged (linear -> sRGB
                undoes the sRGB -> linear of loading); "Raw" writes linear values
                (mask coverage: 0.5 -> 128).
        """
        scene = self.scene
        try:
            scene.view_settings.view_transform = view_transform
        except TypeError:  # a custom OCIO configuration without it
            raise GarmentError(f"The colour management configuration has no "
                               f"'{view_transform}' view transform, which the export needs "
                               "to write images unchanged") from None
        scene.view_settings.look = "None"
        scene.view_settings.exposure = 0.0
        scene.view_settings.gamma = 1.0
        scene.render.image_settings.color_mode = color_mode
        scene.frame_current = int(frame)
        scene.render.filepath = str(path)
        with bpy.context.temp_override(scene=scene, view_layer=scene.view_layers[0]):
            # write_still renders synchronously, also with a UI; nothing but the
            # compositor runs (no render layers node, so no camera is needed)
            bpy.ops.render.render(write_still=True)
