"""The texture stage of ``reconstruct`` (``recon.texture_stage``): UVs in the result
bundle, ``texture.png``, per-frame dynamic textures named by Blender frame, PSNR/SSIM
on fitted and held-out frames, and the settings that switch it."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from backend.errors import ConfigError
from backend.jobs.result import read_result
from backend.mesh.uv import UVAtlas, check_atlas
from backend.recon.run import reconstruct
from backend.recon.settings import preset
from backend.recon.texture_stage import fitted_frames

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def quick(**overrides):
    return preset("draft", resolution_px=64, template_edge_m=0.045, warmup_steps=10,
                  joint_steps=20, texture_size=128, texture_steps=40, eval_samples=500,
                  **overrides)


def test_a_static_texture_comes_with_uvs_and_scores_on_held_out_frames(capture, tmp_path):
    root, _ = capture
    result = reconstruct(root, tmp_path / "static", quick(texture_holdout=4))
    bundle = read_result(tmp_path / "static")
    garment = bundle.garment
    assert garment.uv is not None and garment.uv.shape == (len(garment.faces), 3, 2)
    assert garment.uv.min() >= 0 and garment.uv.max() <= 1
    atlas = UVAtlas(uvs=garment.uv, chart_of_face=np.zeros(len(garment.faces), np.int64),
                    chart_count=1, texture_size=128, padding_px=4, utilisation=0.0,
                    texels_per_metre=0.0)
    problems = check_atlas(atlas, garment.faces)
    assert not [p for p in problems if "overlap" in p or "area" in p], problems
    with Image.open(tmp_path / "static" / "texture.png") as image:
        assert image.size == (128, 128) and image.mode == "RGB"
    assert not bundle.dynamic_textures
    texture = result.metrics["texture"]
    assert texture["mode"] == "static" and texture["held_out_frames"] == 2
    assert texture["fitted_frames"] + texture["held_out_frames"] == len(garment.frame_numbers)
    for part in ("fitted", "held_out"):
        assert 15 < texture[part]["psnr_db"] < 60 and 0.3 < texture[part]["ssim"] <= 1, texture
    assert result.metrics["timings"]["texture_s"] > 0


def test_a_dynamic_texture_bakes_one_image_per_frame(capture, tmp_path):
    root, _ = capture
    reconstruct(root, tmp_path / "dynamic", quick(texture="dynamic"))
    bundle = read_result(tmp_path / "dynamic")
    frames = [int(f) for f in bundle.garment.frame_numbers]
    assert sorted(bundle.dynamic_textures) == frames
    first = np.asarray(Image.open(bundle.dynamic_textures[frames[0]]))
    assert first.shape == (128, 128, 3)
    assert (tmp_path / "dynamic" / "texture.png").is_file()


def test_no_texture_leaves_the_bundle_without_uvs(capture, tmp_path):
    root, _ = capture
    result = reconstruct(root, tmp_path / "none", quick(texture="none"))
    assert read_result(tmp_path / "none").garment.uv is None
    assert not (tmp_path / "none" / "texture.png").exists() and "texture" not in result.metrics


def test_held_out_frames_are_every_nth_when_there_are_enough():
    fit, held = fitted_frames(20, 5)
    assert held.tolist() == [2, 7, 12, 17] and len(fit) == 16
    assert not set(fit) & set(held)
    assert fitted_frames(6, 5)[1].size == 0 and fitted_frames(6, 0)[0].tolist() == list(range(6))


def test_bad_texture_settings_name_the_setting():
    base = preset("draft")
    for field, value in (("texture", "fancy"), ("texture_size", 1000), ("texture_steps", 0),
                         ("texture_holdout", -1)):
        with pytest.raises(ConfigError, match=field):
            dataclasses.replace(base, **{field: value})
