"""Import Garment Result: result bundle -> shape-key (or cache) garment, in the installed zip.

Bundles are written by the test (random but known vertices, a gap in the frame
numbers, UVs, a two-colour texture). Playback is checked on the depsgraph-evaluated
mesh at every frame, at sub-frames and in the gap; the material by a tiny Cycles
render read back from its PNG.
"""

import importlib
import sys

import bpy
import numpy as np
import pytest

from backend.jobs.result import GarmentResult, write_result

RED, BLUE = (230, 20, 20), (20, 20, 230)
# 60 frames with a gap (31..34) in the middle
FRAMES = np.r_[np.arange(1, 31), np.arange(35, 65)].astype(np.int32)


@pytest.fixture
def ri(addon):
    """The installed extension's result_import package."""
    return importlib.import_module(addon.__name__ + ".operators.result_import")


def operator_class(addon):
    module = importlib.import_module(addon.__name__ + ".operators.import_result")
    return module.GARMENT_OT_import_result


@pytest.fixture
def import_op(addon):
    """bpy.ops.garment.import_result, registered by the extension."""
    assert operator_class(addon).is_registered
    return bpy.ops.garment.import_result


def two_colour_texture(h=16, w=16):
    """Top half red, bottom half blue; row 0 = top of the image."""
    tex = np.empty((h, w, 3), np.uint8)
    tex[: h // 2] = RED
    tex[h // 2:] = BLUE
    return tex


def random_garment(frames=FRAMES, V=40, seed=0):
    rng = np.random.default_rng(seed)
    T = len(frames)
    vertices = rng.uniform(-1, 1, (T, V, 3)).astype(np.float32)
    faces = np.stack([np.arange(V - 2), np.arange(1, V - 1), np.arange(2, V)], 1)
    uv = rng.random((len(faces), 3, 2)).astype(np.float32)
    return GarmentResult(faces, vertices[0] * 0.5, vertices, frames, uv)


@pytest.fixture
def bundle(tmp_path):
    garment = random_garment()
    root = write_result(tmp_path / "result", garment, texture=two_colour_texture())
    return root, garment


def evaluated_positions(obj, frame, subframe=0.0):
    scene = bpy.context.scene
    scene.frame_set(int(frame), subframe=subframe)
    mesh = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def data_snapshot():
    """Names (and user counts) of every datablock an import could create or touch."""
    kinds = ("objects", "meshes", "materials", "images", "actions", "cache_files", "scenes",
             "shape_keys", "node_groups", "collections", "cameras", "lights", "worlds")
    return {k: sorted((i.name, i.users) for i in getattr(bpy.data, k)) for k in kinds}


def assert_plays_back(obj, garment, frames_to_check=None):
    """Every result frame (and its half sub-frame) shows exactly that frame's vertices."""
    frames = garment.frame_numbers
    for k in frames_to_check if frames_to_check is not None else range(len(frames)):
        for sub in (0.0, 0.5):
            got = evaluated_positions(obj, frames[k], sub)
            np.testing.assert_allclose(got, garment.vertices[k], rtol=0, atol=1e-6,
                                       err_msg=f"frame {frames[k]} + {sub}")
    # in the gap the last frame before it holds; outside the clip the ends hold
    held = {31: 29, 33: 29, 34: 29, 35: 30, 0: 0, -5: 0, 64: 59, 80: 59}
    for frame, k in held.items():
        np.testing.assert_allclose(evaluated_positions(obj, frame, 0.5), garment.vertices[k],
                                   rtol=0, atol=1e-6, err_msg=f"frame {frame}")


# --- shape-key mode ---------------------------------------------------------------------

def test_shape_keys_play_back_every_frame_subframe_and_gap(ri, bundle):
    root, garment = bundle
    obj = ri.import_result(bpy.context, root)
    mesh = obj.data
    assert obj.name in bpy.context.scene.objects
    assert obj[ri.RESULT_PATH_PROP] == str(root.resolve())
    # basis = first frame, world space, identity transform
    assert np.allclose(np.array(obj.matrix_world), np.eye(4))
    basis = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", basis)
    np.testing.assert_array_equal(basis.reshape(-1, 3), garment.vertices[0])
    # triangles as in the bundle, smooth, per-corner UVs equal
    loops = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("vertex_index", loops)
    np.testing.assert_array_equal(loops.reshape(-1, 3), garment.faces)
    assert all(p.use_smooth for p in mesh.polygons)
    np.testing.assert_array_equal(ri.mesh.read_uv(mesh), garment.uv)
    # Basis + one key per frame, named by frame number
    names = [kb.name for kb in mesh.shape_keys.key_blocks]
    assert names == ["Basis"] + [f"frame_{f:04d}" for f in FRAMES]
    assert names[1:3] == ["frame_0001", "frame_0002"]
    fcurves = _fcurves(mesh.shape_keys)
    assert len(fcurves) == len(FRAMES)
    assert {kp.interpolation for fc in fcurves for kp in fc.keyframe_points} == {"CONSTANT"}
    assert sum(len(fc.keyframe_points) for fc in fcurves) == 3 * len(FRAMES) - 2

    assert_plays_back(obj, garment)


def _fcurves(id_data):
    """F-curves animating ``id_data`` on Blender 5.0's slotted actions."""
    from bpy_extras import anim_utils

    anim = id_data.animation_data
    return anim_utils.action_get_channelbag_for_slot(anim.action, anim.action_slot).fcurves


def test_switch_keys_are_an_indicator_of_each_frame_interval(ri):
    frames = np.array([-3, 0, 1, 2, 7, 8, 20], np.int32)
    keys = ri.shape_keys.switch_keys(frames)
    samples = np.arange(-10, 30, 0.25)
    for k, (kf, kv) in enumerate(keys):
        # constant interpolation + constant extrapolation, evaluated by hand
        idx = np.clip(np.searchsorted(kf, samples, side="right") - 1, 0, None)
        value = kv[idx]
        lo = frames[k] if k > 0 else -np.inf
        hi = frames[k + 1] if k + 1 < len(frames) else np.inf
        np.testing.assert_array_equal(value, ((samples >= lo) & (samples < hi)).astype(float),
                                      err_msg=f"key of frame {frames[k]}")
    assert len(ri.shape_keys.switch_keys(np.array([5]))[0][0]) == 1


def test_operator_imports_and_makes_the_garment_active(import_op, ri, bundle):
    root, garment = bundle
    cube = bpy.data.objects["Cube"]
    assert cube.select_get()
    assert import_op.poll()
    assert import_op(directory=str(root)) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    assert obj.name == "Garment" and obj.select_get()
    assert cube.select_get()  # others keep their selection
    assert_plays_back(obj, garment, frames_to_check=[0, 29, 30, 59])


def test_operator_has_the_documented_interface(import_op, addon):
    cls = operator_class(addon)
    assert cls.bl_idname == "garment.import_result"
    assert cls.bl_label == "Import Garment Result"
    assert issubclass(cls, addon.operators.base.GarmentOperator)
    assert cls.__doc__.strip()
    props = import_op.get_rna_type().properties
    assert {"directory", "use_cache", "cache_format", "replace_existing",
            "set_frame_range"} <= set(props.keys())
    assert not props["use_cache"].default and not props["replace_existing"].default


def test_import_works_without_pillow(ri, bundle, monkeypatch):
    """Blender's Python ships numpy only: the textures must be decoded by Blender."""
    root, garment = bundle
    monkeypatch.setitem(sys.modules, "PIL", None)  # any "from PIL import ..." now fails
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    obj = ri.import_result(bpy.context, root)
    assert bpy.data.images["Garment Texture"].size[:] == (16, 16)
    assert_plays_back(obj, garment, frames_to_check=[3])


def test_degenerate_faces_are_dropped_with_a_warning(ri, tmp_path):
    g = random_garment(V=10, frames=np.arange(1, 4, dtype=np.int32))
    faces = g.faces.copy()
    faces[2] = (4, 4, 5)
    g = GarmentResult(faces, g.canonical_vertices, g.vertices, g.frame_numbers, g.uv)
    warnings = []
    obj = ri.import_result(bpy.context, write_result(tmp_path / "r", g),
                           on_warning=warnings.append)
    assert len(warnings) == 1 and "1 degenerate face(s)" in warnings[0]
    keep = np.arange(len(faces)) != 2
    loops = np.empty(len(obj.data.loops), np.int32)
    obj.data.loops.foreach_get("vertex_index", loops)
    np.testing.assert_array_equal(loops.reshape(-1, 3), faces[keep])
    np.testing.assert_array_equal(ri.mesh.read_uv(obj.data), g.uv[keep])  # still aligned


# --- scene hygiene: no-touch, replacement, bad bundles ---------------------------------

def test_import_touches_nothing_else_in_the_scene(import_op, bundle):
    root, _ = bundle
    scene = bpy.context.scene
    cube = bpy.data.objects["Cube"]
    cube.keyframe_insert("location", frame=1)
    bpy.data.images.new("user image", 4, 4)
    scene.frame_start, scene.frame_end = 10, 20
    scene.frame_set(15)
    before = data_snapshot()
    objects = {o.name: (np.array(o.matrix_world), o.select_get(), o.hide_get())
               for o in scene.objects}

    assert import_op(directory=str(root)) == {"FINISHED"}

    after = data_snapshot()
    obj = bpy.data.objects["Garment"]
    for kind, items in before.items():
        new = set(after[kind]) - set(items)
        assert set(items) <= set(after[kind]), f"{kind} changed: {set(items) - set(after[kind])}"
        if kind in ("objects", "meshes", "materials", "shape_keys"):
            assert len(new) == 1, (kind, new)
        elif kind == "images":
            assert {n for n, _ in new} == {"Garment Texture"}
        elif kind == "actions":
            assert {n for n, _ in new} == {"Garment Frames"}
        else:
            assert not new, (kind, new)
    for name, (matrix, selected, hidden) in objects.items():
        o = scene.objects[name]
        assert np.array_equal(np.array(o.matrix_world), matrix) and o.select_get() == selected
        assert o.hide_get() == hidden
    assert (scene.frame_start, scene.frame_end, scene.frame_current) == (10, 20, 15)
    # the new image has a user (the material's node) and is packed into the .blend
    texture = bpy.data.images["Garment Texture"]
    assert texture.users == 1 and texture.packed_file is not None
    assert obj.data.materials[0].name == "Garment"


def test_set_frame_range_only_when_asked(import_op, bundle):
    root, _ = bundle
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 100, 200
    assert import_op(directory=str(root), set_frame_range=True) == {"FINISHED"}
    assert (scene.frame_start, scene.frame_end) == (1, 64)


def test_reimport_adds_a_new_object_unless_replace_is_asked(import_op, ri, bundle, tmp_path):
    root, garment = bundle
    other = write_result(tmp_path / "other", random_garment(seed=1))
    assert import_op(directory=str(other)) == {"FINISHED"}
    assert import_op(directory=str(root)) == {"FINISHED"}
    first = bpy.context.view_layer.objects.active
    shelf = bpy.data.collections.new("Garments")
    bpy.context.scene.collection.children.link(shelf)
    for collection in first.users_collection:
        collection.objects.unlink(first)
    shelf.objects.link(first)
    first.name = "My Skirt"

    assert import_op(directory=str(root)) == {"FINISHED"}  # no replace: a second object
    second = bpy.context.view_layer.objects.active
    assert second.name != "My Skirt" and len(ri.find_imported(bpy.context.scene, root)) == 2
    bpy.data.objects.remove(second)  # leaves its mesh etc. unused, like a user would
    for kind in ("meshes", "materials", "actions", "images"):
        for item in list(getattr(bpy.data, kind)):
            if item.users == 0:
                getattr(bpy.data, kind).remove(item)
    before = data_snapshot()

    assert import_op(directory=str(root), replace_existing=True) == {"FINISHED"}
    replaced = ri.find_imported(bpy.context.scene, root)
    assert len(replaced) == 1
    new = replaced[0]
    assert new.name == "My Skirt" and [c.name for c in new.users_collection] == ["Garments"]
    after = data_snapshot()
    for kind in ("objects", "meshes", "materials", "images", "actions", "shape_keys"):
        assert len(after[kind]) == len(before[kind]), (kind, before[kind], after[kind])
    assert ri.find_imported(bpy.context.scene, other)  # another result's garment stays
    assert_plays_back(new, garment, frames_to_check=[0, 59])


def _write_npz(root, **arrays):
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "garment.npz", **arrays)


def _bad_bundles(tmp_path):
    g = random_garment(V=8, frames=np.arange(1, 5, dtype=np.int32))
    good = dict(faces=g.faces, canonical_vertices=g.canonical_vertices, vertices=g.vertices,
                frame_numbers=g.frame_numbers, uv=g.uv)
    nan = g.vertices.copy()
    nan[2, 3, 1] = np.nan
    cases = {
        "missing": (None, "garment.npz: file is missing"),
        "shape": (dict(good, vertices=g.vertices[:, :5]), "vertices has shape (4, 5, 3)"),
        "nan": (dict(good, vertices=nan), "vertices has non-finite values"),
        "no_frames": ({k: v for k, v in good.items() if k != "frame_numbers"},
                      "missing array(s) frame_numbers"),
        "uv": (dict(good, uv=g.uv[:, :2]), "uv has shape"),
        "faces": (dict(good, faces=g.faces + 5), "faces index vertices"),
        "texture": (good, "texture.png"),
    }
    out = {}
    for name, (arrays, message) in cases.items():
        root = tmp_path / name
        root.mkdir()
        if arrays is not None:
            _write_npz(root, **arrays)
        if name == "texture":
            (root / "texture.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
        out[name] = (root, message)
    return out


@pytest.mark.parametrize("case", ["missing", "shape", "nan", "no_frames", "uv", "faces",
                                  "texture"])
def test_bad_bundle_is_a_clear_error_and_creates_nothing(import_op, tmp_path, case):
    root, message = _bad_bundles(tmp_path)[case]
    before = data_snapshot()
    with pytest.raises(RuntimeError) as info:
        import_op(directory=str(root))
    assert message in str(info.value)
    assert data_snapshot() == before


def test_failed_cache_write_rolls_everything_back(import_op, bundle):
    root, _ = bundle
    (root / "garment_cache.abc").mkdir()  # the cache cannot be renamed into place
    before = data_snapshot()
    with pytest.raises(RuntimeError, match="garment_cache.abc: could not write the ABC cache"):
        import_op(directory=str(root), use_cache=True)
    assert data_snapshot() == before
    assert sorted(p.name for p in root.iterdir()) == ["garment.npz", "garment_cache.abc",
                                                      "texture.png"]


# --- cache mode -------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, suffix", [("ABC", ".abc"), ("USD", ".usdc")])
def test_cache_mode_round_trips_the_animation(ri, bundle, fmt, suffix):
    root, garment = bundle
    before = data_snapshot()
    obj = ri.import_result(bpy.context, root, ri.ImportSettings(use_cache=True,
                                                                cache_format=fmt))
    assert obj.data.shape_keys is None
    modifier = obj.modifiers["Garment Cache"]
    assert modifier.type == "MESH_SEQUENCE_CACHE"
    assert bpy.path.abspath(modifier.cache_file.filepath) == str(root / f"garment_cache{suffix}")
    assert modifier.cache_file.users == 1
    np.testing.assert_array_equal(ri.mesh.read_uv(obj.data), garment.uv)
    # float32 in the file, exact conversions: equal to 1e-6 m (coordinates within 1 m)
    assert_plays_back(obj, garment, frames_to_check=[0, 1, 17, 29, 30, 59])
    # only the garment's own datablocks were added: the export's helpers are gone
    after = data_snapshot()
    added = {k: {n for n, _ in set(after[k]) - set(before[k])} for k in after}
    assert added["objects"] == {"Garment"} and added["meshes"] == {"Garment"}
    assert added["scenes"] == set() and added["actions"] == set()
    assert added["shape_keys"] == set() and len(added["cache_files"]) == 1
    leftovers = [p.name for p in root.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_replacing_a_cached_garment_removes_its_cache_file_datablock(ri, bundle):
    root, garment = bundle
    settings = ri.ImportSettings(use_cache=True, replace_existing=True)
    ri.import_result(bpy.context, root, settings)
    obj = ri.import_result(bpy.context, root, settings)
    assert len(bpy.data.cache_files) == 1 and len(ri.find_imported(bpy.context.scene, root)) == 1
    assert_plays_back(obj, garment, frames_to_check=[5])


# --- material ---------------------------------------------------------------------------

def facing_quad(frames=(1,)):
    """A 2 x 2 m quad in the XZ plane facing -Y (the camera), v up = +Z."""
    v = np.array([[-1, 0, -1], [1, 0, -1], [1, 0, 1], [-1, 0, 1]], np.float32)
    faces = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    uv_of = {0: (0, 0), 1: (1, 0), 2: (1, 1), 3: (0, 1)}
    uv = np.array([[uv_of[i] for i in f] for f in faces], np.float32)
    T = len(frames)
    return GarmentResult(faces, v, np.repeat(v[None], T, 0), np.array(frames, np.int32), uv)


def render(path, size=64, samples=4):
    """Render the scene camera with Cycles on the CPU; returns (H, W, 3) float, row 0 = top."""
    scene = bpy.context.scene
    if "Camera" not in bpy.data.objects:
        cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
        scene.collection.objects.link(cam)
    cam = bpy.data.objects["Camera"]
    cam.location = (0, -4, 0)
    cam.rotation_euler = (np.pi / 2, 0, 0)
    scene.camera = cam
    for name in ("Cube", "Light"):
        if name in bpy.data.objects:
            bpy.data.objects.remove(bpy.data.objects[name])
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.world.color = (1, 1, 1)
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    pixels = np.empty(size * size * 4, np.float32)
    image.pixels.foreach_get(pixels)
    bpy.data.images.remove(image)
    return pixels.reshape(size, size, 4)[::-1, :, :3]


def test_material_renders_the_texture_in_cycles(ri, tmp_path):
    root = write_result(tmp_path / "quad", facing_quad(), texture=two_colour_texture())
    obj = ri.import_result(bpy.context, root)
    tree = obj.data.materials[0].node_tree
    bsdf = next(n for n in tree.nodes if n.type == "BSDF_PRINCIPLED")
    assert bsdf.inputs["Base Color"].links[0].from_node.image.name == "Garment Texture"
    assert bpy.data.images["Garment Texture"].colorspace_settings.name == "sRGB"

    rgb = render(tmp_path / "render.png")
    assert rgb.max() > 0.05  # not empty
    top, bottom = rgb[20:28, 24:40].mean((0, 1)), rgb[36:44, 24:40].mean((0, 1))
    assert top[0] > 3 * top[2], f"top of the quad should be red, got {top}"
    assert bottom[2] > 3 * bottom[0], f"bottom of the quad should be blue, got {bottom}"


def test_dynamic_texture_follows_the_scene_frame(ri, tmp_path):
    colours = {1: (230, 20, 20), 2: (20, 230, 20), 4: (20, 20, 230)}  # gap at 3
    dynamic = {f: np.full((8, 8, 3), c, np.uint8) for f, c in colours.items()}
    root = write_result(tmp_path / "dyn", facing_quad(frames=(1, 2, 3, 4)),
                        texture=two_colour_texture(), dynamic_textures=dynamic)
    obj = ri.import_result(bpy.context, root)
    node = obj.data.materials[0].node_tree.nodes["Dynamic Texture"]
    assert node.image.source == "SEQUENCE" and node.image_user.use_auto_refresh
    # frame -> the texture it must show: before the first, in the gap, after the last
    expect = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 7: 4}
    for frame, source in expect.items():
        bpy.context.scene.frame_set(frame)
        rgb = render(tmp_path / f"r{frame}.png", size=16, samples=1)[6:10, 6:10].mean((0, 1))
        assert int(np.argmax(rgb)) == int(np.argmax(colours[source])), (frame, rgb)

    # replacing removes the sequence image and the node tree's action with the garment
    before = data_snapshot()
    ri.import_result(bpy.context, root, ri.ImportSettings(replace_existing=True))
    after = data_snapshot()
    for kind in ("objects", "meshes", "materials", "images", "actions"):
        assert len(after[kind]) == len(before[kind]), (kind, before[kind], after[kind])
