"""Synthetic captures, look + render: Cycles frames, occlusion-aware garment masks,
camera-space normal and depth maps, camera framing, determinism, contact sheet.

The scene is a stand-in for the real one: a sphere "body" sliding sideways (keyed)
in front of a flat grid "garment" that faces the camera and rises a little every
frame through a Mesh Cache modifier (a PC2 file, as the cloth step writes). The
sphere hides the middle of the grid, so visibility is known analytically (a ray
from the camera centre to a garment vertex through the sphere or not). The scene is
built and rendered once per module; the tests read the files and numbers it left.
"""

import importlib
import math
import struct
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from PIL import Image

from tests.blender_tier.conftest import ADDON_MODULE

W, H = 128, 96
"""Render size: not square, so the aspect ratio is exercised."""
FRAMES = (1, 2, 3)
SAMPLES = 8
SPHERE_RADIUS = 0.3
SPHERE_X = (-0.15, 0.0, 0.15)
"""The sphere's x at each frame (keyed linearly); y = 0, z = 1."""
GARMENT_Y = 0.5
"""The garment grid's plane, behind the sphere seen from the -Y side."""
GRID_X, GRID_Z = np.linspace(-0.8, 0.8, 33), np.linspace(0.75, 1.35, 13)
RISE_M = 0.02
"""How far the mesh cache lifts the garment each frame."""
CLEAR_M = 0.03
"""Vertices whose camera ray misses (or enters) the sphere by more than this are
clearly visible (hidden); those closer to its silhouette are not judged."""


@pytest.fixture(scope="module")
def m(installed):
    """This module's view of the installed extension's modules."""
    base = ADDON_MODULE + ".operators."
    return SimpleNamespace(
        look=importlib.import_module(base + "synthetic.look"),
        render=importlib.import_module(base + "synthetic.render"),
        sheet=importlib.import_module(base + "synthetic.contact_sheet"),
        animation=importlib.import_module(base + "scene_capture.animation"),
        base=importlib.import_module(base + "base"),
    )


def write_pc2(path: Path, frames: np.ndarray) -> None:
    """A PC2 point cache: header, then (samples, points, 3) float32."""
    samples, points, _ = frames.shape
    header = struct.pack("<12siiffi", b"POINTCACHE2\0", 1, points, 0.0, 1.0, samples)
    path.write_bytes(header + frames.astype("<f4").tobytes())


def grid_garment(tmp: Path):
    """The garment: a UV-mapped grid in the plane y = GARMENT_Y, normal -Y (towards
    the camera), moved by a Mesh Cache modifier."""
    x, z = np.meshgrid(GRID_X, GRID_Z)
    rest = np.stack([x.ravel(), np.full(x.size, GARMENT_Y), z.ravel()], 1)
    nx = len(GRID_X)
    idx = np.arange(rest.shape[0]).reshape(len(GRID_Z), nx)
    # counter-clockwise seen from -Y: x right, z up
    quads = np.stack([idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]], -1)
    mesh = bpy.data.meshes.new("Garment")
    mesh.from_pydata(rest.tolist(), [], quads.reshape(-1, 4).tolist())
    uv = mesh.uv_layers.new(name="UVMap")
    loops = np.empty(len(mesh.loops), np.int64)
    mesh.loops.foreach_get("vertex_index", loops)
    uvs = np.stack([(x.ravel() + 0.8) / 1.6, (z.ravel() - 0.75) / 0.6], 1)
    uv.uv.foreach_set("vector", uvs[loops].astype(np.float32).ravel())
    obj = bpy.data.objects.new("Garment", mesh)
    bpy.context.scene.collection.objects.link(obj)
    cache = np.stack([rest + [0.0, 0.0, RISE_M * i] for i in range(len(FRAMES))])
    write_pc2(tmp / "garment.pc2", cache)
    modifier = obj.modifiers.new("Cloth Cache", "MESH_CACHE")
    modifier.cache_format = "PC2"
    modifier.filepath = str(tmp / "garment.pc2")
    modifier.frame_start = FRAMES[0]
    return obj


def sphere_body(m):
    """The body: a UV sphere keyed along x (linear keys)."""
    bpy.ops.mesh.primitive_uv_sphere_add(radius=SPHERE_RADIUS, segments=32, ring_count=16,
                                         location=(SPHERE_X[0], 0.0, 1.0))
    body = bpy.context.active_object
    body.name = "Body"
    writer = m.animation.ActionWriter(body, "Body Slide")
    writer.add_curve("location", 0, np.array(FRAMES, float), np.array(SPHERE_X))
    return body


