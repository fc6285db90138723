"""Render result bundles side by side with the footage, for eyeballing detail.

    python tools/compare_renders.py CAPTURE RESULT [RESULT ...] --out compare.png
        [--frames 0 20 40] [--size 384] [--margin 0.25]

One row per frame: the footage, then each result's garment (headlight shading, the
body as occluder), then the ground truth when the capture has ``gt/``, all cropped to
the garment as the reconstruction sees it. Columns are labelled by folder name in the
terminal output (the PNG has no text).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture", type=Path)
    parser.add_argument("results", type=Path, nargs="+", help="result folders (garment.npz)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--frames", type=int, nargs="+", default=None,
                        help="frame indices (0-based within the capture; default: 4 spread)")
    parser.add_argument("--size", type=int, default=384, help="pixels per image")
    parser.add_argument("--margin", type=float, default=0.25, help="crop margin")
    args = parser.parse_args(argv)

    import torch
    from PIL import Image

    from backend.capture import load_capture
    from backend.recon.data import load_capture_data
    from backend.recon.render import render_garment
    from backend.render.context import get_rasterizer

    capture = load_capture(args.capture)
    device = torch.device("cpu")
    data = load_capture_data(capture, (args.size,), device, use_normals=False,
                             crop_margin=args.margin)
    targets = data.levels[args.size]
    rasterizer = get_rasterizer("auto", device)
    meshes = [np.load(folder / "garment.npz") for folder in args.results]
    names = [folder.name for folder in args.results]
    gt = capture.root / "gt" / "garment.npz"
    if gt.is_file():
        meshes.append(np.load(gt))
        names.append("ground truth")
    count = data.frame_count
    frames = args.frames or [round(i * (count - 1) / 3) for i in range(4)]
    bad = [f for f in frames if not 0 <= f < count]
    if bad:
        parser.error(f"frame index {bad[0]} is outside 0..{count - 1}")

    rows = []
    for f in frames:
        index = torch.tensor([f])
        cells = [targets.rgb[f].numpy().clip(0, 1) ** (1 / 2.2)]
        for mesh in meshes:
            vertices = torch.as_tensor(mesh["vertices"][f:f + 1], dtype=torch.float32)
            faces = torch.as_tensor(mesh["faces"].astype(np.int32))
            with torch.no_grad():
                render = render_garment(rasterizer, vertices, faces, targets.cameras(index),
                                        data.body_vertices[index], data.body_faces)
            shade = (render.diffuse[0] * render.mask[0]).numpy()
            cells.append(np.repeat(shade, 3, axis=-1))
        rows.append(np.concatenate(cells, axis=1))
    image = (np.concatenate(rows, axis=0).clip(0, 1) * 255).astype(np.uint8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(args.out)
    print(f"{args.out}: rows = frames {frames}; columns = footage | " + " | ".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
