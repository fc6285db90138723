"""Ground-truth metrics of a reconstruction: NGD's Chamfer distance and normal
consistency, point-to-surface distance, mask IoU, PSNR/SSIM of renders, temporal
acceleration error, and the frozen record that goes into ``metrics.json``.

Numpy + scipy only (torch tensors are accepted and copied to the host). Geometry in
metres; images are float in [0, 1] (``data_range`` 1), channels last.

Surface protocol (NGD, section "Evaluation"; ``surface_metrics``):

- ``samples`` (10k) points per mesh, uniform over the area (``sample_surface``). The
  two meshes draw from two independent streams derived from ``seed`` (``[seed, 0]``
  for the prediction, ``[seed, 1]`` for the ground truth), as NGD samples both from
  one running generator. So identical meshes give a small non-zero Chamfer distance,
  the protocol's sampling floor (about ``2 A / (pi N)`` m^2 for area ``A``); sampling
  both with one stream would drop that floor only for predictions that share the
  ground truth's topology, which would favour them over remeshed ones.
- Chamfer: each cloud centred on its own mean (removes translation only), squared
  nearest-neighbour distances (scipy cKDTree), mean per direction, both directions
  summed: ``chamfer_m2``; NGD's tables show ``chamfer_m2 * 1e3`` (``chamfer_x1e3``).
- Normal consistency: mean ``|cos|`` between each sample's face normal and that of its
  nearest neighbour in the other centred cloud, per direction, the two averaged
  (``|cos|``: a flipped winding is not an error).
- Point-to-surface: exact distance from each sample to the other mesh's surface
  (closest point on any triangle, ``closest_points``), NOT centred (it measures
  placement too), mean per direction, the two directions averaged, in millimetres.
- Front and back halves (given the camera centre): a ground-truth sample is on the back
  when its (outward) normal faces away from the camera; a predicted sample takes the
  side of its nearest ground-truth sample (so a prediction with flipped faces is
  split the same way). Each half's Chamfer distance uses the same centred clouds and
  nearest neighbours as the whole one: the mean squared distance of that half's
  ground-truth samples to the prediction plus that of its predicted samples to the
  ground truth. The back half is what a monocular camera never sees.
- Body penetration: garment vertices inside the posed body (signed distance to the
  body's nearest triangle below zero, by its outward normal), counted per frame.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .errors import EvalError
from .sampling import as_array, closest_points, mesh_arrays, sample_surface

log = logging.getLogger(__name__)

DEFAULT_SAMPLES = 10000
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


# ------------------------------------------------------------------------- surfaces


def chamfer_x1e3(chamfer_m2: float) -> float:
    """A Chamfer distance in m^2 as NGD's tables print it (x 1e3)."""
    return chamfer_m2 * 1e3


@dataclass(frozen=True)
class SurfaceMetrics:
    """One prediction/ground-truth mesh pair under the protocol of the module
    docstring: ``chamfer_m2`` (m^2), ``normal_consistency`` (in [0, 1], 1 = parallel
    normals), ``point_to_surface_mm`` (mm, symmetric mean, uncentred), the ``samples``
    per mesh, and with a camera centre ``chamfer_front_m2`` / ``chamfer_back_m2`` (m^2,
    the halves facing towards / away from it; None without one or when a half is
    empty)."""

    chamfer_m2: float
    normal_consistency: float
    point_to_surface_mm: float
    samples: int
    chamfer_front_m2: float | None = None
    chamfer_back_m2: float | None = None

    @property
    def chamfer_x1e3(self) -> float:
        return chamfer_x1e3(self.chamfer_m2)


def chamfer_points(points_a, points_b, centre: bool = True) -> float:
    """Chamfer distance between point clouds ``(N, 3)`` and ``(M, 3)`` in m^2:
    ``mean_a min_b |a - b|^2 + mean_b min_a |a - b|^2``, each cloud first centred on
    its own mean when ``centre`` (NGD)."""
    a = _cloud(points_a, "points_a")
    b = _cloud(points_b, "points_b")
    if centre:
        a, b = a - a.mean(0), b - b.mean(0)
    d_ab, _ = cKDTree(b).query(a)
    d_ba, _ = cKDTree(a).query(b)
    return float(np.mean(d_ab**2) + np.mean(d_ba**2))


