"""Which part of the body each bone moves, from its name: what garment templates need to
know where a sleeve or a trouser leg is, whatever rig the body came from.

Rigs name bones differently (Anny ``upperarm01.L``, SMPL ``left_shoulder``, Mixamo
``mixamorig:LeftArm``, Rigify ``DEF-upper_arm.L``), so the rules below match name
fragments, most specific first. SMPL names bones after the joint that rotates them:
``left_shoulder`` moves the upper arm, ``left_hip`` the thigh, ``left_knee`` the shin.

The frame returned by ``body_frame`` is measured from the skeleton, not assumed: SMPL's
rest space is Y up while Anny's and Blender's are Z up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import BodyError
from .model import SkinnedBody

REGIONS = ("torso", "head", "upper_arm", "lower_arm", "hand", "upper_leg", "lower_leg", "foot")
LIMB_REGIONS = {"arm": ("upper_arm", "lower_arm", "hand"),
                "leg": ("upper_leg", "lower_leg", "foot")}
SIDES = ("left", "right")

# (fragment, region, needs_side): the first rule whose fragment occurs in the lower-case
# name wins. needs_side=True rules only apply to bones with a side (Mixamo's unsided
# ``Hips`` is the pelvis, SMPL's sided ``left_hip`` is the thigh).
_RULES: tuple[tuple[str, str, bool], ...] = (
    ("forearm", "lower_arm", False), ("lowerarm", "lower_arm", False),
    ("elbow", "lower_arm", False),
    ("upperarm", "upper_arm", False), ("upper_arm", "upper_arm", False),
    ("clavicle", "torso", False), ("collar", "torso", False),
    ("shoulder", "upper_arm", False),
    ("finger", "hand", False), ("thumb", "hand", False), ("index", "hand", False),
    ("middle", "hand", False), ("ring", "hand", False), ("pinky", "hand", False),
    ("metacarpal", "hand", False), ("wrist", "hand", False), ("hand", "hand", False),
    ("palm", "hand", False),
    ("upperleg", "upper_leg", False), ("upleg", "upper_leg", False),
    ("thigh", "upper_leg", False), ("hip", "upper_leg", True),
    ("lowerleg", "lower_leg", False), ("shin", "lower_leg", False), ("calf", "lower_leg", False),
    ("knee", "lower_leg", False),
    ("foot", "foot", False), ("toe", "foot", False), ("ankle", "foot", False),
    ("heel", "foot", False),
    ("neck", "head", False), ("head", "head", False), ("jaw", "head", False),
    ("eye", "head", False), ("skull", "head", False),
    ("spine", "torso", False), ("chest", "torso", False), ("pelvis", "torso", False),
    ("hips", "torso", False), ("hip", "torso", False), ("root", "torso", False),
    ("torso", "torso", False), ("abdomen", "torso", False), ("waist", "torso", False),
    ("breast", "torso", False), ("belly", "torso", False),
    ("arm", "upper_arm", False), ("leg", "lower_leg", False),   # Mixamo LeftArm / LeftLeg
)

_SIDE_PATTERNS = {
    "left": re.compile(r"(left|(^|[._\-\s:])l($|[._\-\s:])|[._]l$)"),
    "right": re.compile(r"(right|(^|[._\-\s:])r($|[._\-\s:])|[._]r$)"),
}


@dataclass(frozen=True)
class BoneRegion:
    """The body part one bone moves; ``side`` is None for the spine, pelvis and head."""

    region: str
    side: str | None


def bone_side(name: str) -> str | None:
    """``"left"``, ``"right"`` or None from a bone name (the body's own left)."""
    lower = name.lower()
    for side, pattern in _SIDE_PATTERNS.items():
        if pattern.search(lower):
            return side
    return None


def bone_region(name: str) -> BoneRegion | None:
    """The region of one bone from its name, or None when no rule matches."""
    lower = name.lower().removeprefix("def-").split(":")[-1]
    side = bone_side(lower)
    for fragment, region, needs_side in _RULES:
        if fragment in lower and (side is not None or not needs_side):
            limb = region not in ("torso", "head")
            return BoneRegion(region, side if limb else None)
    return None


def bone_regions(bone_names) -> list[BoneRegion | None]:
    """``bone_region`` of every bone, in order."""
    return [bone_region(name) for name in bone_names]


@dataclass(frozen=True)
class BodyFrame:
    """Landmarks of a body in its rest space, measured from the skeleton.

    Attributes:
        up: (3,) unit vector from the hips to the neck.
        lateral: (3,) unit vector towards the body's left, orthogonal to ``up``.
        front: (3,) unit vector the body faces (``cross(lateral, up)`` flipped to the
            side of the toes).
        hip_centre: (3,) midpoint of the two hip joints (tops of the thighs).
        neck: (3,) base of the neck (head of the first head-region bone).
        shoulders, hips, wrists, ankles: ``{"left"|"right": (3,)}`` joint positions:
            the head of the first bone of the upper arm, upper leg, hand and foot.
    All positions are metres in the body's rest space.
    """

    up: np.ndarray
    lateral: np.ndarray
    front: np.ndarray
    hip_centre: np.ndarray
    neck: np.ndarray
    shoulders: dict
    hips: dict
    wrists: dict
    ankles: dict

    def height(self, points: np.ndarray) -> np.ndarray:
        """Signed height of ``points`` (N, 3) above the hip joints along ``up``, metres."""
        return (np.asarray(points) - self.hip_centre) @ self.up

    def limb_parameter(self, points: np.ndarray, limb: str, side: str) -> np.ndarray:
        """Position of ``points`` along a limb: 0 at the shoulder/hip joint, 1 at the
        wrist/ankle (projection on the line between them)."""
        start, end = ((self.shoulders, self.wrists) if limb == "arm" else (self.hips, self.ankles))
        axis = end[side] - start[side]
        return (np.asarray(points) - start[side]) @ axis / float(axis @ axis)


def _depth(parents: np.ndarray) -> np.ndarray:
    depth = np.zeros(len(parents), int)
    for bone in range(len(parents)):
        node, d = bone, 0
        while parents[node] >= 0:
            node, d = parents[node], d + 1
        depth[bone] = d
    return depth


def body_frame(body: SkinnedBody, regions: list[BoneRegion | None] | None = None) -> BodyFrame:
    """Measure ``BodyFrame`` from the bone heads; names the regions it cannot find."""
    regions = bone_regions(body.bone_names) if regions is None else regions
    heads = body.rest_bone_matrices[:, :3, 3].astype(np.float64)
    depth = _depth(body.bone_parents)

    def first(region: str, side: str | None) -> np.ndarray | None:
        bones = [b for b, r in enumerate(regions) if r is not None
                 and r.region == region and r.side == side]
        return heads[min(bones, key=lambda b: depth[b])] if bones else None

    joints, missing = {}, []
    for key, region, side in [(f"{r}_{s}", r, s) for r in ("upper_arm", "hand", "upper_leg", "foot")
                              for s in SIDES] + [("head", "head", None)]:
        joints[key] = first(region, side)
        if joints[key] is None:
            missing.append(f"{side + ' ' if side else ''}{region.replace('_', ' ')}")
    if missing:
        raise BodyError(
            f"body {body.source!r}: no bone recognised as the {', '.join(missing)} among "
            f"{len(body.bone_names)} bones (e.g. {', '.join(body.bone_names[:6])})",
            hint="Name the deform bones like a common rig (Anny, SMPL, Mixamo, Rigify), "
                 "or give a template mesh instead of a garment type.")
    hip_centre = (joints["upper_leg_left"] + joints["upper_leg_right"]) / 2
    up = _unit(joints["head"] - hip_centre)
    lateral = joints["upper_leg_left"] - joints["upper_leg_right"]
    lateral = _unit(lateral - (lateral @ up) * up)
    front = np.cross(lateral, up)
    toes = (joints["foot_left"] + joints["foot_right"]) / 2
    # The feet's vertices reach further forward than backward from the ankle joints.
    foot_bones = [b for b, r in enumerate(regions) if r is not None and r.region == "foot"]
    weights = _region_weight(body, foot_bones)
    foot_points = body.rest_vertices[weights > 0.5]
    if len(foot_points) and float(((foot_points - toes) @ front).mean()) < 0:
        front = -front
    return BodyFrame(
        up=up, lateral=lateral, front=front, hip_centre=hip_centre, neck=joints["head"],
        shoulders={s: joints[f"upper_arm_{s}"] for s in SIDES},
        hips={s: joints[f"upper_leg_{s}"] for s in SIDES},
        wrists={s: joints[f"hand_{s}"] for s in SIDES},
        ankles={s: joints[f"foot_{s}"] for s in SIDES})


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    if norm < 1e-9:
        raise BodyError("body skeleton is degenerate: hip and neck joints coincide")
    return v / norm


def _region_weight(body: SkinnedBody, bones) -> np.ndarray:
    """(V,) total skinning weight each vertex gets from ``bones``."""
    member = np.zeros(body.bone_count, bool)
    member[list(bones)] = True
    return (body.weight_values * member[body.weight_indices]).sum(axis=1)


def vertex_regions(body: SkinnedBody, regions: list[BoneRegion | None] | None = None
                   ) -> tuple[np.ndarray, list[BoneRegion | None]]:
    """The dominant region of each vertex.

    Returns ``(labels, keys)``: labels (V,) int index into ``keys`` (the distinct
    ``BoneRegion`` values, None included for unrecognised bones), the key whose bones
    give the vertex the largest total weight.
    """
    regions = bone_regions(body.bone_names) if regions is None else regions
    keys = sorted(set(regions), key=lambda r: (r is None, str(r)))
    totals = np.stack([_region_weight(body, [b for b, r in enumerate(regions) if r == key])
                       for key in keys], axis=1)
    return totals.argmax(axis=1), keys
