"""Jobs: the JSON-lines event protocol, cancellation, job.json, result bundles."""

import io
import json
from pathlib import Path

import numpy as np
import pytest

from backend.capture import read_rgb
from backend.errors import BackendError, ConfigError
from backend.jobs import (
    CANCEL_FILE,
    EVENT_TYPES,
    JOB_FILE,
    CancelToken,
    EventStream,
    ExitCode,
    GarmentResult,
    JobCancelled,
    JobSettings,
    JobSpec,
    ResultError,
    load_job,
    parse_event,
    read_result,
    request_cancel,
    save_job,
    write_result,
)
from backend.jobs.events import format_event


class FakeClock:
    """A monotonic clock the test advances by hand."""

    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def lines_of(out: io.StringIO) -> list[str]:
    text = out.getvalue()
    assert text.endswith("\n")
    return text.splitlines()


def events_of(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in lines_of(out)]


# ---------------------------------------------------------------- event stream


def test_every_event_type_is_one_json_object_per_line_with_its_fields(tmp_path):
    out, clock = io.StringIO(), FakeClock(100.0)
    log_path = tmp_path / "job" / "log.jsonl"  # folder created on demand
    stream = EventStream(out=out, log_path=log_path, clock=clock)

    clock.now = 100.5
    stream.progress("validate", 0, 4)
    stream.info("torch 2.13.0", version="2.13.0", path=Path("/x"))
    stream.info("no data")
    clock.now = 101.25
    stream.warning("dropped 2 frame(s)")
    stream.error("bad capture", hint="fix it")
    stream.done(result=Path("/results/r1"), summary="all good")
    stream.close()

    events = events_of(out)
    assert [e["event"] for e in events] == [
        "progress", "info", "info", "warning", "error", "done"]
    assert set(EVENT_TYPES) == {e["event"] for e in events}
    progress, info, bare_info, warning, error, done = events
    assert progress == {"event": "progress", "stage": "validate", "step": 0, "total": 4,
                        "eta_s": None, "loss": None, "t": 0.5}
    assert info == {"event": "info", "message": "torch 2.13.0",
                    "data": {"version": "2.13.0", "path": "/x"}, "t": 0.5}
    assert bare_info == {"event": "info", "message": "no data", "t": 0.5}
    assert warning == {"event": "warning", "message": "dropped 2 frame(s)", "t": 1.25}
    assert error == {"event": "error", "message": "bad capture", "hint": "fix it", "t": 1.25}
    assert done == {"event": "done", "result": "/results/r1", "summary": "all good", "t": 1.25}

    assert log_path.read_text().splitlines() == lines_of(out)


def test_error_without_hint_and_done_without_result_use_null(tmp_path):
    out = io.StringIO()
    stream = EventStream(out=out, clock=FakeClock())
    stream.error("boom")
    stream.done()
    error, done = events_of(out)
    assert error["hint"] is None
    assert done["result"] is None and done["summary"] is None


def test_log_jsonl_is_appended_to_not_overwritten(tmp_path):
    log_path = tmp_path / "log.jsonl"
    for message in ("first run", "second run"):
        stream = EventStream(out=io.StringIO(), log_path=log_path, clock=FakeClock())
        stream.info(message)
        stream.close()
    assert [json.loads(line)["message"] for line in log_path.read_text().splitlines()] == [
        "first run", "second run"]


def test_progress_is_rate_limited_but_first_and_last_steps_always_emitted():
    out, clock = io.StringIO(), FakeClock(0.0)
    stream = EventStream(out=out, min_interval_s=1.0, clock=clock)

    schedule = [(0.0, 0), (0.3, 1), (0.6, 2), (1.1, 3), (1.5, 4), (1.9, 5), (2.0, 6),
                (2.05, 10)]
    for now, step in schedule:
        clock.now = now
        stream.progress("fit", step, 10)
    # A new stage's first step is emitted at once, whatever the last stage did.
    clock.now = 2.06
    stream.progress("bake", 1, 3)
    clock.now = 2.07
    stream.progress("bake", 2, 3)
    clock.now = 2.08
    stream.progress("bake", 3, 3)

    emitted = [(e["stage"], e["step"]) for e in events_of(out)]
    assert emitted == [("fit", 0), ("fit", 3), ("fit", 10), ("bake", 1), ("bake", 3)]


