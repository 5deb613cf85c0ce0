"""Figures of an estimate: per-layer cycles split into compute and memory, and a roofline.

Needs matplotlib (the ``plot`` extra), which is imported only when a figure is drawn. Figures
are written with the non-interactive Agg backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .cost import LayerCost, NetworkCost
from .errors import EstimatorError
from .hardware import MemoryKind, NpuSpec

__all__ = ["plot_costs"]

# A bar axis switches to a log scale when its largest bar is this many times its smallest
# non-zero bar, so that small layers stay visible next to a dominant one.
_LOG_SCALE_RATIO = 30.0

# Roofline points named in the figure: the layers with most cycles.
_LABELLED_LAYERS = 5


def plot_costs(estimates: Sequence[tuple[NetworkCost, NpuSpec]], path: Path | str) -> Path:
    """Draw one row per estimate into the PNG file ``path`` and return the path.

    Left: compute and memory cycles of every NPU layer, in network order. Right: a roofline with
    arithmetic intensity (executed MACs per byte moved in the layer's busiest memory) on the x
    axis and attained executed MACs per cycle on the y axis. Its roofs are the NPU's peak MACs
    per cycle and one bandwidth line per memory. Layers without MACs cannot sit on a roofline,
    so they are left out of the right panel only.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EstimatorError("--plot needs matplotlib: pip install 'sesr[plot]'") from None

    heights = [max(4.0, 0.22 * sum(c.target == "npu" for c in cost.layers) + 1.5) for cost, _ in estimates]
    figure, axes = plt.subplots(len(estimates), 2, figsize=(15, sum(heights)), squeeze=False,
                                gridspec_kw={"height_ratios": heights, "width_ratios": [1.1, 1]})
    for row, (cost, npu) in zip(axes, estimates):
        _draw_cycles(row[0], cost)
        _draw_roofline(row[1], cost, npu)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _plain_log_ticks(axis) -> None:
    """Label log-scale ticks as plain numbers (50, 100, 200) instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _draw_cycles(ax, cost: NetworkCost) -> None:
    layers = [c for c in cost.layers if c.target == "npu"]
    positions = range(len(layers))
    compute = [c.compute_cycles / 1e6 for c in layers]
    memory = [c.memory_cycles / 1e6 for c in layers]

    ax.barh([p - 0.2 for p in positions], compute, 0.4, label="compute (MAC array or output unit)", color="tab:blue")
    ax.barh([p + 0.2 for p in positions], memory, 0.4, label="memory (busiest memory)", color="tab:orange")
    ax.set_yticks(list(positions), [f"{c.name} ({c.op})" for c in layers], fontsize=8)
    ax.invert_yaxis()  # first layer at the top

    nonzero = [v for v in compute + memory if v > 0]
    if nonzero and max(nonzero) / min(nonzero) > _LOG_SCALE_RATIO:
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_xlabel("NPU cycles per frame (millions, log scale); layer cycles = max(compute, memory)")
    else:
        ax.set_xlabel("NPU cycles per frame (millions); layer cycles = max(compute, memory)")
    ax.grid(axis="x", alpha=0.3)
    excluded = f"; CPU layers not shown: {', '.join(cost.cpu_layers)}" if cost.cpu_layers else ""
    ax.set_title(f"{cost.model} {cost.input_size[0]}x{cost.input_size[1]} on {cost.npu}, {cost.precision}\n"
                 f"{cost.cycles / 1e6:,.1f} M cycles, {cost.fps:.2f} FPS{excluded}", fontsize=10)
    ax.legend(loc="best", fontsize=8)


def _busiest_memory_bytes(layer: LayerCost, npu: NpuSpec) -> int:
    """Raw bytes the layer moves in the memory that sets its memory cycles."""
    kind = npu.sram.kind if layer.limiting_memory == npu.sram.name else npu.external.kind
    return {MemoryKind.SRAM: layer.sram_bytes, MemoryKind.DRAM: layer.dram_bytes,
            MemoryKind.FLASH: layer.flash_bytes}[kind]


def _draw_roofline(ax, cost: NetworkCost, npu: NpuSpec) -> None:
    import numpy as np

    # Layers as points: colour by busiest memory, marker by what bounds the layer
    points: dict[tuple[str, str], list[tuple[float, float]]] = {}
    placed: dict[str, tuple[float, float]] = {}
    for layer in cost.layers:
        moved = _busiest_memory_bytes(layer, npu) if layer.target == "npu" else 0
        if layer.target != "npu" or not layer.executed_macs or not layer.cycles or not moved:
            continue
        placed[layer.name] = (layer.executed_macs / moved, layer.executed_macs / layer.cycles)
        points.setdefault((layer.limiting_memory, layer.bound), []).append(placed[layer.name])
    intensities = [x for x, _ in placed.values()]
    low = min(intensities, default=1.0) / 4
    high = max(intensities, default=100.0) * 4
    floor = min((y for _, y in placed.values()), default=1.0) / 2

    # Roofs: peak compute, and bandwidth × intensity for each memory
    peak = npu.macs_per_cycle
    x = np.geomspace(low, high, 200)
    ax.axhline(peak, color="black", linestyle="--", linewidth=1,
               label=f"peak compute {peak:,} MACs/cycle ({peak * npu.clock_hz / 1e9:,.0f} GMAC/s)")
    for memory, style in ((npu.external, "-"), (npu.sram, ":")):
        per_cycle = npu.bytes_per_cycle(memory)
        ax.plot(x, np.minimum(peak, per_cycle * x), color="grey", linestyle=style, linewidth=1.2,
                label=f"{memory.name} roof {memory.bandwidth_bytes_per_s / 1e9:g} GB/s = {per_cycle:g} bytes/cycle")
    colours = {npu.external.name: "tab:red", npu.sram.name: "tab:green"}
    for (memory_name, bound), group in sorted(points.items()):
        ax.scatter(*zip(*group), color=colours.get(memory_name, "tab:purple"), zorder=3,
                   marker="o" if bound == "compute" else "^",
                   label=f"{bound}-bound layers, busiest memory {memory_name}")

    # Name the layers with most cycles. Layers at the same point share one label
    labels: dict[tuple[float, float], list[str]] = {}
    for layer in cost.dominant_layers(_LABELLED_LAYERS):
        if layer.name in placed:
            labels.setdefault(placed[layer.name], []).append(layer.name)
    for point, names in labels.items():
        text = names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} alike)"
        ax.annotate(text, point, textcoords="offset points", xytext=(5, 4), fontsize=7)

    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    ax.set_xlim(low, high)
    ax.set_ylim(floor, peak * 1.6)
    ax.set_xlabel("arithmetic intensity (executed MACs per byte moved in the layer's busiest memory)")
    ax.set_ylabel("attained executed MACs per cycle")
    ax.grid(which="major", alpha=0.3)
    ax.set_box_aspect(0.75)  # keep the roofline's shape when a long layer list makes the row tall
    ax.set_title(f"Roofline of {npu.label}\nlabels: the {_LABELLED_LAYERS} layers with most cycles; "
                 f"layers without MACs are not shown", fontsize=10)
    ax.legend(loc="best", fontsize=8)
