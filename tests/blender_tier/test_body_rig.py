"""Skinned rig -> body.npz (export) and body.npz -> rig (Add Body), checked by LBS."""

import importlib
import math

import bpy
import numpy as np
import pytest

from backend.body import BodyTrack, load_body, save_body
from tests.backend_tier.body_helpers import chain_body

MAX_ERROR_M = 1e-5
BONES = ("root", "spine", "chest", "arm_l", "arm_r")


@pytest.fixture
def rig_module(addon):
    return importlib.import_module(addon.__name__ + ".operators.scene_capture.body_export")


def edit_mode(obj):
    bpy.context.view_layer.objects.active = obj  # Edit Mode follows the active object
    return bpy.context.temp_override(active_object=obj, object=obj)


def build_armature():
    """A 5-bone deform chain with a branch (two arms) under a non-deform control bone."""
    data = bpy.data.armatures.new("RigData")
    arm = bpy.data.objects.new("Rig", data)
    bpy.context.scene.collection.objects.link(arm)
    arm.location, arm.rotation_euler = (0.5, -0.3, 0.2), (0.1, 0.0, 0.4)
    arm.scale = (1.2, 0.9, 1.1)
    with edit_mode(arm):
        bpy.ops.object.mode_set(mode="EDIT")
        bones = data.edit_bones
        specs = {  # name: (head, tail, parent, deform)
            "ctrl": ((0, 0, -0.2), (0, 0.2, -0.2), None, False),
            "root": ((0, 0, 0), (0, 0, 0.4), "ctrl", True),
            "spine": ((0, 0, 0.4), (0, 0.05, 0.8), "root", True),
            "chest": ((0, 0.05, 0.8), (0, 0, 1.1), "spine", True),
            "arm_l": ((0.05, 0, 1.0), (0.45, 0, 1.0), "chest", True),
            "arm_r": ((-0.05, 0, 1.0), (-0.45, 0.05, 1.1), "chest", True),
        }
        for name, (head, tail, parent, deform) in specs.items():
            bone = bones.new(name)
            bone.head, bone.tail, bone.use_deform = head, tail, deform
            bone.roll = 0.3 if name == "arm_l" else 0.0
            if parent:
                bone.parent = bones[parent]
        bpy.ops.object.mode_set(mode="OBJECT")
    return arm


def tube_mesh():
    """A pentagonal tube (quads, pentagon caps) with two quad-strip arms at z = 1."""
    verts, faces = [], []
    rings = np.linspace(0.0, 1.1, 9)
    for z in rings:
        for k in range(5):
            a = 2 * math.pi * k / 5
            verts.append((0.1 * math.cos(a), 0.1 * math.sin(a), z))
    for r in range(len(rings) - 1):
        for k in range(5):
            a, b = r * 5 + k, r * 5 + (k + 1) % 5
            faces.append((a, b, b + 5, a + 5))
    faces.append(tuple(reversed(range(5))))
    faces.append(tuple(range(5 * (len(rings) - 1), 5 * len(rings))))
    for side in (1, -1):
        start = len(verts)
        for i, x in enumerate(np.linspace(0.1, 0.45, 6)):
            verts += [(side * x, -0.04, 1.0), (side * x, 0.04, 1.0)]
            if i:
                faces.append((start + 2 * i - 2, start + 2 * i, start + 2 * i + 1,
                              start + 2 * i - 1))
    mesh = bpy.data.meshes.new("Tube")
    mesh.from_pydata(verts, [], faces)  # test input only; the add-on uses foreach_set
    mesh.update()
    return mesh


def weights_for(co):
    """Blended weights over BONES for a vertex at ``co`` (plus ignored groups)."""
    x, _, z = co
    w = dict.fromkeys(BONES, 0.0)
    if abs(x) > 0.12:
        side = "arm_l" if x > 0 else "arm_r"
        t = min(1.0, (abs(x) - 0.12) / 0.2)
        w[side], w["chest"] = t, 1 - t
    else:
        for name, centre in (("root", 0.2), ("spine", 0.6), ("chest", 0.95)):
            w[name] = max(0.0, 1 - abs(z - centre) / 0.4)
    w["ctrl"] = 0.5  # a non-deform bone's group: Blender ignores it, so must we
    return w


def build_body(parented=True):
    arm = build_armature()
    obj = bpy.data.objects.new("Body", tube_mesh())
    bpy.context.scene.collection.objects.link(obj)
    for name in (*BONES, "ctrl", "not_a_bone"):
        obj.vertex_groups.new(name=name)
    for v in obj.data.vertices:
        for name, weight in weights_for(v.co).items():
            if weight > 0:
                obj.vertex_groups[name].add([v.index], weight, "REPLACE")
    obj.vertex_groups["not_a_bone"].add([0, 1], 1.0, "REPLACE")
    if parented:
        obj.parent = arm
    obj.location, obj.rotation_euler = (0.1, 0.2, -0.1), (0.0, 0.2, -0.3)
    modifier = obj.modifiers.new("Armature", "ARMATURE")
    modifier.object = arm
    animate(arm)
    return arm, obj


