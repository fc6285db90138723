"""The one body representation the backend works with, whatever its source.

A ``SkinnedBody`` is a mesh in its rest pose with linear-blend-skinning weights over a
bone hierarchy; a ``BodyTrack`` moves it: one rest-to-world transform per bone and frame.
Anny, SMPL/SMPL-X and rigs exported from Blender all become these two objects (see
``backend.body.anny_body``, ``backend.body.smpl``), so nothing downstream knows the source.

Conventions: metres; Blender's world axes (Z up); the rest space is the space
``rest_vertices`` live in (for Anny and Blender rigs also Z up, front -Y; SMPL's own
rest space is Y up and is kept as is: the bone transforms carry it to the world).
Posed vertex ``i`` at frame ``t`` is ``sum_k w[i,k] * A[t, j[i,k]] @ [v_i, 1]`` with
``A = bone_transforms``, ``j = weight_indices``, ``w = weight_values``.

Both classes are frozen and validated when built: an instance always satisfies the
checks below, and each failed check names the field at fault.

Array layouts (numpy, C-contiguous):

=====================  ==============  =======  =========================================
field                  shape           dtype    meaning
=====================  ==============  =======  =========================================
rest_vertices          (V, 3)          float32  rest-pose vertex positions, metres
faces                  (F, 3)          int32    triangle vertex indices, counter-clockwise
weight_indices         (V, K)          int32    bone index of each influence (0 in padding)
weight_values          (V, K)          float32  influence weights, >= 0, rows sum to 1
bone_names             (B,)            str      unique bone names
bone_parents           (B,)            int32    parent bone index, -1 for a root
rest_bone_matrices     (B, 4, 4)       float32  each bone's rest pose: bone -> rest space
uvs (optional)         (F, 3, 2)       float32  per-corner texture coordinates
frame_numbers          (T,)            int64    Blender frame numbers, strictly increasing
bone_transforms        (T, B, 4, 4)    float32  skinning transforms: rest space -> world
posed_vertices (opt.)  (T, V, 3)       float32  the body's own posed vertices, world
=====================  ==============  =======  =========================================

Parents may form a forest (a Blender armature can have several root bones) but never
a cycle. Skinning transforms are ``posed bone pose @ inverse(rest bone pose)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import BodyError

WEIGHT_SUM_TOLERANCE = 1e-3
"""How far a vertex's weights may sum from 1 (float32 files written by other tools)."""
AFFINE_TOLERANCE = 1e-5
"""How far the last row of a transform may be from (0, 0, 0, 1)."""
MAX_INFLUENCES = 8
"""Bones kept per vertex when dense weights are converted (the strongest ones)."""


