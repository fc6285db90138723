"""``python -m backend setup-env``: a private virtual environment for the backend.

Runs under Blender's own Python, which has no torch, so this module is stdlib only.
It creates a venv (with pip) at the target folder, runs ``pip install -r REQUIREMENTS
[-c CONSTRAINTS]`` inside it while streaming pip's output as events, then checks
that the new interpreter imports the backend's key packages.

Stages (progress events): ``venv`` (0/1 -> 1/1), ``install`` (one step per pip
"Collecting" / "Processing" / "Downloading" / "Installing" line; the total is a rough
estimate from the requirements file), ``check`` (0/1 -> 1/1). The ``done`` event's
``result`` is the new venv's python.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import threading
import venv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import BackendError
from .jobs.cancel import CancelToken, JobCancelled
from .jobs.events import EventStream

log = logging.getLogger(__name__)

DEFAULT_CHECK_IMPORTS = ("torch", "numpy")
"""Modules the new venv must import for the install to count as working."""

PIP_STEP_PREFIXES = ("Collecting", "Processing", "Downloading", "Installing")
"""pip output lines that advance the ``install`` stage."""

PIP_TAIL_LINES = 8
"""pip lines quoted in the error when pip fails."""

CANCEL_POLL_S = 0.2
"""How often a silent pip is checked for cancellation, in seconds."""

NETWORK_MARKERS = ("NewConnectionError", "Name or service not known", "Temporary failure",
                   "Network is unreachable", "ConnectTimeout", "ReadTimeout",
                   "No matching distribution", "Could not find a version",
                   "ProxyError", "SSLError", "Max retries exceeded")
"""Substrings of pip errors that point at a missing or blocked internet connection."""


class SetupEnvError(BackendError):
    """The backend venv could not be created, installed into, or checked."""


@dataclass(frozen=True)
class SetupSettings:
    """What ``setup-env`` does.

    target: folder of the venv (created; an existing venv there is reused and
        updated; an existing non-empty folder that is not a venv is refused).
    requirements: pip requirements file (``-r``).
    constraints: optional pip constraints file (``-c``).
    pip_args: extra arguments for ``pip install`` (e.g. ``--no-index``).
    check_imports: modules the new interpreter must import afterwards.
    """

    target: Path
    requirements: Path
    constraints: Path | None = None
    pip_args: tuple[str, ...] = ()
    check_imports: tuple[str, ...] = DEFAULT_CHECK_IMPORTS


def venv_python(target: Path, windows: bool = os.name == "nt") -> Path:
    """The interpreter of the venv at ``target`` (``Scripts\\python.exe`` on Windows)."""
    if windows:
        return Path(target) / "Scripts" / "python.exe"
    return Path(target) / "bin" / "python"


def child_environment() -> dict[str, str]:
    """Environment for the venv's processes: ours without anything that points Python
    at other packages (PYTHONPATH, PYTHONHOME, user site), pip quiet and unbuffered."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


def count_requirements(path: Path) -> int:
    """Rough number of packages a requirements file names (comments and options skipped)."""
    count = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            count += 1
    return count


def setup_env(settings: SetupSettings, events: EventStream, cancel: CancelToken) -> Path:
    """Create the venv, install the requirements, check the imports; returns its python.

    Raises:
        SetupEnvError: a missing requirements/constraints file, an unwritable target,
            a failed venv, a failed pip (its error lines quoted) or a failed import check.
        JobCancelled: the cancel file appeared (pip is terminated first).
    """
    for label, path in (("requirements", settings.requirements),
                        ("constraints", settings.constraints)):
        if path is not None and not Path(path).is_file():
            raise SetupEnvError(f"{label} file '{path}' does not exist",
                                hint="reinstall the extension; the file ships with it")
    target = Path(settings.target).absolute()
    _prepare_target(target)
    cancel.check()

    python = venv_python(target)
    events.progress("venv", 0, 1)
    events.info(f"creating the virtual environment in {target}")
    try:
        venv.EnvBuilder(with_pip=True, symlinks=os.name != "nt").create(target)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SetupEnvError(f"creating the virtual environment in '{target}' failed: {exc}",
                            hint="check free disk space and that this Python has ensurepip"
                            ) from None
    if not python.is_file():
        raise SetupEnvError(f"the new virtual environment has no interpreter at '{python}'")
    events.progress("venv", 1, 1)
    cancel.check()

    _pip_install(python, settings, events, cancel)
    cancel.check()
    _check_imports(python, settings.check_imports, events)
    return python


