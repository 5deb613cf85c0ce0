"""Inference backends: run a collapsed SESR network on N×1×H×W float32 luma in [0, 1].

Every backend takes the same ``CollapsedWeights`` and returns N×1×sH×sW float32 in [0, 1].

- onnxruntime runs a graph built here from the weights, in fp32, or int8 from a QDQ graph.
- OpenVINO (the ``openvino`` package) runs the same graphs with its CPU plugin: fp32, bf16 on
  CPUs with bf16 instructions (AVX-512 BF16 or AMX), and int8.
- torch runs ``models.network.CollapsedSESR`` in fp32 and needs PyTorch.

``choose_backend`` resolves ``auto`` and unsupported combinations before anything is built, so
a request that cannot be met falls back to a supported one with a notice instead of producing a
wrong image. Precision bf16 keeps 8 significant bits in activations and weights. int8 needs a
calibration file made for the weights (``upscale.int8``).
"""

from __future__ import annotations

import enum
import functools
import io
import logging
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from models.weights import CollapsedWeights

from .cpu import physical_cores, usable_cpus

if TYPE_CHECKING:
    from .int8 import Int8Calibration

logger = logging.getLogger(__name__)

__all__ = ["Backend", "Precision", "BackendChoice", "LumaNetwork", "BackendError", "build_onnx_model",
           "choose_backend", "open_backend", "default_threads", "check_threads", "describe_network"]

ONNX_OPSET = 17


class Backend(str, enum.Enum):
    """Inference engine; ``auto`` picks the fastest one that is installed."""

    AUTO = "auto"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"
    TORCH = "torch"


class Precision(str, enum.Enum):
    """Arithmetic of the network's convolutions."""

    FP32 = "fp32"
    BF16 = "bf16"
    INT8 = "int8"


# Precisions each engine runs. onnxruntime's int8 is correct but slower than its fp32 on
# AVX-512 CPUs (docs/benchmarks.md), so only an explicit request selects it.
SUPPORTED: dict[Backend, tuple[Precision, ...]] = {
    Backend.OPENVINO: (Precision.INT8, Precision.BF16, Precision.FP32),
    Backend.ONNXRUNTIME: (Precision.INT8, Precision.FP32),
    Backend.TORCH: (Precision.FP32,),
}


class BackendError(RuntimeError):
    """A backend that cannot be used on this machine."""