def test_eta_comes_from_the_stage_rate():
    out, clock = io.StringIO(), FakeClock(50.0)
    stream = EventStream(out=out, clock=clock)

    stream.progress("fit", 0, 10)
    clock.now = 60.0  # 10 s for 5 of 10 steps
    stream.progress("fit", 5, 10, loss=np.float32(0.25))
    clock.now = 70.0
    stream.progress("fit", 10, 10)
    clock.now = 71.0
    stream.progress("bake", 0, 4)  # a new stage has its own rate
    clock.now = 72.0
    stream.progress("bake", 1, 4)

    etas = [e["eta_s"] for e in events_of(out)]
    assert etas == [None, pytest.approx(10.0), pytest.approx(0.0), None, pytest.approx(3.0)]
    assert events_of(out)[1]["loss"] == 0.25


def test_text_format_writes_lines_for_people_and_json_to_the_log(tmp_path):
    out, clock = io.StringIO(), FakeClock(0.0)
    log_path = tmp_path / "log.jsonl"
    stream = EventStream(out=out, log_path=log_path, clock=clock, text=True)

    stream.progress("validate", 0, 10)
    clock.now = 10.0
    stream.progress("validate", 5, 10, loss=0.123456789)
    stream.info("hello")
    stream.warning("careful")
    stream.error("broken", hint="do this")
    stream.error("broken again")
    stream.done(result="/r", summary=None)
    stream.done(summary="line 1\nline 2")
    stream.close()

    assert out.getvalue().splitlines() == [
        "[validate] 0/10",
        "[validate] 5/10  eta 10 s  loss 0.12346",
        "hello",
        "warning: careful",
        "error: broken",
        "hint: do this",
        "error: broken again",
        "done: /r",
        "--- summary",
        "line 1",
        "line 2",
    ]
    logged = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [e["event"] for e in logged] == [
        "progress", "progress", "info", "warning", "error", "error", "done", "done"]


def test_format_event_matches_the_stream():
    assert format_event({"event": "progress", "stage": "s", "step": 1, "total": 2,
                         "eta_s": None, "loss": None}) == "[s] 1/2"


def test_parse_event_accepts_protocol_lines():
    for kind in EVENT_TYPES:
        line = json.dumps({"event": kind, "message": "m", "t": 0.0})
        assert parse_event(line) == {"event": kind, "message": "m", "t": 0.0}
    out = io.StringIO()
    EventStream(out=out, clock=FakeClock()).done(summary="ok")
    assert parse_event(lines_of(out)[0])["summary"] == "ok"


@pytest.mark.parametrize(
    "line",
    ["", "hello world", "Traceback (most recent call last):", "[1, 2]", "42", "NaN",
     '{"event": "bogus"}', '{"message": "no event key"}', '{"event": "done"'],
)
def test_parse_event_rejects_other_lines(line):
    assert parse_event(line) is None


def test_exit_codes_are_the_documented_numbers():
    assert [int(c) for c in (ExitCode.OK, ExitCode.CRASHED, ExitCode.USAGE,
                             ExitCode.INVALID_INPUT, ExitCode.CANCELLED)] == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------- cancellation


def test_cancel_token_without_a_cancel_file_is_not_cancelled(tmp_path):
    token = CancelToken(tmp_path)
    assert not token.cancelled
    token.check()  # does not raise


def test_cancel_token_is_cancelled_after_request_cancel(tmp_path):
    job_dir = tmp_path / "job"  # does not exist yet
    token = CancelToken(job_dir)
    path = request_cancel(job_dir)

    assert path == job_dir / CANCEL_FILE
    assert path.exists()
    assert token.cancelled
    with pytest.raises(JobCancelled) as info:
        token.check()
    assert str(path) in str(info.value)
    assert isinstance(info.value, BackendError)


def test_cancel_token_without_a_job_dir_never_cancels(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / CANCEL_FILE).touch()  # a stray "cancel" in the cwd must not matter
    token = CancelToken(None)
    assert token.path is None
    assert not token.cancelled
    token.check()


