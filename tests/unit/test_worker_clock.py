"""The worker's clock (dpdk/src/clock.c): the TSC mapped onto CLOCK_MONOTONIC and
recalibrated every 100 ms. A late anchor (an interrupt between its two reads) leaves
the mapping ahead; the next recalibration must not step it back, or every
`now - then` against a time already handed out wraps (a CI run saw the order-entry
session count a link timeout and log in again)."""

from __future__ import annotations

import time

from dpdk import native


def anchored():
    ffi, lib = native()
    c = ffi.new("struct tw_clock *")
    c.mult = 1  # not DPDK's estimate (no EAL here): the first recalibration measures the rate since boot
    lib.tw_clock_calibrate(c)
    return lib, c


def recalibrate_never_back(lib, c, rounds: int) -> None:
    """Recalibrate every 10 ms: the clock never reads less than it did, across a recalibration either."""
    last = lib.tw_clock_read(c)
    for _ in range(rounds):
        time.sleep(0.01)
        before = lib.tw_clock_read(c)
        lib.tw_clock_calibrate(c)
        after = lib.tw_clock_read(c)
        assert last <= before <= after
        last = after


def test_the_clock_follows_clock_monotonic():
    lib, c = anchored()
    for _ in range(3):
        time.sleep(0.01)
        lib.tw_clock_calibrate(c)
        assert abs(lib.tw_clock_read(c) - time.monotonic_ns()) < 1_000_000


def test_a_late_anchor_is_taken_out_without_a_step_back():
    lib, c = anchored()
    time.sleep(0.01)
    lib.tw_clock_calibrate(c)
    c.ns0 += 200_000  # as a late anchor leaves it: 200 us ahead
    recalibrate_never_back(lib, c, 5)
    assert abs(lib.tw_clock_read(c) - time.monotonic_ns()) < 100_000  # and back on CLOCK_MONOTONIC


def test_an_anchor_ahead_by_more_than_an_interval_still_never_steps_back():
    lib, c = anchored()
    c.ns0 += 50_000_000  # 50 ms ahead, recalibrated every 10 ms
    recalibrate_never_back(lib, c, 20)
    assert abs(lib.tw_clock_read(c) - time.monotonic_ns()) < 1_000_000  # caught up at half speed


def test_the_clock_never_crawls_while_it_takes_an_error_out():
    # an anchor ahead by most of an interval: slowing down to the measured rate less the error
    # would all but stop the clock (and with it the loop's timers and its next calibration)
    lib, c = anchored()
    time.sleep(0.01)
    lib.tw_clock_calibrate(c)
    c.ns0 += 9_500_000  # 9.5 ms ahead, recalibrated every 10 ms
    for _ in range(4):
        time.sleep(0.01)
        lib.tw_clock_calibrate(c)
        r1, m1 = lib.tw_clock_read(c), time.monotonic_ns()
        time.sleep(0.01)
        r2, m2 = lib.tw_clock_read(c), time.monotonic_ns()
        assert (r2 - r1) / (m2 - m1) > 0.45  # half speed at the slowest
