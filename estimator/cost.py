"""Per-layer and per-network cost on an NPU: MACs, bytes per memory, cycles, FPS.

The model follows the structure of Arm's Vela 5.2.0 performance estimate, restated:

* compute cycles of a convolution come from the MAC array's granularity. Outputs are rounded up
  to an OFM micro-block, kernel elements and input channels to the traversal's step, and the
  cheapest traversal is used. The output unit needs ``output_cycles`` per output element, and
  the slower of the two bounds the layer;
* element-wise operators cost output-unit cycles per output element;
* each transfer is inflated by burst efficiency, ``bytes × burst / min(burst, contiguous run)``,
  and divided by the memory's bytes per NPU cycle;
* a layer takes ``max(compute cycles, cycles of each memory)``; the network takes the sum.

Feature maps are placed layer by layer. The network input and output and the tensors a CPU
operator touches live in the arena's memory. Other tensors go to on-chip SRAM while they fit in
the cache (first come, first served over their lifetimes) and to external memory otherwise.
NOTE: Vela also cascades consecutive operators in stripes to keep some intermediates on chip.
This baseline does not, so with a small cache it counts more external traffic than Vela.
``estimator.fusion`` models fused, tiled execution as a separate what-if.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from .graph import MAC_OPS, Layer, Network, Op, Shape, fuse_activations
from .hardware import SCALE_BIAS_BYTES, MemoryKind, MemorySpec, NpuSpec, Precision

__all__ = ["LayerCost", "NetworkCost", "estimate", "layer_cost", "mac_cycles", "place_tensors",
           "TensorPlacement", "npu_support", "burst_scaled_bytes"]


@dataclass(frozen=True)
class LayerCost:
    """Cost of one layer. Bytes are raw bytes moved; cycles are NPU cycles."""

    name: str
    op: str
    """Operator label, with a fused activation, for example ``conv+relu``."""
    target: str
    """``npu``, or ``cpu`` for an operator the NPU cannot run (its cycles are then 0, excluded)."""
    output_shape: tuple[int, int, int]
    """Output feature map as (channels, height, width)."""
    macs: int
    """Algorithmic MACs."""
    executed_macs: int
    """MACs the NPU performs (zero-inserted transposed convolutions included)."""
    params: int
    weight_bytes: int
    """Weights plus scale and bias records."""
    ifm_bytes: int
    """Input feature maps, each read once."""
    ofm_bytes: int
    compute_cycles: float
    mac_cycles: float
    output_cycles: float
    sram_bytes: int
    """Bytes read and written in on-chip SRAM, halo re-reads included."""
    dram_bytes: int
    flash_bytes: int
    memory_cycles: float
    """Cycles of the busiest memory, burst efficiency included."""
    limiting_memory: str
    """Name of the busiest memory, or an empty string when the layer moves no data."""
    cycles: float
    """max(compute_cycles, memory_cycles)."""
    bound: str
    """``compute``, ``memory``, or ``cpu`` for layers left to the CPU."""
    utilisation: float
    """Executed MACs over cycles × MACs per cycle; 0 for layers without MACs."""
    traversal: str = ""
    note: str = ""
    """Reason the layer runs on the CPU and the NPU-friendly rewrite, when there is one."""


@dataclass(frozen=True)
class NetworkCost:
    """Cost of one network at one input size on one NPU and precision."""

    model: str
    scale: int
    input_size: tuple[int, int]
    """Width, height of the low-resolution input in pixels."""
    npu: str
    system: str
    memory_mode: str
    precision: str
    clock_hz: float
    macs: int
    executed_macs: int
    params: int
    cycles: float
    """NPU cycles per frame: the sum of the NPU layers' cycles; CPU layers are excluded."""
    fps: float
    """clock_hz / cycles: frames per second of the NPU part alone."""
    sram_bytes: int
    dram_bytes: int
    flash_bytes: int
    bound: str
    """``compute`` or ``memory``: which kind of layer takes more of the cycles."""
    layers: tuple[LayerCost, ...]
    cpu_layers: tuple[str, ...]
    cpu_bytes: int
    """Bytes the CPU layers read and write; their time is not in ``cycles``."""
    arena_peak_bytes: int
    """Largest sum of live feature maps placed in on-chip SRAM."""
    onchip_bytes: int | None
    warnings: tuple[str, ...] = ()

    def dominant_layers(self, count: int = 3) -> tuple[LayerCost, ...]:
        """Return the NPU layers with the most cycles, most first."""
        npu_layers = [c for c in self.layers if c.target == "npu"]
        return tuple(sorted(npu_layers, key=lambda c: c.cycles, reverse=True)[:count])


