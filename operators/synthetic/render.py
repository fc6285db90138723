"""Cycles renders of a synthetic capture: footage, garment masks, normal and depth maps.

One render per frame. The scene's view layer renders the Combined, Depth and Normal
passes plus one shader AOV, ``garment_mask``, into a multilayer OpenEXR file
(uncompressed float32, read back by ``read_exr`` below: bpy cannot hand out render
pixels, and a multilayer EXR keeps every pass of one render together). From it:

- ``frames/NNNNNN.png`` RGB: Combined through the sRGB transfer function, clipped;
  bit-identical to Blender's "Standard" view transform (measured), so ``scene.blend``
  renders what the footage shows.
- ``masks/NNNNNN.png`` 8-bit grey, 255 = garment: the AOV, which the garment's
  materials set to 1 (``ensure_mask_aov``) and every other surface leaves at 0. Cycles
  averages AOVs over the camera-ray samples, so the value is the filter-weighted
  coverage of *visible* garment: the body in front of the garment hides it. Pixels
  at least half covered are garment (the capture's "> 127" rule, like ``masks.py``).
- ``normals/NNNNNN.png`` RGB = (n * 0.5 + 0.5) * 255, camera space with OpenCV axes
  (x right, y down, z forward). Cycles' Normal pass is the world-space shading normal
  averaged over samples and already flipped to face the incoming ray on back faces
  (measured: the inside of a garment faces the camera too), which is what an
  estimator gives and what ``backend/recon/data.py`` turns into NGD's diffuse target
  ``clamp(n . view, 0, 1)``. Rotated by the frame's OpenCV R and renormalised;
  background pixels (no surface) are (128, 128, 128), the zero vector.
- ``depth/NNNNNN.npy`` (H, W) float32 metres: Cycles' Depth pass, which is planar
  depth (distance along the camera's viewing axis, = OpenCV camera z; measured: a
  plane facing the camera has the same depth in every pixel), from the first sample
  of each pixel (Cycles writes Depth once per pixel), hence unblended but jittered
  within the pixel filter's footprint. Background (Cycles writes 1e10) is 0 = unknown.

``write_estimate`` turns a normal or depth map into a noisy, blurred copy, as if an
estimator had made it (for captures that feed the exact maps as estimates).

Pixel (i, j) of every image is row i from the top; its centre is OpenCV pixel
coordinate (j, i), as ``scene_capture/camera.py`` defines K.

The scene is configured for these renders (Cycles on the CPU, fixed seed, no
denoising, no adaptive sampling, no motion blur, Standard view transform, the passes
above) and stays so, so ``scene.blend`` renders like the footage; only its output
settings (file path and format) and frame are restored afterwards.
"""

from __future__ import annotations

import logging
import math
import struct
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from ...backend.capture.bundle import FrameCamera, frame_file_name
from ...backend.fileio import atomic_write
from ..base import GarmentError
from ..scene_capture.camera import check_camera, frame_camera
from ..scene_capture.timeline import frame_restored, set_frame

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""progress(stage, step, total)"""

MASK_AOV = "garment_mask"
"""Name of the shader AOV (a Value) the garment's materials set to 1."""
MASK_AOV_NODE = "Garment Mask AOV"
"""Name of the AOV Output node ``ensure_mask_aov`` adds to a garment material."""
MASK_THRESHOLD = 0.5
"""Garment coverage above which a pixel is garment (written as 255, else 0)."""
NO_SURFACE_DEPTH_M = 1e9
"""Depth at or above this is background: Cycles writes 1e10 where no surface is hit."""
FOLDERS = ("frames", "masks", "normals", "depth")
"""The bundle folders ``render_capture_images`` writes, in ``out_dir``."""


@dataclass(frozen=True)
class FramePasses:
    """One frame's images, decoded, row 0 = top of the image.

    rgb: (H, W, 3) uint8 sRGB footage.
    mask: (H, W) uint8, 255 = visible garment, 0 = not.
    coverage: (H, W) float32 visible-garment coverage in [0, 1] (the AOV).
    normals: (H, W, 3) float32 unit camera-space normals (OpenCV axes) facing the
        camera; (0, 0, 0) where no surface was hit.
    depth: (H, W) float32 OpenCV camera z in metres; 0 where no surface was hit.
    """

    rgb: np.ndarray
    mask: np.ndarray
    coverage: np.ndarray
    normals: np.ndarray
    depth: np.ndarray


