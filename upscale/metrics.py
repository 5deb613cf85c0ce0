"""Image-quality metrics and the standard super-resolution evaluation protocol.

``psnr`` and ``ssim`` compare two 2-D arrays of the same shape. The caller gives the dynamic range
(255 for 8-bit luma, 1.0 for floats in [0, 1]), because neither function guesses it from pixels.

The protocol follows the MATLAB scripts behind the published SR tables (SRCNN, VDSR, EDSR and
later papers):

1. Crop the HR image at the bottom and right to a multiple of the scale s (modcrop).
2. Make the LR image with MATLAB's antialiased bicubic ``imresize(hr, 1/s)`` in RGB and round it
   to uint8.
3. Upscale, then compare BT.601 studio-range luma (MATLAB's ``rgb2ycbcr``), rounded to integers
   in 0..255 for both the HR and the SR image.
4. Ignore s pixels at each border, then compute PSNR and SSIM with a data range of 255.

Gray images are read as RGB with R = G = B, so they go through the same steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from models.data import DatasetError, ImageDecodeError, bicubic_lr, list_images, modcrop, read_rgb

from .color import rgb_to_y
from .imresize import imresize

__all__ = [
    "SSIM_WINDOW", "SSIM_SIGMA", "SSIM_K1", "SSIM_K2",
    "psnr", "ssim",
    "SrMethod", "ImageScore", "FolderScore",
    "luma_to_uint8", "bicubic_sr_luma", "network_method", "evaluate_image", "evaluate_folder",
]

# SSIM constants of Wang, Bovik, Sheikh and Simoncelli, "Image quality assessment: from error
# visibility to structural similarity", IEEE TIP 13(4), 2004, as in their ssim_index.m.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

SrMethod = Callable[[np.ndarray, int], np.ndarray]
"""An SR method under test: ``method(lr_rgb, scale)`` takes the LR image as H×W×3 RGB uint8 and
returns SR luma as an (H·scale)×(W·scale) float array on the 0..255 scale, not yet rounded."""


# Metrics.

def _check_pair(a: np.ndarray, b: np.ndarray, data_range: float) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"expected two 2-D arrays of the same shape, got {a.shape} and {b.shape}")
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Compute the peak signal-to-noise ratio in dB: 10·log10(data_range² / MSE).

    ``a`` and ``b`` are 2-D arrays of any real dtype, compared in float64. Returns ``inf`` for
    identical arrays.
    """
    a, b = _check_pair(a, b, data_range)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / mse)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Compute the mean structural similarity index (Wang et al. 2004) of two 2-D arrays.

    Local statistics use an 11×11 Gaussian window with sigma 1.5, and C1 = (0.01·L)²,
    C2 = (0.03·L)² with L = ``data_range``. Only windows that lie wholly inside the image count
    (the 'valid' region, as MATLAB's ssim_index.m computes with ``filter2(..., 'valid')``), so
    both sides must be at least 11 pixels.
    """
    a, b = _check_pair(a, b, data_range)
    if min(a.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {SSIM_WINDOW}×{SSIM_WINDOW} pixels, got {a.shape}")
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2

    # Local means, variances and covariance. The 2-D window is the outer product of the 1-D
    # Gaussian with itself, which equals MATLAB's fspecial('gaussian', 11, 1.5).
    mu_a, mu_b = _gaussian_valid(a), _gaussian_valid(b)
    var_a = _gaussian_valid(a * a) - mu_a * mu_a
    var_b = _gaussian_valid(b * b) - mu_b * mu_b
    cov = _gaussian_valid(a * b) - mu_a * mu_b

    numerator = (2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2)
    denominator = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return float(np.mean(numerator / denominator))


def _gaussian_valid(image: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local mean at every position where the whole window fits."""
    kernel = cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA, cv2.CV_64F)
    filtered = cv2.sepFilter2D(image, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_REFLECT)
    # The border mode only affects the outer SSIM_WINDOW // 2 pixels, which are cut off here.
    radius = SSIM_WINDOW // 2
    return filtered[radius:-radius, radius:-radius]


# Evaluation protocol.

@dataclass(frozen=True)
class ImageScore:
    """Quality of one SR image against its HR original, on luma in 0..255 with borders cut."""

    name: str
    """File name of the HR image."""
    psnr: float
    """PSNR in dB."""
    ssim: float
    """Mean SSIM, in [-1, 1]."""


@dataclass(frozen=True)
class FolderScore:
    """Per-image and mean quality over one folder of HR images at one scale."""

    folder: Path
    scale: int
    images: tuple[ImageScore, ...]

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError(f"{self.folder}: a folder score needs at least one image")

    @property
    def psnr(self) -> float:
        """Mean PSNR over the images in dB (the mean of per-image PSNR, as SR tables report)."""
        return float(np.mean([image.psnr for image in self.images]))

    @property
    def ssim(self) -> float:
        """Mean SSIM over the images."""
        return float(np.mean([image.ssim for image in self.images]))


