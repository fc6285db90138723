"""Blender cloth for synthetic captures: a skirt on the tiny Anny body, walking and
turning, simulated, welded and played back from its mesh cache (issue 6)."""

import importlib
import math

import bpy
import numpy as np
import pytest

from backend.body import BodyTrack
from backend.eval.sampling import closest_points
from tests.backend_tier.body_helpers import chain_body, rising_track

ADDON = "bl_ext.user_default.garment_recon"
TOPOLOGY = "notoes_collapse10pc"
SETTLE, FRAMES, FPS = 10, 8, 30.0  # the tiny preset's frames
CAPTURED = slice(SETTLE, SETTLE + FRAMES)  # rows of the captured frames S+1 .. S+N
MAX_SEAM_GAP_M = 0.005
MAX_DEPTH_M = 0.01
PLAYBACK_TOLERANCE_M = 1e-5


def smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def settle_track(poser, motion_name: str, settle: int, frames: int, fps: float) -> BodyTrack:
    """The body_sim.npz track: ``settle`` frames from the rest pose (standing on the
    floor) blending into the motion, then ``frames`` frames of the motion; frame numbers
    1 .. settle + frames, posed vertices included."""
    from scipy.spatial.transform import Rotation

    from backend.body.anny_body import planted_feet_offsets
    from backend.body.motions import make_motion

    motion = make_motion(motion_name, frames, fps)
    local = poser.local_rotations(motion)                           # (N, B, 3, 3)
    translation = np.asarray(motion.root_offset_m, np.float64).copy()
    translation[:, 2] += poser.floor_offset_m
    if motion.plant_feet:
        _, vertices = poser.pose(local, translation)
        translation += planted_feet_offsets(vertices, poser.foot_vertices())
    blend = smoothstep(np.arange(settle) / settle)                  # 0 at frame 1
    rotvec = Rotation.from_matrix(local[0].reshape(-1, 3, 3)).as_rotvec()
    lead = np.stack([Rotation.from_rotvec(rotvec * b).as_matrix() for b in blend])
    rest_translation = np.array([0.0, 0.0, poser.floor_offset_m])
    lead_translation = rest_translation + blend[:, None] * (translation[0] - rest_translation)
    transforms, vertices = poser.pose(np.concatenate([lead, local]),
                                      np.concatenate([lead_translation, translation]))
    return BodyTrack(frame_numbers=np.arange(1, settle + frames + 1), fps=fps,
                     bone_transforms=transforms, posed_vertices=vertices)


def skin(points, transforms, indices, values):
    """Linear blend skinning of (N, 3) points with (B, 4, 4) transforms."""
    blended = np.einsum("nk,nkij->nij", values, transforms[indices])
    return np.einsum("nij,nj->ni", blended[:, :3, :3], points) + blended[:, :3, 3]


