"""Measure PSNR and SSIM of bicubic and SESR upscaling on standard SR test sets.

The protocol is the one in ``upscale.metrics``: modcrop, MATLAB bicubic LR in RGB rounded to
uint8, BT.601 luma rounded to 0..255, ``scale`` pixels cut at each border. Each network runs on
the whole LR luma image in one call, without tiling.

With ``--peers`` the OpenCV ``dnn_superres`` models (FSRCNN, FSRCNN-small, ESPCN, LapSRN) join
the table; they need opencv-contrib 4.x, see ``benchmarks/peers.py``. Every row gives the
method's parameters and MACs for a 1280×720 output, and ``--plot`` draws PSNR against MACs.

Examples, from the repository root::

    python benchmarks/quality.py --scales 2 --markdown
    python benchmarks/quality.py --peers --markdown --plot docs/psnr-vs-macs.png

Results go to stdout and progress to stderr. Exit status: 0 on success, 1 when an image or
weights file cannot be read, 2 for invalid options.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.metadata
import logging
import platform
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models import (SCALES, CollapsedWeights, MissingWeightsError, UnknownModelError, WeightsFileError,
                    load_model, load_weights, save_weights, shipped_models)
from models.data import DatasetError
from models.zoo import weights_path
from upscale.backends import Backend, BackendError, open_backend
from upscale.pipeline import upscale_luma
from upscale.metrics import FolderScore, SrMethod, bicubic_sr_luma, evaluate_folder, network_method

from peers import Peer, PeerError, find_peers, peer_method

logger = logging.getLogger("benchmarks.quality")

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATASETS = ("../shared/datasets/Set5", "../shared/datasets/Set14", "../shared/datasets/BSD100")
DEFAULT_PEERS = "../shared/peers/opencv_dnn_superres"
OUTPUT_SIZE = (1280, 720)
"""Output frame (width, height) at which parameters and MACs are compared, as in the SESR paper."""

# Published SESR ×2 PSNR (dB) on Set5 and Set14, trained on DIV2K (Bhardwaj et al., MLSys 2022:
# Set5 as quoted from the paper's table, Set14 read off its PSNR-versus-MACs figure).
PUBLISHED_X2 = {
    "sesr-m3": {"Set5": 37.21, "Set14": 32.70},
    "sesr-m5": {"Set5": 37.39, "Set14": 32.84},
    "sesr-m7": {"Set5": 37.47, "Set14": 32.91},
    "sesr-m11": {"Set5": 37.58, "Set14": 33.03},
    "sesr-xl": {"Set5": 37.77, "Set14": 33.24},
}
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """An invalid combination of options."""


@dataclass(frozen=True)
class Candidate:
    """One network under test: a label for the table, its weights and where they came from."""

    label: str
    weights: CollapsedWeights
    path: Path


@dataclass(frozen=True)
class Row:
    """Scores of one method at one scale, one ``FolderScore`` per dataset in option order."""

    scale: int
    method: str
    scores: tuple[FolderScore, ...]
    parameters: int | None = None
    """Stored numbers of the network; None for bicubic."""
    macs: int | None = None
    """Weight MACs for one ``OUTPUT_SIZE`` frame; None for bicubic."""
    kind: str = "bicubic"
    """bicubic, sesr or peer."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", type=Path, default=None, metavar="DIR",
                        help="folders of HR images; default: "
                             f"{' '.join(DEFAULT_DATASETS)}, relative to the repository root")
    parser.add_argument("--scales", nargs="+", type=int, choices=SCALES, default=list(SCALES), metavar="S",
                        help="upscaling factors to score, 2 or 4 (default: 2 4)")
    parser.add_argument("--models", nargs="*", default=None, metavar="VARIANT",
                        help="shipped variants to score at every --scales value, for example "
                             "sesr-m5; default: every shipped weights file; give the option with "
                             "no names to score none")
    parser.add_argument("--weights", nargs="+", type=Path, default=[], metavar="FILE",
                        help="extra collapsed-weights files, each scored at its own scale")
    parser.add_argument("--peers", nargs="?", type=Path, const=Path(DEFAULT_PEERS), default=None,
                        metavar="DIR",
                        help="also score the dnn_superres models (NAME_xS.pb) in DIR; without DIR: "
                             f"{DEFAULT_PEERS}, relative to the repository root; needs "
                             "opencv-contrib 4.x")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                        help="draw PSNR against MACs per 1280×720 output (needs matplotlib)")
    parser.add_argument("--plot-dataset", default="Set14", metavar="NAME",
                        help="dataset whose PSNR the plot shows (default: Set14)")
    parser.add_argument("--backend", choices=[b.value for b in Backend], default=Backend.ONNXRUNTIME.value,
                        help="inference engine (default: onnxruntime)")
    parser.add_argument("--threads", type=int, default=0,
                        help="intra-op threads for the backend; 0 keeps the engine default")
    parser.add_argument("--per-image", action="store_true", help="also list every image's scores")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--record", action="store_true",
                        help="write each scored weights file's results into its training record "
                             "(shown by `sesr models`)")
    return parser.parse_args(argv)


