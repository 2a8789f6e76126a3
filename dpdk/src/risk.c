/* risk.c — inline pre-trade risk: the checks every order passes before it
 * leaves, one small function per check (check_<code>), run by chain() in the
 * fixed order of enum tw_risk_denial; the first denial wins and says which limit
 * and which value. The positions and own orders they read are risk_orders.c's,
 * the rate buckets risk_state.h's. See risk.h.
 *
 * Adding a check: a code in enum tw_risk_denial (risk.h, before TW_RISK_NCODES),
 * its limit in struct tw_risk_limits (and tw_risk_limits_merge), a check_<code>
 * here, its place in chain() and its limit's name in denial_limit[].
 *
 * The limits table (global limits and a row per strategy) is written by Python
 * (any thread) under a sequence counter and copied by the checking thread when
 * the counter moved: the checks always use one whole table, never half of two.
 * A strategy's order is checked against the stricter of global and its row
 * (worked out once per table), and counts in its row's open orders and rate
 * buckets as well as in the global ones.
 */
#include <stdlib.h>
#include <string.h>

#include "risk_state.h"

_Static_assert(TW_RISK_NCODES <= sizeof(((struct tw_risk_stats *)0)->denied) / sizeof(uint64_t),
               "tw_risk_stats.denied has a counter for each denial code");

struct tw_risk *tw_risk_create(uint32_t max_locate, uint32_t max_own_orders)
{
    if (max_own_orders == 0)
        return NULL;
    struct tw_risk *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    uint64_t size = 1;
    while (size < (uint64_t)max_own_orders * 2)
        size <<= 1;
    r->ins = calloc((size_t)max_locate + 1, sizeof(*r->ins));
    r->own = calloc(size, sizeof(*r->own));
    if (!r->ins || !r->own) {
        tw_risk_destroy(r);
        return NULL;
    }
    tw_prefault(r->ins, ((size_t)max_locate + 1) * sizeof(*r->ins)); /* no page fault on the order path */
    tw_prefault(r->own, size * sizeof(*r->own));
    r->own_mask = size - 1;
    r->capacity = max_own_orders;
    r->max_locate = max_locate;
    r->lim.state = TW_TRADING_HALTED; /* nothing trades before Python has published limits */
    r->lim.kill = 1;
    return r;
}

void tw_risk_destroy(struct tw_risk *r)
{
    if (!r)
        return;
    free(r->ins);
    free(r->own);
    free(r);
}

void tw_risk_set_table(struct tw_risk *r, const struct tw_risk_table *table)
{
    tw_publish(&r->pub, &r->shared, table, sizeof(*table));
}

void tw_risk_set_limits(struct tw_risk *r, const struct tw_risk_limits *limits)
{
    struct tw_risk_table t;
    memset(&t, 0, sizeof(t));
    t.global = *limits;
    tw_risk_set_table(r, &t);
}

static inline uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* 0 means "none" for a rate or a collar: any limit is stricter than none. */
static inline uint32_t stricter_limit(uint32_t a, uint32_t b) { return !a ? b : (!b ? a : (a < b ? a : b)); }

void tw_risk_limits_merge(struct tw_risk_limits *out, const struct tw_risk_limits *g, const struct tw_risk_limits *row)
{
    *out = *row;
    out->state = g->state > row->state ? g->state : row->state; /* active < reduce-only < halted */
    out->kill = g->kill || row->kill;
    out->max_order_qty = (uint32_t)min64(g->max_order_qty, row->max_order_qty);
    out->max_order_notional = min64(g->max_order_notional, row->max_order_notional);
    out->max_position = min64(g->max_position, row->max_position);
    out->max_gross = min64(g->max_gross, row->max_gross);
    out->max_open_orders = (uint32_t)min64(g->max_open_orders, row->max_open_orders);
    out->collar_bps = stricter_limit(g->collar_bps, row->collar_bps);
    out->order_rate = stricter_limit(g->order_rate, row->order_rate);
    out->order_burst = !row->order_rate ? g->order_burst : (!g->order_rate ? row->order_burst
                        : (uint32_t)min64(g->order_burst, row->order_burst));
    out->message_rate = stricter_limit(g->message_rate, row->message_rate);
    out->message_burst = !row->message_rate ? g->message_burst : (!g->message_rate ? row->message_burst
                          : (uint32_t)min64(g->message_burst, row->message_burst));
    /* 0: any quantity; else the larger lot is the stricter */
    out->round_lot_qty = g->round_lot_qty > row->round_lot_qty ? g->round_lot_qty : row->round_lot_qty;
}