def stand_in_scene(m, tmp: Path):
    bpy.ops.wm.read_homefile()
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = W, H
    scene.frame_start, scene.frame_end = FRAMES[0], FRAMES[-1]
    scene.frame_set(FRAMES[0])
    body = sphere_body(m)
    garment = grid_garment(tmp)
    return scene, body, garment


def evaluated_vertices(obj, scene, frame):
    scene.frame_set(frame)
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    co = np.empty(3 * len(evaluated.data.vertices), np.float32)
    evaluated.data.vertices.foreach_get("co", co)
    m = np.array(evaluated.matrix_world)
    return co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]


def render_folder(m, root: Path, kind: str):
    """Images of one render run, by name, each (T, H, W[, 3])."""
    def png(folder):
        return np.stack([np.asarray(Image.open(root / folder / f"{f:06d}.png"))
                         for f in FRAMES])
    return SimpleNamespace(
        frames=png("frames"), masks=png("masks"), normals=png("normals"),
        depth=np.stack([np.load(root / "depth" / f"{f:06d}.npy") for f in FRAMES]),
        root=root, kind=kind)


@pytest.fixture(scope="module")
def captured(m, tmp_path_factory):
    """Render the stand-in scene with a static camera (twice) and an orbiting one."""
    tmp = tmp_path_factory.mktemp("synth_render")
    scene, body, garment = stand_in_scene(m, tmp)
    texture = np.zeros((64, 64, 3), np.uint8)
    texture[::8] = (200, 40, 40)
    texture[:, ::8] = (40, 40, 200)
    m.render.write_png(tmp / "texture.png", texture)
    look = m.look.LookSettings(texture_path=str(tmp / "texture.png"), background="noise",
                               seed=4)
    m.look.apply_look(scene, garment, body, look)
    out = SimpleNamespace(garment={}, body={}, centres={}, reports={}, runs={})
    for f in FRAMES:
        out.garment[f] = evaluated_vertices(garment, scene, f)
        out.body[f] = evaluated_vertices(body, scene, f)
        out.centres[f] = np.array(body.matrix_world.translation)

    static = m.look.CameraSettings(mode="static", margin=0.1)
    m.look.place_camera(scene, FRAMES, body, garment, static, name="Static")
    out.progress = []
    for run in ("static", "static_again"):
        out.reports[run] = m.render.render_capture_images(
            scene, FRAMES, garment, tmp / run, (W, H), SAMPLES,
            progress=lambda *event: out.progress.append(event))
        out.runs[run] = render_folder(m, tmp / run, run)
    orbit = m.look.CameraSettings(mode="orbit", orbit_deg=60.0, azimuth_deg=-20.0,
                                  azimuth_jitter_deg=0.0)
    body_array = np.stack([out.body[f] for f in FRAMES])
    m.look.place_camera(scene, FRAMES, body_array, garment, orbit, name="Orbit")
    out.reports["orbit"] = m.render.render_capture_images(
        scene, FRAMES, garment, tmp / "orbit", (W, H), SAMPLES)
    out.runs["orbit"] = render_folder(m, tmp / "orbit", "orbit")
    out.lights = sorted(o.name for o in bpy.data.collections["Synthetic Look"].objects)
    m.look.apply_look(scene, garment, body, look)  # again: replaces, never adds
    out.lights_again = sorted(o.name for o in bpy.data.collections["Synthetic Look"].objects)
    out.tmp = tmp
    bpy.ops.wm.read_homefile()
    return out


def project(camera, points):
    """OpenCV pixels (N, 2) and camera z (N,) of world points."""
    cam = points @ camera.R.T + camera.t
    uv = cam @ camera.K.T
    return uv[:, :2] / uv[:, 2:], cam[:, 2]


def sphere_clearance(camera, centre, points):
    """Signed distance (N,) from the sphere's surface to the camera->point segment's
    closest approach to its centre: > 0 the ray misses the sphere by that much, < 0
    it passes that deep inside (the points lie behind the sphere here)."""
    eye = -camera.R.T @ camera.t
    d = points - eye
    s = np.clip(((centre - eye) @ d.T) / (d * d).sum(1), 0.0, 1.0)
    closest = eye + s[:, None] * d
    return np.linalg.norm(closest - centre, axis=1) - SPHERE_RADIUS


