"""Run OpenCV ``dnn_superres`` models on request, for ``benchmarks/backends.py``.

OpenCV's ``dnn_superres`` module ships in opencv-contrib 4.x, which cannot share an environment
with the project's opencv-python-headless. ``backends.py`` therefore starts this file with the
interpreter of a separate environment (``--peer-python``); this file needs only cv2 and numpy.

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout.

- ``{"op": "load", "name": N, "path": P, "algorithm": A, "scale": S}`` → ``{"ok": true}``
- ``{"op": "time", "name": N, "input": F}`` → ``{"seconds": T}``: one ``upsample`` of the
  BGR uint8 array in the .npy file F (read once, then kept), timed with ``time.perf_counter``.
- ``{"op": "upsample", "name": N, "input": F, "output": G}`` → ``{"ok": true}``: writes the
  BGR uint8 result to G.
- ``{"op": "version"}`` → ``{"opencv": V}``

An error gives ``{"error": message}``; end of input ends the process.
"""

from __future__ import annotations

import json
import sys
import time

import cv2
import numpy as np


def main() -> int:
    models = {}
    inputs: dict[str, np.ndarray] = {}
    cv2.setNumThreads(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            op = request["op"]
            if op == "version":
                reply = {"opencv": cv2.__version__}
            elif op == "load":
                model = cv2.dnn_superres.DnnSuperResImpl_create()
                model.readModel(request["path"])
                model.setModel(request["algorithm"], int(request["scale"]))
                models[request["name"]] = model
                reply = {"ok": True}
            elif op in ("time", "upsample"):
                # Timed inputs stay in memory, so reading the file is not timed; upsample
                # inputs are read afresh, because the caller reuses one file name.
                if op == "upsample" or request["input"] not in inputs:
                    inputs[request["input"]] = np.load(request["input"])
                image = inputs[request["input"]]
                start = time.perf_counter()
                result = models[request["name"]].upsample(image)
                seconds = time.perf_counter() - start
                if op == "upsample":
                    np.save(request["output"], result)
                    reply = {"ok": True, "shape": list(result.shape)}
                else:
                    reply = {"seconds": seconds, "shape": list(result.shape)}
            else:
                reply = {"error": f"unknown op {op!r}"}
        except (KeyError, ValueError, OSError, cv2.error) as error:
            reply = {"error": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
