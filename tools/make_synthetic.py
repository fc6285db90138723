"""Generate synthetic captures in batch: Blender cloth on an Anny body, rendered with Cycles.

Usage (with the bpy module, e.g. this project's venv):

    .venv/bin/python tools/make_synthetic.py --preset demo --garment skirt --motion walk \\
        --out captures/skirt_walk

Each run writes one capture folder (``python -m backend validate`` accepts it) with
``gt/``: per-frame garment vertices, faces, UVs, the texture, normal and depth maps, the
scene as ``scene.blend``, a contact sheet and ``synth.json`` (settings, stage times,
checks). Presets: tiny (8 frames, 128^2, tests), demo (30 frames, 256^2), bench (60
frames, 512^2); any setting can be overridden. The backend half (body, pattern,
texture) runs as ``python -m backend synth prepare`` with this interpreter.
``--second-view [DEG]`` (on for bench, off for tiny and demo; ``--no-second-view``
turns it off) also renders every frame from a second camera DEG degrees of azimuth
(default 90) from the main one, following its orbit, into ``gt/second_view/`` (a
capture bundle: capture.json, frames/, masks/) for evaluation on a view training
never sees. ``--framing garment`` frames the garment alone instead of the whole
person (about twice the pixels on the garment, for fine folds).
Several garments at once: ``--garment skirt tshirt ...`` writes OUT/<garment>_<motion>.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "garment_recon"


def load_extension():
    """The checkout's operators.synthetic, imported as ``garment_recon.operators...``."""
    if PACKAGE not in sys.modules:
        package = types.ModuleType(PACKAGE)
        package.__path__ = [str(REPO)]  # a package without running its register-only __init__
        sys.modules[PACKAGE] = package
    return (importlib.import_module(f"{PACKAGE}.operators.synthetic.generate"),
            importlib.import_module(f"{PACKAGE}.operators.synthetic.settings"))


def backend_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("ANNY_CACHE_DIR", str(REPO / ".cache" / "anny"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def build_parser(settings_module) -> argparse.ArgumentParser:
    s = settings_module
    p = argparse.ArgumentParser(prog="tools/make_synthetic.py", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="capture folder to write")
    p.add_argument("--preset", choices=sorted(s.PRESETS), default="demo")
    p.add_argument("--garment", nargs="+", choices=s.GARMENTS, default=["skirt"])
    p.add_argument("--motion", choices=s.MOTIONS, default="walk")
    p.add_argument("--frames", type=int, help="captured frames (preset's by default)")
    p.add_argument("--settle-frames", type=int, help="simulated lead-in frames")
    p.add_argument("--resolution", type=int, help="square image size in pixels")
    p.add_argument("--samples", type=int, help="Cycles samples per pixel")
    p.add_argument("--edge-m", type=float, help="garment edge length in metres")
    p.add_argument("--texture", choices=s.TEXTURES)
    p.add_argument("--camera", choices=s.CAMERAS)
    p.add_argument("--orbit-deg", type=float)
    p.add_argument("--framing", choices=s.FRAMINGS,
                   help="keep the whole person in frame (default) or only the garment")
    p.add_argument("--background", choices=s.BACKGROUNDS)
    p.add_argument("--estimated", nargs="*", choices=s.ESTIMATES, default=None,
                   help="also give the capture the GT normal/depth maps as 'estimated' ones")
    p.add_argument("--estimate-noise", type=float)
    p.add_argument("--estimate-blur-px", type=float)
    view = p.add_mutually_exclusive_group()
    view.add_argument("--second-view", type=float, nargs="?", const=s.DEFAULT_SECOND_VIEW_DEG,
                      metavar="DEG",
                      help="also render a second camera DEG degrees of azimuth from the "
                           f"main one (default {s.DEFAULT_SECOND_VIEW_DEG:g}) into "
                           "gt/second_view (the bench preset has it)")
    view.add_argument("--no-second-view", action="store_true",
                      help="no second camera, even for the bench preset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier synthetic capture in --out")
    p.add_argument("--no-blend", action="store_true", help="do not save gt/scene.blend")
    return p


def overrides(args) -> dict:
    names = ("frames", "settle_frames", "resolution", "samples", "edge_m", "texture",
             "camera", "orbit_deg", "framing", "background", "estimate_noise", "estimate_blur_px")
    out = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if args.estimated is not None:
        out["estimated"] = tuple(args.estimated)
    if args.no_second_view:
        out["second_view_deg"] = None
    elif args.second_view is not None:
        out["second_view_deg"] = args.second_view
    out["motion"], out["seed"] = args.motion, args.seed
    return out


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    generate, settings_module = load_extension()
    args = build_parser(settings_module).parse_args(argv)
    import bpy

    GarmentError = importlib.import_module(f"{PACKAGE}.operators.base").GarmentError

    last = {"stage": None}

    def progress(stage: str, step: int, total: int) -> None:
        if stage != last["stage"] or step == total:
            print(f"  {stage}: {step}/{total}", file=sys.stderr, flush=True)
            last["stage"] = stage

    for garment in args.garment:
        out = args.out if len(args.garment) == 1 else args.out / f"{garment}_{args.motion}"
        try:
            settings = settings_module.preset(args.preset, garment=garment, **overrides(args))
            bpy.ops.wm.read_homefile(use_empty=True)
            start = time.perf_counter()
            result = generate.generate_capture(
                bpy.context.scene, settings, out, python=sys.executable,
                env=backend_environment(), progress=progress, overwrite=args.overwrite,
                save_blend=not args.no_blend)
        except GarmentError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
        times = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
        print(f"{out}: {len(settings.capture_frames)} frames at {settings.resolution}^2 in "
              f"{time.perf_counter() - start:.1f} s ({times}); {result.stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
