"""Preflight names what is missing and how to get it; exit 2 when anything is."""

from __future__ import annotations

import dataclasses
import json

from appliance import preflight

CONFIG = {opt: "y" for opt, _, _ in preflight.KERNEL_FEATURES}


def host(**over) -> preflight.Host:
    base = preflight.Host(
        euid=0,
        os_release={"ID": "debian", "VERSION_ID": "12"},
        kernel_release="6.18.0-test",
        kernel_config=dict(CONFIG),
        config_source="/proc/config.gz",
        python_version=(3, 11),
        probes={name: (lambda: None) for name in ("bpf", "btf", "af_xdp", "netns")},
    )
    return dataclasses.replace(base, **over)


def failed(h: preflight.Host) -> dict[str, preflight.Finding]:
    return {f.check: f for f in preflight.run_checks(h) if not f.ok}


def test_a_debian_12_root_host_with_every_feature_passes():
    assert failed(host()) == {}
    assert preflight.main([], host=host()) == 0


def test_not_root_is_named_with_the_fix(capsys):
    bad = failed(host(euid=1000))
    assert list(bad) == ["root"]
    assert "uid 1000" in bad["root"].evidence and "as root" in bad["root"].fix
    assert preflight.main([], host=host(euid=1000)) == 2
    assert "root: running as uid 1000" in capsys.readouterr().err


def test_a_non_root_run_blames_root_not_the_kernel():
    def eperm():
        return "socket(AF_XDP) failed: Operation not permitted"

    probes = {name: eperm for name in ("bpf", "btf", "af_xdp", "netns")}
    probes["btf"] = probes["netns"] = lambda: None
    assert list(failed(host(euid=1000, probes=probes))) == ["root"]


def test_another_distribution_is_named():
    bad = failed(host(os_release={"ID": "ubuntu", "VERSION_ID": "24.04"}))
    assert "ID=ubuntu VERSION_ID=24.04" in bad["debian"].evidence
    assert "Debian 12" in bad["debian"].fix


def test_a_kernel_without_xdp_sockets_names_the_option():
    config = dict(CONFIG)
    del config["CONFIG_XDP_SOCKETS"]
    bad = failed(host(kernel_config=config))
    assert list(bad) == ["kernel:CONFIG_XDP_SOCKETS"]
    assert "CONFIG_XDP_SOCKETS=not set" in bad["kernel:CONFIG_XDP_SOCKETS"].evidence
    assert "AF_XDP" in bad["kernel:CONFIG_XDP_SOCKETS"].fix


def test_a_failing_probe_is_reported_even_when_the_config_says_yes():
    probes = {name: (lambda: None) for name in ("bpf", "btf", "af_xdp", "netns")}
    probes["bpf"] = lambda: "bpf(BPF_MAP_CREATE) failed: Operation not permitted"
    bad = failed(host(probes=probes))
    assert bad["kernel:CONFIG_BPF_SYSCALL"].evidence.endswith("Operation not permitted")


def test_without_a_kernel_config_the_probes_decide():
    probes = {name: (lambda: None) for name in ("bpf", "btf", "af_xdp", "netns")}
    probes["btf"] = lambda: "/sys/kernel/btf/vmlinux is absent"
    bad = failed(host(kernel_config=None, config_source="no kernel config", probes=probes))
    assert list(bad) == ["kernel:CONFIG_DEBUG_INFO_BTF"]


def test_several_problems_are_reported_at_once(capsys):
    assert preflight.main([], host=host(euid=5, os_release={})) == 2
    err = capsys.readouterr().err
    assert "2 problems" in err and "root:" in err and "debian:" in err


def test_json_lists_every_check(capsys):
    assert preflight.main(["--json"], host=host()) == 0
    checks = json.loads(capsys.readouterr().out)
    assert {c["check"] for c in checks} >= {"root", "debian", "python", "kernel:CONFIG_VETH"}


def test_parse_os_release_strips_quotes():
    assert preflight.parse_os_release('ID=debian\nVERSION_ID="12"\n# c\n') == {"ID": "debian", "VERSION_ID": "12"}