@dataclass(frozen=True, eq=False)
class SkinnedBody:
    """A skinned body mesh in its rest pose (see the module docstring for layouts).

    Attributes:
        source: where the body came from, e.g. ``"anny:notoes_collapse10pc"``,
            ``"smpl:neutral"``, ``"smplx:female"``, ``"rig:Armature"``.
    """

    rest_vertices: np.ndarray
    faces: np.ndarray
    weight_indices: np.ndarray
    weight_values: np.ndarray
    bone_names: tuple[str, ...]
    bone_parents: np.ndarray
    rest_bone_matrices: np.ndarray
    source: str
    uvs: np.ndarray | None = None

    def __post_init__(self):
        _set(self, "rest_vertices", np.ascontiguousarray(self.rest_vertices, np.float32))
        _set(self, "faces", _as_int(self.faces, np.int32, "faces"))
        _set(self, "weight_indices", _as_int(self.weight_indices, np.int32, "weight_indices"))
        _set(self, "weight_values", np.ascontiguousarray(self.weight_values, np.float32))
        _set(self, "bone_names", tuple(str(n) for n in self.bone_names))
        _set(self, "bone_parents", _as_int(self.bone_parents, np.int32, "bone_parents"))
        _set(self, "rest_bone_matrices",
             np.ascontiguousarray(self.rest_bone_matrices, np.float32))
        if self.uvs is not None:
            _set(self, "uvs", np.ascontiguousarray(self.uvs, np.float32))
        problems = body_problems(self)
        if problems:
            raise BodyError.collected("body", problems)

    @property
    def vertex_count(self) -> int:
        return len(self.rest_vertices)

    @property
    def bone_count(self) -> int:
        return len(self.bone_names)

    @property
    def max_influences(self) -> int:
        return self.weight_indices.shape[1]

    def dense_weights(self) -> np.ndarray:
        """Skinning weights as a dense (V, B) float32 matrix."""
        dense = np.zeros((self.vertex_count, self.bone_count), np.float32)
        rows = np.repeat(np.arange(self.vertex_count), self.max_influences)
        np.add.at(dense, (rows, self.weight_indices.ravel()), self.weight_values.ravel())
        return dense

    @classmethod
    def from_dense_weights(cls, weights: np.ndarray, max_influences: int = MAX_INFLUENCES,
                           **fields) -> SkinnedBody:
        """Build a body from dense (V, B) weights, keeping each vertex's strongest bones.

        Keeping fewer bones than a vertex uses renormalises its weights, which changes
        the skinning slightly; the count kept is the largest any vertex needs, up to
        ``max_influences``.
        """
        indices, values = sparse_weights(weights, max_influences)
        return cls(weight_indices=indices, weight_values=values, **fields)


@dataclass(frozen=True, eq=False)
class BodyTrack:
    """A body's motion: per-frame skinning transforms (see the module docstring).

    Attributes:
        fps: frames per second of the footage the track belongs to.
        pose_code: PCA code of the per-frame joint rotations (``backend.body.pose_code``),
            None until computed.
    """

    frame_numbers: np.ndarray
    fps: float
    bone_transforms: np.ndarray
    posed_vertices: np.ndarray | None = None
    pose_code: PoseCode | None = field(default=None)

    def __post_init__(self):
        _set(self, "frame_numbers", _as_int(self.frame_numbers, np.int64, "frame_numbers"))
        _set(self, "fps", float(self.fps))
        _set(self, "bone_transforms", np.ascontiguousarray(self.bone_transforms, np.float32))
        if self.posed_vertices is not None:
            _set(self, "posed_vertices", np.ascontiguousarray(self.posed_vertices, np.float32))
        problems = track_problems(self)
        if problems:
            raise BodyError.collected("body track", problems)

    @property
    def frame_count(self) -> int:
        return len(self.frame_numbers)

    def check_matches(self, body: SkinnedBody, where: str = "body") -> None:
        """Raise a BodyError unless this track has ``body``'s bone and vertex counts."""
        problems = track_body_problems(self, body)
        if problems:
            raise BodyError.collected(where, problems)


@dataclass(frozen=True, eq=False)
class PoseCode:
    """A low-dimensional code of each frame's pose: PCA of local joint rotations.

    The feature of a frame is the axis-angle vector (radians) of every bone's rotation
    relative to its parent, flattened bone by bone (roots relative to the rest pose;
    left out when ``include_root`` is False). ``code = (feature - mean) @ basis.T``.

    Attributes:
        mean: (D,) float32 mean feature over the track's frames.
        basis: (k, D) float32 principal directions, orthonormal rows, strongest first.
        codes: (T, k) float32 the track's own frames encoded.
        explained_variance: (k,) float32 variance of the data along each direction.
        include_root: whether root bones' rotations are part of the feature.
    """

    mean: np.ndarray
    basis: np.ndarray
    codes: np.ndarray
    explained_variance: np.ndarray
    include_root: bool

    def __post_init__(self):
        for name in ("mean", "basis", "codes", "explained_variance"):
            _set(self, name, np.ascontiguousarray(getattr(self, name), np.float32))
        _set(self, "include_root", bool(self.include_root))
        problems = pose_code_problems(self)
        if problems:
            raise BodyError.collected("pose code", problems)

    @property
    def components(self) -> int:
        return self.basis.shape[0]


