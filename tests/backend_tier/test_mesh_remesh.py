"""``backend.mesh.remesh``: the full split is the 1-to-4 subdivision; partial splits of
irregular open meshes stay conforming, manifold, flat and oriented, checked face by
face against a naive reference; faces away from the selection are untouched; the
boundary keeps its polyline; flips lower the valence deviation without folds or
duplicate edges; ``max_faces``; the attribute transfers; every MeshError."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial import Delaunay

from backend.mesh import MeshError
from backend.mesh.remesh import (
    FLIP_MIN_ANGLE_DEG,
    RemeshResult,
    interpolate_vertex_values,
    remesh,
    transfer_face_values,
)
from backend.mesh.topology import edges, face_normals
from backend.render.mesh_utils import icosphere
from tests.backend_tier.mesh_helpers import ccw_faces, perturbed_grid

# ------------------------------------------------------------------------- meshes


def sphere(level: int = 2, seed: int | None = None):
    v, f = icosphere(level, dtype=torch.float64)
    v, f = v.numpy(), f.numpy().astype(np.int64)
    if seed is not None:  # radial noise keeps it star-shaped: normals stay outward
        v = v * np.random.default_rng(seed).uniform(0.9, 1.1, size=(len(v), 1))
    return v, f


def random_disc(seed: int = 1, points: int = 150):
    """Delaunay of random points in a disc plus a boundary ring: slivers included."""
    rng = np.random.default_rng(seed)
    r, t = np.sqrt(rng.uniform(0, 0.9, points)), rng.uniform(0, 2 * np.pi, points)
    ring = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    xy = np.concatenate([np.column_stack([r * np.cos(t), r * np.sin(t)]),
                         np.column_stack([np.cos(ring), np.sin(ring)])])
    return np.column_stack([xy, np.zeros(len(xy))]), ccw_faces(xy, Delaunay(xy).simplices)


def triangle_lattice(n: int = 8):
    """Equilateral triangles (side 1) on an n x n lattice patch, planar, CCW from +z."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    xy = np.column_stack([(i + 0.5 * j).ravel(), (j * math.sqrt(3) / 2).ravel()])
    idx = (i * n + j)[:-1, :-1].ravel()
    faces = np.concatenate([np.column_stack([idx, idx + n, idx + 1]),
                            np.column_stack([idx + n, idx + n + 1, idx + 1])])
    return np.column_stack([xy, np.zeros(len(xy))]), ccw_faces(xy, faces)


# ------------------------------------------------------------------------ measures


def areas(v, f):
    return 0.5 * np.linalg.norm(face_normals(v, f, normalise=False), axis=1)


def min_angle_deg(v, f):
    p = v[f]
    worst = np.inf
    for k in range(3):
        x, y = p[:, (k + 1) % 3] - p[:, k], p[:, (k + 2) % 3] - p[:, k]
        cos = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
        worst = min(worst, np.degrees(np.arccos(np.clip(cos, -1, 1))).min())
    return worst


def edge_face_counts(f):
    """(E, 2) edges and (E,) number of faces using each."""
    all_edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    return np.unique(all_edges, axis=0, return_counts=True)


def boundary_edges(f):
    e, counts = edge_face_counts(f)
    return e[counts == 1]


def valence_deviation(f, n_vertices):
    """sum over used vertices of |valence - target|, target 4 on a boundary, 6 inside."""
    e = edges(f)
    valence = np.bincount(e.ravel(), minlength=n_vertices)
    target = np.full(n_vertices, 6)
    target[np.unique(boundary_edges(f))] = 4
    used = np.unique(f)
    return int(np.abs(valence - target)[used].sum())


def assert_valid(r: RemeshResult, v, f):
    """Manifold edges, no degenerate or duplicate faces, no unused vertex, old vertices
    first and unchanged, dtypes and shapes as documented."""
    assert r.vertices.dtype == np.float64 and r.faces.dtype == np.int32
    assert r.vertex_parents.dtype == np.int64 and r.face_parent.dtype == np.int64
    assert r.vertex_parents.shape == (r.split_edges, 2)
    assert r.vertices.shape == (len(v) + r.split_edges, 3)
    assert r.face_parent.shape == (len(r.faces),)
    np.testing.assert_array_equal(r.vertices[:len(v)], v)
    _, counts = edge_face_counts(r.faces)
    assert counts.max() <= 2, "an edge with more than two faces"
    assert len(np.unique(np.sort(r.faces, axis=1), axis=0)) == len(r.faces), "duplicate face"
    assert (areas(r.vertices, r.faces) > 1e-6 * areas(v, f).min()).all(), "degenerate face"
    assert len(np.unique(r.faces)) == len(r.vertices), "unused vertex"


