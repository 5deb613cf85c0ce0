"""Tests of upscale.metrics and the MATLAB-compatible bicubic resize it relies on.

Every input is made here. Reference values are derived by hand in the comments, or computed by a
plain numpy implementation that shares no code with the module under test.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.data import DatasetError
from upscale.imresize import cubic_kernel, imresize
from upscale.metrics import (
    FolderScore,
    ImageScore,
    bicubic_sr_luma,
    evaluate_folder,
    evaluate_image,
    luma_to_uint8,
    network_method,
    psnr,
    ssim,
)


def _smooth_rgb(height: int, width: int, seed: int) -> np.ndarray:
    """H×W×3 uint8 RGB made of gradients plus mild noise, so bicubic scores are finite."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([100 + 80 * np.sin(x / 7.0), 60 + 2.0 * y, 150 - 50 * np.cos((x + y) / 9.0)], axis=2)
    return np.clip(np.round(base + rng.normal(0.0, 3.0, base.shape)), 0, 255).astype(np.uint8)


# PSNR.

def test_psnr_known_mse_range_255():
    # Every pixel differs by 5, so MSE = 25 and PSNR = 10·log10(255² / 25) = 20·log10(51)
    # = 34.151403... dB.
    a = np.full((4, 4), 100.0)
    b = a + 5.0
    value = psnr(a, b, 255.0)
    assert value == pytest.approx(20.0 * math.log10(51.0), abs=1e-12), f"PSNR {value}"
    assert value == pytest.approx(34.1514035, abs=1e-6), f"PSNR {value}"


def test_psnr_known_mse_range_1():
    # 4 of 16 pixels differ by 1: MSE = 4·1² / 16 = 0.25, PSNR = 10·log10(1 / 0.25) = 6.0206 dB.
    a = np.zeros((4, 4))
    b = a.copy()
    b[0, :] = 1.0
    value = psnr(a, b, 1.0)
    assert value == pytest.approx(10.0 * math.log10(4.0), abs=1e-12), f"PSNR {value}"


def test_psnr_symmetric_and_dtype_independent():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (8, 8)).astype(np.uint8)
    b = rng.integers(0, 256, (8, 8)).astype(np.uint8)
    forward = psnr(a, b, 255.0)
    backward = psnr(b, a, 255.0)
    as_float = psnr(a.astype(np.float32), b.astype(np.float64), 255.0)
    # uint8 subtraction would wrap around, so equal results show the inputs were widened first.
    assert forward == backward, f"psnr(a, b) = {forward}, psnr(b, a) = {backward}"
    assert forward == pytest.approx(as_float, abs=1e-12), f"uint8 {forward}, float {as_float}"


def test_psnr_identical_is_infinite():
    a = np.arange(16.0).reshape(4, 4)
    value = psnr(a, a.copy(), 255.0)
    assert value == math.inf, f"PSNR of identical arrays {value}"


@pytest.mark.parametrize("shape_b", [(4, 5), (4,)])
def test_psnr_rejects_mismatched_shapes(shape_b):
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4)), np.zeros(shape_b), 255.0)


@pytest.mark.parametrize("data_range", [0.0, -1.0])
def test_psnr_rejects_nonpositive_range(data_range):
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4)), np.ones((4, 4)), data_range)


# SSIM.

def _ssim_reference(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """SSIM by a double loop over every 11×11 window that fits, straight from Wang et al. 2004."""
    radius = 5
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2.0 * 1.5 ** 2))
    window /= window.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for top in range(a.shape[0] - 2 * radius):
        for left in range(a.shape[1] - 2 * radius):
            patch_a = a[top:top + 11, left:left + 11]
            patch_b = b[top:top + 11, left:left + 11]
            mu_a, mu_b = np.sum(window * patch_a), np.sum(window * patch_b)
            var_a = np.sum(window * (patch_a - mu_a) ** 2)
            var_b = np.sum(window * (patch_b - mu_b) ** 2)
            cov = np.sum(window * (patch_a - mu_a) * (patch_b - mu_b))
            values.append((2 * mu_a * mu_b + c1) * (2 * cov + c2)
                          / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))
    return float(np.mean(values))


