"""``backend.render.texture``: filtering against a naive per-pixel reference, the
boundary modes, mip pyramids, gradchecks, and every RenderError."""

import math

import numpy as np
import pytest
import torch

from backend.render import RenderError, texture, texture_construct_mip
from tests.backend_tier.render_helpers import DEVICES


def _texel(tex: np.ndarray, i: int, j: int, boundary: str) -> np.ndarray:
    h, w = tex.shape[:2]
    if boundary == "wrap":
        return tex[i % h, j % w]
    if boundary == "clamp":
        return tex[min(max(i, 0), h - 1), min(max(j, 0), w - 1)]
    if 0 <= i < h and 0 <= j < w:
        return tex[i, j]
    return np.zeros(tex.shape[2])


def _bilinear_ref(tex: np.ndarray, u: float, v: float, boundary: str) -> np.ndarray:
    h, w = tex.shape[:2]
    x, y = u * w - 0.5, v * h - 0.5
    j0, i0 = math.floor(x), math.floor(y)
    fx, fy = x - j0, y - i0
    return ((1 - fx) * (1 - fy) * _texel(tex, i0, j0, boundary)
            + fx * (1 - fy) * _texel(tex, i0, j0 + 1, boundary)
            + (1 - fx) * fy * _texel(tex, i0 + 1, j0, boundary)
            + fx * fy * _texel(tex, i0 + 1, j0 + 1, boundary))


def _pyramid_ref(tex: np.ndarray) -> list[np.ndarray]:
    levels = [tex]
    while levels[-1].shape[0] > 1 or levels[-1].shape[1] > 1:
        t = levels[-1]
        levels.append(0.25 * (t[0::2, 0::2] + t[1::2, 0::2] + t[0::2, 1::2] + t[1::2, 1::2]))
    return levels


@pytest.mark.parametrize("boundary", ["wrap", "clamp", "zero"])
def test_bilinear_matches_a_naive_reference(boundary):
    rng = np.random.default_rng(0)
    tex = rng.random((5, 7, 3))
    uv = rng.uniform(-0.3, 1.3, size=(1, 4, 6, 2))
    out = texture(torch.tensor(tex[None]), torch.tensor(uv), filter_mode="linear",
                  boundary_mode=boundary)
    ref = np.array([[_bilinear_ref(tex, *uv[0, i, j], boundary) for j in range(6)]
                    for i in range(4)])
    np.testing.assert_allclose(out[0].numpy(), ref, atol=1e-12)


def test_texel_centres_return_the_texel_and_nearest_rounds():
    tex = torch.arange(12, dtype=torch.float64).view(1, 3, 4, 1)
    i, j = torch.meshgrid(torch.arange(3), torch.arange(4), indexing="ij")
    uv = torch.stack([(j + 0.5) / 4, (i + 0.5) / 3], dim=-1).double().unsqueeze(0)
    torch.testing.assert_close(texture(tex, uv, filter_mode="linear"), tex)
    jitter = uv + torch.tensor([0.1 / 4, -0.1 / 3], dtype=torch.float64)
    torch.testing.assert_close(texture(tex, jitter, filter_mode="nearest"), tex)


def test_trilinear_matches_a_naive_reference():
    rng = np.random.default_rng(1)
    tex = rng.random((8, 8, 2))
    levels = _pyramid_ref(tex)
    uv = rng.uniform(0.0, 1.0, size=(1, 3, 5, 2))
    scale = np.exp(rng.uniform(np.log(0.05), np.log(3.0), size=(1, 3, 5, 1)))
    uv_da = rng.normal(size=(1, 3, 5, 4)) * scale / 8
    out = texture(torch.tensor(tex[None]), torch.tensor(uv), torch.tensor(uv_da),
                  filter_mode="linear-mipmap-linear")
    ref = np.zeros((3, 5, 2))
    for i in range(3):
        for j in range(5):
            du_dx, du_dy, dv_dx, dv_dy = uv_da[0, i, j]
            lx = math.hypot(du_dx * 8, dv_dx * 8)
            ly = math.hypot(du_dy * 8, dv_dy * 8)
            lod = min(max(math.log2(max(lx, ly)), 0.0), len(levels) - 1)
            l0 = math.floor(lod)
            l1 = min(l0 + 1, len(levels) - 1)
            a = _bilinear_ref(levels[l0], *uv[0, i, j], "wrap")
            b = _bilinear_ref(levels[l1], *uv[0, i, j], "wrap")
            ref[i, j] = a + (lod - l0) * (b - a)
    np.testing.assert_allclose(out[0].numpy(), ref, atol=1e-12)


def test_mip_pyramid_levels_and_max_mip_level():
    tex = torch.rand(2, 8, 4, 3, dtype=torch.float64)
    levels = texture_construct_mip(tex)
    assert [tuple(lv.shape[1:3]) for lv in levels] == [(8, 4), (4, 2), (2, 1), (1, 1)]
    torch.testing.assert_close(levels[-1][:, 0, 0], tex.mean(dim=(1, 2)))
    assert len(texture_construct_mip(tex, max_mip_level=1)) == 2
    odd = texture_construct_mip(torch.rand(1, 5, 3, 1))
    assert [tuple(lv.shape[1:3]) for lv in odd] == [(5, 3), (2, 1), (1, 1)]


