"""Garment masks -> ``masks/NNNNNN.png``: a Mask datablock, or a mask image sequence.

A Mask (rotoscoping, drawn in the Clip or Image editor) is rasterised per frame by the
compositor's Mask node at the footage size, so animated splines (keyframed points or
mask layer shape keys) are drawn as Blender evaluates them at that frame, feathering
included. The coverage is written linearly (Raw view: 0.5 coverage -> 128), so the
capture's "> 127 = garment" rule means "at least half covered".

A mask image sequence goes through the same path as footage (``footage.py``: frame f
is file number f) and is written as one grey channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bpy

from ...backend.capture.bundle import frame_file_name
from ..base import GarmentError
from .compositor import TemporaryCompositor
from .footage import Progress, check_source, use_source


def check_masks(source, frames: Sequence[int]) -> None:
    """Raise GarmentError unless ``source`` gives a mask for every frame of ``frames``."""
    if source is None:
        raise GarmentError("No garment mask: pick a Mask (drawn in the Mask editor) or a "
                           "mask image sequence in the Garment sidebar")
    if not isinstance(source, bpy.types.Mask):
        check_source(source, frames, role="Mask images")
        return
    if not any(len(layer.splines) for layer in source.layers):
        raise GarmentError(f'Mask "{source.name}" has no splines: draw the garment outline '
                           "in the Mask editor")
    first, last = source.frame_start, source.frame_end
    if frames[0] < first or frames[-1] > last:
        raise GarmentError(
            f'Mask/frame range mismatch: mask "{source.name}" covers frames {first}..{last} '
            f"but the export needs {frames[0]}..{frames[-1]}; set the mask's frame range "
            "(Mask editor > Mask panel) or the export frame range")


def render_masks(comp: TemporaryCompositor, source, frames: Sequence[int], folder: Path,
                 progress: Progress | None = None, written: list[Path] | None = None
                 ) -> None:
    """Write ``folder/NNNNNN.png`` (8-bit grey) for every frame number in ``frames``.

    ``check_masks`` must have passed. ``written`` collects the paths written.
    """
    if isinstance(source, bpy.types.Mask):
        comp.set_source("CompositorNodeMask", mask=source)
        view = "Raw"
    else:
        use_source(comp, source)
        view = "Standard"
    for step, frame in enumerate(frames):
        path = Path(folder) / frame_file_name(frame)
        comp.render(frame, path, color_mode="BW", view_transform=view)
        if written is not None:
            written.append(path)
        if progress is not None:
            progress("masks", step + 1, len(frames))
