/* tickwire.h — everything Python shares with C, in one header that cffi reads.
 *
 * cffi parses this file after dpdk/build_ext.py strips the preprocessor lines,
 * so keep it to plain declarations: fixed-width types, structs, prototypes.
 * Functions return 0 or a negative errno; Python turns that into a message.
 */
#ifndef TICKWIRE_H
#define TICKWIRE_H
#include <stdint.h>

/* ---- build facts ---------------------------------------------------------- */

/* The DPDK release the extension was compiled and linked against (rte_version()). */
const char *tw_dpdk_version(void);

/* ---- ITCH files: the indexer behind bulk decoding (appliance/protocols/bulk.py) ----
 * A NASDAQ BinaryFILE is a stream of [u16 big-endian length][message]; finding
 * message i needs every length before it, so the scan is C. expected[t] is the
 * length of ITCH type byte t (0: unknown type). A record is malformed when its
 * type is unknown or its length is not the type's. Both functions stop before a
 * record that runs past len and return the bytes they covered. */

/* counts[t] += well-formed messages of type t; *malformed += the rest. */
uint64_t tw_itch_census(const uint8_t *buf, uint64_t len, const uint16_t *expected,
                        uint64_t *counts, uint64_t *malformed);

/* Copy each well-formed message of type t (type byte included) to row cursor[t]
 * of dest[t] (rows of expected[t] bytes), its record's file offset to
 * offsets[t][cursor[t]], then cursor[t]++. dest[t] may be NULL to skip type t.
 * Offsets of malformed records go to bad_offsets (at most bad_cap; *nbad counts
 * all of them). */
uint64_t tw_itch_split(const uint8_t *buf, uint64_t len, const uint16_t *expected,
                       uint8_t **dest, uint64_t **offsets, uint64_t *cursor,
                       uint64_t *bad_offsets, uint64_t bad_cap, uint64_t *nbad);

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

#endif
