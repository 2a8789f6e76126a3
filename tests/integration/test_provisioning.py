"""Provisioning for real: the playbook converges into a Debian 12 debootstrap chroot
through community.general.chroot (twice: the second run changes nothing), the files
it wrote are the ones the appliance YAML asks for, its verify tasks read the same
/proc and /sys values as `tickwire tune audit` (run on the box itself), the release it
installed replays NASDAQ's captures as this tree does, the NIC script applies and
checks settings on real interfaces, and `tickwire run` trades as an unprivileged user
with exactly the unit's capabilities and fails without any one of them.

The chroot sees the host's /proc and /sys read-only: nothing it runs can change this
machine's kernel (the roles' *_apply_now are off as well). The debootstrap itself is
kept in /var/cache/tickwire-tests (30 s and 200 MB the first time) and copied afresh
for each run of this module."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from common import paths
from labtools import ExchangeProcess, tw, tw_json, unique_prefix

pytestmark = [pytest.mark.root, pytest.mark.timeout(1800)]  # two converges on a loaded 2-core box

ROOT = pathlib.Path(__file__).parents[2]
PROVISIONING = ROOT / "provisioning"
COLO = ROOT / "examples" / "colo_host.yaml"
BIN = pathlib.Path(sys.executable).parent
BASE = pathlib.Path("/var/cache/tickwire-tests/debootstrap-bookworm-minbase")
MIRROR = "http://deb.debian.org/debian"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
# what the chroot may not do to this machine, and what a chroot has not
CHROOT_VARS = {
    "tickwire_packages_kernel_headers": False,   # Debian ships no headers for this VM's kernel
    "tickwire_kernel_cmdline_update_grub": False,  # no boot loader in a chroot
    **{f"tickwire_{role}_apply_now": False for role in ("hugepages", "cpu_isolation", "sysctl", "nic")},
    **{f"tickwire_{role}_verify_live": False for role in ("kernel_cmdline", "hugepages", "cpu_isolation", "sysctl",
                                                          "nic", "ptp")},
}


def _debootstrap() -> pathlib.Path:
    if (BASE / ".complete").exists():
        return BASE
    tmp = BASE.with_name(BASE.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(tmp), MIRROR], capture_output=True,
                         text=True, timeout=1200)
    assert res.returncode == 0, f"debootstrap failed: {res.stderr[-2000:]}"
    (tmp / ".complete").touch()
    tmp.rename(BASE)
    return BASE


def playbook(box: dict, playbook_name: str = "site.yml", *extra: str, timeout: float = 1200) \
        -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(box["inventory"]), playbook_name, *extra],
                          cwd=PROVISIONING, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "ANSIBLE_CONFIG": str(PROVISIONING / "ansible.cfg"),
                               "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
                               "PATH": f"{BIN}:{os.environ['PATH']}"})


def recap(res: subprocess.CompletedProcess, host: str) -> dict[str, int]:
    for m in RECAP.finditer(res.stdout):
        if m.group(1) == host:
            return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m.groups()[1:]), strict=True))
    raise AssertionError(f"no PLAY RECAP for {host}: {res.stdout[-3000:]} {res.stderr[-2000:]}")


def in_box(box: dict, *argv: str, user: str | None = None) -> subprocess.CompletedProcess:
    cmd = ["chroot", str(box["root"])] + (["runuser", "-u", user, "--"] if user else []) + list(argv)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    """A bare Debian 12 (debootstrap minbase: no python3, no systemd) provisioned twice with
    the example's variables from examples/colo_host.yaml and the chroot's overrides."""
    prefix = unique_prefix()
    base = _debootstrap()
    root = pathlib.Path(f"/tmp/{prefix}-box")
    work = tmp_path_factory.mktemp("provisioning")
    mounts: list[pathlib.Path] = []
    try:
        subprocess.run(["cp", "-a", str(base), str(root)], check=True)
        shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
        # packages start no service in a chroot (Debian's policy-rc.d convention)
        (root / "usr" / "sbin" / "policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
        (root / "usr" / "sbin" / "policy-rc.d").chmod(0o755)
        for fs in ("proc", "sysfs"):
            target = root / ("proc" if fs == "proc" else "sys")
            subprocess.run(["mount", "-t", fs, "-o", "ro", fs, str(target)], check=True)
            mounts.append(target)
        bundle = tw_json("provision", "bundle")
        generated = yaml.safe_load(tw("provision", "vars", str(COLO)).stdout)
        host_vars = work / "inventory" / "host_vars" / prefix
        host_vars.mkdir(parents=True)
        (host_vars / "00-tickwire.yml").write_text(yaml.safe_dump(generated))  # the later file wins: the chroot's
        report = work / "verify" / f"{prefix}.json"
        nics = [{**n, "features_off": [*n["features_off"], "gro"]} for n in generated["tickwire_nic_interfaces"]]
        (host_vars / "10-chroot.yml").write_text(yaml.safe_dump({
            **CHROOT_VARS, "tickwire_app_bundle": bundle["path"], "tickwire_verify_report": str(report.parent),
            "tickwire_app_secret_files": {"/etc/tickwire/ouch.secret": "chroot-pw1"},  # SoupBinTCP: 10 at most
            "tickwire_app_environment": {"TW_EXAMPLE": 'a"b\\c d '},
            "tickwire_nic_interfaces": nics}))
        (work / "inventory" / "hosts.yml").write_text(yaml.safe_dump({"tickwire_hosts": {"hosts": {prefix: {
            "ansible_host": str(root), "ansible_connection": "community.general.chroot"}}}}))
        box = {"host": prefix, "root": root, "inventory": work / "inventory", "report": report, "vars": generated,
               "bundle": bundle, "work": work}
        started = time.monotonic()
        box["first"] = playbook(box)
        box["first_seconds"] = time.monotonic() - started
        started = time.monotonic()
        box["second"] = playbook(box)
        box["second_seconds"] = time.monotonic() - started
        yield box
    finally:
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", str(m)], check=False)
        shutil.rmtree(root, ignore_errors=True)
        assert not root.exists()


def test_the_playbook_passes_its_syntax_check_and_ansible_lint_at_the_production_profile():
    res = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", "inventory/example", "site.yml"],
                         cwd=PROVISIONING, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    lint = subprocess.run([str(BIN / "ansible-lint"), "--profile", "production", "--nocolor"], cwd=PROVISIONING,
                          capture_output=True, text=True, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    assert lint.returncode == 0 and "Profile 'production' was required, and it passed" in lint.stderr, \
        lint.stdout + lint.stderr
    # the example inventory's variables are what `tickwire provision vars` writes from the example config today
    example = PROVISIONING / "inventory" / "example" / "host_vars" / "colo1" / "tickwire.yml"
    now = subprocess.run([str(BIN / "tickwire"), "provision", "vars", "examples/colo_host.yaml"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert example.read_text() == now, "regenerate it: tickwire provision vars examples/colo_host.yaml --out " \
        "provisioning/inventory/example/host_vars/colo1/tickwire.yml"


def test_provision_vars_refuses_a_lab_config_and_a_worker_left_out_of_isolation(tmp_path):
    lab = tw("provision", "vars", "examples/market_maker.yaml")
    assert lab.returncode == 2 and "host.netns 'tw-app' is the lab's" in lab.stderr
    raw = yaml.safe_load(COLO.read_text())
    raw["host"]["isolated_cpus"] = [2]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    bad = tw("provision", "vars", str(tmp_path / "bad.yaml"))
    assert bad.returncode == 2 and "leaves out the worker's CPU 3" in bad.stderr


def test_a_bare_box_converges_and_a_second_run_changes_nothing(box):
    first, second = box["first"], box["second"]
    one = recap(first, box["host"])
    assert first.returncode == 0 and one["failed"] == 0 and one["changed"] > 20, first.stdout[-4000:]
    two = recap(second, box["host"])
    assert second.returncode == 0 and two == {**two, "changed": 0, "failed": 0}, \
        [line for line in second.stdout.splitlines() if line.startswith("changed")]
    root = box["root"]
    v = box["vars"]
    # the kernel command line: a marked drop-in, /etc/default/grub left alone
    dropin = (root / "etc/default/grub.d/60-tickwire.cfg").read_text()
    assert "Ansible managed" in dropin and not (root / "etc/default/grub").exists()
    hk = "0-1" if os.cpu_count() == 2 else None  # the chroot's CPUs are this machine's
    assert re.search(r'^GRUB_CMDLINE_LINUX="\$\{GRUB_CMDLINE_LINUX\} isolcpus=managed_irq,domain,3 nohz_full=3 '
                     r'rcu_nocbs=3 irqaffinity=(\S+) skew_tick=1 tsc=reliable nosoftlockup"$', dropin, re.M)
    if hk:
        assert f"irqaffinity={hk} " in dropin
    sysctl = (root / "etc/sysctl.d/60-tickwire.conf").read_text().split("\n")
    assert {line.split("=")[0].strip(): line.split("=")[1].strip() for line in sysctl if "=" in line} == \
        v["tickwire_sysctl_values"]
    hp = (root / "etc/systemd/system/tickwire-hugepages.service").read_text()
    assert "echo 1024 > /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages" in hp
    assert "\nIRQBALANCE_BANNED_CPULIST=3\n" in (root / "etc/default/irqbalance").read_text()  # nothing after it
    affinity = (root / "etc/systemd/system.conf.d/60-tickwire-cpuaffinity.conf").read_text()
    assert "[Manager]" in affinity and (f"CPUAffinity={hk}\n" in affinity if hk else "CPUAffinity=" in affinity)
    assert "echo 3 > /sys/devices/virtual/workqueue/cpumask" in \
        (root / "etc/systemd/system/tickwire-cpu-isolation.service").read_text()
    # ptp4l's files are exactly what `tickwire ptp config` writes for the same YAML
    ptp = box["work"] / "ptp"
    tw("ptp", "config", str(COLO), "--out", str(ptp), "--group", "tickwire")
    for name in ("ptp4l.conf", "tickwire-ptp4l.service", "tickwire-phc2sys.service"):
        where = root / ("etc/tickwire" if name.endswith(".conf") else "etc/systemd/system") / name
        assert where.read_text() == (ptp / name).read_text(), name
    # units enabled offline (systemctl in a chroot), the appliance's not (ops start it)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "tickwire-ptp4l.service").is_symlink() and (wants / "tickwire-nic.service").is_symlink()
    assert (root / "etc/systemd/system/sysinit.target.wants/tickwire-hugepages.service").is_symlink()
    assert not (wants / "tickwire.service").exists()
    # the appliance: its user, its release, its config and secret, its unit
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    assert passwd["tickwire"][6] == "/usr/sbin/nologin" and int(passwd["tickwire"][2]) < 1000
    current = root / "opt/tickwire/current"
    assert os.readlink(current).endswith(box["bundle"]["release"])
    assert (root / "opt/tickwire/releases" / box["bundle"]["release"] / "RELEASE").read_text().strip() == \
        box["bundle"]["release"]
    assert (root / "etc/tickwire/appliance.yaml").read_text() == COLO.read_text()
    env = root / "etc/tickwire/environment"  # as systemd reads an EnvironmentFile: quoted, \\ and " escaped
    assert 'TW_EXAMPLE="a\\"b\\\\c d "\n' in env.read_text() and env.stat().st_mode & 0o777 == 0o600
    secret = root / "etc/tickwire/ouch.secret"
    assert secret.read_text() == "chroot-pw1" and secret.stat().st_mode & 0o777 == 0o600
    assert secret.stat().st_uid == int(passwd["tickwire"][2])
    unit = (root / "etc/systemd/system/tickwire.service").read_text()
    from appliance.service import RUN_CAPABILITIES
    assert "\nUser=tickwire\n" in unit and f"\nAmbientCapabilities={' '.join(RUN_CAPABILITIES)}\n" in unit
    assert f"\nCapabilityBoundingSet={' '.join(RUN_CAPABILITIES)}\n" in unit and "\nCPUAffinity=2-3\n" in unit
    assert "\nExecStart=/opt/tickwire/current/venv/bin/tickwire run /etc/tickwire/appliance.yaml --name tw\n" in unit
    # locked down: what it writes is the operators' group's to read, nobody else's; the tree read-only but its own
    # folders; its bpffs folder its own (no chmod 1770 of bpffs' root); systemd-analyze's rating under the bar
    group = {line.split(":")[0]: line.split(":") for line in (root / "etc/group").read_text().splitlines()}
    assert "tickwire-ops" in group and int(group["tickwire-ops"][2]) < 1000
    for line in ("Group=tickwire-ops", "SupplementaryGroups=tickwire", "UMask=0027", "LimitCORE=0",
                 "RuntimeDirectoryMode=0750", "StateDirectoryMode=0750", "ProtectSystem=strict",
                 "ReadWritePaths=/sys/fs/bpf/tickwire", "ProtectKernelTunables=yes", "ProtectKernelModules=yes",
                 "ProtectKernelLogs=yes", "ProtectControlGroups=yes", "ProtectClock=yes", "ProtectHostname=yes",
                 "RestrictAddressFamilies=AF_UNIX AF_INET AF_NETLINK AF_XDP",
                 "SystemCallFilter=@system-service bpf capset", "SystemCallArchitectures=native",
                 "LockPersonality=yes", "RestrictSUIDSGID=yes", "RestrictNamespaces=yes"):
        assert f"\n{line}\n" in unit, line
    assert "1770" not in unit and "install -d -o tickwire -g tickwire-ops -m 0750 /sys/fs/bpf/tickwire " in unit
    rated = in_box(box, "systemd-analyze", "security", "--offline=true", "/etc/systemd/system/tickwire.service")
    level = re.search(r"Overall exposure level for tickwire.service: ([0-9.]+)", rated.stdout)
    assert level and float(level.group(1)) < 3.0, rated.stdout[-1500:] + rated.stderr[-1500:]
    assert json.loads(box["report"].read_text())["app"]["exposure"].startswith(level.group(1))  # verify's reading
    # each release has its own venv: a running appliance keeps the code it started with
    release = root / "opt/tickwire/releases" / box["bundle"]["release"]  # current is absolute: the box's path
    assert (release / "venv" / "lib" / "python3.11" / "site-packages" / "tickwire.pth").read_text().strip() == \
        f"/opt/tickwire/releases/{box['bundle']['release']}"
    assert os.readlink(root / "usr/local/bin/tickwire") == "/opt/tickwire/current/venv/bin/tickwire"
    assert 'KERNEL=="cpu_dma_latency", GROUP="tickwire", MODE="0660"' in \
        (root / "etc/udev/rules.d/60-tickwire.rules").read_text()
    # DPDK's libraries held at the ABI the extension was built for
    held = in_box(box, "dpkg-query", "-W", "-f", "${Package} ${Status}\n", "librte-ethdev23", "libbpf1").stdout
    assert held.count("hold ok installed") == 2, held
    print(f"converge: {box['first_seconds']:.0f} s, then {box['second_seconds']:.0f} s with nothing to change")


def test_verify_reads_what_tune_audit_reads_on_the_box(box):
    r = json.loads(box["report"].read_text())
    audit = json.loads(in_box(box, "tickwire", "tune", "audit", "--config", "/etc/tickwire/appliance.yaml",
                              "--json").stdout)
    by = {(f["concern"], f["check"]): f for f in audit["findings"]}
    for name, reading in r["sysctl"].items():
        assert reading["running"] == by[("sysctl", name)]["value"] and reading["file"] == reading["wanted"], name
    running = dict(p.partition("=")[::2] for p in r["kernel_cmdline"]["proc_cmdline"].split())
    for key in ("isolcpus", "nohz_full", "rcu_nocbs", "irqaffinity", "skew_tick", "tsc"):
        assert by[("cmdline", key)]["value"] == (running.get(key) or None), key
    assert set(r["kernel_cmdline"]["wanted"]) - set(r["kernel_cmdline"]["missing_in_running"]) == \
        {w for w in r["kernel_cmdline"]["wanted"] if by[("cmdline", w.split("=")[0])]["status"] == "ok"}
    assert r["cpu_isolation"]["isolated"] == by[("cpu", "isolated in effect")]["value"]
    assert r["cpu_isolation"]["workqueue_cpumask"] == by[("cpu", "workqueue cpumask")]["value"]
    assert r["hugepages"]["nr_hugepages"] == by[("memory", "hugepages on node 0")]["value"]
    assert r["hugepages"]["hugetlbfs_mounted"] == bool(by[("memory", "hugetlbfs mounted")]["value"])
    # and the box's own release runs as its user against the box's DPDK
    assert r["app"]["version"]["dpdk"].startswith("DPDK 22.11") and r["app"]["config_check_rc"] == 0
    assert r["app"]["config_check"]["warnings"] == []  # its secret readable by its user
    assert all(r["packages"].values()) and r["ptp"]["files_match"]


def test_verify_fails_on_what_the_running_kernel_lacks_and_names_it(box):
    res = playbook(box, "verify.yml", "-e", "tickwire_sysctl_verify_live=true")
    differ = {name: pathlib.Path("/proc/sys/" + name.replace(".", "/")).read_text().strip()
              for name in box["vars"]["tickwire_sysctl_values"]}
    differ = {n: v for n, v in differ.items() if v != box["vars"]["tickwire_sysctl_values"][n]}
    if differ:  # this machine is not tuned: verify says which values, as /proc/sys has them
        assert res.returncode == 2 and recap(res, box["host"])["failed"] == 1
        for name, value in differ.items():
            assert f"{name} is {value} (wanted {box['vars']['tickwire_sysctl_values'][name]})" in res.stdout, name
    else:
        assert res.returncode == 0, res.stdout[-3000:]
    live = playbook(box, "verify.yml", "-e", "tickwire_kernel_cmdline_verify_live=true")
    assert live.returncode == 2 and "the drop-in is written but the box has not booted with it" in live.stdout


REBOOT_TASK = "Reboot when the running kernel lacks what the drop-in says"


def reboot_decision(res: subprocess.CompletedProcess) -> str:
    """changed or skipping: what the kernel_cmdline role's reboot task did in a --check run."""
    after = res.stdout.split(REBOOT_TASK, 1)
    assert res.returncode == 0 and len(after) == 2, res.stdout[-3000:]
    return re.search(r"^(ok|changed|skipping|fatal):", after[1], re.M).group(1)


