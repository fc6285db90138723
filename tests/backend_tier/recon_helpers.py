"""A capture rendered by the backend itself from a known target garment (fast tier).

The target is the template deformed by a smooth static field (flare + hem waves) and a
pose-dependent one (the hem swings sideways with the first pose-code component),
skinned with the template's weights. Rendered by a camera orbiting a quarter turn, with
the body as occluder, at a small size: masks, camera-space normal maps, shaded RGB,
optional depth; ``gt/garment.npz`` holds the target (result-bundle layout).

By default the walk is sampled at 7.5 fps, so the 8 frames span about one stride: the
swing goes both ways and its extremes are seen from the front (where a sideways swing
shows in the silhouette) as well as from the side (where it is only in depth). At 30
fps, 8 frames are a quarter stride in which the swing grows steadily while the camera
turns, so the largest swings are only ever seen edge-on and no method can recover them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from backend.body import save_body
from backend.body.anny_body import AnnyPoser
from backend.body.motions import make_motion
from backend.body.regions import body_frame
from backend.body.skinning import Skinning
from backend.capture.images import write_png
from backend.jobs.cancel import CancelToken, JobCancelled
from backend.jobs.result import GarmentResult, write_result
from backend.mesh.templates import TemplateSettings, build_template
from backend.render.camera import Camera, look_at
from backend.render.context import get_rasterizer
from backend.render.passes import render_passes

TOPOLOGY = "notoes_collapse10pc"


def camera_matrices(size: int, eye, target) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    focal = size * 1.6
    K = np.array([[focal, 0, (size - 1) / 2], [0, focal, (size - 1) / 2], [0, 0, 1.0]])
    as64 = {"dtype": torch.float64}
    R, t = look_at(torch.tensor(eye, **as64), torch.tensor(target, **as64),
                   torch.tensor([0, 0, 1.0], **as64))
    return K, R[0].numpy(), t[0].numpy()


def swing_of(codes: np.ndarray) -> np.ndarray:
    """(T,) the hem's sideways swing per frame in [-1, 1]: the first pose-code component
    scaled by its largest magnitude."""
    return codes[:, 0] / max(np.abs(codes[:, 0]).max(), 1e-6)


def target_field(template_vertices: np.ndarray, frame, codes: np.ndarray,
                 static_m: float, dynamic_m: float) -> np.ndarray:
    """(T, V, 3) canonical target: static flare + hem waves, plus a pose-driven swing."""
    local = template_vertices - frame.hip_centre
    height = local @ frame.up
    depth = np.clip((height.max() - height) / (height.max() - height.min()), 0, 1)
    radial = local - np.outer(height, frame.up)
    radial /= np.linalg.norm(radial, axis=1, keepdims=True).clip(1e-6)
    angle = np.arctan2(local @ frame.front, local @ frame.lateral)
    static = (static_m * depth * (1 + 0.5 * np.sin(4 * angle)))[:, None] * radial
    dynamic = (dynamic_m * swing_of(codes)[:, None, None] * (depth ** 2)[None, :, None]
               * frame.lateral)
    return template_vertices[None] + static[None] + dynamic


def write_synthetic_capture(root: Path, frames: int = 8, size: int = 96,
                            garment: str = "skirt", normals: bool = True, depth: bool = False,
                            static_m: float = 0.05, dynamic_m: float = 0.08,
                            edge_m: float = 0.045, fps: float = 7.5,
                            distance_m: float = 2.8) -> dict:
    root = Path(root)
    poser = AnnyPoser(topology=TOPOLOGY)
    body = poser.body
    numbers = np.arange(1, frames + 1)
    track = poser.track(make_motion("walk", frames, fps), numbers, fps)
    save_body(root / "body.npz", body, track)
    template = build_template(body, garment, TemplateSettings(target_edge_m=edge_m))
    frame = body_frame(body)
    canonical = target_field(template.vertices.astype(np.float64), frame,
                             track.pose_code.codes, static_m, dynamic_m)
    skin = Skinning(template.weight_indices, template.weight_values, body.bone_count,
                    dtype=torch.float64)
    transforms = torch.as_tensor(track.bone_transforms, dtype=torch.float64)
    world = skin(torch.as_tensor(canonical), transforms)
    body_world = torch.as_tensor(track.posed_vertices, dtype=torch.float64)

    rasterizer = get_rasterizer("torch")
    entries = []
    for i, number in enumerate(numbers):
        centre = body_world[i].mean(0).numpy()
        # The camera orbits a quarter turn over the clip so the sides are seen too.
        angle = np.radians(-110 + 100 * i / max(frames - 1, 1))
        eye = centre + np.array([distance_m * np.cos(angle), distance_m * np.sin(angle), 0.2])
        K, R, t = camera_matrices(size, eye, centre + np.array([0, 0, -0.25]))
        camera = Camera.create(torch.as_tensor(K), torch.as_tensor(R), torch.as_tensor(t),
                               size, size)
        verts = torch.cat([world[i], body_world[i]])
        faces = torch.cat([torch.as_tensor(template.faces),
                           torch.as_tensor(body.faces) + world.shape[1]]).to(torch.int32)
        flag = torch.cat([torch.ones(world.shape[1], 1), torch.zeros(body_world.shape[1], 1)])
        p = render_passes(rasterizer, verts.float(), faces, Camera.create(
            camera.K.float(), camera.R.float(), camera.t.float(), size, size),
            attributes=flag, antialias=False)
        garment_px = (p.attributes[0, ..., 0] > 0.5).numpy()
        covered = (p.mask[0, ..., 0] > 0.5).numpy()
        shade = p.diffuse[0, ..., 0].numpy()
        colour = np.where(garment_px[..., None], np.array([0.75, 0.3, 0.2]),
                          np.array([0.8, 0.65, 0.55])) * (0.25 + 0.75 * shade[..., None])
        rgb = np.where(covered[..., None], colour, 0.1)
        name = f"{number:06d}.png"
        write_png(root / "frames" / name, (np.clip(rgb, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8))
        write_png(root / "masks" / name, garment_px)
        if normals:
            n = p.normals[0].numpy()
            write_png(root / "normals" / name,
                      np.where(garment_px[..., None], (n * 0.5 + 0.5) * 255, 0).astype(np.uint8))
        if depth:
            (root / "depth").mkdir(exist_ok=True)
            np.save(root / "depth" / f"{number:06d}.npy",
                    np.where(garment_px, p.depth[0, ..., 0].numpy(), 0).astype(np.float32))
        entries.append({"frame": int(number), "K": K.tolist(), "R": R.tolist(), "t": t.tolist()})
    paths = {"frames": "frames", "masks": "masks", "body": "body.npz",
             "normals": "normals" if normals else None, "depth": "depth" if depth else None}
    (root / "capture.json").write_text(json.dumps({
        "version": 1, "fps": fps, "image_size": [size, size], "garment_type": garment,
        "frames": entries, "paths": paths}))
    write_result(root / "gt", GarmentResult(
        faces=template.faces, canonical_vertices=canonical[0], vertices=world.numpy(),
        frame_numbers=numbers))
    return {"template": template, "target": world.numpy(), "frame": frame,
            "swing": swing_of(track.pose_code.codes),
            "template_world": skin(torch.as_tensor(template.vertices, dtype=torch.float64),
                                   transforms).numpy()}


class CancelAfter(CancelToken):
    """Requests a cancel after ``steps`` checks (one per training step)."""

    def __init__(self, steps):
        super().__init__(None)
        self.left = steps

    def check(self):
        self.left -= 1
        if self.left < 0:
            raise JobCancelled("cancelled by the test")
