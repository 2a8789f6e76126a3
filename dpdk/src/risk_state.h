/* risk_state.h — what risk.c (the limits and the checks) and risk_orders.c (our own open
 * orders and positions) share: the risk object's layout and the small helpers the checks
 * inline. Not for Python (risk.h is the face). */
#ifndef TW_RISK_STATE_H
#define TW_RISK_STATE_H
#include <stdint.h>

#include "internal.h"
#include "risk.h"

#define NS_PER_S 1000000000ull

struct own_order { /* one of our open orders; user_ref 0: empty slot */
    uint64_t user_ref;
    uint32_t open;  /* shares still open */
    uint32_t price;
    uint16_t locate;
    uint8_t side;   /* 0 buy, 1 sell */
    uint8_t strategy; /* its row, or TW_RISK_ANY */
    uint8_t flags;  /* OWN_ACCEPTED, OWN_SEEDED (tw_risk_answer's checks) */
};

enum own_flags {
    OWN_ACCEPTED = 1, /* the venue said Accepted */
    OWN_SEEDED = 2,   /* a restart seeded it: whether the venue accepted it before is unknown */
};

struct instrument_risk {
    int64_t position;
    uint64_t open_qty[2];   /* by side */
    uint64_t exposure;      /* max(|position + open buys|, |position - open sells|) */
    uint32_t own_best[2];   /* our best open buy price, our best open sell price (0: none) */
    uint32_t own_count[2];
    uint8_t killed;
};

struct bucket {
    uint64_t tokens; /* token-nanoseconds: one token is NS_PER_S */
    uint64_t last_ns;
};

struct row_state { /* what one strategy's orders count against its row */
    uint64_t open;
    struct bucket orders, messages;
    uint8_t killed;         /* tw_risk_kill_strategy */
};

struct tw_risk {
    /* the table as Python publishes it */
    struct tw_published pub;
    struct tw_risk_table shared;
    /* the checking thread's copy */
    uint64_t version;
    struct tw_risk_table scratch, taken;
    struct tw_risk_limits lim;                  /* global */
    uint32_t nrows;
    struct tw_risk_limits eff[TW_RISK_MAX_ROWS]; /* each row, made at least as strict as global */
    struct row_state rows[TW_RISK_MAX_ROWS];
    struct instrument_risk *ins;
    uint32_t max_locate;
    struct own_order *own;
    uint64_t own_mask;
    uint64_t capacity;      /* open orders the own table takes (half its slots) */
    uint64_t open_count;
    uint64_t gross;
    uint8_t kill_all;       /* the kill switch, besides the table's flag */
    struct bucket orders, messages;
    struct tw_risk_stats st;
    const struct tw_event_sink *events; /* where denials go (tw_risk_set_events); NULL: nowhere */
};

/* What a strategy's orders count in (its open orders, its kill), whatever the table says; NULL for
 * an order of no strategy. */
static inline struct row_state *row_of(struct tw_risk *r, uint8_t strategy)
{
    return strategy < TW_RISK_MAX_ROWS ? &r->rows[strategy] : NULL;
}

/* The limits of a strategy's own row, or NULL when the table has none for it (global only). */
static inline const struct tw_risk_limits *row_limits(const struct tw_risk *r, uint8_t strategy)
{
    return strategy < r->nrows ? &r->eff[strategy] : NULL;
}

/* ---- own orders: an open-addressing table by UserRefNum (risk_orders.c keeps it) ------------ */

static inline uint64_t ref_hash(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static inline struct own_order *own_find(struct tw_risk *r, uint64_t ref)
{
    for (uint64_t i = ref_hash(ref) & r->own_mask;; i = (i + 1) & r->own_mask) {
        if (r->own[i].user_ref == ref)
            return &r->own[i];
        if (r->own[i].user_ref == 0)
            return NULL;
    }
}

static inline uint64_t exposure(int64_t pos, uint64_t open_buy, uint64_t open_sell)
{
    int64_t up = pos + (int64_t)open_buy, down = pos - (int64_t)open_sell;
    uint64_t a = (uint64_t)(up < 0 ? -up : up), b = (uint64_t)(down < 0 ? -down : down);
    return a > b ? a : b;
}

/* risk_orders.c: count a passed (or seeded) order as open */
void tw_risk_open_order(struct tw_risk *r, const struct tw_order_intent *o);

/* ---- rate buckets ------------------------------------------------------------------------- */

static inline void refill(struct bucket *k, uint32_t rate, uint32_t burst, uint64_t now)
{
    uint64_t cap = (uint64_t)burst * NS_PER_S;
    if (k->last_ns == 0) {
        k->tokens = cap; /* a bucket starts full */
    } else if (now > k->last_ns) {
        uint64_t add = (now - k->last_ns) * rate;
        k->tokens = cap - k->tokens < add ? cap : k->tokens + add;
    }
    if (k->tokens > cap)
        k->tokens = cap; /* the burst was lowered */
    k->last_ns = now;
}

static inline int has_token(struct bucket *k, uint32_t rate, uint32_t burst, uint64_t now)
{
    if (rate == 0)
        return 1; /* no limit */
    refill(k, rate, burst, now);
    return k->tokens >= NS_PER_S;
}

static inline void spend(struct bucket *k, uint32_t rate)
{
    if (rate)
        k->tokens -= NS_PER_S;
}

#endif
