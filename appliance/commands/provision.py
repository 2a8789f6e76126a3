"""``tickwire provision ...``: what provisioning/ (Ansible) needs from this tree (the work is
appliance/provision.py's)."""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

from appliance.commands.kit import Command, UsageError, arg, console
from common.paths import ROOT


def cmd_vars(args: argparse.Namespace) -> tuple[int, Any]:
    # lazy: the library loads with its verb, not at every tickwire start
    import yaml

    from appliance import config as cfgmod
    from appliance.provision import ProvisionError, render_vars

    try:
        text = render_vars(args.file)
    except (cfgmod.ConfigError, ProvisionError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(text)
    return 0, {"file": args.file, "out": args.out, "vars": yaml.safe_load(text), "text": text}


def render_vars_report(r: dict[str, Any]) -> None:
    if r["out"]:
        console.print(f"wrote {r['out']} ({len(r['vars'])} variables)")
    else:
        sys.stdout.write(r["text"])


def cmd_bundle(args: argparse.Namespace) -> tuple[int, Any]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.provision import ProvisionError, bundle

    say = (lambda m: None) if args.json else (lambda m: console.print(f"[dim]{m}[/]"))
    try:
        b = bundle(pathlib.Path(args.out), say)
    except ProvisionError as exc:
        raise UsageError(str(exc)) from exc
    return 0, b.as_dict()


def render_bundle(r: dict[str, Any]) -> None:
    console.print(f"{'kept' if r['reused'] else 'wrote'} {r['path']}: release {r['release']}, {r['files']} files "
                  f"and {r['wheels']} wheels, {r['size'] / 1e6:.1f} MB (the tickwire_app role's "
                  "tickwire_app_bundle)", highlight=False)


COMMANDS: tuple[Command, ...] = (
    Command(("provision",), "what provisioning/ (Ansible) needs from this tree: the host's variables and the "
            "release bundle", None),
    Command(("provision", "vars"), "the Ansible variables of the box an appliance YAML describes (the cores "
            "to isolate, hugepages, sysctls, NICs, ptp4l's files, the appliance's config and capabilities), "
            "from the plan tickwire tune audit checks", cmd_vars,
            (arg("file", metavar="CONFIG"),
             arg("--out", metavar="FILE", help="write them here (default: print them)")), render_vars_report),
    Command(("provision", "bundle"), "pack this built tree for a box: sources, the extension, the BPF "
            "objects and every runtime wheel, in one tar named by its content's hash", cmd_bundle,
            (arg("--out", metavar="DIR", default=str(ROOT / "build" / "bundle"),
                 help="the folder for the tar and the wheel cache (default build/bundle)"),), render_bundle),
)
