"""A garment from a sewing pattern, simulated with Blender cloth on a body rig, read back,
welded and written back as a mesh cache (issue 6: synthetic captures).

1. ``build_garment``: the pattern's panels become one mesh at the body's rest pose
   (the pattern's world positions at its frame, un-skinned), with a vertex group per
   bone and an Armature modifier on the rig, so pinned vertices ride along with the body;
   a ``pin`` group from ``pin_weight``; a loose edge per sew pair (Blender's sewing
   springs act on loose edges); then a Cloth modifier (pinning + sewing) after the
   Armature modifier, and a Collision modifier on the body.
2. ``simulate``: steps the scene frame by frame from the first frame (the cloth's point
   cache fills in memory, deterministically), reads the evaluated vertices each frame,
   stops with the frame named when the cloth explodes (non-finite positions, edges
   stretched past a bound), and measures the seam gap (largest sewn-pair distance) and
   how deep garment vertices sit inside the body (``body_distances``: BVH nearest point,
   pseudo-normal side, ``cloth_measure``).
3. ``SimResult.welded``: sewn vertices merged (``cloth_cache.build_weld``) -> the
   ground-truth topology and per-frame positions.
4. ``write_back``: a new object with the welded topology, its motion a PC2 mesh cache
   written here and played by a Mesh Cache modifier, so a render shows exactly the
   ground truth; the cloth object and the body's Collision modifier are removed.

Conventions: metres, Blender world (Z up); frames are Blender frame numbers. Solver
settings keep Blender's own units (``ClothSettings``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import bpy
import numpy as np

from ..base import GarmentError
from ..result_import.mesh import build_mesh
from .cloth_cache import build_weld, seam_gaps, write_pc2
from .cloth_measure import feature_normals, side_normals
from .cloth_pattern import Pattern, load_pattern, pattern_from_arrays

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
PIN_GROUP = "pin"
PANEL_ATTRIBUTE = "panel"
"""Integer face attribute holding each face's panel index (``Pattern.panel_names``)."""
ARMATURE_MODIFIER = "Armature"
CLOTH_MODIFIER = "Cloth"
COLLISION_MODIFIER = "Garment Collision"
CACHE_MODIFIER = "Simulated Cloth"
BODY_PROPERTY = "garment_cloth_body"
"""Custom property of the cloth object: the name of the body it collides with."""
NAME_PROPERTY = "garment_name"
"""Custom property of the cloth object: the name its ground-truth object gets."""
CLOTH_FRAME_RATE = 1000 ** 0.5
"""Frames per second of Blender's cloth at time scale 1, whatever the scene's fps: its
solver steps one time unit per frame with gravity scaled by 1/1000, so a frame lasts
sqrt(1/1000) s (measured: a free fall drops 7.86 m in 40 frames, g t^2 / 2 with
t = 40 / 31.6 s)."""
MAX_STRETCH = 5.0
"""Edge length over its length at the first frame beyond which the sim has exploded.
Real cloth peaks far lower (measured: 1.1 x for the tiny preset, up to 2.2 x on a
t-shirt sleeve flung by a walking arm at the default profile) while a solver blowing
up grows edges by orders of magnitude within a few frames."""


class ClothError(GarmentError):
    """A garment that cannot be built or simulated; the message names object and frame."""


