"""prepare_capture_folder: what happens to a folder before a capture is written into it."""

import pytest

from backend.capture import CaptureError, CapturePaths
from backend.capture.writer import prepare_capture_folder


def files_in(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_missing_folder_is_created_with_image_folders(tmp_path):
    root = tmp_path / "new" / "capture"
    assert prepare_capture_folder(root) == ()
    assert (root / "frames").is_dir() and (root / "masks").is_dir()
    assert files_in(root) == []


def test_empty_folder_needs_no_overwrite(tmp_path):
    assert prepare_capture_folder(tmp_path) == ()


def test_previous_capture_files_are_removed_and_nothing_else(make_capture, tmp_path):
    capture = make_capture(frames=(3, 4), normals=True, depth=True)
    root = capture.root
    (root / "notes.txt").write_text("mine")
    (root / "frames" / "000099.png").write_bytes(b"not listed")
    (root / "frames" / "reference.jpg").write_bytes(b"mine too")
    listed = files_in(root)
    removed = prepare_capture_folder(root)
    assert {str(p.relative_to(root)) for p in removed} == {
        "capture.json", "body.npz", "frames/000003.png", "frames/000004.png",
        "masks/000003.png", "masks/000004.png", "normals/000003.png", "normals/000004.png",
        "depth/000003.npy", "depth/000004.npy"}
    assert files_in(root) == ["frames/000099.png", "frames/reference.jpg", "notes.txt"]
    assert len(listed) == len(removed) + 3


def test_non_capture_folder_is_refused_without_overwrite(tmp_path):
    (tmp_path / "holiday.jpg").write_bytes(b"photo")
    with pytest.raises(CaptureError, match=rf"{tmp_path}: folder is not empty and holds no "
                                           r"readable capture\.json; export with overwrite"):
        prepare_capture_folder(tmp_path)
    assert files_in(tmp_path) == ["holiday.jpg"]
    assert prepare_capture_folder(tmp_path, overwrite=True) == ()
    assert files_in(tmp_path) == ["holiday.jpg"], "overwrite deletes nothing"


def test_unreadable_capture_json_counts_as_someone_elses_folder(make_capture):
    capture = make_capture()
    (capture.root / "capture.json").write_text("{ not json")
    before = files_in(capture.root)
    with pytest.raises(CaptureError, match="holds no readable capture.json"):
        prepare_capture_folder(capture.root)
    assert prepare_capture_folder(capture.root, overwrite=True) == ()
    assert files_in(capture.root) == before


def test_capture_json_cannot_delete_files_outside_the_capture(make_capture, tmp_path):
    import json

    capture = make_capture(root=tmp_path / "capture")
    outside = tmp_path / "precious"
    outside.mkdir()
    for frame in capture.frames:
        (outside / f"{frame:06d}.png").write_bytes(b"keep me")
    data = json.loads((capture.root / "capture.json").read_text())
    data["paths"]["frames"] = "../precious"
    (capture.root / "capture.json").write_text(json.dumps(data))
    prepare_capture_folder(capture.root)
    assert len(list(outside.iterdir())) == len(capture.frames)


def test_a_file_is_not_a_folder(tmp_path):
    path = tmp_path / "capture"
    path.write_text("x")
    with pytest.raises(CaptureError, match="is a file, not a folder"):
        prepare_capture_folder(path)


def test_custom_layout_folders_are_created(tmp_path):
    prepare_capture_folder(tmp_path / "c", paths=CapturePaths(frames="rgb", masks="alpha"))
    assert (tmp_path / "c" / "rgb").is_dir() and (tmp_path / "c" / "alpha").is_dir()
