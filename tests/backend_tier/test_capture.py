"""Capture bundle: loading, validation, and one test per rejection.

Every rejection asserts that the CaptureError names its culprit (file, frame
number, key), since that is what a user needs to fix the bundle.
"""

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from backend.capture import (
    BODY_FRAMES_KEY,
    BODY_TRANSFORMS_KEY,
    CAPTURE_FILE,
    CAPTURE_VERSION,
    Capture,
    CaptureError,
    load_capture,
    read_mask,
    validate_capture,
    write_png,
)
from backend.errors import BackendError
from tests.backend_tier.body_helpers import body_arrays

FRAMES = (11, 12, 13, 14)
W, H = 16, 12


# ---------------------------------------------------------------- helpers


def read_json(root: Path) -> dict:
    return json.loads((root / CAPTURE_FILE).read_text())


def write_json(root: Path, data: dict) -> None:
    (root / CAPTURE_FILE).write_text(json.dumps(data, indent=1))


def rejected(capture, **kwargs) -> CaptureError:
    """validate_capture must raise; return the CaptureError."""
    with pytest.raises(CaptureError) as info:
        validate_capture(capture, **kwargs)
    return info.value


def rejected_on_load(root: Path) -> CaptureError:
    with pytest.raises(CaptureError) as info:
        load_capture(root)
    return info.value


def problem_with(exc: CaptureError, *parts: str) -> str:
    """The single problem that contains every one of ``parts``; also in the message."""
    matches = [p for p in exc.problems if all(part in p for part in parts)]
    assert len(matches) == 1, f"expected one problem with {parts}, got {exc.problems}"
    assert matches[0] in str(exc), "the message must list the problem"
    return matches[0]


def rgb(width: int = W, height: int = H) -> np.ndarray:
    return np.full((height, width, 3), 90, dtype=np.uint8)


# ---------------------------------------------------------------- valid bundles


def test_valid_bundle_loads_with_the_cameras_that_were_written(make_capture):
    written = make_capture()
    loaded = load_capture(written.root)

    assert loaded.frames == FRAMES
    assert (loaded.width, loaded.height) == (W, H)
    assert loaded.fps == 25.0
    assert loaded.garment_type == "skirt"
    assert loaded.paths == written.paths
    assert loaded.version == CAPTURE_VERSION
    assert len(loaded.cameras) == len(FRAMES)
    for got, want in zip(loaded.cameras, written.cameras, strict=True):
        for name in ("K", "R", "t"):
            arr = getattr(got, name)
            assert arr.dtype == np.float64
            np.testing.assert_array_equal(arr, getattr(want, name))
    # Lookup is by frame number, not by position.
    np.testing.assert_array_equal(loaded.camera(13).t, written.cameras[2].t)
    assert loaded.frame_path(13) == written.root / "frames" / "000013.png"
    assert loaded.mask_path(11) == written.root / "masks" / "000011.png"


def test_camera_of_an_unlisted_frame_names_the_frame(make_capture):
    capture = load_capture(make_capture().root)
    with pytest.raises(CaptureError, match=r"no frame 2\b"):
        capture.camera(2)  # a position, not a frame number


def test_valid_bundle_validates_with_per_frame_coverage(make_capture):
    root = make_capture().root
    steps = []
    report = validate_capture(root, progress=lambda step, total: steps.append((step, total)))

    assert report.capture.frames == FRAMES
    assert report.dropped_frames == ()
    assert report.warnings == ()
    # Rectangles of 8 rows x (3 + index) columns in a 16x12 image.
    assert report.mask_coverage == pytest.approx([8 * (3 + i) / (W * H) for i in range(4)])
    assert all(c > 0 for c in report.mask_coverage)
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_valid_bundle_with_normals_and_depth_validates(make_capture):
    capture = make_capture(normals=True, depth=True)
    loaded = load_capture(capture.root)
    assert loaded.extras == ("normals", "depth")
    assert loaded.depth_path(12) == capture.root / "depth" / "000012.npy"
    report = validate_capture(loaded)
    assert report.capture.frames == FRAMES


def test_capture_json_save_load_round_trip_is_exact(make_capture):
    root = make_capture(normals=True, depth=True, fps=29.97).root
    original = (root / CAPTURE_FILE).read_text()

    load_capture(root).save()

    assert (root / CAPTURE_FILE).read_text() == original
    assert not list(root.glob("*.tmp"))


