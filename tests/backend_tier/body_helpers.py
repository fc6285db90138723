"""Small generated bodies for tests: a 3-bone chain skinning a short strip of vertices."""

import numpy as np

from backend.body import BodyTrack, SkinnedBody, save_body

BONES = 3


def chain_body(vertices: int = 8, bones: int = BONES) -> SkinnedBody:
    """A vertical strip of ``vertices`` points along a chain of ``bones`` bones (Z up)."""
    z = np.linspace(0, 1, vertices)
    rest = np.stack([np.where(np.arange(vertices) % 2, 0.1, -0.1), np.zeros(vertices), z], 1)
    heads = np.linspace(0, 1, bones, endpoint=False)
    # each vertex blends its own bone and the next one up, like a bending limb
    own = np.minimum((z * bones).astype(int), bones - 1)
    frac = z * bones - own
    indices = np.stack([own, np.minimum(own + 1, bones - 1)], 1)
    values = np.stack([1 - 0.5 * frac, 0.5 * frac], 1)
    rest_bones = np.tile(np.eye(4), (bones, 1, 1))
    rest_bones[:, 2, 3] = heads
    faces = np.array([[i, i + 1, i + 2] for i in range(vertices - 2)])
    return SkinnedBody(rest_vertices=rest, faces=faces, weight_indices=indices,
                       weight_values=values, bone_names=tuple(f"bone{i}" for i in range(bones)),
                       bone_parents=np.arange(bones) - 1, rest_bone_matrices=rest_bones,
                       source="test:chain")


def rising_track(frames, bones: int = BONES, fps: float = 25.0) -> BodyTrack:
    """Every bone moves up by 1 cm per frame."""
    transforms = np.tile(np.eye(4), (len(frames), bones, 1, 1))
    transforms[:, :, 2, 3] = np.arange(len(frames))[:, None] * 0.01
    return BodyTrack(frame_numbers=np.array(frames), fps=fps, bone_transforms=transforms)


def write_body(path, frames, bones: int = BONES):
    return save_body(path, chain_body(bones=bones), rising_track(frames, bones))


def body_arrays(frames, bones: int = BONES) -> dict:
    """The arrays of a valid body.npz, for tests that damage one of them."""
    body, track = chain_body(bones=bones), rising_track(frames, bones)
    return {
        "rest_vertices": body.rest_vertices, "faces": body.faces,
        "weight_indices": body.weight_indices, "weight_values": body.weight_values,
        "bone_names": np.array(body.bone_names), "bone_parents": body.bone_parents,
        "rest_bone_matrices": body.rest_bone_matrices, "source": np.array(body.source),
        "frame_numbers": track.frame_numbers, "fps": np.array(track.fps),
        "bone_transforms": track.bone_transforms,
    }
