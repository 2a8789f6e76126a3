"""A management client for ptp4l over its Unix datagram socket, as ``pmc -u -b 0``
does it: a socket of our own is bound so that ptp4l has somewhere to answer, each
request goes to every port (boundary hops 0, the instance's domain), and every
answer is read until the timeout (a port dataset has one answer per port).

Where the socket is: the config's ``ptp.uds_address``, else the first that exists
of ``/var/run/ptp/ptp4l`` (newer linuxptp) and ``/var/run/ptp4l``; reads prefer the
read-only socket beside it (``...ro``, linuxptp 4's ``uds_ro_address``) when it is
there, and SETs go to the read-write one.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import socket
import stat
import time
from typing import Any

from appliance.ptp import mgmt
from common.paths import RUN_DIR

DEFAULT_SOCKETS = (pathlib.Path("/var/run/ptp/ptp4l"), pathlib.Path("/var/run/ptp4l"))
CLIENT_DIR = RUN_DIR / "ptp"
_counter = itertools.count(1)


class PtpClientError(RuntimeError):
    """No instance answers, or it answered with an error: said plainly."""


def find_socket(path: str | pathlib.Path | None = None, read_only: bool = True) -> pathlib.Path:
    """The socket to ask: the given one (or its read-only twin), else the first default found."""
    candidates = [pathlib.Path(path)] if path else list(DEFAULT_SOCKETS)
    for p in candidates:
        ro = p.with_name(p.name + "ro")
        if read_only and _is_socket(ro):
            return ro
        if _is_socket(p):
            return p
    where = " or ".join(str(p) for p in candidates)
    raise PtpClientError(f"no ptp4l management socket at {where}: is ptp4l running (systemctl status ptp4l), "
                         "and is its uds_address this one? (tickwire ptp ... --socket PATH)")


def _is_socket(p: pathlib.Path) -> bool:
    try:
        return stat.S_ISSOCK(p.stat().st_mode)
    except OSError:
        return False


class PtpClient:
    def __init__(self, path: str | pathlib.Path | None = None, domain: int = 0, timeout: float = 0.3):
        self.path = pathlib.Path(path) if path else None
        self.domain, self.timeout = domain, timeout
        self._seq = 0
        CLIENT_DIR.mkdir(parents=True, exist_ok=True)
        self._own = CLIENT_DIR / f"pmc.{os.getpid()}.{next(_counter)}"
        self._own.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self._own))  # ptp4l answers to the sender's address
        # our source port identity: no clock of ours, the process id as the port
        self._source = b"\0" * 6 + os.getpid().to_bytes(4, "big")

    def close(self) -> None:
        self._sock.close()
        self._own.unlink(missing_ok=True)

    def __enter__(self) -> PtpClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def request(self, action: str, dataset: str, data: bytes = b"", expect: int = 0) -> list[mgmt.Response]:
        """Send one request and read every answer until the timeout (the first comes quickly;
        the rest are the other ports'), or until ``expect`` answers came (a clock dataset: one).
        PtpClientError when nothing answers."""
        if dataset not in mgmt.DATASETS:
            raise PtpClientError(f"dataset {dataset!r}: give one of {', '.join(mgmt.DATASETS)}")
        target = find_socket(self.path, read_only=action == "GET")
        self._seq = (self._seq + 1) & 0xFFFF
        msg = mgmt.encode(action, dataset, self._seq, self.domain, self._source, data)
        try:
            self._sock.sendto(msg, str(target))
        except OSError as exc:
            raise PtpClientError(f"sending {action} {dataset} to {target}: {exc.strerror or exc}") from exc
        answers: list[mgmt.Response] = []
        deadline = time.monotonic() + self.timeout
        scope = mgmt.DATASETS[dataset].scope
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._sock.settimeout(left)
            try:
                raw = self._sock.recv(4096)
            except TimeoutError:
                break
            try:
                r = mgmt.decode(raw)
            except mgmt.MgmtError:
                continue  # not an answer we can read: skip it, keep listening
            if r.sequence != self._seq or r.action not in ("RESPONSE", "ACKNOWLEDGE"):
                continue  # a late answer to an earlier request
            answers.append(r)
            if scope == "clock" or r.error or (expect and len(answers) >= expect):
                break  # all that will come
        if not answers:
            raise PtpClientError(f"ptp4l at {target} did not answer {action} {dataset} within "
                                 f"{self.timeout * 1000:.0f} ms (domain {self.domain}: is it the instance's?)")
        return answers

    def get(self, dataset: str, expect: int = 0) -> list[dict[str, Any]]:
        """The dataset's values, one dict per answering port (a clock dataset: one); expect: the
        number of ports, when known (the answers are in once that many came)."""
        out = []
        for r in self.request("GET", dataset, expect=expect):
            if r.error:
                raise PtpClientError(f"GET {dataset}: ptp4l answered {r.error}")
            assert r.data is not None
            out.append(r.data)
        return out

    def get_one(self, dataset: str) -> dict[str, Any]:
        return self.get(dataset)[0]

    def set_grandmaster_settings(self, clock_class: int, clock_accuracy: int = 0xFE, variance: int = 0xFFFF,
                                 utc_offset: int = 37, time_flags: int = mgmt.PTP_TIMESCALE,
                                 time_source: int = 0xA0) -> dict[str, Any]:
        """What this clock announces as a grandmaster (a GPS-locked one: class 6, time and UTC
        offset traceable, source GPS)."""
        data = mgmt.grandmaster_settings(clock_class, clock_accuracy, variance, utc_offset, time_flags, time_source)
        (r,) = self.request("SET", "GRANDMASTER_SETTINGS_NP", data)[:1]
        if r.error:
            raise PtpClientError(f"SET GRANDMASTER_SETTINGS_NP: ptp4l answered {r.error}")
        assert r.data is not None
        return r.data

    def snapshot(self) -> dict[str, Any]:
        """Every dataset the health checks read, at one moment; a dataset the instance does not
        have (an older linuxptp) is None."""
        out: dict[str, Any] = {"at": time.time(), "socket": str(find_socket(self.path)), "domain": self.domain}
        for name in ("DEFAULT_DATA_SET", "CURRENT_DATA_SET", "PARENT_DATA_SET", "TIME_PROPERTIES_DATA_SET",
                     "TIME_STATUS_NP"):
            out[name] = self._maybe(name, one=True)
        ports = (out["DEFAULT_DATA_SET"] or {}).get("number_ports", 0)
        for name in ("PORT_DATA_SET", "PORT_PROPERTIES_NP", "PORT_SERVICE_STATS_NP"):
            out[name] = self._maybe(name, one=False, expect=ports)
        return out

    def _maybe(self, name: str, one: bool, expect: int = 0) -> Any:
        try:
            got = self.get(name, expect=expect)
        except PtpClientError as exc:
            if "answered" in str(exc):
                return None  # NO_SUCH_ID / NOT_SUPPORTED: this linuxptp does not have it
            raise
        return got[0] if one else got
