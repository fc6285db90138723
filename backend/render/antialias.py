"""Analytic antialiasing of silhouette edges, which gives a rendered image gradients
w.r.t. vertex positions through visibility (nvdiffrast's ``antialias``), in plain
PyTorch. Written from Laine et al. 2020 (its section on analytic antialiasing) and nvdiffrast's
public documentation, never its source.

Method. Every pair of horizontally or vertically adjacent pixels whose triangle ids
differ may straddle a silhouette. The pixel whose surface is nearer (smaller ``z/w``;
background is farthest) is the *front* pixel ``F``, the other one ``O``. We look for a
silhouette edge crossing the segment from ``F``'s centre to ``O``'s centre. An edge is
a silhouette edge when it has a single triangle (boundary), more than two
(non-manifold), or its two triangles' opposite vertices project to the same side of it
(the surface folds away from the viewer there); the edge -> opposite-vertex table is
built once per topology (``build_topology``). If the edge crosses the segment at
fraction ``t`` of the way from ``F`` to ``O``, the pixel that the edge passes through
is blended as a 1D box filter would: ``O += (t - 1/2) (c_F - c_O)`` when ``t > 1/2``,
else ``F += (1/2 - t) (c_O - c_F)``. ``t`` is a differentiable function of the edge's
projected endpoints, which gives the gradients. An edge is handled only by the pairs
across it (horizontal pairs for edges steeper than 45 degrees, vertical pairs for the
others), so no crossing counts twice.

Difference to nvdiffrast (the walk). nvdiffrast only tests the edges of the triangle
visible at ``F``. On dense smooth meshes the triangles holding the silhouette edge
are seen at grazing angles, so thin on screen that they rarely cover a pixel centre;
the rule then misses most crossings and the silhouette gradient is a few percent of
its true value (1-2 % for a 20k-face sphere at 256^2 in our tests). With
``walk=True`` (default here) we follow the segment from ``F`` across neighbouring
triangles, edge by edge, until we reach a silhouette edge (found), reach the triangle
visible at ``O`` or leave the segment (none), or run out of ``max_walk_steps``
triangles (none). This restores the gradient to within 1 % of a supersampled finite
difference on that sphere. ``walk=False`` (or ``max_walk_steps=1``) is the plain rule.
The image itself changes too: silhouette pixels get the coverage of the true
silhouette instead of staying aliased.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .errors import RenderError
from .interpolate import validate_rast
from .rasterize import validate_pos_tri

log = logging.getLogger(__name__)

DEFAULT_MAX_WALK_STEPS = 32
"""Enough for a 20k-face sphere at 256^2 (which needs about 10); costs little, since
only pairs still walking towards a silhouette take further steps."""


@dataclass(frozen=True, eq=False)
class Topology:
    """Edge adjacency of a triangle list; build once per topology with
    ``build_topology`` and reuse it for every ``antialias`` call on that topology.

    Edge ``k`` of face ``f`` joins its vertices ``(k+1) % 3`` and ``(k+2) % 3`` (it is
    opposite vertex ``k``). All tensors are ``(F, 3)`` int64 on ``tri``'s device:

    - ``tri``: the faces (int64 copy).
    - ``neighbor``: the face across edge ``k``; -1 for boundary and non-manifold edges
      (both are always silhouette edges).
    - ``neighbor_edge``: the local index of the shared edge in ``neighbor``; -1 if none.
    - ``opposite``: the neighbour's vertex opposite the shared edge; -1 if none.
    """

    tri: torch.Tensor
    neighbor: torch.Tensor
    neighbor_edge: torch.Tensor
    opposite: torch.Tensor

    @property
    def num_faces(self) -> int:
        return self.tri.shape[0]


def build_topology(tri: torch.Tensor) -> Topology:
    """The edge -> neighbour / opposite-vertex table of ``tri`` (``(F, 3)`` int32)."""
    if not isinstance(tri, torch.Tensor) or tri.dim() != 2 or tri.shape[-1] != 3:
        got = tuple(tri.shape) if isinstance(tri, torch.Tensor) else type(tri).__name__
        raise RenderError(f"tri must have shape (F,3); got {got}")
    if tri.dtype != torch.int32:
        raise RenderError(f"tri must be int32 (as in nvdiffrast); got {tri.dtype}")
    t = tri.long()
    n_faces = t.shape[0]
    device = t.device
    if n_faces == 0:
        empty = torch.zeros(0, 3, dtype=torch.long, device=device)
        return Topology(t, empty, empty, empty)
    if int(t.min()) < 0:
        raise RenderError(f"tri indices must be >= 0; got minimum {int(t.min())}")
    a = t[:, [1, 2, 0]].reshape(-1)
    b = t[:, [2, 0, 1]].reshape(-1)
    n_verts = int(t.max()) + 1
    key = torch.minimum(a, b) * n_verts + torch.maximum(a, b)  # half-edge h = 3 f + k
    order = torch.argsort(key)
    sk = key[order]
    _, inverse, counts = torch.unique_consecutive(sk, return_inverse=True,
                                                  return_counts=True)
    run_start = (torch.cumsum(counts, 0) - counts)[inverse]
    run_count = counts[inverse]
    pos = torch.arange(order.numel(), device=device)
    partner_pos = torch.where(pos == run_start, pos + 1, pos - 1)
    manifold = run_count == 2
    partner = torch.where(manifold, order[partner_pos.clamp_max(order.numel() - 1)],
                          torch.full_like(order, -1))
    partner_of = torch.full_like(order, -1)
    partner_of[order] = partner
    nb = torch.where(partner_of >= 0, partner_of // 3, partner_of)
    nb_edge = torch.where(partner_of >= 0, partner_of % 3, partner_of)
    opp = torch.where(partner_of >= 0, t.reshape(-1)[partner_of.clamp_min(0)], partner_of)
    return Topology(t, nb.view(n_faces, 3), nb_edge.view(n_faces, 3), opp.view(n_faces, 3))


def antialias(
    color: torch.Tensor,
    rast: torch.Tensor,
    pos: torch.Tensor,
    tri: torch.Tensor,
    topology: Topology | None = None,
    pos_gradient_boost: float = 1.0,
    walk: bool = True,
    max_walk_steps: int = DEFAULT_MAX_WALK_STEPS,
) -> torch.Tensor:
    """Blend colours across silhouette edges so that the image depends smoothly on
    vertex positions there.

    Args:
        color: ``(B, H, W, C)`` float image to antialias (e.g. a mask and shading).
        rast: ``(B, H, W, 4)`` from ``rasterize`` with the same ``pos`` and ``tri``.
        pos: the clip-space positions given to ``rasterize``: ``(B, V, 4)`` (instanced)
            or ``(V, 4)`` (range mode); same dtype as ``color`` and ``rast``.
        tri: ``(F, 3)`` int32, as given to ``rasterize``.
        topology: ``build_topology(tri)``, built once per topology; built here if None.
        pos_gradient_boost: multiplies the gradient w.r.t. ``pos`` (not the image).
        walk: follow the pixel-to-pixel segment across triangles to the silhouette edge
            (see module docstring); False = nvdiffrast's plain rule.
        max_walk_steps: triangles visited per pixel pair at most (1 = plain rule).

    Returns:
        ``(B, H, W, C)``, ``color``'s dtype and device. Differentiable w.r.t. ``color``
        and ``pos``.
    """
    validate_rast(rast)
    if not isinstance(color, torch.Tensor) or color.dim() != 4:
        got = tuple(color.shape) if isinstance(color, torch.Tensor) else type(color).__name__
        raise RenderError(f"color must have shape (B,H,W,C); got {got}")
    if color.shape[:3] != rast.shape[:3]:
        raise RenderError(
            f"color's (B,H,W) must match rast's {tuple(rast.shape[:3])}; got "
            f"{tuple(color.shape[:3])}"
        )
    validate_pos_tri(pos, tri, name="pos")
    if pos.dim() == 3 and pos.shape[0] != rast.shape[0]:
        raise RenderError(
            f"pos's batch size must match rast's {rast.shape[0]} in instanced mode; got "
            f"{tuple(pos.shape)}"
        )
    if not (color.dtype == rast.dtype == pos.dtype):
        raise RenderError(
            f"color, rast and pos must share one float dtype; got {color.dtype}, "
            f"{rast.dtype}, {pos.dtype}"
        )
    if not (color.device == rast.device == pos.device):
        raise RenderError(
            f"color, rast and pos must be on one device; got {color.device}, "
            f"{rast.device}, {pos.device}"
        )
    if topology is None:
        topology = build_topology(tri)
    elif not isinstance(topology, Topology) or topology.num_faces != tri.shape[0]:
        got = topology.num_faces if isinstance(topology, Topology) else type(topology).__name__
        raise RenderError(
            f"topology must be build_topology(tri) for these {tri.shape[0]} triangles; "
            f"got {got}"
        )
    if not isinstance(max_walk_steps, int) or max_walk_steps < 1:
        raise RenderError(f"max_walk_steps must be a positive int; got {max_walk_steps!r}")
    steps = max_walk_steps if walk else 1
    return _antialias(color, rast, pos, topology, float(pos_gradient_boost), steps)


def _project(p: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip (..., 4) -> continuous pixel coordinates (X, Y), integers at pixel centres."""
    return (p[..., 0] / p[..., 3] + 1.0) * (w * 0.5) - 0.5, \
        (p[..., 1] / p[..., 3] + 1.0) * (h * 0.5) - 0.5


