"""File I/O shared by the bundles: atomic writes, and what reading a damaged array file raises."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ARRAY_FILE_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile)
"""What ``np.load`` raises for an empty, truncated or corrupt .npy/.npz file."""


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``.

    On an exception the temporary file is removed and ``path`` keeps its old content.
    The parent folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
