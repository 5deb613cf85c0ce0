"""Input sizes: ``WIDTHxHEIGHT`` of the low-resolution input, or a named video size."""

from __future__ import annotations

import re

from .errors import InputSizeError

__all__ = ["NAMED_SIZES", "parse_input_size"]

# Width × height of the common 16:9 frame sizes.
NAMED_SIZES: dict[str, tuple[int, int]] = {
    "360p": (640, 360), "540p": (960, 540), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160),
}


def parse_input_size(text: str) -> tuple[int, int]:
    """Return (width, height) for ``1920x1080``, ``1920×1080`` or a name in ``NAMED_SIZES``."""
    key = text.strip().lower()
    if key in NAMED_SIZES:
        return NAMED_SIZES[key]
    match = re.fullmatch(r"(\d+)\s*[x×]\s*(\d+)", key)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise InputSizeError(f"invalid input size {text!r}: use WIDTHxHEIGHT such as 1920x1080, "
                             f"or one of {', '.join(NAMED_SIZES)}")
    return int(match[1]), int(match[2])
