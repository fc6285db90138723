"""body.npz -> an armature, a mesh skinned to it and an action ("Add Body").

The inverse of ``body_export``: both objects stay at the world origin, so the rest space
of the file is Blender's world and exporting what is built here gives the file back
(rest vertices, faces, weights and every frame's skinned vertices).

- Bones: one per body bone, its rest matrix (bone -> rest space) made exactly rigid
  (Blender's bones carry no scale) and its length only for display (distance to its
  children, which does not affect skinning).
- Pose: the file's skinning transform ``A_b`` is "posed bone @ inverse(rest bone)", so
  the pose bone matrix (armature space) must be ``A_b @ R_b``, with ``R_b`` the bone's
  rest matrix as Blender stores it (read back, float32). Under the default bone
  relations (inherit rotation and scale, local location, not connected) Blender
  composes ``P_child = P_parent @ R_parent^-1 R_child @ basis``, hence the keyed
  channels ``basis_b = R_b^-1 A_parent^-1 A_b R_b`` (``R_b^-1 A_b R_b`` for roots):
  a location and a quaternion per bone and frame, keyed with linear interpolation.
- A pose can only express rigid ``A_b`` (rotation + translation); scaled or sheared
  transforms are an error naming the frame and bone.
- Mesh: built with ``foreach_set``; one vertex group per bone holding the file's
  weights; per-corner UVs when the file has them; an Armature modifier.
"""

from __future__ import annotations

import logging

import bpy
import numpy as np
from mathutils import Matrix

from ...backend.body.model import BodyTrack, SkinnedBody
from ..base import GarmentError
from .animation import ActionWriter

log = logging.getLogger(__name__)

RIGID_TOLERANCE = 1e-4
"""Max |R^T R - I| entry for a bone transform to count as a rotation (float32 files)."""
MAX_NAME_BYTES = 63
"""Blender's limit on bone and object names."""


def check_rigid(track: BodyTrack, bone_names) -> None:
    """Raise GarmentError unless every bone transform is a rotation plus a translation."""
    rot = track.bone_transforms[..., :3, :3].astype(np.float64)
    ortho = np.abs(np.swapaxes(rot, -1, -2) @ rot - np.eye(3)).max(axis=(-1, -2))
    bad = (ortho > RIGID_TOLERANCE) | (np.linalg.det(rot) <= 0)
    if bad.any():
        t, b = (int(i) for i in np.argwhere(bad)[0])
        raise GarmentError(
            f"Bone transforms are not rigid at frame {int(track.frame_numbers[t])}, bone "
            f"'{bone_names[b]}' (|R^T R - I| = {ortho[t, b]:.3g}, det = "
            f"{np.linalg.det(rot[t, b]):.4g}; {int(bad.sum())} transform(s) in all): an "
            "armature pose can only rotate and move bones, not scale or shear them")


def add_body(body: SkinnedBody, track: BodyTrack, collection, view_layer,
             name: str | None = None, progress=None) -> tuple:
    """Build the rig of ``body`` moving as ``track``; returns (armature, mesh) objects.

    Args:
        collection: where the two new objects are linked.
        view_layer: a view layer that shows ``collection`` (the bones are made in Edit
            Mode, which needs the armature in it).
        name: base name of the objects; default from ``body.source``.
        progress: optional ``progress(stage, step, total)``.
    Raises:
        GarmentError: non-rigid transforms, bone names Blender cannot hold.
    """
    check_rigid(track, body.bone_names)
    long = [n for n in body.bone_names if len(n.encode()) > MAX_NAME_BYTES]
    if long:
        raise GarmentError(f"Bone name '{long[0]}' is longer than Blender's "
                           f"{MAX_NAME_BYTES} bytes; shorten it in the body file")
    base = name or "Body " + body.source.split(":")[0]
    step = _stepper(progress, "add body", 4)

    if not _in_view_layer(view_layer.layer_collection, collection):
        raise GarmentError(f"Collection '{collection.name}' is excluded from view layer "
                           f"'{view_layer.name}'; make another collection active")
    made: list = []  # datablocks created so far, removed again if a step fails
    try:
        arm_data = bpy.data.armatures.new(base + " Rig")
        made.append(arm_data)
        arm_obj = bpy.data.objects.new(base + " Rig", arm_data)
        made.insert(0, arm_obj)
        collection.objects.link(arm_obj)
        rest = _build_bones(arm_obj, body, view_layer)
        step()
        made.append(_key_pose(arm_obj, body, track, rest, base))
        step()
        mesh = _build_mesh(base, body)
        made.append(mesh)
        mesh_obj = bpy.data.objects.new(base, mesh)
        made.insert(0, mesh_obj)
        collection.objects.link(mesh_obj)
        _add_weights(mesh_obj, body)
        mesh_obj.parent = arm_obj
        modifier = mesh_obj.modifiers.new("Armature", "ARMATURE")
        modifier.object = arm_obj
        modifier.use_vertex_groups, modifier.use_bone_envelopes = True, False
        step()
        view_layer.update()
        step()
    except BaseException:
        for block in made:  # objects first, then the data they used
            bpy.data.batch_remove([block])
        raise
    return arm_obj, mesh_obj


