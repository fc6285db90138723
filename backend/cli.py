"""Command line: ``python -m backend [--job-dir DIR] COMMAND ...``.

Every command is a job: it speaks the JSON-lines protocol on stdout
(``backend.jobs.events``), checks ``DIR/cancel`` when a job folder is given, appends
its events to ``DIR/log.jsonl``, and exits with an ``ExitCode``. Logging goes to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import BackendError
from .jobs.cancel import CancelToken, JobCancelled
from .jobs.events import EventStream, ExitCode
from .jobs.result import LOG_FILE

log = logging.getLogger("backend")

Command = Callable[[argparse.Namespace, EventStream, CancelToken], None]


def cmd_validate(args: argparse.Namespace, events: EventStream, cancel: CancelToken) -> None:
    from .capture import load_capture, validate_capture

    capture = load_capture(args.capture)
    events.info(
        f"{capture.root}: {len(capture.frames)} frame(s) "
        f"{capture.frames[0]}..{capture.frames[-1]}, "
        f"{capture.width}x{capture.height} px, {capture.garment_type}",
        frames=len(capture.frames), width=capture.width, height=capture.height,
    )

    def progress(step: int, total: int) -> None:
        cancel.check()
        events.progress("validate", step, total)

    report = validate_capture(capture, drop_empty_masks=args.drop_empty_masks, progress=progress)
    for warning in report.warnings:
        events.warning(warning)
    kept = len(report.capture.frames)
    events.done(
        result=str(capture.root),
        summary=f"capture is valid: {kept} frame(s) to reconstruct"
        + (f", {len(report.dropped_frames)} dropped" if report.dropped_frames else ""),
    )


def cmd_doctor(args: argparse.Namespace, events: EventStream, cancel: CancelToken) -> None:
    from .doctor import run_doctor, summary

    results = run_doctor(events, cancel, work_dir=args.work_dir)
    events.done(result=None, summary=summary(results))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backend",
        description="Garment Reconstruction backend. Each command prints JSON-lines "
        "progress events on stdout and exits 0 (ok), 1 (crash), 2 (usage), "
        "3 (invalid input) or 4 (cancelled).",
    )
    parser.add_argument(
        "--job-dir", type=Path, default=None,
        help="job folder: the job stops when a file named 'cancel' appears here, and "
        f"appends its events to {LOG_FILE} here",
    )
    parser.add_argument("--log-level", default="WARNING",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="level of the human-readable log on stderr (default WARNING)")
    parser.add_argument("--format", default="jsonl", choices=["jsonl", "text"],
                        help="stdout format: JSON-lines events (default, for programs) or "
                        "text (for people); log.jsonl is always JSON-lines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a capture bundle and report every problem")
    p.add_argument("capture", type=Path, help="capture folder (holding capture.json)")
    p.add_argument("--drop-empty-masks", action="store_true",
                   help="leave out frames whose mask is empty instead of failing")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("doctor", help="report whether this Python can run reconstructions")
    p.add_argument("--work-dir", type=Path, default=Path.cwd(),
                   help="working folder whose free disk space to report (default: cwd)")
    p.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log_path = args.job_dir / LOG_FILE if args.job_dir is not None else None
    events = EventStream(log_path=log_path, text=args.format == "text")
    try:
        return run_command(args.func, args, events, CancelToken(args.job_dir))
    finally:
        events.close()


def run_command(func: Command, args, events: EventStream, cancel: CancelToken) -> int:
    """Run one command and turn its outcome into the final event and exit code."""
    try:
        func(args, events, cancel)
    except JobCancelled as exc:
        events.error(str(exc), hint="the job was cancelled; run it again to continue")
        return ExitCode.CANCELLED
    except BackendError as exc:
        events.error(str(exc), hint=exc.hint)
        return ExitCode.INVALID_INPUT
    except Exception as exc:  # a bug: report it as an event too, traceback to stderr
        log.exception("unexpected error in %s", args.command)
        events.error(
            f"internal error: {type(exc).__name__}: {exc}",
            hint="this is a bug in the backend; the log (stderr) has the traceback",
        )
        return ExitCode.CRASHED
    return ExitCode.OK
