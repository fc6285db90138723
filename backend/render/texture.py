"""Texture sampling with bilinear and trilinear-mipmap filtering (nvdiffrast's
``texture``), in plain PyTorch.

Texture-space conventions: ``tex[b, i, j]`` is the texel in row ``i`` and column ``j``;
its centre is at ``(u, v) = ((j + 0.5) / Wt, (i + 0.5) / Ht)``. ``u`` runs along the
columns, ``v`` along the rows (``v = 0`` is row 0, the first row in memory; images
loaded from PNG have row 0 at the top). Mip level ``k + 1`` is the 2x2 box average
of level ``k`` (area averaging for odd sizes), down to 1x1 or ``max_mip_level``.
The level of detail is ``log2`` of the longer of the two pixel footprint axes in
texels, ``(du/dX, dv/dX) * (Wt, Ht)`` and ``(du/dY, dv/dY) * (Wt, Ht)``, plus
``mip_level_bias``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import RenderError

FILTER_MODES = ("auto", "nearest", "linear", "linear-mipmap-nearest", "linear-mipmap-linear")
BOUNDARY_MODES = ("wrap", "clamp", "zero")


def texture_construct_mip(tex: torch.Tensor, max_mip_level: int | None = None
                          ) -> list[torch.Tensor]:
    """The mip pyramid of ``tex`` (``(B, Ht, Wt, C)`` float): a list of
    ``(B, h_k, w_k, C)`` tensors, level 0 = ``tex`` itself. Differentiable; build it once
    per texture update and pass it to ``texture(..., mip=...)`` to reuse it."""
    _check_tex(tex)
    if max_mip_level is not None and (not isinstance(max_mip_level, int) or max_mip_level < 0):
        raise RenderError(f"max_mip_level must be a non-negative int or None; got "
                          f"{max_mip_level!r}")
    levels = [tex]
    cur = tex.permute(0, 3, 1, 2)
    while (cur.shape[-1] > 1 or cur.shape[-2] > 1) and (
        max_mip_level is None or len(levels) <= max_mip_level
    ):
        h, w = cur.shape[-2:]
        nh, nw = max(1, h // 2), max(1, w // 2)
        if h % 2 == 0 and w % 2 == 0:
            cur = F.avg_pool2d(cur, 2)
        else:
            cur = F.adaptive_avg_pool2d(cur, (nh, nw))
        levels.append(cur.permute(0, 2, 3, 1))
    return levels


def _check_tex(tex: torch.Tensor) -> None:
    if not isinstance(tex, torch.Tensor):
        raise RenderError(f"tex must be a torch.Tensor; got {type(tex).__name__}")
    if tex.dim() != 4:
        raise RenderError(f"tex must have shape (B,Ht,Wt,C); got {tuple(tex.shape)}")
    if tex.dtype not in (torch.float32, torch.float64):
        raise RenderError(f"tex must be float32 or float64; got {tex.dtype}")
    if min(tex.shape) < 1:
        raise RenderError(f"tex must not be empty; got {tuple(tex.shape)}")


def texture(
    tex: torch.Tensor,
    uv: torch.Tensor,
    uv_da: torch.Tensor | None = None,
    mip_level_bias: torch.Tensor | None = None,
    mip: list[torch.Tensor] | None = None,
    filter_mode: str = "auto",
    boundary_mode: str = "wrap",
    max_mip_level: int | None = None,
) -> torch.Tensor:
    """Sample ``tex`` at ``uv`` for every pixel.

    Args:
        tex: ``(B, Ht, Wt, C)`` or ``(1, Ht, Wt, C)`` (shared) float32/float64 texture.
        uv: ``(B, H, W, 2)`` texture coordinates ``(u, v)`` (see module docstring), same
            dtype and device as ``tex``.
        uv_da: ``(B, H, W, 4)`` ``(du/dX, du/dY, dv/dX, dv/dY)`` in per-pixel units, as
            ``interpolate(..., diff_attrs=...)`` returns for ``uv``; needed by the mipmap
            filters unless ``mip_level_bias`` is given.
        mip_level_bias: ``(B, H, W)`` added to the level of detail (levels, not texels).
        mip: a pyramid from ``texture_construct_mip(tex)`` to reuse instead of building one.
        filter_mode: ``"nearest"``, ``"linear"`` (bilinear), ``"linear-mipmap-nearest"``,
            ``"linear-mipmap-linear"`` (trilinear) or ``"auto"`` (trilinear when
            ``uv_da`` or ``mip_level_bias`` is given, else bilinear).
        boundary_mode: ``"wrap"`` (repeat), ``"clamp"`` (edge texels) or ``"zero"``
            (texels outside the texture are zero). nvdiffrast's ``"cube"`` is not
            supported.
        max_mip_level: the coarsest level to use (``None``: down to 1x1).

    Returns:
        ``(B, H, W, C)`` of ``tex``'s dtype and device. Differentiable w.r.t. ``tex``,
        ``uv`` (not in ``"nearest"`` mode), and, in trilinear mode, ``uv_da`` and
        ``mip_level_bias`` through the blend between levels.
    """
    _check_tex(tex)
    if filter_mode not in FILTER_MODES:
        raise RenderError(f"filter_mode must be one of {FILTER_MODES}; got {filter_mode!r}")
    if boundary_mode not in BOUNDARY_MODES:
        raise RenderError(
            f"boundary_mode must be one of {BOUNDARY_MODES} (the torch backend has no "
            f"'cube'); got {boundary_mode!r}"
        )
    if not isinstance(uv, torch.Tensor) or uv.dim() != 4 or uv.shape[-1] != 2:
        got = tuple(uv.shape) if isinstance(uv, torch.Tensor) else type(uv).__name__
        raise RenderError(f"uv must have shape (B,H,W,2); got {got}")
    if uv.dtype != tex.dtype or uv.device != tex.device:
        raise RenderError(
            f"uv must match tex's dtype and device ({tex.dtype}, {tex.device}); got "
            f"({uv.dtype}, {uv.device})"
        )
    batch, h, w, _ = uv.shape
    if tex.shape[0] not in (1, batch):
        raise RenderError(
            f"tex's batch size must be 1 or uv's batch size {batch}; got {tuple(tex.shape)}"
        )
    for name, t, last in (("uv_da", uv_da, 4), ("mip_level_bias", mip_level_bias, None)):
        if t is None:
            continue
        want = (batch, h, w, last) if last else (batch, h, w)
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != want:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise RenderError(f"{name} must have shape {want}; got {got}")
        if t.dtype != tex.dtype or t.device != tex.device:
            raise RenderError(
                f"{name} must match tex's dtype and device ({tex.dtype}, {tex.device}); "
                f"got ({t.dtype}, {t.device})"
            )
    if filter_mode == "auto":
        has_lod = uv_da is not None or mip_level_bias is not None
        filter_mode = "linear-mipmap-linear" if has_lod else "linear"
    mipmapped = filter_mode.startswith("linear-mipmap")
    if mipmapped and uv_da is None and mip_level_bias is None:
        raise RenderError(f"filter_mode {filter_mode!r} needs uv_da or mip_level_bias")

    if not mipmapped:
        levels = [tex]
    elif mip is not None:
        if not isinstance(mip, (list, tuple)) or not mip or mip[0].shape != tex.shape:
            raise RenderError("mip must be the list texture_construct_mip(tex) returned")
        levels = list(mip)
        if max_mip_level is not None:
            levels = levels[: max_mip_level + 1]
    else:
        levels = texture_construct_mip(tex, max_mip_level)

    if filter_mode == "nearest":
        return _sample(levels, None, uv, boundary_mode, nearest=True)
    if not mipmapped:
        return _sample(levels, None, uv, boundary_mode)

    lod = torch.zeros(batch, h, w, dtype=tex.dtype, device=tex.device)
    if uv_da is not None:
        th, tw = tex.shape[1], tex.shape[2]
        ax = (uv_da[..., 0] * tw) ** 2 + (uv_da[..., 2] * th) ** 2
        ay = (uv_da[..., 1] * tw) ** 2 + (uv_da[..., 3] * th) ** 2
        tiny = torch.finfo(tex.dtype).tiny
        lod = 0.5 * torch.log2(torch.maximum(ax, ay).clamp_min(tiny))
    if mip_level_bias is not None:
        lod = lod + mip_level_bias
    lod = lod.clamp(0.0, float(len(levels) - 1))
    if filter_mode == "linear-mipmap-nearest":
        level = torch.floor(lod.detach() + 0.5).long()
        return _sample(levels, level, uv, boundary_mode)
    l0 = torch.floor(lod.detach()).long()
    frac = (lod - l0.to(lod.dtype)).unsqueeze(-1)
    l1 = (l0 + 1).clamp_max(len(levels) - 1)
    c0 = _sample(levels, l0, uv, boundary_mode)
    c1 = _sample(levels, l1, uv, boundary_mode)
    return c0 + frac * (c1 - c0)


def _sample(levels: list[torch.Tensor], level: torch.Tensor | None, uv: torch.Tensor,
            boundary: str, nearest: bool = False) -> torch.Tensor:
    """Bilinear (or nearest) lookups; ``level`` (B,H,W) int64 picks the mip level per
    pixel (None: level 0 everywhere). Level ``l`` has size ``max(1, Ht >> l)`` x
    ``max(1, Wt >> l)`` (as ``texture_construct_mip`` builds it)."""
    batch, h, w, _ = uv.shape
    tex_b, th, tw, n_ch = levels[0].shape
    device = uv.device
    u = uv[..., 0].reshape(-1)
    v = uv[..., 1].reshape(-1)
    if level is None or len(levels) == 1:
        flat = levels[0].reshape(tex_b, -1, n_ch)
        hh = torch.full_like(u, th, dtype=torch.long)
        ww = torch.full_like(u, tw, dtype=torch.long)
        off = torch.zeros_like(u, dtype=torch.long)
    else:
        flat = torch.cat([lv.reshape(tex_b, -1, n_ch) for lv in levels], dim=1)
        counts = [lv.shape[1] * lv.shape[2] for lv in levels]
        starts = torch.tensor([sum(counts[:i]) for i in range(len(counts))], device=device)
        lv = level.reshape(-1)
        hh = torch.bitwise_right_shift(torch.full_like(lv, th), lv).clamp_min(1)
        ww = torch.bitwise_right_shift(torch.full_like(lv, tw), lv).clamp_min(1)
        off = starts.index_select(0, lv)
    total = flat.shape[1]
    if tex_b > 1:
        off = off + torch.arange(batch, device=device).repeat_interleave(h * w) * total
    x = u * ww.to(u.dtype) - 0.5
    y = v * hh.to(v.dtype) - 0.5
    if nearest:
        xs = torch.floor(x.detach() + 0.5).long().unsqueeze(0)
        ys = torch.floor(y.detach() + 0.5).long().unsqueeze(0)
        wts = torch.ones_like(x).unsqueeze(0)
    else:
        x0 = torch.floor(x.detach())
        y0 = torch.floor(y.detach())
        fx, fy = x - x0, y - y0
        x0l, y0l = x0.long(), y0.long()
        gx, gy = 1.0 - fx, 1.0 - fy
        xs = torch.stack([x0l, x0l + 1, x0l, x0l + 1])  # (4, N) taps
        ys = torch.stack([y0l, y0l, y0l + 1, y0l + 1])
        wts = torch.stack([gx * gy, fx * gy, gx * fy, fx * fy])
    if boundary == "wrap":
        xc, yc = torch.remainder(xs, ww), torch.remainder(ys, hh)
    else:
        xc = torch.minimum(xs.clamp_min(0), ww - 1)
        yc = torch.minimum(ys.clamp_min(0), hh - 1)
        if boundary == "zero":
            inside = (xs == xc) & (ys == yc)
            wts = wts * inside.to(wts.dtype)
    idx = (off + yc * ww + xc).reshape(-1)
    texels = flat.reshape(-1, n_ch).index_select(0, idx).view(xs.shape[0], -1, n_ch)
    out = (texels * wts.unsqueeze(-1)).sum(0)
    return out.view(batch, h, w, n_ch)
