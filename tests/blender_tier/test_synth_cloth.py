"""Blender cloth for synthetic captures (issue 6): garments prepared by the backend
(``python -m backend synth prepare``, the tiny preset) on the 1.2k-vertex Anny walking
and turning, simulated, welded and played back from their mesh cache.

One skirt per motion is checked in depth (module fixture ``skirt``); every other
garment type is simulated on the same bodies and checked for explosions, seams and
body penetration (``garments``).
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from backend.body import load_body
from backend.eval.sampling import closest_points
from tests.backend_tier.body_helpers import chain_body, rising_track

ADDON = "bl_ext.user_default.garment_recon"
REPO = Path(__file__).resolve().parents[2]
MOTIONS = ("walk", "turn")
OTHER_GARMENTS = ("flared_skirt", "dress", "tshirt", "long_sleeve", "trousers", "shorts")
MAX_SEAM_GAP_M = 0.005
MAX_DEPTH_M = 0.01
MAX_STRETCH = 1.6  # a healthy sim of the tiny preset stays near 1.1
PLAYBACK_TOLERANCE_M = 1e-5


def module(installed, name):
    return importlib.import_module(f"{ADDON}.operators.synthetic.{name}")


def evaluated_vertices(obj) -> np.ndarray:
    """(V, 3) float64 world positions of ``obj``'s evaluated mesh at the current frame."""
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    co = np.empty(3 * len(evaluated.data.vertices), np.float32)
    evaluated.data.vertices.foreach_get("co", co)
    m = np.array(evaluated.matrix_world)
    return co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]


def winding_numbers(points, vertices, faces, chunk=256):
    """Generalised winding number of each point: the solid angle the closed mesh
    subtends, over 4 pi (1 inside, 0 outside); Van Oosterom and Strackee's formula."""
    tri = vertices[faces]                                              # (F, 3, 3)
    out = np.empty(len(points))
    for start in range(0, len(points), chunk):
        d = tri[None] - points[start:start + chunk, None, None]        # (n, F, 3, 3)
        a, b, c = d[:, :, 0], d[:, :, 1], d[:, :, 2]
        la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
        det = np.einsum("nfi,nfi->nf", a, np.cross(b, c))
        dot = np.einsum("nfi,nfi->nf", a, b) * lc + np.einsum("nfi,nfi->nf", a, c) * lb \
            + np.einsum("nfi,nfi->nf", b, c) * la
        out[start:start + chunk] = (2 * np.arctan2(det, la * lb * lc + dot)).sum(1) / (4 * np.pi)
    return out


def signed_distances(points, vertices, faces):
    """Exact distance of each point to the mesh surface, negative inside (by winding
    number: independent of the nearest-feature normals cloth.body_distances uses)."""
    distance = closest_points(points, vertices, faces).distance
    return np.where(winding_numbers(points, vertices, faces) > 0.5, -distance, distance)


def blended(transforms, indices, values):
    """(N, 4, 4) per-vertex blended skinning transforms."""
    return np.einsum("nk,nkij->nij", values, transforms[indices])


def weld_groups(vertex_count, pairs):
    """Reference weld: the connected components of the sew-pair graph."""
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                       shape=(vertex_count, vertex_count))
    return connected_components(graph, directed=False)


