"""Seam welding and PC2 point caches for simulated garments. numpy only (no bpy).

The cloth is simulated as separate panels whose seam vertices are pulled together by
sewing springs; the ground truth is one surface, so every group of sewn vertices
(pairs chained by union-find: a corner can be sewn to two panels) becomes one vertex
at the group's mean position. Faces are reindexed, and per-corner UVs stay those of
the panels (a welded vertex has one UV per panel it touches).

PC2 (the point-cache format Blender's Mesh Cache modifier reads), little-endian:

==========  =========  ===================================================
offset      type       field
==========  =========  ===================================================
0           char[12]   ``b"POINTCACHE2\\0"``
12          int32      file version, 1
16          int32      number of points V
20          float32    start frame
24          float32    sample rate (frames between samples)
28          int32      number of samples T
32          float32    T x V x 3 positions, sample by sample
==========  =========  ===================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...backend.fileio import atomic_write
from ..base import GarmentError

PC2_MAGIC = b"POINTCACHE2\0"
PC2_HEADER = np.dtype([("magic", "S12"), ("version", "<i4"), ("points", "<i4"),
                       ("start", "<f4"), ("rate", "<f4"), ("samples", "<i4")])


@dataclass(frozen=True, eq=False)
class Weld:
    """How panel vertices merge into ground-truth vertices.

    Attributes:
        vertex_map: (V,) int32, the welded vertex of each panel vertex; welded vertices
            are numbered by their smallest panel vertex, so unsewn meshes map to
            themselves.
        welded_count: W, the number of welded vertices.
        faces: (F, 3) int32 the panel faces over welded vertices (same order).
    """

    vertex_map: np.ndarray
    welded_count: int
    faces: np.ndarray

    def positions(self, vertices: np.ndarray) -> np.ndarray:
        """(..., V, 3) panel positions -> (..., W, 3) float32 welded ones (group means)."""
        v = np.asarray(vertices, np.float64)
        if v.shape[-2] != len(self.vertex_map):
            raise GarmentError(f"weld: positions have {v.shape[-2]} vertices; the weld was "
                               f"built for {len(self.vertex_map)}")
        counts = np.bincount(self.vertex_map, minlength=self.welded_count)
        moved = np.moveaxis(v, -2, 0)                          # (V, ..., 3)
        sums = np.zeros((self.welded_count, *moved.shape[1:]))
        np.add.at(sums, self.vertex_map, moved)
        means = sums / counts.reshape((-1,) + (1,) * (sums.ndim - 1))
        return np.ascontiguousarray(np.moveaxis(means, 0, -2), np.float32)


def build_weld(vertex_count: int, faces: np.ndarray, sew_pairs: np.ndarray) -> Weld:
    """The weld of a mesh whose ``sew_pairs`` (S, 2) are sewn together.

    Raises:
        GarmentError: a face would lose a corner (two of its vertices are sewn together).
    """
    parent = np.arange(vertex_count)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving
            i = parent[i]
        return i

    for a, b in np.asarray(sew_pairs, np.int64).reshape(-1, 2):
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:  # the smaller index becomes the root: numbering stays deterministic
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([root(i) for i in range(vertex_count)], np.int64)
    # roots are each group's smallest vertex; number them in vertex order
    is_root = roots == np.arange(vertex_count)
    number = np.cumsum(is_root) - 1
    vertex_map = number[roots].astype(np.int32)
    welded = vertex_map[np.asarray(faces, np.int64)]
    collapsed = ((welded[:, 0] == welded[:, 1]) | (welded[:, 1] == welded[:, 2])
                 | (welded[:, 0] == welded[:, 2]))
    if collapsed.any():
        f = int(np.argmax(collapsed))
        raise GarmentError(f"Welding the seams collapses {int(collapsed.sum())} face(s) (first: "
                           f"face {f}, vertices {faces[f].tolist()}): a face must not hold both "
                           "vertices of a sew pair")
    return Weld(vertex_map=vertex_map, welded_count=int(is_root.sum()),
                faces=np.ascontiguousarray(welded, np.int32))


def seam_gaps(vertices: np.ndarray, sew_pairs: np.ndarray) -> np.ndarray:
    """(T,) float32 largest distance between sewn vertices per frame, metres (0 unsewn).

    Args:
        vertices: (T, V, 3) panel positions.
        sew_pairs: (S, 2) vertex pairs.
    """
    v = np.asarray(vertices, np.float64)
    pairs = np.asarray(sew_pairs, np.int64).reshape(-1, 2)
    if not len(pairs):
        return np.zeros(len(v), np.float32)
    gaps = np.linalg.norm(v[:, pairs[:, 0]] - v[:, pairs[:, 1]], axis=-1)
    return gaps.max(axis=1).astype(np.float32)


def write_pc2(path: Path | str, samples: np.ndarray, start_frame: float,
              sample_rate: float = 1.0) -> Path:
    """Write (T, V, 3) positions (metres, object space) as a PC2 file; returns the path.

    Written atomically (``backend.fileio.atomic_write``): a reader never sees half a file.
    """
    data = np.asarray(samples)
    if data.ndim != 3 or data.shape[2] != 3 or not len(data) or not data.shape[1]:
        raise GarmentError(f"PC2 samples must have shape (T, V, 3) with T, V >= 1; got "
                           f"{data.shape}")
    if not np.isfinite(data).all():
        raise GarmentError(f"PC2 samples for {path} contain NaN or infinite values")
    header = np.array([(PC2_MAGIC, 1, data.shape[1], start_frame, sample_rate, len(data))],
                      PC2_HEADER)
    path = Path(path)
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(np.ascontiguousarray(data, "<f4").tobytes())
    return path


def read_pc2(path: Path | str) -> tuple[float, float, np.ndarray]:
    """(start frame, sample rate, (T, V, 3) float32 positions) of a PC2 file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GarmentError(f"Cannot read PC2 file {path} ({exc})") from None
    if len(raw) < PC2_HEADER.itemsize or raw[:12] != PC2_MAGIC:
        raise GarmentError(f"{path} is not a PC2 file (no POINTCACHE2 header)")
    head = np.frombuffer(raw[:PC2_HEADER.itemsize], PC2_HEADER)[0]
    points, samples = int(head["points"]), int(head["samples"])
    expected = PC2_HEADER.itemsize + 12 * points * samples
    if len(raw) != expected:
        raise GarmentError(f"PC2 file {path} has {len(raw)} bytes; its header "
                           f"({samples} samples of {points} points) needs {expected}")
    data = np.frombuffer(raw, "<f4", offset=PC2_HEADER.itemsize).reshape(samples, points, 3)
    return float(head["start"]), float(head["rate"]), data.astype(np.float32)