def _crossing(pa, pc, qa, qc, fa, fc, direction):
    """Where the segment from ``F`` (along-coordinate ``fa``, across ``fc``) in
    ``direction`` (+-1 along) crosses the line through edge ``P -> Q``.

    Returns ``(t, s)``: ``t`` = distance from ``F`` along the segment (pixels), ``s`` =
    position on the edge (0 at P, 1 at Q). Uses the edge's coordinates split into
    along-segment (``*a``) and across-segment (``*c``) components.
    """
    dc = qc - pc
    safe = torch.where(dc == 0, torch.ones_like(dc), dc)
    s = (fc - pc) / safe
    t = (pa + s * (qa - pa) - fa) * direction
    return t, s, dc != 0


@torch.no_grad()
def _walk(topology: Topology, face_tab: torch.Tensor, face, target, fbatch, fa, fc,
          direction, horizontal, steps: int):
    """Find, for each pixel pair, the silhouette edge crossing its segment.

    ``face_tab`` ``(B*F, 7)``: per (batch, face) the projected vertex coordinates
    ``(X0, X1, X2, Y0, Y1, Y2)`` in pixels and 1 when all three have ``w > 0``.
    ``face``/``target``: the triangle at the front / other pixel (-1 = background).
    Returns ``(pair, face, edge)`` int64 tensors of the pairs where one was found.
    """
    device = face.device
    n_faces = topology.num_faces
    topo_tab = torch.cat([topology.neighbor, topology.neighbor_edge], dim=1)  # (F, 6)
    active = torch.arange(face.numel(), device=device)
    cur = face
    entry = torch.full_like(face, -1)
    found_pair, found_face, found_edge = [], [], []
    k_range = torch.arange(3, device=device)
    for _ in range(steps):
        if active.numel() == 0:
            break
        base = fbatch.index_select(0, active) * n_faces
        rows = face_tab.index_select(0, base + cur)
        x, y = rows[:, 0:3], rows[:, 3:6]
        hz = horizontal.index_select(0, active).unsqueeze(1)
        along, across = torch.where(hz, x, y), torch.where(hz, y, x)
        # edge k joins vertices P = k+1 and Q = k+2
        pa, pc = along[:, [1, 2, 0]], across[:, [1, 2, 0]]
        qa, qc = along[:, [2, 0, 1]], across[:, [2, 0, 1]]
        d = direction.index_select(0, active).unsqueeze(1)
        t, s, nondeg = _crossing(pa, pc, qa, qc, fa.index_select(0, active).unsqueeze(1),
                                 fc.index_select(0, active).unsqueeze(1), d)
        valid = nondeg & (s >= 0) & (s <= 1) & (k_range != entry.unsqueeze(1))
        t_exit, k = torch.where(valid, t, torch.full_like(t, -float("inf"))).max(dim=1)
        keep = (rows[:, 6] > 0) & (t_exit >= 0) & (t_exit < 1)
        kk = k.unsqueeze(1)
        trow = topo_tab.index_select(0, cur)
        nb = trow[:, 0:3].gather(1, kk).squeeze(1)
        nb_edge = trow[:, 3:6].gather(1, kk).squeeze(1)
        # Silhouette test: do the two opposite vertices lie on the same side of the edge?
        p_x, p_y = pa.gather(1, kk), pc.gather(1, kk)  # in (along, across) coordinates
        e_a, e_c = qa.gather(1, kk) - p_x, qc.gather(1, kk) - p_y
        o1 = e_a * (across.gather(1, kk) - p_y) - e_c * (along.gather(1, kk) - p_x)
        has_nb = nb >= 0
        nrows = face_tab.index_select(0, base + nb.clamp_min(0))
        ne = nb_edge.clamp_min(0).unsqueeze(1)
        ox, oy = nrows[:, 0:3].gather(1, ne), nrows[:, 3:6].gather(1, ne)
        o_a, o_c = torch.where(hz, ox, oy), torch.where(hz, oy, ox)
        o2 = e_a * (o_c - p_y) - e_c * (o_a - p_x)
        silhouette = ~has_nb | ((o1 * o2).squeeze(1) > 0)
        keep &= ~has_nb | (nrows[:, 6] > 0)
        hit = keep & silhouette
        # Each edge is handled only by the pairs it crosses more squarely: horizontal
        # pairs take edges with |dY| >= |dX|, vertical pairs those with |dX| > |dY|.
        span_c, span_a = e_c.abs().squeeze(1), e_a.abs().squeeze(1)
        hit &= torch.where(hz.squeeze(1), span_c >= span_a, span_c > span_a)
        found_pair.append(active[hit])
        found_face.append(cur[hit])
        found_edge.append(k[hit])
        # Continue across non-silhouette edges, unless the next triangle is the one
        # visible at the other pixel: its centre is then reached without a silhouette.
        go = keep & ~silhouette & (nb != target.index_select(0, active))
        entry = nb_edge[go]
        active = active[go]
        cur = nb[go]
    return torch.cat(found_pair), torch.cat(found_face), torch.cat(found_edge)


