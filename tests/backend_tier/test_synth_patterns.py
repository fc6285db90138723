"""Sewing patterns for synthetic captures: every garment type on a decimated Anny body
(~1.2k vertices), coarse edges so the module stays fast; plus the geometry pieces
(mesher, flattening, body distance, textures, reproducible npz) on generated shapes."""

import math
import zipfile

import numpy as np
import pytest

from backend.body.anny_body import AnnyPoser
from backend.capture import GARMENT_TYPES as CAPTURE_GARMENT_TYPES
from backend.mesh.templates import GARMENT_SHAPES
from backend.synthetic import SynthError
from backend.synthetic.clearance import BodySurface, closest_point_on_triangles
from backend.synthetic.flatten import flatten_region
from backend.synthetic.measure import body_shape
from backend.synthetic.mesher import mesh_polygon
from backend.synthetic.npzio import write_npz
from backend.synthetic.patterns import (
    GARMENT_TYPES,
    PatternSettings,
    make_pattern,
    triangle_angles,
)
from backend.synthetic.surfaces import GridSurface, resample_meridians
from backend.synthetic.textures import TEXTURE_KINDS, make_texture, resolve_kind

TOPOLOGY = "notoes_collapse10pc"
EDGE_M = 0.05
MIN_ANGLE_DEG = 20.0
LOOSE = ("skirt", "flared_skirt", "dress")
TOPS = ("tshirt", "long_sleeve", "dress")


@pytest.fixture(scope="module")
def body():
    return AnnyPoser(topology=TOPOLOGY).body


@pytest.fixture(scope="module")
def patterns(body):
    return {g: make_pattern(body, g, PatternSettings(edge_m=EDGE_M)) for g in GARMENT_TYPES}


@pytest.fixture(scope="module")
def surface(body):
    return BodySurface(body.rest_vertices.astype(np.float64), body.faces.astype(np.int64))


def garment_frame(body, points):
    """Rest-space points in the pattern generator's frame (x left, y back, z up,
    origin between the hip joints)."""
    shape = body_shape(body)
    return (np.asarray(points, np.float64) - shape.origin) @ shape.axes.T


def edge_uses(faces):
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(e, axis=0, return_counts=True)
    return uniq, counts


def test_garment_types_are_the_capture_and_template_types():
    assert set(GARMENT_TYPES) == set(CAPTURE_GARMENT_TYPES) - {"template"}
    assert set(GARMENT_TYPES) == set(GARMENT_SHAPES)


@pytest.mark.parametrize("garment", GARMENT_TYPES)
def test_mesh_is_valid_with_well_shaped_triangles_near_the_edge_length(patterns, garment):
    p = patterns[garment]
    assert p.vertices.dtype == np.float32 and p.faces.dtype == np.int32
    v, f = p.vertices.astype(np.float64), p.faces
    assert np.isfinite(v).all()
    assert f.min() >= 0 and f.max() < len(v) and len(np.unique(f)) == len(v)
    area = np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1) / 2
    assert area.min() > 0.05 * EDGE_M**2                       # no degenerate triangles
    assert triangle_angles(v, f).min() > MIN_ANGLE_DEG
    uniq, counts = edge_uses(f)
    assert counts.max() <= 2                                    # manifold
    lengths = np.linalg.norm(v[uniq[:, 0]] - v[uniq[:, 1]], axis=1)
    assert abs(lengths.mean() / EDGE_M - 1) < 0.2
    assert sorted(set(p.face_panel.tolist())) == list(range(len(p.panel_names)))


@pytest.mark.parametrize("garment", GARMENT_TYPES)
def test_faces_are_consistently_oriented_and_face_away_from_the_body(patterns, surface,
                                                                     garment):
    p = patterns[garment]
    v, f = p.vertices.astype(np.float64), p.faces
    # consistent: every inner edge is walked once in each direction
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    _, counts = np.unique(directed, axis=0, return_counts=True)
    assert counts.max() == 1
    centre = v[f].mean(axis=1)
    normal = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    _, nearest = surface.signed_distance(centre)
    away = (normal * (centre - nearest)).sum(axis=1) > 0
    # the exceptions are bodice sides whose nearest body part is the hanging arm
    assert away.mean() > 0.95, away.mean()
    for k in range(len(p.panel_names)):
        assert away[p.face_panel == k].mean() > 0.9


