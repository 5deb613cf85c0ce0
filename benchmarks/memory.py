"""Measure peak memory of `upscale_array` with and without tiling.

Each measurement runs in a fresh subprocess and reads its peak resident set size (ru_maxrss),
so one run cannot inflate the next. The image is synthetic RGB uint8; its input and output
arrays alone take H·W·3·(1 + s²) bytes, which the table lists as the floor.

Example, from the repository root::

    python benchmarks/memory.py --sizes 2000 4000 --tiles 0 512 --weights models/weights/sesr-m5-x2.safetensors
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np
from models import load_weights
from upscale import open_backend, upscale_array
size, tile, weights, threads = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
network = open_backend(load_weights(weights), "onnxruntime", threads)
rng = np.random.default_rng(0)
image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
start = time.perf_counter()
out = upscale_array(image, network, tile=tile)
elapsed = time.perf_counter() - start
print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": elapsed, "output": list(out.shape)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[2000, 4000], help="square input sides in pixels")
    parser.add_argument("--tiles", nargs="+", type=int, default=[0, 512], help="tile sides; 0 = whole image")
    parser.add_argument("--weights", default="models/weights/sesr-m5-x2.safetensors")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads; 0 = default")
    args = parser.parse_args()

    print(f"command: python {' '.join(sys.argv)}")
    print()
    print("| input | tile | peak RSS (MiB) | input + output arrays (MiB) | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for size in args.sizes:
        for tile in args.tiles:
            completed = subprocess.run([sys.executable, "-c", CHILD, str(size), str(tile), args.weights,
                                        str(args.threads)], capture_output=True, text=True)
            if completed.returncode != 0:
                print(f"| {size}×{size} | {tile or 'whole'} | failed: {completed.stderr.strip().splitlines()[-1]} | | |")
                continue
            result = json.loads(completed.stdout.strip().splitlines()[-1])
            height, width, channels = result["output"]
            floor = (size * size * 3 + height * width * channels) / 2**20
            print(f"| {size}×{size} | {tile or 'whole'} | {result['peak_mib']:.0f} | {floor:.0f} "
                  f"| {result['seconds']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
