"""Inference backends: run a collapsed SESR network on N×1×H×W float32 luma in [0, 1].

Both backends take the same ``CollapsedWeights`` and return N×1×sH×sW float32 in [0, 1].
onnxruntime (default) runs a graph built here from the weights, so it needs neither torch nor a
model file on disk. The torch backend runs ``models.network.CollapsedSESR`` and needs PyTorch.
"""

from __future__ import annotations

import enum
import logging
from typing import Protocol

import numpy as np

from models.weights import CollapsedWeights

logger = logging.getLogger(__name__)

__all__ = ["Backend", "LumaNetwork", "BackendError", "build_onnx_model", "open_backend"]

ONNX_OPSET = 17


class Backend(str, enum.Enum):
    """Inference engine."""

    ONNXRUNTIME = "onnxruntime"
    TORCH = "torch"


class BackendError(RuntimeError):
    """A backend that cannot be used on this machine."""


class LumaNetwork(Protocol):
    """Anything that upscales N×1×H×W float32 luma in [0, 1] by ``scale``."""

    scale: int
    receptive_radius: int

    def __call__(self, luma: np.ndarray) -> np.ndarray: ...


def build_onnx_model(weights: CollapsedWeights):
    """Build an ONNX ModelProto of the collapsed network with dynamic batch, height and width.

    Graph: Sub(0.5) → Conv 5×5 → m × (Conv 3×3 → PRelu) → Add(long residual) → Conv 5×5 →
    Add(input, broadcast over s² channels) → DepthToSpace(2, CRD) once for ×2, twice for ×4 →
    Clip(0, 1). CRD order matches ``torch.nn.functional.pixel_shuffle``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

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
    nodes.append(helper.make_node("Add", [tail, "luma"], ["global_residual"]))
    x = "global_residual"
    for i in range({2: 1, 4: 2}[d.scale]):
        nodes.append(helper.make_node("DepthToSpace", [x], [f"d2s.{i}"], blocksize=2, mode="CRD"))
        x = f"d2s.{i}"
    constant("zero", np.array(0.0))
    constant("one", np.array(1.0))
    nodes.append(helper.make_node("Clip", [x, "zero", "one"], ["upscaled"]))

    graph = helper.make_graph(
        nodes, f"{d.variant}-x{d.scale}",
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
    def __init__(self, weights: CollapsedWeights, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.session = ort.InferenceSession(build_onnx_model(weights).SerializeToString(), options,
                                            providers=["CPUExecutionProvider"])
        self.scale = weights.descriptor.scale
        self.receptive_radius = weights.descriptor.receptive_radius

    def __call__(self, luma: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"luma": np.ascontiguousarray(luma, dtype=np.float32)})[0]


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

    def __call__(self, luma: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            tensor = self.torch.from_numpy(np.ascontiguousarray(luma, dtype=np.float32))
            return self.module(tensor).numpy()


def open_backend(weights: CollapsedWeights, backend: Backend | str = Backend.ONNXRUNTIME,
                 threads: int = 0) -> LumaNetwork:
    """Prepare ``weights`` for inference on ``backend``; ``threads`` = 0 keeps the engine default."""
    backend = Backend(backend)
    if backend is Backend.TORCH:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise BackendError("the torch backend needs PyTorch: pip install 'sesr[train]', "
                               "or use --backend onnxruntime") from None
        return _TorchNetwork(weights, threads)
    return _OnnxRuntimeNetwork(weights, threads)
