"""What a capture export reads from the scene: ``Scene.garment_recon``, resolved once."""

from __future__ import annotations

from dataclasses import dataclass

from .timeline import export_frames, scene_fps


@dataclass(frozen=True)
class CaptureInputs:
    """The datablocks and numbers an export uses (checked by ``bundle_writer``).

    Attributes:
        footage: bpy.types.MovieClip, or bpy.types.Image (sequence or movie); None if
            none is chosen.
        mask: bpy.types.Mask, or bpy.types.Image (mask sequence); None if none.
        camera: the camera object, or None for the scene camera of each frame.
        body: the skinned body mesh object, or None.
        garment_type: one of backend.capture.GARMENT_TYPES.
        frames: Blender frame numbers to export, increasing.
        fps: frames per second (the scene's).
    """

    footage: object
    mask: object
    camera: object
    body: object
    garment_type: str
    frames: tuple[int, ...]
    fps: float

    @classmethod
    def from_scene(cls, scene) -> CaptureInputs:
        """Read the sidebar settings of ``scene`` (raises GarmentError for an empty range)."""
        settings = scene.garment_recon
        footage = settings.footage_clip if settings.footage_source == "CLIP" \
            else settings.footage_image
        mask = settings.mask if settings.mask_source == "MASK" else settings.mask_image
        return cls(footage=footage, mask=mask, camera=settings.camera, body=settings.body,
                   garment_type=settings.garment_type, frames=export_frames(scene, settings),
                   fps=scene_fps(scene))
