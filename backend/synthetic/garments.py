"""Sewing patterns of the capture garment types, sized to a body.

Each garment is built around the rest body (``backend.synthetic.measure.BodyShape``):
surfaces that enclose the body parts it covers (``backend.synthetic.surfaces``), the
curves that bound its panels (seams, hems, waistband, neckline, armholes), and the
panels themselves. Sizes come from the body: heights from the skeleton's landmarks
(fractions of the torso, leg and arm lengths, as ``backend.mesh.templates`` uses for
the same garment types), cross-sections from the body's own convex outline plus an
ease.

- skirt, flared_skirt: front and back panels hanging from a waistband; below the
  waist the radius never shrinks, and grows at least with the flare angle.
- trousers, shorts: four panels (front and back of each leg), each leg a tube around
  one leg and its half of the pelvis, cut at the body's mid-plane where the two legs
  meet: centre front and centre back seams down to the crotch, inseams below it.
- tshirt, long_sleeve: front and back bodice panels from the hem over the shoulders
  to the neckline, side seams and shoulder seams on the body's sides, an armhole on
  each side with a sleeve tube sewn into it (one underarm seam per sleeve).
- dress: the same bodice without sleeves, hanging loose from below the bust to a
  long hem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import SynthError
from .measure import BodyShape, Measurements
from .panels import Curve, LoopEdge, PanelSpec
from .surfaces import (
    TWO_PI,
    BottleProfile,
    GridSurface,
    bottle_surface,
    circular_smooth,
    fill_missing,
    sleeve_surface,
    slice_radius,
    stack_surface,
    swept_axis,
    transported_frames,
    zero_contour,
)

GRID_DM = 0.005
"""Arc-length step of the surface grids along their meridians, metres."""
GRID_ANGLES = 256
"""Meridians around each surface."""


@dataclass(frozen=True)
class GarmentSpec:
    """Where a garment sits on the body and how loose it is (lengths relative to the
    body's, as ``backend.mesh.templates`` does for the same garment types).

    Attributes:
        family: "skirt", "trousers" or "top" (the builder).
        top: skirts/trousers: waistband height above the hip joints, fraction of the
            torso length (hip joints to neck base).
        hem: skirts/trousers/dress: hem depth below the hip joints, fraction of the
            leg length (hip to ankle joints).
        hem_torso: tops: hem height above the hip joints, fraction of the torso length
            (negative: below them); None for the others.
        flare_deg: skirts/dress: least outward angle from vertical below the hips.
        sleeve: tops: cuff position along the arm, fraction of the shoulder-to-wrist
            length; None = sleeveless.
        ease_m: distance of the cloth from the body where it fits: skirt and trouser
            waistbands, the whole bodice of tops and dresses (below the bust a bodice
            hangs straight down, or flares), metres.
        loose_ease_m: skirts/trousers: distance from the hips down; tops: the
            sleeves' distance from the arm, metres.
        pin_band_m: the cloth within this distance of the waistband or of a shoulder
            seam is pinned, metres.
    """

    family: str
    top: float = 0.2
    hem: float = 0.5
    hem_torso: float | None = None
    flare_deg: float = 0.0
    sleeve: float | None = None
    ease_m: float = 0.01
    loose_ease_m: float = 0.02
    pin_band_m: float = 0.03


GARMENT_SPECS: dict[str, GarmentSpec] = {
    "skirt": GarmentSpec("skirt", top=0.2, hem=0.55, flare_deg=6.0,
                         ease_m=0.008, loose_ease_m=0.02),
    "flared_skirt": GarmentSpec("skirt", top=0.2, hem=0.5, flare_deg=28.0,
                                ease_m=0.008, loose_ease_m=0.025),
    "trousers": GarmentSpec("trousers", top=0.2, hem=0.93, ease_m=0.008, loose_ease_m=0.02),
    "shorts": GarmentSpec("trousers", top=0.2, hem=0.4, ease_m=0.008, loose_ease_m=0.02),
    "tshirt": GarmentSpec("top", hem_torso=-0.12, sleeve=0.4, ease_m=0.015,
                          loose_ease_m=0.02),
    "long_sleeve": GarmentSpec("top", hem_torso=-0.12, sleeve=0.95, ease_m=0.015,
                               loose_ease_m=0.02),
    "dress": GarmentSpec("top", hem=0.8, flare_deg=8.0, ease_m=0.015, loose_ease_m=0.025),
}
"""The garment types of a capture (``backend.capture.GARMENT_TYPES`` less "template").
The fractions follow ``backend.mesh.templates.GARMENT_SHAPES`` (the reconstruction's
starting templates) except the dress, which hangs from the shoulders here instead of
starting at the chest, and the t-shirt's sleeve, long enough to be a sleeve."""


@dataclass(frozen=True, eq=False)
class GarmentPlan:
    """Everything needed to cut a garment: its panels and which curves carry pins.

    Attributes:
        panels: the panels, in output order.
        pin_curves: names of the curves along which the cloth is pinned (waistband,
            shoulder seams); vertices within the spec's ``pin_band_m`` of them are.
        surfaces: the surfaces, by name (for tests and debugging).
    """

    garment_type: str
    spec: GarmentSpec
    panels: tuple[PanelSpec, ...]
    pin_curves: tuple[str, ...]
    surfaces: dict[str, GridSurface]


def plan_garment(garment_type: str, shape: BodyShape, size: Measurements) -> GarmentPlan:
    """The panels of ``garment_type`` for the body ``shape``."""
    if garment_type not in GARMENT_SPECS:
        raise SynthError(f"unknown garment type {garment_type!r}; choose one of "
                         f"{', '.join(GARMENT_SPECS)}")
    spec = GARMENT_SPECS[garment_type]
    build = {"skirt": _skirt, "trousers": _trousers, "top": _top}[spec.family]
    return build(garment_type, spec, shape, size)


# ---------------------------------------------------------------- helpers


def _m_at_height(surface: GridSurface, z: float) -> np.ndarray:
    """(nA,) arc length at which each meridian reaches height ``z`` (first crossing)."""
    heights = surface.points[:, :, 2]
    m = np.arange(surface.n_m) * surface.dm
    out = np.empty(surface.n_angles)
    for i in range(surface.n_angles):
        h = heights[i]
        sign = np.sign(h - z)
        cross = np.flatnonzero(sign[:-1] != sign[1:])
        if not len(cross):
            raise SynthError(f"{surface.name}: meridian {i} never reaches height {z:.3f} m")
        k = cross[0]
        w = (z - h[k]) / (h[k + 1] - h[k])
        out[i] = m[k] + w * surface.dm
    return out


def _row_curve(name: str, surface: GridSurface, a0: float, a1: float,
               m_of_angle: np.ndarray | float) -> Curve:
    """A curve across meridians from angle ``a0`` to ``a1`` (radians, a1 > a0 or
    a1 < a0), at ``m_of_angle`` (scalar, or (nA,) per grid meridian, interpolated)."""
    n = max(8, int(abs(a1 - a0) / TWO_PI * surface.n_angles * 2))
    alpha = np.linspace(a0, a1, n + 1)
    if np.ndim(m_of_angle) == 0:
        m = np.full(len(alpha), float(m_of_angle))
    else:
        grid = surface.angles()
        m = np.interp(np.mod(alpha, TWO_PI), np.concatenate([grid, [TWO_PI]]),
                      np.concatenate([m_of_angle, m_of_angle[:1]]))
    return Curve.on(name, surface, alpha, m)


def _line_curve(name: str, surface: GridSurface, alpha: float, m0: float, m1: float) -> Curve:
    """A curve along the meridian at ``alpha`` from ``m0`` to ``m1``."""
    n = max(8, int(abs(m1 - m0) / surface.dm))
    return Curve.on(name, surface, np.full(n + 1, alpha), np.linspace(m0, m1, n + 1))


def _outward_sign(surface: GridSurface) -> int:
    """+1 if d/dalpha x d/dm points away from the tube's axis, else -1."""
    g = surface.points
    j = max(1, min(int(np.median(surface.lengths) / surface.dm) // 2, surface.n_m - 2))
    da = np.roll(g[:, j], -1, axis=0) - np.roll(g[:, j], 1, axis=0)
    dm = g[:, j + 1] - g[:, j - 1]
    n = np.cross(da, dm)
    r = g[:, j] - g[:, j].mean(axis=0)
    return 1 if float((n * r).sum()) > 0 else -1


def _smooth_rows(radius: np.ndarray, sigma_angle: float, sigma_row: float) -> np.ndarray:
    """Smooth an (angle, row) radius field without sinking below it: a running maximum
    over about two sigmas first, so that the Gaussian blur stays above the peaks."""
    from scipy.ndimage import gaussian_filter1d, maximum_filter1d

    wa = 2 * int(math.ceil(2 * sigma_angle)) + 1
    out = maximum_filter1d(radius, wa, axis=0, mode="wrap")
    out = circular_smooth(out, sigma_angle, axis=0)
    if sigma_row > 0:
        wr = 2 * int(math.ceil(2 * sigma_row)) + 1
        out = maximum_filter1d(out, wr, axis=1, mode="nearest")
        out = gaussian_filter1d(out, sigma_row, axis=1, mode="nearest")
    return np.maximum(out, radius)


# ---------------------------------------------------------------- skirts


def _skirt(garment_type: str, spec: GarmentSpec, shape: BodyShape,
           size: Measurements) -> GarmentPlan:
    z_top = spec.top * size.torso_length
    z_hem = -spec.hem * size.leg_length
    if z_hem <= shape.floor_z + 0.02:
        raise SynthError(f"{garment_type}: the hem would be below the floor")
    dz = GRID_DM
    heights = np.arange(z_top, z_hem - 0.03, -dz)
    body = shape.part("torso", "upper_leg", "lower_leg", "foot")
    points = shape.points[body & (shape.points[:, 2] <= z_top + 0.05)
                          & (shape.points[:, 2] >= z_hem - 0.08)]
    hip_band = np.abs(points[:, 2] - size.hip_z) < 0.03
    centre_xy = np.array([0.0, 0.5 * (points[hip_band, 1].min() + points[hip_band, 1].max())])
    centres = np.tile(centre_xy, (len(heights), 1))
    angles = np.arange(GRID_ANGLES) * (TWO_PI / GRID_ANGLES)
    # fitted at the waistband, loose from the hips down
    ease = np.interp(heights, [size.hip_z, z_top], [spec.loose_ease_m, spec.ease_m])
    radius = _eased_radii(points, heights, centres, angles, ease)
    radius = fill_missing(radius, axis=1)
    radius = _smooth_rows(radius, 2.0, 2.0)
    # hang: below the waistband the radius never shrinks; below the hips it flares
    slope = math.tan(math.radians(spec.flare_deg))
    for k in range(1, len(heights)):
        grow = slope * dz if heights[k] < size.hip_z else 0.0
        radius[:, k] = np.maximum(radius[:, k], radius[:, k - 1] + grow)
    surface = stack_surface("skirt", heights, centres, radius, GRID_DM)
    outward = _outward_sign(surface)
    m_hem = _m_at_height(surface, z_hem)
    left, right = 0.0, math.pi
    waist_f = _row_curve("waist.front", surface, right, TWO_PI, 0.0)
    waist_b = _row_curve("waist.back", surface, left, right, 0.0)
    hem_f = _row_curve("hem.front", surface, right, TWO_PI, m_hem)
    hem_b = _row_curve("hem.back", surface, left, right, m_hem)
    side_l = _line_curve("side.L", surface, left, 0.0, float(m_hem[0]))
    side_r = _line_curve("side.R", surface, right, 0.0,
                         float(np.interp(right, surface.angles(), m_hem)))
    front = PanelSpec("front", surface, outward, (
        LoopEdge(hem_f), LoopEdge(side_l, reverse=True), LoopEdge(waist_f, reverse=True),
        LoopEdge(side_r)), alpha_centre=1.5 * math.pi)
    back = PanelSpec("back", surface, outward, (
        LoopEdge(hem_b), LoopEdge(side_r, reverse=True), LoopEdge(waist_b, reverse=True),
        LoopEdge(side_l)), alpha_centre=0.5 * math.pi)
    return GarmentPlan(garment_type, spec, (front, back), ("waist.front", "waist.back"),
                       {"skirt": surface})


# ---------------------------------------------------------------- trousers


MIDLINE_REACH_M = 0.03
"""Above the crotch a trouser leg's tube reaches this far past the body's mid-plane, so
that cutting it there leaves a clean centre seam."""


def _mirror(points: np.ndarray) -> np.ndarray:
    out = np.array(points, np.float64)
    out[..., 0] *= -1
    return out


def _trousers(garment_type: str, spec: GarmentSpec, shape: BodyShape,
              size: Measurements) -> GarmentPlan:
    z_top = spec.top * size.torso_length
    z_hem = -spec.hem * size.leg_length
    if z_hem <= shape.floor_z + 0.03:
        raise SynthError(f"{garment_type}: the hem would be below the ankles")
    v = shape.points
    torso = shape.part("torso")
    midline = torso & (np.abs(v[:, 0]) < 0.015)
    z_crotch = float(v[midline, 2].min())
    heights = np.arange(z_top, z_hem - 0.03, -GRID_DM)
    in_range = (v[:, 2] <= z_top + 0.05) & (v[:, 2] >= z_hem - 0.08)
    # one leg and its half of the pelvis, made symmetric (the right leg is its mirror)
    left = in_range & ((shape.part("upper_leg", "lower_leg", "foot", side="left"))
                       | (torso & (v[:, 0] >= -0.002)))
    right = in_range & ((shape.part("upper_leg", "lower_leg", "foot", side="right"))
                        | (torso & (v[:, 0] <= 0.002)))
    points = np.concatenate([v[left], _mirror(v[right])])
    # reach past the mid-plane above the crotch: copies of the midline points at -x
    reach = points[(np.abs(points[:, 0]) < 0.015) & (points[:, 2] > z_crotch + 0.005)].copy()
    reach[:, 0] = -MIDLINE_REACH_M
    points = np.concatenate([points, reach])
    hip = (shape.hips["left"] + _mirror(shape.hips["right"])) / 2
    ankle = (shape.ankles["left"] + _mirror(shape.ankles["right"])) / 2
    w = np.clip(heights / ankle[2], 0.0, 1.0)[:, None]          # 0 at the hips, 1 at ankles
    centres = (1 - w) * hip[:2] + w * ankle[:2]
    angles = np.arange(GRID_ANGLES) * (TWO_PI / GRID_ANGLES)
    ease = np.interp(heights, [size.hip_z, z_top], [spec.loose_ease_m, spec.ease_m])
    radius = _eased_radii(points, heights, centres, angles, ease)
    radius = _smooth_rows(fill_missing(radius, axis=1), 2.0, 3.0)
    surf_l = stack_surface("leg.L", heights, centres, radius, GRID_DM)
    surf_r = GridSurface(points=_mirror(surf_l.points), dm=surf_l.dm,
                         lengths=surf_l.lengths, name="leg.R")
    out_l, out_r = _outward_sign(surf_l), _outward_sign(surf_r)

    # the mid-plane cut, traced on a fine grid: angle pi points to -x (the other leg)
    alpha = np.linspace(0.5 * math.pi, 1.5 * math.pi, 801)
    # the cut ends at the crotch, a little below the body's (meridians are longer
    # than the drop in height: search twice that)
    m_grid = np.arange(0.0, min(surf_l.m_max, 2 * (z_top - z_crotch) + 0.1), 0.5 * surf_l.dm)
    A, M = np.meshgrid(alpha, m_grid, indexing="ij")
    x = surf_l.at(A.ravel(), M.ravel())[:, 0].reshape(A.shape)
    starts = np.flatnonzero((x[:-1, 0] >= 0) != (x[1:, 0] >= 0))
    if len(starts) < 2:
        raise SynthError(f"{garment_type}: the legs' tubes do not meet at the body's "
                         "mid-plane; cannot place the crotch")
    line = zero_contour(x, (int(starts[0]), 0))
    if abs(line[-1, 1]) > 1e-9:
        raise SynthError(f"{garment_type}: the centre seam does not come back up to the "
                         "waistband; the crotch cannot be placed")
    da, dmg = alpha[1] - alpha[0], m_grid[1] - m_grid[0]
    line_a, line_m = alpha[0] + line[:, 0] * da, line[:, 1] * dmg
    crotch = int(np.argmax(line_m))
    a_crotch, m_crotch = float(line_a[crotch]), float(line_m[crotch])
    m_hem = _m_at_height(surf_l, z_hem)

    def both(curve: Curve) -> Curve:
        curve.params[surf_r.name] = curve.params[surf_l.name].copy()
        return curve

    # the traced line runs back (angles below pi) -> crotch -> front (above pi)
    centre_b = both(Curve.on("centre.back", surf_l, line_a[crotch::-1], line_m[crotch::-1]))
    centre_f = both(Curve.on("centre.front", surf_l, line_a[crotch:], line_m[crotch:]))
    a_front_top = float(centre_f.params[surf_l.name][-1, 0])
    a_back_top = float(centre_b.params[surf_l.name][-1, 0])
    m_hem_at = float(np.interp(a_crotch, surf_l.angles(), m_hem))
    # one leg's own curves, made on the left tube; the right leg takes the same
    # parameters on its mirrored tube
    own = {
        "waist.front": _row_curve("waist.front", surf_l, a_front_top, TWO_PI, 0.0),
        "waist.back": _row_curve("waist.back", surf_l, 0.0, a_back_top, 0.0),
        "outseam": _line_curve("outseam", surf_l, 0.0, 0.0, float(m_hem[0])),
        "inseam": _line_curve("inseam", surf_l, a_crotch, m_crotch, m_hem_at),
        "hem.front": _row_curve("hem.front", surf_l, a_crotch, TWO_PI, m_hem),
        "hem.back": _row_curve("hem.back", surf_l, 0.0, a_crotch, m_hem),
    }
    panels, pins = [], []
    for side, surf, out in (("L", surf_l, out_l), ("R", surf_r, out_r)):
        c = {name: Curve(f"{name}.{side}", {surf.name: curve.params[surf_l.name]},
                         surf.at(*curve.params[surf_l.name].T))
             for name, curve in own.items()}
        panels.append(PanelSpec(f"front.{side}", surf, out, (
            LoopEdge(centre_f, reverse=True), LoopEdge(c["inseam"]), LoopEdge(c["hem.front"]),
            LoopEdge(c["outseam"], reverse=True), LoopEdge(c["waist.front"], reverse=True)),
            alpha_centre=1.5 * math.pi))
        panels.append(PanelSpec(f"back.{side}", surf, out, (
            LoopEdge(c["waist.back"]), LoopEdge(centre_b, reverse=True), LoopEdge(c["inseam"]),
            LoopEdge(c["hem.back"], reverse=True), LoopEdge(c["outseam"], reverse=True)),
            alpha_centre=0.5 * math.pi))
        pins += [c["waist.front"].name, c["waist.back"].name]
    return GarmentPlan(garment_type, spec, tuple(panels), tuple(pins),
                       {surf_l.name: surf_l, surf_r.name: surf_r})


# ---------------------------------------------------------------- tops and dresses


ARM_CLEARANCE_M = 0.005
"""An armhole encloses the bodice where the arm passes within ease + this of it."""
ARMHOLE_MARGIN_M = 0.01
"""Extra room around the arm in an armhole, metres."""
RING_GAP_M = 0.03
"""A sleeve leaves each armhole point in a straight line to its tube, which it joins
this far further out along the arm."""


@dataclass(frozen=True)
class _Armhole:
    """An armhole: an ellipse in the bodice's (arc length across the side, m) plane,
    centred on the side seam's meridian."""

    side: str
    alpha_side: float
    m_centre: float
    half_width: float
    half_height: float
    front_sign: float             # d alpha towards the front of the body

    def params(self, bodice: GridSurface, phi: np.ndarray) -> np.ndarray:
        """(N, 2) bodice parameters of the armhole at angles ``phi`` (0 under the arm,
        pi/2 at the front, pi on top)."""
        m = self.m_centre - self.half_height * np.cos(phi)
        across = self.half_width * np.sin(phi)
        rho = _horizontal_radius(bodice, self.alpha_side, m)
        return np.stack([self.alpha_side + self.front_sign * across / rho, m], axis=1)


def _horizontal_radius(surface: GridSurface, alpha: float, m: np.ndarray) -> np.ndarray:
    """Distance from the surface's vertical axis of the points on meridian ``alpha``."""
    p = surface.at(np.full(len(m), alpha), m)
    axis = surface.points[:, 0, :2].mean(axis=0)
    return np.maximum(np.linalg.norm(p[:, :2] - axis, axis=1), 1e-3)


def _top(garment_type: str, spec: GarmentSpec, shape: BodyShape,
         size: Measurements) -> GarmentPlan:

    v = shape.points
    dress = spec.hem_torso is None
    z_hem = -spec.hem * size.leg_length if dress else spec.hem_torso * size.torso_length
    if z_hem <= shape.floor_z + 0.05:
        raise SynthError(f"{garment_type}: the hem would be below the ankles")
    neck_z = float(shape.neck[2])
    torso = shape.part("torso")
    upper = (v[:, 2] > size.chest_z - 0.12) & (v[:, 2] < neck_z)
    x_side = float(np.abs(v[torso & upper, 0]).max()) + 0.01
    parts = shape.part("torso", "upper_leg") | (shape.part("upper_arm")
                                                & (np.abs(v[:, 0]) <= x_side))
    if dress:
        parts |= shape.part("lower_leg", "foot")
    z_top = neck_z + 0.02
    points = v[parts & (v[:, 2] >= z_hem - 0.05) & (v[:, 2] <= z_top)]
    core = torso & (v[:, 2] >= 0) & (v[:, 2] <= size.chest_z)
    axis_xy = np.array([0.0, 0.5 * (v[core, 1].min() + v[core, 1].max())])
    slope = math.tan(math.radians(spec.flare_deg))
    bodice = bottle_surface(
        "bodice", points, axis_xy, z_hem, z_centre=size.chest_z - 0.1, z_top=z_top,
        n_angles=GRID_ANGLES, ease=spec.ease_m,
        profile=BottleProfile(hang_below_z=size.chest_z, flare_slope=slope), dm=GRID_DM)
    outward = _outward_sign(bodice)
    m_neck = _neckline(shape, bodice)
    armholes = {s: _armhole(shape, bodice, s, x_side, spec) for s in ("left", "right")}
    for hole in armholes.values():
        top_m = hole.m_centre + hole.half_height
        neck_at = float(np.interp(hole.alpha_side, bodice.angles(), m_neck))
        if top_m > neck_at - 0.03 or hole.m_centre - hole.half_height < 0.05:
            raise SynthError(f"{garment_type}: the {hole.side} armhole does not fit between "
                             "the hem and the neckline of this body")

    left, right = armholes["left"], armholes["right"]
    # the left side seam is at alpha = 2 pi for the front panel and 0 for the back
    phi_front = np.linspace(0.0, math.pi, 2 * GRID_ANGLES + 1)
    phi_back = np.linspace(math.pi, TWO_PI, 2 * GRID_ANGLES + 1)
    curves = {}
    for hole, tag in ((left, "L"), (right, "R")):
        for part, phi in (("front", phi_front), ("back", phi_back)):
            p = hole.params(bodice, phi)
            curves[f"armhole.{tag}.{part}"] = Curve.on(f"armhole.{tag}.{part}", bodice,
                                                       p[:, 0], p[:, 1])
        bottom = hole.m_centre - hole.half_height
        top = hole.m_centre + hole.half_height
        neck_at = float(np.interp(hole.alpha_side, bodice.angles(), m_neck))
        curves[f"side.{tag}"] = _line_curve(f"side.{tag}", bodice, hole.alpha_side, 0.0, bottom)
        curves[f"shoulder.{tag}"] = _line_curve(f"shoulder.{tag}", bodice, hole.alpha_side,
                                                top, neck_at)
    hem_f = _row_curve("hem.front", bodice, math.pi, TWO_PI, 0.0)
    hem_b = _row_curve("hem.back", bodice, 0.0, math.pi, 0.0)
    neck_f = _row_curve("neckline.front", bodice, math.pi, TWO_PI, m_neck)
    neck_b = _row_curve("neckline.back", bodice, 0.0, math.pi, m_neck)
    c = curves
    front = PanelSpec("front", bodice, outward, (
        LoopEdge(hem_f), LoopEdge(c["side.L"]), LoopEdge(c["armhole.L.front"]),
        LoopEdge(c["shoulder.L"]), LoopEdge(neck_f, reverse=True),
        LoopEdge(c["shoulder.R"], reverse=True), LoopEdge(c["armhole.R.front"], reverse=True),
        LoopEdge(c["side.R"], reverse=True)), alpha_centre=1.5 * math.pi)
    back = PanelSpec("back", bodice, outward, (
        LoopEdge(hem_b), LoopEdge(c["side.R"]), LoopEdge(c["armhole.R.back"], reverse=True),
        LoopEdge(c["shoulder.R"]), LoopEdge(neck_b, reverse=True),
        LoopEdge(c["shoulder.L"], reverse=True), LoopEdge(c["armhole.L.back"]),
        LoopEdge(c["side.L"], reverse=True)), alpha_centre=0.5 * math.pi)
    panels = [front, back]
    surfaces = {bodice.name: bodice}
    if spec.sleeve is not None:
        for hole, tag in ((left, "L"), (right, "R")):
            sleeve, cuff_m = _sleeve(shape, bodice, hole, spec, x_side)
            surfaces[sleeve.name] = sleeve
            for part, phi in (("front", phi_front), ("back", phi_back)):
                curve = c[f"armhole.{tag}.{part}"]
                curve.params[sleeve.name] = np.stack([phi, np.zeros_like(phi)], axis=1)
            seam = _line_curve(f"underarm.{tag}", sleeve, 0.0, 0.0, float(cuff_m[0]))
            cuff = _row_curve(f"cuff.{tag}", sleeve, 0.0, TWO_PI, cuff_m)
            panels.append(PanelSpec(f"sleeve.{tag}", sleeve, _outward_sign(sleeve), (
                LoopEdge(c[f"armhole.{tag}.front"]), LoopEdge(c[f"armhole.{tag}.back"]),
                LoopEdge(seam, turns=1), LoopEdge(cuff, reverse=True),
                LoopEdge(seam, reverse=True, turns=0)), alpha_centre=math.pi))
    return GarmentPlan(garment_type, spec, tuple(panels), ("shoulder.L", "shoulder.R"),
                       surfaces)


def _neckline(shape: BodyShape, bodice: GridSurface) -> np.ndarray:
    """(nA,) arc length where each bodice meridian enters the neckline: an ellipse
    around the neck's base, wider than the neck and scooped lower in front."""
    v = shape.points
    neck_z = float(shape.neck[2])
    # a thin band just above the neck joint: higher up, the jaw widens the section
    ring = v[shape.part("head") & (v[:, 2] >= neck_z - 0.005) & (v[:, 2] <= neck_z + 0.012)]
    if len(ring) < 8:
        raise SynthError("cannot find the neck to cut the neckline around")
    # the neck's width and back are reliable; its front is not (the chin can start at
    # this height), so the section is taken as about as deep as it is wide
    half = float(np.abs(ring[:, 0]).max())
    centre = np.array([0.0, float(ring[:, 1].max()) - 0.8 * half])
    half_width = half + 0.02
    front_depth = 0.8 * half + 0.035             # the front is -y: a scooped neckline
    back_depth = 0.8 * half + 0.015
    g = bodice.points
    dx = (g[..., 0] - centre[0]) / half_width
    depth = np.where(g[..., 1] < centre[1], front_depth, back_depth)
    dy = (g[..., 1] - centre[1]) / depth
    inside = dx**2 + dy**2 - 1.0                                   # < 0 inside the neckline
    m = np.arange(bodice.n_m) * bodice.dm
    out = np.empty(bodice.n_angles)
    for i in range(bodice.n_angles):
        f = inside[i]
        k = np.flatnonzero((f[:-1] >= 0) & (f[1:] < 0))
        if not len(k):
            raise SynthError(f"bodice meridian {i} never reaches the neckline")
        k = k[0]
        out[i] = m[k] + f[k] / (f[k] - f[k + 1]) * bodice.dm
    return out


def _armhole(shape: BodyShape, bodice: GridSurface, side: str, x_side: float,
             spec: GarmentSpec) -> _Armhole:
    """The armhole around where the arm leaves the bodice (see ``_Armhole``)."""
    from scipy.spatial import cKDTree

    v = shape.points
    sign = 1.0 if side == "left" else -1.0
    # the arm beyond the part the bodice's envelope took in (see _top)
    arm = shape.part("upper_arm", "lower_arm", "hand", side=side) & (sign * v[:, 0] > x_side)
    alpha_side = 0.0 if side == "left" else math.pi
    alphas = bodice.angles()
    off = (alphas - alpha_side + math.pi) % TWO_PI - math.pi          # (-pi, pi]
    near = np.flatnonzero(np.abs(off) < 0.5 * math.pi)
    nodes = bodice.points[near]                                        # (k, nM, 3)
    natural = np.arange(bodice.n_m)[None, :] * bodice.dm <= bodice.lengths[near, None]
    reach = spec.ease_m + ARM_CLEARANCE_M
    dist, _ = cKDTree(v[arm]).query(nodes.reshape(-1, 3), distance_upper_bound=reach)
    hit = (dist.reshape(nodes.shape[:2]) < reach) & natural
    if not hit.any():
        raise SynthError(f"the {side} arm does not reach the bodice; cannot place its "
                         "armhole")
    ki, kj = np.nonzero(hit)
    m = kj * bodice.dm
    axis = bodice.points[:, 0, :2].mean(axis=0)
    rho = np.linalg.norm(nodes[ki, kj, :2] - axis, axis=1)
    across = off[near][ki] * rho
    # the front of the body is -y: which way alpha turns towards it on this side
    front_sign = -1.0 if side == "left" else 1.0
    m_centre = 0.5 * (m.min() + m.max())
    half_height = 0.5 * (m.max() - m.min()) + ARMHOLE_MARGIN_M
    half_width = float(np.abs(across).max()) + ARMHOLE_MARGIN_M
    scale = np.sqrt((across / half_width) ** 2 + ((m - m_centre) / half_height) ** 2).max()
    scale = max(1.0, float(scale))
    return _Armhole(side, alpha_side, float(m_centre), half_width * scale,
                    half_height * scale, front_sign)


def _sleeve(shape: BodyShape, bodice: GridSurface, hole: _Armhole, spec: GarmentSpec,
            x_side: float) -> tuple[GridSurface, np.ndarray]:
    """The sleeve sewn into ``hole`` and the (nA,) arc length of its cuff per meridian.

    Its tube follows the arm's axis (shoulder, elbow, wrist; the elbow rounded), round,
    enclosing the free arm with the loose ease and never narrowing towards the shoulder.
    """
    from scipy.spatial import cKDTree

    side = hole.side
    joints = shape.arm_axis(side)
    arm_length = float(np.linalg.norm(np.diff(joints, axis=0), axis=1).sum())
    axis, s_axis = swept_axis(joints, GRID_DM, bend=0.06, extend=0.1)
    tree = cKDTree(axis)
    phi = np.arange(GRID_ANGLES) * (TWO_PI / GRID_ANGLES)
    p = hole.params(bodice, phi)
    armhole = bodice.at(p[:, 0], p[:, 1])
    s_hole = s_axis[tree.query(armhole)[1]]
    s_ring = float(s_hole.min()) + RING_GAP_M
    s_cuff = max(spec.sleeve * arm_length, float(s_hole.max()) + RING_GAP_M + 0.05)
    if s_cuff > s_axis[-1] - 0.02:
        raise SynthError(f"the {side} sleeve would end past the hand")
    sign = 1.0 if side == "left" else -1.0
    # the free arm only: its vertices near the torso (armpit skin) would inflate the tube
    arm = shape.points[shape.part("upper_arm", "lower_arm", side=side)
                       & (sign * shape.points[:, 0] > x_side)]
    dist, nearest = tree.query(arm)
    ring = np.flatnonzero((s_axis >= s_ring) & (s_axis <= s_cuff + 0.12))
    radius = np.full(len(ring), np.nan)
    for k, r in enumerate(ring):
        near = np.abs(s_axis[nearest] - s_axis[r]) <= 0.01
        if near.any():
            radius[k] = dist[near].max()
    radius = fill_missing(radius[None], axis=1)[0]
    inside = s_axis[ring] <= s_cuff + 0.01
    radius[~inside] = radius[inside][-1]
    radius = np.maximum.accumulate(radius[::-1])[::-1] + spec.loose_ease_m
    e_up, e_front = transported_frames(axis, np.array([0.0, 0.0, 1.0]),
                                       np.array([0.0, -1.0, 0.0]))
    # each armhole point joins the tube RING_GAP_M further out along the arm
    first = np.minimum(np.searchsorted(s_axis[ring], s_hole + RING_GAP_M), len(ring) - 1)
    sleeve, ring_m = sleeve_surface(f"sleeve.{side[0].upper()}", armhole, axis[ring],
                                    e_up[ring], e_front[ring], radius, first, phi, GRID_DM)
    k_cuff = int(np.argmin(np.abs(s_axis[ring] - s_cuff)))
    return sleeve, ring_m[:, k_cuff]


def _eased_radii(points, heights, centres, angles, ease) -> np.ndarray:
    """(GRID_ANGLES, len(heights)) slice radii, each height with its own ease (NaN where
    a slice finds no body); heights sharing an ease are sliced together."""
    radius = np.full((GRID_ANGLES, len(heights)), np.nan)
    for e in np.unique(np.round(ease, 4)):
        rows = np.flatnonzero(np.isclose(np.round(ease, 4), e))
        radius[:, rows] = slice_radius(points, heights[rows], centres[rows], angles,
                                       band=0.015, ease=float(e))
    return radius
