"""NPU profiles: read the TOML data files in ``estimator/profiles`` and resolve one ``NpuSpec``.

A profile file has five tables, each keyed by name:

* ``engine``: MAC-array traversals;
* ``family``: figures shared by a product line;
* ``accelerator``: MACs per cycle, output granules, output-unit rates;
* ``system``: clock and the memory behind each AXI port;
* ``memory_mode``: the port that contains weights, the port that contains feature maps, and the
  on-chip cache size.

An accelerator inherits
its family's keys and may override them. Files passed by the user are read after the shipped
ones, so their entries add to or replace the shipped entries of the same name.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from .errors import ProfileError, UnsupportedPrecisionError

__all__ = ["Precision", "Traversal", "OutputRates", "MemorySpec", "NpuSpec", "ProfileCatalogue",
           "load_catalogue", "resolve_npu"]


class Precision(str, enum.Enum):
    """Numeric format of activations and weights."""

    INT8 = "int8"
    INT16 = "int16"
    FP16 = "fp16"

    @property
    def activation_bytes(self) -> int:
        return 1 if self is Precision.INT8 else 2

    @property
    def weight_bytes(self) -> int:
        """Bytes per weight: int16 means 16-bit activations with 8-bit weights (TFLite's 16x8 scheme)."""
        return 2 if self is Precision.FP16 else 1


# Bytes per output channel of a convolution's scale and bias record: Vela 5.2.0
# (ethos_u55_performance.cpp) costs the scale and bias fetch as 10 bytes per OFM channel.
SCALE_BIAS_BYTES = 10


@dataclass(frozen=True)
class Traversal:
    """One way the MAC array walks a convolution, with its rounding and relative rate."""

    name: str
    """``depth_first``, ``part_kernel``, ``direct`` or ``winograd``."""
    precision: Precision
    kernel_granule: int
    """Kernel elements per step: each sub-kernel's element count is rounded up to a multiple."""
    channel_granule: int
    """Input channels per step: C_in is rounded up to a multiple."""
    rate: float
    """Fraction of macs_per_cycle reached on the rounded work (0.5 for 16-bit activations)."""

    def __post_init__(self) -> None:
        if self.kernel_granule < 1 or self.channel_granule < 1 or not 0 < self.rate <= 1:
            raise ValueError(f"traversal {self.name}: granules must be ≥ 1 and rate in (0, 1], got {self}")


@dataclass(frozen=True)
class OutputRates:
    """Output-unit cycles per output element for one precision."""

    mac: float
    """Convolution output stage."""
    add_sub: float
    mul: float
    other: float
    """Other element-wise operators (maximum, clip, copies)."""
    relu: float
    """Activation stage for ReLU and clamps."""
    lut: float
    """Activation stage for table look-ups (sigmoid, tanh)."""


class MemoryKind(str, enum.Enum):
    SRAM = "sram"
    DRAM = "dram"
    FLASH = "flash"


_MEMORY_KINDS = {"sram": MemoryKind.SRAM, "onchipflash": MemoryKind.SRAM, "dram": MemoryKind.DRAM,
                 "offchipflash": MemoryKind.FLASH}


@dataclass(frozen=True)
class MemorySpec:
    """One memory behind an AXI port."""

    name: str
    """Name in the profile: Sram, Dram or OffChipFlash."""
    kind: MemoryKind
    bandwidth_bytes_per_s: float
    burst_length_bytes: int
    read_latency_cycles: int
    write_latency_cycles: int

    def __post_init__(self) -> None:
        if self.bandwidth_bytes_per_s <= 0 or self.burst_length_bytes < 1:
            raise ValueError(f"memory {self.name}: bandwidth and burst length must be positive")


@dataclass(frozen=True)
class NpuSpec:
    """Everything the cost model needs about one NPU in one system configuration and memory mode."""

    name: str
    """Accelerator name, for example ``ethos-u65-256``."""
    system: str
    memory_mode: str
    clock_hz: float
    macs_per_cycle: int
    output_granules: tuple[tuple[int, int, int], ...]
    """OFM micro-blocks rows × columns × channels; the cheapest one is used per layer."""
    traversals: tuple[Traversal, ...]
    max_subkernel: tuple[int, int]
    output_rates: Mapping[Precision, OutputRates]
    sram: MemorySpec
    external: MemorySpec
    const_in_sram: bool
    """Weights live in on-chip SRAM (Sram_Only), otherwise in the external memory."""
    arena_in_sram: bool
    """Feature maps live in SRAM (Sram_Only, Shared_Sram); otherwise in external memory with SRAM as cache."""
    onchip_bytes: int | None
    """On-chip memory available for feature maps: the cache size, or None when unbounded."""
    ofm_block: tuple[int, int]
    """Assumed OFM block rows × columns, for halo re-reads and burst lengths."""
    cpu_ops: frozenset[str]
    resize_modes: frozenset[str]
    max_transpose_conv_stride: int
    prelu_as_mul_max: bool
    sources: tuple[str, ...] = field(default=())
    """Profile files the figures came from."""
    overrides: tuple[str, ...] = field(default=())
    """Figures replaced on the command line, for example ``clock=800 MHz``."""

    def __post_init__(self) -> None:
        if self.clock_hz <= 0 or self.macs_per_cycle < 1:
            raise ValueError(f"{self.name}: clock and MACs per cycle must be positive")
        if self.onchip_bytes is not None and self.onchip_bytes < 0:
            raise ValueError(f"{self.name}: on-chip memory size must be ≥ 0, got {self.onchip_bytes}")

    @property
    def precisions(self) -> tuple[Precision, ...]:
        return tuple(p for p in Precision if any(t.precision is p for t in self.traversals) and p in self.output_rates)

    def traversals_for(self, precision: Precision) -> tuple[Traversal, ...]:
        chosen = tuple(t for t in self.traversals if t.precision is precision)
        if not chosen or precision not in self.output_rates:
            raise UnsupportedPrecisionError(precision.value, self.name, tuple(p.value for p in self.precisions))
        return chosen

    def bytes_per_cycle(self, memory: MemorySpec) -> float:
        """Bandwidth of ``memory`` in bytes per NPU cycle at this clock."""
        return memory.bandwidth_bytes_per_s / self.clock_hz

    @property
    def label(self) -> str:
        return f"{self.name} ({self.system}, {self.memory_mode})"


# Catalogue ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProfileCatalogue:
    """Raw tables of all profile files read, merged by name."""

    engines: Mapping[str, Mapping]
    families: Mapping[str, Mapping]
    accelerators: Mapping[str, Mapping]
    systems: Mapping[str, Mapping]
    memory_modes: Mapping[str, Mapping]
    files: tuple[str, ...]

    def accelerator_names(self) -> tuple[str, ...]:
        return tuple(self.accelerators)


_TABLES = ("engine", "family", "accelerator", "system", "memory_mode")


def _shipped_profile_files() -> list[Path]:
    folder = resources.files("estimator") / "profiles"
    return sorted(Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".toml"))


