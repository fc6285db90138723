"""Byte-reproducible .npz files.

``np.savez`` stamps every member with the current time, so two runs with identical
arrays give different bytes. Synthetic captures promise that the same arguments give
identical files, so they are written here with a fixed timestamp (and uncompressed,
like ``np.savez``); any .npz can also be rewritten that way (``freeze_npz``).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from ..fileio import atomic_write

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
"""The earliest time a zip member can carry."""


def write_npz(path: Path | str, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` as an .npz (no pickles), atomically and reproducibly."""
    path = Path(path)
    with atomic_write(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue())
    return path


def freeze_npz(path: Path | str) -> Path:
    """Rewrite an existing .npz with fixed member timestamps (same arrays, same order)."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    return write_npz(path, arrays)
