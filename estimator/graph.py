"""Layer graphs of super-resolution networks at a fixed input size.

A ``Network`` is a topologically ordered tuple of ``Layer`` values for batch 1. Shapes are C×H×W
(channels, rows, columns). Counting conventions, used by every cost function:

* algorithmic MACs: weight multiply-accumulates of the mathematical operator. A transposed
  convolution counts k_h·k_w·C_in/g·C_out per *input* pixel ("useful" MACs).
* executed MACs: what an NPU that runs the operator as a convolution performs. A transposed
  convolution with stride s runs as a convolution over an input with s−1 zeros inserted between
  pixels, so it counts k_h·k_w·C_in/g per *output* element (Vela 5.2.0 reports this figure).
* biases, activations and element-wise operators count 0 MACs; their work is in output elements.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace

from models.descriptor import BODY_KERNEL, HEAD_KERNEL, TAIL_KERNEL, ModelDescriptor, VARIANTS

from .errors import EstimatorError, UnknownNetworkError

__all__ = ["Op", "Shape", "Layer", "Network", "NetworkBuilder", "build_sesr", "build_network",
           "REFERENCE_NETWORKS", "network_names", "fuse_activations"]


class Op(str, enum.Enum):
    """Operator kinds the estimator can cost."""

    CONV = "conv"
    DEPTHWISE_CONV = "depthwise_conv"
    TRANSPOSE_CONV = "transpose_conv"
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    RELU = "relu"
    CLIP = "clip"
    LEAKY_RELU = "leaky_relu"
    PRELU = "prelu"
    SIGMOID = "sigmoid"
    TANH = "tanh"
    DEPTH_TO_SPACE = "depth_to_space"
    RESIZE = "resize"
    CONCAT = "concat"


MAC_OPS = frozenset({Op.CONV, Op.DEPTHWISE_CONV, Op.TRANSPOSE_CONV})
ELEMENTWISE_OPS = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.RELU, Op.CLIP, Op.LEAKY_RELU, Op.PRELU,
                             Op.SIGMOID, Op.TANH})
# Activations an NPU compiler folds into the operator that produces their input (Vela fuses
# ReLU, ReLU6, ReLU-N1-to-1 and clamps into the output stage of the preceding operator).
FUSABLE_ACTIVATIONS = frozenset({Op.RELU, Op.CLIP})
DATA_MOVEMENT_OPS = frozenset({Op.DEPTH_TO_SPACE, Op.CONCAT})


@dataclass(frozen=True)
class Shape:
    """A feature map of batch 1: channels × rows × columns."""

    channels: int
    height: int
    width: int

    def __post_init__(self) -> None:
        if min(self.channels, self.height, self.width) < 1:
            raise ValueError(f"shape dimensions must be positive, got {self}")

    @property
    def elements(self) -> int:
        return self.channels * self.height * self.width

    def __str__(self) -> str:
        return f"{self.channels}×{self.height}×{self.width}"


@dataclass(frozen=True)
class Layer:
    """One operator of a network with its input and output shapes."""

    name: str
    op: Op
    inputs: tuple[str, ...]
    """Names of the tensors read: the network input's name or the names of earlier layers."""
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    kernel: tuple[int, int] = (1, 1)
    """Kernel rows × columns of a convolution; (1, 1) for other operators."""
    stride: tuple[int, int] = (1, 1)
    """Stride rows × columns; for a transposed convolution, the upsampling factor."""
    groups: int = 1
    weights: int = 0
    """Weight count of a convolution (k_h·k_w·C_in/g·C_out)."""
    biases: int = 0
    extra_parameters: int = 0
    """Other stored numbers: PReLU slopes, constant operands of element-wise operators."""
    activation: Op | None = None
    """Activation folded into this layer by ``fuse_activations``."""
    block_size: int = 1
    """Depth-to-space block size."""
    mode: str = ""
    """Resize interpolation: ``nearest``, ``linear`` or ``cubic``."""

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.input_shapes):
            raise ValueError(f"layer {self.name}: {len(self.inputs)} inputs but "
                             f"{len(self.input_shapes)} input shapes")
        if self.groups < 1 or min(self.kernel) < 1 or min(self.stride) < 1:
            raise ValueError(f"layer {self.name}: groups, kernel and stride must be positive")

    @property
    def parameters(self) -> int:
        return self.weights + self.biases + self.extra_parameters

    @property
    def macs(self) -> int:
        """Algorithmic MACs (see the module docstring)."""
        if self.op is Op.TRANSPOSE_CONV:
            ifm = self.input_shapes[0]
            return ifm.height * ifm.width * self.weights
        if self.op in MAC_OPS:
            out = self.output_shape
            return out.height * out.width * self.weights
        return 0

    @property
    def executed_macs(self) -> int:
        """MACs an NPU performs, zeros of a transposed convolution's upsampled input included."""
        if self.op is Op.TRANSPOSE_CONV:
            out = self.output_shape
            return out.height * out.width * self.weights
        return self.macs

    @property
    def label(self) -> str:
        """Operator name with its fused activation, for tables."""
        return self.op.value if self.activation is None else f"{self.op.value}+{self.activation.value}"


