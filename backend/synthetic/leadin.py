"""The simulated body: a settling lead-in from the rest pose, then the captured motion.

Cloth is built around the body's rest pose, so the simulation starts there and needs
frames to fall into place before the footage begins. Frames 1..S are that lead-in:
the body stands in its rest pose (where the first frame of the motion has its root,
on the floor) for the first ``hold_fraction`` of it, then eases into the motion's
first pose (quintic ease-in-out of every joint's rotation, so velocity and
acceleration are zero at both ends). Frames S+1..S+N are the motion exactly as
``backend.body.anny_body.AnnyPoser.track`` (and so ``motion_track``) poses it, feet
planted for walks. During the lead-in the body is kept on the floor the way the motion
keeps it (its lowest foot vertex at z = 0) when the motion plants its feet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..body.anny_body import AnnyPoser, planted_feet_offsets
from ..body.model import BodyTrack
from ..body.motions import Motion
from ..body.pose_code import DEFAULT_COMPONENTS, fit_pose_code
from .errors import SynthError


@dataclass(frozen=True)
class LeadIn:
    """How the simulated body gets from its rest pose into the motion.

    Attributes:
        frames: lead-in frames S before the motion (>= 1); frame 1 is the rest pose.
        hold_fraction: share of the lead-in spent standing still in the rest pose
            before easing into the motion.
    """

    frames: int
    hold_fraction: float = 0.3

    def __post_init__(self):
        if int(self.frames) != self.frames or self.frames < 1:
            raise SynthError(f"the settle lead-in needs at least 1 frame; got {self.frames}")
        if not 0.0 <= self.hold_fraction < 1.0:
            raise SynthError(f"hold_fraction must be in [0, 1); got {self.hold_fraction}")

    def weights(self) -> np.ndarray:
        """(S,) blend weight of the motion's first pose at lead-in frames 1..S: 0 while
        holding the rest pose, easing towards 1 (reached at frame S + 1)."""
        hold = int(round(self.hold_fraction * self.frames))
        k = np.arange(self.frames, dtype=np.float64)            # frame number - 1
        u = np.clip((k - hold) / (self.frames - hold), 0.0, 1.0)
        return u**3 * (u * (6 * u - 15) + 10)                   # quintic smootherstep


def simulation_track(poser: AnnyPoser, motion: Motion, fps: float, lead_in: LeadIn,
                     pose_components: int = DEFAULT_COMPONENTS) -> BodyTrack:
    """The body track of a simulation: ``lead_in.frames`` settle frames, then the motion.

    Returns a BodyTrack with frame numbers 1..S+N, posed vertices, and a pose code
    fitted on all its frames.
    """
    settle = lead_in.frames
    frames = len(motion.root_heading_deg)
    motion_frames = np.arange(settle + 1, settle + frames + 1)
    track = poser.track(motion, motion_frames, fps, posed_vertices=True,
                        pose_components=pose_components)

    # the motion's first pose and root translation, as track() computes them
    from scipy.spatial.transform import Rotation

    first = poser.local_rotations(motion)[0]                           # (B, 3, 3)
    start = np.asarray(motion.root_offset_m[0], np.float64).copy()
    start[2] += poser.floor_offset_m
    feet = poser.foot_vertices() if motion.plant_feet else None
    if feet is not None:
        _, v0 = poser.pose(first[None], start[None])
        start += planted_feet_offsets(v0, feet)[0]
    w = lead_in.weights()
    rotvec = Rotation.from_matrix(first).as_rotvec()                    # (B, 3)
    local = Rotation.from_rotvec((w[:, None, None] * rotvec[None]).reshape(-1, 3)
                                 ).as_matrix().reshape(settle, -1, 3, 3)
    rest_root = np.array([start[0], start[1], poser.floor_offset_m])
    translation = (1 - w)[:, None] * rest_root + w[:, None] * start
    transforms, vertices = poser.pose(local, translation)
    if feet is not None:
        # keep the lowest foot on the floor, as the motion does
        lowest = np.minimum(vertices[:, feet["L"], 2].min(axis=1),
                            vertices[:, feet["R"], 2].min(axis=1))
        lift = np.where(w > 0, -lowest, 0.0)
        transforms[:, :, 2, 3] += lift[:, None]
        vertices[..., 2] += lift[:, None]
    all_transforms = np.concatenate([transforms, track.bone_transforms.astype(np.float64)])
    all_vertices = np.concatenate([vertices, track.posed_vertices.astype(np.float64)])
    code = fit_pose_code(all_transforms, poser.body.bone_parents, pose_components)
    return BodyTrack(frame_numbers=np.arange(1, settle + frames + 1), fps=fps,
                     bone_transforms=all_transforms, posed_vertices=all_vertices,
                     pose_code=code)
