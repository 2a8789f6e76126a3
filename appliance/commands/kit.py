"""What every verb group shares: the table's row type, ``arg``, the usage error,
the root check, the console and the live views' loop.

A handler takes argparse's namespace and returns ``(exit_code, report)``:
``--json`` prints the report as JSON, otherwise the row's ``render`` prints it for
a person; ``None`` as the report means the handler printed as it went. Errors a
user can cause raise :class:`UsageError`: one line naming the value and the fix,
exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console

from appliance import preflight

Report = dict[str, Any] | list[Any]
Handler = Callable[[argparse.Namespace], tuple[int, Report | None]]
console = Console()


class UsageError(Exception):
    """Something the user can fix; the message says what and how."""


@dataclasses.dataclass(frozen=True)
class Arg:
    flags: tuple[str, ...]
    kwargs: dict[str, Any]


def arg(*flags: str, **kwargs: Any) -> Arg:
    return Arg(flags, kwargs)


@dataclasses.dataclass(frozen=True)
class Command:
    """One row of the table: a verb's path, its help, its handler (None: a group of verbs), its
    arguments and how its report is shown."""
    path: tuple[str, ...]
    help: str
    handler: Handler | None
    args: tuple[Arg, ...] = ()
    render: Callable[[Report], None] | None = None
    json: bool = True      # has --json
    root: bool = False     # needs root


# arguments several groups take
PREFIX = arg("--prefix", default=None,
             help="lab name prefix: namespaces are PREFIX-exch, PREFIX-app, PREFIX-standby (default tw)")
IFACE = arg("iface", metavar="IFACE", help="the interface, e.g. feed-a")
NETNS = arg("--netns", metavar="NS", help="the interface's network namespace (e.g. tw-app in the lab)")


def need_root(what: str, caps: Sequence[str] = ()) -> None:
    """Root, or (when ``caps`` are given) a process holding every one of them: the
    systemd unit provisioning writes runs ``tickwire run`` as its own user with just those."""
    if os.geteuid() == 0:
        return
    if caps:
        missing = [c for c in caps if not preflight.has_capability(c)]
        if not missing:
            return
        raise UsageError(f"{what} needs root or the capabilities {', '.join(caps)} (missing here: "
                         f"{', '.join(missing)}): run it as root, or give them to the process (systemd's "
                         "AmbientCapabilities=, as provisioning's tickwire_app unit does)")
    raise UsageError(f"{what} needs root (network namespaces, BPF): run it as root, e.g. sudo tickwire ...")


def repeat(fn: Callable[[], Any], interval: float, count: int = 0, stop: Callable[[], bool] | None = None) -> None:
    """fn() every interval seconds until Ctrl-C, count calls (0: no end), or stop() says so: the
    live views' and the watchers' loop."""
    n = 0
    try:
        while not (stop and stop()):
            fn()
            n += 1
            if count and n >= count:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        pass


def add_commands(top: argparse.ArgumentParser, commands: Sequence[Command]) -> argparse.ArgumentParser:
    """The argparse tree of a table under ``top``: a row without a handler is a group of verbs, every
    other row a verb with its arguments (and --json when it reports)."""
    subparsers: dict[tuple[str, ...], argparse._SubParsersAction] = {
        (): top.add_subparsers(dest="command", metavar="COMMAND", required=True)}
    for cmd in commands:
        parent = subparsers[cmd.path[:-1]]
        p = parent.add_parser(cmd.path[-1], help=cmd.help, description=cmd.help)
        if cmd.handler is None:
            subparsers[cmd.path] = p.add_subparsers(dest="_".join(cmd.path), metavar="VERB", required=True)
            continue
        for a in cmd.args:
            p.add_argument(*a.flags, **a.kwargs)
        if cmd.json:
            p.add_argument("--json", action="store_true", help="print the report as JSON")
        p.set_defaults(_command=cmd)
    return top