def test_frames_on_disk_not_listed_in_capture_json_are_ignored_with_a_warning(make_capture):
    capture = make_capture()
    write_png(capture.frame_path(15), rgb())
    write_png(capture.mask_path(15), np.ones((H, W), dtype=bool))

    report = validate_capture(capture.root)

    assert report.capture.frames == FRAMES
    assert len(report.warnings) == 1
    assert "ignored: 15" in report.warnings[0]


# ---------------------------------------------------------------- missing / unreadable files


def test_missing_frame_image_names_the_file(make_capture):
    capture = make_capture()
    path = capture.frame_path(12)
    path.unlink()

    exc = rejected(capture.root)

    problem_with(exc, str(path), "file is missing")
    problem_with(exc, "mask/frame mismatch", "masks without a frame: 12")


def test_missing_mask_names_the_file(make_capture):
    capture = make_capture()
    path = capture.mask_path(14)
    path.unlink()

    exc = rejected(capture.root)

    problem_with(exc, str(path), "file is missing")
    problem_with(exc, "mask/frame mismatch", "frames without a mask: 14")


def test_missing_frames_folder_is_named(make_capture):
    capture = make_capture()
    folder = capture.root / "frames"
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()

    exc = rejected(capture.root)

    problem_with(exc, str(folder), "folder is missing")


def test_garbage_bytes_in_a_frame_png_are_unreadable(make_capture):
    capture = make_capture()
    path = capture.frame_path(13)
    path.write_bytes(b"this is not a png at all" * 4)

    exc = rejected(capture.root)

    problem_with(exc, str(path), "unreadable image")


def test_truncated_frame_png_is_unreadable(make_capture):
    capture = make_capture()
    path = capture.frame_path(12)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header intact, pixel data cut

    exc = rejected(capture.root)

    problem_with(exc, str(path), "unreadable image")


def test_truncated_mask_png_is_unreadable(make_capture):
    capture = make_capture()
    path = capture.mask_path(13)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    exc = rejected(capture.root)

    problem_with(exc, str(path), "unreadable image")


def test_png_header_claiming_a_huge_size_is_a_capture_error(make_capture):
    capture = make_capture()
    path = capture.frame_path(12)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 100_000, 100_000)  # IHDR width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # keep the CRC valid
    path.write_bytes(bytes(data))

    exc = rejected(capture.root)

    problem_with(exc, str(path), "unreadable image")


# ---------------------------------------------------------------- sizes


def test_frame_size_differing_from_capture_json_names_file_and_both_sizes(make_capture):
    capture = make_capture()
    path = capture.frame_path(13)
    write_png(path, rgb(width=15, height=12))

    exc = rejected(capture.root)

    problem_with(exc, str(path), "15x12", "16x12")


def test_mask_size_differing_from_capture_json_names_file_and_both_sizes(make_capture):
    capture = make_capture()
    path = capture.mask_path(11)
    write_png(path, np.ones((10, 16), dtype=bool))

    exc = rejected(capture.root)

    problem_with(exc, str(path), "16x10", "16x12")


def test_normals_of_the_wrong_size_are_named(make_capture):
    capture = make_capture(normals=True)
    path = capture.normal_path(14)
    write_png(path, rgb(width=8, height=6))

    exc = rejected(capture.root)

    problem_with(exc, str(path), "8x6", "16x12")


def test_missing_normal_map_is_named(make_capture):
    capture = make_capture(normals=True)
    path = capture.normal_path(12)
    path.unlink()

    exc = rejected(capture.root)

    problem_with(exc, str(path), "file is missing")


def test_depth_map_of_the_wrong_shape_is_named(make_capture):
    capture = make_capture(depth=True)
    path = capture.depth_path(13)
    np.save(path, np.ones((W, H), dtype=np.float32))  # transposed

    exc = rejected(capture.root)

    problem_with(exc, str(path), "(16, 12)", "(12, 16)")


def test_depth_map_with_non_finite_values_is_named(make_capture):
    capture = make_capture(depth=True)
    path = capture.depth_path(12)
    depth = np.ones((H, W), dtype=np.float32)
    depth[3, 4] = np.nan
    np.save(path, depth)

    exc = rejected(capture.root)

    problem_with(exc, str(path), "non-finite")


