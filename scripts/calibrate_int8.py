"""Calibrate int8 activation ranges for SESR weights and measure the PSNR they cost.

The weights are the shipped ones (``--models``, ``--scales``) or any collapsed weights files
(``--weights``). For each weights file:

1. Split the training images as ``sesr train`` does: every 20th image (sorted by folder, then
   name) is held out, the others are calibration images. The evaluation sets are never used
   for choosing anything.
2. Run the fp32 network on the LR luma of every ``--calibration-step``-th calibration image and
   record each activation's range at every ``--percentiles`` value.
3. Keep the percentile whose int8 network scores the highest PSNR on the held-out images.
4. Score fp32, bf16 and int8 on the evaluation sets (default Set5, Set14, BSD100) and write the
   ranges, the command and the scores to ``<weights>.int8.json`` beside the weights file.

int8 and bf16 run on OpenVINO, fp32 on onnxruntime, each on whole images with mirrored borders,
as ``sesr upscale`` runs them. Example, from the repository root::

    python scripts/calibrate_int8.py --models sesr-m5 --scales 2
    python scripts/calibrate_int8.py --weights runs/m5-x2/sesr-m5-x2.safetensors

``sesr upscale --weights FILE --precision int8`` uses ``FILE``'s calibration only when it was
made for exactly those weights.

Results go to stdout and progress to stderr. Exit status: 0 on success, 1 when an image cannot
be read, 2 for invalid options or missing folders.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

import numpy as np

from models import SCALES, WeightsFileError, load_weights, shipped_models
from models.data import DatasetError, list_images, make_pair, split_holdout
from upscale.backends import Precision, open_backend
from upscale.int8 import Int8Calibration, calibration_path, collect_ranges, save_calibration, weights_digest
from upscale.metrics import evaluate_folder, network_method, psnr
from upscale.pipeline import upscale_luma

logger = logging.getLogger("scripts.calibrate_int8")

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ("../shared/datasets/T91", "../shared/datasets/BSD200")
DEFAULT_EVALUATION = ("../shared/datasets/Set5", "../shared/datasets/Set14", "../shared/datasets/BSD100")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", type=Path, default=None, metavar="DIR",
                        help=f"training image folders; default: {' '.join(DEFAULT_DATA)}, relative to the repository root")
    parser.add_argument("--evaluation", nargs="+", type=Path, default=None, metavar="DIR",
                        help=f"evaluation folders; default: {' '.join(DEFAULT_EVALUATION)}, relative to the repository root")
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--models", nargs="+", default=None, metavar="VARIANT",
                        help="shipped variants to calibrate (default: every shipped weights file)")
    chosen.add_argument("--weights", nargs="+", type=Path, default=None, metavar="FILE",
                        help="collapsed weights files to calibrate instead of shipped ones; each "
                             "FILE.safetensors gets FILE.int8.json beside it")
    parser.add_argument("--scales", nargs="+", type=int, choices=SCALES, default=list(SCALES), metavar="S",
                        help="scales to calibrate, 2 or 4 (default: 2 4)")
    parser.add_argument("--percentiles", nargs="+", type=float, default=[100.0, 99.999, 99.99, 99.9],
                        help="candidate range percentiles (default: 100 99.999 99.99 99.9)")
    parser.add_argument("--calibration-step", type=int, default=4,
                        help="use every n-th calibration image (default: 4)")
    parser.add_argument("--dry-run", action="store_true", help="print the results without writing files")
    return parser.parse_args(argv)


def _folders(given: list[Path] | None, defaults: tuple[str, ...]) -> list[Path]:
    folders = [REPOSITORY_ROOT / d for d in defaults] if given is None else given
    missing = [str(folder) for folder in folders if not folder.is_dir()]
    if missing:
        raise FileNotFoundError(f"folder not found: {', '.join(missing)}")
    return [folder.resolve() for folder in folders]


def _held_out_psnr(network, pairs, scale: int) -> float:
    """Mean PSNR on held-out luma pairs, rounded to 8 bits, ``scale`` pixels cut at each border."""
    scores = []
    for pair in pairs:
        sr = np.clip(upscale_luma(pair.lr, network), 0.0, 1.0)
        cut = (slice(scale, -scale), slice(scale, -scale))
        scores.append(psnr(np.round(sr * 255.0)[cut], np.round(pair.hr * 255.0)[cut], 255.0))
    return float(np.mean(scores))


def calibrate(path: Path, data: list[Path], evaluation: list[Path], args: argparse.Namespace) -> Int8Calibration:
    """Calibrate one weights file and score it; see the module docstring for the steps."""
    weights = load_weights(path)
    d = weights.descriptor
    files = list_images(data)
    calibration_files, held_out = split_holdout(files)
    calibration_files = calibration_files[::args.calibration_step]

    # Ranges at every candidate percentile, then the best on the held-out images.
    logger.info("%s ×%d: ranges from %d images", d.variant, d.scale, len(calibration_files))
    lumas = [make_pair(f, d.scale).lr for f in calibration_files]
    candidates = collect_ranges(weights, lumas, tuple(args.percentiles))
    held_pairs = [make_pair(f, d.scale) for f in held_out]
    selection = {}
    for percentile, ranges in candidates.items():
        candidate = Int8Calibration(d.variant, d.scale, weights_digest(weights), ranges)
        network = open_backend(weights, "openvino", precision=Precision.INT8, calibration=candidate)
        selection[percentile] = _held_out_psnr(network, held_pairs, d.scale)
        logger.info("  percentile %g: held-out PSNR %.3f dB", percentile, selection[percentile])
    best = max(selection, key=selection.get)
    fp32_held_out = _held_out_psnr(open_backend(weights, "onnxruntime", precision=Precision.FP32), held_pairs, d.scale)

    # Scores on the evaluation sets at each precision.
    calibration = Int8Calibration(d.variant, d.scale, weights_digest(weights), candidates[best])
    networks = {"fp32": open_backend(weights, "onnxruntime", precision=Precision.FP32),
                "bf16": open_backend(weights, "openvino", precision=Precision.BF16),
                "int8": open_backend(weights, "openvino", precision=Precision.INT8, calibration=calibration)}
    scores: dict[str, dict[str, float]] = {}
    for folder in evaluation:
        scores[folder.name] = {}
        for label, network in networks.items():
            method = network_method(lambda luma, network=network: upscale_luma(luma, network))
            scores[folder.name][label] = round(evaluate_folder(folder, method, d.scale).psnr, 3)
        logger.info("  %s: %s", folder.name, scores[folder.name])

    record = {
        "command": f"python {shlex.join(sys.argv)}",
        "calibration_images": len(calibration_files),
        "data": [folder.name for folder in data],
        "statistic": f"percentile {best:g} of each activation, pooled over the calibration images",
        "held_out_psnr": {"fp32": round(fp32_held_out, 3),
                          **{f"int8 p{p:g}": round(v, 3) for p, v in selection.items()}},
        "evaluation_psnr": scores,
        "engines": "fp32: onnxruntime; bf16 and int8: OpenVINO CPU plugin",
    }
    return Int8Calibration(d.variant, d.scale, calibration.weights_sha256, calibration.ranges, record)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        if args.calibration_step < 1:
            raise ValueError(f"--calibration-step must be at least 1, got {args.calibration_step}")
        if any(not 50.0 < p <= 100.0 for p in args.percentiles):
            raise ValueError(f"--percentiles must lie in (50, 100], got {args.percentiles}")
        data = _folders(args.data, DEFAULT_DATA)
        evaluation = _folders(args.evaluation, DEFAULT_EVALUATION)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE

    if args.weights is not None:
        missing = [str(path) for path in args.weights if not path.is_file()]
        if missing:
            print(f"error: weights file not found: {', '.join(missing)}", file=sys.stderr)
            return EXIT_USAGE
        chosen = list(args.weights)
    else:
        chosen = [m.path for m in shipped_models() if m.descriptor.scale in args.scales
                  and (args.models is None or m.descriptor.variant in args.models)]
    if not chosen:
        print("error: no shipped weights match --models and --scales", file=sys.stderr)
        return EXIT_USAGE
    print("| model | scale | percentile | dataset | fp32 dB | bf16 Δ dB | int8 Δ dB |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: |")
    for weights_file in chosen:
        try:
            calibration = calibrate(weights_file, data, evaluation, args)
        except WeightsFileError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
        except DatasetError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_FAILED
        percentile = calibration.record["statistic"].split()[1]
        for dataset, score in calibration.record["evaluation_psnr"].items():
            print(f"| {calibration.variant} | ×{calibration.scale} | {percentile} | {dataset} | {score['fp32']:.3f} "
                  f"| {score['bf16'] - score['fp32']:+.3f} | {score['int8'] - score['fp32']:+.3f} |", flush=True)
        if not args.dry_run:
            save_calibration(calibration, calibration_path(weights_file))
            logger.info("wrote %s", calibration_path(weights_file))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
