"""SMPL and SMPL-X bodies from the user's own model files, through ``smplx``.

The model files are licensed by their authors and never ship with the extension: the
user downloads them and points the preferences (or ``--model``) at the folder. A file
is found as ``SMPL_<GENDER>.pkl`` or ``SMPLX_<GENDER>.npz|.pkl``, directly in that
folder or in its ``smpl/`` / ``smplx/`` subfolder.

Pose sequences come from pose estimators as ``.npz`` or ``.pkl`` files with per-frame
``global_orient`` (T, 3), ``body_pose`` (T, 3 x joints), ``transl`` (T, 3) and ``betas``
((B,) or (T, B): the first row is used), plus, for SMPL-X, optional ``jaw_pose``,
``leye_pose``, ``reye_pose``, ``left_hand_pose``, ``right_hand_pose`` (full 45-d axis
angle, relative to a flat hand) and ``expression``. Axis-angle vectors are in radians.

SMPL's world is Y up and faces +Z; ours is Blender's (Z up, the body facing -Y), so
the rest space and the world are rotated by +90 degrees about X on the way in
(``Y_UP_TO_Z_UP``). SMPL adds pose-dependent corrective offsets to its rest vertices
before skinning; ``SmplPoser.corrected_rest_vertices`` computes them, and the track's
``posed_vertices`` are smplx's own output. Garments skin without correctives.
"""

from __future__ import annotations

import contextlib
import io
import logging
import pickle
from pathlib import Path

import numpy as np

from .errors import BodyError
from .model import BodyTrack, SkinnedBody, sparse_weights
from .pose_code import DEFAULT_COMPONENTS, fit_pose_code

log = logging.getLogger(__name__)

MODEL_TYPES = ("smpl", "smplx")
GENDERS = ("neutral", "female", "male")
Y_UP_TO_Z_UP = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
"""SMPL world (Y up, facing +Z) -> Blender world (Z up, facing -Y)."""

SMPL_BONE_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)
_SMPLX_EXTRA_POSES = ("jaw_pose", "leye_pose", "reye_pose", "left_hand_pose", "right_hand_pose")
_MODEL_HINT = ("download the model from its authors' site (registration required) and set "
               "its folder in Preferences > Add-ons > Garment Reconstruction > SMPL model "
               "folder, or pass --model")


def find_model_file(model: Path | str, model_type: str = "smpl", gender: str = "neutral") -> Path:
    """The model file for ``model_type`` and ``gender`` in folder ``model`` (or ``model``
    itself when it is a file); a BodyError says where it looked when there is none."""
    if model_type not in MODEL_TYPES:
        raise BodyError(f"model type must be one of {', '.join(MODEL_TYPES)}; got {model_type!r}")
    if gender not in GENDERS:
        raise BodyError(f"gender must be one of {', '.join(GENDERS)}; got {gender!r}")
    model = Path(model)
    if model.is_file():
        return model
    stem = f"{model_type.upper()}_{gender.upper()}"
    exts = ("pkl",) if model_type == "smpl" else ("npz", "pkl")
    candidates = [folder / f"{stem}.{ext}" for folder in (model, model / model_type)
                  for ext in exts]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise BodyError(f"no {model_type.upper()} model file found: looked for "
                    f"{', '.join(str(c) for c in candidates)}", hint=_MODEL_HINT)


