"""Differentiable triangle rasterization in plain PyTorch, with nvdiffrast's layouts.

Written from Laine et al. 2020, "Modular Primitives for High-Performance
Differentiable Rendering", and nvdiffrast's public documentation, never its source.

Conventions (the same as nvdiffrast, so the two backends are interchangeable):

- Input positions are OpenGL-style clip coordinates ``(x, y, z, w)``; a point is
  visible when ``-w <= x, y, z <= w`` (so ``w > 0``).
- The raster has ``H`` rows and ``W`` columns. Column ``j`` has its pixel centre at
  NDC ``x = (2j + 1) / W - 1`` and row ``i`` at NDC ``y = (2i + 1) / H - 1``: row 0 is
  at ``y = -1``. ``backend.render.camera`` builds projections that send OpenCV pixel
  row 0 (the top of the image, as stored in PNGs) to ``y = -1``, so with our cameras
  row 0 of every render is the top of the image.
- Output ``rast[..., :]`` = ``(u, v, z/w, triangle_id + 1)`` where the surface point is
  ``u * p0 + v * p1 + (1 - u - v) * p2`` for the triangle's vertices ``(p0, p1, p2)``
  (perspective-correct barycentrics), ``z/w`` is the NDC depth in ``[-1, 1]`` and
  ``triangle_id`` indexes ``tri`` (global index, also in range mode). Pixels that no
  triangle covers are all zero. The id is stored in float32, exact below 2**24.
- The nearest surface wins (smallest ``z/w``); equal depths go to the smaller id.
  Triangles are two-sided (no culling). Geometry is clipped against the near and far
  planes per pixel: a triangle crossing ``w = 0`` keeps the part in front of the near
  plane (``z >= -w``) instead of being dropped.
- ``rast_db[..., :]`` = ``(du/dX, du/dY, dv/dX, dv/dY)`` with ``X, Y`` in pixels
  (column and row index).

Method: visibility is found without autograd by scattering packed ``(depth, face id)``
int64 keys of every (face, pixel) candidate in the face's pixel bounding box into a
per-pixel buffer with ``scatter_reduce(amin)``; coverage uses homogeneous 2D edge
functions (Olano & Greer 1997), which handle vertices behind the camera. Faces are
processed in chunks so memory stays bounded. Then, for covered pixels only, the
barycentrics are recomputed differentiably from the clip-space vertices of the winning
face.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass

import torch

from .errors import RenderError

log = logging.getLogger(__name__)

MAX_RESOLUTION = 16384
MAX_TRIANGLES = 2**24 - 1
"""Triangle ids are stored as float32 in ``rast``: exact only below 2**24."""
DEFAULT_CANDIDATE_BUDGET = 2**21
"""Max (face, pixel) candidates evaluated at once; bounds peak memory (~100 B each)."""

_INT64_MAX = torch.iinfo(torch.int64).max
_ID_MASK = 0xFFFFFFFF


def _pixel_ndc(index: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """NDC coordinate of the centre of pixel ``index`` along an axis of ``size`` pixels."""
    return (2.0 * index.to(dtype) + 1.0) / size - 1.0


@dataclass(frozen=True)
class _Layout:
    """How batch items map to vertices and faces (instanced or range mode).

    ``pos_flat`` (B*V or V, 4): all clip vertices. Every (batch item, face) pair to
    draw is listed in ``pair_batch``/``pair_face``; face ``f`` of item ``b`` uses vertices
    ``tri[f] + vert_offset[b]`` of ``pos_flat``.
    """

    pos_flat: torch.Tensor
    batch: int
    pair_batch: torch.Tensor  # (P,) int64 batch index of each (batch, face) pair
    pair_face: torch.Tensor  # (P,) int64 global face index of each pair
    vert_offset: torch.Tensor  # (B,) int64


def validate_pos_tri(
    pos: torch.Tensor, tri: torch.Tensor, name: str = "pos_clip", check_range: bool = True
) -> None:
    """Shared checks: ``pos`` (V,4)/(B,V,4) float32/float64, ``tri`` (F,3) int32 with
    indices in range, both on one device. Raises RenderError."""
    if not isinstance(pos, torch.Tensor):
        raise RenderError(f"{name} must be a torch.Tensor; got {type(pos).__name__}")
    if not isinstance(tri, torch.Tensor):
        raise RenderError(f"tri must be a torch.Tensor; got {type(tri).__name__}")
    if pos.dim() not in (2, 3) or pos.shape[-1] != 4:
        raise RenderError(f"{name} must have shape (V,4) or (B,V,4); got {tuple(pos.shape)}")
    if pos.dtype not in (torch.float32, torch.float64):
        raise RenderError(f"{name} must be float32 or float64; got {pos.dtype}")
    if tri.dim() != 2 or tri.shape[1] != 3:
        raise RenderError(f"tri must have shape (F,3); got {tuple(tri.shape)}")
    if tri.dtype != torch.int32:
        raise RenderError(f"tri must be int32 (as in nvdiffrast); got {tri.dtype}")
    if tri.device != pos.device:
        raise RenderError(f"tri must be on {name}'s device {pos.device}; got {tri.device}")
    if tri.shape[0] > MAX_TRIANGLES:
        raise RenderError(
            f"at most {MAX_TRIANGLES} triangles are supported (ids are float32); "
            f"got {tri.shape[0]}"
        )
    if check_range:
        check_tri_range(tri, pos.shape[-2], f"{name} has")


_checked: list[tuple] = []  # (weakref to tri, data_ptr, version, n_verts), newest last


def check_tri_range(tri: torch.Tensor, n_verts: int, owner: str) -> None:
    """Raise unless every index of ``tri`` lies in ``[0, n_verts)``. That costs a host
    sync, so the last few index tensors found valid are remembered (by identity, and
    only while they are alive and unmodified)."""
    if tri.numel() == 0:
        return
    for ref, ptr, version, verts in _checked:
        if ref() is tri and ptr == tri.data_ptr() and version == tri._version \
                and verts == n_verts:
            return
    lo, hi = (int(x) for x in torch.aminmax(tri))
    if lo < 0 or hi >= n_verts:
        raise RenderError(
            f"tri indices must lie in [0, {n_verts - 1}] ({owner} {n_verts} vertices); "
            f"got values in [{lo}, {hi}]"
        )
    _checked.append((weakref.ref(tri), tri.data_ptr(), tri._version, n_verts))
    del _checked[:-8]


def _check_resolution(resolution) -> tuple[int, int]:
    try:
        h, w = (int(r) for r in resolution)
        ok = all(int(r) == r for r in resolution)
    except (TypeError, ValueError):
        ok = False
    if not ok or not (0 < h <= MAX_RESOLUTION and 0 < w <= MAX_RESOLUTION):
        raise RenderError(
            f"resolution must be (height, width), two ints in [1, {MAX_RESOLUTION}]; "
            f"got {resolution!r}"
        )
    return h, w


def _layout(pos: torch.Tensor, tri: torch.Tensor, ranges: torch.Tensor | None) -> _Layout:
    device = pos.device
    n_faces = tri.shape[0]
    if pos.dim() == 3:
        if ranges is not None:
            raise RenderError(
                "ranges is only for range mode, where pos_clip has shape (V,4); "
                f"got pos_clip {tuple(pos.shape)} with ranges"
            )
        b, n_verts = pos.shape[0], pos.shape[1]
        pair_batch = torch.arange(b, device=device).repeat_interleave(n_faces)
        pair_face = torch.arange(n_faces, device=device).repeat(b)
        offset = torch.arange(b, device=device) * n_verts
        return _Layout(pos.reshape(-1, 4), b, pair_batch, pair_face, offset)
    if ranges is None:
        ranges = torch.tensor([[0, n_faces]], dtype=torch.int32)
    if not isinstance(ranges, torch.Tensor) or ranges.dim() != 2 or ranges.shape[1] != 2:
        shape = tuple(ranges.shape) if isinstance(ranges, torch.Tensor) else type(ranges)
        raise RenderError(f"ranges must be a (B,2) tensor of (start, count); got {shape}")
    if ranges.dtype != torch.int32 or ranges.device.type != "cpu":
        raise RenderError(
            f"ranges must be an int32 CPU tensor (as in nvdiffrast); got {ranges.dtype} "
            f"on {ranges.device}"
        )
    rows = ranges.tolist()
    for i, (start, count) in enumerate(rows):
        if start < 0 or count < 0 or start + count > n_faces:
            raise RenderError(
                f"ranges[{i}] = ({start}, {count}) must satisfy start >= 0, count >= 0, "
                f"start + count <= {n_faces} (the number of triangles)"
            )
    counts = torch.tensor([c for _, c in rows], dtype=torch.int64)
    pair_batch = torch.arange(len(rows)).repeat_interleave(counts).to(device)
    pair_face = torch.cat(
        [torch.arange(s, s + c) for s, c in rows] or [torch.zeros(0, dtype=torch.int64)]
    ).to(device)
    offset = torch.zeros(len(rows), dtype=torch.int64, device=device)
    return _Layout(pos, len(rows), pair_batch, pair_face, offset)


def _edge_setup(v: torch.Tensor):
    """Per-face homogeneous edge functions and depth plane.

    v: (P, 3, 4) clip vertices. Returns ``(edges (P,3,3), zplane (P,3), det (P,))``:
    ``edges[:, i] . (px, py, 1)`` is the i-th unnormalised barycentric times
    ``sign(det)`` (>= 0 inside, for points in front of the eye) and
    ``zplane . (px, py, 1)`` the NDC depth ``z/w`` of the triangle's plane at NDC
    ``(px, py)``.
    """
    h = v[..., [0, 1, 3]]  # (x, y, w)
    a, b, c = h[:, 0], h[:, 1], h[:, 2]
    e0 = torch.linalg.cross(b, c, dim=-1)
    e1 = torch.linalg.cross(c, a, dim=-1)
    e2 = torch.linalg.cross(a, b, dim=-1)
    edges = torch.stack([e0, e1, e2], dim=1)  # (P, 3, 3); rows are adj(M) rows
    det = (a * e0).sum(-1)
    safe = torch.where(det == 0, torch.ones_like(det), det)
    zplane = (v[..., 2].unsqueeze(-1) * edges).sum(1) / safe.unsqueeze(-1)
    edges = edges * torch.sign(det)[:, None, None]
    return edges, zplane, det


def _screen_bounds(v: torch.Tensor, h: int, w: int):
    """Inclusive pixel bounding boxes of each face after clipping to ``z >= -w``.

    v: (P, 3, 4). Returns int64 ``(x0, x1, y0, y1)``, each (P,), clamped to the raster;
    an empty box (x0 > x1 or y0 > y1) means the face cannot cover any pixel.
    """
    d = v[..., 2] + v[..., 3]  # signed distance to the near plane, >= 0 in front
    pts = [v[:, k] for k in range(3)]
    keep = [d[:, k] >= 0 for k in range(3)]
    for i, j in ((0, 1), (1, 2), (2, 0)):
        di, dj = d[:, i], d[:, j]
        crosses = (di * dj) < 0
        t = di / torch.where(crosses, di - dj, torch.ones_like(di))
        pts.append(v[:, i] + t.unsqueeze(-1) * (v[:, j] - v[:, i]))
        keep.append(crosses)
    p = torch.stack(pts, dim=1)  # (P, 6, 4)
    k = torch.stack(keep, dim=1)  # (P, 6)
    pw = p[..., 3]
    # A kept point with w <= 0 happens only for unusual projections: use the whole screen.
    unbounded = (k & (pw <= 0)).any(dim=1)
    good = k & (pw > 0)
    safe_w = torch.where(good, pw, torch.ones_like(pw))
    inf = torch.full_like(pw, float("inf"))
    sx = torch.where(good, p[..., 0] / safe_w, inf)
    sy = torch.where(good, p[..., 1] / safe_w, inf)
    xmin, ymin = sx.amin(1), sy.amin(1)
    xmax = torch.where(good, sx, -inf).amax(1)
    ymax = torch.where(good, sy, -inf).amax(1)
    full = torch.full_like(xmin, 2.0)
    xmin = torch.where(unbounded, -full, xmin)
    ymin = torch.where(unbounded, -full, ymin)
    xmax = torch.where(unbounded, full, xmax)
    ymax = torch.where(unbounded, full, ymax)
    # NDC -> continuous pixel coordinate whose integers are pixel centres.
    big = float(2 * MAX_RESOLUTION)
    fx0 = ((xmin + 1.0) * (w * 0.5) - 0.5).clamp(-1.0, big)
    fx1 = ((xmax + 1.0) * (w * 0.5) - 0.5).clamp(-big, big)
    fy0 = ((ymin + 1.0) * (h * 0.5) - 0.5).clamp(-1.0, big)
    fy1 = ((ymax + 1.0) * (h * 0.5) - 0.5).clamp(-big, big)
    x0 = torch.ceil(fx0).long().clamp_min(0)
    x1 = torch.floor(fx1).long().clamp_max(w - 1)
    y0 = torch.ceil(fy0).long().clamp_min(0)
    y1 = torch.floor(fy1).long().clamp_max(h - 1)
    none = ~k.any(dim=1)  # entirely behind the near plane
    x1 = torch.where(none, x0 - 1, x1)
    return x0, x1, y0, y1


@torch.no_grad()
def _visibility(
    layout: _Layout, tri: torch.Tensor, h: int, w: int, budget: int
) -> torch.Tensor:
    """Per-pixel winning key ``(depth bits << 32) | face id``; INT64_MAX = background.

    Returns a flat (B*H*W,) int64 tensor.
    """
    pos = layout.pos_flat.detach()
    device = pos.device
    dtype = pos.dtype
    buf = torch.full((layout.batch * h * w,), _INT64_MAX, dtype=torch.int64, device=device)
    n_pairs = layout.pair_face.numel()
    if n_pairs == 0:
        return buf
    tri_l = tri.long()
    # Bounding boxes for all pairs first (cheap), then chunk by candidate count.
    chunk_pairs = max(1, min(n_pairs, 1 << 20))
    boxes = []
    for s in range(0, n_pairs, chunk_pairs):
        pb = layout.pair_batch[s : s + chunk_pairs]
        pf = layout.pair_face[s : s + chunk_pairs]
        v = pos[tri_l[pf] + layout.vert_offset[pb].unsqueeze(1)]
        boxes.append(_screen_bounds(v, h, w))
    x0, x1, y0, y1 = (torch.cat(parts) for parts in zip(*boxes, strict=True))
    nx = (x1 - x0 + 1).clamp_min(0)
    ny = (y1 - y0 + 1).clamp_min(0)
    counts = nx * ny
    live = torch.nonzero(counts > 0).squeeze(1)
    counts_live = counts[live]
    cum = torch.cumsum(counts_live, 0).cpu()  # the one host sync of visibility
    total = int(cum[-1]) if cum.numel() else 0
    if total == 0:
        return buf
    # Candidates are numbered globally, pair by pair; chunk i covers candidate numbers
    # [i * budget, (i + 1) * budget), so even one huge face is split across chunks.
    cum_dev = cum.to(device)
    start_dev = cum_dev - counts_live
    n_chunks = (total + budget - 1) // budget
    log.debug("rasterize: %d candidates of %d faces in %d chunk(s)", total, live.numel(),
              n_chunks)
    for g0 in range(0, total, budget):
        g1 = min(g0 + budget, total)
        n_cand = g1 - g0
        a = int(torch.searchsorted(cum, torch.tensor(g0), right=True))
        b = int(torch.searchsorted(cum, torch.tensor(g1 - 1), right=True)) + 1
        sel = live[a:b]
        pb = layout.pair_batch[sel]
        pf = layout.pair_face[sel]
        v = pos[tri_l[pf] + layout.vert_offset[pb].unsqueeze(1)]
        edges, zplane, _ = _edge_setup(v)
        first = start_dev[a:b]
        cnt = torch.minimum(cum_dev[a:b], torch.full_like(first, g1)) - first.clamp_min(g0)
        # Per-pair tables, gathered once per candidate: float (9 edge-function and 3
        # depth-plane coefficients) and int64 (x0, y0, nx, batch row offset, face id).
        ftab = torch.cat([edges.reshape(-1, 9), zplane], dim=1)
        itab = torch.stack([x0[sel], y0[sel], nx[sel], pb * h, pf], dim=1)
        rep = torch.repeat_interleave(torch.arange(b - a, device=device), cnt,
                                      output_size=n_cand)
        k = torch.arange(g0, g1, device=device) - first.index_select(0, rep)
        fr = ftab.index_select(0, rep)
        ir = itab.index_select(0, rep)
        nxr = ir[:, 2]
        row = torch.div(k, nxr, rounding_mode="floor")
        xi = ir[:, 0] + (k - row * nxr)
        yi = ir[:, 1] + row
        px = _pixel_ndc(xi, w, dtype)
        py = _pixel_ndc(yi, h, dtype)
        e0 = fr[:, 0] * px + fr[:, 1] * py + fr[:, 2]
        e1 = fr[:, 3] * px + fr[:, 4] * py + fr[:, 5]
        e2 = fr[:, 6] * px + fr[:, 7] * py + fr[:, 8]
        z = fr[:, 9] * px + fr[:, 10] * py + fr[:, 11]
        inside = (e0 >= 0) & (e1 >= 0) & (e2 >= 0) & (e0 + e1 + e2 > 0)
        inside &= (z >= -1.0) & (z <= 1.0)
        zbits = ((z.clamp(-1.0, 1.0) + 1.0) * 0.5).float().view(torch.int32).long()
        key = (zbits << 32) | ir[:, 4]
        key = torch.where(inside, key, torch.full_like(key, _INT64_MAX))
        pix = (ir[:, 3] + yi) * w + xi
        buf.scatter_reduce_(0, pix, key, reduce="amin")
    return buf


def _barycentrics(v: torch.Tensor, px: torch.Tensor, py: torch.Tensor, h: int, w: int,
                  grad_db: bool):
    """Differentiable perspective-correct barycentrics at NDC ``(px, py)``.

    v: (N, 3, 4) clip vertices of the covering face. Returns ``(uvzw (N,4 without id:
    u, v, z/w), db (N,4) or None)``.
    """
    x, y, z, ww = v[..., 0], v[..., 1], v[..., 2], v[..., 3]
    # Homogeneous 2D edge functions: c_i = (V_j x V_k) . (px, py, 1), (i, j, k) cyclic.
    j_idx, k_idx = [1, 2, 0], [2, 0, 1]
    xj, xk = x[:, j_idx], x[:, k_idx]
    yj, yk = y[:, j_idx], y[:, k_idx]
    wj, wk = ww[:, j_idx], ww[:, k_idx]
    ex = yj * wk - wj * yk  # d c_i / d px
    ey = wj * xk - xj * wk  # d c_i / d py
    e1 = xj * yk - yj * xk  # constant term
    c = ex * px.unsqueeze(1) + ey * py.unsqueeze(1) + e1
    s = c.sum(1, keepdim=True)
    bary = c / s
    zw = (bary * z).sum(1) / (bary * ww).sum(1)
    out = torch.stack([bary[:, 0], bary[:, 1], zw], dim=1)
    db = None
    if grad_db:
        sx = ex.sum(1, keepdim=True)
        sy = ey.sum(1, keepdim=True)
        dbx = (ex * s - c * sx) / (s * s) * (2.0 / w)
        dby = (ey * s - c * sy) / (s * s) * (2.0 / h)
        db = torch.stack([dbx[:, 0], dby[:, 0], dbx[:, 1], dby[:, 1]], dim=1)
    return out, db


def rasterize(
    pos_clip: torch.Tensor,
    tri: torch.Tensor,
    resolution: tuple[int, int],
    ranges: torch.Tensor | None = None,
    grad_db: bool = True,
    candidate_budget: int = DEFAULT_CANDIDATE_BUDGET,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rasterize triangles; differentiable w.r.t. ``pos_clip`` through ``rast``'s
    ``(u, v, z/w)`` channels and ``rast_db``.

    Args:
        pos_clip: clip-space vertex positions ``(x, y, z, w)``, float32 or float64, on
            any device. ``(B, V, 4)``: instanced mode, every batch item uses all of
            ``tri``. ``(V, 4)``: range mode, batch item ``b`` draws triangles
            ``tri[start_b : start_b + count_b]`` from ``ranges``; without ``ranges``
            one image of all triangles.
        tri: ``(F, 3)`` int32 vertex indices, on ``pos_clip``'s device.
        resolution: ``(H, W)`` in pixels.
        ranges: range mode only: ``(B, 2)`` int32 CPU tensor of ``(start, count)``.
        grad_db: compute ``rast_db`` (needed for mipmapped texturing); when False,
            ``rast_db`` is a ``(B, H, W, 0)`` tensor.
        candidate_budget: max (face, pixel) pairs tested at once; lower it to save
            memory (each costs roughly 100 bytes). The result does not depend on it.

    Returns:
        ``rast``: ``(B, H, W, 4)`` of ``pos_clip``'s dtype and device: ``(u, v, z/w,
        triangle_id + 1)``, all zero where no triangle is visible. See the module
        docstring for the pixel and barycentric conventions.
        ``rast_db``: ``(B, H, W, 4)`` ``(du/dX, du/dY, dv/dX, dv/dY)`` per pixel (zero
        on background), or ``(B, H, W, 0)`` when ``grad_db`` is False.

    Synchronises with the host a few times per call (to size candidate lists and the
    covered-pixel list), as any rasterizer with data-dependent output must.
    """
    validate_pos_tri(pos_clip, tri)
    h, w = _check_resolution(resolution)
    if not isinstance(candidate_budget, int) or candidate_budget < 1:
        raise RenderError(f"candidate_budget must be a positive int; got {candidate_budget!r}")
    layout = _layout(pos_clip, tri, ranges)
    return _rasterize(layout, tri, h, w, grad_db, candidate_budget)


