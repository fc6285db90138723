"""``python -m backend setup-env``: a venv with pip, requirements installed, import check.

Offline: an empty requirements file, or a tiny wheel built here and installed with
``--no-index``. The CLI runs as a real subprocess, the way Blender starts it.
"""

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from backend.jobs import ExitCode, parse_event
from backend.jobs.cancel import request_cancel
from backend.setup_env import count_requirements, venv_python

REPO_ROOT = Path(__file__).resolve().parents[2]


def setup_env(*args, job_dir: Path | None = None) -> tuple[subprocess.CompletedProcess, list]:
    head = ["--job-dir", str(job_dir)] if job_dir is not None else []
    proc = subprocess.run(
        [sys.executable, "-m", "backend", *head, "setup-env", *(str(a) for a in args)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    events = [parse_event(line) for line in proc.stdout.splitlines()]
    assert all(e is not None for e in events), proc.stdout
    return proc, events


def tiny_wheel(folder: Path) -> Path:
    """A pure-Python wheel of module ``tiny_pkg`` (VALUE = 42), written by hand."""
    files = {
        "tiny_pkg.py": b"VALUE = 42\n",
        "tiny_pkg-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tiny-pkg\n"
                                            b"Version: 0.1\n",
        "tiny_pkg-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
                                        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("tiny_pkg-0.1.dist-info/RECORD,,")
    files["tiny_pkg-0.1.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / "tiny_pkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_empty_requirements_make_a_working_venv(tmp_path):
    requirements = tmp_path / "empty.txt"
    requirements.write_text("")
    target = tmp_path / "venv"
    proc, events = setup_env("--target", target, "--requirements", requirements,
                             "--check-import", "json")
    assert proc.returncode == ExitCode.OK, proc.stdout + proc.stderr
    stages = {e["stage"] for e in events if e["event"] == "progress"}
    assert stages == {"venv", "install", "check"}
    assert events[-1]["event"] == "done"
    python = Path(events[-1]["result"])
    assert python == venv_python(target.absolute())
    out = subprocess.run([str(python), "-c", "import sys, pip; print(sys.prefix)"],
                         capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == target.absolute()  # a venv of its own, with pip


def test_a_local_wheel_is_installed_with_install_events(tmp_path):
    wheel = tiny_wheel(tmp_path)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"# the backend\n{wheel}\n")
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("tiny-pkg==0.1\n")
    target = tmp_path / "venv"
    job_dir = tmp_path / "job"
    proc, events = setup_env("--target", target, "--requirements", requirements,
                             "--constraints", constraints, "--pip-arg=--no-index",
                             "--check-import", "tiny_pkg", job_dir=job_dir)
    assert proc.returncode == ExitCode.OK, proc.stdout + proc.stderr
    messages = [e["message"] for e in events if e["event"] == "info"]
    assert any(m.startswith("Processing") and "tiny_pkg" in m for m in messages), messages
    assert any(m.startswith("Installing collected packages") for m in messages), messages
    install = [e for e in events if e["event"] == "progress" and e["stage"] == "install"]
    assert install[0]["step"] == 0 and install[-1]["step"] == install[-1]["total"] == 3
    assert "import tiny_pkg works" in messages[-1]
    out = subprocess.run([events[-1]["result"], "-c", "import tiny_pkg; print(tiny_pkg.VALUE)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "42"
    logged = [json.loads(line) for line in (job_dir / "log.jsonl").read_text().splitlines()]
    assert logged[-1] == events[-1]


def test_a_failing_pip_reports_its_error_lines(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("no-such-package-garment-test==1.0\n")
    proc, events = setup_env("--target", tmp_path / "venv", "--requirements", requirements,
                             "--pip-arg=--no-index")
    assert proc.returncode == ExitCode.INVALID_INPUT
    error = events[-1]
    assert error["event"] == "error"
    assert "pip install -r" in error["message"]
    assert "ERROR:" in error["message"] and "no-such-package-garment-test" in error["message"]
    assert "internet" in error["hint"]


def test_a_missing_requirements_file_is_named(tmp_path):
    missing = tmp_path / "nope" / "backend.txt"
    proc, events = setup_env("--target", tmp_path / "venv", "--requirements", missing)
    assert proc.returncode == ExitCode.INVALID_INPUT
    assert events[-1]["event"] == "error"
    assert str(missing) in events[-1]["message"] and "does not exist" in events[-1]["message"]
    assert not (tmp_path / "venv").exists()


def test_an_unwritable_target_is_a_clear_error(tmp_path):
    requirements = tmp_path / "empty.txt"
    requirements.write_text("")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc, events = setup_env("--target", blocker / "venv", "--requirements", requirements)
    assert proc.returncode == ExitCode.INVALID_INPUT
    assert "is not writable" in events[-1]["message"] and str(blocker) in events[-1]["message"]

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    proc, events = setup_env("--target", occupied, "--requirements", requirements)
    assert proc.returncode == ExitCode.INVALID_INPUT
    assert "not a virtual environment" in events[-1]["message"]
    assert (occupied / "notes.txt").read_text() == "mine"


def test_cancel_stops_before_the_venv_is_made(tmp_path):
    requirements = tmp_path / "empty.txt"
    requirements.write_text("")
    job_dir = tmp_path / "job"
    request_cancel(job_dir)
    proc, events = setup_env("--target", tmp_path / "venv", "--requirements", requirements,
                             job_dir=job_dir)
    assert proc.returncode == ExitCode.CANCELLED
    assert events[-1]["event"] == "error" and "cancelled" in events[-1]["message"]
    assert not venv_python(tmp_path / "venv").exists()


def test_helpers_count_requirements_and_find_the_windows_python(tmp_path):
    requirements = tmp_path / "r.txt"
    requirements.write_text("# comment\ntorch==2.13.0\n\n-c constraints.txt\nnumpy  # pinned\n")
    assert count_requirements(requirements) == 2
    assert venv_python(Path("venv"), windows=True) == Path("venv/Scripts/python.exe")
    assert venv_python(Path("venv"), windows=False) == Path("venv/bin/python")
