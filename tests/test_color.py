"""Color handling of the pipeline: BT.601 conversion values and a bicubic round trip.

With a "network" that upscales luma by bicubic interpolation, every plane of the pipeline is
bicubic and the color conversion is affine, so ``upscale_array`` must reproduce OpenCV's
bicubic resize of the RGB image up to float rounding. The pipeline mirrors every plane by the
tile halo (2 pixels for this stand-in) before upscaling, so the reference does the same.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from upscale import upscale_array
from upscale.color import gray_to_y, rgb_to_y, rgb_to_ycbcr, y_to_gray, ycbcr_to_rgb


class BicubicNetwork:
    """Stand-in for a luma network: bicubic ×2 of each N×1×H×W float32 plane."""

    scale = 2
    receptive_radius = 2

    def __call__(self, luma: np.ndarray) -> np.ndarray:
        count, channels, height, width = luma.shape
        output = np.empty((count, channels, height * 2, width * 2), dtype=np.float32)
        for n in range(count):
            for c in range(channels):
                output[n, c] = cv2.resize(luma[n, c], (width * 2, height * 2), interpolation=cv2.INTER_CUBIC)
        return output


HALO = 2


def _bicubic_float(pixels: np.ndarray) -> np.ndarray:
    """OpenCV bicubic ×2 in float of the image mirrored by HALO pixels, cropped back."""
    padded = cv2.copyMakeBorder(pixels.astype(np.float32), HALO, HALO, HALO, HALO, cv2.BORDER_REFLECT_101)
    height, width = padded.shape[:2]
    resized = cv2.resize(padded, (width * 2, height * 2), interpolation=cv2.INTER_CUBIC)
    return resized[2 * HALO:-2 * HALO, 2 * HALO:-2 * HALO]


def _bicubic_reference(pixels: np.ndarray, max_value: float) -> np.ndarray:
    """``_bicubic_float``, rounded and clipped to the integer range."""
    return np.clip(np.round(_bicubic_float(pixels)), 0, max_value)


def _error_report(actual: np.ndarray, expected: np.ndarray) -> tuple[int, str]:
    """Return the max absolute error in LSB and a message with where it is and how often."""
    error = np.abs(actual.astype(np.int64) - expected.astype(np.int64))
    worst = np.unravel_index(np.argmax(error), error.shape)
    report = (f"max error {error.max()} LSB at {tuple(int(i) for i in worst)}, "
              f"{np.count_nonzero(error)} of {error.size} samples differ, "
              f"{np.count_nonzero(error > 1)} by more than 1 LSB")
    return int(error.max()), report


# Bicubic round trip through upscale_array.

@pytest.mark.parametrize("shape", [(24, 20, 3), (24, 20), (24, 20, 4)], ids=["rgb", "gray", "rgba"])
def test_bicubic_round_trip_8bit(shape: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(20).integers(0, 256, shape, dtype=np.uint8)

    upscaled = upscale_array(pixels, BicubicNetwork(), tile=0)

    expected = _bicubic_reference(pixels, 255)
    assert upscaled.dtype == np.uint8, f"dtype {upscaled.dtype}"
    assert upscaled.shape == expected.shape, f"shape {upscaled.shape}, expected {expected.shape}"
    max_error, report = _error_report(upscaled, expected)
    assert max_error <= 1, report


def test_bicubic_round_trip_16bit() -> None:
    pixels = np.random.default_rng(21).integers(0, 65536, (24, 20, 3), dtype=np.uint16)

    upscaled = upscale_array(pixels, BicubicNetwork(), tile=0)

    expected = _bicubic_reference(pixels, 65535)
    assert upscaled.dtype == np.uint16, f"dtype {upscaled.dtype}"
    assert upscaled.shape == expected.shape, f"shape {upscaled.shape}, expected {expected.shape}"
    max_error, report = _error_report(upscaled, expected)
    assert max_error <= 1, report


def test_bicubic_round_trip_float32() -> None:
    pixels = np.random.default_rng(22).random((24, 20, 3), dtype=np.float32)

    upscaled = upscale_array(pixels, BicubicNetwork(), tile=0)

    expected = np.clip(_bicubic_float(pixels), 0.0, 1.0)
    error = np.abs(upscaled.astype(np.float64) - expected)
    assert upscaled.dtype == np.float32, f"dtype {upscaled.dtype}"
    assert error.max() < 1e-5, f"max error {error.max():.3g} in {np.count_nonzero(error > 1e-5)} samples"


def test_bicubic_round_trip_tiled() -> None:
    # Each 8-pixel tile reads a halo of at least the 2-pixel bicubic radius, and the color
    # conversion works per pixel. So tiled output must match the reference like a whole image.
    pixels = np.random.default_rng(23).integers(0, 256, (24, 20, 3), dtype=np.uint8)

    upscaled = upscale_array(pixels, BicubicNetwork(), tile=8)

    max_error, report = _error_report(upscaled, _bicubic_reference(pixels, 255))
    assert max_error <= 1, report


# BT.601 conversion.

def test_ycbcr_round_trip_random() -> None:
    rgb = np.random.default_rng(24).random((32, 32, 3), dtype=np.float32)

    restored = ycbcr_to_rgb(rgb_to_ycbcr(rgb))

    error = np.abs(restored.astype(np.float64) - rgb)
    assert error.max() < 1e-5, f"max round-trip error {error.max():.3g}"


@pytest.mark.parametrize(("rgb", "expected"), [
    # Y = 16 + 65.481 + 128.553 + 24.966 = 235, and the Cb and Cr rows each sum to 0.
    ((1.0, 1.0, 1.0), (235 / 255, 128 / 255, 128 / 255)),
    ((0.0, 0.0, 0.0), (16 / 255, 128 / 255, 128 / 255)),
    # Pure red: Y = 16 + 65.481, Cb = 128 − 37.797, Cr = 128 + 112.
    ((1.0, 0.0, 0.0), (81.481 / 255, 90.203 / 255, 240 / 255)),
], ids=["white", "black", "red"])
def test_ycbcr_known_values(rgb: tuple[float, float, float], expected: tuple[float, float, float]) -> None:
    ycbcr = rgb_to_ycbcr(np.array([[rgb]], dtype=np.float32))[0, 0]

    for name, value, reference in zip(("Y", "Cb", "Cr"), ycbcr, expected):
        assert abs(float(value) - reference) < 1e-6, f"{name} = {value * 255:.4f}/255, expected {reference * 255:.4f}/255"


def test_rgb_to_y_matches_ycbcr() -> None:
    rgb = np.random.default_rng(25).random((16, 16, 3), dtype=np.float32)

    luma = rgb_to_y(rgb)

    error = np.abs(luma - rgb_to_ycbcr(rgb)[..., 0])
    assert error.max() < 1e-6, f"max difference {error.max():.3g}"


def test_gray_luma_inverse() -> None:
    gray = np.random.default_rng(26).random((32, 32), dtype=np.float32)

    restored = y_to_gray(gray_to_y(gray))

    error = np.abs(restored.astype(np.float64) - gray)
    assert error.max() < 1e-6, f"max round-trip error {error.max():.3g}"


def test_gray_luma_matches_rgb() -> None:
    # A gray pixel g is the RGB pixel (g, g, g), so both paths must give the same luma.
    gray = np.random.default_rng(27).random((16, 16), dtype=np.float32)

    from_gray = gray_to_y(gray)
    from_rgb = rgb_to_ycbcr(np.dstack([gray] * 3))[..., 0]

    error = np.abs(from_gray.astype(np.float64) - from_rgb)
    assert error.max() < 1e-6, f"max difference {error.max():.3g}"


@pytest.mark.parametrize(("gray", "expected"), [(0.0, 16 / 255), (1.0, 235 / 255)], ids=["black", "white"])
def test_gray_luma_range_ends(gray: float, expected: float) -> None:
    luma = float(gray_to_y(np.array([gray], dtype=np.float32))[0])

    assert abs(luma - expected) < 1e-6, f"Y = {luma * 255:.4f}/255, expected {expected * 255:.4f}/255"
