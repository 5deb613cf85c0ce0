"""What-if: consecutive layers fused and processed in tiles held in on-chip memory (line buffers).

A fused group streams rows: every tensor inside it keeps only the rows its consumers still need
(kernel window plus the skew of skip connections, plus one OFM block of rows), so its
intermediate feature maps never leave the chip. When full-width rows do not fit the on-chip
budget, the group is cut into column tiles whose halo columns are recomputed, which costs
compute and can make the group slower than running its layers one by one.

The planner therefore treats each run of NPU layers between CPU layers on its own. It cuts the
run into consecutive groups, each either fused or left layer by layer at its baseline cost, and
keeps the cut with the fewest cycles, found by dynamic programming over the cut points. Every
group in the result states whether it was fused and why.

NOTE: this is an analytical bound on what a fusing compiler could reach, not what Vela 5.2.0
does; Vela cascades some operators but keeps most SR feature maps in DRAM with a 384 KiB cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .cost import LayerCost, NetworkCost, burst_scaled_bytes, estimate
from .graph import Layer, Network, Op, fuse_activations
from .hardware import NpuSpec, Precision

__all__ = ["FusedGroup", "FusedCost", "estimate_fused", "MIN_TILE_COLUMNS"]

MIN_TILE_COLUMNS = 8
"""Narrowest tile, in output columns of a group, that the planner tries."""


@dataclass(frozen=True)
class FusedGroup:
    """Consecutive layers of the plan: one fused group, or a run of layers left layer by layer."""

    layers: tuple[str, ...]
    fused: bool
    reason: str
    """The planner's reason for fusing these layers or leaving them layer by layer, with the cycles compared."""
    tile_columns: int
    """Output columns per tile, which is the full width when rows fit on chip and for unfused runs."""
    tiles: int
    buffer_bytes: int
    """On-chip bytes for line buffers and resident weights, or 0 for unfused runs."""
    recompute_factor: float
    """Executed MACs over the unfused count with the halo columns of tiles, or 1 for unfused runs."""
    dram_bytes: int
    """External-memory bytes: tensors crossing the group boundary and weights (fused), or the
    baseline's external bytes of the layers (unfused)."""
    cycles: float
    layer_by_layer_cycles: float
    """Baseline cycles of the same layers, for comparison."""


@dataclass(frozen=True)
class FusedCost:
    """Fused what-if next to the layer-by-layer baseline."""

    baseline: NetworkCost
    groups: tuple[FusedGroup, ...]
    """NPU layers in order, cut into fused groups and unfused runs. CPU layers are in no group."""
    cycles: float
    fps: float
    dram_bytes: int
    """External-memory bytes per frame (DRAM or flash behind the arena and weights)."""
    buffer_bytes: int
    """Largest on-chip buffer of any fused group."""
    onchip_bytes: int | None

    @property
    def fused_groups(self) -> tuple[FusedGroup, ...]:
        return tuple(group for group in self.groups if group.fused)


# Group geometry -----------------------------------------------------------------------------------