def test_empty_depth_file_is_a_capture_error(make_capture):
    capture = make_capture(depth=True)
    path = capture.depth_path(12)
    path.write_bytes(b"")

    exc = rejected(capture.root)

    problem_with(exc, str(path), "unreadable depth map")


# ---------------------------------------------------------------- frame / mask sets


def test_extra_mask_file_lists_its_frame_number(make_capture):
    capture = make_capture()
    write_png(capture.mask_path(15), np.ones((H, W), dtype=bool))

    exc = rejected(capture.root)

    problem = problem_with(exc, "mask/frame mismatch")
    assert "5 mask file(s) for 4 frame file(s)" in problem
    assert "masks without a frame: 15" in problem


def test_masks_shifted_by_one_frame_are_a_frame_number_mismatch(make_capture):
    capture = make_capture()
    masks = {f: read_mask(capture.mask_path(f)) for f in FRAMES}
    for f in FRAMES:
        capture.mask_path(f).unlink()
    for f, mask in masks.items():
        write_png(capture.mask_path(f + 1), mask)  # 12..15 instead of 11..14

    exc = rejected(capture.root)

    problem = problem_with(exc, "mask/frame mismatch")
    assert "frames without a mask: 11" in problem
    assert "masks without a frame: 15" in problem
    problem_with(exc, str(capture.mask_path(11)), "file is missing")


# ---------------------------------------------------------------- empty masks


def empty_masks(capture: Capture, frames, value: int = 0) -> None:
    for f in frames:
        write_png(capture.mask_path(f), np.full((H, W), value, dtype=np.uint8))


def test_empty_masks_are_rejected_listing_their_frames(make_capture):
    capture = make_capture()
    empty_masks(capture, (12, 13))

    exc = rejected(capture.root)

    problem = problem_with(exc, "empty mask")
    assert "2 frame(s): 12, 13" in problem
    assert "--drop-empty-masks" in problem


def test_mask_at_the_threshold_value_counts_as_empty(make_capture):
    capture = make_capture()
    empty_masks(capture, (14,), value=127)  # garment is > 127

    exc = rejected(capture.root)

    assert "1 frame(s): 14" in problem_with(exc, "empty mask")


def test_drop_empty_masks_drops_exactly_those_frames_and_keeps_cameras_aligned(make_capture):
    capture = make_capture()
    empty_masks(capture, (12, 13))

    report = validate_capture(capture.root, drop_empty_masks=True)

    assert report.dropped_frames == (12, 13)
    assert report.capture.frames == (11, 14)
    kept = report.capture.cameras
    assert len(kept) == 2
    np.testing.assert_array_equal(kept[0].R, capture.cameras[0].R)
    np.testing.assert_array_equal(kept[1].R, capture.cameras[3].R)
    np.testing.assert_array_equal(report.capture.camera(14).t, capture.cameras[3].t)
    # Coverage of frames 11 (index 0) and 14 (index 3), in that order.
    assert report.mask_coverage == pytest.approx([8 * 3 / (W * H), 8 * 6 / (W * H)])
    assert len(report.warnings) == 1
    assert "12, 13" in report.warnings[0]
    # The files themselves are untouched.
    assert capture.frame_path(12).exists() and capture.mask_path(12).exists()


def test_all_masks_empty_is_rejected_even_when_dropping(make_capture):
    capture = make_capture()
    empty_masks(capture, FRAMES)

    exc = rejected(capture.root, drop_empty_masks=True)

    problem_with(exc, str(capture.root), "every frame has an empty mask")


# ---------------------------------------------------------------- cameras


def test_nan_in_K_names_the_frame_and_K(make_capture):
    root = make_capture().root
    data = read_json(root)
    data["frames"][2]["K"][0][0] = math.nan  # frame 13
    write_json(root, data)
    assert "NaN" in (root / CAPTURE_FILE).read_text()

    exc = rejected_on_load(root)

    problem_with(exc, "frame 13: K has non-finite values")
    assert len(exc.problems) == 1
    # validate_capture on the folder reports the same.
    assert rejected(root).problems == exc.problems


def test_infinite_t_names_the_frame_and_t(make_capture):
    root = make_capture().root
    data = read_json(root)
    data["frames"][1]["t"][2] = math.inf  # frame 12
    write_json(root, data)

    exc = rejected_on_load(root)

    problem_with(exc, str(root / CAPTURE_FILE), "frame 12: t has non-finite values")


