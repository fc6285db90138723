"""The JSON-lines event protocol between a backend job and whoever started it.

A job prints one JSON object per line on stdout (and appends the same line to
``log.jsonl`` in its job folder when it has one)::

    {"event": "progress", "stage": "validate", "step": 3, "total": 60, "eta_s": 4.1, "loss": null}
    {"event": "info", "message": "torch 2.13.0", "data": {...}}
    {"event": "warning", "message": "dropped 2 frame(s) with an empty mask: 7, 8"}
    {"event": "error", "message": "...", "hint": "..."}
    {"event": "done", "result": "/path/to/result", "summary": "..."}

Every event also carries ``"t"``: seconds since the stream started. A job ends with
exactly one ``done`` or ``error`` event, then exits with an ``ExitCode``. Anything
else a job writes goes to stderr (logging), never stdout.
"""

from __future__ import annotations

import enum
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

EVENT_TYPES = ("progress", "info", "warning", "error", "done")


class ExitCode(enum.IntEnum):
    """Process exit status of ``python -m backend``."""

    OK = 0
    CRASHED = 1
    """An unexpected exception: a bug; the traceback is on stderr."""
    USAGE = 2
    """Bad command line (argparse's own code)."""
    INVALID_INPUT = 3
    """A BackendError: bad capture, job file, settings, or a missing package."""
    CANCELLED = 4
    """The cancel file appeared; checkpoints written so far are kept."""


class EventStream:
    """Writes protocol events to a text stream and, optionally, to log.jsonl.

    Progress events are rate-limited to one per ``min_interval_s`` per stage, except
    each stage's first and last step, so a tight loop can call ``progress`` every
    step without flooding the reader.
    """

    def __init__(
        self,
        out: TextIO | None = None,
        log_path: Path | None = None,
        min_interval_s: float = 0.2,
        clock=time.monotonic,
        text: bool = False,
    ):
        """``text=True`` writes human-readable lines to ``out`` instead of JSON
        (for shell users); log.jsonl always gets JSON."""
        self._out = out if out is not None else sys.stdout
        self._text = text
        self._log = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._clock = clock
        self._t0 = clock()
        self._min_interval_s = min_interval_s
        self._stage: str | None = None
        self._stage_t0 = 0.0
        self._stage_step0 = 0
        self._last_progress_t = -math.inf

    def progress(self, stage: str, step: int, total: int, loss: float | None = None) -> None:
        """Report ``step`` of ``total`` in ``stage``; ETA from the stage's rate so far.

        A non-finite ``loss`` is sent as null.
        """
        now = self._clock()
        if stage != self._stage:
            self._stage, self._stage_t0, self._stage_step0 = stage, now, step
            self._last_progress_t = -math.inf
        first_or_last = step == self._stage_step0 or step >= total
        if not first_or_last and now - self._last_progress_t < self._min_interval_s:
            return
        self._last_progress_t = now
        done_steps = step - self._stage_step0
        eta_s = None
        if done_steps > 0 and total > 0:
            eta_s = round((now - self._stage_t0) / done_steps * max(total - step, 0), 2)
        if loss is not None:
            loss = float(loss)
            if not math.isfinite(loss):
                loss = None  # JSON has no NaN/inf; the trainer reports divergence itself
        self.emit(
            {"event": "progress", "stage": stage, "step": step, "total": total,
             "eta_s": eta_s, "loss": loss}
        )

    def info(self, message: str, **data: Any) -> None:
        event = {"event": "info", "message": message}
        if data:
            event["data"] = data
        self.emit(event)

    def warning(self, message: str) -> None:
        self.emit({"event": "warning", "message": message})

    def error(self, message: str, hint: str | None = None) -> None:
        self.emit({"event": "error", "message": message, "hint": hint})

    def done(self, result: str | Path | None = None, summary: str | None = None) -> None:
        self.emit(
            {"event": "done", "result": str(result) if result is not None else None,
             "summary": summary}
        )

    def emit(self, event: dict[str, Any]) -> None:
        assert event.get("event") in EVENT_TYPES, event
        event["t"] = round(self._clock() - self._t0, 3)
        line = json.dumps(event, allow_nan=False, default=str)
        self._out.write((format_event(event) if self._text else line) + "\n")
        self._out.flush()
        if self._log is not None:
            self._log.write(line + "\n")
            self._log.flush()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def format_event(event: dict[str, Any]) -> str:
    """One event as a line for people (``--format text``)."""
    kind = event["event"]
    if kind == "progress":
        text = f"[{event['stage']}] {event['step']}/{event['total']}"
        if event.get("eta_s") is not None:
            text += f"  eta {event['eta_s']:.0f} s"
        if event.get("loss") is not None:
            text += f"  loss {event['loss']:.5g}"
        return text
    if kind == "warning":
        return f"warning: {event['message']}"
    if kind == "error":
        hint = f"\nhint: {event['hint']}" if event.get("hint") else ""
        return f"error: {event['message']}{hint}"
    if kind == "done":
        summary = event.get("summary") or f"done: {event.get('result')}"
        return f"--- summary\n{summary}" if "\n" in summary else summary
    return event["message"]


def parse_event(line: str) -> dict[str, Any] | None:
    """Decode one line of a job's stdout; None if it is not a protocol event."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("event") not in EVENT_TYPES:
        return None
    return event
