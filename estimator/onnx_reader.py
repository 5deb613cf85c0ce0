"""Read an ONNX model into an estimator ``Network`` at a given input size.

Layout is NCHW with batch 1. Symbolic height and width of the graph input take the requested
size; fixed ones must match it. Every node must be one of ``SUPPORTED_OPERATORS``: an unknown
operator raises ``UnsupportedOperatorError`` naming it, and is never skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import OnnxModelError, UnsupportedOperatorError
from .graph import Network, NetworkBuilder, Op, Shape

__all__ = ["read_onnx", "SUPPORTED_OPERATORS"]

_ELEMENTWISE = {"Add": Op.ADD, "Sub": Op.SUB, "Mul": Op.MUL, "Relu": Op.RELU, "Clip": Op.CLIP,
                "LeakyRelu": Op.LEAKY_RELU, "Sigmoid": Op.SIGMOID, "Tanh": Op.TANH}
SUPPORTED_OPERATORS = tuple(sorted({*_ELEMENTWISE, "Conv", "ConvTranspose", "PRelu", "DepthToSpace", "Resize",
                                    "Concat", "Identity", "Constant"}))


def read_onnx(path: Path | str, width: int, height: int) -> Network:
    """Build the layer graph of the ONNX file at ``path`` for a width×height input."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except FileNotFoundError:
        raise OnnxModelError(path, "file not found") from None
    except Exception as error:  # onnx raises DecodeError and others for a corrupt file
        raise OnnxModelError(path, f"not a readable ONNX model ({error})") from None
    graph = model.graph

    # Constants: initializers and Constant nodes
    constants: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            attribute = {a.name: a for a in node.attribute}
            if "value" in attribute:
                constants[node.output[0]] = numpy_helper.to_array(attribute["value"].t)

    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise OnnxModelError(path, f"expected one image input, found {len(inputs)}: {[i.name for i in inputs]}")
    input_shape = _input_shape(path, inputs[0], width, height)
    builder = NetworkBuilder(graph.name or path.stem, input_shape, inputs[0].name)
    aliases: dict[str, str] = {}

    for index, node in enumerate(graph.node):
        if node.op_type == "Constant":
            continue
        name = node.output[0] if node.output else f"node{index}"
        _add_node(builder, node, name, constants, aliases, path)

    outputs = tuple(aliases.get(o.name, o.name) for o in graph.output)
    scale = _scale(builder, outputs, input_shape)
    network = builder.build(outputs)
    return Network(network.name, network.input_name, network.input_shape, network.layers, network.outputs, scale)


def _input_shape(path: Path, value_info, width: int, height: int) -> Shape:
    dims = value_info.type.tensor_type.shape.dim
    if len(dims) != 4:
        raise OnnxModelError(path, f"input {value_info.name!r} must be N×C×H×W, got rank {len(dims)}")
    channels = dims[1].dim_value
    if not channels:
        raise OnnxModelError(path, f"input {value_info.name!r} has no fixed channel count")
    for dim, expected, label in ((dims[2], height, "height"), (dims[3], width, "width")):
        if dim.dim_value and dim.dim_value != expected:
            raise OnnxModelError(path, f"input {label} is fixed to {dim.dim_value} but the requested size "
                                       f"is {width}x{height}; pass --input-size {dims[3].dim_value or width}x"
                                       f"{dims[2].dim_value or height}")
    return Shape(channels, height, width)