/* Take the published table when it changed (cheap when it did not). */
static inline void reload(struct tw_risk *r)
{
    if (!tw_take(&r->pub, &r->version, &r->shared, &r->taken, &r->scratch, sizeof(r->taken)))
        return;
    r->lim = r->taken.global;
    r->nrows = r->taken.nrows > TW_RISK_MAX_ROWS ? TW_RISK_MAX_ROWS : r->taken.nrows;
    for (uint32_t i = 0; i < r->nrows; i++)
        tw_risk_limits_merge(&r->eff[i], &r->lim, &r->taken.rows[i]);
    r->st.limits_version = r->version / 2;
}

void tw_risk_set_events(struct tw_risk *r, const struct tw_event_sink *sink)
{
    r->events = sink;
}

void tw_risk_kill_all(struct tw_risk *r, uint8_t kill)
{
    __atomic_store_n(&r->kill_all, kill ? 1 : 0, __ATOMIC_RELEASE);
}

int tw_risk_kill_instrument(struct tw_risk *r, uint16_t locate, uint8_t kill)
{
    if (locate > r->max_locate)
        return -1;
    __atomic_store_n(&r->ins[locate].killed, kill ? 1 : 0, __ATOMIC_RELEASE);
    return 0;
}

int tw_risk_kill_strategy(struct tw_risk *r, uint8_t strategy, uint8_t kill)
{
    if (strategy >= TW_RISK_MAX_ROWS)
        return -1;
    __atomic_store_n(&r->rows[strategy].killed, kill ? 1 : 0, __ATOMIC_RELEASE);
    return 0;
}

/* ---- the checks ------------------------------------------------------------------------------
 * One function per enum tw_risk_denial, named for its code and run in its order by chain(): 0 when
 * the order passes, else the code, with d->limit the limit it broke and d->value the order's
 * offending value, both in the limit's own units (tw_risk_denial_limit(code) names the limit). A
 * check runs only when every one before it passed: from check_killed on, the order is well formed
 * (its locate in range, so ins() may be taken). */

struct order_check {                 /* what the checks look at */
    struct tw_risk *r;
    struct tw_books *b;
    const struct tw_order_intent *o;
    const struct tw_risk_limits *l;  /* the limits it trades under: its row (merged with global), or global */
    const struct tw_risk_limits *rl; /* its row, NULL: none (an order of no strategy, or no row for it) */
    struct row_state *row;           /* what its strategy's orders count in, NULL: none */
    uint8_t side;                    /* 0 buy, 1 sell */
    int stale;
    uint64_t now;
};

struct denial {
    uint64_t limit;
    uint64_t value;
};

static inline struct instrument_risk *ins(const struct order_check *c) { return &c->r->ins[c->o->locate]; }

/* What the checks look at for an order (o NULL: a cancel, which only the message rate looks at)
 * of a strategy's slot. */
static inline struct order_check checking(struct tw_risk *r, struct tw_books *b, const struct tw_order_intent *o,
                                          uint8_t strategy, int stale, uint64_t now)
{
    const struct tw_risk_limits *rl = row_limits(r, strategy);
    return (struct order_check){ .r = r, .b = b, .o = o, .l = rl ? rl : &r->lim, .rl = rl,
                                 .row = row_of(r, strategy), .side = o && o->side == 'S', .stale = stale,
                                 .now = now };
}

/* It goes: a token from the worker's bucket and from its row's (when it has one). */
static inline void spend_order(const struct order_check *c)
{
    spend(&c->r->orders, c->r->lim.order_rate);
    if (c->rl)
        spend(&c->row->orders, c->rl->order_rate);
}

static inline void spend_message(const struct order_check *c)
{
    spend(&c->r->messages, c->r->lim.message_rate);
    if (c->rl)
        spend(&c->row->messages, c->rl->message_rate);
}

static inline int deny(struct denial *d, int code, uint64_t limit, uint64_t value)
{
    d->limit = limit;
    d->value = value;
    return code;
}

