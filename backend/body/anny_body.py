"""Anny bodies (PyPI ``anny``, Apache-2.0, offline) as SkinnedBody + BodyTrack.

Anny's conventions are kept: metres, Z up, the body faces -Y, +X is its left. Its rest
space is centred near the pelvis; tracks place the body in the world standing on the
floor (z = 0). Poses are driven through Anny's ``"world-orient"`` parameterisation from
rotations relative to each parent in rest-space axes (the convention of
``backend.body.motions`` and ``backend.body.pose_code``), so the joint angles a motion
asks for are exactly the ones the pose code and the joint-limit check read back.
Skinning transforms are Anny's posed bone poses times its inverse rest bone poses.

The first model build of a topology takes about a minute and is cached under
``ANNY_CACHE_DIR``; later loads take about a second.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass

import numpy as np

from .errors import BodyError
from .model import BodyTrack, SkinnedBody, sparse_weights
from .motions import Motion, euler_order, make_motion
from .pose_code import DEFAULT_COMPONENTS, fit_pose_code

log = logging.getLogger(__name__)

DEFAULT_TOPOLOGY = "anny"
"""Anny's full body mesh; ``notoes_collapse10pc`` (~1.2k vertices) suits fast tests."""
TOPOLOGIES = ("anny", "notoes", "notoes_collapse3pc", "notoes_collapse5pc",
              "notoes_collapse10pc", "smpl", "smplx")
FOOT_CONTACT_BAND_M = 0.015
"""A foot's sole point is the mean of its vertices within this height of its lowest one."""


@dataclass(frozen=True)
class AnnyPhenotype:
    """Anny's body-shape parameters, each in [0, 1] (0.5 = average).

    gender: 0 female .. 1 male; age: 0 newborn .. 1 old (0.5 is about 25 years);
    muscle, weight, height, proportions: low .. high.
    """

    gender: float = 0.5
    age: float = 0.5
    muscle: float = 0.5
    weight: float = 0.5
    height: float = 0.5
    proportions: float = 0.5

    def __post_init__(self):
        bad = [f"{k}={v}" for k, v in asdict(self).items() if not 0.0 <= v <= 1.0]
        if bad:
            raise BodyError(f"Anny phenotype values must lie in [0, 1]; got {', '.join(bad)}")


@functools.lru_cache(maxsize=2)
def load_anny(topology: str = DEFAULT_TOPOLOGY):
    """The ``anny.Anny`` model of a topology (built on first use, then cached)."""
    if topology not in TOPOLOGIES:
        raise BodyError(f"unknown Anny topology {topology!r}; choose one of "
                        f"{', '.join(TOPOLOGIES)}")
    try:
        import anny
    except ImportError as exc:
        raise BodyError(f"the Anny body model is not installed ({exc})",
                        hint="install the backend packages: pip install anny==0.6.2") from None
    log.info("loading Anny topology %s (the first build takes about a minute)", topology)
    return anny.Anny(topology=topology)


