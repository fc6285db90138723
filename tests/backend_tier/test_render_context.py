"""``get_rasterizer``: torch by default, nvdiffrast only when it imports AND a CUDA
context constructs (checked with stand-in modules, since nvdiffrast is optional), one
rasterizer per (kind, device); the nvdiffrast adapter's forwarding; the bench."""

import io
import json
import sys
import types

import pytest
import torch

from backend.jobs.events import EventStream
from backend.render import (
    NvdiffrastRasterizer,
    RenderError,
    TorchRasterizer,
    clear_rasterizer_cache,
    get_rasterizer,
    nvdiffrast_available,
)
from backend.render.bench import run_raster_bench


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_rasterizer_cache()
    yield
    clear_rasterizer_cache()


def _fake_nvdiffrast(monkeypatch, context_error: Exception | None = None) -> list:
    """Install a stand-in ``nvdiffrast.torch``; returns the list of calls it records."""
    calls = []
    dr = types.ModuleType("nvdiffrast.torch")

    class RasterizeCudaContext:
        def __init__(self, device=None):
            calls.append(("context", str(device)))
            if context_error is not None:
                raise context_error

    def record(name):
        def fn(*args, **kwargs):
            calls.append((name, args, kwargs))
            return name
        return fn

    dr.RasterizeCudaContext = RasterizeCudaContext
    for name in ("rasterize", "interpolate", "texture", "antialias",
                 "antialias_construct_topology_hash"):
        setattr(dr, name, record(name))
    package = types.ModuleType("nvdiffrast")
    package.torch = dr
    monkeypatch.setitem(sys.modules, "nvdiffrast", package)
    monkeypatch.setitem(sys.modules, "nvdiffrast.torch", dr)
    return calls


def _no_nvdiffrast(monkeypatch):
    monkeypatch.setitem(sys.modules, "nvdiffrast", None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, "nvdiffrast.torch", None)


def test_torch_is_the_default_and_is_reused():
    r = get_rasterizer()
    assert isinstance(r, TorchRasterizer) and r.name == "torch"
    assert r.device == torch.device("cpu")
    assert get_rasterizer("auto", "cpu") is r
    assert get_rasterizer("torch", torch.device("cpu")) is r


def test_auto_on_cpu_is_torch_even_when_nvdiffrast_imports(monkeypatch):
    calls = _fake_nvdiffrast(monkeypatch)
    assert isinstance(get_rasterizer("auto", "cpu"), TorchRasterizer)
    assert calls == []  # no context attempted for a CPU device


def test_auto_falls_back_to_torch_when_nvdiffrast_does_not_import(monkeypatch):
    _no_nvdiffrast(monkeypatch)
    r = get_rasterizer("auto", "cuda:0")
    assert isinstance(r, TorchRasterizer) and r.device == torch.device("cuda:0")
    ok, reason = nvdiffrast_available("cuda:0")
    assert not ok and "does not import" in reason
    with pytest.raises(RenderError, match="nvdiffrast does not import") as info:
        get_rasterizer("nvdiffrast", "cuda:0")
    assert "torch" in info.value.hint


def test_auto_falls_back_to_torch_when_the_cuda_context_fails(monkeypatch):
    calls = _fake_nvdiffrast(monkeypatch, RuntimeError("no CUDA driver"))
    assert isinstance(get_rasterizer("auto", "cuda:0"), TorchRasterizer)
    assert calls == [("context", "cuda:0")]
    get_rasterizer("auto", "cuda:0")
    assert len(calls) == 1  # the decision is cached, the failing context not retried
    with pytest.raises(RenderError, match="imports but cannot create a CUDA context on "
                                          "cuda:0 .*no CUDA driver"):
        get_rasterizer("nvdiffrast", "cuda:0")