def load_catalogue(extra_files: Iterable[Path | str] = ()) -> ProfileCatalogue:
    """Read the shipped profile files, then ``extra_files`` in order; later entries replace earlier ones."""
    merged: dict[str, dict[str, Mapping]] = {table: {} for table in _TABLES}
    files = []
    for path in [*_shipped_profile_files(), *map(Path, extra_files)]:
        try:
            with open(path, "rb") as stream:
                data = tomllib.load(stream)
        except FileNotFoundError:
            raise ProfileError(f"profile file {path} not found") from None
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ProfileError(f"profile file {path} cannot be read: {error}") from None
        unknown = set(data) - set(_TABLES)
        if unknown:
            raise ProfileError(f"profile file {path}: unknown tables {sorted(unknown)}; "
                               f"expected {', '.join(_TABLES)}")
        for table in _TABLES:
            for name, entry in data.get(table, {}).items():
                if not isinstance(entry, dict):
                    raise ProfileError(f"profile file {path}: [{table}.{name}] must be a table")
                merged[table][name.lower() if table in ("engine", "family", "accelerator") else name] = entry
        files.append(str(path))
    return ProfileCatalogue(*(MappingProxyType(merged[t]) for t in _TABLES), files=tuple(files))


def _require(entry: Mapping, key: str, where: str):
    try:
        return entry[key]
    except KeyError:
        raise ProfileError(f"{where}: missing figure {key!r}") from None