@dataclass(frozen=True)
class ClothSettings:
    """Blender cloth solver settings (Blender's own units, as in its Physics panel).

    Attributes:
        quality: solver steps per frame (more: stiffer, slower, fewer explosions).
        collision_quality: collision passes per step.
        mass: mass of each vertex, kg (Blender's cloth ``mass``: per vertex, not per
            area, so a finer pattern is heavier; the stiffnesses are tuned with it).
        tension_stiffness, compression_stiffness, shear_stiffness, bending_stiffness:
            spring stiffnesses (Blender's units; cotton is 15 / 15 / 5 / 0.5).
        air_damping: air viscosity (1 = Blender's default).
        collision_distance_m: distance the cloth keeps from colliders, metres.
        self_collision: also collide the garment with itself (slower).
        self_collision_distance_m: distance kept from itself, metres.
        friction: friction of the cloth against the body (Blender's units, 0..80).
        sewing_force: largest force of a sewing spring (0 = unlimited).
        pin_stiffness: stiffness of the springs that hold pinned vertices to the body.
        time_scale: cloth time per frame over the scene's frame time (1 = real time:
            a frame of cloth lasts 1 / fps seconds, so garments fall and swing at the
            speed the body moves).
        body_thickness_m: outer collision thickness given to the body, metres (the
            cloth keeps about this plus ``collision_distance_m`` from the skin).
        close_seams: start with every seam closed (sewn vertices moved together, the
            move fading over ``close_seam_rings`` edge rings, so the panels' rest shape
            is the sewn one); False leaves it to the sewing springs while settling,
            which on coarse patterns stop a few millimetres short next to pinned rows.
            Seams between pinned vertices are closed either way.
        close_seam_rings: edge rings around a seam that share the closing move.
    """

    quality: int = 5
    collision_quality: int = 2
    mass: float = 0.3
    tension_stiffness: float = 15.0
    compression_stiffness: float = 15.0
    shear_stiffness: float = 5.0
    bending_stiffness: float = 0.5
    air_damping: float = 1.0
    collision_distance_m: float = 0.005
    self_collision: bool = False
    self_collision_distance_m: float = 0.005
    friction: float = 5.0
    sewing_force: float = 0.0
    pin_stiffness: float = 1.0
    time_scale: float = 1.0
    body_thickness_m: float = 0.005
    close_seams: bool = True
    close_seam_rings: int = 3

    def __post_init__(self):
        problems = []
        for name in ("quality", "collision_quality"):
            if not 1 <= getattr(self, name) <= 80:
                problems.append(f"{name} must be in [1, 80], got {getattr(self, name)}")
        if self.close_seam_rings < 1:
            problems.append(f"close_seam_rings must be >= 1, got {self.close_seam_rings}")
        for name in ("mass", "time_scale"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in ("float", float) and not (np.isfinite(value) and value >= 0):
                problems.append(f"{field.name} must be a finite number >= 0, got {value}")
        if problems:
            raise ClothError("Cloth settings: " + "; ".join(problems))


PROFILES: dict[str, ClothSettings] = {
    # the tiny preset's coarse patterns (4-5 cm edges) on a coarse body: big triangles
    # let a fast thigh slip between vertices unless the steps are short, so more steps
    # than the default (cheap at a few hundred vertices)
    "coarse": ClothSettings(quality=8, collision_quality=2),
    # demo and bench captures: 10 steps keep sleeve and crotch seams closed at peak
    # swing (5 steps let t-shirt armholes open to 14 mm); cloth stays cheap next to Cycles
    "default": ClothSettings(quality=10),
}
"""Cloth profiles by name (``SynthSettings.cloth``)."""


def profile(name: str) -> ClothSettings:
    """The cloth profile ``name`` (a key of ``PROFILES``)."""
    if name not in PROFILES:
        raise ClothError(f"Unknown cloth profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """The simulated garment with its seams welded (the ground-truth topology).

    Attributes:
        frames: Blender frame numbers, one per row of ``vertices``.
        vertices: (T, W, 3) float32 world positions, metres.
        faces: (F, 3) int32 counter-clockwise seen from outside.
        uv: (F, 3, 2) float32 per-corner UVs (the panels' layout), v up.
        face_panel: (F,) int32 panel of each face.
        vertex_map: (V,) int32 welded vertex of each panel vertex.
    """

    frames: tuple[int, ...]
    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    face_panel: np.ndarray
    vertex_map: np.ndarray


@dataclass(frozen=True, eq=False)
class SimResult:
    """What ``simulate`` read back: the panels as simulated, before welding.

    Attributes:
        frames: the simulated Blender frames, in order.
        vertices: (T, V, 3) float32 world positions of the panel vertices, metres.
        faces: (F, 3) int32 panel faces; uv: (F, 3, 2) float32 per-corner UVs.
        face_panel: (F,) int32; sew_pairs: (S, 2) int32 sewn vertex pairs.
        seam_gap_m: (T,) float32 largest distance between sewn vertices, metres.
        max_stretch: (T,) float32 largest face-edge length over its first-frame length.
        body_depth_m: (T,) float32 depth of the deepest garment vertex inside the body,
            metres (0: none inside; NaN: the body object was not found).
        seconds: wall time of the simulation and read-back (all frames; the depth
            measure not included), seconds.
    """

    frames: tuple[int, ...]
    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    face_panel: np.ndarray
    sew_pairs: np.ndarray
    seam_gap_m: np.ndarray
    max_stretch: np.ndarray
    body_depth_m: np.ndarray
    seconds: float

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / max(len(self.frames), 1)

    def welded(self) -> GroundTruth:
        """The ground truth: sewn vertices merged at their mean position every frame."""
        return self._welded

    @cached_property
    def _welded(self) -> GroundTruth:
        weld = build_weld(self.vertices.shape[1], self.faces, self.sew_pairs)
        return GroundTruth(frames=self.frames, vertices=weld.positions(self.vertices),
                           faces=weld.faces, uv=self.uv, face_panel=self.face_panel,
                           vertex_map=weld.vertex_map)


def build_garment(scene, pattern: Pattern | Path | str | Mapping, rig, body_object,
                  settings: ClothSettings | None = None, *, collection=None,
                  name: str | None = None, frame: int = 1, material=None):
    """The cloth object of ``pattern`` on ``rig``, ready to simulate (see the module doc).

    Args:
        scene: the scene holding the rig; its current frame is set to ``frame``.
        pattern: a Pattern, a pattern.npz path, or a dict of its arrays.
        rig: the body's armature object (Add Body's); every bone the pattern's skinning
            weights use must exist in it.
        body_object: the body mesh the garment collides with (gets a Collision
            modifier after its other modifiers).
        settings: solver settings (default ``PROFILES["default"]``).
        collection: where the object is linked (default: the rig's first collection).
        name: the garment's name (default from the pattern's garment type); the cloth
            object is "<name> Cloth", the ground truth made by ``write_back`` "<name>".
        frame: the frame the pattern's vertices belong to (sim frame 1).
        material: a material for the garment's first slot (kept by ``write_back``).
    Returns:
        The new mesh object (at the world origin, unparented).
    Raises:
        ClothError: bad pattern, a bone missing from the rig, a body that is not a mesh.
    """
    settings = settings or PROFILES["default"]
    if not isinstance(pattern, Pattern):
        pattern = (pattern_from_arrays(pattern) if isinstance(pattern, Mapping)
                   else load_pattern(pattern))
    if getattr(rig, "type", None) != "ARMATURE":
        raise ClothError(f"Garment rig must be an armature object; got "
                         f"{getattr(rig, 'name', rig)!r} ({getattr(rig, 'type', None)})")
    if getattr(body_object, "type", None) != "MESH":
        raise ClothError(f"Garment body must be a mesh object; got "
                         f"{getattr(body_object, 'name', body_object)!r}")
    used = np.unique(pattern.weight_indices[pattern.weight_values > 0])
    missing = [pattern.bone_names[b] for b in used if pattern.bone_names[b] not in rig.data.bones]
    if missing:
        raise ClothError(f"Pattern {pattern.source} skins to bone(s) {', '.join(missing[:5])}"
                         f"{' ...' if len(missing) > 5 else ''} that rig '{rig.name}' lacks")
    base = name or (pattern.garment_type.replace("_", " ").capitalize() or "Garment")
    collection = collection or (rig.users_collection[0] if rig.users_collection
                                else scene.collection)

    scene.frame_set(frame)
    closed = _close_seams(pattern, settings.close_seams, settings.close_seam_rings)
    rest = _unskin(pattern, closed, _skinning_matrices(rig, pattern.bone_names,
                                                       _depsgraph(scene)))
    made = []
    try:
        mesh = _garment_mesh(base + " Cloth", rest, pattern)
        made.append(mesh)
        obj = bpy.data.objects.new(base + " Cloth", mesh)
        made.insert(0, obj)
        collection.objects.link(obj)
        if material is not None:
            mesh.materials.append(material)
        _add_groups(obj, pattern)
        armature = obj.modifiers.new(ARMATURE_MODIFIER, "ARMATURE")
        armature.object = rig
        armature.use_vertex_groups, armature.use_bone_envelopes = True, False
        armature.use_deform_preserve_volume = False  # linear blend, as the pattern's skinning
        _add_cloth(obj, settings, scene.render.fps / scene.render.fps_base)
        _add_collision(body_object, settings)
        obj[BODY_PROPERTY] = body_object.name
        obj[NAME_PROPERTY] = base
    except BaseException:
        for block in made:
            bpy.data.batch_remove([block])
        raise
    log.info("garment '%s': %d vertices, %d faces, %d sew pairs, %d pinned", obj.name,
             pattern.vertex_count, pattern.face_count, len(pattern.sew_pairs),
             int((pattern.pin_weight > 0).sum()))
    return obj


def simulate(scene, garment, frames: tuple[int, int] | None = None,
             progress: Progress | None = None, max_stretch: float = MAX_STRETCH) -> SimResult:
    """Simulate the cloth of ``garment`` over ``frames`` = (first, last) (default: the
    scene's frame range) and read it back.

    The scene is stepped one frame at a time from ``first`` (the cloth starts from
    the garment's shape there), so every frame follows from the previous one as in a
    bake, and the same scene gives the same result. Frames Blender still holds in the
    cloth's point cache from an earlier run are read back, not simulated again (it
    discards them when a cloth setting, the mesh or the range start changes). Each
    frame also measures how deep garment vertices sit inside the body (the object
    given to ``build_garment``). The scene's current frame is restored at the end.

    Args:
        progress: optional ``progress("simulate", frames done, frames in all)``.
        max_stretch: explosion bound on face-edge length over its first-frame length.
    Returns:
        SimResult (world positions of the panel vertices at every frame).
    Raises:
        ClothError: no Cloth modifier; the simulation exploded (names the frame).
    """
    first, last = (int(f) for f in (frames or (scene.frame_start, scene.frame_end)))
    if last < first:
        raise ClothError(f"Simulation frames must run forward; got {first} .. {last}")
    cloth = _cloth_modifier(garment)
    cloth.point_cache.frame_start, cloth.point_cache.frame_end = first, last
    body = bpy.data.objects.get(garment.get(BODY_PROPERTY, ""))
    previous = scene.frame_current
    mesh = garment.data
    V = len(mesh.vertices)
    faces = _faces(mesh)
    uv = _corner_uv(mesh)
    face_edges, sew_pairs = _edges(mesh)
    panel = _face_panel(mesh)

    T = last - first + 1
    positions = np.empty((T, V, 3), np.float32)
    stretch = np.zeros(T, np.float32)
    depth = np.full(T, np.nan, np.float32)
    rest_length = None
    co = np.empty(V * 3, np.float32)
    depsgraph = _depsgraph(scene)
    start = time.perf_counter()
    measuring = 0.0  # seconds spent on the depth measure, not the simulation
    try:
        for i, frame in enumerate(range(first, last + 1)):
            scene.frame_set(frame)
            evaluated = garment.evaluated_get(depsgraph)
            data = evaluated.data
            if len(data.vertices) != V:
                raise ClothError(f"Garment '{garment.name}' has {len(data.vertices)} evaluated "
                                 f"vertices at frame {frame}, its mesh {V}: a modifier "
                                 "changes the topology")
            data.vertices.foreach_get("co", co)
            world = np.array(evaluated.matrix_world, np.float64)
            positions[i] = co.reshape(V, 3) @ world[:3, :3].T + world[:3, 3]
            if not np.isfinite(positions[i]).all():
                raise ClothError(f"Cloth simulation of '{garment.name}' exploded at frame "
                                 f"{frame}: non-finite vertex positions")
            length = np.linalg.norm(positions[i][face_edges[:, 0]]
                                    - positions[i][face_edges[:, 1]], axis=1)
            if rest_length is None:
                rest_length = np.maximum(length, 1e-6)
            ratio = length / rest_length
            stretch[i] = ratio.max(initial=1.0)
            if stretch[i] > max_stretch:
                e = int(np.argmax(ratio))
                raise ClothError(
                    f"Cloth simulation of '{garment.name}' exploded at frame {frame}: edge "
                    f"{face_edges[e].tolist()} is {stretch[i]:.3g} x its length at frame "
                    f"{first} (bound {max_stretch:g}); raise the cloth quality or lower "
                    "the motion's speed")
            if body is not None:
                tic = time.perf_counter()
                distances = body_distances(body, positions[i], _depsgraph(scene))
                depth[i] = max(0.0, -distances.min(initial=0.0))
                measuring += time.perf_counter() - tic
            if progress is not None:
                progress("simulate", i + 1, T)
    finally:
        seconds = time.perf_counter() - start - measuring
        scene.frame_set(previous)
    frame_numbers = tuple(range(first, last + 1))
    gaps = seam_gaps(positions, sew_pairs)
    log.info("cloth '%s': %d frames in %.2f s (%.3f s/frame; depth measure %.2f s), max seam "
             "gap after the first frame %.2f mm, max stretch %.3f, deepest vertex in the "
             "body %.2f mm", garment.name, T, seconds, seconds / T, measuring,
             1e3 * float(gaps[1:].max(initial=0.0)), float(stretch.max()),
             1e3 * float(np.nanmax(depth, initial=0.0)))
    return SimResult(frames=frame_numbers, vertices=positions, faces=faces, uv=uv,
                     face_panel=panel, sew_pairs=sew_pairs, seam_gap_m=gaps,
                     max_stretch=stretch, body_depth_m=depth, seconds=seconds)


def body_distances(body_object, points: np.ndarray, depsgraph=None) -> np.ndarray:
    """(N,) float64 signed distances of world ``points`` (N, 3) to the surface of
    ``body_object``'s evaluated mesh at the current frame, metres, negative inside
    (evaluated in ``depsgraph``, default the context's).

    The nearest surface point comes from a BVH tree over the mesh's triangles (world
    space); its side from the pseudo-normal of the face, edge or vertex it lies on
    (``cloth_measure``; the mesh should be closed, as Anny's is).
    """
    from mathutils import Vector
    from mathutils.bvhtree import BVHTree

    evaluated = body_object.evaluated_get(depsgraph or bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.data
    co = np.empty(3 * len(mesh.vertices), np.float32)
    mesh.vertices.foreach_get("co", co)
    world = np.array(evaluated.matrix_world, np.float64)
    vertices = co.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3]
    mesh.calc_loop_triangles()
    triangles = np.empty(3 * len(mesh.loop_triangles), np.int32)
    mesh.loop_triangles.foreach_get("vertices", triangles)
    triangles = triangles.reshape(-1, 3)
    tree = BVHTree.FromPolygons(vertices.tolist(), triangles.tolist(), all_triangles=True)
    points = np.asarray(points, np.float64)
    nearest = np.empty_like(points)
    face_index = np.empty(len(points), np.int64)
    for i, p in enumerate(points):
        location, _, index, _ = tree.find_nearest(Vector(p))
        nearest[i], face_index[i] = location, index
    normals = side_normals(feature_normals(vertices, triangles), vertices, nearest, face_index)
    offset = points - nearest
    distance = np.linalg.norm(offset, axis=1)
    return np.where(np.einsum("ij,ij->i", offset, normals) < 0, -distance, distance)


def write_back(scene, garment, result: SimResult, cache_path: Path | str, *, collection=None,
               name: str | None = None):
    """Replace the cloth object by its ground truth, played from a PC2 mesh cache.

    The new object has the welded topology (``result.welded()``), the cloth mesh's
    materials and UVs and a ``panel`` face attribute; its Mesh Cache modifier reads
    ``cache_path`` (written here: every simulated frame, world space), so frame f of
    the scene shows exactly ``result.welded().vertices`` of frame f. The cloth object,
    its mesh and the body's Collision modifier (added by ``build_garment``) are removed.

    Args:
        cache_path: where the PC2 file goes (absolute paths are safest; the modifier
            stores the path as given).
        collection: where the object is linked (default: the cloth object's).
        name: its name (default: the name given to ``build_garment``).
    Returns:
        The new object.
    """
    gt = result.welded()
    cache_path = Path(cache_path)
    write_pc2(cache_path, gt.vertices, start_frame=float(gt.frames[0]))
    base = name or garment.get(NAME_PROPERTY) or garment.name
    collection = collection or (garment.users_collection[0] if garment.users_collection
                                else scene.collection)
    materials = list(garment.data.materials)
    body_name = garment.get(BODY_PROPERTY)

    mesh = build_mesh(base, gt.vertices[0], gt.faces, gt.uv)
    made = [mesh]
    try:
        for material in materials:
            mesh.materials.append(material)
        mesh.attributes.new(PANEL_ATTRIBUTE, "INT", "FACE").data.foreach_set(
            "value", gt.face_panel.astype(np.int32))
        obj = bpy.data.objects.new(base, mesh)
        made.insert(0, obj)
        collection.objects.link(obj)
        modifier = obj.modifiers.new(CACHE_MODIFIER, "MESH_CACHE")
        modifier.cache_format = "PC2"
        modifier.filepath = str(cache_path)
        modifier.deform_mode = "OVERWRITE"
        modifier.play_mode = "SCENE"
        modifier.time_mode = "FRAME"
        modifier.frame_start = float(gt.frames[0])  # scene frame f reads sample f - first
        modifier.frame_scale = 1.0
        modifier.interpolation = "LINEAR"
        modifier.forward_axis, modifier.up_axis = "POS_Y", "POS_Z"  # no axis change
    except BaseException:
        for block in made:
            bpy.data.batch_remove([block])
        raise
    old_mesh = garment.data  # only now: a failure above leaves the cloth object as it was
    bpy.data.objects.remove(garment)
    if old_mesh.users == 0:
        bpy.data.meshes.remove(old_mesh)
    body = bpy.data.objects.get(body_name) if body_name else None
    if body is not None and COLLISION_MODIFIER in body.modifiers:
        body.modifiers.remove(body.modifiers[COLLISION_MODIFIER])
    scene.frame_set(scene.frame_current)
    return obj


# -- building ---------------------------------------------------------------------------

def _depsgraph(scene):
    """The evaluated depsgraph ``scene.frame_set`` updates: the context's when
    ``scene`` is the context scene, else that of the scene's first view layer (the
    context's depsgraph belongs to another scene and would not move)."""
    if bpy.context.scene == scene:
        return bpy.context.evaluated_depsgraph_get()
    return scene.view_layers[0].depsgraph


def _skinning_matrices(rig, bone_names, depsgraph) -> np.ndarray:
    """(B, 4, 4) float64 world-space skinning transforms of the rig's current pose:
    ``world @ pose @ rest^-1 @ world^-1`` (identity for bones the rig lacks, which no
    vertex uses)."""
    evaluated = rig.evaluated_get(depsgraph)
    world = np.array(evaluated.matrix_world, np.float64)
    world_inv = np.linalg.inv(world)
    out = np.tile(np.eye(4), (len(bone_names), 1, 1))
    for b, name in enumerate(bone_names):
        pose_bone = evaluated.pose.bones.get(name)
        if pose_bone is None:
            continue
        rest = np.array(pose_bone.bone.matrix_local, np.float64)
        out[b] = world @ np.array(pose_bone.matrix, np.float64) @ np.linalg.inv(rest) @ world_inv
    return out


def _close_seams(pattern: Pattern, everywhere: bool, rings: int) -> np.ndarray:
    """(V, 3) float64 pattern vertices with seams closed before the simulation.

    Sewn vertices move to the mean of their group; the move fades out harmonically over
    ``rings`` rings of edges around the seam (the panels' rest shape takes it up
    smoothly instead of in one row of triangles). Seams between pinned vertices are
    always closed (sewing springs cannot move pinned vertices: such a seam would stay
    as open as the pattern lays it out, and hold the seam below it open); the others
    only when ``everywhere`` (else the sewing springs close them while settling).
    """
    vertices = pattern.vertices.astype(np.float64)
    pairs = pattern.sew_pairs
    if not everywhere:
        pairs = pairs[(pattern.pin_weight[pairs] > 0).all(axis=1)]
    if not len(pairs):
        return vertices
    weld = build_weld(pattern.vertex_count, np.zeros((0, 3), np.int32), pairs)
    sewn = np.bincount(weld.vertex_map, minlength=weld.welded_count)[weld.vertex_map] > 1
    move = np.zeros_like(vertices)
    move[sewn] = weld.positions(vertices).astype(np.float64)[weld.vertex_map][sewn] \
        - vertices[sewn]
    faces = pattern.faces
    edges = np.unique(np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]],
                                              faces[:, [2, 0]]]), axis=1), axis=0)
    ring = np.where(sewn, 0, rings)  # edge rings from the seam, capped at ``rings``
    for r in range(1, rings):
        near = (ring[edges] < r).any(axis=1)
        reached = np.unique(edges[near])
        ring[reached] = np.minimum(ring[reached], r)
    free = ring < rings
    free[sewn] = False
    degree = np.bincount(edges.ravel(), minlength=len(vertices)).astype(np.float64)
    for _ in range(8 * rings):  # Jacobi sweeps of the graph Laplacian
        total = np.zeros_like(move)
        np.add.at(total, edges[:, 0], move[edges[:, 1]])
        np.add.at(total, edges[:, 1], move[edges[:, 0]])
        move[free] = total[free] / np.maximum(degree[free], 1)[:, None]
    log.info("pattern %s: closed %d seam pair(s) before simulating, moving vertices up to "
             "%.1f mm", pattern.source, len(pairs), 1e3 * np.linalg.norm(move, axis=1).max())
    return vertices + move


