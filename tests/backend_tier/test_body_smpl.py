"""SMPL / SMPL-X through smplx, on tiny generated model files (never licensed ones)."""

import pickle

import numpy as np
import pytest
import torch

from backend.body import BodyError, load_body, save_body
from backend.body.skinning import Skinning
from backend.body.smpl import SmplPoser, find_model_file, load_pose_params, smpl_track
from tests.backend_tier.smpl_files import random_params, write_smpl, write_smplx

KINDS = {"smpl": (write_smpl, 23), "smplx": (write_smplx, 21)}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_adapter_output_equals_smplx_output(tmp_path, kind):
    write, body_joints = KINDS[kind]
    write(tmp_path)
    params = random_params(6, body_joints, smplx=kind == "smplx")
    poser = SmplPoser(find_model_file(tmp_path, kind), params["betas"])
    expected = poser.smplx_vertices(params)     # smplx's own forward pass

    skin = Skinning(poser.body.weight_indices, poser.body.weight_values, poser.body.bone_count,
                    dtype=torch.float64)
    ours = skin(torch.as_tensor(poser.corrected_rest_vertices(params)),
                torch.as_tensor(poser.transforms(params))).numpy()

    assert np.abs(ours - expected).max() <= 1e-5
    assert poser.body.bone_count == (24 if kind == "smpl" else 55)
    assert poser.body.source == f"{kind}:neutral"


def test_without_pose_the_body_is_the_rest_mesh_turned_z_up(tmp_path):
    write_smpl(tmp_path)
    params = random_params(2, 23)
    params["global_orient"][:] = 0
    params["body_pose"][:] = 0
    params["transl"][:] = 0
    poser = SmplPoser(find_model_file(tmp_path), params["betas"])
    np.testing.assert_allclose(poser.smplx_vertices(params)[0], poser.body.rest_vertices,
                               atol=1e-6)
    np.testing.assert_allclose(poser.transforms(params)[0], np.tile(np.eye(4), (24, 1, 1)),
                               atol=1e-12)


def test_a_parameter_sequence_becomes_a_valid_body_file(tmp_path):
    write_smpl(tmp_path)
    params = random_params(5, 23)
    np.savez(tmp_path / "seq.npz", mocap_framerate=60.0, **params)
    body, track = smpl_track(tmp_path, tmp_path / "seq.npz", start_frame=10)
    assert track.fps == 60.0 and list(track.frame_numbers) == [10, 11, 12, 13, 14]
    save_body(tmp_path / "body.npz", body, track)
    body2, track2 = load_body(tmp_path / "body.npz")
    np.testing.assert_allclose(track2.posed_vertices, track.posed_vertices, atol=1e-6)


def test_pickled_parameters_load_but_code_in_a_pickle_is_refused(tmp_path):
    params = random_params(3, 23)
    with open(tmp_path / "seq.pkl", "wb") as fh:
        pickle.dump(params, fh)
    loaded, fps = load_pose_params(tmp_path / "seq.pkl")
    np.testing.assert_array_equal(loaded["body_pose"], params["body_pose"])
    assert fps is None

    class Evil:
        def __reduce__(self):
            return (print, ("ran code",))

    with open(tmp_path / "evil.pkl", "wb") as fh:
        pickle.dump({"global_orient": Evil()}, fh)
    with pytest.raises(BodyError, match="refusing to load builtins.print"):
        load_pose_params(tmp_path / "evil.pkl")


def test_missing_model_file_says_where_to_put_it(tmp_path):
    with pytest.raises(BodyError) as exc_info:
        find_model_file(tmp_path, "smplx", "female")
    assert str(tmp_path / "SMPLX_FEMALE.npz") in str(exc_info.value)
    assert "Preferences" in exc_info.value.hint


@pytest.mark.parametrize("change, message", [
    (lambda p: p.pop("transl"), "missing key(s) transl"),
    (lambda p: p.update(body_pose=p["body_pose"][:2]), "body_pose: 2 frame(s) but "
                                                       "global_orient has 4"),
    (lambda p: p["transl"].__setitem__((1, 0), np.nan), "transl: contains NaN"),
    (lambda p: p.update(global_orient=np.zeros((4, 2))), "global_orient: shape (4, 2)"),
])
def test_bad_parameter_files_are_named(tmp_path, change, message):
    params = random_params(4, 23)
    change(params)
    np.savez(tmp_path / "seq.npz", **params)
    with pytest.raises(BodyError) as exc_info:
        load_pose_params(tmp_path / "seq.npz")
    assert message in str(exc_info.value) and str(tmp_path / "seq.npz") in str(exc_info.value)


def test_wrong_joint_count_and_unreadable_model_are_body_errors(tmp_path):
    write_smpl(tmp_path)
    params = random_params(2, 21)               # SMPL-X's 21 body joints given to SMPL
    np.savez(tmp_path / "seq.npz", **params)
    with pytest.raises(BodyError, match="model has 24"):
        smpl_track(tmp_path, tmp_path / "seq.npz")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "SMPL_NEUTRAL.pkl").write_bytes(b"not a pickle")
    with pytest.raises(BodyError, match="not a readable SMPL model file"):
        SmplPoser(find_model_file(tmp_path / "bad"))
