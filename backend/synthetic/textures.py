"""Fabric textures for synthetic garments: prints, stripes, checks and plain cloth.

Every texture has visible contrast at several scales (motifs or bands plus a fine
weave and grain), so that a photometric loss has something to hold on to, and is a
pure function of (kind, size, seed): numpy's PCG64 generator and Pillow's drawing and
resampling are deterministic, so the same arguments give the same bytes.

Pixels are 8-bit sRGB (the colour space Blender assumes for an 8-bit image texture);
rows run top to bottom as in the PNG, so UV v = 1 is row 0.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np

from .errors import SynthError

TEXTURE_KINDS = ("print", "stripes", "checks", "plain")
"""Texture kinds; ``"auto"`` picks ``TEXTURE_KINDS[seed % 4]``."""
SIZE_RANGE = (64, 8192)
"""Accepted texture sizes, pixels."""


def resolve_kind(kind: str, seed: int) -> str:
    """The texture kind to draw: ``kind`` itself, or for ``"auto"`` one picked by the seed."""
    if kind == "auto":       # consecutive seeds cycle through the kinds
        return TEXTURE_KINDS[int(seed) % len(TEXTURE_KINDS)]
    if kind not in TEXTURE_KINDS:
        raise SynthError(f"unknown texture kind {kind!r}; choose auto or one of "
                         f"{', '.join(TEXTURE_KINDS)}")
    return kind


def make_texture(kind: str, size: int, seed: int) -> tuple[np.ndarray, str]:
    """Draw a square fabric texture.

    Args:
        kind: "auto" or one of ``TEXTURE_KINDS``.
        size: side in pixels (``SIZE_RANGE``).
        seed: any non-negative integer; fixes the kind (for "auto"), colours and layout.
    Returns:
        (pixels (size, size, 3) uint8 sRGB, the kind drawn).
    """
    lo, hi = SIZE_RANGE
    if not (isinstance(size, int | np.integer) and lo <= size <= hi):
        raise SynthError(f"texture size must be an integer from {lo} to {hi} pixels; got {size}")
    if int(seed) < 0:
        raise SynthError(f"seed must be >= 0; got {seed}")
    kind = resolve_kind(kind, seed)
    rng = np.random.default_rng([int(seed), TEXTURE_KINDS.index(kind)])
    palette = _palette(rng)
    draw = {"print": _motif_print, "stripes": _stripes, "checks": _checks, "plain": _plain}[kind]
    rgb = draw(rng, size, palette)
    rgb = rgb * _weave(rng, size)[..., None]
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8), kind


def _palette(rng: np.random.Generator) -> np.ndarray:
    """(4, 3) float colours in [0, 1]: a base and three accents that differ from it in
    hue and clearly in lightness."""
    hue = rng.random()
    base_value = rng.uniform(0.35, 0.85)
    base = colorsys.hsv_to_rgb(hue, rng.uniform(0.3, 0.75), base_value)
    accents = []
    for offset in (0.5, 0.33, 0.12):
        value = base_value - 0.45 if base_value > 0.6 else base_value + 0.4
        value = float(np.clip(value + rng.uniform(-0.05, 0.05), 0.08, 0.97))
        accents.append(colorsys.hsv_to_rgb((hue + offset + rng.uniform(-0.05, 0.05)) % 1.0,
                                           rng.uniform(0.25, 0.85), value))
    return np.array([base, *accents])


def _scale(size: int) -> float:
    """Pattern features scale with the texture (designed at 1024 px)."""
    return size / 1024.0


def _motif_print(rng: np.random.Generator, size: int, palette: np.ndarray) -> np.ndarray:
    """Scattered motifs (dots, rings, flowers, diamonds) on the base colour; drawn at
    twice the size and filtered down for smooth edges."""
    from PIL import Image, ImageDraw

    big = 2 * size
    im = Image.new("RGB", (big, big), tuple(int(255 * c) for c in palette[0]))
    draw = ImageDraw.Draw(im)
    spacing = rng.uniform(70, 130) * _scale(big)
    count = int((big / spacing) ** 2)
    shapes = rng.choice(4, size=2, replace=False)
    for _ in range(count):
        x, y = rng.uniform(0, big, 2)
        r = spacing * rng.uniform(0.18, 0.38)
        colour = tuple(int(255 * c) for c in palette[1 + int(rng.integers(3))])
        shape = shapes[int(rng.integers(2))]
        if shape == 0:                                    # dot
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        elif shape == 1:                                  # ring
            draw.ellipse([x - r, y - r, x + r, y + r], outline=colour,
                         width=max(1, int(r * 0.35)))
        elif shape == 2:                                  # five-petal flower
            turn = rng.uniform(0, 2 * math.pi)
            for k in range(5):
                a = turn + 2 * math.pi * k / 5
                px, py = x + 0.55 * r * math.cos(a), y + 0.55 * r * math.sin(a)
                draw.ellipse([px - 0.45 * r, py - 0.45 * r, px + 0.45 * r, py + 0.45 * r],
                             fill=colour)
            centre = tuple(int(255 * c) for c in palette[1 + int(rng.integers(3))])
            draw.ellipse([x - 0.3 * r, y - 0.3 * r, x + 0.3 * r, y + 0.3 * r], fill=centre)
        else:                                             # diamond
            draw.polygon([(x, y - r), (x + 0.7 * r, y), (x, y + r), (x - 0.7 * r, y)],
                         fill=colour)
    im = im.resize((size, size), Image.LANCZOS)
    return np.asarray(im, np.float64) / 255.0


def _bands(rng: np.random.Generator, size: int, colours: int) -> tuple[np.ndarray, np.ndarray]:
    """A repeating sequence ("sett") of bands: (widths in pixels, colour index per band)."""
    n = int(rng.integers(2, 6))
    widths = rng.uniform(8, 48, n) * _scale(size)
    index = np.arange(n) % colours
    rng.shuffle(index)
    if np.unique(index).size < 2:
        index[0] = (index[0] + 1) % colours
    return widths, index


def _band_field(coord: np.ndarray, widths: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Band index at each coordinate (pixels) for a repeating sett."""
    edges = np.concatenate([[0.0], np.cumsum(widths)])
    position = np.mod(coord, edges[-1])
    return index[np.searchsorted(edges, position, side="right") - 1]