# Inputs.

def _resolve_datasets(requested: list[Path] | None) -> list[Path]:
    """Resolve dataset folders: defaults against the repository root, given paths against the cwd."""
    folders = [REPOSITORY_ROOT / d for d in DEFAULT_DATASETS] if requested is None else requested
    folders = [folder.resolve() for folder in folders]
    missing = [str(folder) for folder in folders if not folder.is_dir()]
    if missing:
        raise UsageError(f"dataset folder not found: {', '.join(missing)}")
    return folders


def _collect_candidates(models: list[str] | None, weight_files: list[Path],
                        scales: list[int]) -> list[Candidate]:
    """Load the networks to score, shipped ones first, each only at a scale in ``scales``."""
    candidates = []
    if models is None:
        for shipped in shipped_models():
            if shipped.descriptor.scale in scales:
                candidates.append(Candidate(shipped.descriptor.variant, load_weights(shipped.path),
                                            shipped.path))
    else:
        for variant in models:
            for scale in scales:
                try:
                    weights = load_model(variant, scale)
                except (UnknownModelError, MissingWeightsError) as error:
                    raise UsageError(str(error)) from None
                candidates.append(Candidate(weights.descriptor.variant, weights,
                                            weights_path(variant, scale)))

    for path in weight_files:
        weights = load_weights(path)
        scale = weights.descriptor.scale
        if scale not in scales:
            raise UsageError(f"{path} contains ×{scale} weights but --scales is "
                             f"{' '.join(map(str, scales))}; add {scale} to --scales")
        candidates.append(Candidate(f"{weights.descriptor.variant} ({path.name})", weights, path.resolve()))
    return candidates


def _luma_method(weights: CollapsedWeights, backend: str, threads: int) -> SrMethod:
    """Wrap ``weights`` as an ``SrMethod`` that runs the network once on the whole LR luma image.

    The luma is mirrored at the borders first, as ``sesr upscale`` does.
    """
    network = open_backend(weights, backend, threads)
    return network_method(lambda luma: upscale_luma(luma, network))


# Measurement.

def _lr_size(scale: int) -> tuple[int, int]:
    return OUTPUT_SIZE[0] // scale, OUTPUT_SIZE[1] // scale


def measure(datasets: list[Path], scales: list[int], candidates: list[Candidate], peers: list[Peer],
            backend: str, threads: int) -> list[Row]:
    """Score bicubic, every peer and every candidate on every dataset, scale by scale."""
    rows = []
    for scale in sorted(set(scales)):
        methods: list[tuple[Row, SrMethod]] = [(Row(scale, "bicubic", ()), bicubic_sr_luma)]
        for peer in peers:
            if peer.scale == scale:
                row = Row(scale, peer.label, (), peer.parameters, peer.macs(*_lr_size(scale)), "peer")
                methods.append((row, peer_method(peer, threads)))
        for candidate in candidates:
            descriptor = candidate.weights.descriptor
            if descriptor.scale == scale:
                row = Row(scale, candidate.label, (), descriptor.parameters,
                          descriptor.macs(*_lr_size(scale)), "sesr")
                methods.append((row, _luma_method(candidate.weights, backend, threads)))
        for row, method in methods:
            scores = []
            for folder in datasets:
                logger.info("scoring %s ×%d on %s", row.method, scale, folder.name)
                scores.append(evaluate_folder(folder, method, scale))
            rows.append(dataclasses.replace(row, scores=tuple(scores)))
    return rows


# Rendering.