def test_ssim_identical_is_one():
    image = np.random.default_rng(2).uniform(0.0, 255.0, (16, 16))
    value = ssim(image, image.copy(), 255.0)
    assert value == pytest.approx(1.0, abs=1e-12), f"SSIM of identical images {value}"


def test_ssim_matches_window_loop():
    rng = np.random.default_rng(3)
    a = rng.uniform(0.0, 255.0, (16, 16))
    b = np.clip(a + rng.normal(0.0, 20.0, a.shape), 0.0, 255.0)
    value = ssim(a, b, 255.0)
    expected = _ssim_reference(a, b, 255.0)
    assert value == pytest.approx(expected, abs=1e-10), f"ssim {value}, window loop {expected}"


def test_ssim_matches_window_loop_non_square():
    rng = np.random.default_rng(4)
    a = rng.uniform(0.0, 1.0, (13, 19))
    b = 0.5 * a + 0.25 + rng.normal(0.0, 0.05, a.shape)
    value = ssim(a, b, 1.0)
    expected = _ssim_reference(a, b, 1.0)
    assert value == pytest.approx(expected, abs=1e-10), f"ssim {value}, window loop {expected}"


def test_ssim_constant_images_by_hand():
    # Both images are constant, so every variance and covariance is 0 and the contrast-structure
    # factor is (0 + C2) / (0 + C2) = 1. With μa = 100, μb = 110, L = 255, C1 = (0.01·255)² =
    # 6.5025: SSIM = (2·100·110 + C1) / (100² + 110² + C1) = 22006.5025 / 22106.5025 = 0.99547644.
    a = np.full((12, 12), 100.0)
    b = np.full((12, 12), 110.0)
    value = ssim(a, b, 255.0)
    assert value == pytest.approx(22006.5025 / 22106.5025, abs=1e-12), f"SSIM {value}"


def test_ssim_invariant_to_joint_scaling():
    rng = np.random.default_rng(5)
    a = rng.uniform(0.0, 1.0, (16, 16))
    b = np.clip(a + rng.normal(0.0, 0.1, a.shape), 0.0, 1.0)
    # Scaling both images and the range by 255 leaves SSIM unchanged, because C1 and C2 scale
    # with L² as the variances do.
    unit = ssim(a, b, 1.0)
    scaled = ssim(a * 255.0, b * 255.0, 255.0)
    assert unit == pytest.approx(scaled, abs=1e-10), f"range 1: {unit}, range 255: {scaled}"


def test_ssim_rejects_small_images():
    with pytest.raises(ValueError):
        ssim(np.zeros((10, 16)), np.zeros((10, 16)), 255.0)


# MATLAB bicubic resize.

@pytest.mark.parametrize("x, expected", [
    # For |x| ≤ 1 the kernel is 1.5|x|³ − 2.5|x|² + 1:
    #   x = 0: 1;  x = 1: 1.5 − 2.5 + 1 = 0;  x = 0.5: 0.1875 − 0.625 + 1 = 0.5625.
    (0.0, 1.0), (1.0, 0.0), (0.5, 0.5625), (-0.5, 0.5625),
    # For 1 < |x| ≤ 2 it is −0.5|x|³ + 2.5|x|² − 4|x| + 2:
    #   x = 1.5: −1.6875 + 5.625 − 6 + 2 = −0.0625;  x = 2: −4 + 10 − 8 + 2 = 0.
    (1.5, -0.0625), (-1.5, -0.0625), (2.0, 0.0),
    # Beyond |x| = 2 the kernel is zero.
    (2.5, 0.0), (-3.0, 0.0),
])
def test_cubic_kernel_known_values(x, expected):
    value = float(cubic_kernel(np.array([x]))[0])
    assert value == pytest.approx(expected, abs=1e-15), f"cubic_kernel({x}) = {value}, expected {expected}"