# ---------------------------------------------------------------- job.json


def write_job(folder: Path, data) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / JOB_FILE
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_job(path)
    return str(info.value)


def test_save_and_load_job_round_trip(tmp_path):
    spec = JobSpec(
        capture=tmp_path / "capture",
        output=tmp_path / "result",
        settings=JobSettings(preset="high", device="cpu", rasterizer="torch",
                             drop_empty_masks=True, frame_start=3, frame_end=9),
        seed=7,
    )
    path = save_job(spec, tmp_path / "job" / JOB_FILE)

    assert path == tmp_path / "job" / JOB_FILE
    assert load_job(path) == spec
    assert not list(path.parent.glob("*.tmp"))


def test_minimal_job_gets_the_defaults(tmp_path):
    path = write_job(tmp_path, {"capture": "c", "output": "o"})
    spec = load_job(path)
    assert spec.settings == JobSettings()
    assert spec.seed == 0 and spec.version == 1


def test_relative_paths_resolve_against_the_job_file_folder(tmp_path, monkeypatch):
    folder = tmp_path / "jobs" / "j1"
    save_job(JobSpec(capture=Path("capture"), output=Path("../out")), folder / JOB_FILE)
    monkeypatch.chdir(tmp_path)

    spec = load_job(Path("jobs/j1") / JOB_FILE)  # relative to the cwd, not the job

    assert spec.capture.is_absolute() and spec.output.is_absolute()
    assert spec.capture == folder.resolve() / "capture"
    assert spec.output.resolve() == (tmp_path / "jobs" / "out").resolve()


def test_unknown_settings_key_is_named_with_its_path(tmp_path):
    path = write_job(tmp_path, {"capture": "c", "output": "o", "settings": {"devcie": "cpu"}})
    message = config_error(path)
    assert f"{path}: unknown key(s) 'settings.devcie'" in message
    assert "device" in message  # the expected keys are listed


def test_missing_required_key_is_named(tmp_path):
    path = write_job(tmp_path, {"output": "o"})
    assert config_error(path) == f"{path}: missing required key 'capture'"


@pytest.mark.parametrize(
    "data, culprit",
    [
        ({"seed": "0"}, ": seed: expected an integer, got '0'"),
        ({"seed": True}, ": seed: expected an integer, got True"),
        ({"capture": 5}, ": capture: expected a path string, got 5"),
        ({"capture": ""}, ": capture: expected a path string, got ''"),
        ({"settings": {"drop_empty_masks": "yes"}}, ": settings.drop_empty_masks: expected true"),
        ({"settings": {"frame_start": 1.5}}, ": settings.frame_start: expected an integer"),
        ({"settings": ["cpu"]}, ": settings: expected an object, got list"),
    ],
    ids=["seed-str", "seed-bool", "capture-int", "capture-empty", "bool-str", "int-float",
         "settings-list"],
)
def test_wrong_type_is_named_with_its_path(tmp_path, data, culprit):
    path = write_job(tmp_path, {"capture": "c", "output": "o", **data})
    assert f"{path}{culprit}" in config_error(path)


def test_bad_literal_value_lists_the_choices(tmp_path):
    path = write_job(tmp_path, {"capture": "c", "output": "o", "settings": {"device": "tpu"}})
    message = config_error(path)
    assert f"{path}: settings.device: expected one of 'auto', 'cpu', 'cuda'; got 'tpu'" in message


def test_frame_start_after_frame_end_is_rejected(tmp_path):
    path = write_job(tmp_path, {"capture": "c", "output": "o",
                                "settings": {"frame_start": 10, "frame_end": 5}})
    message = config_error(path)
    assert "settings.frame_start (10)" in message and "settings.frame_end (5)" in message


def test_equal_frame_start_and_end_is_one_frame_and_accepted(tmp_path):
    path = write_job(tmp_path, {"capture": "c", "output": "o",
                                "settings": {"frame_start": 5, "frame_end": 5}})
    assert load_job(path).settings.frame_start == 5