def _unskin(pattern: Pattern, vertices: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """(V, 3) float32 rest-pose positions that the rig's current pose skins (linear
    blend, the Armature modifier's rule) onto ``vertices`` (V, 3): each vertex through
    the inverse of its blended transform (``pattern``'s skinning weights)."""
    w = pattern.weight_values.astype(np.float64)
    w = w / w.sum(axis=1, keepdims=True)
    blended = np.einsum("vk,vkij->vij", w, matrices[pattern.weight_indices])
    points = np.concatenate([vertices, np.ones((len(vertices), 1))], axis=1)
    rest = np.linalg.solve(blended, points[..., None])[..., 0]
    return np.ascontiguousarray(rest[:, :3], np.float32)


def _garment_mesh(name: str, vertices: np.ndarray, pattern: Pattern):
    """Triangle mesh of the panels with UVs, a panel face attribute and one loose edge
    per sew pair."""
    mesh = bpy.data.meshes.new(name)
    V, F = len(vertices), pattern.face_count
    faces = pattern.faces
    mesh.vertices.add(V)
    mesh.vertices.foreach_set("co", vertices.ravel())
    # every edge up front: the faces' edges (deduplicated) and the sewing edges
    face_edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]],
                                         faces[:, [2, 0]]]), axis=1)
    face_edges = np.unique(face_edges, axis=0)
    sew = np.unique(np.sort(pattern.sew_pairs, axis=1), axis=0)
    shared = np.isin(sew[:, 0].astype(np.int64) * V + sew[:, 1],
                     face_edges[:, 0].astype(np.int64) * V + face_edges[:, 1])
    if shared.any():
        raise ClothError(f"Pattern {pattern.source}: sew pair {sew[np.argmax(shared)].tolist()} "
                         "is an edge of a face; sewn vertices must lie on different panels")
    edges = np.concatenate([face_edges, sew]).astype(np.int32)
    mesh.edges.add(len(edges))
    mesh.edges.foreach_set("vertices", edges.ravel())
    mesh.loops.add(3 * F)
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(F)
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * F, 3, dtype=np.int32))
    mesh.uv_layers.new(name="UVMap").data.foreach_set(
        "uv", np.ascontiguousarray(pattern.uv[faces], np.float32).ravel())
    mesh.update(calc_edges=True)
    mesh.attributes.new(PANEL_ATTRIBUTE, "INT", "FACE").data.foreach_set(
        "value", pattern.face_panel)
    mesh.shade_smooth()
    if len(mesh.edges) != len(edges):
        raise ClothError(f"Garment mesh '{name}': Blender made {len(mesh.edges)} edges "
                         f"from {len(edges)}")
    return mesh


