"""Post-training int8 quantization of collapsed SESR networks: calibration files and QDQ graphs.

Scheme (the usual one of onnxruntime's and OpenVINO's int8 convolution kernels):

- weights: int8, symmetric, one scale per output channel (max |w| / 127);
- activations: uint8, asymmetric, one scale and zero point per tensor, from the range the fp32
  network reaches on calibration images;
- biases: int32 with scale = input scale × weight scale, as the QDQ convolution pattern needs;
- the input shift (luma − 0.5), the global residual (LR luma added to every sub-pixel
  channel), DepthToSpace and the final clip stay in float32, so quantization only touches the
  residual the network predicts.

The ranges live in a small JSON file beside the weights (``name.int8.json`` for
``name.safetensors``). It records a digest of the weights it was made for, so a file never
applies to other weights. ``scripts/calibrate_int8.py`` writes these files from training
images; the functions here take arrays and read no image files.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.weights import CollapsedWeights, ConvWeights
from models.zoo import WEIGHTS_DIR

__all__ = ["Int8Calibration", "CalibrationFileError", "weights_digest", "calibration_path",
           "load_calibration", "save_calibration", "find_calibration", "missing_calibration_reason",
           "activation_names",
           "collect_ranges", "build_int8_model"]

FORMAT_NAME = "sesr-int8-calibration"
FORMAT_VERSION = 1

# uint8 activation grid and int8 weight grid.
ACTIVATION_LEVELS = 255
WEIGHT_MAX = 127


class CalibrationFileError(ValueError):
    """An int8 calibration file that cannot be read or does not fit its weights."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class Int8Calibration:
    """Activation ranges of one collapsed network, measured on calibration images."""

    variant: str
    scale: int
    weights_sha256: str
    """``weights_digest`` of the weights the ranges were measured with."""
    ranges: dict[str, tuple[float, float]]
    """Activation name (see ``activation_names``) → (min, max) in the network's float units."""
    record: dict = field(default_factory=dict)
    """Record of the calibration: command, images, statistic and the measured PSNR loss."""

    def __post_init__(self) -> None:
        for name, (low, high) in self.ranges.items():
            if not (np.isfinite(low) and np.isfinite(high) and low <= 0.0 <= high and low < high):
                raise ValueError(f"range of {name} must be finite and contain 0, got [{low}, {high}]")


def weights_digest(weights: CollapsedWeights) -> str:
    """Compute the SHA-256 of the float32 tensors in name order (metadata excluded).

    The training record in a weights file changes when results are recorded, the tensors do not,
    so the digest identifies the network itself.
    """
    digest = hashlib.sha256()
    for name, array in sorted(weights.tensors().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(array, dtype="<f4").tobytes())
    return digest.hexdigest()


def calibration_path(weights_file: Path | str) -> Path:
    """Return the calibration path of a weights file: ``name.safetensors`` → ``name.int8.json``."""
    weights_file = Path(weights_file)
    return weights_file.with_name(f"{weights_file.stem}.int8.json")


def activation_names(blocks: int) -> list[str]:
    """List the quantized activations in graph order: conv inputs and the long-residual operands."""
    return ["centred", "head", *(f"body.{i}.act" for i in range(blocks)), "long_residual"]


