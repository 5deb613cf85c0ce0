"""Upscale pixel arrays: luma through the network, chroma and alpha with bicubic, in tiles.

Contract: ``upscale_array`` takes H×W (gray), H×W×2 (gray + alpha), H×W×3 (RGB) or H×W×4
(RGBA) arrays of uint8, uint16 or float32 in [0, 1], and returns the same layout and dtype at
(H·s, W·s). Color images are converted to BT.601 YCbCr, and the network upscales Y / 255. Cb, Cr
and alpha are upscaled with OpenCV's bicubic filter, and the result goes back through the exact
inverse matrix. Gray images use the same luma mapping with R = G = B.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

import cv2
import numpy as np

from .backends import LumaNetwork
from .color import gray_to_y, rgb_to_ycbcr, y_to_gray, ycbcr_to_rgb

__all__ = ["Tile", "TilePlan", "plan_tiles", "upscale_array", "upscale_luma", "upscale_luma_batch",
           "AUTO_TILE_PIXELS", "AUTO_TILE"]

# Images with more LR pixels than this are tiled when no tile size is given, so one network call
# allocates feature maps for at most (AUTO_TILE + 2·halo)² pixels (f float32 channels each).
# 512-pixel tiles also ran faster than whole frames on the CPU, because their feature maps stay
# in cache: SESR-M5 ×2 on a 1080p frame took 1.61 s tiled against 1.85 s whole on one thread
# (docs/benchmarks.md). With OpenVINO bf16 on 2 cores, 512 was within 1 % of the fastest tile
# side at ×2 and ×4, where whole frames took 2.7 times as long (benchmarks/backends.py
# --tile-sweep, same page).
AUTO_TILE_PIXELS = 1024 * 1024
AUTO_TILE = 512

# OpenCV's bicubic filter reads 2 source pixels on each side of an output pixel.
BICUBIC_RADIUS = 2


@dataclass(frozen=True)
class Tile:
    """One tile in LR pixels: the core it produces and the region (core plus halo) it reads."""

    top: int
    left: int
    bottom: int
    right: int
    read_top: int
    read_left: int
    read_bottom: int
    read_right: int


@dataclass(frozen=True)
class TilePlan:
    """Tiles covering an image, with a halo so tiled output equals whole-image output."""

    height: int
    width: int
    tile: int
    """Core side in LR pixels; 0 means one tile for the whole image."""
    halo: int
    """LR pixels read beyond each core edge, at least the network's receptive-field radius."""

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f"image must be at least 1×1, got {self.width}×{self.height}")
        if self.tile < 0 or self.halo < 0:
            raise ValueError("tile and halo must not be negative")

    @property
    def count(self) -> int:
        if not self.tile:
            return 1
        return math.ceil(self.height / self.tile) * math.ceil(self.width / self.tile)

    def __iter__(self) -> Iterator[Tile]:
        step_y = self.tile or self.height
        step_x = self.tile or self.width
        for top in range(0, self.height, step_y):
            for left in range(0, self.width, step_x):
                bottom, right = min(top + step_y, self.height), min(left + step_x, self.width)
                yield Tile(top, left, bottom, right,
                           max(top - self.halo, 0), max(left - self.halo, 0),
                           min(bottom + self.halo, self.height), min(right + self.halo, self.width))


def plan_tiles(height: int, width: int, tile: int | None, receptive_radius: int) -> TilePlan:
    """Choose tiles: ``tile`` = None tiles only large images, 0 never tiles."""
    if tile is None:
        tile = AUTO_TILE if height * width > AUTO_TILE_PIXELS else 0
    if tile and tile >= max(height, width):
        tile = 0
    return TilePlan(height, width, tile, max(receptive_radius, BICUBIC_RADIUS))


def _max_value(dtype: np.dtype) -> float:
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if dtype == np.float32:
        return 1.0
    raise TypeError(f"pixels must be uint8, uint16 or float32, got {dtype}")


def _bicubic(plane: np.ndarray, scale: int) -> np.ndarray:
    height, width = plane.shape
    return cv2.resize(plane, (width * scale, height * scale), interpolation=cv2.INTER_CUBIC)


Padding = tuple[int, int, int, int]
"""LR pixels of mirror padding above, below, left and right of a region."""