class SmplPoser:
    """An SMPL or SMPL-X model with one body shape: its SkinnedBody and its tracks.

    Args:
        model_file: the model file (``find_model_file``).
        betas: (n,) shape coefficients (missing ones are 0).
    """

    def __init__(self, model_file: Path | str, betas: np.ndarray | None = None):
        import smplx
        import torch

        self.model_file = Path(model_file)
        self.model_type = "smplx" if self.model_file.name.upper().startswith("SMPLX") else "smpl"
        kwargs = dict(use_hands=False, use_feet_keypoints=False, dtype=torch.float64)
        if self.model_type == "smplx":
            kwargs.update(ext=self.model_file.suffix[1:], use_pca=False, flat_hand_mean=True)
        model_class = smplx.SMPLX if self.model_type == "smplx" else smplx.SMPL
        printed = io.StringIO()   # smplx print()s warnings; stdout is our event stream
        try:
            with contextlib.redirect_stdout(printed):
                self.model = model_class(str(self.model_file), **kwargs)
        except (OSError, KeyError, AttributeError, ValueError, pickle.UnpicklingError,
                EOFError) as exc:
            raise BodyError(f"{self.model_file}: not a readable {self.model_type.upper()} model "
                            f"file ({type(exc).__name__}: {exc})", hint=_MODEL_HINT) from None
        for line in printed.getvalue().splitlines():
            log.info("smplx: %s", line)
        m = self.model
        # only vertices are used: skip the extra keypoints smplx picks from fixed vertex ids
        m.vertex_joint_selector.extra_joints_idxs = torch.zeros(0, dtype=torch.long)
        self.parents = m.parents.numpy().astype(np.int64)
        self.joint_count = len(self.parents)
        self.betas = self._pad(betas, m.num_betas, "betas")
        self._v_template = m.v_template.numpy()
        self._shapedirs = m.shapedirs.numpy()                         # (V, 3, n_betas)
        self._expr_dirs = m.expr_dirs.numpy() if self.model_type == "smplx" else None
        self._posedirs = m.posedirs.numpy()                           # (9 (J-1), 3V)
        self._regressor = m.J_regressor.numpy()                       # (J, V)
        v_shaped = self._shaped(np.zeros((1, self.expression_count)))[0]
        joints = self._regressor @ v_shaped
        rest = np.tile(np.eye(4), (self.joint_count, 1, 1))
        rest[:, :3, 3] = joints
        if self.model_type == "smplx":
            import smplx.joint_names

            names = tuple(smplx.joint_names.JOINT_NAMES[:self.joint_count])
        else:
            names = SMPL_BONE_NAMES[:self.joint_count]
        weights = m.lbs_weights.numpy()
        indices, values = sparse_weights(weights, max_influences=weights.shape[1])  # lossless
        gender = self.model_file.stem.split("_", 1)[-1].lower()
        self.body = SkinnedBody(
            rest_vertices=v_shaped @ Y_UP_TO_Z_UP.T,
            faces=np.asarray(m.faces, np.int64),
            weight_indices=indices, weight_values=values,
            bone_names=names, bone_parents=np.where(self.parents < 0, -1, self.parents),
            rest_bone_matrices=_to_z_up(rest), source=f"{self.model_type}:{gender}",
        )

    @property
    def expression_count(self) -> int:
        return 0 if self._expr_dirs is None else self._expr_dirs.shape[-1]

    def _pad(self, values, size: int, name: str) -> np.ndarray:
        out = np.zeros(size)
        if values is not None:
            values = np.asarray(values, np.float64).ravel()
            if len(values) > size:
                log.warning("%s: using the first %d of %d coefficients", name, size, len(values))
            out[:min(size, len(values))] = values[:size]
        return out

    def _shaped(self, expression: np.ndarray) -> np.ndarray:
        """(T, V, 3) rest vertices with this shape and per-frame expressions (SMPL axes)."""
        v = self._v_template + self._shapedirs @ self.betas
        v = np.broadcast_to(v, (len(expression),) + v.shape)
        if self._expr_dirs is not None:
            v = v + np.einsum("vck,tk->tvc", self._expr_dirs, expression)
        return v

    def full_pose(self, params: dict[str, np.ndarray]) -> np.ndarray:
        """(T, J, 3) axis-angle per joint from a parameter sequence (see module doc)."""
        frames = len(params["global_orient"])
        parts = [params["global_orient"].reshape(frames, 1, 3),
                 params["body_pose"].reshape(frames, -1, 3)]
        if self.model_type == "smplx":
            for key in _SMPLX_EXTRA_POSES:
                size = 15 if key.endswith("hand_pose") else 1
                parts.append(params.get(key, np.zeros((frames, size * 3))).reshape(frames, -1, 3))
        pose = np.concatenate(parts, axis=1)
        if pose.shape[1] != self.joint_count:
            raise BodyError(f"the pose parameters give {pose.shape[1]} joints but the "
                            f"{self.model_type.upper()} model has {self.joint_count}: "
                            "body_pose must hold 3 values per body joint")
        return pose

    def _expression(self, params: dict[str, np.ndarray], frames: int) -> np.ndarray:
        expr = np.zeros((frames, self.expression_count))
        if self.expression_count and "expression" in params:
            given = np.asarray(params["expression"], np.float64).reshape(frames, -1)
            n = min(given.shape[1], self.expression_count)
            expr[:, :n] = given[:, :n]
        return expr

    def corrected_rest_vertices(self, params: dict[str, np.ndarray]) -> np.ndarray:
        """(T, V, 3) rest vertices plus SMPL's pose correctives (and expressions), in our
        rest space: skinning these with the track's transforms gives SMPL's vertices."""
        pose = self.full_pose(params)
        frames = len(pose)
        rot = _rotation_matrices(pose)
        feature = (rot[:, 1:] - np.eye(3)).reshape(frames, -1)
        offsets = (feature @ self._posedirs).reshape(frames, -1, 3)
        return (self._shaped(self._expression(params, frames)) + offsets) @ Y_UP_TO_Z_UP.T

    def transforms(self, params: dict[str, np.ndarray]) -> np.ndarray:
        """(T, J, 4, 4) skinning transforms (our rest space -> our world)."""
        pose = self.full_pose(params)
        frames = len(pose)
        rot = _rotation_matrices(pose)
        joints = np.einsum("jv,tvc->tjc", self._regressor,
                           self._shaped(self._expression(params, frames)))
        world = np.zeros((frames, self.joint_count, 4, 4))
        world[..., 3, 3] = 1
        for j in range(self.joint_count):          # SMPL lists parents before children
            p = self.parents[j]
            local = np.zeros((frames, 4, 4))
            local[:, :3, :3] = rot[:, j]
            local[:, :3, 3] = joints[:, j] - (joints[:, p] if p >= 0 else 0)
            local[:, 3, 3] = 1
            world[:, j] = local if p < 0 else world[:, p] @ local
        skin = world.copy()
        skin[..., :3, 3] -= np.einsum("tjab,tjb->tja", world[..., :3, :3], joints)
        skin[..., :3, 3] += np.asarray(params["transl"], np.float64)[:, None]
        return _to_z_up(skin)

    def smplx_vertices(self, params: dict[str, np.ndarray], chunk: int = 64) -> np.ndarray:
        """(T, V, 3) smplx's own posed vertices, in our world."""
        import torch

        pose = self.full_pose(params)
        frames = len(pose)
        expression = self._expression(params, frames)
        out = []
        with torch.no_grad():
            for s in range(0, frames, chunk):
                p = torch.as_tensor(pose[s:s + chunk].reshape(len(pose[s:s + chunk]), -1))
                n = len(p)
                kwargs = dict(betas=torch.as_tensor(self.betas)[None].expand(n, -1),
                              global_orient=p[:, :3], body_pose=p[:, 3:3 + 3 * self._body_joints],
                              transl=torch.as_tensor(np.asarray(params["transl"],
                                                                np.float64)[s:s + n]))
                if self.model_type == "smplx":
                    rest = p[:, 3 + 3 * self._body_joints:]
                    kwargs.update(jaw_pose=rest[:, 0:3], leye_pose=rest[:, 3:6],
                                  reye_pose=rest[:, 6:9], left_hand_pose=rest[:, 9:54],
                                  right_hand_pose=rest[:, 54:99],
                                  expression=torch.as_tensor(expression[s:s + n]))
                out.append(self.model(**kwargs).vertices.numpy())
        return np.concatenate(out) @ Y_UP_TO_Z_UP.T

    @property
    def _body_joints(self) -> int:
        return self.model.NUM_BODY_JOINTS

    def track(self, params: dict[str, np.ndarray], frame_numbers: np.ndarray, fps: float,
              posed_vertices: bool = True,
              pose_components: int = DEFAULT_COMPONENTS) -> BodyTrack:
        transforms = self.transforms(params)
        return BodyTrack(
            frame_numbers=frame_numbers, fps=fps, bone_transforms=transforms,
            posed_vertices=self.smplx_vertices(params) if posed_vertices else None,
            pose_code=fit_pose_code(transforms, self.body.bone_parents, pose_components),
        )