def on_segment(p, a, b, tol=1e-9):
    """(N,) whether points p lie on segments a-b (all (N, 3))."""
    ab, ap = b - a, p - a
    t = (ap * ab).sum(1) / (ab * ab).sum(1)
    return (np.linalg.norm(np.cross(ab, ap), axis=1) <= tol * np.linalg.norm(ab, axis=1)) \
        & (t >= -tol) & (t <= 1 + tol)


def on_polyline(points, v, segments, tol=1e-9):
    """(N,) whether each point lies on one of the segments (pairs of vertex ids)."""
    hits = np.zeros(len(points), bool)
    for a, b in segments:
        n = len(points)
        hits |= on_segment(points, np.broadcast_to(v[a], (n, 3)), np.broadcast_to(v[b], (n, 3)),
                           tol)
    return hits


def left_half(v, f):
    return v[f].mean(axis=1)[:, 0] < 0.4


# --------------------------------------------------------------------- full split


def test_splitting_every_face_of_an_icosphere_is_the_one_to_four_subdivision():
    v, f = sphere(2)
    r = remesh(v, f, np.ones(len(f), bool), 0.0, flip=False)
    assert_valid(r, v, f)
    n_edges = len(edges(f))
    assert r.split_edges == n_edges and r.flipped_edges == 0
    assert len(r.faces) == 4 * len(f)
    # Every new vertex is the midpoint of its parents, which are an edge of the input.
    p = r.vertex_parents
    np.testing.assert_allclose(r.vertices[len(v):], 0.5 * (v[p[:, 0]] + v[p[:, 1]]), atol=1e-15)
    np.testing.assert_array_equal(np.sort(p, axis=1), edges(f))
    # Each parent has exactly four children: flat pieces of it, same orientation.
    assert (np.bincount(r.face_parent, minlength=len(f)) == 4).all()
    np.testing.assert_array_equal(r.face_parent[:len(f)], np.arange(len(f)))
    child_area = np.bincount(r.face_parent, weights=areas(r.vertices, r.faces))
    np.testing.assert_allclose(child_area, areas(v, f), rtol=1e-12)
    np.testing.assert_allclose(areas(r.vertices, r.faces).sum(), areas(v, f).sum(), rtol=1e-12)
    cos = (face_normals(r.vertices, r.faces) * face_normals(v, f)[r.face_parent]).sum(1)
    np.testing.assert_allclose(cos, 1.0, atol=1e-12)
    # Euler characteristic of a sphere, and the children keep all angles (4 similar ones).
    assert len(r.vertices) - len(edges(r.faces)) + len(r.faces) == 2
    np.testing.assert_allclose(min_angle_deg(r.vertices, r.faces), min_angle_deg(v, f),
                               rtol=1e-9)


def test_children_match_a_naive_per_face_reference():
    """flip=False: face by face, the children are 1 + (split edges of the parent) faces
    made of the parent's corners and the midpoints of its split edges, tiling it."""
    for v, f in (perturbed_grid(3), random_disc(4), perturbed_grid(5, wavy=True)):
        r = remesh(v, f, left_half(v, f), 0.05, flip=False)
        assert 0 < r.split_edges < len(edges(f))
        mid_of = {tuple(sorted(pair)): len(v) + j for j, pair in enumerate(r.vertex_parents)}
        child_area = np.bincount(r.face_parent, weights=areas(r.vertices, r.faces))
        normals, new_normals = face_normals(v, f), face_normals(r.vertices, r.faces)
        for i, face in enumerate(f):
            children = np.flatnonzero(r.face_parent == i)
            mids = [mid_of[key] for key in (tuple(sorted((face[k], face[(k + 1) % 3])))
                                            for k in range(3)) if key in mid_of]
            assert len(children) == 1 + len(mids)
            assert set(r.faces[children].ravel()) == set(face) | set(mids)
            assert np.isclose(child_area[i], areas(v, f)[i], rtol=1e-9)
            assert (new_normals[children] @ normals[i] > 1 - 1e-9).all()
            if not mids:
                np.testing.assert_array_equal(r.faces[i], face)


