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
    uint64_t refused[3][4];  /* by line (A, B, retransmission) and enum tw_feed_refusal: not the exchange's */
    uint64_t shown[3];       /* by line: the newest sequence number it has shown to exist */
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

/* ---- who may speak for the feed (issue 16) ------------------------------------------------
 * Datagrams from anyone but the line's publisher are refused by the receive stage (rx.c, and the
 * XDP filter before it) and handed here only to be counted; a datagram of another session than
 * the configured one is refused and never takes the session; a sequence jump only one source
 * shows is not believed: when its gap is given up (tw_feed_skip_gap), or a message lands past
 * the ring, the expected sequence moves past the hole only when two sources (line A, line B, the
 * re-request server's answers) have shown a sequence number that far, else the jump and what was
 * held after it are dropped and the expected sequence stays (the books stay stale until a message
 * applies in sequence); with answers_asked, retransmission answers are taken only within the
 * ranges asked. Each refusal is counted in tw_feed_state.refused[line][why] and raised as
 * TW_EV_FEED_REFUSED at most once a second per (line, why), with the count since the last one. */
enum tw_feed_refusal {
    TW_REFUSED_SOURCE = 0,  /* a datagram from an address or port that is not the line's publisher */
    TW_REFUSED_SESSION = 1, /* a datagram of another MoldUDP64 session than the configured one */
    TW_REFUSED_JUMP = 2,    /* a sequence jump only one source showed: dropped at give-up */
    TW_REFUSED_UNASKED = 3, /* a retransmission answer outside every range asked */
    TW_NREFUSALS = 4
};
enum tw_feed_guard_consts {
    TW_FEED_REFUSED_EVERY_MS = 1000, /* one TW_EV_FEED_REFUSED a second per (line, why) at most */
    TW_FEED_ASKED = 8,               /* the latest requests, whose ranges answers must fall in */
};
/* The session expected (10 bytes as on the wire, space padded; NULL: the first seen, as before). */
void tw_feed_expect_session(struct tw_feed *f, const uint8_t *session);
/* Take retransmission answers only within the ranges asked (tw_feed_asked_range). */
void tw_feed_answers_asked_only(struct tw_feed *f);
/* A request for first .. first + count - 1 went to the re-request server (tw_feed_gap_action says it
 * itself; a caller that asks on its own says it here). */
void tw_feed_asked_range(struct tw_feed *f, uint64_t first, uint64_t count);
/* A datagram of line (0 A, 1 B, 2 retransmission) refused before the feed saw it (why: enum
 * tw_feed_refusal, TW_REFUSED_SOURCE from the loop): counted, raised (rate-limited). */
void tw_feed_refuse(struct tw_feed *f, uint32_t line, uint32_t why);

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
