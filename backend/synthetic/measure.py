"""The rest body as the pattern generator sees it: landmarks, body parts and girths.

The garment frame is measured from the skeleton (``backend.body.regions.body_frame``):
x = the body's left (``lateral``), y = its back (``-front``), z = up, origin at the
midpoint of the hip joints; metres. For Anny (rest space: Z up, facing -Y) this is the
rest space shifted so the hip joints sit at z = 0.

Girths are perimeters of the convex hull of a horizontal cross-section of the torso
(what a tape measure reads), taken where they are smallest (waist) or largest (hips,
chest) in a height range relative to the torso length.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ..body.model import SkinnedBody
from ..body.regions import SIDES, body_frame, bone_regions, vertex_regions
from .errors import SynthError

SIDE_SIGN = {"left": 1.0, "right": -1.0}
"""Sign of x on each side of the body in the garment frame."""


@dataclass(frozen=True, eq=False)
class BodyShape:
    """A rest body in the garment frame (see the module docstring).

    Attributes:
        origin: (3,) the frame's origin in the body's rest space.
        axes: (3, 3) rows x, y, z of the frame in rest-space coordinates.
        vertices: (V, 3) float64 rest vertices in the garment frame.
        faces: (F, 3) int64 body triangles (counter-clockwise seen from outside).
        points: (N, 3) float64 the vertices followed by points sampled on the faces
            about ``SAMPLE_SPACING_M`` apart: what garment envelopes are fitted to, so
            that a coarse body mesh (large faces) is enclosed as well as a fine one.
        region: (N,) str body part of each point (of its nearest face corner): "torso",
            "head", "upper_arm", "lower_arm", "hand", "upper_leg", "lower_leg", "foot",
            or "" if unknown.
        side: (N,) str "left", "right" or "" (spine, head).
        neck: (3,) base of the neck; shoulders, elbows, wrists, hips, knees, ankles:
            {"left"|"right": (3,)} joint positions (heads of the first bone of the
            upper arm, lower arm, hand, upper leg, lower leg, foot).
    """

    origin: np.ndarray
    axes: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    points: np.ndarray
    region: np.ndarray
    side: np.ndarray
    neck: np.ndarray
    shoulders: dict
    elbows: dict
    wrists: dict
    hips: dict
    knees: dict
    ankles: dict

    def to_rest(self, points: np.ndarray) -> np.ndarray:
        """Garment-frame points -> the body's rest space."""
        return np.asarray(points) @ self.axes + self.origin

    def part(self, *regions: str, side: str | None = None) -> np.ndarray:
        """(N,) bool: ``points`` in any of ``regions`` (and on ``side`` when given)."""
        mask = np.isin(self.region, regions)
        if side is not None:
            mask &= self.side == side
        return mask

    @property
    def torso_length(self) -> float:
        """Height of the neck base above the hip joints, metres."""
        return float(self.neck[2])

    @property
    def leg_length(self) -> float:
        """Mean drop from the hip joints to the ankle joints, metres."""
        return float(np.mean([-self.ankles[s][2] for s in SIDES]))

    @property
    def floor_z(self) -> float:
        """Height of the lowest body vertex (the soles) in the garment frame."""
        return float(self.vertices[:, 2].min())

    def arm_axis(self, side: str) -> np.ndarray:
        """(3, 3) the arm's axis as three points: shoulder, elbow, wrist.

        Measured from the vertices rather than taken from the bones (rigs put the
        first "shoulder" bone anywhere between the clavicle and the arm): the upper
        arm's axis is the principal direction of the middle of the upper arm's
        vertices through their centroid, the forearm's likewise; the three points are
        the shoulder, elbow and wrist joints projected onto those lines.
        """
        shoulder, elbow, wrist = self.shoulders[side], self.elbows[side], self.wrists[side]
        upper = _limb_line(self.points[self.part("upper_arm", side=side)], shoulder, elbow,
                           (0.45, 0.95))
        lower = _limb_line(self.points[self.part("lower_arm", side=side)], elbow, wrist,
                           (0.1, 0.9))
        return np.stack([_project(shoulder, *upper), _project(elbow, *upper),
                         _project(wrist, *lower)])

    def girth(self, z: float, mask: np.ndarray, band: float = 0.01) -> float:
        """Perimeter of the convex hull of the ``mask`` points within ``band`` of
        height ``z`` (0 when fewer than 3)."""
        from scipy.spatial import ConvexHull, QhullError

        sel = mask & (np.abs(self.points[:, 2] - z) <= band)
        if sel.sum() < 3:
            return 0.0
        try:
            hull = ConvexHull(self.points[sel, :2])
        except QhullError:
            return 0.0
        ring = self.points[sel, :2][hull.vertices]
        return float(np.linalg.norm(ring - np.roll(ring, -1, axis=0), axis=1).sum())


SAMPLE_SPACING_M = 0.012
"""Spacing of the points sampled on the body's faces (``BodyShape.points``)."""


