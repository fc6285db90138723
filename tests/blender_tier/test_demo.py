"""``tools/demo.py`` (what ``./dev demo`` runs), end to end in its quick mode.

The quick demo makes a tiny 4-frame synthetic capture, reconstructs it with a handful
of steps, imports it into the capture's scene and renders one preview frame: about a
minute on 2 busy cores. It runs as a subprocess, as a user runs it; this process only
opens what it wrote. A second run reuses the capture and stops with a clear error,
naming the stage, when the result folder holds someone else's files.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "tools" / "demo.py"
FRAMES = (11, 12, 13, 14)  # the tiny preset's capture with 4 frames (10 settle frames)
RESOLUTION = 128           # the tiny preset's image size


def run_demo(out: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DEMO), "--quick", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{pattern!r} not in the output:\n{text}"
    return float(match.group(1))


def test_quick_demo_writes_the_scene_the_preview_and_a_summary(tmp_path):
    out = tmp_path / "demo"
    docs = REPO / "docs" / "demo_preview.png"
    docs_before = docs.stat().st_mtime_ns if docs.exists() else None
    done = run_demo(out)
    text = done.stdout
    assert done.returncode == 0, f"{text}\n{done.stderr}"

    # progress per stage, then the summary with ground-truth figures and stage times
    for i, stage in enumerate(("generate", "reconstruct", "import", "render"), 1):
        assert f"[{i}/4] {stage}:" in text
        assert number(rf"{stage} done in ([\d.]+) s", text) >= 0
    summary = text.split("=== Summary", 1)[1]
    cd = number(r"^\s+CD x1e3\s+([\d.]+)", summary)
    nc = number(r"^\s+NC\s+([\d.]+)", summary)
    assert 0 < cd < 100 and 0 < nc <= 1
    assert number(r"texture PSNR ([\d.]+) dB", summary) > 0
    times = re.search(r"^Times: generate ([\d.]+) s.* \| reconstruct ([\d.]+) s \(train "
                      r"([\d.]+) s, texture ([\d.]+) s.*\| import ([\d.]+) s \| render "
                      r"([\d.]+) s \| total ([\d.]+) s$", summary, re.MULTILINE)
    assert times, summary
    seconds = [float(x) for x in times.groups()]
    assert seconds[-1] >= sum(seconds[i] for i in (0, 1, 4, 5)) - 0.2  # total: wall time
    assert "Saved:" not in text, "Blender's console output goes to the log, not the user"
    recorded = json.loads((out / "summary.json").read_text())
    assert recorded["ground_truth"]["chamfer_x1e3"] == pytest.approx(cd, rel=1e-3)
    assert set(recorded["seconds"]) == {"generate", "reconstruct", "import", "render"}

    # the scene: the garment on the body, one shape key per frame, a textured material
    bpy.ops.wm.open_mainfile(filepath=str(out / "demo.blend"))
    scene = bpy.context.scene
    garment = bpy.data.objects["Reconstructed Skirt"]
    assert garment.name in scene.objects
    body = next(o for o in scene.objects if any(m.type == "ARMATURE" for m in o.modifiers))
    assert set(garment.users_collection) & set(body.users_collection)
    keys = garment.data.shape_keys.key_blocks
    assert [k.name for k in keys[1:]] == [f"frame_{f:04d}" for f in FRAMES]
    assert garment.data.uv_layers, "the texture stage's UVs"
    images = [n.image for n in garment.active_material.node_tree.nodes
              if n.type == "TEX_IMAGE" and n.image is not None]
    assert images and images[0].packed_file is not None
    assert tuple(images[0].size) == (128, 128)  # --quick's texture size
    assert (scene.frame_start, scene.frame_end) == (FRAMES[0], FRAMES[-1])
    truth = bpy.data.collections["Ground Truth"]
    assert truth.hide_render and len(truth.objects) == 1
    assert scene.camera.data.background_images[0].image.source == "SEQUENCE"

    # the preview: footage | render of one frame, at the capture's size; no README copy
    with Image.open(out / "preview.png") as preview:
        assert preview.size == (2 * RESOLUTION, RESOLUTION)
        pixels = np.asarray(preview.convert("RGB"), np.float32)
    assert pixels[:, RESOLUTION:].std() > 5, "the render is not blank"
    assert (docs.stat().st_mtime_ns if docs.exists() else None) == docs_before

    # run again: the capture is reused; a foreign file in the result folder stops the
    # reconstruct stage with a one-line error instead of being deleted
    (out / "result" / "notes.txt").write_text("mine")
    again = run_demo(out, timeout=120)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "reusing" in again.stdout
    assert "error in stage 'reconstruct':" in again.stdout
    assert "notes.txt" in again.stdout and "Traceback" not in again.stdout + again.stderr
    assert (out / "result" / "notes.txt").read_text() == "mine"
