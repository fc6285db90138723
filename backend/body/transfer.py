"""Skinning weights for garment vertices, transferred from the body they sit on.

Done once per garment topology (after the template is built and after each remesh),
on CPU with a k-d tree; the result feeds ``backend.body.skinning.Skinning``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import BodyError
from .model import MAX_INFLUENCES, SkinnedBody, sparse_weights

TRANSFER_METHODS = ("rbf", "nearest")


@dataclass(frozen=True)
class WeightTransferSettings:
    """How garment vertices get their skinning weights.

    Attributes:
        method: ``"rbf"`` (NGD's rule): a weighted mean of the weights of the
            ``neighbours`` nearest body vertices, w_j = exp(-(d_j - d_min)^2 /
            (0.25 d_min^2)), d_min being the nearest distance. Vertices about as close
            as the nearest one count fully; ones much farther fade out, so the garment
            follows the body part it is closest to. ``"nearest"``: the inverse-distance
            weighted mean of the ``neighbours`` nearest body vertices (1 = copy the
            nearest vertex's weights).
        neighbours: body vertices considered per garment vertex.
        min_distance_m: floor on d_min (metres) for the RBF rule, so garment vertices
            lying on the body surface (d_min ~ 0) do not collapse to one neighbour.
        max_influences: bones kept per garment vertex (strongest, renormalised).
    """

    method: str = "rbf"
    neighbours: int = 16
    min_distance_m: float = 0.005
    max_influences: int = MAX_INFLUENCES

    def __post_init__(self):
        if self.method not in TRANSFER_METHODS:
            raise BodyError(f"weight transfer method must be one of {', '.join(TRANSFER_METHODS)}"
                            f"; got {self.method!r}")
        if self.neighbours < 1 or self.max_influences < 1:
            raise BodyError("weight transfer: neighbours and max_influences must be >= 1; got "
                            f"{self.neighbours} and {self.max_influences}")
        if not self.min_distance_m > 0:
            raise BodyError(f"weight transfer: min_distance_m must be > 0; got "
                            f"{self.min_distance_m}")


def transfer_weights(points: np.ndarray, body: SkinnedBody,
                     settings: WeightTransferSettings | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Skinning weights for ``points`` from the body's rest-pose vertices.

    Args:
        points: (N, 3) garment vertices in the body's rest space, metres.
        body: the body whose rest vertices and weights are transferred.
        settings: the rule (default: RBF over 16 neighbours).
    Returns:
        (indices (N, K) int32, values (N, K) float32), rows summing to 1, K <=
        ``settings.max_influences``.
    """
    from scipy.spatial import cKDTree

    settings = settings or WeightTransferSettings()
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise BodyError(f"garment vertices must have shape (N, 3) with N >= 1; "
                        f"got {points.shape}")
    if not np.isfinite(points).all():
        raise BodyError("garment vertices contain NaN or infinite values")
    k = min(settings.neighbours, body.vertex_count)
    distances, neighbours = cKDTree(body.rest_vertices).query(points, k=k)
    distances = distances.reshape(len(points), k)
    neighbours = neighbours.reshape(len(points), k)

    if settings.method == "rbf":
        d_min = np.maximum(distances[:, :1], settings.min_distance_m)
        kernel = np.exp(-((distances - distances[:, :1]) ** 2) / (0.25 * d_min**2))
    else:
        kernel = 1.0 / np.maximum(distances, 1e-9)
    kernel /= kernel.sum(axis=1, keepdims=True)

    # mix the neighbours' sparse weights into dense (N, B) rows, then keep the top K
    n, bones = len(points), body.bone_count
    bone_ids = body.weight_indices[neighbours]                        # (N, k, K_body)
    mixed = kernel[:, :, None] * body.weight_values[neighbours]       # (N, k, K_body)
    flat = np.arange(n)[:, None, None] * bones + bone_ids
    dense = np.bincount(flat.ravel(), weights=mixed.ravel(), minlength=n * bones)
    return sparse_weights(dense.reshape(n, bones), settings.max_influences)