def skirt_pattern(body, frame_transforms, edge_m=0.045, ease_m=0.015, length_m=0.42,
                  seam_gap_m=0.02):
    """A stand-in pattern.npz (dict of arrays): a two-panel straight skirt.

    Front (y < 0) and back panels are half tubes hugging the hips (each row's radius
    per direction = the widest body point from the waist down to that row, plus
    ``ease_m``), from the waist (spine04's height) down ``length_m``. The side seams
    are ``seam_gap_m`` apart and sewn vertex by vertex; the waist row is pinned.
    Positions are the rest shape skinned by ``frame_transforms`` (sim frame 1).
    """
    from backend.body.transfer import transfer_weights

    rest = body.rest_vertices.astype(np.float64)
    names = body.bone_names
    waist = float(body.rest_bone_matrices[names.index("spine04"), 2, 3])
    dominant = np.asarray(names)[body.weight_indices[np.arange(body.vertex_count),
                                                     body.weight_values.argmax(1)]]
    torso = ~np.array([any(k in n for k in ("arm", "wrist", "finger", "metacarpal", "clav",
                                            "shoulder")) for n in dominant])
    centre = rest[torso & (np.abs(rest[:, 2] - waist) < 0.1)].mean(axis=0)
    rel = rest - centre
    angle_of = np.arctan2(rel[:, 1], rel[:, 0])
    radius_of = np.hypot(rel[:, 0], rel[:, 1])

    rows = max(2, int(round(length_m / edge_m)) + 1)
    heights = waist - np.linspace(0.0, length_m, rows)
    half = math.pi - 2 * math.asin(seam_gap_m / 2 / 0.17)   # a panel's angular span
    cols = max(2, int(round(half * 0.17 / edge_m)) + 1)
    vertices, uv, faces, panel_of = [], [], [], []
    seams = []
    for p, start in enumerate((math.pi + (math.pi - half) / 2, (math.pi - half) / 2)):
        angles = start + np.linspace(0.0, half, cols)              # counter-clockwise
        base = len(vertices)
        for r, z in enumerate(heights):
            band = torso & (rest[:, 2] <= waist + 0.02) & (rest[:, 2] >= z - 0.03)
            for c, a in enumerate(angles):
                near = band & (np.abs(np.angle(np.exp(1j * (angle_of - a)))) < 0.35)
                radius = (radius_of[near].max() if near.any() else 0.15) + ease_m
                vertices.append(centre + [radius * math.cos(a), radius * math.sin(a),
                                          z - centre[2]])
                uv.append((0.02 + 0.46 * c / (cols - 1) + 0.5 * p, 0.98 - 0.96 * r / (rows - 1)))
        idx = base + np.arange(rows * cols).reshape(rows, cols)
        for r in range(rows - 1):
            for c in range(cols - 1):
                a, b, d, e = idx[r, c], idx[r, c + 1], idx[r + 1, c], idx[r + 1, c + 1]
                faces += [(a, d, b), (b, d, e)]                   # outward normals
        panel_of += [p] * (2 * (rows - 1) * (cols - 1))
        seams.append((idx[:, 0], idx[:, -1]))
    # front's last column meets the back's first, the back's last meets the front's first
    sew = np.concatenate([np.stack([seams[0][1], seams[1][0]], 1),
                          np.stack([seams[1][1], seams[0][0]], 1)])
    rest_points = np.asarray(vertices)
    indices, values = transfer_weights(rest_points, body)
    pin = np.zeros(len(rest_points), np.float32)
    pin[np.isclose(rest_points[:, 2], heights[0])] = 1.0
    world = skin(rest_points, frame_transforms.astype(np.float64), indices, values)
    return {
        "vertices": world.astype(np.float32),
        "faces": np.asarray(faces, np.int32),
        "uv": np.asarray(uv, np.float32),
        "face_panel": np.asarray(panel_of, np.int32),
        "panel_names": np.array(["front", "back"]),
        "sew_pairs": sew.astype(np.int32),
        "pin_weight": pin,
        "weight_indices": indices,
        "weight_values": values,
        "bone_names": np.array(names),
        "garment_type": np.array("skirt"),
        "edge_m": np.float32(edge_m),
        "texture_kind": np.array("stripes"),
    }


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


@pytest.fixture(scope="module")
def poser():
    from backend.body.anny_body import AnnyPoser

    return AnnyPoser(topology=TOPOLOGY)


def run_skirt(cloth, poser, motion: str, cache_path):
    """Everything the assertions need, as plain arrays (the next test reloads the file):
    the sim, its ground truth played back through the mesh cache, the posed body."""
    bi = importlib.import_module(f"{ADDON}.operators.scene_capture.body_import")
    track = settle_track(poser, motion, SETTLE, FRAMES, FPS)
    pattern = skirt_pattern(poser.body, track.bone_transforms[0])
    last = SETTLE + FRAMES
    runs, steps = [], []
    for _ in range(2):  # twice from a fresh file: the same scene gives the same cloth
        bpy.ops.wm.read_homefile()
        scene = bpy.context.scene
        scene.render.fps, scene.render.fps_base = int(FPS), 1.0
        rig, body = bi.add_body(poser.body, track, scene.collection, scene.view_layers[0],
                                name="Body")
        garment = cloth.build_garment(scene, pattern, rig, body, cloth.profile("coarse"))
        runs.append(cloth.simulate(scene, garment, frames=(1, last),
                                   progress=lambda *a: steps.append(a)))
    sim = runs[-1]
    gt = sim.welded()
    obj = cloth.write_back(scene, garment, sim, cache_path)
    playback, body_vertices = [], []
    for frame in sim.frames:
        scene.frame_set(frame)
        playback.append(evaluated_vertices(obj))
        body_vertices.append(evaluated_vertices(body))
    # points 0-2 cm off the body surface, either side, for the depth measure
    rng = np.random.default_rng(1)
    probes = body_vertices[-1] + rng.normal(size=body_vertices[-1].shape) * 0.01
    probe_distances = cloth.body_distances(body, probes)
    return {
        "track": track, "pattern": pattern, "sim": sim, "first_run": runs[0], "gt": gt,
        "steps": steps, "playback": np.array(playback), "body": np.array(body_vertices),
        "body_faces": poser.body.faces, "probes": probes, "probe_distances": probe_distances,
        "object": {"name": obj.name, "modifiers": [m.type for m in obj.modifiers],
                   "cache_file": obj.modifiers[0].filepath, "faces": _faces(obj.data),
                   "uv": _uv(obj.data), "materials": len(obj.data.materials),
                   "panel": _panel(obj.data)},
        "objects": sorted(o.name for o in bpy.data.objects),
        "body_modifiers": [m.type for m in body.modifiers],
    }


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