def animate(arm):
    pose = arm.pose.bones
    for frame, angle, lift in ((1, 0.0, 0.0), (4, 0.6, 0.1), (8, -0.4, 0.25)):
        pose["ctrl"].location = (0.0, lift, 0.0)
        pose["root"].rotation_quaternion = (math.cos(angle / 4), 0, math.sin(angle / 4), 0)
        pose["spine"].rotation_quaternion = (math.cos(angle / 2), math.sin(angle / 2), 0, 0)
        pose["spine"].location = (0.0, lift, 0.0)
        pose["arm_l"].rotation_quaternion = (math.cos(angle), 0, 0, math.sin(angle))
        pose["arm_r"].rotation_quaternion = (math.cos(angle), math.sin(angle), 0, 0)
        for bone in ("ctrl", "root", "spine", "arm_l", "arm_r"):
            pose[bone].keyframe_insert("location", frame=frame)
            pose[bone].keyframe_insert("rotation_quaternion", frame=frame)
        arm.location.x = 0.5 + lift
        arm.keyframe_insert("location", frame=frame)


def evaluated_world(obj, frame):
    """World positions of Blender's evaluated mesh at ``frame``."""
    scene = bpy.context.scene
    scene.frame_set(frame)
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    co = np.array([v.co for v in mesh.vertices], np.float64)
    evaluated.to_mesh_clear()
    m = np.array(evaluated.matrix_world)
    return co @ m[:3, :3].T + m[:3, 3]


def assert_skinning_reproduces_blender(rig_module, obj, body, track):
    skinned = rig_module.skin(body.rest_vertices, track.bone_transforms, body.weight_indices,
                              body.weight_values)
    for t, frame in enumerate(track.frame_numbers):
        blender = evaluated_world(obj, int(frame))
        np.testing.assert_allclose(track.posed_vertices[t], blender, atol=MAX_ERROR_M)
        error = np.abs(skinned[t] - blender).max()
        assert error <= MAX_ERROR_M, f"frame {frame}: LBS misses Blender by {error:.3g} m"


@pytest.mark.parametrize("parented", [True, False], ids=["parented", "free-mesh"])
def test_exported_rig_reproduces_every_frame(rig_module, parented):
    arm, obj = build_body(parented)
    if not parented:  # the mesh moves on its own, not with the armature
        for frame, z in ((1, -0.1), (8, 0.3)):
            obj.location.z = z
            obj.rotation_euler.x = z
            obj.keyframe_insert("location", frame=frame)
            obj.keyframe_insert("rotation_euler", frame=frame)
    scene = bpy.context.scene
    scene.frame_set(5)
    frames = list(range(1, 9))
    body, track, warnings = rig_module.export_body(scene, obj, frames)
    assert warnings == []
    assert scene.frame_current == 5
    assert body.bone_names == BONES, "non-deform 'ctrl' is left out"
    assert body.bone_parents.tolist() == [-1, 0, 1, 2, 2]
    assert body.source == "rig:Rig"
    np.testing.assert_array_equal(track.frame_numbers, frames)
    assert track.bone_transforms.shape == (8, 5, 4, 4)
    # rest = the undeformed mesh where it stands at the first frame
    scene.frame_set(1)
    m = np.array(obj.matrix_world)
    co = np.array([v.co for v in obj.data.vertices])
    np.testing.assert_allclose(body.rest_vertices, co @ m[:3, :3].T + m[:3, 3], atol=1e-6)
    # rest bones: the armature's rest pose in the world at the first frame
    bone = arm.data.bones["arm_l"]
    np.testing.assert_allclose(body.rest_bone_matrices[3],
                               np.array(arm.matrix_world) @ np.array(bone.matrix_local),
                               atol=1e-6)
    assert_skinning_reproduces_blender(rig_module, obj, body, track)