def _build_bones(arm_obj, body: SkinnedBody, view_layer) -> np.ndarray:
    """Make the edit bones; returns the rest matrices Blender stored, (B, 4, 4) float64."""
    rest = _rigid(body.rest_bone_matrices.astype(np.float64))
    lengths = _bone_lengths(rest, body.bone_parents)
    # Bones can only be made in Edit Mode, which follows the view layer's active object
    # (a context override is not enough); the previous active object is restored.
    objects = view_layer.objects
    previous = objects.active
    objects.active = arm_obj
    try:
        with bpy.context.temp_override(active_object=arm_obj, object=arm_obj,
                                       view_layer=view_layer, selected_objects=[arm_obj],
                                       selected_editable_objects=[arm_obj]):
            bpy.ops.object.mode_set(mode="EDIT")
            try:
                edit_bones = arm_obj.data.edit_bones
                made = []
                for name, matrix, length in zip(body.bone_names, rest, lengths, strict=True):
                    bone = edit_bones.new(name)
                    bone.head, bone.tail = (0.0, 0.0, 0.0), (0.0, float(length), 0.0)
                    bone.matrix = Matrix(matrix.tolist())  # keeps the length
                    made.append(bone)
                for bone, parent in zip(made, body.bone_parents, strict=True):
                    if parent >= 0:
                        bone.parent = made[parent]
                        bone.use_connect = False
            finally:
                bpy.ops.object.mode_set(mode="OBJECT")
    finally:
        objects.active = previous
    bones = arm_obj.data.bones
    return np.array([np.array(bones[n].matrix_local, np.float64) for n in body.bone_names])


def _key_pose(arm_obj, body: SkinnedBody, track: BodyTrack, rest: np.ndarray, base: str):
    """Key every pose bone's location and quaternion so its skinning transform is A;
    returns the action."""
    A = track.bone_transforms.astype(np.float64)  # (T, B, 4, 4)
    parents = body.bone_parents
    parent_A = np.where((parents >= 0)[None, :, None, None], A[:, np.maximum(parents, 0)],
                        np.eye(4))
    rest_inv = np.linalg.inv(rest)
    basis = rest_inv[None] @ np.linalg.inv(parent_A) @ A @ rest[None]
    quats = _continuous(_quaternions(_rigid(basis[..., :3, :3].reshape(-1, 3, 3))
                                     ).reshape(len(A), -1, 4))
    frames = track.frame_numbers.astype(np.float64)
    writer = ActionWriter(arm_obj, base + " Motion")
    for b, name in enumerate(body.bone_names):
        pose_bone = arm_obj.pose.bones[name]
        pose_bone.rotation_mode = "QUATERNION"
        path = f'pose.bones["{bpy.utils.escape_identifier(name)}"]'
        for i in range(3):
            writer.add_curve(path + ".location", i, frames, basis[:, b, i, 3], group=name)
        for i in range(4):
            writer.add_curve(path + ".rotation_quaternion", i, frames, quats[:, b, i],
                             group=name)
    return writer.action