def _sample_pair(pred_vertices, pred_faces, gt_vertices, gt_faces, samples: int, seed: int,
                 name: str):
    """Validated meshes and their samples, from the two streams of the protocol."""
    where = f" {name}" if name else ""
    pv, pf = mesh_arrays(pred_vertices, pred_faces, f"prediction{where}")
    gv, gf = mesh_arrays(gt_vertices, gt_faces, f"ground truth{where}")
    a = sample_surface(pv, pf, samples, np.random.default_rng([seed, 0]), f"prediction{where}")
    b = sample_surface(gv, gf, samples, np.random.default_rng([seed, 1]),
                       f"ground truth{where}")
    return (pv, pf, a), (gv, gf, b)


def chamfer_distance(pred_vertices, pred_faces, gt_vertices, gt_faces, *,
                     samples: int = DEFAULT_SAMPLES, seed: int = 0, name: str = "") -> float:
    """NGD's Chamfer distance between two meshes in m^2 (the protocol of the module
    docstring; equal to ``surface_metrics(...).chamfer_m2`` for the same ``samples`` and
    ``seed``, without the cost of the other two metrics)."""
    (_, _, a), (_, _, b) = _sample_pair(pred_vertices, pred_faces, gt_vertices, gt_faces,
                                        samples, seed, name)
    return chamfer_points(a.points, b.points)


def _cloud(points, name: str) -> np.ndarray:
    p = as_array(points, name).astype(np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) == 0:
        raise EvalError(f"{name} must have shape (N, 3) with N >= 1; got {p.shape}")
    if not np.isfinite(p).all():
        raise EvalError(f"{name} must be finite")
    return p


def surface_metrics(pred_vertices, pred_faces, gt_vertices, gt_faces, *,
                    samples: int = DEFAULT_SAMPLES, seed: int = 0,
                    name: str = "", view_point=None) -> SurfaceMetrics:
    """Chamfer distance, normal consistency and point-to-surface distance of a
    predicted mesh against the ground truth (see the module docstring). Vertices
    ``(V, 3)`` metres, faces ``(F, 3)`` integer, for each mesh (the topologies may
    differ). ``name`` (e.g. ``"frame 12"``) goes into error messages. ``view_point``
    ``(3,)``: the camera centre, for the front and back halves' Chamfer distances."""
    where = f" {name}" if name else ""
    (pv, pf, a), (gv, gf, b) = _sample_pair(pred_vertices, pred_faces, gt_vertices, gt_faces,
                                            samples, seed, name)
    ca, cb = a.points - a.points.mean(0), b.points - b.points.mean(0)
    d_ab, i_ab = cKDTree(cb).query(ca)
    d_ba, i_ba = cKDTree(ca).query(cb)
    chamfer = float(np.mean(d_ab**2) + np.mean(d_ba**2))
    cos_ab = np.abs((a.normals * b.normals[i_ab]).sum(1))
    cos_ba = np.abs((b.normals * a.normals[i_ba]).sum(1))
    consistency = float(0.5 * (cos_ab.mean() + cos_ba.mean()))
    to_gt = closest_points(a.points, gv, gf, f"ground truth{where}").distance
    to_pred = closest_points(b.points, pv, pf, f"prediction{where}").distance
    p2s_mm = float(0.5 * (to_gt.mean() + to_pred.mean()) * 1e3)
    halves = {}
    if view_point is not None:
        eye = as_array(view_point, "view_point").astype(np.float64).reshape(-1)
        if eye.shape != (3,) or not np.isfinite(eye).all():
            raise EvalError(f"view_point{where} must be a finite (3,) camera centre")
        gt_back = ((eye - b.points) * b.normals).sum(1) < 0
        pred_back = gt_back[i_ab]
        for side, gt_side, pred_side in (("front", ~gt_back, ~pred_back),
                                         ("back", gt_back, pred_back)):
            halves[f"chamfer_{side}_m2"] = (
                float(np.mean(d_ba[gt_side] ** 2) + np.mean(d_ab[pred_side] ** 2))
                if gt_side.any() and pred_side.any() else None)
    return SurfaceMetrics(chamfer_m2=chamfer, normal_consistency=consistency,
                          point_to_surface_mm=p2s_mm, samples=int(samples), **halves)


