"""UV atlas of a triangle mesh: xatlas charts packed into one square texture, per-corner
UVs, a check for overlaps and folds, and the seam dilation that keeps texture
sampling from bleeding the background across chart borders.

Layouts (numpy, host memory, no torch): vertices ``(V, 3)`` float in metres, faces
``(F, 3)`` int vertex indices, counter-clockwise seen from outside. The atlas is one
square texture of ``S = texture_size`` texels a side.

UV convention (Blender's): ``u`` runs left to right along the image columns, ``v``
runs bottom to top, ``(0, 0)`` is the bottom-left corner of the image and ``(1, 1)``
the top-right. For an image array ``img[row, col]`` stored top row first (as PNG files
and ``coverage_mask`` are), texel ``(row, col)`` covers
``u in [col / S, (col + 1) / S]``, ``v in [1 - (row + 1) / S, 1 - row / S]`` and its
centre is ``((col + 0.5) / S, 1 - (row + 0.5) / S)``. ``backend.render.texture`` has
``v = 0`` at row 0 instead: sample such an image there with ``(u, 1 - v)``. Every UV
triangle is counter-clockwise in this frame (positive signed area), so the texture
is never mirrored on the surface.

Unwrapping (``unwrap``) runs xatlas twice, on the mesh centred and scaled to a unit
bounding-box diagonal (xatlas' area thresholds are absolute). The first run cuts the
mesh into charts and flattens each (xatlas' chart generation, LSCM or planar
projection), packed at xatlas' own estimate of the texel density, which is only
approximately the requested size. Charts that come out mirrored (clockwise) are
reflected, then a second run, given those UVs (``use_input_mesh_uvs``), only packs
them: chart rotation off (xatlas' 90-degree turns mirror a chart), ``padding_px``
texels of margin around every chart plus xatlas' bilinear margin, at a density scaled
so the atlas is exactly ``S x S`` (``texels_per_metre``: lowered 5 % at a time while
the charts overflow into a second atlas, then raised 4 % at a time while they still
fit). The second run keeps the charts, the face order and the corner order; the
per-corner UVs are read back through xatlas' index output.

Checking (``check_atlas``) rasterises every face at texel centres (``chart_map``) and
reports texels covered by two charts, or twice by one chart (a fold), along with faces
of zero or flipped UV area, UVs outside ``[0, 1]`` and cuts inside a chart. An overlap
that covers no texel centre passes unseen: it is a sampling check.

Seams (``dilate``): a texture read with bilinear filtering or mipmaps at a chart's
border also reads texels just outside it. Grow the chart colours at least one texel
(``padding_px`` or more for mip levels) past the borders before export or sampling.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from . import MeshError
from .topology import checked_mesh, listed_indices

log = logging.getLogger(__name__)

MIN_TEXTURE_SIZE = 64
MAX_TEXTURE_SIZE = 8192
"""``texture_size`` must be a power of two in ``[MIN_TEXTURE_SIZE, MAX_TEXTURE_SIZE]``
(powers of two keep every mip level an exact 2x2 reduction)."""
MAX_PADDING_PX = 64
"""Upper bound on ``padding_px`` (texels)."""
DEGENERATE_AREA_REL = 1e-12
"""A face whose 3D area is at most this times the squared bounding-box diagonal is
rejected as degenerate (xatlas would leave it out of every chart)."""
ZERO_UV_AREA_TEXELS = 1e-8
"""``check_atlas`` reports a face whose UV area is at most this, in texels squared."""
EDGE_TOLERANCE_TEXELS = 1e-4
"""A texel centre within this distance (texels) of a face's edge counts as inside for
``chart_map``/``coverage_mask`` and as outside for the overlap count of ``check_atlas``
(so neighbouring faces of a chart, which share the edge, never count as a fold)."""
SEAM_UV_TOLERANCE = 1e-5
"""Two faces of one chart sharing an edge must give its ends UVs this close (in UV
units), else ``check_atlas`` reports a cut inside the chart."""
FIT_SHRINK = 0.95
FIT_ATTEMPTS = 12
"""If the charts overflow one ``S x S`` atlas, the density is multiplied by
``FIT_SHRINK`` and they are packed again, at most ``FIT_ATTEMPTS`` times."""
GROW_FACTOR = 1.04
GROW_ATTEMPTS = 4
"""Once they fit, the density is multiplied by ``GROW_FACTOR`` while they still fit on
one atlas, at most ``GROW_ATTEMPTS`` times (packing is the cheap step)."""
_PAIRS_PER_CHUNK = 1 << 21
"""Rasteriser working-set size: (face, texel) candidate pairs handled at once."""


@dataclass(frozen=True)
class UVAtlas:
    """A packed UV atlas of a mesh with ``F`` faces on an ``S x S`` texture.

    Attributes:
        uvs: ``(F, 3, 2)`` float32, ``uvs[f, k] = (u, v)`` of corner ``k`` of input face
            ``f`` (faces and corners in the input's order), in ``[0, 1]``, Blender's
            convention (see the module docstring: ``v`` up, ``(0, 0)`` bottom-left).
            Every UV triangle is counter-clockwise (positive area). A vertex gets one
            UV per chart it belongs to, so the same vertex may have different UVs in
            faces of different charts (the seams). For an indexed layout, as
            ``backend.render.passes.render_passes`` takes it: ``uv = uvs.reshape(-1, 2)``,
            ``uv_faces = arange(3 * F).reshape(F, 3)``.
        chart_of_face: ``(F,)`` int32, the chart of each face, in ``[0, chart_count)``.
            Charts are connected pieces of the surface cut along the seams.
        chart_count: the number of charts.
        texture_size: ``S``, texels a side (a power of two).
        padding_px: the empty margin asked for around each chart, in texels; xatlas adds
            its bilinear margin on top, so texels of two charts lie at least
            ``2 * padding_px + 1`` texels apart (centre to centre; 2p + 3 measured).
        utilisation: fraction of the texture's area inside UV triangles, in ``[0, 1]``.
        texels_per_metre: the packing density: a 1 m edge spans about this many
            texels (charts are flattened with some stretch, so this is an average).
    """

    uvs: np.ndarray
    chart_of_face: np.ndarray
    chart_count: int
    texture_size: int
    padding_px: int
    utilisation: float
    texels_per_metre: float


# ----------------------------------------------------------------------------- input


def _checked_options(texture_size, padding_px) -> tuple[int, int]:
    for name, value in (("texture_size", texture_size), ("padding_px", padding_px)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise MeshError(f"{name} must be an int; got {type(value).__name__}")
    size, pad = int(texture_size), int(padding_px)
    if not (MIN_TEXTURE_SIZE <= size <= MAX_TEXTURE_SIZE and size & (size - 1) == 0):
        raise MeshError(f"texture_size must be a power of two in [{MIN_TEXTURE_SIZE}, "
                        f"{MAX_TEXTURE_SIZE}] texels; got {size}")
    if not 0 <= pad <= MAX_PADDING_PX:
        raise MeshError(f"padding_px must be in [0, {MAX_PADDING_PX}] texels; got {pad}")
    return size, pad


def _signed_areas(tri: np.ndarray) -> np.ndarray:
    """``(N,)`` signed areas of 2D triangles ``(N, 3, 2)`` (positive: counter-clockwise
    in a frame with its second axis up)."""
    tri = np.asarray(tri, np.float64)
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    return 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])


# ---------------------------------------------------------------------------- unwrap


def _import_xatlas():
    try:
        import xatlas
    except ImportError as exc:
        raise MeshError(f"the xatlas package is needed for UV unwrapping ({exc})",
                        hint="install the backend packages: pip install xatlas==0.0.11"
                        ) from None
    return xatlas


def _pack_options(xatlas, size: int, pad: int, texels_per_unit: float, rotate: bool):
    options = xatlas.PackOptions()
    options.resolution = size
    options.padding = pad
    options.bilinear = True
    options.texels_per_unit = float(texels_per_unit)
    options.rotate_charts = rotate
    options.rotate_charts_to_axis = rotate
    return options


def unwrap(vertices, faces, texture_size: int = 1024, padding_px: int = 4) -> UVAtlas:
    """Cut the mesh into charts, flatten them and pack them into one square texture
    (see the module docstring for the two xatlas runs).

    Args:
        vertices: ``(V, 3)`` float array, metres.
        faces: ``(F, 3)`` int array, counter-clockwise from outside; open, closed,
            several components are all fine.
        texture_size: ``S``, texels a side: a power of two in ``[64, 8192]`` (1024 by
            default, 2048 for high quality).
        padding_px: texels of empty margin around every chart, in ``[0, 64]``, on top of
            xatlas' one-texel bilinear margin (two charts end up about
            ``2 * padding_px + 3`` texels apart).

    Returns:
        A ``UVAtlas`` whose ``uvs[f, k]`` is the UV of corner ``k`` of input face ``f``.

    Raises:
        MeshError: bad shapes or dtypes, an index out of range, a face repeating a
            vertex or of zero area (named), a bad ``texture_size`` or ``padding_px``,
            xatlas missing, or xatlas leaving a face without a chart or positive UV area.
    """
    v, f = checked_mesh(vertices, faces)
    size, pad = _checked_options(texture_size, padding_px)
    corners = v[f]
    area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0],
                                         corners[:, 2] - corners[:, 0]), axis=1)
    diagonal = float(np.linalg.norm(v.max(axis=0) - v.min(axis=0)))
    bad = np.flatnonzero(area <= DEGENERATE_AREA_REL * diagonal**2)
    if len(bad):
        raise MeshError(f"faces: face {listed_indices(bad)} has zero area (collinear "
                        f"corners; first: {f[bad[0]].tolist()}); remove degenerate faces "
                        f"before unwrapping")
    xatlas = _import_xatlas()
    start = time.perf_counter()

    # Centred, unit bounding-box diagonal: xatlas' area thresholds are absolute and
    # would drop every face of a millimetre-sized mesh.
    unit = ((v - 0.5 * (v.min(axis=0) + v.max(axis=0))) / diagonal).astype(np.float32)

    # Run 1: charts, flattened, packed at xatlas' estimated density.
    first = xatlas.Atlas()
    first.add_mesh(unit, f.astype(np.uint32))
    first.generate(xatlas.ChartOptions(), _pack_options(xatlas, size, pad, 0.0, True))
    vmap1, index1, uv1 = first.get_mesh(0)
    _, chart1 = first.get_mesh_vertex_assignment(0)
    if index1.shape != f.shape:
        raise MeshError(f"xatlas returned {index1.shape[0]} faces for {len(f)}")
    no_chart = np.flatnonzero((chart1[index1] == np.iinfo(np.uint32).max).any(axis=1))
    if len(no_chart):
        raise MeshError(f"faces: xatlas put face {listed_indices(no_chart)} in no chart "
                        f"(nearly degenerate?)")
    charts_at_charting = int(first.chart_count)
    tpu1 = float(first.texels_per_unit)
    # Back to the flattened charts' own units (texels / density, the scaled mesh's
    # units), image rows as the second axis.
    flat = uv1.astype(np.float64) * [first.width, first.height] / tpu1
    # Final v = 1 - row / S flips orientation: a chart is counter-clockwise in (u, v)
    # when clockwise in (column, row). Reflect the others.
    chart1 = chart1.astype(np.int64)
    sums = np.bincount(chart1[index1[:, 0]], weights=_signed_areas(flat[index1]),
                       minlength=charts_at_charting)
    flat[sums[chart1] > 0, 0] *= -1.0
    elapsed1 = time.perf_counter() - start

    # Run 2: pack those charts, no rotation, at a density that fills exactly S x S:
    # shrink until they fit on one atlas, then grow while they still do.
    positions, index1_u32 = unit[vmap1], index1.astype(np.uint32)
    flat32 = flat.astype(np.float32)

    def pack(texels_per_unit: float):
        atlas = xatlas.Atlas()
        atlas.add_mesh(positions, index1_u32, uvs=flat32)
        chart_options = xatlas.ChartOptions()
        chart_options.use_input_mesh_uvs = True
        atlas.generate(chart_options, _pack_options(xatlas, size, pad, texels_per_unit, False))
        return atlas if atlas.atlas_count == 1 else None

    tpu = tpu1 * size / max(first.width, first.height, 1)
    for _ in range(FIT_ATTEMPTS):
        second = pack(tpu)
        if second is not None:
            break
        tpu *= FIT_SHRINK
    else:
        raise MeshError(f"xatlas could not pack the {charts_at_charting} charts into one "
                        f"{size}x{size} texture with {pad} texels of padding")
    for _ in range(GROW_ATTEMPTS):
        bigger = pack(tpu * GROW_FACTOR)
        if bigger is None:
            break
        second, tpu = bigger, tpu * GROW_FACTOR
    vmap2, index2, uv2 = second.get_mesh(0)
    _, chart2 = second.get_mesh_vertex_assignment(0)
    if index2.shape != f.shape or not (vmap1[vmap2[index2]] == f).all():
        raise MeshError("xatlas changed the face or corner order while packing")
    assert second.width <= size and second.height <= size, (second.width, second.height)
    texel = uv2.astype(np.float64) * [second.width, second.height]
    uv = np.column_stack([texel[:, 0] / size, 1.0 - texel[:, 1] / size])
    uvs = np.clip(uv[index2], 0.0, 1.0).astype(np.float32)
    chart_of_face = chart2[index2[:, 0]].astype(np.int64)
    if not (chart2[index2] == chart_of_face[:, None]).all():
        raise MeshError("xatlas put the corners of one face in different charts")

    uv_area = _signed_areas(uvs)
    bad = np.flatnonzero(uv_area <= 0)
    if len(bad):
        raise MeshError(f"faces: xatlas gave face {listed_indices(bad)} zero or flipped UV "
                        f"area (nearly degenerate or folded input?)")
    atlas = UVAtlas(uvs=uvs, chart_of_face=chart_of_face.astype(np.int32),
                    chart_count=int(second.chart_count), texture_size=size,
                    padding_px=pad, utilisation=float(uv_area.sum()),
                    texels_per_metre=float(tpu / diagonal))
    log.debug("unwrap: %d faces -> %d charts on %d^2 (%.0f texels/m, %.1f %% used) in "
              "%.0f ms (charting %.0f ms)", len(f), atlas.chart_count, size,
              atlas.texels_per_metre, 100 * atlas.utilisation,
              1e3 * (time.perf_counter() - start), 1e3 * elapsed1)
    return atlas


# ------------------------------------------------------------------------ rasteriser


def _texel_hits(uvs: np.ndarray, size: int, margin: float):
    """Texel centres inside each UV triangle.

    ``uvs`` ``(N, 3, 2)`` in the atlas' UV convention; a centre is inside when its
    signed distance to every edge, in texels, is at least ``margin`` (negative:
    inclusive). Zero-area triangles hit nothing. Yields ``(face, row, col)`` int64
    arrays chunk by chunk."""
    pts = np.asarray(uvs, np.float64) * size
    pts[..., 1] = size - pts[..., 1]  # (column, row) texel coordinates
    edge = np.roll(pts, -1, axis=1) - pts              # (N, 3, 2): corner k -> k + 1
    length = np.linalg.norm(edge, axis=-1)
    orientation = np.sign(edge[:, 0, 0] * edge[:, 1, 1] - edge[:, 0, 1] * edge[:, 1, 0])
    ok = (orientation != 0) & (length > 0).all(axis=1)
    # Signed distance of a point to edge k, positive on the triangle's inner side.
    scale = np.where(ok[:, None], orientation[:, None] / np.where(length > 0, length, 1), 0)
    slack = max(0.0, -margin)
    lo = np.maximum(np.ceil(pts.min(axis=1) - 0.5 - slack), 0).astype(np.int64)
    hi = np.minimum(np.floor(pts.max(axis=1) - 0.5 + slack), size - 1).astype(np.int64)
    width, height = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    counts = np.where(ok & (width > 0) & (height > 0), width * height, 0)
    total = np.cumsum(counts)
    begin = 0
    while begin < len(counts):
        base = total[begin - 1] if begin else 0
        end = max(begin + 1, int(np.searchsorted(total, base + _PAIRS_PER_CHUNK, "right")))
        faces = np.repeat(np.arange(begin, end), counts[begin:end])
        if len(faces):
            offset = np.arange(len(faces)) - (np.repeat(total[begin:end] - counts[begin:end],
                                                         counts[begin:end]) - base)
            col = lo[faces, 0] + offset % width[faces]
            row = lo[faces, 1] + offset // width[faces]
            p = np.stack([col + 0.5, row + 0.5], axis=-1)[:, None, :]  # (P, 1, 2)
            rel = p - pts[faces]
            e = edge[faces]
            dist = (e[..., 0] * rel[..., 1] - e[..., 1] * rel[..., 0]) * scale[faces]
            inside = (dist >= margin).all(axis=1)
            yield faces[inside], row[inside], col[inside]
        begin = end


def _checked_atlas(atlas) -> UVAtlas:
    if not isinstance(atlas, UVAtlas):
        raise MeshError(f"atlas must be a UVAtlas; got {type(atlas).__name__}")
    uvs = np.asarray(atlas.uvs)
    if uvs.ndim != 3 or uvs.shape[1:] != (3, 2):
        raise MeshError(f"atlas.uvs must have shape (F, 3, 2); got {uvs.shape}")
    if np.asarray(atlas.chart_of_face).shape != (len(uvs),):
        raise MeshError(f"atlas.chart_of_face must have shape (F,) = ({len(uvs)},); got "
                        f"{np.asarray(atlas.chart_of_face).shape}")
    _checked_options(atlas.texture_size, atlas.padding_px)
    return atlas


def chart_map(atlas: UVAtlas) -> np.ndarray:
    """``(S, S)`` int32 image (row 0 at the top, ``v = 1``): the chart whose face covers
    each texel centre (edges inclusive, ``EDGE_TOLERANCE_TEXELS``), -1 where none does.
    Where charts overlap, the one of the later face wins (``check_atlas`` finds those)."""
    atlas = _checked_atlas(atlas)
    size = atlas.texture_size
    out = np.full((size, size), -1, np.int32)
    charts = np.asarray(atlas.chart_of_face, np.int32)
    for face, row, col in _texel_hits(atlas.uvs, size, -EDGE_TOLERANCE_TEXELS):
        out[row, col] = charts[face]
    return out


def coverage_mask(atlas: UVAtlas) -> np.ndarray:
    """``(S, S)`` bool image (row 0 at the top, ``v = 1``): texels whose centre lies in a
    face (edges inclusive). Bilinear sampling near a chart border also reads texels just
    outside this mask: fill them with ``dilate``."""
    return chart_map(atlas) >= 0


# ------------------------------------------------------------------------ validation


def _overlap_problems(atlas: UVAtlas) -> list[str]:
    """Texels strictly inside faces of two charts, or inside two faces of one chart."""
    size = atlas.texture_size
    charts = np.asarray(atlas.chart_of_face, np.int64)
    hits = [(charts[face], row * size + col, face)
            for face, row, col in _texel_hits(atlas.uvs, size, EDGE_TOLERANCE_TEXELS)]
    if not hits:
        return []
    chart, texel, face = (np.concatenate(parts) for parts in zip(*hits, strict=True))
    multi = np.bincount(texel, minlength=size * size)[texel] > 1
    if not multi.any():
        return []
    chart, texel, face = chart[multi], texel[multi], face[multi]
    order = np.lexsort((face, chart, texel))
    chart, texel, face = chart[order], texel[order], face[order]
    starts = np.flatnonzero(np.r_[True, texel[1:] != texel[:-1]])
    low = chart[starts]
    high = np.maximum.reduceat(chart, starts)
    problems = []
    between = low != high
    if between.any():
        pairs, first, count = np.unique(np.column_stack([low, high])[between], axis=0,
                                        return_index=True, return_counts=True)
        shown = [f"{a} and {b} ({n} texels, first at row {texel[starts][between][i] // size}, "
                 f"column {texel[starts][between][i] % size})"
                 for (a, b), i, n in zip(pairs[:5], first[:5], count[:5], strict=True)]
        more = f" and {len(pairs) - 5} more pairs" if len(pairs) > 5 else ""
        problems.append(f"charts overlap: {'; '.join(shown)}{more}")
    folded = ~between
    if folded.any():
        where = starts[folded]
        fold_charts, count = np.unique(low[folded], return_counts=True)
        pairs = np.column_stack([face[where], face[where + 1]])
        problems.append(f"chart {listed_indices(fold_charts)} folds over itself on "
                        f"{int(count.sum())} texels (first faces {pairs[0].tolist()})")
    return problems


def _seam_problems(atlas: UVAtlas, faces: np.ndarray) -> list[str]:
    """Edges shared by two faces of one chart whose ends get different UVs there."""
    n = int(faces.max()) + 1
    ends = np.roll(faces, -1, axis=1)
    key = (np.minimum(faces, ends) * n + np.maximum(faces, ends)).ravel()
    order = np.argsort(key, kind="stable")
    k = key[order]
    same = np.flatnonzero(k[1:] == k[:-1])
    a, b = order[same], order[same + 1]            # half-edge ids = 3 * face + corner
    fa, ca, fb, cb = a // 3, a % 3, b // 3, b % 3
    charts = np.asarray(atlas.chart_of_face)
    keep = charts[fa] == charts[fb]
    fa, ca, fb, cb = fa[keep], ca[keep], fb[keep], cb[keep]
    uvs = np.asarray(atlas.uvs, np.float64)

    def uv_of(face, corner, vertex):
        # The corner of ``face`` holding ``vertex`` (either end of the edge).
        slot = np.where(faces[face, corner] == vertex, corner, (corner + 1) % 3)
        return uvs[face, slot]

    bad = np.zeros(len(fa), bool)
    for vertex in (faces[fa, ca], faces[fa, (ca + 1) % 3]):
        gap = np.abs(uv_of(fa, ca, vertex) - uv_of(fb, cb, vertex)).max(axis=1)
        bad |= gap > SEAM_UV_TOLERANCE
    if not bad.any():
        return []
    pairs = ", ".join(f"({a}, {b})" for a, b in zip(fa[bad][:5], fb[bad][:5], strict=True))
    return [f"{int(bad.sum())} edges shared by two faces of one chart have different UVs in "
            f"each (first face pairs: {pairs}): a cut inside a chart, with no padding"]


def check_atlas(atlas: UVAtlas, faces) -> list[str]:
    """Problems with ``atlas`` as a texture layout for ``faces``; empty when none.

    Reported: a wrong face count; non-finite UVs or UVs outside ``[0, 1]``; chart ids
    out of range; a face of zero UV area (at most ``ZERO_UV_AREA_TEXELS`` texels
    squared) or with the opposite orientation to its chart's total; two faces of one
    chart that share an edge but give its ends different UVs; a texel centre strictly
    inside faces of two different charts (overlapping charts), or inside two faces of
    one chart (a fold). The last two rasterise every face at texel centres: about a
    second for 20k faces at 1024^2.

    Args:
        atlas: a ``UVAtlas``.
        faces: the ``(F, 3)`` int faces it was made for.

    Returns:
        One readable line per kind of problem, naming the first faces, charts or texels.

    Raises:
        MeshError: ``atlas`` is not a ``UVAtlas`` of consistent shapes, ``faces`` is not
            an ``(F, 3)`` int array.
    """
    atlas = _checked_atlas(atlas)
    f = np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise MeshError(f"faces must be an (F, 3) int array; got shape {f.shape}, dtype "
                        f"{f.dtype}")
    f = f.astype(np.int64)
    uvs = np.asarray(atlas.uvs, np.float64)
    if len(f) != len(uvs):
        return [f"atlas has {len(uvs)} faces, the mesh {len(f)}"]
    problems = []
    finite = np.isfinite(uvs).all(axis=(1, 2))
    if not finite.all():
        problems.append(f"face {listed_indices(np.flatnonzero(~finite))} has non-finite UVs")
        uvs = np.where(finite[:, None, None], uvs, 0.0)
    outside = np.flatnonzero(((uvs < 0) | (uvs > 1)).any(axis=(1, 2)) & finite)
    if len(outside):
        problems.append(f"face {listed_indices(outside)} has UVs outside [0, 1] (first: "
                        f"{uvs[outside[0]].tolist()})")
    charts = np.asarray(atlas.chart_of_face).astype(np.int64)
    wrong = np.flatnonzero((charts < 0) | (charts >= atlas.chart_count))
    if len(wrong):
        problems.append(f"face {listed_indices(wrong)} has a chart id outside "
                        f"[0, {atlas.chart_count})")
        charts = np.clip(charts, 0, max(atlas.chart_count - 1, 0))
    area = _signed_areas(uvs) * atlas.texture_size**2
    zero = np.abs(area) <= ZERO_UV_AREA_TEXELS
    if zero.any():
        problems.append(f"face {listed_indices(np.flatnonzero(zero))} has zero UV area")
    chart_sign = np.sign(np.bincount(charts, weights=area, minlength=atlas.chart_count))
    flipped = np.flatnonzero(~zero & (np.sign(area) != chart_sign[charts]))
    if len(flipped):
        problems.append(f"face {listed_indices(flipped)} is flipped (UV orientation "
                        f"opposite to the rest of its chart)")
    problems += _seam_problems(atlas, f)
    inside = np.clip(uvs, 0.0, 1.0)
    problems += _overlap_problems(UVAtlas(
        uvs=inside, chart_of_face=charts, chart_count=atlas.chart_count,
        texture_size=atlas.texture_size, padding_px=atlas.padding_px,
        utilisation=atlas.utilisation, texels_per_metre=atlas.texels_per_metre))
    return problems


# ---------------------------------------------------------------------------- dilate


def dilate(texture, coverage, pixels: int) -> np.ndarray:
    """Grow the colours of the covered texels ``pixels`` texels outwards.

    Each of ``pixels`` rounds gives every uncovered texel next to a covered one (its 8
    neighbours) the mean of those covered neighbours, then counts it as covered. After
    it, every texel within Chebyshev distance ``pixels`` of the original coverage holds
    a colour from its nearest chart(s); covered texels and texels farther away keep
    their values. ``pixels = atlas.padding_px`` fills each chart's own margin (up to
    halfway to its neighbour, so charts never mix); bilinear sampling needs ``>= 1``,
    mip level ``k`` reads about ``2**k`` texels past a border.

    Args:
        texture: ``(H, W, C)`` float array (any channels, e.g. linear RGB in ``[0, 1]``).
        coverage: ``(H, W)`` bool, the texels that hold real colours (``coverage_mask``).
        pixels: rounds of growth, an int ``>= 0``.

    Returns:
        A new ``(H, W, C)`` array of ``texture``'s dtype.

    Raises:
        MeshError: wrong shapes or dtypes, or a negative ``pixels``.
    """
    tex, cov = np.asarray(texture), np.asarray(coverage)
    if tex.ndim != 3 or not np.issubdtype(tex.dtype, np.floating):
        raise MeshError(f"texture must be an (H, W, C) float array; got shape {tex.shape}, "
                        f"dtype {tex.dtype}")
    if cov.shape != tex.shape[:2] or cov.dtype != np.bool_:
        raise MeshError(f"coverage must be an (H, W) = {tex.shape[:2]} bool array; got "
                        f"shape {cov.shape}, dtype {cov.dtype}")
    if isinstance(pixels, bool) or not isinstance(pixels, (int, np.integer)) or pixels < 0:
        raise MeshError(f"pixels must be an int >= 0; got {pixels!r}")
    out = tex.copy()
    filled = cov.copy()
    h, w = cov.shape
    for _ in range(int(pixels)):
        if filled.all() or not filled.any():
            break
        weight = np.pad(filled, 1).astype(out.dtype)
        # np.where, not a product: an uncovered NaN or inf must not leak in.
        value = np.pad(np.where(filled[..., None], out, 0), ((1, 1), (1, 1), (0, 0)))
        total = np.zeros_like(out)
        count = np.zeros((h, w), out.dtype)
        for dy in range(3):
            for dx in range(3):
                if dy == 1 and dx == 1:
                    continue
                total += value[dy:dy + h, dx:dx + w]
                count += weight[dy:dy + h, dx:dx + w]
        grow = ~filled & (count > 0)
        out[grow] = total[grow] / count[grow, None]
        filled |= grow
    return out
