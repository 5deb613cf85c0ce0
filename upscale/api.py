"""The small public face of the inference pipeline: ``Upscaler``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from models.descriptor import ModelDescriptor
from models.weights import CollapsedWeights, load_weights
from models.zoo import load_model

from .backends import Backend, LumaNetwork, Precision, describe_network, open_backend
from .int8 import find_calibration, missing_calibration_reason
from .io import ImageFormat, read_image, write_image
from .pipeline import upscale_array

__all__ = ["Upscaler"]


class Upscaler:
    """An SESR network ready for inference.

    >>> up = Upscaler("sesr-m5", scale=2)              # shipped weights, OpenVINO bf16 where available
    >>> big = up.upscale_array(rgb)                     # H×W×3 uint8 → 2H×2W×3 uint8
    >>> up.upscale_file("photo.jpg", "photo_x2.png")
    """

    def __init__(self, model: str = "sesr-m5", scale: int = 2, *,
                 backend: Backend | str = Backend.AUTO, weights: Path | str | None = None,
                 threads: int | None = None, precision: Precision | str | None = None) -> None:
        """Load the weights and open the backend; see ``open_backend`` for ``threads`` and ``precision``.

        Raises ``ValueError`` for a negative ``threads``; a count above the logical CPUs is lowered
        to them with a logged warning.

        For int8, a calibration file beside ``weights`` (``name.int8.json``) is used when it
        was made for these weights; otherwise the precision falls back with a logged notice.
        """
        loaded: CollapsedWeights = load_weights(weights) if weights is not None else load_model(model, scale)
        calibration, missing = None, None
        if weights is not None and precision is not None and Precision(precision) is Precision.INT8:
            calibration = find_calibration(loaded, weights)
            if calibration is None:
                missing = missing_calibration_reason(loaded, weights)
        self.weights = loaded
        self.network: LumaNetwork = open_backend(loaded, backend, threads, precision, calibration, missing)
        self.backend: Backend = self.network.backend
        self.precision: Precision = self.network.precision

    @property
    def descriptor(self) -> ModelDescriptor:
        return self.weights.descriptor

    @property
    def scale(self) -> int:
        return self.descriptor.scale

    def describe(self) -> str:
        """Name the model, scale, engine, precision and threads, e.g. ``sesr-m5 ×2 on OpenVINO bf16, 2 threads``."""
        return f"{self.descriptor.variant} ×{self.scale} on {describe_network(self.network)}"

    def upscale_array(self, pixels: np.ndarray, tile: int | None = None,
                      on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Upscale H×W, H×W×2, H×W×3 (RGB) or H×W×4 (RGBA) uint8/uint16/float32 pixels.

        Returns the same layout and dtype at (H·s, W·s); see ``upscale.pipeline``.
        """
        return upscale_array(pixels, self.network, tile=tile, on_tile=on_tile)

    def upscale_file(self, source: Path | str, target: Path | str, *,
                     image_format: ImageFormat | str | None = None, tile: int | None = None,
                     quality: int = 95, on_tile: Callable[[int, int], None] | None = None) -> None:
        """Read ``source``, upscale it and write ``target`` atomically with ICC profile and EXIF.

        The format follows ``image_format`` or else the suffix of ``target``. Raises ``ValueError``
        when ``target`` is ``source`` itself (also through a link). This method does not check for
        other existing files; ``upscale.batch`` applies the overwrite rules.
        """
        target = Path(target)
        if Path(source).resolve() == target.resolve() or (
                target.exists() and Path(source).exists() and os.path.samefile(source, target)):
            raise ValueError(f"{target}: the output would overwrite its input; choose another output path")
        fmt = ImageFormat(image_format) if image_format else ImageFormat.from_suffix(target.suffix)
        if fmt is None:
            raise ValueError(f"{target}: unknown output suffix; use .png, .jpg, .webp or .tif")
        image = read_image(source)
        pixels = self.upscale_array(image.pixels, tile=tile, on_tile=on_tile)
        write_image(target, pixels, fmt, icc_profile=image.icc_profile, exif=image.exif, quality=quality)