def _attributes(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _add_node(builder: NetworkBuilder, node, name: str, constants: dict, aliases: dict, path: Path) -> None:
    op_type = node.op_type
    attrs = _attributes(node)
    tensor_inputs = [aliases.get(i, i) for i in node.input if i and i not in constants]
    constant_inputs = [constants[i] for i in node.input if i in constants]
    missing = [i for i in tensor_inputs if i not in builder.shapes]
    if missing:
        raise OnnxModelError(path, f"node {node.name or name!r} reads {missing}, which no earlier node produces")

    if op_type == "Identity":
        aliases[name] = tensor_inputs[0]
    elif op_type == "Conv":
        weight = constants.get(node.input[1])
        if weight is None:
            raise OnnxModelError(path, f"Conv {node.name or name!r} needs constant weights")
        kernel = tuple(int(k) for k in attrs.get("kernel_shape", weight.shape[2:]))
        strides = attrs.get("strides", [1, 1])
        if strides[0] != strides[1] or any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise OnnxModelError(path, f"Conv {node.name or name!r}: only equal strides and no dilation are supported")
        pads = attrs.get("pads", [0, 0, 0, 0])
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            pads = [kernel[0] // 2, kernel[1] // 2] * 2
        builder.conv(name, tensor_inputs[0], int(weight.shape[0]), kernel, stride=int(strides[0]),
                     groups=int(attrs.get("group", 1)), bias=len(node.input) > 2 and bool(node.input[2]),
                     padding=(int(pads[0]), int(pads[1])))
    elif op_type == "ConvTranspose":
        weight = constants.get(node.input[1])
        if weight is None:
            raise OnnxModelError(path, f"ConvTranspose {node.name or name!r} needs constant weights")
        stride = int(attrs.get("strides", [1, 1])[0])
        k = int(weight.shape[2])
        source = builder.shapes[tensor_inputs[0]]
        pads = attrs.get("pads", [0, 0, 0, 0])
        extra = attrs.get("output_padding", [0, 0])
        out_h = stride * (source.height - 1) + k - pads[0] - pads[2] + extra[0]
        out_w = stride * (source.width - 1) + k - pads[1] - pads[3] + extra[1]
        if "output_shape" in attrs:
            out_h, out_w = (int(v) for v in attrs["output_shape"][-2:])
        builder.transpose_conv(name, tensor_inputs[0], int(weight.shape[1]) * int(attrs.get("group", 1)), k, stride,
                               output_shape=(out_h, out_w), bias=len(node.input) > 2 and bool(node.input[2]))
    elif op_type == "PRelu":
        builder.prelu(name, tensor_inputs[0])
    elif op_type in _ELEMENTWISE:
        stored = sum(int(np.size(c)) for c in constant_inputs if np.size(c) > 1 or op_type in ("Add", "Sub", "Mul"))
        builder.elementwise(name, _ELEMENTWISE[op_type], tuple(tensor_inputs), constants=stored)
    elif op_type == "DepthToSpace":
        builder.depth_to_space(name, tensor_inputs[0], int(attrs["blocksize"]))
    elif op_type == "Resize":
        factor = _resize_factor(node, constants, builder.shapes[tensor_inputs[0]], path)
        mode = attrs.get("mode", b"nearest")
        builder.resize(name, tensor_inputs[0], factor, mode.decode() if isinstance(mode, bytes) else str(mode))
    elif op_type == "Concat":
        if int(attrs.get("axis", 1)) not in (1, -3):
            raise OnnxModelError(path, f"Concat {node.name or name!r}: only channel concatenation (axis 1) is supported")
        builder.concat(name, tuple(tensor_inputs))
    else:
        raise UnsupportedOperatorError(op_type, node.name or name, SUPPORTED_OPERATORS)


def _resize_factor(node, constants: dict, source: Shape, path: Path) -> int:
    # Inputs are (X, scales) in opset 10 and (X, roi, scales, sizes) from opset 11 on.
    name = node.name or node.output[0]
    scales_input = 1 if len(node.input) == 2 else 2
    scales = constants.get(node.input[scales_input]) if len(node.input) > scales_input and node.input[scales_input] else None
    sizes = constants.get(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    if scales is not None and np.size(scales) == 4:
        factors = {float(scales[2]), float(scales[3])}
    elif sizes is not None and np.size(sizes) == 4:
        factors = {int(sizes[2]) / source.height, int(sizes[3]) / source.width}
    else:
        raise OnnxModelError(path, f"Resize {name!r} needs constant scales or sizes")
    if len(factors) != 1 or not float(next(iter(factors))).is_integer():
        raise OnnxModelError(path, f"Resize {name!r}: only equal integer scale factors are supported, got {factors}")
    return int(next(iter(factors)))


def _scale(builder: NetworkBuilder, outputs: tuple[str, ...], input_shape: Shape) -> int:
    out = builder.shapes[outputs[0]]
    ratio = out.width / input_shape.width
    return int(ratio) if ratio.is_integer() and ratio >= 1 else 1
