"""The wings (DESIGN.md): imports only run downward, appliance -> dpdk, tuning -> xdp -> common,
nothing imports appliance but appliance, no cycles. pyproject.toml's import-linter contracts
say it; these tests run them on the tree, and show that a forbidden import breaks them."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

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


# (module file, the import added to it, the contract it breaks, what the report names)
FORBIDDEN = [
    ("tuning/plan.py", "import appliance.config", "nothing imports appliance but appliance",
     "tuning.plan -> appliance.config"),
    ("xdp/__init__.py", "import dpdk", "the wings: appliance above dpdk and tuning (each on its own), above xdp, "
     "above common", "xdp -> dpdk"),
    ("tuning/plan.py", "import dpdk", "the wings: appliance above dpdk and tuning (each on its own), above xdp, "
     "above common", "tuning.plan -> dpdk"),
    ("common/paths.py", "import xdp", "the wings: appliance above dpdk and tuning (each on its own), above xdp, "
     "above common", "common.paths -> xdp"),
    ("tuning/plan.py", "import xdp", "tuning and xdp are independent: a host's tuning needs no packet filter",
     "tuning.plan -> xdp"),
    ("tuning/findings.py", "import tuning.plan", "no import cycles between the modules of a package, at any depth",
     "No cycles are allowed in tuning."),  # tuning.plan imports findings: this closes a loop
]


@pytest.mark.parametrize(("module", "line", "contract", "named"), FORBIDDEN,
                         ids=[f"{m}: {x}" for m, x, *_ in FORBIDDEN])
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, contract, named):
    tree = copy_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # noqa: E402,F401 - the forbidden import\n")
    res = lint_imports(tree)
    assert res.returncode == 1, res.stdout + res.stderr
    out = " ".join(res.stdout.split())
    assert f"{contract} BROKEN" in out, res.stdout
    assert named in out.split("Broken contracts", 1)[-1], res.stdout
