"""An armature-skinned mesh in the scene -> SkinnedBody + BodyTrack (body.npz).

What Blender computes, and what is exported so that linear blend skinning with the
exported arrays reproduces it. For a mesh vertex ``v`` (object space, after the
modifiers above the Armature modifier), Blender's Armature modifier gives the world
position

    x(t) = M_arm(t) @ sum_b w_b P_b(t) R_b^-1 @ M_arm(t)^-1 @ M_obj(t) @ v

with ``M_arm``/``M_obj`` the armature's and mesh's world matrices, ``P_b`` the pose
bone matrix and ``R_b`` the rest bone matrix (both armature space) and ``w`` the
vertex-group weights of deform bones, normalised to sum to 1.

The rest space is the world at the reference frame ``r`` (the first exported frame):

- ``rest_vertices = M_obj(r) @ v``: the undeformed mesh where it stands at frame r;
- ``rest_bone_matrices[b] = M_arm(r) @ R_b``;
- ``bone_transforms[t, b] = M_arm(t) P_b(t) R_b^-1 M_arm(t)^-1 M_obj(t) M_obj(r)^-1``,
  which for a mesh parented to its armature is the model's "posed bone @ inverse(rest
  bone)", ``(M_arm(t) P_b(t)) @ (M_arm(r) R_b)^-1``, and also covers a mesh that moves
  on its own. Every frame's result is then exactly ``sum_b w_b A_b(t) @ rest``.

Modifiers below the Armature modifier (subdivision, smoothing, ...) are switched off
while sampling, so the body is the skinned cage; they are switched back on afterwards.
Modifiers above it may move vertices but must keep the topology. The skinning is
checked against Blender's evaluated mesh at every frame; a miss larger than
``LBS_TOLERANCE_M`` (vertices with more than MAX_INFLUENCES bones, animated shape keys
or deforming modifiers above the armature) is reported as a warning.

Not supported (clear errors): envelope or dual-quaternion (preserve volume)
deformation, a vertex-group-masked or multi-modifier Armature modifier, curved B-Bones
(segments > 1) on deform bones, vertices with no deform weight.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass

import bpy
import numpy as np

from ...backend.body.model import MAX_INFLUENCES, BodyTrack, SkinnedBody, sparse_weights
from ..base import GarmentError
from .timeline import check_evaluated, frame_restored, scene_fps, set_frame

log = logging.getLogger(__name__)

LBS_TOLERANCE_M = 1e-4
"""Largest distance between LBS of the export and Blender's mesh before a warning."""


@dataclass(frozen=True)
class BodyRig:
    """A body mesh and the armature that skins it, checked by ``find_rig``.

    Attributes:
        mesh: the mesh object; armature: the Armature modifier's object.
        modifier: the Armature modifier; after: modifiers below it (switched off
            while sampling); before: modifiers above it.
        bone_names: deform bones in the armature's bone order, (B,).
        bone_parents: nearest deform ancestor of each, -1 for none, (B,) int32.
    """

    mesh: bpy.types.Object
    armature: bpy.types.Object
    modifier: bpy.types.Modifier
    before: tuple
    after: tuple
    bone_names: tuple[str, ...]
    bone_parents: np.ndarray