def _rotation_matrices(pose: np.ndarray) -> np.ndarray:
    """(T, J, 3) axis-angle -> (T, J, 3, 3) rotation matrices."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(*pose.shape[:2], 3, 3)


def _to_z_up(matrices: np.ndarray) -> np.ndarray:
    """Change of basis of (..., 4, 4) transforms from SMPL's axes to ours."""
    c = np.eye(4)
    c[:3, :3] = Y_UP_TO_Z_UP
    return c @ matrices @ c.T


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a parameter file from the
    internet cannot run code when it is read."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays "
                                     "and plain containers are read)")


def load_pose_params(path: Path | str) -> tuple[dict[str, np.ndarray], float | None]:
    """Read an SMPL/SMPL-X parameter sequence (.npz or .pkl); returns (params, fps or None).

    Raises BodyError naming the file and key for a missing key or a wrong shape.
    """
    path = Path(path)
    try:
        if path.suffix == ".pkl":
            with open(path, "rb") as fh:
                raw = _ArrayUnpickler(fh, encoding="latin1").load()
            if not isinstance(raw, dict):
                raise BodyError(f"{path}: expected a dictionary of arrays; got "
                                f"{type(raw).__name__}")
        else:
            with np.load(path, allow_pickle=False) as npz:
                raw = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise BodyError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise BodyError(f"{path}: unreadable pose parameter file ({type(exc).__name__}: "
                        f"{exc})") from None

    missing = [k for k in ("global_orient", "body_pose", "transl") if k not in raw]
    if missing:
        raise BodyError(f"{path}: missing key(s) {', '.join(missing)} (expected per-frame "
                        "global_orient, body_pose, transl, and betas)")
    params: dict[str, np.ndarray] = {}
    for key, value in raw.items():
        try:
            params[key] = np.asarray(value, np.float64)
        except (TypeError, ValueError):
            continue                                  # names, gender strings, ...
    frames = params["global_orient"].reshape(len(params["global_orient"]), -1).shape
    problems = []
    if frames[1] != 3:
        problems.append(f"global_orient: shape {params['global_orient'].shape}, expected (T, 3)")
    t = frames[0]
    for key in ("body_pose", "transl", *_SMPLX_EXTRA_POSES, "expression"):
        if key in params and (params[key].ndim < 1 or len(params[key]) != t):
            problems.append(f"{key}: {len(params[key]) if params[key].ndim else 0} frame(s) "
                            f"but global_orient has {t}")
    if "transl" in params and params["transl"].reshape(len(params["transl"]), -1).shape[1] != 3:
        problems.append(f"transl: shape {params['transl'].shape}, expected (T, 3)")
    for key, value in params.items():
        if not np.isfinite(value).all():
            problems.append(f"{key}: contains NaN or infinite values")
    if problems:
        raise BodyError.collected(str(path), problems)
    if "betas" in params and params["betas"].ndim == 2:
        params["betas"] = params["betas"][0]
    fps = None
    for key in ("fps", "mocap_framerate", "mocap_frame_rate"):
        if key in params and params[key].size == 1:
            fps = float(params[key])
    return params, fps


def smpl_track(model: Path | str, params_file: Path | str, model_type: str = "smpl",
               gender: str = "neutral", fps: float | None = None, start_frame: int = 1,
               posed_vertices: bool = True,
               pose_components: int = DEFAULT_COMPONENTS) -> tuple[SkinnedBody, BodyTrack]:
    """An SMPL/SMPL-X body and its track from a model folder and a parameter sequence."""
    params, file_fps = load_pose_params(params_file)
    fps = fps or file_fps or 30.0
    poser = SmplPoser(find_model_file(model, model_type, gender), params.get("betas"))
    frames = np.arange(start_frame, start_frame + len(params["global_orient"]))
    try:
        track = poser.track(params, frames, fps, posed_vertices, pose_components)
    except BodyError as exc:
        raise BodyError(f"{params_file}: {exc}") from None
    return poser.body, track
