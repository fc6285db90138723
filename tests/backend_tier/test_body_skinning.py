"""Linear blend skinning, weight transfer and the pose code."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from backend.body import BodyError
from backend.body.pose_code import encode_poses, fit_pose_code, local_rotations
from backend.body.skinning import Skinning, skin_sparse
from backend.body.transfer import WeightTransferSettings, transfer_weights
from tests.backend_tier.body_helpers import chain_body

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="CUDA variant: torch.cuda.is_available() is False"))]


def random_transforms(frames, bones, seed=0):
    rng = np.random.default_rng(seed)
    a = np.tile(np.eye(4), (frames, bones, 1, 1))
    a[..., :3, :3] = Rotation.random(frames * bones, random_state=seed).as_matrix().reshape(
        frames, bones, 3, 3)
    a[..., :3, 3] = rng.normal(size=(frames, bones, 3))
    return a


def naive_lbs(vertices, transforms, indices, values):
    """Per-frame, per-vertex loop: the textbook formula."""
    out = np.zeros((len(transforms), len(vertices), 3))
    for t in range(len(transforms)):
        for i, v in enumerate(vertices):
            m = sum(w * transforms[t, j] for j, w in zip(indices[i], values[i], strict=True))
            out[t, i] = (m @ np.append(v, 1.0))[:3]
    return out


@pytest.mark.parametrize("device", DEVICES)
def test_skinning_matches_the_per_vertex_formula(device):
    body = chain_body(vertices=10)
    transforms = random_transforms(3, body.bone_count)
    expected = naive_lbs(body.rest_vertices.astype(np.float64), transforms,
                         body.weight_indices, body.weight_values.astype(np.float64))
    skin = Skinning(body.weight_indices, body.weight_values, body.bone_count, device,
                    torch.float64)
    a = torch.as_tensor(transforms, device=device)
    got = skin(torch.as_tensor(body.rest_vertices, dtype=torch.float64, device=device), a)
    np.testing.assert_allclose(got.cpu().numpy(), expected, atol=1e-6)
    sparse = skin_sparse(torch.as_tensor(body.rest_vertices, dtype=torch.float64, device=device),
                         a, torch.as_tensor(body.weight_indices, device=device).long(),
                         torch.as_tensor(body.weight_values, dtype=torch.float64, device=device))
    np.testing.assert_allclose(sparse.cpu().numpy(), expected, atol=1e-6)


def test_skinning_accepts_per_frame_vertices_and_identity_keeps_them():
    body = chain_body()
    skin = Skinning(body.weight_indices, body.weight_values, body.bone_count,
                    dtype=torch.float64)
    per_frame = torch.randn(4, body.vertex_count, 3, dtype=torch.float64)
    identity = torch.eye(4, dtype=torch.float64).repeat(4, body.bone_count, 1, 1)
    torch.testing.assert_close(skin(per_frame, identity), per_frame)


def test_skinning_gradient_with_respect_to_vertices_passes_gradcheck():
    body = chain_body(vertices=6)
    skin = Skinning(body.weight_indices, body.weight_values, body.bone_count,
                    dtype=torch.float64)
    transforms = torch.tensor(random_transforms(2, body.bone_count), requires_grad=True)
    vertices = torch.randn(body.vertex_count, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(skin, (vertices, transforms))


def test_skinning_rejects_mismatched_inputs_with_shapes_in_the_message():
    body = chain_body()
    skin = Skinning(body.weight_indices, body.weight_values, body.bone_count)
    with pytest.raises(BodyError, match=r"bone_transforms must have shape \(T, 3, 4, 4\); got"):
        skin(torch.zeros(8, 3), torch.zeros(2, 5, 4, 4))
    with pytest.raises(BodyError, match=r"vertices must have shape \(8, 3\) or \(2, 8, 3\)"):
        skin(torch.zeros(7, 3), torch.zeros(2, 3, 4, 4))
    with pytest.raises(BodyError, match="float64 .* skinning weights are torch.float32"):
        skin(torch.zeros(8, 3, dtype=torch.float64), torch.zeros(2, 3, 4, 4, dtype=torch.float64))
    with pytest.raises(BodyError, match=r"bone indices must lie in 0..1"):
        Skinning(body.weight_indices, body.weight_values, bone_count=2)


# ---------------------------------------------------------------- weight transfer


def test_nearest_transfer_with_one_neighbour_copies_the_body_vertex_weights():
    body = chain_body()
    points = body.rest_vertices + np.array([0.0, 0.03, 0.0])    # 3 cm in front of each
    idx, val = transfer_weights(points, body, WeightTransferSettings("nearest", neighbours=1))
    dense = np.zeros((len(points), body.bone_count))
    np.add.at(dense, (np.repeat(np.arange(len(points)), idx.shape[1]), idx.ravel()), val.ravel())
    np.testing.assert_allclose(dense, body.dense_weights(), atol=1e-6)


def test_rbf_transfer_follows_the_formula_on_a_hand_made_case():
    # two body vertices, one per bone, at distances 1 and 1.2 from the garment point
    body = chain_body(vertices=8)
    point = body.rest_vertices[0] + np.array([0.0, 0.05, 0.0])
    d = np.linalg.norm(body.rest_vertices - point, axis=1)
    idx, val = transfer_weights(point[None], body, WeightTransferSettings(
        "rbf", neighbours=body.vertex_count, min_distance_m=1e-4))
    kernel = np.exp(-((d - d.min()) ** 2) / (0.25 * d.min() ** 2))
    expected = (kernel / kernel.sum()) @ body.dense_weights()
    got = np.zeros(body.bone_count)
    got[idx[0]] += val[0]
    np.testing.assert_allclose(got, expected / expected.sum(), atol=1e-6)
    assert abs(val.sum() - 1) < 1e-6


def test_rbf_transfer_gives_a_garment_point_the_weights_of_the_part_it_is_near():
    body = chain_body(vertices=30)
    top = body.rest_vertices[-1] + np.array([0.0, 0.02, 0.0])
    idx, val = transfer_weights(top[None], body)
    assert idx[0, np.argmax(val[0])] == body.bone_count - 1


def test_transfer_rejects_bad_points_and_settings():
    body = chain_body()
    with pytest.raises(BodyError, match=r"garment vertices must have shape \(N, 3\)"):
        transfer_weights(np.zeros((4, 2)), body)
    with pytest.raises(BodyError, match="NaN"):
        transfer_weights(np.full((2, 3), np.nan), body)
    with pytest.raises(BodyError, match="method must be one of rbf, nearest; got 'knn'"):
        WeightTransferSettings(method="knn")
    with pytest.raises(BodyError, match="min_distance_m must be > 0"):
        WeightTransferSettings(min_distance_m=0)


# ---------------------------------------------------------------- pose code


def chain_track_transforms(angles_deg):
    """Transforms of a 3-bone chain whose bone 1 bends by each angle (about X) and whose
    root turns by 30 degrees about Z."""
    body = chain_body()
    frames = len(angles_deg)
    world = np.zeros((frames, 3, 3, 3))
    root = Rotation.from_euler("z", 30, degrees=True).as_matrix()
    bend = Rotation.from_euler("x", np.asarray(angles_deg, float)[:, None],
                               degrees=True).as_matrix()
    world[:, 0] = root
    world[:, 1] = root @ bend
    world[:, 2] = world[:, 1]
    a = np.tile(np.eye(4), (frames, 3, 1, 1))
    a[..., :3, :3] = world
    return body, a


def test_local_rotations_recover_the_bend_relative_to_the_parent():
    body, a = chain_track_transforms([0.0, 20.0, 45.0])
    local = local_rotations(a, body.bone_parents)
    angles = Rotation.from_matrix(local[:, 1]).as_euler("xyz", degrees=True)
    np.testing.assert_allclose(angles[:, 0], [0, 20, 45], atol=1e-9)
    np.testing.assert_allclose(local[:, 2], np.tile(np.eye(3), (3, 1, 1)), atol=1e-12)
    np.testing.assert_allclose(Rotation.from_matrix(local[:, 0]).as_euler("xyz", degrees=True),
                               np.tile([0, 0, 30], (3, 1)), atol=1e-9)


def test_pca_code_of_a_one_joint_motion_is_its_angle_and_encodes_new_frames():
    body, a = chain_track_transforms(np.linspace(0, 60, 7))
    code = fit_pose_code(a, body.bone_parents, components=4)
    assert code.components == 4 and code.include_root is False
    # one degree of freedom: one direction carries everything, the rest are zero
    assert code.explained_variance[0] > 0 and np.all(code.explained_variance[1:] == 0)
    np.testing.assert_allclose(np.abs(code.codes[:, 0]),
                               np.abs(np.deg2rad(np.linspace(0, 60, 7) - 30)), atol=1e-6)
    _, new = chain_track_transforms([90.0])
    np.testing.assert_allclose(np.abs(encode_poses(code, new, body.bone_parents)[0, 0]),
                               np.deg2rad(60), atol=1e-6)


def test_excluding_the_root_makes_the_code_independent_of_heading():
    body, a = chain_track_transforms([0.0, 30.0, 60.0])
    turned = a.copy()
    turn = Rotation.from_euler("z", 80, degrees=True).as_matrix()
    turned[..., :3, :3] = turn @ a[..., :3, :3]
    code = fit_pose_code(a, body.bone_parents, components=2)
    np.testing.assert_allclose(encode_poses(code, turned, body.bone_parents), code.codes,
                               atol=1e-6)
    with_root = fit_pose_code(a, body.bone_parents, components=2, include_root=True)
    assert with_root.mean.shape == (9,) and code.mean.shape == (6,)


def test_pose_code_of_another_body_is_refused():
    body, a = chain_track_transforms([0.0, 30.0])
    code = fit_pose_code(a, body.bone_parents)
    other = np.tile(np.eye(4), (1, 5, 1, 1))
    with pytest.raises(BodyError, match="12 features per frame but the code was fitted on 6"):
        encode_poses(code, other, np.array([-1, 0, 1, 2, 3]))
