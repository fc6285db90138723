"""Tiny random SMPL / SMPL-X model files in exactly smplx's on-disk format.

Real model files are licensed and never enter the repository; these have the same keys,
shapes per vertex and joint counts (SMPL: 24 joints, SMPL-X: 55) but a few hundred
random vertices, so smplx loads them like the real thing.
"""

import pickle

import numpy as np

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,
                20, 21]
SMPLX_PARENTS = SMPL_PARENTS[:22] + [15, 15, 15] + [20, 25, 26, 20, 28, 29, 20, 31, 32, 20,
                                                     34, 35, 20, 37, 38] + [
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]


def tiny_model_arrays(parents: list[int], vertices: int, shape_dims: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    joints = len(parents)
    v = rng.normal(scale=0.3, size=(vertices, 3))
    weights = np.zeros((vertices, joints))              # up to 4 bones per vertex, like SMPL
    for _ in range(4):
        weights[np.arange(vertices), rng.integers(0, joints, vertices)] += rng.random(vertices)
    weights /= weights.sum(axis=1, keepdims=True)
    regressor = rng.random((joints, vertices))
    regressor /= regressor.sum(axis=1, keepdims=True)
    kintree = np.stack([np.array(parents), np.arange(joints)]).astype(np.int64)
    kintree[0, 0] = 4294967295                              # as in the real files
    return {
        "v_template": v,
        "f": rng.integers(0, vertices, size=(2 * vertices, 3)).astype(np.uint32),
        "shapedirs": rng.normal(scale=0.01, size=(vertices, 3, shape_dims)),
        "posedirs": rng.normal(scale=0.01, size=(vertices, 3, 9 * (joints - 1))),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": kintree,
    }


def write_smpl(folder, gender="NEUTRAL", vertices=300, seed=0):
    path = folder / f"SMPL_{gender}.pkl"
    with open(path, "wb") as fh:
        pickle.dump(tiny_model_arrays(SMPL_PARENTS, vertices, 10, seed), fh)
    return path


def write_smplx(folder, gender="NEUTRAL", vertices=400, seed=1):
    rng = np.random.default_rng(seed + 100)
    arrays = tiny_model_arrays(SMPLX_PARENTS, vertices, 20, seed)  # 10 betas + 10 expressions
    arrays.update(
        lmk_faces_idx=np.arange(51, dtype=np.int64),
        lmk_bary_coords=np.full((51, 3), 1 / 3),
        dynamic_lmk_faces_idx=np.zeros((79, 17), np.int64),
        dynamic_lmk_bary_coords=np.full((79, 17, 3), 1 / 3),
        hands_componentsl=np.linalg.qr(rng.normal(size=(45, 45)))[0],
        hands_componentsr=np.linalg.qr(rng.normal(size=(45, 45)))[0],
        hands_meanl=rng.normal(scale=0.1, size=45),
        hands_meanr=rng.normal(scale=0.1, size=45),
    )
    path = folder / f"SMPLX_{gender}.npz"
    np.savez(path, **arrays)
    return path


def random_params(frames, body_joints, seed=2, smplx=False):
    rng = np.random.default_rng(seed)
    params = {
        "global_orient": rng.normal(scale=0.5, size=(frames, 3)),
        "body_pose": rng.normal(scale=0.3, size=(frames, 3 * body_joints)),
        "transl": rng.normal(scale=0.5, size=(frames, 3)),
        "betas": rng.normal(size=10),
    }
    if smplx:
        params.update(jaw_pose=rng.normal(scale=0.2, size=(frames, 3)),
                      leye_pose=rng.normal(scale=0.2, size=(frames, 3)),
                      reye_pose=rng.normal(scale=0.2, size=(frames, 3)),
                      left_hand_pose=rng.normal(scale=0.3, size=(frames, 45)),
                      right_hand_pose=rng.normal(scale=0.3, size=(frames, 45)),
                      expression=rng.normal(size=(frames, 10)))
    return params
