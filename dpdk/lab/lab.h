/* lab.h — the face of the lab and diagnostics C, built as its own extension
 * (dpdk._lab), not into the production one: the lab's traffic sender and sink,
 * its link impairment relay, and the jitter probe of `tickwire tune jitter`.
 * Implemented by dpdk/lab/lab_traffic.c, lab_impair.c and jitter.c. cffi reads it
 * (dpdk/build_ext.py, preprocessor lines stripped): plain declarations only. */
#ifndef TW_LAB_H
#define TW_LAB_H
#include <stdint.h>

/* ---- lab traffic: a multicast sender and a sink (appliance/lab) ---------------
 * Not the trading hot path: the lab's load generator and receiver, in C so that
 * the sender, not Python, bounds the rate (sendmmsg/recvmmsg in batches). */

struct tw_send_stats {
    uint64_t packets;      /* datagrams the kernel accepted */
    uint64_t bytes;        /* payload bytes of those */
    uint64_t calls;        /* sendmmsg calls */
    uint64_t errors;       /* sendmmsg calls that failed (errno in last_errno) */
    int32_t  last_errno;
    uint64_t elapsed_ns;   /* CLOCK_MONOTONIC, first call to return */
};

/* Send n datagrams on a connected UDP socket fd: datagram i is lengths[i] bytes
 * at payloads + i * stride. Batches of `batch` (<= 1024) per sendmmsg; when
 * rate_pps > 0, paced to that rate by busy-waiting on the clock. */
int tw_udp_send(int fd, const uint8_t *payloads, uint32_t stride,
                const uint16_t *lengths, uint32_t n, uint32_t batch,
                uint64_t rate_pps, struct tw_send_stats *out);

struct tw_sink_stats {
    uint64_t packets;      /* datagrams received */
    uint64_t bytes;
    uint64_t mold_packets; /* datagrams with a MoldUDP64 header (>= 20 bytes) */
    uint64_t messages;     /* MoldUDP64 message count, summed */
    uint64_t first_seq;    /* sequence number of the first message seen */
    uint64_t next_seq;     /* the sequence number expected next */
    uint64_t gaps;         /* times a packet started past next_seq */
    uint64_t gap_messages; /* messages skipped over by those gaps */
    uint64_t duplicates;   /* packets entirely below next_seq */
    uint64_t first_ns;     /* CLOCK_MONOTONIC of the first and last datagram */
    uint64_t last_ns;
    uint8_t  session[10];  /* MoldUDP64 session of the first packet */
};

/* Receive on a bound UDP socket until max_packets arrived in all, or no datagram
 * came for idle_ns (after the first), or total_ns passed in this call (0: no
 * limit). Counts MoldUDP64 sequence numbers. *stop != 0 ends it early (checked
 * every 10 ms). Counts accumulate in *out: zero it before the first call, then
 * call again to continue (a caller can report progress between calls).
 * Returns 1 when done (max_packets, or idle), 0 when total_ns passed or *stop
 * was set, a negative errno on failure. */
int tw_udp_sink(int fd, uint64_t max_packets, uint64_t idle_ns, uint64_t total_ns,
                const volatile int32_t *stop, struct tw_sink_stats *out);

/* ---- lab link impairment: a netem stand-in (appliance/lab/impair.py) ----------
 * A tc BPF program on the link's egress copies each frame into a ring buffer and
 * drops it; this relay applies loss, duplication, delay, jitter and reordering
 * in user space and transmits on an AF_PACKET socket that bypasses the qdisc
 * layer (so the egress hook does not see the frame again). */

struct tw_impair_params {
    uint32_t loss_ppm;      /* drop probability, parts per million */
    uint32_t duplicate_ppm; /* probability of sending a second copy */
    uint32_t reorder_ppm;   /* probability of sending without the delay */
    uint32_t _pad;
    uint64_t delay_ns;      /* base delay */
    uint64_t jitter_ns;     /* delay is uniform in [delay - jitter, delay + jitter] */
    uint64_t seed;          /* PRNG seed: the same seed gives the same decisions */
};

struct tw_impair_stats {
    uint64_t seen;          /* frames the BPF program handed over */
    uint64_t sent;          /* frames transmitted (duplicates included) */
    uint64_t lost;          /* dropped by the loss probability */
    uint64_t duplicated;    /* extra copies sent */
    uint64_t reordered;     /* sent ahead of the delay */
    uint64_t overflow;      /* dropped: the delay queue was full */
    uint64_t tx_errors;     /* sendto failed */
    uint64_t queued;        /* frames waiting right now */
};

/* Load the BPF object, attach it on ifindex's clsact egress, relay until SIGTERM
 * or SIGINT, then detach and send what is still queued. stats is updated as it
 * goes so another thread may read it. */
int tw_impair_run(const char *bpf_object, int ifindex,
                  const struct tw_impair_params *params, struct tw_impair_stats *stats);

/* Ask a running tw_impair_run in this process to stop (as SIGTERM would). */
void tw_impair_stop(void);


/* ---- jitter: what takes a core away from a busy thread (dpdk/lab/jitter.c) ---------------------
 * tickwire tune jitter: on the calling thread, pinned to cpu, read CLOCK_MONOTONIC as fast as it
 * goes for duration_ns and keep each gap between two reads longer than threshold_ns (an interrupt,
 * a softirq, another thread, the hypervisor). */

struct tw_gap {
    uint64_t at_ns;            /* CLOCK_MONOTONIC when it began */
    uint64_t len_ns;
};

struct tw_gap_stats {
    uint32_t cpu;
    uint32_t running_on;       /* where the loop ran at the end (it must be cpu) */
    uint64_t threshold_ns;
    uint64_t elapsed_ns;
    uint64_t samples;          /* clock reads */
    uint64_t gaps;             /* gaps past the threshold */
    uint64_t gap_ns;           /* their sum: the time the core was taken */
    uint64_t max_ns;
    uint64_t by_decade[8];     /* gaps of [1, 10) us, [10, 100) us, ... [10 s, ...) */
    struct tw_gap top[16];     /* the longest, longest first */
};

/* 0, or a negative errno (the CPU is not one this process may run on). */
int tw_gap_run(uint32_t cpu, uint64_t duration_ns, uint64_t threshold_ns, struct tw_gap_stats *out);

#endif
