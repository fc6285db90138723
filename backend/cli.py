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


def cmd_setup_env(args: argparse.Namespace, events: EventStream, cancel: CancelToken) -> None:
    from .setup_env import DEFAULT_CHECK_IMPORTS, SetupSettings, setup_env

    settings = SetupSettings(
        target=args.target, requirements=args.requirements, constraints=args.constraints,
        pip_args=tuple(args.pip_arg),
        check_imports=tuple(m for m in (args.check_import or DEFAULT_CHECK_IMPORTS) if m))
    python = setup_env(settings, events, cancel)
    events.done(result=str(python), summary=f"backend environment ready: {python}")


def cmd_body(args: argparse.Namespace, events: EventStream, cancel: CancelToken) -> None:
    from .body import save_body
    from .body.errors import BodyError

    if args.out.exists() and not args.overwrite:
        raise BodyError(f"{args.out}: already exists; pass --overwrite to replace it")
    events.progress("body", 0, 3)
    if args.body_source == "anny":
        from .body.anny_body import AnnyPhenotype, AnnyPoser, foot_sliding
        from .body.motions import make_motion

        phenotype = AnnyPhenotype(gender=args.gender, age=args.age, muscle=args.muscle,
                                  weight=args.weight, height=args.height,
                                  proportions=args.proportions)
        events.info(f"loading Anny ({args.topology}); its first use builds a cache, "
                    "about a minute")
        poser = AnnyPoser(phenotype, args.topology)
        cancel.check()
        events.progress("body", 1, 3)
        motion = make_motion(args.motion, args.frames, args.fps)
        frames = range(args.start_frame, args.start_frame + args.frames)
        track = poser.track(motion, frames, args.fps, posed_vertices=True,
                            pose_components=args.pose_components)
        sliding = foot_sliding(track.posed_vertices, poser.foot_vertices(), args.fps)
        events.info(f"foot sliding while in contact: max {sliding['max_speed_m_s']:.3f} m/s, "
                    f"mean {sliding['mean_speed_m_s']:.3f} m/s", **sliding)
        body = poser.body
    else:
        from .body.smpl import smpl_track

        events.info(f"loading {args.type.upper()} from {args.model}")
        body, track = smpl_track(args.model, args.params, args.type, args.gender, args.fps,
                                 args.start_frame, posed_vertices=not args.no_posed_vertices,
                                 pose_components=args.pose_components)
    cancel.check()
    events.progress("body", 2, 3)
    if args.no_posed_vertices:
        from dataclasses import replace

        track = replace(track, posed_vertices=None)
    save_body(args.out, body, track)
    events.progress("body", 3, 3)
    events.done(result=str(args.out),
                summary=f"{args.out}: {body.source} body, {body.vertex_count} vertices, "
                f"{body.bone_count} bones, {track.frame_count} frames at {track.fps:g} fps")


def cmd_bench_body(args: argparse.Namespace, events: EventStream, cancel: CancelToken) -> None:
    from .body.bench import run_body_bench

    results = run_body_bench(events, cancel)
    events.done(result=None, summary=", ".join(f"{k} = {v:,.3g}" for k, v in results.items()))


def cmd_bench_raster(args: argparse.Namespace, events: EventStream, cancel: CancelToken) -> None:
    from .render.bench import run_raster_bench  # torch loads only for this command

    rows = run_raster_bench(events, cancel, devices=args.device or None,
                            resolutions=tuple(args.resolution), faces=args.faces,
                            repeats=args.repeats, kind=args.rasterizer)
    events.done(result=None, summary="\n".join(
        f"{r['rasterizer']} on {r['device']}, {r['resolution']}^2, {r['faces']} faces: "
        f"{r['ms']:.1f} ms forward+backward ({r['ratio']:.2f}x a 1024^3 matmul)" for r in rows))


def _reconstruct(capture: Path, output: Path, preset_name: str, job_settings, seed: int,
                 events: EventStream, cancel: CancelToken, method: str = "ngd"):
    from .recon.run import reconstruct
    from .recon.settings import preset

    overrides = {name: getattr(job_settings, name) for name in ("remesh", "texture")
                 if getattr(job_settings, name) is not None}
    settings = preset(preset_name, seed=seed, method=method, **overrides)  # unknown preset fails
    return reconstruct(capture, output, settings, job_settings, events, cancel)