@dataclass(frozen=True)
class RenderReport:
    """What ``render_capture_images`` did.

    Attributes:
        frames: the Blender frame numbers rendered, in order.
        size: (width, height) in pixels.
        samples: Cycles samples per pixel.
        cameras: the OpenCV camera of each frame (K at ``size``), for capture.json.
        mask_pixels: garment pixels in each frame's mask.
        timings_s: total seconds per stage: "setup", "render" (scene evaluation, sync
            and path tracing), "read" (EXR decoding), "write" (PNG/NPY encoding).
        per_frame_s: wall seconds of each frame (render + read + write).
    """

    frames: tuple[int, ...]
    size: tuple[int, int]
    samples: int
    cameras: tuple[FrameCamera, ...]
    mask_pixels: tuple[int, ...]
    timings_s: dict[str, float] = field(default_factory=dict)
    per_frame_s: tuple[float, ...] = ()


def render_capture_images(scene, frames: Sequence[int], garment, out_dir: Path | str,
                          resolution: int | tuple[int, int], samples: int,
                          progress: Progress | None = None, seed: int = 0,
                          folders: Sequence[str] = FOLDERS) -> RenderReport:
    """Render ``frames`` of ``scene`` with its camera into ``out_dir``'s bundle folders.

    Args:
        scene: the scene; ``scene.camera`` is the capture camera (``look.place_camera``).
        frames: Blender frame numbers, strictly increasing.
        garment: the garment mesh object; its materials get the mask AOV
            (``ensure_mask_aov``); no other object may share them.
        out_dir: the capture folder; ``frames/``, ``masks/``, ``normals/`` and ``depth/``
            are created in it and ``NNNNNN`` files (the frame number) written there.
        resolution: image size in pixels, square (an int) or (width, height).
        samples: Cycles samples per pixel (>= 1).
        progress: optional ``progress(stage, step, total)``; stage "render".
        seed: Cycles' sampling seed (the same seed gives identical images).
        folders: which of ``FOLDERS`` to write (default all; e.g. ("frames", "masks")
            for a view that needs no normal or depth maps). The passes are rendered
            either way: the images do not depend on this choice.
    Returns:
        RenderReport with the cameras and timings.
    Raises:
        GarmentError: bad frames, resolution, samples, camera or garment.
    """
    started = time.perf_counter()
    frames = _check_frames(frames)
    size = _check_resolution(resolution)
    folders = _check_folders(folders)
    if int(samples) < 1:
        raise GarmentError(f"Render samples must be at least 1, got {samples}")
    check_camera(scene.camera)
    ensure_mask_aov(scene, garment)
    view_layer = configure_cycles(scene, size, int(samples), int(seed))
    out_dir = Path(out_dir)
    for name in folders:
        (out_dir / name).mkdir(parents=True, exist_ok=True)

    timings = {"setup": 0.0, "render": 0.0, "read": 0.0, "write": 0.0}
    cameras, mask_pixels, per_frame = [], [], []
    with _output_restored(scene), frame_restored(scene), \
            tempfile.TemporaryDirectory(prefix="garment_render_") as tmp:
        settings = scene.render.image_settings
        if hasattr(settings, "media_type"):  # Blender 5.0+
            settings.media_type = "MULTI_LAYER_IMAGE"
        settings.file_format = "OPEN_EXR_MULTILAYER"
        settings.color_depth = "32"
        settings.exr_codec = "NONE"  # the reader below handles uncompressed files only
        scene.render.use_file_extension = True
        exr_base = Path(tmp) / "passes"
        scene.render.filepath = str(exr_base)
        timings["setup"] = time.perf_counter() - started
        for step, frame in enumerate(frames):
            t0 = time.perf_counter()
            depsgraph = set_frame(scene, frame)
            camera = frame_camera(scene, depsgraph, scene.camera, size, frame)
            exr = render_exr(scene, view_layer, exr_base)
            t1 = time.perf_counter()
            passes = decode_passes(read_exr(exr), view_layer.name, camera, exr)
            t2 = time.perf_counter()
            write_frame(out_dir, frame, passes, folders)
            t3 = time.perf_counter()
            timings["render"] += t1 - t0
            timings["read"] += t2 - t1
            timings["write"] += t3 - t2
            per_frame.append(t3 - t0)
            cameras.append(camera)
            mask_pixels.append(int((passes.mask > 0).sum()))
            if progress is not None:
                progress("render", step + 1, len(frames))
    log.info("rendered %d frames at %dx%d, %d spp: %.2f s/frame (%s)", len(frames), *size,
             samples, sum(per_frame) / len(frames),
             ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    return RenderReport(frames=frames, size=size, samples=int(samples),
                        cameras=tuple(cameras), mask_pixels=tuple(mask_pixels),
                        timings_s=timings, per_frame_s=tuple(per_frame))


def configure_cycles(scene, size: tuple[int, int], samples: int, seed: int = 0):
    """Set ``scene`` up for deterministic Cycles renders with the capture's passes;
    returns the view layer that renders (the first one, rendered alone)."""
    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x, render.resolution_y = size
    render.resolution_percentage = 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.use_border = False
    render.film_transparent = False
    render.use_motion_blur = False  # every pixel must show the frame's exact geometry
    render.use_compositing = False
    render.use_sequencer = False
    render.use_single_layer = True
    # keep Cycles' scene between frames: only what the frame changed is synced again
    # (measured at 128^2: 0.65 s -> 0.04 s of overhead per frame; identical images)
    render.use_persistent_data = True
    cycles = scene.cycles
    cycles.device = "CPU"
    cycles.samples = samples
    cycles.use_adaptive_sampling = False
    cycles.use_denoising = False
    cycles.seed = seed
    cycles.use_animated_seed = False
    cycles.time_limit = 0.0
    # few bounces: cloth and skin need one indirect bounce for soft fill, no caustics
    # (measured at 256^2, 16 spp: 4/2/2 bounces cost ~1.5x of 2/1/1); clamping removes
    # fireflies that few samples cannot average away
    cycles.max_bounces = 2
    cycles.diffuse_bounces = 1
    cycles.glossy_bounces = 1
    cycles.transmission_bounces = 1
    cycles.volume_bounces = 0
    cycles.transparent_max_bounces = 2
    cycles.caustics_reflective = False
    cycles.caustics_refractive = False
    cycles.sample_clamp_indirect = 10.0
    view = scene.view_settings
    scene.display_settings.display_device = "sRGB"
    view.view_transform = "Standard"  # what _srgb_bytes reproduces
    view.look = "None"
    view.exposure = 0.0
    view.gamma = 1.0
    view_layer = scene.view_layers[0]
    view_layer.use = True
    view_layer.use_pass_combined = True
    view_layer.use_pass_z = True
    view_layer.use_pass_normal = True
    if MASK_AOV not in view_layer.aovs:
        aov = view_layer.aovs.add()
        aov.name = MASK_AOV
    view_layer.aovs[MASK_AOV].type = "VALUE"
    return view_layer


def ensure_mask_aov(scene, garment) -> None:
    """Give every material of ``garment`` an AOV Output writing 1 to ``garment_mask``.

    A garment without material gets a plain grey one. Raises GarmentError if
    ``garment`` is not a mesh object in ``scene``, or if another object of the scene
    uses one of its materials (it would be masked as garment too).
    """
    if garment is None or garment.type != "MESH":
        kind = "nothing" if garment is None else f"a {garment.type.lower()} object"
        name = "" if garment is None else f" '{garment.name}'"
        raise GarmentError(f"Garment{name} is {kind}; expected a mesh object")
    if scene.objects.get(garment.name) != garment:
        raise GarmentError(f"Garment '{garment.name}' is not in scene '{scene.name}'")
    if not any(slot.material for slot in garment.material_slots):
        material = bpy.data.materials.new(f"{garment.name} Material")
        garment.data.materials.clear()
        garment.data.materials.append(material)
    materials = {slot.material for slot in garment.material_slots if slot.material}
    for obj in scene.objects:
        if obj == garment or not hasattr(obj, "material_slots"):
            continue
        shared = [s.material.name for s in obj.material_slots if s.material in materials]
        if shared:
            raise GarmentError(f"Object '{obj.name}' uses the garment's material "
                               f"'{shared[0]}', so it would be masked as garment; give it "
                               "its own material")
    for material in materials:
        tree = _node_tree(material)
        node = tree.nodes.get(MASK_AOV_NODE)
        if node is None:
            node = tree.nodes.new("ShaderNodeOutputAOV")
            node.name = node.label = MASK_AOV_NODE
        node.aov_name = MASK_AOV
        node.inputs["Value"].default_value = 1.0


def render_exr(scene, view_layer, exr_base: Path) -> Path:
    """Render the scene's current frame to ``exr_base`` + ".exr"; returns that path."""
    path = exr_base.with_name(exr_base.name + ".exr")
    path.unlink(missing_ok=True)
    with bpy.context.temp_override(scene=scene, view_layer=view_layer):
        # write_still renders synchronously and writes every pass of the view layer
        bpy.ops.render.render(write_still=True)
    if not path.is_file():
        raise GarmentError(f"Cycles wrote no image for frame {scene.frame_current} of scene "
                           f"'{scene.name}' (expected {path})")
    return path


def decode_passes(channels: dict[str, np.ndarray], layer: str, camera: FrameCamera,
                  source: Path | str = "render") -> FramePasses:
    """The bundle's images from one render's EXR channels (``read_exr``).

    Args:
        channels: name -> (H, W) float32, names ``<layer>.<pass>.<channel>``.
        layer: the view layer's name.
        camera: the frame's OpenCV camera (its R turns world normals to camera space).
        source: for error messages.
    """
    def get(pass_name: str, count: int) -> np.ndarray:
        prefix = f"{layer}.{pass_name}."
        names = sorted(n for n in channels if n.startswith(prefix))
        if pass_name == "Combined":
            names = [prefix + c for c in "RGB"]
        elif pass_name == "Normal":
            names = [prefix + c for c in "XYZ"]
        missing = [n for n in names if n not in channels]
        if len(names) < count or missing:
            raise GarmentError(f"{source}: the render has no {pass_name} pass "
                               f"(channels {sorted(channels)})")
        return np.stack([channels[n] for n in names[:count]], -1)

    combined = get("Combined", 3)
    coverage = np.clip(get(MASK_AOV, 1)[..., 0], 0.0, 1.0)
    normals_world = get("Normal", 3)
    depth = get("Depth", 1)[..., 0]

    normals = normals_world @ np.asarray(camera.R, np.float32).T
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    hit = length > 1e-3  # averaged over samples: partly covered pixels are shorter
    normals = np.where(hit, normals / np.maximum(length, 1e-12), 0.0).astype(np.float32)
    depth = np.where(np.isfinite(depth) & (depth < NO_SURFACE_DEPTH_M), depth, 0.0)
    mask = np.where(coverage > MASK_THRESHOLD, 255, 0).astype(np.uint8)
    return FramePasses(rgb=srgb_bytes(combined), mask=mask,
                       coverage=coverage.astype(np.float32), normals=normals,
                       depth=depth.astype(np.float32))


def write_frame(out_dir: Path, frame: int, passes: FramePasses,
                folders: Sequence[str] = FOLDERS) -> None:
    """Write one frame's files into the bundle folders of ``out_dir`` (all four, or
    those named in ``folders``)."""
    name = frame_file_name(frame)
    if "frames" in folders:
        write_png(out_dir / "frames" / name, passes.rgb)
    if "masks" in folders:
        write_png(out_dir / "masks" / name, passes.mask)
    if "normals" in folders:
        write_png(out_dir / "normals" / name, encode_normals(passes.normals))
    if "depth" in folders:
        with atomic_write(out_dir / "depth" / frame_file_name(frame, ".npy")) as tmp, \
                open(tmp, "wb") as f:  # a file object: np.save would append ".npy"
            np.save(f, passes.depth)


def encode_normals(normals: np.ndarray) -> np.ndarray:
    """(H, W, 3) float normals in [-1, 1] -> uint8 RGB = round((n * 0.5 + 0.5) * 255)."""
    return np.floor((np.clip(normals, -1.0, 1.0) * 0.5 + 0.5) * 255.0 + 0.5).astype(np.uint8)


def srgb_bytes(linear: np.ndarray) -> np.ndarray:
    """Scene-linear Rec.709 RGB -> 8-bit sRGB as Blender's Standard view transform
    writes it (piecewise sRGB curve, clipped to [0, 1], rounded, no dithering)."""
    x = np.clip(linear, 0.0, 1.0).astype(np.float64)
    encoded = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)
    return np.floor(encoded * 255.0 + 0.5).astype(np.uint8)


