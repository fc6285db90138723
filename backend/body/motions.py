"""Procedural body motions for demos and tests, each a smooth function of time.

A motion gives, per frame, joint rotations of Anny's rig (by bone name) and the root's
heading and offset. Rotations are relative to the parent bone, in rest-space axes
(Z up, front -Y, +X the body's left), as extrinsic x-y-z Euler angles in degrees:
x bends forward/back (hip flexion is negative x, knee flexion positive x), y tilts
sideways, z twists about the vertical; shoulders use y-x-z order (``euler_order``) so
an arm can rise past the horizontal. ``JOINT_LIMITS`` holds natural ranges in the
same convention; every motion stays inside them, and tests check it on the posed
track (not on these numbers). Walks get their forward translation from the stance
foot (``backend.body.anny_body`` plants it), so feet do not slide.

Everything here is plain numpy; ``anny_body.motion_track`` turns a motion into a track.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import BodyError

Range = tuple[float, float]


@dataclass(frozen=True)
class JointLimit:
    """A joint's natural range: Euler angles in ``order`` (extrinsic, rest-space axes),
    each within its (low, high) range in degrees, listed in the same order."""

    order: str
    ranges: tuple[Range, Range, Range]

    def mirrored(self) -> JointLimit:
        # reflecting x -> -x keeps x rotations and negates y and z rotations
        flipped = tuple(r if axis == "x" else (-r[1], -r[0])
                        for axis, r in zip(self.order, self.ranges, strict=True))
        return JointLimit(self.order, flipped)


_LEFT_LIMITS = {
    "upperleg01": JointLimit("xyz", ((-120, 30), (-45, 30), (-45, 45))),   # hip
    "lowerleg01": JointLimit("xyz", ((0, 145), (-5, 5), (-10, 10))),       # knee: a hinge
    "foot": JointLimit("xyz", ((-20, 50), (-20, 20), (-30, 30))),           # ankle
    "clavicle": JointLimit("xyz", ((-20, 20), (-20, 20), (-20, 20))),
    # shoulder: sideways raise (y) first, so it may pass 90 degrees
    "upperarm01": JointLimit("yxz", ((-150, 45), (-90, 60), (-90, 90))),
    "lowerarm01": JointLimit("xyz", ((-150, 0), (-10, 10), (-90, 90))),    # elbow
}
_CENTRE_LIMITS = {
    **{f"spine0{i}": JointLimit("xyz", ((-20, 20), (-15, 15), (-15, 15))) for i in range(1, 6)},
    "neck01": JointLimit("xyz", ((-40, 40), (-30, 30), (-45, 45))),
    "head": JointLimit("xyz", ((-30, 30), (-20, 20), (-30, 30))),
}
JOINT_LIMITS: dict[str, JointLimit] = {
    **_CENTRE_LIMITS,
    **{f"{bone}.L": lim for bone, lim in _LEFT_LIMITS.items()},
    **{f"{bone}.R": lim.mirrored() for bone, lim in _LEFT_LIMITS.items()},
}
"""Natural joint ranges (degrees; see the module docstring for axes and signs)."""


def euler_order(bone: str) -> str:
    """The Euler order a motion's angles for ``bone`` are given in ("xyz" by default)."""
    limit = JOINT_LIMITS.get(bone)
    return limit.order if limit else "xyz"


@dataclass(frozen=True)
class Motion:
    """Per-frame joint angles of a procedural motion.

    Attributes:
        name: the motion's name (a key of ``MOTIONS``).
        joint_angles: bone name -> (T, 3) float64 extrinsic Euler angles in the
            bone's ``euler_order`` (x-y-z unless stated), degrees, relative to the parent
            in rest-space axes. Bones not listed stay in their rest orientation.
        root_heading_deg: (T,) rotation of the whole body about the vertical (Z)
            axis, degrees, counter-clockwise seen from above.
        root_offset_m: (T, 3) translation added to the root, metres (sway, bobbing).
        plant_feet: translate the body so the stance foot stays where it landed and
            the lowest foot touches the floor; otherwise only the rest pose is put on
            the floor.
    """

    name: str
    joint_angles: dict[str, np.ndarray]
    root_heading_deg: np.ndarray
    root_offset_m: np.ndarray
    plant_feet: bool = True