def test_unknown_job_version_is_named(tmp_path):
    path = write_job(tmp_path, {"version": 2, "capture": "c", "output": "o"})
    message = config_error(path)
    assert str(path) in message and "unknown job version 2" in message


def test_malformed_job_json_is_named(tmp_path):
    path = write_job(tmp_path, '{"capture": "c", "output": ')
    message = config_error(path)
    assert str(path) in message and "not valid JSON" in message


def test_job_json_that_is_not_an_object_is_rejected(tmp_path):
    path = write_job(tmp_path, "[]")
    assert "expected an object, got list" in config_error(path)


def test_missing_job_file_is_named(tmp_path):
    path = tmp_path / "nowhere" / JOB_FILE
    message = config_error(path)
    assert str(path) in message and "missing" in message


# ---------------------------------------------------------------- result bundle


def garment(**overrides) -> GarmentResult:
    """4 vertices, 2 faces, 3 frames (11, 12, 14)."""
    rng = np.random.default_rng(1)
    canonical = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0.5]], dtype=np.float64)
    arrays = {
        "faces": np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64),
        "canonical_vertices": canonical,
        "vertices": canonical[None] + rng.normal(size=(3, 4, 3)) * 0.01,
        "frame_numbers": np.array([11, 12, 14]),
        "uv": rng.uniform(size=(2, 3, 2)),
    }
    arrays.update(overrides)
    return GarmentResult(**arrays)


def test_garment_result_normalises_dtypes():
    g = garment()
    assert g.faces.dtype == np.int32
    assert g.canonical_vertices.dtype == np.float32
    assert g.vertices.dtype == np.float32
    assert g.frame_numbers.dtype == np.int32
    assert g.uv.dtype == np.float32
    assert all(a.flags.c_contiguous for a in (g.faces, g.vertices, g.uv))


def test_write_and_read_result_round_trip_is_exact(tmp_path):
    g = garment()
    rng = np.random.default_rng(2)
    texture = rng.integers(0, 256, size=(8, 10, 3), dtype=np.uint8)
    dynamic = {11: rng.integers(0, 256, size=(8, 10, 3), dtype=np.uint8),
               14: rng.integers(0, 256, size=(8, 10, 3), dtype=np.uint8)}
    metrics = {"loss": {"final": 0.0125, "steps": 300}, "seconds": 12.5, "gt": None}

    root = write_result(tmp_path / "result", g, texture=texture, dynamic_textures=dynamic,
                        metrics=metrics)
    bundle = read_result(root)

    assert root == tmp_path / "result"
    assert bundle.root == root
    for name, dtype in (("faces", np.int32), ("canonical_vertices", np.float32),
                        ("vertices", np.float32), ("frame_numbers", np.int32),
                        ("uv", np.float32)):
        got = getattr(bundle.garment, name)
        assert got.dtype == dtype, name
        np.testing.assert_array_equal(got, getattr(g, name), err_msg=name)
    np.testing.assert_array_equal(bundle.texture, texture)
    assert sorted(bundle.dynamic_textures) == [11, 14]
    assert bundle.dynamic_textures[14].name == "000014.png"
    for frame, pixels in dynamic.items():
        np.testing.assert_array_equal(read_rgb(bundle.dynamic_textures[frame]), pixels)
    assert bundle.metrics == metrics
    assert not list(root.rglob("*.tmp"))


def test_minimal_result_has_no_optional_parts(tmp_path):
    root = write_result(tmp_path / "r", garment(uv=None))
    bundle = read_result(root)
    assert bundle.garment.uv is None
    assert bundle.texture is None
    assert bundle.dynamic_textures == {}
    assert bundle.metrics == {}
    assert sorted(p.name for p in root.iterdir()) == ["garment.npz"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"faces": np.zeros((2, 4))}, "faces has shape (2, 4), expected (*, 3)"),
        ({"canonical_vertices": np.zeros((4, 2))},
         "canonical_vertices has shape (4, 2), expected (*, 3)"),
        ({"vertices": np.zeros((3, 5, 3))}, "vertices has shape (3, 5, 3), expected (*, 4, 3)"),
        ({"vertices": np.zeros((4, 3))}, "vertices has shape (4, 3), expected (*, 4, 3)"),
        ({"frame_numbers": np.array([11, 12])}, "frame_numbers has shape (2,), expected (3,)"),
        ({"uv": np.zeros((2, 3, 3))}, "uv has shape (2, 3, 3), expected (2, 3, 2)"),
    ],
    ids=["faces", "canonical", "vertices-V", "vertices-ndim", "frame_numbers", "uv"],
)
def test_check_rejects_wrong_shapes_naming_the_array(overrides, message):
    with pytest.raises(ResultError) as info:
        garment(**overrides).check()
    assert str(info.value) == f"garment.npz: {message}"


