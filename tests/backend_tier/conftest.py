"""Shared fixtures of the backend tier.

``make_capture`` builds a small, valid capture bundle on disk. It lives here (a
fixture) rather than in an importable helper module because the suite runs in
pytest's importlib mode, which does not put test folders on ``sys.path``.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.capture import (
    Capture,
    CapturePaths,
    FrameCamera,
    write_png,
)
from tests.backend_tier.body_helpers import write_body
from tests.backend_tier.recon_helpers import write_synthetic_capture

DEFAULT_FRAMES = (11, 12, 13, 14)
"""Frame numbers that are not positions (0..3), so an index/number mix-up shows."""
WIDTH, HEIGHT = 16, 12


def rotation(axis: Sequence[float], angle: float) -> np.ndarray:
    """Rotation matrix from an axis-angle (Rodrigues' formula)."""
    k = np.asarray(axis, dtype=np.float64)
    k = k / np.linalg.norm(k)
    Kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * Kx + (1.0 - np.cos(angle)) * (Kx @ Kx)


def camera_for(index: int, width: int, height: int) -> FrameCamera:
    """A distinct, valid OpenCV camera for the ``index``-th frame."""
    K = np.array([[20.0, 0.0, width / 2], [0.0, 20.0, height / 2], [0.0, 0.0, 1.0]])
    R = rotation((0.3, 1.0, 0.2 + 0.1 * index), 0.25 + 0.1 * index)
    t = np.array([0.1 * index, -0.2, 3.0 + 0.05 * index])
    return FrameCamera(K=K, R=R, t=t)


def mask_for(index: int, width: int, height: int) -> np.ndarray:
    """(H, W) bool mask with a garment rectangle whose width depends on ``index``,
    so every frame has a different coverage."""
    mask = np.zeros((height, width), dtype=bool)
    mask[2 : height - 2, 2 : min(width, 5 + index)] = True
    return mask


def build_capture(
    root: Path,
    frames: Sequence[int] = DEFAULT_FRAMES,
    width: int = WIDTH,
    height: int = HEIGHT,
    normals: bool = False,
    depth: bool = False,
    body: bool = True,
    fps: float = 25.0,
    garment_type: str = "skirt",
    seed: int = 0,
) -> Capture:
    """Write a valid capture bundle into ``root`` and return its Capture.

    frames/ and masks/ hold one W x H PNG per frame number; normals/ (RGB PNGs) and
    depth/ ((H, W) float32 .npy) are added on request; body.npz holds a 3-bone chain
    body rising 1 cm per frame (``body_helpers``).
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    frames = tuple(int(f) for f in frames)
    paths = CapturePaths(
        body="body.npz" if body else None,
        normals="normals" if normals else None,
        depth="depth" if depth else None,
    )
    capture = Capture(
        root=root,
        frames=frames,
        cameras=tuple(camera_for(i, width, height) for i in range(len(frames))),
        fps=fps,
        width=width,
        height=height,
        garment_type=garment_type,
        paths=paths,
    )
    for i, frame in enumerate(frames):
        rgb = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        write_png(capture.frame_path(frame), rgb)
        write_png(capture.mask_path(frame), mask_for(i, width, height))
        if normals:
            n = np.zeros((height, width, 3), dtype=np.float64)
            n[..., 2] = -1.0  # facing the camera
            write_png(capture.normal_path(frame), ((n * 0.5 + 0.5) * 255).astype(np.uint8))
        if depth:
            d = np.full((height, width), 3.0, dtype=np.float32)
            d[0, :] = 0.0  # unknown
            path = capture.depth_path(frame)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, d)
    if body:
        write_body(root / "body.npz", frames)
    capture.save()
    return capture


@pytest.fixture
def make_capture(tmp_path: Path) -> Callable[..., Capture]:
    """Factory: ``make_capture(root=None, **options)`` -> Capture written to disk.

    ``root`` defaults to ``tmp_path / "capture"``; options as in ``build_capture``.
    """

    def make(root: Path | None = None, **options) -> Capture:
        return build_capture(root if root is not None else tmp_path / "capture", **options)

    return make



@pytest.fixture(scope="module")
def one_torch_thread():
    """Reconstruction tests run tiny meshes and images: a second CPU thread gains
    nothing, and on shared CI cores (another process busy on the other one) torch's
    thread pool made the same runs 4-10x slower. Restored after the module. Modules
    use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """``(root, info)``: the fast tier's synthetic skirt capture (recon_helpers),
    framed as a user would frame a garment (camera at 1.6 m: the skirt fills the
    crops without being upsampled ~3x from a 96 px full-body shot)."""
    root = tmp_path_factory.mktemp("capture")
    return root, write_synthetic_capture(root, distance_m=1.6)