# ------------------------------------------------------------------ partial splits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partial_refinement_of_an_irregular_open_mesh_is_conforming(seed):
    v, f = perturbed_grid(seed)
    mask = left_half(v, f)
    r = remesh(v, f, mask, 0.5 * np.median(np.linalg.norm(v[f[:, 0]] - v[f[:, 1]], axis=1)))
    assert_valid(r, v, f)
    assert r.split_edges > 20 and r.flipped_edges > 0
    # Planar: the pieces tile the same square (no gap, no overlap), all facing +z.
    np.testing.assert_allclose(areas(r.vertices, r.faces).sum(), 1.0, rtol=1e-12)
    assert (face_normals(r.vertices, r.faces)[:, 2] > 1 - 1e-12).all()
    # No T-junction: a hanging midpoint would leave a one-face edge inside the square.
    b = boundary_edges(r.faces)
    mid = r.vertices[b].mean(axis=1)
    assert on_polyline(mid, v, boundary_edges(f)).all()
    np.testing.assert_allclose(
        np.linalg.norm(r.vertices[b[:, 0]] - r.vertices[b[:, 1]], axis=1).sum(), 4.0,
        rtol=1e-12)
    # Smallest angle. The input's is 16-25 degrees. A 1-to-4 split keeps the angles;
    # splitting one or two edges can lower them (bisecting an arbitrary edge: to about
    # a third in the worst case; measured here >= 0.55 x the input's); a flip never
    # goes below min(the pair's smallest angle, FLIP_MIN_ANGLE_DEG = 10). Measured on
    # seeds 0-19 with thresholds 0, 0.5 and 1 x the median edge: the result's smallest
    # angle is >= min(0.55 x the input's, 10.08 degrees). Stated bound:
    before, after = min_angle_deg(v, f), min_angle_deg(r.vertices, r.faces)
    assert after >= min(0.5 * before, FLIP_MIN_ANGLE_DEG) - 1e-9, (before, after)
    unflipped = remesh(v, f, mask, 0.5 * np.median(
        np.linalg.norm(v[f[:, 0]] - v[f[:, 1]], axis=1)), flip=False)
    assert after >= min(min_angle_deg(unflipped.vertices, unflipped.faces),
                        FLIP_MIN_ANGLE_DEG) - 1e-9


def test_slivers_and_several_components():
    """A disc with slivers (smallest angle ~1 degree) next to a closed sphere."""
    vd, fd = random_disc(2)
    vs, fs = sphere(1, seed=3)
    v = np.concatenate([vd, vs + [3.0, 0.0, 0.0]])
    f = np.concatenate([fd, fs + len(vd)])
    mask = np.zeros(len(f), bool)
    mask[::3] = True
    r = remesh(v, f, mask, 0.0)
    assert_valid(r, v, f)
    assert r.split_edges > 0 and r.flipped_edges > 0
    disc = (r.vertices[r.faces][:, :, 0] < 2.0).all(axis=1)
    np.testing.assert_allclose(areas(r.vertices, r.faces[disc]).sum(), areas(vd, fd).sum(),
                               rtol=1e-12)
    assert (face_normals(r.vertices, r.faces[disc])[:, 2] > 0.999).all()
    ball = r.faces[~disc]
    centre = r.vertices[ball].mean(axis=1) - [3.0, 0.0, 0.0]
    assert ((face_normals(r.vertices, ball) * centre).sum(1) > 0).all()
    assert min_angle_deg(r.vertices, r.faces) >= min(0.5 * min_angle_deg(v, f), 10.0)
    # Still one hole in the disc, the sphere still closed.
    assert len(boundary_edges(r.faces)) == len(boundary_edges(f)) + sum(
        on_polyline(r.vertices[len(v):], v, boundary_edges(f)))