@pytest.mark.parametrize("scale", [2, 3, 4, 0.5])
def test_imresize_constant_stays_constant(scale):
    image = np.full((8, 12, 3), 0.3)
    resized = imresize(image, scale)
    expected_shape = (math.ceil(8 * scale), math.ceil(12 * scale), 3)
    assert resized.shape == expected_shape, f"shape {resized.shape}, expected {expected_shape}"
    error = np.abs(resized - 0.3).max()
    assert error < 1e-12, f"max deviation from the constant {error}"


def test_imresize_downscale_ramp_interior():
    # MATLAB maps output pixel i (1-based) to input coordinate u = i/s + 0.5·(1 − 1/s); for
    # s = 1/2 that is u = 2i − 0.5, or 2k + 0.5 in 0-based indices k. The antialiased kernel
    # spans |d| < 4 input pixels and is symmetric about u, so a linear ramp f(c) = c is
    # reproduced exactly wherever no tap falls outside [0, 31]: 2k + 0.5 ± 3.5 within bounds
    # gives k = 2..13.
    ramp = np.tile(np.arange(32.0), (4, 1))
    resized = imresize(ramp, 0.5)
    interior = resized[1, 2:14]
    expected = 2.0 * np.arange(2, 14) + 0.5
    error = np.abs(interior - expected).max()
    assert error < 1e-12, f"interior {interior}, expected {expected}"


def test_imresize_upscale_ramp_interior():
    # For s = 2, u = i/2 + 0.25 (1-based), or k/2 − 0.25 in 0-based indices. Keys' kernel with
    # a = −0.5 reproduces linear functions, so the ramp survives wherever the 4 taps around u
    # stay within [0, 31]: k = 3..60.
    ramp = np.tile(np.arange(32.0), (4, 1))
    resized = imresize(ramp, 2)
    interior = resized[3, 3:61]
    expected = np.arange(3, 61) / 2.0 - 0.25
    error = np.abs(interior - expected).max()
    assert error < 1e-12, f"max error {error} against the ramp"


def test_imresize_downscale_border_symmetric_padding():
    # A 1×4 row [10, 20, 40, 80] shrunk to 1×2. Output 1 maps to u = 1.5 (1-based). The
    # antialiased weights are 0.5·k(0.5·(u − j)) for input positions j = −2..5:
    #   j = −2, 5: −0.01171875   j = −1, 4: −0.03515625   j = 0, 3: 0.11328125   j = 1, 2: 0.43359375
    # (they already sum to 1). Symmetric padding maps j = 0 → 1, −1 → 2, −2 → 3, 5 → 4, so
    #   out = 0.546875·a1 + 0.3984375·a2 + 0.1015625·a3 − 0.046875·a4
    #       = 5.46875 + 7.96875 + 4.0625 − 3.75 = 13.75.
    row = np.array([[10.0, 20.0, 40.0, 80.0]])
    resized = imresize(row, 0.5)
    assert resized.shape == (1, 2), f"shape {resized.shape}"
    assert resized[0, 0] == pytest.approx(13.75, abs=1e-12), f"first output {resized[0, 0]}"
    # The mirror image of the same sum: 0.546875·80 + 0.3984375·40 + 0.1015625·20 − 0.046875·10.
    assert resized[0, 1] == pytest.approx(61.25, abs=1e-12), f"second output {resized[0, 1]}"


# Evaluation protocol.

def test_luma_to_uint8_known_values():
    # Y = 16 + 219·g/255 for gray g: black 16, white 235, g = 128 gives 125.929 → 126.
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [128, 128, 128]]], dtype=np.uint8)
    luma = luma_to_uint8(rgb)
    assert luma.dtype == np.uint8, f"dtype {luma.dtype}"
    assert luma.tolist() == [[16, 235, 126]], f"luma {luma.tolist()}"


def test_luma_to_uint8_rejects_float():
    with pytest.raises(ValueError):
        luma_to_uint8(np.zeros((2, 2, 3), dtype=np.float32))


def test_bicubic_sr_luma_shape_and_rounding():
    lr = _smooth_rgb(10, 14, seed=6)
    sr = bicubic_sr_luma(lr, 3)
    assert sr.shape == (30, 42), f"shape {sr.shape}"
    assert np.array_equal(sr, np.round(sr)), "bicubic luma is not rounded to integers"
    assert sr.min() >= 16, f"minimum luma {sr.min()}"
    assert sr.max() <= 235, f"maximum luma {sr.max()}"


