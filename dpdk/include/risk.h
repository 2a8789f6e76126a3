/* risk.h — the face of inline pre-trade risk: the denial codes, the limits
 * table Python publishes, the chain.
 * Implemented by dpdk/src/risk.c.
 * cffi reads it (joined with the other faces by dpdk/build_ext.py, preprocessor
 * lines stripped): plain declarations only. */
#ifndef TW_RISK_H
#define TW_RISK_H
#include <stdint.h>
#include "book.h"

/* ---- inline pre-trade risk (dpdk/src/risk.c) ----------------------------------------
 * Every order the worker would send passes tw_risk_check first: small checks in a
 * fixed order, the first that fails names the denial. Limits live in a table
 * Python writes whole (tw_risk_set_limits); the worker picks the new table up at
 * its next check. Positions and own orders are kept here, inline. */

enum tw_risk_denial {
    TW_RISK_OK = 0,
    TW_RISK_BAD_ORDER = 1,        /* zero quantity or price, a side other than B/S, a locate out of range */
    TW_RISK_KILLED = 2,           /* the global kill flag, or the instrument's */
    TW_RISK_HALTED = 3,           /* trading state halted */
    TW_RISK_REDUCE_ONLY = 4,      /* trading state reduce-only and the order would grow the position */
    TW_RISK_NOT_TRADING = 5,      /* the instrument is halted, paused or not known to be trading, the market has
                                     closed (system event M, E or C), or the books are stale */
    TW_RISK_MAX_QTY = 6,
    TW_RISK_MAX_NOTIONAL = 7,
    TW_RISK_MAX_POSITION = 8,     /* position plus open orders on that side, plus this one */
    TW_RISK_MAX_GROSS = 9,        /* the same, summed over instruments */
    TW_RISK_COLLAR_BBO = 10,      /* price beyond the far touch by more than collar_bps (or no touch to check against) */
    TW_RISK_COLLAR_LAST = 11,     /* price further than collar_bps from the last trade */
    TW_RISK_MAX_OPEN_ORDERS = 12,
    TW_RISK_ORDER_RATE = 13,      /* the new-order token bucket is empty */
    TW_RISK_MESSAGE_RATE = 14,    /* the message (order, cancel, replace) token bucket is empty */
    TW_RISK_SELF_MATCH = 15,      /* it would trade against one of our own resting orders */
    TW_RISK_ODD_LOT = 16,         /* its quantity is not a whole number of round lots (round_lot_qty) */
    TW_RISK_NCODES = 17
};

enum tw_trading_state {
    TW_TRADING_ACTIVE = 0,
    TW_TRADING_REDUCE_ONLY = 1,
    TW_TRADING_HALTED = 2,
};

struct tw_risk_limits {          /* in the YAML's order (kill last: the kill switch's, not a YAML key) */
    uint32_t state;              /* enum tw_trading_state */
    uint32_t max_order_qty;      /* shares */
    uint64_t max_order_notional; /* price (4 decimals) x shares */
    uint64_t max_position;       /* shares, per instrument, either side */
    uint64_t max_gross;          /* shares, summed over instruments */
    uint32_t collar_bps;         /* 0: no collar */
    uint32_t max_open_orders;
    uint32_t order_rate;         /* new orders per second (0: no limit) */
    uint32_t order_burst;        /* bucket size */
    uint32_t message_rate;       /* orders + cancels + replaces per second (0: no limit) */
    uint32_t message_burst;
    uint32_t round_lot_qty;      /* shares an order's quantity must be a multiple of (0: any quantity) */
    uint32_t kill;               /* 1: deny every new order */
};

enum tw_risk_consts {
    TW_RISK_MAX_ROWS = 64,       /* strategies with limits of their own (a worker's strategies) */
    TW_RISK_ANY = 255,           /* tw_risk_open_orders: of every strategy; an intent: of none (global only) */
};

/* The whole table Python publishes: the worker's global limits and a row per strategy.
 * An order of strategy i (< nrows) trades under the stricter of global and rows[i], field by
 * field; its open orders and rates count in its row and in the global totals. An order of no
 * strategy (TW_RISK_ANY, or a slot past nrows) trades under global alone. */
struct tw_risk_table {
    struct tw_risk_limits global;   /* the whole worker: the open orders, gross and rates summed over
                                       every strategy, and the ceiling of each row */
    uint32_t nrows;
    uint32_t _pad;
    struct tw_risk_limits rows[64]; /* by strategy slot */
};

struct tw_order_intent {
    uint64_t user_ref;           /* the OUCH UserRefNum the order will carry */
    uint32_t qty;
    uint32_t price;              /* 4 decimals */
    uint16_t locate;
    uint8_t side;                /* 'B' or 'S' */
    uint8_t strategy;            /* the strategy's slot: its row of the table (TW_RISK_ANY: none) */
};

struct tw_risk_stats {
    uint64_t checked;
    uint64_t passed;
    uint64_t denied[32];         /* by enum tw_risk_denial (index 0 unused; room for TW_RISK_NCODES <= 32) */
    uint64_t open_orders;
    uint64_t gross;              /* sum of |position| */
    uint64_t limits_version;     /* the table the checks use */
};

struct tw_risk;

struct tw_risk *tw_risk_create(uint32_t max_locate, uint32_t max_own_orders);
void tw_risk_destroy(struct tw_risk *r);
/* Publish a whole new table (any thread); the checks take it from their next call. nrows
 * above TW_RISK_MAX_ROWS is taken as TW_RISK_MAX_ROWS. */
