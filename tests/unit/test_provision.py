"""What provisioning takes from this tree: the host's Ansible variables come from the
same plan and generators as `tickwire tune audit` and `tickwire ptp config`, the roles'
CPU-list filters write lists as the kernel does, and a config Ansible would template is
refused."""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib

import pytest
import yaml

from appliance import config, provision
from appliance.ptp import conf as ptpconf
from appliance.service import RUN_CAPABILITIES
from tuning import cpu
from tuning.findings import cpus_mask
from tuning.plan import SYSCTLS, Plan

ROOT = pathlib.Path(__file__).parents[2]
COLO = ROOT / "examples" / "colo_host.yaml"


def test_the_host_vars_are_the_audits_plan_and_ptp_configs_files():
    v = provision.host_vars(str(COLO))
    cfg = config.load(COLO)
    assert v["tickwire_kernel_cmdline_isolated_cpus"] == v["tickwire_cpu_isolation_isolated_cpus"] == "3"
    assert v["tickwire_sysctl_values"] == {k: value for k, (value, _) in SYSCTLS.items()}
    assert (v["tickwire_hugepages_2mb"], v["tickwire_hugepages_node"]) == (1024, 0)
    assert [(n["name"], n["role"]) for n in v["tickwire_nic_interfaces"]] == [
        ("ens1f0", "feed line A"), ("ens1f1", "feed line B"), ("ens2f0", "ptp")]
    assert v["tickwire_ptp_ptp4l_conf"] == ptpconf.ptp4l_conf(cfg.ptp)
    assert v["tickwire_ptp_units"] == ptpconf.units(cfg.ptp, group="tickwire")
    assert "Group=tickwire\nUMask=0007\n" in v["tickwire_ptp_units"]["tickwire-ptp4l.service"]
    assert "-a -r -n 0 -z /run/ptp/ptp4l" in v["tickwire_ptp_units"]["tickwire-phc2sys.service"]
    assert v["tickwire_app_config"] == COLO.read_text() and v["tickwire_app_capabilities"] == list(RUN_CAPABILITIES)
    assert v["tickwire_app_cpus"] == "2-3" and v["tickwire_app_cpu_latency"] is True
    text = provision.render_vars(str(COLO))
    assert text.startswith("---\n# tickwire's host variables") and yaml.safe_load(text) == v
    assert "tickwire_ptp_ptp4l_conf: |\n  # ptp4l configuration" in text  # a literal block, as a person writes it


def test_a_config_ansible_would_template_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(COLO.read_text() + "# see {{ the docs }}\n")
    with pytest.raises(provision.ProvisionError, match="Ansible would take for a template"):
        provision.host_vars(str(bad))


def test_the_audit_says_when_the_plans_cpus_are_not_this_boxs():
    plan = Plan.from_config(config.load(COLO))
    small = dataclasses.replace(plan, cpus=frozenset({0, 1}))
    f = cpu._planned(small)
    assert f.status == "fail" and "CPU 2-3 not online here" in f.fix and f.value == ""
    fits = dataclasses.replace(plan, cpus=frozenset(range(8)))
    assert cpu._planned(fits).status == "ok" and cpu._planned(fits).value == "2-3"


def _filters():
    path = ROOT / "provisioning" / "roles" / "tickwire_common" / "filter_plugins" / "tickwire_cpus.py"
    spec = importlib.util.spec_from_file_location("tickwire_cpus", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.FilterModule().filters()


def test_the_roles_cpu_filters_write_lists_as_the_kernel_does():
    f = _filters()
    assert f["tickwire_cpus"]("0-2,5") == [0, 1, 2, 5] and f["tickwire_cpus"]("") == []
    assert f["tickwire_cpulist"]([5, 0, 1, 2]) == "0-2,5" and f["tickwire_cpulist"]([3]) == "3"
    assert f["tickwire_cpumask"]([0, 1]) == "3" and f["tickwire_cpumask"]([0, 1, 2, 3, 8]) == "10f"
    for cpus in ([0, 40], list(range(0, 130, 7)), [63, 64]):  # the roles write what tune apply writes
        assert f["tickwire_cpumask"](cpus) == cpus_mask(cpus)
    with pytest.raises(Exception, match="'x' is not a CPU or a range"):
        f["tickwire_cpus"]("1,x")