@pytest.mark.parametrize("flip", [False, True])
def test_faces_away_from_the_selection_keep_their_vertices_and_index(flip):
    v, f = perturbed_grid(4)
    r = remesh(v, f, left_half(v, f), 0.0, flip=flip)
    assert_valid(r, v, f)
    # Faces that share no vertex with a split face (one whose edge got a midpoint).
    split_pairs = r.vertex_parents
    has_split = np.zeros(len(f), bool)
    for k in range(3):
        pairs = np.sort(np.column_stack([f[:, k], f[:, (k + 1) % 3]]), axis=1)
        has_split |= (pairs[:, None, :] == split_pairs[None]).all(-1).any(1)
    near = np.isin(f, np.unique(f[has_split])).any(axis=1)
    far = np.flatnonzero(~near)
    assert len(far) > 50
    np.testing.assert_array_equal(r.faces[far], f[far])
    np.testing.assert_array_equal(r.face_parent[far], far)


def test_the_boundary_keeps_its_polyline_on_a_curved_patch():
    v, f = perturbed_grid(6, wavy=True)
    c = v[f].mean(axis=1)
    mask = (c[:, 0] < 0.3) | (c[:, 1] > 0.8)  # touches three sides of the square
    r = remesh(v, f, mask, 0.0)
    assert_valid(r, v, f)
    old_b, new_b = boundary_edges(f), boundary_edges(r.faces)
    assert len(new_b) > len(old_b)  # some boundary edges got their midpoints
    # Each new boundary edge is half or all of an old boundary edge ...
    for a, b in new_b:
        pa, pb = r.vertices[a], r.vertices[b]
        assert on_polyline(np.stack([pa, pb, 0.5 * (pa + pb)]), v, old_b).all()
    # ... all old boundary vertices stay on the boundary, and its length is unchanged.
    assert set(np.unique(old_b)) <= set(np.unique(new_b))
    length = np.linalg.norm(np.diff(r.vertices[new_b], axis=1), axis=-1).sum()
    np.testing.assert_allclose(length, np.linalg.norm(np.diff(v[old_b], axis=1), axis=-1).sum(),
                               rtol=1e-12)
    # The new vertices on it are midpoints of old boundary edges.
    new_on_b = np.unique(new_b)[np.unique(new_b) >= len(v)]
    old_keys = {tuple(e) for e in old_b}
    for j in new_on_b - len(v):
        assert tuple(r.vertex_parents[j]) in old_keys


# -------------------------------------------------------------------------- flips


@pytest.mark.parametrize("mesh", ["grid", "sphere"])
def test_flips_lower_the_valence_deviation_without_folds_or_duplicate_edges(mesh):
    if mesh == "grid":
        v, f = perturbed_grid(7)
        mask = left_half(v, f)
    else:
        v, f = sphere(2, seed=8)
        mask = v[f].mean(axis=1)[:, 2] > 0.2
    # Splitting only the longer half of the edges leaves many 1- and 2-edge splits,
    # whose new vertices have valence 4 or 5: work for the flips.
    threshold = float(np.median(np.linalg.norm(v[edges(f)[:, 0]] - v[edges(f)[:, 1]], axis=1)))
    plain = remesh(v, f, mask, threshold, flip=False)
    r = remesh(v, f, mask, threshold, flip=True)
    assert_valid(r, v, f)
    assert r.split_edges == plain.split_edges and r.flipped_edges > 5
    np.testing.assert_array_equal(r.vertices, plain.vertices)  # flips move no vertex
    assert len(r.faces) == len(plain.faces)
    n = len(r.vertices)
    assert valence_deviation(r.faces, n) < valence_deviation(plain.faces, n)
    changed = np.flatnonzero((np.sort(r.faces, 1) != np.sort(plain.faces, 1)).any(1))
    assert len(changed) > 0
    normals = face_normals(r.vertices, r.faces)
    if mesh == "grid":
        assert (normals[:, 2] > 1 - 1e-12).all()
        np.testing.assert_allclose(areas(r.vertices, r.faces).sum(), 1.0, rtol=1e-12)
    else:
        centroid = r.vertices[r.faces].mean(axis=1)
        assert ((normals * centroid).sum(1) > 0).all()  # outward: nothing folded over
        _, counts = edge_face_counts(r.faces)
        assert (counts == 2).all()  # closed: every edge has exactly two faces
        assert len(r.vertices) - len(edges(r.faces)) + len(r.faces) == 2
    # Each flipped face still faces like the face it came from.
    parent_normals = face_normals(v, f)[r.face_parent]
    assert ((normals[changed] * parent_normals[changed]).sum(1) > 0.5).all()
    if mesh == "grid":
        # A face changed by one flip has its centroid in its parent; after a chain of
        # flips only near it (measured: 97-100% inside on seeds 0-5).
        centroid = r.vertices[r.faces[changed]].mean(axis=1)
        corners = v[f[r.face_parent[changed]]]
        side = [np.cross(corners[:, (k + 1) % 3] - corners[:, k],
                         centroid - corners[:, k])[:, 2] for k in range(3)]
        assert (np.min(side, axis=0) >= -1e-12).mean() >= 0.9
    assert min_angle_deg(r.vertices, r.faces) >= min(
        min_angle_deg(plain.vertices, plain.faces), FLIP_MIN_ANGLE_DEG) - 1e-9