void tw_risk_set_table(struct tw_risk *r, const struct tw_risk_table *table);
/* The same with global limits only (no strategy rows). */
void tw_risk_set_limits(struct tw_risk *r, const struct tw_risk_limits *limits);
/* The one merge of two levels of limits: out is row made at least as strict as g, field by field
 * (the stricter value wins; a rate or a collar of 0 means none, so any limit is stricter; the
 * trading state: active < reduce-only < halted; kill: either; a burst goes with its rate).
 * merge(x, x) == x. The checks use it for each row of a published table; Python folds the
 * YAML's levels with it. */
void tw_risk_limits_merge(struct tw_risk_limits *out, const struct tw_risk_limits *g,
                          const struct tw_risk_limits *row);
/* The field of struct tw_risk_limits a denial code's check compares against ("kill", "state",
 * "max_order_qty", ...), "" when it has none (BAD_ORDER, NOT_TRADING, SELF_MATCH, out of range). */
const char *tw_risk_denial_limit(uint32_t code);
/* Where the denial events go (NULL: nowhere). The sink must outlive r, or be replaced first. */
void tw_risk_set_events(struct tw_risk *r, const struct tw_event_sink *sink);
/* The kill switch over whatever the table says (1 kills, 0 releases). */
void tw_risk_kill_all(struct tw_risk *r, uint8_t kill);
/* Kill (1) or release (0) one instrument. */
int tw_risk_kill_instrument(struct tw_risk *r, uint16_t locate, uint8_t kill);
/* Kill (1) or release (0) one strategy's row: its new orders are refused. */
int tw_risk_kill_strategy(struct tw_risk *r, uint8_t strategy, uint8_t kill);
/* The chain, in the order of enum tw_risk_denial; 0 when the order may go (it is
 * then counted as open and its tokens are spent), else the denial. stale: the
 * feed's books are stale. Denials are counted and raised as TW_EV_RISK_DENIED
 * (tw_risk_set_events) with the limit broken and the order's offending value, in
 * the limit's units:
 *   KILLED          kill: 1                      value 0
 *   HALTED          state: 2 (halted)            value 0
 *   REDUCE_ONLY     state: 1 (reduce-only)       value 0
 *   MAX_QTY         max_order_qty                the order's shares
 *   MAX_NOTIONAL    max_order_notional           its price x shares
 *   MAX_POSITION    max_position                 the exposure with it (|position| either way it fills)
 *   MAX_GROSS       max_gross                    the gross exposure with it
 *   COLLAR_BBO      collar_bps                   its distance beyond the touch, bps rounded up (0: no touch)
 *   COLLAR_LAST     collar_bps                   its distance from the last trade, bps rounded up
 *   MAX_OPEN_ORDERS max_open_orders              the open orders with it (the worker's, or the strategy's
 *                                                row's; or what the own-order table holds as the limit)
 *   ORDER_RATE      order_rate                   0: the bucket (the worker's or the row's) held no token
 *   MESSAGE_RATE    message_rate                 0: likewise
 *   SELF_MATCH      (none) our resting price     its price
 *   ODD_LOT         round_lot_qty                the order's shares
 *   BAD_ORDER, NOT_TRADING: 0, 0. */
int tw_risk_check(struct tw_risk *r, struct tw_books *b, int stale, const struct tw_order_intent *o,
                  uint64_t now_ns);
/* A cancel or replace about to be sent by a strategy (TW_RISK_ANY: by none): 0, or
 * TW_RISK_MESSAGE_RATE when a message bucket (its row's or the global one) is empty. Cancels are
 * never held back by the kill flag or the trading state: they reduce risk. */
int tw_risk_message(struct tw_risk *r, uint8_t strategy, uint64_t now_ns);
/* The exchange's answers: shares executed (the position moves), the order done
 * (canceled, rejected or fully executed: it stops being open). */
int tw_risk_on_execution(struct tw_risk *r, uint64_t user_ref, uint32_t qty);
int tw_risk_on_done(struct tw_risk *r, uint64_t user_ref);
int64_t tw_risk_position(const struct tw_risk *r, uint16_t locate);
/* After a restart, what the journal says was there before: a position, and open orders
 * (added as they are, without the checks: they are already at the venue). */
int tw_risk_seed_position(struct tw_risk *r, uint16_t locate, int64_t position);
int tw_risk_seed_order(struct tw_risk *r, const struct tw_order_intent *o);
/* The UserRefNums of our open orders (of one instrument, or all with locate 0; of one strategy,
 * or all with TW_RISK_ANY), up to max: what a kill switch cancels. */
uint32_t tw_risk_open_orders(const struct tw_risk *r, uint16_t locate, uint8_t strategy, uint64_t *refs,
                             uint32_t max);
/* The strategy slot an open order was checked for (TW_RISK_ANY: none), or -1 when it is not open. */
int tw_risk_order_strategy(const struct tw_risk *r, uint64_t user_ref);
void tw_risk_stats(const struct tw_risk *r, struct tw_risk_stats *out);
/* Run the chain over n intents (each passing one is then closed at once, as if
 * canceled): the benchmark's loop, kept in C so the figure is the chain's. */
uint64_t tw_risk_check_many(struct tw_risk *r, struct tw_books *b, const struct tw_order_intent *o,
                            uint32_t n, uint64_t now_ns);

#endif
