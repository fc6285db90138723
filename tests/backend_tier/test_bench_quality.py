"""``python -m backend bench quality``: ours and the displacement baseline on a tiny
synthetic capture (recon_helpers), scored against its gt/, printed as one table."""

import dataclasses
import json
import math
import shutil

import pytest

from backend.cli import main
from backend.recon.bench import COLUMNS, ROWS, format_table, split_steps
from backend.recon.settings import preset, priors_on
from tests.backend_tier.recon_helpers import write_synthetic_capture

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    write_synthetic_capture(root, frames=4, size=48)
    return root


def run_bench(args, capsys):
    code = main(["bench", "quality", *args])
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return code, events


def test_bench_quality_prints_one_table_with_ours_and_the_baseline(tiny, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code, events = run_bench(["--capture", str(tiny), "--preset", "draft", "--steps", "6",
                              "--samples", "400", "--out", str(out)], capsys)
    assert code == 0, events[-1]
    done = events[-1]
    assert done["event"] == "done" and done["result"] == str(out)
    lines = done["summary"].splitlines()
    assert "preset draft, 6 steps, masks + normals" in lines[0]
    assert all(header in lines[1] for header, _, _ in COLUMNS)
    assert [line.split()[0] for line in lines[2:]] == list(ROWS)
    stages = {e["stage"] for e in events if e["event"] == "progress"}
    assert {"ngd warmup", "ngd joint", "displacement warmup", "displacement joint"} <= stages

    report = json.loads(out.read_text())
    rows = {row["method"]: row for row in report["rows"]}
    assert list(rows) == list(ROWS) and report["steps"] == 6
    for name, row in rows.items():
        assert 0 < row["chamfer_x1e3"] < 50, row
        assert 0.5 < row["normal_consistency"] <= 1.0, row
        assert 0 < row["mask_iou"] <= 1.0, row
        assert 0 <= row["acceleration_error_mm"] < 1e3, row
        assert 0 < row["point_to_surface_mm"] < 500, row
        assert 0 < row["chamfer_front_x1e3"] < 50 and 0 < row["chamfer_back_x1e3"] < 50, row
        assert 0 <= row["penetrating_vertices"] < 1e4, row
        assert len(row["per_frame_chamfer_x1e3"]) == 4
        if name != "template":
            assert row["wall_s"] > 0 and row["train_s"] > 0
            assert row["peak_rss_mib"] is None or row["peak_rss_mib"] > 50
            assert row["cuda_peak_mib"] is None     # the CPU ran it
    # six steps already move both away from the template, towards the ground truth
    assert rows["ngd"]["chamfer_x1e3"] < rows["template"]["chamfer_x1e3"]
    assert report["settings"]["ngd"]["method"] == "ngd"
    assert report["settings"]["displacement"]["method"] == "displacement"
    assert report["settings"]["ngd"]["use_normals"] is True


def test_bench_quality_without_normal_maps_uses_masks_and_rgb(tiny, tmp_path, capsys):
    out = tmp_path / "rgb.json"
    code, events = run_bench(["--capture", str(tiny), "--preset", "draft", "--steps", "4",
                              "--samples", "300", "--no-normals", "--static-only", "--priors",
                              "--work-dir", str(tmp_path / "work"), "--out", str(out)], capsys)
    assert code == 0, events[-1]
    assert "masks + RGB" in events[-1]["summary"].splitlines()[0]
    report = json.loads(out.read_text())
    switched = "ngd no priors" if priors_on(preset("draft")) else "ngd priors"
    assert [row["method"] for row in report["rows"]] == [*ROWS, "ngd static-only", switched]
    on_row, off_row = (("ngd", switched) if switched == "ngd no priors"
                       else ("ngd priors", "ngd"))
    on, off = report["settings"][on_row], report["settings"][off_row]
    assert on["resolve_penetrations"] and on["temporal_smoothing"] > 0
    assert on["losses"]["occlusion"] > 0
    assert not off["resolve_penetrations"] and off["temporal_smoothing"] == 0
    assert off["losses"]["occlusion"] == 0
    postfit = [json.loads((tmp_path / "work" / row.replace(" ", "-") / "metrics.json")
                          .read_text())["postfit"] for row in (on_row, off_row)]
    assert "moved" in postfit[0] and postfit[1] == {"temporal_smoothing": 0.0}
    for name, used in report["settings"].items():
        assert used["use_normals"] is False, name
    assert report["settings"]["ngd static-only"]["joint_steps"] == 0
    ngd = next(r for r in report["rows"] if r["method"] == "ngd")
    assert math.isfinite(ngd["chamfer_x1e3"])
    # the kept result folders show which terms ran: the photometric one, not the diffuse
    for name in ("ngd", "displacement", "ngd-static-only"):
        losses = json.loads((tmp_path / "work" / name / "metrics.json").read_text())["losses"]
        assert "photometric" in losses and "diffuse" not in losses, (name, losses)


def test_bench_quality_refuses_what_it_cannot_score(tiny, tmp_path, capsys):
    no_gt = tmp_path / "no-gt"
    shutil.copytree(tiny, no_gt)
    shutil.rmtree(no_gt / "gt")
    code, events = run_bench(["--capture", str(no_gt), "--steps", "4"], capsys)
    assert code == 3 and "needs a synthetic capture with ground truth" in events[-1]["message"]
    code, events = run_bench(["--capture", str(tiny), "--steps", "1"], capsys)
    assert code == 3 and "--steps must be an integer >= 2" in events[-1]["message"]
    code, events = run_bench(["--capture", str(tiny), "--preset", "ultra"], capsys)
    assert code == 3 and "unknown quality preset 'ultra'" in events[-1]["message"]


def test_steps_keep_the_presets_split_and_the_table_aligns():
    draft = preset("draft")
    split = split_steps(draft, 10)
    assert (split.warmup_steps, split.joint_steps) == (3, 7)
    assert split_steps(draft, 2).joint_steps >= 1
    rows = [{"method": "ngd", "chamfer_x1e3": 0.3, "normal_consistency": 0.98},
            {"method": "displacement", "chamfer_x1e3": 12.345}]
    lines = format_table(rows).splitlines()
    assert len({len(line) for line in lines}) == 1          # every line as wide
    assert "0.300" in lines[1] and "12.345" in lines[2] and lines[2].count(" - ") >= 3


def test_bench_quality_compares_remeshing_at_the_same_training_time(tiny, tmp_path, capsys,
                                                                     monkeypatch):
    from backend.recon import settings as recon_settings

    draft = recon_settings.PRESETS["draft"]
    monkeypatch.setitem(recon_settings.PRESETS, "draft", dataclasses.replace(
        draft, remesh_interval=3, remesh_quantile=(0.5, 0.6)))
    out = tmp_path / "remesh.json"
    code, events = run_bench(["--capture", str(tiny), "--preset", "draft", "--steps", "16",
                              "--samples", "300", "--remesh", "--out", str(out)], capsys)
    assert code == 0, events[-1]
    rows = {row["method"]: row for row in json.loads(out.read_text())["rows"]}
    assert rows["ngd"]["remesh_events"] == []
    refined = rows["ngd remesh"]
    assert len(refined["remesh_events"]) >= 2
    assert refined["faces"] > rows["ngd"]["faces"] == refined["remesh_events"][0]["faces"][0]
    assert "ngd remesh" in events[-1]["summary"]
    if "ngd same time" in rows:       # only when remeshing made training slower
        same = rows["ngd same time"]
        assert same["steps"] > rows["ngd"]["steps"] == 16 and same["remesh_events"] == []
