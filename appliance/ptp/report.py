"""Compliance evidence: what the clock did over a period, from the monitor's
samples (the journal's ``ptp`` records, or a monitor's history file).

What an RTS 25 review asks of a high-frequency trader: the divergence from UTC
(here: the offset from the grandmaster, as ptp4l measured it; the grandmaster's
own traceability to UTC is its clock class and time-traceable flag) as
percentiles and as the time spent beyond the tolerance, the time the clock was
not synchronised at all (no answer, no master, no sync), every grandmaster
change, and the timestamping mode (the granularity and accuracy the stamps can
claim). JSON for machines, a self-contained HTML page (a table and a plot of the
offset) for the reviewer.
"""

from __future__ import annotations

import datetime
import html
import math
import pathlib
import time
from collections.abc import Iterable
from typing import Any

from appliance import journal
from appliance.ptp import health


def parse_time(text: str, now: float | None = None) -> float:
    """--since: an ISO 8601 time (UTC unless it says), or an age such as 10m, 2h, 1d."""
    now = time.time() if now is None else now
    t = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if t and t[-1] in units and t[:-1].replace(".", "", 1).isdigit():
        return now - float(t[:-1]) * units[t[-1]]
    try:
        d = datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"--since {text!r}: give an ISO 8601 time (2026-12-02T09:30:00Z) or an age (10m, 2h, "
                         "1d)") from exc
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.UTC)
    return d.timestamp()


def records_from_journal(directory: str | pathlib.Path) -> list[dict[str, Any]]:
    return [r.data for r in journal.read(directory) if r.kind == "ptp"]