@pytest.mark.parametrize("garment", GARMENT_TYPES)
def test_sewing_pairs_join_coinciding_border_vertices_of_two_panels_or_tube_sides(patterns,
                                                                                 garment):
    p = patterns[garment]
    assert p.sew_pairs.dtype == np.int32
    v, s = p.vertices.astype(np.float64), p.sew_pairs.astype(np.int64)
    assert len(s) > 0
    assert (s[:, 0] != s[:, 1]).all() and len(np.unique(s, axis=0)) == len(s)
    assert np.linalg.norm(v[s[:, 0]] - v[s[:, 1]], axis=1).max() < 0.002   # contract: ~3 cm
    uniq, counts = edge_uses(p.faces)
    border = np.unique(uniq[counts == 1])
    assert np.isin(s, border).all()                             # seams run along panel edges
    same = p.vertex_panel[s[:, 0]] == p.vertex_panel[s[:, 1]]
    # one panel sewn to itself only as a tube's two sides: far apart in the flat layout
    flat_gap = np.linalg.norm(p.flat[s[same, 0]] - p.flat[s[same, 1]], axis=1)
    assert (flat_gap > 0.1).all()
    if garment in ("tshirt", "long_sleeve"):
        assert same.sum() > 0                                   # the sleeves' underarm seams
    # every panel is sewn to something
    assert set(p.vertex_panel[s.ravel()].tolist()) == set(range(len(p.panel_names)))


@pytest.mark.parametrize("garment", GARMENT_TYPES)
def test_pinned_band_is_at_the_top_of_the_garment(body, patterns, garment):
    p = patterns[garment]
    w = p.pin_weight
    assert w.dtype == np.float32 and w.min() >= 0 and w.max() <= 1
    pinned = w > 0.5
    assert 0 < pinned.sum() < 0.4 * len(w)
    z = garment_frame(body, p.vertices)[:, 2]
    band = 0.16 if garment in TOPS else 0.08     # shoulders slope down from the neck
    assert z[pinned].min() > z.max() - band
    assert z[pinned].max() >= z.max() - 0.01


@pytest.mark.parametrize("garment", GARMENT_TYPES)
def test_uvs_lie_in_the_unit_square_without_overlaps_at_one_texel_density(patterns, garment):
    p = patterns[garment]
    assert p.uv.dtype == np.float32
    uv, f, v = p.uv.astype(np.float64), p.faces, p.vertices.astype(np.float64)
    assert uv.min() >= 0 and uv.max() <= 1
    t = uv[f]
    signed = ((t[:, 1, 0] - t[:, 0, 0]) * (t[:, 2, 1] - t[:, 0, 1])
              - (t[:, 1, 1] - t[:, 0, 1]) * (t[:, 2, 0] - t[:, 0, 0]))
    assert (signed > 0).all()                   # no flipped (self-overlapping) triangles
    boxes, density = [], []
    for k in range(len(p.panel_names)):
        mine = p.vertex_panel == k
        boxes.append((uv[mine].min(axis=0), uv[mine].max(axis=0)))
        faces = f[p.face_panel == k]
        area3 = np.linalg.norm(np.cross(v[faces[:, 1]] - v[faces[:, 0]],
                                        v[faces[:, 2]] - v[faces[:, 0]]), axis=1).sum()
        density.append(signed[p.face_panel == k].sum() / area3)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            (lo1, hi1), (lo2, hi2) = boxes[i], boxes[j]
            assert (hi1 < lo2).any() or (hi2 < lo1).any(), (p.panel_names[i], p.panel_names[j])
    assert max(density) / min(density) < 1.15


@pytest.mark.parametrize("garment", GARMENT_TYPES)
def test_no_vertex_is_inside_or_near_the_rest_body(patterns, surface, garment):
    distance, _ = surface.signed_distance(patterns[garment].vertices)
    assert distance.min() >= PatternSettings().min_clearance_m - 1e-4


