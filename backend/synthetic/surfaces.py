"""Smooth tubes around body parts, sampled on a grid; garment panels are cut from them.

A ``GridSurface`` is a tube with ``nA`` meridians around it: meridian ``i`` sits at the
angle ``alpha = 2 pi i / nA`` (periodic) and is sampled at equal arc-length steps
``dm`` from its start, so the parameter ``m = j dm`` is the distance along the
meridian in metres. Positions between samples are bilinear in (alpha, m). A panel is
a region of the (alpha, m) plane (``backend.synthetic.panels``).

The tubes enclose the body with a clearance: each cross-section is the convex hull of
the body points near it, dilated by the ease, so cloth spans concave parts (between
the legs, under the bust) instead of following them. Three builders:

- ``stack_surface``: horizontal slices stacked along Z, each around its own centre
  (skirts around the hips and legs; a trouser leg around one leg and half the pelvis).
- ``bottle_surface``: per-angle profiles in half-planes through a vertical axis,
  climbing from the hem over the shoulders towards the neck (tops and dresses).
- ``sleeve_surface``: a ruled band from an armhole curve to a ring around the arm,
  continued as a round tube along the arm.

Everything here works in the garment frame of ``backend.synthetic.measure``: metres,
x = the body's left, y = the body's back, z = up, origin between the hip joints.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np

from .errors import SynthError

TWO_PI = 2.0 * math.pi


@dataclass(frozen=True, eq=False)
class GridSurface:
    """A tube sampled on an (angle, arc length) grid.

    Attributes:
        points: (nA, nM, 3) float64 positions in the garment frame, metres; meridian
            ``i`` at angle ``2 pi i / nA``, sample ``j`` at arc length ``j * dm`` from
            the meridian's start (samples past a meridian's natural end continue
            it in a straight line).
        dm: arc-length step along the meridians, metres.
        lengths: (nA,) natural length of each meridian, metres.
        name: for messages (``"torso"``, ``"leg.L"``...).
    """

    points: np.ndarray
    dm: float
    lengths: np.ndarray
    name: str

    @property
    def n_angles(self) -> int:
        return self.points.shape[0]

    @property
    def n_m(self) -> int:
        return self.points.shape[1]

    @property
    def m_max(self) -> float:
        return (self.n_m - 1) * self.dm

    def at(self, alpha: np.ndarray, m: np.ndarray) -> np.ndarray:
        """(N, 3) positions at parameters ``alpha`` (radians, any real: periodic) and
        ``m`` (metres, clamped to the grid)."""
        alpha = np.asarray(alpha, np.float64)
        m = np.asarray(m, np.float64)
        fi = np.mod(alpha, TWO_PI) / TWO_PI * self.n_angles
        i0 = np.floor(fi).astype(np.int64)
        t = (fi - i0)[..., None]
        i0 %= self.n_angles
        i1 = (i0 + 1) % self.n_angles
        fj = np.clip(m / self.dm, 0.0, self.n_m - 1 - 1e-9)
        j0 = np.floor(fj).astype(np.int64)
        s = (fj - j0)[..., None]
        g = self.points
        return ((1 - t) * ((1 - s) * g[i0, j0] + s * g[i0, j0 + 1])
                + t * ((1 - s) * g[i1, j0] + s * g[i1, j0 + 1]))

    def angles(self) -> np.ndarray:
        """(nA,) the meridians' angles, radians."""
        return np.arange(self.n_angles) * (TWO_PI / self.n_angles)


