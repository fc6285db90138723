"""Build the extension zip with Blender's own tool and validate it.

Usage: python tools/build_extension.py OUTPUT_DIR

Blender's ``blender_ext.py`` ships inside the bpy wheel and runs without a Blender
binary; using it (rather than zipping by hand) means the manifest, the exclude
patterns and the zip layout are checked exactly as Blender will check them.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SHIPPED_REQUIREMENTS = ("requirements/backend.txt", "requirements/constraints.txt")
"""Files Install Backend pip-installs (operators/install_backend.py). The manifest keeps
the dev-only requirements/ folder out of the zip; these two are added afterwards under
``ZIP_REQUIREMENTS_DIR``."""
ZIP_REQUIREMENTS_DIR = "backend/requirements"


def find_blender_ext() -> Path:
    """Path of blender_ext.py inside the installed bpy package."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("bpy is not installed in this Python (pip install bpy==5.0.1)")
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(root.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise SystemExit(f"blender_ext.py not found under {root}")
    return found[-1]


def _run(*args: str) -> str:
    cmd = [sys.executable, str(find_blender_ext()), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout


def build(output_dir: Path) -> Path:
    """Build ``garment_recon-<version>.zip`` into ``output_dir``, validate it, return its path."""
    import tomllib

    manifest = tomllib.loads((REPO / "blender_manifest.toml").read_text())
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    zip_path = output_dir / f"{manifest['id']}-{manifest['version']}.zip"
    zip_path.unlink(missing_ok=True)
    _run("build", "--source-dir", str(REPO), "--output-filepath", str(zip_path))
    add_requirements(zip_path)
    validate(zip_path)
    return zip_path


def add_requirements(zip_path: Path) -> list[str]:
    """Append the backend requirement files to the zip; returns their names in it."""
    import zipfile

    names = []
    with zipfile.ZipFile(zip_path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        for relative in SHIPPED_REQUIREMENTS:
            source = REPO / relative
            if not source.is_file():
                raise SystemExit(f"{source} is missing; Install Backend needs it")
            name = f"{ZIP_REQUIREMENTS_DIR}/{source.name}"
            zf.write(source, name)
            names.append(name)
    return names


def validate(zip_path: Path) -> str:
    """Run Blender's validator on a built zip; raises RuntimeError on failure."""
    return _run("validate", str(zip_path))


if __name__ == "__main__":
    out = build(Path(sys.argv[1] if len(sys.argv) > 1 else "dist"))
    print(f"built and validated {out}")