def test_a_flip_never_recreates_an_existing_edge(monkeypatch):
    """Vertex 0 sits inside triangle 1-2-3 (valence 3); vertex 1 also carries a fan
    (valence 10), 2 and 3 are boundary vertices of valence 3. Flipping 0-1 would lower
    the valence deviation by 2 but recreate edge 2-3 (and face 0-2-3 reversed). The
    fold guard rejects that flip too, so it is switched off here: the existing-edge
    check alone must."""
    from backend.mesh import remesh as remesh_module

    monkeypatch.setattr(remesh_module, "FLIP_MIN_COS", -2.0)  # accepts any normal
    arc = np.radians(np.linspace(30, 150, 7))
    xy = np.concatenate([[[0.0, 0.3], [0.0, 1.0], [-1.0, 0.0], [1.0, 0.0]],
                         np.column_stack([np.cos(arc), 1.0 + np.sin(arc)])])
    f = ccw_faces(xy, np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1]] + [[1, 4 + i, 5 + i]
                                                               for i in range(6)]))
    v = np.column_stack([xy, np.zeros(len(xy))])
    faces, parent = f.copy(), np.arange(len(f))
    remesh_module._flip(v, faces, parent, np.ones(len(f), bool))
    _, counts = edge_face_counts(faces)
    assert counts.max() <= 2
    assert len(np.unique(np.sort(faces, axis=1), axis=0)) == len(faces)
    np.testing.assert_array_equal(faces[:3], f[:3])  # the star of vertex 0 is untouched