def resample_meridians(polylines: list[np.ndarray], dm: float,
                       m_max: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Resample each (K_i, 3) polyline at arc lengths 0, dm, 2 dm, ...

    Returns:
        (points (nA, nM, 3), lengths (nA,)): all meridians share nM samples, enough
        for the longest one (or ``m_max``); shorter ones continue in a straight line
        along their last segment.
    """
    lengths = []
    cumulative = []
    for line in polylines:
        step = np.linalg.norm(np.diff(line, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(step)])
        cumulative.append(s)
        lengths.append(s[-1])
    lengths = np.asarray(lengths)
    top = float(lengths.max()) if m_max is None else m_max
    n_m = int(math.ceil(top / dm)) + 2
    m = np.arange(n_m) * dm
    out = np.empty((len(polylines), n_m, 3))
    for i, (line, s) in enumerate(zip(polylines, cumulative, strict=True)):
        keep = np.concatenate([[True], np.diff(s) > 1e-12])
        line, s = line[keep], s[keep]
        for c in range(3):
            out[i, :, c] = np.interp(m, s, line[:, c])
        beyond = m > s[-1]
        if beyond.any():
            direction = line[-1] - line[-2]
            direction /= max(np.linalg.norm(direction), 1e-12)
            out[i, beyond] = line[-1] + (m[beyond] - s[-1])[:, None] * direction
    return out, lengths


# ---------------------------------------------------------------- envelopes


def dilate(points: np.ndarray, radius: float, directions: int = 16) -> np.ndarray:
    """(N * directions, 2) copies of 2-D ``points`` moved by ``radius`` in evenly spread
    directions: the convex hull of the result is the hull of ``points`` offset by about
    ``radius`` (exactly, up to the polygonal rounding of its corners)."""
    angle = np.arange(directions) * (TWO_PI / directions)
    ring = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return (points[:, None, :] + ring[None]).reshape(-1, 2)


def dilated_hull(points: np.ndarray, radius: float) -> np.ndarray:
    """The convex hull's corners of 2-D ``points``, dilated by ``radius`` (``dilate``):
    the same offset hull as dilating every point, at a fraction of the cost."""
    from scipy.spatial import ConvexHull, QhullError

    points = np.asarray(points, np.float64)
    if len(points) >= 3:
        with contextlib.suppress(QhullError):   # degenerate (collinear): dilate them all
            points = points[ConvexHull(points).vertices]
    return dilate(points, radius)


def hull_radius(points: np.ndarray, centre: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """(nA,) distance from ``centre`` to the boundary of the convex hull of ``points``
    and ``centre`` along each direction (cos a, sin a); 2-D points."""
    from scipy.spatial import ConvexHull, QhullError

    pts = np.concatenate([np.asarray(points, np.float64), np.asarray(centre)[None]])
    try:
        hull = ConvexHull(pts)
    except (QhullError, ValueError):
        return np.zeros(len(angles))
    normals = hull.equations[:, :2]                       # outward, unit
    offsets = -(hull.equations[:, 2] + normals @ centre)  # >= 0: centre is inside
    direction = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    facing = direction @ normals.T                        # (nA, E)
    with np.errstate(divide="ignore", invalid="ignore"):
        along = np.where(facing > 1e-12, offsets[None] / facing, np.inf)
    return np.maximum(along.min(axis=1), 0.0)


def circular_smooth(values: np.ndarray, sigma_bins: float, axis: int = 0) -> np.ndarray:
    """Gaussian smoothing along a periodic axis (``sigma_bins`` in samples)."""
    from scipy.ndimage import gaussian_filter1d

    if sigma_bins <= 0:
        return values
    return gaussian_filter1d(values, sigma_bins, axis=axis, mode="wrap")


def fill_missing(values: np.ndarray, axis: int = 1) -> np.ndarray:
    """Replace NaN entries by linear interpolation along ``axis`` (ends: nearest)."""
    values = np.moveaxis(np.array(values, np.float64), axis, -1)
    flat = values.reshape(-1, values.shape[-1])
    x = np.arange(flat.shape[1])
    for row in flat:
        ok = np.isfinite(row)
        if ok.all() or not ok.any():
            continue
        row[~ok] = np.interp(x[~ok], x[ok], row[ok])
    return np.moveaxis(flat.reshape(values.shape), -1, axis)


# ---------------------------------------------------------------- builders


def slice_radius(points: np.ndarray, heights: np.ndarray, centres: np.ndarray,
                 angles: np.ndarray, band: float, ease: float) -> np.ndarray:
    """(nA, nZ) radius of each horizontal slice's envelope around its centre.

    Slice ``k`` holds the points within ``band`` of ``heights[k]``; its envelope is the
    convex hull of their (x, y), dilated by ``ease``. Slices without points get NaN.
    """
    out = np.full((len(angles), len(heights)), np.nan)
    z = points[:, 2]
    for k, height in enumerate(heights):
        near = np.abs(z - height) <= band
        if near.sum() >= 3:
            out[:, k] = hull_radius(dilated_hull(points[near, :2], ease), centres[k], angles)
    return out


def stack_surface(name: str, heights: np.ndarray, centres: np.ndarray, radius: np.ndarray,
                  dm: float) -> GridSurface:
    """A tube of horizontal rings: ring ``k`` at height ``heights[k]`` around
    ``centres[k]`` (x, y) with ``radius[:, k]`` per angle (angle 0 = +x, pi/2 = +y).
    Meridians run in the order of ``heights`` (top down for skirts and trousers)."""
    n_angles = radius.shape[0]
    angles = np.arange(n_angles) * (TWO_PI / n_angles)
    u = np.stack([np.cos(angles), np.sin(angles)], axis=1)            # (nA, 2)
    xy = centres[None, :, :] + radius[:, :, None] * u[:, None, :]       # (nA, nZ, 2)
    z = np.broadcast_to(heights[None, :, None], xy.shape[:2] + (1,))
    polylines = list(np.concatenate([xy, z], axis=2))
    points, lengths = resample_meridians(polylines, dm)
    return GridSurface(points=points, dm=dm, lengths=lengths, name=name)


@dataclass(frozen=True)
class BottleProfile:
    """How a ``bottle_surface`` hangs below its widest point.

    Attributes:
        hang_below_z: below this height the profile never narrows downwards (cloth
            hangs from the bust or the hips), metres in the garment frame.
        flare_slope: least outward growth of the radius per metre of drop below
            ``hang_below_z`` (tan of the flare angle).
    """

    hang_below_z: float
    flare_slope: float = 0.0


def bottle_surface(name: str, points: np.ndarray, axis_xy: np.ndarray, z_hem: float,
                   z_centre: float, z_top: float, n_angles: int, ease: float,
                   profile: BottleProfile, dm: float, bin_deg: float = 7.0,
                   smooth_bins: float = 3.0) -> GridSurface:
    """A torso-shaped tube around the vertical axis through ``axis_xy``.

    For each angle, the body points within ``bin_deg`` of it are seen in the half-plane
    (horizontal distance from the axis, height); the meridian is the outer boundary of
    their convex hull dilated by ``ease``, from the hem height ``z_hem`` up to the
    axis at ``z_top``. Radii are measured from the point (axis, ``z_centre``), which
    must lie inside the body, and smoothed across angles. Below
    ``profile.hang_below_z`` the meridian never narrows downwards.
    Meridians start at the hem (m = 0) and climb.
    """
    angles = np.arange(n_angles) * (TWO_PI / n_angles)
    rel = points[:, :2] - axis_xy
    radius = np.linalg.norm(rel, axis=1)
    point_angle = np.arctan2(rel[:, 1], rel[:, 0])
    psi = np.radians(np.linspace(-89.5, 90.0, 720))
    centre = np.array([0.0, z_centre])
    bin_rad = math.radians(bin_deg)
    band = 0.03
    polar = np.zeros((n_angles, len(psi)))
    axis_points = np.array([[0.0, z_hem - 0.15], [0.0, z_top]])
    for i, angle in enumerate(angles):
        off = np.abs((point_angle - angle + math.pi) % TWO_PI - math.pi)
        near = (off <= bin_rad) & (points[:, 2] >= z_hem - band) & (points[:, 2] <= z_top)
        half_plane = np.stack([radius[near], points[near, 2]], axis=1)
        hull_points = np.concatenate([dilated_hull(half_plane, ease), axis_points])
        # rays from the centre in the half-plane: psi = -90 deg points down, +90 up
        polar[i] = hull_radius(hull_points, centre, psi)
    polar = circular_smooth(polar, smooth_bins, axis=0)
    polylines = []
    for i in range(n_angles):
        rho = polar[i] * np.cos(psi)
        z = z_centre + polar[i] * np.sin(psi)
        keep = z >= z_hem
        start = int(np.argmax(keep))
        if not keep.any() or (start == 0 and z[0] > z_hem + 0.05):
            raise SynthError(f"{name}: the body does not reach down to the hem height "
                             f"{z_hem:.3f} m at angle {math.degrees(angles[i]):.0f} deg")
        # start exactly at the hem height (straight down from the lowest sample if the
        # rays start just above it)
        if start == 0:
            rho0 = rho[0]
        else:
            w = (z_hem - z[start - 1]) / (z[start] - z[start - 1])
            rho0 = rho[start - 1] + w * (rho[start] - rho[start - 1])
        rho = np.concatenate([[rho0], rho[start:]])
        z = np.concatenate([[z_hem], z[start:]])
        rho = _hang(rho, z, profile)
        u = np.array([math.cos(angles[i]), math.sin(angles[i])])
        xy = axis_xy + rho[:, None] * u
        polylines.append(np.concatenate([xy, z[:, None]], axis=1))
    grid, lengths = resample_meridians(polylines, dm)
    return GridSurface(points=grid, dm=dm, lengths=lengths, name=name)


def _hang(rho: np.ndarray, z: np.ndarray, profile: BottleProfile) -> np.ndarray:
    """Make the part of a bottom-up (rho, z) profile below ``hang_below_z`` never
    narrow downwards (and widen at least by ``flare_slope`` per metre of drop).

    The rule rho'[k] = max(rho[k], rho'[k+1] + slope (z[k+1] - z[k])) is a running
    maximum of rho + slope z taken downwards, less slope z."""
    rho = rho.copy()
    below = np.flatnonzero(z < profile.hang_below_z)
    if not len(below):
        return rho
    top = min(below[-1] + 1, len(rho) - 1)
    shift = profile.flare_slope * z[: top + 1]
    lifted = rho[: top + 1] + shift
    rho[: top + 1] = np.maximum.accumulate(lifted[::-1])[::-1] - shift
    return rho


def zero_contour(values: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """Trace the zero level line of a grid field from a boundary crossing (marching
    squares on one open line).

    Args:
        values: (n0, n1) field samples at grid nodes (i, j).
        start: (i, 0): the line enters through the edge between nodes (i, 0) and
            (i + 1, 0), which must have opposite signs.
    Returns:
        (K, 2) float64 crossing points in fractional grid coordinates (i, j), from
        the start edge to where the line leaves the grid.
    """
    positive = values >= 0
    n0, n1 = values.shape

    def crossing(a, b):
        fa, fb = values[a], values[b]
        t = fa / (fa - fb) if fa != fb else 0.5
        return (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))

    i, _ = start
    if positive[i, 0] == positive[i + 1, 0]:
        raise ValueError("zero_contour: the start edge does not cross zero")
    edge = ((i, 0), (i + 1, 0))
    cell = (i, 0)
    line = [crossing(*edge)]
    for _ in range(4 * n0 * n1):
        ci, cj = cell
        corners = [(ci, cj), (ci + 1, cj), (ci + 1, cj + 1), (ci, cj + 1)]
        edges = [(corners[k], corners[(k + 1) % 4]) for k in range(4)]
        key = frozenset(edge)
        exits = [e for e in edges if frozenset(e) != key and positive[e[0]] != positive[e[1]]]
        if not exits:
            break
        if len(exits) > 1:    # saddle: leave by the edge next to the entry on the side
            centre = np.mean([values[c] for c in corners]) >= 0     # of the centre's sign
            entry = edges.index(next(e for e in edges if frozenset(e) == key))
            for step in (1, 3):
                cand = edges[(entry + step) % 4]
                if cand in exits and positive[cand[1] if step == 1 else cand[0]] == centre:
                    exits = [cand]
                    break
            exits = exits[:1]
        edge = exits[0]
        line.append(crossing(*edge))
        (a0, a1), (b0, b1) = edge
        if a1 == b1:            # a horizontal edge (constant j): move across in j
            nj = cj - 1 if a1 == cj else cj + 1
            cell = (ci, nj)
        else:
            ni = ci - 1 if a0 == ci else ci + 1
            cell = (ni, cj)
        if not (0 <= cell[0] < n0 - 1 and 0 <= cell[1] < n1 - 1):
            break
    return np.asarray(line, np.float64)


def sleeve_surface(name: str, armhole: np.ndarray, centres: np.ndarray, e_up: np.ndarray,
                   e_front: np.ndarray, radius: np.ndarray, first_ring: np.ndarray,
                   turn: np.ndarray, dm: float) -> tuple[GridSurface, np.ndarray]:
    """A sleeve: from each armhole point a short line to the tube around the arm, then
    the round tube swept along the arm's (possibly bent) axis.

    Args:
        armhole: (nA, 3) armhole points; point ``i`` belongs to the angle
            ``phi = 2 pi i / nA`` around the arm: 0 under the arm, pi/2 in front,
            pi on top.
        centres: (K, 3) the tube's ring centres along the arm's axis, outwards.
        e_up, e_front: (K, 3) each ring's unit vectors orthogonal to the axis: up
            and forwards (a rotation-minimising frame along the axis).
        radius: (K,) each ring's radius, metres.
        first_ring: (nA,) the ring each armhole point's line reaches the tube at (so
            every meridian joins the tube a little further out than its armhole point).
        turn: (nA,) increasing angle around the arm of each meridian's tube line
            (0 = under the arm, pi/2 = front, pi = on top).
    Returns:
        (surface, ring_m): ring_m (nA, K) is the arc length of ring k on meridian i
        (NaN for rings before its ``first_ring``). Meridians start at the armhole
        (m = 0) and run out along the arm.
    """
    n_angles = len(armhole)
    c, s = -np.cos(turn)[:, None, None], np.sin(turn)[:, None, None]
    rings = centres[None] + radius[None, :, None] * (c * e_up[None] + s * e_front[None])
    polylines = []
    ring_m = np.full((n_angles, len(centres)), np.nan)
    for i in range(n_angles):
        line = np.concatenate([armhole[i:i + 1], rings[i, first_ring[i]:]])
        polylines.append(line)
        ring_m[i, first_ring[i]:] = np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))
    points, lengths = resample_meridians(polylines, dm)
    return GridSurface(points=points, dm=dm, lengths=lengths, name=name), ring_m


def swept_axis(joints: np.ndarray, step: float, bend: float, extend: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Sample a polyline axis (J, 3) every ``step`` metres, its inner corners rounded
    (quadratic Bezier over ``bend`` metres each side), continued ``extend`` metres
    past its end. Returns (points (K, 3), arc length (K,))."""
    pieces = [joints[:1]]
    for k in range(1, len(joints) - 1):
        a, b, c = joints[k - 1], joints[k], joints[k + 1]
        ta = b + (a - b) * min(bend / np.linalg.norm(a - b), 0.45)
        tc = b + (c - b) * min(bend / np.linalg.norm(c - b), 0.45)
        t = np.linspace(0, 1, 16)[:, None]
        pieces += [ta[None], (1 - t) ** 2 * ta + 2 * t * (1 - t) * b + t**2 * tc]
    end = joints[-1] + extend * (joints[-1] - joints[-2]) / np.linalg.norm(joints[-1] - joints[-2])
    pieces += [joints[-1:], end[None]]
    dense = np.concatenate(pieces)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    keep = np.concatenate([[True], np.diff(s) > 1e-9])
    dense, s = dense[keep], s[keep]
    out_s = np.arange(0.0, s[-1], step)
    points = np.stack([np.interp(out_s, s, dense[:, k]) for k in range(3)], axis=1)
    return points, out_s


