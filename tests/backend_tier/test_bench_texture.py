"""``bench texture``: one geometry, a static and a dynamic texture, PSNR/SSIM on the
fitted, held-out and (when the capture has one) second-view frames."""

import json
import shutil

import pytest
from PIL import Image

from backend.cli import main
from backend.recon.texture_bench import COLUMNS
from tests.backend_tier.recon_helpers import write_synthetic_capture

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_bench(args, capsys):
    code = main(["bench", "texture", *args])
    # (the body library may print its own banner on first use: only JSON lines count)
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()
              if line.startswith("{")]
    return code, events


def test_bench_texture_scores_both_textures_on_every_kind_of_frame(tmp_path, capsys):
    root = tmp_path / "capture"
    write_synthetic_capture(root, frames=6, size=48)
    # a second view that is a copy of the capture: its frames, masks and cameras load
    # and render like the capture's own (a capture folder has the same layout)
    (root / "gt").mkdir(exist_ok=True)
    shutil.copytree(root, root / "gt" / "second_view",
                    ignore=shutil.ignore_patterns("gt"))
    out = tmp_path / "texture.json"
    code, events = run_bench(["--capture", str(root), "--preset", "draft", "--steps", "6",
                              "--texture-steps", "12", "--holdout", "3", "--out", str(out),
                              "--preview", str(tmp_path / "preview.png")], capsys)
    assert code == 0, events[-1]
    lines = events[-1]["summary"].splitlines()
    assert "every 3th frame held out, with a second view" in lines[0]
    assert all(header in lines[1] for header, _, _ in COLUMNS)
    report = json.loads(out.read_text())
    assert [row["texture"] for row in report["rows"]] == ["static", "static + dynamic"]
    for row in report["rows"]:
        for part in ("fitted", "held_out", "second_view"):
            assert 5 < row[f"{part}_psnr_db"] < 80 and -1 <= row[f"{part}_ssim"] <= 1, row
    stages = {e["stage"] for e in events if e["event"] == "progress"}
    assert {"warmup", "joint", "texture"} <= stages
    # footage | static | static + dynamic, three frames in each of the two views
    with Image.open(tmp_path / "preview.png") as preview:
        assert preview.size == (3 * 192, 6 * 192)


def test_bench_texture_without_a_second_view_leaves_its_columns_empty(tmp_path, capsys):
    root = tmp_path / "capture"
    write_synthetic_capture(root, frames=4, size=48)
    out = tmp_path / "texture.json"
    code, events = run_bench(["--capture", str(root), "--preset", "draft", "--steps", "4",
                              "--texture-steps", "6", "--out", str(out)], capsys)
    assert code == 0, events[-1]
    report = json.loads(out.read_text())
    assert report["second_view"] is False and report["holdout"] == 5
    # 4 frames cannot spare every 5th: nothing held out
    assert all(row["held_out_psnr_db"] is None and "second_view_psnr_db" not in row
               for row in report["rows"])