@pytest.mark.parametrize("bad_index, shown", [(4, "0..4"), (-1, "-1..3")])
def test_check_rejects_out_of_range_face_indices(bad_index, shown):
    faces = np.array([[0, 1, 2], [0, 3, bad_index]])
    with pytest.raises(ResultError) as info:
        garment(faces=faces).check()
    assert f"faces index vertices {shown}, but there are 4 vertices" in str(info.value)


@pytest.mark.parametrize("name", ["vertices", "canonical_vertices", "uv"])
def test_check_rejects_non_finite_values_naming_the_array(name):
    g = garment()
    getattr(g, name).flat[3] = np.nan
    with pytest.raises(ResultError) as info:
        g.check("here.npz")
    assert str(info.value) == f"here.npz: {name} has non-finite values"


@pytest.mark.parametrize("frames", [[11, 11, 14], [14, 12, 11]])
def test_check_rejects_non_increasing_frame_numbers(frames):
    with pytest.raises(ResultError, match="frame_numbers must be strictly increasing"):
        garment(frame_numbers=np.array(frames)).check()


def test_write_result_refuses_an_invalid_garment_and_writes_nothing(tmp_path):
    root = tmp_path / "r"
    bad = garment()
    bad.vertices[0, 0, 0] = np.inf
    with pytest.raises(ResultError, match="vertices has non-finite"):
        write_result(root, bad, texture=np.zeros((4, 4, 3), np.uint8))
    assert not (root / "garment.npz").exists()


def test_read_result_without_garment_npz_names_the_file(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    with pytest.raises(ResultError) as info:
        read_result(root)
    assert str(root / "garment.npz") in str(info.value)
    assert "file is missing" in str(info.value)


def test_read_result_names_missing_arrays(tmp_path):
    g = garment()
    np.savez(tmp_path / "garment.npz", faces=g.faces, vertices=g.vertices)
    with pytest.raises(ResultError) as info:
        read_result(tmp_path)
    assert "missing array(s) canonical_vertices, frame_numbers" in str(info.value)
    assert str(tmp_path / "garment.npz") in str(info.value)


def test_read_result_checks_the_arrays_and_names_the_file(tmp_path):
    g = garment()
    np.savez(tmp_path / "garment.npz", faces=g.faces, canonical_vertices=g.canonical_vertices,
             vertices=g.vertices, frame_numbers=np.array([3, 2, 1], dtype=np.int32))
    with pytest.raises(ResultError) as info:
        read_result(tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'garment.npz'}: frame_numbers must be strictly increasing")


def test_read_result_names_a_malformed_metrics_file(tmp_path):
    write_result(tmp_path, garment())
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(ResultError) as info:
        read_result(tmp_path)
    assert str(tmp_path / "metrics.json") in str(info.value)


def test_read_result_names_a_badly_named_dynamic_texture(tmp_path):
    write_result(tmp_path, garment(), dynamic_textures={11: np.zeros((2, 2, 3), np.uint8)})
    bad = tmp_path / "texture_dynamic" / "frame_a.png"
    bad.write_bytes(b"")
    with pytest.raises(ResultError) as info:
        read_result(tmp_path)
    assert str(bad) in str(info.value)


def test_read_result_of_a_truncated_garment_npz_is_a_result_error(tmp_path):
    write_result(tmp_path, garment())
    path = tmp_path / "garment.npz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultError) as info:
        read_result(tmp_path)
    assert "unreadable" in str(info.value)


def test_result_error_is_a_backend_error():
    assert issubclass(ResultError, BackendError)
