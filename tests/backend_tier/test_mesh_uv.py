"""``backend.mesh.uv``: xatlas atlases of a closed sphere, an open skirt (a flared
cylinder: needs a seam) and a wavy random grid have counter-clockwise faces of positive
UV area in ``[0, 1]``, no overlaps (``check_atlas``), bounded area stretch and padded
charts; faces keep their order (a planar grid maps to similar triangles); the check
catches overlapping charts, zero-area, flipped and cut faces; the mesh's scale does
not matter; ``dilate`` grows a ring of the given width without touching covered texels
or mixing charts; every MeshError."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_cdt, distance_transform_edt

from backend.mesh import MeshError
from backend.mesh.uv import (
    UVAtlas,
    chart_map,
    check_atlas,
    coverage_mask,
    dilate,
    unwrap,
)
from backend.render.mesh_utils import icosphere
from tests.backend_tier.mesh_helpers import perturbed_grid

SIZE, PADDING = 256, 4
STRETCH_BOUNDS = (0.75, 1.33)
"""Per-face (UV area / 3D area), over the atlas-wide ratio, must lie in these bounds.
Measured at 256..1024 texels: sphere 0.865..1.186, skirt 0.844..1.104, wavy grid
0.873..1.039."""

# ------------------------------------------------------------------------- meshes


def sphere():
    v, f = icosphere(3, dtype=torch.float64)
    return v.numpy(), f.numpy().astype(np.int64)


def skirt(rings: int = 12, segments: int = 48):
    """An open, flared cylinder (a skirt: waist radius 0.18 m, hem 0.35 m, 0.6 m long),
    counter-clockwise seen from outside."""
    t = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    h = np.linspace(0.0, 1.0, rings)
    r = 0.18 + 0.17 * h
    v = np.stack([np.outer(r, np.cos(t)), np.outer(r, np.sin(t)),
                  np.repeat(-0.6 * h[:, None], segments, axis=1)], axis=-1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(rings - 1), np.arange(segments), indexing="ij")
    a, b = i * segments + j, i * segments + (j + 1) % segments
    c, d = a + segments, b + segments
    f = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3),
                        np.stack([b, c, d], -1).reshape(-1, 3)])
    return v, f


def grid(n: int = 20, seed: int = 0, wavy: bool = True):
    """A jittered n x n Delaunay grid on the unit square (z = 0 or a wave)."""
    return perturbed_grid(seed=seed, n=n, wavy=wavy)


MESHES = {"sphere": sphere, "skirt": skirt, "grid": grid}


@pytest.fixture(scope="module")
def atlases():
    out = {}
    for name, make in MESHES.items():
        v, f = make()
        out[name] = (v, f, unwrap(v, f, texture_size=SIZE, padding_px=PADDING))
    return out


# ------------------------------------------------------------------------ measures


def uv_areas(uvs):
    uv = np.asarray(uvs, np.float64)
    e1, e2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    return 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])


def areas(v, f):
    p = v[f]
    return 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)


def angles(p):
    """(N, 3) interior angles (radians) of triangles (N, 3, d), corner by corner."""
    out = []
    for k in range(3):
        x, y = p[:, (k + 1) % 3] - p[:, k], p[:, (k + 2) % 3] - p[:, k]
        cos = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
        out.append(np.arccos(np.clip(cos, -1.0, 1.0)))
    return np.stack(out, axis=1)


def with_uvs(atlas: UVAtlas, uvs) -> UVAtlas:
    return dataclasses.replace(atlas, uvs=np.asarray(uvs, np.float32))


# ------------------------------------------------------------------------- unwrap


@pytest.mark.parametrize("name", list(MESHES))
def test_atlas_is_valid(atlases, name):
    v, f, atlas = atlases[name]
    assert atlas.uvs.shape == (len(f), 3, 2) and atlas.uvs.dtype == np.float32
    assert atlas.chart_of_face.shape == (len(f),) and atlas.chart_of_face.dtype == np.int32
    assert atlas.texture_size == SIZE and atlas.padding_px == PADDING
    assert (atlas.uvs >= 0).all() and (atlas.uvs <= 1).all()
    area = uv_areas(atlas.uvs)
    assert (area * SIZE**2 > 1e-3).all(), "every face gets UV area > 0, counter-clockwise"
    assert set(np.unique(atlas.chart_of_face)) == set(range(atlas.chart_count))
    assert check_atlas(atlas, f) == []
    assert atlas.utilisation == pytest.approx(area.sum())
    assert atlas.utilisation == pytest.approx(coverage_mask(atlas).mean(), abs=0.02)
    assert 0.3 < atlas.utilisation <= 1.0
    if name != "grid":  # closed, or a tube: needs a seam, so some vertex gets two UVs
        assert len(np.unique(atlas.uvs.reshape(-1, 2), axis=0)) > len(v)


@pytest.mark.parametrize("name", list(MESHES))
def test_stretch_is_bounded(atlases, name):
    v, f, atlas = atlases[name]
    ratio = uv_areas(atlas.uvs) / areas(v, f)
    ratio = ratio / (uv_areas(atlas.uvs).sum() / areas(v, f).sum())
    assert STRETCH_BOUNDS[0] < ratio.min() and ratio.max() < STRETCH_BOUNDS[1], (
        ratio.min(), ratio.max())
    # The density: UV area over 3D area is texels_per_metre^2 / S^2 on average.
    mean = uv_areas(atlas.uvs).sum() * SIZE**2 / areas(v, f).sum()
    assert math.sqrt(mean) == pytest.approx(atlas.texels_per_metre, rel=0.25)


@pytest.mark.parametrize("name", ["sphere", "skirt"])
def test_charts_are_padded(atlases, name):
    _, _, atlas = atlases[name]
    labels = chart_map(atlas)
    assert labels.shape == (SIZE, SIZE) and labels.dtype == np.int32
    assert set(np.unique(labels)) == {-1, *range(atlas.chart_count)}
    gap = np.inf
    for chart in range(atlas.chart_count):
        distance = distance_transform_edt(labels != chart)
        others = (labels >= 0) & (labels != chart)
        if others.any():
            gap = min(gap, distance[others].min())
    assert gap >= 2 * PADDING + 1, gap  # measured 2 * PADDING + 3 or more


def test_planar_grid_keeps_face_and_corner_order():
    v, f = grid(n=14, seed=3, wavy=False)
    rng = np.random.default_rng(0)
    f = f[rng.permutation(len(f))]
    f = np.stack([np.roll(row, k) for row, k in zip(f, rng.integers(0, 3, len(f)),
                                                   strict=True)])
    atlas = unwrap(v, f, texture_size=512, padding_px=2)
    assert check_atlas(atlas, f) == []
    # A flat chart is a similarity of the plane: each UV triangle has its 3D triangle's
    # angles, corner by corner, and one scale per chart.
    np.testing.assert_allclose(angles(atlas.uvs.astype(np.float64)), angles(v[f]), atol=2e-3)
    scale = np.linalg.norm(atlas.uvs[:, 1] - atlas.uvs[:, 0], axis=1) / np.linalg.norm(
        v[f[:, 1]] - v[f[:, 0]], axis=1)
    for chart in range(atlas.chart_count):
        s = scale[atlas.chart_of_face == chart]
        assert s.max() / s.min() < 1.01


def test_texture_size_sets_the_density():
    v, f = skirt()
    small = unwrap(v, f, texture_size=128, padding_px=1)
    large = unwrap(v, f, texture_size=512, padding_px=1)
    assert large.texels_per_metre / small.texels_per_metre == pytest.approx(4.0, rel=0.2)
    assert small.texture_size == 128 and check_atlas(small, f) == []


def test_scale_does_not_matter(atlases):
    v, f, atlas = atlases["sphere"]
    tiny = unwrap(v * 1e-3, f, texture_size=SIZE, padding_px=PADDING)  # 1 mm radius
    assert check_atlas(tiny, f) == []
    np.testing.assert_allclose(tiny.uvs, atlas.uvs, atol=1e-3)
    assert tiny.texels_per_metre == pytest.approx(1e3 * atlas.texels_per_metre, rel=1e-3)


# ---------------------------------------------------------------------- the check


def test_check_detects_overlapping_charts(atlases):
    _, f, atlas = atlases["sphere"]
    uvs = atlas.uvs.copy()
    a, b = atlas.chart_of_face == 0, atlas.chart_of_face == 1
    low_a, low_b = uvs[a].reshape(-1, 2).min(0), uvs[b].reshape(-1, 2).min(0)
    uvs[b] += low_a - low_b  # chart 1 moved onto chart 0
    uvs = np.clip(uvs, 0, 1)
    problems = check_atlas(with_uvs(atlas, uvs), f)
    assert any("charts overlap: 0 and 1" in p for p in problems), problems


def test_check_detects_zero_flipped_and_cut_faces(atlases):
    _, f, atlas = atlases["grid"]
    # A face well inside the grid: reflecting its corner 0 over the opposite edge folds
    # it onto its neighbour there, flips it and cuts it from its other neighbours.
    centre = atlas.uvs.mean(axis=1)
    face = int(np.argmin(np.linalg.norm(centre - centre.mean(0), axis=1)))
    uvs = atlas.uvs.astype(np.float64)
    a, b, c = uvs[face]
    d = (c - b) / np.linalg.norm(c - b)
    uvs[face, 0] = 2 * (b + d * ((a - b) @ d)) - a
    uvs[5] = uvs[5, 0]                       # zero area
    problems = check_atlas(with_uvs(atlas, uvs), f)
    assert any("face 5 has zero UV area" in p for p in problems), problems
    assert any(f"face {face} is flipped" in p for p in problems), problems
    assert any("chart 0 folds over itself" in p for p in problems), problems
    assert any("cut inside a chart" in p for p in problems), problems

    uvs = atlas.uvs.copy()
    uvs[7, 0] += 0.2 * (uvs[7].mean(0) - uvs[7, 0])  # shrunk: a gap inside the chart
    problems = check_atlas(with_uvs(atlas, uvs), f)
    assert len(problems) == 1 and "cut inside a chart" in problems[0], problems
    assert "(7, " in problems[0] or ", 7)" in problems[0], problems

    uvs = atlas.uvs.copy()
    uvs[3, 1] = (1.2, 0.5)
    assert any("outside [0, 1]" in p for p in check_atlas(with_uvs(atlas, uvs), f))
    assert check_atlas(atlas, f[:-1]) == [f"atlas has {len(f)} faces, the mesh {len(f) - 1}"]


# ------------------------------------------------------------------------- dilate


def test_dilate_grows_a_ring_and_keeps_covered_texels():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:48, :64]
    covered = ((yy - 20) ** 2 + (xx - 30) ** 2 < 90) | ((yy > 38) & (xx > 50))
    tex = np.where(covered[..., None], rng.uniform(0.2, 0.8, (48, 64, 3)), np.nan)
    out = dilate(tex.astype(np.float32), covered, 3)
    assert out.dtype == np.float32 and out.shape == tex.shape
    np.testing.assert_array_equal(out[covered], tex[covered].astype(np.float32))
    ring = distance_transform_cdt(~covered, metric="chessboard")
    assert np.isfinite(out[ring <= 3]).all()
    assert np.isnan(out[ring > 3]).all()
    grown = out[(ring >= 1) & (ring <= 3)]
    assert grown.min() >= 0.2 and grown.max() <= 0.8  # means of chart colours
    np.testing.assert_array_equal(dilate(tex, covered, 0), tex)


def test_dilated_atlas_does_not_bleed_across_seams(atlases):
    _, _, atlas = atlases["skirt"]
    labels = chart_map(atlas)
    colours = np.linspace(0.1, 0.9, atlas.chart_count)
    tex = np.where(labels[..., None] >= 0, colours[labels][..., None], 0.0)
    out = dilate(tex, labels >= 0, atlas.padding_px)
    # Every texel a bilinear lookup inside a chart can reach holds that chart's colour.
    for chart in range(atlas.chart_count):
        near = distance_transform_cdt(labels != chart, metric="chessboard") <= 1
        np.testing.assert_allclose(out[near, 0], colours[chart])


# --------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, match", [
    ({"texture_size": 1000}, "power of two"),
    ({"texture_size": 32}, "power of two"),
    ({"texture_size": 1024.0}, "texture_size must be an int"),
    ({"padding_px": -1}, r"padding_px must be in \[0, 64\]"),
    ({"padding_px": True}, "padding_px must be an int"),
])
def test_bad_options(kwargs, match):
    v, f = grid(n=4)
    with pytest.raises(MeshError, match=match):
        unwrap(v, f, **kwargs)


def test_bad_meshes():
    v, f = grid(n=5)
    collinear = np.concatenate([v, [[2.0, 0.0, 0.0], [3.0, 0.0, 0.0], [4.0, 0.0, 0.0]]])
    faces = np.concatenate([f, [[len(v), len(v) + 1, len(v) + 2]]])
    with pytest.raises(MeshError, match=f"face {len(f)} has zero area"):
        unwrap(collinear, faces)
    with pytest.raises(MeshError, match="index out of range"):
        unwrap(v, f + 1)
    with pytest.raises(MeshError, match="repeats a vertex"):
        unwrap(v, np.concatenate([f, [[0, 0, 1]]]))
    with pytest.raises(MeshError, match=r"vertices must have shape \(V, 3\)"):
        unwrap(v[:, :2], f)


def test_bad_check_and_dilate_arguments(atlases):
    _, f, atlas = atlases["grid"]
    with pytest.raises(MeshError, match="atlas must be a UVAtlas"):
        check_atlas(atlas.uvs, f)
    with pytest.raises(MeshError, match=r"faces must be an \(F, 3\) int array"):
        check_atlas(atlas, f.astype(np.float64))
    with pytest.raises(MeshError, match=r"atlas.uvs must have shape \(F, 3, 2\)"):
        coverage_mask(with_uvs(atlas, atlas.uvs[..., :1]))
    tex, cov = np.zeros((8, 8, 3)), np.ones((8, 8), bool)
    with pytest.raises(MeshError, match=r"texture must be an \(H, W, C\) float array"):
        dilate(tex[..., 0], cov, 1)
    with pytest.raises(MeshError, match=r"coverage must be an \(H, W\)"):
        dilate(tex, cov[:4], 1)
    with pytest.raises(MeshError, match="pixels must be an int >= 0"):
        dilate(tex, cov, -1)