/* |position| with this order and the open ones on both sides, whichever way they fill */
static inline uint64_t exposure_with(const struct order_check *c)
{
    const struct instrument_risk *in = ins(c);
    return exposure(in->position, in->open_qty[0] + (c->side == 0 ? c->o->qty : 0),
                    in->open_qty[1] + (c->side == 1 ? c->o->qty : 0));
}

/* how far price is from ref, in basis points rounded up (so a denied order's is above the collar) */
static inline uint64_t bps_from(uint64_t price, uint64_t ref)
{
    uint64_t diff = price > ref ? price - ref : ref - price;
    return (diff * 10000 + ref - 1) / ref;
}

static inline int check_bad_order(const struct order_check *c, struct denial *d)
{
    const struct tw_order_intent *o = c->o;
    if (o->qty == 0 || o->price == 0 || (o->side != 'B' && o->side != 'S') || o->locate == 0 ||
        o->locate > c->r->max_locate || o->user_ref == 0 || own_find(c->r, o->user_ref))
        return deny(d, TW_RISK_BAD_ORDER, 0, 0);
    return 0;
}

static inline int check_killed(const struct order_check *c, struct denial *d)
{
    if (c->l->kill || __atomic_load_n(&c->r->kill_all, __ATOMIC_ACQUIRE) ||
        __atomic_load_n(&ins(c)->killed, __ATOMIC_ACQUIRE) ||
        (c->row && __atomic_load_n(&c->row->killed, __ATOMIC_ACQUIRE)))
        return deny(d, TW_RISK_KILLED, 1, 0);
    return 0;
}

static inline int check_halted(const struct order_check *c, struct denial *d)
{
    return c->l->state == TW_TRADING_HALTED ? deny(d, TW_RISK_HALTED, c->l->state, 0) : 0;
}

/* reduce-only: the order (with the open ones on its side) must shrink the position, not grow or flip it */
static inline int check_reduce_only(const struct order_check *c, struct denial *d)
{
    if (c->l->state != TW_TRADING_REDUCE_ONLY)
        return 0;
    const struct instrument_risk *in = ins(c);
    int64_t after = c->side == 0 ? in->position + (int64_t)(in->open_qty[0] + c->o->qty)
                                 : in->position - (int64_t)(in->open_qty[1] + c->o->qty);
    if (c->side == 0 ? (in->position >= 0 || after > 0) : (in->position <= 0 || after < 0))
        return deny(d, TW_RISK_REDUCE_ONLY, c->l->state, 0);
    return 0;
}

static inline int check_not_trading(const struct order_check *c, struct denial *d)
{
    return c->stale || !tw_books_tradable(c->b, c->o->locate) ? deny(d, TW_RISK_NOT_TRADING, 0, 0) : 0;
}

static inline int check_max_qty(const struct order_check *c, struct denial *d)
{
    return c->o->qty > c->l->max_order_qty ? deny(d, TW_RISK_MAX_QTY, c->l->max_order_qty, c->o->qty) : 0;
}

static inline int check_max_notional(const struct order_check *c, struct denial *d)
{
    uint64_t notional = (uint64_t)c->o->price * c->o->qty;
    return notional > c->l->max_order_notional ? deny(d, TW_RISK_MAX_NOTIONAL, c->l->max_order_notional, notional) : 0;
}

static inline int check_max_position(const struct order_check *c, struct denial *d)
{
    uint64_t e = exposure_with(c);
    return e > c->l->max_position ? deny(d, TW_RISK_MAX_POSITION, c->l->max_position, e) : 0;
}

static inline int check_max_gross(const struct order_check *c, struct denial *d)
{
    uint64_t gross = c->r->gross - ins(c)->exposure + exposure_with(c);
    return gross > c->l->max_gross ? deny(d, TW_RISK_MAX_GROSS, c->l->max_gross, gross) : 0;
}

/* the far touch (the near one when that side is empty): a buy no more than collar_bps above it, a
 * sell no more than collar_bps below; no touch at all is a denial (value 0) */
