"""Helpers for integration tests: the CLI, unique labs, feed senders and receivers."""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import subprocess
import sys
from typing import Any

from appliance.lab import net, topology

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
