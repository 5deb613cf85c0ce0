"""Measure how far int8 output moves from fp32 on sharp synthetic images and on a photo.

Inputs are 8-bit luma images made here: black anti-aliased text on white (200×120), a 1-pixel
checkerboard and uniform noise (64×64 each), and the first image of ``--photos`` as the LR
photo of the SR protocol. Each runs on the whole image with mirrored borders, as
``sesr upscale`` runs it. Rows compare int8 variants with onnxruntime fp32 in 8-bit levels:

- ``shipped``: the calibration file beside the shipped weights;
- ``shipped ×k``: every range of that file widened k times, which trades resolution on
  photos for headroom on sharp edges;
- ``p100``: exact minimum and maximum over ``--data`` training images (the held-out split of
  ``scripts/calibrate_int8.py`` excluded), when ``--data`` is given.

Example, from the repository root::

    python benchmarks/int8_sharp_inputs.py --model sesr-m5 --scale 2 \\
        --data ../shared/datasets/T91 ../shared/datasets/BSD200 --photos ../shared/datasets/Set5

Results go to stdout as a Markdown table. Exit status: 0 on success, 2 for invalid options or
missing folders.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import cv2
import numpy as np

from models import SCALES, load_model
from models.data import list_images, make_pair
from upscale.backends import open_backend
from upscale.int8 import Int8Calibration, collect_ranges, find_calibration
from upscale.pipeline import upscale_luma

# The split of scripts/calibrate_int8.py: every 20th training image is held out.
HOLDOUT_EVERY = 20


def sharp_images() -> dict[str, np.ndarray]:
    """Return the synthetic test images as 2-D float32 luma / 255."""
    text = np.full((120, 200), 255, np.uint8)
    for line, baseline in enumerate(range(20, 120, 22)):
        cv2.putText(text, "Sharp text 0123 Hello", (2, baseline), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45 + 0.05 * line, 0, 1, cv2.LINE_AA)
    checkerboard = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64)).astype(np.uint8)
    return {name: image.astype(np.float32) / 255.0
            for name, image in (("text", text), ("checkerboard", checkerboard), ("noise", noise))}


def _levels(luma: np.ndarray, network) -> np.ndarray:
    return np.round(upscale_luma(luma, network) * 255.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sesr-m5", help="shipped variant (default sesr-m5)")
    parser.add_argument("--scale", type=int, choices=SCALES, default=2, help="2 or 4 (default 2)")
    parser.add_argument("--engine", default="openvino", choices=("openvino", "onnxruntime"),
                        help="engine of the int8 rows (default openvino)")
    parser.add_argument("--widen", nargs="*", type=float, default=[2.0, 4.0],
                        help="factors for the widened rows (default 2 4)")
    parser.add_argument("--data", nargs="+", type=Path, default=None, metavar="DIR",
                        help="training image folders for the p100 row")
    parser.add_argument("--photos", type=Path, default=None, metavar="DIR",
                        help="folder whose first image, shrunk by the scale, is the photo column")
    args = parser.parse_args(argv)
    for folder in [*(args.data or []), *([args.photos] if args.photos else [])]:
        if not folder.is_dir():
            print(f"error: folder not found: {folder}", file=sys.stderr)
            return 2

    weights = load_model(args.model, args.scale)
    shipped = find_calibration(weights)
    if shipped is None:
        print(f"error: no int8 calibration ships for {args.model} ×{args.scale}", file=sys.stderr)
        return 2
    images = sharp_images()
    if args.photos is not None:
        images["photo"] = make_pair(list_images([args.photos])[0], args.scale).lr

    # Calibration variants.
    variants: dict[str, Int8Calibration] = {"shipped": shipped}
    for factor in args.widen:
        ranges = {name: (low * factor, high * factor) if name != "centred" else (low, high)
                  for name, (low, high) in shipped.ranges.items()}
        variants[f"shipped ×{factor:g}"] = dataclasses.replace(shipped, ranges=ranges)
    if args.data:
        files = [f for i, f in enumerate(list_images(args.data)) if i % HOLDOUT_EVERY != HOLDOUT_EVERY // 2][::4]
        lumas = [make_pair(f, args.scale).lr for f in files]
        variants["p100"] = dataclasses.replace(shipped, ranges=collect_ranges(weights, lumas, (100.0,))[100.0])

    # Differences from fp32, in 8-bit levels.
    fp32 = open_backend(weights, "onnxruntime", threads=1, precision="fp32")
    references = {name: _levels(luma, fp32) for name, luma in images.items()}
    print(f"{args.model} ×{args.scale}, int8 on {args.engine} against onnxruntime fp32: "
          "max difference in levels / % of pixels off by more than 2 levels\n")
    print("| ranges | " + " | ".join(images) + " |")
    print("| --- |" + " ---: |" * len(images))
    for label, calibration in variants.items():
        network = open_backend(weights, args.engine, threads=1, precision="int8", calibration=calibration)
        cells = []
        for name, luma in images.items():
            error = np.abs(_levels(luma, network) - references[name])
            cells.append(f"{error.max():.0f} / {np.mean(error > 2) * 100:.1f} %")
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