def _antialias(color, rast, pos, topology: Topology, boost: float, steps: int):
    batch, h, w, n_ch = color.shape
    device = color.device
    tid = rast[..., 3].detach().long()
    z = rast[..., 2].detach()
    # Adjacent pixel pairs with different triangle ids.
    hmask = tid[:, :, 1:] != tid[:, :, :-1]
    vmask = tid[:, 1:, :] != tid[:, :-1, :]
    hb, hy, hx = torch.nonzero(hmask, as_tuple=True)
    vb, vy_, vx_ = torch.nonzero(vmask, as_tuple=True)
    pa = torch.cat([(hb * h + hy) * w + hx, (vb * h + vy_) * w + vx_])
    pb = torch.cat([(hb * h + hy) * w + hx + 1, (vb * h + vy_ + 1) * w + vx_])
    horizontal = torch.cat([torch.ones_like(hb, dtype=torch.bool),
                            torch.zeros_like(vb, dtype=torch.bool)])
    if pa.numel() == 0:
        return color
    tflat, zflat = tid.reshape(-1), z.reshape(-1)
    ta, tb = tflat[pa], tflat[pb]
    # The nearer surface is in front; background (id 0) is behind everything.
    a_front = (tb == 0) | ((ta != 0) & (zflat[pa] <= zflat[pb]))
    front = torch.where(a_front, pa, pb)
    other = torch.where(a_front, pb, pa)
    direction = torch.where(a_front, 1.0, -1.0).to(color.dtype)
    face = tflat[front] - 1
    fb = torch.div(front, h * w, rounding_mode="floor")
    rem = front - fb * (h * w)
    fy = torch.div(rem, w, rounding_mode="floor")
    fx = rem - fy * w
    fxf, fyf = fx.to(color.dtype), fy.to(color.dtype)
    fa = torch.where(horizontal, fxf, fyf)
    fc = torch.where(horizontal, fyf, fxf)
    pflat = pos.reshape(-1, 4)
    n_verts = pos.shape[-2]
    voff = fb * n_verts if pos.dim() == 3 else torch.zeros_like(fb)
    with torch.no_grad():
        # Projected corners of every (batch, face): rows b * F + f.
        tri_l = topology.tri
        n_img = batch if pos.dim() == 3 else 1
        corner = tri_l.reshape(1, -1) + (torch.arange(n_img, device=device) * n_verts)[:, None]
        pc = pflat.detach().index_select(0, corner.reshape(-1)).view(-1, 3, 4)
        cx, cy = _project(pc, h, w)
        ok = (pc[..., 3] > 0).all(dim=1, keepdim=True).to(cx.dtype)
        face_tab = torch.cat([cx, cy, ok], dim=1)
        target = tflat.index_select(0, other) - 1
        fbatch = fb if pos.dim() == 3 else torch.zeros_like(fb)
    pair, fface, fedge = _walk(topology, face_tab, face, target, fbatch, fa, fc, direction,
                               horizontal, steps)
    if pair.numel() == 0:
        return color
    # Differentiable crossing for the found edges.
    k1, k2 = (fedge + 1) % 3, (fedge + 2) % 3
    ends = torch.stack([topology.tri[fface, k1], topology.tri[fface, k2]], dim=1)
    ends = ends + voff[pair].unsqueeze(1)
    ex, ey = _project(pflat[ends], h, w)  # (N, 2) with grad
    hz = horizontal[pair]
    along, across = torch.where(hz.unsqueeze(1), ex, ey), torch.where(hz.unsqueeze(1), ey, ex)
    t, _, _ = _crossing(along[:, 0], across[:, 0], along[:, 1], across[:, 1], fa[pair],
                        fc[pair], direction[pair])
    if boost != 1.0:
        t = t.detach() + boost * (t - t.detach())
    t = t.clamp(0.0, 1.0)
    cflat = color.reshape(-1, n_ch)
    f_idx, o_idx = front[pair], other[pair]
    c_f, c_o = cflat[f_idx], cflat[o_idx]
    beyond = (t > 0.5).unsqueeze(1)
    # The edge lies in O's half of the segment (t > 1/2): O is partly covered by F's
    # surface; otherwise F is partly uncovered.
    dest = torch.where(beyond.squeeze(1), o_idx, f_idx)
    amount = torch.where(beyond.squeeze(1), t - 0.5, 0.5 - t).unsqueeze(1)
    delta = amount * torch.where(beyond, c_f - c_o, c_o - c_f)
    out = cflat.index_add(0, dest, delta)
    return out.view(batch, h, w, n_ch)
