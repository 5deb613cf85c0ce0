"""Training pairs for SESR: luma of HR images and their MATLAB-bicubic LR versions.

Every HR image is modcropped to a multiple of the scale, shrunk with MATLAB-style antialiased
bicubic resizing in RGB and rounded to 8 bits (the standard benchmark protocol), and both
images are converted to BT.601 luma / 255. Patches are then cut at matching positions.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from upscale.color import rgb_to_y
from upscale.imresize import imresize

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}

HOLDOUT_EVERY = 20
"""Default spacing of held-out validation images: one in 20, 15 of the 291 T91 + BSD200 images."""


class DatasetError(ValueError):
    """A training or evaluation folder that cannot be used."""


class ImageDecodeError(DatasetError):
    """An image file in a dataset folder that cannot be used: empty, truncated, corrupt, not an
    image, or too small for the protocol."""

    def __init__(self, path: Path, problem: str = "cannot be decoded as an image (truncated or corrupt)") -> None:
        self.path = Path(path)
        self.reason = f"{problem}; remove or replace the file"
        super().__init__(f"{path}: {self.reason}")


@dataclass(frozen=True)
class ImagePair:
    """One HR image and its LR version, as luma / 255 in float32."""

    name: str
    hr: np.ndarray
    lr: np.ndarray


def list_images(folders: list[Path]) -> list[Path]:
    """Image files directly inside ``folders``, sorted by folder then name."""
    files: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            raise DatasetError(f"{folder}: not a folder of images")
        found = sorted(p for p in folder.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not found:
            raise DatasetError(f"{folder}: contains no image files")
        files.extend(found)
    return files


def split_holdout(files: list[Path], every: int = HOLDOUT_EVERY) -> tuple[list[Path], list[Path]]:
    """Split ``files`` into (training, held out): the middle image of every run of ``every``.

    Training validates on the held-out images and int8 calibration chooses its ranges on them,
    so both judge on images that the network was not trained on.
    """
    held_out = [f for i, f in enumerate(files) if i % every == every // 2]
    training = [f for i, f in enumerate(files) if i % every != every // 2]
    return training, held_out


def read_rgb(path: Path) -> np.ndarray:
    """Read an image as H×W×3 RGB uint8 as its decoder returns it, without applying an EXIF
    orientation tag (MATLAB's ``imread`` does not apply one either).

    Gray images are replicated to three channels, alpha is dropped and 16-bit samples are rounded
    to 8 bits.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ImageDecodeError(path, f"cannot be read ({error.strerror})") from None
    if not data:
        raise ImageDecodeError(path, "file is empty (0 bytes)")

    # OpenCV returns a half-grey picture for a truncated JPEG, so Pillow decodes every byte first.
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ImageDecodeError(path) from None

    # IMREAD_UNCHANGED, as `sesr upscale` reads: IMREAD_COLOR fails on a TIFF with orientation 6,
    # which libtiff has already turned.
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageDecodeError(path)
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if image.dtype != np.uint8:
        raise ImageDecodeError(path)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom and right edges so both sides divide by ``scale``."""
    height, width = image.shape[:2]
    return image[: height - height % scale, : width - width % scale]


def bicubic_lr(hr_rgb: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-style bicubic LR image of an RGB uint8 HR image, rounded to uint8."""
    lr = imresize(hr_rgb.astype(np.float64), 1.0 / scale)
    return np.clip(np.round(lr), 0, 255).astype(np.uint8)


def make_pair(path: Path, scale: int) -> ImagePair:
    """Load one HR image and build its luma pair for ``scale``."""
    hr_rgb = modcrop(read_rgb(path), scale)
    lr_rgb = bicubic_lr(hr_rgb, scale)
    hr = rgb_to_y(hr_rgb / 255.0).astype(np.float32)
    lr = rgb_to_y(lr_rgb / 255.0).astype(np.float32)
    return ImagePair(path.name, hr, lr)


class PatchSampler:
    """Random LR/HR patch batches with random flips and 90° rotations."""

    def __init__(self, pairs: list[ImagePair], scale: int, patch: int, seed: int) -> None:
        usable = [p for p in pairs if min(p.lr.shape) >= patch]
        if not usable:
            raise DatasetError(f"no training image is at least {patch} LR pixels on each side")
        if len(usable) < len(pairs):
            logger.info("skipping %d images smaller than %d LR pixels", len(pairs) - len(usable), patch)
        self.pairs = usable
        self.scale = scale
        self.patch = patch
        self.rng = np.random.default_rng(seed)
        # Sample images in proportion to their area so every pixel is equally likely.
        areas = np.array([p.lr.size for p in usable], dtype=np.float64)
        self.weights = areas / areas.sum()

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Return LR (N×1×P×P) and HR (N×1×sP×sP) float32 arrays."""
        p, s = self.patch, self.scale
        lr_batch = np.empty((size, 1, p, p), dtype=np.float32)
        hr_batch = np.empty((size, 1, p * s, p * s), dtype=np.float32)
        choices = self.rng.choice(len(self.pairs), size=size, p=self.weights)
        for i, index in enumerate(choices):
            pair = self.pairs[index]
            top = int(self.rng.integers(0, pair.lr.shape[0] - p + 1))
            left = int(self.rng.integers(0, pair.lr.shape[1] - p + 1))
            lr = pair.lr[top: top + p, left: left + p]
            hr = pair.hr[top * s: (top + p) * s, left * s: (left + p) * s]
            turns, flip = int(self.rng.integers(0, 4)), bool(self.rng.integers(0, 2))
            lr, hr = np.rot90(lr, turns), np.rot90(hr, turns)
            if flip:
                lr, hr = lr[::-1], hr[::-1]
            lr_batch[i, 0] = lr
            hr_batch[i, 0] = hr
        return lr_batch, hr_batch
