"""Blender camera -> OpenCV K, R|t, checked against bpy_extras' own projection."""

import importlib
import math

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Matrix, Vector

MAX_PIXEL_ERROR = 0.01


@pytest.fixture
def camera_module(addon):
    return importlib.import_module(addon.__name__ + ".operators.scene_capture.camera")


def make_camera(name="Cam", location=(0.3, -6.0, 1.4), rotation=(1.4, 0.05, 0.2)):
    data = bpy.data.cameras.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    obj.location = location
    obj.rotation_euler = rotation
    bpy.context.scene.camera = obj
    return obj


def points_in_view(obj, count=40, seed=0):
    """World points in front of ``obj`` (built in its camera space, so all are visible)."""
    rng = np.random.default_rng(seed)
    local = np.stack([rng.uniform(-1, 1, count), rng.uniform(-1, 1, count),
                      -rng.uniform(2, 8, count)], 1)
    world = np.array(obj.matrix_world) @ np.c_[local, np.ones(count)].T
    return world[:3].T


def blender_pixels(scene, obj, points, size):
    """world_to_camera_view (0..1, origin bottom-left) -> OpenCV pixels (centres at ints)."""
    width, height = size
    out = []
    for p in points:
        ndc = world_to_camera_view(scene, obj, Vector(p))
        out.append((ndc.x * width - 0.5, (1.0 - ndc.y) * height - 0.5))
    return np.array(out)


def our_pixels(camera, points):
    cam = camera.R @ points.T + camera.t[:, None]
    assert (cam[2] > 0).all(), "every test point is in front of the camera"
    uv = camera.K @ (cam / cam[2])
    return uv[:2].T


def assert_matches_blender(camera_module, obj, frames):
    scene = bpy.context.scene
    size = camera_module.render_size(scene)
    cameras = camera_module.frame_cameras(scene, None, frames)
    for frame, camera in zip(frames, cameras, strict=True):
        scene.frame_set(frame)
        np.testing.assert_allclose(camera.R.T @ camera.R, np.eye(3), atol=1e-12)
        assert np.linalg.det(camera.R) == pytest.approx(1.0, abs=1e-12)
        points = points_in_view(obj, seed=frame)
        error = np.abs(our_pixels(camera, points) - blender_pixels(scene, obj, points, size))
        assert error.max() < MAX_PIXEL_ERROR, f"frame {frame}: {error.max():.4g} px"


@pytest.mark.parametrize("resolution", [(64, 48), (48, 64)], ids=["landscape", "portrait"])
@pytest.mark.parametrize("sensor_fit", ["AUTO", "HORIZONTAL", "VERTICAL"])
@pytest.mark.parametrize("pixel_aspect", [(1.0, 1.0), (2.0, 1.0), (1.0, 1.5)],
                         ids=["square", "wide-pixels", "tall-pixels"])
def test_projection_matches_world_to_camera_view(camera_module, resolution, sensor_fit,
                                                 pixel_aspect):
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = pixel_aspect
    obj = make_camera()
    cam = obj.data
    cam.sensor_fit = sensor_fit
    cam.sensor_width, cam.sensor_height = 36.0, 20.0
    cam.lens = 42.0
    cam.shift_x, cam.shift_y = 0.12, -0.07
    assert_matches_blender(camera_module, obj, [1])


def test_animated_lens_shift_and_transform_match_every_frame(camera_module):
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 80, 60
    obj = make_camera()
    cam = obj.data
    for frame, lens, shift, loc, rot_z in ((1, 35.0, 0.0, (0.3, -6, 1.4), 0.2),
                                           (6, 70.0, 0.2, (1.5, -4, 2.0), -0.4)):
        cam.lens, cam.shift_x, obj.location = lens, shift, loc
        obj.rotation_euler.z = rot_z
        cam.keyframe_insert("lens", frame=frame)
        cam.keyframe_insert("shift_x", frame=frame)
        obj.keyframe_insert("location", frame=frame)
        obj.keyframe_insert("rotation_euler", frame=frame)
    scene.frame_set(3)
    cameras = camera_module.frame_cameras(scene, obj, [1, 3, 6])
    assert scene.frame_current == 3, "the scene's frame is restored"
    fx = [c.K[0, 0] for c in cameras]
    assert fx[0] < fx[1] < fx[2], "the animated lens is read per frame"
    assert_matches_blender(camera_module, obj, [1, 2, 3, 4, 5, 6])