def test_faces_are_the_polygons_triangulated_and_weights_normalised(rig_module):
    _, obj = build_body()
    body, _, _ = rig_module.export_body(bpy.context.scene, obj, [1])
    polygons = obj.data.polygons
    assert len(body.faces) == sum(len(p.vertices) - 2 for p in polygons)
    triangles_per_polygon = iter([len(p.vertices) - 2 for p in polygons])
    faces = iter(body.faces.tolist())
    for polygon, count in zip(polygons, triangles_per_polygon, strict=True):
        covered = set()
        for _ in range(count):
            tri = next(faces)
            assert set(tri) <= set(polygon.vertices), "each triangle lies in its polygon"
            covered |= set(tri)
        assert covered == set(polygon.vertices)
    dense = body.dense_weights()
    np.testing.assert_allclose(dense.sum(axis=1), 1, atol=1e-6)
    for v in (0, 20, 50):
        raw = weights_for(obj.data.vertices[v].co)
        expected = np.array([raw[b] for b in BONES])
        np.testing.assert_allclose(dense[v], expected / expected.sum(), atol=1e-6)


def test_modifiers_below_the_armature_are_left_out_and_restored(rig_module):
    _, obj = build_body()
    subsurf = obj.modifiers.new("Subdivision", "SUBSURF")
    body, track, _ = rig_module.export_body(bpy.context.scene, obj, [1, 4])
    assert body.vertex_count == len(obj.data.vertices)
    assert subsurf.show_viewport and obj.modifiers["Armature"].show_viewport


def test_topology_changing_modifier_above_the_armature_is_an_error(rig_module):
    _, obj = build_body()
    obj.modifiers.new("Subdivision", "SUBSURF")
    with bpy.context.temp_override(object=obj, active_object=obj):
        bpy.ops.object.modifier_move_to_index(modifier="Subdivision", index=0)
    with pytest.raises(rig_module.GarmentError,
                       match=r"modifiers above the Armature modifier \('Subdivision'\) change "
                             r"the topology \(69 -> \d+ vertices"):
        rig_module.export_body(bpy.context.scene, obj, [1])
    assert all(m.show_viewport for m in obj.modifiers)


def test_unweighted_vertices_are_an_error_naming_count_and_example(rig_module):
    _, obj = build_body()
    for name in BONES:
        obj.vertex_groups[name].remove([3, 7])
    with pytest.raises(rig_module.GarmentError,
                       match=r"Body 'Body': 2 of 69 vertices have no weight on a deform bone "
                             r"of 'Rig' \(e\.g\. vertex 3\)"):
        rig_module.export_body(bpy.context.scene, obj, [1])


def test_body_without_armature_modifier_is_an_error(rig_module):
    _, obj = build_body()
    obj.modifiers["Armature"].show_viewport = False
    with pytest.raises(rig_module.GarmentError,
                       match="not skinned to an armature: its Armature modifier 'Armature' "
                             "is disabled"):
        rig_module.export_body(bpy.context.scene, obj, [1])
    obj.modifiers.remove(obj.modifiers["Armature"])
    with pytest.raises(rig_module.GarmentError, match="it has no Armature modifier"):
        rig_module.export_body(bpy.context.scene, obj, [1])


def test_body_disabled_in_viewports_is_an_error(rig_module):
    _, obj = build_body()
    obj.hide_viewport = True  # Blender would not deform it: the export must not pretend
    with pytest.raises(rig_module.GarmentError, match="Body 'Body' is not evaluated"):
        rig_module.export_body(bpy.context.scene, obj, [1])
    assert obj.modifiers["Armature"].show_viewport


def test_dual_quaternion_skinning_is_an_error(rig_module):
    _, obj = build_body()
    obj.modifiers["Armature"].use_deform_preserve_volume = True
    with pytest.raises(rig_module.GarmentError, match="Preserve Volume"):
        rig_module.export_body(bpy.context.scene, obj, [1])


# ---------------------------------------------------------------- Add Body round trip


