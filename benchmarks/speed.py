"""Measure frames per second of SESR ×2 upscaling beside OpenCV bicubic resizing.

Every method upscales the same synthetic RGB uint8 frame (default 1920×1080 to 3840×2160):

- OpenCV bicubic: ``cv2.resize`` with ``INTER_CUBIC`` on the RGB frame, the reference.
- network only: the SESR network on the frame's 1×1×H×W float32 luma, once per backend.
- full path: ``upscale_array`` on the RGB frame (color conversion, network on luma, bicubic
  chroma, conversion back and rounding to uint8), once per backend, with the default tiling.

After one warm-up call per method, the repetitions run round-robin across the methods, so a
change in machine load affects every method alike. Times are wall-clock (``time.perf_counter``).

Results go to stdout and progress to stderr. Exit status: 0 on success, 1 when the weights file
cannot be read, 2 for invalid options or missing weights.

NOTE: ``--threads`` sets OpenCV's and the backends' thread counts, but numpy's BLAS pool (used by
the color conversion in the full path) keeps its own size. Set OPENBLAS_NUM_THREADS or pin the
process with ``taskset`` for a strict limit.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from models import CollapsedWeights, MissingWeightsError, WeightsFileError, load_weights, shipped_models
from models.zoo import weights_path
from upscale.backends import Backend, LumaNetwork, open_backend
from upscale.color import rgb_to_y
from upscale.pipeline import plan_tiles, upscale_array

logger = logging.getLogger("benchmarks.speed")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_VARIANT = "sesr-m5"
FRAME_SEED = 2022


class UsageError(ValueError):
    """An invalid option value or a missing input."""


@dataclass(frozen=True)
class Method:
    """One timed way of upscaling the frame."""

    label: str
    run: Callable[[], np.ndarray]
    expected_shape: tuple[int, ...]


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of every timed repetition of one method."""

    label: str
    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        """Median seconds per frame."""
        return statistics.median(self.seconds)

    @property
    def fps(self) -> float:
        """Frames per second at the median time."""
        return 1.0 / self.median


