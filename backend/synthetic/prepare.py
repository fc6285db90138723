"""``python -m backend synth prepare``: everything a synthetic capture's Blender side needs.

Writes a work folder (layouts in ``backend.synthetic.patterns`` and ``backend.body``):

- ``body_sim.npz``: the Anny body (body.npz format, ``backend.body.save_body``) over the
  whole simulation, frames 1..S+N: S settle frames from the rest pose into the motion's
  first pose (``backend.synthetic.leadin``), then the N motion frames (the captured
  ones), with posed vertices and a pose code fitted on all frames.
- ``pattern.npz``: the garment's panels, placed around the body as frame 1 places it.
- ``texture.png``: the garment's ground-truth texture (the pattern's UV layout).
- ``prepare.json``: the arguments, the frame ranges, the files, the body's measurements,
  pattern statistics, timings (``PREPARE_FILE`` keys below).

The three data files are byte-identical for the same arguments (prepare.json also
holds timings). Frame 1 is the rest pose: its bone transforms are all the same
translation, which is what places the pattern in the world.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..body.anny_body import DEFAULT_TOPOLOGY, TOPOLOGIES, AnnyPhenotype
from ..body.motions import MOTIONS
from ..fileio import atomic_write
from .errors import SynthError
from .leadin import LeadIn
from .patterns import EDGE_RANGE_M, GARMENT_TYPES
from .textures import SIZE_RANGE, TEXTURE_KINDS

log = logging.getLogger(__name__)

BODY_FILE = "body_sim.npz"
PATTERN_FILE = "pattern.npz"
TEXTURE_FILE = "texture.png"
PREPARE_FILE = "prepare.json"
OUTPUT_FILES = (BODY_FILE, PATTERN_FILE, TEXTURE_FILE, PREPARE_FILE)
PREPARE_VERSION = 1
MAX_FRAMES = 10000


@dataclass(frozen=True)
class PrepareSettings:
    """Arguments of ``synth prepare`` (validated when built; errors are SynthError).

    Attributes:
        garment: a capture garment type (``GARMENT_TYPES``).
        motion: a procedural motion (``backend.body.motions.MOTIONS``).
        frames: captured motion frames N (>= 1).
        settle_frames: lead-in frames S before them (>= 1).
        fps: frames per second.
        seed: fixes the texture (and, for ``texture="auto"``, its kind).
        edge_m: target edge length of the garment's triangles, metres.
        texture: "auto" or one of ``TEXTURE_KINDS``.
        texture_size: side of texture.png, pixels.
        topology: Anny mesh (``TOPOLOGIES``).
        phenotype: Anny's body shape.
        hold_fraction: share of the lead-in spent standing still in the rest pose.
        pose_components: PCA components of the body's pose code.
    """

    garment: str
    motion: str = "walk"
    frames: int = 30
    settle_frames: int = 20
    fps: float = 30.0
    seed: int = 0
    edge_m: float = 0.02
    texture: str = "auto"
    texture_size: int = 1024
    topology: str = DEFAULT_TOPOLOGY
    phenotype: AnnyPhenotype = field(default_factory=AnnyPhenotype)
    hold_fraction: float = 0.3
    pose_components: int = 4

    def __post_init__(self):
        problems = []
        if self.garment not in GARMENT_TYPES:
            problems.append(f"unknown garment type {self.garment!r}; choose one of "
                            f"{', '.join(GARMENT_TYPES)}")
        if self.motion not in MOTIONS:
            problems.append(f"unknown motion {self.motion!r}; choose one of "
                            f"{', '.join(MOTIONS)}")
        if not _is_int(self.frames) or not 1 <= self.frames <= MAX_FRAMES:
            problems.append(f"frames must be an integer from 1 to {MAX_FRAMES}; "
                            f"got {self.frames}")
        if not _is_int(self.settle_frames) or not 1 <= self.settle_frames <= MAX_FRAMES:
            problems.append("settle frames must be an integer from 1 to "
                            f"{MAX_FRAMES} (frame 1 is the rest pose); got {self.settle_frames}")
        if not (isinstance(self.fps, int | float) and math.isfinite(self.fps) and self.fps > 0):
            problems.append(f"fps must be > 0; got {self.fps}")
        if not _is_int(self.seed) or self.seed < 0:
            problems.append(f"seed must be an integer >= 0; got {self.seed}")
        lo, hi = EDGE_RANGE_M
        if not (isinstance(self.edge_m, int | float) and lo <= self.edge_m <= hi):
            problems.append(f"edge length must be between {lo} and {hi} m; got {self.edge_m}")
        if self.texture != "auto" and self.texture not in TEXTURE_KINDS:
            problems.append(f"unknown texture {self.texture!r}; choose auto or one of "
                            f"{', '.join(TEXTURE_KINDS)}")
        lo, hi = SIZE_RANGE
        if not _is_int(self.texture_size) or not lo <= self.texture_size <= hi:
            problems.append(f"texture size must be an integer from {lo} to {hi} pixels; "
                            f"got {self.texture_size}")
        if self.topology not in TOPOLOGIES:
            problems.append(f"unknown Anny topology {self.topology!r}; choose one of "
                            f"{', '.join(TOPOLOGIES)}")
        if not 0.0 <= self.hold_fraction < 1.0:
            problems.append(f"hold fraction must be in [0, 1); got {self.hold_fraction}")
        if not _is_int(self.pose_components) or self.pose_components < 1:
            problems.append(f"pose components must be >= 1; got {self.pose_components}")
        if problems:
            raise SynthError("synth prepare: " + "; ".join(problems))

    def as_dict(self) -> dict:
        out = asdict(self)
        out["phenotype"] = asdict(self.phenotype)
        return out


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass(frozen=True)
class PrepareResult:
    """What ``prepare`` wrote: the folder, the resolved texture kind, the summary
    written to prepare.json."""

    out: Path
    texture_kind: str
    info: dict


def check_output(out: Path, overwrite: bool) -> None:
    """Refuse to write into a file, or into a non-empty folder unless ``overwrite``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out}: exists and is not a folder; the work folder must be a "
                         "folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise SynthError(f"{out}: folder exists and is not empty; pass --overwrite to "
                         f"replace its {', '.join(OUTPUT_FILES)}")