def upscale_luma(luma: np.ndarray, network: LumaNetwork, padding: Padding | None = None) -> np.ndarray:
    """Upscale 2-D float32 luma / 255, mirroring ``padding`` pixels at the image borders first.

    The network zero-pads every convolution. Mirroring the image by its receptive-field radius
    (the default) and cropping afterwards keeps those zeros out of every output pixel, so flat
    images stay flat up to the edges.
    """
    if padding is None:
        padding = (network.receptive_radius,) * 4
    top, bottom, left, right = padding
    padded = cv2.copyMakeBorder(np.ascontiguousarray(luma, dtype=np.float32), top, bottom, left, right,
                                cv2.BORDER_REFLECT_101)
    return _crop(network(padded[None, None])[0, 0], padding, network.scale)


def upscale_luma_batch(luma: np.ndarray, network: LumaNetwork, tile: int | None = None) -> np.ndarray:
    """Upscale N×H×W float32 luma / 255 of N equal-sized frames, in tiles, one network call per tile.

    Each tile is run for all N frames at once, so the backend receives an N×1×h×w batch. Tiles read
    a halo and the frame borders are mirrored as in ``upscale_array``, so the result equals
    ``upscale_luma`` on each frame alone. Returns N×sH×sW float32, clipped to [0, 1] by the network.
    """
    if luma.ndim != 3:
        raise ValueError(f"expected N×H×W luma, got shape {luma.shape}")
    frames, height, width = luma.shape
    s = network.scale
    plan = plan_tiles(height, width, tile, network.receptive_radius)
    output = np.empty((frames, height * s, width * s), dtype=np.float32)

    for t in plan:
        top, bottom = plan.halo - (t.top - t.read_top), plan.halo - (t.read_bottom - t.bottom)
        left, right = plan.halo - (t.left - t.read_left), plan.halo - (t.read_right - t.right)
        region = np.asarray(luma[:, t.read_top:t.read_bottom, t.read_left:t.read_right], dtype=np.float32)
        # numpy's "reflect" leaves the edge pixel out, like OpenCV's BORDER_REFLECT_101.
        padded = np.pad(region, ((0, 0), (top, bottom), (left, right)), mode="reflect")
        result = network(padded[:, None])[:, 0]

        # After padding, every tile's core starts ``halo`` LR pixels from the padded corner.
        y0 = x0 = plan.halo * s
        output[:, t.top * s:t.bottom * s, t.left * s:t.right * s] = \
            result[:, y0:y0 + (t.bottom - t.top) * s, x0:x0 + (t.right - t.left) * s]
    return output


def _crop(upscaled: np.ndarray, padding: Padding, scale: int) -> np.ndarray:
    top, bottom, left, right = (p * scale for p in padding)
    return upscaled[top:upscaled.shape[0] - bottom, left:upscaled.shape[1] - right]


@dataclass(frozen=True)
class _NetworkResult:
    """One tile after the network: its mirrored planes and the upscaled luma, before chroma."""

    region: np.ndarray
    """Float32 region in [0, 1], mirrored by ``padding``."""
    ycbcr: np.ndarray | None
    """YCbCr of the mirrored region for color images, None for gray ones."""
    upscaled_luma: np.ndarray
    padding: Padding


def _run_network(region: np.ndarray, network: LumaNetwork, padding: Padding) -> _NetworkResult:
    """Mirror one float32 region in [0, 1] by ``padding`` and upscale its luma with the network.

    Every plane (luma, chroma, alpha) is mirrored the same way, so all of them treat the image
    border alike.
    """
    region = cv2.copyMakeBorder(region, *padding, cv2.BORDER_REFLECT_101)
    channels = 1 if region.ndim == 2 else region.shape[2]
    ycbcr = rgb_to_ycbcr(region[..., :3]) if channels in (3, 4) else None
    if ycbcr is not None:
        luma = ycbcr[..., 0]
    else:
        luma = gray_to_y(region if channels == 1 else region[..., 0])
    upscaled_luma = network(np.ascontiguousarray(luma)[None, None])[0, 0]
    return _NetworkResult(region, ycbcr, upscaled_luma, padding)