def test_flip_keeps_a_closed_icosphere_closed():
    v, f = sphere(3)
    mask = np.zeros(len(f), bool)
    mask[np.random.default_rng(9).permutation(len(f))[:len(f) // 6]] = True
    r = remesh(v, f, mask, 0.0)
    assert_valid(r, v, f)
    assert r.flipped_edges > 0
    _, counts = edge_face_counts(r.faces)
    assert (counts == 2).all()
    assert len(r.vertices) - len(edges(r.faces)) + len(r.faces) == 2
    np.testing.assert_allclose(np.linalg.norm(r.vertices[:len(v)], axis=1), 1.0)


# ------------------------------------------------------------------ limits, no-ops


def test_an_edge_threshold_above_every_edge_changes_nothing():
    v, f = perturbed_grid(0)
    r = remesh(v, f, np.ones(len(f), bool), 10.0)
    np.testing.assert_array_equal(r.vertices, v)
    np.testing.assert_array_equal(r.faces, f)
    np.testing.assert_array_equal(r.face_parent, np.arange(len(f)))
    assert r.vertex_parents.shape == (0, 2) and r.split_edges == r.flipped_edges == 0
    # So does an empty selection, and max_faces = F.
    for kwargs in ({"face_mask": np.zeros(len(f), bool), "min_edge_len": 0.0},
                   {"face_mask": np.ones(len(f), bool), "min_edge_len": 0.0,
                    "max_faces": len(f)}):
        r = remesh(v, f, **kwargs)
        np.testing.assert_array_equal(r.faces, f)
        assert len(r.vertices) == len(v)


def test_only_edges_longer_than_the_threshold_of_selected_faces_split():
    v, f = random_disc(5)
    mask = left_half(v, f)
    threshold = 0.2
    r = remesh(v, f, mask, threshold, flip=False)
    p = r.vertex_parents
    assert (np.linalg.norm(v[p[:, 0]] - v[p[:, 1]], axis=1) > threshold).all()
    selected_edges = {tuple(e) for e in edges(f[mask])}
    assert {tuple(e) for e in p} <= selected_edges
    expected = [e for e in selected_edges if np.linalg.norm(v[e[0]] - v[e[1]]) > threshold]
    assert r.split_edges == len(expected)


@pytest.mark.parametrize("max_faces", [300, 333, 400])
def test_max_faces_is_respected_longest_edges_first(max_faces):
    v, f = perturbed_grid(1)
    mask = np.ones(len(f), bool)
    full = remesh(v, f, mask, 0.0)
    assert len(full.faces) > 400
    r = remesh(v, f, mask, 0.0, max_faces=max_faces)
    assert_valid(r, v, f)
    assert len(f) < len(r.faces) <= max_faces
    np.testing.assert_allclose(areas(r.vertices, r.faces).sum(), 1.0, rtol=1e-12)
    b = boundary_edges(r.faces)
    assert on_polyline(r.vertices[b].mean(axis=1), v, boundary_edges(f)).all()
    # The split edges are the longest ones, and one more would pass the bound.
    length = np.linalg.norm(v[edges(f)[:, 0]] - v[edges(f)[:, 1]], axis=1)
    split = np.linalg.norm(v[r.vertex_parents[:, 0]] - v[r.vertex_parents[:, 1]], axis=1)
    assert split.min() >= np.sort(length)[::-1][r.split_edges]
    _, counts = edge_face_counts(f)
    next_edge = np.argsort(-length, kind="stable")[r.split_edges]
    assert len(r.faces) + counts[next_edge] > max_faces


# ---------------------------------------------------------------- value transfers


def test_interpolated_vertex_values_reproduce_a_linear_field():
    v, f = perturbed_grid(2, wavy=True)
    r = remesh(v, f, left_half(v, f), 0.0)
    w = np.array([[0.3, -1.2], [2.0, 0.5], [-0.7, 0.1]])
    field = v @ w + [1.0, -2.0]  # (V, 2), linear in the position
    out = interpolate_vertex_values(r, field)
    assert out.shape == (len(r.vertices), 2) and out.dtype == np.float64
    np.testing.assert_allclose(out, r.vertices @ w + [1.0, -2.0], atol=1e-12)
    np.testing.assert_allclose(interpolate_vertex_values(r, v), r.vertices, atol=0)
    # Trailing shapes and float32 pass through; e.g. skinning weights stay normalised.
    weights = np.random.default_rng(0).dirichlet(np.ones(4), size=len(v)).astype(np.float32)
    out = interpolate_vertex_values(r, weights.reshape(-1, 2, 2))
    assert out.shape == (len(r.vertices), 2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out.reshape(-1, 4).sum(1), 1.0, rtol=1e-6)


def test_transferred_face_values_keep_constants_and_parents():
    v, f = triangle_lattice(8)
    mask = np.zeros(len(f), bool)  # scattered: 1-, 2- and 3-edge splits all occur
    mask[np.random.default_rng(0).permutation(len(f))[:len(f) // 5]] = True
    r = remesh(v, f, mask, 0.0, flip=False)
    per_parent = np.bincount(r.face_parent, minlength=len(f))
    assert {1, 2, 3, 4} <= set(per_parent)
    # k = 1 on a regular planar mesh: every child's nearest old centroid is its parent's.
    values = np.random.default_rng(1).normal(size=(len(f), 3, 3))
    out = transfer_face_values(v, f, r.vertices, r.faces, values, k=1)
    assert out.shape == (len(r.faces), 3, 3)
    np.testing.assert_array_equal(out, values[r.face_parent])
    # Constants stay constant for any k (e.g. identity Jacobians), float32 stays float32.
    identity = np.broadcast_to(np.eye(3, dtype=np.float32), (len(f), 3, 3))
    for k in (3, 5):
        out = transfer_face_values(v, f, r.vertices, r.faces, identity, k=k)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, np.broadcast_to(np.eye(3), out.shape), atol=1e-6)
    # A face that did not change gets its own value exactly; the others an IDW mean
    # inside the range of the values.
    values = np.random.default_rng(2).uniform(size=len(f))
    out = transfer_face_values(v, f, r.vertices, r.faces, values, k=3)
    kept = np.flatnonzero(per_parent == 1)
    np.testing.assert_array_equal(out[kept], values[kept])
    assert values.min() <= out.min() and out.max() <= values.max()


def test_transfer_weights_nearer_centroids_more():
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    f = np.array([[0, 1, 2], [1, 3, 2]])
    nv = np.concatenate([v, [[0.5, 0.0, 0.0]]])
    nf = np.array([[0, 4, 2]])  # centroid (1/6, 1/3): nearer face 0's (1/3, 1/3)
    out = transfer_face_values(v, f, nv, nf, np.array([0.0, 1.0]), k=2)
    d0, d1 = np.hypot(1 / 6, 0), np.hypot(1 / 2, 1 / 3)
    np.testing.assert_allclose(out, [(1 / d1) / (1 / d0 + 1 / d1)], rtol=1e-12)


# ------------------------------------------------------------------------- errors


def _raises(match, fn, *args, **kwargs):
    with pytest.raises(MeshError, match=match):
        fn(*args, **kwargs)


def test_bad_inputs_are_rejected_with_the_culprit_named():
    v, f = perturbed_grid(0)
    mask = np.ones(len(f), bool)
    _raises(r"vertices must have shape \(V, 3\).*got \(144, 2\)", remesh, v[:, :2], f, mask, 0.1)
    _raises(r"faces must have shape \(F, 3\).*got \(5, 4\)", remesh, v, np.zeros((5, 4), int),
            mask[:5], 0.1)
    _raises(r"faces must be integer", remesh, v, f.astype(float), mask, 0.1)
    bad = f.copy()
    bad[3, 1] = len(v)
    _raises(r"out of range \[0, 144\) in face 3 ", remesh, v, bad, mask, 0.1)
    bad = f.copy()
    bad[4, 1] = bad[4, 0]
    _raises(r"face 4 repeats a vertex", remesh, v, bad, mask, 0.1)
    nan = v.copy()
    nan[7, 2] = np.inf
    _raises(r"vertices must be finite; vertex 7 is not", remesh, nan, f, mask, 0.1)
    _raises(rf"face_mask must have shape \(F,\) = \({len(f)},\).*got \({len(f) - 1},\)",
            remesh, v, f, mask[1:], 0.1)
    _raises(r"face_mask must be a boolean array.*int64", remesh, v, f, mask.astype(np.int64),
            0.1)
    _raises(r"min_edge_len must be >= 0 metres; got -0.1", remesh, v, f, mask, -0.1)
    _raises(r"min_edge_len must be >= 0 metres; got nan", remesh, v, f, mask, float("nan"))
    _raises(r"min_edge_len must be a number", remesh, v, f, mask, "0.1")
    _raises(rf"max_faces must be at least the input's face count {len(f)}.*got {len(f) - 1}",
            remesh, v, f, mask, 0.1, max_faces=len(f) - 1)
    _raises(r"max_faces must be an int or None; got float", remesh, v, f, mask, 0.1,
            max_faces=1e6)


def test_bad_transfer_inputs_are_rejected():
    v, f = perturbed_grid(0)
    r = remesh(v, f, left_half(v, f), 0.0)
    _raises(r"values must have shape \(V, \.\.\.\) with V = 144.*got \(143, 3\)",
            interpolate_vertex_values, r, v[1:])
    _raises(r"values must have shape \(F, \.\.\.\) with F = ", transfer_face_values, v, f,
            r.vertices, r.faces, np.zeros(len(f) + 1))
    _raises(r"k must be an int >= 1; got 0", transfer_face_values, v, f, r.vertices, r.faces,
            np.zeros(len(f)), k=0)
    _raises(r"new_faces must have shape \(F, 3\)", transfer_face_values, v, f, r.vertices,
            r.faces[:, :2], np.zeros(len(f)))
    _raises(r"old_vertices must be finite", transfer_face_values, v * np.nan, f, r.vertices,
            r.faces, np.zeros(len(f)))