def save_calibration(calibration: Int8Calibration, path: Path | str) -> None:
    """Write ``calibration`` as JSON through a temporary name and an atomic rename."""
    path = Path(path)
    document = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
        "variant": calibration.variant, "scale": calibration.scale,
        "weights_sha256": calibration.weights_sha256,
        "ranges": {name: [float(low), float(high)] for name, (low, high) in calibration.ranges.items()},
        "record": calibration.record,
    }
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def load_calibration(path: Path | str) -> Int8Calibration:
    """Read a calibration file; raises ``CalibrationFileError`` when it is missing or invalid."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CalibrationFileError(path, "file not found") from None
    except (OSError, ValueError) as error:
        raise CalibrationFileError(path, f"not readable JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise CalibrationFileError(path, f"not an sesr int8 calibration file (format {FORMAT_NAME!r} expected)")
    if document.get("format_version") != FORMAT_VERSION:
        raise CalibrationFileError(path, f"format_version {document.get('format_version')!r} is not "
                                         f"supported (expected {FORMAT_VERSION}); upgrade sesr")
    try:
        return Int8Calibration(
            variant=str(document["variant"]), scale=int(document["scale"]),
            weights_sha256=str(document["weights_sha256"]),
            ranges={str(name): (float(low), float(high)) for name, (low, high) in document["ranges"].items()},
            record=dict(document.get("record", {})),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise CalibrationFileError(path, f"invalid content ({error})") from None


def find_calibration(weights: CollapsedWeights, weights_file: Path | str | None = None) -> Int8Calibration | None:
    """Return the calibration beside ``weights_file`` if it was made for exactly these weights.

    ``weights_file`` None looks beside the shipped weights of the same variant and scale.
    Returns None when there is no such file or it belongs to other weights.
    """
    d = weights.descriptor
    if weights_file is None:
        weights_file = WEIGHTS_DIR / f"{d.variant}-x{d.scale}.safetensors"
    path = calibration_path(weights_file)
    if not path.is_file():
        return None
    calibration = load_calibration(path)
    if calibration.weights_sha256 != weights_digest(weights):
        return None
    missing = set(activation_names(d.blocks)) - set(calibration.ranges)
    if missing:
        raise CalibrationFileError(path, f"no range for {', '.join(sorted(missing))}")
    return calibration


def missing_calibration_reason(weights: CollapsedWeights, weights_file: Path | str | None = None) -> str:
    """Explain why ``find_calibration`` found no calibration, with the command that makes one.

    ``weights_file`` None means the shipped weights of the same variant and scale.
    """
    d = weights.descriptor
    if weights_file is None:
        return f"no int8 calibration ships for {d.variant} ×{d.scale}"
    path = calibration_path(weights_file)
    command = f"python scripts/calibrate_int8.py --weights {weights_file}"
    if path.is_file():
        return (f"{path} was made for other weights (its weights_sha256 differs); "
                f"make one for {weights_file} with: {command}")
    return f"no int8 calibration {path} beside the weights; make one with: {command}"


def collect_ranges(weights: CollapsedWeights, lumas: list[np.ndarray], percentiles: tuple[float, ...] = (100.0,),
                   samples_per_image: int = 200_000) -> dict[float, dict[str, tuple[float, float]]]:
    """Measure activation ranges of the fp32 network on 2-D float32 luma images / 255.

    Returns one set of ranges per percentile p: each range runs from the (100 − p)-th to the
    p-th percentile of an activation, pooled over all images, and always contains 0. p = 100
    gives the exact minimum and maximum. Other percentiles are taken from an evenly strided
    sample of up to about ``samples_per_image`` values per image and activation, which bounds
    memory.
    """
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from .backends import build_onnx_model

    if not lumas:
        raise ValueError("collect_ranges needs at least one calibration image")
    names = activation_names(weights.descriptor.blocks)
    model = build_onnx_model(weights)
    model.graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
                              for name in names if name != "centred")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    outputs = [name for name in names if name != "centred"]
    samples: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
    extremes = {name: (0.0, 0.0) for name in outputs}
    for luma in lumas:
        batch = np.ascontiguousarray(luma, dtype=np.float32)[None, None]
        for name, value in zip(outputs, session.run(outputs, {"luma": batch})):
            flat = value.ravel()
            samples[name].append(flat[::max(1, flat.size // samples_per_image)])
            low, high = extremes[name]
            extremes[name] = (min(low, float(flat.min())), max(high, float(flat.max())))

    result = {}
    for percentile in percentiles:
        # The network input luma − 0.5 spans [−0.5, 0.5]: scale 1/255 and zero point 128.
        ranges = {"centred": (-0.5, 0.5)}
        for name in outputs:
            if percentile >= 100.0:
                ranges[name] = extremes[name]
                continue
            low, high = np.percentile(np.concatenate(samples[name]), [100.0 - percentile, percentile])
            ranges[name] = (min(float(low), 0.0), max(float(high), 0.0))
        result[percentile] = ranges
    return result


def _activation_grid(low: float, high: float) -> tuple[np.float32, np.uint8]:
    """Return (scale, zero point) of a uint8 grid that covers [low, high] and contains 0 exactly."""
    scale = (high - low) / ACTIVATION_LEVELS
    zero_point = int(np.clip(round(-low / scale), 0, ACTIVATION_LEVELS))
    return np.float32(scale), np.uint8(zero_point)


def build_int8_model(weights: CollapsedWeights, calibration: Int8Calibration):
    """Build a QDQ ONNX model of the collapsed network with int8 convolutions.

    Inputs and outputs match ``build_onnx_model``: N×1×H×W float32 luma / 255 in, N×1×sH×sW in
    [0, 1] out. Every convolution reads dequantized uint8 activations and int8 weights, so
    onnxruntime and OpenVINO run it with integer kernels.
    """
    from onnx import helper, numpy_helper

    from .backends import finish_onnx_model

    d = weights.descriptor
    if (calibration.variant, calibration.scale) != (d.variant, d.scale):
        raise ValueError(f"calibration is for {calibration.variant} ×{calibration.scale}, "
                         f"weights are {d.variant} ×{d.scale}")
    nodes, initializers = [], []
    grids: dict[str, tuple[np.float32, np.uint8]] = {}

    def constant(name: str, array: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def quantize(source: str) -> str:
        """Round ``source`` to its calibrated uint8 grid and back to float (a Q/DQ pair)."""
        scale, zero_point = _activation_grid(*calibration.ranges[source])
        grids[source] = (scale, zero_point)
        constant(f"{source}.q_scale", np.array(scale, np.float32))
        constant(f"{source}.q_zero", np.array(zero_point, np.uint8))
        nodes.append(helper.make_node("QuantizeLinear", [source, f"{source}.q_scale", f"{source}.q_zero"],
                                      [f"{source}.q"]))
        nodes.append(helper.make_node("DequantizeLinear", [f"{source}.q", f"{source}.q_scale", f"{source}.q_zero"],
                                      [f"{source}.dq"]))
        return f"{source}.dq"

    def conv(name: str, source: str, w: ConvWeights) -> str:
        # Per-channel symmetric int8 weights; a channel of zeros keeps a scale of 1.
        peak = np.abs(w.weight).reshape(w.weight.shape[0], -1).max(axis=1)
        weight_scale = np.where(peak > 0, peak / WEIGHT_MAX, 1.0).astype(np.float32)
        quantized = np.clip(np.round(w.weight / weight_scale[:, None, None, None]), -WEIGHT_MAX, WEIGHT_MAX)
        bias_scale = (grids[source][0] * weight_scale).astype(np.float32)
        bias = np.round(w.bias / bias_scale).astype(np.int32)

        k = w.weight.shape[-1]
        zeros = np.zeros(w.weight.shape[0], np.int8)
        nodes.append(helper.make_node("DequantizeLinear", [constant(f"{name}.weight.q", quantized.astype(np.int8)),
                                                          constant(f"{name}.weight.scale", weight_scale),
                                                          constant(f"{name}.weight.zero", zeros)],
                                      [f"{name}.weight"], axis=0))
        nodes.append(helper.make_node("DequantizeLinear", [constant(f"{name}.bias.q", bias),
                                                          constant(f"{name}.bias.scale", bias_scale),
                                                          constant(f"{name}.bias.zero", zeros.astype(np.int32))],
                                      [f"{name}.bias"], axis=0))
        # ``source`` is always quantized before the conv that reads it, so its grid exists.
        nodes.append(helper.make_node("Conv", [f"{source}.dq", f"{name}.weight", f"{name}.bias"],
                                      [name], kernel_shape=[k, k], pads=[k // 2] * 4))
        return name

    # Zero is on every activation grid, so the convolutions' zero padding means the same as in
    # the fp32 graph, where the head pads luma − 0.5 with zeros.
    constant("half", np.array(0.5, np.float32))
    nodes.append(helper.make_node("Sub", ["luma", "half"], ["centred"]))
    quantize("centred")
    x0 = conv("head", "centred", weights.head)
    quantize(x0)
    x = x0
    for i, (w, alpha) in enumerate(zip(weights.body, weights.alphas)):
        x = conv(f"body.{i}", x, w)
        nodes.append(helper.make_node("PRelu", [x, constant(f"body.{i}.alpha", alpha.reshape(-1, 1, 1).astype(np.float32))],
                                      [f"body.{i}.act"]))
        x = f"body.{i}.act"
        quantize(x)
    nodes.append(helper.make_node("Add", [f"{x}.dq", f"{x0}.dq"], ["long_residual"]))
    quantize("long_residual")
    tail = conv("tail", "long_residual", weights.tail)

    # Float32 from here on: the global residual, depth-to-space and the clip.
    return finish_onnx_model(nodes, initializers, tail, d.scale, f"{d.variant}-x{d.scale}-int8")