def write_estimate(name: str, source: Path | str, target: Path | str, frame: int,
                   rng: np.random.Generator, noise: float = 0.0, blur_px: float = 0.0
                   ) -> Path:
    """Copy one frame's normal or depth map, degraded like an estimator's output.

    Args:
        name: "normals" (``NNNNNN.png``) or "depth" (``NNNNNN.npy``).
        source, target: folders to read the exact map from and write the estimate to.
        frame: the Blender frame number.
        rng: draws the noise (the same generator state gives the same estimate).
        noise: standard deviation of Gaussian noise added per pixel: to each normal
            component (unit vectors, renormalised afterwards) or to depth (metres).
        blur_px: standard deviation in pixels of a Gaussian blur; it averages only
            pixels that have a value, so the silhouette does not bleed into the
            background, which stays unknown (normals (128, 128, 128), depth 0).
    Returns:
        The path written.
    """
    if name not in ("normals", "depth"):
        raise GarmentError(f"Estimated maps are 'normals' or 'depth', got {name!r}")
    if noise < 0 or blur_px < 0:
        raise GarmentError(f"Estimate noise and blur must be >= 0, got {noise} and {blur_px}")
    suffix = ".npy" if name == "depth" else ".png"
    src = Path(source) / frame_file_name(frame, suffix)
    dst = Path(target) / frame_file_name(frame, suffix)
    if not src.is_file():
        raise GarmentError(f"No {name} map for frame {frame}: {src} is missing")
    if name == "depth":
        depth = np.load(src).astype(np.float64)
        known = depth > 0
        depth = depth + rng.normal(0.0, 1.0, depth.shape) * noise
        depth = _blur_known(depth[..., None], known, blur_px)[..., 0]
        out = np.where(known, np.maximum(depth, 1e-3), 0.0).astype(np.float32)
        with atomic_write(dst) as tmp, open(tmp, "wb") as f:
            np.save(f, out)
        return dst
    encoded = read_png(src)
    known = ~(encoded == 128).all(-1)  # the zero vector: no surface
    normals = encoded.astype(np.float64) / 127.5 - 1.0
    normals = normals + rng.normal(0.0, 1.0, normals.shape) * noise
    normals = _blur_known(normals, known, blur_px)
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    normals = np.where(known[..., None], normals / np.maximum(length, 1e-12), 0.0)
    write_png(dst, encode_normals(normals))
    return dst


