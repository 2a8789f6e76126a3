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

/* ---- order books from ITCH (dpdk/src/book.c) ------------------------------------
 * L3 (order reference -> order) and L2 (price levels) per instrument, keyed by
 * stock locate, built from ITCH A F E C X D U. Sized at creation; nothing is
 * allocated per message. A message the book cannot take returns a negative
 * tw_book_error and is counted; the book is left as it was. */

struct tw_books;

enum tw_book_error {
    TW_BOOK_OK = 0,
    TW_BOOK_EBADLENGTH = -1,  /* the length does not match the type */
    TW_BOOK_EBADLOCATE = -2,  /* stock locate above max_locate */
    TW_BOOK_EBADFIELD = -3,   /* e.g. a side that is neither B nor S */
    TW_BOOK_EDUPLICATE = -4,  /* an add for a reference already open */
    TW_BOOK_EUNKNOWN = -5,    /* an execute, cancel, delete or replace of an unknown order */
    TW_BOOK_EOVERFILL = -6,   /* more shares executed or canceled than the order has */
    TW_BOOK_EFULL = -7,       /* max_orders reached */
    TW_BOOK_ELEVELS = -8,     /* levels_per_side reached on that side */
    TW_BOOK_NERRORS = 9
};

struct tw_book_level {
    uint32_t price;    /* 4 implied decimals */
    uint32_t orders;
    uint64_t shares;
};

struct tw_book_stats {
    uint64_t applied;     /* book messages applied */
    uint64_t ignored;     /* other ITCH types (no book effect) */
    uint64_t errors[9];   /* by -tw_book_error (index 0 unused) */
};

struct tw_books *tw_books_create(uint32_t max_locate, uint64_t max_orders, uint32_t levels_per_side);
void tw_books_destroy(struct tw_books *b);
/* One ITCH message (type byte first): 0, or a negative tw_book_error. */
int tw_books_apply(struct tw_books *b, const uint8_t *msg, uint32_t len);
/* Every message of a BinaryFILE image; returns how many were read. */
uint64_t tw_books_apply_binaryfile(struct tw_books *b, const uint8_t *buf, uint64_t len);
/* Up to max levels of one side (0 buy, 1 sell), best first; returns how many. */
uint32_t tw_books_depth(const struct tw_books *b, uint16_t locate, uint8_t side, struct tw_book_level *out,
                        uint32_t max);
/* Size-weighted mid of the best bid and ask (4 decimals), or -1 when a side is empty. */
int64_t tw_books_micro_price(const struct tw_books *b, uint16_t locate);
uint64_t tw_books_live_orders(const struct tw_books *b);
void tw_books_stats(const struct tw_books *b, struct tw_book_stats *out);

/* ---- MoldUDP64 sequencing and A/B arbitration (dpdk/src/mold.c) -------------------
 * One session's packets from line A (0), line B (1) and retransmission answers
 * (2), applied to the books in sequence order: the first copy of each message
 * wins, later copies are duplicates; messages past a gap are held (up to
 * max_held) until the gap fills, and the books are stale meanwhile. */

struct tw_feed;

struct tw_feed_state {
    uint64_t next_seq;       /* the sequence number expected next */
    uint64_t applied;        /* messages applied to the books, in order */
    uint64_t duplicates;     /* copies of messages already applied or held */
    uint64_t gaps;           /* gaps opened */
    uint64_t recovered;      /* gaps closed by the other line or a retransmission */
    uint64_t unrecoverable;  /* gaps wider than max_held: skipped */
    uint64_t skipped;        /* messages given up by those */
    uint64_t malformed;      /* packets or blocks that do not parse */
    uint64_t other_session;  /* packets of another MoldUDP64 session */
    uint64_t book_errors;    /* messages the books refused (see tw_book_error) */
    uint64_t packets[3];     /* by line: A, B, retransmission */
    uint64_t first_copy[3];  /* messages each line delivered first */
    uint64_t gap_to;         /* while in a gap: the newest sequence number held */
    uint8_t in_gap;
    uint8_t stale;           /* books not to be traded on */
    uint8_t end_of_session;
};

struct tw_feed *tw_feed_create(struct tw_books *books, uint64_t max_held);
void tw_feed_destroy(struct tw_feed *f);
/* One downstream packet from line 0 (A), 1 (B) or 2 (retransmission): 0, or
 * -EINVAL for a malformed or foreign packet (counted; what parsed is kept). */
int tw_feed_packet(struct tw_feed *f, uint32_t line, const uint8_t *pkt, uint32_t len);
void tw_feed_state(const struct tw_feed *f, struct tw_feed_state *out);
/* While in a gap: the first missing sequence number and how many are missing
 * (what to ask the retransmission server for); returns 1, or 0 with no gap. */
int tw_feed_missing(const struct tw_feed *f, uint64_t *first, uint64_t *count);

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