def interior():
    """Indices of grid vertices away from the grid's border (one vertex in)."""
    idx = np.arange(len(GRID_Z) * len(GRID_X)).reshape(len(GRID_Z), len(GRID_X))
    return idx[1:-1, 1:-1].ravel()


@pytest.mark.parametrize("run", ["static", "orbit"])
def test_visible_garment_vertices_are_in_the_mask_hidden_ones_are_not(captured, run):
    report, images = captured.reports[run], captured.runs[run]
    inner = interior()
    for t, frame in enumerate(FRAMES):
        camera = report.cameras[t]
        points = captured.garment[frame][inner]
        uv, _ = project(camera, points)
        clear = sphere_clearance(camera, captured.centres[frame], points)
        px = np.round(uv).astype(int)
        inside = (px[:, 0] >= 0) & (px[:, 0] < W) & (px[:, 1] >= 0) & (px[:, 1] < H)
        assert inside.all(), f"{run} frame {frame}: garment vertices outside the image"
        in_mask = images.masks[t][px[:, 1], px[:, 0]] > 127
        visible, hidden = clear > CLEAR_M, clear < -CLEAR_M
        assert visible.sum() > 100 and hidden.sum() > 20, "the scene tests both cases"
        assert in_mask[visible].all(), (
            f"{run} frame {frame}: {np.sum(~in_mask[visible])} visible garment vertices "
            f"outside the mask, e.g. at pixel {px[visible][~in_mask[visible]][0]}")
        assert not in_mask[hidden].any(), (
            f"{run} frame {frame}: {in_mask[hidden].sum()} garment vertices behind the "
            "body are in the mask")


def test_mask_covers_the_projected_visible_garment(captured):
    """The mask is the visible garment region, not more: its area matches the
    projected grid minus the sphere's disc within a few percent."""
    images = captured.runs["static"]
    for t, frame in enumerate(FRAMES):
        mask = images.masks[t] > 127
        assert set(np.unique(images.masks[t])) <= {0, 255}
        camera = captured.reports["static"].cameras[t]
        v, u = np.mgrid[0:H, 0:W]
        rays = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3) @ np.linalg.inv(camera.K).T
        eye = -camera.R.T @ camera.t
        dirs = rays @ camera.R  # camera -> world directions
        # where each pixel's ray meets the garment plane, and whether that is on the grid
        s = (GARMENT_Y - eye[1]) / dirs[:, 1]
        hit = eye + s[:, None] * dirs
        lo, hi = captured.garment[frame].min(0), captured.garment[frame].max(0)
        on_grid = ((hit[:, 0] > lo[0]) & (hit[:, 0] < hi[0])
                   & (hit[:, 2] > lo[2]) & (hit[:, 2] < hi[2]))
        clear = sphere_clearance(camera, captured.centres[frame], hit)
        expected = (on_grid & (clear > 0)).reshape(H, W)
        disagree = (expected != mask).sum()
        assert disagree < 0.04 * expected.sum(), (
            f"frame {frame}: mask and analytic visible garment differ in {disagree} of "
            f"{expected.sum()} pixels")


def test_depth_is_camera_z_at_garment_vertices(captured):
    images, report = captured.runs["static"], captured.reports["static"]
    inner = interior()
    for t, frame in enumerate(FRAMES):
        camera = report.cameras[t]
        points = captured.garment[frame][inner]
        uv, z = project(camera, points)
        visible = sphere_clearance(camera, captured.centres[frame], points) > CLEAR_M
        px = np.round(uv[visible]).astype(int)
        depth = images.depth[t][px[:, 1], px[:, 0]]
        error = np.abs(depth - z[visible])
        assert error.max() < 0.005, (
            f"frame {frame}: depth differs from the vertices' camera z by up to "
            f"{1000 * error.max():.1f} mm")
        assert images.depth[t].dtype == np.float32
        assert images.depth[t][0, 0] == 0.0, "no surface (the plate) has depth 0"
        assert (images.depth[t] >= 0).all() and np.isfinite(images.depth[t]).all()


@pytest.mark.parametrize("run", ["static", "orbit"])
def test_normals_match_the_garment_plane_and_face_the_camera(captured, run):
    images, report = captured.runs[run], captured.reports[run]
    for t, frame in enumerate(FRAMES):
        camera = report.cameras[t]
        expected = camera.R @ np.array([0.0, -1.0, 0.0])  # the grid's normal, camera space
        mask = images.masks[t] > 127
        core = mask & np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) \
            & np.roll(mask, -1, 1)  # away from the mask's edges
        normals = images.normals[t][core].astype(np.float64) / 127.5 - 1.0
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        angle = np.degrees(np.arccos(np.clip(normals @ expected, -1, 1)))
        assert core.sum() > 200
        assert np.percentile(angle, 99) < 3.0, (
            f"{run} frame {frame}: normals up to {angle.max():.1f} deg from the plane's")
        # facing the camera: n . (direction to the camera) > 0, as backend/recon/data.py
        # builds NGD's diffuse target
        v, u = np.nonzero(core)
        rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(camera.K).T
        assert ((normals * -rays).sum(1) > 0).all()