# Operator support ---------------------------------------------------------------------------------

def npu_support(layer: Layer, npu: NpuSpec) -> tuple[bool, str]:
    """Return whether ``npu`` runs ``layer``, and the note to show when it does not."""
    if layer.op.value in npu.cpu_ops:
        if layer.op is Op.DEPTH_TO_SPACE:
            c = layer.input_shapes[0].channels
            return False, (f"not supported by {npu.name}; runs on the CPU, excluded from NPU cycles. "
                           f"NPU rewrite: a fixed one-hot {layer.block_size}×{layer.block_size} stride-"
                           f"{layer.block_size} transposed convolution {c}→{c // layer.block_size**2} channels")
        return False, f"not supported by {npu.name}; runs on the CPU, excluded from NPU cycles"
    if layer.op is Op.RESIZE and layer.mode not in npu.resize_modes:
        return False, (f"{layer.mode} resize is not supported by {npu.name}; runs on the CPU, excluded "
                       f"from NPU cycles. NPU rewrite: a {'bilinear' if 'linear' in npu.resize_modes else 'nearest'} "
                       f"resize or a fixed transposed convolution")
    if layer.op is Op.TRANSPOSE_CONV and max(layer.stride) > npu.max_transpose_conv_stride:
        return False, (f"transposed convolution stride {layer.stride[0]} exceeds {npu.name}'s maximum "
                       f"{npu.max_transpose_conv_stride}; runs on the CPU, excluded from NPU cycles. NPU "
                       f"rewrite: a stride-1 convolution to s²·C_out channels followed by depth-to-space")
    return True, ""