def test_evaluate_image_exact_method_scores_perfect():
    # A method that returns the HR luma itself must score PSNR = inf and SSIM = 1. The HR image
    # is 41×38, so modcrop to ×2 leaves 40×38.
    hr = _smooth_rgb(41, 38, seed=7)
    hr_luma = luma_to_uint8(hr[:40, :38]).astype(np.float64)
    seen_shapes = []

    def exact(lr_rgb: np.ndarray, scale: int) -> np.ndarray:
        seen_shapes.append(lr_rgb.shape)
        return hr_luma

    value_psnr, value_ssim = evaluate_image(hr, exact, 2)
    assert seen_shapes == [(20, 19, 3)], f"method received LR shapes {seen_shapes}"
    assert value_psnr == math.inf, f"PSNR {value_psnr}"
    assert value_ssim == pytest.approx(1.0, abs=1e-12), f"SSIM {value_ssim}"


def test_evaluate_image_crops_border():
    # Errors confined to the outer `scale` pixels are cut off before scoring.
    hr = _smooth_rgb(40, 40, seed=8)
    spoiled = luma_to_uint8(hr).astype(np.float64)
    spoiled[:4, :] = 0.0
    spoiled[:, -4:] = 255.0
    value_psnr, _ = evaluate_image(hr, lambda lr, scale: spoiled, 4)
    assert value_psnr == math.inf, f"PSNR {value_psnr} with errors only in the border"


def test_evaluate_image_clips_and_rounds_sr():
    # SR luma beyond 0..255 is clipped, and fractions are rounded, before scoring.
    hr = np.full((32, 32, 3), 255, dtype=np.uint8)            # luma 235 everywhere
    value_psnr, _ = evaluate_image(hr, lambda lr, scale: np.full((32, 32), 235.4), 2)
    assert value_psnr == math.inf, f"PSNR {value_psnr} after rounding 235.4 to 235"
    black = np.zeros((32, 32, 3), dtype=np.uint8)             # luma 16 everywhere
    # -50 clips to 0, so MSE = 16² = 256 and PSNR = 10·log10(255² / 256) = 24.0654 dB.
    value_psnr, _ = evaluate_image(black, lambda lr, scale: np.full((32, 32), -50.0), 2)
    assert value_psnr == pytest.approx(10 * math.log10(255.0 ** 2 / 256.0), abs=1e-12), f"PSNR {value_psnr}"


def test_evaluate_image_rejects_wrong_sr_shape():
    hr = _smooth_rgb(32, 32, seed=9)
    with pytest.raises(ValueError):
        evaluate_image(hr, lambda lr, scale: np.zeros((30, 32)), 2)


def test_network_method_converts_luma_scale():
    # A gray LR pixel of 128 has luma 125.929 / 255. A nearest-neighbour "network" keeps that
    # value, and the method returns it on the 0..255 scale.
    received = []

    def nearest(luma: np.ndarray) -> np.ndarray:
        received.append((luma.dtype, luma.shape))
        return np.repeat(np.repeat(luma, 2, axis=0), 2, axis=1)

    method = network_method(nearest)
    sr = method(np.full((5, 6, 3), 128, dtype=np.uint8), 2)
    expected = 16.0 + 219.0 * 128.0 / 255.0
    assert received == [(np.float32, (5, 6))], f"network received {received}"
    assert sr.shape == (10, 12), f"shape {sr.shape}"
    assert np.abs(sr - expected).max() < 1e-4, f"luma {sr[0, 0]}, expected {expected}"


