"""The impairment relay process: ``python -m appliance.lab.impaird`` (started by
``tickwire lab impair``, inside the namespace of the link end it impairs).

The relay loop is C (``tw_impair_run`` in dpdk/lab/lab_impair.c) and runs with the
GIL released; a Python thread publishes its counters to the state file twice a
second so ``tickwire lab status`` can show them. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import socket
import sys
import threading
import time

from pyroute2 import IPRoute

from appliance.lab import state
from appliance.lab.impair import our_filters
from dpdk import lab_native

STATS_FIELDS = ("seen", "sent", "lost", "duplicated", "reordered", "overflow", "tx_errors", "queued")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="impaird", description=__doc__.splitlines()[0])
    ap.add_argument("--ifname", required=True)
    ap.add_argument("--object", required=True, help="the compiled lab_impair.bpf.o")
    ap.add_argument("--state", required=True, type=pathlib.Path)
    ap.add_argument("--link", required=True)
    ap.add_argument("--direction", required=True)
    ap.add_argument("--namespace", required=True)
    for name in ("loss", "delay", "jitter", "reorder", "duplicate"):
        ap.add_argument(f"--{name}", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    ffi, lib = lab_native()
    try:
        ifindex = socket.if_nametoindex(args.ifname)
    except OSError:
        print(f"impaird: interface {args.ifname} does not exist in namespace {args.namespace}", file=sys.stderr)
        return 2
    params = ffi.new("struct tw_impair_params *")
    params.loss_ppm = round(args.loss * 10_000)
    params.duplicate_ppm = round(args.duplicate * 10_000)
    params.reorder_ppm = round(args.reorder * 10_000)
    params.delay_ns = round(args.delay * 1e6)
    params.jitter_ns = round(args.jitter * 1e6)
    params.seed = args.seed or int.from_bytes(os.urandom(8), "little") | 1
    stats = ffi.new("struct tw_impair_stats *")
    record = {
        "pid": os.getpid(), "link": args.link, "direction": args.direction, "namespace": args.namespace,
        "ifname": args.ifname, "attached": False,
        "params": {"loss_pct": args.loss, "delay_ms": args.delay, "jitter_ms": args.jitter,
                   "reorder_pct": args.reorder, "duplicate_pct": args.duplicate, "seed": params.seed},
    }
    done = threading.Event()
    publisher = threading.Thread(target=_publish, args=(args, record, stats, done), daemon=True)
    publisher.start()
    rc = lib.tw_impair_run(args.object.encode(), ifindex, params, stats)
    done.set()
    publisher.join()
    record["attached"] = False
    record["stats"] = {f: getattr(stats, f) for f in STATS_FIELDS}
    record["exit"] = rc
    if rc < 0:
        print(f"impaird: relay on {args.ifname} failed: {os.strerror(-rc)} (errno {-rc})", file=sys.stderr)
        args.state.unlink(missing_ok=True)
        return 1
    args.state.unlink(missing_ok=True)
    print(f"impaird: {args.link} ({args.direction}) stopped: {record['stats']}")
    return 0


def _publish(args: argparse.Namespace, record: dict, stats, done: threading.Event) -> None:
    """The state file's only writer: ``attached`` once our filter is in the kernel
    (the C loop attaches before it reads), then the counters twice a second."""
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=args.ifname)[0]
        while not done.is_set() and not record["attached"]:
            record["attached"] = bool(our_filters(ipr, idx))
            if not record["attached"]:
                time.sleep(0.01)
    while record["attached"]:
        record["stats"] = {f: getattr(stats, f) for f in STATS_FIELDS}
        record["updated"] = time.time()
        state.write_json(args.state, record)
        if done.wait(0.5):
            return


if __name__ == "__main__":
    sys.exit(main())
