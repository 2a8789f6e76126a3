/* risk.c — inline pre-trade risk: the checks every order passes before it
 * leaves, in the fixed order of enum tw_risk_denial, with the positions, open
 * orders and rate buckets they need. See risk.h.
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

#include "internal.h"
#include "risk.h"

#define NS_PER_S 1000000000ull

_Static_assert(TW_RISK_NCODES <= sizeof(((struct tw_risk_stats *)0)->denied) / sizeof(uint64_t),
               "tw_risk_stats.denied has a counter for each denial code");

struct own_order { /* one of our open orders; user_ref 0: empty slot */
    uint64_t user_ref;
    uint32_t open;  /* shares still open */
    uint32_t price;
    uint16_t locate;
    uint8_t side;   /* 0 buy, 1 sell */
    uint8_t strategy; /* its row, or TW_RISK_ANY */
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
    const struct tw_event_sink *events; /* denials; NULL: the books' sink */
};

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

/* ---- own orders ----------------------------------------------------------------------- */

uint32_t tw_risk_open_orders(const struct tw_risk *r, uint16_t locate, uint8_t strategy, uint64_t *refs,
                             uint32_t max)
{
    uint32_t n = 0;
    for (uint64_t i = 0; i <= r->own_mask && n < max; i++) {
        const struct own_order *o = &r->own[i];
        if (o->user_ref && (locate == 0 || o->locate == locate) && (strategy == TW_RISK_ANY || o->strategy == strategy))
            refs[n++] = o->user_ref;
    }
    return n;
}

static inline uint64_t ref_hash(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static struct own_order *own_find(struct tw_risk *r, uint64_t ref)
{
    for (uint64_t i = ref_hash(ref) & r->own_mask;; i = (i + 1) & r->own_mask) {
        if (r->own[i].user_ref == ref)
            return &r->own[i];
        if (r->own[i].user_ref == 0)
            return NULL;
    }
}

static void own_erase(struct tw_risk *r, struct own_order *o)
{
    uint64_t i = (uint64_t)(o - r->own), j = i;
    for (;;) {
        j = (j + 1) & r->own_mask;
        if (r->own[j].user_ref == 0)
            break;
        uint64_t home = ref_hash(r->own[j].user_ref) & r->own_mask;
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            r->own[i] = r->own[j];
            i = j;
        }
    }
    r->own[i].user_ref = 0;
}

static inline int better(uint8_t side, uint32_t a, uint32_t b) /* a better than b for our side */
{
    return side == 0 ? a > b : a < b;
}

static void rescan_best(struct tw_risk *r, uint16_t locate, uint8_t side)
{
    uint32_t best = 0;
    for (uint64_t i = 0; i <= r->own_mask; i++) {
        const struct own_order *o = &r->own[i];
        if (o->user_ref && o->locate == locate && o->side == side && (!best || better(side, o->price, best)))
            best = o->price;
    }
    r->ins[locate].own_best[side] = best;
}

static inline uint64_t exposure(int64_t pos, uint64_t open_buy, uint64_t open_sell)
{
    int64_t up = pos + (int64_t)open_buy, down = pos - (int64_t)open_sell;
    uint64_t a = (uint64_t)(up < 0 ? -up : up), b = (uint64_t)(down < 0 ? -down : down);
    return a > b ? a : b;
}

static void update_exposure(struct tw_risk *r, struct instrument_risk *in)
{
    uint64_t e = exposure(in->position, in->open_qty[0], in->open_qty[1]);
    r->gross = r->gross - in->exposure + e;
    in->exposure = e;
}

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

/* ---- the chain ------------------------------------------------------------------------------ */

