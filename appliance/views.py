"""The rich views of a worker's reports: its feed statistics, a trading worker's status, the
books, one line per event. The CLI's verb groups and the demo draw them (each prints them on
its own console); nothing but rich below."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table

EVENT_TEXT = {
    "gap": lambda e: f"gap: {e['count']:,} missing from {e['first']:,}",
    "recovered": lambda e: f"recovered: {e['messages']:,} messages; next {e['next_seq']:,}",
    "unrecoverable": lambda e: f"[red]unrecoverable gap[/]: {e['count']:,} skipped from {e['first']:,}; books stale",
    "end_of_session": lambda e: f"end of session at {e['next_seq']:,}",
    "retransmission_request": lambda e: f"asked for {e['count']:,} from {e['first']:,}",
    "risk_denied": lambda e: f"risk denied order {e['user_ref']} ({e['qty']:,} shares, locate {e['locate']}): "
                             f"{e['denial']}",
    "order": lambda e: order_text(e),
    "bad_answer": lambda e: bad_answer_text(e),
}


OUCH_ANSWERS = {"A": "accepted", "E": "executed", "C": "canceled", "J": "rejected", "U": "replaced",
                "X": "cancel sent"}


def order_text(e: dict[str, Any]) -> str:
    if e["type"] == "O":
        after = (f", {e['tick_to_trade_ns'] / 1000:.1f} µs after the arrival of line {e['line']} packet {e['seq']:,}"
                 if "tick_to_trade_ns" in e else "")
        return f"order {e['user_ref']} sent: {e['qty']:,} {e.get('symbol', '')}{after}"
    if e["type"] == "N":
        return f"order {e['user_ref']} [red]not sent[/]: the link broke before it was written"
    return f"order {e['user_ref']} {OUCH_ANSWERS.get(e['type'], e['type'])}: {e['qty']:,}"


def bad_answer_text(e: dict[str, Any]) -> str:
    """An impossible answer from the venue (dpdk.ouch.BAD_ANSWERS): what, about which order; the kill switch."""
    about = "a session packet" if e["type"] == "session" else \
        f"{OUCH_ANSWERS.get(e['type'], e['type'])} {e['qty']:,} of order {e['user_ref']}" + (
            f" ({e['open']:,} open)" if "open" in e else "")
    return f"[red]impossible answer[/] from the venue, {e['why'].replace('_', ' ')}: {about}; kill switch thrown"


def event_text(e: dict[str, Any]) -> str:
    fn = EVENT_TEXT.get(e["event"])
    if fn:
        return fn(e)
    who = f" {e['symbol']} ({e['locate']})" if "locate" in e else ""
    return f"{e['event'].replace('_', ' ')}{who}: {e.get('code', '')}"


def status_view(r: dict[str, Any]) -> Group:
    h = r["health"]
    ok = {"in sequence": "green", "up": "green", "watching": "green"}

    def tint(v: Any) -> str:
        return f"[{ok.get(v, 'red') if isinstance(v, str) else 'red'}]{v}[/]"

    def money(v: Any) -> str:
        return f"{v:,.2f}" if isinstance(v, (int, float)) else "-"

    def tripped(t: Any) -> str:
        return tint(t) if isinstance(t, str) else f"[red]tripped: {t['breach']} {t['value']} (limit {t['limit']})[/]"

    kills = h["kill_switch"]
    why = f" ({kills['reason'].replace('_', ' ')})" if kills.get("reason") else ""
    killed = ([f"the whole worker{why}"] if kills["global"] else []) + [f"strategy {n}" for n in kills["strategies"]] + \
        [f"instrument {i}" for i in kills["instruments"]]
    names = ", ".join(s["name"] for s in r["strategies"]) or "none"
    t = Table(title=f"{r['name']}: {'[green]running[/]' if r['running'] else '[yellow]stopped[/]'}, pid {r['pid']}, "
              f"up {r['uptime_s']:.0f} s, strategies {names}", title_justify="left")
    t.add_column("")
    t.add_column("")
    rows = [
        ("feed / session", f"{tint(h['feed'])} / {tint(h['session'])}"),
        ("kill switch", "[red]" + ", ".join(killed) + " thrown[/]" if killed else "[green]clear[/]"),
        ("risk manager", tripped(h["risk_manager"])),
        ("clock", h["clock"]),
        ("P&L / drawdown (all)", f"{money(r['pnl'])} / {money(r['drawdown'])}"),
        ("orders (open)", f"{r['orders'].get('orders', 0):,} ({r['orders'].get('open', 0):,}); "
         + ", ".join(f"{k} {v:,}" for k, v in sorted(r["orders"].get("by_state", {}).items()))),
        ("sent / cancels / denied / failed", " / ".join(f"{r['counts'][k]:,}" for k in (
            "orders_sent", "cancels_sent", "orders_denied", "send_failed"))),
        ("messages a second", f"{r['messages_per_s'] or 0:,}"),
        ("feed applied / gaps", f"{r['feed']['applied']:,} / {r['feed']['gaps']:,}"),
        ("tick to trade p50 / p99 (µs)", " / ".join(str(r["latency_us"]["tick_to_trade"].get(q, "-"))
                                                      for q in ("p50", "p99"))),
        ("OMS anomalies", f"{r['anomalies']:,}"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    per = Table(title="strategies", title_justify="left")
    for col in ("strategy", "instrument", "position", "mark", "P&L", "drawdown", "open", "state"):
        per.add_column(col, justify="left" if col in ("strategy", "instrument", "state") else "right")
    for s in r["strategies"]:
        state = "[red]killed[/]" if s["killed"] else ("[red]instrument killed[/]" if s["instrument_killed"] else
                                                     tripped(s["risk_manager"]))
        per.add_row(s["name"], f"{s['symbol'] or s['locate']} ({s['kind']})",
                    f"{s['position']:,}" if s["position"] is not None else "-",
                    f"{s['mark']:.4f}" if s["mark"] is not None else "-", money(s["pnl"]), money(s["drawdown"]),
                    f"{s['open_orders']:,}", state if state != tint("watching") else
                    ("[yellow]stopped (the whole worker is killed)[/]" if kills["global"] else "[green]active[/]"))
    return Group(t, per)


def refused_text(refused: dict[str, dict[str, int]]) -> str:
    """The feed's refusals by line and why (wrong source, wrong session, unconfirmed jump, unasked answer)."""
    said = [f"{line} {why.replace('_', ' ')} {n:,}" for line, whys in refused.items() for why, n in whys.items() if n]
    return ", ".join(said) or "0"


