/* feed.h — the face of the market data feed: MoldUDP64 sequencing and A/B
 * arbitration, ITCH decoding, and the ITCH file indexer behind bulk decoding.
 * Implemented by dpdk/src/mold.c, itch.c and itch_index.c (tw_feed_packet: worker_setup.c).
 * cffi reads it (joined with the other faces by dpdk/build_ext.py, preprocessor
 * lines stripped): plain declarations only. */
#ifndef TW_FEED_H
#define TW_FEED_H
#include <stdint.h>
#include "book.h"

/* ---- ITCH 5.0 decoding (dpdk/src/itch.c): the only caller of the book ---------------
 * Every message type: book messages (A F E C X D U) change the books, state
 * messages (S R H Y W h P) the instruments' state, and raise their events into
 * sink (NULL: nowhere); other types are counted as ignored. */

/* One ITCH message (type byte first): 0, or a negative tw_book_error. */
int tw_itch_apply(struct tw_books *b, const struct tw_event_sink *sink, const uint8_t *msg, uint32_t len);
/* Every message of a BinaryFILE image; returns how many were read. */
uint64_t tw_itch_apply_binaryfile(struct tw_books *b, const struct tw_event_sink *sink, const uint8_t *buf,
                                  uint64_t len);

/* ---- MoldUDP64 sequencing and A/B arbitration (dpdk/src/mold.c) -------------------
 * One session's packets from line A (0), line B (1) and retransmission answers
 * (2), handed back in sequence order: the first copy of each message wins, later
 * copies are duplicates; messages past a gap are held (up to max_held) until the
 * gap fills, and the books are stale meanwhile. The feed holds no books: the loop
 * takes a packet (tw_feed_accept), then applies each message tw_feed_next hands
 * it, until NULL. */

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

struct tw_feed *tw_feed_create(uint64_t max_held);
void tw_feed_destroy(struct tw_feed *f);
/* Where its events go (gaps, recovery, end of session): sink, which must outlive the feed or be
 * replaced first (NULL: nowhere). */
void tw_feed_set_events(struct tw_feed *f, const struct tw_event_sink *sink);
/* Take one downstream packet from line 0 (A), 1 (B) or 2 (retransmission): 0, or
 * -EINVAL for a malformed or foreign packet (counted; the blocks before a malformed
 * one are kept). pkt must stay as it is until tw_feed_next returns NULL. */
int tw_feed_accept(struct tw_feed *f, uint32_t line, const uint8_t *pkt, uint32_t len);
/* The next message now in sequence (the packet's, then the held ones that follow), *len
 * its length; NULL when there is none. Counted as applied when handed out. */
const uint8_t *tw_feed_next(struct tw_feed *f, uint32_t *len);
/* The books refused a message the feed handed out (counted as book_errors). */
void tw_feed_book_error(struct tw_feed *f);
/* One packet through the feed into the books, as the worker loop does it (dpdk/src/worker_setup.c):
 * tw_feed_accept, then tw_itch_apply of each message handed out (sink: the ITCH events). */
int tw_feed_packet(struct tw_feed *f, struct tw_books *b, const struct tw_event_sink *sink, uint32_t line,
                   const uint8_t *pkt, uint32_t len);
/* The same for what the feed has ready without a packet (after tw_feed_skip_gap). */
void tw_feed_apply(struct tw_feed *f, struct tw_books *b, const struct tw_event_sink *sink);
void tw_feed_state(const struct tw_feed *f, struct tw_feed_state *out);
/* While in a gap: the first missing sequence number and how many are missing
 * (what to ask the retransmission server for); returns 1, or 0 with no gap. */
int tw_feed_missing(const struct tw_feed *f, uint64_t *first, uint64_t *count);
/* Begin at the first packet's sequence number instead of 1: a capture or a feed
 * joined mid-session (the books then hold only what came after). */
void tw_feed_join_late(struct tw_feed *f);
/* Apply every message in arrival order, whatever its sequence number says: for
 * captures whose sequence numbers were zeroed (no arbitration, no gaps). */
void tw_feed_unsequenced(struct tw_feed *f);
/* Give up the first hole of the open gap: skip it; tw_feed_next then hands out what was
 * held after it; the books stay stale (TW_EV_UNRECOVERABLE). Returns 0 when there is no gap. */
int tw_feed_skip_gap(struct tw_feed *f);

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

#endif