@pytest.mark.parametrize(
    "distort",
    [
        pytest.param(lambda R: R * 1.1, id="scaled"),
        pytest.param(lambda R: R @ np.diag([1.0, 1.0, -1.0]), id="reflection"),
    ],
)
def test_R_that_is_not_a_rotation_names_the_frame(make_capture, distort):
    capture = make_capture()
    bad = distort(capture.cameras[3].R)  # frame 14
    assert not np.allclose(bad.T @ bad, np.eye(3)) or np.linalg.det(bad) < 0
    data = read_json(capture.root)
    data["frames"][3]["R"] = bad.tolist()
    write_json(capture.root, data)

    exc = rejected_on_load(capture.root)

    problem_with(exc, "frame 14: R is not a rotation")
    assert len(exc.problems) == 1


def test_K_of_the_wrong_shape_names_the_frame(make_capture):
    root = make_capture().root
    data = read_json(root)
    data["frames"][0]["K"] = [[20.0, 0.0, 8.0], [0.0, 20.0, 6.0]]
    write_json(root, data)

    exc = rejected_on_load(root)

    problem_with(exc, "frame 11: K must have shape (3, 3)")


def test_several_camera_problems_are_all_listed(make_capture):
    root = make_capture().root
    data = read_json(root)
    data["frames"][0]["K"][1][1] = math.nan  # frame 11
    data["frames"][2]["R"][0][0] = 5.0  # frame 13
    write_json(root, data)

    exc = rejected_on_load(root)

    assert len(exc.problems) == 2
    problem_with(exc, "frame 11: K has non-finite")
    problem_with(exc, "frame 13: R is not a rotation")


# ---------------------------------------------------------------- body track


def test_body_track_shorter_than_the_frames_names_body_npz_and_counts(make_capture):
    capture = make_capture()
    body = capture.root / "body.npz"
    np.savez(body, **body_arrays(FRAMES[:3]))

    exc = rejected(capture.root)

    problem = problem_with(exc, str(body))
    assert "3 frame(s), the capture has 4" in problem
    assert "frames without a body pose: 14" in problem


def test_body_arrays_of_different_lengths_are_named(make_capture):
    capture = make_capture()
    body = capture.root / "body.npz"
    arrays = body_arrays(FRAMES)
    arrays[BODY_TRANSFORMS_KEY] = arrays[BODY_TRANSFORMS_KEY][:2]
    np.savez(body, **arrays)

    exc = rejected(capture.root)

    problem = problem_with(exc, str(body), BODY_FRAMES_KEY, BODY_TRANSFORMS_KEY)
    assert "2 frame(s) but frame_numbers has 4" in problem


def test_body_transforms_that_are_not_4x4_matrices_are_named(make_capture):
    capture = make_capture()
    body = capture.root / "body.npz"
    arrays = body_arrays(FRAMES)
    arrays[BODY_TRANSFORMS_KEY] = arrays[BODY_TRANSFORMS_KEY][..., :3, :]  # (T, B, 3, 4)
    np.savez(body, **arrays)

    exc = rejected(capture.root)

    problem = problem_with(exc, str(body), BODY_TRANSFORMS_KEY)
    assert "expected (T, B, 4, 4)" in problem


def test_body_track_covering_more_frames_than_the_capture_is_accepted(make_capture):
    capture = make_capture()
    np.savez(capture.root / "body.npz", **body_arrays(range(5, 20)))

    assert validate_capture(capture.root).capture.frames == FRAMES


def test_missing_body_npz_is_named(make_capture):
    capture = make_capture()
    body = capture.root / "body.npz"
    body.unlink()

    exc = rejected(capture.root)

    problem_with(exc, str(body), "file is missing")


def test_body_npz_without_its_keys_names_them(make_capture):
    capture = make_capture()
    body = capture.root / "body.npz"
    np.savez(body, poses=np.zeros((4, 3)))

    exc = rejected(capture.root)

    problem_with(exc, str(body), BODY_FRAMES_KEY, BODY_TRANSFORMS_KEY)