static int chain(struct tw_risk *r, struct tw_books *b, int stale, const struct tw_order_intent *o, uint64_t now)
{
    struct row_state *row = row_of(r, o->strategy);
    const struct tw_risk_limits *rl = row_limits(r, o->strategy);
    const struct tw_risk_limits *l = rl ? rl : &r->lim;
    if (o->qty == 0 || o->price == 0 || (o->side != 'B' && o->side != 'S') || o->locate == 0 ||
        o->locate > r->max_locate || o->user_ref == 0 || own_find(r, o->user_ref))
        return TW_RISK_BAD_ORDER;
    struct instrument_risk *in = &r->ins[o->locate];
    uint8_t side = o->side == 'S';
    if (l->kill || __atomic_load_n(&r->kill_all, __ATOMIC_ACQUIRE) || __atomic_load_n(&in->killed, __ATOMIC_ACQUIRE) ||
        (row && __atomic_load_n(&row->killed, __ATOMIC_ACQUIRE)))
        return TW_RISK_KILLED;
    if (l->state == TW_TRADING_HALTED)
        return TW_RISK_HALTED;
    if (l->state == TW_TRADING_REDUCE_ONLY) {
        int64_t after = side == 0 ? in->position + (int64_t)(in->open_qty[0] + o->qty)
                                  : in->position - (int64_t)(in->open_qty[1] + o->qty);
        if (side == 0 ? (in->position >= 0 || after > 0) : (in->position <= 0 || after < 0))
            return TW_RISK_REDUCE_ONLY;
    }
    if (stale || !tw_books_tradable(b, o->locate))
        return TW_RISK_NOT_TRADING;
    if (o->qty > l->max_order_qty)
        return TW_RISK_MAX_QTY;
    if ((uint64_t)o->price * o->qty > l->max_order_notional)
        return TW_RISK_MAX_NOTIONAL;
    uint64_t open_buy = in->open_qty[0] + (side == 0 ? o->qty : 0);
    uint64_t open_sell = in->open_qty[1] + (side == 1 ? o->qty : 0);
    uint64_t e = exposure(in->position, open_buy, open_sell);
    if (e > l->max_position)
        return TW_RISK_MAX_POSITION;
    if (r->gross - in->exposure + e > l->max_gross)
        return TW_RISK_MAX_GROSS;
    if (l->collar_bps) {
        struct tw_book_level far, near;
        int has_far = tw_books_depth(b, o->locate, side ^ 1, &far, 1) == 1;
        int has_near = tw_books_depth(b, o->locate, side, &near, 1) == 1;
        if (!has_far && !has_near)
            return TW_RISK_COLLAR_BBO;
        uint64_t ref = has_far ? far.price : near.price;
        uint64_t slack = ref * l->collar_bps / 10000;
        if (side == 0 ? o->price > ref + slack : o->price + slack < ref)
            return TW_RISK_COLLAR_BBO;
        struct tw_instrument state;
        tw_books_instrument(b, o->locate, &state); /* in range: tradable said so */
        if (state.last_trade) {
            uint64_t last = state.last_trade;
            uint64_t diff = o->price > last ? o->price - last : last - o->price;
            if (diff * 10000 > last * l->collar_bps)
                return TW_RISK_COLLAR_LAST;
        }
    }
    if (r->open_count + 1 > r->lim.max_open_orders || r->open_count + 1 > r->capacity ||
        (rl && row->open + 1 > rl->max_open_orders))
        return TW_RISK_MAX_OPEN_ORDERS; /* the worker's, the strategy's, or what the own-order table holds */
    if (!has_token(&r->orders, r->lim.order_rate, r->lim.order_burst, now) ||
        (rl && !has_token(&row->orders, rl->order_rate, rl->order_burst, now)))
        return TW_RISK_ORDER_RATE;
    if (!has_token(&r->messages, r->lim.message_rate, r->lim.message_burst, now) ||
        (rl && !has_token(&row->messages, rl->message_rate, rl->message_burst, now)))
        return TW_RISK_MESSAGE_RATE;
    uint32_t theirs = in->own_best[side ^ 1]; /* our own best on the other side */
    if (theirs && (side == 0 ? o->price >= theirs : o->price <= theirs))
        return TW_RISK_SELF_MATCH;
    return TW_RISK_OK;
}

static void open_order(struct tw_risk *r, const struct tw_order_intent *o);

int tw_risk_check(struct tw_risk *r, struct tw_books *b, int stale, const struct tw_order_intent *o, uint64_t now_ns)
{
    reload(r);
    r->st.checked++;
    int rc = chain(r, b, stale, o, now_ns);
    if (rc) {
        r->st.denied[rc]++;
        struct tw_event ev = { .ts_ns = now_ns, .type = TW_EV_RISK_DENIED, .locate = o->locate, .code = (uint8_t)rc,
                               .a = o->user_ref, .b = o->qty, .strategy = o->strategy };
        if (r->events)
            tw_raise(r->events, &ev);
        else
            tw_books_raise(b, &ev); /* transitional: until every caller gives risk its sink */
        return rc;
    }
    /* it goes: spend its tokens, open it */
    spend(&r->orders, r->lim.order_rate);
    spend(&r->messages, r->lim.message_rate);
    const struct tw_risk_limits *rl = row_limits(r, o->strategy);
    if (rl) {
        spend(&r->rows[o->strategy].orders, rl->order_rate);
        spend(&r->rows[o->strategy].messages, rl->message_rate);
    }
    open_order(r, o);
    r->st.passed++;
    return 0;
}