def _versions(backend: str) -> str:
    parts = [f"sesr {importlib.metadata.version('sesr')}", f"Python {platform.python_version()}",
             f"numpy {np.__version__}", f"OpenCV {cv2.__version__}"]
    if backend == Backend.ONNXRUNTIME.value:
        import onnxruntime

        parts.append(f"onnxruntime {onnxruntime.__version__}")
    else:
        import torch

        parts.append(f"torch {torch.__version__}")
    return ", ".join(parts)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def header_lines(args: argparse.Namespace, datasets: list[Path], candidates: list[Candidate],
                 peers: list[Peer]) -> list[str]:
    """Describe how the numbers were made: command, versions, backend, protocol and inputs."""
    lines = [
        f"command: python {shlex.join(sys.argv)}",
        f"working directory: {Path.cwd()}",
        f"versions: {_versions(args.backend)}",
        f"backend: {args.backend}, threads {args.threads or 'default'}, whole image (no tiling)",
        "protocol: modcrop to a multiple of s; LR = MATLAB bicubic imresize(HR, 1/s) in RGB, "
        "rounded to uint8; PSNR and SSIM (11×11 Gaussian, sigma 1.5, valid region) on BT.601 "
        "luma rounded to 0..255, s pixels cut at each border",
        f"datasets: {', '.join(str(folder) for folder in datasets)}",
        f"cost: parameters and weight MACs for one {OUTPUT_SIZE[0]}×{OUTPUT_SIZE[1]} output frame "
        "(LR input 1280/s × 720/s); peer costs counted from the layers in their files",
    ]
    for peer in peers:
        lines.append(f"peer: {peer.label} ×{peer.scale} (dnn_superres '{peer.algorithm}'): "
                     f"{peer.path} (sha256 {_sha256(peer.path)[:16]})")
    for candidate in candidates:
        lines.append(f"weights: {candidate.label} ×{candidate.weights.descriptor.scale}: "
                     f"{candidate.path} (sha256 {_sha256(candidate.path)[:16]})")
    return lines


def _cell(score: FolderScore) -> str:
    return f"{score.psnr:.2f} / {score.ssim:.4f}"


def _cost_cells(row: Row) -> tuple[str, str]:
    if row.parameters is None or row.macs is None:
        return "—", "—"
    return f"{row.parameters:,}", f"{row.macs / 1e9:.2f}"