@pytest.mark.parametrize("garment", LOOSE)
def test_loose_garments_span_the_gap_between_the_legs(body, patterns, surface, garment):
    p = patterns[garment]
    shape = body_shape(body)
    midline = shape.part("torso") & (np.abs(shape.points[:, 0]) < 0.015)
    crotch = shape.points[midline, 2].min()
    local = garment_frame(body, p.vertices)
    between = (np.abs(local[:, 0]) < 0.03) & (local[:, 2] < crotch - 0.03)
    assert between.sum() >= 4                   # in front of and behind the gap
    distance, _ = surface.signed_distance(p.vertices[between])
    assert distance.min() > 0.04                # hanging, not wrapped round each leg


@pytest.mark.parametrize("garment", GARMENT_TYPES)
def test_skinning_weights_are_normalised_over_the_body_bones(body, patterns, garment):
    p = patterns[garment]
    assert p.weight_indices.shape == p.weight_values.shape
    assert p.weight_indices.min() >= 0 and p.weight_indices.max() < body.bone_count
    np.testing.assert_allclose(p.weight_values.sum(axis=1), 1, atol=1e-4)


def test_sleeves_follow_the_arms(body, patterns):
    shape = body_shape(body)

    def sleeve(garment, tag):
        p = patterns[garment]
        return garment_frame(body, p.vertices)[p.vertex_panel == p.panel_names.index(tag)]

    for side, tag, sign in (("left", "sleeve.L", 1), ("right", "sleeve.R", -1)):
        long = sleeve("long_sleeve", tag)
        assert (sign * long[:, 0] > 0).all()
        wrist = shape.arm_axis(side)[2]
        assert np.linalg.norm(long - wrist, axis=1).min() < 0.08      # reaches the wrist
        short = sleeve("tshirt", tag)
        assert np.abs(short[:, 0]).max() < np.abs(long[:, 0]).max() - 0.1


def test_counts_grow_with_finer_edges(body, patterns):
    fine = make_pattern(body, "shorts", PatternSettings(edge_m=0.03))
    coarse = patterns["shorts"]
    ratio = fine.vertex_count / coarse.vertex_count
    assert 2.0 < ratio < 3.6                    # ~ (5/3)^2 = 2.8
    assert fine.panel_names == coarse.panel_names == ("front.L", "back.L", "front.R", "back.R")


def test_bad_requests_are_refused_with_the_setting_at_fault(body):
    with pytest.raises(SynthError, match="unknown garment type 'hat'"):
        make_pattern(body, "hat")
    with pytest.raises(SynthError, match="edge length must be between"):
        PatternSettings(edge_m=0.5)


# ---------------------------------------------------------------- geometry pieces


def resample_outline(corners, h):
    pieces = []
    for a, b in zip(corners, np.roll(corners, -1, axis=0), strict=True):
        n = max(1, round(np.linalg.norm(b - a) / h))
        pieces.append(a + (b - a) * np.arange(n)[:, None] / n)
    return np.concatenate(pieces)


def test_mesher_keeps_the_outline_and_fills_a_concave_panel_with_good_triangles():
    corners = np.array([[0, 0], [0.5, 0], [0.5, 0.6], [0.3, 0.6], [0.3, 0.3], [0.2, 0.3],
                        [0.2, 0.6], [0, 0.6]], float)
    outline = resample_outline(corners, 0.02)
    points, tri = mesh_polygon(outline, 0.02)
    np.testing.assert_array_equal(points[:len(outline)], outline)
    angles = triangle_angles(np.c_[points, np.zeros(len(points))], tri)
    assert angles.min() > 30
    uniq, counts = edge_uses(tri)
    border = {tuple(e) for e in uniq[counts == 1].tolist()}
    wanted = {tuple(sorted((k, (k + 1) % len(outline)))) for k in range(len(outline))}
    assert border == wanted
    area = 0.5 * 0.6 - 0.1 * 0.3
    p = points[tri]
    covered = 0.5 * np.abs((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                           - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0])).sum()
    assert covered == pytest.approx(area, rel=1e-9)
    with pytest.raises(SynthError, match="not counter-clockwise"):
        mesh_polygon(outline[::-1], 0.02)


