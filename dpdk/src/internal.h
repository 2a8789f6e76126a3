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

/* book.c */
struct tw_instrument *tw_books_instruments(struct tw_books *b, uint32_t *max_locate);
void tw_books_set_system_event(struct tw_books *b, uint8_t code);
void tw_books_raise(struct tw_books *b, const struct tw_event *ev);
/* The market has closed: system event M (end of market hours), E or C has come. */
int tw_books_market_closed(const struct tw_books *b);
/* May the instrument be traded now: its trading state is T, it is not under an operational
 * halt, and the market has not closed. Strategies and the risk chain both ask this. */
int tw_books_tradable(const struct tw_books *b, uint16_t locate);
/* Start loading the order slot this message will touch. */
void tw_books_prefetch(const struct tw_books *b, const uint8_t *m, uint32_t len);

/* mold.c: the session's name, once a packet has told it */
void tw_feed_session(const struct tw_feed *f, uint8_t out[10], int *known);

/* mold.c: the books are stale (a gap is open or was given up) */
int tw_feed_is_stale(const struct tw_feed *f);

/* strategy.c: the instrument the strategy trades (0: none) */
uint16_t tw_strategy_locate(struct tw_strategy *s);

/* ouch.c: logged in, orders may go */
int tw_ouch_is_up(const struct tw_ouch *o);

/* itch.c: an ITCH message that is not a book message; 1 when it was a state
 * message (S R H Y W h P) and was taken, 0 otherwise. */
int tw_itch_state(struct tw_books *b, const uint8_t *m, uint32_t len);

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