def test_resolution_percentage_and_fov_lens_unit(camera_module):
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 120, 80
    scene.render.resolution_percentage = 50
    obj = make_camera()
    obj.data.lens_unit = "FOV"
    obj.data.angle = math.radians(50)
    assert camera_module.render_size(scene) == (60, 40)
    assert_matches_blender(camera_module, obj, [1])
    camera = camera_module.frame_cameras(scene, obj, [1])[0]
    # same field of view whatever the unit: fx = (W / 2) / tan(angle / 2)
    assert camera.K[0, 0] == pytest.approx(30 / math.tan(math.radians(25)), rel=1e-5)


def test_camera_on_the_axis_projects_to_the_image_centre(camera_module):
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    obj = make_camera()
    camera = camera_module.frame_cameras(scene, obj, [1])[0]
    ahead = np.array(obj.matrix_world @ Vector((0, 0, -5)))
    np.testing.assert_allclose(our_pixels(camera, ahead[None]), [[31.5, 23.5]], atol=1e-6)
    assert camera.K[0, 0] == pytest.approx(camera.K[1, 1])


def test_image_size_scales_k_and_must_keep_the_aspect(camera_module):
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    obj = make_camera()
    full = camera_module.intrinsics(scene, obj.data)
    half = camera_module.intrinsics(scene, obj.data, (32, 24))
    # continuous image coordinates scale by 1/2; the pixel-centre offset stays 0.5
    np.testing.assert_allclose(half[:2, :2], full[:2, :2] / 2)
    np.testing.assert_allclose(half[:2, 2] + 0.5, (full[:2, 2] + 0.5) / 2)
    with pytest.raises(camera_module.GarmentError, match=r"32x32 px .* 64x48 px"):
        camera_module.intrinsics(scene, obj.data, (32, 32))


def test_scaled_parent_does_not_leak_into_r(camera_module):
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    parent = bpy.data.objects.new("Rig", None)
    scene.collection.objects.link(parent)
    parent.location = (1.0, 2.0, 0.5)
    parent.rotation_euler = (0.1, 0.2, 0.3)
    parent.scale = (2.0, 0.5, 3.0)
    obj = make_camera(location=(0.1, -2.0, 0.3), rotation=(0, 0, 0))
    obj.parent = parent
    obj.scale = (1.7, 1.7, 0.4)
    bpy.context.view_layer.update()
    assert_matches_blender(camera_module, obj, [1])


def test_sheared_camera_is_an_error(camera_module):
    scene = bpy.context.scene
    parent = bpy.data.objects.new("Squash", None)
    scene.collection.objects.link(parent)
    parent.scale = (3.0, 1.0, 1.0)
    obj = make_camera(rotation=(0.0, 0.0, 0.7))
    obj.parent = parent
    scene.frame_set(3)
    with pytest.raises(camera_module.GarmentError, match="Camera 'Cam' at frame 1 is sheared"):
        camera_module.frame_cameras(scene, obj, [1])
    assert scene.frame_current == 3, "the frame is restored after an error too"


@pytest.mark.parametrize("kind", ["ORTHO", "PANO"])
def test_orthographic_and_panoramic_cameras_are_errors(camera_module, kind):
    obj = make_camera()
    obj.data.type = kind
    with pytest.raises(camera_module.GarmentError, match="only perspective cameras"):
        camera_module.frame_cameras(bpy.context.scene, obj, [1])


def test_camera_left_out_of_the_view_layer_is_an_error(camera_module):
    obj = make_camera()
    make_camera("Other")  # the scene camera is always evaluated; this one is not
    obj.hide_viewport = True  # not evaluated: its animation would not be applied
    with pytest.raises(camera_module.GarmentError, match="Camera 'Cam' is not evaluated"):
        camera_module.frame_cameras(bpy.context.scene, obj, [1])


def test_no_camera_is_an_error(camera_module):
    bpy.context.scene.camera = None
    with pytest.raises(camera_module.GarmentError, match="No camera at frame 4"):
        camera_module.frame_cameras(bpy.context.scene, None, [4])


def test_extrinsics_are_the_inverse_camera_pose(camera_module):
    pose = Matrix.LocRotScale(Vector((1, 2, 3)), Matrix.Rotation(0.4, 3, "X").to_quaternion(),
                              None)
    R, t = camera_module.extrinsics(pose)
    centre = -R.T @ t
    np.testing.assert_allclose(centre, [1, 2, 3], atol=1e-6)
    # the camera looks down its local -Z: OpenCV +z is that direction in the world
    forward_world = np.array(pose.to_3x3() @ Vector((0, 0, -1)))
    np.testing.assert_allclose(R[2], forward_world, atol=1e-6)
