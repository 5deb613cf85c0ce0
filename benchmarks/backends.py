"""Measure SESR throughput on every backend and precision beside OpenCV bicubic and dnn_superres.

For each scale (default ×2 and ×4) every method upscales the same synthetic RGB uint8 frame
(default 1920×1080, so 3840×2160 at ×2 and 7680×4320 at ×4):

- OpenCV bicubic: ``cv2.resize`` with ``INTER_CUBIC`` on the RGB frame.
- OpenCV ``dnn_superres`` FSRCNN and ESPCN on the BGR frame, run by ``dnn_superres_worker.py``
  in the interpreter given with ``--peer-python`` (an environment with opencv-contrib 4.x).
- Every shipped SESR variant at that scale, on every backend and precision this machine runs:
  the full path (``upscale_array`` with its default tiles: colour conversion, network on luma,
  bicubic chroma, rounding to uint8) and the network alone on the whole frame's luma.

"plain onnxruntime fp32" is the network alone in one onnxruntime call with the engine's default
settings, the reference for the speed-up columns. Achieved GMAC/s count the weight MACs of the
network (``ModelDescriptor.macs``, or the estimator's count for the peers) per second of the
row's time. The peak is physical cores × clock × MACs per
cycle and core of the precision (``--clock-ghz``, ``--macs-per-cycle``).

After one warm-up per method the repetitions run round-robin, so a change in machine load
affects every method alike, and each method's fastest repetition is reported. Set5 PSNR uses the
protocol of ``upscale.metrics`` (for bicubic: MATLAB-style ``imresize``, as in SR tables).

Results go to stdout and progress to stderr. Exit status: 0 on success, 2 for invalid options
or missing inputs.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import FRAME_SEED, _cpu_model, _frame_size, make_frame  # noqa: E402

from models import load_weights, shipped_models  # noqa: E402
from upscale.backends import Backend, BackendError, Precision, default_threads, open_backend  # noqa: E402
from upscale.color import rgb_to_y  # noqa: E402
from upscale.cpu import physical_cores  # noqa: E402
from upscale.metrics import bicubic_sr_luma, evaluate_folder, network_method  # noqa: E402
from upscale.pipeline import plan_tiles, upscale_array, upscale_luma  # noqa: E402

logger = logging.getLogger("benchmarks.backends")

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PEERS = "../shared/peers/opencv_dnn_superres"
DEFAULT_SET5 = "../shared/datasets/Set5"
EXIT_OK, EXIT_USAGE = 0, 2

# Backend and precision pairs, in table order; onnxruntime fp32 comes first as the reference.
COMBINATIONS = [(Backend.ONNXRUNTIME, Precision.FP32), (Backend.ONNXRUNTIME, Precision.INT8),
                (Backend.OPENVINO, Precision.FP32), (Backend.OPENVINO, Precision.BF16),
                (Backend.OPENVINO, Precision.INT8), (Backend.TORCH, Precision.FP32)]

# MACs per cycle and core: two 256-bit FMA pipes give 16 fp32 FMAs. AVX-512 BF16 dot products
# (VDPBF16PS) do 2 MACs and VNNI (VPDPBUSD) 4 int8 MACs per 32-bit lane in the same pipes.
DEFAULT_MACS_PER_CYCLE = {Precision.FP32: 16, Precision.BF16: 32, Precision.INT8: 64}

# dnn_superres peers: file stem → (setModel algorithm, estimator network name).
PEERS = {"FSRCNN": ("fsrcnn", "fsrcnn"), "ESPCN": ("espcn", "espcn")}


@dataclass(frozen=True)
class Method:
    """One timed way of upscaling the frame, with what the table needs to describe it."""

    scale: int
    label: str
    backend: str
    precision: str
    kind: str
    """``full`` (RGB uint8 in and out) or ``network`` (luma network alone)."""
    run: Callable[[], float | None]
    """Runs once; returns the seconds measured inside a worker, or None to time the call here."""
    macs: int = 0
    psnr: float | None = None


class PeerWorker:
    """``dnn_superres_worker.py`` running in another interpreter, driven over its stdin and stdout."""

    def __init__(self, python: Path, threads: int) -> None:
        worker = Path(__file__).with_name("dnn_superres_worker.py")
        self.process = subprocess.Popen([str(python), str(worker), str(threads)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)

    def request(self, **fields) -> dict:
        self.process.stdin.write(json.dumps(fields) + "\n")
        self.process.stdin.flush()
        reply = json.loads(self.process.stdout.readline() or '{"error": "worker exited"}')
        if "error" in reply:
            raise RuntimeError(f"dnn_superres worker: {reply['error']}")
        return reply

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=_frame_size, default=(1920, 1080), metavar="WxH",
                        help="LR frame size in pixels (default: 1920x1080)")
    parser.add_argument("--scales", nargs="+", type=int, choices=(2, 4), default=[2, 4], metavar="S",
                        help="scales to measure (default: 2 4)")
    parser.add_argument("--variants", nargs="+", default=None, metavar="VARIANT",
                        help="shipped variants to measure (default: all)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per method (default: 5)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for the backends and OpenCV (default: the physical cores)")
    parser.add_argument("--peer-python", type=Path, default=None, metavar="PYTHON",
                        help="interpreter with opencv-contrib-python-headless 4.x for the dnn_superres "
                             "peers; without it the peers are left out")
    parser.add_argument("--peers-dir", type=Path, default=None, metavar="DIR",
                        help=f"folder of the dnn_superres .pb files (default: {DEFAULT_PEERS}, relative "
                             "to the repository root)")
    parser.add_argument("--set5", type=Path, default=None, metavar="DIR",
                        help=f"Set5 HR images for the PSNR column (default: {DEFAULT_SET5}, relative to "
                             "the repository root); --no-psnr leaves the column out")
    parser.add_argument("--no-psnr", action="store_true", help="do not measure PSNR")
    parser.add_argument("--clock-ghz", type=float, default=None,
                        help="core clock for the peak (default: the TSC rate, BogoMIPS / 2 from /proc/cpuinfo)")
    parser.add_argument("--tile-sweep", nargs="+", type=int, default=[], metavar="PX",
                        help="also time the default path (--backend auto) of each variant with these tile "
                             "sides in LR pixels, 0 for the whole frame")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    return parser.parse_args(argv)


def _tsc_ghz() -> float | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("bogomips"):
                    return float(line.split(":", 1)[1]) / 2000.0
    except (OSError, ValueError):
        pass
    return None


def _resolve(given: Path | None, default: str) -> Path:
    return (given if given is not None else REPOSITORY_ROOT / default).resolve()


# Methods.

def _sesr_methods(frame: np.ndarray, scale: int, variants: list[str] | None, threads: int,
                  set5: Path | None, tile_sweep: list[int]) -> list[Method]:
    height, width = frame.shape[:2]
    luma = rgb_to_y(frame / 255.0).astype(np.float32)[None, None]
    methods = []
    for shipped in shipped_models():
        d = shipped.descriptor
        if d.scale != scale or (variants is not None and d.variant not in variants):
            continue
        loaded = load_weights(shipped.path)
        for backend, precision in COMBINATIONS:
            try:
                network = open_backend(loaded, backend, threads, precision)
            except BackendError as error:
                logger.warning("%s %s %s left out: %s", d.variant, backend.value, precision.value, error)
                continue
            if (network.backend, network.precision) != (backend, precision):
                logger.warning("%s %s %s left out: this machine runs it as %s %s", d.variant, backend.value,
                               precision.value, network.backend.value, network.precision.value)
                continue
            psnr = None
            if set5 is not None:
                method = network_method(lambda lr, network=network: upscale_luma(lr, network))
                psnr = evaluate_folder(set5, method, scale).psnr
            label = f"{d.variant} ×{scale}"
            methods.append(Method(scale, label, backend.value, precision.value, "full",
                                  lambda network=network: _untimed(upscale_array(frame, network)),
                                  d.macs(width, height), psnr))
            methods.append(Method(scale, label, backend.value, precision.value, "network",
                                  lambda network=network: _untimed(network(luma)), d.macs(width, height), psnr))
            if (backend, precision) == (Backend.ONNXRUNTIME, Precision.FP32):
                plain = open_backend(loaded, backend, 0, precision)
                methods.append(Method(scale, label, "onnxruntime (plain)", "fp32", "network",
                                      lambda plain=plain: _untimed(plain(luma)), d.macs(width, height), psnr))

        # Tile sides for the default path, all in one round-robin with the rows above.
        default = open_backend(loaded, Backend.AUTO, threads)
        for tile in tile_sweep:
            methods.append(Method(scale, f"{d.variant} ×{scale}", f"{default.backend.value} (auto)",
                                  default.precision.value, f"full, tile {tile or 'whole'}",
                                  lambda tile=tile: _untimed(upscale_array(frame, default, tile=tile)),
                                  d.macs(width, height)))
    return methods


def _untimed(_: object) -> None:
    return None


def _peer_methods(frame: np.ndarray, scale: int, worker: PeerWorker, peers_dir: Path, scratch: Path,
                  set5: Path | None) -> list[Method]:
    import estimator

    height, width = frame.shape[:2]
    frame_file = scratch / "frame_bgr.npy"
    if not frame_file.exists():
        np.save(frame_file, np.ascontiguousarray(frame[..., ::-1]))
    methods = []
    for stem, (algorithm, estimator_name) in PEERS.items():
        name = f"{stem}_x{scale}"
        worker.request(op="load", name=name, path=str(peers_dir / f"{name}.pb"), algorithm=algorithm, scale=scale)
        psnr = None
        if set5 is not None:
            psnr = evaluate_folder(set5, _peer_sr_method(worker, name, scratch), scale).psnr
        macs = estimator.build_network(estimator_name, scale, width, height).macs
        methods.append(Method(scale, f"OpenCV dnn_superres {stem} ×{scale}", "OpenCV dnn", "fp32", "full",
                              lambda name=name: worker.request(op="time", name=name, input=str(frame_file))["seconds"],
                              macs, psnr))
    return methods


def _peer_sr_method(worker: PeerWorker, name: str, scratch: Path):
    def method(lr_rgb: np.ndarray, scale: int) -> np.ndarray:
        source, target = scratch / "lr.npy", scratch / "sr.npy"
        np.save(source, np.ascontiguousarray(lr_rgb[..., ::-1]))
        worker.request(op="upsample", name=name, input=str(source), output=str(target))
        sr_rgb = np.load(target)[..., ::-1]
        return rgb_to_y(sr_rgb / 255.0) * 255.0

    return method


def _bicubic_method(frame: np.ndarray, scale: int, set5: Path | None) -> Method:
    height, width = frame.shape[:2]
    psnr = evaluate_folder(set5, bicubic_sr_luma, scale).psnr if set5 is not None else None
    return Method(scale, f"OpenCV bicubic ×{scale}", "OpenCV", "—", "full",
                  lambda: _untimed(cv2.resize(frame, (width * scale, height * scale), interpolation=cv2.INTER_CUBIC)),
                  0, psnr)


# Measurement.

def measure(methods: list[Method], repeats: int) -> list[float]:
    """Warm up every method once, then time them round-robin; returns the fastest seconds per method.

    The fastest repetition is the one least disturbed by other processes on a shared machine,
    while a median of a few repetitions still moves with their load.
    """
    for method in methods:
        logger.info("warm-up: %s %s %s %s", method.label, method.backend, method.precision, method.kind)
        method.run()
    seconds: list[list[float]] = [[] for _ in methods]
    for repeat in range(1, repeats + 1):
        logger.info("repetition %d of %d", repeat, repeats)
        for index, method in enumerate(methods):
            start = time.perf_counter()
            inside = method.run()
            seconds[index].append(inside if inside is not None else time.perf_counter() - start)
    return [min(times) for times in seconds]


# Rendering.

def _rows(methods: list[Method], fastest: list[float], peak_gmacs: dict[str, float]) -> list[list[str]]:
    rows = []
    for scale in sorted({m.scale for m in methods}):
        indices = [i for i, m in enumerate(methods) if m.scale == scale]
        plain = {methods[i].label: fastest[i] for i in indices if methods[i].backend == "onnxruntime (plain)"}
        reference_full = {methods[i].label: fastest[i] for i in indices
                          if (methods[i].backend, methods[i].precision, methods[i].kind) == ("onnxruntime", "fp32", "full")}
        fp32_psnr = {methods[i].label: methods[i].psnr for i in indices
                     if (methods[i].backend, methods[i].precision) == ("onnxruntime", "fp32")}
        m5_full = reference_full.get(f"sesr-m5 ×{scale}")
        for i in indices:
            m, seconds = methods[i], fastest[i]
            if m.kind.startswith("full"):
                reference = reference_full.get(m.label, m5_full)
                speedup = f"{reference / seconds:.2f}" if reference else "—"
            else:
                speedup = f"{plain[m.label] / seconds:.2f}" if m.label in plain else "—"
            gmacs = m.macs / seconds / 1e9 if m.macs else None
            peak = peak_gmacs.get(m.precision)
            psnr = f"{m.psnr:.3f}" if m.psnr is not None else "—"
            reference_psnr = fp32_psnr.get(m.label)
            delta = f"{m.psnr - reference_psnr:+.3f}" if m.psnr is not None and reference_psnr is not None else "—"
            rows.append([m.label, m.backend, m.precision, m.kind, f"{seconds:.4g}", f"{1 / seconds:.2f}", speedup,
                         f"{gmacs:.1f}" if gmacs else "—",
                         f"{gmacs / peak:.0%}" if gmacs and peak else "—", psnr, delta])
    return rows


HEADERS = ["method", "backend", "precision", "path", "s/frame", "FPS", "speed-up", "GMAC/s", "of peak",
           "Set5 dB", "Δ dB"]


def header_lines(args: argparse.Namespace, threads: int, clock_ghz: float | None, cores: int,
                 peak_gmacs: dict[str, float], frame: np.ndarray, peer_version: str | None) -> list[str]:
    height, width = frame.shape[:2]
    import onnxruntime

    versions = [f"sesr {importlib.metadata.version('sesr')}", f"Python {platform.python_version()}",
                f"numpy {np.__version__}", f"OpenCV {cv2.__version__}", f"onnxruntime {onnxruntime.__version__}"]
    try:
        versions.append(f"openvino {importlib.metadata.version('openvino')}")
    except importlib.metadata.PackageNotFoundError:
        versions.append("openvino not installed")
    try:
        versions.append(f"torch {importlib.metadata.version('torch')}")
    except importlib.metadata.PackageNotFoundError:
        versions.append("torch not installed")
    if peer_version:
        versions.append(f"dnn_superres peers: opencv-contrib {peer_version}")
    peak_text = ", ".join(f"{name} {value:.0f}" for name, value in peak_gmacs.items())
    tiles = plan_tiles(height, width, None, 9).count
    return [
        f"command: python {shlex.join(sys.argv)}",
        f"CPU: {_cpu_model()}, {cores} physical cores usable; threads {threads}",
        f"versions: {', '.join(versions)}",
        f"frame: {width}×{height} synthetic RGB uint8 (seed {FRAME_SEED}); full path in {tiles} tile(s)",
        f"peak GMAC/s = {cores} cores × {clock_ghz:.3g} GHz × MACs per cycle and core "
        f"({', '.join(f'{p.value} {n}' for p, n in DEFAULT_MACS_PER_CYCLE.items())}): {peak_text}"
        if clock_ghz else "peak: unknown clock (pass --clock-ghz)",
        f"timing: 1 warm-up per method, then {args.repeats} repetitions round-robin; fastest wall-clock seconds",
        "speed-up: full rows against the same variant's onnxruntime fp32 full path (bicubic and peers against "
        "sesr-m5's); network rows against plain onnxruntime fp32 (one call, engine defaults)",
    ]


def render(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = [f"- {line}" for line in header] + ["", "| " + " | ".join(HEADERS) + " |",
                                                     "| " + " | ".join("---" for _ in HEADERS) + " |"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
    lines = [f"# {line}" for line in header]
    lines.append("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths)))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    # Check options and inputs.
    set5 = None if args.no_psnr else _resolve(args.set5, DEFAULT_SET5)
    peers_dir = _resolve(args.peers_dir, DEFAULT_PEERS)
    problems = []
    if args.repeats < 1:
        problems.append(f"--repeats must be at least 1, got {args.repeats}")
    if any(tile < 0 for tile in args.tile_sweep):
        problems.append(f"--tile-sweep sides must be 0 or positive, got {args.tile_sweep}")
    if args.threads is not None and args.threads < 1:
        problems.append(f"--threads must be at least 1, got {args.threads}")
    if set5 is not None and not set5.is_dir():
        problems.append(f"Set5 folder not found: {set5} (pass --set5 DIR or --no-psnr)")
    if args.peer_python is not None and not peers_dir.is_dir():
        problems.append(f"dnn_superres folder not found: {peers_dir} (pass --peers-dir DIR)")
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    threads = args.threads or default_threads()
    cv2.setNumThreads(threads)
    cores = physical_cores()
    clock_ghz = args.clock_ghz or _tsc_ghz()
    peak_gmacs = {p.value: cores * clock_ghz * n for p, n in DEFAULT_MACS_PER_CYCLE.items()} if clock_ghz else {}

    # Build every method, then measure them side by side.
    frame = make_frame(*args.size)
    worker = PeerWorker(args.peer_python, threads) if args.peer_python is not None else None
    peer_version = worker.request(op="version")["opencv"] if worker else None
    try:
        with tempfile.TemporaryDirectory(prefix="sesr-bench-") as scratch:
            methods: list[Method] = []
            for scale in args.scales:
                methods.append(_bicubic_method(frame, scale, set5))
                if worker is not None:
                    methods += _peer_methods(frame, scale, worker, peers_dir, Path(scratch), set5)
                methods += _sesr_methods(frame, scale, args.variants, threads, set5, args.tile_sweep)
            fastest = measure(methods, args.repeats)
    finally:
        if worker is not None:
            worker.close()

    header = header_lines(args, threads, clock_ghz, cores, peak_gmacs, frame, peer_version)
    print(render(header, _rows(methods, fastest, peak_gmacs), args.markdown))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