static void open_order(struct tw_risk *r, const struct tw_order_intent *o)
{
    uint8_t side = o->side == 'S';
    struct own_order *slot = NULL;
    for (uint64_t i = ref_hash(o->user_ref) & r->own_mask;; i = (i + 1) & r->own_mask) {
        if (r->own[i].user_ref == 0) {
            slot = &r->own[i];
            break;
        }
    }
    struct row_state *row = row_of(r, o->strategy);
    *slot = (struct own_order){ .user_ref = o->user_ref, .open = o->qty, .price = o->price, .locate = o->locate,
                                .side = side, .strategy = row ? o->strategy : TW_RISK_ANY };
    if (row)
        row->open++;
    struct instrument_risk *in = &r->ins[o->locate];
    in->open_qty[side] += o->qty;
    in->own_count[side]++;
    if (!in->own_best[side] || better(side, o->price, in->own_best[side]))
        in->own_best[side] = o->price;
    update_exposure(r, in);
    r->open_count++;
}

int tw_risk_seed_order(struct tw_risk *r, const struct tw_order_intent *o)
{
    reload(r); /* the table just published: what the rows hold */
    if (!o->user_ref || o->locate == 0 || o->locate > r->max_locate || (o->side != 'B' && o->side != 'S') ||
        r->open_count >= r->capacity || own_find(r, o->user_ref))
        return -1;
    open_order(r, o);
    return 0;
}

int tw_risk_seed_position(struct tw_risk *r, uint16_t locate, int64_t position)
{
    if (locate == 0 || locate > r->max_locate)
        return -1;
    struct instrument_risk *in = &r->ins[locate];
    in->position = position;
    update_exposure(r, in);
    return 0;
}

int tw_risk_message(struct tw_risk *r, uint8_t strategy, uint64_t now_ns)
{
    reload(r);
    const struct tw_risk_limits *rl = row_limits(r, strategy);
    if (!has_token(&r->messages, r->lim.message_rate, r->lim.message_burst, now_ns) ||
        (rl && !has_token(&r->rows[strategy].messages, rl->message_rate, rl->message_burst, now_ns)))
        return TW_RISK_MESSAGE_RATE;
    spend(&r->messages, r->lim.message_rate);
    if (rl)
        spend(&r->rows[strategy].messages, rl->message_rate);
    return 0;
}

static void close_order(struct tw_risk *r, struct own_order *o)
{
    struct instrument_risk *in = &r->ins[o->locate];
    uint8_t side = o->side;
    uint32_t price = o->price;
    in->open_qty[side] -= o->open;
    in->own_count[side]--;
    uint16_t locate = o->locate;
    if (o->strategy < TW_RISK_MAX_ROWS && r->rows[o->strategy].open)
        r->rows[o->strategy].open--;
    own_erase(r, o);
    r->open_count--;
    if (in->own_count[side] == 0)
        in->own_best[side] = 0;
    else if (price == in->own_best[side])
        rescan_best(r, locate, side);
    update_exposure(r, in);
}

int tw_risk_on_execution(struct tw_risk *r, uint64_t user_ref, uint32_t qty)
{
    struct own_order *o = user_ref ? own_find(r, user_ref) : NULL;
    if (!o)
        return -1;
    if (qty > o->open)
        qty = o->open;
    struct instrument_risk *in = &r->ins[o->locate];
    in->position += o->side == 0 ? (int64_t)qty : -(int64_t)qty;
    in->open_qty[o->side] -= qty;
    o->open -= qty;
    update_exposure(r, in);
    if (o->open == 0) {
        o->open = 0;
        close_order(r, o);
    }
    return 0;
}

int tw_risk_on_done(struct tw_risk *r, uint64_t user_ref)
{
    struct own_order *o = user_ref ? own_find(r, user_ref) : NULL;
    if (!o)
        return -1;
    close_order(r, o);
    return 0;
}

int tw_risk_order_strategy(const struct tw_risk *r, uint64_t user_ref)
{
    const struct own_order *o = user_ref ? own_find((struct tw_risk *)r, user_ref) : NULL;
    return o ? o->strategy : -1;
}

int64_t tw_risk_position(const struct tw_risk *r, uint16_t locate)
{
    return locate <= r->max_locate ? r->ins[locate].position : 0;
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