def test_the_kernel_cmdline_role_reboots_only_when_asked_and_the_running_kernel_lacks_its_line(box):
    """--check decides the reboot without doing it (ansible's reboot action says changed and stops there);
    the chroot's /proc is this machine's, booted without isolation."""
    words = pathlib.Path("/proc/cmdline").read_text().split()
    iso = box["vars"]["tickwire_kernel_cmdline_isolated_cpus"]
    lacking = any(p not in words for p in (f"isolcpus=managed_irq,domain,{iso}", f"nohz_full={iso}"))
    run = ("site.yml", "--check", "--tags", "kernel_cmdline")
    assert reboot_decision(playbook(box, *run)) == "skipping"  # never without reboot_ok
    ok = ("-e", "tickwire_kernel_cmdline_reboot_ok=true")
    assert reboot_decision(playbook(box, *run, *ok)) == ("changed" if lacking else "skipping")
    # removing the drop-in reboots only a kernel still isolated by it
    isolated = any(w.startswith("isolcpus=managed_irq,domain,") for w in words)
    absent = playbook(box, *run, *ok, "-e", "tickwire_kernel_cmdline_state=absent")
    assert reboot_decision(absent) == ("changed" if isolated else "skipping")
    assert (box["root"] / "etc/default/grub.d/60-tickwire.cfg").exists()  # --check removed nothing


