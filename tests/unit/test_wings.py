"""The wings (DESIGN.md): imports only run downward, appliance -> dpdk, tuning -> xdp -> common,
nothing imports appliance but appliance, no cycles. pyproject.toml's import-linter contracts
say it; these tests run them on the tree, and show that a forbidden import breaks them."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

from common.paths import ROOT

LINT_IMPORTS = pathlib.Path(sys.executable).parent / "lint-imports"
PACKAGES = ("appliance", "common", "dpdk", "tuning", "xdp")


def lint_imports(tree: pathlib.Path) -> subprocess.CompletedProcess:
    # run from the tree: lint-imports puts its working folder first on the path, ahead of the
    # editable install, so it reads that tree's packages
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", "--config", str(tree / "pyproject.toml")],
                          cwd=tree, capture_output=True, text=True, timeout=120)


def copy_tree(dest: pathlib.Path) -> pathlib.Path:
    """The packages' Python sources and pyproject.toml, nothing built."""
    def not_python(folder: str, names: list[str]) -> list[str]:
        return [n for n in names
                if n == "__pycache__" or not (n.endswith(".py") or (pathlib.Path(folder) / n).is_dir())]

    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=not_python)
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_the_tree_keeps_every_import_contract():
    res = lint_imports(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_tuning_module_that_imports_appliance_breaks_the_contracts(tmp_path):
    tree = copy_tree(tmp_path)
    plan = tree / "tuning" / "plan.py"
    plan.write_text(plan.read_text() + "\nimport appliance.config  # noqa: E402,F401 - the forbidden import\n")
    res = lint_imports(tree)
    assert res.returncode == 1, res.stdout + res.stderr
    broken = res.stdout.split("Broken contracts", 1)[-1]
    assert "nothing imports appliance but appliance BROKEN" in " ".join(res.stdout.split())
    assert "tuning.plan -> appliance.config" in broken


def test_a_cycle_inside_a_package_breaks_the_contracts(tmp_path):
    tree = copy_tree(tmp_path)
    findings = tree / "tuning" / "findings.py"  # tuning.plan imports it: this closes a loop
    findings.write_text(findings.read_text() + "\nimport tuning.plan  # noqa: E402,F401 - the cycle\n")
    res = lint_imports(tree)
    assert res.returncode == 1, res.stdout + res.stderr
    out = " ".join(res.stdout.split())
    assert "no import cycles between the modules of a package, at any depth BROKEN" in out
    assert "No cycles are allowed in tuning." in out
