"""The Anny adapter and the procedural motions (decimated topology: ~1.2k vertices).

The first test run on a clean machine builds Anny's cache for this topology (about a
minute, under ANNY_CACHE_DIR); later runs load it in about a second.
"""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from backend.body import BodyError
from backend.body.anny_body import AnnyPhenotype, AnnyPoser, foot_sliding, load_anny
from backend.body.motions import MOTIONS, limit_violations, make_motion
from backend.body.pose_code import local_rotations
from backend.body.skinning import Skinning

TOPOLOGY = "notoes_collapse10pc"
FPS = 30.0
MAX_MEAN_SLIDE_M_S = 0.02
"""Measured (120 frames, 5 mm contact band): walk 0.008, turn 0.004, sway 0.015, arms 0."""
MAX_SLIDE_M_S = 0.4
"""Measured peaks, at touch-down frames: walk 0.37, turn 0.21, sway 0.19 m/s."""


@pytest.fixture(scope="module")
def poser():
    return AnnyPoser(topology=TOPOLOGY)


@pytest.fixture(scope="module")
def tracks(poser):
    return {name: poser.track(make_motion(name, 60, FPS), np.arange(1, 61), FPS)
            for name in MOTIONS}


def test_body_has_anny_rig_and_weights(poser):
    body = poser.body
    assert body.source == f"anny:{TOPOLOGY}" and body.bone_names[0] == "root"
    assert body.vertex_count == 1229 and body.bone_count == 104
    np.testing.assert_allclose(body.weight_values.sum(axis=1), 1, atol=1e-5)
    assert abs(body.rest_vertices[:, 2].min() + poser.floor_offset_m) < 1e-6


def test_our_skinning_reproduces_annys_vertices_for_a_60_frame_walk(poser, tracks):
    track = tracks["walk"]
    skin = Skinning(poser.body.weight_indices, poser.body.weight_values, poser.body.bone_count)
    ours = skin(torch.as_tensor(poser.body.rest_vertices),
                torch.as_tensor(track.bone_transforms)).numpy()
    assert track.frame_count == 60
    assert np.abs(ours - track.posed_vertices).max() <= 1e-4


def test_zero_pose_is_the_rest_body_standing_on_the_floor(poser):
    identity = np.tile(np.eye(3), (2, poser.body.bone_count, 1, 1))
    _, vertices = poser.pose(identity, np.tile([0.0, 0.0, poser.floor_offset_m], (2, 1)))
    expected = poser.body.rest_vertices + np.array([0, 0, poser.floor_offset_m])
    np.testing.assert_allclose(vertices[1], expected, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MOTIONS))
def test_motion_stays_within_joint_limits_and_keeps_feet_planted(poser, tracks, name):
    track = tracks[name]
    rotations = local_rotations(track.bone_transforms, poser.body.bone_parents)
    assert limit_violations(rotations, poser.body.bone_names) == []
    sliding = foot_sliding(track.posed_vertices, poser.foot_vertices(), FPS)
    assert sliding["contact_fraction"] > 0.3, "a foot must touch the floor most of the time"
    assert sliding["mean_speed_m_s"] <= MAX_MEAN_SLIDE_M_S, sliding
    assert sliding["max_speed_m_s"] <= MAX_SLIDE_M_S, sliding
    assert track.posed_vertices[..., 2].min() > -0.005, "nothing sinks into the floor"


def test_walk_moves_forward_and_turn_ends_facing_back(poser, tracks):
    centre = tracks["walk"].posed_vertices.mean(axis=1)
    assert centre[-1, 1] - centre[0, 1] < -0.8, "walks towards -Y, Anny's front"
    turn = poser.track(make_motion("turn", 120, FPS), np.arange(120), FPS)
    heading = Rotation.from_matrix(turn.bone_transforms[-1, 0, :3, :3]).as_euler("xyz",
                                                                                  degrees=True)
    assert abs(abs(heading[2]) - 180) < 1


def test_limit_check_catches_an_overbent_knee(poser):
    identity = np.tile(np.eye(3), (1, poser.body.bone_count, 1, 1))
    knee = poser.body.bone_names.index("lowerleg01.L")
    identity[0, knee] = Rotation.from_euler("x", 170, degrees=True).as_matrix()
    problems = limit_violations(identity, poser.body.bone_names)
    assert problems == ["lowerleg01.L: x rotation spans 170.0..170.0 deg, limit 0..145"]


def test_pose_code_is_stored_with_four_components(tracks):
    code = tracks["walk"].pose_code
    assert code.codes.shape == (60, 4) and code.explained_variance[0] > 0


def test_bad_anny_settings_are_body_errors():
    with pytest.raises(BodyError, match=r"phenotype values must lie in \[0, 1\]; got age=1.5"):
        AnnyPhenotype(age=1.5)
    with pytest.raises(BodyError, match="unknown motion 'jog'; choose one of walk"):
        make_motion("jog", 10, 30)
    with pytest.raises(BodyError, match="unknown Anny topology 'tiny'"):
        load_anny("tiny")