@pytest.fixture(scope="module", params=["walk", "turn"])
def skirt(request, installed, poser, tmp_path_factory):
    cloth = module(installed, "cloth")
    cache = tmp_path_factory.mktemp(f"cloth_{request.param}") / "skirt.pc2"
    return run_skirt(cloth, poser, request.param, cache)


# -- the simulated skirt --------------------------------------------------------------

def test_simulation_runs_every_frame_without_exploding(skirt):
    sim = skirt["sim"]
    assert sim.frames == tuple(range(1, SETTLE + FRAMES + 1))
    assert sim.vertices.shape == (len(sim.frames), len(skirt["pattern"]["vertices"]), 3)
    assert np.isfinite(sim.vertices).all()
    assert sim.max_stretch.max() < 1.6
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
    rest = np.linalg.solve(blended(transforms[0], idx, val), start[..., None])
    skinned = np.einsum("nij,tnj->tni", blended(transforms[-1], idx, val)[:, :3],
                        rest[None, ..., 0])[0]
    pinned = pattern["pin_weight"] > 0
    np.testing.assert_allclose(sim.vertices[-1][pinned], skinned[pinned], atol=1e-4)
    free_offset = np.linalg.norm(sim.vertices[-1][~pinned] - skinned[~pinned], axis=1)
    assert free_offset.mean() > 0.003, "the free cloth only follows the skinning"


def test_seams_are_closed_after_settling(skirt):
    sim, pattern = skirt["sim"], skirt["pattern"]
    pairs = pattern["sew_pairs"]
    gaps = np.linalg.norm(sim.vertices[:, pairs[:, 0]] - sim.vertices[:, pairs[:, 1]], axis=-1)
    np.testing.assert_allclose(sim.seam_gap_m, gaps.max(axis=1), atol=1e-6)
    assert sim.seam_gap_m[CAPTURED].max() < MAX_SEAM_GAP_M


def test_no_garment_vertex_is_inside_the_body(skirt):
    """Signed distance of every garment vertex to the posed body (Blender's evaluated
    body mesh) at every captured frame."""
    sim = skirt["sim"]
    np.testing.assert_allclose(skirt["body"], skirt["track"].posed_vertices, atol=1e-4)
    depth = np.array([max(0.0, -signed_distances(sim.vertices[t], skirt["body"][t],
                                                   skirt["body_faces"]).min())
                      for t in range(CAPTURED.start, CAPTURED.stop)])
    assert depth.max() < MAX_DEPTH_M, f"deepest garment vertex {1e3 * depth.max():.1f} mm inside"
    np.testing.assert_allclose(sim.body_depth_m[CAPTURED], depth, atol=1e-5)  # its own measure


def test_body_distances_match_an_exact_reference(skirt):
    """cloth.body_distances (Blender's BVH tree, pseudo-normal sides) against exact
    closest points signed by winding numbers, for points on both sides of the body."""
    reference = signed_distances(skirt["probes"], skirt["body"][-1], skirt["body_faces"])
    measured = skirt["probe_distances"]
    assert 0.2 < (reference < 0).mean() < 0.8
    np.testing.assert_allclose(measured, reference, atol=1e-5)


def test_ground_truth_is_the_welded_sim(skirt):
    sim, gt, pattern = skirt["sim"], skirt["gt"], skirt["pattern"]
    V, S = len(pattern["vertices"]), len(pattern["sew_pairs"])
    assert gt.vertices.shape == (len(sim.frames), V - S, 3)  # each pair became one vertex
    pairs = pattern["sew_pairs"]
    assert (gt.vertex_map[pairs[:, 0]] == gt.vertex_map[pairs[:, 1]]).all()
    mean = (sim.vertices[:, pairs[:, 0]] + sim.vertices[:, pairs[:, 1]]) / 2
    np.testing.assert_allclose(gt.vertices[:, gt.vertex_map[pairs[:, 0]]], mean, atol=1e-6)
    unsewn = np.setdiff1d(np.arange(V), pairs)
    np.testing.assert_array_equal(gt.vertices[:, gt.vertex_map[unsewn]], sim.vertices[:, unsewn])
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
