"""``tickwire journal ...``: the journal verified, exported as Parquet, queried with SQL, and its
orders rebuilt through the OMS."""

from __future__ import annotations

import argparse
import tempfile

from rich.table import Table

from appliance.commands.kit import Command, Report, UsageError, arg, console

JOURNAL_DIR = arg("--dir", default="/var/lib/tickwire/journal", metavar="DIR",
                  help="the journal's folder (default /var/lib/tickwire/journal)")


def _journal(fn, *a):
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.journal import JournalError

    try:
        return fn(*a)
    except JournalError as exc:
        raise UsageError(str(exc)) from exc


def cmd_journal_verify(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import journal

    if not journal.segments(args.dir):
        raise UsageError(f"{args.dir}: no journal here (no journal-*.twj)")
    scan = journal.verify(args.dir)
    return (1 if scan.corrupt else 0), {"dir": args.dir, **scan.as_dict()}


def render_journal_verify(r: Report) -> None:
    console.print(f"{r['dir']}: {r['records']:,} records, sequence {r['first_seq']} to {r['last_seq']}, "
                  f"{len(r['segments'])} segment(s)")
    if r["torn_tail"]:
        t = r["torn_tail"]
        console.print(f"[yellow]torn tail[/]: {t['bytes']:,} bytes at {t['file']}:{t['offset']} ({t['why']}); "
                      "the next writer cuts it off")
    for c in r["corrupt"]:
        console.print(f"[red]corrupt[/]: {c['why']} in {c['file']} at byte {c['offset']}")


def cmd_journal_export(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import journal

    if not journal.segments(args.dir):
        raise UsageError(f"{args.dir}: no journal here (no journal-*.twj)")
    return 0, {"dir": args.dir, "parquet": args.parquet, "counts": _journal(journal.export_parquet, args.dir,
                                                                             args.parquet)}


def cmd_journal_query(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import journal

    if args.parquet:
        return 0, _journal(journal.query, args.parquet, args.sql)
    if not journal.segments(args.dir):
        raise UsageError(f"{args.dir}: no journal here; give --dir, or --parquet with exported files")
    with tempfile.TemporaryDirectory(prefix="tw-journal-") as tmp:
        _journal(journal.export_parquet, args.dir, tmp)
        return 0, _journal(journal.query, tmp, args.sql)


def cmd_journal_orders(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import journal
    from appliance.oms import Oms

    if not journal.segments(args.dir):
        raise UsageError(f"{args.dir}: no journal here (no journal-*.twj)")
    oms = Oms.from_journal(args.dir)
    listed = oms.orders.values() if args.all else oms.open_orders()
    return (1 if oms.anomalies else 0), {"dir": args.dir, **oms.summary(),
                                         "listed": [o.as_dict() for o in listed]}


def render_journal_orders(r: Report) -> None:
    console.print(f"{r['dir']}: {r['orders']:,} orders, {r['open']:,} open; "
                  + ", ".join(f"{k} {v:,}" for k, v in sorted(r["by_state"].items())))
    for sym, p in r["pnl"].items():
        console.print(f"  {sym}: position {p['position']:,} (bought {p['bought']:,}, sold {p['sold']:,}), "
                      f"realized P&L {p['realized']:,.2f}")
    if r["listed"]:
        t = Table()
        for c in ("user_ref", "symbol", "side", "qty", "price", "state", "filled", "avg_price"):
            t.add_column(c)
        for o in r["listed"]:
            t.add_row(str(o["user_ref"]), o["symbol"], o["side"], f"{o['qty']:,}", f"{o['price'] / 10000:.4f}",
                      o["state"], f"{o['filled']:,}", str(o["avg_price"] or ""))
        console.print(t)
    for a in r["anomalies"]:
        console.print(f"[red]{a['why']}[/] (order {a['user_ref']}, {a['event']}, journal record {a['where']})")


def render_journal_query(r: Report) -> None:
    t = Table()
    for c in r["columns"]:
        t.add_column(c)
    for row in r["rows"]:
        t.add_row(*(str(v) for v in row))
    console.print(t)


COMMANDS: tuple[Command, ...] = (
    Command(("journal",), "the journal: every order, ack, fill, risk event, operator action and config change",
            None),
    Command(("journal", "verify"), "read the whole journal: records, sequence numbers, a torn tail (reported, "
            "not an error), corruption (exit 1)", cmd_journal_verify, (JOURNAL_DIR,), render_journal_verify),
    Command(("journal", "export"), "write the journal as Parquet: one file per kind (order, ack, fill, ...) with "
            "the record's fields as columns, and records.parquet", cmd_journal_export, (
                JOURNAL_DIR, arg("--parquet", metavar="DIR", required=True, help="where the Parquet files go")),
            lambda r: console.print(f"{r['parquet']}: " + ", ".join(f"{k} {v:,}" for k, v in r["counts"].items()))),
    Command(("journal", "orders"), "every order rebuilt from the journal through the OMS's transition table: "
            "counts by state, the open ones, positions and realized P&L, and any illegal step or unknown order "
            "(exit 1 when there is one)", cmd_journal_orders, (
                JOURNAL_DIR, arg("--all", action="store_true", help="list every order, not only the open ones")),
            render_journal_orders),
    Command(("journal", "query"), "SQL (DuckDB) over the exported Parquet files, each a table named after its "
            "file: records, order, ack, fill, cancel, reject, risk, operator, config, event", cmd_journal_query, (
                arg("sql", metavar="SQL", help='e.g. "select kind, count(*) from records group by kind"'),
                arg("--parquet", metavar="DIR", help="exported files (default: export --dir to a temporary "
                    "folder first)"),
                JOURNAL_DIR), render_journal_query),
)
