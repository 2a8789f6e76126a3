"""``tickwire tune jitter``: what interrupts the worker's cores, and the longest
stall a thread that never lets go of its core sees.

On each CPU asked, a busy loop in C (dpdk/lab/jitter.c) stands in for the worker:
it reads the clock as fast as it can and keeps every gap longer than a threshold.
Meanwhile a tracer counts what ran on those CPUs instead: hardware interrupts
(``irq:irq_handler_entry/exit``), softirqs (``irq:softirq_entry/exit``), the local
timer (``irq_vectors:local_timer_entry/exit``, where the kernel has it) and other
tasks (``sched:sched_switch``), each with its count and its time (total and
longest). The tracer is a bcc program in the kernel when bcc can compile one (it
needs the running kernel's headers); when it cannot, it says exactly why and the
same tracepoints are read from a tracefs instance instead (the kernel's own ring
buffer, parsed here after the run). The verdict holds the longest gap against the
budget.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import threading
import time
from typing import Any

from tuning.findings import cpus_mask

TRACEFS = pathlib.Path("/sys/kernel/tracing")
SOFTIRQS = ("HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU")
KINDS = {1: "irq", 2: "softirq", 3: "task", 4: "timer"}
OURS = "tw-jitter"  # the busy loop's thread name (prctl in jitter.c)


class JitterError(RuntimeError):
    pass


def irq_names() -> dict[int, str]:
    out = {}
    try:
        for line in pathlib.Path("/proc/interrupts").read_text().splitlines()[1:]:
            parts = line.split()
            if parts and parts[0].rstrip(":").isdigit():
                out[int(parts[0].rstrip(":"))] = parts[-1]
    except OSError:
        pass
    return out


# ---- the busy loop ----------------------------------------------------------------------------------


def gaps(cpus: list[int], seconds: float, threshold_ns: int, *, lab: tuple[Any, Any]) -> dict[int, dict[str, Any]]:
    """The C loop on every CPU at once (a thread each; cffi lets go of the GIL while it runs).
    ``lab`` is the lab extension's (ffi, lib), ``dpdk.lab_native()``: the caller hands it in,
    tuning imports no other wing."""
    ffi, lib = lab
    out: dict[int, dict[str, Any]] = {}
    errors: list[str] = []

    def one(cpu: int) -> None:
        st = ffi.new("struct tw_gap_stats *")
        rc = lib.tw_gap_run(cpu, int(seconds * 1e9), threshold_ns, st)
        if rc < 0:
            errors.append(f"CPU {cpu}: {os.strerror(-rc)} (is it online, and allowed to this process?)")
            return
        out[cpu] = {"cpu": cpu, "ran_on": st.running_on, "samples": st.samples, "gaps": st.gaps,
                    "taken_us": round(st.gap_ns / 1000, 1), "max_us": round(st.max_ns / 1000, 1),
                    "share": round(st.gap_ns / st.elapsed_ns, 6) if st.elapsed_ns else None,
                    "by_decade": dict(zip(("1us", "10us", "100us", "1ms", "10ms", "100ms", "1s", "10s"),
                                          list(st.by_decade), strict=True)),
                    "longest": [{"at_ns": g.at_ns, "us": round(g.len_ns / 1000, 1)} for g in st.top if g.len_ns][:8]}

    threads = [threading.Thread(target=one, args=(c,), name=f"tw-jitter-{c}") for c in cpus]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise JitterError("; ".join(errors))
    return out


# ---- the tracers --------------------------------------------------------------------------------------


def _has_event(group: str, name: str) -> bool:
    return (TRACEFS / "events" / group / name).exists()


def mount_tracefs() -> str | None:
    """tracefs where the kernel puts it (mounted when it is not); what was done, or None."""
    if (TRACEFS / "trace").exists():
        return None
    res = subprocess.run(["mount", "-t", "tracefs", "tracefs", str(TRACEFS)], capture_output=True, text=True)
    if res.returncode:
        raise JitterError(f"tracefs is not mounted at {TRACEFS} and mounting it failed: {res.stderr.strip()}")
    return f"mounted tracefs at {TRACEFS}"


BPF_TEXT = r"""
struct key_t { u32 cpu; u32 kind; u32 id; char name[16]; };
struct val_t { u64 count; u64 total; u64 max; };
struct cpu_t { u64 irq_at; u32 irq; u32 vec; u64 sirq_at; u64 task_at; u64 timer_at; char comm[16]; };
BPF_HASH(stats, struct key_t, struct val_t, 4096);
BPF_ARRAY(percpu, struct cpu_t, 256);

