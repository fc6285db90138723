"""The pose code that conditions NGD's dynamic deformation MLP.

Each frame's pose becomes a feature vector: for every bone, the axis-angle vector
(radians) of its rotation relative to its parent, taken from the skinning transforms
alone (so it works the same for Anny, SMPL and Blender rigs). The rotation of bone c
relative to parent p is ``R_p^T R_c`` with ``R = nearest rotation to the 3x3 part of the
skinning transform``: identity in the rest pose, its axis expressed in rest-space axes.
Roots are relative to the rest pose and can be left out, so that where the person
faces does not change the code. PCA over the sequence keeps ``k`` components (NGD uses 4).
"""

from __future__ import annotations

import numpy as np

from .errors import BodyError
from .model import PoseCode

DEFAULT_COMPONENTS = 4


def local_rotations(bone_transforms: np.ndarray, bone_parents: np.ndarray) -> np.ndarray:
    """Each bone's rotation relative to its parent.

    Args:
        bone_transforms: (T, B, 4, 4) rest -> world skinning transforms.
        bone_parents: (B,) parent indices, -1 for roots.
    Returns:
        (T, B, 3, 3) float64 rotation matrices (roots: relative to the rest pose).
    """
    linear = np.asarray(bone_transforms, np.float64)[..., :3, :3]
    # nearest rotation (polar decomposition): tolerates scale and float32 drift
    u, _, vt = np.linalg.svd(linear)
    flip = np.linalg.det(u @ vt) < 0
    u[flip, :, -1] *= -1
    world = u @ vt
    parents = np.asarray(bone_parents)
    has_parent = parents >= 0
    local = world.copy()
    parent_rot = world[:, parents[has_parent]]
    local[:, has_parent] = np.swapaxes(parent_rot, -1, -2) @ world[:, has_parent]
    return local


def pose_features(bone_transforms: np.ndarray, bone_parents: np.ndarray,
                  include_root: bool = False) -> np.ndarray:
    """(T, D) axis-angle features, D = 3 x (bones kept); see the module docstring."""
    from scipy.spatial.transform import Rotation

    rotations = local_rotations(bone_transforms, bone_parents)
    keep = np.ones(rotations.shape[1], bool) if include_root else np.asarray(bone_parents) >= 0
    kept = rotations[:, keep]
    if kept.shape[1] == 0:
        raise BodyError("pose code: the body has only root bones, so there are no joint "
                        "rotations to encode; include the root orientation instead")
    rotvec = Rotation.from_matrix(kept.reshape(-1, 3, 3)).as_rotvec()
    return rotvec.reshape(len(rotations), -1)


def fit_pose_code(bone_transforms: np.ndarray, bone_parents: np.ndarray,
                  components: int = DEFAULT_COMPONENTS, include_root: bool = False) -> PoseCode:
    """PCA of a track's pose features; keeps ``components`` directions.

    When the track has fewer distinct poses than ``components`` + 1, the missing
    directions are zero rows with zero variance (their code is always 0). Each
    direction's sign is fixed so its largest entry is positive, making the code
    deterministic.
    """
    if components < 1:
        raise BodyError(f"pose code: components must be >= 1; got {components}")
    features = pose_features(bone_transforms, bone_parents, include_root)
    mean = features.mean(axis=0)
    centered = features - mean
    _, singular, vt = np.linalg.svd(centered, full_matrices=False)
    kept = min(components, len(singular))
    basis = np.zeros((components, features.shape[1]))
    variance = np.zeros(components)
    basis[:kept] = vt[:kept]
    variance[:kept] = singular[:kept] ** 2 / max(len(features) - 1, 1)
    # directions of (numerically) zero variance carry no information: zero them
    negligible = variance <= 1e-12 * max(variance.max(initial=0), 1e-30)
    basis[negligible] = 0
    variance[negligible] = 0
    signs = np.sign(basis[np.arange(components), np.abs(basis).argmax(axis=1)])
    basis *= np.where(signs == 0, 1, signs)[:, None]
    return PoseCode(mean=mean, basis=basis, codes=centered @ basis.T,
                    explained_variance=variance, include_root=include_root)


def encode_poses(code: PoseCode, bone_transforms: np.ndarray,
                 bone_parents: np.ndarray) -> np.ndarray:
    """(T, k) float32 codes of new frames with an existing ``code``'s projection."""
    features = pose_features(bone_transforms, bone_parents, code.include_root)
    if features.shape[1] != code.mean.shape[0]:
        raise BodyError(f"pose code: these transforms give {features.shape[1]} features per "
                        f"frame but the code was fitted on {code.mean.shape[0]}; "
                        "use the same body")
    return ((features - code.mean) @ code.basis.T).astype(np.float32)