def _pct(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, math.ceil(q / 100.0 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def build(records: Iterable[dict[str, Any]], since: float, until: float, ptp: Any) -> dict[str, Any]:
    lim = health.Limits.from_config(ptp)
    recs = sorted((r for r in records if since <= r.get("t", 0) <= until), key=lambda r: r["t"])
    samples = [r for r in recs if "verdict" in r and "event" not in r]
    events = [r for r in recs if "event" in r]
    out: dict[str, Any] = {"since": _iso(since), "until": _iso(until), "profile": lim.profile.name,
                           "profile_means": lim.profile.what, "tolerance_ns": lim.fail_offset_ns,
                           "samples": len(samples)}
    if not samples:
        out["verdict"] = "no evidence: no clock samples in the period (is a monitor running: tickwire run, or "\
                         "tickwire ptp monitor?)"
        return out
    # each sample stands for the time to the next one (the last one: one interval)
    gaps = [b["t"] - a["t"] for a, b in zip(samples, samples[1:], strict=False)]
    step = sorted(gaps)[len(gaps) // 2] if gaps else 1.0
    spans = [*gaps, step]
    covered = sum(spans)
    offsets = [s["offset_ns"] for s in samples if s.get("offset_ns") is not None and not s.get("error")]
    absolute = sorted(abs(x) for x in offsets)
    beyond = sum(d for s, d in zip(samples, spans, strict=True)
                 if s.get("offset_ns") is not None and abs(s["offset_ns"]) > lim.fail_offset_ns)
    unsynced = sum(d for s, d in zip(samples, spans, strict=True)
                   if s.get("error") or s.get("state") not in ("SLAVE", "UNCALIBRATED") or
                   "last sync" in s.get("failed", []) or "grandmaster" in s.get("failed", []))
    by_verdict: dict[str, float] = {}
    for s, d in zip(samples, spans, strict=True):
        by_verdict[s["verdict"]] = by_verdict.get(s["verdict"], 0.0) + d
    delays = sorted(s["delay_ns"] for s in samples if s.get("delay_ns") is not None and not s.get("error"))
    modes = sorted({s.get("timestamping") for s in samples if s.get("timestamping")})
    gms = []
    for s in samples:
        if s.get("gm") and (not gms or gms[-1]["gm"] != s["gm"]):
            gms.append({"gm": s["gm"], "clock_class": s.get("gm_class"), "from": _iso(s["t"])})
    out.update(
        period_covered_s=round(covered, 1), sample_interval_s=round(step, 3),
        offset_ns={**{f"p{q:g}": _pct(absolute, q) for q in (50, 90, 99, 99.9)},
                   "max": absolute[-1] if absolute else None,
                   "mean": round(sum(offsets) / len(offsets), 1) if offsets else None},
        path_delay_ns={"p50": _pct(delays, 50), "p99": _pct(delays, 99), "max": delays[-1] if delays else None},
        out_of_tolerance_s=round(beyond, 3), unsynchronised_s=round(unsynced, 3),
        time_by_verdict_s={k: round(v, 3) for k, v in sorted(by_verdict.items())},
        grandmasters=gms,
        grandmaster_changes=[{"at": _iso(e["t"]), "from": e["from"], "to": e["to"], "clock_class": e.get("gm_class")}
                             for e in events if e["event"] == "gm_change"],
        port_state_changes=sum(1 for e in events if e["event"] == "port_state"),
        timestamping=modes,
        traceable_share=round(sum(d for s, d in zip(samples, spans, strict=True) if s.get("traceable")) / covered, 4)
        if covered else None,
    )
    within = beyond == 0 and unsynced == 0
    granularity = "hardware timestamps (ns)" if modes and "software" not in modes else \
        "software timestamps: nanosecond resolution, but the kernel's jitter (µs) in them"
    out["timestamp_granularity"] = granularity
    out["verdict"] = ("within tolerance for the whole period" if within else
                      f"out of tolerance for {beyond:.1f} s, unsynchronised for {unsynced:.1f} s") + \
        f" ({lim.profile.name}: {health._ns(lim.fail_offset_ns)})"
    out["within_tolerance"] = within
    out["series"] = [[round(s["t"], 3), s.get("offset_ns")] for s in samples]
    return out


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_html(rep: dict[str, Any]) -> str:
    """A self-contained page: the summary table, then the offset over the period as an SVG line."""
    rows = []

    def row(k: str, v: Any) -> None:
        rows.append(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>")

    for k in ("since", "until", "profile", "profile_means", "verdict", "samples", "period_covered_s",
              "out_of_tolerance_s", "unsynchronised_s", "timestamping", "timestamp_granularity", "traceable_share"):
        if k in rep:
            row(k.replace("_", " "), rep[k])
    for k, v in (rep.get("offset_ns") or {}).items():
        row(f"|offset| {k} (ns)", "-" if v is None else f"{v:,.0f}")
    for g in rep.get("grandmasters", []):
        row("grandmaster", f"{g['gm']} (class {g['clock_class']}) from {g['from']}")
    for c in rep.get("grandmaster_changes", []):
        row("grandmaster change", f"{c['at']}: {c['from']} -> {c['to']}")
    svg = _svg(rep.get("series", []), rep.get("tolerance_ns"))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tickwire clock evidence {html.escape(rep['since'])}</title>
<style>body{{font-family:sans-serif;margin:2em}} th{{text-align:left;padding-right:2em}}
td,th{{border-bottom:1px solid #ddd;padding:.2em}}</style></head>
<body><h1>Clock evidence (PTP)</h1><p>{html.escape(rep['verdict'])}</p>
<table>{''.join(rows)}</table>
<h2>Offset from the grandmaster</h2>{svg}
<p>Each point is one sample of ptp4l's offsetFromMaster; the red lines are the profile's tolerance.</p>
</body></html>
"""


def _svg(series: list[list[Any]], tol: float | None, w: int = 900, h: int = 260) -> str:
    pts = [(t, v) for t, v in series if v is not None]
    if len(pts) < 2:
        return "<p>(too few samples to draw)</p>"
    t0, t1 = pts[0][0], pts[-1][0]
    top = max(max(abs(v) for _, v in pts), tol or 0) * 1.1 or 1.0

    def x(t: float) -> float:
        return 40 + (t - t0) / ((t1 - t0) or 1) * (w - 50)

    def y(v: float) -> float:
        return h / 2 - v / top * (h / 2 - 10)

    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
    tol_lines = "" if not tol else (f'<line x1="40" x2="{w - 10}" y1="{y(tol):.1f}" y2="{y(tol):.1f}" stroke="red"/>'
                                    f'<line x1="40" x2="{w - 10}" y1="{y(-tol):.1f}" y2="{y(-tol):.1f}" '
                                    'stroke="red"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" style="border:1px solid #ccc">'
            f'<line x1="40" x2="{w - 10}" y1="{h / 2}" y2="{h / 2}" stroke="#999"/>{tol_lines}'
            f'<polyline fill="none" stroke="#1f77b4" points="{line}"/>'
            f'<text x="2" y="12" font-size="10">+{top:,.0f} ns</text>'
            f'<text x="2" y="{h - 2}" font-size="10">-{top:,.0f} ns</text></svg>')