def _rasterize(layout: _Layout, tri: torch.Tensor, h: int, w: int, grad_db: bool,
               budget: int) -> tuple[torch.Tensor, torch.Tensor]:
    pos = layout.pos_flat
    dtype, device = pos.dtype, pos.device
    n_pix = layout.batch * h * w
    buf = _visibility(layout, tri, h, w, budget)
    covered = torch.nonzero(buf != _INT64_MAX).squeeze(1)  # sync: sizes the output
    face = buf[covered] & _ID_MASK
    bidx = torch.div(covered, h * w, rounding_mode="floor")
    rem = covered - bidx * (h * w)
    yi = torch.div(rem, w, rounding_mode="floor")
    xi = rem - yi * w
    vidx = tri[face].long() + layout.vert_offset[bidx].unsqueeze(1)
    v = pos[vidx]  # (N, 3, 4), differentiable gather
    vals, db = _barycentrics(v, _pixel_ndc(xi, w, dtype), _pixel_ndc(yi, h, dtype), h, w,
                             grad_db)
    ids = (face + 1).to(dtype).unsqueeze(1)
    rast = torch.zeros(n_pix, 4, dtype=dtype, device=device)
    rast = rast.index_put((covered,), torch.cat([vals, ids], dim=1))
    rast = rast.view(layout.batch, h, w, 4)
    if grad_db:
        rast_db = torch.zeros(n_pix, 4, dtype=dtype, device=device)
        rast_db = rast_db.index_put((covered,), db).view(layout.batch, h, w, 4)
    else:
        rast_db = torch.zeros(layout.batch, h, w, 0, dtype=dtype, device=device)
    return rast, rast_db
