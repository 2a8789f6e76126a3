"""Helpers for integration tests: the CLI, unique labs, feed senders and receivers."""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import socket
import subprocess
import sys
import time
from signal import SIGTERM
from typing import Any

import yaml

from appliance.lab import net, topology
from appliance.protocols import ouch, soupbintcp
from common.netns import in_netns

TICKWIRE = str(pathlib.Path(sys.executable).parent / "tickwire")


def tw(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the installed console script, as a user would (in a 200-column terminal)."""
    return subprocess.run([TICKWIRE, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, COLUMNS="200"))


def tw_json(*args: str, expect: int = 0) -> Any:
    res = tw(*args, "--json")
    assert res.returncode == expect, f"tickwire {' '.join(args)} exited {res.returncode}: {res.stderr}"
    return json.loads(res.stdout)


def unique_prefix() -> str:
    return "t" + secrets.token_hex(3)


def netns_list() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def traffic(verb: str, lab: topology.Lab, role: str, netname: str, *extra: str) -> list[str]:
    n = lab.network(netname)
    return [sys.executable, "-m", "appliance.lab.traffic", verb, "--group", n.group, "--port",
            str(n.group_port), "--ifaddr", n.address(role), *extra]


class Sink:
    """A receiver joined to a feed line inside a namespace; ready when constructed."""

    def __init__(self, lab: topology.Lab, role: str, netname: str, idle: float = 1.0, timeout: float = 60):
        self.proc = net.run_in(lab.ns(role), traffic("sink", lab, role, netname, "--idle", str(idle),
                                                     "--timeout", str(timeout)),
                               stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line and json.loads(line)["ready"], f"sink in {role} on {netname} did not start"

    def result(self, timeout: float = 90) -> dict[str, Any]:
        out, _ = self.proc.communicate(timeout=timeout)
        lines = [json.loads(x) for x in out.splitlines() if x.strip()]
        assert lines and lines[-1]["final"], f"sink ended without a final report: {out!r}"
        return lines[-1]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def send(lab: topology.Lab, netname: str, messages: int, rate: int = 0, *extra: str) -> dict[str, Any]:
    res = subprocess.run(["ip", "netns", "exec", lab.ns(topology.EXCH),
                          *traffic("send", lab, topology.EXCH, netname, "--messages", str(messages),
                                   "--rate", str(rate), *extra)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.splitlines()[-1])


def ping(namespace: str, address: str, count: int = 5, interval: float = 0.1) -> list[float]:
    """Round-trip times in ms."""
    res = subprocess.run(["ip", "netns", "exec", namespace, "ping", "-n", "-c", str(count), "-i", str(interval),
                          "-W", "2", address], capture_output=True, text=True, timeout=60)
    return [float(part.split("=")[1]) for line in res.stdout.splitlines() for part in line.split()
            if part.startswith("time=")]


# ---- the exchange and its clients ---------------------------------------------------------

class ExchangeProcess:
    """`tickwire exchange run` in the lab's exch namespace, stopped with SIGTERM."""

    def __init__(self, lab: topology.Lab, tmp_path: pathlib.Path, **config: Any):
        self.record = tmp_path / "record"
        cfg = {"duration": 120, "rate": 2000, "symbols": 4, "record": str(self.record), **config}
        self.config = tmp_path / "exchange.yaml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.proc = subprocess.Popen([TICKWIRE, "exchange", "run", "--prefix", lab.prefix, "--config",
                                      str(self.config), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + 20
        while not (self.record / "status.json").exists():
            assert self.proc.poll() is None, f"exchange exited: {self.proc.communicate()}"
            assert time.monotonic() < deadline, "exchange did not start"
            time.sleep(0.05)

    def finish(self) -> dict[str, Any]:
        """Wait for the configured duration to run out; the final report."""
        return self.stop(signal=False)

    def stop(self, signal: bool = True) -> dict[str, Any]:
        if signal and self.proc.poll() is None:
            self.proc.send_signal(SIGTERM)
        out, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return json.loads(out)


class OuchClient:
    """A SoupBinTCP/OUCH client whose socket lives in a lab namespace."""

    def __init__(self, lab: topology.Lab, role: str = "app", address: tuple[str, int] = ("198.18.3.1", 15000)):
        self.soup = soupbintcp
        with in_netns(lab.ns(role)):  # this thread only; the socket stays in that namespace
            self.sock = socket.create_connection(address, timeout=5)
        self.framer = soupbintcp.Framer()
        self.queue: list[Any] = []
        self.heartbeats = 0

    def send(self, pkt: Any) -> None:
        self.sock.sendall(self.soup.encode(pkt))

    def login(self, user: str = "TWAPP1", password: str = "lab-secret", sequence: int = 1, session: str = ""):
        self.send(self.soup.LoginRequest(user, password, session, sequence))
        return self.recv()

    def order(self, rec: Any) -> None:
        self.send(self.soup.UnsequencedData(ouch.encode(rec)))

    def recv(self, timeout: float = 5.0, skip_heartbeats: bool = True) -> Any:
        """The next packet (None on timeout or close); heartbeats are counted and skipped."""
        deadline = time.monotonic() + timeout
        while True:
            while self.queue:
                pkt = self.queue.pop(0)
                if skip_heartbeats and isinstance(pkt, self.soup.ServerHeartbeat):
                    self.heartbeats += 1
                    continue
                return pkt
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not data:
                return None
            self.queue += [self.soup.decode(body) for _, body in self.framer.feed(data)]

    def messages(self, n: int, timeout: float = 5.0) -> list[Any]:
        """The next ``n`` OUCH outbound messages."""
        out = []
        while len(out) < n:
            pkt = self.recv(timeout)
            assert pkt is not None, f"got {len(out)} of {n} messages: {out}"
            if isinstance(pkt, self.soup.SequencedData):
                out.append(ouch.decode_outbound(pkt.message))
        return out

    def close(self) -> None:
        self.sock.close()


def enter(user_ref: int, symbol: str, side: str, qty: int, price: int, tif: str = "0", firm: bytes = b""):
    return ouch.INBOUND["O"][1](user_ref_num=user_ref, side=side, quantity=qty, symbol=symbol, price=price,
                                time_in_force=tif, display="Y", capacity="A", intermarket_sweep="N",
                                cross_type="N", cl_ord_id=f"T{user_ref}", appendage_length=0,
                                appendage=((2, firm),) if firm else ())
