"""``body.npz``: a SkinnedBody and its BodyTrack in one numpy archive.

The capture bundle's body file, written by Blender's exporter, by
``python -m backend body ...`` and by the tests. Keys (layouts as in
``backend.body.model``):

- body: ``rest_vertices``, ``faces``, ``bone_names``, ``bone_parents``,
  ``rest_bone_matrices``, ``source`` (0-d string), skinning weights as either
  ``weight_indices`` + ``weight_values`` (sparse top-k, preferred) or ``weights``
  (dense (V, B), accepted on input and converted), optional ``uvs``.
- track: ``frame_numbers``, ``fps`` (0-d float), ``bone_transforms``, optional
  ``posed_vertices``, optional pose code ``pose_code_mean``, ``pose_code_basis``,
  ``pose_codes``, ``pose_code_variance``, ``pose_code_include_root`` (all or none).
- ``format_version`` (0-d int): 1.

Loading validates everything (``backend.body.model``) and reports every problem with
the file's path and the key at fault. The file is written atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..fileio import ARRAY_FILE_ERRORS, atomic_write
from .errors import BodyError
from .model import BodyTrack, PoseCode, SkinnedBody, sparse_weights

FORMAT_VERSION = 1
BODY_FRAMES_KEY = "frame_numbers"
"""Key of the track's Blender frame numbers, shape (T,)."""
BODY_TRANSFORMS_KEY = "bone_transforms"
"""Key of the per-frame rest-to-world bone transforms, shape (T, B, 4, 4)."""
BODY_KEYS = ("rest_vertices", "faces", "bone_names", "bone_parents", "rest_bone_matrices",
             "source")
TRACK_KEYS = (BODY_FRAMES_KEY, "fps", BODY_TRANSFORMS_KEY)
POSE_CODE_KEYS = {"pose_code_mean": "mean", "pose_code_basis": "basis", "pose_codes": "codes",
                  "pose_code_variance": "explained_variance"}
POSE_CODE_ROOT_KEY = "pose_code_include_root"


def save_body(path: Path | str, body: SkinnedBody, track: BodyTrack) -> Path:
    """Write ``body`` and ``track`` to ``path`` (a .npz file); returns the path."""
    track.check_matches(body, where=str(path))
    arrays: dict[str, np.ndarray] = {
        "format_version": np.array(FORMAT_VERSION),
        "rest_vertices": body.rest_vertices,
        "faces": body.faces,
        "weight_indices": body.weight_indices,
        "weight_values": body.weight_values,
        "bone_names": np.array(body.bone_names, dtype=str),
        "bone_parents": body.bone_parents,
        "rest_bone_matrices": body.rest_bone_matrices,
        "source": np.array(body.source),
        BODY_FRAMES_KEY: track.frame_numbers,
        "fps": np.array(track.fps),
        BODY_TRANSFORMS_KEY: track.bone_transforms,
    }
    if body.uvs is not None:
        arrays["uvs"] = body.uvs
    if track.posed_vertices is not None:
        arrays["posed_vertices"] = track.posed_vertices
    if track.pose_code is not None:
        for key, attr in POSE_CODE_KEYS.items():
            arrays[key] = getattr(track.pose_code, attr)
        arrays[POSE_CODE_ROOT_KEY] = np.array(track.pose_code.include_root)
    path = Path(path)
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def load_body(path: Path | str) -> tuple[SkinnedBody, BodyTrack]:
    """Read and validate a body.npz; raises BodyError naming the file and key at fault."""
    path = Path(path)
    where = str(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise BodyError(f"{where}: file not found") from None
    except ARRAY_FILE_ERRORS as exc:
        raise BodyError(f"{where}: unreadable body file ({type(exc).__name__}: {exc})",
                        hint="write it again from Blender or with 'python -m backend body'"
                        ) from None

    problems = _key_problems(data)
    if problems:
        raise BodyError.collected(where, problems)
    try:
        body = _body_from(data)
        track = _track_from(data)
        track.check_matches(body, where=where)
    except BodyError as exc:
        raise BodyError.collected(where, exc.problems) from None
    return body, track


def _key_problems(data: dict[str, np.ndarray]) -> list[str]:
    problems = []
    version = data.get("format_version")
    if version is not None and (version.shape != () or int(version) > FORMAT_VERSION):
        problems.append(f"format_version: {version} is newer than this backend reads "
                        f"({FORMAT_VERSION}); update the extension")
    missing = [k for k in BODY_KEYS + TRACK_KEYS if k not in data]
    sparse = "weight_indices" in data or "weight_values" in data
    if sparse and not ("weight_indices" in data and "weight_values" in data):
        missing.append("weight_values" if "weight_indices" in data else "weight_indices")
    elif not sparse and "weights" not in data:
        missing.append("weight_indices + weight_values (or dense weights)")
    if missing:
        problems.append(f"missing key(s): {', '.join(missing)}")
    code_keys = [k for k in (*POSE_CODE_KEYS, POSE_CODE_ROOT_KEY) if k in data]
    if code_keys and len(code_keys) != len(POSE_CODE_KEYS) + 1:
        absent = sorted((set(POSE_CODE_KEYS) | {POSE_CODE_ROOT_KEY}) - set(code_keys))
        problems.append(f"pose code is incomplete: missing {', '.join(absent)}")
    for key in ("source", "fps", POSE_CODE_ROOT_KEY):
        if key in data and data[key].shape != ():
            problems.append(f"{key}: expected a single value; got shape {data[key].shape}")
    if "bone_names" in data and data["bone_names"].dtype.kind != "U":
        problems.append(f"bone_names: expected strings; got {data['bone_names'].dtype}")
    return problems


def _body_from(data: dict[str, np.ndarray]) -> SkinnedBody:
    fields = dict(
        rest_vertices=_float(data, "rest_vertices"),
        faces=data["faces"],
        bone_names=tuple(data["bone_names"].tolist()),
        bone_parents=data["bone_parents"],
        rest_bone_matrices=_float(data, "rest_bone_matrices"),
        source=str(data["source"]),
        uvs=_float(data, "uvs") if "uvs" in data else None,
    )
    if "weight_indices" in data:
        fields.update(weight_indices=data["weight_indices"],
                      weight_values=_float(data, "weight_values"))
    else:
        dense = _float(data, "weights")
        n_bones = len(fields["bone_names"])
        if dense.ndim != 2 or dense.shape[1] != n_bones:
            raise BodyError(f"weights: shape {dense.shape}, expected (V, {n_bones}) "
                            "(one column per bone)")
        fields["weight_indices"], fields["weight_values"] = sparse_weights(dense)
    return SkinnedBody(**fields)


def _track_from(data: dict[str, np.ndarray]) -> BodyTrack:
    code = None
    if "pose_code_mean" in data:
        code = PoseCode(include_root=bool(data[POSE_CODE_ROOT_KEY]),
                        **{attr: _float(data, key) for key, attr in POSE_CODE_KEYS.items()})
    return BodyTrack(
        frame_numbers=data[BODY_FRAMES_KEY],
        fps=float(_float(data, "fps")),
        bone_transforms=_float(data, BODY_TRANSFORMS_KEY),
        posed_vertices=_float(data, "posed_vertices") if "posed_vertices" in data else None,
        pose_code=code,
    )


def _float(data: dict[str, np.ndarray], key: str) -> np.ndarray:
    a = data[key]
    if a.dtype.kind not in "fiu":
        raise BodyError(f"{key}: expected numbers; got {a.dtype}")
    return a