def test_a_cone_flattens_without_stretch():
    # a cone is developable: the flat layout keeps every length
    t = np.linspace(0, 1, 50)
    radius = 0.2 + 0.4 * t
    lines = [np.stack([radius * math.cos(a), radius * math.sin(a), -0.8 * t], axis=1)
             for a in np.linspace(0, 2 * math.pi, 128, endpoint=False)]
    grid, lengths = resample_meridians(lines, 0.005)
    surface = GridSurface(points=grid, dm=0.005, lengths=lengths, name="cone")
    outline = np.array([[0.5, 0.1], [2.5, 0.1], [2.5, 0.7], [0.5, 0.7]])
    flat = flatten_region(surface, outline, outward=-1)
    a, m = np.meshgrid(np.linspace(0.6, 2.4, 12), np.linspace(0.15, 0.65, 9), indexing="ij")
    a, m = a.ravel(), m.ravel()
    xyz, uv = surface.at(a, m), flat.forward(a, m)
    i, j = np.triu_indices(len(a), 1)
    d3 = np.linalg.norm(xyz[i] - xyz[j], axis=1)
    d2 = np.linalg.norm(uv[i] - uv[j], axis=1)
    near = d3 < 0.06                 # short distances: chords of the surface ~ flat ones
    assert np.abs(d2[near] / d3[near] - 1).max() < 0.025
    back = flat.inverse(uv)
    np.testing.assert_allclose(back, np.stack([a, m], 1), atol=2e-3)


def test_closest_points_and_signs_match_brute_force():
    rng = np.random.default_rng(0)
    tri = rng.normal(size=(300, 3, 3))
    p = rng.normal(size=(300, 3)) * 1.5
    q = closest_point_on_triangles(p, tri)
    u, w = np.meshgrid(np.linspace(0, 1, 61), np.linspace(0, 1, 61))
    inside = u + w <= 1
    samples = (tri[:, None, 0] + u[inside][None, :, None] * (tri[:, None, 1] - tri[:, None, 0])
               + w[inside][None, :, None] * (tri[:, None, 2] - tri[:, None, 0]))
    brute = np.linalg.norm(samples - p[:, None], axis=2).min(axis=1)
    exact = np.linalg.norm(p - q, axis=1)
    assert (exact <= brute + 1e-12).all() and (brute - exact).max() < 0.02
    # a closed convex polyhedron close to the unit sphere: sign = outside
    from scipy.spatial import ConvexHull

    s = rng.normal(size=(800, 3))
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    faces = ConvexHull(s).simplices
    normal = np.cross(s[faces[:, 1]] - s[faces[:, 0]], s[faces[:, 2]] - s[faces[:, 0]])
    flip = (normal * s[faces].mean(axis=1)).sum(axis=1) < 0
    faces[flip] = faces[flip][:, ::-1]
    sphere = BodySurface(s, faces)
    points = rng.normal(size=(2000, 3))
    radius = np.linalg.norm(points, axis=1)
    clear = np.abs(radius - 1) > 0.05
    d, _ = sphere.signed_distance(points[clear])
    assert ((d > 0) == (radius[clear] > 1)).all()
    moved, which = sphere.push_out(points / (2 * radius.max()), 0.01)
    assert which.all()
    assert sphere.signed_distance(moved)[0].min() > 0.01 - 1e-6


def test_textures_are_reproducible_with_visible_contrast():
    for kind in TEXTURE_KINDS:
        a, drawn = make_texture(kind, 128, 11)
        b, _ = make_texture(kind, 128, 11)
        c, _ = make_texture(kind, 128, 12)
        assert drawn == kind and a.shape == (128, 128, 3) and a.dtype == np.uint8
        assert np.array_equal(a, b) and not np.array_equal(a, c)
        luminance = a.astype(np.float64) @ [0.2126, 0.7152, 0.0722] / 255
        assert np.percentile(luminance, 95) - np.percentile(luminance, 5) > 0.06, kind
    assert [resolve_kind("auto", s) for s in range(5)] == [*TEXTURE_KINDS, TEXTURE_KINDS[0]]
    with pytest.raises(SynthError, match="unknown texture kind 'velvet'"):
        make_texture("velvet", 64, 0)
    with pytest.raises(SynthError, match="texture size"):
        make_texture("plain", 10, 0)


def test_npz_files_are_byte_identical_whenever_written(tmp_path):
    arrays = {"a": np.arange(5, dtype=np.float32), "names": np.array(["x", "yz"])}
    write_npz(tmp_path / "one.npz", arrays)
    write_npz(tmp_path / "two.npz", arrays)
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.npz") as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    with np.load(tmp_path / "one.npz", allow_pickle=False) as npz:
        assert npz["names"].tolist() == ["x", "yz"]
