"""SkinnedBody / BodyTrack validation and the body.npz round trip."""

from dataclasses import replace

import numpy as np
import pytest

from backend.body import BodyError, BodyTrack, SkinnedBody, load_body, save_body
from backend.body.model import sparse_weights
from backend.body.pose_code import fit_pose_code
from tests.backend_tier.body_helpers import body_arrays, chain_body, rising_track

FRAMES = (11, 12, 13, 14)


def body_fields(**changes):
    body = chain_body()
    fields = dict(rest_vertices=body.rest_vertices, faces=body.faces,
                  weight_indices=body.weight_indices, weight_values=body.weight_values,
                  bone_names=body.bone_names, bone_parents=body.bone_parents,
                  rest_bone_matrices=body.rest_bone_matrices, source=body.source)
    fields.update(changes)
    return fields


def only_problem(exc_info, *parts):
    problems = exc_info.value.problems
    matches = [p for p in problems if all(part in p for part in parts)]
    assert len(matches) == 1, f"expected one problem with {parts}; got {problems}"
    return matches[0]


def test_round_trip_keeps_every_array_and_the_pose_code(tmp_path):
    body, track = chain_body(), rising_track(FRAMES)
    track = replace(track, posed_vertices=np.random.default_rng(0).normal(
        size=(4, body.vertex_count, 3)), pose_code=fit_pose_code(
        track.bone_transforms, body.bone_parents, components=2, include_root=True))
    body = replace(body, uvs=np.zeros((len(body.faces), 3, 2)))
    path = save_body(tmp_path / "body.npz", body, track)

    body2, track2 = load_body(path)

    for name in ("rest_vertices", "faces", "weight_indices", "weight_values", "bone_parents",
                 "rest_bone_matrices", "uvs"):
        np.testing.assert_array_equal(getattr(body2, name), getattr(body, name), err_msg=name)
    assert body2.bone_names == body.bone_names and body2.source == "test:chain"
    np.testing.assert_array_equal(track2.frame_numbers, FRAMES)
    assert track2.fps == 25.0
    np.testing.assert_array_equal(track2.bone_transforms, track.bone_transforms)
    np.testing.assert_array_equal(track2.posed_vertices, track.posed_vertices)
    np.testing.assert_array_equal(track2.pose_code.basis, track.pose_code.basis)
    assert track2.pose_code.include_root is True


def test_dense_weights_in_a_file_are_converted_to_the_strongest_bones(tmp_path):
    arrays = body_arrays(FRAMES)
    dense = chain_body().dense_weights()
    del arrays["weight_indices"], arrays["weight_values"]
    np.savez(tmp_path / "body.npz", weights=dense, **arrays)

    body, _ = load_body(tmp_path / "body.npz")

    np.testing.assert_allclose(body.dense_weights(), dense, atol=1e-7)
    assert body.max_influences == 2


def test_sparse_weights_keep_the_strongest_and_renormalise():
    dense = np.array([[0.5, 0.3, 0.2, 0.0], [0.0, 0.0, 1.0, 0.0]])
    idx, val = sparse_weights(dense, max_influences=2)
    np.testing.assert_array_equal(idx, [[0, 1], [2, 0]])
    np.testing.assert_allclose(val, [[0.625, 0.375], [1.0, 0.0]])


@pytest.mark.parametrize("change, parts", [
    (dict(weight_values=np.full((8, 2), 0.4)), ("weight_values", "do not sum to 1",
                                                "vertex 0 sums to 0.8")),
    (dict(weight_values=np.zeros((8, 2))), ("weight_values", "must be assigned to a bone")),
    (dict(weight_indices=np.full((8, 2), 7)), ("weight_indices", "0..2", "got 7..7")),
    (dict(bone_parents=np.array([-1, 2, 1])), ("bone_parents", "cycle")),
    (dict(bone_parents=np.array([0, 0, 1])), ("bone_parents", "bone 0", "parent 0")),
    (dict(bone_parents=np.array([-1, 0])), ("bone_parents", "shape (2,)", "expected (3,)")),
    (dict(bone_names=("a", "a", "b")), ("bone_names", "duplicate", "a")),
    (dict(rest_vertices=np.full((8, 3), np.nan)), ("rest_vertices", "non-finite")),
    (dict(rest_vertices=np.zeros((8, 2))), ("rest_vertices", "expected (V, 3)")),
    (dict(faces=np.array([[0, 1, 99]])), ("faces", "0..7", "got 0..99")),
    (dict(rest_bone_matrices=np.zeros((3, 4, 4))), ("rest_bone_matrices", "not affine")),
    (dict(rest_bone_matrices=np.full((3, 4, 4), np.inf)), ("rest_bone_matrices",
                                                            "non-finite", "bone 0")),
    (dict(uvs=np.zeros((2, 3, 2))), ("uvs", "expected (6, 3, 2)")),
    (dict(source=""), ("source", "empty")),
])
def test_malformed_bodies_are_rejected_naming_the_field(change, parts):
    with pytest.raises(BodyError) as exc_info:
        SkinnedBody(**body_fields(**change))
    only_problem(exc_info, *parts)