def body_penetrations(vertices, body_vertices, body_faces, name: str = "") -> int:
    """How many of the garment ``vertices`` ``(V, 3)`` lie inside the posed body
    ``(Vb, 3)`` / ``(Fb, 3)`` (faces wound counter-clockwise seen from outside): the
    offset from the body's closest point has a negative component along that face's
    outward normal."""
    where = f" {name}" if name else ""
    bv, bf = mesh_arrays(body_vertices, body_faces, f"body{where}")
    points = as_array(vertices, f"garment vertices{where}").astype(np.float64)
    near = closest_points(points, bv, bf, f"body{where}")
    tri = bv[bf[near.face_index]]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return int((((points - near.points) * normal).sum(1) < 0).sum())


# --------------------------------------------------------------------------- images


def _masks(masks, name: str) -> np.ndarray:
    """Boolean masks: bool as is, uint8 ``> 127`` (the capture's PNG rule), other
    numbers ``> 0.5``."""
    m = as_array(masks, name)
    if m.ndim < 2:
        raise EvalError(f"{name} must have shape (H, W) or (..., H, W); got {m.shape}")
    if m.dtype == bool:
        return m
    if m.dtype == np.uint8:
        return m > 127
    if not (np.issubdtype(m.dtype, np.floating) or np.issubdtype(m.dtype, np.integer)):
        raise EvalError(f"{name} must be boolean or numeric; got dtype {m.dtype}")
    return m > 0.5


def mask_iou(pred_masks, gt_masks, empty: float = 1.0) -> np.ndarray:
    """Intersection over union per mask: ``pred_masks`` and ``gt_masks`` ``(..., H, W)``
    (bool; uint8 > 127; else > 0.5) -> float64 ``(...)``. A frame where both masks are
    empty (no union) scores ``empty`` (default 1: the two agree that nothing is there;
    pass ``nan`` to leave such frames out of a ``nanmean``)."""
    p = _masks(pred_masks, "pred_masks")
    g = _masks(gt_masks, "gt_masks")
    if p.shape != g.shape:
        raise EvalError(f"gt_masks must have the shape of pred_masks {p.shape}; got {g.shape}")
    inter = (p & g).sum(axis=(-2, -1))
    union = (p | g).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
    return np.where(union > 0, iou, empty).astype(np.float64)


def _images(pred, gt, mask, min_size: int = 1):
    p = as_array(pred, "pred_images").astype(np.float64)
    g = as_array(gt, "gt_images").astype(np.float64)
    if p.ndim < 3:
        raise EvalError(f"pred_images must have shape (H, W, C) or (..., H, W, C), channels "
                        f"last; got {p.shape}")
    if p.shape != g.shape:
        raise EvalError(f"gt_images must have the shape of pred_images {p.shape}; "
                        f"got {g.shape}")
    if p.shape[-3] < min_size or p.shape[-2] < min_size:
        raise EvalError(f"images must be at least {min_size}x{min_size} pixels; got "
                        f"{p.shape[-3]}x{p.shape[-2]}")
    m = None
    if mask is not None:
        m = _masks(mask, "mask")
        if m.shape != p.shape[:-1]:
            raise EvalError(f"mask must have shape {p.shape[:-1]} (the images without "
                            f"channels); got {m.shape}")
    return p, g, m


