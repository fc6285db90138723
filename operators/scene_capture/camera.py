"""Blender camera -> OpenCV camera (K, R, t), one per frame.

Conventions (DESIGN.md): world = Blender's (Z up, metres). OpenCV camera space has
x right, y down, z forward (Blender's camera looks down its local -Z with +Y up, so
the axes flip as ``diag(1, -1, -1)``). ``x_cam = R @ x_world + t``. Pixel ``(u, v)``
= ``K @ x_cam / z_cam`` with the origin at the top-left corner, +v down and integer
coordinates at pixel centres (as ``backend/render/camera.py``): the left image edge is
``u = -0.5``.

Intrinsics follow Blender's own view plane (``BKE_camera_params_compute_viewplane``):
the sensor dimension the lens refers to is ``sensor_height`` for a VERTICAL fit and
``sensor_width`` otherwise (AUTO too); the fit direction is the image's longer side
(pixel aspect included) for AUTO; ``shift_x``/``shift_y`` are fractions of the longer
(fitted) side; non-square pixels (``pixel_aspect_x/y``) stretch the image vertically.
``lens`` is always millimetres; ``lens_unit`` (mm or field of view) only changes the UI.
The intrinsics are computed at the 100 % render resolution and scaled to the image
size actually written (the footage's), which must have the same aspect ratio.

Extrinsics use the evaluated ``matrix_world``: scale from the object or its parents is
divided out of each axis (as Blender's renderers do); a sheared matrix (a non-uniformly
scaled parent rotated against the camera) or a mirrored one has no rotation that
reproduces Blender's projection, so it is an error. The remaining rotation is made
exactly orthonormal (polar decomposition), which removes float32 noise.
"""

from __future__ import annotations

import numpy as np

from ...backend.capture.bundle import FrameCamera
from ..base import GarmentError
from .timeline import check_evaluated, frame_restored, set_frame

BLENDER_TO_OPENCV = np.diag([1.0, -1.0, -1.0])
"""Blender camera axes (x right, y up, z backward) -> OpenCV (x right, y down, z forward)."""

SHEAR_TOLERANCE = 1e-5
"""Max |N^T N - I| entry of the column-normalised camera matrix (float32 noise is ~1e-7)."""

ASPECT_TOLERANCE_PX = 1.0
"""How far (pixels) the image may be from the render resolution's aspect ratio."""