def _blur_known(values: np.ndarray, known: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (H, W, C) averaging only ``known`` (H, W) pixels."""
    if sigma <= 0:
        return values
    weights = known.astype(np.float64)[..., None]
    blurred = _gaussian(values * weights, sigma)
    norm = _gaussian(weights, sigma)
    return np.where(norm > 1e-6, blurred / np.maximum(norm, 1e-12), values)


def _gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of (H, W, C) with zero padding (``_blur_known``
    normalises the padding away)."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    for axis in (0, 1):
        pad = [(0, 0)] * image.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(image, pad)
        size = image.shape[axis]
        image = sum(w * np.take(padded, np.arange(k, k + size), axis=axis)
                    for k, w in enumerate(taps))
    return image


# --- file formats -----------------------------------------------------------------

def write_png(path: Path | str, pixels: np.ndarray) -> None:
    """Write (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA uint8 pixels as an 8-bit PNG
    (row 0 = top), atomically. zlib and the "Up" row filter only: no Pillow, which
    Blender's Python lacks; the bytes depend on the pixels alone (deterministic)."""
    pixels = np.asarray(pixels)
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    channels = 1 if pixels.ndim == 2 else (pixels.shape[2] if pixels.ndim == 3 else 0)
    if pixels.dtype != np.uint8 or channels not in (1, 3, 4) or min(pixels.shape[:2]) < 1:
        raise GarmentError(f"{path}: expected (H, W), (H, W, 3) or (H, W, 4) uint8 pixels, "
                           f"got {pixels.shape} {pixels.dtype}")
    height, width = pixels.shape[:2]
    rows = np.ascontiguousarray(pixels).reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), np.uint8)
    filtered[:, 0] = 2  # filter "Up": each byte minus the byte above it
    filtered[0, 1:] = rows[0]
    filtered[1:, 1:] = rows[1:] - rows[:-1]  # uint8 arithmetic wraps mod 256, as PNG's
    color_type = {1: 0, 3: 2, 4: 6}[channels]

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data)))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(filtered.tobytes(), 6)) + chunk(b"IEND", b""))
    with atomic_write(Path(path)) as tmp:
        tmp.write_bytes(data)


