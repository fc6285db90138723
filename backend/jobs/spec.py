"""job.json: what a reconstruction job reads (written by the Blender operator or by hand).

Example::

    {
      "version": 1,
      "capture": "capture",           # relative paths are relative to job.json's folder
      "output": "result",
      "seed": 0,
      "settings": {"preset": "standard", "device": "auto", "rasterizer": "auto"}
    }

Every key is checked (``backend.config``): an unknown or misspelt key is an error
that names it, never silently ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from ..config import from_dict, to_dict
from ..errors import ConfigError
from ..fileio import atomic_write

JOB_VERSION = 1
JOB_FILE = "job.json"

Device = Literal["auto", "cpu", "cuda"]
Rasterizer = Literal["auto", "torch", "nvdiffrast"]
Preset = Literal["draft", "standard", "high"]
Texture = Literal["none", "static", "dynamic"]


@dataclass(frozen=True)
class JobSettings:
    """Settings shared by every job kind.

    Attributes:
        preset: quality preset; later stages derive their step counts from it.
        device: "auto" picks CUDA when torch sees a GPU, else the CPU.
        rasterizer: "auto" uses nvdiffrast only if it imports and gets a CUDA
            context; "torch" is our own rasterizer (CPU and CUDA). nvdiffrast's
            licence is non-commercial.
        drop_empty_masks: leave out frames whose mask is empty instead of failing.
        frame_start, frame_end: inclusive Blender frame range to use; None = all.
        remesh: adaptive remeshing during reconstruction on or off; None = the preset's.
        texture: "static" (UVs + texture.png), "dynamic" (also per-frame textures with
            the footage's lighting), "none"; None = the preset's.
    """

    preset: Preset = "standard"
    device: Device = "auto"
    rasterizer: Rasterizer = "auto"
    drop_empty_masks: bool = False
    frame_start: int | None = None
    frame_end: int | None = None
    remesh: bool | None = None
    texture: Texture | None = None


@dataclass(frozen=True)
class JobSpec:
    """A job: which capture, where the result goes, with which settings.

    ``capture`` and ``output`` are absolute after ``load_job``.
    """

    capture: Path
    output: Path
    settings: JobSettings = field(default_factory=JobSettings)
    seed: int = 0
    version: int = JOB_VERSION


def load_job(path: Path | str) -> JobSpec:
    """Read job.json; relative paths resolve against its folder.

    Raises:
        ConfigError: missing/unreadable file, bad JSON, unknown version, or any
            unknown, missing or mistyped key (named in the message).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: job file is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and data.get("version", JOB_VERSION) != JOB_VERSION:
        raise ConfigError(
            f"{path}: unknown job version {data['version']!r}; this backend reads {JOB_VERSION}"
        )
    spec = from_dict(JobSpec, data, str(path))
    s = spec.settings
    if s.frame_start is not None and s.frame_end is not None and s.frame_start > s.frame_end:
        raise ConfigError(
            f"{path}: settings.frame_start ({s.frame_start}) is after "
            f"settings.frame_end ({s.frame_end})"
        )
    base = path.parent.resolve()
    return replace(spec, capture=base / spec.capture, output=base / spec.output)


def save_job(spec: JobSpec, path: Path | str) -> Path:
    """Write job.json atomically (temp file, then rename)."""
    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(to_dict(spec), indent=1))
    return path