def psnr(pred_images, gt_images, mask=None, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per image: ``10 log10(data_range^2 / MSE)``,
    MSE over all pixels and channels (or over the pixels where ``mask`` ``(..., H, W)``
    is set). Images ``(..., H, W, C)`` float in [0, data_range]. Returns float64
    ``(...)``; identical images give ``inf``, an empty mask ``nan``."""
    p, g, m = _images(pred_images, gt_images, mask)
    err = ((p - g) ** 2).mean(axis=-1)  # (..., H, W)
    if m is None:
        mse = err.mean(axis=(-2, -1))
    else:
        count = m.sum(axis=(-2, -1))
        with np.errstate(invalid="ignore", divide="ignore"):
            mse = (err * m).sum(axis=(-2, -1)) / count
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian weights ``(size,)``; SSIM's window is its outer product."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    w = np.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def ssim(pred_images, gt_images, mask=None, data_range: float = 1.0) -> np.ndarray:
    """Structural similarity (Wang et al. 2004) per image: 11x11 Gaussian window
    (sigma 1.5), ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, ``L = data_range``, computed
    per channel and averaged over channels. Images ``(..., H, W, C)`` float, at least
    11x11. The SSIM map covers the window centres that keep the whole window inside
    the image (no padding, as Wang's reference code), ``(H - 10) x (W - 10)``; it is
    averaged over all of them, or over those where ``mask`` ``(..., H, W)`` is set (an
    empty mask gives ``nan``). Returns float64 ``(...)``."""
    p, g, m = _images(pred_images, gt_images, mask, min_size=SSIM_WINDOW)
    w = gaussian_window()
    half = SSIM_WINDOW // 2

    def blur(x):
        for axis in (-3, -2):  # rows then columns; 'valid' region cropped below
            x = ndimage.correlate1d(x, w, axis=x.ndim + axis, mode="constant")
        return x[..., half:-half, half:-half, :]

    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_p, mu_g = blur(p), blur(g)
    var_p = blur(p * p) - mu_p**2
    var_g = blur(g * g) - mu_g**2
    cov = blur(p * g) - mu_p * mu_g
    ssim_map = ((2 * mu_p * mu_g + c1) * (2 * cov + c2)
                / ((mu_p**2 + mu_g**2 + c1) * (var_p + var_g + c2))).mean(axis=-1)
    if m is None:
        return ssim_map.mean(axis=(-2, -1))
    centres = m[..., half:-half, half:-half]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ssim_map * centres).sum(axis=(-2, -1)) / centres.sum(axis=(-2, -1))


# ------------------------------------------------------------------------- temporal


def _sequence(vertices, name: str) -> np.ndarray:
    v = as_array(vertices, name).astype(np.float64)
    if v.ndim != 3 or v.shape[2] != 3:
        raise EvalError(f"{name} must have shape (T, V, 3); got {v.shape}")
    if v.shape[0] < 3:
        raise EvalError(f"{name} needs at least 3 frames for an acceleration; got {v.shape[0]}")
    return v


def acceleration_error(pred_vertices, gt_vertices, fps: float | None = None) -> np.ndarray:
    """Per-frame acceleration error of corresponding points (REC-MV style):
    ``a_t = x_{t+1} - 2 x_t + x_{t-1}`` for frames ``1 .. T-2``, error
    ``mean_v |a_pred - a_gt|``. ``pred_vertices`` and ``gt_vertices`` ``(T, V, 3)``
    metres, the same points in the same order (same topology, or tracked points, see
    ``tracked_points``). Returns ``(T - 2,)`` float64 in m/frame^2, or in m/s^2 when
    ``fps`` is given (times ``fps^2``). Assumes consecutive, evenly spaced frames."""
    p = _sequence(pred_vertices, "pred_vertices")
    g = _sequence(gt_vertices, "gt_vertices")
    if p.shape != g.shape:
        raise EvalError(f"gt_vertices must have the shape of pred_vertices {p.shape} "
                        f"(same frames, same points); got {g.shape}")
    if fps is not None and not (isinstance(fps, (int, float)) and fps > 0):
        raise EvalError(f"fps must be a positive number; got {fps!r}")
    acc_p = p[2:] - 2 * p[1:-1] + p[:-2]
    acc_g = g[2:] - 2 * g[1:-1] + g[:-2]
    err = np.linalg.norm(acc_p - acc_g, axis=-1).mean(axis=-1)
    return err * (fps**2 if fps is not None else 1.0)


def tracked_points(pred_vertices, pred_faces, gt_vertices, gt_faces, *,
                   samples: int = DEFAULT_SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Point correspondences through two sequences of different topologies, for
    ``acceleration_error``: ``samples`` points drawn on the ground truth's first frame
    (``[seed, 2]`` stream), each paired with the closest point of the prediction's
    first frame; both then follow their surfaces (same face, same barycentric
    coordinates) through the frames. Sequences ``(T, V, 3)`` / ``(T, V', 3)`` metres
    with their faces. Returns ``(pred_tracks, gt_tracks)``, both ``(T, samples, 3)``."""
    p = _sequence(pred_vertices, "pred_vertices")
    g = _sequence(gt_vertices, "gt_vertices")
    if len(p) != len(g):
        raise EvalError(f"pred_vertices has {len(p)} frames but gt_vertices has {len(g)}")
    _, pf = mesh_arrays(p[0], pred_faces, "prediction frame 0")
    _, gf = mesh_arrays(g[0], gt_faces, "ground truth frame 0")
    on_gt = sample_surface(g[0], gf, samples, np.random.default_rng([seed, 2]),
                           "ground truth frame 0")
    near = closest_points(on_gt.points, p[0], pf, "prediction frame 0")
    pred_tracks = np.einsum("nk,tnkc->tnc", near.barycentric, p[:, pf[near.face_index]])
    return pred_tracks, on_gt.on(g, gf)


def same_topology(pred_vertices, pred_faces, gt_vertices, gt_faces) -> bool:
    """True when both meshes have the same vertex count and identical face arrays."""
    pf, gf = np.asarray(pred_faces), np.asarray(gt_faces)
    return (np.shape(pred_vertices)[-2] == np.shape(gt_vertices)[-2]
            and pf.shape == gf.shape and bool(np.array_equal(pf, gf)))


# --------------------------------------------------------------------------- record


def _floats(values) -> tuple[float, ...] | None:
    if values is None:
        return None
    return tuple(float(x) for x in np.asarray(values, dtype=np.float64).reshape(-1))


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass(frozen=True)
class MetricsRecord:
    """Ground-truth metrics of one reconstructed sequence, per frame.

    ``frames``: Blender frame numbers ``(T,)``. Each metric is a tuple with one value
    per frame (None when it was not computed): ``chamfer_m2`` (m^2),
    ``chamfer_front_m2`` / ``chamfer_back_m2`` (m^2, the halves facing towards / away
    from the camera; NaN for a frame where a half is empty), ``penetrating_vertices``
    (garment vertices inside the body),
    ``normal_consistency``, ``point_to_surface_mm`` (mm), ``mask_iou``, ``psnr_db``
    (dB; ``inf`` for identical renders), ``ssim``; ``acceleration_error_mm`` has one
    value per interior frame ``frames[1:-1]``, in mm/frame^2, with ``acceleration_method``
    ``"vertices"`` (same topology) or ``"tracked"`` (``tracked_points``).
    ``samples``/``seed``: the surface sampling used. Means: ``mean(name)``.
    """

    frames: tuple[int, ...]
    chamfer_m2: tuple[float, ...] | None = None
    normal_consistency: tuple[float, ...] | None = None
    point_to_surface_mm: tuple[float, ...] | None = None
    mask_iou: tuple[float, ...] | None = None
    psnr_db: tuple[float, ...] | None = None
    ssim: tuple[float, ...] | None = None
    acceleration_error_mm: tuple[float, ...] | None = None
    acceleration_method: str | None = None
    samples: int = DEFAULT_SAMPLES
    seed: int = 0
    chamfer_front_m2: tuple[float, ...] | None = None
    chamfer_back_m2: tuple[float, ...] | None = None
    penetrating_vertices: tuple[float, ...] | None = None

    PER_FRAME = ("chamfer_m2", "normal_consistency", "point_to_surface_mm", "mask_iou",
                 "psnr_db", "ssim", "chamfer_front_m2", "chamfer_back_m2",
                 "penetrating_vertices")

    def __post_init__(self):
        frames = tuple(int(f) for f in self.frames)
        object.__setattr__(self, "frames", frames)
        for name in (*self.PER_FRAME, "acceleration_error_mm"):
            values = _floats(getattr(self, name))
            object.__setattr__(self, name, values)
            if values is None:
                continue
            expected = len(frames) - 2 if name == "acceleration_error_mm" else len(frames)
            if len(values) != expected:
                raise EvalError(f"MetricsRecord.{name} needs {expected} values for "
                                f"{len(frames)} frames; got {len(values)}")
        if (self.acceleration_error_mm is None) != (self.acceleration_method is None):
            raise EvalError("MetricsRecord.acceleration_method must be given exactly when "
                            "acceleration_error_mm is")
        if self.acceleration_method not in (None, "vertices", "tracked"):
            raise EvalError("MetricsRecord.acceleration_method must be 'vertices' or "
                            f"'tracked'; got {self.acceleration_method!r}")

    def mean(self, name: str) -> float | None:
        """Mean of a per-frame metric over the frames where it is a number (PSNR's
        ``inf`` counts: the mean is then ``inf``); None when not computed or all NaN."""
        values = getattr(self, name)
        if values is None:
            return None
        arr = np.asarray(values, dtype=np.float64)
        arr = arr[~np.isnan(arr)]
        return float(arr.mean()) if len(arr) else None

    @property
    def chamfer_x1e3(self) -> float | None:
        """Mean Chamfer distance as NGD's tables print it (m^2 x 1e3)."""
        m = self.mean("chamfer_m2")
        return None if m is None else chamfer_x1e3(m)

    def to_dict(self) -> dict:
        """JSON-ready: ``summary`` (means, plus ``chamfer_x1e3``; metrics not computed
        are left out), ``per_frame`` lists, ``frames``, ``samples``, ``seed``,
        ``acceleration_method``. Non-finite numbers (PSNR ``inf``, ``nan``) become None."""
        summary: dict[str, float | None] = {}
        per_frame: dict[str, list[float | None]] = {}
        for f in fields(self):
            values = getattr(self, f.name)
            if f.name in (*self.PER_FRAME, "acceleration_error_mm") and values is not None:
                mean = self.mean(f.name)
                summary[f.name] = None if mean is None else _json_float(mean)
                per_frame[f.name] = [_json_float(x) for x in values]
        if self.chamfer_x1e3 is not None:
            summary["chamfer_x1e3"] = _json_float(self.chamfer_x1e3)
        return {"frames": list(self.frames), "samples": self.samples, "seed": self.seed,
                "acceleration_method": self.acceleration_method, "summary": summary,
                "per_frame": per_frame}


@dataclass(frozen=True)
class EvalSettings:
    """How ``evaluate`` measures: ``samples`` surface points per mesh and frame (NGD:
    10000), ``seed`` of the sampling streams, ``empty_iou`` (the IoU of a frame whose
    masks are both empty), ``image_mask`` (``"gt"``: PSNR/SSIM only where the ground
    truth mask is set; ``"none"``: over the whole image)."""

    samples: int = DEFAULT_SAMPLES
    seed: int = 0
    empty_iou: float = 1.0
    image_mask: str = "none"

    def __post_init__(self):
        if not isinstance(self.samples, int) or self.samples < 1:
            raise EvalError(f"EvalSettings.samples must be a positive int; got {self.samples!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise EvalError(f"EvalSettings.seed must be an int >= 0; got {self.seed!r}")
        if self.image_mask not in ("none", "gt"):
            raise EvalError("EvalSettings.image_mask must be 'none' or 'gt'; got "
                            f"{self.image_mask!r}")


def evaluate(frames, *, pred_vertices=None, pred_faces=None, gt_vertices=None, gt_faces=None,
             pred_masks=None, gt_masks=None, pred_images=None, gt_images=None,
             view_points=None, body_vertices=None, body_faces=None,
             settings: EvalSettings | None = None) -> MetricsRecord:
    """All the metrics the given inputs allow, per frame.

    ``frames`` ``(T,)`` Blender frame numbers. Geometry: ``pred_vertices`` ``(T, V, 3)``
    with ``pred_faces`` ``(F, 3)`` and ``gt_vertices`` ``(T, V', 3)`` with ``gt_faces``
    (world space, metres): surface metrics per frame, and the acceleration error when
    ``T >= 3`` and the frames are evenly spaced (directly on vertices for the same
    topology, else on ``tracked_points``; per frame^2 of the Blender frame numbers, so
    every second frame still gives mm/frame^2). With ``view_points`` ``(T, 3)`` (camera
    centres): the front and back halves' Chamfer distances; with the posed body
    ``body_vertices`` ``(T, Vb, 3)`` and ``body_faces``: the garment vertices inside it
    per frame. Masks ``(T, H, W)``: IoU. Images
    ``(T, H, W, C)`` in [0, 1]: PSNR and SSIM (within the ground-truth masks when
    ``settings.image_mask == "gt"``).
    """
    settings = settings or EvalSettings()
    frame_numbers = [int(f) for f in np.asarray(frames).reshape(-1)]
    n = len(frame_numbers)
    values: dict = {}

    def check_frames(array, name):
        if array.shape[0] != n:
            raise EvalError(f"{name} has {array.shape[0]} frames but frames lists {n}")

    geometry = (pred_vertices, pred_faces, gt_vertices, gt_faces)
    if any(x is not None for x in geometry):
        if any(x is None for x in geometry):
            raise EvalError("surface metrics need pred_vertices, pred_faces, gt_vertices "
                            "and gt_faces together")
        pv = as_array(pred_vertices, "pred_vertices")
        gv = as_array(gt_vertices, "gt_vertices")
        for array, name in ((pv, "pred_vertices"), (gv, "gt_vertices")):
            if array.ndim != 3:
                raise EvalError(f"{name} must have shape (T, V, 3); got {array.shape}")
            check_frames(array, name)
        eyes = None
        if view_points is not None:
            eyes = as_array(view_points, "view_points").reshape(-1, 3)
            check_frames(eyes, "view_points")
        rows = [surface_metrics(pv[t], pred_faces, gv[t], gt_faces, samples=settings.samples,
                                seed=settings.seed, name=f"frame {frame_numbers[t]}",
                                view_point=None if eyes is None else eyes[t])
                for t in range(n)]
        values["chamfer_m2"] = [r.chamfer_m2 for r in rows]
        values["normal_consistency"] = [r.normal_consistency for r in rows]
        values["point_to_surface_mm"] = [r.point_to_surface_mm for r in rows]
        if eyes is not None:
            for side in ("chamfer_front_m2", "chamfer_back_m2"):
                values[side] = [math.nan if getattr(r, side) is None else getattr(r, side)
                                for r in rows]
        if (body_vertices is None) != (body_faces is None):
            raise EvalError("body penetration needs body_vertices and body_faces together")
        if body_vertices is not None:
            bodies = as_array(body_vertices, "body_vertices")
            check_frames(bodies, "body_vertices")
            values["penetrating_vertices"] = [
                body_penetrations(pv[t], bodies[t], body_faces, f"frame {frame_numbers[t]}")
                for t in range(n)]
        steps = np.diff(frame_numbers)
        if n >= 3 and (steps == steps[0]).all() and steps[0] > 0:
            scale = 1e3 / float(steps[0]) ** 2  # m per step^2 -> mm per frame^2
            if same_topology(pv, pred_faces, gv, gt_faces):
                values["acceleration_error_mm"] = acceleration_error(pv, gv) * scale
                values["acceleration_method"] = "vertices"
            else:
                tracks = tracked_points(pv, pred_faces, gv, gt_faces,
                                        samples=settings.samples, seed=settings.seed)
                values["acceleration_error_mm"] = acceleration_error(*tracks) * scale
                values["acceleration_method"] = "tracked"
        elif n >= 3:
            log.warning("frames %s are not evenly spaced: no acceleration error",
                        frame_numbers)

    gm = None
    if (pred_masks is None) != (gt_masks is None):
        raise EvalError("mask IoU needs pred_masks and gt_masks together")
    if pred_masks is not None:
        gm = _masks(gt_masks, "gt_masks")
        check_frames(gm, "gt_masks")
        values["mask_iou"] = mask_iou(pred_masks, gm, empty=settings.empty_iou)

    if (pred_images is None) != (gt_images is None):
        raise EvalError("PSNR/SSIM need pred_images and gt_images together")
    if pred_images is not None:
        gi = as_array(gt_images, "gt_images")
        check_frames(gi, "gt_images")
        region = None
        if settings.image_mask == "gt":
            if gm is None:
                raise EvalError("EvalSettings.image_mask='gt' needs gt_masks")
            region = gm
        values["psnr_db"] = psnr(pred_images, gi, region)
        values["ssim"] = ssim(pred_images, gi, region)

    return MetricsRecord(frames=tuple(frame_numbers), samples=settings.samples,
                         seed=settings.seed, **values)
