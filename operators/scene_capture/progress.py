"""The window manager's progress indicator, driven by ``progress(stage, step, total)``."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

log = logging.getLogger(__name__)


@contextmanager
def progress_bar(context, stages: Sequence[str]) -> Iterator:
    """Yield a ``progress(stage, step, total)`` callback that moves Blender's progress
    indicator (cursor / status bar; a no-op in background mode) through ``stages``,
    each an equal share of 0..100. The indicator ends with the block."""
    wm = context.window_manager
    wm.progress_begin(0, 100)
    order = {name: i for i, name in enumerate(stages)}

    def progress(stage: str, step: int, total: int) -> None:
        index = order.get(stage, len(stages) - 1)
        fraction = (index + (step / total if total else 1.0)) / len(stages)
        wm.progress_update(int(round(100 * fraction)))
        if step == total:
            log.info("%s: %d/%d done", stage, step, total)

    try:
        yield progress
    finally:
        wm.progress_end()