def find_rig(obj) -> BodyRig:
    """Check that ``obj`` is a mesh skinned by one Armature modifier; GarmentError if not."""
    if obj is None:
        raise GarmentError("No body: pick the armature-skinned body mesh in the Garment "
                           "sidebar (Body), or add one with Add Body")
    if obj.type != "MESH":
        raise GarmentError(f"Body '{obj.name}' is a {obj.type.lower()} object; pick the "
                           "skinned mesh (not its armature)")
    active = [m for m in obj.modifiers if m.type == "ARMATURE" and m.show_viewport]
    if not active:
        disabled = [m.name for m in obj.modifiers if m.type == "ARMATURE"]
        detail = (f"its Armature modifier '{disabled[0]}' is disabled in the viewport"
                  if disabled else "it has no Armature modifier")
        raise GarmentError(f"Body '{obj.name}' is not skinned to an armature: {detail}; "
                           "parent it to the rig with Ctrl+P > With Automatic Weights")
    if len(active) > 1:
        raise GarmentError(f"Body '{obj.name}' has {len(active)} Armature modifiers "
                           f"({', '.join(m.name for m in active)}); keep one")
    modifier = active[0]
    where = f"Body '{obj.name}', modifier '{modifier.name}'"
    arm = modifier.object
    if arm is None or arm.type != "ARMATURE":
        raise GarmentError(f"{where}: no armature object is set")
    if modifier.use_deform_preserve_volume:
        raise GarmentError(f"{where}: Preserve Volume (dual quaternion) skinning is not "
                           "supported; turn it off (the body must use linear blend skinning)")
    if modifier.use_bone_envelopes or not modifier.use_vertex_groups:
        raise GarmentError(f"{where}: only vertex-group skinning is supported; enable "
                           "Vertex Groups and disable Bone Envelopes")
    if modifier.vertex_group or modifier.use_multi_modifier:
        raise GarmentError(f"{where}: a vertex-group mask or Multi Modifier is not "
                           "supported; clear it")
    index = list(obj.modifiers).index(modifier)
    before = tuple(m for m in obj.modifiers[:index] if m.show_viewport)
    after = tuple(m for m in obj.modifiers[index + 1:] if m.show_viewport)

    bones = [b for b in arm.data.bones if b.use_deform]
    if not bones:
        raise GarmentError(f"Armature '{arm.name}' has no deform bones (Bone Properties > "
                           "Deform)")
    curved = [b.name for b in bones if b.bbone_segments > 1]
    if curved:
        raise GarmentError(f"Armature '{arm.name}': deform bone '{curved[0]}' is a curved "
                           f"B-Bone ({len(curved)} in all); set Segments to 1 (Bone "
                           "Properties > Bendy Bones): B-Bones are not linear blend skinning")
    index_of = {b.name: i for i, b in enumerate(bones)}
    parents = []
    for bone in bones:
        up = bone.parent
        while up is not None and up.name not in index_of:
            up = up.parent  # skip non-deform bones: their motion is in the children's poses
        parents.append(index_of[up.name] if up is not None else -1)
    return BodyRig(mesh=obj, armature=arm, modifier=modifier, before=before, after=after,
                   bone_names=tuple(b.name for b in bones),
                   bone_parents=np.array(parents, np.int32))


@contextmanager
def modifiers_off(modifiers):
    """Switch modifiers off in the viewport for the block; restore them afterwards."""
    states = [(m, m.show_viewport) for m in modifiers]
    try:
        for m, _ in states:
            m.show_viewport = False
        yield
    finally:
        for m, shown in states:
            m.show_viewport = shown


