"""Host tuning's pure parts: CPU lists and masks, the kernel command line, the plan
from the appliance YAML, and the tracefs parser the jitter probe falls back on."""

from __future__ import annotations

import pathlib

from appliance import config
from tuning import cmdline, jitter
from tuning.findings import Finding, cpulist, cpus_mask, cpus_text, mask_cpus, verdict
from tuning.plan import Plan

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "market_maker.yaml"


def test_cpu_lists_and_masks_read_as_the_kernel_writes_them():
    assert cpulist("0-2,5") == {0, 1, 2, 5} and cpulist("") == set() and cpulist("7\n") == {7}
    assert cpus_text({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8" and cpus_text(set()) == ""
    assert mask_cpus("3") == {0, 1} and mask_cpus("00000000,00000101") == {0, 8} and mask_cpus(None) == set()
    # written as the kernel's bitmap parser takes them: 32-bit groups (more than 8 digits in one it refuses)
    assert cpus_mask({0, 1}) == "3" and cpus_mask({0, 40}) == "100,00000001" and cpus_mask(set()) == "0"
    assert mask_cpus(cpus_mask(set(range(0, 96, 3)))) == set(range(0, 96, 3))


def test_the_command_line_is_read_up_to_inits_arguments():
    got = cmdline.params("BOOT_IMAGE=/v isolcpus=managed_irq,domain,2-3 nosoftlockup -- --init=1 isolcpus=9")
    assert got == {"BOOT_IMAGE": "/v", "isolcpus": "managed_irq,domain,2-3", "nosoftlockup": ""}
    assert cmdline._cpus_of("managed_irq,domain,2-3") == {2, 3}


def test_the_plan_comes_from_the_yaml(monkeypatch):
    cfg = config.load(EXAMPLE)
    plan = Plan.from_config(cfg)
    assert plan.worker == 1 and plan.isolated == {1} and plan.control == 0 and plan.numa_node == 0
    assert [(i.name, i.netns) for i in plan.interfaces] == [("feed-a", "tw-app"), ("feed-b", "tw-app"),
                                                           ("order", "tw-app")]
    assert plan.hugepages_2mb == 512 and not plan.hugepages_required and plan.timestamping == "software"
    wider = Plan.from_config(cfg.model_copy(update={"host": cfg.host.model_copy(update={"isolated_cpus": [1, 2]})}))
    assert wider.isolated == {1, 2}
    want = cmdline.wanted(plan)
    assert want["isolcpus"] == "managed_irq,domain,1" and want["irqaffinity"] == cpus_text(plan.housekeeping)


def test_the_verdict_is_the_worst_finding():
    f = [Finding("a", "x", "ok", ""), Finding("a", "y", "info", "")]
    assert verdict(f) == (0, "tuned")
    assert verdict(f + [Finding("a", "z", "warn", "")]) == (1, "degraded")
    assert verdict(f + [Finding("a", "z", "warn", ""), Finding("a", "w", "fail", "")]) == (2, "not tuned")


TRACE = """# tracer: nop
#
          <idle>-0       [001] d.h1.  100.000010: local_timer_entry: vector=236
          <idle>-0       [001] d.h1.  100.000015: local_timer_exit: vector=236
          <idle>-0       [001] d.h1.  100.000100: irq_handler_entry: irq=42 name=virtio3-tx
          <idle>-0       [001] d.h1.  100.000103: irq_handler_exit: irq=42 ret=handled
          <idle>-0       [001] ..s1.  100.000104: softirq_entry: vec=1 [action=TIMER]
          <idle>-0       [001] ..s1.  100.000110: softirq_exit: vec=1 [action=TIMER]
       tw-jitter-77      [001] d..2.  100.000200: sched_switch: prev_comm=tw-jitter prev_pid=77 prev_prio=120 \
prev_state=R ==> next_comm=kworker/1:2 next_pid=9 next_prio=120
     kworker/1:2-9       [001] d..2.  100.000250: sched_switch: prev_comm=kworker/1:2 prev_pid=9 prev_prio=120 \
prev_state=I ==> next_comm=tw-jitter next_pid=77 next_prio=120
          <idle>-0       [001] d.h1.  100.001010: local_timer_entry: vector=236
          <idle>-0       [001] d.h1.  100.001022: local_timer_exit: vector=236
""".replace("\\\n", "")


def test_tracefs_text_becomes_counts_and_durations_per_source():
    got = {s["source"]: s for s in jitter.parse_trace(TRACE, {42: "virtio3-tx"})}
    assert got["local timer"]["count"] == 2 and got["local timer"]["max_us"] == 12.0
    assert got["local timer"]["total_us"] == 17.0
    assert got["irq 42 virtio3-tx"]["count"] == 1 and got["irq 42 virtio3-tx"]["total_us"] == 3.0
    assert got["softirq TIMER"]["total_us"] == 6.0
    assert got["task kworker/1:2"] == {"cpu": 1, "source": "task kworker/1:2", "kind": "task", "count": 1,
                                       "total_us": 50.0, "max_us": 50.0}
    assert "task tw-jitter" not in got  # the busy loop itself is not a source
