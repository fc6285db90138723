"""The render passes the reconstruction compares with a capture: antialiased mask,
camera-space normals, headlight "diffuse" shading, depth, and albedo x lighting.

All passes are in the camera frame of ``backend.render.camera`` (OpenCV: x right,
y down, z forward), images stored top row first like the capture's PNGs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .camera import Camera
from .errors import RenderError
from .mesh_utils import vertex_normals

MAX_PACKED_FACES = 2**24
"""views x faces per ``render_passes`` call: packed triangle ids are float32."""
_SH_C0 = 0.28209479177387814
_SH_C1 = 0.4886025119029199
_SH_C2 = 1.0925484305920792
_SH_C20 = 0.31539156525252005
_SH_C22 = 0.5462742152960396


@dataclass(frozen=True)
class Lighting:
    """Simple lighting for the photometric term, in the camera frame (OpenCV axes).

    ``shade(n) = ambient + color * max(0, n . direction) + sum_k sh[k] * Y_k(n)``, per
    RGB channel, with ``Y_k`` the 9 real spherical harmonics of order <= 2
    (``Y_00, Y_1-1 ~ y, Y_10 ~ z, Y_11 ~ x, Y_2-2 ~ xy, Y_2-1 ~ yz, Y_20 ~ 3z^2-1,
    Y_21 ~ xz, Y_22 ~ x^2-y^2``, standard normalisation).

    Fields (float tensors, optionally batched per camera): ``ambient`` ``(3,)`` or
    ``(B, 3)`` RGB; ``direction`` ``(3,)``/``(B, 3)`` unit vector from the surface towards
    a directional light, or None; ``color`` its RGB intensity ``(3,)``/``(B, 3)`` (required
    with ``direction``); ``sh`` ``(9, 3)``/``(B, 9, 3)`` SH coefficients or None.
    """

    ambient: torch.Tensor
    direction: torch.Tensor | None = None
    color: torch.Tensor | None = None
    sh: torch.Tensor | None = None

    def shade(self, normals: torch.Tensor, batch_index: torch.Tensor | None = None,
              batch: int | None = None) -> torch.Tensor:
        """Irradiance for unit normals (camera frame), same shape as ``normals``.

        ``normals`` ``(B, H, W, 3)``: batched parameters apply per image ``b``. Or any
        ``(..., 3)`` with ``batch_index`` (int64, ``normals.shape[:-1]``) naming each
        normal's image among ``batch`` images.
        """
        lead = normals.shape[:-1]
        flat = normals.reshape(-1, 3)
        if batch_index is None:
            batch = normals.shape[0]
            per_image = flat.shape[0] // max(batch, 1)
            index = torch.arange(batch, device=normals.device).repeat_interleave(per_image)
        else:
            index = batch_index.reshape(-1)
            batch = 1 if batch is None else batch

        def param(x: torch.Tensor, tail: tuple[int, ...], name: str) -> torch.Tensor:
            if x.dim() == len(tail):
                x = x.unsqueeze(0)
            if tuple(x.shape[1:]) != tail or x.shape[0] not in (1, batch):
                raise RenderError(
                    f"Lighting.{name} must have shape {tail} or (B,{','.join(map(str, tail))})"
                    f" with B = {batch}; got {tuple(x.shape)}"
                )
            x = x.to(normals)
            return x[0].unsqueeze(0) if x.shape[0] == 1 else x.index_select(0, index)

        out = param(self.ambient, (3,), "ambient").expand_as(flat)
        if self.direction is not None:
            if self.color is None:
                raise RenderError("Lighting.color is required with Lighting.direction")
            d = param(self.direction, (3,), "direction")
            c = param(self.color, (3,), "color")
            out = out + c * (flat * d).sum(-1, keepdim=True).clamp_min(0.0)
        if self.sh is not None:
            sh = param(self.sh, (9, 3), "sh")
            x, y, z = flat.unbind(-1)
            basis = torch.stack([
                torch.full_like(x, _SH_C0), _SH_C1 * y, _SH_C1 * z, _SH_C1 * x,
                _SH_C2 * x * y, _SH_C2 * y * z, _SH_C20 * (3.0 * z * z - 1.0),
                _SH_C2 * x * z, _SH_C22 * (x * x - y * y),
            ], dim=-1)
            out = out + (basis.unsqueeze(-1) * sh).sum(-2)
        return out.reshape(*lead, 3)


@dataclass(frozen=True)
class RenderPasses:
    """One batch of renders; every image is ``(B, H, W, C)``, the mesh's float dtype and
    device, zero on background, antialiased across silhouettes when requested.

    - ``mask`` ``(B,H,W,1)``: coverage in [0, 1].
    - ``normals`` ``(B,H,W,3)``: smooth (vertex-interpolated) unit normals in the camera
      frame (OpenCV axes; a surface facing the camera has ``z < 0``), oriented by the
      face winding (counter-clockwise seen from outside = outward).
    - ``diffuse`` ``(B,H,W,1)``: NGD's headlight shading ``clamp(n . view_dir, 0, 1)``
      with ``view_dir`` the unit vector from the surface point to the camera centre.
    - ``depth`` ``(B,H,W,1)``: camera-frame ``z`` in metres.
    - ``color`` ``(B,H,W,3)`` or None: albedo texture x ``Lighting.shade(normals)``.
    - ``attributes`` ``(B,H,W,C)`` or None: the per-vertex ``attributes`` interpolated.
    - ``rast`` ``(B,H,W,4)``: the raster (``(u, v, z/w, triangle_id + 1)``), e.g. to
      gather per-face image gradients for remeshing.
    """

    mask: torch.Tensor
    normals: torch.Tensor
    diffuse: torch.Tensor
    depth: torch.Tensor
    color: torch.Tensor | None
    rast: torch.Tensor
    attributes: torch.Tensor | None = None


def _sample_albedo(rasterizer, albedo, uv_pix, uv_da, covered, batch, h, w):
    """Albedo at the packed pixels ``(N, 3)``; a per-view albedo ``(B, Ht, Wt, 3)``
    is sampled on the full images (texture's batch must match the image's)."""
    n_pix = covered.numel()
    if albedo.shape[0] == 1:
        return rasterizer.texture(albedo, uv_pix, uv_da,
                                  filter_mode="linear-mipmap-linear").view(n_pix, 3)
    if albedo.shape[0] != batch:
        raise RenderError(
            f"albedo must have shape (1,Ht,Wt,3) or (B,Ht,Wt,3) with B = {batch}; got "
            f"{tuple(albedo.shape)}"
        )
    full_uv = uv_pix.new_zeros(batch * h * w, 2).index_put((covered,), uv_pix.view(-1, 2))
    full_da = uv_da.new_zeros(batch * h * w, 4).index_put((covered,), uv_da.view(-1, 4))
    tex = rasterizer.texture(albedo, full_uv.view(batch, h, w, 2), full_da.view(batch, h, w, 4),
                             filter_mode="linear-mipmap-linear")
    return tex.reshape(-1, 3).index_select(0, covered)


def render_passes(
    rasterizer,
    verts: torch.Tensor,
    faces: torch.Tensor,
    camera: Camera,
    *,
    uv: torch.Tensor | None = None,
    uv_faces: torch.Tensor | None = None,
    albedo: torch.Tensor | None = None,
    lighting: Lighting | None = None,
    topology=None,
    near_far: tuple[torch.Tensor | float, torch.Tensor | float] | None = None,
    antialias: bool = True,
    attributes: torch.Tensor | None = None,
) -> RenderPasses:
    """Render the pass set of a mesh seen by a batch of cameras.

    Args:
        rasterizer: from ``get_rasterizer`` (torch or nvdiffrast; the result is the same
            up to edge ties).
        verts: ``(V, 3)`` or ``(B, V, 3)`` float world positions (metres, Z up).
        faces: ``(F, 3)`` int32 on ``verts``' device.
        camera: a ``Camera`` with batch B (or 1).
        uv, uv_faces, albedo: for the ``color`` pass: ``uv`` ``(T, 2)`` texture
            coordinates (see ``backend.render.texture``), ``uv_faces`` ``(F, 3)`` int32
            indices into ``uv`` (per-corner UVs with seams; defaults to ``faces``),
            ``albedo`` ``(1, Ht, Wt, 3)`` or ``(B, Ht, Wt, 3)`` linear RGB, sampled with
            trilinear mipmapping.
        lighting: for ``color``; default: ambient 1 (albedo only).
        topology: the rasterizer's ``topology(faces)`` (made once per topology); looked
            up from the rasterizer's cache when None.
        near_far: metres, floats or ``(B,)`` tensors; default ``scene_near_far``.
        antialias: antialias all passes together (needed for silhouette gradients).
        attributes: optional ``(V, C)`` or ``(B, V, C)`` per-vertex values (e.g. vertex
            colours, or a flag telling two meshes apart), interpolated into the
            ``attributes`` pass.

    Returns:
        a frozen ``RenderPasses``.
    """
    if not isinstance(camera, Camera):
        raise RenderError(f"camera must be a backend.render.Camera; got {type(camera).__name__}")
    if not isinstance(verts, torch.Tensor) or verts.dim() not in (2, 3) or verts.shape[-1] != 3:
        got = tuple(verts.shape) if isinstance(verts, torch.Tensor) else type(verts).__name__
        raise RenderError(f"verts must have shape (V,3) or (B,V,3); got {got}")
    textured = albedo is not None
    if textured and uv is None:
        raise RenderError("albedo needs uv (and uv_faces when the UVs have seams)")
    if textured and (not isinstance(albedo, torch.Tensor) or albedo.dim() != 4
                     or albedo.shape[-1] != 3):
        got = tuple(albedo.shape) if isinstance(albedo, torch.Tensor) else type(albedo).__name__
        raise RenderError(f"albedo must have shape (1,Ht,Wt,3) or (B,Ht,Wt,3); got {got}")
    cam = camera.to_camera(verts)  # (B, V, 3)
    near, far = near_far if near_far is not None else (None, None)
    clip = camera.clip(cam, near, far)
    batch, n_verts, n_faces = cam.shape[0], cam.shape[1], faces.shape[0]
    if batch * n_faces >= MAX_PACKED_FACES:
        raise RenderError(
            f"at most {MAX_PACKED_FACES - 1} faces x views per render_passes call; got "
            f"{batch} x {n_faces}", hint="render fewer views per call")
    res = camera.resolution
    rast, rast_db = rasterizer.rasterize(clip, faces, res, grad_db=textured)
    h, w = res

    # Shade covered pixels only: pack them into a (1, 1, N) "image" whose triangle ids
    # index the batch-stacked faces b * F + f (so per-view attributes stay per view),
    # run interpolate/texture on it, then scatter the shaded values back.
    covered = torch.nonzero(rast[..., 3].detach().reshape(-1) > 0).squeeze(1)
    n_pix = covered.numel()
    pix_batch = torch.div(covered, h * w, rounding_mode="floor")
    packed = rast.reshape(-1, 4).index_select(0, covered)
    ids = packed[:, 3:4] + (pix_batch * n_faces).to(packed.dtype).unsqueeze(1)
    packed = torch.cat([packed[:, :3], ids], dim=1).view(1, 1, n_pix, 4)
    offsets = (torch.arange(batch, device=faces.device) * n_verts).view(batch, 1, 1)
    faces_b = (faces.long().unsqueeze(0) + offsets).reshape(-1, 3).to(torch.int32)

    normals_v = vertex_normals(cam, faces)
    extra = 0
    per_vertex = [normals_v, cam]
    if attributes is not None:
        if attributes.dim() not in (2, 3) or attributes.shape[-2] != n_verts:
            raise RenderError(f"attributes must have shape (V,C) or (B,V,C) with V = {n_verts};"
                              f" got {tuple(attributes.shape)}")
        extra = attributes.shape[-1]
        per_vertex.append(attributes.to(cam.dtype).expand(batch, n_verts, extra))
    attrs = torch.cat(per_vertex, dim=-1).reshape(batch * n_verts, 6 + extra)
    vals, _ = rasterizer.interpolate(attrs.contiguous(), packed, faces_b)
    vals = vals.view(n_pix, 6 + extra)
    n = vals[:, 0:3]
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    p = vals[:, 3:6]
    view = -p / p.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    diffuse = (n * view).sum(-1, keepdim=True).clamp(0.0, 1.0)
    columns = [torch.ones_like(diffuse), n, diffuse, p[:, 2:3]]
    if textured:
        uv_tri = faces if uv_faces is None else uv_faces
        uv_tri_b = uv_tri.repeat(batch, 1)
        packed_db = rast_db.reshape(-1, 4).index_select(0, covered).view(1, 1, n_pix, 4)
        uv_pix, uv_da = rasterizer.interpolate(uv.to(cam.dtype).contiguous(), packed,
                                               uv_tri_b, rast_db=packed_db, diff_attrs="all")
        tex = _sample_albedo(rasterizer, albedo.to(cam.dtype).contiguous(), uv_pix, uv_da,
                             covered, batch, h, w)
        light = lighting if lighting is not None else Lighting(
            ambient=torch.ones(3, dtype=cam.dtype, device=cam.device))
        shade = light.shade(n, pix_batch, batch)
        columns.append(tex * shade)
    if extra:
        columns.append(vals[:, 6:])
    values = torch.cat(columns, dim=1)
    stacked = values.new_zeros(batch * h * w, values.shape[1])
    stacked = stacked.index_put((covered,), values).view(batch, h, w, -1)
    if antialias:
        if topology is None:
            topology = rasterizer.topology(faces)
        stacked = rasterizer.antialias(stacked, rast, clip, faces, topology=topology)
    return RenderPasses(
        mask=stacked[..., 0:1],
        normals=stacked[..., 1:4],
        diffuse=stacked[..., 4:5],
        depth=stacked[..., 5:6],
        color=stacked[..., 6:9] if textured else None,
        rast=rast,
        attributes=stacked[..., stacked.shape[-1] - extra:] if extra else None,
    )