def test_the_release_on_the_box_replays_nasdaqs_captures_as_this_tree_does(box):
    data = paths.shared_data()
    if data is None:
        pytest.skip("../shared/data is not beside this checkout")
    itch = data / "nasdaq" / "sample-first-1000.itch"
    pcap = data / "nasdaq" / "Nasdaq.Equities.TotalView.Itch.v5.0.20230822" / "AddOrderNoMPID.pcap"
    for src, user in ((itch, "tickwire"), (pcap, None)):  # a BinaryFILE as its user; DPDK's pcap port as root
        inside = box["root"] / "tmp" / src.name
        shutil.copy(src, inside)  # into the throwaway box only
        res = in_box(box, "tickwire", "book", f"/tmp/{src.name}", "--json", user=user)
        assert res.returncode == 0, res.stderr
        there, here = json.loads(res.stdout), tw_json("book", str(src))
        for r in (there, here):
            r.pop("file"), r.pop("seconds", None)
        assert there == here and there["books"], src.name
        inside.unlink()


def test_the_nic_script_applies_and_checks_settings_on_real_interfaces(box):
    """The script the role wrote, on veths named as the config's NICs (ens1f0, ens1f1; ens2f0 absent):
    GRO switched on first is reported, turned off, then reported in effect; what veth lacks is said."""
    ns = f"{box['host']}-nic"
    script = str(box["root"] / "usr/local/libexec/tickwire-nic-settings")
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for i, name in enumerate(("ens1f0", "ens1f1")):
            subprocess.run(["ip", "-n", ns, "link", "add", name, "type", "veth", "peer", "name", f"peer{i}"],
                           check=True)
            subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-K", name, "gro", "on"], check=True)

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(["ip", "netns", "exec", ns, "sh", script, *args], capture_output=True, text=True)

        before = run("--check")
        assert before.returncode == 3, before.stdout  # gro on two NICs, ens2f0 missing
        assert "FAILED: ens1f0 gro is on (wanted off)" in before.stdout and "FAILED: ens2f0 does not exist" in \
            before.stdout and "unsupported by the driver: ens1f0 rx ring" in before.stdout
        applied = run()
        assert applied.returncode == 1 and "ok: ens1f0 gro off (was on)" in applied.stdout
        after = run("--check")
        assert after.returncode == 1 and "ok: ens1f1 gro off" in after.stdout and "gro is on" not in after.stdout
        assert "generic-receive-offload: off" in subprocess.run(
            ["ip", "netns", "exec", ns, "ethtool", "-k", "ens1f0"], capture_output=True, text=True).stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