def _summary(result) -> str:
    m = result.metrics
    text = (f"{result.output}: {m['frames']} frames, {m['template']['vertices']} vertices, "
            f"{m['timings'].get('train_s', 0):.1f} s training")
    gt = m.get("ground_truth", {}).get("summary")
    if gt:
        text += (f"; CD x1e3 {gt['chamfer_x1e3']:.3f}, NC {gt['normal_consistency']:.3f}, "
                 f"{gt['point_to_surface_mm']:.1f} mm")
    return text


def cmd_run(args: argparse.Namespace, events: EventStream, cancel: CancelToken) -> None:
    from .jobs.spec import load_job

    spec = load_job(args.job)
    if args.job_dir is None:           # the job file's folder is the job folder
        cancel = CancelToken(Path(args.job).resolve().parent)
    result = _reconstruct(spec.capture, spec.output, spec.settings.preset, spec.settings,
                          spec.seed, events, cancel)
    events.done(result=str(result.output), summary=_summary(result))


def cmd_reconstruct(args: argparse.Namespace, events: EventStream, cancel: CancelToken) -> None:
    from .jobs.spec import JobSettings

    job = JobSettings(preset=args.preset, device=args.device, rasterizer=args.rasterizer,
                      drop_empty_masks=args.drop_empty_masks, frame_start=args.frame_start,
                      frame_end=args.frame_end, remesh=args.remesh, texture=args.texture)
    result = _reconstruct(args.capture, args.out, args.preset, job, args.seed, events, cancel,
                          method=args.method)
    events.done(result=str(result.output), summary=_summary(result))


def cmd_evaluate(args: argparse.Namespace, events: EventStream, cancel: CancelToken) -> None:
    import json

    from .eval.metrics import EvalSettings
    from .eval.quality import evaluate_result

    metrics = evaluate_result(args.result, args.gt, EvalSettings(samples=args.samples))
    s = metrics["summary"]
    events.info("ground-truth metrics", **s)
    if args.out is not None:
        args.out.write_text(json.dumps(metrics, indent=1))
    events.done(result=str(args.out) if args.out else None,
                summary=f"CD x1e3 {s['chamfer_x1e3']:.4f}, NC {s['normal_consistency']:.4f}, "
                f"point-to-surface {s['point_to_surface_mm']:.2f} mm, acceleration error "
                f"{s.get('acceleration_error_mm', float('nan')):.3f} mm/frame^2")


def cmd_bench_poisson(args: argparse.Namespace, events: EventStream, cancel: CancelToken) -> None:
    from .mesh.bench import run_poisson_bench

    rows = run_poisson_bench(events, cancel, sizes=tuple(args.vertices), frames=args.frames)
    events.done(result=None, summary="\n".join(str(row) for row in rows))