def _stripes(rng: np.random.Generator, size: int, palette: np.ndarray) -> np.ndarray:
    widths, index = _bands(rng, size, 4)
    angle = rng.choice([0.0, 90.0, 45.0, -45.0])
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    # supersample across band edges: average 4 offsets
    rgb = np.zeros((size, size, 3))
    a = math.radians(angle)
    for dy, dx in ((0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)):
        coord = (x + dx) * math.cos(a) + (y + dy) * math.sin(a)
        rgb += palette[_band_field(coord, widths, index)]
    return rgb / 4


def _checks(rng: np.random.Generator, size: int, palette: np.ndarray) -> np.ndarray:
    """Tartan/gingham: the same kind of sett across and along, the colours mixed where
    bands cross."""
    w1, i1 = _bands(rng, size, 4)
    w2, i2 = (w1, i1) if rng.random() < 0.6 else _bands(rng, size, 4)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    rgb = np.zeros((size, size, 3))
    for dy, dx in ((0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)):
        rgb += 0.5 * (palette[_band_field(x + dx, w1, i1)] + palette[_band_field(y + dy, w2, i2)])
    return rgb / 4


def _plain(rng: np.random.Generator, size: int, palette: np.ndarray) -> np.ndarray:
    """Dyed cloth: the base colour mottled by smooth noise at a few scales (slub, uneven
    dye), strong enough to see."""
    field = np.zeros((size, size))
    for cells, amplitude in ((4, 0.18), (12, 0.12), (40, 0.08)):
        field += amplitude * _value_noise(rng, size, cells)
    return palette[0][None, None, :] * (1.0 + field[..., None])


def _value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """(size, size) smooth noise in about [-1, 1]: a random grid upsampled bicubically."""
    from PIL import Image

    grid = rng.uniform(-1.0, 1.0, (cells + 1, cells + 1)).astype(np.float32)
    im = Image.fromarray(grid, mode="F").resize((size, size), Image.BICUBIC)
    return np.asarray(im, np.float64)


def _weave(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) multiplicative weave and grain: a fine over-under pattern and pixel
    noise, about +-6%."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    period = max(2.0, 6.0 * _scale(size))
    weave = 0.03 * np.sin(2 * math.pi * x / period) * np.sin(2 * math.pi * y / period)
    grain = 0.03 * rng.standard_normal((size, size))
    return 1.0 + weave + grain
