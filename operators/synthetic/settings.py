"""What a synthetic capture is made of: garment, motion, frames, quality; the presets.

Plain Python (no bpy): the command line, the Add Demo Scene operator and the tests
share these. ``SynthSettings.backend_args`` is the argument list of
``python -m backend synth prepare`` for the backend half of the work.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..base import GarmentError

GARMENTS = ("skirt", "flared_skirt", "dress", "tshirt", "long_sleeve", "trousers", "shorts")
"""Garment types the pattern generator makes (the capture's garment_type)."""
MOTIONS = ("walk", "turn", "arm_raise", "sway")
"""Anny's procedural motions (backend.body.motions)."""
TEXTURES = ("auto", "print", "stripes", "checks", "plain")
CAMERAS = ("orbit", "static")
FRAMINGS = ("person", "garment")
"""What the main camera keeps in frame: the whole person, or the garment alone (a
close shot: about twice the pixels on the garment, for fine folds)."""
LIGHTINGS = ("studio", "outdoor", "overcast")
BACKGROUNDS = ("gradient", "plain", "noise")
ESTIMATES = ("normals", "depth")
FULL_TOPOLOGY = "default"
"""Marker for Anny's default (13.7k-vertex) topology: no --topology argument."""
DEFAULT_SECOND_VIEW_DEG = 90.0
"""Azimuth offset of the second camera when one is asked for without an angle."""


@dataclass(frozen=True)
class SynthSettings:
    """One synthetic capture.

    Attributes:
        garment, motion: see GARMENTS / MOTIONS.
        frames: captured frames N (Blender frames S+1 .. S+N).
        settle_frames: S lead-in frames: the body goes from its rest pose into the
            motion while the cloth settles; simulated, never captured.
        fps: frames per second of the motion and the capture.
        resolution: square image size in pixels.
        samples: Cycles samples per pixel.
        edge_m: target edge length of the garment pattern (metres).
        topology: Anny topology name, or FULL_TOPOLOGY for the default one.
        cloth: cloth profile of operators.synthetic.cloth ("coarse" or "default").
        texture: fabric texture kind; texture_size: its square size in pixels.
        camera: "orbit" (a keyframed arc around the body) or "static".
        orbit_deg: degrees the orbiting camera turns over the captured frames.
        framing: see FRAMINGS.
        background: the plate behind the person; lighting: a look.LIGHTING_PRESETS
            name; floor: a shadow-catching floor (about 4x the render time).
        estimated: GT maps also given to the capture as if an estimator made them
            (subset of ESTIMATES); estimate_noise is the std of the normal noise
            (unit vectors) and of the depth noise (metres); estimate_blur_px blurs both.
        second_view_deg: None (the default) = one camera only. An angle = also render
            the captured frames from a second camera this many degrees of azimuth
            from the main one (positive = counter-clockwise seen from above), for
            evaluation on a view training never sees: ``gt/second_view/`` (see
            ``second_view``). It follows the main camera's orbit at that offset.
        seed: fixes everything random (pattern, texture, look, sampling).
    """

    garment: str = "skirt"
    motion: str = "walk"
    frames: int = 30
    settle_frames: int = 12
    fps: float = 30.0
    resolution: int = 256
    samples: int = 16
    edge_m: float = 0.025
    topology: str = FULL_TOPOLOGY
    cloth: str = "default"
    texture: str = "auto"
    texture_size: int = 512
    camera: str = "orbit"
    orbit_deg: float = 60.0
    framing: str = "person"
    background: str = "gradient"
    lighting: str = "studio"
    floor: bool = True
    estimated: tuple[str, ...] = ()
    estimate_noise: float = 0.0
    estimate_blur_px: float = 0.0
    second_view_deg: float | None = None
    seed: int = 0

    def __post_init__(self):
        problems = self.problems()
        if problems:
            raise GarmentError("Synthetic capture settings: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Every invalid setting, named with the value that was given."""
        out = []
        for name, allowed in (("garment", GARMENTS), ("motion", MOTIONS),
                              ("texture", TEXTURES), ("camera", CAMERAS), ("framing", FRAMINGS),
                              ("background", BACKGROUNDS), ("lighting", LIGHTINGS)):
            value = getattr(self, name)
            if value not in allowed:
                out.append(f"{name} {value!r} is not one of {', '.join(allowed)}")
        for name in self.estimated:
            if name not in ESTIMATES:
                out.append(f"estimated {name!r} is not one of {', '.join(ESTIMATES)}")
        for name, low in (("frames", 1), ("settle_frames", 2), ("resolution", 16),
                          ("samples", 1), ("texture_size", 16)):
            if getattr(self, name) < low:
                out.append(f"{name} must be >= {low}, got {getattr(self, name)}")
        if not 0.005 <= self.edge_m <= 0.2:
            out.append(f"edge_m must be in [0.005, 0.2] m, got {self.edge_m}")
        if not self.fps > 0:
            out.append(f"fps must be > 0, got {self.fps}")
        if self.estimate_noise < 0 or self.estimate_blur_px < 0:
            out.append("estimate_noise and estimate_blur_px must be >= 0")
        if self.second_view_deg is not None:
            offset = self.second_view_deg
            if (isinstance(offset, bool) or not isinstance(offset, (int, float))
                    or not math.isfinite(offset)):
                out.append(f"second_view_deg must be a finite angle or None, got {offset!r}")
            elif abs((offset + 180.0) % 360.0 - 180.0) < 1.0:
                out.append(f"second_view_deg {offset} puts the second camera where the "
                           "main one is; choose an offset at least 1 degree away")
        return out

    @property
    def second_view(self) -> bool:
        """Whether a second camera renders ``gt/second_view/``."""
        return self.second_view_deg is not None

    @property
    def first_frame(self) -> int:
        """First captured Blender frame (the sim starts at frame 1)."""
        return self.settle_frames + 1

    @property
    def capture_frames(self) -> tuple[int, ...]:
        return tuple(range(self.first_frame, self.first_frame + self.frames))

    @property
    def sim_frames(self) -> tuple[int, int]:
        """(first, last) Blender frames the cloth is simulated over."""
        return 1, self.settle_frames + self.frames

    def backend_args(self, work_dir) -> list[str]:
        """Arguments of ``python -m backend`` that prepare body, pattern and texture."""
        args = ["synth", "prepare", "--garment", self.garment, "--motion", self.motion,
                "--frames", str(self.frames), "--settle-frames", str(self.settle_frames),
                "--fps", repr(float(self.fps)), "--seed", str(self.seed),
                "--edge-m", repr(float(self.edge_m)), "--texture", self.texture,
                "--texture-size", str(self.texture_size), "--out", str(work_dir),
                "--overwrite"]
        if self.topology != FULL_TOPOLOGY:
            args += ["--topology", self.topology]
        return args

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["estimated"] = list(self.estimated)
        return out


PRESETS: dict[str, SynthSettings] = {
    # the test suite's capture: coarse everything, well under a minute on 2 cores
    "tiny": SynthSettings(frames=8, settle_frames=10, resolution=128, samples=8, edge_m=0.045,
                          topology="notoes_collapse10pc", cloth="coarse", texture_size=256,
                          orbit_deg=30.0, floor=False),
    # the README's demo
    "demo": SynthSettings(frames=30, settle_frames=12, resolution=256, samples=16,
                          edge_m=0.025, texture_size=512, orbit_deg=60.0),
    # the quality benchmark; its second view is the texture benchmark's novel view
    "bench": SynthSettings(frames=60, settle_frames=15, resolution=512, samples=16,
                           edge_m=0.02, texture_size=1024, orbit_deg=90.0, floor=False,
                           second_view_deg=DEFAULT_SECOND_VIEW_DEG),
}


def preset(name: str, **overrides) -> SynthSettings:
    """The preset ``name`` with some settings replaced (checked again)."""
    if name not in PRESETS:
        raise GarmentError(f"Unknown synthetic preset {name!r}; choose one of "
                           f"{', '.join(PRESETS)}")
    unknown = set(overrides) - {f.name for f in dataclasses.fields(SynthSettings)}
    if unknown:
        raise GarmentError(f"Unknown synthetic setting(s): {', '.join(sorted(unknown))}")
    return dataclasses.replace(PRESETS[name], **overrides)