def _lookup(table: Mapping[str, Mapping], name: str, description: str) -> tuple[str, Mapping]:
    for key, entry in table.items():
        if key.lower() == name.lower():
            return key, entry
    raise ProfileError(f"unknown {description} {name!r}: choose one of {', '.join(table)}")


def _memory(port: Mapping, clock_hz: float, axi_width: int, where: str) -> MemorySpec:
    name = str(_require(port, "memory", where))
    kind = _MEMORY_KINDS.get(name.lower())
    if kind is None:
        raise ProfileError(f"{where}: memory {name!r} must be Sram, Dram, OffChipFlash or OnChipFlash")
    bandwidth = float(_require(port, "clock_scale", where)) * axi_width * int(port.get("ports", 1)) * clock_hz
    return MemorySpec(name, kind, bandwidth, int(_require(port, "burst_length_bytes", where)),
                      int(port.get("read_latency_cycles", 0)), int(port.get("write_latency_cycles", 0)))


def _output_rates(entry: Mapping, where: str) -> dict[Precision, OutputRates]:
    rates = {}
    for precision_name, figures in _require(entry, "output_cycles", where).items():
        try:
            precision = Precision(precision_name)
            rates[precision] = OutputRates(**{k: float(v) for k, v in figures.items()})
        except (ValueError, TypeError) as error:
            raise ProfileError(f"{where}: invalid output_cycles.{precision_name}: {error}") from None
    return rates


def _traversals(engine: Mapping, where: str) -> tuple[Traversal, ...]:
    result = []
    for item in _require(engine, "traversals", where):
        try:
            result.append(Traversal(str(item["name"]), Precision(item["precision"]), int(item["kernel_granule"]),
                                    int(item["channel_granule"]), float(item["rate"])))
        except (KeyError, ValueError) as error:
            raise ProfileError(f"{where}: invalid traversal {item}: {error}") from None
    return tuple(result)


