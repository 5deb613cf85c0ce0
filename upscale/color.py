"""BT.601 YCbCr conversion in the "studio range" that SESR is trained on.

For R, G, B in [0, 1] (ITU-R BT.601, the matrix of MATLAB's ``rgb2ycbcr``):

    Y  = 16  +  65.481 R + 128.553 G +  24.966 B        range [16, 235]
    Cb = 128 −  37.797 R −  74.203 G + 112.000 B        range [16, 240]
    Cr = 128 + 112.000 R −  93.786 G −  18.214 B        range [16, 240]

Values here are divided by 255, so luma lies in [16/255, 235/255]. The reverse conversion uses
the exact matrix inverse, so a round trip returns the input up to float rounding.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["rgb_to_ycbcr", "ycbcr_to_rgb", "rgb_to_y", "gray_to_y", "y_to_gray", "video_luma_to_y",
           "y_to_video_luma"]

_FORWARD = np.array([[65.481, 128.553, 24.966],
                     [-37.797, -74.203, 112.000],
                     [112.000, -93.786, -18.214]], dtype=np.float64) / 255.0
_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float64) / 255.0
_INVERSE = np.linalg.inv(_FORWARD)

# 3×4 affine matrices for cv2.transform, which runs several times faster than a numpy matmul
# over H×W×3 arrays.
_FORWARD_AFFINE = np.hstack([_FORWARD, _OFFSET[:, None]]).astype(np.float32)
_INVERSE_AFFINE = np.hstack([_INVERSE, -(_INVERSE @ _OFFSET)[:, None]]).astype(np.float32)

# Sum of the Y row: for gray pixels (R = G = B = g) luma is 16/255 + g·219/255.
_LUMA_GAIN = _FORWARD[0].sum()


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """Convert H×W×3 RGB in [0, 1] to YCbCr / 255, float32."""
    return cv2.transform(np.ascontiguousarray(rgb, dtype=np.float32), _FORWARD_AFFINE)


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Exact inverse of ``rgb_to_ycbcr``; no clipping."""
    return cv2.transform(np.ascontiguousarray(ycbcr, dtype=np.float32), _INVERSE_AFFINE)


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """Luma / 255 of H×W×3 RGB in [0, 1], float64 for metrics."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return rgb @ _FORWARD[0] + _OFFSET[0]


def gray_to_y(gray: np.ndarray) -> np.ndarray:
    """Luma / 255 of a gray image in [0, 1] (R = G = B), float32."""
    return (np.asarray(gray, dtype=np.float32) * np.float32(_LUMA_GAIN)
            + np.float32(_OFFSET[0]))


def y_to_gray(y: np.ndarray) -> np.ndarray:
    """Exact inverse of ``gray_to_y``; no clipping."""
    return (np.asarray(y, dtype=np.float32) - np.float32(_OFFSET[0])) / np.float32(_LUMA_GAIN)


# Video luma codes come in two ranges (ITU-T H.273 VideoFullRangeFlag): limited range puts black
# and white at codes 16 and 235 of 255, which is the studio range above, and full range uses 0
# and 255. Decoded video is already YCbCr in the source's own matrix (BT.601, BT.709, ...), so
# only the range needs mapping before the network receives it.
_FULL_TO_STUDIO_GAIN = np.float32(219.0 / 255.0)
_STUDIO_OFFSET = np.float32(16.0 / 255.0)


def video_luma_to_y(codes: np.ndarray, full_range: bool) -> np.ndarray:
    """Map 8-bit video luma codes to studio-range luma / 255, float32.

    Limited-range codes are returned as codes / 255. Full-range codes map to (16 + 219·code/255) / 255.
    """
    y = np.asarray(codes, dtype=np.float32) / np.float32(255.0)
    if full_range:
        y *= _FULL_TO_STUDIO_GAIN
        y += _STUDIO_OFFSET
    return y


def y_to_video_luma(y: np.ndarray, full_range: bool) -> np.ndarray:
    """Exact inverse of ``video_luma_to_y``: luma codes / 255, float32, not clipped or rounded."""
    y = np.array(y, dtype=np.float32)
    if full_range:
        y -= _STUDIO_OFFSET
        y /= _FULL_TO_STUDIO_GAIN
    return y