def luma_to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Compute BT.601 studio-range luma of H×W×3 RGB uint8, rounded to uint8 like ``rgb2ycbcr``."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected H×W×3 uint8 RGB, got {rgb.dtype} array of shape {rgb.shape}")
    return np.round(rgb_to_y(rgb / 255.0) * 255.0).astype(np.uint8)


def bicubic_sr_luma(lr_rgb: np.ndarray, scale: int) -> np.ndarray:
    """Upscale LR RGB uint8 with MATLAB's bicubic ``imresize`` and return its luma, 0..255.

    This is the bicubic baseline of SR tables: the RGB result is rounded and clipped to uint8
    before the luma conversion, as MATLAB's ``imresize`` does for uint8 input.
    """
    upscaled = np.clip(np.round(imresize(lr_rgb, scale)), 0, 255).astype(np.uint8)
    return luma_to_uint8(upscaled).astype(np.float64)


def network_method(upscale_luma: Callable[[np.ndarray], np.ndarray]) -> SrMethod:
    """Wrap a luma network as an ``SrMethod``.

    ``upscale_luma`` takes H×W float32 luma / 255 (studio range, so within [16/255, 235/255])
    and returns (H·s)×(W·s) luma / 255. The LR luma is not rounded to 8 bits, because the
    networks are trained and run on unrounded luma.
    """

    def method(lr_rgb: np.ndarray, scale: int) -> np.ndarray:
        lr_luma = rgb_to_y(lr_rgb / 255.0).astype(np.float32)
        return np.asarray(upscale_luma(lr_luma), dtype=np.float64) * 255.0

    return method


def evaluate_image(hr_rgb: np.ndarray, method: SrMethod, scale: int) -> tuple[float, float]:
    """Score ``method`` on one HR image: returns (PSNR in dB, SSIM) on luma, borders cut.

    ``hr_rgb`` is H×W×3 RGB uint8 of any size; it is modcropped to a multiple of ``scale`` here.
    """
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    hr_rgb = modcrop(hr_rgb, scale)
    if min(hr_rgb.shape[:2]) < 2 * scale + SSIM_WINDOW:
        raise ValueError(f"HR image of shape {hr_rgb.shape[:2]} is too small to score at ×{scale}")

    # Degrade, then upscale with the method under test.
    lr_rgb = bicubic_lr(hr_rgb, scale)
    sr_luma = np.asarray(method(lr_rgb, scale), dtype=np.float64)
    if sr_luma.shape != hr_rgb.shape[:2]:
        raise ValueError(f"SR luma has shape {sr_luma.shape}, expected {hr_rgb.shape[:2]} "
                         f"(LR {lr_rgb.shape[:2]} × {scale})")

    # Quantize both lumas to 8 bits and cut `scale` pixels from every border.
    sr_luma = np.round(np.clip(sr_luma, 0.0, 255.0))
    hr_luma = luma_to_uint8(hr_rgb).astype(np.float64)
    inner = (slice(scale, -scale), slice(scale, -scale))
    return psnr(sr_luma[inner], hr_luma[inner], 255.0), ssim(sr_luma[inner], hr_luma[inner], 255.0)


def evaluate_folder(folder: Path | str, method: SrMethod, scale: int,
                    on_unreadable: Callable[[ImageDecodeError], None] | None = None) -> FolderScore:
    """Score ``method`` on every image file directly inside ``folder``, sorted by name.

    A file that cannot be decoded or is too small to score raises ``models.data.ImageDecodeError``,
    or, when ``on_unreadable`` is given, is passed to it and left out of the score. Raises
    ``models.data.DatasetError`` when the folder is missing, contains no images or no image
    that can be scored.
    """
    folder = Path(folder)
    scores = []
    for path in list_images([folder]):
        try:
            image = read_rgb(path)
            height, width = modcrop(image, scale).shape[:2]
            if min(height, width) < 2 * scale + SSIM_WINDOW:
                # The smallest multiple of the scale that leaves an SSIM window after the border cut.
                needed = -(-(2 * scale + SSIM_WINDOW) // scale) * scale
                raise ImageDecodeError(path, f"is {image.shape[1]}×{image.shape[0]} pixels, too small to "
                                             f"score at ×{scale} (needs at least {needed} on each side)")
        except ImageDecodeError as error:
            if on_unreadable is None:
                raise
            on_unreadable(error)
            continue
        value_psnr, value_ssim = evaluate_image(image, method, scale)
        scores.append(ImageScore(path.name, value_psnr, value_ssim))
    if not scores:
        raise DatasetError(f"{folder}: none of its images can be scored")
    return FolderScore(folder, scale, tuple(scores))
