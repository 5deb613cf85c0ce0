"""Hardware cost estimator: MACs, memory traffic, cycles and FPS of super-resolution networks on NPUs.

Build a layer graph (``build_network``, ``read_onnx``), resolve an NPU profile (``resolve_npu``)
and cost it (``estimate``, and ``estimate_fused`` for fused, tiled execution). Needs numpy and
onnx only; ``plot_costs`` needs matplotlib.
"""

from .cost import LayerCost, NetworkCost, estimate
from .errors import (EstimatorError, InputSizeError, OnnxModelError, ProfileError, UnknownNetworkError,
                     UnsupportedOperatorError, UnsupportedPrecisionError)
from .fusion import FusedCost, FusedGroup, estimate_fused
from .graph import Layer, Network, Op, Shape, build_network, build_sesr, fuse_activations, network_names
from .hardware import NpuSpec, Precision, load_catalogue, resolve_npu
from .onnx_reader import SUPPORTED_OPERATORS, read_onnx
from .plot import plot_costs
from .report import LAYER_FIELDS, layer_row, run_record
from .sizes import NAMED_SIZES, parse_input_size

__all__ = [
    "LayerCost", "NetworkCost", "estimate",
    "EstimatorError", "InputSizeError", "OnnxModelError", "ProfileError", "UnknownNetworkError",
    "UnsupportedOperatorError", "UnsupportedPrecisionError",
    "FusedCost", "FusedGroup", "estimate_fused",
    "Layer", "Network", "Op", "Shape", "build_network", "build_sesr", "fuse_activations", "network_names",
    "NpuSpec", "Precision", "load_catalogue", "resolve_npu",
    "SUPPORTED_OPERATORS", "read_onnx", "plot_costs", "LAYER_FIELDS", "layer_row", "run_record",
    "NAMED_SIZES", "parse_input_size",
]