def test_fractional_indices_are_rejected_by_name():
    with pytest.raises(BodyError, match="faces: expected integers"):
        SkinnedBody(**body_fields(faces=np.array([[0, 1, 2.5]])))


@pytest.mark.parametrize("change, parts", [
    (dict(frame_numbers=np.array([1, 3, 2, 4])), ("frame_numbers", "strictly increasing",
                                                  "frame 2 follows 3")),
    (dict(fps=0.0), ("fps", "positive")),
    (dict(bone_transforms=np.zeros((4, 3, 4, 4))), ("bone_transforms", "not affine")),
    (dict(bone_transforms=np.tile(np.eye(4), (2, 3, 1, 1))), ("bone_transforms",
                                                              "2 frame(s)", "has 4")),
    (dict(posed_vertices=np.zeros((3, 8, 3))), ("posed_vertices", "expected (T, V, 3)")),
])
def test_malformed_tracks_are_rejected_naming_the_field(change, parts):
    track = rising_track(FRAMES)
    fields = dict(frame_numbers=track.frame_numbers, fps=track.fps,
                  bone_transforms=track.bone_transforms)
    fields.update(change)
    with pytest.raises(BodyError) as exc_info:
        BodyTrack(**fields)
    only_problem(exc_info, *parts)


def test_nan_transform_names_the_frame_number_and_bone():
    transforms = rising_track(FRAMES).bone_transforms.copy()
    transforms[2, 1, 0, 0] = np.nan
    with pytest.raises(BodyError) as exc_info:
        BodyTrack(frame_numbers=FRAMES, fps=25, bone_transforms=transforms)
    only_problem(exc_info, "bone_transforms", "frame 13, bone 1")


# ---------------------------------------------------------------- body.npz on disk


def test_file_whose_track_has_another_bone_count_is_rejected(tmp_path):
    arrays = body_arrays(FRAMES)
    arrays["bone_transforms"] = np.tile(np.eye(4), (4, 5, 1, 1))
    np.savez(tmp_path / "body.npz", **arrays)
    with pytest.raises(BodyError) as exc_info:
        load_body(tmp_path / "body.npz")
    problem = only_problem(exc_info, "bone_transforms", "5 bone(s)", "has 3")
    assert str(tmp_path / "body.npz") in str(exc_info.value) and problem


@pytest.mark.parametrize("key", ["rest_vertices", "bone_parents", "frame_numbers", "fps",
                                 "weight_values"])
def test_missing_key_is_named_with_the_file(tmp_path, key):
    arrays = body_arrays(FRAMES)
    del arrays[key]
    np.savez(tmp_path / "body.npz", **arrays)
    with pytest.raises(BodyError) as exc_info:
        load_body(tmp_path / "body.npz")
    assert f"{tmp_path / 'body.npz'}: missing key(s)" in str(exc_info.value)
    assert key in str(exc_info.value)


def test_nan_weights_in_a_file_are_named(tmp_path):
    arrays = body_arrays(FRAMES)
    arrays["weight_values"] = arrays["weight_values"].copy()
    arrays["weight_values"][3, 0] = np.nan
    np.savez(tmp_path / "body.npz", **arrays)
    with pytest.raises(BodyError, match=r"body.npz: weight_values: 1 non-finite"):
        load_body(tmp_path / "body.npz")


def test_incomplete_pose_code_is_named(tmp_path):
    np.savez(tmp_path / "body.npz", pose_code_mean=np.zeros(3), **body_arrays(FRAMES))
    with pytest.raises(BodyError, match="pose code is incomplete: missing pose_code_basis"):
        load_body(tmp_path / "body.npz")


def test_truncated_or_missing_file_is_a_body_error(tmp_path):
    path = save_body(tmp_path / "body.npz", chain_body(), rising_track(FRAMES))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(BodyError, match="unreadable body file"):
        load_body(path)
    with pytest.raises(BodyError, match="file not found"):
        load_body(tmp_path / "nope.npz")


def test_saving_a_mismatched_track_fails_and_keeps_the_old_file(tmp_path):
    path = save_body(tmp_path / "body.npz", chain_body(), rising_track(FRAMES))
    before = path.read_bytes()
    with pytest.raises(BodyError, match="bone_transforms: 5 bone"):
        save_body(path, chain_body(), rising_track(FRAMES, bones=5))
    assert path.read_bytes() == before


def test_exported_rig_with_two_root_bones_and_dense_weights_loads(tmp_path):
    # what Blender's exporter writes for an armature: several roots are allowed
    arrays = body_arrays(FRAMES)
    arrays["bone_parents"] = np.array([-1, 0, -1])
    arrays["source"] = np.array("rig:Armature")
    dense = chain_body().dense_weights()
    del arrays["weight_indices"], arrays["weight_values"]
    np.savez(tmp_path / "body.npz", weights=dense, **arrays)
    body, track = load_body(tmp_path / "body.npz")
    assert body.source == "rig:Armature" and list(body.bone_parents) == [-1, 0, -1]
    assert track.frame_count == 4
