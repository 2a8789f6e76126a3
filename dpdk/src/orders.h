/* orders.h — the order path: a book change -> the strategies that trade it ->
 * risk -> the venue seam (venue.h), one send() per packet's decisions, and the
 * venue's answers back to risk and the strategies. The worker loop and control.c
 * share it. C only. */
#ifndef TW_ORDERS_H
#define TW_ORDERS_H
#include <stdint.h>

#include "clock.h"
#include "internal.h"
#include "risk.h"
#include "venue.h"
#include "worker.h"

#define TW_ORDERS_NONE 255
#define TW_ORDERS_MAX_PENDING (TW_WORKER_MAX_STRATEGIES * 8) /* every strategy's whole answer, for one send() */

/* The packet a decision answers, and when it went through each stage. */
struct tw_trigger {
    uint64_t t_wire;        /* its arrival stamp, CLOCK_MONOTONIC (0: none usable) */
    uint64_t t_rx;          /* CLOCK_MONOTONIC when its burst was read */
    uint64_t t_rx_tsc, t_dec_tsc, t_app_tsc;
    uint64_t seq;           /* the MoldUDP64 sequence number of its first message */
    uint8_t line;
};

/* An order queued in the venue's corked buffer, until the send() of its packet's decisions. */
struct tw_pending {
    struct tw_strategy_action a;
    uint64_t t_decided_tsc; /* its decision's answer */
    uint64_t t_risk;        /* it passed the risk chain */
    char symbol[8];         /* as the Enter Order carried it, for its event */
    uint8_t slot;
};

struct tw_orders {
    struct tw_strategy *const *strategies;
    uint32_t nstrat;
    struct tw_risk *risk;
    struct tw_venue venue;
    struct tw_books *books;
    struct tw_worker_stats *st;
    const struct tw_clock *clock;
    const struct tw_event_sink *events;
    uint8_t cancel_each;
    /* which strategies trade an instrument (fixed at creation: a reload changes parameters,
     * never what a strategy trades) */
    uint16_t locate_of[TW_WORKER_MAX_STRATEGIES];
    uint8_t next_on[TW_WORKER_MAX_STRATEGIES]; /* the next strategy on the same instrument, NONE: no more */
    uint8_t *first_on;                         /* [locate]: 1 + the first strategy trading it, 0: none */
    /* the orders of a packet's decisions (every strategy's), until their one send() */
    uint32_t npending;
    int corked;
    struct tw_pending pending[TW_ORDERS_MAX_PENDING];
    uint64_t open_refs[4096]; /* a kill switch's list of orders to cancel */
    /* orders an impossible answer left in doubt (risk no longer holds them, the venue may): each got a
     * cancel of its own, whose Canceled or Cancel Reject is then expected */
    uint32_t doubt[16];
    uint32_t ndoubt;
};

/* Set up over the config's strategies, risk and session: 0, or -1 (no memory, or the books
 * could not watch an instrument), with nothing watched. */
int tw_orders_init(struct tw_orders *o, const struct tw_worker_config *c, struct tw_books *b,
                   struct tw_worker_stats *st, const struct tw_clock *clk, const struct tw_event_sink *events);
void tw_orders_fini(struct tw_orders *o);
/* The watched instruments the books just changed: each one's strategies decide, their orders go
 * through risk into the venue, all in one send() (stale: the feed's books are stale). */
void tw_orders_dispatch(struct tw_orders *o, int stale, const struct tw_trigger *tr);
/* The timer: requotes the throttle held back; a strategy given another instrument is watched. */
void tw_orders_timer(struct tw_orders *o, int stale, uint64_t now);
/* The venue's answers: each checked against the session and the order it names (an impossible one
 * throws the kill switch, raises TW_EV_BAD_ANSWER and keeps its bytes in the stats), then positions
 * (risk) and the strategies' own orders follow them. */
void tw_orders_answers(struct tw_orders *o, uint64_t now);
/* ... the same for answers already read (tw_orders_answers' second half) */
void tw_orders_take_answers(struct tw_orders *o, const struct tw_ouch_msg *msgs, uint32_t n, uint64_t now);
/* Cancel every open order of one instrument (0: all) and one strategy (TW_RISK_ANY: all). */
void tw_orders_cancel_open(struct tw_orders *o, uint16_t locate, uint8_t strategy);

/* control.c: the kill switch and the operator's commands, before the next burst */
void tw_control_poll(struct tw_orders *o);

#endif