def depth_to_space_rewrite(layer: Layer) -> Layer:
    """Return the one-hot transposed convolution that computes ``layer``'s depth-to-space exactly."""
    b = layer.block_size
    c_in = layer.input_shapes[0].channels
    return replace(layer, op=Op.TRANSPOSE_CONV, kernel=(b, b), stride=(b, b),
                   weights=b * b * c_in * (c_in // (b * b)), biases=0, block_size=1)


# Tensor placement ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorPlacement:
    """Home memory and layout of every tensor."""

    homes: Mapping[str, MemorySpec]
    bricked: frozenset[str]
    """Tensors stored in 16-channel bricks (Vela's NHCWB16); the others are NHWC."""
    arena_peak_bytes: int


def _tensor_bytes(shape: Shape, precision: Precision) -> int:
    return shape.elements * precision.activation_bytes


def place_tensors(network: Network, npu: NpuSpec, precision: Precision, cpu_layers: frozenset[str]) -> TensorPlacement:
    """Assign each tensor to SRAM or external memory, layer by layer (see the module docstring)."""
    arena = npu.sram if npu.arena_in_sram else npu.external
    boundary = {network.input_name, *network.outputs}
    for layer in network.layers:
        if layer.name in cpu_layers:
            boundary.update(layer.inputs)
            boundary.add(layer.name)

    last_use = {}
    for index, layer in enumerate(network.layers):
        for name in layer.inputs:
            last_use[name] = index

    homes: dict[str, MemorySpec] = {network.input_name: arena}
    live: dict[str, int] = {}
    peak = 0
    if npu.arena_in_sram:
        live[network.input_name] = _tensor_bytes(network.input_shape, precision)
    for index, layer in enumerate(network.layers):
        size = _tensor_bytes(layer.output_shape, precision)
        if npu.arena_in_sram:
            homes[layer.name] = npu.sram
            live[layer.name] = size
        elif layer.name in boundary:
            homes[layer.name] = arena
        elif npu.onchip_bytes is None or sum(live.values()) + size <= npu.onchip_bytes:
            homes[layer.name] = npu.sram
            live[layer.name] = size
        else:
            homes[layer.name] = npu.external
        peak = max(peak, sum(live.values()))
        for name in [n for n in live if last_use.get(n, -1) <= index and n not in network.outputs]:
            del live[name]

    bricked = frozenset(layer.name for layer in network.layers
                        if layer.name not in boundary and layer.output_shape.channels % 16 == 0)
    return TensorPlacement(MappingProxyType(homes), bricked, peak)


# Compute cycles -----------------------------------------------------------------------------------

def _round_up(value: int, granule: int) -> int:
    return -(-value // granule) * granule


def _subkernel_elements(kernel: tuple[int, int], limit: tuple[int, int]) -> list[int]:
    """Element counts of the pieces a kernel is split into, at most ``limit`` rows × columns each."""
    pieces = []
    for y in range(0, kernel[0], limit[0]):
        for x in range(0, kernel[1], limit[1]):
            pieces.append(min(limit[0], kernel[0] - y) * min(limit[1], kernel[1] - x))
    return pieces


def mac_cycles(layer: Layer, npu: NpuSpec, precision: Precision) -> tuple[float, str]:
    """MAC-array cycles of a convolution and the traversal that gives them.

    cycles = rounded outputs × rounded kernel elements × rounded input channels
             / (macs_per_cycle × rate), minimised over traversals and output granules.
    A transposed convolution runs as a convolution over its zero-inserted input, so its work is
    counted per output element. Winograd (Ethos-N78) replaces k_h·k_w MACs per output by 16 MACs
    per 2×2 output block and 3×3 piece of the kernel.
    """
    out = layer.output_shape
    c_in = layer.input_shapes[0].channels // layer.groups
    depthwise = layer.op is Op.DEPTHWISE_CONV
    best, best_name = math.inf, ""
    for traversal in npu.traversals_for(precision):
        if depthwise and traversal.name == "depth_first":
            continue
        cin = _round_up(c_in, traversal.channel_granule)
        for gh, gw, gc in npu.output_granules:
            channels = _round_up(out.channels, gc)
            if traversal.name == "winograd":
                two_d = min(layer.kernel) > 1 and layer.stride == (1, 1) and layer.op is Op.CONV
                if not two_d:
                    continue
                blocks = math.ceil(out.height / 2) * math.ceil(out.width / 2)
                pieces = math.ceil(layer.kernel[0] / 3) * math.ceil(layer.kernel[1] / 3)
                work = blocks * 16 * pieces * cin * channels
            else:
                positions = _round_up(out.height, gh) * _round_up(out.width, gw)
                kernel = sum(_round_up(n, traversal.kernel_granule)
                             for n in _subkernel_elements(layer.kernel, npu.max_subkernel))
                work = positions * channels * kernel * cin
            cycles = work / (npu.macs_per_cycle * traversal.rate)
            if cycles < best:
                best, best_name = cycles, traversal.name
    if best_name == "":  # depthwise on an engine with only depth-first traversals
        traversal = npu.traversals_for(precision)[0]
        best = layer.executed_macs * traversal.channel_granule / (npu.macs_per_cycle * traversal.rate)
        best_name = traversal.name
    return best, best_name


def _output_unit_cycles(layer: Layer, npu: NpuSpec, precision: Precision) -> float:
    """Output-unit cycles: the per-element rate of the operator (or its passes) × output elements."""
    rates = npu.output_rates[precision]
    activation = {None: 0.0, Op.RELU: rates.relu, Op.CLIP: rates.relu}[layer.activation]
    op = layer.op
    if op in MAC_OPS:
        per_element = max(rates.mac, activation)
    elif op in (Op.ADD, Op.SUB):
        per_element = max(rates.add_sub, activation)
    elif op in (Op.MUL, Op.LEAKY_RELU):
        per_element = max(rates.mul, activation)
    elif op is Op.PRELU:
        # Two passes (Mul by the slopes, then Maximum with the input) when lowered, else one.
        per_element = rates.mul + rates.other if npu.prelu_as_mul_max else max(rates.mul, rates.other)
    elif op in (Op.SIGMOID, Op.TANH):
        per_element = max(rates.other, rates.lut)
    elif op in (Op.RELU, Op.CLIP):
        per_element = max(rates.other, rates.relu)
    else:  # data movement and resize run through the output unit once per output element
        per_element = max(rates.other, activation)
    return per_element * layer.output_shape.elements


# Memory traffic -----------------------------------------------------------------------------------

def burst_scaled_bytes(memory: MemorySpec, raw_bytes: float, run_bytes: float) -> float:
    """Bytes a transfer occupies on ``memory``: every burst is paid in full, so runs of contiguous
    bytes shorter than the burst length inflate the transfer by burst / run."""
    return raw_bytes * memory.burst_length_bytes / max(1.0, min(memory.burst_length_bytes, run_bytes))


@dataclass
class _Traffic:
    """Raw and burst-scaled bytes per memory for one layer."""

    raw: dict[str, int]
    effective: dict[str, float]
    specs: dict[str, MemorySpec]

    def add(self, memory: MemorySpec, raw_bytes: float, run_bytes: float) -> None:
        effective = burst_scaled_bytes(memory, raw_bytes, run_bytes)
        self.raw[memory.name] = self.raw.get(memory.name, 0) + int(round(raw_bytes))
        self.effective[memory.name] = self.effective.get(memory.name, 0.0) + effective
        self.specs[memory.name] = memory


def _run_bytes(shape: Shape, bricked: bool, block_width: int, precision: Precision) -> int:
    """Contiguous bytes of one block row: whole depth in NHWC, one 16-channel brick in NHCWB16."""
    depth = min(shape.channels, 16) if bricked else shape.channels
    return depth * min(block_width, shape.width) * precision.activation_bytes


def _ifm_read_factor(layer: Layer, npu: NpuSpec) -> tuple[float, int]:
    """IFM elements fetched per IFM element (halo re-reads, sub-kernel passes) and the IFM block width."""
    out, ifm = layer.output_shape, layer.input_shapes[0]
    bh, bw = min(npu.ofm_block[0], out.height), min(npu.ofm_block[1], out.width)
    if layer.op not in MAC_OPS:
        return 1.0, bw
    sy, sx = layer.stride
    if layer.op is Op.TRANSPOSE_CONV:
        ih = min(ifm.height, math.ceil((bh + layer.kernel[0] - 1) / sy))
        iw = min(ifm.width, math.ceil((bw + layer.kernel[1] - 1) / sx))
    else:
        ih = min(ifm.height, (bh - 1) * sy + layer.kernel[0])
        iw = min(ifm.width, (bw - 1) * sx + layer.kernel[1])
    blocks = math.ceil(out.height / bh) * math.ceil(out.width / bw)
    passes = len(_subkernel_elements(layer.kernel, npu.max_subkernel))
    fetched = blocks * ih * iw * passes
    return max(1.0, fetched / (ifm.height * ifm.width)), iw


def _layer_traffic(layer: Layer, npu: NpuSpec, precision: Precision, placement: TensorPlacement,
                   network: Network) -> _Traffic:
    traffic = _Traffic({}, {}, {})
    factor, ifm_block_width = _ifm_read_factor(layer, npu)
    bw = min(npu.ofm_block[1], layer.output_shape.width)

    # Inputs
    for index, (name, shape) in enumerate(zip(layer.inputs, layer.input_shapes)):
        home = placement.homes[name]
        reads = factor if index == 0 else 1.0
        if layer.op is Op.PRELU and npu.prelu_as_mul_max:
            reads = 2.0  # read by the Mul pass and by the Maximum pass
        traffic.add(home, _tensor_bytes(shape, precision) * reads,
                    _run_bytes(shape, name in placement.bricked, ifm_block_width if index == 0 else bw, precision))

    # Output, and the intermediate of a lowered PReLU (written once, read once, kept with the output)
    out_bytes = _tensor_bytes(layer.output_shape, precision)
    home = placement.homes[layer.name]
    run = _run_bytes(layer.output_shape, layer.name in placement.bricked, bw, precision)
    traffic.add(home, out_bytes, run)
    if layer.op is Op.PRELU and npu.prelu_as_mul_max:
        traffic.add(home, 2 * out_bytes, run)

    # Weights and scale/bias records, read once from the constant memory
    weight_bytes = _weight_bytes(layer, precision)
    if weight_bytes:
        traffic.add(npu.sram if npu.const_in_sram else npu.external, weight_bytes, math.inf)
    return traffic


def _weight_bytes(layer: Layer, precision: Precision) -> int:
    if layer.op not in MAC_OPS:
        return 0
    return layer.weights * precision.weight_bytes + layer.output_shape.channels * SCALE_BIAS_BYTES


# Layer and network cost ---------------------------------------------------------------------------

def layer_cost(layer: Layer, npu: NpuSpec, precision: Precision, placement: TensorPlacement,
               network: Network, *, rewrite_unsupported: bool = False) -> LayerCost:
    """Cost of one layer of ``network`` with tensors placed by ``placement``."""
    runs_on_npu, note = npu_support(layer, npu)
    costed = layer
    if not runs_on_npu and rewrite_unsupported and layer.op is Op.DEPTH_TO_SPACE:
        costed = depth_to_space_rewrite(layer)
        runs_on_npu = True
        note = f"costed as its NPU rewrite: one-hot {layer.block_size}×{layer.block_size} stride-{layer.block_size} transposed convolution"

    ifm_bytes = sum(_tensor_bytes(s, precision) for s in layer.input_shapes)
    ofm_bytes = _tensor_bytes(layer.output_shape, precision)
    common = dict(name=layer.name, op=layer.label, output_shape=(layer.output_shape.channels, layer.output_shape.height, layer.output_shape.width), macs=layer.macs,
                  params=layer.parameters, weight_bytes=_weight_bytes(costed, precision),
                  ifm_bytes=ifm_bytes, ofm_bytes=ofm_bytes, note=note)

    if not runs_on_npu:
        return LayerCost(target="cpu", executed_macs=layer.executed_macs, compute_cycles=0.0, mac_cycles=0.0,
                         output_cycles=0.0, sram_bytes=0, dram_bytes=0, flash_bytes=0, memory_cycles=0.0,
                         limiting_memory="", cycles=0.0, bound="cpu", utilisation=0.0, **common)

    # Compute
    mac, traversal = (mac_cycles(costed, npu, precision) if costed.op in MAC_OPS else (0.0, ""))
    output = _output_unit_cycles(costed, npu, precision)
    compute = max(mac, output)

    # Memory
    traffic = _layer_traffic(costed, npu, precision, placement, network)
    per_memory = {name: traffic.effective[name] / npu.bytes_per_cycle(spec) for name, spec in traffic.specs.items()}
    limiting = max(per_memory, key=per_memory.get) if per_memory else ""
    memory = per_memory.get(limiting, 0.0)
    by_kind = {kind: sum(b for n, b in traffic.raw.items() if traffic.specs[n].kind is kind) for kind in MemoryKind}

    cycles = max(compute, memory)
    executed = costed.executed_macs
    return LayerCost(
        target="npu", executed_macs=executed, compute_cycles=compute, mac_cycles=mac, output_cycles=output,
        sram_bytes=by_kind[MemoryKind.SRAM], dram_bytes=by_kind[MemoryKind.DRAM],
        flash_bytes=by_kind[MemoryKind.FLASH], memory_cycles=memory, limiting_memory=limiting, cycles=cycles,
        bound="compute" if compute >= memory else "memory",
        utilisation=executed / (cycles * npu.macs_per_cycle) if executed and cycles else 0.0,
        traversal=traversal, **common)


def estimate(network: Network, npu: NpuSpec, precision: Precision | str = Precision.INT8, *,
             rewrite_unsupported: bool = False) -> NetworkCost:
    """Estimate ``network`` on ``npu``: per-layer costs and the per-frame summary.

    With ``rewrite_unsupported`` a depth-to-space the NPU cannot run is costed as its one-hot
    transposed-convolution rewrite on the NPU instead of being left to the CPU.
    """
    precision = Precision(precision)
    npu.traversals_for(precision)  # raises UnsupportedPrecisionError early
    fused = fuse_activations(network)

    # Placement needs to know which layers stay on the CPU
    cpu_layers = frozenset(
        layer.name for layer in fused.layers
        if not npu_support(layer, npu)[0] and not (rewrite_unsupported and layer.op is Op.DEPTH_TO_SPACE))
    placement = place_tensors(fused, npu, precision, cpu_layers)
    layers = tuple(layer_cost(layer, npu, precision, placement, fused, rewrite_unsupported=rewrite_unsupported)
                   for layer in fused.layers)

    return summarize(network, npu, precision, layers, placement.arena_peak_bytes)


def summarize(network: Network, npu: NpuSpec, precision: Precision, layers: tuple[LayerCost, ...],
              arena_peak_bytes: int) -> NetworkCost:
    """Add up layer costs into a ``NetworkCost``."""
    npu_layers = [c for c in layers if c.target == "npu"]
    cpu = [c for c in layers if c.target == "cpu"]
    cycles = sum(c.cycles for c in npu_layers)
    compute_share = sum(c.cycles for c in npu_layers if c.bound == "compute")

    warnings = []
    if npu.arena_in_sram and npu.onchip_bytes is not None and arena_peak_bytes > npu.onchip_bytes:
        warnings.append(f"feature maps need {arena_peak_bytes / 2**20:.1f} MiB of SRAM at their peak but "
                        f"{npu.memory_mode} has {npu.onchip_bytes / 2**20:.2f} MiB")
    if cpu:
        warnings.append(f"{len(cpu)} layer(s) run on the CPU and are excluded from NPU cycles and FPS: "
                        + ", ".join(c.name for c in cpu))

    return NetworkCost(
        model=network.name, scale=network.scale,
        input_size=(network.input_shape.width, network.input_shape.height),
        npu=npu.name, system=npu.system, memory_mode=npu.memory_mode, precision=precision.value,
        clock_hz=npu.clock_hz, macs=network.macs, executed_macs=sum(c.executed_macs for c in npu_layers),
        params=network.parameters, cycles=cycles, fps=npu.clock_hz / cycles if cycles else math.inf,
        sram_bytes=sum(c.sram_bytes for c in layers), dram_bytes=sum(c.dram_bytes for c in layers),
        flash_bytes=sum(c.flash_bytes for c in layers),
        bound="compute" if compute_share >= cycles - compute_share else "memory",
        layers=layers, cpu_layers=tuple(c.name for c in cpu),
        cpu_bytes=sum(c.ifm_bytes + c.ofm_bytes for c in cpu), arena_peak_bytes=arena_peak_bytes,
        onchip_bytes=npu.onchip_bytes, warnings=tuple(warnings))