def _smooth_ramp(t: np.ndarray, start: float, end: float) -> np.ndarray:
    """0 before ``start``, 1 after ``end``, a smoothstep in between."""
    x = np.clip((t - start) / max(end - start, 1e-9), 0, 1)
    return x * x * (3 - 2 * x)


def _angles(x=0.0, y=0.0, z=0.0, like: np.ndarray | None = None) -> np.ndarray:
    cols = [np.broadcast_to(np.asarray(c, np.float64), like.shape) for c in (x, y, z)]
    return np.stack(cols, axis=-1)


def walk(t: np.ndarray) -> Motion:
    """A steady walk: 0.9 strides (1.8 steps) per second, arms swinging opposite.

    Starts from standing: the swing amplitude ramps up over the first half second.
    The height above the floor and the forward travel come from the feet (planted).
    """
    amp = _smooth_ramp(t, 0.0, 0.5)
    phase = 2 * np.pi * 0.9 * t
    angles = {}
    for side, offset, sign in (("L", 0.0, 1.0), ("R", np.pi, -1.0)):
        p = phase + offset
        # the leg swings forward while cos(p) > 0: hip flexes, knee bends to clear the
        # floor; in stance the knee is nearly straight and the ankle keeps the foot flat
        hip = amp * (-12 - 18 * np.sin(p))                   # -30 (forward) .. +6 (back)
        knee = amp * (5 + 50 * np.clip(np.cos(p), 0, None) ** 2)
        stance = np.clip(0.5 - 1.5 * np.cos(p), 0, 1)
        ankle = stance * -(hip + knee) + (1 - stance) * amp * -5
        angles[f"upperleg01.{side}"] = _angles(hip, like=t)
        angles[f"lowerleg01.{side}"] = _angles(knee, like=t)
        angles[f"foot.{side}"] = _angles(ankle, like=t)
        # arms swing opposite to the leg on their side, elbows slightly bent
        angles[f"upperarm01.{side}"] = _angles(sign * 8.0, amp * 16 * np.sin(p), like=t)
        angles[f"lowerarm01.{side}"] = _angles(-15 - amp * 10 * (1 + np.sin(p)) / 2, like=t)
    twist = amp * 4 * np.sin(phase)
    for i in (1, 3):
        angles[f"spine0{i}"] = _angles(0.0, 0.0, twist, like=t)
    return Motion("walk", angles, np.zeros_like(t), np.zeros(t.shape + (3,)))


def turn(t: np.ndarray) -> Motion:
    """Turn in place by 180 degrees over three seconds, stepping round on alternate feet."""
    duration = 3.0
    heading = 180.0 * _smooth_ramp(t, 0.3, 0.3 + duration)
    step = np.sin(2 * np.pi * 1.2 * t) * (_smooth_ramp(t, 0.3, 0.8)
                                          - _smooth_ramp(t, duration - 0.2, duration + 0.3))
    angles = {}
    for side, sign in (("L", 1.0), ("R", -1.0)):
        lift = np.clip(sign * step, 0, None)
        angles[f"upperleg01.{side}"] = _angles(-6 - 24 * lift, like=t)
        angles[f"lowerleg01.{side}"] = _angles(10 + 40 * lift, like=t)
        angles[f"foot.{side}"] = _angles(-4 - 16 * lift, like=t)
        angles[f"upperarm01.{side}"] = _angles(sign * 6.0, like=t)
    angles["spine01"] = _angles(0.0, 0.0, 8 * np.sin(np.deg2rad(heading) * 2), like=t)
    return Motion("turn", angles, heading, np.zeros(t.shape + (3,)))