def render_markdown(header: list[str], datasets: list[Path], rows: list[Row], per_image: bool) -> str:
    lines = ["## SR quality: PSNR (dB) / SSIM on luma", ""]
    lines += [f"- {line}" for line in header]
    lines += ["", "| scale | method | parameters | GMACs (720p out) | "
              + " | ".join(folder.name for folder in datasets) + " |",
              "| --- | --- | ---: | ---: |" + " --- |" * len(datasets)]
    for row in rows:
        lines.append(f"| ×{row.scale} | {row.method} | " + " | ".join(_cost_cells(row)) + " | "
                     + " | ".join(_cell(s) for s in row.scores) + " |")

    if per_image:
        lines += ["", "| scale | method | dataset | image | PSNR (dB) | SSIM |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for row in rows:
            for folder, score in zip(datasets, row.scores):
                for image in score.images:
                    lines.append(f"| ×{row.scale} | {row.method} | {folder.name} | {image.name} "
                                 f"| {image.psnr:.2f} | {image.ssim:.4f} |")
    return "\n".join(lines)


def render_text(header: list[str], datasets: list[Path], rows: list[Row], per_image: bool) -> str:
    lines = [f"# {line}" for line in header]
    method_width = max(len("method"), *(len(row.method) for row in rows))
    cell_width = max(len("00.00 / 0.0000"), *(len(folder.name) for folder in datasets))
    lines.append(f"{'scale':<6}{'method':<{method_width + 2}}{'params':>9}{'GMACs':>8}"
                 + "".join(f"{folder.name:>{cell_width + 2}}" for folder in datasets))
    for row in rows:
        parameters, gmacs = _cost_cells(row)
        lines.append(f"{'×' + str(row.scale):<6}{row.method:<{method_width + 2}}{parameters:>9}{gmacs:>8}"
                     + "".join(f"{_cell(s):>{cell_width + 2}}" for s in row.scores))

    if per_image:
        for row in rows:
            for folder, score in zip(datasets, row.scores):
                for image in score.images:
                    lines.append(f"×{row.scale} {row.method} {folder.name}/{image.name}: "
                                 f"{image.psnr:.2f} dB, SSIM {image.ssim:.4f}")
    return "\n".join(lines)


def plot_psnr_vs_macs(rows: list[Row], datasets: list[Path], dataset: str, path: Path) -> None:
    """Draw one panel per scale: PSNR on ``dataset`` against GMACs per 720p output, log x axis.

    Bicubic is a horizontal line; published SESR ×2 points (trained on DIV2K) are hollow.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    column = [folder.name for folder in datasets].index(dataset)
    scales = sorted({row.scale for row in rows})
    figure, axes = plt.subplots(1, len(scales), figsize=(6.4 * len(scales), 4.8), squeeze=False)
    for axis, scale in zip(axes[0], scales):
        for row in (r for r in rows if r.scale == scale):
            psnr = row.scores[column].psnr
            if row.kind == "bicubic":
                axis.axhline(psnr, color="grey", linestyle="--", linewidth=1)
                axis.annotate("bicubic", (0.01, psnr), xycoords=("axes fraction", "data"),
                              textcoords="offset points", xytext=(0, 3), color="grey", fontsize=8)
                continue
            style = {"sesr": ("o", "tab:red"), "peer": ("s", "tab:blue")}[row.kind]
            axis.scatter(row.macs / 1e9, psnr, marker=style[0], color=style[1], zorder=3)
            # SESR points sit close together, so they get short labels (M3, M5, ...).
            label = row.method.removeprefix("sesr-").upper() if row.kind == "sesr" else row.method
            axis.annotate(label, (row.macs / 1e9, psnr), textcoords="offset points",
                          xytext=(5, -10 if row.kind == "peer" else 4), fontsize=8)
            published = PUBLISHED_X2.get(row.method, {}).get(dataset) if scale == 2 else None
            if published is not None:
                axis.scatter(row.macs / 1e9, published, marker="o", facecolors="none",
                             edgecolors="tab:red", zorder=3)
        axis.set_xscale("log")
        axis.set_xlabel(f"GMACs per {OUTPUT_SIZE[0]}×{OUTPUT_SIZE[1]} output (log scale)")
        axis.set_ylabel(f"PSNR on {dataset} luma (dB)")
        axis.set_title(f"×{scale}: filled = measured here, hollow = published SESR (DIV2K)"
                       if scale == 2 else f"×{scale}: measured here")
        axis.grid(True, which="both", linewidth=0.3)
    figure.tight_layout()
    temporary = path.with_name(path.name + ".partial.png")
    figure.savefig(temporary, dpi=120)
    plt.close(figure)
    temporary.replace(path)


def record_results(candidates: list[Candidate], datasets: list[Path], rows: list[Row]) -> None:
    """Store each candidate's per-dataset PSNR/SSIM in its weights file's training record."""
    for candidate in candidates:
        scale = candidate.weights.descriptor.scale
        row = next(r for r in rows if r.method == candidate.label and r.scale == scale)
        evaluation = {folder.name: {"psnr": round(score.psnr, 3), "ssim": round(score.ssim, 4),
                                    "images": len(score.images)}
                      for folder, score in zip(datasets, row.scores)}
        training = {**candidate.weights.training, "evaluation": evaluation,
                    "evaluation_command": f"python {shlex.join(sys.argv)}"}
        if "Set5" in evaluation:
            training["set5_psnr"] = evaluation["Set5"]["psnr"]
        save_weights(dataclasses.replace(candidate.weights, training=training), candidate.path)
        logger.info("recorded results in %s", candidate.path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    # Check options and load every input before the first measurement.
    try:
        if args.threads < 0:
            raise UsageError(f"--threads must be 0 or more, got {args.threads}")
        datasets = _resolve_datasets(args.datasets)
        if args.plot is not None and args.plot_dataset not in [folder.name for folder in datasets]:
            raise UsageError(f"--plot-dataset {args.plot_dataset} is not one of the dataset folders")
        candidates = _collect_candidates(args.models, args.weights, args.scales)
        peers = []
        if args.peers is not None:
            folder = REPOSITORY_ROOT / args.peers if args.peers == Path(DEFAULT_PEERS) else args.peers
            peers = find_peers(folder.resolve(), args.scales)
    except (UsageError, PeerError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except WeightsFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED

    # Measure, then render.
    try:
        rows = measure(datasets, args.scales, candidates, peers, args.backend, args.threads)
    except (BackendError, PeerError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    header = header_lines(args, datasets, candidates, peers)
    render = render_markdown if args.markdown else render_text
    print(render(header, datasets, rows, args.per_image))
    if args.plot is not None:
        plot_psnr_vs_macs(rows, datasets, args.plot_dataset, args.plot)
        logger.info("wrote %s", args.plot)
    if args.record:
        record_results(candidates, datasets, rows)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