def _prepare_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise SetupEnvError(f"target '{target}' exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not (target / "pyvenv.cfg").is_file():
        raise SetupEnvError(f"target '{target}' is a non-empty folder that is not a virtual "
                            "environment; refusing to install into it",
                            hint="choose an empty or new folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = target / ".garment-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SetupEnvError(f"target '{target}' is not writable: {exc}",
                            hint="choose a folder you can write to") from None


def _pip_install(python: Path, settings: SetupSettings, events: EventStream,
                 cancel: CancelToken) -> None:
    argv = [str(python), "-m", "pip", "install", "--progress-bar", "off",
            "-r", str(Path(settings.requirements).absolute())]
    if settings.constraints is not None:
        argv += ["-c", str(Path(settings.constraints).absolute())]
    argv += list(settings.pip_args)
    total = max(2 * count_requirements(Path(settings.requirements)) + 1, 1)
    step = 0
    events.progress("install", step, total)
    log.info("running %s", argv)
    lines = _run_streaming(argv, cancel)
    tail: list[str] = []
    code = -1
    for line in lines:
        if isinstance(line, int):  # the exit code, after the last line
            code = line
            break
        line = line.rstrip()
        if not line:
            continue
        log.debug("pip: %s", line)
        tail = (tail + [line])[-PIP_TAIL_LINES:]
        if line.lstrip().startswith(PIP_STEP_PREFIXES):
            step = min(step + 1, total - 1)
            events.info(line.strip())
            events.progress("install", step, total)
    if code != 0:
        errors = [t for t in tail if t.startswith("ERROR")] or tail
        network = any(m in t for t in tail for m in NETWORK_MARKERS)
        raise SetupEnvError(
            f"pip install -r {settings.requirements} failed (exit {code}):\n"
            + "\n".join(errors),
            hint="pip needs internet access to PyPI; check the connection and proxy, "
            "then press Install Backend again" if network else
            "see the pip lines above; run Install Backend again after fixing the cause")
    events.progress("install", total, total)


def _run_streaming(argv: Sequence[str], cancel: CancelToken):
    """Yield the output lines (stdout and stderr merged) of ``argv``, then its exit code.

    Checks ``cancel`` every ``CANCEL_POLL_S`` even while the process prints nothing;
    on cancel the process is terminated (killed if it lingers) and JobCancelled raised.
    """
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=child_environment(), text=True,
                            encoding="utf-8", errors="replace", bufsize=1)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for text in proc.stdout:
            lines.put(text)
        lines.put(None)

    threading.Thread(target=read, daemon=True, name="pip-output").start()
    try:
        while True:
            if cancel.cancelled:
                raise JobCancelled(f"cancelled ({cancel.path} exists); pip was stopped")
            try:
                text = lines.get(timeout=CANCEL_POLL_S)
            except queue.Empty:
                continue
            if text is None:
                break
            yield text
        yield proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _check_imports(python: Path, modules: Sequence[str], events: EventStream) -> None:
    events.progress("check", 0, 1)
    if modules:
        code = "import " + ", ".join(modules)
        proc = subprocess.run([str(python), "-c", code], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, env=child_environment(),
                              timeout=600)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise SetupEnvError(f"the new environment cannot '{code}': {last}",
                                hint="the install finished but is incomplete; press "
                                "Install Backend again")
        events.info(f"{python}: {code} works")
    events.progress("check", 1, 1)