def transported_frames(points: np.ndarray, up: np.ndarray, front: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Rotation-minimising frames along a sampled curve: (e_up (K, 3), e_front (K, 3)),
    starting from ``up`` and ``front`` made orthogonal to the first tangent."""
    tangent = np.gradient(points, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    e1 = np.empty_like(points)
    t0 = tangent[0]
    u = up - (up @ t0) * t0
    e1[0] = u / np.linalg.norm(u)
    for k in range(1, len(points)):
        # double reflection (Wang et al. 2008): reflect across the chord, then across
        # the plane between the reflected and the new tangent
        v1 = points[k] - points[k - 1]
        c1 = float(v1 @ v1)
        if c1 < 1e-20:
            e1[k] = e1[k - 1]
            continue
        r = e1[k - 1] - (2 / c1) * (v1 @ e1[k - 1]) * v1
        tl = tangent[k - 1] - (2 / c1) * (v1 @ tangent[k - 1]) * v1
        v2 = tangent[k] - tl
        c2 = float(v2 @ v2)
        e1[k] = r - (2 / c2) * (v2 @ r) * v2 if c2 > 1e-20 else r
        e1[k] /= np.linalg.norm(e1[k])
    e2 = np.cross(tangent, e1)
    if float((e2 * front).sum()) < 0:
        e2 = -e2
    return e1, e2
