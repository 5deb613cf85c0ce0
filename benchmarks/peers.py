"""Published SR networks for OpenCV's ``dnn_superres`` as benchmark peers of SESR.

The peers are frozen TensorFlow graphs (``FSRCNN_x2.pb``, ``ESPCN_x4.pb``, ``LapSRN_x2.pb``, ...)
that ``cv2.dnn_superres`` runs on the Y channel, resizing chroma with bicubic. They need
opencv-contrib 4.x (``opencv-contrib-python-headless>=4.9,<5``); OpenCV 5 cannot read them.
That package replaces the project's ``opencv-python-headless``, so the peers run from a separate
benchmark environment, made as ``docs/benchmarks.md`` describes.

Costs are counted from the weights stored in each file, not taken from the papers: the
``dnn_superres`` FSRCNN graphs end in a 1×1 convolution and depth-to-space where the FSRCNN paper
uses a 9×9 transposed convolution, so their MACs are far below the published 6.0 GMACs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["Peer", "PeerError", "dnn_superres_available", "find_peers", "peer_method"]

# File names are ``<NAME>_x<SCALE>.pb``; NAME selects the ``setModel`` algorithm.
_FILE_PATTERN = re.compile(r"^(?P<name>[A-Za-z0-9-]+)_x(?P<scale>\d+)\.pb$")
_ALGORITHMS = {"fsrcnn": "fsrcnn", "fsrcnn-small": "fsrcnn", "espcn": "espcn", "lapsrn": "lapsrn"}


class PeerError(RuntimeError):
    """Error raised when a peer model cannot be loaded or run; the message names the fix."""


@dataclass(frozen=True)
class Peer:
    """One ``dnn_superres`` model file and its cost."""

    label: str
    """Name as in the file, for example ``FSRCNN-small``."""
    algorithm: str
    """``setModel`` algorithm: fsrcnn, espcn or lapsrn."""
    scale: int
    path: Path
    parameters: int
    """Stored numbers of the graph: convolution weights, biases and PReLU slopes."""
    macs_per_lr_pixel: int
    """Convolution MACs per LR input pixel, counting each layer at the resolution it runs at."""

    def macs(self, width: int, height: int) -> int:
        """Convolution MACs to upscale one width×height LR frame."""
        return self.macs_per_lr_pixel * width * height


def dnn_superres_available() -> bool:
    """Return whether the installed OpenCV has the contrib ``dnn_superres`` module."""
    return hasattr(cv2, "dnn_superres")


def _require_dnn_superres() -> None:
    if not dnn_superres_available():
        raise PeerError(f"OpenCV {cv2.__version__} has no dnn_superres module; run the peers from an "
                        "environment with opencv-contrib-python-headless>=4.9,<5 "
                        "(see docs/benchmarks.md)")


def _count_cost(path: Path) -> tuple[int, int]:
    """Return (parameters, MACs per LR pixel) from the layers stored in a frozen graph.

    Every convolution of FSRCNN and ESPCN runs on the LR grid. LapSRN upsamples in ×2 levels. Each
    level ends with an image-branch convolution (one input channel, four outputs, then
    depth-to-space), so the layers after it run on a grid twice as large in each direction.
    """
    net = cv2.dnn.readNetFromTensorflow(str(path))
    parameters = macs = 0
    level = 0
    for name in net.getLayerNames():
        try:
            layer = net.getLayer(net.getLayerId(name))
        except cv2.error:
            # OpenCV builds DepthToSpace only inside dnn_superres; it has no stored numbers.
            continue
        stored = sum(int(np.prod(blob.shape)) for blob in layer.blobs)
        parameters += stored
        if layer.type == "Convolution":
            out_channels, in_channels = layer.blobs[0].shape[:2]
            macs += int(np.prod(layer.blobs[0].shape)) * 4**level
            if in_channels == 1 and out_channels == 4 and "lapsrn" in path.name.lower():
                level += 1
        elif layer.blobs and layer.type not in ("Scale", "Bias"):
            raise PeerError(f"{path}: layer {name} of type {layer.type} has weights the cost "
                            "count does not handle")
    return parameters, macs


def find_peers(folder: Path, scales: list[int]) -> list[Peer]:
    """Find every ``<NAME>_x<SCALE>.pb`` in ``folder`` at one of ``scales``, sorted by scale, then name."""
    _require_dnn_superres()
    if not folder.is_dir():
        raise PeerError(f"peer folder not found: {folder}")
    peers = []
    for path in sorted(folder.glob("*.pb")):
        match = _FILE_PATTERN.match(path.name)
        if match is None or match["name"].lower() not in _ALGORITHMS:
            continue
        scale = int(match["scale"])
        if scale not in scales:
            continue
        parameters, macs = _count_cost(path)
        peers.append(Peer(match["name"], _ALGORITHMS[match["name"].lower()], scale, path.resolve(),
                          parameters, macs))
    if not peers:
        raise PeerError(f"no dnn_superres model files (NAME_xS.pb) at scales {scales} in {folder}")
    return sorted(peers, key=lambda p: (p.scale, p.label))


def peer_method(peer: Peer, threads: int = 0):
    """Return an ``upscale.metrics.SrMethod`` that upscales LR RGB uint8 with ``peer``.

    ``dnn_superres`` takes and returns BGR uint8; the returned value is the BT.601 studio-range
    luma of its RGB output, 0..255, as for the other methods of the quality table.
    """
    from upscale.metrics import luma_to_uint8

    _require_dnn_superres()
    if threads:
        cv2.setNumThreads(threads)
    model = cv2.dnn_superres.DnnSuperResImpl_create()
    try:
        model.readModel(str(peer.path))
    except cv2.error as error:
        raise PeerError(f"{peer.path}: OpenCV {cv2.__version__} cannot read it ({error.err}); "
                        "use opencv-contrib-python-headless 4.x") from None
    model.setModel(peer.algorithm, peer.scale)

    def method(lr_rgb: np.ndarray, scale: int) -> np.ndarray:
        if scale != peer.scale:
            raise ValueError(f"{peer.label} upscales ×{peer.scale}, expected ×{peer.scale} input, got a request for ×{scale}")
        sr_bgr = model.upsample(np.ascontiguousarray(lr_rgb[:, :, ::-1]))
        return luma_to_uint8(np.ascontiguousarray(sr_bgr[:, :, ::-1])).astype(np.float64)

    return method
