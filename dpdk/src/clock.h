/* clock.h — the worker's clocks: the TSC mapped onto CLOCK_MONOTONIC (the XDP
 * stamps' clock), and CLOCK_REALTIME's offset from it (kernel socket stamps, the
 * recorder's pcap times). C only.
 *
 * The XDP stamp is CLOCK_MONOTONIC, taken on the CPU that ran the XDP program;
 * each rx burst reads CLOCK_MONOTONIC once (the same clock, valid across CPUs).
 * The stages inside a burst are TSC intervals on this CPU, turned into
 * nanoseconds at the rate the two clocks kept over the last 100 ms. */
#ifndef TW_CLOCK_H
#define TW_CLOCK_H
#include <stdint.h>

#include <rte_cycles.h>

#include "worker.h" /* struct tw_clock, tw_clock_calibrate */

/* clock.c's tw_clock_calibrate maps the TSC onto CLOCK_MONOTONIC. The first call takes
 * the rate DPDK measured; later calls (every 100 ms) take the rate the two clocks
 * actually kept since the last one, so the mapping does not drift away from the XDP
 * stamps, and it never steps back: a time the loop was given stays in the past. */

/* A TSC interval in nanoseconds. */
static inline uint64_t tw_clock_ns(const struct tw_clock *c, uint64_t ticks)
{
    return (uint64_t)(((__uint128_t)ticks * c->mult) >> 32);
}

/* CLOCK_MONOTONIC now, from the TSC. */
static inline uint64_t tw_clock_now(const struct tw_clock *c)
{
    return c->ns0 + (uint64_t)(((__uint128_t)(rte_rdtsc() - c->tsc0) * c->mult) >> 32);
}

/* A kernel receive stamp (CLOCK_REALTIME) on CLOCK_MONOTONIC, or 0. */
static inline uint64_t tw_clock_from_real(const struct tw_clock *c, uint64_t real_ns)
{
    int64_t mono = (int64_t)real_ns - c->real_off;
    return real_ns && mono > 0 ? (uint64_t)mono : 0;
}

/* A CLOCK_MONOTONIC time on CLOCK_REALTIME. */
static inline uint64_t tw_clock_to_real(const struct tw_clock *c, uint64_t mono_ns)
{
    return (uint64_t)((int64_t)mono_ns + c->real_off);
}

#endif