class BodySampler:
    """Samples a rig frame by frame: ``rest(...)`` once, ``sample(...)`` per frame.

    Use inside ``sampling_modifiers()`` so the modifiers below the armature are off.
    """

    def __init__(self, rig: BodyRig):
        self.rig = rig
        self._frames: list[int] = []
        self._transforms: list[np.ndarray] = []
        self._posed: list[np.ndarray] = []
        self._ref = None  # reference frame; the rest arrays below are set by rest()
        self._rest_object = self._rest_world = self._faces = self._uvs = None
        self._m_obj_ref_inv = self._bone_rest_inv = self._rest_bones = None
        self._weights = self._read_weights()  # checks them before anything is sampled

    def sampling_modifiers(self):
        return modifiers_off(self.rig.after)

    def rest(self, depsgraph, frame: int) -> None:
        """Read the rest mesh at the reference frame (the scene must be at ``frame``).

        Switches the Armature modifier off for one evaluation (restored before return).
        """
        rig = self.rig
        with modifiers_off([rig.modifier]):
            depsgraph.update()
            evaluated = check_evaluated(rig.mesh, depsgraph, "Body")
            mesh = evaluated.to_mesh()
            try:
                self._read_rest_mesh(mesh)
            finally:
                evaluated.to_mesh_clear()
            m_obj = _matrix(evaluated.matrix_world)
        depsgraph.update()
        arm = check_evaluated(rig.armature, depsgraph, "Armature")
        self._ref = frame
        self._m_obj_ref_inv = np.linalg.inv(m_obj)
        self._rest_world = _apply(m_obj, self._rest_object)
        local = np.array([_matrix(arm.data.bones[n].matrix_local) for n in rig.bone_names])
        self._bone_rest_inv = np.linalg.inv(local)
        self._rest_bones = _matrix(arm.matrix_world) @ local

    def sample(self, depsgraph, frame: int) -> None:
        """Record the bone transforms and evaluated vertices at the current frame."""
        assert self._ref is not None, "rest() comes first"
        rig = self.rig
        arm = rig.armature.evaluated_get(depsgraph)
        obj = rig.mesh.evaluated_get(depsgraph)
        m_arm = _matrix(arm.matrix_world)
        m_obj = _matrix(obj.matrix_world)
        pose = np.array([_matrix(arm.pose.bones[n].matrix) for n in rig.bone_names])
        # A_b = M_arm P_b R_b^-1 M_arm^-1 M_obj M_obj(r)^-1 (module docstring)
        tail = np.linalg.inv(m_arm) @ m_obj @ self._m_obj_ref_inv
        self._transforms.append(m_arm @ pose @ self._bone_rest_inv @ tail)
        mesh = obj.to_mesh()
        try:
            if len(mesh.vertices) != len(self._rest_world):
                raise GarmentError(f"Body '{rig.mesh.name}' has {len(mesh.vertices)} vertices "
                                   f"at frame {frame} but {len(self._rest_world)} at frame "
                                   f"{self._ref}; its topology must not change over time")
            co = np.empty(len(mesh.vertices) * 3, np.float32)
            mesh.vertices.foreach_get("co", co)
        finally:
            obj.to_mesh_clear()
        self._posed.append(_apply(m_obj, co.reshape(-1, 3).astype(np.float64)))
        self._frames.append(frame)

    def result(self, fps: float) -> tuple[SkinnedBody, BodyTrack, list[str]]:
        """The body, its track and warnings (the LBS self-check)."""
        rig = self.rig
        indices, values = sparse_weights(self._weights, MAX_INFLUENCES)
        body = SkinnedBody(
            rest_vertices=self._rest_world, faces=self._faces, weight_indices=indices,
            weight_values=values, bone_names=rig.bone_names, bone_parents=rig.bone_parents,
            rest_bone_matrices=self._rest_bones, source=f"rig:{rig.armature.name}",
            uvs=self._uvs)
        track = BodyTrack(frame_numbers=np.array(self._frames), fps=fps,
                          bone_transforms=np.array(self._transforms),
                          posed_vertices=np.array(self._posed))
        return body, track, self._check_skinning(body, track)

    # ------------------------------------------------------------------ helpers

    def _read_rest_mesh(self, mesh) -> None:
        """Rest vertices (object space), triangles and per-corner UVs of ``mesh``."""
        rig = self.rig
        original = rig.mesh.data
        counts = (len(mesh.vertices), len(mesh.polygons))
        if counts != (len(original.vertices), len(original.polygons)):
            names = ", ".join(f"'{m.name}'" for m in rig.before) or "shape keys"
            raise GarmentError(
                f"Body '{rig.mesh.name}': modifiers above the Armature modifier ({names}) "
                f"change the topology ({len(original.vertices)} -> {counts[0]} vertices, "
                f"{len(original.polygons)} -> {counts[1]} faces); apply them or move them "
                "below the Armature modifier")
        co = np.empty(counts[0] * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
        self._rest_object = co.reshape(-1, 3).astype(np.float64)
        mesh.calc_loop_triangles()
        tris = mesh.loop_triangles
        faces = np.empty(len(tris) * 3, np.int32)
        tris.foreach_get("vertices", faces)
        self._faces = faces.reshape(-1, 3)
        self._uvs = None
        uv_layer = mesh.uv_layers.active
        if uv_layer is not None and len(tris):
            loops = np.empty(len(tris) * 3, np.int32)
            tris.foreach_get("loops", loops)
            uv = np.empty(len(mesh.loops) * 2, np.float32)
            uv_layer.uv.foreach_get("vector", uv)
            self._uvs = uv.reshape(-1, 2)[loops].reshape(-1, 3, 2)

    def _read_weights(self) -> np.ndarray:
        """Dense (V, B) float64 deform-bone weights from the mesh's vertex groups."""
        rig = self.rig
        mesh = rig.mesh.data
        column = {i: rig.bone_names.index(g.name) for i, g in enumerate(rig.mesh.vertex_groups)
                  if g.name in rig.bone_names}
        weights = np.zeros((len(mesh.vertices), len(rig.bone_names)))
        for vertex in mesh.vertices:
            for element in vertex.groups:
                col = column.get(element.group)
                if col is not None:
                    weights[vertex.index, col] += element.weight
        # Blender skips a vertex whose deform weights sum to ~0 (it stays undeformed)
        unweighted = np.flatnonzero(weights.sum(axis=1) <= 1e-4)
        if unweighted.size:
            raise GarmentError(
                f"Body '{rig.mesh.name}': {unweighted.size} of {len(weights)} vertices have no "
                f"weight on a deform bone of '{rig.armature.name}' (e.g. vertex "
                f"{int(unweighted[0])}); weight them (Weight Paint, or Ctrl+P > With "
                "Automatic Weights)")
        return weights

    def _check_skinning(self, body: SkinnedBody, track: BodyTrack) -> list[str]:
        skinned = skin(body.rest_vertices, track.bone_transforms, body.weight_indices,
                       body.weight_values)
        error = np.linalg.norm(skinned - track.posed_vertices, axis=-1)
        worst = np.unravel_index(int(np.argmax(error)), error.shape)
        if error[worst] <= LBS_TOLERANCE_M:
            log.info("body '%s': LBS of the export matches Blender within %.2g m",
                     self.rig.mesh.name, float(error.max()))
            return []
        return [f"Body '{self.rig.mesh.name}': skinning the exported rest pose misses "
                f"Blender's mesh by up to {error[worst] * 1000:.3g} mm (frame "
                f"{self._frames[worst[0]]}, vertex {worst[1]}); vertices with more than "
                f"{MAX_INFLUENCES} bones, animated shape keys or modifiers above the "
                "Armature modifier are not linear blend skinning"]


def export_body(scene, obj, frames, fps: float | None = None
                ) -> tuple[SkinnedBody, BodyTrack, list[str]]:
    """Sample the skinned mesh ``obj`` at ``frames`` (Blender frame numbers, increasing).

    The first frame is the reference of the rest space (module docstring); the scene's
    frame and the modifiers' viewport switches are restored afterwards. ``fps``
    defaults to the scene's. Returns the body, its track and warnings.
    """
    sampler = BodySampler(find_rig(obj))
    with frame_restored(scene), sampler.sampling_modifiers():
        for i, frame in enumerate(frames):
            depsgraph = set_frame(scene, frame)
            if i == 0:
                sampler.rest(depsgraph, int(frame))
            sampler.sample(depsgraph, int(frame))
    return sampler.result(fps if fps is not None else scene_fps(scene))


def skin(rest: np.ndarray, transforms: np.ndarray, indices: np.ndarray, values: np.ndarray
         ) -> np.ndarray:
    """Linear blend skinning in numpy (float64).

    Args:
        rest: (V, 3) rest vertices; transforms: (T, B, 4, 4) rest -> world;
        indices, values: (V, K) top-k bone indices and weights.
    Returns:
        (T, V, 3) skinned world positions.
    """
    rest = np.asarray(rest, np.float64)
    homo = np.c_[rest, np.ones(len(rest))]
    out = np.empty((len(transforms), len(rest), 3))
    for t, frame in enumerate(np.asarray(transforms, np.float64)):  # (V, 3, 4) per frame
        blended = np.einsum("vk,vkij->vij", values, frame[indices, :3, :])
        out[t] = np.einsum("vij,vj->vi", blended, homo)
    return out


def _matrix(m) -> np.ndarray:
    return np.array(m, dtype=np.float64).reshape(4, 4)


def _apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ m[:3, :3].T + m[:3, 3]