def _build_mesh(name: str, body: SkinnedBody):
    mesh = bpy.data.meshes.new(name)
    n_faces = len(body.faces)
    mesh.vertices.add(body.vertex_count)
    mesh.vertices.foreach_set("co", body.rest_vertices.astype(np.float32).ravel())
    mesh.loops.add(3 * n_faces)
    mesh.loops.foreach_set("vertex_index", body.faces.astype(np.int32).ravel())
    mesh.polygons.add(n_faces)
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * n_faces, 3, dtype=np.int32))
    if not _readonly(bpy.types.MeshPolygon, "loop_total"):
        mesh.polygons.foreach_set("loop_total", np.full(n_faces, 3, np.int32))  # Blender < 4.0
    if body.uvs is not None:
        mesh.uv_layers.new(name="UVMap").uv.foreach_set("vector", body.uvs.ravel())
    mesh.update(calc_edges=True)
    if hasattr(mesh, "shade_smooth"):
        mesh.shade_smooth()
    return mesh


def _add_weights(mesh_obj, body: SkinnedBody) -> None:
    groups = [mesh_obj.vertex_groups.new(name=n) for n in body.bone_names]
    idx, val = body.weight_indices, body.weight_values
    for v, k in zip(*np.nonzero(val > 0), strict=True):
        groups[idx[v, k]].add([int(v)], float(val[v, k]), "ADD")


def _bone_lengths(rest: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Display lengths: mean distance to the children's heads, else half the parent's."""
    heads = rest[:, :3, 3]
    lengths = np.full(len(rest), np.nan)
    for b in range(len(rest)):
        children = np.flatnonzero(parents == b)
        if children.size:
            distance = np.linalg.norm(heads[children] - heads[b], axis=1).mean()
            if distance > 1e-3:
                lengths[b] = distance
    for b in range(len(rest)):  # parents come first in every body file we make; if not, 0.1
        if np.isnan(lengths[b]):
            parent = parents[b]
            lengths[b] = 0.5 * lengths[parent] if parent >= 0 and parent < b else 0.1
    return np.maximum(np.nan_to_num(lengths, nan=0.1), 0.01)


def _rigid(m: np.ndarray) -> np.ndarray:
    """The nearest rotation of each 3x3 block (polar decomposition); 4x4 keeps translation."""
    out = np.array(m, np.float64)
    u, _, vt = np.linalg.svd(out[..., :3, :3])
    fix = np.ones(u.shape[:-1])
    fix[..., -1] = np.sign(np.linalg.det(u @ vt))
    out[..., :3, :3] = (u * fix[..., None, :]) @ vt
    return out


def _quaternions(rot: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations -> (N, 4) unit quaternions (w, x, y, z).

    From the largest of |w|, |x|, |y|, |z| (stable for every rotation).
    """
    m = rot
    diag = np.stack([m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], 1)
    squares = np.stack([1 + diag.sum(1), 1 + diag[:, 0] - diag[:, 1] - diag[:, 2],
                        1 - diag[:, 0] + diag[:, 1] - diag[:, 2],
                        1 - diag[:, 0] - diag[:, 1] + diag[:, 2]], 1)
    big = np.argmax(squares, axis=1)
    root = 0.5 * np.sqrt(np.maximum(squares[np.arange(len(m)), big], 1e-300))
    d21, d02, d10 = m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]
    s10, s02, s21 = m[:, 1, 0] + m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 2, 1] + m[:, 1, 2]
    q = np.empty((len(m), 4))
    cases = (  # components (w, x, y, z) * 4 * root, for each largest component
        (4 * root**2, d21, d02, d10),
        (d21, 4 * root**2, s10, s02),
        (d02, s10, 4 * root**2, s21),
        (d10, s02, s21, 4 * root**2),
    )
    for case, parts in enumerate(cases):
        rows = big == case
        q[rows] = np.stack([p[rows] for p in parts], 1) / (4 * root[rows, None])
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _continuous(q: np.ndarray) -> np.ndarray:
    """Flip signs along time (axis 0) so neighbouring keys interpolate the short way."""
    q = q.copy()
    for t in range(1, len(q)):
        flip = (q[t] * q[t - 1]).sum(-1) < 0
        q[t, flip] *= -1
    return q


def _in_view_layer(layer_collection, collection) -> bool:
    """Whether ``collection`` is in the view layer and not excluded (all the way down)."""
    if layer_collection.exclude:
        return False
    if layer_collection.collection == collection:
        return True
    return any(_in_view_layer(child, collection) for child in layer_collection.children)


def _readonly(struct, prop: str) -> bool:
    p = struct.bl_rna.properties.get(prop)
    return p is None or p.is_readonly


def _stepper(progress, stage: str, total: int):
    done = [0]

    def step():
        done[0] += 1
        if progress is not None:
            progress(stage, done[0], total)

    return step