def read_png(path: Path | str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an 8-bit image file, row 0 = top. Read by Blender (its
    Python has no Pillow); an 8-bit image hands out its bytes unconverted (measured:
    exact for RGB and grey PNGs)."""
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise GarmentError(f"{path} cannot be read as an image")
        pixels = np.empty(width * height * 4, np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    rgb = pixels.reshape(height, width, 4)[::-1, :, :3]  # Blender's rows start at the bottom
    return np.floor(np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


_EXR_MAGIC = 20000630
_EXR_PIXEL_TYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}
_EXR_TILED, _EXR_DEEP, _EXR_MULTIPART = 0x200, 0x800, 0x1000


def read_exr(path: Path | str) -> dict[str, np.ndarray]:
    """Channels of an uncompressed scanline OpenEXR file (single- or multi-part, as
    Blender writes multilayer images with codec NONE).

    Returns:
        channel name (e.g. ``"ViewLayer.Depth.Z"``) -> (H, W) float32, row 0 = top.
    Raises:
        GarmentError: not such a file (tiled, deep, compressed, truncated).
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        return _parse_exr(data)
    except (struct.error, ValueError, IndexError, KeyError) as exc:
        raise GarmentError(f"{path}: not an uncompressed scanline OpenEXR file this reader "
                           f"handles ({type(exc).__name__}: {exc})") from None


def _parse_exr(data: bytes) -> dict[str, np.ndarray]:
    magic, version = struct.unpack_from("<ii", data, 0)
    if magic != _EXR_MAGIC:
        raise ValueError("bad magic number")
    if version & (_EXR_TILED | _EXR_DEEP):
        raise ValueError("tiled or deep image")
    multipart = bool(version & _EXR_MULTIPART)
    pos, headers = 8, []
    while True:  # headers: attributes (name, type, size, value) until an empty name
        header = {}
        while True:
            name, pos = _c_string(data, pos)
            if not name:
                break
            _, pos = _c_string(data, pos)  # attribute type: implied by the name here
            (size,) = struct.unpack_from("<i", data, pos)
            header[name] = data[pos + 4:pos + 4 + size]
            pos += 4 + size
        headers.append(header)
        if not multipart:
            break
        if data[pos] == 0:  # an empty header ends the list
            pos += 1
            break
    parts = []
    for header in headers:
        if header["compression"][0] != 0:
            raise ValueError(f"compression {header['compression'][0]} (only NONE is read)")
        x0, y0, x1, y1 = struct.unpack("<4i", header["dataWindow"])
        width, height = x1 - x0 + 1, y1 - y0 + 1
        count = struct.unpack("<i", header["chunkCount"])[0] if "chunkCount" in header \
            else height  # NONE stores one scanline per chunk
        offsets = np.frombuffer(data, "<u8", count, pos)
        pos += 8 * count
        parts.append((_exr_channels(header["channels"]), width, height, y0, offsets))
    out = {}
    for index, (channels, width, height, y0, offsets) in enumerate(parts):
        arrays = {name: np.empty((height, width), _EXR_PIXEL_TYPES[t]) for name, t in channels}
        for offset in offsets.tolist():
            if multipart:
                (part,) = struct.unpack_from("<i", data, offset)
                if part != index:
                    raise ValueError(f"chunk of part {part} in part {index}'s table")
                offset += 4
            y, _size = struct.unpack_from("<ii", data, offset)
            offset += 8
            for name, ptype in channels:  # one scanline of each channel, in order
                dtype = _EXR_PIXEL_TYPES[ptype]
                arrays[name][y - y0] = np.frombuffer(data, dtype, width, offset)
                offset += width * dtype.itemsize
        out.update({name: a.astype(np.float32) for name, a in arrays.items()})
    return out


def _c_string(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\0", pos)
    return data[pos:end].decode(), end + 1


def _exr_channels(raw: bytes) -> list[tuple[str, int]]:
    """(name, pixel type) of each channel of a ``chlist`` attribute, in file order."""
    out, pos = [], 0
    while raw[pos] != 0:
        name, pos = _c_string(raw, pos)
        ptype, _linear, x_sampling, y_sampling = struct.unpack_from("<iB3xii", raw, pos)
        pos += 16
        if (x_sampling, y_sampling) != (1, 1):
            raise ValueError(f"channel {name} is subsampled")
        out.append((name, ptype))
    return out


# --- helpers ----------------------------------------------------------------------

def _check_frames(frames: Sequence[int]) -> tuple[int, ...]:
    frames = tuple(int(f) for f in frames)
    if not frames:
        raise GarmentError("No frames to render: the frame list is empty")
    bad = [(a, b) for a, b in zip(frames, frames[1:], strict=False) if b <= a]
    if bad:
        raise GarmentError(f"Frames to render must be strictly increasing; frame {bad[0][1]} "
                           f"follows {bad[0][0]}")
    return frames


def _check_folders(folders: Sequence[str]) -> tuple[str, ...]:
    folders = tuple(folders)
    unknown = [name for name in folders if name not in FOLDERS]
    if unknown or not folders:
        raise GarmentError(f"Render folders must be some of {', '.join(FOLDERS)}, got "
                           f"{list(folders)}")
    return folders


def _check_resolution(resolution) -> tuple[int, int]:
    size = (resolution, resolution) if np.isscalar(resolution) else tuple(resolution)
    if len(size) != 2 or any(int(s) != s or s < 8 for s in size):
        raise GarmentError(f"Render resolution must be an integer >= 8 or (width, height) of "
                           f"such integers, got {resolution!r}")
    return int(size[0]), int(size[1])


def _node_tree(material):
    """The material's node tree (``use_nodes`` is implied from Blender 5.0 on)."""
    if material.node_tree is None:
        material.use_nodes = True
    return material.node_tree


@contextmanager
def _output_restored(scene) -> Iterator[None]:
    """The render's output path and image format are restored when the block ends."""
    render, settings = scene.render, scene.render.image_settings
    names = ("media_type", "file_format", "color_mode", "color_depth", "exr_codec")
    saved_settings = [(n, getattr(settings, n)) for n in names if hasattr(settings, n)]
    saved_render = (render.filepath, render.use_file_extension)
    try:
        yield
    finally:
        render.filepath, render.use_file_extension = saved_render
        for name, value in saved_settings:  # in order: the format decides valid depths
            try:
                setattr(settings, name, value)
            except TypeError:  # a value the restored format does not offer
                log.debug("could not restore image_settings.%s = %r", name, value)