def test_normals_of_back_faces_face_the_camera(m, tmp_path):
    """A surface seen from its back (the inside of a garment) still gets a normal
    towards the camera, as an estimator would give."""
    scene, body, garment = stand_in_scene(m, tmp_path)
    garment.data.flip_normals()  # now it faces away from the camera
    body.hide_render = True
    m.look.place_camera(scene, FRAMES, body, garment, m.look.CameraSettings())
    report = m.render.render_capture_images(scene, FRAMES[:1], garment, tmp_path / "out",
                                            (W, H), 4)
    normals = np.asarray(Image.open(tmp_path / "out/normals/000001.png")).astype(float)
    mask = np.asarray(Image.open(tmp_path / "out/masks/000001.png")) > 127
    n = normals[mask] / 127.5 - 1.0
    expected = report.cameras[0].R @ np.array([0.0, -1.0, 0.0])
    assert mask.sum() > 500
    assert np.median(n @ expected) > 0.99


@pytest.mark.parametrize("run", ["static", "orbit"])
def test_camera_keeps_the_whole_body_in_frame(captured, run):
    report = captured.reports[run]
    margin_px = 0.05 * W / 2  # half the requested margin, at least
    for t, frame in enumerate(FRAMES):
        uv, z = project(report.cameras[t], np.concatenate([captured.body[frame],
                                                           captured.garment[frame]]))
        assert (z > 0).all()
        assert uv[:, 0].min() > margin_px and uv[:, 0].max() < W - margin_px, frame
        assert uv[:, 1].min() > 0.05 * H / 2 and uv[:, 1].max() < H - 0.05 * H / 2, frame
    # framed tightly: the person spans most of the image in one direction
    uv, _ = project(report.cameras[0], np.concatenate([captured.body[f] for f in FRAMES]
                                                      + [captured.garment[f] for f in FRAMES]))
    span = max((uv[:, 0].max() - uv[:, 0].min()) / W, (uv[:, 1].max() - uv[:, 1].min()) / H)
    assert span > 0.6


def test_static_camera_stays_and_orbit_turns(captured):
    def centre(camera):
        return -camera.R.T @ camera.t

    static = [centre(c) for c in captured.reports["static"].cameras]
    assert np.allclose(static[0], static[-1]) and np.allclose(
        captured.reports["static"].cameras[0].R, captured.reports["static"].cameras[-1].R)
    # the orbit circles the centre of the clip's bounding box (body and garment)
    points = np.concatenate([captured.body[f] for f in FRAMES]
                            + [captured.garment[f] for f in FRAMES])
    target = 0.5 * (points.min(0) + points.max(0))
    orbit = [centre(c) - target for c in captured.reports["orbit"].cameras]
    angles = [math.degrees(math.atan2(c[0], -c[1])) for c in orbit]  # azimuth convention
    assert angles == pytest.approx([-20.0, 10.0, 40.0], abs=0.01)
    radii = [math.hypot(c[0], c[1]) for c in orbit]
    assert max(radii) - min(radii) < 1e-4
    assert [c[2] for c in orbit] == pytest.approx([0.3] * 3, abs=1e-4)  # height_m


def test_same_settings_give_identical_files(captured):
    first, again = captured.runs["static"].root, captured.runs["static_again"].root
    for folder in ("frames", "masks", "normals", "depth"):
        for f in sorted((first / folder).iterdir()):
            assert f.read_bytes() == (again / folder / f.name).read_bytes(), f"{folder}/{f.name}"


def test_frames_show_a_lit_textured_scene(captured):
    frames = captured.runs["static"].frames
    assert frames.shape == (len(FRAMES), H, W, 3) and frames.dtype == np.uint8
    mask = captured.runs["static"].masks[0] > 127
    garment = frames[0][mask].astype(float)
    assert garment.std(0).max() > 15, "the fabric texture is visible"
    assert 20 < frames[0].mean() < 235, "neither black nor blown out"


