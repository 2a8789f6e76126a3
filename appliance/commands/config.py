"""``tickwire config ...``: the appliance YAML checked, and its effective values explained."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from appliance.commands.kit import Command, Report, UsageError, arg, console

CONFIG_FILE = arg("file", metavar="FILE", help="the appliance YAML (see examples/market_maker.yaml)")


def cmd_config_check(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import config
    from appliance.config.model import SecretUnavailable

    try:
        cfg = config.load(args.file)
    except config.ConfigError as exc:
        return 1, {"file": args.file, "valid": False, "problems": [p.as_dict(exc.file) for p in exc.problems],
                   "warnings": []}
    warnings = []
    try:
        cfg.venue.password()
    except SecretUnavailable as exc:  # the secret may live only on the box: a warning here
        warnings = [p.text(args.file) for p in exc.problems]
    except config.ConfigError as exc:  # there, and unusable (too long, a file others read): the run would fail
        return 1, {"file": args.file, "valid": False, "problems": [p.as_dict(args.file) for p in exc.problems],
                   "warnings": []}
    warnings += unsaid(cfg, args.file)
    return 0, {"file": args.file, "valid": True, "problems": [], "warnings": warnings,
               "instruments": [i.symbol for i in cfg.instruments],
               "strategies": [f"{s.name} ({s.kind} on {s.instrument})" for s in cfg.strategies]}


def unsaid(cfg: Any, file: str) -> list[str]:
    """Warnings for what the YAML leaves unsaid and a safe run depends on."""
    out = []
    if cfg.venue.cancel_on_disconnect is None:
        out.append(f"{file}: venue.cancel_on_disconnect is not set: say whether the venue cancels this port's "
                   "orders when its session drops (true or false; ask the venue). If it does not, orders can "
                   "be left working when this box dies")
    for name, line in cfg.feed.lines.items():
        if line.source is None:
            out.append(f"{file}: feed.lines.{name}.source is not set: datagrams on {line.group}:{line.port} are "
                       "taken from any sender; give the exchange's publisher (address and port) so a spoofed "
                       "one is dropped")
    return out


def render_config_check(r: Report) -> None:
    for w in r["warnings"]:
        console.print(f"[yellow]warning[/]: {w}")
    if r["valid"]:
        console.print(f"{r['file']}: [green]valid[/]; instruments {', '.join(r['instruments'])}; strategies "
                      + (", ".join(r["strategies"]) or "none"))
        return
    n = len(r["problems"])
    console.print(f"{r['file']}: [red]{n} problem{'s' if n != 1 else ''}[/]")
    for p in r["problems"]:
        at = f"{p['file']}:{p['line']}" if p["line"] else p["file"]
        value = f" {p['value']!r}" if p["value"] is not None else ""
        where = f"{p['path']}{value}: " if p["path"] else ""
        console.print(f"  {at}: {where}{p['message']}", markup=False, highlight=False)


def cmd_config_explain(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import config

    try:
        return 0, {"file": args.file, "settings": config.explain(args.file)}
    except config.ConfigError as exc:
        raise UsageError(f"{exc}\n(tickwire config check {args.file} lists the problems)") from exc


def render_config_explain(r: Report) -> None:
    t = Table(title=f"{r['file']}: effective settings", title_justify="left")
    t.add_column("setting")
    t.add_column("value")
    t.add_column("from")
    for row in r["settings"]:
        src = row["source"]
        if src.startswith(f"{r['file']}:"):
            src = f"line {src.rsplit(':', 1)[1]}"
        t.add_row(row["path"], str(row["value"]), src if src != "default" else "[dim]default[/]")
    console.print(t)


COMMANDS: tuple[Command, ...] = (
    Command(("config",), "the appliance YAML: check it, explain its effective values", None),
    Command(("config", "check"), "validate an appliance YAML: every problem at once, each with its line, the "
            "value and the fix (exit 0 valid, 1 not)", cmd_config_check, (CONFIG_FILE,), render_config_check),
    Command(("config", "explain"), "every effective setting of an appliance YAML, defaults included, and where "
            "each came from (its line, or the default); then each strategy's effective risk limits and the level "
            "that set each", cmd_config_explain, (CONFIG_FILE,), render_config_explain),
)