def sparse_weights(weights: np.ndarray, max_influences: int = MAX_INFLUENCES
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Dense (V, B) weights -> top-k (indices (V, K) int32, values (V, K) float32).

    K is the most non-zero weights any vertex has, capped at ``max_influences``; kept
    weights are renormalised to sum to 1. Rows that are all zero stay zero (validation
    then reports them).
    """
    weights = np.asarray(weights, np.float64)
    if weights.ndim != 2:
        raise BodyError(f"dense skinning weights must have shape (V, B); got {weights.shape}")
    if not np.isfinite(weights).all():
        raise BodyError("dense skinning weights contain NaN or infinite values")
    nonzero = int((weights > 0).sum(axis=1).max(initial=1))
    k = max(1, min(max_influences, nonzero, weights.shape[1]))
    order = np.argsort(-weights, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(weights, order, axis=1).clip(min=0)
    total = values.sum(axis=1, keepdims=True)
    values = np.divide(values, total, out=np.zeros_like(values), where=total > 0)
    order[values == 0] = 0
    return order.astype(np.int32), values.astype(np.float32)


# ---------------------------------------------------------------- validation


def body_problems(body: SkinnedBody) -> list[str]:
    """Every way ``body`` breaks the layout of the module docstring, one line each."""
    problems: list[str] = []
    v = body.rest_vertices
    if not _shape_ok(v, (None, 3)):
        problems.append(f"rest_vertices: shape {v.shape}, expected (V, 3)")
    elif len(v) == 0:
        problems.append("rest_vertices: the body has no vertices")
    elif not np.isfinite(v).all():
        problems.append(f"rest_vertices: {_count_bad(v)} non-finite value(s) (NaN or inf)")
    n_verts = len(v) if v.ndim == 2 else None

    f = body.faces
    if not _shape_ok(f, (None, 3)):
        problems.append(f"faces: shape {f.shape}, expected (F, 3)")
    elif n_verts is not None and f.size and (f.min() < 0 or f.max() >= n_verts):
        problems.append(f"faces: vertex indices must lie in 0..{n_verts - 1}; "
                        f"got {f.min()}..{f.max()}")

    names, parents, rest = body.bone_names, body.bone_parents, body.rest_bone_matrices
    n_bones = len(names)
    if n_bones == 0:
        problems.append("bone_names: the body has no bones")
    if len(set(names)) != n_bones:
        dupes = sorted({n for n in names if names.count(n) > 1})
        problems.append(f"bone_names: duplicate name(s) {', '.join(dupes[:5])}")
    if parents.shape != (n_bones,):
        problems.append(f"bone_parents: shape {parents.shape}, expected ({n_bones},) "
                        "like bone_names")
    else:
        problems += _parent_problems(parents, names)
    if rest.shape != (n_bones, 4, 4):
        problems.append(f"rest_bone_matrices: shape {rest.shape}, expected ({n_bones}, 4, 4)")
    else:
        problems += _matrix_problems("rest_bone_matrices", rest)

    idx, w = body.weight_indices, body.weight_values
    if idx.ndim != 2 or w.shape != idx.shape:
        problems.append(f"weight_indices {idx.shape} and weight_values {w.shape} must both "
                        "have shape (V, K)")
    elif n_verts is not None and len(idx) != n_verts:
        problems.append(f"weight_values: {len(idx)} rows but the body has {n_verts} vertices")
    else:
        problems += _weight_problems(idx, w, n_bones)

    if body.uvs is not None:
        uvs = body.uvs
        if f.ndim == 2 and uvs.shape != (len(f), 3, 2):
            problems.append(f"uvs: shape {uvs.shape}, expected ({len(f)}, 3, 2): "
                            "one (u, v) per face corner")
        elif not np.isfinite(uvs).all():
            problems.append(f"uvs: {_count_bad(uvs)} non-finite value(s)")
    if not body.source:
        problems.append("source: empty; say where the body came from (anny, smpl, smplx, rig)")
    return problems


def track_problems(track: BodyTrack) -> list[str]:
    """Every way ``track`` is malformed on its own (counts against a body: see below)."""
    problems: list[str] = []
    frames = track.frame_numbers
    if frames.ndim != 1 or len(frames) == 0:
        problems.append(f"frame_numbers: shape {frames.shape}, expected (T,) with T >= 1")
    elif len(frames) > 1 and (np.diff(frames) <= 0).any():
        at = int(np.argmax(np.diff(frames) <= 0))
        problems.append(f"frame_numbers: must be strictly increasing; frame {frames[at + 1]} "
                        f"follows {frames[at]}")
    if not (np.isfinite(track.fps) and track.fps > 0):
        problems.append(f"fps: must be a positive number; got {track.fps}")
    a = track.bone_transforms
    if a.ndim != 4 or a.shape[2:] != (4, 4):
        problems.append(f"bone_transforms: shape {a.shape}, expected (T, B, 4, 4)")
    else:
        if frames.ndim == 1 and a.shape[0] != len(frames):
            problems.append(f"bone_transforms: {a.shape[0]} frame(s) but frame_numbers has "
                            f"{len(frames)}; they must agree")
        problems += _matrix_problems("bone_transforms", a, frames)
    p = track.posed_vertices
    if p is not None:
        if p.ndim != 3 or p.shape[2] != 3 or (a.ndim == 4 and p.shape[0] != a.shape[0]):
            problems.append(f"posed_vertices: shape {p.shape}, expected (T, V, 3) with "
                            f"T = {a.shape[0] if a.ndim == 4 else 'T'}")
        elif not np.isfinite(p).all():
            bad = np.flatnonzero(~np.isfinite(p).all(axis=(1, 2)))
            problems.append(f"posed_vertices: non-finite values at frame(s) "
                            f"{_frames_text(frames, bad)}")
    if track.pose_code is not None and a.ndim == 4 and len(track.pose_code.codes) != len(a):
        problems.append(f"pose_code: {len(track.pose_code.codes)} code(s) for {len(a)} frame(s)")
    return problems


def track_body_problems(track: BodyTrack, body: SkinnedBody) -> list[str]:
    """Count mismatches between a track and the body it moves."""
    problems = []
    if track.bone_transforms.shape[1] != body.bone_count:
        problems.append(f"bone_transforms: {track.bone_transforms.shape[1]} bone(s) per frame "
                        f"but the body has {body.bone_count} (bone_names)")
    if track.posed_vertices is not None and track.posed_vertices.shape[1] != body.vertex_count:
        problems.append(f"posed_vertices: {track.posed_vertices.shape[1]} vertices per frame "
                        f"but the body has {body.vertex_count} (rest_vertices)")
    return problems


def pose_code_problems(code: PoseCode) -> list[str]:
    problems = []
    d = code.mean.shape
    if code.mean.ndim != 1:
        problems.append(f"pose_code_mean: shape {d}, expected (D,)")
    elif code.basis.ndim != 2 or code.basis.shape[1] != d[0]:
        problems.append(f"pose_code_basis: shape {code.basis.shape}, expected (k, {d[0]})")
    elif code.codes.ndim != 2 or code.codes.shape[1] != code.basis.shape[0]:
        problems.append(f"pose_codes: shape {code.codes.shape}, expected "
                        f"(T, {code.basis.shape[0]})")
    elif code.explained_variance.shape != (code.basis.shape[0],):
        problems.append(f"pose_code_variance: shape {code.explained_variance.shape}, "
                        f"expected ({code.basis.shape[0]},)")
    for name in ("mean", "basis", "codes", "explained_variance"):
        if not np.isfinite(getattr(code, name)).all():
            problems.append(f"pose_code_{name}: non-finite values")
    return problems


def _parent_problems(parents: np.ndarray, names: tuple[str, ...]) -> list[str]:
    n = len(parents)
    bad = np.flatnonzero((parents < -1) | (parents >= n) | (parents == np.arange(n)))
    if bad.size:
        i = int(bad[0])
        return [f"bone_parents: bone {i} ({names[i]!r}) has parent {parents[i]}; expected -1 "
                f"(root) or another bone's index in 0..{n - 1}"
                + (f" ({bad.size} such bones)" if bad.size > 1 else "")]
    if n and not (parents == -1).any():
        return ["bone_parents: no root bone (parent -1); the hierarchy has a cycle"]
    # walk up from every bone; a chain longer than n means a cycle
    depth_ok = np.zeros(n, bool)
    for start in range(n):
        seen, bone = set(), start
        while bone != -1 and not depth_ok[bone]:
            if bone in seen:
                return [f"bone_parents: cycle through bone {bone} ({names[bone]!r}); "
                        "parents must form a tree"]
            seen.add(bone)
            bone = int(parents[bone])
        depth_ok[list(seen)] = True
    return []


def _weight_problems(idx: np.ndarray, w: np.ndarray, n_bones: int) -> list[str]:
    problems = []
    if idx.size and (idx.min() < 0 or idx.max() >= n_bones):
        problems.append(f"weight_indices: bone indices must lie in 0..{n_bones - 1}; "
                        f"got {idx.min()}..{idx.max()}")
    if not np.isfinite(w).all():
        problems.append(f"weight_values: {_count_bad(w)} non-finite value(s)")
        return problems
    if (w < 0).any():
        problems.append(f"weight_values: {int((w < 0).sum())} negative weight(s), e.g. at "
                        f"vertex {int(np.argwhere(w < 0)[0, 0])}")
    sums = w.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1) > WEIGHT_SUM_TOLERANCE)
    if off.size:
        i = int(off[0])
        problems.append(f"weight_values: {off.size} vertex/vertices whose weights do not sum "
                        f"to 1 (within {WEIGHT_SUM_TOLERANCE}), e.g. vertex {i} sums to "
                        f"{sums[i]:.4g}" + ("; unweighted vertices must be assigned to a bone"
                                           if (sums[off] == 0).any() else ""))
    return problems


def _matrix_problems(name: str, m: np.ndarray, frames: np.ndarray | None = None) -> list[str]:
    finite = np.isfinite(m).all(axis=(-1, -2))
    if not finite.all():
        where = np.argwhere(~finite)[0]
        if m.ndim == 4:
            frame = frames[where[0]] if frames is not None and where[0] < len(frames) else where[0]
            return [f"{name}: non-finite values (NaN or inf) at frame {frame}, bone {where[1]}"
                    f" ({int((~finite).sum())} matrices in all)"]
        return [f"{name}: non-finite values (NaN or inf) at bone {where[0]}"]
    last_row = np.abs(m[..., 3, :] - np.array([0, 0, 0, 1], np.float32)).max(axis=-1)
    if (last_row > AFFINE_TOLERANCE).any():
        where = np.argwhere(last_row > AFFINE_TOLERANCE)[0]
        return [f"{name}: matrix {tuple(int(i) for i in where)} is not affine: its last row "
                "must be (0, 0, 0, 1)"]
    return []


def _frames_text(frames: np.ndarray, positions: np.ndarray) -> str:
    shown = [str(frames[i]) if i < len(frames) else f"#{i}" for i in positions[:5]]
    return ", ".join(shown) + (f" (+{len(positions) - 5} more)" if len(positions) > 5 else "")


def _shape_ok(a: np.ndarray, shape: tuple) -> bool:
    return a.ndim == len(shape) and all(s is None or s == n for s, n in zip(shape, a.shape,
                                                                              strict=True))


def _count_bad(a: np.ndarray) -> int:
    return int((~np.isfinite(a)).sum())


def _as_int(a, dtype, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "iub" and not (
            a.dtype.kind == "f" and np.isfinite(a).all() and np.array_equal(a, np.round(a))):
        raise BodyError(f"{name}: expected integers; got {a.dtype} values that are not whole "
                        "numbers")
    return np.ascontiguousarray(a, dtype)


def _set(obj, name, value):
    object.__setattr__(obj, name, value)
