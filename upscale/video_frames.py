"""Video frames as 8-bit YCbCr planes, and their upscaling: luma by the network, chroma by bicubic.

Frames are decoded by PyAV into planar 8-bit YCbCr: 4:2:0 sources stay ``yuv420p`` and every
other layout (4:2:2, 4:4:4, RGB, packed formats) becomes ``yuv444p``. The luma plane is already
Y in the source's own matrix, so it goes to the network after only a range mapping
(``upscale.color.video_luma_to_y``). Cb and Cr planes are upscaled with OpenCV's bicubic filter
by the same factor, which keeps the chroma subsampling of the working format.

NOTE: sources with more than 8 bits per sample are reduced to 8 bits by swscale.
NOTE: OpenCV resizes about pixel centres, which is right for centre-sited chroma (JPEG, MPEG-1).
For the left-sited 4:2:0 chroma of MPEG-2 and H.264 this shifts chroma by a quarter of an
output chroma sample horizontally.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from .backends import LumaNetwork
from .color import video_luma_to_y, y_to_video_luma
from .pipeline import _bicubic, _quantize, upscale_luma_batch

__all__ = ["PlaneFrame", "working_format", "frame_to_planes", "planes_to_frame", "upscale_frames"]

# AVColorRange values of limited-range ("MPEG") and full-range ("JPEG") video in FFmpeg's pixfmt.h.
AVCOL_RANGE_MPEG = 1
AVCOL_RANGE_JPEG = 2

# Pixel formats whose samples are full range regardless of the frame's color_range field.
_FULL_RANGE_FORMATS = frozenset({"yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p", "yuvj411p"})


@dataclass(frozen=True)
class PlaneFrame:
    """One frame as uint8 Y, Cb and Cr planes (H×W, and h×w for subsampled chroma), with its time.

    ``pts`` and ``duration`` are in the source stream's time base.
    """

    index: int
    pts: int
    duration: int
    y: np.ndarray
    cb: np.ndarray
    cr: np.ndarray


def working_format(source_format: str) -> str:
    """Planar 8-bit format that frames of ``source_format`` are converted to for upscaling."""
    # Component sizes of a 64×64 frame show the chroma subsampling.
    descriptor = av.VideoFormat(source_format, 64, 64)
    if descriptor.is_rgb or len(descriptor.components) < 3:
        return "yuv444p"
    chroma = descriptor.components[1]
    return "yuv420p" if (chroma.width, chroma.height) == (32, 32) else "yuv444p"


def is_full_range(frame: av.VideoFrame) -> bool:
    """Return True when the frame's luma uses codes 0–255 (full range) rather than 16–235."""
    return frame.format.name in _FULL_RANGE_FORMATS or frame.color_range == AVCOL_RANGE_JPEG


def _plane_view(plane) -> np.ndarray:
    """H×W uint8 view of a PyAV plane, whose rows are ``line_size`` bytes apart."""
    flat = np.asarray(plane)
    return flat[:plane.height * plane.line_size].reshape(plane.height, plane.line_size)[:, :plane.width]


def frame_to_planes(frame: av.VideoFrame, working: str, full_range: bool, rotation: int, index: int,
                    pts: int, duration: int) -> PlaneFrame:
    """Copy a decoded frame into Y, Cb, Cr planes, rotated by ``rotation`` degrees counterclockwise.

    ``rotation`` is a multiple of 90, as ``VideoFrame.rotation`` reports the display matrix.
    Rotating the pixels here lets the output be written without a display matrix.
    ``full_range`` is the range the planes keep, so swscale converts the layout but not the range.

    NOTE: a display matrix that also mirrors the picture is read as its rotation alone.
    """
    # yuvj formats have the planes of their yuv twin, and only differ in range.
    same_planes = frame.format.name.replace("yuvj", "yuv") == working
    if not same_planes:
        frame = frame.reformat(format=working, dst_color_range=AVCOL_RANGE_JPEG if full_range else AVCOL_RANGE_MPEG)
    turns = (rotation // 90) % 4
    planes = [np.ascontiguousarray(np.rot90(_plane_view(plane), turns)) for plane in frame.planes[:3]]
    return PlaneFrame(index, pts, duration, *planes)


def planes_to_frame(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, working: str) -> av.VideoFrame:
    """Build a PyAV frame of format ``working`` from uint8 planes."""
    height, width = y.shape
    frame = av.VideoFrame(width, height, working)
    for plane, values in zip(frame.planes, (y, cb, cr)):
        _plane_view(plane)[:] = values
    return frame


def upscale_frames(frames: list[PlaneFrame], network: LumaNetwork, full_range: bool,
                   tile: int | None = None) -> list[PlaneFrame]:
    """Upscale frames of equal size by ``network.scale``: luma as one batch, chroma frame by frame.

    ``full_range`` is the source's luma range. Returns uint8 planes; times are unchanged.
    """
    if not frames:
        return []
    s = network.scale

    # Network on luma: codes → studio-range Y / 255 → network → codes / 255, rounded to uint8.
    luma = video_luma_to_y(np.stack([f.y for f in frames]), full_range)
    codes = y_to_video_luma(upscale_luma_batch(luma, network, tile), full_range)
    upscaled_luma = _quantize(codes, 255.0, np.dtype(np.uint8))

    # cv2.resize saturates uint8 results, so bicubic overshoot is clipped to 0–255.
    return [PlaneFrame(f.index, f.pts, f.duration, upscaled_luma[i], _bicubic(f.cb, s), _bicubic(f.cr, s))
            for i, f in enumerate(frames)]