def test_truncated_body_npz_is_a_capture_error(make_capture):
    capture = make_capture()
    body = capture.root / "body.npz"
    data = body.read_bytes()
    body.write_bytes(data[: len(data) // 2])

    exc = rejected(capture.root)

    problem_with(exc, str(body), "unreadable body file")


def test_capture_without_a_body_track_skips_the_body_check(make_capture):
    capture = make_capture(body=False)
    assert load_capture(capture.root).body_path is None
    assert validate_capture(capture.root).capture.frames == FRAMES


# ---------------------------------------------------------------- capture.json itself


def test_missing_capture_json_is_named_with_a_hint(tmp_path):
    exc = rejected_on_load(tmp_path)
    assert str(tmp_path / CAPTURE_FILE) in str(exc)
    assert "file is missing" in str(exc)
    assert exc.hint and "capture.json" in exc.hint
    assert isinstance(exc, BackendError)


def test_malformed_capture_json_is_named(make_capture):
    root = make_capture().root
    (root / CAPTURE_FILE).write_text('{"version": 1, "fps": 25.0,')

    exc = rejected_on_load(root)

    assert str(root / CAPTURE_FILE) in str(exc)
    assert "not valid JSON" in str(exc)


def test_capture_json_that_is_not_an_object_is_rejected(make_capture):
    root = make_capture().root
    (root / CAPTURE_FILE).write_text("[1, 2, 3]")

    exc = rejected_on_load(root)

    assert "expected a JSON object" in str(exc)


@pytest.mark.parametrize("version", [2, 0, None])
def test_unknown_capture_version_is_named(make_capture, version):
    root = make_capture().root
    data = read_json(root)
    data["version"] = version
    write_json(root, data)

    exc = rejected_on_load(root)

    assert f"unknown capture version {version!r}" in str(exc)
    assert str(root / CAPTURE_FILE) in str(exc)


def test_unknown_top_level_key_in_capture_json_is_named(make_capture):
    root = make_capture().root
    data = read_json(root)
    data["fsp"] = 30
    write_json(root, data)

    exc = rejected_on_load(root)

    assert "unknown key(s) 'fsp'" in str(exc)
    assert str(root / CAPTURE_FILE) in str(exc)


def test_unknown_key_in_a_frame_entry_is_named_with_its_path(make_capture):
    root = make_capture().root
    data = read_json(root)
    data["frames"][1]["k"] = data["frames"][1]["K"]
    write_json(root, data)

    exc = rejected_on_load(root)

    assert "unknown key(s) 'frames[1].k'" in str(exc)


def test_unknown_garment_type_is_named(make_capture):
    root = make_capture().root
    data = read_json(root)
    data["garment_type"] = "poncho"
    write_json(root, data)

    exc = rejected_on_load(root)

    assert "garment_type" in str(exc) and "'poncho'" in str(exc)


@pytest.mark.parametrize(
    "frames, culprit",
    [((11, 13, 12, 14), "frame 12 follows 13"), ((11, 12, 12, 14), "frame 12 follows 12")],
    ids=["swapped", "duplicate"],
)
def test_non_increasing_frame_numbers_are_rejected(make_capture, frames, culprit):
    root = make_capture().root
    data = read_json(root)
    for entry, number in zip(data["frames"], frames, strict=True):
        entry["frame"] = number
    write_json(root, data)

    exc = rejected_on_load(root)

    problem_with(exc, "strictly increasing", culprit)


def test_capture_json_listing_no_frames_is_rejected(make_capture):
    root = make_capture().root
    data = read_json(root)
    data["frames"] = []
    write_json(root, data)

    exc = rejected_on_load(root)

    assert "lists no frames" in str(exc)


# ---------------------------------------------------------------- several problems at once


def test_several_file_problems_are_all_listed(make_capture):
    capture = make_capture()
    missing_frame = capture.frame_path(12)
    missing_frame.unlink()
    small_mask = capture.mask_path(13)
    write_png(small_mask, np.ones((6, 8), dtype=bool))
    body = capture.root / "body.npz"
    body.unlink()

    exc = rejected(capture.root)

    problem_with(exc, str(missing_frame), "file is missing")
    problem_with(exc, str(small_mask), "8x6")
    problem_with(exc, str(body), "file is missing")
    problem_with(exc, "mask/frame mismatch")
    assert len(exc.problems) == 4
    assert str(exc).startswith(f"{capture.root}: 4 problem(s):")


def test_collected_error_message_is_capped_but_problems_keep_everything():
    problems = [f"problem {i}" for i in range(13)]
    exc = CaptureError.collected(Path("/somewhere"), problems, shown=10)

    assert exc.problems == problems
    assert "problem 9" in str(exc)
    assert "problem 10" not in str(exc)
    assert "... and 3 more" in str(exc)