def render_size(scene) -> tuple[int, int]:
    """(width, height) in pixels of a render of ``scene``, resolution percentage included
    (Blender rounds down, as here)."""
    r = scene.render
    return (r.resolution_x * r.resolution_percentage // 100,
            r.resolution_y * r.resolution_percentage // 100)


def check_camera(obj, frame: int | None = None) -> None:
    """Raise GarmentError unless ``obj`` is a perspective camera object."""
    at = f" at frame {frame}" if frame is not None else ""
    if obj is None:
        raise GarmentError(f"No camera{at}: pick one in the Garment sidebar (Camera) or set "
                           "the scene camera (Scene Properties > Camera)")
    if obj.type != "CAMERA":
        raise GarmentError(f"Camera '{obj.name}'{at} is a {obj.type.lower()} object, "
                           "expected a camera")
    if obj.data.type != "PERSP":
        raise GarmentError(f"Camera '{obj.name}'{at} is {obj.data.type.lower()}; only "
                           "perspective cameras are supported (Camera Properties > Lens > "
                           "Type: Perspective)")


def intrinsics(scene, camera_data, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """OpenCV K of ``camera_data`` (a perspective Camera datablock) rendered by ``scene``.

    Args:
        scene: supplies resolution_x/y, the percentage and the pixel aspect.
        camera_data: bpy.types.Camera (use the evaluated one for animated lenses).
        image_size: (width, height) in pixels of the images the K is for; default the
            render size (``render_size``). Must have the render resolution's aspect.
    Returns:
        (3, 3) float64 K in pixels (fx, fy, cx, cy; origin top-left, +y down, integer
        coordinates at pixel centres).
    """
    r = scene.render
    full_w, full_h = float(r.resolution_x), float(r.resolution_y)
    width, height = image_size if image_size is not None else render_size(scene)
    if abs(width / full_w - height / full_h) * max(full_w, full_h) > ASPECT_TOLERANCE_PX:
        raise GarmentError(
            f"Images are {width}x{height} px but scene '{scene.name}' renders "
            f"{r.resolution_x}x{r.resolution_y} px (a different aspect ratio); set the "
            "render resolution to the footage size (Output Properties > Format)")
    aspx, aspy = float(r.pixel_aspect_x), float(r.pixel_aspect_y)
    ycor = aspy / aspx
    fit = camera_data.sensor_fit
    sensor = camera_data.sensor_height if fit == "VERTICAL" else camera_data.sensor_width
    if fit == "AUTO":
        fit = "HORIZONTAL" if aspx * full_w >= aspy * full_h else "VERTICAL"
    viewfac = full_w if fit == "HORIZONTAL" else ycor * full_h
    # Blender's view plane, in pixels of the full-resolution image with its origin at
    # the bottom-left corner (continuous coordinates: the image spans 0..W).
    f_x = camera_data.lens * viewfac / sensor
    f_y = f_x / ycor
    c_x = 0.5 * full_w - camera_data.shift_x * viewfac
    c_y_up = 0.5 * full_h - camera_data.shift_y * viewfac / ycor
    sx, sy = width / full_w, height / full_h
    # flip v (top-left origin), scale to the image, move the origin to pixel centres
    return np.array([
        [f_x * sx, 0.0, c_x * sx - 0.5],
        [0.0, f_y * sy, (full_h - c_y_up) * sy - 0.5],
        [0.0, 0.0, 1.0],
    ])


def extrinsics(matrix_world, name: str = "camera", frame: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera (R, t), OpenCV axes, from a camera object's world matrix.

    Args:
        matrix_world: (4, 4) camera-to-world matrix (mathutils.Matrix or array); may
            carry scale from the object or its parents (divided out).
        name, frame: for error messages.
    Returns:
        R: (3, 3) float64 rotation; t: (3,) float64 translation in metres.
    Raises:
        GarmentError: the matrix is sheared, mirrored or degenerate.
    """
    m = np.array(matrix_world, dtype=np.float64).reshape(4, 4)
    at = f" at frame {frame}" if frame is not None else ""
    axes = m[:3, :3]
    lengths = np.linalg.norm(axes, axis=0)
    if not np.isfinite(m).all() or (lengths < 1e-12).any():
        raise GarmentError(f"Camera '{name}'{at} has a degenerate transform (zero scale "
                           "on an axis); fix its scale or its parents'")
    normalised = axes / lengths
    shear = np.abs(normalised.T @ normalised - np.eye(3)).max()
    if shear > SHEAR_TOLERANCE:
        raise GarmentError(
            f"Camera '{name}'{at} is sheared (axes {shear:.2g} from orthogonal): a parent "
            "with non-uniform scale is rotated against it; apply the parent's scale or "
            "unparent the camera (keep transform)")
    if np.linalg.det(normalised) < 0:
        raise GarmentError(f"Camera '{name}'{at} is mirrored (negative scale on it or a "
                           "parent); use positive scales")
    u, _, vt = np.linalg.svd(normalised)
    cam_to_world = u @ vt  # the nearest rotation: removes float32 noise
    R = BLENDER_TO_OPENCV @ cam_to_world.T
    t = -R @ m[:3, 3]
    return R, t


def frame_camera(scene, depsgraph, camera_obj, image_size: tuple[int, int], frame: int
                 ) -> FrameCamera:
    """The OpenCV camera of ``camera_obj`` at the scene's current (already set) frame.

    Reads the evaluated object and camera data, so animated lens, shift and transform
    (keyframes, drivers, constraints, parents) are as Blender renders them.
    """
    check_camera(camera_obj, frame)
    evaluated = check_evaluated(camera_obj, depsgraph, "Camera")
    K = intrinsics(scene, evaluated.data, image_size)
    R, t = extrinsics(evaluated.matrix_world, camera_obj.name, frame)
    return FrameCamera(K=K, R=R, t=t)


def frame_cameras(scene, camera_obj, frames, image_size: tuple[int, int] | None = None
                  ) -> list[FrameCamera]:
    """One FrameCamera per frame number (the scene's frame is restored afterwards).

    ``camera_obj`` None means the scene camera of each frame (markers may switch it).
    """
    size = image_size if image_size is not None else render_size(scene)
    cameras = []
    with frame_restored(scene):
        for frame in frames:
            depsgraph = set_frame(scene, frame)
            obj = camera_obj if camera_obj is not None else scene.camera
            cameras.append(frame_camera(scene, depsgraph, obj, size, int(frame)))
    return cameras