class AnnyPoser:
    """One Anny model with one phenotype: its SkinnedBody, and poses from joint rotations.

    Args:
        phenotype: the body shape.
        topology: an Anny topology name (``TOPOLOGIES``).
    """

    def __init__(self, phenotype: AnnyPhenotype | None = None,
                 topology: str = DEFAULT_TOPOLOGY):
        self.phenotype = phenotype or AnnyPhenotype()
        self.topology = topology
        self.model = load_anny(topology)
        rest = self._run(None)
        self._rest_bone_poses = rest["rest_bone_poses"][0].numpy()     # (B, 4, 4) float64
        rest_vertices = rest["rest_vertices"][0].numpy()
        # through dense weights: Anny's own rows carry a few tiny negative weights,
        # which sparse_weights clips and renormalises
        indices, values = sparse_weights(self._dense_weights())
        self.body = SkinnedBody(
            rest_vertices=rest_vertices,
            faces=self.model.get_triangular_faces().numpy(),
            weight_indices=indices,
            weight_values=values,
            bone_names=tuple(self.model.bone_labels),
            bone_parents=np.asarray(self.model.bone_parents),
            rest_bone_matrices=self._rest_bone_poses,
            source=f"anny:{topology}",
        )
        self.floor_offset_m = float(-rest_vertices[:, 2].min())
        """Height that puts the rest body's lowest vertex on the floor (z = 0)."""

    @property
    def bone_names(self) -> tuple[str, ...]:
        return self.body.bone_names

    def _run(self, deltas, parameterization: str | None = None) -> dict:
        import torch

        phenotype = {k: torch.tensor([v], dtype=self.model.dtype)
                     for k, v in asdict(self.phenotype).items()}
        with torch.no_grad():
            return self.model(pose_parameters=deltas, phenotype_kwargs=phenotype,
                              pose_parameterization=parameterization)

    def _dense_weights(self) -> np.ndarray:
        idx = self.model.vertex_bone_indices.numpy()
        val = self.model.vertex_bone_weights.numpy()
        dense = np.zeros((len(idx), self.model.bone_count))
        np.add.at(dense, (np.repeat(np.arange(len(idx)), idx.shape[1]), idx.ravel()),
                  val.ravel())
        return dense

    def pose(self, local_rotations: np.ndarray, root_translation: np.ndarray,
             chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Pose the body with Anny itself.

        Args:
            local_rotations: (T, B, 3, 3) each bone's rotation relative to its parent in
                rest-space axes (a root's: relative to the rest pose, i.e. the heading).
            root_translation: (T, 3) metres added to the root's rest position.
        Returns:
            (bone_transforms (T, B, 4, 4), posed_vertices (T, V, 3)), float64 numpy,
            computed by Anny.
        """
        import torch

        local = np.asarray(local_rotations, np.float64)
        bones = self.body.bone_count
        if local.ndim != 4 or local.shape[1:] != (bones, 3, 3):
            raise BodyError(f"local rotations must have shape (T, {bones}, 3, 3); "
                            f"got {local.shape}")
        translation = np.asarray(root_translation, np.float64)
        if translation.shape != (len(local), 3):
            raise BodyError(f"root translation must have shape ({len(local)}, 3); "
                            f"got {translation.shape}")
        # each bone's rotation relative to rest in world axes, parents first (Anny
        # stores parents before children); Anny's world-orient delta of a bone is that
        # rotation times its rest orientation, its head following its parent
        world = np.empty_like(local)
        parents = self.body.bone_parents
        for bone in range(bones):
            p = parents[bone]
            world[:, bone] = local[:, bone] if p < 0 else world[:, p] @ local[:, bone]
        deltas = np.zeros((len(local), bones, 4, 4))
        deltas[..., :3, :3] = world @ self._rest_bone_poses[:, :3, :3]
        deltas[..., 3, 3] = 1
        deltas[:, 0, :3, 3] = self._rest_bone_poses[0, :3, 3] + translation
        transforms, vertices = [], []
        for start in range(0, len(local), chunk):
            out = self._run(torch.as_tensor(deltas[start:start + chunk]), "world-orient")
            rest_inverse = torch.linalg.inv(out["rest_bone_poses"])
            transforms.append((out["bone_poses"] @ rest_inverse).numpy())
            vertices.append(out["vertices"].numpy())
        return np.concatenate(transforms), np.concatenate(vertices)

    def local_rotations(self, motion: Motion) -> np.ndarray:
        """(T, B, 3, 3) rotations of a motion for this rig (unlisted bones: identity)."""
        from scipy.spatial.transform import Rotation

        frames = len(motion.root_heading_deg)
        local = np.tile(np.eye(3), (frames, self.body.bone_count, 1, 1))
        for bone, angles in motion.joint_angles.items():
            if bone not in self.bone_names:
                raise BodyError(f"motion {motion.name!r} moves bone {bone!r}, which the Anny "
                                f"rig ({self.topology}) does not have")
            local[:, self.bone_names.index(bone)] = Rotation.from_euler(
                euler_order(bone), angles, degrees=True).as_matrix()
        heading = Rotation.from_euler(
            "z", np.asarray(motion.root_heading_deg)[:, None], degrees=True).as_matrix()
        for root in np.flatnonzero(self.body.bone_parents < 0):
            local[:, root] = heading @ local[:, root]
        return local

    def foot_vertices(self) -> dict[str, np.ndarray]:
        """Indices of each foot's vertices ({"L": ..., "R": ...}): those mostly skinned
        to the foot or toe bones of that side."""
        dominant = self.body.weight_indices[np.arange(self.body.vertex_count),
                                            self.body.weight_values.argmax(axis=1)]
        feet = {}
        for side in ("L", "R"):
            bones = [i for i, n in enumerate(self.bone_names)
                     if n.endswith(f".{side}") and (n.startswith("foot") or n.startswith("toe"))]
            feet[side] = np.flatnonzero(np.isin(dominant, bones))
        return feet

    def track(self, motion: Motion, frame_numbers: np.ndarray, fps: float,
              posed_vertices: bool = True,
              pose_components: int = DEFAULT_COMPONENTS) -> BodyTrack:
        """The BodyTrack of a motion, standing on the floor (feet planted for walks)."""
        local = self.local_rotations(motion)
        translation = np.asarray(motion.root_offset_m, np.float64).copy()
        translation[:, 2] += self.floor_offset_m
        if motion.plant_feet:
            _, vertices = self.pose(local, translation)
            translation += planted_feet_offsets(vertices, self.foot_vertices())
        transforms, vertices = self.pose(local, translation)
        code = fit_pose_code(transforms, self.body.bone_parents, pose_components)
        return BodyTrack(frame_numbers=frame_numbers, fps=fps, bone_transforms=transforms,
                         posed_vertices=vertices if posed_vertices else None, pose_code=code)


def motion_track(motion: str, frames: int, fps: float, phenotype: AnnyPhenotype | None = None,
                 topology: str = DEFAULT_TOPOLOGY, start_frame: int = 1,
                 posed_vertices: bool = True,
                 pose_components: int = DEFAULT_COMPONENTS) -> tuple[SkinnedBody, BodyTrack]:
    """An Anny body doing a procedural motion (``backend.body.motions.MOTIONS``)."""
    poser = AnnyPoser(phenotype, topology)
    frame_numbers = np.arange(start_frame, start_frame + frames)
    track = poser.track(make_motion(motion, frames, fps), frame_numbers, fps,
                        posed_vertices=posed_vertices, pose_components=pose_components)
    return poser.body, track


def sole_points(vertices: np.ndarray, feet: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """(T, 3) sole point of each foot: the mean of its lowest vertices (within
    ``FOOT_CONTACT_BAND_M`` of its lowest one), per frame."""
    soles = {}
    for side, idx in feet.items():
        foot = vertices[:, idx]                                       # (T, n, 3)
        low = foot[..., 2] <= foot[..., 2].min(axis=1, keepdims=True) + FOOT_CONTACT_BAND_M
        soles[side] = (foot * low[..., None]).sum(axis=1) / low.sum(axis=1)[:, None]
    return soles


def planted_feet_offsets(vertices: np.ndarray, feet: dict[str, np.ndarray]) -> np.ndarray:
    """(T, 3) translations that keep the stance foot still and on the floor.

    The stance foot at a frame is the lower one; between consecutive frames the body
    moves opposite to the stance foot's sole point, so that point stays put, and it
    is lifted or lowered so the lowest foot vertex touches z = 0.
    """
    soles = sole_points(vertices, feet)
    lowest = {side: vertices[:, idx, 2].min(axis=1) for side, idx in feet.items()}
    stance = np.where(lowest["L"] <= lowest["R"], "L", "R")
    offsets = np.zeros((len(vertices), 3))
    for t in range(1, len(vertices)):
        sole = soles[stance[t]]
        offsets[t, :2] = offsets[t - 1, :2] - (sole[t, :2] - sole[t - 1, :2])
    offsets[:, 2] = -np.minimum(lowest["L"], lowest["R"])
    return offsets


def foot_sliding(vertices: np.ndarray, feet: dict[str, np.ndarray], fps: float,
                 contact_height_m: float = 0.005) -> dict[str, float]:
    """How much feet slide while touching the floor.

    A foot is in contact at a frame when its lowest vertex is within
    ``contact_height_m`` of the floor (z = 0). For every pair of consecutive frames
    with that foot in contact at both, its sole point's horizontal speed is a sample.

    Returns:
        {"max_speed_m_s", "mean_speed_m_s", "contact_fraction"} over both feet.
    """
    soles = sole_points(vertices, feet)
    speeds, contacts = [], []
    for side, idx in feet.items():
        touching = vertices[:, idx, 2].min(axis=1) <= contact_height_m
        both = touching[1:] & touching[:-1]
        step = np.linalg.norm(np.diff(soles[side][:, :2], axis=0), axis=1) * fps
        speeds.append(step[both])
        contacts.append(touching.mean())
    speeds = np.concatenate(speeds)
    return {
        "max_speed_m_s": float(speeds.max(initial=0.0)),
        "mean_speed_m_s": float(speeds.mean()) if speeds.size else 0.0,
        "contact_fraction": float(np.mean(contacts)),
    }
