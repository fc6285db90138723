"""Attribute interpolation over a raster, with screen-space derivatives (nvdiffrast's
``interpolate``), in plain PyTorch."""

from __future__ import annotations

import torch

from .errors import RenderError
from .rasterize import check_tri_range


def validate_rast(rast: torch.Tensor, name: str = "rast") -> None:
    """``rast`` must be a (B,H,W,4) float32/float64 tensor as ``rasterize`` returns."""
    if not isinstance(rast, torch.Tensor):
        raise RenderError(f"{name} must be a torch.Tensor; got {type(rast).__name__}")
    if rast.dim() != 4 or rast.shape[-1] != 4:
        raise RenderError(f"{name} must have shape (B,H,W,4); got {tuple(rast.shape)}")
    if rast.dtype not in (torch.float32, torch.float64):
        raise RenderError(f"{name} must be float32 or float64; got {rast.dtype}")


def _diff_indices(diff_attrs, n_attrs: int) -> list[int]:
    if diff_attrs is None:
        return []
    if isinstance(diff_attrs, str):
        if diff_attrs != "all":
            raise RenderError(f"diff_attrs must be 'all' or a list of ints; got {diff_attrs!r}")
        return list(range(n_attrs))
    try:
        idx = [int(i) for i in diff_attrs]
        ok = all(int(i) == i for i in diff_attrs)
    except (TypeError, ValueError):
        ok, idx = False, []
    if not ok or any(not 0 <= i < n_attrs for i in idx):
        raise RenderError(
            f"diff_attrs must be 'all' or attribute indices in [0, {n_attrs - 1}]; "
            f"got {diff_attrs!r}"
        )
    return idx


def interpolate(
    attr: torch.Tensor,
    rast: torch.Tensor,
    tri: torch.Tensor,
    rast_db: torch.Tensor | None = None,
    diff_attrs=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolate per-vertex attributes at every pixel with the raster's barycentrics.

    Args:
        attr: ``(V, A)`` (shared by the batch; required in range mode) or ``(B, V, A)``
            / ``(1, V, A)`` (instanced) float attributes, on ``rast``'s device.
        rast: ``(B, H, W, 4)`` from ``rasterize``: ``(u, v, z/w, triangle_id + 1)``.
        tri: ``(F, 3)`` int32 indices into ``attr``'s vertices (may differ from the
            geometry's ``tri`` as long as it has the same triangles in the same order,
            e.g. a UV topology with seams).
        rast_db: ``(B, H, W, 4)`` ``(du/dX, du/dY, dv/dX, dv/dY)`` from ``rasterize``;
            needed when ``diff_attrs`` is given.
        diff_attrs: ``"all"`` or a list of attribute indices whose pixel derivatives to
            return.

    Returns:
        ``out``: ``(B, H, W, A)``, ``rast``'s dtype (``attr`` must match): the
        interpolated attributes, zero where no triangle is visible.
        ``out_da``: ``(B, H, W, 2 * len(diff_attrs))`` laid out ``(dA_i/dX, dA_i/dY)``
        for each selected attribute ``i`` in order (X = column, Y = row, in pixels);
        ``(B, H, W, 0)`` without ``diff_attrs``.

    Differentiable w.r.t. ``attr``, ``rast`` (u, v) and ``rast_db``.
    """
    validate_rast(rast)
    if not isinstance(attr, torch.Tensor):
        raise RenderError(f"attr must be a torch.Tensor; got {type(attr).__name__}")
    if attr.dim() not in (2, 3):
        raise RenderError(f"attr must have shape (V,A) or (B,V,A); got {tuple(attr.shape)}")
    if not attr.is_floating_point():
        raise RenderError(f"attr must be a floating-point tensor; got {attr.dtype}")
    batch, h, w, _ = rast.shape
    if attr.dim() == 3 and attr.shape[0] not in (1, batch):
        raise RenderError(
            f"attr's batch size must be 1 or rast's batch size {batch}; got "
            f"{tuple(attr.shape)}"
        )
    if not isinstance(tri, torch.Tensor) or tri.dim() != 2 or tri.shape[-1] != 3:
        got = tuple(tri.shape) if isinstance(tri, torch.Tensor) else type(tri).__name__
        raise RenderError(f"tri must have shape (F,3); got {got}")
    if tri.dtype != torch.int32:
        raise RenderError(f"tri must be int32 (as in nvdiffrast); got {tri.dtype}")
    if attr.device != rast.device or tri.device != rast.device:
        raise RenderError(
            f"attr, rast and tri must be on one device; got {attr.device}, {rast.device}, "
            f"{tri.device}"
        )
    if attr.dtype != rast.dtype:
        raise RenderError(f"attr must have rast's dtype {rast.dtype}; got {attr.dtype}")
    check_tri_range(tri, attr.shape[-2], "attr has")
    n_attrs = attr.shape[-1]
    diff = _diff_indices(diff_attrs, n_attrs)
    if diff:
        if rast_db is None:
            raise RenderError("diff_attrs needs rast_db (from rasterize(..., grad_db=True))")
        if (not isinstance(rast_db, torch.Tensor) or rast_db.shape != rast.shape):
            got = tuple(rast_db.shape) if isinstance(rast_db, torch.Tensor) else rast_db
            raise RenderError(
                f"rast_db must have rast's shape {tuple(rast.shape)}; got {got}"
            )
    return _interpolate(attr, rast, tri, rast_db, diff)


def _interpolate(attr, rast, tri, rast_db, diff: list[int]):
    batch, h, w, _ = rast.shape
    n_attrs = attr.shape[-1]
    tid = rast[..., 3].detach().reshape(-1).long() - 1  # (N,) N = B*H*W
    valid = tid >= 0
    tid = tid.clamp(0, max(tri.shape[0] - 1, 0))
    corner = tri.long().index_select(0, tid)  # (N, 3)
    if attr.dim() == 3 and attr.shape[0] == batch and batch > 1:
        pix_batch = torch.arange(batch, device=attr.device).repeat_interleave(h * w)
        corner = corner + (pix_batch * attr.shape[1]).unsqueeze(1)
    a = attr.reshape(-1, n_attrs).index_select(0, corner.reshape(-1))
    a = a.view(-1, 3, n_attrs)
    r = rast.reshape(-1, 4)
    u, v = r[:, 0], r[:, 1]
    # Background pixels have u = v = 0; zeroing the third weight there zeroes the output.
    wts = torch.stack([u, v, (1.0 - u - v) * valid.to(r.dtype)], dim=1)
    out = torch.bmm(wts.unsqueeze(1), a).view(batch, h, w, n_attrs)
    if not diff:
        return out, out.new_zeros(batch, h, w, 0)
    sel = a[:, :, diff]
    d0, d1 = sel[:, 0] - sel[:, 2], sel[:, 1] - sel[:, 2]  # (N, D)
    db = rast_db.reshape(-1, 4)
    dx = d0 * db[:, 0:1] + d1 * db[:, 2:3]
    dy = d0 * db[:, 1:2] + d1 * db[:, 3:4]
    out_da = torch.stack([dx, dy], dim=-1).reshape(batch, h, w, 2 * len(diff))
    return out, out_da