def test_a_large_footprint_samples_the_coarsest_level_and_bias_shifts_the_level():
    tex = torch.rand(1, 16, 16, 3, dtype=torch.float64)
    uv = torch.rand(1, 2, 2, 2, dtype=torch.float64)
    huge = torch.full((1, 2, 2, 4), 10.0, dtype=torch.float64)
    out = texture(tex, uv, huge, filter_mode="linear-mipmap-linear")
    torch.testing.assert_close(out, tex.mean(dim=(1, 2)).view(1, 1, 1, 3).expand_as(out))
    tiny = torch.full((1, 2, 2, 4), 1e-4, dtype=torch.float64)
    base = texture(tex, uv, filter_mode="linear")
    torch.testing.assert_close(texture(tex, uv, tiny), base)  # auto -> trilinear, level 0
    bias = torch.full((1, 2, 2), 20.0, dtype=torch.float64)  # lod -9.3 + 20: coarsest
    torch.testing.assert_close(texture(tex, uv, tiny, mip_level_bias=bias), out)
    mip = texture_construct_mip(tex)
    torch.testing.assert_close(texture(tex, uv, huge, mip=mip), out)
    capped = texture(tex, uv, huge, max_mip_level=0, filter_mode="linear-mipmap-linear")
    torch.testing.assert_close(capped, base)


def test_batched_textures_are_sampled_per_item():
    tex = torch.stack([torch.zeros(4, 4, 1), torch.ones(4, 4, 1)])
    uv = torch.rand(2, 3, 3, 2, generator=torch.Generator().manual_seed(0))
    out = texture(tex, uv, filter_mode="linear")
    torch.testing.assert_close(out[0], torch.zeros(3, 3, 1))
    torch.testing.assert_close(out[1], torch.ones(3, 3, 1))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("boundary", ["wrap", "clamp", "zero"])
def test_gradcheck_bilinear(device, boundary):
    torch.manual_seed(0)
    tex = torch.rand(1, 4, 5, 2, dtype=torch.float64, device=device, requires_grad=True)
    # keep samples away from texel-centre lines, where bilinear weights have kinks
    uv = ((torch.randint(-3, 12, (1, 3, 4, 2)) + 0.3 + 0.4 * torch.rand(1, 3, 4, 2)) / 8)
    uv = uv.to(torch.float64).to(device).requires_grad_(True)

    def fn(tex, uv):
        return texture(tex, uv, filter_mode="linear", boundary_mode=boundary)

    assert torch.autograd.gradcheck(fn, (tex, uv), eps=1e-7, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_trilinear_mipmap(device):
    torch.manual_seed(1)
    tex = torch.rand(1, 8, 8, 2, dtype=torch.float64, device=device, requires_grad=True)
    uv = ((torch.randint(0, 16, (1, 3, 3, 2)) + 0.3 + 0.4 * torch.rand(1, 3, 3, 2)) / 16)
    uv = uv.to(torch.float64).to(device).requires_grad_(True)
    # footprints between 1.2 and 6 texels: fractional levels between 0.3 and 2.6
    uv_da = (torch.rand(1, 3, 3, 4, dtype=torch.float64) * 0.6 + 0.15) / 8
    uv_da = uv_da.to(device).requires_grad_(True)
    bias = (0.2 * torch.rand(1, 3, 3, dtype=torch.float64)).to(device).requires_grad_(True)

    def fn(tex, uv, uv_da, bias):
        return texture(tex, uv, uv_da, mip_level_bias=bias,
                       filter_mode="linear-mipmap-linear")

    assert torch.autograd.gradcheck(fn, (tex, uv, uv_da, bias), eps=1e-7, atol=1e-6)


# ------------------------------------------------------------------- bad inputs

TEX = torch.rand(1, 4, 4, 3)
UV = torch.rand(1, 2, 2, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tex": torch.rand(4, 4, 3)}, r"tex must have shape \(B,Ht,Wt,C\); got \(4, 4, 3\)"),
        ({"tex": TEX.half()}, "tex must be float32 or float64; got torch.float16"),
        ({"tex": torch.rand(1, 0, 4, 3)}, "tex must not be empty"),
        ({"tex": torch.rand(3, 4, 4, 3)}, "tex's batch size must be 1 or uv's batch size 1"),
        ({"uv": torch.rand(1, 2, 2, 3)}, r"uv must have shape \(B,H,W,2\); got \(1, 2, 2, 3\)"),
        ({"uv": UV.double()}, "uv must match tex's dtype and device"),
        ({"filter_mode": "cubic"}, "filter_mode must be one of"),
        ({"boundary_mode": "cube"}, "boundary_mode must be one of .*no 'cube'.*got 'cube'"),
        ({"filter_mode": "linear-mipmap-linear"}, "needs uv_da or mip_level_bias"),
        ({"uv_da": torch.rand(1, 2, 2, 2)}, r"uv_da must have shape \(1, 2, 2, 4\)"),
        ({"uv_da": torch.rand(1, 2, 2, 4).double()}, "uv_da must match tex's dtype"),
        ({"mip_level_bias": torch.rand(1, 2, 2, 1)}, r"mip_level_bias must have shape "
                                                      r"\(1, 2, 2\)"),
        ({"uv_da": torch.rand(1, 2, 2, 4), "mip": [torch.rand(1, 2, 2, 3)]},
         "mip must be the list texture_construct_mip"),
        ({"uv_da": torch.rand(1, 2, 2, 4), "max_mip_level": -1},
         "max_mip_level must be a non-negative int"),
    ],
)
def test_texture_rejects_bad_input(kwargs, message):
    args = {"tex": TEX, "uv": UV} | kwargs
    with pytest.raises(RenderError, match=message):
        texture(**args)
