/* strategy.h — the face of the strategies: their parameters table, the actions
 * they answer with, their order events.
 * Implemented by dpdk/src/strategy.c.
 * cffi reads it (joined with the other faces by dpdk/build_ext.py, preprocessor
 * lines stripped): plain declarations only. */
#ifndef TW_STRATEGY_H
#define TW_STRATEGY_H
#include <stdint.h>
#include "book.h"

/* ---- strategies (dpdk/src/strategy.c) -----------------------------------------------------
 * One small interface: on a book update, on an event of one of its own orders,
 * on a timer. A strategy answers with actions (new orders, cancels) that the
 * worker passes through the risk chain. It never sees a stale book or an
 * instrument that is not trading: the dispatcher stops there and cancels its
 * quotes instead. After the market closes (system event M, E or C) it is not
 * asked again and sends nothing: day orders end with the session. Parameters are one table Python publishes whole. */

enum tw_strategy_kind {
    TW_STRATEGY_NONE = 0,
    TW_STRATEGY_MARKET_MAKER = 1, /* quotes both sides around the micro-price, skewed by inventory */
    TW_STRATEGY_TAKER = 2,        /* crosses the spread when the book's imbalance passes a threshold */
};

struct tw_strategy_params {
    uint32_t kind;               /* enum tw_strategy_kind */
    uint32_t enabled;            /* 0: quotes are pulled, nothing new is sent */
    uint32_t locate;             /* the instrument traded */
    uint32_t tick;               /* price increment (4 decimals), e.g. 100 = one cent */
    /* market maker */
    uint32_t half_spread;        /* from the fair price to each quote (4 decimals) */
    uint32_t quote_size;         /* shares a side */
    uint32_t skew;               /* fair price moves against the position: skew / 1000 price units a share */
    uint32_t min_move;           /* requote only when a quote's price would move at least this much */
    uint64_t refresh_ns;         /* at most one requote a side per this interval */
    uint32_t max_position;       /* stop quoting the side that would grow |position| past this */
    /* taker */
    uint32_t imbalance_bps;      /* (bid shares - ask shares) / (bid + ask) over `levels`, in basis points */
    uint32_t levels;             /* levels a side summed for the imbalance */
    uint32_t take_size;          /* shares per take */
    uint64_t cooldown_ns;        /* after a take, none for this long */
    uint32_t quote_levels;       /* market maker: quotes a side, each one tick further out (0 or 1: one; up to 64) */
    uint32_t _pad;
};

enum tw_action_kind { TW_ACTION_NEW = 1, TW_ACTION_CANCEL = 2 };

struct tw_strategy_action {
    uint64_t user_ref;           /* NEW: the reference it will carry; CANCEL: the order to cancel */
    uint32_t qty;
    uint32_t price;
    uint16_t locate;
    uint8_t kind;                /* enum tw_action_kind */
    uint8_t side;                /* 'B' or 'S' */
    uint8_t ioc;                 /* 1: immediate or cancel (a take) */
    uint8_t _pad[7];
};

struct tw_actions {
    uint32_t n;
    uint32_t _pad;
    struct tw_strategy_action a[8];
};

enum tw_order_event {
    TW_ORDER_ACCEPTED = 1,
    TW_ORDER_EXECUTED = 2,       /* qty shares */
    TW_ORDER_DONE = 3,           /* canceled, rejected, or fully executed: no longer open */
    TW_ORDER_DENIED = 4,         /* the risk chain refused it: never sent */
};

struct tw_strategy_stats {
    uint64_t book_updates;       /* updates handed to the strategy */
    uint64_t skipped;            /* updates not handed over: stale books or an instrument not trading */
    uint64_t orders;             /* NEW actions */
    uint64_t cancels;            /* CANCEL actions */
    uint64_t executions;         /* shares */
    int64_t position;
    uint64_t params_version;
};

struct tw_strategy;

/* user_ref_base: the first UserRefNum it hands out (each used once, increasing). */
struct tw_strategy *tw_strategy_create(uint64_t user_ref_base);
void tw_strategy_destroy(struct tw_strategy *s);
void tw_strategy_set_params(struct tw_strategy *s, const struct tw_strategy_params *p);
/* The book of `locate` changed (the worker calls it once per packet for each
 * instrument the packet touched). */
void tw_strategy_on_book(struct tw_strategy *s, struct tw_books *b, int stale, uint16_t locate, uint64_t now_ns,
                         struct tw_actions *out);
void tw_strategy_on_order(struct tw_strategy *s, uint64_t user_ref, uint32_t event, uint32_t qty, uint64_t now_ns,
                          struct tw_actions *out);
void tw_strategy_on_timer(struct tw_strategy *s, struct tw_books *b, int stale, uint64_t now_ns,
                          struct tw_actions *out);
void tw_strategy_stats(const struct tw_strategy *s, struct tw_strategy_stats *out);
/* Stop quoting (1): the next update or timer pulls the quotes and nothing new goes; 0 resumes. */
void tw_strategy_halt(struct tw_strategy *s, uint8_t halt);
/* Its quotes' cancels were sent by someone else (a kill switch): they are no longer its quotes. */
void tw_strategy_forget_quotes(struct tw_strategy *s);
/* After a restart: the position the journal says it holds. */
void tw_strategy_seed_position(struct tw_strategy *s, int64_t position);
/* Take UserRefNums from from's counter from now on: the strategies of one session hand out one
 * increasing series (OUCH wants them increasing per session). from must live as long as s. */
void tw_strategy_share_refs(struct tw_strategy *s, struct tw_strategy *from);

#endif
