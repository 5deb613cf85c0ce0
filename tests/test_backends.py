"""Inference backends and tiling: onnxruntime == torch, tiled == whole image."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_random_weights
from upscale import open_backend, plan_tiles, upscale_array

# onnxruntime and torch use different convolution kernels; float32 results agree to about 1e-6.
BACKEND_TOLERANCE = 1e-5


@pytest.mark.parametrize("scale", [2, 4])
def test_onnxruntime_matches_torch(scale: int) -> None:
    pytest.importorskip("torch")
    weights = make_random_weights("sesr-m5", scale, seed=scale)
    luma = np.random.default_rng(0).random((2, 1, 19, 23), dtype=np.float32)
    ort_out = open_backend(weights, "onnxruntime")(luma)
    torch_out = open_backend(weights, "torch")(luma)
    error = np.abs(ort_out - torch_out)
    assert ort_out.shape == (2, 1, 19 * scale, 23 * scale), f"shape {ort_out.shape}"
    assert error.max() <= BACKEND_TOLERANCE, f"max {error.max():.3g}, mean {error.mean():.3g}"


def test_onnx_graph_matches_numpy_reference() -> None:
    # Independent reference: direct convolution in numpy for a 1×1 input, where only centre
    # taps see data; everything else is zero padding.
    weights = make_random_weights("sesr-m3", 2, seed=5)
    y = 0.7
    x0 = weights.head.weight[:, 0, 2, 2] * (y - 0.5) + weights.head.bias
    x = x0
    for conv, alpha in zip(weights.body, weights.alphas):
        x = conv.weight[:, :, 1, 1] @ x + conv.bias
        x = np.where(x >= 0, x, alpha * x)
    r = weights.tail.weight[:, :, 2, 2] @ (x + x0) + weights.tail.bias + y
    expected = np.clip(r.reshape(2, 2), 0, 1)  # CRD depth-to-space of 4 channels
    out = open_backend(weights, "onnxruntime")(np.full((1, 1, 1, 1), y, dtype=np.float32))[0, 0]
    assert np.allclose(out, expected, atol=1e-6), f"onnx {out.ravel()}, numpy {expected.ravel()}"


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (1, 1, 3), (3, 5, 3), (17, 31, 3), (29, 19, 4), (33, 40, 2)])
@pytest.mark.parametrize("tile", [1, 4, 7, 16])
def test_tiled_equals_whole(shape: tuple[int, ...], tile: int) -> None:
    network = open_backend(make_random_weights("sesr-m3", 2, seed=7), "onnxruntime")
    pixels = np.random.default_rng(2).random(shape, dtype=np.float32)
    whole = upscale_array(pixels, network, tile=0)
    tiled = upscale_array(pixels, network, tile=tile)
    error = np.abs(whole - tiled)
    assert whole.shape == (shape[0] * 2, shape[1] * 2) + shape[2:], f"shape {whole.shape}"
    assert error.max() <= 1e-5, f"tile {tile}: max {error.max():.3g} at {np.unravel_index(error.argmax(), error.shape)}"


def test_tiled_equals_whole_x4_uint16() -> None:
    network = open_backend(make_random_weights("sesr-m3", 4, seed=8), "onnxruntime")
    pixels = (np.random.default_rng(3).random((21, 26, 3)) * 65535).astype(np.uint16)
    whole = upscale_array(pixels, network, tile=0)
    tiled = upscale_array(pixels, network, tile=9)
    difference = np.abs(whole.astype(np.int64) - tiled.astype(np.int64))
    assert whole.dtype == np.uint16, f"dtype {whole.dtype}"
    assert difference.max() <= 1, f"max {difference.max()} LSB, {np.count_nonzero(difference)} pixels differ"


def test_tile_progress_reports_every_tile() -> None:
    network = open_backend(make_random_weights(), "onnxruntime")
    calls: list[tuple[int, int]] = []
    upscale_array(np.zeros((10, 13), dtype=np.uint8), network, tile=4, on_tile=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 12) for i in range(1, 13)], f"{calls}"


def test_auto_tiling_bounds_large_images() -> None:
    plan = plan_tiles(12000, 12000, None, receptive_radius=9)
    assert plan.tile == 512, f"tile {plan.tile}"
    assert plan.count == 24 * 24, f"{plan.count} tiles"           # ceil(12000 / 512) = 24
    largest = max((t.read_bottom - t.read_top) * (t.read_right - t.read_left) for t in plan)
    assert largest <= (512 + 2 * 9) ** 2, f"largest region {largest} pixels"


def test_plan_covers_every_pixel_once() -> None:
    plan = plan_tiles(23, 17, 5, receptive_radius=3)
    covered = np.zeros((23, 17), dtype=int)
    for t in plan:
        covered[t.top:t.bottom, t.left:t.right] += 1
    assert np.all(covered == 1), f"coverage counts {np.unique(covered)}"


def test_rejects_bad_layout() -> None:
    network = open_backend(make_random_weights(), "onnxruntime")
    with pytest.raises(ValueError, match="expected"):
        upscale_array(np.zeros((4, 4, 5), dtype=np.uint8), network)
    with pytest.raises(TypeError, match="uint8, uint16 or float32"):
        upscale_array(np.zeros((4, 4), dtype=np.int32), network)


@pytest.mark.parametrize("scale", [2, 4])
def test_flat_image_periodic_to_edges(scale: int) -> None:
    # A flat input mirrored at the borders is flat everywhere, so every output pixel of the same
    # sub-pixel phase must be equal, corners included. Zero padding would bend the edges.
    network = open_backend(make_random_weights("sesr-m3", scale, seed=11), "onnxruntime")
    out = upscale_array(np.full((9, 12), 200, dtype=np.uint8), network, tile=5)
    for dy in range(scale):
        for dx in range(scale):
            phase = out[dy::scale, dx::scale]
            assert phase.min() == phase.max(), f"phase ({dy},{dx}) ranges {phase.min()}..{phase.max()}"
