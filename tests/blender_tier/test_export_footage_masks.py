"""Footage and garment masks -> capture PNGs through a temporary compositor."""

import importlib

import bpy
import numpy as np
import pytest
from PIL import Image

W, H = 32, 24


@pytest.fixture
def sc(addon):
    """The scene_capture package's modules."""
    name = addon.__name__ + ".operators.scene_capture."
    return type("Modules", (), {m: importlib.import_module(name + m)
                                for m in ("compositor", "footage", "masks")})


def pattern(number: int) -> np.ndarray:
    """(H, W, 3) uint8 image that identifies ``number``: colours and a bar code."""
    img = np.zeros((H, W, 3), np.uint8)
    img[:, : W // 2] = (number * 9 % 256, 255 - number * 7 % 256, 77)
    img[:, W // 2:] = (13, number * 23 % 256, 200)
    bits = [(number >> b) & 1 for b in range(8)]
    for b, bit in enumerate(bits):
        img[H - 4:, 2 + 3 * b: 4 + 3 * b] = 255 * bit
    img[0, 0] = 255
    return img


def write_sequence(folder, numbers, prefix="shot_", digits=4):
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        Image.fromarray(pattern(n)).save(folder / f"{prefix}{n:0{digits}d}.png")
    return folder / f"{prefix}{numbers[0]:0{digits}d}.png"


def read(path):
    return np.asarray(Image.open(path))


def export_footage(sc, source, frames, folder):
    with sc.compositor.TemporaryCompositor((W, H)) as comp:
        sc.footage.check_source(source, frames)
        sc.footage.render_footage(comp, source, frames, folder)


def test_clip_sequence_honours_start_frame_and_offset(sc, tmp_path):
    first = write_sequence(tmp_path / "seq", range(5, 15))
    clip = bpy.data.movieclips.load(str(first))
    clip.frame_start, clip.frame_offset = 3, 2  # scene frame f -> file 5 + (f - 3 + 2)
    assert sc.footage.frame_range(clip) == (1, 10)
    assert sc.footage.source_size(clip) == (W, H)
    export_footage(sc, clip, [1, 2, 7, 10], tmp_path / "frames")
    for frame in (1, 2, 7, 10):
        got = read(tmp_path / "frames" / f"{frame:06d}.png")
        assert got.shape == (H, W, 3)
        np.testing.assert_array_equal(got, pattern(frame + 4), err_msg=f"frame {frame}")
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        "000001.png", "000002.png", "000007.png", "000010.png"]


def test_movie_file_clip(sc, tmp_path):
    """A lossless FFV1 movie rendered headless from a sequence, read back frame by frame."""
    first = write_sequence(tmp_path / "seq", range(1, 7))
    source = bpy.data.movieclips.load(str(first))
    with sc.compositor.TemporaryCompositor((W, H)) as comp:
        sc.footage.use_source(comp, source)
        scene = comp.scene
        scene.view_settings.view_transform = "Standard"
        scene.render.image_settings.media_type = "VIDEO"
        scene.render.image_settings.file_format = "FFMPEG"
        scene.render.image_settings.color_mode = "RGB"
        scene.render.ffmpeg.format, scene.render.ffmpeg.codec = "MKV", "FFV1"
        scene.frame_start, scene.frame_end = 1, 6
        scene.render.filepath = str(tmp_path / "movie" / "take_")
        with bpy.context.temp_override(scene=scene):
            bpy.ops.render.render(animation=True)
    movie = next((tmp_path / "movie").iterdir())
    clip = bpy.data.movieclips.load(str(movie))
    assert clip.source == "MOVIE" and clip.frame_duration == 6
    clip.frame_start = 11  # scene frame 11 is the movie's first frame
    export_footage(sc, clip, [11, 13, 16], tmp_path / "frames")
    for frame in (11, 13, 16):
        got = read(tmp_path / "frames" / f"{frame:06d}.png")
        np.testing.assert_array_equal(got, pattern(frame - 10), err_msg=f"frame {frame}")
    with pytest.raises(sc.footage.GarmentError, match=r"frames 17\.\.18 are outside"):
        sc.footage.check_source(clip, [15, 16, 17, 18])

    # the same movie as an Image datablock: scene frame f is movie frame f
    image = bpy.data.images.load(str(movie))
    assert image.source == "MOVIE"
    assert sc.footage.source_size(image) == (W, H)
    export_footage(sc, image, [1, 4, 6], tmp_path / "from_image")
    for frame in (1, 4, 6):
        np.testing.assert_array_equal(read(tmp_path / "from_image" / f"{frame:06d}.png"),
                                      pattern(frame), err_msg=f"frame {frame}")
    with pytest.raises(sc.footage.GarmentError, match="frame 7 is outside"):
        sc.footage.check_source(image, [6, 7])


def test_image_sequence_datablock_frame_is_file_number(sc, tmp_path):
    first = write_sequence(tmp_path / "seq", range(20, 26), prefix="plate.", digits=5)
    image = bpy.data.images.load(str(first))
    image.source = "SEQUENCE"
    assert sc.footage.source_size(image) == (W, H)
    export_footage(sc, image, [20, 22, 25], tmp_path / "frames")
    for frame in (20, 22, 25):
        np.testing.assert_array_equal(read(tmp_path / "frames" / f"{frame:06d}.png"),
                                      pattern(frame))
    with pytest.raises(sc.footage.GarmentError,
                       match=r"2 file\(s\) of Image \"plate.00020.png\" are missing on disk, "
                             r"e\.g\. .*plate\.00026\.png for frame 26"):
        sc.footage.check_source(image, [24, 25, 26, 27])


def test_missing_clip_and_frames_outside_the_clip_are_errors(sc, tmp_path):
    first = write_sequence(tmp_path / "seq", range(1, 5))
    clip = bpy.data.movieclips.load(str(first))
    with pytest.raises(sc.footage.GarmentError, match=r"frame 0 is outside .* "
                                                      r"covers scene frames 1\.\.4"):
        sc.footage.check_source(clip, [0, 1, 2])
    (tmp_path / "seq" / "shot_0003.png").unlink()
    with pytest.raises(sc.footage.GarmentError, match=r"shot_0003\.png for frame 3"):
        sc.footage.check_source(clip, [1, 2, 3])
    clip.filepath = str(tmp_path / "gone" / "shot_0001.png")
    with pytest.raises(sc.footage.GarmentError, match="is missing on disk"):
        sc.footage.check_source(clip, [1])


def make_mask(name="Skirt"):
    """A rectangle mask whose right edge moves from x = 0.75 (frame 1) to 1.0 (frame 5)."""
    mask = bpy.data.masks.new(name)
    layer = mask.layers.new(name="outline")
    spline = layer.splines.new()
    spline.points.add(3)
    for point, co in zip(spline.points, [(0.25, 0.25), (0.75, 0.25), (0.75, 0.5), (0.25, 0.5)],
                         strict=True):
        point.co = co
        point.handle_left_type = point.handle_right_type = "VECTOR"
    spline.use_cyclic = True
    for frame, x in ((1, 0.75), (5, 1.0)):
        for i in (1, 2):
            path = f'layers["outline"].splines[0].points[{i}].co'
            spline.points[i].co.x = x
            mask.keyframe_insert(path, frame=frame)
    return mask


def export_masks(sc, source, frames, folder):
    with sc.compositor.TemporaryCompositor((W, H)) as comp:
        sc.masks.check_masks(source, frames)
        sc.masks.render_masks(comp, source, frames, folder)


def test_animated_mask_is_rasterised_at_each_frame(sc, tmp_path):
    mask = make_mask()
    export_masks(sc, mask, [1, 3, 5], tmp_path / "masks")
    widths = []
    for frame in (1, 3, 5):
        image = Image.open(tmp_path / "masks" / f"{frame:06d}.png")
        assert image.mode == "L" and image.size == (W, H)
        garment = np.asarray(image) > 127
        rows, cols = np.nonzero(garment)
        # mask space is centred and width-normalised: y 0.25..0.5 -> rows 12..19 (top down)
        assert (rows.min(), rows.max()) == (12, 19), frame
        assert cols.min() == 8, frame
        widths.append(cols.max() + 1)
    # the right edge at the bottom row sweeps 0.75 -> 0.875 -> 1.0 of the width
    assert widths == [24, 28, 32]


def test_mask_range_mismatch_and_empty_mask_are_errors(sc):
    mask = make_mask()
    mask.frame_start, mask.frame_end = 1, 20
    with pytest.raises(sc.masks.GarmentError,
                       match=r'Mask/frame range mismatch: mask "Skirt" covers frames 1\.\.20 '
                             r"but the export needs 15\.\.30"):
        sc.masks.check_masks(mask, list(range(15, 31)))
    with pytest.raises(sc.masks.GarmentError, match="has no splines"):
        sc.masks.check_masks(bpy.data.masks.new("Blank"), [1])
    with pytest.raises(sc.masks.GarmentError, match="No garment mask"):
        sc.masks.check_masks(None, [1])


def test_mask_image_sequence(sc, tmp_path):
    folder = tmp_path / "mattes"
    folder.mkdir()
    for n in (4, 5, 6):
        matte = np.zeros((H, W), np.uint8)
        matte[2:10, n:n + 6] = 255
        Image.fromarray(matte).save(folder / f"matte_{n:03d}.png")
    image = bpy.data.images.load(str(folder / "matte_004.png"))
    image.source = "SEQUENCE"
    export_masks(sc, image, [4, 5, 6], tmp_path / "masks")
    for n in (4, 5, 6):
        expected = np.asarray(Image.open(folder / f"matte_{n:03d}.png"))
        np.testing.assert_array_equal(read(tmp_path / "masks" / f"{n:06d}.png"), expected)
    with pytest.raises(sc.masks.GarmentError, match=r"Mask images: 1 file\(s\)"):
        sc.masks.check_masks(image, [5, 6, 7])


def test_the_users_scene_and_data_are_left_as_they_were(sc, tmp_path):
    scene = bpy.context.scene
    user_tree = bpy.data.node_groups.new("User Compositing", "CompositorNodeTree")
    user_tree.nodes.new("CompositorNodeBlur")
    scene.compositing_node_group = user_tree
    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    scene.view_settings.view_transform = "AgX"
    scene.frame_set(42)
    before = {
        "scenes": sorted(s.name for s in bpy.data.scenes),
        "node_groups": sorted(g.name for g in bpy.data.node_groups),
        "images": sorted(i.name for i in bpy.data.images),
    }
    first = write_sequence(tmp_path / "seq", range(1, 4))
    clip = bpy.data.movieclips.load(str(first))
    mask = make_mask()
    with sc.compositor.TemporaryCompositor((W, H)) as comp:
        sc.footage.render_footage(comp, clip, [1, 2, 3], tmp_path / "frames")
        sc.masks.render_masks(comp, mask, [1, 2, 3], tmp_path / "masks")
    after = {
        "scenes": sorted(s.name for s in bpy.data.scenes),
        "node_groups": sorted(g.name for g in bpy.data.node_groups),
        "images": sorted(i.name for i in bpy.data.images),
    }
    assert after == before
    assert scene.compositing_node_group == user_tree
    assert [n.bl_idname for n in user_tree.nodes] == ["CompositorNodeBlur"]
    assert (scene.render.resolution_x, scene.render.resolution_y) == (1920, 1080)
    assert scene.view_settings.view_transform == "AgX"
    assert scene.frame_current == 42
    assert len(list((tmp_path / "masks").iterdir())) == 3
