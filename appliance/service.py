"""Running under systemd: the sd_notify protocol (``Type=notify``, ``WatchdogSec=``).

One datagram per state change to the Unix socket systemd names in
``NOTIFY_SOCKET`` (``@`` starts an abstract name): ``READY=1`` once the worker
runs, ``WATCHDOG=1`` while it is healthy, ``STATUS=...`` for ``systemctl status``,
``STOPPING=1`` on the way out. Outside systemd (no ``NOTIFY_SOCKET``) every call
does nothing. Written here rather than taken from PyPI: the protocol is one
``sendto`` and the one package for it (sdnotify) has not changed since 2017.
"""

from __future__ import annotations

import os
import socket
import time

from common import lockdown

# what `tickwire run` needs on a box without the lab's namespaces, each one shown needed by
# tests/integration/test_provisioning.py: the XDP program and its maps (NET_ADMIN, BPF, and PERFMON for the
# verifier's pointer arithmetic), AF_XDP sockets (NET_RAW) and their locked umem (IPC_LOCK); provisioning's
# unit grants exactly these (AmbientCapabilities=). BPF and PERFMON only until the ports are up: Notifier.ready
# drops them (common/lockdown.settle)
RUN_CAPABILITIES = ("CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF", "CAP_PERFMON", "CAP_IPC_LOCK")


class Notifier:
    def __init__(self) -> None:
        addr = os.environ.get("NOTIFY_SOCKET")
        self.addr = ("\0" + addr[1:]) if addr and addr.startswith("@") else addr
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        mine = pid is None or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec and usec.isdigit() and mine else None
        self._last_ping = 0.0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if self.addr else None

    def send(self, *lines: str) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode(), self.addr)
        except OSError:
            return False  # systemd went away: nothing to tell
        return True

    def ready(self, status: str) -> list[str]:
        """Start-up is over (the ports up, the XDP programs attached, their maps pinned): what only start-up
        needed goes (CAP_BPF, CAP_PERFMON; being dumpable) when this process is a run of its own
        (lockdown.settle), then systemd hears READY. Returns what was dropped, said plainly."""
        settled = lockdown.settle()
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")
        return settled

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def watchdog(self, healthy: bool) -> None:
        """Ping at half the watchdog interval while healthy: a stuck worker stops the pings."""
        if self.watchdog_s is None or not healthy:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_s / 2:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