def test_report_and_look_objects(captured):
    report = captured.reports["static"]
    assert report.frames == FRAMES and report.size == (W, H) and report.samples == SAMPLES
    assert len(report.per_frame_s) == len(FRAMES)
    assert set(report.timings_s) == {"setup", "render", "read", "write"}
    assert all(n > 0 for n in report.mask_pixels)
    assert captured.progress[:3] == [("render", 1, 3), ("render", 2, 3), ("render", 3, 3)]
    assert captured.lights == captured.lights_again and len(captured.lights) == 3  # 2 + floor


def test_contact_sheet_grid(m, captured, tmp_path):
    size = m.sheet.write_contact_sheet(captured.runs["static"].root, tmp_path / "sheet.png",
                                       frames_max=2)
    gap = m.sheet.GAP_PX
    expected = (2 * (W + gap) + gap, 4 * (H + gap) + gap)
    assert size == expected
    sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
    assert sheet.shape == (expected[1], expected[0], 3)
    # the first cell is the first frame, the second row's first cell its mask
    first = captured.runs["static"]
    assert (sheet[gap:gap + H, gap:gap + W] == first.frames[0]).all()
    mask_cell = sheet[2 * gap + H:2 * gap + 2 * H, gap:gap + W, 0]
    assert (mask_cell == first.masks[0]).all()
    # the last column is the last frame (evenly spread, ends included)
    x = gap + (W + gap)
    assert (sheet[gap:gap + H, x:x + W] == first.frames[-1]).all()

    # rows from other folders (the capture's frames, the exact maps elsewhere)
    orbit = captured.runs["orbit"]
    m.sheet.write_contact_sheet(first.root, tmp_path / "mixed.png", frames_max=2,
                                normals=orbit.root / "normals", depth=orbit.root / "depth")
    mixed = np.asarray(Image.open(tmp_path / "mixed.png"))
    y = gap + 2 * (H + gap)
    assert (mixed[y:y + H, gap:gap + W] == orbit.normals[0]).all()
    with pytest.raises(m.base.GarmentError, match="normals folder .*nowhere does not exist"):
        m.sheet.write_contact_sheet(first.root, tmp_path / "x.png", normals=tmp_path / "nowhere")

    lists = {"frames": list(first.frames), "masks": list(first.masks > 127)}
    size = m.sheet.write_contact_sheet(lists, tmp_path / "lists.png", frames_max=8)
    assert size == (3 * (W + gap) + gap, 2 * (H + gap) + gap)


def test_png_writer_round_trips(m, tmp_path):
    rng = np.random.default_rng(0)
    for shape in [(7, 5), (6, 9, 3), (4, 3, 4)]:
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        m.render.write_png(tmp_path / "p.png", pixels)
        assert (np.asarray(Image.open(tmp_path / "p.png")) == pixels).all()
        if len(shape) == 3 and shape[2] == 3:
            assert (m.render.read_png(tmp_path / "p.png") == pixels).all()


def test_bad_inputs_are_rejected_with_the_culprit_named(m, tmp_path):
    scene, body, garment = stand_in_scene(m, tmp_path)
    error = m.base.GarmentError
    with pytest.raises(error, match="background 'stripes'"):
        m.look.apply_look(scene, garment, body, m.look.LookSettings(background="stripes"))
    with pytest.raises(error, match="lighting preset 'disco'"):
        m.look.apply_look(scene, garment, body, m.look.LookSettings(lighting="disco"))
    with pytest.raises(error, match="texture .*missing.png does not exist"):
        m.look.apply_look(scene, garment, body,
                          m.look.LookSettings(texture_path=str(tmp_path / "missing.png")))
    with pytest.raises(error, match="camera mode 'crane'"):
        m.look.place_camera(scene, FRAMES, body, garment, m.look.CameraSettings(mode="crane"))
    with pytest.raises(error, match=r"shape \(T, V, 3\) with T = 3"):
        m.look.place_camera(scene, FRAMES, np.zeros((2, 10, 3)), garment)
    m.look.place_camera(scene, FRAMES, body, garment)
    with pytest.raises(error, match="resolution"):
        m.render.render_capture_images(scene, FRAMES, garment, tmp_path, 0, 4)
    with pytest.raises(error, match="strictly increasing"):
        m.render.render_capture_images(scene, (2, 1), garment, tmp_path, 32, 4)
    body.data.materials.append(bpy.data.materials.new("Shared"))
    garment.data.materials.append(body.data.materials[0])
    with pytest.raises(error, match="'Body' uses the garment's material 'Shared'"):
        m.render.render_capture_images(scene, FRAMES, garment, tmp_path, 32, 4)
    with pytest.raises(error, match="not an uncompressed scanline OpenEXR"):
        (tmp_path / "x.exr").write_bytes(b"\x76\x2f\x31\x01" + b"\0" * 20)
        m.render.read_exr(tmp_path / "x.exr")


