"""Physical and temporal priors for what the camera cannot see (DMap sections IV-C3, V-D).

A monocular camera sees one side of the garment; the image terms decide that side and
say nothing about the other. These terms keep the unseen side plausible:

- ``ClothEnergy``: the energy a piece of cloth stores when the template (its rest
  state) is deformed into a frame's garment: membrane strain (St. Venant-Kirchhoff on
  each triangle), bending (squared change of the dihedral angle at each interior edge,
  discrete-shells weighting) and the gravity potential. Joules, from fabric parameters
  in SI units, so the three keep their physical proportions; a loss weight each.
- ``BodyCollision``: garment vertices inside the posed body, or closer to it than a
  thickness, by the signed distance to the body's nearest triangle.
- ``temporal_terms``: velocity and acceleration of the pose-dependent displacement
  over consecutive frames (the motion the body's skinning does not explain).

Every term takes optional per-face or per-vertex weights: the trainer lowers them
where the camera sees the garment in that frame, so the priors decide where the image
terms cannot.
"""

from __future__ import annotations

import numpy as np
import torch

from ..eval.sampling import closest_on_triangles
from .errors import ReconError

GRAVITY_M_S2 = 9.81


def _weighted_sum(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """(B, N) -> (B,): sum over N, each element times its weight when given."""
    return (values if weights is None else values * weights.to(values)).sum(-1)


def _interior_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(E, 4)`` ``[a, b, c0, c1]`` for every edge shared by two consistently wound
    faces ``(a, b, c0)`` and ``(b, a, c1)`` (the edge's endpoints, then the opposite
    corner of each face), and ``(E, 2)`` those two faces. Boundary edges and edges of
    inconsistently wound pairs are left out (no well-defined dihedral angle)."""
    directed = np.concatenate([faces[:, [0, 1, 2]], faces[:, [1, 2, 0]], faces[:, [2, 0, 1]]])
    count = int(faces.max()) + 1 if len(faces) else 0
    keys = directed[:, 0].astype(np.int64) * count + directed[:, 1]
    reverse = directed[:, 1].astype(np.int64) * count + directed[:, 0]
    order = np.argsort(keys)
    position = np.searchsorted(keys[order], reverse)
    position = np.minimum(position, len(keys) - 1)
    match = keys[order][position] == reverse
    first = match & (directed[:, 0] < directed[:, 1])    # each edge once
    other = order[position[first]]
    hinges = np.stack([directed[first, 0], directed[first, 1], directed[first, 2],
                       directed[other, 2]], axis=1)
    # directed row i belongs to face i mod F
    pairs = np.stack([np.flatnonzero(first) % len(faces), other % len(faces)], axis=1)
    return hinges, pairs


class ClothEnergy:
    """Membrane, bending and gravity energy of deformed copies of a rest mesh.

    Args:
        rest_vertices: (V, 3) rest state (the garment template), metres.
        faces: (F, 3) integer, consistently wound.
        stretch_n_m: Young's modulus times thickness of the fabric, N/m.
        poisson_ratio: in [0, 0.5).
        bending_n_m: bending stiffness, N m.
        density_kg_m2: areal density, kg/m^2 (gravity).

    Each energy method takes ``(B, V, 3)`` vertices and returns ``(B,)`` joules; all are
    zero at rest (gravity: relative to z = 0), invariant to rigid motions (membrane and
    bending) and differentiable.
    """

    def __init__(self, rest_vertices: torch.Tensor, faces: torch.Tensor, *,
                 stretch_n_m: float, poisson_ratio: float, bending_n_m: float,
                 density_kg_m2: float):
        if not 0 <= poisson_ratio < 0.5:
            raise ReconError(f"fabric Poisson ratio must be in [0, 0.5); got {poisson_ratio}")
        rest = rest_vertices.detach()
        f = faces.long()
        self.faces = f
        e1, e2 = rest[f[:, 1]] - rest[f[:, 0]], rest[f[:, 2]] - rest[f[:, 0]]
        double_area = torch.linalg.cross(e1, e2).norm(dim=-1).clamp_min(1e-12)
        length = e1.norm(dim=-1).clamp_min(1e-9)
        along = (e2 * e1).sum(-1) / length
        height = double_area / length
        # the rest triangle in its own 2D frame is [[length, along], [0, height]]; its
        # inverse maps deformed edge vectors to the deformation gradient (3 x 2)
        inverse = torch.zeros(len(f), 2, 2, dtype=rest.dtype, device=rest.device)
        inverse[:, 0, 0] = 1 / length
        inverse[:, 0, 1] = -along / (length * height)
        inverse[:, 1, 1] = 1 / height
        self.rest_inverse = inverse
        self.rest_area = double_area / 2
        # plane-stress Lame parameters of the membrane, N/m
        self.mu = stretch_n_m / (2 * (1 + poisson_ratio))
        self.lam = stretch_n_m * poisson_ratio / (1 - poisson_ratio ** 2)

        hinges, pairs = _interior_edges(f.cpu().numpy())
        self.hinges = torch.as_tensor(hinges, device=rest.device, dtype=torch.int64)
        self.hinge_faces = torch.as_tensor(pairs, device=rest.device, dtype=torch.int64)
        self.rest_angles = self.dihedral_angles(rest.unsqueeze(0))[0]
        edge = rest[self.hinges[:, 1]] - rest[self.hinges[:, 0]]
        both = self.rest_area[self.hinge_faces].sum(-1)
        # discrete shells: 3 |e|^2 / (A0 + A1) per hinge, times the stiffness / 2
        self.hinge_stiffness = bending_n_m * 1.5 * edge.square().sum(-1) / both

        mass = torch.zeros(rest.shape[0], dtype=rest.dtype, device=rest.device)
        mass.index_add_(0, f.reshape(-1), (self.rest_area / 3).repeat_interleave(3))
        self.vertex_mass = density_kg_m2 * mass

    def dihedral_angles(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) -> (B, E) signed angle between the two faces' normals at each
        interior edge (0 flat, positive where the surface is convex: turning away from
        its normals, as on a sphere with outward normals)."""
        h = self.hinges
        a, b = vertices[:, h[:, 0]], vertices[:, h[:, 1]]
        edge = b - a
        n0 = torch.linalg.cross(edge, vertices[:, h[:, 2]] - a)
        n1 = torch.linalg.cross(-edge, vertices[:, h[:, 3]] - b)
        unit = edge / edge.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        sine = (torch.linalg.cross(n0, n1) * unit).sum(-1)
        cosine = (n0 * n1).sum(-1)
        return torch.atan2(sine, cosine)

    def membrane(self, vertices: torch.Tensor,
                 face_weights: torch.Tensor | None = None) -> torch.Tensor:
        """St. Venant-Kirchhoff membrane energy ``A (mu tr(E^2) + lam/2 tr(E)^2)`` per
        face with the Green strain ``E = (F^T F - I) / 2``, summed: (B,) joules."""
        f = self.faces
        x0 = vertices[:, f[:, 0]]
        edges = torch.stack([vertices[:, f[:, 1]] - x0, vertices[:, f[:, 2]] - x0], dim=-1)
        gradient = edges @ self.rest_inverse.to(vertices)                 # (B, F, 3, 2)
        strain = 0.5 * (gradient.transpose(-1, -2) @ gradient)
        strain = strain - 0.5 * torch.eye(2, dtype=vertices.dtype, device=vertices.device)
        trace = strain[..., 0, 0] + strain[..., 1, 1]
        density = self.mu * strain.square().sum((-1, -2)) + 0.5 * self.lam * trace.square()
        return _weighted_sum(self.rest_area.to(vertices) * density, face_weights)

    def bending(self, vertices: torch.Tensor,
                face_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Discrete-shells bending energy, summed over interior edges: (B,) joules. A
        hinge's weight is the mean of its two faces' ``face_weights`` (B, F)."""
        change = self.dihedral_angles(vertices) - self.rest_angles.to(vertices)
        energy = self.hinge_stiffness.to(vertices) * change.square()
        weights = None if face_weights is None else \
            face_weights.to(vertices)[:, self.hinge_faces].mean(-1)
        return _weighted_sum(energy, weights)

    def gravity(self, vertices: torch.Tensor,
                vertex_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Gravity potential ``sum m g z`` (Z up, relative to z = 0): (B,) joules."""
        energy = GRAVITY_M_S2 * self.vertex_mass.to(vertices) * vertices[..., 2]
        return _weighted_sum(energy, vertex_weights)


class BodyCollision:
    """Penalty for garment vertices inside the posed body or closer to its surface than
    ``thickness_m`` (DMap's interpenetration term), by signed distance to the body's
    nearest triangle.

    The nearest triangle is searched on the host among the faces whose centroids are
    the ``candidates`` nearest (one k-d tree per frame, built on first use); the
    distance to that triangle's closest point is differentiable in the garment vertex,
    signed by the triangle's outward normal. Without this term a garment that sinks
    into the body where the body is in front of it cannot come back: the silhouette's
    gradient moves the edge of the hole sideways, never the garment outwards.

    Args:
        body_vertices: (T, Vb, 3) posed body per frame; body_faces: (Fb, 3), wound
            counter-clockwise seen from outside.
        thickness_m: wanted least distance from the skin, metres.
    """

    def __init__(self, body_vertices: torch.Tensor, body_faces: torch.Tensor,
                 thickness_m: float, candidates: int = 8):
        self.thickness_m = thickness_m
        self.vertices = body_vertices.detach().cpu().double().numpy()
        self.faces = body_faces.detach().cpu().long().numpy()
        self.candidates = min(candidates, len(self.faces))
        self._trees: dict[int, object] = {}

    def _tree(self, frame: int):
        if frame not in self._trees:
            from scipy.spatial import cKDTree

            self._trees[frame] = cKDTree(self.vertices[frame][self.faces].mean(axis=1))
        return self._trees[frame]

    def _closest(self, points: np.ndarray, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Closest body points (N, 3) and the outward normals (N, 3) of their faces."""
        _, near = self._tree(frame).query(points, k=self.candidates)
        near = near.reshape(len(points), -1)
        tri = self.vertices[frame][self.faces[near]]                     # (N, k, 3, 3)
        rows = np.repeat(points, near.shape[1], axis=0)
        d2, bary = closest_on_triangles(rows, *(tri[:, :, i].reshape(-1, 3) for i in range(3)))
        best = d2.reshape(len(points), -1).argmin(axis=1)
        pick = np.arange(len(points)) * near.shape[1] + best
        chosen = tri[np.arange(len(points)), best]                       # (N, 3, 3)
        closest = np.einsum("nk,nkc->nc", bary[pick], chosen)
        normal = np.cross(chosen[:, 1] - chosen[:, 0], chosen[:, 2] - chosen[:, 0])
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
        return closest, normal

    def distance_and_direction(self, points: np.ndarray, frame: int
                               ) -> tuple[np.ndarray, np.ndarray]:
        """Signed distance (N,) of host points (N, 3) to the body at frame index
        ``frame`` (metres, negative inside) and the unit direction (N, 3) that raises
        it: away from the closest body point, or the face normal on the surface."""
        points = np.asarray(points, np.float64)
        closest, normal = self._closest(points, frame)
        offset = points - closest
        length = np.linalg.norm(offset, axis=1, keepdims=True)
        side = np.sign((offset * normal).sum(1, keepdims=True))
        side[side == 0] = 1.0
        direction = np.where(length > 1e-7, side * offset / np.maximum(length, 1e-12), normal)
        return (offset * direction).sum(1), direction

    def signed_distance(self, world: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) garment vertices at frame indices ``frames`` (B,) -> (B, V) signed
        distance to the body in metres (negative inside), differentiable in ``world``
        (along the fixed direction of ``distance_and_direction``)."""
        host = world.detach().cpu().double().numpy()
        found = [self.distance_and_direction(points, int(f))
                 for points, f in zip(host, frames.tolist(), strict=True)]
        distance = np.stack([d for d, _ in found])
        direction = np.stack([n for _, n in found])
        closest = torch.as_tensor(host - distance[..., None] * direction).to(world)
        return ((world - closest) * torch.as_tensor(direction).to(world)).sum(-1)

    def __call__(self, world: torch.Tensor, frames: torch.Tensor,
                 vertex_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over the garment vertices of ``(relu(thickness - d) / thickness)^2``
        (each times its weight when given), for world vertices ``(B, V, 3)``."""
        depth = torch.relu(self.thickness_m - self.signed_distance(world, frames))
        penalty = (depth / self.thickness_m).square()
        if vertex_weights is not None:
            penalty = penalty * vertex_weights.to(penalty)
        return penalty.mean()


def temporal_terms(displacement: torch.Tensor, unit_m: float,
                   vertex_weights: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Velocity and acceleration penalties (DMap eq. 31-33) on a window of consecutive
    frames of the pose-dependent displacement ``(W, V, 3)`` (metres; W >= 3): means of
    ``|d_{t+1} - d_t|^2`` and ``|d_{t+1} - 2 d_t + d_{t-1}|^2`` in units of ``unit_m``
    squared, each vertex times its weight ``(V,)`` when given."""
    if displacement.shape[0] < 3:
        raise ReconError(f"temporal terms need a window of at least 3 frames; got "
                         f"{displacement.shape[0]}")
    scaled = displacement / unit_m
    velocity = (scaled[1:] - scaled[:-1]).square().sum(-1)
    acceleration = (scaled[2:] - 2 * scaled[1:-1] + scaled[:-2]).square().sum(-1)
    if vertex_weights is not None:
        w = vertex_weights.to(scaled)
        velocity, acceleration = velocity * w, acceleration * w
    return velocity.mean(), acceleration.mean()