static inline int wanted(u32 cpu) { return CPUTEST; }

static inline void account(u32 cpu, u32 kind, u32 id, char *name, u64 d) {
    struct key_t k = {};
    k.cpu = cpu; k.kind = kind; k.id = id;
    if (name) __builtin_memcpy(k.name, name, 16);
    struct val_t zero = {}, *v = stats.lookup_or_try_init(&k, &zero);
    if (!v) return;
    v->count++; v->total += d;
    if (d > v->max) v->max = d;
}

TRACEPOINT_PROBE(irq, irq_handler_entry) {
    u32 cpu = bpf_get_smp_processor_id();
    if (!wanted(cpu)) return 0;
    struct cpu_t *c = percpu.lookup(&cpu);
    if (c) { c->irq_at = bpf_ktime_get_ns(); c->irq = args->irq; }
    return 0;
}
TRACEPOINT_PROBE(irq, irq_handler_exit) {
    u32 cpu = bpf_get_smp_processor_id();
    struct cpu_t *c = percpu.lookup(&cpu);
    if (!wanted(cpu) || !c || !c->irq_at) return 0;
    account(cpu, 1, c->irq, 0, bpf_ktime_get_ns() - c->irq_at);
    c->irq_at = 0;
    return 0;
}
TRACEPOINT_PROBE(irq, softirq_entry) {
    u32 cpu = bpf_get_smp_processor_id();
    if (!wanted(cpu)) return 0;
    struct cpu_t *c = percpu.lookup(&cpu);
    if (c) { c->sirq_at = bpf_ktime_get_ns(); c->vec = args->vec; }
    return 0;
}
TRACEPOINT_PROBE(irq, softirq_exit) {
    u32 cpu = bpf_get_smp_processor_id();
    struct cpu_t *c = percpu.lookup(&cpu);
    if (!wanted(cpu) || !c || !c->sirq_at) return 0;
    account(cpu, 2, c->vec, 0, bpf_ktime_get_ns() - c->sirq_at);
    c->sirq_at = 0;
    return 0;
}
TRACEPOINT_PROBE(sched, sched_switch) {
    u32 cpu = bpf_get_smp_processor_id();
    struct cpu_t *c = percpu.lookup(&cpu);
    if (!wanted(cpu) || !c) return 0;
    u64 now = bpf_ktime_get_ns();
    char prev[16];
    bpf_probe_read_kernel(prev, sizeof(prev), args->prev_comm);
    if (c->task_at && args->prev_pid != 0) account(cpu, 3, 0, prev, now - c->task_at);  /* idle is no one's */
    c->task_at = now;
    return 0;
}
TIMER_PROBES
"""

TIMER_TEXT = r"""
TRACEPOINT_PROBE(irq_vectors, local_timer_entry) {
    u32 cpu = bpf_get_smp_processor_id();
    if (!wanted(cpu)) return 0;
    struct cpu_t *c = percpu.lookup(&cpu);
    if (c) c->timer_at = bpf_ktime_get_ns();
    return 0;
}
TRACEPOINT_PROBE(irq_vectors, local_timer_exit) {
    u32 cpu = bpf_get_smp_processor_id();
    struct cpu_t *c = percpu.lookup(&cpu);
    if (!wanted(cpu) || !c || !c->timer_at) return 0;
    account(cpu, 4, 0, 0, bpf_ktime_get_ns() - c->timer_at);
    c->timer_at = 0;
    return 0;
}
"""


def bcc_unavailable() -> str | None:
    """Why bcc cannot compile a program here, said exactly; None when it can."""
    try:
        import bcc  # noqa: F401 - optional (Debian's python3-bpfcc) and 40 ms: only the tracer's check loads it
    except ImportError as exc:
        return f"bcc is not importable ({exc}): Debian's python3-bpfcc, for the system Python the venv is made from"
    build = pathlib.Path("/lib/modules") / os.uname().release / "build"
    if not (build / "include").exists() and not pathlib.Path("/sys/kernel/kheaders.tar.xz").exists():
        return (f"no kernel headers for {os.uname().release}: bcc compiles its programs against {build}, which does "
                "not exist, and the kernel has no built-in headers (/sys/kernel/kheaders.tar.xz; CONFIG_IKHEADERS). "
                f"Install linux-headers-{os.uname().release}, or load the kheaders module")
    return None


class BccTracer:
    method = "bcc"

    def __init__(self, cpus: list[int]):
        from bcc import BPF  # optional, see bcc_unavailable (which has said it imports)

        test = " || ".join(f"cpu == {c}" for c in sorted(set(cpus)))  # any CPU number, not a 64-bit mask's
        timers = TIMER_TEXT if _has_event("irq_vectors", "local_timer_entry") else ""
        text = BPF_TEXT.replace("CPUTEST", test).replace("TIMER_PROBES", timers)
        try:
            self.bpf = BPF(text=text)
        except Exception as exc:  # noqa: BLE001 - bcc raises plain Exception when the compile fails
            raise JitterError(f"bcc could not compile the tracer: {exc}") from exc

    def stop(self) -> list[dict[str, Any]]:
        names = irq_names()
        out = []
        for k, v in self.bpf["stats"].items():
            kind = KINDS.get(k.kind, str(k.kind))
            if kind == "irq":
                src = f"irq {k.id} {names.get(k.id, '')}".strip()
            elif kind == "softirq":
                src = f"softirq {SOFTIRQS[k.id] if k.id < len(SOFTIRQS) else k.id}"
            elif kind == "task":
                src = k.name.decode(errors="replace")
                if src == OURS:
                    continue  # the busy loop itself
                src = f"task {src}"
            else:
                src = "local timer"
            out.append({"cpu": k.cpu, "source": src, "kind": kind, "count": v.count,
                        "total_us": round(v.total / 1000, 1), "max_us": round(v.max / 1000, 1)})
        self.bpf.cleanup()
        return out


LINE = re.compile(r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+\S+\s+(?P<ts>\d+\.\d+): (?P<event>\w+): "
                  r"(?P<rest>.*)$")


class TracefsTracer:
    """The same tracepoints read from a tracefs instance of our own: the kernel's ring buffer, only
    for the CPUs asked, parsed after the run."""

    method = "tracefs"
    EVENTS = (("irq", "irq_handler_entry"), ("irq", "irq_handler_exit"), ("irq", "softirq_entry"),
              ("irq", "softirq_exit"), ("sched", "sched_switch"), ("irq_vectors", "local_timer_entry"),
              ("irq_vectors", "local_timer_exit"))

    def __init__(self, cpus: list[int]):
        self.note = mount_tracefs()
        self.dir = TRACEFS / "instances" / f"tickwire-jitter-{os.getpid()}"
        try:
            self.dir.mkdir()
        except OSError as exc:
            raise JitterError(f"cannot make a tracefs instance at {self.dir}: {exc.strerror}") from exc
        self.cpus = cpus
        try:
            (self.dir / "tracing_cpumask").write_text(f"{cpus_mask(cpus)}\n")
            (self.dir / "buffer_size_kb").write_text("8192\n")
            for group, name in self.EVENTS:
                f = self.dir / "events" / group / name / "enable"
                if f.exists():
                    f.write_text("1\n")
            (self.dir / "tracing_on").write_text("1\n")
        except OSError as exc:
            self._remove()
            raise JitterError(f"tracefs instance {self.dir}: {exc.strerror}") from exc

    def _remove(self) -> None:
        try:
            self.dir.rmdir()
        except OSError:
            pass

    def stop(self) -> list[dict[str, Any]]:
        (self.dir / "tracing_on").write_text("0\n")
        text = (self.dir / "trace").read_text(errors="replace")
        for group, name in self.EVENTS:
            f = self.dir / "events" / group / name / "enable"
            if f.exists():
                f.write_text("0\n")
        self._remove()
        return parse_trace(text, irq_names())


def parse_trace(text: str, names: dict[int, str]) -> list[dict[str, Any]]:
    """Tracefs's text into the same per-source figures as the bcc tracer's: entries paired with
    their exits per CPU, a task's time from the switch that brought it in to the one that took it out."""
    stats: dict[tuple[int, str, str], list[float]] = {}  # (cpu, kind, source) -> count, total, max (µs)
    open_: dict[tuple[int, str], tuple[float, str]] = {}
    task_in: dict[int, float] = {}

    def add(cpu: int, kind: str, src: str, d_us: float) -> None:
        s = stats.setdefault((cpu, kind, src), [0, 0.0, 0.0])
        s[0] += 1
        s[1] += d_us
        s[2] = max(s[2], d_us)

    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        cpu, ts, ev, rest = int(m["cpu"]), float(m["ts"]) * 1e6, m["event"], m["rest"]
        if ev == "irq_handler_entry":
            irq = re.search(r"irq=(\d+)", rest)
            if irq:
                n = int(irq.group(1))
                open_[(cpu, "irq")] = (ts, f"irq {n} {names.get(n, '')}".strip())
        elif ev == "softirq_entry":
            vec = re.search(r"vec=(\d+)", rest)
            if vec:
                v = int(vec.group(1))
                open_[(cpu, "softirq")] = (ts, f"softirq {SOFTIRQS[v] if v < len(SOFTIRQS) else v}")
        elif ev == "local_timer_entry":
            open_[(cpu, "timer")] = (ts, "local timer")
        elif ev in ("irq_handler_exit", "softirq_exit", "local_timer_exit"):
            kind = {"irq_handler_exit": "irq", "softirq_exit": "softirq", "local_timer_exit": "timer"}[ev]
            began = open_.pop((cpu, kind), None)
            if began:
                add(cpu, kind, began[1], ts - began[0])
        elif ev == "sched_switch":
            prev = re.search(r"prev_comm=(.*?) prev_pid=(\d+)", rest)
            # the idle task (pid 0) is the core with nothing to run, before and after the loop: not a stall
            if cpu in task_in and prev and prev.group(1) != OURS and prev.group(2) != "0":
                add(cpu, "task", f"task {prev.group(1)}", ts - task_in[cpu])
            task_in[cpu] = ts
    return [{"cpu": cpu, "source": src, "kind": kind, "count": int(c), "total_us": round(t, 1), "max_us": round(mx, 1)}
            for (cpu, kind, src), (c, t, mx) in sorted(stats.items())]


