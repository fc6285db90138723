"""The body layer: one skinned-body representation for Anny, SMPL/SMPL-X and Blender rigs.

This package's top level stays torch-free (the capture layer reads body.npz through
it); LBS (``skinning``) and the model adapters (``anny_body``, ``smpl``) load torch.
"""

from .bundle import load_body, save_body
from .errors import BodyError
from .model import BodyTrack, PoseCode, SkinnedBody

__all__ = ["BodyError", "BodyTrack", "PoseCode", "SkinnedBody", "load_body", "save_body"]