def arm_raise(t: np.ndarray) -> Motion:
    """Both arms rise sideways to above shoulder height and come back, every 4 s."""
    lift = (1 - np.cos(2 * np.pi * t / 4.0)) / 2          # 0 .. 1 .. 0
    angles = {}
    for side, sign in (("L", 1.0), ("R", -1.0)):
        angles[f"upperarm01.{side}"] = _angles(-sign * 100 * lift, -10 * lift, like=t)
        angles[f"lowerarm01.{side}"] = _angles(-10 - 25 * lift, like=t)
        angles[f"clavicle.{side}"] = _angles(0.0, -sign * 12 * lift, like=t)
    return Motion("arm_raise", angles, np.zeros_like(t), np.zeros(t.shape + (3,)))


def sway(t: np.ndarray) -> Motion:
    """A side-to-side dance: hips sway, the spine bends against them, arms wave."""
    beat = 2 * np.pi * 0.5 * t                               # one sway every 2 s
    amp = _smooth_ramp(t, 0.0, 0.5)
    side = amp * np.sin(beat)
    bounce = amp * (1 - np.cos(2 * beat)) / 2
    angles = {}
    for i in range(1, 6):
        angles[f"spine0{i}"] = _angles(0.0, -3 * side, 2 * side, like=t)
    angles["neck01"] = _angles(0.0, 6 * side, like=t)
    for name, sign in (("L", 1.0), ("R", -1.0)):
        # legs lean with the hips (atan(6 cm / 85 cm) = 4 degrees) so the feet stay put
        angles[f"upperleg01.{name}"] = _angles(-10 * bounce, 4 * side, like=t)
        angles[f"lowerleg01.{name}"] = _angles(20 * bounce, like=t)
        angles[f"foot.{name}"] = _angles(-10 * bounce, like=t)
        wave = amp * (1 + np.sin(beat + (0 if sign > 0 else np.pi))) / 2
        angles[f"upperarm01.{name}"] = _angles(-sign * 50 * wave, -30 * wave, like=t)
        angles[f"lowerarm01.{name}"] = _angles(-20 - 60 * wave, like=t)
    offset = _angles(0.06 * side, 0.0, 0.0, like=t)
    return Motion("sway", angles, np.zeros_like(t), offset)


MOTIONS: dict[str, Callable[[np.ndarray], Motion]] = {
    "walk": walk, "turn": turn, "arm_raise": arm_raise, "sway": sway,
}
"""Procedural motions by name: each maps times (T,) in seconds to a Motion."""


def make_motion(name: str, frames: int, fps: float) -> Motion:
    """The motion ``name`` sampled at ``frames`` frames, ``fps`` frames per second."""
    if name not in MOTIONS:
        raise BodyError(f"unknown motion {name!r}; choose one of {', '.join(MOTIONS)}")
    if frames < 1:
        raise BodyError(f"a motion needs at least 1 frame; got {frames}")
    if not fps > 0:
        raise BodyError(f"fps must be > 0; got {fps}")
    return MOTIONS[name](np.arange(frames) / fps)


def limit_violations(local_rotations: np.ndarray, bone_names: tuple[str, ...],
                     tolerance_deg: float = 0.5) -> list[str]:
    """Joints whose rotation leaves ``JOINT_LIMITS``, one line each (empty: all fine).

    Args:
        local_rotations: (T, B, 3, 3) rotations relative to the parent in rest-space
            axes (``backend.body.pose_code.local_rotations``).
        bone_names: (B,) names; bones without a limit are not checked.
    """
    from scipy.spatial.transform import Rotation

    problems = []
    for bone, limit in JOINT_LIMITS.items():
        if bone not in bone_names:
            continue
        rot = local_rotations[:, bone_names.index(bone)]
        angles = Rotation.from_matrix(rot).as_euler(limit.order, degrees=True)
        for column, (axis, (lo, hi)) in enumerate(zip(limit.order, limit.ranges, strict=True)):
            col = angles[:, column]
            if col.min() < lo - tolerance_deg or col.max() > hi + tolerance_deg:
                problems.append(f"{bone}: {axis} rotation spans {col.min():.1f}..{col.max():.1f}"
                                f" deg, limit {lo}..{hi}")
    return problems