@pytest.fixture(scope="module", params=MOTIONS)
def work(request, installed, tmp_path_factory):
    """The tiny preset's WORK folder for a skirt doing ``motion``, made by the real
    backend command; returns (SynthSettings, folder)."""
    settings = module(installed, "settings").preset("tiny", garment="skirt",
                                                    motion=request.param)
    folder = tmp_path_factory.mktemp(f"work_{request.param}")
    proc = subprocess.run([sys.executable, "-m", "backend", "--format", "text",
                           *settings.backend_args(folder)], cwd=REPO, env=dict(os.environ),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return settings, folder


def new_scene(settings, body, track):
    """A fresh file holding the body rig, at the capture's fps."""
    bi = importlib.import_module(f"{ADDON}.operators.scene_capture.body_import")
    bpy.ops.wm.read_homefile()
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = int(settings.fps), 1.0
    rig, body_obj = bi.add_body(body, track, scene.collection, scene.view_layers[0],
                                name="Body")
    return scene, rig, body_obj


@pytest.fixture(scope="module")
def skirt(work, installed):
    """Everything the skirt assertions need, as plain arrays (each test reloads the
    file): the sim twice from a fresh file, its ground truth played back through the
    mesh cache, the posed body, and probe points around it."""
    settings, folder = work
    cloth = module(installed, "cloth")
    body, track = load_body(folder / "body_sim.npz")
    with np.load(folder / "pattern.npz") as data:
        pattern = {key: data[key] for key in data.files}
    runs, steps = [], []
    for _ in range(2):  # the same scene gives the same cloth
        scene, rig, body_obj = new_scene(settings, body, track)
        garment = cloth.build_garment(scene, folder / "pattern.npz", rig, body_obj,
                                      cloth.profile(settings.cloth))
        runs.append(cloth.simulate(scene, garment, frames=settings.sim_frames,
                                   progress=lambda *a: steps.append(a)))
    sim = runs[-1]
    obj = cloth.write_back(scene, garment, sim, folder / "garment.pc2")
    playback, body_vertices = [], []
    for frame in sim.frames:
        scene.frame_set(frame)
        playback.append(evaluated_vertices(obj))
        body_vertices.append(evaluated_vertices(body_obj))
    # points 0-2 cm off the body surface, either side, for the depth measure
    probes = body_vertices[-1] + np.random.default_rng(1).normal(size=(len(body_vertices[-1]),
                                                                       3)) * 0.01
    return {
        "settings": settings, "track": track, "pattern": pattern, "sim": sim,
        "first_run": runs[0], "gt": sim.welded(), "steps": steps,
        "captured": [sim.frames.index(f) for f in settings.capture_frames],
        "playback": np.array(playback), "body": np.array(body_vertices),
        "body_faces": body.faces, "probes": probes,
        "probe_distances": cloth.body_distances(body_obj, probes),
        "object": {"name": obj.name, "modifiers": [m.type for m in obj.modifiers],
                   "cache_file": obj.modifiers[0].filepath, "faces": _faces(obj.data),
                   "uv": _uv(obj.data), "panel": _panel(obj.data)},
        "objects": sorted(o.name for o in bpy.data.objects),
        "body_modifiers": [m.type for m in body_obj.modifiers],
    }


@pytest.fixture(scope="module")
def garments(work, installed, tmp_path_factory):
    """The other garment types on the same body and motion: their patterns made by the
    backend's pattern code (as ``synth prepare`` makes them), simulated with the tiny
    preset's cloth; returns {garment: SimResult}."""
    from backend.synthetic.patterns import PatternSettings, make_pattern, save_pattern

    settings, folder = work
    cloth = module(installed, "cloth")
    body, track = load_body(folder / "body_sim.npz")
    out = {}
    for name in OTHER_GARMENTS:
        path = tmp_path_factory.mktemp(name) / "pattern.npz"
        save_pattern(path, make_pattern(body, name, PatternSettings(edge_m=settings.edge_m)),
                     track.bone_transforms[0, 0], body.bone_names, "plain")
        scene, rig, body_obj = new_scene(settings, body, track)
        garment = cloth.build_garment(scene, path, rig, body_obj, cloth.profile(settings.cloth))
        out[name] = cloth.simulate(scene, garment, frames=settings.sim_frames)
    return out


def _faces(mesh):
    out = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("vertex_index", out)
    return out.reshape(-1, 3)


def _uv(mesh):
    out = np.empty(2 * len(mesh.loops), np.float32)
    mesh.uv_layers[0].data.foreach_get("uv", out)
    return out.reshape(-1, 3, 2)


def _panel(mesh):
    out = np.empty(len(mesh.polygons), np.int32)
    mesh.attributes["panel"].data.foreach_get("value", out)
    return out


# -- the simulated skirt --------------------------------------------------------------

def test_simulation_runs_every_frame_without_exploding(skirt):
    sim, settings = skirt["sim"], skirt["settings"]
    first, last = settings.sim_frames
    assert sim.frames == tuple(range(first, last + 1))
    assert sim.vertices.shape == (len(sim.frames), len(skirt["pattern"]["vertices"]), 3)
    assert np.isfinite(sim.vertices).all()
    assert sim.max_stretch.max() < MAX_STRETCH
    assert skirt["steps"][-1] == ("simulate", len(sim.frames), len(sim.frames))
    # the same scene simulated again from a fresh file gives the same cloth
    np.testing.assert_array_equal(skirt["first_run"].vertices, sim.vertices)


def test_pinned_vertices_follow_the_body_and_the_rest_is_simulated(skirt):
    """Pinned vertices move exactly as skinning moves them; free ones do not (they
    hang, swing and are pushed by the legs)."""
    sim, pattern, track = skirt["sim"], skirt["pattern"], skirt["track"]
    idx, val = pattern["weight_indices"], pattern["weight_values"]
    transforms = track.bone_transforms.astype(np.float64)
    start = np.concatenate([sim.vertices[0], np.ones((len(sim.vertices[0]), 1))], 1)
    rest = np.linalg.solve(blended(transforms[0], idx, val), start[..., None])[..., 0]
    skinned = np.einsum("nij,nj->ni", blended(transforms[-1], idx, val)[:, :3], rest)
    pinned = pattern["pin_weight"] >= 1
    assert pinned.sum() >= 10
    np.testing.assert_allclose(sim.vertices[-1][pinned], skinned[pinned], atol=1e-4)
    free = pattern["pin_weight"] == 0
    offset = np.linalg.norm(sim.vertices[-1][free] - skinned[free], axis=1)
    assert offset.mean() > 0.003, "the free cloth only follows the skinning"


def test_seams_are_closed_after_settling(skirt):
    sim, pairs = skirt["sim"], skirt["pattern"]["sew_pairs"]
    gaps = np.linalg.norm(sim.vertices[:, pairs[:, 0]] - sim.vertices[:, pairs[:, 1]], axis=-1)
    np.testing.assert_allclose(sim.seam_gap_m, gaps.max(axis=1), atol=1e-6)
    assert sim.seam_gap_m[skirt["captured"]].max() < MAX_SEAM_GAP_M


def test_no_garment_vertex_is_inside_the_body(skirt):
    """Signed distance of every garment vertex to the posed body (Blender's evaluated
    body mesh) at every captured frame."""
    sim, rows = skirt["sim"], skirt["captured"]
    np.testing.assert_allclose(skirt["body"], skirt["track"].posed_vertices, atol=1e-4)
    depth = np.array([max(0.0, -signed_distances(sim.vertices[t], skirt["body"][t],
                                                   skirt["body_faces"]).min()) for t in rows])
    assert depth.max() < MAX_DEPTH_M, f"deepest garment vertex {1e3 * depth.max():.1f} mm inside"
    np.testing.assert_allclose(sim.body_depth_m[rows], depth, atol=1e-5)  # its own measure


def test_body_distances_match_an_exact_reference(skirt):
    """cloth.body_distances (Blender's BVH tree, pseudo-normal sides) against exact
    closest points signed by winding numbers, for points on both sides of the body."""
    reference = signed_distances(skirt["probes"], skirt["body"][-1], skirt["body_faces"])
    measured = skirt["probe_distances"]
    assert 0.2 < (reference < 0).mean() < 0.8
    np.testing.assert_allclose(measured, reference, atol=1e-5)


def test_ground_truth_is_the_welded_sim(skirt):
    sim, gt, pattern = skirt["sim"], skirt["gt"], skirt["pattern"]
    V, pairs = len(pattern["vertices"]), pattern["sew_pairs"]
    count, labels = weld_groups(V, pairs)
    assert gt.vertices.shape == (len(sim.frames), count, 3)
    # same groups: one welded vertex per component, at the component's mean position
    assert len(set(zip(labels, gt.vertex_map, strict=True))) == count
    for group in range(count):
        members = np.flatnonzero(labels == group)
        np.testing.assert_allclose(gt.vertices[:, gt.vertex_map[members[0]]],
                                   sim.vertices[:, members].mean(axis=1), atol=1e-6)
    np.testing.assert_array_equal(gt.faces, gt.vertex_map[pattern["faces"]])
    np.testing.assert_array_equal(gt.uv, pattern["uv"][pattern["faces"]])
    np.testing.assert_array_equal(gt.face_panel, pattern["face_panel"])


def test_mesh_cache_plays_back_the_ground_truth(skirt, installed):
    gt, obj = skirt["gt"], skirt["object"]
    assert obj["name"] == "Skirt" and obj["modifiers"] == ["MESH_CACHE"]
    np.testing.assert_allclose(skirt["playback"], gt.vertices, atol=PLAYBACK_TOLERANCE_M)
    np.testing.assert_array_equal(obj["faces"], gt.faces)
    np.testing.assert_allclose(obj["uv"], gt.uv, atol=1e-7)
    np.testing.assert_array_equal(obj["panel"], gt.face_panel)
    start, rate, samples = module(installed, "cloth_cache").read_pc2(obj["cache_file"])
    assert (start, rate) == (1.0, 1.0)
    np.testing.assert_array_equal(samples, gt.vertices)
    # the cloth object is gone; the body is back to its Armature modifier
    assert "Skirt Cloth" not in skirt["objects"]
    assert skirt["body_modifiers"] == ["ARMATURE"]


@pytest.mark.parametrize("name", OTHER_GARMENTS)
def test_every_garment_type_simulates_with_closed_seams_outside_the_body(garments, work, name):
    settings, _ = work
    sim = garments[name]
    rows = [sim.frames.index(f) for f in settings.capture_frames]
    assert np.isfinite(sim.vertices).all() and sim.max_stretch.max() < MAX_STRETCH
    assert sim.seam_gap_m[rows].max() < MAX_SEAM_GAP_M
    assert sim.body_depth_m[rows].max() < MAX_DEPTH_M


# -- building blocks, fast ---------------------------------------------------------------

def test_weld_chains_sew_pairs_and_averages_positions(installed):
    cache = module(installed, "cloth_cache")
    faces = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    weld = cache.build_weld(9, faces, np.array([[2, 3], [5, 6], [3, 7]]))
    # {2, 3, 7} and {5, 6} merge; numbered by their smallest vertex
    np.testing.assert_array_equal(weld.vertex_map, [0, 1, 2, 2, 3, 4, 4, 2, 5])
    assert weld.welded_count == 6
    np.testing.assert_array_equal(weld.faces, [[0, 1, 2], [2, 3, 4], [4, 2, 5]])
    positions = np.arange(2 * 9 * 3, dtype=np.float32).reshape(2, 9, 3)
    welded = weld.positions(positions)
    np.testing.assert_allclose(welded[:, 2], positions[:, [2, 3, 7]].mean(axis=1))
    np.testing.assert_allclose(welded[:, 5], positions[:, 8])
    with pytest.raises(Exception, match="collapses 1 face"):
        cache.build_weld(9, faces, np.array([[0, 1]]))


def test_pc2_file_layout_and_damage(installed, tmp_path):
    cache = module(installed, "cloth_cache")
    samples = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)
    path = cache.write_pc2(tmp_path / "a.pc2", samples, start_frame=11.0)
    raw = path.read_bytes()
    assert raw[:12] == b"POINTCACHE2\0" and len(raw) == 32 + 4 * 5 * 3 * 4
    assert np.frombuffer(raw[12:20], "<i4").tolist() == [1, 5]
    assert np.frombuffer(raw[20:28], "<f4").tolist() == [11.0, 1.0]
    assert np.frombuffer(raw[28:32], "<i4").tolist() == [4]
    start, rate, back = cache.read_pc2(path)
    assert (start, rate) == (11.0, 1.0)
    np.testing.assert_array_equal(back, samples)
    (tmp_path / "short.pc2").write_bytes(raw[:-4])
    with pytest.raises(Exception, match="short.pc2 has 268 bytes"):
        cache.read_pc2(tmp_path / "short.pc2")
    with pytest.raises(Exception, match="NaN"):
        cache.write_pc2(tmp_path / "b.pc2", samples * np.nan, 1.0)


