"""``backend.recon.texturing``: a known texture on a UV-unwrapped sphere is recovered
from six views rendered by an independent path (``render_passes`` with the texture
as albedo), over the texels the views show at full resolution; the dynamic texture
fits a per-frame brightness the static one cannot; baking puts a texel at a known
(u, v) in the right row and column (Blender's orientation), grows charts past their
borders and equals the static bake without a dynamic part; occlusion by the body,
progress, cancel, the 2D hash grid and every error."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image

from backend.errors import ConfigError
from backend.jobs.cancel import CancelToken, JobCancelled
from backend.mesh.uv import UVAtlas, coverage_mask, unwrap
from backend.recon.encoding import HashEncoding
from backend.recon.errors import ReconError
from backend.recon.texturing import (
    GarmentTexture,
    TextureSettings,
    bake_frame,
    bake_static,
    fit_texture,
    rasterize_uv,
    render_texture,
)
from backend.render import Camera, get_rasterizer, icosphere, render_passes
from tests.backend_tier.recon_helpers import CancelAfter
from tests.backend_tier.render_helpers import opencv_camera, ring_cameras

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE, RES, VIEWS = 128, 128, 6
"""Texture texels a side, render pixels a side, views around the sphere."""
BRIGHTNESS = (0.6, 1.25, 0.8, 1.1, 0.7, 1.35)
"""Per-frame factor on the target colours of the dynamic test."""


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10.0 * math.log10(1.0 / float(np.mean((np.asarray(a, np.float64) - b) ** 2)))


def known_texture(size: int) -> np.ndarray:
    """``(S, S, 3)`` linear RGB, row 0 at the top: colour gradients along u and v, a
    hard checker of 4-texel squares and per-texel noise (detail no smooth fit gets)."""
    row, col = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    u, v = (col + 0.5) / size, 1.0 - (row + 0.5) / size
    checker = ((row // 4 + col // 4) % 2).astype(np.float64)
    noise = np.random.default_rng(0).uniform(-0.05, 0.05, (size, size, 3))
    rgb = np.stack([0.2 + 0.5 * u, 0.15 + 0.4 * v + 0.2 * checker,
                    0.6 - 0.3 * u * v + 0.2 * (checker - 0.5)], axis=-1)
    return np.clip(rgb + noise, 0.0, 1.0).astype(np.float32)


@pytest.fixture(scope="module")
def sphere_scene():
    """A unit icosphere (1280 faces) unwrapped at 128^2, six ring views at 128^2 that
    magnify the texture (about 2.5 pixels per texel), and the views of the known
    texture rendered by ``render_passes``: its own UV interpolation, trilinear albedo
    sampling (v = 0 at row 0, hence 1 - v) and antialiasing."""
    v, f = icosphere(3)
    atlas = unwrap(v.numpy(), f.numpy(), texture_size=SIZE, padding_px=2)
    known = known_texture(SIZE)
    camera = ring_cameras(VIEWS, RES, RES * 1.1, 3.0)
    verts = v.unsqueeze(0).expand(VIEWS, -1, -1).contiguous()
    sampler_uv = torch.from_numpy(atlas.uvs.copy())
    sampler_uv[..., 1] = 1.0 - sampler_uv[..., 1]
    rasterizer = get_rasterizer("torch")
    with torch.no_grad():
        passes = render_passes(rasterizer, verts, f, camera, uv=sampler_uv.reshape(-1, 2),
                               uv_faces=torch.arange(len(f) * 3, dtype=torch.int32).view(-1, 3),
                               albedo=torch.from_numpy(known)[None], antialias=True)
    return dict(v=v, f=f, atlas=atlas, known=known, camera=camera, verts=verts,
                images=passes.color, masks=passes.mask, rast=passes.rast.numpy(),
                rasterizer=rasterizer)


def seen_at_full_resolution(scene) -> np.ndarray:
    """``(S, S)`` bool: texels nearest to the UV of a pixel whose footprint, measured
    from the UVs of its right and lower neighbours on the same triangle's chart, is at
    most one texel. UVs from the independent render's raster (barycentrics
    ``u a0 + v a1 + (1 - u - v) a2``), not from the module under test."""
    rast, uvs = scene["rast"], scene["atlas"].uvs
    ids = rast[..., 3].astype(np.int64)
    corner = uvs[np.clip(ids - 1, 0, None)]                             # (B, H, W, 3, 2)
    b0, b1 = rast[..., 0:1], rast[..., 1:2]
    uv = b0 * corner[..., 0, :] + b1 * corner[..., 1, :] + (1 - b0 - b1) * corner[..., 2, :]
    covered = ids > 0
    ok = covered[:, :-1, :-1] & covered[:, 1:, :-1] & covered[:, :-1, 1:]
    step_x = np.abs(uv[:, :-1, 1:] - uv[:, :-1, :-1]).max(-1) * SIZE
    step_y = np.abs(uv[:, 1:, :-1] - uv[:, :-1, :-1]).max(-1) * SIZE
    ok &= (step_x <= 1.0) & (step_y <= 1.0)
    centre = uv[:, :-1, :-1][ok]
    rows = np.clip(np.floor((1.0 - centre[:, 1]) * SIZE), 0, SIZE - 1).astype(int)
    cols = np.clip(np.floor(centre[:, 0] * SIZE), 0, SIZE - 1).astype(int)
    seen = np.zeros((SIZE, SIZE), bool)
    seen[rows, cols] = True
    return seen


def model_with(texture: np.ndarray) -> GarmentTexture:
    model = GarmentTexture(TextureSettings(texture_size=texture.shape[0], dynamic=False))
    with torch.no_grad():
        model.static.copy_(torch.from_numpy(texture))
    return model


# ------------------------------------------------------------------------ recovery


def test_a_known_texture_is_recovered_from_six_views(sphere_scene):
    s = sphere_scene
    settings = TextureSettings(texture_size=SIZE, dynamic=False, steps=150, frames_per_step=3)
    fit = fit_texture(s["verts"], s["f"], s["atlas"], s["camera"], s["images"], s["masks"],
                      settings, rasterizer=s["rasterizer"])
    start = fit_texture(s["verts"], s["f"], s["atlas"], s["camera"], s["images"], s["masks"],
                        dataclasses.replace(settings, steps=1, lr_static=1e-9),
                        rasterizer=s["rasterizer"])
    region = seen_at_full_resolution(s) & coverage_mask(s["atlas"])
    assert region.sum() > 0.9 * coverage_mask(s["atlas"]).sum()   # the views see nearly all
    recovered = fit.model.static.detach().numpy()
    texture_psnr = psnr(recovered[region], s["known"][region])
    initial_psnr = psnr(start.model.static.detach().numpy()[region], s["known"][region])

    # Re-rendered views against the targets, inside the garment (away from the
    # antialiased silhouette), from the model and from the baked 8-bit PNG image.
    inside = s["masks"][..., 0].numpy() > 0.999
    with torch.no_grad():
        again = render_texture(s["rasterizer"], fit.model, s["verts"], s["f"],
                               s["atlas"].uvs, s["camera"])
        baked = bake_static(fit.model, s["atlas"])
        from_png = render_texture(s["rasterizer"], model_with((baked / 255.0) ** 2.2),
                                  s["verts"], s["f"], s["atlas"].uvs, s["camera"])
    target = s["images"].numpy()[inside]
    render_psnr = psnr(again.color.numpy()[inside], target)
    png_psnr = psnr(from_png.color.numpy()[inside].astype(np.float32), target)
    print(f"\ntexture PSNR {texture_psnr:.1f} dB over {int(region.sum())} texels (start "
          f"{initial_psnr:.1f} dB); re-rendered views {render_psnr:.1f} dB, from the baked "
          f"PNG {png_psnr:.1f} dB; fit {fit.seconds:.1f} s")
    assert texture_psnr >= 30.0
    assert texture_psnr > initial_psnr + 10.0          # the optimisation, not the start
    assert render_psnr >= 40.0
    assert png_psnr >= 50.0          # baking keeps the fitted texels past chart borders
    assert fit.losses[-1][1] < 0.01 * fit.losses[0][1]


def test_the_dynamic_texture_fits_a_per_frame_brightness(sphere_scene):
    s = sphere_scene
    bright = torch.tensor(BRIGHTNESS)
    images = (s["images"] * bright.view(-1, 1, 1, 1)).clamp(0.0, 1.0)
    other = torch.tensor([0.3, -1.2, 0.5, 1.4, -0.9, -0.1])
    codes = torch.stack([(bright - bright.mean()) / bright.std(), other], dim=1)
    inside = s["masks"][..., 0].numpy() > 0.999
    scores, fits = {}, {}
    for dynamic in (False, True):
        settings = TextureSettings(texture_size=SIZE, dynamic=dynamic, steps=150,
                                   frames_per_step=3, hash_levels=6, hash_table_size_log2=12,
                                   hash_max_resolution=64)
        fit = fit_texture(s["verts"], s["f"], s["atlas"], s["camera"], images, s["masks"],
                          settings, pose_codes=codes, rasterizer=s["rasterizer"])
        with torch.no_grad():
            again = render_texture(s["rasterizer"], fit.model, s["verts"], s["f"],
                                   s["atlas"].uvs, s["camera"], frames=torch.arange(VIEWS))
        scores[dynamic] = psnr(again.color.numpy()[inside], images.numpy()[inside])
        fits[dynamic] = fit
    print(f"\ntraining views: static only {scores[False]:.1f} dB, static + dynamic "
          f"{scores[True]:.1f} dB")
    assert scores[True] >= scores[False] + 3.0
    # The baked frames follow the brightness: the darkest frame bakes darker than the
    # static texture, the brightest brighter.
    model, atlas = fits[True].model, s["atlas"]
    coverage = coverage_mask(atlas)
    dark = bake_frame(model, atlas, int(np.argmin(BRIGHTNESS)), coverage)[coverage].mean()
    light = bake_frame(model, atlas, int(np.argmax(BRIGHTNESS)), coverage)[coverage].mean()
    middle = bake_static(model, atlas, coverage)[coverage].mean()
    assert dark < middle < light


# ------------------------------------------------------------------------- baking


def quad_atlas(size: int = 64, inset: float = 0.1) -> UVAtlas:
    """One chart: the square ``[inset, 1 - inset]^2`` of UV space, two faces."""
    lo, hi = inset, 1.0 - inset
    uvs = np.array([[[lo, lo], [hi, lo], [hi, hi]], [[lo, lo], [hi, hi], [lo, hi]]], np.float32)
    return UVAtlas(uvs=uvs, chart_of_face=np.zeros(2, np.int32), chart_count=1,
                   texture_size=size, padding_px=2, utilisation=(hi - lo) ** 2,
                   texels_per_metre=size / 2.0)


def quad_scene(size: int = 64, inset: float = 0.1):
    """A 2 m square in the world's x-z plane, u along +x and v along +z, seen straight
    on from -y with z up in the image, filling the central 48 of 64 pixels."""
    atlas = quad_atlas(size, inset)
    verts = torch.tensor([[-1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, 1.0],
                          [-1.0, 0.0, 1.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    camera = opencv_camera(64, 64, 96.0, eye=(0.0, -4.0, 0.0))
    return atlas, verts, faces, camera


def test_a_texel_at_a_known_uv_bakes_into_blenders_row_and_column(tmp_path):
    """Fit one view whose top-left quarter (world x < 0, z > 0, so u < 1/2, v > 1/2) is
    red, the rest blue; the baked image is red where row < S/2 and column < S/2, as
    Blender reads an image (row 0 at the top = v 1), also after a PNG round trip."""
    atlas, verts, faces, camera = quad_scene(inset=0.0)
    image = torch.zeros(1, 64, 64, 3)
    image[..., 2] = 0.8
    image[0, :32, :32] = torch.tensor([0.8, 0.0, 0.0])
    settings = TextureSettings(texture_size=64, dynamic=False, steps=60, frames_per_step=1,
                               lr_static=0.05)
    fit = fit_texture(verts[None], faces, atlas, camera, image, torch.ones(1, 64, 64, 1),
                      settings)
    path = tmp_path / "texture.png"
    Image.fromarray(bake_static(fit.model, atlas)).save(path)
    baked = np.asarray(Image.open(path).convert("RGB")).astype(np.float64) / 255.0
    s = 64
    for u, v, red in ((0.25, 0.75, True), (0.75, 0.75, False), (0.25, 0.25, False),
                      (0.75, 0.25, False), (0.1, 0.9, True)):
        row, col = int((1.0 - v) * s), int(u * s)
        texel = baked[row, col]
        assert (texel[0] > 0.8 and texel[2] < 0.2) == red, (u, v, row, col, texel)
        assert (texel[2] > 0.8 and texel[0] < 0.2) == (not red), (u, v, row, col, texel)


def test_baking_grows_charts_past_their_borders_and_fills_the_rest():
    """Two charts (left red, right blue) with garbage around them: the texels next to
    each chart take its colour, farther texels the mean garment colour."""
    size = 64
    left = np.array([[[0.1, 0.1], [0.4, 0.1], [0.4, 0.9]], [[0.1, 0.1], [0.4, 0.9], [0.1, 0.9]]])
    right = left + [0.5, 0.0]
    atlas = UVAtlas(uvs=np.concatenate([left, right]).astype(np.float32),
                    chart_of_face=np.array([0, 0, 1, 1], np.int32), chart_count=2,
                    texture_size=size, padding_px=3, utilisation=0.48, texels_per_metre=32.0)
    coverage = coverage_mask(atlas)
    texture = np.random.default_rng(1).random((size, size, 3)).astype(np.float32)
    cols = np.arange(size)
    texture[coverage & (cols < size // 2)] = [1.0, 0.0, 0.0]
    texture[coverage & (cols >= size // 2)] = [0.0, 0.0, 1.0]
    baked = bake_static(model_with(texture), atlas).astype(int)
    inner = slice(int(0.1 * size) + 2, int(0.9 * size) - 2)         # rows inside the charts
    first = int(np.flatnonzero(coverage[size // 2])[0])             # left chart's first column
    last = int(np.flatnonzero(coverage[size // 2, : size // 2])[-1])
    for k in range(1, 4):                                           # padding_px rounds
        assert (baked[inner, first - k] == [255, 0, 0]).all()
        assert (baked[inner, last + k] == [255, 0, 0]).all()
        assert (baked[inner, first + size // 2 - k] == [0, 0, 255]).all()
    mean = (255 * 0.5 ** (1 / 2.2))
    far = baked[0, 0]                                               # no chart within reach
    np.testing.assert_allclose(far, [round(mean), 0, round(mean)], atol=1)
    np.testing.assert_array_equal(baked[coverage], (np.where(
        (cols < size // 2)[None, :, None], [255, 0, 0], [0, 0, 255]) * np.ones((size, 1, 1))
    )[coverage])


def test_bake_frame_without_a_dynamic_part_equals_bake_static(sphere_scene):
    atlas = sphere_scene["atlas"]
    coverage = coverage_mask(atlas)
    static = model_with(sphere_scene["known"])
    np.testing.assert_array_equal(bake_frame(static, atlas, 3, coverage),
                                  bake_static(static, atlas, coverage))
    # A fresh dynamic part starts at zero: still the static bake.
    fresh = GarmentTexture(TextureSettings(texture_size=SIZE), pose_codes=torch.randn(4, 2))
    with torch.no_grad():
        fresh.static.copy_(torch.from_numpy(sphere_scene["known"]))
    np.testing.assert_array_equal(bake_frame(fresh, atlas, 2, coverage),
                                  bake_static(static, atlas, coverage))


# ------------------------------------------------------------------------ renders


def test_the_body_hides_the_garment_behind_it():
    atlas, verts, faces, camera = quad_scene()
    body = torch.tensor([[-0.3, -1.0, -0.3], [0.3, -1.0, -0.3], [0.3, -1.0, 0.3],
                         [-0.3, -1.0, 0.3]])                        # 1 m closer to the camera
    model = model_with(np.full((64, 64, 3), 0.5, np.float32))
    rasterizer = get_rasterizer("torch")
    with torch.no_grad():
        plain = render_texture(rasterizer, model, verts[None], faces, atlas.uvs, camera)
        hidden = render_texture(rasterizer, model, verts[None], faces, atlas.uvs, camera,
                                body_vertices=body[None], body_faces=faces)
    assert plain.mask[0, 32, 32, 0] == 1 and hidden.mask[0, 32, 32, 0] == 0
    assert hidden.rast[0, 32, 32, 3] > len(faces)                   # a body triangle
    assert hidden.mask[0, 10, 10, 0] == 1                           # the quad's corner
    assert float(hidden.color[0, 32, 32].abs().sum()) == 0.0
    np.testing.assert_allclose(plain.color[0, 10, 10].numpy(), 0.5, atol=1e-6)
    raster = rasterize_uv(rasterizer, verts[None], faces, atlas.uvs, camera)
    # u along +x (image right), v along +z (image up)
    left, right = raster.uv[raster.pixels == 32 * 64 + 10], raster.uv[raster.pixels == 32 * 64 + 53]
    top, bottom = raster.uv[raster.pixels == 10 * 64 + 32], raster.uv[raster.pixels == 53 * 64 + 32]
    assert left[0, 0] < right[0, 0] and top[0, 1] > bottom[0, 1]


def test_a_view_that_misses_the_garment_renders_empty():
    atlas, verts, faces, _ = quad_scene()
    away = opencv_camera(64, 64, 96.0, eye=(0.0, -4.0, 0.0), target=(0.0, -8.0, 0.0))
    model = GarmentTexture(TextureSettings(texture_size=64), pose_codes=torch.zeros(1, 2))
    with torch.no_grad():
        out = render_texture(get_rasterizer("torch"), model, verts[None], faces, atlas.uvs,
                             away, frames=torch.tensor([0]), antialias=True)
    assert out.color.shape == (1, 64, 64, 3) and float(out.mask.sum()) == 0.0


# ------------------------------------------------------------ progress and cancel




def test_progress_is_reported_and_cancel_stops_the_fit():
    atlas, verts, faces, camera = quad_scene()
    image, mask = torch.full((1, 64, 64, 3), 0.3), torch.ones(1, 64, 64, 1)
    settings = TextureSettings(texture_size=64, dynamic=False, steps=25, progress_interval=10)
    calls = []
    fit = fit_texture(verts[None], faces, atlas, camera, image, mask, settings,
                      progress=lambda step, total, loss: calls.append((step, total, loss)))
    assert [c[:2] for c in calls] == [(10, 25), (20, 25), (25, 25)]
    assert all(math.isfinite(c[2]) for c in calls)
    assert [h[0] for h in fit.losses] == [10, 20, 25]
    with pytest.raises(JobCancelled):
        fit_texture(verts[None], faces, atlas, camera, image, mask, settings,
                    cancel=CancelAfter(3))
    with pytest.raises(JobCancelled):
        fit_texture(verts[None], faces, atlas, camera, image, mask, settings,
                    cancel=lambda: True)
    fit_texture(verts[None], faces, atlas, camera, image, mask,
                dataclasses.replace(settings, steps=2), cancel=CancelToken(None))


# ---------------------------------------------------------------- 2D hash grid


def test_the_2d_hash_grid_interpolates_bilinearly_between_its_corners():
    grid = HashEncoding(levels=1, table_size_log2=12, features=3, base_resolution=4,
                        max_resolution=4, extent_m=1.0, in_features=2)
    assert grid.corners.shape == (4, 2)
    table = grid.tables.detach()[0]

    def entry(i, j):          # the hash of corner (i, j): i * 1 XOR j * 2654435761
        return table[(i ^ (j * 2654435761)) % grid.table_size]

    def at(a, b):             # grid coordinates -> [-1, 1] inputs
        return torch.tensor([[2.0 * a / 4 - 1.0, 2.0 * b / 4 - 1.0]])

    torch.testing.assert_close(grid(at(1, 2))[0], entry(1, 2))
    torch.testing.assert_close(grid(at(1.5, 2))[0], 0.5 * (entry(1, 2) + entry(2, 2)))
    torch.testing.assert_close(grid(at(1.25, 2.5))[0],
                               0.375 * (entry(1, 2) + entry(1, 3))
                               + 0.125 * (entry(2, 2) + entry(2, 3)))
    # Many levels and random points (some outside, clamped) against the generic
    # multilinear formula of the 3D path written for two axes.
    out = HashEncoding(levels=4, table_size_log2=10, features=2, base_resolution=3,
                       max_resolution=200, in_features=2)
    x = torch.rand(300, 2, generator=torch.Generator().manual_seed(0)) * 2.2 - 1.1
    scaled = ((x + 1) / 2).clamp(0, 1)[None] * out.resolutions.view(-1, 1, 1)
    base = scaled.floor().long()
    frac = scaled - base
    corner = base[:, :, None] + out.corners.view(1, 1, 4, 2)               # (L, N, 4, 2)
    index = (corner[..., 0] ^ (corner[..., 1] * 2654435761)) % out.table_size
    weights = torch.where(out.corners.view(1, 1, 4, 2) > 0, frac[:, :, None],
                          1 - frac[:, :, None]).prod(-1)
    tables = out.tables.detach()[torch.arange(4).view(-1, 1, 1), index]   # (L, N, 4, 2)
    reference = (tables * weights[..., None]).sum(2).permute(1, 0, 2).reshape(300, 8)
    values = out(x)
    torch.testing.assert_close(values, reference)
    values.square().sum().backward()
    assert out.tables.grad.abs().sum() > 0
    assert HashEncoding().corners.shape == (8, 3)                   # 3D unchanged
    with pytest.raises(ReconError, match="in_features"):
        HashEncoding(in_features=4)


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize("change, name", [
    ({"texture_size": 100}, "texture_size"),
    ({"texture_size": 32}, "texture_size"),
    ({"steps": 0}, "steps"),
    ({"frames_per_step": 0}, "frames_per_step"),
    ({"lr_static": 0.0}, "lr_static"),
    ({"lr_dynamic": -1.0}, "lr_dynamic"),
    ({"dynamic_start": 1.5}, "dynamic_start"),
    ({"dynamic_max": 2.0}, "dynamic_max"),
    ({"pose_noise": -0.1}, "pose_noise"),
    ({"ssim_weight": float("nan")}, "ssim_weight"),
    ({"edge_erosion_px": 1.5}, "edge_erosion_px"),
    ({"init": "zeros"}, "init"),
    ({"hash_max_resolution": 2}, "hash_max_resolution"),
    ({"dynamic": "yes"}, "dynamic"),
])
def test_bad_settings_name_the_setting(change, name):
    with pytest.raises(ConfigError, match=name):
        TextureSettings(**change)


def test_settings_from_a_job_file_reject_unknown_keys():
    assert TextureSettings.from_dict({"steps": 5}).steps == 5
    with pytest.raises(ConfigError, match="stepz"):
        TextureSettings.from_dict({"stepz": 5})


def test_bad_inputs_raise_recon_errors():
    atlas, verts, faces, camera = quad_scene()
    image, mask = torch.full((1, 64, 64, 3), 0.3), torch.ones(1, 64, 64, 1)
    ok = TextureSettings(texture_size=64, dynamic=False, steps=1)
    with pytest.raises(ReconError, match="texture_size"):
        fit_texture(verts[None], faces, atlas, camera, image, mask,
                    dataclasses.replace(ok, texture_size=128))
    with pytest.raises(ReconError, match="images"):
        fit_texture(verts[None], faces, atlas, camera, image[:, :32], mask, ok)
    with pytest.raises(ReconError, match="masks"):
        fit_texture(verts[None], faces, atlas, camera, image, mask[:, :, :32], ok)
    with pytest.raises(ReconError, match="vertices"):
        fit_texture(verts, faces, atlas, camera, image, mask, ok)
    with pytest.raises(ReconError, match="pose_codes"):
        fit_texture(verts[None], faces, atlas, camera, image, mask,
                    dataclasses.replace(ok, dynamic=True))
    with pytest.raises(ReconError, match="faces"):
        fit_texture(verts[None], faces + 2, atlas, camera, image, mask, ok)
    with pytest.raises(ReconError, match="nothing to fit"):
        fit_texture(verts[None], faces, atlas, camera, image, torch.zeros_like(mask), ok)
    with pytest.raises(ReconError, match="uvs"):
        rasterize_uv(get_rasterizer("torch"), verts[None], faces, atlas.uvs[:1], camera)
    with pytest.raises(ReconError, match="camera"):
        two = Camera.create(camera.K.expand(2, 3, 3), camera.R.expand(2, 3, 3),
                            camera.t.expand(2, 3), 64, 64)
        rasterize_uv(get_rasterizer("torch"), verts[None], faces, atlas.uvs, two)
    with pytest.raises(ReconError, match="body_faces"):
        rasterize_uv(get_rasterizer("torch"), verts[None], faces, atlas.uvs, camera,
                     body_vertices=verts[None])
    dynamic = GarmentTexture(TextureSettings(texture_size=64), pose_codes=torch.zeros(3, 2))
    with pytest.raises(ReconError, match="frame_index"):
        bake_frame(dynamic, atlas, 3)
    with pytest.raises(ReconError, match="texture_size"):
        bake_static(dynamic, quad_atlas(size=128))
    with pytest.raises(ReconError, match="frames"):
        render_texture(get_rasterizer("torch"), dynamic, verts[None], faces, atlas.uvs, camera,
                       frames=torch.tensor([5]))
