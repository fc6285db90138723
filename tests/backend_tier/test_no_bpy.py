"""The backend never imports bpy: it must run in any Python, on a farm, without Blender."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BACKEND = REPO / "backend"


def backend_modules():
    for path in sorted(BACKEND.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] != "__main__":
            yield ".".join(parts)


def test_no_backend_source_mentions_bpy_imports():
    pattern = re.compile(r"^\s*(import|from)\s+bpy\b", re.MULTILINE)
    offenders = [str(p) for p in BACKEND.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


# What Blender's side and the CLI entry point import: these must stay light, because
# the extension imports backend.jobs when it is enabled and every CLI command pays
# for backend.cli before it starts. Numeric layers (body, render, ...) may load torch.
LIGHT_PACKAGES = ("backend.jobs", "backend.capture")
LIGHT_MODULES = ("backend", "backend.cli", "backend.config", "backend.doctor",
                 "backend.errors", "backend.fileio")


def _import_in_fresh_python(modules: list[str]) -> subprocess.CompletedProcess:
    script = (
        "import sys\n"
        "sys.modules['bpy'] = None  # any 'import bpy' now raises ImportError\n"
        "import importlib\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print('torch' in sys.modules)\n"
    )
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_every_backend_module_imports_where_bpy_is_absent():
    modules = list(backend_modules())
    assert "backend.capture.validate" in modules and "backend.cli" in modules
    proc = _import_in_fresh_python(modules)
    assert proc.returncode == 0, proc.stderr


def test_the_cli_and_the_modules_blender_imports_do_not_load_torch():
    modules = [m for m in backend_modules()
               if m in LIGHT_MODULES or m.startswith(LIGHT_PACKAGES)]
    assert "backend.jobs.events" in modules and "backend.cli" in modules
    proc = _import_in_fresh_python(modules)
    assert proc.returncode == 0, proc.stderr
    # torch loads only when a command needs it
    assert proc.stdout.strip() == "False"