@dataclass(frozen=True)
class Network:
    """A network at one input size: layers in topological order."""

    name: str
    input_name: str
    input_shape: Shape
    layers: tuple[Layer, ...]
    outputs: tuple[str, ...]
    scale: int = 1
    """Upscaling factor of the output over the input (1 when unknown)."""

    def __post_init__(self) -> None:
        known = {self.input_name}
        for layer in self.layers:
            missing = [name for name in layer.inputs if name not in known]
            if missing:
                raise ValueError(f"layer {layer.name} reads {missing} before they are produced")
            if layer.name in known:
                raise ValueError(f"duplicate tensor name {layer.name!r}")
            known.add(layer.name)
        if not set(self.outputs) <= known:
            raise ValueError(f"network outputs {self.outputs} are not all produced")

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def executed_macs(self) -> int:
        return sum(layer.executed_macs for layer in self.layers)

    @property
    def parameters(self) -> int:
        return sum(layer.parameters for layer in self.layers)

    def shape_of(self, tensor: str) -> Shape:
        if tensor == self.input_name:
            return self.input_shape
        return self.layer(tensor).output_shape

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def consumers(self, tensor: str) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if tensor in layer.inputs)


class NetworkBuilder:
    """Append layers one at a time, computing output shapes; ``build`` returns the ``Network``."""

    def __init__(self, name: str, input_shape: Shape, input_name: str = "input", scale: int = 1) -> None:
        self.name = name
        self.input_name = input_name
        self.input_shape = input_shape
        self.scale = scale
        self.layers: list[Layer] = []
        self.shapes: dict[str, Shape] = {input_name: input_shape}

    def _add(self, layer: Layer) -> str:
        self.layers.append(layer)
        self.shapes[layer.name] = layer.output_shape
        return layer.name

    def conv(self, name: str, source: str, out_channels: int, kernel: int | tuple[int, int],
             stride: int = 1, groups: int = 1, bias: bool = True, padding: tuple[int, int] | None = None) -> str:
        """Append a convolution. ``padding`` (rows, columns per side) defaults to "same" for odd kernels."""
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        ifm = self.shapes[source]
        if ifm.channels % groups or out_channels % groups:
            raise EstimatorError(f"layer {name}: channels {ifm.channels}→{out_channels} are not divisible "
                                 f"by groups={groups}")
        pad_h, pad_w = padding if padding is not None else (kh // 2, kw // 2)
        out_h = (ifm.height + 2 * pad_h - kh) // stride + 1
        out_w = (ifm.width + 2 * pad_w - kw) // stride + 1
        op = Op.DEPTHWISE_CONV if groups > 1 and groups == ifm.channels == out_channels else Op.CONV
        return self._add(Layer(
            name, op, (source,), (ifm,), Shape(out_channels, out_h, out_w), kernel=(kh, kw),
            stride=(stride, stride), groups=groups, weights=kh * kw * (ifm.channels // groups) * out_channels,
            biases=out_channels if bias else 0))

    def transpose_conv(self, name: str, source: str, out_channels: int, kernel: int, stride: int,
                       output_shape: tuple[int, int] | None = None, bias: bool = True) -> str:
        """Append a transposed convolution. Its output defaults to stride × the input (FSRCNN's choice)."""
        ifm = self.shapes[source]
        out_h, out_w = output_shape or (ifm.height * stride, ifm.width * stride)
        return self._add(Layer(
            name, Op.TRANSPOSE_CONV, (source,), (ifm,), Shape(out_channels, out_h, out_w),
            kernel=(kernel, kernel), stride=(stride, stride),
            weights=kernel * kernel * ifm.channels * out_channels, biases=out_channels if bias else 0))

    def elementwise(self, name: str, op: Op, sources: tuple[str, ...], constants: int = 0) -> str:
        """Append an element-wise operator. Inputs broadcast to the largest shape (NumPy rules per axis)."""
        shapes = [self.shapes[s] for s in sources]
        out = Shape(max(s.channels for s in shapes), max(s.height for s in shapes), max(s.width for s in shapes))
        for shape in shapes:
            for size, full in ((shape.channels, out.channels), (shape.height, out.height), (shape.width, out.width)):
                if size not in (1, full):
                    raise EstimatorError(f"layer {name}: shapes {', '.join(map(str, shapes))} do not broadcast")
        return self._add(Layer(name, op, tuple(sources), tuple(shapes), out, extra_parameters=constants))

    def prelu(self, name: str, source: str) -> str:
        shape = self.shapes[source]
        return self._add(Layer(name, Op.PRELU, (source,), (shape,), shape, extra_parameters=shape.channels))

    def depth_to_space(self, name: str, source: str, block_size: int = 2) -> str:
        ifm = self.shapes[source]
        if ifm.channels % (block_size * block_size):
            raise EstimatorError(f"layer {name}: {ifm.channels} channels are not divisible by "
                                 f"block_size²={block_size * block_size}")
        out = Shape(ifm.channels // block_size**2, ifm.height * block_size, ifm.width * block_size)
        return self._add(Layer(name, Op.DEPTH_TO_SPACE, (source,), (ifm,), out, block_size=block_size))

    def resize(self, name: str, source: str, factor: int, mode: str) -> str:
        ifm = self.shapes[source]
        out = Shape(ifm.channels, ifm.height * factor, ifm.width * factor)
        return self._add(Layer(name, Op.RESIZE, (source,), (ifm,), out, stride=(factor, factor), mode=mode))

    def concat(self, name: str, sources: tuple[str, ...]) -> str:
        shapes = [self.shapes[s] for s in sources]
        if len({(s.height, s.width) for s in shapes}) != 1:
            raise EstimatorError(f"layer {name}: concatenated maps differ in size: {', '.join(map(str, shapes))}")
        out = Shape(sum(s.channels for s in shapes), shapes[0].height, shapes[0].width)
        return self._add(Layer(name, Op.CONCAT, tuple(sources), tuple(shapes), out))

    def build(self, outputs: tuple[str, ...]) -> Network:
        return Network(self.name, self.input_name, self.input_shape, tuple(self.layers), outputs, self.scale)


# SESR from its descriptor -----------------------------------------------------------------------

def build_sesr(descriptor: ModelDescriptor, width: int, height: int) -> Network:
    """Build the collapsed SESR inference graph, the same graph ``upscale.backends`` exports to ONNX.

    Sub(0.5) → Conv 5×5 1→f → m × (Conv 3×3 f→f → PReLU) → Add(long residual) → Conv 5×5 f→s² →
    Add(input broadcast over s² channels) → DepthToSpace(2) once for ×2, twice for ×4 → Clip(0, 1).
    """
    if not descriptor.collapsed:
        raise EstimatorError(f"{descriptor.variant}: only the collapsed inference form can be estimated")
    f, s = descriptor.channels, descriptor.scale
    b = NetworkBuilder(f"{descriptor.variant}-x{s}", Shape(1, height, width), "luma", scale=s)
    centred = b.elementwise("sub", Op.SUB, ("luma",), constants=1)
    x0 = b.conv("head", centred, f, HEAD_KERNEL)
    x = x0
    for i in range(descriptor.blocks):
        x = b.prelu(f"body.{i}.prelu", b.conv(f"body.{i}", x, f, BODY_KERNEL))
    x = b.elementwise("long_residual", Op.ADD, (x, x0))
    x = b.conv("tail", x, s * s, TAIL_KERNEL)
    x = b.elementwise("global_residual", Op.ADD, (x, "luma"))
    for i in range(int(math.log2(s))):
        x = b.depth_to_space(f"d2s.{i}", x, 2)
    x = b.elementwise("clip", Op.CLIP, (x,))
    return b.build((x,))


# Reference networks -----------------------------------------------------------------------------

def _fsrcnn(name: str, d: int, s_channels: int, m: int, scale: int, width: int, height: int) -> Network:
    """FSRCNN (Dong, Loy, Tang, ECCV 2016): feature extraction 5×5 1→d, shrinking 1×1 d→s,
    m mappings 3×3 s→s, expanding 1×1 s→d, all with PReLU, then a 9×9 deconvolution d→1 with
    stride = scale. FSRCNN is (d, s, m) = (56, 12, 4); FSRCNN-s is (32, 5, 1)."""
    b = NetworkBuilder(f"{name}-x{scale}", Shape(1, height, width), "luma", scale=scale)
    x = b.prelu("feature.prelu", b.conv("feature", "luma", d, 5))
    x = b.prelu("shrink.prelu", b.conv("shrink", x, s_channels, 1))
    for i in range(m):
        x = b.prelu(f"map.{i}.prelu", b.conv(f"map.{i}", x, s_channels, 3))
    x = b.prelu("expand.prelu", b.conv("expand", x, d, 1))
    x = b.transpose_conv("deconv", x, 1, 9, scale)
    return b.build((x,))


def _espcn(scale: int, width: int, height: int) -> Network:
    """ESPCN (Shi et al., CVPR 2016): 5×5 1→64 tanh, 3×3 64→32 tanh, 3×3 32→s², pixel shuffle."""
    b = NetworkBuilder(f"espcn-x{scale}", Shape(1, height, width), "luma", scale=scale)
    x = b.elementwise("conv1.tanh", Op.TANH, (b.conv("conv1", "luma", 64, 5),))
    x = b.elementwise("conv2.tanh", Op.TANH, (b.conv("conv2", x, 32, 3),))
    x = b.conv("conv3", x, scale * scale, 3)
    for i in range(int(math.log2(scale))):
        x = b.depth_to_space(f"d2s.{i}", x, 2)
    return b.build((x,))


def _vdsr(scale: int, width: int, height: int) -> Network:
    """VDSR (Kim, Lee, Lee, CVPR 2016): bicubic upsampling of the luma, then 20 3×3 convs of 64
    channels with ReLU (first 1→64, last 64→1) and a global residual add, all at output size."""
    b = NetworkBuilder(f"vdsr-x{scale}", Shape(1, height, width), "luma", scale=scale)
    up = b.resize("bicubic", "luma", scale, "cubic")
    x = b.elementwise("conv.0.relu", Op.RELU, (b.conv("conv.0", up, 64, 3),))
    for i in range(1, 19):
        x = b.elementwise(f"conv.{i}.relu", Op.RELU, (b.conv(f"conv.{i}", x, 64, 3),))
    x = b.conv("conv.19", x, 1, 3)
    x = b.elementwise("residual", Op.ADD, (x, up))
    return b.build((x,))


def _edsr_baseline(scale: int, width: int, height: int) -> Network:
    """EDSR-baseline (Lim et al., CVPRW 2017) on RGB: mean subtraction, 3×3 conv 3→64, then 16
    residual blocks (3×3 conv, ReLU, 3×3 conv, skip add), a 3×3 conv and a global skip add. The
    upsampler has one stage (3×3 conv 64→256, pixel shuffle 2) per factor of 2, followed by a
    3×3 conv 64→3 and mean addition."""
    b = NetworkBuilder(f"edsr-baseline-x{scale}", Shape(3, height, width), "rgb", scale=scale)
    x = b.elementwise("sub_mean", Op.SUB, ("rgb",), constants=3)
    head = b.conv("head", x, 64, 3)
    x = head
    for i in range(16):
        y = b.elementwise(f"block.{i}.relu", Op.RELU, (b.conv(f"block.{i}.conv1", x, 64, 3),))
        y = b.conv(f"block.{i}.conv2", y, 64, 3)
        x = b.elementwise(f"block.{i}.add", Op.ADD, (y, x))
    x = b.conv("body_end", x, 64, 3)
    x = b.elementwise("global_skip", Op.ADD, (x, head))
    for i in range(int(math.log2(scale))):
        x = b.depth_to_space(f"up.{i}.shuffle", b.conv(f"up.{i}.conv", x, 256, 3), 2)
    x = b.conv("tail", x, 3, 3)
    x = b.elementwise("add_mean", Op.ADD, (x,), constants=3)
    return b.build((x,))


REFERENCE_NETWORKS: dict[str, object] = {
    "fsrcnn": lambda scale, w, h: _fsrcnn("fsrcnn", 56, 12, 4, scale, w, h),
    "fsrcnn-small": lambda scale, w, h: _fsrcnn("fsrcnn-small", 32, 5, 1, scale, w, h),
    "espcn": _espcn,
    "vdsr": _vdsr,
    "edsr-baseline": _edsr_baseline,
}


def network_names() -> tuple[str, ...]:
    """Command-line names of the built-in networks: SESR variants, then reference networks."""
    return tuple(VARIANTS) + tuple(REFERENCE_NETWORKS)


def build_network(name: str, scale: int, width: int, height: int) -> Network:
    """Build a built-in network by command-line name for a width×height low-resolution input."""
    if scale not in (2, 4):
        raise EstimatorError(f"scale must be 2 or 4, got {scale}")
    if width < 1 or height < 1:
        raise EstimatorError(f"input size must be positive, got {width}x{height}")
    key = name.lower()
    if key in VARIANTS:
        return build_sesr(ModelDescriptor.for_variant(key, scale), width, height)
    if key in REFERENCE_NETWORKS:
        return REFERENCE_NETWORKS[key](scale, width, height)
    raise UnknownNetworkError(name, network_names())


# Activation fusion --------------------------------------------------------------------------------

def fuse_activations(network: Network) -> Network:
    """Fold each ReLU or Clip into the layer that produces its input, as NPU compilers do.

    A fold happens only when the producer is a layer (not the network input), has no activation
    yet, and the activation is its only consumer. Layers that read the activation then read the
    producer, whose label becomes for example ``conv+relu``.
    """
    layers = list(network.layers)
    renamed: dict[str, str] = {}
    result: list[Layer] = []
    for layer in layers:
        layer = replace(layer, inputs=tuple(renamed.get(n, n) for n in layer.inputs))
        if layer.op in FUSABLE_ACTIVATIONS and len(layer.inputs) == 1 and result:
            producer_index = next((i for i, p in enumerate(result) if p.name == layer.inputs[0]), None)
            if producer_index is not None:
                producer = result[producer_index]
                only_consumer = sum(producer.name in other.inputs for other in layers) == 1
                if only_consumer and producer.activation is None and producer.op not in DATA_MOVEMENT_OPS | {Op.RESIZE}:
                    result[producer_index] = replace(producer, activation=layer.op)
                    renamed[layer.name] = producer.name
                    continue
        result.append(layer)
    outputs = tuple(renamed.get(n, n) for n in network.outputs)
    return replace(network, layers=tuple(result), outputs=outputs)