def _frame_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` into (width, height)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}: expected WxH, for example 1920x1080") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: width and height must be positive")
    return width, height


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=_frame_size, default=(1920, 1080), metavar="WxH",
                        help="LR frame size in pixels (default: 1920x1080)")
    parser.add_argument("--repeats", type=int, default=10,
                        help="timed repetitions per method after the warm-up (default: 10)")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads for OpenCV and the backends; 0 keeps each library's default")
    parser.add_argument("--weights", type=Path, default=None, metavar="FILE",
                        help=f"×2 collapsed-weights file (default: the shipped {DEFAULT_VARIANT} ×2)")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    return parser.parse_args(argv)


# Inputs.

def make_frame(width: int, height: int, seed: int = FRAME_SEED) -> np.ndarray:
    """Make a natural-looking H×W×3 RGB uint8 frame: smooth gradients, soft blobs and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x /= width
    y /= height

    # Linear ramps per channel give the large-scale gradients.
    gradients = np.stack([60 + 120 * x, 50 + 110 * y, 170 - 90 * (x + y) / 2], axis=2)

    # A coarse random grid upscaled with a smooth filter gives soft blobs like out-of-focus
    # objects, and diagonal stripes give sharp edges.
    coarse = rng.uniform(-40, 40, (max(height // 60, 2), max(width // 60, 2), 3)).astype(np.float32)
    blobs = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    stripes = 25 * np.sign(np.sin(2 * np.pi * (7 * x + 3 * y)))[..., None]

    noise = rng.normal(0, 4, (height, width, 3)).astype(np.float32)
    frame = gradients + blobs + stripes + noise
    return np.clip(np.round(frame), 0, 255).astype(np.uint8)


def _load_weights(path: Path | None) -> tuple[CollapsedWeights, Path]:
    if path is None:
        path = weights_path(DEFAULT_VARIANT, 2)
        if not path.is_file():
            available = [f"{m.descriptor.variant} ×{m.descriptor.scale}" for m in shipped_models()]
            raise UsageError(str(MissingWeightsError(DEFAULT_VARIANT, 2, available)))
    weights = load_weights(path)
    if weights.descriptor.scale != 2:
        raise UsageError(f"{path} contains ×{weights.descriptor.scale} weights; "
                         f"this benchmark measures ×2, so pass a ×2 weights file")
    return weights, path


def _backends() -> list[str]:
    """List the backends to time: onnxruntime, and torch when PyTorch can be imported."""
    names = [Backend.ONNXRUNTIME.value]
    if importlib.util.find_spec("torch") is not None:
        names.append(Backend.TORCH.value)
    return names


def build_methods(frame: np.ndarray, weights: CollapsedWeights, threads: int) -> list[Method]:
    """Build the bicubic reference and, per backend, the network-only and full-path methods."""
    height, width = frame.shape[:2]
    scale = weights.descriptor.scale
    variant = weights.descriptor.variant
    luma = rgb_to_y(frame / 255.0).astype(np.float32)[None, None]

    methods = [Method("OpenCV bicubic (cv2.resize INTER_CUBIC, RGB)",
                      lambda: cv2.resize(frame, (width * scale, height * scale),
                                         interpolation=cv2.INTER_CUBIC),
                      (height * scale, width * scale, 3))]
    for backend in _backends():
        network = open_backend(weights, backend, threads)
        methods.append(_network_only(f"{variant} ×{scale} network only, {backend}", network, luma))
        methods.append(Method(f"{variant} ×{scale} full upscale_array, {backend}",
                              lambda network=network: upscale_array(frame, network),
                              (height * scale, width * scale, 3)))
    return methods


def _network_only(label: str, network: LumaNetwork, luma: np.ndarray) -> Method:
    _, _, height, width = luma.shape
    return Method(label, lambda: network(luma), (1, 1, height * network.scale, width * network.scale))


# Measurement.

def measure(methods: list[Method], repeats: int) -> list[Timing]:
    """Warm up each method once and check its output shape, then time them round-robin."""
    for method in methods:
        logger.info("warm-up: %s", method.label)
        output = method.run()
        if output.shape != method.expected_shape:
            raise RuntimeError(f"{method.label} returned shape {output.shape}, "
                               f"expected {method.expected_shape}")

    seconds: list[list[float]] = [[] for _ in methods]
    for repeat in range(1, repeats + 1):
        logger.info("repetition %d of %d", repeat, repeats)
        for index, method in enumerate(methods):
            start = time.perf_counter()
            method.run()
            seconds[index].append(time.perf_counter() - start)
    return [Timing(method.label, tuple(times)) for method, times in zip(methods, seconds)]


# Rendering.

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> str:
    parts = [f"sesr {importlib.metadata.version('sesr')}", f"Python {platform.python_version()}",
             f"numpy {np.__version__}", f"OpenCV {cv2.__version__}"]
    import onnxruntime

    parts.append(f"onnxruntime {onnxruntime.__version__}")
    if importlib.util.find_spec("torch") is not None:
        import torch

        parts.append(f"torch {torch.__version__}")
    else:
        parts.append("torch not installed (torch backend skipped)")
    return ", ".join(parts)


def header_lines(args: argparse.Namespace, weights_file: Path, frame: np.ndarray,
                 receptive_radius: int) -> list[str]:
    """Describe the run: command, machine, versions, frame, weights and timing scheme."""
    height, width = frame.shape[:2]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    tiles = plan_tiles(height, width, None, receptive_radius).count
    digest = hashlib.sha256(weights_file.read_bytes()).hexdigest()[:16]
    return [
        f"command: python {shlex.join(sys.argv)}",
        f"CPU: {_cpu_model()}, {os.cpu_count()} logical cores, {usable} usable by this process",
        f"threads: {args.threads or 'library defaults'}",
        f"versions: {_versions()}",
        f"frame: {width}×{height} → {width * 2}×{height * 2}, synthetic RGB uint8 (seed {FRAME_SEED}); "
        f"full path uses {tiles} tile(s)",
        f"weights: {weights_file} (sha256 {digest})",
        f"timing: 1 warm-up per method, then {args.repeats} repetitions round-robin; "
        "median wall-clock seconds per frame",
    ]


def _rows(timings: list[Timing]) -> list[tuple[str, str, str, str]]:
    reference = timings[0].median
    return [(t.label, f"{t.median:.4g}", f"{t.fps:.2f}", f"{t.median / reference:.1f}")
            for t in timings]


def render_markdown(header: list[str], timings: list[Timing]) -> str:
    lines = ["## Upscaling speed", ""] + [f"- {line}" for line in header]
    lines += ["", "| method | median s/frame | FPS | time ÷ bicubic time |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {label} | {median} | {fps} | {ratio} |" for label, median, fps, ratio in _rows(timings)]
    return "\n".join(lines)


def render_text(header: list[str], timings: list[Timing]) -> str:
    lines = [f"# {line}" for line in header]
    rows = _rows(timings)
    width = max(len("method"), *(len(row[0]) for row in rows))
    lines.append(f"{'method':<{width}}  {'s/frame':>9}  {'FPS':>8}  {'÷ bicubic':>9}")
    lines += [f"{label:<{width}}  {median:>9}  {fps:>8}  {ratio:>9}" for label, median, fps, ratio in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    # Check options and load the weights.
    try:
        if args.repeats < 1:
            raise UsageError(f"--repeats must be at least 1, got {args.repeats}")
        if args.threads < 0:
            raise UsageError(f"--threads must be 0 or more, got {args.threads}")
        weights, weights_file = _load_weights(args.weights)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except WeightsFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    if args.threads:
        cv2.setNumThreads(args.threads)

    # Build the frame and methods, measure, then render.
    frame = make_frame(*args.size)
    methods = build_methods(frame, weights, args.threads)
    timings = measure(methods, args.repeats)
    header = header_lines(args, weights_file, frame, weights.descriptor.receptive_radius)
    render = render_markdown if args.markdown else render_text
    print(render(header, timings))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