def surface_samples(vertices: np.ndarray, faces: np.ndarray, spacing: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Points on each triangle on a barycentric grid about ``spacing`` apart (corners
    excluded: they are the vertices). Returns (points (N, 3), nearest corner vertex
    index (N,))."""
    tri = vertices[faces]
    longest = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).max(axis=1)
    levels = np.clip(np.ceil(longest / spacing).astype(int), 1, 64)
    points, corners = [], []
    for n in np.unique(levels):
        if n < 2:
            continue
        i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        keep = (i + j <= n) & ~(((i == n) | (j == n)) | ((i == 0) & (j == 0)))
        bary = np.stack([n - i[keep] - j[keep], i[keep], j[keep]], axis=1) / n   # (s, 3)
        sel = levels == n
        points.append(np.einsum("sk,fkd->fsd", bary, tri[sel]).reshape(-1, 3))
        corners.append(faces[sel][:, bary.argmax(axis=1)].reshape(-1))
    if not points:
        return np.zeros((0, 3)), np.zeros(0, np.int64)
    return np.concatenate(points), np.concatenate(corners)


def _limb_line(points: np.ndarray, a: np.ndarray, b: np.ndarray,
               span: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(centroid, unit direction from a towards b) of the ``points`` whose projection
    on the joint segment a-b falls within ``span`` (fractions of it)."""
    axis = b - a
    t = (points - a) @ axis / float(axis @ axis)
    sel = points[(t >= span[0]) & (t <= span[1])]
    if len(sel) < 6:
        return a, axis / np.linalg.norm(axis)
    centre = sel.mean(axis=0)
    direction = np.linalg.svd(sel - centre, full_matrices=False)[2][0]
    if direction @ axis < 0:
        direction = -direction
    return centre, direction


def _project(p: np.ndarray, centre: np.ndarray, direction: np.ndarray) -> np.ndarray:
    return centre + ((p - centre) @ direction) * direction


@dataclass(frozen=True)
class Measurements:
    """Tape measurements of a body, metres (heights in the garment frame: above the
    hip joints)."""

    height: float
    torso_length: float
    leg_length: float
    arm_length: float
    waist_girth: float
    waist_z: float
    hip_girth: float
    hip_z: float
    chest_girth: float
    chest_z: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in self.__dict__.items()}


@functools.lru_cache(maxsize=4)
def body_shape(body: SkinnedBody) -> BodyShape:
    """Measure ``body`` (its rest pose) into a BodyShape (cached per body object: one
    body is often dressed in several garments)."""
    regions = bone_regions(body.bone_names)
    frame = body_frame(body, regions)
    axes = np.stack([frame.lateral, -frame.front, np.cross(frame.lateral, -frame.front)])
    if np.dot(axes[2], frame.up) < 0.99:
        raise SynthError(f"body {body.source!r}: its skeleton's up and lateral directions "
                         "are not orthogonal enough to dress it")
    origin = frame.hip_centre

    def local(p):
        return (np.asarray(p, np.float64) - origin) @ axes.T

    labels, keys = vertex_regions(body, regions)
    region = np.array([k.region if k is not None else "" for k in keys])[labels]
    side = np.array([k.side if k is not None and k.side else "" for k in keys])[labels]
    vertices = local(body.rest_vertices)
    faces = body.faces.astype(np.int64)
    samples, nearest_corner = surface_samples(vertices, faces, SAMPLE_SPACING_M)
    heads = body.rest_bone_matrices[:, :3, 3].astype(np.float64)

    def joint(region_name: str, s: str) -> np.ndarray:
        bones = [b for b, r in enumerate(regions)
                 if r is not None and r.region == region_name and r.side == s]
        if not bones:
            raise SynthError(f"body {body.source!r}: no {s} {region_name.replace('_', ' ')} "
                             "bone to measure the garment from")
        return local(heads[min(bones)])

    return BodyShape(
        origin=origin, axes=axes, vertices=vertices, faces=faces,
        points=np.concatenate([vertices, samples]),
        region=np.concatenate([region, region[nearest_corner]]),
        side=np.concatenate([side, side[nearest_corner]]),
        neck=local(frame.neck),
        shoulders={s: local(frame.shoulders[s]) for s in SIDES},
        elbows={s: joint("lower_arm", s) for s in SIDES},
        wrists={s: local(frame.wrists[s]) for s in SIDES},
        hips={s: local(frame.hips[s]) for s in SIDES},
        knees={s: joint("lower_leg", s) for s in SIDES},
        ankles={s: local(frame.ankles[s]) for s in SIDES},
    )


@functools.lru_cache(maxsize=4)
def measure(shape: BodyShape) -> Measurements:
    """Height, lengths and girths of a BodyShape (see the module docstring; cached per
    shape)."""
    torso = shape.part("torso")
    hips = shape.part("torso", "upper_leg")
    t = shape.torso_length

    def scan(lo: float, hi: float, mask: np.ndarray, pick) -> tuple[float, float]:
        heights = np.linspace(lo, hi, max(2, int(math.ceil((hi - lo) / 0.01)) + 1))
        girths = np.array([shape.girth(z, mask) for z in heights])
        valid = girths > 0
        if not valid.any():
            raise SynthError(f"cannot measure a girth between heights {lo:.2f} and {hi:.2f} m")
        k = pick(np.where(valid, girths, np.nan))
        return float(girths[k]), float(heights[k])

    waist, waist_z = scan(0.25 * t, 0.65 * t, torso, np.nanargmin)
    hip, hip_z = scan(-0.2 * t, 0.2 * t, hips, np.nanargmax)
    chest, chest_z = scan(0.6 * t, 0.85 * t, torso, np.nanargmax)
    arm = float(np.mean([np.linalg.norm(np.diff(shape.arm_axis(s), axis=0), axis=1).sum()
                         for s in SIDES]))
    return Measurements(
        height=float(shape.vertices[:, 2].max() - shape.vertices[:, 2].min()),
        torso_length=t, leg_length=shape.leg_length, arm_length=arm,
        waist_girth=waist, waist_z=waist_z, hip_girth=hip, hip_z=hip_z,
        chest_girth=chest, chest_z=chest_z)
