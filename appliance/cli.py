"""The ``tickwire`` command: the table assembled from its verb groups, and ``main``.

Every verb is a row (path, help, arguments, handler) in one of appliance/commands/'s
group modules; this module joins them in the order ``tickwire --help`` lists them,
builds the argparse tree from the table (so every ``--help`` is generated from it)
and runs the chosen handler. A handler returns ``(exit_code, report)``: ``--json``
prints the report as JSON, otherwise its ``render`` function prints it for a
person. Errors a user can cause (a bad link name, a missing namespace, not root)
print one line naming the value and the fix, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from appliance import __version__
from appliance.commands import (
    about,
    config,
    demo,
    exchange,
    feed,
    journal,
    kit,
    lab,
    nic,
    provision,
    ptp,
    trading,
    tune,
    xdp,
)
from appliance.commands.kit import Command, UsageError, console
from common.extensions import ExtensionMissing
from common.netns import NamespaceError

COMMANDS: tuple[Command, ...] = (
    about.COMMANDS + lab.COMMANDS + exchange.COMMANDS + xdp.COMMANDS + feed.COMMANDS + trading.COMMANDS
    + config.COMMANDS + journal.COMMANDS + nic.COMMANDS + demo.COMMANDS + ptp.COMMANDS + tune.COMMANDS
    + provision.COMMANDS
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tickwire",
        description="tickwire: a low-latency trading appliance (XDP, DPDK, Python control plane).",
        epilog="Every command takes --help; commands that report take --json.",
    )
    parser.add_argument("--version", action="version", version=f"tickwire {__version__}")
    return kit.add_commands(parser, COMMANDS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cmd: Command = args._command
    try:
        code, report = cmd.handler(args)
    except UsageError as exc:
        print(f"tickwire: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # an operation failed: say what, not a traceback
        # (the lab's LabError is common.netns.NamespaceError; ExtensionMissing: a C extension is not built)
        if isinstance(exc, (NamespaceError, ExtensionMissing, FileNotFoundError, ValueError, OSError)):
            print(f"tickwire {' '.join(cmd.path)}: {exc}", file=sys.stderr)
            return 2
        raise
    if report is None:  # the command printed its own output as it went
        return code
    if getattr(args, "json", False):
        print(json.dumps(report, indent=2, default=str))
    elif cmd.render is not None:
        cmd.render(report)
    elif report:
        console.print_json(json.dumps(report, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