def small_pattern(bones=("bone0", "bone1", "bone2")):
    """Two triangles side by side, sewn along their facing edge; bone 0 skins all."""
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 1], [1.02, 0, 0], [2, 0, 0], [1.02, 0, 1],
                         ], np.float32)
    return {
        "vertices": vertices, "faces": np.array([[0, 1, 2], [3, 4, 5]], np.int32),
        "uv": np.clip(vertices[:, [0, 2]] / 2, 0, 1), "sew_pairs": np.array([[1, 3]], np.int32),
        "pin_weight": np.array([1, 0, 0, 1, 0, 0], np.float32),
        "weight_indices": np.zeros((6, 1), np.int32), "weight_values": np.ones((6, 1), np.float32),
        "bone_names": np.array(bones),
    }


def test_pattern_errors_name_the_file_and_key(installed, tmp_path):
    patterns = module(installed, "cloth_pattern")
    good = small_pattern()
    assert patterns.pattern_from_arrays(good).vertex_count == 6
    missing = {k: v for k, v in good.items() if k != "sew_pairs"}
    np.savez(tmp_path / "pattern.npz", **missing)
    with pytest.raises(patterns.PatternError, match=r"pattern.npz lacks key\(s\) sew_pairs"):
        patterns.load_pattern(tmp_path / "pattern.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(patterns.PatternError, match="bad.npz is not a readable"):
        patterns.load_pattern(tmp_path / "bad.npz")
    cases = {
        "faces": (np.array([[0, 1, 9]]), r"faces: vertex indices must lie in \[0, 6\)"),
        "uv": (good["uv"][:4], r"uv: expected shape \(6, 2\), got \(4, 2\)"),
        "pin_weight": (np.full(6, 2.0), r"pin_weight: must lie in \[0, 1\]"),
        "weight_values": (np.full((6, 1), 0.5), "rows must sum to 1; vertex 0 sums to 0.5"),
        "sew_pairs": (np.array([[2, 2]]), "pair 0 sews a vertex to itself"),
        "vertices": (np.full((6, 3), np.nan), "vertices: contains NaN"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(patterns.PatternError, match=message):
            patterns.pattern_from_arrays({**good, key: value}, source="p.npz")


def test_build_and_simulate_errors(installed):
    cloth = module(installed, "cloth")
    bi = importlib.import_module(f"{ADDON}.operators.scene_capture.body_import")
    scene = bpy.context.scene
    body, track = chain_body(), rising_track(range(1, 6))
    rig, body_obj = bi.add_body(body, track, scene.collection, scene.view_layers[0])
    with pytest.raises(cloth.ClothError, match="bone\\(s\\) hip that rig"):
        cloth.build_garment(scene, small_pattern(("hip", "bone1", "bone2")), rig, body_obj)
    with pytest.raises(cloth.ClothError, match="must be an armature"):
        cloth.build_garment(scene, small_pattern(), body_obj, body_obj)
    with pytest.raises(cloth.ClothError, match="no Cloth modifier"):
        cloth.simulate(scene, body_obj, frames=(1, 5))
    garment = cloth.build_garment(scene, small_pattern(), rig, body_obj,
                                  cloth.profile("coarse"))
    assert [m.type for m in garment.modifiers] == ["ARMATURE", "CLOTH"]
    assert [m.type for m in body_obj.modifiers] == ["ARMATURE", "COLLISION"]
    edges = np.empty(2 * len(garment.data.edges), np.int32)
    garment.data.edges.foreach_get("vertices", edges)
    assert [1, 3] in edges.reshape(-1, 2).tolist()  # the sew pair, a loose edge
    assert sorted(g.name for g in garment.vertex_groups) == ["bone0", "pin"]
    # a bound no cloth can keep: the explosion check stops at the first moving frame
    with pytest.raises(cloth.ClothError, match="exploded at frame 2: edge"):
        cloth.simulate(scene, garment, frames=(1, 5), max_stretch=1.0 + 1e-6)
    with pytest.raises(cloth.ClothError, match="run forward"):
        cloth.simulate(scene, garment, frames=(5, 1))
    with pytest.raises(cloth.ClothError, match="quality must be in"):
        cloth.ClothSettings(quality=0)
    with pytest.raises(cloth.ClothError, match="Unknown cloth profile 'fine'"):
        cloth.profile("fine")


def rest_positions(garment) -> np.ndarray:
    co = np.empty(3 * len(garment.data.vertices), np.float32)
    garment.data.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def test_seams_start_closed_and_the_move_fades_into_the_panels(installed):
    """Sewn vertices start at their pair's midpoint (the panels' rest shape is sewn);
    with close_seams off only pinned pairs are closed, as sewing cannot move them."""
    import dataclasses

    cloth = module(installed, "cloth")
    bi = importlib.import_module(f"{ADDON}.operators.scene_capture.body_import")
    scene = bpy.context.scene
    rig, body_obj = bi.add_body(chain_body(), rising_track(range(1, 6)), scene.collection,
                                scene.view_layers[0])
    # a strip of two panels 2 cm apart: vertex 1 <-> 3 free, 7 <-> 9 pinned
    x = np.array([0.0, 1.0, 0.0, 1.02, 2.02, 1.02])
    vertices = np.concatenate([np.stack([x, np.zeros(6), [0, 0, 1, 0, 0, 1]], 1),
                               np.stack([x, np.zeros(6), [2, 2, 3, 2, 2, 3]], 1)])
    arrays = {**small_pattern(), "vertices": vertices.astype(np.float32),
              "faces": np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]], np.int32),
              "uv": np.full((12, 2), 0.5, np.float32),
              "sew_pairs": np.array([[1, 3], [7, 9]], np.int32),
              "pin_weight": np.array([0] * 6 + [1] * 6, np.float32),
              "weight_indices": np.zeros((12, 1), np.int32),
              "weight_values": np.ones((12, 1), np.float32)}
    settings = cloth.profile("coarse")
    closed = rest_positions(cloth.build_garment(scene, arrays, rig, body_obj, settings))
    np.testing.assert_allclose(closed[[1, 3, 7, 9], 0], [1.01] * 4, atol=1e-5)
    # panels within close_seam_rings of the seam move along whole: no triangle distorts
    np.testing.assert_allclose(closed[:6] - vertices[:6], [[0.01, 0, 0]] * 3
                               + [[-0.01, 0, 0]] * 3, atol=1e-5)
    # one ring: only the sewn vertices move
    tight = rest_positions(cloth.build_garment(
        scene, arrays, rig, body_obj, dataclasses.replace(settings, close_seam_rings=1)))
    np.testing.assert_allclose(tight[[1, 3]], [[1.01, 0, 0]] * 2, atol=1e-5)
    np.testing.assert_allclose(tight[[0, 2, 4, 5]], vertices[[0, 2, 4, 5]], atol=1e-5)
    open_ = rest_positions(cloth.build_garment(
        scene, arrays, rig, body_obj, dataclasses.replace(settings, close_seams=False)))
    np.testing.assert_allclose(open_[[1, 3], 0], [1.0, 1.02], atol=1e-5)
    np.testing.assert_allclose(open_[[7, 9], 0], [1.01, 1.01], atol=1e-5)