def _finish_region(result: _NetworkResult, scale: int) -> np.ndarray:
    """Add bicubic chroma and alpha to the upscaled luma and remove the mirror padding.

    Returns the upscaled region in the input's layout, float32, not clipped.
    """
    region, ycbcr, upscaled_luma = result.region, result.ycbcr, result.upscaled_luma
    channels = 1 if region.ndim == 2 else region.shape[2]

    # cv2.merge interleaves the planes about twice as fast as np.dstack.
    if ycbcr is not None:
        chroma = [_bicubic(np.ascontiguousarray(ycbcr[..., c]), scale) for c in (1, 2)]
        upscaled = ycbcr_to_rgb(cv2.merge([upscaled_luma, *chroma]))
    else:
        upscaled = y_to_gray(upscaled_luma)
    if channels in (2, 4):
        alpha = _bicubic(np.ascontiguousarray(region[..., -1]), scale)
        upscaled = cv2.merge([upscaled, alpha])
    return _crop(upscaled, result.padding, scale)


_OPENCV_DEPTHS = {np.dtype(np.uint8): cv2.CV_8U, np.dtype(np.uint16): cv2.CV_16U}


def _quantize(values: np.ndarray, max_value: float, dtype: np.dtype) -> np.ndarray:
    """Clip float values to [0, 1] and round them to ``dtype``; float32 is clipped in place.

    For integers, one OpenCV pass scales, rounds to nearest (ties to even, like ``np.rint``) and
    saturates to the dtype's range, in place of four numpy passes.
    """
    if max_value == 1.0:
        return np.clip(values, 0.0, 1.0, out=values)
    return cv2.addWeighted(values, max_value, values, 0.0, 0.0, dtype=_OPENCV_DEPTHS[np.dtype(dtype)])


def upscale_array(pixels: np.ndarray, network: LumaNetwork, tile: int | None = None,
                  on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Upscale an image array by ``network.scale`` (see the module docstring for the contract).

    ``tile`` is the tile core side in LR pixels (None: automatic, 0: whole image). Each tile
    reads a halo of the receptive-field radius, so the result does not depend on the tiling.
    ``on_tile(done, total)`` reports progress after each tile.
    """
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(f"expected H×W or H×W×{{1,2,3,4}} pixels, got shape {pixels.shape}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        return upscale_array(pixels[..., 0], network, tile, on_tile)[..., None]
    max_value = _max_value(pixels.dtype)
    s = network.scale
    height, width = pixels.shape[:2]
    output = np.empty((height * s, width * s) + pixels.shape[2:], dtype=pixels.dtype)
    plan = plan_tiles(height, width, tile, network.receptive_radius)

    def finish(t: Tile, result: _NetworkResult) -> None:
        # Cut the core out of the upscaled region and quantize it into the output.
        upscaled = _finish_region(result, s)
        y0, x0 = (t.top - t.read_top) * s, (t.left - t.read_left) * s
        core = upscaled[y0:y0 + (t.bottom - t.top) * s, x0:x0 + (t.right - t.left) * s]
        output[t.top * s:t.bottom * s, t.left * s:t.right * s] = _quantize(core, max_value, pixels.dtype)

    # A worker thread finishes tile i (chroma, color conversion, rounding: mostly one core)
    # while the network runs on tile i + 1. Tiles write disjoint parts of the output, and the
    # network is only ever called from this thread.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sesr-finish") as finisher:
        pending: Future | None = None
        for index, t in enumerate(plan, start=1):
            # Convert only the region this tile reads, so peak float memory follows the tile size.
            region = pixels[t.read_top:t.read_bottom, t.read_left:t.read_right].astype(np.float32)
            if max_value != 1.0:
                region /= np.float32(max_value)
            # Tiles at the image border mirror the image there; inner edges already read a halo.
            padding = (plan.halo - (t.top - t.read_top), plan.halo - (t.read_bottom - t.bottom),
                       plan.halo - (t.left - t.read_left), plan.halo - (t.read_right - t.right))
            result = _run_network(region, network, padding)

            if pending is not None:
                pending.result()
                if on_tile is not None:
                    on_tile(index - 1, plan.count)
            pending = finisher.submit(finish, t, result)
        pending.result()
    if on_tile is not None:
        on_tile(plan.count, plan.count)
    return output