def test_evaluate_folder_scores_each_image(tmp_path):
    for name, seed in [("b.png", 10), ("a.png", 11)]:
        written = cv2.imwrite(str(tmp_path / name), _smooth_rgb(48, 40, seed))
        assert written, f"cv2.imwrite failed for {name}"
    (tmp_path / "notes.txt").write_text("not an image")

    result = evaluate_folder(tmp_path, bicubic_sr_luma, 2)
    names = [image.name for image in result.images]
    assert isinstance(result, FolderScore), f"type {type(result)}"
    assert names == ["a.png", "b.png"], f"names {names}"
    assert all(isinstance(image, ImageScore) for image in result.images), f"{result.images}"
    assert all(math.isfinite(image.psnr) for image in result.images), f"{result.images}"
    mean_psnr = (result.images[0].psnr + result.images[1].psnr) / 2
    assert result.psnr == pytest.approx(mean_psnr, abs=1e-12), f"mean {result.psnr}, expected {mean_psnr}"
    mean_ssim = (result.images[0].ssim + result.images[1].ssim) / 2
    assert result.ssim == pytest.approx(mean_ssim, abs=1e-12), f"mean {result.ssim}, expected {mean_ssim}"


def test_evaluate_folder_reads_gray_as_rgb(tmp_path):
    # A single-channel PNG is replicated to R = G = B, so it scores like its RGB copy.
    gray = _smooth_rgb(40, 40, seed=12)[..., 1]
    assert cv2.imwrite(str(tmp_path / "gray.png"), gray), "cv2.imwrite failed"
    result = evaluate_folder(tmp_path, bicubic_sr_luma, 2)
    expected = evaluate_image(np.dstack([gray, gray, gray]), bicubic_sr_luma, 2)
    assert (result.images[0].psnr, result.images[0].ssim) == expected, f"{result.images[0]} vs {expected}"


def test_evaluate_folder_rejects_empty_folder(tmp_path):
    with pytest.raises(DatasetError):
        evaluate_folder(tmp_path, bicubic_sr_luma, 2)


def test_score_types_are_frozen():
    score = ImageScore("a.png", 30.0, 0.9)
    with pytest.raises(AttributeError):
        score.psnr = 31.0  # type: ignore[misc]


def test_read_rgb_rejects_truncated_jpeg(tmp_path: Path) -> None:
    from models.data import ImageDecodeError, read_rgb

    rng = np.random.default_rng(3)
    ok, encoded = cv2.imencode(".jpg", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert ok
    path = tmp_path / "half.jpg"
    path.write_bytes(encoded.tobytes()[: len(encoded) // 2])
    with pytest.raises(ImageDecodeError) as caught:
        read_rgb(path)
    assert str(path) in str(caught.value)
    assert "truncated" in str(caught.value)


def test_read_rgb_layouts(tmp_path: Path) -> None:
    from PIL import Image

    from models.data import read_rgb

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)

    # RGB TIFF with orientation 6: OpenCV's IMREAD_COLOR returns None for it. The TIFF decoders
    # of both OpenCV and Pillow (libtiff) return it turned to 10×12.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(tmp_path / "turned.tif", exif=exif)
    with Image.open(tmp_path / "turned.tif") as opened:
        expected = np.asarray(opened.convert("RGB"))
    got = read_rgb(tmp_path / "turned.tif")
    assert cv2.imread(str(tmp_path / "turned.tif"), cv2.IMREAD_COLOR) is None, "case no longer needs handling"
    assert got.shape == (10, 12, 3), got.shape
    assert np.array_equal(got, expected), "TIFF pixels differ from Pillow's"

    # 16-bit gray PNG: rounded to 8 bits (v / 257) and replicated; RGBA: alpha dropped.
    gray16 = np.array([[0, 128, 129, 65535], [257, 384, 385, 32896]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "gray16.png"), gray16)
    expected = np.array([[0, 0, 1, 255], [1, 1, 1, 128]], dtype=np.uint8)
    got = read_rgb(tmp_path / "gray16.png")
    assert got.shape == (2, 4, 3), got.shape
    assert np.array_equal(got[..., 0], expected), got[..., 0]
    assert np.array_equal(got[..., 2], expected), got[..., 2]
    bgra = np.dstack([rgb[..., ::-1], np.full((12, 10), 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    assert np.array_equal(read_rgb(tmp_path / "rgba.png"), rgb), "RGBA PNG did not come back as its RGB"
