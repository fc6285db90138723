"""atomic_write: a failed write never replaces or truncates the existing file."""

import pytest

from backend.fileio import atomic_write


def test_success_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "capture.json"
    with atomic_write(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new"
    assert [p.name for p in path.parent.iterdir()] == ["capture.json"]


def test_failure_keeps_the_old_content_and_removes_the_temporary(tmp_path):
    path = tmp_path / "garment.npz"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_write(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["garment.npz"]