class LumaNetwork(Protocol):
    """Anything that upscales N×1×H×W float32 luma in [0, 1] by ``scale``."""

    scale: int
    receptive_radius: int

    def __call__(self, luma: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class BackendChoice:
    """The engine and precision that will run, and why they differ from the request, if they do."""

    backend: Backend
    """Resolved engine, never ``auto``."""
    precision: Precision
    notices: tuple[str, ...] = ()
    """One sentence per fallback from the request, for the user."""

    def __post_init__(self) -> None:
        if self.backend is Backend.AUTO:
            raise ValueError("a resolved choice needs a concrete backend, not auto")
        if self.precision not in SUPPORTED[self.backend]:
            raise ValueError(f"{self.backend.value} does not run {self.precision.value}")


def default_threads() -> int:
    """Return the default thread count: the physical cores this process may use."""
    return physical_cores()


def check_threads(threads: int | None) -> int:
    """Resolve a thread request: None → ``default_threads()``, 0 → the engine's own default.

    Raises ``ValueError`` for a negative count. A count above the usable logical CPUs is
    lowered to that number with a logged warning, because engines given thousands of threads
    spend minutes creating and scheduling them (onnxruntime 1.32 with 1000 threads on 2 CPUs
    took 59 s for an image that takes 1.1 s with 2).
    """
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise ValueError(f"threads must be a whole number, got {threads!r}")
    threads = int(threads)
    if threads < 0:
        raise ValueError(f"threads must be 0 (the engine's default) or a positive number, got {threads}")
    logical = len(usable_cpus())
    if threads > logical:
        logger.warning("%d threads requested but this process may use %d logical CPUs; using %d",
                       threads, logical, logical)
        return logical
    return threads


def describe_network(network: LumaNetwork) -> str:
    """Name the engine, precision and thread count a network runs with, for one status line."""
    names = {Backend.OPENVINO: "OpenVINO", Backend.ONNXRUNTIME: "onnxruntime", Backend.TORCH: "torch"}
    threads = getattr(network, "threads", 0)
    count = f"{threads} thread{'s' if threads != 1 else ''}" if threads else "the engine's default threads"
    return f"{names[network.backend]} {network.precision.value}, {count}"


# Availability probes; tests replace them to simulate a machine without a backend or bf16.

@functools.lru_cache(maxsize=1)
def _openvino_core():
    """Return an ``openvino.Core``, or None when OpenVINO is not installed or has no CPU plugin."""
    try:
        import openvino
    except ImportError:
        return None
    core = openvino.Core()
    if "CPU" not in core.available_devices:
        return None
    return core


def openvino_available() -> bool:
    """Tell whether OpenVINO and its CPU plugin can be loaded."""
    return _openvino_core() is not None


def cpu_has_bf16() -> bool:
    """Tell whether OpenVINO's CPU plugin reports native bf16 arithmetic on this processor."""
    core = _openvino_core()
    return core is not None and "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def torch_available() -> bool:
    """Tell whether PyTorch can be imported."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def choose_backend(backend: Backend | str = Backend.AUTO, precision: Precision | str | None = None,
                   has_int8_calibration: bool = False, missing_calibration: str | None = None) -> BackendChoice:
    """Resolve a requested backend and precision to ones this machine runs.

    ``precision`` None is the default: bf16 where the CPU has it, else fp32, because both stay
    within 0.05 dB of fp32 PSNR; int8 loses more and must be requested. An unavailable request
    falls back with a notice: OpenVINO to onnxruntime, bf16 to fp32, int8 without a calibration
    file to the default precision. ``missing_calibration`` gives the reason there is no calibration file,
    for that notice. Raises ``BackendError`` only for torch, which has no stand-in.
    """
    backend = Backend(backend)
    requested = Precision(precision) if precision is not None else None
    notices: list[str] = []

    # Engine: auto prefers OpenVINO, whose CPU plugin runs fp32 faster than onnxruntime and also bf16.
    if backend is Backend.TORCH and not torch_available():
        raise BackendError("the torch backend needs PyTorch: pip install torch (or pip install "
                           "'sesr[train]', or pip install '.[train]' in a source checkout), "
                           "or use --backend auto")
    if backend in (Backend.AUTO, Backend.OPENVINO) and not openvino_available():
        # A bf16 request gets one notice below that names OpenVINO and its install command.
        if requested is not Precision.BF16:
            notices.append("OpenVINO is not installed or has no CPU plugin; using onnxruntime, which "
                           "is slower (pip install openvino)")
        backend = Backend.ONNXRUNTIME
    elif backend is Backend.AUTO:
        backend = Backend.OPENVINO

    # Precision: check the request against the engine, the CPU and the calibration files.
    default = Precision.BF16 if backend is Backend.OPENVINO and cpu_has_bf16() else Precision.FP32
    chosen = requested or default
    if chosen is Precision.INT8 and not has_int8_calibration:
        reason = missing_calibration or "no int8 calibration ships for these weights"
        notices.append(f"{reason}; using {default.value}")
        chosen = default
    if chosen is Precision.BF16 and backend is Backend.ONNXRUNTIME and not openvino_available():
        notices.append("bf16 runs on OpenVINO, which is not installed or has no CPU plugin; using "
                       "onnxruntime fp32 (pip install openvino)")
        chosen = Precision.FP32
    if chosen is Precision.BF16 and backend is Backend.OPENVINO and not cpu_has_bf16():
        notices.append("this CPU has no bf16 instructions; using fp32")
        chosen = Precision.FP32
    if chosen not in SUPPORTED[backend]:
        notices.append(f"{backend.value} does not run {chosen.value}; using fp32")
        chosen = Precision.FP32
    return BackendChoice(backend, chosen, tuple(notices))


def build_onnx_model(weights: CollapsedWeights):
    """Build an ONNX ModelProto of the collapsed network with dynamic batch, height and width.

    Graph: Sub(0.5) → Conv 5×5 → m × (Conv 3×3 → PRelu) → Add(long residual) → Conv 5×5 →
    Add(input, broadcast over s² channels) → DepthToSpace(2, CRD) once for ×2, twice for ×4 →
    Clip(0, 1). CRD order matches ``torch.nn.functional.pixel_shuffle``.
    """
    from onnx import helper, numpy_helper

    d = weights.descriptor
    nodes, initializers = [], []

    def constant(name: str, array: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def conv(name: str, source: str, w) -> str:
        k = w.weight.shape[-1]
        nodes.append(helper.make_node(
            "Conv", [source, constant(f"{name}.weight", w.weight), constant(f"{name}.bias", w.bias)],
            [name], kernel_shape=[k, k], pads=[k // 2] * 4))
        return name

    constant("half", np.array(0.5))
    nodes.append(helper.make_node("Sub", ["luma", "half"], ["centred"]))
    x0 = conv("head", "centred", weights.head)
    x = x0
    for i, (w, alpha) in enumerate(zip(weights.body, weights.alphas)):
        x = conv(f"body.{i}", x, w)
        # PRelu slopes broadcast from shape C×1×1 over N×C×H×W.
        nodes.append(helper.make_node("PRelu", [x, constant(f"body.{i}.alpha", alpha.reshape(-1, 1, 1))],
                                      [f"body.{i}.act"]))
        x = f"body.{i}.act"
    nodes.append(helper.make_node("Add", [x, x0], ["long_residual"]))
    tail = conv("tail", "long_residual", weights.tail)
    return finish_onnx_model(nodes, initializers, tail, d.scale, f"{d.variant}-x{d.scale}")


def finish_onnx_model(nodes: list, initializers: list, tail: str, scale: int, name: str):
    """Append the float32 end of an SESR graph and return the checked ONNX ModelProto.

    The end adds the input ``luma`` to ``tail`` (broadcast over s² channels), applies
    DepthToSpace(2, CRD) once for ×2 and twice for ×4, and clips to [0, 1] as ``upscaled``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes.append(helper.make_node("Add", [tail, "luma"], ["global_residual"]))
    x = "global_residual"
    for i in range({2: 1, 4: 2}[scale]):
        nodes.append(helper.make_node("DepthToSpace", [x], [f"d2s.{i}"], blocksize=2, mode="CRD"))
        x = f"d2s.{i}"
    for bound, value in (("zero", 0.0), ("one", 1.0)):
        initializers.append(numpy_helper.from_array(np.array(value, np.float32), bound))
    nodes.append(helper.make_node("Clip", [x, "zero", "one"], ["upscaled"]))

    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("luma", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("upscaled", TensorProto.FLOAT, ["N", 1, "sH", "sW"])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="sesr")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


class _OnnxRuntimeNetwork:
    def __init__(self, model_bytes: bytes, weights: CollapsedWeights, precision: Precision, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        self.scale = weights.descriptor.scale
        self.receptive_radius = weights.descriptor.receptive_radius
        self.backend, self.precision, self.threads = Backend.ONNXRUNTIME, precision, threads

    def __call__(self, luma: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"luma": np.ascontiguousarray(luma, dtype=np.float32)})[0]


class _OpenVinoNetwork:
    """OpenVINO's CPU plugin with one infer request, compiled for dynamic batch and size.

    NOTE: the single infer request serves one call at a time; threads that share a network
    must take turns.
    """

    # OpenVINO names of the precisions; int8 graphs run their float parts (the global residual
    # and depth-to-space) in f32, so quantization is the only approximation.
    _HINTS = {Precision.FP32: "f32", Precision.BF16: "bf16", Precision.INT8: "f32"}

    def __init__(self, model_bytes: bytes, weights: CollapsedWeights, precision: Precision, threads: int) -> None:
        core = _openvino_core()
        if core is None:
            raise BackendError("OpenVINO is not installed or has no CPU plugin: pip install openvino")
        config = {"INFERENCE_PRECISION_HINT": self._HINTS[precision], "PERFORMANCE_HINT": "LATENCY",
                  "NUM_STREAMS": 1}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = core.compile_model(core.read_model(io.BytesIO(model_bytes)), "CPU", config)
        self.request = compiled.create_infer_request()
        self.scale = weights.descriptor.scale
        self.receptive_radius = weights.descriptor.receptive_radius
        self.backend, self.precision, self.threads = Backend.OPENVINO, precision, threads

    def __call__(self, luma: np.ndarray) -> np.ndarray:
        # share_inputs passes the array without a copy; outputs are copied out of the request's
        # buffer, which the next call overwrites.
        luma = np.ascontiguousarray(luma, dtype=np.float32)
        return self.request.infer({0: luma}, share_inputs=True)[0]


class _TorchNetwork:
    def __init__(self, weights: CollapsedWeights, threads: int) -> None:
        import torch

        from models.network import CollapsedSESR

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.module = CollapsedSESR(weights).eval()
        self.scale = weights.descriptor.scale
        self.receptive_radius = weights.descriptor.receptive_radius
        self.backend, self.precision, self.threads = Backend.TORCH, Precision.FP32, threads

    def __call__(self, luma: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            tensor = self.torch.from_numpy(np.ascontiguousarray(luma, dtype=np.float32))
            return self.module(tensor).numpy()


def open_backend(weights: CollapsedWeights, backend: Backend | str = Backend.AUTO, threads: int | None = None,
                 precision: Precision | str | None = None, calibration: Int8Calibration | None = None,
                 missing_calibration: str | None = None) -> LumaNetwork:
    """Prepare ``weights`` for inference, resolving the request with ``choose_backend``.

    ``threads`` None uses the physical cores, 0 keeps the engine's own default, and a count above
    the logical CPUs is lowered to them (``check_threads``, which raises ``ValueError`` for a
    negative count). For int8, ``calibration`` None looks for the shipped calibration of these
    weights. Fallback notices are logged as warnings. The returned network carries the resolved ``backend``,
    ``precision`` and ``threads``.
    """
    from .int8 import build_int8_model, find_calibration, missing_calibration_reason

    threads = check_threads(threads)
    if calibration is None and precision is not None and Precision(precision) is Precision.INT8:
        calibration = find_calibration(weights)
        if calibration is None and missing_calibration is None:
            missing_calibration = missing_calibration_reason(weights)
    choice = choose_backend(backend, precision, has_int8_calibration=calibration is not None,
                            missing_calibration=missing_calibration)
    for notice in choice.notices:
        logger.warning("%s", notice)

    if choice.backend is Backend.TORCH:
        return _TorchNetwork(weights, threads)
    model = build_int8_model(weights, calibration) if choice.precision is Precision.INT8 else build_onnx_model(weights)
    engine = _OpenVinoNetwork if choice.backend is Backend.OPENVINO else _OnnxRuntimeNetwork
    return engine(model.SerializeToString(), weights, choice.precision, threads)
