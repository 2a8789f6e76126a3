"""Host tuning on this machine, for real: the audit of an untuned host says
exactly what is off (each finding checked against the file it names, read here
again), apply changes what the running kernel can and revert puts back the exact
previous values, and the jitter probe names what takes the worker's core."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import subprocess

import pytest
import yaml

from labtools import tw, tw_json
from tuning.findings import cpulist
from tuning.jitter import bcc_unavailable
from tuning.plan import SYSCTLS

pytestmark = pytest.mark.root

EXAMPLE = str(pathlib.Path(__file__).parents[2] / "examples" / "market_maker.yaml")
WORKER = 1  # the example's host.lcores.worker


def read(path: str) -> str:
    return pathlib.Path(path).read_text().strip()


@contextlib.contextmanager
def cloud_kernel_headers():
    """Debian has no headers for this VM's kernel. For the length of a block, link its cloud kernel's headers
    (linux-headers-cloud-amd64, which setup installs) where bcc looks for them; MACHINE.md found that bcc
    compiles and runs tracepoint programs against them. Only what this made is removed afterwards, and nothing is
    linked where the running kernel has headers of its own."""
    mod = pathlib.Path("/lib/modules") / os.uname().release
    builds = sorted(pathlib.Path("/usr/src").glob("linux-headers-*-cloud-amd64"),
                    key=lambda p: [int(n) for n in re.findall(r"\d+", p.name)])
    assert builds, "no /usr/src/linux-headers-*-cloud-amd64: make setup installs them (scripts/debian-packages.txt)"
    common = builds[-1].with_name(builds[-1].name.replace("-cloud-amd64", "-common"))
    made: list[pathlib.Path] = []
    try:
        for folder in (mod.parent, mod):
            if not folder.exists():
                folder.mkdir()
                made.append(folder)
        for name, target in (("build", builds[-1]), ("source", common)):
            if not (mod / name).exists() and not (mod / name).is_symlink():
                (mod / name).symlink_to(target)
                made.append(mod / name)
        yield
    finally:
        for p in reversed(made):
            p.unlink() if p.is_symlink() else p.rmdir()


def test_the_audit_of_this_untuned_machine_says_exactly_what_is_off():
    res = tw("tune", "audit", "--config", EXAMPLE, "--json")
    r = json.loads(res.stdout)
    assert res.returncode == r["exit"] and r["exit"] in (1, 2)
    by = {(f["concern"], f["check"]): f for f in r["findings"]}
    cmd = read("/proc/cmdline").split(" -- ")[0]
    iso = by[("cmdline", "isolcpus")]
    assert iso["status"] == ("ok" if "isolcpus=" in cmd and str(WORKER) in cmd.split("isolcpus=")[1].split()[0]
                             else "fail") and iso["boot"]
    assert by[("cpu", "isolated in effect")]["status"] == ("ok" if WORKER in cpulist(read(
        "/sys/devices/system/cpu/isolated")) else "fail")
    for name in ("kernel.timer_migration", "vm.swappiness", "net.core.busy_read", "vm.stat_interval"):
        got = read("/proc/sys/" + name.replace(".", "/"))
        f = by[("sysctl", name)]
        assert f["value"] == got and f"{got} (wanted" in f["evidence"]
        assert f["status"] == ("ok" if got == {"kernel.timer_migration": "0", "vm.swappiness": "10",
                                               "net.core.busy_read": "50", "vm.stat_interval": "10"}[name] else "warn")
    on_worker = [d for d in os.listdir("/proc/irq") if d.isdigit() and
                 os.path.exists(f"/proc/irq/{d}/smp_affinity_list") and
                 WORKER in cpulist(read(f"/proc/irq/{d}/smp_affinity_list"))]
    irq = by[("irq", "IRQ affinity")]
    assert sorted(irq["value"]) == sorted(int(d) for d in on_worker)
    assert irq["status"] == ("warn" if on_worker else "ok")
    thp = read("/sys/kernel/mm/transparent_hugepage/enabled")
    assert by[("memory", "transparent hugepages")]["value"] == thp.split("[")[1].split("]")[0]
    hp = int(read("/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"))
    assert by[("memory", "hugepages on node 0")]["value"] == hp
    assert by[("clock", "clocksource")]["value"] == read(
        "/sys/devices/system/clocksource/clocksource0/current_clocksource")
    assert any(f["concern"] == "nic" and "does not exist" in f["evidence"] for f in r["findings"])  # no lab up
    assert all(f["evidence"] for f in r["findings"]) and all(f["fix"] for f in r["findings"]
                                                             if f["status"] in ("warn", "fail"))
    human = tw("tune", "audit", "--config", EXAMPLE)
    assert human.returncode == r["exit"] and "isolcpus" in human.stdout and "[madvise]" in human.stdout
    default = tw_json("tune", "audit", expect=r["exit"])  # without a config: the last CPU is the worker's
    assert default["plan"]["worker"] == os.cpu_count() - 1


def _snapshot(paths: list[str]) -> dict[str, str]:
    return {p: read(p) for p in paths if os.path.exists(p)}


def test_apply_then_revert_puts_back_the_exact_previous_values(tmp_path, monkeypatch):
    monkeypatch.setenv("TICKWIRE_TUNE_STATE", str(tmp_path / "applied.json"))
    watched = ["/proc/sys/" + n.replace(".", "/") for n in SYSCTLS] + \
        [f"/proc/irq/{d}/smp_affinity_list" for d in os.listdir("/proc/irq") if d.isdigit()] + \
        ["/proc/irq/default_smp_affinity", "/sys/devices/virtual/workqueue/cpumask",
         "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages",
         "/sys/kernel/mm/transparent_hugepage/enabled"]
    before = _snapshot(watched)
    dry = tw_json("tune", "apply", "--dry-run", "--config", EXAMPLE)
    assert dry["dry_run"] and dry["changes"] and _snapshot(watched) == before  # a dry run changes nothing
    assert any(b["what"] == "isolcpus" for b in dry["left_to_provisioning"])
    try:
        res = tw("tune", "apply", "--yes", "--config", EXAMPLE, "--json")
        done = json.loads(res.stdout)
        assert res.returncode == (1 if done["failed"] else 0) and not done["failed"], done["failed"]
        applied = {c["path"]: c["after"] for c in done["applied"] if "path" in c}
        assert applied, "nothing applied"
        for path, after in applied.items():
            got = read(path)
            assert got == str(after) or int(got.replace(",", ""), 16) == int(str(after), 16), (path, got, after)
        assert read("/proc/sys/kernel/timer_migration") == "0" and read("/proc/sys/vm/swappiness") == "10"
        moved = [p for p in applied if p.endswith("smp_affinity_list")]
        assert moved and all(WORKER not in cpulist(read(p)) for p in moved)
        state = json.loads((tmp_path / "applied.json").read_text())
        assert {c["path"] for c in state["changes"] if "path" in c} == set(applied)
        again = tw_json("tune", "apply", "--yes", "--config", EXAMPLE)  # a second apply: nothing left to change
        assert not again["applied"] and len(json.loads((tmp_path / "applied.json").read_text())["changes"]) == \
            len(state["changes"])  # the first "before" values are kept
    finally:
        rev = tw_json("tune", "revert")
    assert not rev["failed"] and len(rev["restored"]) == len(applied)
    assert _snapshot(watched) == before  # exactly as it was
    assert not (tmp_path / "applied.json").exists()
    assert tw_json("tune", "revert")["restored"] == []
    assert tw("tune", "apply", "--config", EXAMPLE).returncode == 2  # neither --dry-run nor --yes


def test_jitter_names_what_takes_the_workers_core():
    r = tw_json("tune", "jitter", "--cpus", str(WORKER), "--seconds", "2", "--method", "tracefs",
                "--budget-us", "1000000", expect=0)
    (c,) = r["per_cpu"]
    assert r["method"] == "tracefs" and c["cpu"] == WORKER and c["ran_on"] == WORKER and c["samples"] > 1_000_000
    assert c["max_us"] > 0 and c["gaps"] > 0 and c["longest"][0]["us"] == c["max_us"]
    kinds = {s["kind"] for s in c["sources"]}
    assert kinds & {"timer", "softirq", "irq"}, c["sources"]  # the tick, at least, comes to a core nobody isolated
    assert all(s["cpu"] == WORKER and s["count"] > 0 for s in c["sources"])
    assert not any(s["source"] == "task tw-jitter" for s in c["sources"])
    tight = tw("tune", "jitter", "--cpus", str(WORKER), "--seconds", "1", "--method", "tracefs", "--budget-us",
               "0.001", "--json")
    assert tight.returncode == 1 and json.loads(tight.stdout)["verdict"] == "over budget"
    why = bcc_unavailable()
    auto = tw_json("tune", "jitter", "--cpus", str(WORKER), "--seconds", "1", "--budget-us", "1000000")
    if why is not None:  # no headers for this kernel: it says so exactly, and the tracefs reading stands in
        assert auto["method"] == "tracefs" and why in auto["notes"][0] and "no kernel headers" in auto["notes"][0]
    with cloud_kernel_headers():  # then the bcc program, for real
        assert bcc_unavailable() is None
        r = tw_json("tune", "jitter", "--cpus", str(WORKER), "--seconds", "2", "--budget-us", "1000000")
        (c,) = r["per_cpu"]
        assert r["method"] == "bcc" and r["notes"] == [] and c["cpu"] == WORKER and c["samples"] > 1_000_000
        assert {s["kind"] for s in c["sources"]} & {"timer", "softirq", "irq"}, c["sources"]
        assert all(s["cpu"] == WORKER and s["count"] > 0 and s["max_us"] <= s["total_us"] for s in c["sources"])
        assert not any(s["source"] == "task tw-jitter" for s in c["sources"])
        both = tw_json("tune", "jitter", "--cpus", "0,1", "--seconds", "1", "--budget-us", "1000000")
        assert both["method"] == "bcc" and [c["cpu"] for c in both["per_cpu"]] == [0, 1]
        assert all({s["cpu"] for s in c["sources"]} == {c["cpu"]} for c in both["per_cpu"])  # each its own core's
    assert bcc_unavailable() == why  # the links are gone again
    bad = tw("tune", "jitter", "--cpus", "99", "--seconds", "1")
    assert bad.returncode == 2 and "not online here" in bad.stderr


def test_the_nic_checks_read_the_labs_interfaces(lab, tmp_path):
    raw = yaml.safe_load(pathlib.Path(EXAMPLE).read_text())
    raw["host"]["netns"] = lab.ns("app")
    path = tmp_path / "appliance.yaml"
    path.write_text(yaml.safe_dump(raw))
    r = json.loads(tw("tune", "audit", "--config", str(path), "--json").stdout)
    by = {f["check"]: f for f in r["findings"] if f["concern"] == "nic"}
    for iface in ("feed-a", "feed-b", "order"):
        assert iface not in by, by[iface]  # every planned interface was found
        shown = subprocess.run(["ip", "netns", "exec", lab.ns("app"), "ethtool", "-l", iface], capture_output=True,
                               text=True, check=True).stdout
        current = shown.split("Current hardware settings:")[1]
        rx = int(current.split("RX:")[1].split()[0])
        assert by[f"{iface} channels"]["value"] == rx
        assert by[f"{iface} rx ring"]["status"] == by[f"{iface} coalescing"]["status"] == "info"  # veth has neither
        assert "does not support" in by[f"{iface} rx ring"]["evidence"]
        assert by[f"{iface} timestamping"]["value"] is False and by[f"{iface} timestamping"]["status"] == "ok"
        assert "virtual device" in by[f"{iface} NUMA node"]["evidence"]
    dry = tw_json("tune", "apply", "--dry-run", "--config", str(path))
    assert not [c for c in dry["changes"] if c["concern"] == "nic"]  # nothing veth can change
