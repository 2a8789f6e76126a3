"""What a fresh clone relies on: pinned dependencies, the README's first commands,
the setup's package list."""

from __future__ import annotations

import re
import tomllib

import xdp
from appliance import provision
from common.paths import ROOT


def lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"requirements.lock: {line!r} is not an exact pin (name==version)"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_every_dependency_in_pyproject_is_pinned_in_the_lock():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    pins = lock()
    for req in wanted:
        name = re.sub(r"[-_.]+", "-", re.split(r"[<>=!~ \[]", req)[0]).lower()
        assert name in pins, f"{name} is in pyproject.toml but not pinned in requirements.lock (make lock)"


def test_the_camera_library_ptpy_is_not_a_dependency():
    assert "ptpy" not in lock()


def test_the_readme_opens_with_make_demo_then_make_test():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)
    first_commands = [line.strip() for block in blocks[:2] for line in block.splitlines() if line.strip()]
    assert first_commands[:2] == ["make demo", "make test"]


def test_the_debian_package_list_names_the_tools_the_code_runs():
    pkgs = {line.split("#")[0].strip() for line in (ROOT / "scripts/debian-packages.txt").read_text().splitlines()}
    for needed in ("clang", "libbpf-dev", "bpftool", "libdpdk-dev", "iproute2", "ethtool", "python3-bpfcc"):
        assert needed in pkgs


def test_bcc_from_debian_imports_inside_the_venv():
    # the reason the venv is built with --system-site-packages (README); imported here, not at the
    # top, so that a venv without it fails this test rather than the module's collection
    import bcc

    assert bcc.__file__.startswith("/usr/lib/python3/dist-packages/")


def test_every_bpf_program_is_built():
    assert "lab_impair" in xdp.PROGRAMS
    for name in xdp.PROGRAMS:
        assert xdp.object_path(name).stat().st_size > 0


def test_every_package_is_installed_and_bundled():
    # a package at the top of the checkout (common/ is the newest) must be in the wheel's
    # packages and in what `tickwire provision bundle` copies to a box
    tops = sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in ("tests", "bench"))
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(i.removesuffix("*") for i in include) == tops
    assert sorted(provision.PACKAGES) == tops