def prepare(settings: PrepareSettings, out: Path | str, overwrite: bool = False,
            events=None, cancel=None) -> PrepareResult:
    """Write the work folder ``out`` (see the module docstring).

    Args:
        settings: what to prepare.
        out: the work folder (created; with ``overwrite``, the four files are replaced
            and anything else there is left alone).
        events: a ``backend.jobs.events.EventStream`` for progress, or None.
        cancel: a ``backend.jobs.cancel.CancelToken`` checked between stages, or None.
    """
    from ..body.anny_body import AnnyPoser
    from ..body.bundle import save_body
    from ..body.motions import make_motion
    from ..capture.images import write_png
    from .leadin import simulation_track
    from .npzio import freeze_npz
    from .patterns import PatternSettings, make_pattern, save_pattern
    from .textures import make_texture

    out = Path(out)
    check_output(out, overwrite)
    stages = 5
    timings: dict[str, float] = {}

    def step(k: int, name: str) -> float:
        if cancel is not None:
            cancel.check()
        if events is not None:
            events.progress("prepare", k, stages)
        log.info("synth prepare: %s", name)
        return time.perf_counter()

    t = step(0, "body model")
    if events is not None:
        events.info(f"loading Anny ({settings.topology}); its first use builds a cache, "
                    "about a minute")
    poser = AnnyPoser(settings.phenotype, settings.topology)
    timings["body_model_s"] = time.perf_counter() - t

    t = step(1, "body track")
    motion = make_motion(settings.motion, settings.frames, settings.fps)
    lead_in = LeadIn(settings.settle_frames, settings.hold_fraction)
    track = simulation_track(poser, motion, settings.fps, lead_in, settings.pose_components)
    timings["body_track_s"] = time.perf_counter() - t

    t = step(2, "pattern")
    pattern = make_pattern(poser.body, settings.garment, PatternSettings(edge_m=settings.edge_m))
    timings["pattern_s"] = time.perf_counter() - t

    t = step(3, "texture")
    pixels, kind = make_texture(settings.texture, settings.texture_size, settings.seed)
    timings["texture_s"] = time.perf_counter() - t

    t = step(4, "write")
    out.mkdir(parents=True, exist_ok=True)
    save_body(out / BODY_FILE, poser.body, track)
    freeze_npz(out / BODY_FILE)             # np.savez stamps the time: make it reproducible
    frame1 = track.bone_transforms[0, 0].astype(np.float64)
    save_pattern(out / PATTERN_FILE, pattern, frame1, poser.body.bone_names, kind)
    write_png(out / TEXTURE_FILE, pixels)
    timings["write_s"] = time.perf_counter() - t

    settle, frames = settings.settle_frames, settings.frames
    info = {
        "version": PREPARE_VERSION,
        "settings": settings.as_dict(),
        "texture_kind": kind,
        "files": {"body": BODY_FILE, "pattern": PATTERN_FILE, "texture": TEXTURE_FILE},
        "frame_start": 1,
        "frame_end": settle + frames,
        "settle_frames": [1, settle],
        "capture_frames": [settle + 1, settle + frames],
        "fps": settings.fps,
        "frame1_translation_m": [round(float(x), 6) for x in frame1[:3, 3]],
        "body": {"source": poser.body.source, "vertices": poser.body.vertex_count,
                 "faces": int(len(poser.body.faces)), "bones": poser.body.bone_count},
        "measurements_m": pattern.measurements.as_dict(),
        "pattern": {"garment_type": pattern.garment_type,
                    "panel_names": list(pattern.panel_names),
                    **{k: (round(v, 6) if isinstance(v, float) else v)
                       for k, v in pattern.stats.items()}},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    with atomic_write(out / PREPARE_FILE) as tmp:
        tmp.write_text(json.dumps(info, indent=1) + "\n")
    if events is not None:
        events.progress("prepare", stages, stages)
    return PrepareResult(out=out, texture_kind=kind, info=info)