# ---- the run -----------------------------------------------------------------------------------------


def run(cpus: list[int], seconds: float, budget_us: float, threshold_us: float = 1.0,
        method: str = "auto", *, lab: tuple[Any, Any]) -> dict[str, Any]:
    """``lab``: the C busy loop's extension, as :func:`gaps` takes it."""
    if seconds <= 0:
        raise JitterError(f"--seconds {seconds:g}: give a duration above 0")
    online = set(range(os.cpu_count() or 1))
    bad = [c for c in cpus if c not in online]
    if not cpus or bad:
        raise JitterError(f"--cpus: {bad or 'none'} not online here (online: 0-{max(online)})")
    notes = []
    why_not_bcc = bcc_unavailable() if method in ("auto", "bcc") else "--method tracefs"
    tracer: Any
    if why_not_bcc is None:
        try:
            mount_tracefs()
            tracer = BccTracer(cpus)
        except JitterError as exc:
            if method == "bcc":
                raise
            why_not_bcc = str(exc)
            tracer = None
    else:
        if method == "bcc":
            raise JitterError(why_not_bcc)
        tracer = None
    if tracer is None:
        if method != "tracefs":  # asked for: nothing to explain
            notes.append(f"bcc cannot run here: {why_not_bcc}; reading the same tracepoints from tracefs instead")
        tracer = TracefsTracer(cpus)
        if tracer.note:
            notes.append(tracer.note)
    t0 = time.time()
    others = online - set(cpus)
    before = os.sched_getaffinity(0)
    if others:
        os.sched_setaffinity(0, others)  # this process's own threads keep off the cores measured
    try:
        loops = gaps(cpus, seconds, int(threshold_us * 1000), lab=lab)
    finally:
        sources = tracer.stop()
        os.sched_setaffinity(0, before)
    worst = max((loops[c]["max_us"] for c in loops), default=0.0)
    per_cpu = []
    for c in cpus:
        mine = sorted((s for s in sources if s["cpu"] == c), key=lambda s: -s["total_us"])
        per_cpu.append({**loops[c], "sources": mine})
    return {"cpus": cpus, "seconds": seconds, "threshold_us": threshold_us, "budget_us": budget_us,
            "method": tracer.method, "notes": notes, "started": t0, "per_cpu": per_cpu, "max_gap_us": worst,
            "verdict": "within budget" if worst <= budget_us else "over budget",
            "exit": 0 if worst <= budget_us else 1}
