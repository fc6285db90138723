"""``python -m backend doctor``: can this Python run reconstructions, and how fast?

Each check is a ``CheckResult``; the job emits one ``info`` event per check (with
its data), then ``done`` with a human-readable summary, or ``error`` when a
required check failed (the summary then names what to install).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BackendError
from .jobs.cancel import CancelToken
from .jobs.events import EventStream

log = logging.getLogger(__name__)

LOW_DISK_BYTES = 2 * 1024**3
"""Below this much free space in the working folder, doctor warns."""

TORCH_PIN = "torch==2.13.0"


@dataclass
class CheckResult:
    """One diagnostic line.

    name: short label ("torch"); ok: whether it passed; required: whether the
    backend cannot work without it; detail: one line for the summary; hint: what to
    do when it failed; data: machine-readable facts for the event.
    """

    name: str
    ok: bool
    detail: str
    required: bool = False
    hint: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        mark = "ok  " if self.ok else ("FAIL" if self.required else "--  ")
        return f"[{mark}] {self.name}: {self.detail}"


def check_python() -> CheckResult:
    version = platform.python_version()
    ok = sys.version_info >= (3, 10)
    return CheckResult(
        "python", ok, f"{version} ({sys.executable})", required=True,
        hint=None if ok else "use Python 3.10 or newer (Blender 4.2+ ships 3.11)",
        data={"version": version, "executable": sys.executable},
    )


def check_package(module: str, dist: str, required: bool, hint: str) -> CheckResult:
    """Import ``module`` and report the installed version of distribution ``dist``."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # a broken install raises more than ImportError
        return CheckResult(dist, False, f"not importable ({type(exc).__name__}: {exc})",
                           required=required, hint=hint)
    version = _dist_version(dist)
    return CheckResult(dist, True, version, required=required, data={"version": version})


def check_torch() -> CheckResult:
    try:
        import torch
    except Exception as exc:
        return CheckResult(
            "torch", False, f"not importable ({type(exc).__name__}: {exc})", required=True,
            hint=f"install it in this Python: pip install {TORCH_PIN}",
        )
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    return CheckResult(
        "torch", True, f"{torch.__version__} ({build}, {torch.get_num_threads()} CPU threads)",
        required=True,
        data={"version": torch.__version__, "cuda_build": torch.version.cuda,
              "threads": torch.get_num_threads()},
    )


def check_cuda() -> CheckResult:
    try:
        import torch
    except Exception:
        return CheckResult("cuda", False, "unknown (torch missing)")
    if not torch.cuda.is_available():
        reason = "CPU-only torch build" if not torch.version.cuda else "no usable NVIDIA GPU/driver"
        return CheckResult("cuda", False, f"not available ({reason}); the CPU will be used",
                           data={"available": False})
    devices = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        devices.append({"index": i, "name": props.name,
                        "memory_gib": round(props.total_memory / 1024**3, 1)})
    names = ", ".join(f"{d['name']} ({d['memory_gib']} GiB)" for d in devices)
    return CheckResult("cuda", True, names, data={"available": True, "devices": devices})


def check_nvdiffrast() -> CheckResult:
    """nvdiffrast counts only if it imports AND can create a CUDA raster context."""
    try:
        import nvdiffrast.torch as dr
    except Exception as exc:
        return CheckResult(
            "nvdiffrast", False,
            f"not installed ({type(exc).__name__}); our own rasterizer will be used",
            data={"importable": False},
        )
    version = _dist_version("nvdiffrast")
    try:
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("CUDA is not available")
        dr.RasterizeCudaContext()
    except Exception as exc:
        return CheckResult(
            "nvdiffrast", False, f"{version} imports but no CUDA context ({exc})",
            data={"importable": True, "context": False, "version": version},
        )
    return CheckResult(
        "nvdiffrast", True, f"{version}, CUDA context ok (non-commercial licence)",
        data={"importable": True, "context": True, "version": version},
    )


def check_disk(work_dir: Path) -> CheckResult:
    probe = Path(work_dir).resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # the working folder may not exist yet
    usage = shutil.disk_usage(probe)
    free_gib = usage.free / 1024**3
    ok = usage.free >= LOW_DISK_BYTES
    return CheckResult(
        "disk", ok, f"{free_gib:.1f} GiB free in {work_dir}",
        hint=None if ok else "reconstructions write checkpoints and textures; free some space",
        data={"path": str(work_dir), "free_bytes": usage.free},
    )


def check_speed(device: str, size: int = 512, repeats: int = 20) -> CheckResult:
    """Time a small matmul loop on ``device``; reports GFLOP/s."""
    import torch

    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    (a @ b).sum().item()  # warm-up (and CUDA context creation)
    t0 = time.perf_counter()
    for _ in range(repeats):
        a = torch.tanh(a @ b * (1.0 / size))
    a.sum().item()  # waits for the device
    elapsed = time.perf_counter() - t0
    gflops = 2 * size**3 * repeats / elapsed / 1e9
    return CheckResult(
        f"speed[{device}]", True,
        f"{size}x{size} matmul x{repeats}: {elapsed * 1e3:.1f} ms ({gflops:.1f} GFLOP/s)",
        data={"device": device, "seconds": elapsed, "gflops": gflops},
    )


def run_doctor(events: EventStream, cancel: CancelToken, work_dir: Path) -> list[CheckResult]:
    """Run every check, emitting progress and one info event each.

    Raises:
        BackendError: a required check failed (message lists them, with hints).
    """
    checks: list[Callable[[], CheckResult]] = [
        check_python,
        lambda: check_package("numpy", "numpy", True, "pip install numpy"),
        lambda: check_package("scipy", "scipy", True, "pip install scipy"),
        lambda: check_package("PIL", "pillow", True, "pip install pillow"),
        check_torch,
        check_cuda,
        check_nvdiffrast,
        lambda: check_package(
            "anny", "anny", False, "pip install anny (the default body model, offline)"
        ),
        lambda: check_disk(work_dir),
    ]
    results: list[CheckResult] = []
    total = len(checks) + 2  # + speed checks
    for step, check in enumerate(checks):
        cancel.check()
        events.progress("doctor", step, total)
        results.append(_report(events, check()))
    by_name = {r.name: r for r in results}
    if by_name["torch"].ok:
        devices = ["cpu"] + (["cuda"] if by_name["cuda"].ok else [])
        for device in devices:
            cancel.check()
            events.progress("doctor", len(results), total)
            results.append(_report(events, check_speed(device)))
    events.progress("doctor", total, total)
    failed = [r for r in results if r.required and not r.ok]
    if failed:
        lines = "; ".join(f"{r.name}: {r.detail}" for r in failed)
        hints = "; ".join(r.hint for r in failed if r.hint)
        raise BackendError(
            f"this Python cannot run reconstructions ({lines})\n" + summary(results),
            hint=hints or None,
        )
    return results


def summary(results: list[CheckResult]) -> str:
    """The report users read: one line per check."""
    return "\n".join(r.line() for r in results)


def _report(events: EventStream, result: CheckResult) -> CheckResult:
    log.info(result.line())
    events.info(result.line(), check=result.name, ok=result.ok, required=result.required,
                **({"hint": result.hint} if result.hint and not result.ok else {}),
                **result.data)
    return result


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"