def _add_body_parser(sub) -> None:
    from .body.anny_body import DEFAULT_TOPOLOGY, TOPOLOGIES
    from .body.motions import MOTIONS

    p = sub.add_parser("body", help="write a body.npz: an Anny body doing a procedural "
                       "motion, or SMPL/SMPL-X from a pose parameter sequence")
    kinds = p.add_subparsers(dest="body_source", required=True, metavar="SOURCE")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, required=True, help="body.npz to write")
    common.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    common.add_argument("--start-frame", type=int, default=1,
                        help="Blender frame number of the first frame (default 1)")
    common.add_argument("--pose-components", type=int, default=4,
                        help="PCA components of the pose code (default 4, as NGD)")
    common.add_argument("--no-posed-vertices", action="store_true",
                        help="leave the per-frame body vertices out (smaller file)")

    a = kinds.add_parser("anny", parents=[common],
                         help="Anny (built in, offline) doing a procedural motion")
    a.add_argument("--motion", choices=sorted(MOTIONS), default="walk")
    a.add_argument("--frames", type=int, default=60, help="number of frames (default 60)")
    a.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
    a.add_argument("--topology", choices=TOPOLOGIES, default=DEFAULT_TOPOLOGY,
                   help=f"Anny mesh (default {DEFAULT_TOPOLOGY}; notoes_collapse10pc is "
                   "a 1.2k-vertex one for quick tests)")
    for name in ("gender", "age", "muscle", "weight", "height", "proportions"):
        a.add_argument(f"--{name}", type=float, default=0.5,
                       help=f"phenotype {name} in [0, 1] (default 0.5)")

    s = kinds.add_parser("smpl", parents=[common],
                         help="SMPL or SMPL-X from your model files and a parameter sequence")
    s.add_argument("--model", type=Path, required=True,
                   help="folder holding SMPL_<GENDER>.pkl / SMPLX_<GENDER>.npz (or the file)")
    s.add_argument("--params", type=Path, required=True,
                   help=".npz/.pkl with global_orient, body_pose, transl, betas per frame")
    s.add_argument("--type", choices=["smpl", "smplx"], default="smpl")
    s.add_argument("--gender", choices=["neutral", "female", "male"], default="neutral")
    s.add_argument("--fps", type=float, default=None,
                   help="frames per second (default: from the file, else 30)")
    p.set_defaults(func=cmd_body)


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

    p = sub.add_parser("setup-env", help="create a virtual environment and pip-install the "
                       "backend's requirements into it (stdlib only: runs under Blender's Python)")
    p.add_argument("--target", type=Path, required=True, help="folder of the new venv")
    p.add_argument("--requirements", type=Path, required=True, help="pip requirements file")
    p.add_argument("--constraints", type=Path, default=None, help="pip constraints file")
    p.add_argument("--pip-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for pip install (repeat; e.g. --pip-arg=--no-index)")
    p.add_argument("--check-import", action="append", default=None, metavar="MODULE",
                   help="module the new venv must import (repeat; default: torch, numpy)")
    p.set_defaults(func=cmd_setup_env)

    _add_body_parser(sub)

    from .synthetic.cli import add_synth_parser

    add_synth_parser(sub)

    p = sub.add_parser("run", help="run a job file written by Blender (job.json)")
    p.add_argument("job", type=Path, help="job.json: capture, output, settings, seed")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("reconstruct", help="reconstruct the garment of a capture folder")
    p.add_argument("capture", type=Path, help="capture folder (holding capture.json)")
    p.add_argument("--out", type=Path, required=True,
                   help="result folder (a re-run on it resumes from its checkpoint)")
    p.add_argument("--preset", default="standard", help="draft, standard or high")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--rasterizer", default="auto", choices=["auto", "torch", "nvdiffrast"])
    p.add_argument("--method", default="ngd", choices=["ngd", "displacement"],
                   help="ngd (Jacobian fields, default) or the per-vertex baseline")
    p.add_argument("--remesh", action=argparse.BooleanOptionalAction, default=None,
                   help="adaptive remeshing on or off (default: the preset's)")
    p.add_argument("--texture", choices=["none", "static", "dynamic"], default=None,
                   help="static texture (default), also per-frame dynamic textures with the "
                   "footage's lighting, or none")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frame-start", type=int, default=None)
    p.add_argument("--frame-end", type=int, default=None)
    p.add_argument("--drop-empty-masks", action="store_true")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("evaluate", help="score a result against a synthetic capture's gt/")
    p.add_argument("result", type=Path, help="result folder (holding garment.npz)")
    p.add_argument("--gt", type=Path, required=True, help="CAPTURE/gt folder")
    p.add_argument("--samples", type=int, default=10000, help="surface samples per mesh")
    p.add_argument("--out", type=Path, default=None, help="write the metrics as JSON here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("bench", help="benchmarks that print figures")
    bench = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    q = bench.add_parser("body", help="Anny track build time and LBS throughput")
    q.set_defaults(func=cmd_bench_body)
    q = bench.add_parser("raster", help="ms per forward+backward of the full render pass set")
    q.add_argument("--device", action="append", default=None,
                   help="cpu, cuda or cuda:N; repeat for several (default: cpu, and cuda "
                   "when present)")
    q.add_argument("--resolution", type=int, nargs="+", default=[256, 512])
    q.add_argument("--faces", type=int, default=20000)
    q.add_argument("--repeats", type=int, default=10)
    q.add_argument("--rasterizer", default="torch", choices=["torch", "nvdiffrast", "auto"])
    q.set_defaults(func=cmd_bench_raster)
    q = bench.add_parser("poisson", help="Poisson factorisation and solve times vs scipy")
    q.add_argument("--vertices", type=int, nargs="+", default=[5000, 20000, 50000])
    q.add_argument("--frames", type=int, default=8)
    q.set_defaults(func=cmd_bench_poisson)
    from .recon.bench import add_quality_parser  # stdlib-only at import; torch loads on run
    from .recon.texture_bench import add_texture_parser

    add_quality_parser(bench)
    add_texture_parser(bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log_path = args.job_dir / LOG_FILE if args.job_dir is not None else None
    events = EventStream(out=sys.stdout, log_path=log_path, text=args.format == "text")
    # stdout carries only events: libraries that print (warp, smplx) go to stderr
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        return run_command(args.func, args, events, CancelToken(args.job_dir))
    finally:
        sys.stdout = real_stdout
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