def _add_groups(obj, pattern: Pattern) -> None:
    """A vertex group per bone the weights use, and the ``pin`` group."""
    idx, val = pattern.weight_indices, pattern.weight_values
    groups = {}
    for v, k in zip(*np.nonzero(val > 0), strict=True):
        bone = pattern.bone_names[idx[v, k]]
        if bone not in groups:
            groups[bone] = obj.vertex_groups.new(name=bone)
        groups[bone].add([int(v)], float(val[v, k]), "REPLACE")
    pin = obj.vertex_groups.new(name=PIN_GROUP)
    for v in np.flatnonzero(pattern.pin_weight > 0):
        pin.add([int(v)], float(pattern.pin_weight[v]), "REPLACE")


def _add_cloth(obj, settings: ClothSettings, fps: float) -> None:
    cloth = obj.modifiers.new(CLOTH_MODIFIER, "CLOTH")
    s = cloth.settings
    s.quality = settings.quality
    s.mass = settings.mass
    s.tension_stiffness = s.tension_stiffness_max = settings.tension_stiffness
    s.compression_stiffness = s.compression_stiffness_max = settings.compression_stiffness
    s.shear_stiffness = s.shear_stiffness_max = settings.shear_stiffness
    s.bending_stiffness = s.bending_stiffness_max = settings.bending_stiffness
    s.air_damping = settings.air_damping
    s.time_scale = settings.time_scale * CLOTH_FRAME_RATE / fps
    s.vertex_group_mass = PIN_GROUP
    s.pin_stiffness = settings.pin_stiffness
    s.use_sewing_springs = True
    s.sewing_force_max = settings.sewing_force
    c = cloth.collision_settings
    c.use_collision = True
    c.collision_quality = settings.collision_quality
    c.distance_min = settings.collision_distance_m
    c.friction = settings.friction
    c.use_self_collision = settings.self_collision
    c.self_distance_min = settings.self_collision_distance_m


