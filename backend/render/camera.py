"""OpenCV cameras -> OpenGL-style clip space for the rasterizers.

Frames and conventions:

- World: Blender's, Z up, metres.
- Camera (OpenCV): ``x_cam = R @ x_world + t``; x right, y down, z forward (the
  viewing direction), metres. A point is in front of the camera when ``z_cam > 0``.
- Image (OpenCV): pixel ``(u, v)`` = ``K @ x_cam / z_cam``; ``u`` = column, ``v`` = row,
  row 0 at the top of the image (as in the capture's PNGs), integer coordinates at
  pixel centres.
- Clip space (OpenGL-style, what ``rasterize`` takes): ``w = z_cam``; NDC
  ``x = (2u + 1) / W - 1`` and ``y = (2v + 1) / H - 1``, so pixel ``(u, v)`` of the
  image lands exactly on raster column ``u`` and row ``v`` (``rasterize`` puts row 0 at
  NDC ``y = -1``): renders are stored top row first, like the capture's images, with no
  flip. NDC ``z`` maps ``z_cam = near`` to -1 and ``far`` to +1.
- Near/far: chosen from the scene by ``scene_near_far``: ``near`` = half the nearest
  point's depth (at least 1e-3 of the farthest), ``far`` = twice the farthest. The
  generous margins keep every point of the scene unclipped while the depth range stays
  narrow enough for float32 depth testing (about 1e-7 of the range).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import RenderError


def _batched(x: torch.Tensor, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """Accept ``shape`` or ``(B, *shape)``; return the batched float tensor."""
    if not isinstance(x, torch.Tensor):
        raise RenderError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    want = "(" + ",".join(str(s) for s in shape) + ")"
    want_b = "(B," + ",".join(str(s) for s in shape) + ")"
    if tuple(x.shape) == shape:
        x = x.unsqueeze(0)
    elif x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise RenderError(f"{name} must have shape {want} or {want_b}; got {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float64):
        raise RenderError(f"{name} must be float32 or float64; got {x.dtype}")
    return x


@dataclass(frozen=True)
class Camera:
    """A batch of OpenCV pinhole cameras sharing one image size.

    Fields: ``K`` ``(B, 3, 3)`` intrinsics in pixels; ``R`` ``(B, 3, 3)`` world-to-camera
    rotation; ``t`` ``(B, 3)`` world-to-camera translation in metres; ``width`` and
    ``height`` in pixels. All tensors share one float dtype and device. Build it with
    ``Camera.create`` (accepts unbatched ``(3, 3)`` / ``(3,)`` too and validates).
    """

    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    width: int
    height: int

    @classmethod
    def create(cls, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, width: int,
               height: int) -> Camera:
        K = _batched(K, "K", (3, 3))
        R = _batched(R, "R", (3, 3))
        t = _batched(t, "t", (3,))
        sizes = {K.shape[0], R.shape[0], t.shape[0]} - {1}
        if len(sizes) > 1:
            raise RenderError(
                f"K, R and t must share one batch size (or 1); got {K.shape[0]}, "
                f"{R.shape[0]}, {t.shape[0]}"
            )
        batch = sizes.pop() if sizes else 1
        if not (K.dtype == R.dtype == t.dtype) or not (K.device == R.device == t.device):
            raise RenderError(
                f"K, R and t must share dtype and device; got ({K.dtype}, {K.device}), "
                f"({R.dtype}, {R.device}), ({t.dtype}, {t.device})"
            )
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RenderError(f"{name} must be a positive int (pixels); got {value!r}")
        return cls(K.expand(batch, 3, 3), R.expand(batch, 3, 3), t.expand(batch, 3),
                   width, height)

    @property
    def batch(self) -> int:
        return self.K.shape[0]

    @property
    def resolution(self) -> tuple[int, int]:
        """``(height, width)`` as ``rasterize`` takes it."""
        return self.height, self.width

    def to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """World points ``(V, 3)`` or ``(B, V, 3)`` (metres) -> camera frame
        ``(B, V, 3)``, OpenCV axes, metres. Differentiable."""
        pts = _points(points, self.batch)
        return pts @ self.R.transpose(1, 2).to(pts.dtype) + self.t.unsqueeze(1).to(pts.dtype)

    def projection(self, near: torch.Tensor | float, far: torch.Tensor | float
                   ) -> torch.Tensor:
        """``(B, 4, 4)`` matrix taking camera-frame ``(x, y, z, 1)`` to clip space."""
        return opencv_projection(self.K, self.width, self.height, near, far)

    def clip(self, points_cam: torch.Tensor, near: torch.Tensor | float | None = None,
             far: torch.Tensor | float | None = None) -> torch.Tensor:
        """Camera-frame points ``(B, V, 3)`` -> clip ``(B, V, 4)`` for ``rasterize``.

        ``near``/``far`` (metres; floats or ``(B,)`` tensors) default to
        ``scene_near_far(points_cam)``. Differentiable w.r.t. the points.
        """
        if near is None or far is None:
            n, f = scene_near_far(points_cam)
            near = n if near is None else near
            far = f if far is None else far
        P = self.projection(near, far).to(points_cam.dtype)
        return points_cam @ P[:, :, :3].transpose(1, 2) + P[:, :, 3].unsqueeze(1)

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """World points -> OpenCV pixel coordinates ``(B, V, 2)`` ``(u, v)``."""
        cam = self.to_camera(points)
        uvw = cam @ self.K.transpose(1, 2).to(cam.dtype)
        return uvw[..., :2] / uvw[..., 2:3]


def _points(points: torch.Tensor, batch: int) -> torch.Tensor:
    if not isinstance(points, torch.Tensor) or points.dim() not in (2, 3) \
            or points.shape[-1] != 3:
        got = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise RenderError(f"points must have shape (V,3) or (B,V,3); got {got}")
    if not points.is_floating_point():
        raise RenderError(f"points must be a float tensor; got {points.dtype}")
    if points.dim() == 2:
        points = points.unsqueeze(0)
    if points.shape[0] not in (1, batch) and batch != 1:
        raise RenderError(
            f"points' batch size must be 1 or the camera batch {batch}; got "
            f"{tuple(points.shape)}"
        )
    if points.shape[0] == 1 and batch > 1:
        points = points.expand(batch, -1, -1)
    return points


def opencv_projection(K: torch.Tensor, width: int, height: int,
                      near: torch.Tensor | float, far: torch.Tensor | float) -> torch.Tensor:
    """OpenCV intrinsics -> OpenGL-style projection (see module docstring).

    K: ``(3, 3)`` or ``(B, 3, 3)`` pixels (skew allowed). ``near``/``far``: metres,
    floats or ``(B,)`` tensors, ``0 < near < far``. Returns ``(B, 4, 4)`` of K's dtype
    and device with ``clip = P @ (x_cam, y_cam, z_cam, 1)``.
    """
    K = _batched(K, "K", (3, 3))
    batch = K.shape[0]
    near_t = torch.as_tensor(near, dtype=K.dtype, device=K.device).expand(batch)
    far_t = torch.as_tensor(far, dtype=K.dtype, device=K.device).expand(batch)
    if not isinstance(near, torch.Tensor) and not isinstance(far, torch.Tensor) and not (
        0 < float(near) < float(far)
    ):
        raise RenderError(f"need 0 < near < far (metres); got near={near}, far={far}")
    P = torch.zeros(batch, 4, 4, dtype=K.dtype, device=K.device)
    fx, fy, s = K[:, 0, 0], K[:, 1, 1], K[:, 0, 1]
    cx, cy = K[:, 0, 2], K[:, 1, 2]
    P[:, 0, 0] = 2.0 * fx / width
    P[:, 0, 1] = 2.0 * s / width
    P[:, 0, 2] = (2.0 * cx + 1.0) / width - 1.0
    P[:, 1, 1] = 2.0 * fy / height
    P[:, 1, 2] = (2.0 * cy + 1.0) / height - 1.0
    P[:, 2, 2] = (far_t + near_t) / (far_t - near_t)
    P[:, 2, 3] = -2.0 * far_t * near_t / (far_t - near_t)
    P[:, 3, 2] = 1.0
    return P


def scene_near_far(points_cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Near/far planes (metres) that keep every point of ``points_cam``
    (``(B, V, 3)`` camera frame) inside the depth range: ``near`` = half the smallest
    positive depth (at least 1e-3 of the largest), ``far`` = twice the largest. Points
    behind the camera are ignored (they are clipped). Returns two ``(B,)`` tensors,
    detached, no host sync."""
    z = points_cam.detach()[..., 2]
    zmax = z.amax(dim=-1).clamp_min(1e-6)
    zpos = torch.where(z > 0, z, torch.full_like(z, float("inf")))
    zmin = zpos.amin(dim=-1)
    near = torch.maximum(0.5 * torch.minimum(zmin, zmax), 1e-3 * zmax)
    far = 2.0 * zmax
    return near, far


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """World-to-camera ``(R, t)`` of an OpenCV camera at ``eye`` looking at ``target``.

    eye, target, up: ``(3,)`` or ``(B, 3)`` float (metres; ``up`` is the world direction
    that appears upwards in the image). Returns ``R`` ``(B, 3, 3)`` and ``t`` ``(B, 3)``.
    """
    eye = _batched(eye, "eye", (3,))
    target = _batched(target, "target", (3,)).to(eye)
    up = _batched(up, "up", (3,)).to(eye)
    z = target - eye
    z = z / z.norm(dim=-1, keepdim=True)
    x = torch.linalg.cross(z, up.expand_as(z), dim=-1)  # right = forward x up (y down)
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    y = torch.linalg.cross(z, x, dim=-1)
    R = torch.stack([x, y, z], dim=1)  # rows: camera axes in world coordinates
    t = -(R @ eye.unsqueeze(-1)).squeeze(-1)
    return R, t