# ---- the unit's capabilities, in the lab ----------------------------------------------------

BYPASS = ("import sys; import appliance.cli as c; import appliance.commands.feed as f; "
          "f.need_root = lambda *a, **k: None; sys.exit(c.main(sys.argv[1:]))")


def test_tickwire_run_trades_as_its_own_user_with_the_units_capabilities_and_needs_each(box, lab, tmp_path):
    """The capabilities the provisioned unit grants are enough for `tickwire run` to trade as
    an unprivileged user (as systemd's AmbientCapabilities= gives them), and each is needed:
    without any one the kernel refuses (the XDP program, its maps, the AF_XDP socket or its
    umem) and, through the CLI, tickwire says which one is missing."""
    unit = (box["root"] / "etc/systemd/system/tickwire.service").read_text()
    caps = re.search(r"^AmbientCapabilities=(.*)$", unit, re.M).group(1).split()
    # what the unit runs as root before it starts (its own folder under bpffs, root's links into it), with this
    # machine's nobody for its user
    user, group = re.search(r"^User=(.*)$", unit, re.M).group(1), re.search(r"^Group=(.*)$", unit, re.M).group(1)
    pre = [line.removeprefix("ExecStartPre=+") for line in unit.splitlines() if line.startswith("ExecStartPre=+")]
    pre = [p.replace(f"chgrp {group} ", "chgrp nogroup ").replace(f"-o {user} -g {group}", "-o nobody -g nogroup")
           for p in pre]
    assert pre and all("nogroup" in p for p in pre), pre
    work = pathlib.Path(f"/tmp/{lab.prefix}-caps")
    work.mkdir(mode=0o755)
    ex = None
    try:
        raw = yaml.safe_load((ROOT / "examples" / "market_maker.yaml").read_text())
        del raw["host"]["netns"]  # run inside the app namespace, as a box runs on its own
        raw["host"]["cpu_latency_us"] = None  # /dev/cpu_dma_latency is root's here (the unit's udev rule gives it)
        raw["ptp"]["stop_trading_on_failure"] = False
        raw["journal"]["dir"] = str(work / "journal")
        raw["strategies"] = raw["strategies"][:1]
        raw["risk"]["strategies"] = {"mm-taaa": raw["risk"]["strategies"]["mm-taaa"]}
        config = work / "appliance.yaml"
        config.write_text(yaml.safe_dump(raw))
        config.chmod(0o644)
        ex = ExchangeProcess(lab, tmp_path, duration=90, rate=1000)

        def run(granted: list[str], *, bypass: bool) -> subprocess.CompletedProcess:
            for d in ("journal", "run"):
                shutil.rmtree(work / d, ignore_errors=True)
                (work / d).mkdir()
                shutil.chown(work / d, "nobody")
            c = ",".join(f"+{x.removeprefix('CAP_').lower()}" for x in granted)
            tick = shlex.join([sys.executable, "-c", BYPASS] if bypass else [str(BIN / "tickwire")])
            # bpffs as systemd mounts it (0700, root's), then the unit's own preparation of it
            inner = (f"mount -t bpf -o mode=700 bpf /sys/fs/bpf && {' && '.join(pre)} && "
                     f"exec setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all{',' + c if c else ''}"
                     f" --ambient-caps=-all{',' + c if c else ''} --bounding-set=-all{',' + c if c else ''} "
                     f"{tick} run {config} --duration 3 --json")
            # DPDK keeps a non-root process's runtime folder under XDG_RUNTIME_DIR, else in /tmp/dpdk
            env = {**os.environ, "TICKWIRE_RUN_DIR": str(work / "run"), "XDG_RUNTIME_DIR": str(work / "run"),
                   "TW_OUCH_PASSWORD": "lab-secret"}
            return subprocess.run(["ip", "netns", "exec", lab.ns("app"), "sh", "-c", inner], capture_output=True,
                                  text=True, timeout=120, env=env)

        full = run(caps, bypass=False)
        assert full.returncode == 0, full.stderr[-3000:]
        report = json.loads(full.stdout)
        assert report["stats"]["orders_sent"] > 0 and sum(report["stats"]["rx_packets"]) > 0, report["stats"]
        refusals = {"CAP_NET_ADMIN": "Operation not permitted", "CAP_BPF": "Operation not permitted",
                    "CAP_PERFMON": "Permission denied", "CAP_NET_RAW": "Failed to create umem",
                    "CAP_IPC_LOCK": "Failed to create umem"}
        assert set(refusals) == set(caps)
        for cap in caps:
            without = [c for c in caps if c != cap]
            told = run(without, bypass=False)
            assert told.returncode == 2 and f"(missing here: {cap})" in told.stderr, told.stderr[-1000:]
            refused = run(without, bypass=True)  # past tickwire's own check: the kernel's word
            assert refused.returncode != 0 and refusals[cap] in refused.stderr, (cap, refused.stderr[-2000:])
    finally:
        if ex is not None:
            ex.stop()
        shutil.rmtree(work, ignore_errors=True)