def test_a_scene_other_than_the_context_one_simulates_the_same(installed):
    """Add Demo Scene builds in a scene of its own: frames must be read from that
    scene's depsgraph, not the context's."""
    cloth = module(installed, "cloth")
    bi = importlib.import_module(f"{ADDON}.operators.scene_capture.body_import")
    results = []
    for scene in (bpy.context.scene, bpy.data.scenes.new("Other")):
        collection = bpy.data.collections.new("Synthetic")
        scene.collection.children.link(collection)
        with bpy.context.temp_override(scene=scene, view_layer=scene.view_layers[0]):
            rig, body_obj = bi.add_body(chain_body(), rising_track(range(1, 6)), collection,
                                        scene.view_layers[0])
        garment = cloth.build_garment(scene, small_pattern(), rig, body_obj,
                                      cloth.profile("coarse"))
        results.append(cloth.simulate(scene, garment, frames=(1, 5)))
    assert bpy.context.scene.name != "Other"
    np.testing.assert_array_equal(results[0].vertices, results[1].vertices)
    # the pinned corner rises with the body, 1 cm per frame (from frame 2 on: Blender's
    # first step overshoots a body that starts moving at once by one substep)
    np.testing.assert_allclose(np.diff(results[1].vertices[:, 0, 2])[1:], 0.01, atol=1e-5)
