"""``python -m backend synth ...``: the backend half of synthetic captures.

Only argparse here: the numeric modules load when the command runs, so that building
the CLI stays light (``backend.cli`` must not import torch).
"""

from __future__ import annotations

import argparse
from pathlib import Path

PHENOTYPE_FIELDS = ("gender", "age", "muscle", "weight", "height", "proportions")


def cmd_synth_prepare(args: argparse.Namespace, events, cancel) -> None:
    from ..body.anny_body import AnnyPhenotype
    from .prepare import PrepareSettings, prepare

    settings = PrepareSettings(
        garment=args.garment, motion=args.motion, frames=args.frames,
        settle_frames=args.settle_frames, fps=args.fps, seed=args.seed, edge_m=args.edge_m,
        texture=args.texture, texture_size=args.texture_size, topology=args.topology,
        phenotype=AnnyPhenotype(**{k: getattr(args, k) for k in PHENOTYPE_FIELDS}),
    )
    result = prepare(settings, args.out, overwrite=args.overwrite, events=events,
                     cancel=cancel)
    info = result.info
    p = info["pattern"]
    events.info("pattern", **{k: p[k] for k in ("vertices", "faces", "panels", "sew_pairs",
                                                "pinned", "clearance_min_m",
                                                "seam_gap_max_m", "min_angle_deg")})
    first, last = info["capture_frames"]
    events.done(result=str(result.out), summary=(
        f"{result.out}: {settings.garment} ({p['vertices']} vertices, {p['panels']} "
        f"panels, {p['sew_pairs']} sewing pairs) on an Anny {settings.motion}, frames "
        f"1..{info['frame_end']} (captured {first}..{last}), {result.texture_kind} texture"))


def add_synth_parser(sub) -> None:
    """Register ``synth prepare`` on the main parser's subcommands."""
    from ..body.anny_body import DEFAULT_TOPOLOGY

    p = sub.add_parser("synth", help="synthetic captures: prepare the body, the garment's "
                       "sewing pattern and its texture for the Blender simulation")
    kinds = p.add_subparsers(dest="synth_command", required=True, metavar="STEP")
    q = kinds.add_parser(
        "prepare", help="write WORK/body_sim.npz, pattern.npz, texture.png, prepare.json",
        description="Frames 1..S are the settle lead-in (rest pose easing into the "
        "motion), frames S+1..S+N the captured motion.")
    q.add_argument("--garment", required=True,
                   help="skirt, flared_skirt, trousers, shorts, tshirt, long_sleeve or dress")
    q.add_argument("--motion", default="walk", help="walk, turn, arm_raise or sway "
                   "(default walk)")
    q.add_argument("--frames", type=int, default=30, help="captured frames N (default 30)")
    q.add_argument("--settle-frames", type=int, default=20,
                   help="lead-in frames S before them (default 20)")
    q.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
    q.add_argument("--seed", type=int, default=0,
                   help="fixes the texture and, with --texture auto, its kind (default 0)")
    q.add_argument("--edge-m", type=float, default=0.02,
                   help="garment triangle edge length, metres (default 0.02)")
    q.add_argument("--texture", default="auto",
                   help="auto, print, stripes, checks or plain (default auto: by seed)")
    q.add_argument("--texture-size", type=int, default=1024,
                   help="texture.png side, pixels (default 1024)")
    q.add_argument("--topology", default=DEFAULT_TOPOLOGY,
                   help=f"Anny mesh (default {DEFAULT_TOPOLOGY}; notoes_collapse10pc is a "
                   "1.2k-vertex one for quick tests)")
    for name in PHENOTYPE_FIELDS:
        q.add_argument(f"--{name}", type=float, default=0.5,
                       help=f"Anny phenotype {name} in [0, 1] (default 0.5)")
    q.add_argument("--out", type=Path, required=True, help="the work folder WORK")
    q.add_argument("--overwrite", action="store_true",
                   help="replace the four files in a non-empty WORK")
    q.set_defaults(func=cmd_synth_prepare)
