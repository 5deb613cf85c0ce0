"""Plain data views of estimates for JSON and CSV output."""

from __future__ import annotations

from dataclasses import asdict, fields

from .cost import LayerCost, NetworkCost
from .fusion import FusedCost

__all__ = ["LAYER_FIELDS", "layer_row", "run_record"]

LAYER_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(LayerCost))


def layer_row(cost: LayerCost) -> dict:
    """Return one layer as a flat dict with the fields of ``LayerCost``."""
    return asdict(cost)


def run_record(cost: NetworkCost, fused: FusedCost | None = None) -> dict:
    """Return one estimate as a JSON-ready dict. ``input_size`` is ``WIDTHxHEIGHT`` and bytes are per frame."""
    record = {
        "model": cost.model, "scale": cost.scale, "input_size": f"{cost.input_size[0]}x{cost.input_size[1]}",
        "npu": cost.npu, "system_config": cost.system, "memory_mode": cost.memory_mode,
        "precision": cost.precision, "clock_hz": cost.clock_hz, "macs": cost.macs,
        "executed_macs": cost.executed_macs, "params": cost.params, "cycles": cost.cycles, "fps": cost.fps,
        "dram_bytes": cost.dram_bytes, "sram_bytes": cost.sram_bytes, "flash_bytes": cost.flash_bytes,
        "bound": cost.bound, "cpu_layers": list(cost.cpu_layers), "cpu_bytes": cost.cpu_bytes,
        "onchip_bytes": cost.onchip_bytes, "arena_peak_bytes": cost.arena_peak_bytes,
        "warnings": list(cost.warnings), "layers": [layer_row(c) for c in cost.layers],
    }
    if fused is not None:
        record["fused"] = {
            "cycles": fused.cycles, "fps": fused.fps, "dram_bytes": fused.dram_bytes,
            "buffer_bytes": fused.buffer_bytes,
            "groups": [{"layers": list(g.layers), "fused": g.fused, "reason": g.reason,
                        "tile_columns": g.tile_columns, "tiles": g.tiles, "buffer_bytes": g.buffer_bytes,
                        "recompute_factor": g.recompute_factor, "dram_bytes": g.dram_bytes, "cycles": g.cycles,
                        "layer_by_layer_cycles": g.layer_by_layer_cycles} for g in fused.groups],
        }
    return record
