"""PM QoS: how deep an idle CPU may sleep, held for as long as a process runs.

Writing a latency in microseconds to ``/dev/cpu_dma_latency`` asks cpuidle not
to enter any idle state that takes longer than that to leave; the request lasts
while the file stays open and is dropped by the kernel when it closes (or the
process dies), so nothing is left changed. 0 keeps idle CPUs polling: a packet
or a wake-up then never waits for a CPU to come out of a sleep state, which on
a VM also means an expensive exit to the hypervisor (HLT). tuned's
latency-performance profile holds the same request (``force_latency``).
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator

DEVICE = "/dev/cpu_dma_latency"


class PmQosError(RuntimeError):
    pass


def current() -> int:
    """The latency in effect (µs): the smallest any process holds, or the kernel's default."""
    with open(DEVICE, "rb") as f:
        return struct.unpack("=i", f.read(4))[0]


@contextlib.contextmanager
def hold_cpu_latency(us: int) -> Iterator[None]:
    """Keep idle CPUs within ``us`` µs of waking while the block runs."""
    if us < 0:
        raise PmQosError(f"cpu latency {us} µs: give 0 or more (0 keeps idle CPUs polling)")
    try:
        fd = os.open(DEVICE, os.O_WRONLY)
    except OSError as exc:
        raise PmQosError(f"{DEVICE}: {exc.strerror} (needs root; the request lasts while it stays open)") from exc
    try:
        os.write(fd, struct.pack("=i", us))
        yield
    finally:
        os.close(fd)