def _ratio_and_radius(layer: Layer) -> tuple[float, float, int, int]:
    """Input/output size ratio (rows, columns) and the input rows/columns of context on each side."""
    ifm, out = layer.input_shapes[0], layer.output_shape
    ratio_h, ratio_w = ifm.height / out.height, ifm.width / out.width
    kh, kw = layer.kernel
    if layer.op is Op.TRANSPOSE_CONV:
        return ratio_h, ratio_w, math.ceil((kh // 2) / layer.stride[0]), math.ceil((kw // 2) / layer.stride[1])
    if layer.op is Op.RESIZE:
        # Input pixels each side that one output pixel reads: cubic 2, linear 1, nearest 0
        context = {"cubic": 2, "linear": 1}.get(layer.mode, 0)
        return ratio_h, ratio_w, context, context
    return ratio_h, ratio_w, kh // 2, kw // 2


class _Geometry:
    """Lead (rows and columns produced ahead of the group output) of every tensor in a group."""

    def __init__(self, layers: list[Layer]) -> None:
        self.layers = layers
        names = {layer.name for layer in layers}
        self.lead_rows: dict[str, float] = {}
        self.lead_cols: dict[str, float] = {}
        self.consumers: dict[str, list[Layer]] = {}
        for layer in reversed(layers):
            self.lead_rows.setdefault(layer.name, 0.0)
            self.lead_cols.setdefault(layer.name, 0.0)
            rh, rw, ch, cw = _ratio_and_radius(layer)
            for name in layer.inputs:
                self.consumers.setdefault(name, []).append(layer)
                self.lead_rows[name] = max(self.lead_rows.get(name, 0.0), self.lead_rows[layer.name] * rh + ch)
                self.lead_cols[name] = max(self.lead_cols.get(name, 0.0), self.lead_cols[layer.name] * rw + cw)
        self.inputs = [n for n in self.consumers if n not in names]

    def rows_kept(self, tensor: str, height: int, stripe_rows: int) -> int:
        window = 1.0
        for layer in self.consumers.get(tensor, []):
            rh, _, ch, _ = _ratio_and_radius(layer)
            window = max(window, self.lead_rows[tensor] - (self.lead_rows[layer.name] * rh - ch) + 1)
        return min(height, math.ceil(window) + stripe_rows - 1)

    def tile_columns(self, tensor: str, width: int, tile: int, reference_width: int) -> int:
        """Columns of ``tensor`` held for one tile of ``tile`` output columns, halo on both sides."""
        return min(width, math.ceil(tile * width / reference_width + 2 * self.lead_cols.get(tensor, 0.0)))

    def computed_columns(self, tensor: str, width: int, tiles: int) -> int:
        """Columns of ``tensor`` produced over all tiles: each of the tiles − 1 inner tile edges adds
        the halo on both of its sides."""
        return min(tiles * width, width + 2 * (tiles - 1) * math.ceil(self.lead_cols.get(tensor, 0.0)))


# One fused group ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Fusion:
    """Cost of fusing one list of layers. When ``fits`` is False only ``buffer_bytes`` is set."""

    fits: bool
    buffer_bytes: int
    """Buffer at the chosen tile, or at MIN_TILE_COLUMNS when even that does not fit."""
    tile_columns: int = 0
    tiles: int = 0
    recompute_factor: float = 1.0
    external_bytes: int = 0
    cycles: float = math.inf


def _buffer_bytes(geometry: _Geometry, layers: list[Layer], network: Network, npu: NpuSpec,
                  precision: Precision, tile: int, reference_width: int) -> int:
    tensors = [*geometry.inputs, *(layer.name for layer in layers)]
    total = 0
    for name in tensors:
        shape = network.shape_of(name)
        rows = geometry.rows_kept(name, shape.height, npu.ofm_block[0])
        cols = geometry.tile_columns(name, shape.width, tile, reference_width)
        total += rows * cols * shape.channels * precision.activation_bytes
    weights = sum(layer.weights * precision.weight_bytes for layer in layers)
    return total + weights


def _fuse(layers: list[Layer], network: Network, npu: NpuSpec, precision: Precision,
          costs: dict[str, LayerCost]) -> _Fusion:
    geometry = _Geometry(layers)
    reference = layers[-1].output_shape.width
    budget = npu.onchip_bytes if npu.onchip_bytes is not None else math.inf

    def buffer(tile: int) -> int:
        return _buffer_bytes(geometry, layers, network, npu, precision, tile, reference)

    # Find the widest tile that fits, from the full width down to MIN_TILE_COLUMNS by binary search
    narrowest = min(MIN_TILE_COLUMNS, reference)
    if buffer(reference) <= budget:
        tile = reference
    elif buffer(narrowest) > budget:
        return _Fusion(fits=False, buffer_bytes=buffer(narrowest))
    else:
        low, high = narrowest, reference
        while low < high:
            middle = (low + high + 1) // 2
            if buffer(middle) <= budget:
                low = middle
            else:
                high = middle - 1
        tile = low
    tiles = math.ceil(reference / tile)
    tile = math.ceil(reference / tiles)  # even out the tiles: same count, smaller buffers

    # Compute with recomputed halo columns, and on-chip traffic
    sram_rate = npu.bytes_per_cycle(npu.sram)
    busy = executed = useful = 0.0
    for layer in layers:
        width = layer.output_shape.width
        factor = geometry.computed_columns(layer.name, width, tiles) / width
        cost = costs[layer.name]
        busy += max(cost.compute_cycles * factor, (cost.ifm_bytes + cost.ofm_bytes) * factor / sram_rate)
        executed += cost.executed_macs * factor
        useful += cost.executed_macs

    # Tensors crossing the group boundary go through the arena memory, tile by tile
    arena = npu.sram if npu.arena_in_sram else npu.external
    bytes_per_element = precision.activation_bytes
    boundary_raw = boundary_scaled = 0.0
    for name in geometry.inputs:
        shape = network.shape_of(name)
        raw = shape.elements * bytes_per_element * geometry.computed_columns(name, shape.width, tiles) / shape.width
        run = geometry.tile_columns(name, shape.width, tile, reference) * shape.channels * bytes_per_element
        boundary_raw += raw
        boundary_scaled += burst_scaled_bytes(arena, raw, run)
    names = {layer.name for layer in layers}
    consumed_outside = {n for layer in network.layers if layer.name not in names for n in layer.inputs}
    for layer in layers:
        if layer.name in consumed_outside or layer.name in network.outputs:
            shape = layer.output_shape
            raw = shape.elements * bytes_per_element
            run = min(shape.width, math.ceil(tile * shape.width / reference)) * shape.channels * bytes_per_element
            boundary_raw += raw
            boundary_scaled += burst_scaled_bytes(arena, raw, run)

    # Weights are read once per frame from the constant memory and stay in the buffer
    weights = sum(costs[layer.name].weight_bytes for layer in layers)
    external_raw = external_scaled = 0.0
    if npu.arena_in_sram:
        busy += boundary_scaled / sram_rate
    else:
        external_raw += boundary_raw
        external_scaled += boundary_scaled
    if not npu.const_in_sram:
        external_raw += weights
        external_scaled += weights

    return _Fusion(
        fits=True, buffer_bytes=buffer(tile), tile_columns=tile, tiles=tiles,
        recompute_factor=executed / useful if useful else 1.0, external_bytes=int(round(external_raw)),
        cycles=max(busy, external_scaled / npu.bytes_per_cycle(npu.external)))


# Planner ------------------------------------------------------------------------------------------

def estimate_fused(network: Network, npu: NpuSpec, precision: Precision | str = Precision.INT8, *,
                   rewrite_unsupported: bool = False) -> FusedCost:
    """Estimate ``network`` with the cheapest mix of fused, tiled groups and unfused layers.

    See the module docstring. The plan never takes more cycles than the layer-by-layer baseline,
    because leaving every layer unfused is one of the plans compared.
    """
    precision = Precision(precision)
    baseline = estimate(network, npu, precision, rewrite_unsupported=rewrite_unsupported)
    fused = fuse_activations(network)
    costs = {c.name: c for c in baseline.layers}

    # Runs of NPU layers between CPU layers
    segments: list[list[Layer]] = [[]]
    for layer in fused.layers:
        if costs[layer.name].target == "cpu":
            segments.append([])
        else:
            segments[-1].append(layer)

    groups: list[FusedGroup] = []
    for segment in segments:
        if segment:
            groups.extend(_plan_segment(segment, fused, npu, precision, costs))

    cycles = sum(g.cycles for g in groups)
    cpu_bytes = 0 if npu.arena_in_sram else baseline.cpu_bytes
    return FusedCost(
        baseline=baseline, groups=tuple(groups), cycles=cycles,
        fps=npu.clock_hz / cycles if cycles else math.inf,
        dram_bytes=sum(g.dram_bytes for g in groups) + cpu_bytes,
        buffer_bytes=max((g.buffer_bytes for g in groups if g.fused), default=0), onchip_bytes=npu.onchip_bytes)


def _external_bytes(cost: LayerCost) -> int:
    return cost.dram_bytes + cost.flash_bytes


def _plan_segment(layers: list[Layer], network: Network, npu: NpuSpec, precision: Precision,
                  costs: dict[str, LayerCost]) -> list[FusedGroup]:
    """Cut ``layers`` into fused groups and unfused layers with the fewest cycles in total.

    best[j] is the cheapest plan of layers[:j] as a (cycles, external bytes) pair, so plans
    compare by cycles first. Every edge goes forward, so best[i] is final once the loop reaches i.
    NOTE: an unfused layer keeps its baseline cost, which places its tensors in the on-chip cache
    as if no fused group's line buffers were using the same SRAM.
    """
    count = len(layers)
    best: list[tuple[float, float]] = [(0.0, 0.0)] + [(math.inf, math.inf)] * count
    step: list[tuple[int, _Fusion | None]] = [(0, None)] * (count + 1)
    for start in range(count):
        # Layer by layer wins ties: a fused group that saves nothing is not worth reporting
        single = costs[layers[start].name]
        candidate = (best[start][0] + single.cycles, best[start][1] + _external_bytes(single))
        if candidate <= best[start + 1]:
            best[start + 1], step[start + 1] = candidate, (start, None)

        # NOTE: extension stops at the first group that does not fit. Appending a layer only grows
        # the buffers unless the new last layer changes the resolution, so a longer group that
        # fits again after an upsampling layer is not considered.
        for end in range(start + 2, count + 1):
            fusion = _fuse(layers[start:end], network, npu, precision, costs)
            if not fusion.fits:
                break
            candidate = (best[start][0] + fusion.cycles, best[start][1] + fusion.external_bytes)
            if candidate < best[end]:
                best[end], step[end] = candidate, (start, fusion)

    # Walk back from the end, then merge neighbouring unfused layers into runs
    pieces: list[tuple[int, int, _Fusion | None]] = []
    end = count
    while end > 0:
        start, fusion = step[end]
        pieces.append((start, end, fusion))
        end = start
    pieces.reverse()
    merged: list[tuple[int, int, _Fusion | None]] = []
    for start, end, fusion in pieces:
        if fusion is None and merged and merged[-1][2] is None:
            merged[-1] = (merged[-1][0], end, None)
        else:
            merged.append((start, end, fusion))

    return [_group(layers[start:end], fusion, len(layers), network, npu, precision, costs)
            for start, end, fusion in merged]


def _cycles_text(cycles: float) -> str:
    return f"{cycles / 1e6:,.2f} M cycles" if cycles >= 1e6 else f"{cycles:,.0f} cycles"


def _bytes_text(size: float) -> str:
    return f"{size / 2**20:,.2f} MiB" if size >= 2**20 else f"{size:,.0f} bytes"


def _group(layers: list[Layer], fusion: _Fusion | None, segment_length: int, network: Network, npu: NpuSpec,
           precision: Precision, costs: dict[str, LayerCost]) -> FusedGroup:
    """Build the ``FusedGroup`` record of one piece of the plan, with the reason for the choice."""
    names = tuple(layer.name for layer in layers)
    unfused_cycles = sum(costs[name].cycles for name in names)
    unfused_bytes = sum(_external_bytes(costs[name]) for name in names)
    if fusion is not None:
        reason = (f"fused: {_cycles_text(fusion.cycles)} against {_cycles_text(unfused_cycles)} layer by layer, "
                  f"{_bytes_text(fusion.external_bytes)} against {_bytes_text(unfused_bytes)} of external "
                  f"traffic; {fusion.tiles} tile(s) of {fusion.tile_columns} columns, recompute "
                  f"×{fusion.recompute_factor:.3f}")
        return FusedGroup(names, True, reason, fusion.tile_columns, fusion.tiles, fusion.buffer_bytes,
                          fusion.recompute_factor, fusion.external_bytes, fusion.cycles, unfused_cycles)

    # Unfused run: also state the cost of fusing the whole run, the plan a reader would try first
    if segment_length == 1:
        reason = "layer by layer: the only layer of its run of NPU layers, so there is nothing to fuse it with"
    elif len(layers) == 1:
        reason = "layer by layer: no fused group containing this layer gives a plan with fewer cycles"
    else:
        whole = _fuse(layers, network, npu, precision, costs)
        reason = (f"layer by layer: {_cycles_text(unfused_cycles)}, and no split of these {len(layers)} layers "
                  f"into fused groups takes fewer cycles; ")
        if whole.fits:
            reason += (f"fusing all of them into one group would take {_cycles_text(whole.cycles)} "
                       f"({whole.tiles} tile(s) of {whole.tile_columns} columns, recompute "
                       f"×{whole.recompute_factor:.3f})")
        else:
            budget = npu.onchip_bytes if npu.onchip_bytes is not None else 0
            reason += (f"one group of all of them needs {whole.buffer_bytes / 1024:,.0f} KiB of on-chip memory "
                       f"even in {MIN_TILE_COLUMNS}-column tiles, over the {budget / 1024:,.0f} KiB available")
    return FusedGroup(names, False, reason, layers[-1].output_shape.width, 1, 0, 1.0, unfused_bytes,
                      unfused_cycles, unfused_cycles)