static inline int check_collar_bbo(const struct order_check *c, struct denial *d)
{
    uint32_t collar = c->l->collar_bps;
    if (!collar)
        return 0;
    struct tw_book_level far, near;
    int has_far = tw_books_depth(c->b, c->o->locate, c->side ^ 1, &far, 1) == 1;
    int has_near = tw_books_depth(c->b, c->o->locate, c->side, &near, 1) == 1;
    if (!has_far && !has_near)
        return deny(d, TW_RISK_COLLAR_BBO, collar, 0);
    uint64_t ref = has_far ? far.price : near.price;
    uint64_t slack = ref * collar / 10000;
    if (c->side == 0 ? c->o->price > ref + slack : c->o->price + slack < ref)
        return deny(d, TW_RISK_COLLAR_BBO, collar, bps_from(c->o->price, ref));
    return 0;
}

static inline int check_collar_last(const struct order_check *c, struct denial *d)
{
    uint32_t collar = c->l->collar_bps;
    if (!collar)
        return 0;
    struct tw_instrument state;
    tw_books_instrument(c->b, c->o->locate, &state); /* in range: tradable said so */
    uint64_t last = state.last_trade;
    if (!last)
        return 0;
    uint64_t diff = c->o->price > last ? c->o->price - last : last - c->o->price;
    return diff * 10000 > last * collar ? deny(d, TW_RISK_COLLAR_LAST, collar, bps_from(c->o->price, last)) : 0;
}

/* the worker's open orders, what the own-order table holds, and the strategy's */
static inline int check_max_open_orders(const struct order_check *c, struct denial *d)
{
    const struct tw_risk *r = c->r;
    if (r->open_count + 1 > r->lim.max_open_orders)
        return deny(d, TW_RISK_MAX_OPEN_ORDERS, r->lim.max_open_orders, r->open_count + 1);
    if (r->open_count + 1 > r->capacity)
        return deny(d, TW_RISK_MAX_OPEN_ORDERS, r->capacity, r->open_count + 1);
    if (c->rl && c->row->open + 1 > c->rl->max_open_orders)
        return deny(d, TW_RISK_MAX_OPEN_ORDERS, c->rl->max_open_orders, c->row->open + 1);
    return 0;
}

/* a token in the worker's bucket and in the strategy's; value 0: the bucket held less than one */
static inline int check_order_rate(const struct order_check *c, struct denial *d)
{
    struct tw_risk *r = c->r;
    if (!has_token(&r->orders, r->lim.order_rate, r->lim.order_burst, c->now))
        return deny(d, TW_RISK_ORDER_RATE, r->lim.order_rate, 0);
    if (c->rl && !has_token(&c->row->orders, c->rl->order_rate, c->rl->order_burst, c->now))
        return deny(d, TW_RISK_ORDER_RATE, c->rl->order_rate, 0);
    return 0;
}

static inline int check_message_rate(const struct order_check *c, struct denial *d)
{
    struct tw_risk *r = c->r;
    if (!has_token(&r->messages, r->lim.message_rate, r->lim.message_burst, c->now))
        return deny(d, TW_RISK_MESSAGE_RATE, r->lim.message_rate, 0);
    if (c->rl && !has_token(&c->row->messages, c->rl->message_rate, c->rl->message_burst, c->now))
        return deny(d, TW_RISK_MESSAGE_RATE, c->rl->message_rate, 0);
    return 0;
}

/* it would trade against our own best resting order on the other side (limit: that order's price) */
static inline int check_self_match(const struct order_check *c, struct denial *d)
{
    uint32_t theirs = ins(c)->own_best[c->side ^ 1];
    if (theirs && (c->side == 0 ? c->o->price >= theirs : c->o->price <= theirs))
        return deny(d, TW_RISK_SELF_MATCH, theirs, c->o->price);
    return 0;
}

/* round lots only: the quantity a whole number of round_lot_qty shares (0: any quantity) */
static inline int check_odd_lot(const struct order_check *c, struct denial *d)
{
    uint32_t lot = c->l->round_lot_qty;
    return lot && c->o->qty % lot ? deny(d, TW_RISK_ODD_LOT, lot, c->o->qty) : 0;
}

