/* loop.h — the worker's state, shared by the loop (worker.c) and its setup and
 * lifecycle (worker_setup.c), and the feed step both use. C only. */
#ifndef TW_LOOP_H
#define TW_LOOP_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* recvmmsg (rx.h) */
#endif
#include <stdint.h>

#include "histogram.h"
#include "orders.h"
#include "recorder.h"
#include "rx.h"

#define ANSWER_WINDOW_NS 2000000000ull /* read answers for this long after a request */

struct tw_worker {
    struct tw_worker_config cfg;
    struct tw_books *books;
    struct tw_feed *feed;
    struct tw_worker_stats *st;
    int own_stats;
    struct tw_event_ring events;
    struct tw_event_sink sink; /* the ring, as the stages raise into it */
    volatile int stop;
    struct tw_clock clock;
    uint64_t last_cal, first_packet, last_answers;
    int driven;                /* by the caller's reads (tw_worker_datagram), not tw_worker_run */
    struct tw_rerequest rr;
    struct tw_rx_sockets *sk;
    uint32_t rt_saddr, rt_daddr; /* the retransmission socket's two ends: the recorder's headers */
    uint16_t rt_sport, rt_dport;
    struct tw_orders orders;   /* with strategies only */
    uint64_t seen_dropped;     /* events_dropped the fail-safe has answered (worker.c) */
};

/* ---- the feed: mold hands back the messages now in sequence, itch applies them ------------ */

static inline void tw_loop_feed_apply(struct tw_feed *f, struct tw_books *b, const struct tw_event_sink *sink)
{
    uint32_t mlen;
    for (const uint8_t *m; (m = tw_feed_next(f, &mlen));)
        if (tw_itch_apply(b, sink, m, mlen) < 0)
            tw_feed_book_error(f);
}

static inline int tw_loop_feed_step(struct tw_feed *f, struct tw_books *b, const struct tw_event_sink *sink,
                                    uint32_t line, const uint8_t *pkt, uint32_t len)
{
    int rc = tw_feed_accept(f, line, pkt, len);
    uint32_t off = TW_MOLD_HEADER;
    uint16_t n;
    for (const uint8_t *m; (m = tw_mold_block(pkt, len, &off, &n));) /* a first pass starts the table loads */
        tw_itch_prefetch(b, m, n);
    tw_loop_feed_apply(f, b, sink);
    return rc;
}

/* The shared stats brought up to date: the feed's, the books'. */
static inline void tw_loop_publish(struct tw_worker *w)
{
    tw_feed_state(w->feed, &w->st->feed);
    tw_books_stats(w->books, &w->st->book);
    w->st->live_orders = tw_books_live_orders(w->books);
}

/* 1 when a trading worker's session is up with orders open: what a stop must cancel first. */
static inline int tw_loop_resting(const struct tw_worker *w)
{
    if (!w->cfg.nstrategies)
        return 0;
    struct tw_risk_stats rs;
    tw_risk_stats(w->cfg.risk, &rs);
    return rs.open_orders && tw_venue_is_up(&w->orders.venue);
}

/* A trading worker throws its own kill switch, as another process would (stats.kill_reason, then
 * kill), and acts on it now through control.c, as it would before the next burst: risk refuses
 * every new order, every open order is cancelled in one send. Raised as TW_EV_KILL. Only an
 * operator releases it (tickwire resume). */
static inline void tw_loop_kill(struct tw_worker *w, uint64_t reason, uint64_t now)
{
    struct tw_worker_stats *st = w->st;
    st->kill_reason = reason;
    __atomic_store_n(&st->kill, 1, __ATOMIC_RELEASE);
    tw_control_poll(&w->orders);
    struct tw_event ev = { .ts_ns = now, .type = TW_EV_KILL, .code = (uint8_t)reason, .a = 1, .b = st->kill_cancels,
                           .strategy = TW_ORDERS_NONE };
    tw_raise(&w->sink, &ev);
}

/* The first time round: the clocks mapped, the start noted. */
static inline void tw_loop_begin(struct tw_worker *w)
{
    tw_clock_calibrate(&w->clock);
    uint64_t now = tw_clock_now(&w->clock);
    w->last_cal = now;
    w->st->started_ns = now;
    w->st->heartbeat_ns = now;
}

#endif