def test_auto_picks_nvdiffrast_when_a_context_constructs_and_reuses_it(monkeypatch):
    calls = _fake_nvdiffrast(monkeypatch)
    r = get_rasterizer("auto", "cuda:0")
    assert isinstance(r, NvdiffrastRasterizer) and r.name == "nvdiffrast"
    assert get_rasterizer("auto", "cuda:0") is r
    assert get_rasterizer("nvdiffrast", "cuda:0") is r
    assert [c for c in calls if c[0] == "context"] == [("context", "cuda:0")]


def test_nvdiffrast_adapter_forwards_with_nvdiffrast_signatures(monkeypatch):
    calls = _fake_nvdiffrast(monkeypatch)
    r = get_rasterizer("nvdiffrast", "cuda:0")
    tri = torch.zeros(2, 3, dtype=torch.int32)
    assert r.rasterize("pos", tri, (4, 5)) == "rasterize"
    assert r.interpolate("attr", "rast", tri, rast_db="db", diff_attrs="all") == "interpolate"
    assert r.texture("tex", "uv", "uv_da", filter_mode="linear") == "texture"
    assert r.antialias("color", "rast", "pos", tri) == "antialias"
    r.antialias("color", "rast", "pos", tri)
    names = [c[0] for c in calls]
    assert names.count("antialias_construct_topology_hash") == 1  # built once, reused
    rast_call = next(c for c in calls if c[0] == "rasterize")
    assert rast_call[1][1:] == ("pos", tri, (4, 5))
    assert rast_call[2] == {"ranges": None, "grad_db": True}
    aa_call = next(c for c in calls if c[0] == "antialias")
    assert aa_call[2]["topology_hash"] == "antialias_construct_topology_hash"
    tex_call = next(c for c in calls if c[0] == "texture")
    assert tex_call[2]["filter_mode"] == "linear" and tex_call[2]["uv_da"] == "uv_da"


def test_nvdiffrast_needs_a_cuda_device(monkeypatch):
    _fake_nvdiffrast(monkeypatch)
    with pytest.raises(RenderError, match="nvdiffrast needs a CUDA device; got cpu"):
        get_rasterizer("nvdiffrast", "cpu")


@pytest.mark.parametrize(
    ("kind", "device", "message"),
    [
        ("opengl", None, r"rasterizer kind must be one of \('auto', 'torch', 'nvdiffrast'\); "
                         r"got 'opengl'"),
        ("torch", "gpu0", "device must be a torch device or its name; got 'gpu0'"),
    ],
)
def test_get_rasterizer_rejects_bad_input(kind, device, message):
    with pytest.raises(RenderError, match=message):
        get_rasterizer(kind, device)


def test_torch_topology_is_cached_until_the_faces_change():
    r = TorchRasterizer()
    tri = torch.tensor([[0, 1, 2], [2, 1, 3]], dtype=torch.int32)
    topo = r.topology(tri)
    assert r.topology(tri) is topo
    tri[1, 2] = 4  # in-place edit bumps the version counter
    assert r.topology(tri) is not topo


def test_raster_bench_prints_figures_and_returns_rows():
    out = io.StringIO()
    events = EventStream(out=out)
    rows = run_raster_bench(events, None, devices=["cpu"], resolutions=(24, 32), faces=80,
                            repeats=1)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in lines] == ["info", "info"]
    assert [r["resolution"] for r in rows] == [24, 32]
    for row, event in zip(rows, lines, strict=True):
        assert row["faces"] == 80 and row["device"] == "cpu" and row["rasterizer"] == "torch"
        assert row["ms"] > 0 and row["reference_ms"] > 0
        assert row["ratio"] == pytest.approx(row["ms"] / row["reference_ms"], rel=0.02)
        assert "ms forward+backward" in event["message"] and event["data"] == row
    with pytest.raises(RenderError, match="repeats must be a positive int; got 0"):
        run_raster_bench(events, None, repeats=0)
    with pytest.raises(RenderError, match="faces must be an int >= 20; got 3"):
        run_raster_bench(events, None, faces=3)
