"""AF_XDP ingest in the lab: the feed worker (XDP filter -> AF_XDP -> C worker ->
books) beside `dpdk-testpmd --forward-mode=rxonly` on the same veth with the
same XDP program and rule, in the same run. Needs root.

The exchange namespace sends --messages ITCH messages of a generated day (as
MoldUDP64 packets of up to --max-payload bytes, line A) at the highest rate the
C sender reaches (--rate 0),
once to testpmd and once to the worker, alternating for --rounds. For each it
prints packets sent, received, dropped, and the receive rate; for the worker
also the book messages applied and the XDP-stamp-to-book latency percentiles.

    sudo .venv/bin/python bench/bench_feed_ingest.py [--messages 2000000] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time

from appliance.lab import net, topology
from appliance.lab.exchange import gen
from xdp import object_path
from xdp.filter import PIN_ROOT, FeedFilter, PinnedFilter, share_with_dpdk, unshare_with_dpdk

ROOT = pathlib.Path(__file__).resolve().parents[1]
TICKWIRE = str(pathlib.Path(sys.executable).parent / "tickwire")


def send(lab: topology.Lab, source: pathlib.Path, messages: int, rate: int, max_payload: int) -> dict:
    n = lab.network("feed-a")
    res = subprocess.run(["ip", "netns", "exec", lab.ns("exch"), sys.executable, "-m", "appliance.lab.traffic",
                          "send", "--group", n.group, "--port", str(n.group_port), "--ifaddr", n.address("exch"),
                          "--messages", str(messages), "--source", str(source), "--rate", str(rate),
                          "--max-payload", str(max_payload)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    if res.returncode:
        sys.exit(f"sender failed: {res.stderr}")
    return json.loads(res.stdout.splitlines()[-1])


def testpmd_round(lab: topology.Lab, source: pathlib.Path, args, log: pathlib.Path) -> dict:
    app = lab.ns("app")
    n = lab.network("feed-a")
    pins = PIN_ROOT / app / "feed-a"
    flt = FeedFilter(pins)
    flt.add_rule(n.group, n.group_port, "redirect", feed_id=1, line="A")
    flt.close()
    share_with_dpdk(pins)
    vdev = f"net_af_xdp0,iface=feed-a,xdp_prog={object_path('feed_filter')}"
    proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{app}", "dpdk-testpmd", "--no-huge", "-m", "1024",
                             "--no-pci", "--no-telemetry", "--file-prefix", f"bench{lab.prefix}", "--vdev", vdev,
                             "-l", "0,1", "--", "--total-num-mbufs=8192", "--forward-mode=rxonly",
                             "--stats-period", "1"], stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "RX-packets" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"testpmd did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        sent = send(lab, source, args.messages, args.rate, args.max_payload)
        time.sleep(2.5)  # two stats periods
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        unshare_with_dpdk()
        PinnedFilter(pins).unpin()
    text = log.read_text()
    rx = [int(m) for m in re.findall(r"RX-packets:\s+(\d+)", text)]
    missed = [int(m) for m in re.findall(r"RX-missed:\s+(\d+)", text)]
    return {"sent": sent["packets"], "received": max(rx) if rx else 0, "missed": max(missed) if missed else 0,
            "send_pps": round(sent["packets"] / (sent["elapsed_ns"] / 1e9))}


def worker_round(lab: topology.Lab, source: pathlib.Path, args) -> dict:
    name = f"bench{lab.prefix}"
    proc = subprocess.Popen([TICKWIRE, "feed", "run", "--prefix", lab.prefix, "--name", name, "--iface", "A=feed-a",
                             "--duration", "600", "--json", "--top", "1", "--max-orders", "2000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            st = subprocess.run([TICKWIRE, "feed", "stats", "--name", name, "--json"], capture_output=True, text=True)
            if st.returncode == 0 and json.loads(st.stdout)["running"] and json.loads(st.stdout)["pid"] == proc.pid:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the worker did not start: {proc.communicate()}")
            time.sleep(0.2)
        sent = send(lab, source, args.messages, args.rate, args.max_payload)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    rep = json.loads(out)
    st = rep["stats"]
    port = rep["ports"]["net_af_xdp0"]
    lat = st["latency_ns"]["total"]
    return {"sent": sent["packets"], "received": st["rx_packets"][0], "missed": port["imissed"],
            "send_pps": round(sent["packets"] / (sent["elapsed_ns"] / 1e9)),
            "messages_applied": st["feed"]["applied"], "gaps": st["feed"]["gaps"],
            "book_errors": st["feed"]["book_errors"],
            "latency_ns": {k: lat.get(k) for k in ("p50", "p99", "p99.9", "max")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=2_000_000, help="ITCH messages per round (default 2 M)")
    ap.add_argument("--rate", type=int, default=0, help="packets/s (default 0: as fast as the sender goes)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-payload", type=int, default=200, metavar="BYTES",
                    help="MoldUDP64 packet size: 200 (default) carries about 6 messages, as a busy feed does; "
                         "1400 packs about 45, more than one core's books take at the sender's full rate")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    prefix = "b" + secrets.token_hex(3)
    lab = topology.plan(prefix)
    results: dict[str, list[dict]] = {"testpmd": [], "worker": []}
    with tempfile.TemporaryDirectory() as d:
        source = pathlib.Path(d) / "day.itch"
        gen.generate(source, symbols=50, messages=args.messages, seed=3)
        try:
            net.up(lab)
            for r in range(args.rounds):
                results["testpmd"].append(testpmd_round(lab, source, args, pathlib.Path(d) / f"testpmd{r}.log"))
                results["worker"].append(worker_round(lab, source, args))
                if not args.json:
                    print(f"round {r + 1}: testpmd {results['testpmd'][-1]}\n         worker  {results['worker'][-1]}",
                          file=sys.stderr)
        finally:
            net.down(prefix)

    def total(rows: list[dict]) -> dict:
        rates = sorted(x["send_pps"] for x in rows)
        return {"rounds": len(rows), "lossless_rounds": sum(x["received"] == x["sent"] for x in rows),
                "sent": sum(x["sent"] for x in rows), "received": sum(x["received"] for x in rows),
                "missed": sum(x["missed"] for x in rows), "median_send_pps": rates[len(rates) // 2]}

    t, w = total(results["testpmd"]), total(results["worker"])
    lossless = [x for x in results["worker"] if x["received"] == x["sent"]]
    out = {"benchmark": "feed_ingest", "messages": args.messages, "max_payload": args.max_payload,
           "testpmd": t, "worker": w, "rounds_detail": results,
           "received_ratio_worker_to_testpmd": round((w["received"] / w["sent"]) / (t["received"] / t["sent"]), 4)}
    if args.json:
        print(json.dumps(out))
        return
    print(f"AF_XDP ingest on a lab veth (copy-mode AF_XDP), {args.messages:,} ITCH messages a round "
          f"in packets of up to {args.max_payload} bytes, {args.rounds} rounds each:")
    for name, row in (("dpdk-testpmd rxonly (baseline)", t), ("tickwire feed worker", w)):
        print(f"  {name:32s} sent {row['sent']:>10,}  received {row['received']:>10,}  missed {row['missed']:>6,}  "
              f"lossless rounds {row['lossless_rounds']}/{row['rounds']}  at {row['median_send_pps']:>8,} packets/s")
    if lossless:
        lat = lossless[-1]["latency_ns"]
        print(f"  worker, a lossless round: {lossless[-1]['messages_applied']:,} messages applied, XDP stamp -> book "
              f"p50 {lat['p50']:,} ns, p99 {lat['p99']:,} ns, p99.9 {lat['p99.9']:,} ns")
    print(f"  received/sent, worker over testpmd: {out['received_ratio_worker_to_testpmd']}")


if __name__ == "__main__":
    main()