def resolve_npu(name: str, catalogue: ProfileCatalogue | None = None, *, system: str | None = None,
                memory_mode: str | None = None, clock_mhz: float | None = None,
                dram_bandwidth_gbps: float | None = None, sram_size_kib: float | None = None) -> NpuSpec:
    """Build the ``NpuSpec`` of accelerator ``name`` in a system configuration and memory mode.

    ``system`` and ``memory_mode`` default to the family's defaults (Vela's defaults for
    Ethos-U). Overrides: ``clock_mhz`` replaces the NPU clock and leaves memory bandwidths in
    bytes per second unchanged. ``dram_bandwidth_gbps`` (10⁹ bytes/s) replaces the bandwidth of
    the external memory. ``sram_size_kib`` (1024 bytes) sets the on-chip memory for feature maps.
    """
    catalogue = catalogue or load_catalogue()

    # Accelerator, inheriting its family
    accel_name, accel = _lookup(catalogue.accelerators, name, "NPU")
    family_name = str(accel.get("family", ""))
    family = catalogue.families.get(family_name.lower(), {}) if family_name else {}
    entry = {**family, **accel}
    where = f"accelerator {accel_name}"
    engine_name = str(_require(entry, "engine", where))
    _, engine = _lookup(catalogue.engines, engine_name, "engine")

    # System configuration and memory mode
    system_name, system_entry = _lookup(catalogue.systems, system or str(_require(entry, "default_system", where)),
                                        "system configuration")
    mode_name, mode = _lookup(catalogue.memory_modes,
                              memory_mode or str(_require(entry, "default_memory_mode", where)), "memory mode")
    clock_hz = float(_require(system_entry, "core_clock_hz", f"system {system_name}"))
    axi_width = int(_require(system_entry, "axi_width_bytes", f"system {system_name}"))
    ports = {port: _memory(_require(system_entry, port, f"system {system_name}"), clock_hz, axi_width,
                           f"system {system_name}.{port}") for port in ("axi0", "axi1")}
    if ports["axi0"].kind is not MemoryKind.SRAM:
        raise ProfileError(f"system {system_name}: axi0 must be Sram, got {ports['axi0'].name}")

    const_port = str(_require(mode, "const", f"memory mode {mode_name}"))
    arena_port = str(_require(mode, "arena", f"memory mode {mode_name}"))
    for port in (const_port, arena_port):
        if port not in ports:
            raise ProfileError(f"memory mode {mode_name}: port {port!r} must be axi0 or axi1")
    if mode.get("cache_size_from_accelerator"):
        onchip = int(_require(entry, "sram_size_bytes", where))
    else:
        onchip = int(mode["cache_size_bytes"]) if "cache_size_bytes" in mode else None

    spec = NpuSpec(
        name=accel_name, system=system_name, memory_mode=mode_name, clock_hz=clock_hz,
        macs_per_cycle=int(_require(entry, "macs_per_cycle", where)),
        output_granules=tuple(tuple(int(v) for v in g) for g in _require(entry, "output_granules", where)),
        traversals=_traversals(engine, f"engine {engine_name}"),
        max_subkernel=tuple(int(v) for v in engine.get("max_subkernel", (8, 8))),
        output_rates=MappingProxyType(_output_rates(entry, where)),
        sram=ports["axi0"], external=ports["axi1"],
        const_in_sram=const_port == "axi0", arena_in_sram=arena_port == "axi0", onchip_bytes=onchip,
        ofm_block=tuple(int(v) for v in entry.get("ofm_block", (16, 16))),
        cpu_ops=frozenset(entry.get("cpu_ops", ())),
        resize_modes=frozenset(entry.get("resize_modes", ("nearest", "linear"))),
        max_transpose_conv_stride=int(entry.get("max_transpose_conv_stride", 2)),
        prelu_as_mul_max=bool(entry.get("prelu_as_mul_max", False)),
        sources=catalogue.files,
    )
    return apply_overrides(spec, clock_mhz=clock_mhz, dram_bandwidth_gbps=dram_bandwidth_gbps,
                           sram_size_kib=sram_size_kib)


def apply_overrides(spec: NpuSpec, *, clock_mhz: float | None = None, dram_bandwidth_gbps: float | None = None,
                    sram_size_kib: float | None = None) -> NpuSpec:
    """Replace single figures of ``spec``; each replaced figure is listed in ``spec.overrides``."""
    notes = list(spec.overrides)
    if clock_mhz is not None:
        if not (clock_mhz > 0 and math.isfinite(clock_mhz)):
            raise ProfileError(f"--clock must be a positive number of MHz, got {clock_mhz}")
        spec = replace(spec, clock_hz=clock_mhz * 1e6)
        notes.append(f"clock={clock_mhz:g} MHz")
    if dram_bandwidth_gbps is not None:
        if not (dram_bandwidth_gbps > 0 and math.isfinite(dram_bandwidth_gbps)):
            raise ProfileError(f"--dram-bandwidth must be a positive number of GB/s, got {dram_bandwidth_gbps}")
        spec = replace(spec, external=replace(spec.external, bandwidth_bytes_per_s=dram_bandwidth_gbps * 1e9))
        notes.append(f"{spec.external.name} bandwidth={dram_bandwidth_gbps:g} GB/s")
    if sram_size_kib is not None:
        if not (sram_size_kib >= 0 and math.isfinite(sram_size_kib)):
            raise ProfileError(f"--sram-size must be ≥ 0 KiB, got {sram_size_kib}")
        spec = replace(spec, onchip_bytes=int(sram_size_kib * 1024))
        notes.append(f"on-chip memory={sram_size_kib:g} KiB")
    return replace(spec, overrides=tuple(notes))
