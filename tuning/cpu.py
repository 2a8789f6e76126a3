"""The cores: isolation in effect, SMT siblings, frequency governor and P-state,
idle states and PM QoS, the workqueues' CPU mask, and the threads found running
where the worker should be alone."""

from __future__ import annotations

import glob
import os
import pathlib
from typing import Any

from tuning import pmqos
from tuning.findings import Finding, cpulist, cpus_mask, cpus_text, mask_cpus, read

SYS = "/sys/devices/system/cpu"
WORKQUEUE_MASK = "/sys/devices/virtual/workqueue/cpumask"
# per-CPU kernel threads that belong on every core (they do their core's work and sleep)
PER_CPU_THREADS = ("ksoftirqd/", "migration/", "cpuhp/", "kworker/", "rcuc/", "rcuop/", "rcuos/", "idle_inject/",
                   "watchdog/", "irq/", "ktimers/", "swapper/")


def audit(plan: Any) -> list[Finding]:
    out = [_planned(plan)]
    iso = cpulist(read(f"{SYS}/isolated"))
    ok = plan.isolated <= iso
    out.append(Finding("cpu", "isolated in effect", "ok" if ok else "fail",
                       f"{SYS}/isolated: {cpus_text(iso) or '(none)'} (planned {cpus_text(plan.isolated)})",
                       None if ok else "isolcpus on the kernel command line, then a reboot", cpus_text(iso),
                       boot=True))
    nohz_path = f"{SYS}/nohz_full"
    nohz = read(nohz_path)
    if nohz is None:
        out.append(Finding("cpu", "nohz_full in effect", "warn", f"{nohz_path}: absent (a kernel without "
                           "CONFIG_NO_HZ_FULL, or nohz_full not asked)", "a kernel with NO_HZ_FULL and nohz_full= "
                           "on its command line", None, boot=True))
    else:
        ok = plan.isolated <= cpulist(nohz)
        out.append(Finding("cpu", "nohz_full in effect", "ok" if ok else "warn", f"{nohz_path}: {nohz or '(none)'}",
                           None if ok else "nohz_full on the kernel command line", nohz, boot=True))
    out.append(_smt(plan))
    out += _frequency(plan)
    out.append(_idle(plan))
    mask = read(WORKQUEUE_MASK)
    if mask is None:
        out.append(Finding("cpu", "workqueue cpumask", "info", f"{WORKQUEUE_MASK}: absent"))
    else:
        cpus = mask_cpus(mask)
        bad = cpus & plan.isolated
        out.append(Finding("cpu", "workqueue cpumask", "warn" if bad else "ok",
                           f"{WORKQUEUE_MASK}: {mask} (CPUs {cpus_text(cpus)})",
                           f"unbound workqueues off {cpus_text(bad)}: echo {housekeeping_mask(plan)} > "
                           f"{WORKQUEUE_MASK} (tickwire tune apply)" if bad else None, mask))
    out.append(_threads(plan))
    return out


def _planned(plan: Any) -> Finding:
    """The config's cores are this box's: a worker on a CPU it lacks would not start, and every other check
    about that CPU would read nothing."""
    planned = {plan.worker, plan.control} | set(plan.isolated)
    missing = planned - plan.cpus
    return Finding("cpu", "planned CPUs online", "fail" if missing else "ok",
                   f"{SYS}/online: {cpus_text(plan.cpus)} (the plan's worker {plan.worker}, control {plan.control}, "
                   f"isolated {cpus_text(plan.isolated)})",
                   f"CPU {cpus_text(missing)} not online here: give host.lcores and host.isolated_cpus this box's CPUs"
                   if missing else None, cpus_text(planned - missing))


def housekeeping_mask(plan: Any) -> str:
    return cpus_mask(plan.housekeeping)


def _smt(plan: Any) -> Finding:
    control = read(f"{SYS}/smt/control")
    sib_path = f"{SYS}/cpu{plan.worker}/topology/thread_siblings_list"
    siblings = cpulist(read(sib_path)) - {plan.worker}
    if not siblings:
        return Finding("cpu", "SMT", "ok", f"{SYS}/smt/control: {control}; {sib_path}: the worker's core has no "
                       "sibling thread", value=control)
    busy = siblings - plan.isolated
    if busy:
        return Finding("cpu", "SMT", "warn", f"{sib_path}: CPU {plan.worker} shares its core with "
                       f"{cpus_text(siblings)}, not isolated", "isolate the sibling too (host.isolated_cpus), or "
                       "nosmt on the kernel command line", value=cpus_text(siblings))
    return Finding("cpu", "SMT", "ok", f"{sib_path}: the sibling {cpus_text(siblings)} is isolated too",
                   value=cpus_text(siblings))