def turning_track(frames, bones, seed=0):
    """Rigid rest->world transforms: each bone turns about its own axis and moves."""
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(bones, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    transforms = np.tile(np.eye(4), (len(frames), bones, 1, 1))
    for t in range(len(frames)):
        for b in range(bones):
            angle = 0.3 * t * (b + 1) / bones
            k = np.array([[0, -axes[b, 2], axes[b, 1]], [axes[b, 2], 0, -axes[b, 0]],
                          [-axes[b, 1], axes[b, 0], 0]])
            transforms[t, b, :3, :3] = np.eye(3) + math.sin(angle) * k + (
                1 - math.cos(angle)) * k @ k
            transforms[t, b, :3, 3] = [0.02 * t, -0.01 * t * b, 0.03 * math.sin(t)]
    return BodyTrack(frame_numbers=np.array(frames), fps=24.0, bone_transforms=transforms)


def with_posed(body, track, rig_module):
    posed = rig_module.skin(body.rest_vertices, track.bone_transforms, body.weight_indices,
                            body.weight_values)
    return BodyTrack(frame_numbers=track.frame_numbers, fps=track.fps,
                     bone_transforms=track.bone_transforms, posed_vertices=posed)


def round_trip(rig_module, body, track, tmp_path):
    path = save_body(tmp_path / "body.npz", body, track)
    assert bpy.ops.garment.add_body(filepath=str(path)) == {"FINISHED"}
    mesh = bpy.context.view_layer.objects.active
    assert mesh.type == "MESH" and mesh.parent.type == "ARMATURE"
    assert bpy.context.scene.garment_recon.body == mesh
    exported, track_out, warnings = rig_module.export_body(
        bpy.context.scene, mesh, track.frame_numbers.tolist())
    assert warnings == []
    np.testing.assert_allclose(exported.rest_vertices, body.rest_vertices, atol=MAX_ERROR_M)
    np.testing.assert_array_equal(exported.faces, body.faces)
    assert exported.bone_names == body.bone_names
    np.testing.assert_array_equal(exported.bone_parents, body.bone_parents)
    np.testing.assert_allclose(exported.dense_weights(), body.dense_weights(), atol=1e-6)
    np.testing.assert_allclose(track_out.bone_transforms, track.bone_transforms, atol=1e-5)
    # Blender's evaluated mesh is the file's skinning (its own posed_vertices may come
    # from another skinning code: Anny's differ from top-8 LBS by ~3e-5 m)
    expected = rig_module.skin(body.rest_vertices, track.bone_transforms, body.weight_indices,
                               body.weight_values)
    error = np.abs(track_out.posed_vertices - expected).max()
    assert error <= MAX_ERROR_M, f"evaluated vertices miss the file's LBS by {error:.3g} m"
    if body.uvs is not None:
        np.testing.assert_allclose(exported.uvs, body.uvs, atol=1e-6)
    return mesh, track_out


def test_add_body_round_trips_a_chain_body(rig_module, tmp_path):
    body = chain_body(vertices=12, bones=4)
    track = with_posed(body, turning_track([3, 4, 5, 9], bones=4), rig_module)
    mesh, exported = round_trip(rig_module, body, track, tmp_path)
    np.testing.assert_allclose(exported.posed_vertices, track.posed_vertices, atol=MAX_ERROR_M)
    assert mesh.name == "Body test"
    assert mesh.parent.animation_data.action.name == "Body test Motion"
    # between keys the pose interpolates (no jump back to the rest pose)
    bpy.context.scene.frame_set(7)
    assert not np.allclose(evaluated_world(mesh, 7), body.rest_vertices, atol=1e-3)


def test_add_body_rejects_scaled_bone_transforms(rig_module, tmp_path):
    body = chain_body(vertices=8, bones=3)
    track = turning_track([1, 2], bones=3)
    scaled = track.bone_transforms.copy()
    scaled[1, 2, :3, :3] *= 1.1
    path = save_body(tmp_path / "body.npz", body,
                     BodyTrack(frame_numbers=[1, 2], fps=24.0, bone_transforms=scaled))
    objects = len(bpy.data.objects)
    with pytest.raises(RuntimeError, match=r"not rigid at frame 2, bone 'bone2'"):
        bpy.ops.garment.add_body(filepath=str(path))
    assert len(bpy.data.objects) == objects


def test_add_body_failing_half_way_leaves_no_datablocks(addon, tmp_path, monkeypatch):
    body_import = importlib.import_module(addon.__name__ + ".operators.scene_capture.body_import")

    def broken(*args):
        raise RuntimeError("weights exploded")

    monkeypatch.setattr(body_import, "_add_weights", broken)
    body = chain_body(vertices=8, bones=3)
    path = save_body(tmp_path / "body.npz", body, turning_track([1, 2], bones=3))

    def counts():
        return [len(c) for c in (bpy.data.objects, bpy.data.armatures, bpy.data.meshes,
                                 bpy.data.actions)]

    before = counts()
    with pytest.raises(RuntimeError, match="weights exploded"):
        bpy.ops.garment.add_body(filepath=str(path))
    assert counts() == before


def test_add_body_reports_a_damaged_file(tmp_path):
    path = tmp_path / "body.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(RuntimeError, match="unreadable body file"):
        bpy.ops.garment.add_body(filepath=str(path))


def test_add_body_round_trips_an_anny_body(rig_module, tmp_path):
    """A small Anny body (the cached 'notoes_collapse10pc' topology) walking 12 frames."""
    from backend.body.anny_body import AnnyPoser
    from backend.body.motions import make_motion

    poser = AnnyPoser(topology="notoes_collapse10pc")
    track = poser.track(make_motion("walk", 12, 30.0), np.arange(1, 13), 30.0)
    save_body(tmp_path / "anny.npz", poser.body, track)
    body, track = load_body(tmp_path / "anny.npz")
    round_trip(rig_module, body, track, tmp_path)
