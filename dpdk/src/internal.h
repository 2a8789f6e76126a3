/* internal.h — what the C stages share with each other and not with Python. */
#ifndef TW_INTERNAL_H
#define TW_INTERNAL_H
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "book.h"
#include "feed.h"
#include "order_entry.h"
#include "strategy.h"

#include "bytes.h"

/* events.c: raise an event into a sink (none, or one without fn: nowhere) */
static inline void tw_raise(const struct tw_event_sink *s, const struct tw_event *ev)
{
    if (s && s->fn)
        s->fn(s->ctx, ev);
}

/* events.c: the worker's sink, an rte_ring Python drains; count/dropped are the worker's counters */
struct rte_ring;
struct tw_event_ring {
    struct rte_ring *ring;
    uint64_t *count, *dropped;
};
int tw_event_ring_init(struct tw_event_ring *r, const char *name, uint32_t size, uint64_t *count,
                       uint64_t *dropped);
void tw_event_ring_fini(struct tw_event_ring *r);
void tw_event_ring_emit(void *ctx, const struct tw_event *ev);
uint32_t tw_event_ring_take(struct tw_event_ring *r, struct tw_event *out, uint32_t max);

/* book.c: the operations itch.c decodes messages into. Each returns 0 or a negative
 * tw_book_error and counts itself in the book stats. side: 0 buy, 1 sell (anything else: a bad
 * field); execute's price < 0: at the resting order's price. */
int tw_books_place(struct tw_books *b, uint64_t ref, uint16_t locate, uint8_t side, uint32_t shares,
                   uint32_t price);
int tw_books_execute(struct tw_books *b, uint64_t ref, uint32_t shares, int64_t price);
int tw_books_reduce(struct tw_books *b, uint64_t ref, uint32_t shares);
int tw_books_delete(struct tw_books *b, uint64_t ref);
int tw_books_replace(struct tw_books *b, uint64_t old_ref, uint64_t new_ref, uint32_t shares, uint32_t price);
/* a message refused before it reached an operation (its tw_book_error), and one that is not a
 * book message (state: 1 when it was a state message that was taken) */
void tw_books_refused(struct tw_books *b, int rc);
void tw_books_other(struct tw_books *b, int state);
/* start loading the slot of order ref */
void tw_books_prefetch(const struct tw_books *b, uint64_t ref);
struct tw_instrument *tw_books_instruments(struct tw_books *b, uint32_t *max_locate);
void tw_books_set_system_event(struct tw_books *b, uint8_t code);
/* The market has closed: system event M (end of market hours), E or C has come. */
int tw_books_market_closed(const struct tw_books *b);
/* May the instrument be traded now: its trading state is T, it is not under an operational
 * halt, and the market has not closed. Strategies and the risk chain both ask this. */
int tw_books_tradable(const struct tw_books *b, uint16_t locate);

/* itch.c: start loading the order slot this ITCH message will touch */
void tw_itch_prefetch(const struct tw_books *b, const uint8_t *m, uint32_t len);

/* MoldUDP64: a 20-byte header (session, sequence number, count), then count blocks of
 * [u16 length][message]. The block at *off when it fits in len (its message, *n bytes; *off
 * moves past it), else NULL. */
#define TW_MOLD_HEADER 20
static inline const uint8_t *tw_mold_block(const uint8_t *pkt, uint32_t len, uint32_t *off, uint16_t *n)
{
    if (*off + 2 > len || *off + 2u + rd16(pkt + *off) > len)
        return NULL;
    *n = rd16(pkt + *off);
    const uint8_t *m = pkt + *off + 2;
    *off += 2u + *n;
    return m;
}

/* mold.c: the re-request policy for an open gap. The other line has delay_ns to fill it; then
 * the retransmission server is asked (can_ask: there is one), at most max messages, again after
 * interval_ns without progress; a gap open give_up_ns (0: never) is given up. */
struct tw_rerequest {
    uint64_t delay_ns, interval_ns, give_up_ns;
    uint32_t max;
    int can_ask;
    uint64_t gap_since, asked_ns, asked_first, asked_count;
};
enum tw_gap_action {
    TW_GAP_WAIT = 0,    /* nothing to do now */
    TW_GAP_GIVE_UP = 1, /* skip the hole (tw_feed_skip_gap) */
    TW_GAP_ASK = 2,     /* send req (20 bytes: session, first, count), then tw_feed_asked */
};
int tw_feed_gap_action(struct tw_feed *f, struct tw_rerequest *rr, uint64_t now, uint8_t req[20]);
void tw_feed_asked(struct tw_rerequest *rr, uint64_t now, const uint8_t req[20]);

/* mold.c: the books are stale (a gap is open or was given up) */
int tw_feed_is_stale(const struct tw_feed *f);

/* strategy.c: the instrument the strategy trades (0: none) */
uint16_t tw_strategy_locate(struct tw_strategy *s);

/* ouch.c: logged in, orders may go */
int tw_ouch_is_up(const struct tw_ouch *o);

/* A table another thread publishes whole (risk limits, strategy parameters):
 * writers take turns and mark the table odd while they copy; the reader takes a
 * copy only when the version moved and stayed even across its copy. */
struct tw_published {
    volatile uint64_t version;
    int writer;
};

static inline void tw_publish(struct tw_published *p, void *shared, const void *table, size_t size)
{
    while (__atomic_exchange_n(&p->writer, 1, __ATOMIC_ACQUIRE))
        ;
    uint64_t v = p->version;
    __atomic_store_n(&p->version, v + 1, __ATOMIC_RELEASE); /* odd: being written */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    memcpy(shared, table, size);
    __atomic_store_n(&p->version, v + 2, __ATOMIC_RELEASE);
    __atomic_store_n(&p->writer, 0, __ATOMIC_RELEASE);
}

/* Copy the table into local when it changed since *seen: 1 when it did. scratch (size
 * bytes, the reader's own) holds the copy until it is known whole. */
static inline int tw_take(struct tw_published *p, uint64_t *seen, const void *shared, void *local, void *scratch,
                          size_t size)
{
    uint64_t v = __atomic_load_n(&p->version, __ATOMIC_ACQUIRE);
    if (v == *seen || (v & 1))
        return 0; /* unchanged, or being written: the next call takes it */
    memcpy(scratch, shared, size);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&p->version, __ATOMIC_ACQUIRE) != v)
        return 0;
    memcpy(local, scratch, size);
    *seen = v;
    return 1;
}

static inline uint64_t tw_pow10(uint32_t e)
{
    uint64_t v = 1;
    while (e--)
        v *= 10;
    return v;
}

/* Touch every page of a fresh zeroed allocation now, so the hot path takes no
 * page fault later. (A memset after calloc does not do it: the compiler may
 * drop it, knowing the memory is zero already.) */
static inline void tw_prefault(void *p, size_t bytes)
{
    for (size_t i = 0; i < bytes; i += 4096)
        ((volatile uint8_t *)p)[i] = 0;
}

static inline uint64_t tw_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
