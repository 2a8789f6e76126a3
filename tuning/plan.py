"""What the host should be, from the appliance YAML (DESIGN principle 4): the
worker's isolated cores and the housekeeping ones, the NUMA node, the feed and
PTP interfaces, hugepages, and the values tuning asks of the kernel (after
tuned's latency-performance, network-latency and cpu-partitioning profiles and
the kernel's CPU-isolation guide). Without a config: the last CPU is the
worker's, node 0, no interfaces.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

from tuning.findings import cpulist, cpus_text

# sysctl -> (value, why); what `tune audit` checks and `tune apply` sets
SYSCTLS: dict[str, tuple[str, str]] = {
    "net.core.busy_read": ("50", "µs a socket read busy-polls the device before sleeping (kernel-socket input)"),
    "net.core.busy_poll": ("50", "µs poll/select busy-poll before sleeping"),
    "kernel.numa_balancing": ("0", "no page migration behind the worker's back"),
    "kernel.nmi_watchdog": ("0", "no periodic NMI on every core"),
    "kernel.timer_migration": ("0", "timers stay on the core that armed them, off the isolated ones"),
    "vm.swappiness": ("10", "keep the working set in memory"),
    "vm.stat_interval": ("10", "vmstat updates every 10 s instead of every second on every core"),
}
# reported, not set: RT throttling only matters to a SCHED_FIFO worker, and -1 would let a runaway RT task
# take a core for good
REPORTED_SYSCTLS = {"kernel.sched_rt_runtime_us": ("950000", "RT throttling: -1 only for a SCHED_FIFO worker "
                                                               "on an isolated core")}


@dataclasses.dataclass(frozen=True)
class Interface:
    name: str
    netns: str | None
    role: str                  # feed line A, feed line B, ptp


@dataclasses.dataclass(frozen=True)
class Plan:
    cpus: frozenset[int]              # every online CPU
    worker: int                       # the worker's lcore CPU
    isolated: frozenset[int]          # off limits to the kernel's housekeeping
    control: int
    numa_node: int
    interfaces: tuple[Interface, ...]
    hugepages_2mb: int                # on numa_node
    hugepages_required: bool          # host.hugepages: on
    rx_ring: int = 4096
    timestamping: str = "software"    # what ptp expects of the NIC
    memlock_bytes: int | None = None  # None: unlimited wanted

    @property
    def housekeeping(self) -> frozenset[int]:
        return frozenset(self.cpus - self.isolated) or frozenset({0})

    @classmethod
    def default(cls) -> Plan:
        cpus = _online()
        worker = max(cpus)
        return cls(cpus=frozenset(cpus), worker=worker, isolated=frozenset({worker}),
                   control=min(cpus - {worker}) if len(cpus) > 1 else worker, numa_node=0, interfaces=(),
                   hugepages_2mb=512, hugepages_required=False)

    @classmethod
    def from_config(cls, cfg: Any) -> Plan:
        h = cfg.host
        cpus = _online()
        isolated = set(h.isolated_cpus) if h.isolated_cpus else {h.lcores.worker}
        ifaces = [Interface(line.interface, h.netns, f"feed line {name}") for name, line in cfg.feed.lines.items()]
        if cfg.ptp.interface and cfg.ptp.interface not in {i.name for i in ifaces}:
            ifaces.append(Interface(cfg.ptp.interface, h.netns, "ptp"))
        return cls(cpus=frozenset(cpus), worker=h.lcores.worker, isolated=frozenset(isolated), control=h.lcores.control,
                   numa_node=h.numa_node, interfaces=tuple(ifaces), hugepages_2mb=h.hugepages_2mb,
                   hugepages_required=h.hugepages == "on", timestamping=cfg.ptp.timestamping)

    def as_dict(self) -> dict[str, Any]:
        return {"cpus": cpus_text(self.cpus), "worker": self.worker, "isolated": cpus_text(self.isolated),
                "housekeeping": cpus_text(self.housekeeping), "control": self.control, "numa_node": self.numa_node,
                "interfaces": [dataclasses.asdict(i) for i in self.interfaces], "hugepages_2mb": self.hugepages_2mb}


def _online() -> set[int]:
    text = pathlib.Path("/sys/devices/system/cpu/online").read_text() if os.path.exists(
        "/sys/devices/system/cpu/online") else f"0-{(os.cpu_count() or 1) - 1}"
    return cpulist(text)


def for_config(cfg: Any | None) -> Plan:
    """The plan for a loaded appliance config (``appliance.config.load``'s result: the caller
    loads it, tuning never imports the appliance), or the default one without a config."""
    return Plan.from_config(cfg) if cfg is not None else Plan.default()
