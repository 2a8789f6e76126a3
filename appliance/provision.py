"""What provisioning (``provisioning/``, Ansible) needs from this tree.

``tickwire provision vars CONFIG`` turns the appliance YAML into the roles'
variables, from the same plan ``tickwire tune audit`` checks against (the kernel
command line, the sysctls, the cores, the hugepages, the NICs) and the same
generator ``tickwire ptp config`` writes ptp4l's files with, so what the playbook
writes and what the audit expects cannot drift apart.

``tickwire provision bundle`` packs this built tree for a box: the Python
sources, the compiled extension and BPF objects, the runtime pins and every
wheel they name, in one tar whose name carries a hash of its content (the same
tree makes the same bundle, so a second playbook run changes nothing). The box
then needs neither a compiler nor PyPI.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pathlib
import subprocess
import sys
import tarfile
from typing import Any

import yaml

from appliance import __version__
from appliance.service import RUN_CAPABILITIES
from common.paths import ROOT

# what the bundle carries besides its wheels: the packages' files (sources, the extension), and these
PACKAGES = ("appliance", "common", "xdp", "dpdk", "tuning")
TOP_FILES = ("pyproject.toml", "README.md", "requirements-runtime.lock")
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"
SKIP_SUFFIXES = (".pyc", ".new")
# what a box runs: Debian 12's CPython 3.11 on x86_64 (glibc 2.36), whatever the controller runs
NATIVE = "_native.cpython-311-x86_64-linux-gnu.so"
TARGET = ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none",
          *(a for v in [*(f"manylinux_2_{m}_x86_64" for m in range(36, 4, -1)), "manylinux2014_x86_64",
                         "manylinux2010_x86_64", "manylinux1_x86_64", "any"]
            for a in ("--platform", v))]  # pip takes each tag it may choose, newest first


class ProvisionError(Exception):
    """A config provisioning cannot use, or a tree not built: said with the fix."""


# ---- vars ------------------------------------------------------------------------------------


class _Block(str):
    """A string YAML writes as a literal block (|), as a person would."""


def _block(dumper: yaml.SafeDumper, value: _Block) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # a list indented under its key, as yamllint wants


_Dumper.add_representer(_Block, _block)


def host_vars(config_path: str) -> dict[str, Any]:
    """The Ansible variables of the box the appliance YAML describes, by role."""
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import config as cfgmod
    from appliance.ptp import conf as ptpconf
    from tuning.findings import cpus_text
    from tuning.plan import SYSCTLS

    cfg = cfgmod.load(config_path)
    text = pathlib.Path(config_path).read_text()
    if "{{" in text or "{%" in text:
        raise ProvisionError(f"{config_path}: holds '{{{{' or '{{%', which Ansible would take for a template: take "
                             "them out of the config (comments included)")
    h = cfg.host
    if h.netns:
        raise ProvisionError(f"{config_path}: host.netns {h.netns!r} is the lab's: a provisioned box reaches its "
                             "NICs directly; leave host.netns out of the box's config")
    isolated = sorted(set(h.isolated_cpus or [h.lcores.worker]))
    if h.lcores.worker not in isolated:
        raise ProvisionError(f"{config_path}: host.isolated_cpus {isolated} leaves out the worker's CPU "
                             f"{h.lcores.worker}: add it (the worker busy-polls a core nobody else may use)")
    ifaces: dict[str, list[str]] = {}
    for name, line in cfg.feed.lines.items():
        ifaces.setdefault(line.interface, []).append(f"feed line {name}")
    if cfg.ptp.interface:
        ifaces.setdefault(cfg.ptp.interface, []).append("ptp")
    out: dict[str, Any] = {
        "tickwire_kernel_cmdline_isolated_cpus": cpus_text(isolated),
        "tickwire_cpu_isolation_isolated_cpus": cpus_text(isolated),
        "tickwire_hugepages_2mb": h.hugepages_2mb,
        "tickwire_hugepages_node": h.numa_node,
        "tickwire_sysctl_values": {name: value for name, (value, _) in SYSCTLS.items()},
        "tickwire_nic_interfaces": [{"name": name, "role": ", ".join(roles), "rx_ring": 4096, "rx_usecs": 0,
                                     "features_off": ["lro", "rx-gro-hw"]} for name, roles in ifaces.items()],
    }
    if cfg.ptp.interface:
        units = ptpconf.units(cfg.ptp, group="tickwire")
        out["tickwire_ptp_interface"] = cfg.ptp.interface
        out["tickwire_ptp_ptp4l_conf"] = _Block(ptpconf.ptp4l_conf(cfg.ptp))
        out["tickwire_ptp_units"] = {name: _Block(text) for name, text in units.items()}
        out["tickwire_ptp_uds_address"] = str(cfg.ptp.uds_address)
    out.update({
        "tickwire_app_config": _Block(text),
        "tickwire_app_capabilities": list(RUN_CAPABILITIES),
        "tickwire_app_cpus": cpus_text({h.lcores.control, h.lcores.worker}),
        "tickwire_app_cpu_latency": h.cpu_latency_us is not None,
        "tickwire_app_journal_dir": str(cfg.journal.dir),  # the unit's ReadWritePaths when not under its state
    })
    return out


def render_vars(config_path: str) -> str:
    head = ("---\n"
            f"# tickwire's host variables, written by `tickwire provision vars {config_path}`\n"
            "# from the appliance YAML: regenerate them, do not edit them (the audit checks the\n"
            "# host against the same YAML). Per-box choices (reboot_ok, secrets) go beside this file.\n")
    return head + yaml.dump(host_vars(config_path), Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                            width=110, allow_unicode=True)


# ---- bundle ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Bundle:
    path: pathlib.Path
    release: str
    files: int
    wheels: int
    size: int
    reused: bool

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "path": str(self.path)}


def _tree_files() -> list[tuple[str, pathlib.Path]]:
    """(name in the bundle, file here) for every file a box runs from, sorted."""
    # lazy: the library loads with its verb, not at every tickwire start
    import xdp

    missing = []
    native = ROOT / "dpdk" / NATIVE
    if not native.is_file():
        missing.append(f"dpdk/{NATIVE} (the cffi extension, for Debian 12's Python 3.11 on x86_64)")
    objects = [ROOT / "build" / "xdp" / f"{name}.bpf.o" for name in (*xdp.PROGRAMS, "feed_filter_hwts")]
    missing += [str(p.relative_to(ROOT)) for p in objects if not p.is_file()]
    if not RUNTIME_LOCK.is_file():
        missing.append(RUNTIME_LOCK.name)
    if missing:
        raise ProvisionError(f"the tree is not built: {', '.join(missing)} missing: run `make setup` first")
    files = []
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*")):
            rel = p.relative_to(ROOT)
            if p.is_file() and "__pycache__" not in rel.parts and not p.name.endswith(SKIP_SUFFIXES) \
                    and not (p.name.startswith("_native") and p.name != NATIVE):
                files.append((str(rel), p))
    files += [(name, ROOT / name) for name in TOP_FILES]
    files += [(str(p.relative_to(ROOT)), p) for p in objects]
    files += [(f"examples/{p.name}", p) for p in sorted((ROOT / "examples").glob("*.yaml"))]
    return sorted(files)


def _wheels(cache: pathlib.Path, say: Any) -> list[pathlib.Path]:
    """Every wheel requirements-runtime.lock names, for this Python and platform (pip's cache keeps
    them; a wheel already in ``cache`` is not fetched again)."""
    cache.mkdir(parents=True, exist_ok=True)
    say(f"fetching the wheels of {RUNTIME_LOCK.name} into {cache} (pip; cached after the first time)")
    res = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
                          "--quiet", "--only-binary", ":all:", "--no-deps", *TARGET, "--dest", str(cache), "-r",
                          str(RUNTIME_LOCK)], capture_output=True, text=True)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ProvisionError(f"pip could not fetch the runtime wheels ({tail}): the bundle needs PyPI (or pip's "
                             "find-links) once, on the machine that builds it")
    wanted = {_norm(line.split("==")[0]) for line in RUNTIME_LOCK.read_text().splitlines()
              if line and not line.startswith("#")}
    wheels = sorted(p for p in cache.glob("*.whl") if _norm(p.name.split("-")[0]) in wanted)
    have = {_norm(p.name.split("-")[0]) for p in wheels}
    if wanted - have:
        raise ProvisionError(f"no wheel for {', '.join(sorted(wanted - have))} in {cache}")
    return wheels


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uname, info.gname = len(data), mode, 0, "root", "root"
    tar.addfile(info, io.BytesIO(data))


def bundle(out: pathlib.Path, say: Any = lambda m: None) -> Bundle:
    """The release tar in ``out`` (reused when one of the same content is there)."""
    files = _tree_files()
    wheels = _wheels(out / "wheels", say)
    digest = hashlib.sha256()
    for name, path in files:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    for w in wheels:
        digest.update(w.name.encode() + b"\0")  # a wheel's name carries its version and build
    release = f"{__version__}-{digest.hexdigest()[:12]}"
    path = out / f"tickwire-{release}.tar"
    if path.is_file():
        return Bundle(path, release, len(files), len(wheels), path.stat().st_size, True)
    say(f"packing {len(files)} files and {len(wheels)} wheels into {path.name}")
    tmp = path.with_suffix(".tar.tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, p in files:
            _add(tar, name, p.read_bytes(), 0o755 if os.access(p, os.X_OK) else 0o644)
        for w in wheels:
            _add(tar, f"wheels/{w.name}", w.read_bytes())
        _add(tar, "RELEASE", f"{release}\n".encode())
    os.replace(tmp, path)
    for old in out.glob("tickwire-*.tar"):
        if old != path:
            old.unlink()  # one bundle a folder: the role copies the newest
    return Bundle(path, release, len(files), len(wheels), path.stat().st_size, False)
