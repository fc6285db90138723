"""Blender scene -> capture bundle, and body.npz -> Blender rig (bpy + numpy only).

One concern per module:

- ``inputs``: what to export, read once from ``Scene.garment_recon`` (``CaptureInputs``).
- ``camera``: Blender camera -> OpenCV K and world-to-camera R|t per frame.
- ``compositor``: a temporary scene whose compositor renders one image per frame.
- ``footage``: Movie Clip / image sequence frames -> ``frames/NNNNNN.png``.
- ``masks``: Mask datablock / mask image sequence -> ``masks/NNNNNN.png``.
- ``body_export``: armature-skinned mesh -> SkinnedBody + BodyTrack (body.npz).
- ``body_import``: body.npz -> armature, skinned mesh and action ("Add Body").
- ``animation``: keyframes written straight into F-curves (Blender 4.2 to 5.x).
- ``timeline``: frame ranges; stepping the scene through frames, its frame restored.
- ``progress``: ``progress(stage, step, total)`` -> the window manager's indicator.
- ``bundle_writer``: the whole export, ``export_capture(...)`` -> the capture folder.

Nothing here is imported when the extension is enabled; operators import these
modules inside ``execute`` (numpy is slow to import).
"""
