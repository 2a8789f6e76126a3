/* events.h — the face of the event records the worker raises and Python drains:
 * their types, the order stages, the in-memory log.
 * Implemented by dpdk/src/events.c (the log, the worker's ring); raised by itch.c, mold.c, risk.c and
 * orders.c into the sink (struct tw_event_sink) the loop gives each of them.
 * cffi reads it (joined with the other faces by dpdk/build_ext.py, preprocessor
 * lines stripped): plain declarations only. */
#ifndef TW_EVENTS_H
#define TW_EVENTS_H
#include <stdint.h>

/* ---- events (dpdk/src/events.c) ------------------------------------------------------
 * Fixed-size records of what changed state: gaps and their recovery, stale
 * books, end of session, ITCH system events, trading actions and halts, orders
 * and risk denials. A stage raises them into the sink it was given (struct
 * tw_event_sink); the worker's sink is an rte_ring drained by Python, tests and
 * replays use a tw_event_log. */

enum tw_event_type {
    TW_EV_GAP = 1,            /* a: first missing sequence number, b: how many (so far) */
    TW_EV_RECOVERED = 2,      /* a: next sequence number, b: messages recovered */
    TW_EV_UNRECOVERABLE = 3,  /* a: first skipped sequence number, b: how many; books stay stale */
    TW_EV_END_OF_SESSION = 4, /* a: the session's next sequence number */
    TW_EV_SYSTEM = 5,         /* code: ITCH system event (O S Q M E C) */
    TW_EV_TRADING_ACTION = 6, /* locate, symbol, code: trading state (H P Q T) */
    TW_EV_OPERATIONAL_HALT = 7, /* locate, symbol, code: H halted or T resumed */
    TW_EV_REG_SHO = 8,        /* locate, symbol, code: 0 none, 1 intraday, 2 continued */
    TW_EV_MWCB = 9,           /* code: market-wide circuit breaker level breached (1 2 3) */
    TW_EV_RETRANS_REQUEST = 10, /* a: first sequence number asked for, b: count */
    TW_EV_RISK_DENIED = 11,   /* locate, code: enum tw_risk_denial, a: user_ref, b: qty, strategy, limit: the
                                 limit it broke, value: the order's offending value (risk.h says which) */
    TW_EV_ORDER = 12,         /* one of our orders: code 'O' sent (locate, symbol, side, price, and for an
                                 order a packet triggered: ts_ns its arrival stamp, line, seq, stage_ns),
                                 'X' cancel sent, 'N' not sent (a broken link took it from the buffer), or
                                 the exchange's OUCH type (A E C J ...) with seq its SoupBinTCP sequence
                                 number; a user_ref, b qty */
    /* Issue 16's events (each owner fills in its comment): */
    TW_EV_KILL = 13,          /* the worker threw or released a kill switch of its own accord or by command:
                                 code: why (worker.h's enum tw_kill_reason), a: 1 thrown / 0 released,
                                 b: the cancels it sent. Of its own accord (worker.c, loop.h): the control
                                 loop's heartbeat went stale (DEADMAN), the ring dropped an event
                                 (EVENTS_DROPPED), or a stop found orders open (STOPPING) */
    TW_EV_COMMAND = 14,       /* a command from the command socket (control.c), carried out or not: code: enum
                                 tw_worker_cmd, line: enum tw_command_result, a: the sender's request id, b: its
                                 uid and stage_ns[0] its gid and seq its pid (the kernel's, SCM_CREDENTIALS),
                                 value: the worker's number for it (tw_control_text: target, claim, reason),
                                 side: enum tw_command_by, locate: the instrument's, strategy: the slot's (255) */
    TW_EV_BAD_ANSWER = 15,    /* an order-entry answer that cannot be (session.c, risk_orders.c; raised by
                                 orders.c, which throws the kill switch): code: enum tw_bad_answer, a: the
                                 UserRefNum it names (0: none), b: its number n (its bytes: the stats'
                                 bad_answer[n % 4]), seq: its SoupBinTCP sequence number, price, side: the
                                 answer's, strategy: the order's, stage_ns[0]: its OUCH type (0: a session
                                 packet), [1]: its quantity, [2]: the order's open shares before it
                                 (UINT32_MAX: no such order) */
    TW_EV_FEED_REFUSED = 16,  /* feed datagrams refused as not the exchange's (mold_guard.c), at most one event a
                                 second per (line, why): code: why (feed.h's enum tw_feed_refusal: wrong
                                 source, wrong session, unconfirmed jump, unasked answer), line: 0 A, 1 B, 2
                                 retransmission, a: how many since the last such event, b: how many in all,
                                 seq: the sequence number it claimed (0: not known) */
    TW_EV_NTYPES = 17
};

/* Where an order's tick-to-trade went, stage by stage (tw_event.stage_ns); the
 * stages follow each other, so they add up to the whole. */
enum tw_order_stage {
    TW_OS_WIRE = 0,    /* the triggering packet's arrival stamp -> its burst (or datagram) read */
    TW_OS_QUEUE = 1,   /* -> the packet's turn in the burst */
    TW_OS_APPLY = 2,   /* -> its messages applied to the books */
    TW_OS_DECIDE = 3,  /* -> the strategy's answer */
    TW_OS_RISK = 4,    /* -> this order passed the risk chain (after the decision's earlier actions) */
    TW_OS_SEND = 5,    /* -> the decision's one send() returned */
    TW_OS_N = 6
};

struct tw_event {
    uint64_t ts_ns;   /* CLOCK_MONOTONIC when raised (an order a packet triggered: its arrival stamp) */
    uint32_t type;    /* enum tw_event_type */
    uint16_t locate;  /* the instrument, 0 for session-wide events */
    uint8_t code;     /* the ITCH code of the change, when it has one */
    uint8_t line;     /* an order sent: the triggering packet's feed line (0 A, 1 B, 2 retransmission) */
    uint64_t a;
    uint64_t b;
    char symbol[8];   /* space-padded, as ITCH sends it */
    union {
        uint64_t seq;     /* an order sent: the MoldUDP64 sequence number of the triggering packet (its
                             first message), 0 when no packet triggered it (a timer, the kill switch) */
        uint64_t limit;   /* risk-denied events: the limit the order broke, in its own units (the field
                             tw_risk_denial_limit(code) names: shares, price x shares, bps, per second) */
    };
    uint32_t stage_ns[6]; /* an order sent: ns in each enum tw_order_stage (0 without an arrival stamp) */
    union {
        uint64_t price;   /* order events: the order's price (sent, accepted), the execution's (executed); 4 decimals */
        uint64_t value;   /* risk-denied events: the order's offending value, in the limit's units */
    };
    uint8_t side;     /* order events: 'B' or 'S' when known (sent, accepted) */
    uint8_t strategy; /* order and risk-denied events: the slot of the strategy it belongs to (255: none) */
    uint8_t _pad2[6];
};

typedef void (*tw_event_fn)(void *ctx, const struct tw_event *ev);

/* Where a stage's events go: fn(ctx, ev) for each (fn NULL: nowhere). */
struct tw_event_sink {
    tw_event_fn fn;
    void *ctx;
};

/* A sink that keeps the first cap events in memory (tests, replays). */
struct tw_event_log {
    struct tw_event *ev;
    uint32_t cap;
    uint32_t n;
    uint64_t dropped;  /* raised after the log was full */
};
void tw_event_log_emit(void *ctx, const struct tw_event *ev);

#endif