def governor_path(cpu: int) -> str:
    return f"{SYS}/cpu{cpu}/cpufreq/scaling_governor"


def _frequency(plan: Any) -> list[Finding]:
    gov = read(governor_path(plan.worker))
    if gov is None:
        return [Finding("cpu", "governor", "info", f"{SYS}/cpu{plan.worker}/cpufreq: absent: no frequency scaling "
                        "here (a VM: the host decides)")]
    out = [Finding("cpu", "governor", "ok" if gov == "performance" else "fail",
                   f"{governor_path(plan.worker)}: {gov}",
                   None if gov == "performance" else "the performance governor (tickwire tune apply)", gov)]
    pstate = read(f"{SYS}/intel_pstate/status")
    if pstate is not None:
        mn = read(f"{SYS}/intel_pstate/min_perf_pct")
        out.append(Finding("cpu", "P-state", "ok" if mn == "100" else "warn",
                           f"{SYS}/intel_pstate/status: {pstate}, min_perf_pct {mn}",
                           None if mn == "100" else "min_perf_pct 100 keeps the core at full speed", pstate))
    return out


def _idle(plan: Any) -> Finding:
    states = []
    for d in sorted(glob.glob(f"{SYS}/cpu{plan.worker}/cpuidle/state*")):
        name, lat, dis = read(f"{d}/name"), read(f"{d}/latency"), read(f"{d}/disable")
        states.append((name, int(lat or 0), dis == "1"))
    try:
        qos = pmqos.current()
    except OSError:
        qos = None
    deep = [(n, lat) for n, lat, dis in states if not dis and lat > 2 and (qos is None or lat > qos)]
    ev = f"{SYS}/cpu{plan.worker}/cpuidle: " + (", ".join(f"{n} ({lat} µs{', disabled' if dis else ''})"
                                                          for n, lat, dis in states) or "none") + \
        f"; /dev/cpu_dma_latency {qos} µs"
    if deep:
        return Finding("cpu", "C-states and PM QoS", "warn", ev + ": the worker's core may sleep in " +
                       ", ".join(n for n, _ in deep), "hold PM QoS at 0 while trading (host.cpu_latency_us: 0), or "
                       "intel_idle.max_cstate=1 processor.max_cstate=1 on the kernel command line", qos)
    return Finding("cpu", "C-states and PM QoS", "ok", ev, value=qos)


def _threads(plan: Any) -> Finding:
    """Threads other than the kernel's per-CPU ones found on an isolated core."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/task/[0-9]*/stat"):
        try:
            raw = pathlib.Path(stat).read_text()
            name = raw[raw.index("(") + 1:raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2:].split()
            cpu = int(fields[36])  # field 39: the CPU it last ran on
        except (OSError, ValueError, IndexError):
            continue
        if cpu in plan.isolated and not name.startswith(PER_CPU_THREADS) and not _is_worker(stat):
            found.append(f"{name} (tid {stat.split('/')[4]})")
    if found:
        return Finding("cpu", "threads on isolated cores", "warn",
                       f"/proc/*/task/*/stat: {len(found)} thread(s) last ran on {cpus_text(plan.isolated)}: "
                       + ", ".join(sorted(found)[:8]) + (" ..." if len(found) > 8 else ""),
                       "keep them off: isolcpus, systemd CPUAffinity= for services (provisioning: "
                       "tickwire_cpu_isolation)", len(found))
    return Finding("cpu", "threads on isolated cores", "ok", f"/proc/*/task/*/stat: only per-CPU kernel threads "
                   f"and tickwire's worker on {cpus_text(plan.isolated)}", 0)


def _is_worker(stat: str) -> bool:
    """Our own worker lcore belongs on the isolated core."""
    try:
        comm = pathlib.Path(stat).parent.joinpath("comm").read_text().strip()
        exe = os.readlink(pathlib.Path(stat).parents[2] / "exe")
    except OSError:
        return False
    return comm.startswith(("lcore-worker", "tw-")) or ("python" in exe and comm.startswith("rte-worker"))


def changes(plan: Any) -> list[dict[str, Any]]:
    """The performance governor on every core (tuned's latency-performance does the same), and the
    unbound workqueues onto the housekeeping cores."""
    out = []
    for cpu in sorted(plan.cpus):
        gov = read(governor_path(cpu))
        if gov is not None and gov != "performance":
            out.append({"concern": "cpu", "what": f"CPU {cpu} governor", "path": governor_path(cpu), "before": gov,
                        "after": "performance"})
    mask = read(WORKQUEUE_MASK)
    if mask is not None and mask_cpus(mask) & plan.isolated:
        out.append({"concern": "cpu", "what": "workqueue cpumask", "path": WORKQUEUE_MASK, "before": mask,
                    "after": housekeeping_mask(plan)})
    return out