def test_place_camera_replaces_its_camera_and_floor_height(m, tmp_path):
    scene, body, garment = stand_in_scene(m, tmp_path)
    first = m.look.place_camera(scene, FRAMES, body, garment, name="Cam")
    first_data = first.data.name
    second = m.look.place_camera(scene, FRAMES, body, garment,
                                 m.look.CameraSettings(mode="orbit"), name="Cam")
    assert second.name == "Cam" and scene.camera == second
    assert [o.name for o in bpy.data.objects if o.type == "CAMERA"] == ["Cam"]
    assert first_data not in bpy.data.cameras or bpy.data.cameras[first_data] == second.data
    m.look.apply_look(scene, garment, body, m.look.LookSettings(floor_height_m=0.25))
    floor = bpy.data.objects["Synthetic Floor"]
    co = np.empty(12, np.float32)
    floor.data.vertices.foreach_get("co", co)
    assert np.allclose(co.reshape(4, 3)[:, 2], 0.25)


def test_camera_seed_jitters_the_start_azimuth(m, tmp_path):
    scene, body, garment = stand_in_scene(m, tmp_path)

    def azimuth(seed):
        cam = m.look.place_camera(scene, FRAMES, body, garment,
                                  m.look.CameraSettings(seed=seed), name="Cam")
        target = np.array(cam.location)  # direction from the framed centre, seen from above
        centre = 0.5 * (np.concatenate([evaluated_vertices(o, scene, f) for o in (body, garment)
                                        for f in FRAMES]).min(0)
                        + np.concatenate([evaluated_vertices(o, scene, f)
                                          for o in (body, garment) for f in FRAMES]).max(0))
        d = target - centre
        return math.degrees(math.atan2(d[0], -d[1]))

    first, again, other = azimuth(1), azimuth(1), azimuth(2)
    assert first == pytest.approx(again, abs=1e-6)
    assert abs(first - other) > 0.1
    assert abs(first) <= 15.0 and abs(other) <= 15.0


def test_estimates_add_noise_and_blur_but_keep_the_background(m, captured, tmp_path):
    source = captured.runs["static"].root
    gt_normals = captured.runs["static"].normals[0].astype(float) / 127.5 - 1.0
    gt_depth = captured.runs["static"].depth[0]
    background = (captured.runs["static"].normals[0] == 128).all(-1)
    frame = FRAMES[0]

    def estimate(name, noise, blur, seed=0, folder="est"):
        rng = np.random.default_rng(seed)
        path = m.render.write_estimate(name, source / name, tmp_path / folder, frame, rng,
                                       noise=noise, blur_px=blur)
        return np.load(path) if name == "depth" else np.asarray(Image.open(path))

    exact = estimate("normals", 0.0, 0.0)
    assert np.abs(exact.astype(int) - captured.runs["static"].normals[0]).max() <= 1
    noisy = estimate("normals", 0.1, 0.0)
    n = noisy.astype(float) / 127.5 - 1.0
    angle = np.degrees(np.arccos(np.clip((n * gt_normals).sum(-1)[~background]
                                         / np.linalg.norm(gt_normals, axis=-1)[~background],
                                         -1, 1)))
    assert 3.0 < np.median(angle) < 15.0
    assert (noisy[background] == 128).all()
    again = estimate("normals", 0.1, 0.0, folder="again")
    assert (again == noisy).all(), "the same generator state gives the same estimate"

    known = gt_depth > 0
    depth = estimate("depth", 0.01, 0.0)
    assert (depth[~known] == 0).all() and (depth[known] > 0).all()
    assert np.std(depth[known] - gt_depth[known]) == pytest.approx(0.01, rel=0.1)
    # the blur averages the noise away (a 2 px Gaussian: ~7x less) and leaves the
    # background unknown
    blurred = estimate("depth", 0.01, 2.0)
    smooth = estimate("depth", 0.0, 2.0, folder="smooth")
    assert np.std(blurred[known] - smooth[known]) < 0.003
    assert (blurred[~known] == 0).all()
    with pytest.raises(m.base.GarmentError, match="'albedo'"):
        estimate("albedo", 0.0, 0.0)
