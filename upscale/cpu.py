"""Facts about the CPU this process may run on: physical cores, for the default thread count."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["usable_cpus", "physical_cores"]

_TOPOLOGY = Path("/sys/devices/system/cpu")


def usable_cpus() -> list[int]:
    """List the logical CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def physical_cores(topology: Path = _TOPOLOGY) -> int:
    """Count the physical cores among the usable logical CPUs.

    SMT siblings share one core's execution units, so a convolution with one thread per core
    runs as fast as with one per logical CPU and leaves the siblings free. Where Linux sysfs
    topology is missing, every usable logical CPU counts as a core.
    """
    cpus = usable_cpus()
    cores = set()
    for cpu in cpus:
        folder = topology / f"cpu{cpu}" / "topology"
        try:
            package = (folder / "physical_package_id").read_text().strip()
            core = (folder / "core_id").read_text().strip()
        except OSError:
            return len(cpus)
        cores.add((package, core))
    return max(len(cores), 1)