/* The limit each code's check compares against (a field of struct tw_risk_limits), "" for none. */
static const char *const denial_limit[TW_RISK_NCODES] = {
    [TW_RISK_KILLED] = "kill",
    [TW_RISK_HALTED] = "state",
    [TW_RISK_REDUCE_ONLY] = "state",
    [TW_RISK_MAX_QTY] = "max_order_qty",
    [TW_RISK_MAX_NOTIONAL] = "max_order_notional",
    [TW_RISK_MAX_POSITION] = "max_position",
    [TW_RISK_MAX_GROSS] = "max_gross",
    [TW_RISK_COLLAR_BBO] = "collar_bps",
    [TW_RISK_COLLAR_LAST] = "collar_bps",
    [TW_RISK_MAX_OPEN_ORDERS] = "max_open_orders",
    [TW_RISK_ORDER_RATE] = "order_rate",
    [TW_RISK_MESSAGE_RATE] = "message_rate",
    [TW_RISK_ODD_LOT] = "round_lot_qty",
};

const char *tw_risk_denial_limit(uint32_t code)
{
    return code < TW_RISK_NCODES && denial_limit[code] ? denial_limit[code] : "";
}

/* ---- the chain ------------------------------------------------------------------------------ */

/* Every check, in the order of enum tw_risk_denial; the first denial wins. */
static int chain(const struct order_check *c, struct denial *d)
{
    int rc;
    if ((rc = check_bad_order(c, d)) || (rc = check_killed(c, d)) || (rc = check_halted(c, d)) ||
        (rc = check_reduce_only(c, d)) || (rc = check_not_trading(c, d)) || (rc = check_max_qty(c, d)) ||
        (rc = check_max_notional(c, d)) || (rc = check_max_position(c, d)) || (rc = check_max_gross(c, d)) ||
        (rc = check_collar_bbo(c, d)) || (rc = check_collar_last(c, d)) || (rc = check_max_open_orders(c, d)) ||
        (rc = check_order_rate(c, d)) || (rc = check_message_rate(c, d)) || (rc = check_self_match(c, d)) ||
        (rc = check_odd_lot(c, d)))
        return rc;
    return TW_RISK_OK;
}

int tw_risk_check(struct tw_risk *r, struct tw_books *b, int stale, const struct tw_order_intent *o, uint64_t now_ns)
{
    reload(r);
    r->st.checked++;
    const struct order_check c = checking(r, b, o, o->strategy, stale, now_ns);
    struct denial d;
    int rc = chain(&c, &d);
    if (rc) {
        r->st.denied[rc]++;
        struct tw_event ev = { .ts_ns = now_ns, .type = TW_EV_RISK_DENIED, .locate = o->locate, .code = (uint8_t)rc,
                               .a = o->user_ref, .b = o->qty, .strategy = o->strategy, .limit = d.limit,
                               .value = d.value };
        tw_raise(r->events, &ev);
        return rc;
    }
    spend_order(&c);
    spend_message(&c);
    tw_risk_open_order(r, o);
    r->st.passed++;
    return 0;
}

int tw_risk_seed_order(struct tw_risk *r, const struct tw_order_intent *o)
{
    reload(r); /* the table just published: what the rows hold */
    if (!o->user_ref || o->locate == 0 || o->locate > r->max_locate || (o->side != 'B' && o->side != 'S') ||
        r->open_count >= r->capacity || own_find(r, o->user_ref))
        return -1;
    tw_risk_open_order(r, o);
    own_find(r, o->user_ref)->flags = OWN_SEEDED; /* its Accepted may be behind it or still to come */
    return 0;
}

int tw_risk_message(struct tw_risk *r, uint8_t strategy, uint64_t now_ns)
{
    reload(r);
    const struct order_check c = checking(r, NULL, NULL, strategy, 0, now_ns); /* a cancel: its message only */
    struct denial d;
    if (check_message_rate(&c, &d))
        return TW_RISK_MESSAGE_RATE;
    spend_message(&c);
    return 0;
}

void tw_risk_stats(const struct tw_risk *r, struct tw_risk_stats *out)
{
    *out = r->st;
    out->open_orders = r->open_count;
    out->gross = r->gross;
}

uint64_t tw_risk_check_many(struct tw_risk *r, struct tw_books *b, const struct tw_order_intent *o, uint32_t n,
                            uint64_t now_ns)
{
    uint64_t passed = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (tw_risk_check(r, b, 0, &o[i], now_ns + i) == 0) {
            passed++;
            tw_risk_on_done(r, o[i].user_ref);
        }
    }
    return passed;
}