def _add_collision(body, settings: ClothSettings) -> None:
    # an object holds one Collision modifier: a user's own is kept (and left in place
    # by write_back, which removes only ours)
    if not any(m.type == "COLLISION" for m in body.modifiers):
        body.modifiers.new(COLLISION_MODIFIER, "COLLISION")
    collision = body.collision
    collision.use = True
    collision.thickness_outer = settings.body_thickness_m
    collision.cloth_friction = settings.friction


# -- reading ----------------------------------------------------------------------------

def _cloth_modifier(garment):
    for modifier in getattr(garment, "modifiers", ()):
        if modifier.type == "CLOTH":
            return modifier
    raise ClothError(f"Object '{getattr(garment, 'name', garment)}' has no Cloth modifier; "
                     "build it with build_garment")


def _faces(mesh) -> np.ndarray:
    totals = np.empty(len(mesh.polygons), np.int32)
    mesh.polygons.foreach_get("loop_total", totals)
    if (totals != 3).any():
        raise ClothError(f"Garment mesh '{mesh.name}' has non-triangle faces")
    faces = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("vertex_index", faces)
    return faces.reshape(-1, 3)


def _corner_uv(mesh) -> np.ndarray:
    if not mesh.uv_layers:
        return np.zeros((len(mesh.polygons), 3, 2), np.float32)
    uv = np.empty(len(mesh.loops) * 2, np.float32)
    mesh.uv_layers[0].data.foreach_get("uv", uv)
    return uv.reshape(-1, 3, 2)


def _face_panel(mesh) -> np.ndarray:
    out = np.zeros(len(mesh.polygons), np.int32)
    attribute = mesh.attributes.get(PANEL_ATTRIBUTE)
    if attribute is not None and attribute.domain == "FACE":
        attribute.data.foreach_get("value", out)
    return out


def _edges(mesh) -> tuple[np.ndarray, np.ndarray]:
    """(face edges (E, 2), loose edges = sew pairs (S, 2)), int32."""
    edges = np.empty(len(mesh.edges) * 2, np.int32)
    mesh.edges.foreach_get("vertices", edges)
    edges = edges.reshape(-1, 2)
    used = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("edge_index", used)
    in_face = np.zeros(len(edges), bool)
    in_face[used] = True
    return edges[in_face], edges[~in_face]