def feed_stats_view(r: dict[str, Any]) -> Table:
    f = r["feed"]
    state = ("[green]running[/]" if r["running"] else "[yellow]stopped[/]")
    health = "[red]STALE[/]" if f["stale"] else ("[yellow]in gap[/]" if f["in_gap"] else "[green]in sequence[/]")
    t = Table(title=f"feed worker {r['name']}: {state}, pid {r['pid']}, up {r['uptime_s']:.1f} s; books {health}",
              title_justify="left")
    t.add_column("")
    t.add_column("", justify="right")
    rows = [
        ("packets A / B / retransmission", " / ".join(f"{v:,}" for v in f["packets"].values())),
        ("first copies A / B / retransmission", " / ".join(f"{v:,}" for v in f["first_copy"].values())),
        ("messages applied", f"{f['applied']:,}"), ("next sequence", f"{f['next_seq']:,}"),
        ("duplicates", f"{f['duplicates']:,}"), ("gaps / recovered", f"{f['gaps']:,} / {f['recovered']:,}"),
        ("unrecoverable (messages skipped)", f"{f['unrecoverable']:,} ({f['skipped']:,})"),
        ("retransmission requests / answers", f"{r['retrans_requests']:,} / {r['retrans_answers']:,}"),
        ("malformed / other session", f"{f['malformed']:,} / {f['other_session']:,}"),
        ("refused, not the exchange's", refused_text(f.get("refused", {}))),
        ("book errors", ", ".join(f"{k} {v:,}" for k, v in r["book"]["errors"].items()) or "0"),
        ("live orders", f"{r['live_orders']:,}"),
        ("not UDP / no arrival stamp / socket errors", f"{r['not_udp']:,} / {r['no_meta']:,} / {r['sock_errors']:,}"),
        ("polls (with packets)", f"{r['polls']:,} ({r['busy_polls']:,})"),
        ("events (dropped)", f"{r['events']:,} ({r['events_dropped']:,})"),
        ("end of session", "yes" if f["end_of_session"] else "no"),
    ]
    if r.get("decisions"):
        rows += [
            ("strategy decisions", f"{r['decisions']:,}"),
            ("orders sent / denied by risk / send failed",
             f"{r['orders_sent']:,} / {r['orders_denied']:,} / {r['send_failed']:,}"),
            ("cancels sent; exchange answers; shares executed",
             f"{r['cancels_sent']:,}; {r['order_events']:,}; {r['executed']:,}"),
        ]
    for k, v in rows:
        t.add_row(k, v)
    for stage, h in r["latency_ns"].items():
        if h.get("count"):
            t.add_row(f"latency {stage} (ns)", f"p50 {h['p50']:,}  p99 {h['p99']:,}  p99.9 {h['p99.9']:,}  "
                                               f"max {h['max']:,}  n {h['count']:,}")
    if r.get("recent_events"):
        t.caption = "recent events: " + "; ".join(event_text(e) for e in r["recent_events"][-5:])
    return t


def books_tables(books: list[dict[str, Any]]) -> list[Table]:
    """A table a book (its levels a side: orders, shares, price), the empty ones left out."""
    def px(p: int) -> str:
        return f"{p / 10_000:,.4f}"

    tables = []
    for b in books:
        if not (b["bids"] or b["asks"]):
            continue
        t = Table(title=f"{b['symbol'] or '?'} (locate {b['locate']}), trading state {b['trading_state'] or '?'}"
                  + (", [red]operational halt[/]" if b["operational_halt"] else ""), title_justify="left")
        for col in ("bid orders", "bid shares", "bid", "ask", "ask shares", "ask orders"):
            t.add_column(col, justify="right")
        for i in range(max(len(b["bids"]), len(b["asks"]))):
            bid = b["bids"][i] if i < len(b["bids"]) else None
            ask = b["asks"][i] if i < len(b["asks"]) else None
            t.add_row(f"{bid[2]:,}" if bid else "", f"{bid[1]:,}" if bid else "", px(bid[0]) if bid else "",
                      px(ask[0]) if ask else "", f"{ask[1]:,}" if ask else "", f"{ask[2]:,}" if ask else "")
        tables.append(t)
    return tables
