/* strategy.c — strategies in C behind one interface (book update, own order
 * event, timer): a market maker quoting around the micro-price with inventory
 * skew, and a taker crossing on book imbalance. They answer with actions; the
 * worker runs each NEW through the risk chain before it leaves. See strategy.h.
 *
 * The dispatcher, not the strategy, looks at staleness and trading state: a
 * strategy is only called with a book that is current and an instrument that
 * trades; otherwise its quotes are pulled.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "strategy.h"

#define MAX_OWN 256   /* orders in flight: a ladder of up to 64 quotes a side, and their replacements */
#define MAX_LEVELS 64

struct own { /* an order of ours not yet done */
    uint64_t ref;
    uint32_t price;
    uint32_t open;
    uint8_t side; /* 0 buy, 1 sell */
    uint8_t quote; /* 1: the market maker's standing quote on that side */
    uint8_t level; /* which of the side's quotes: 0 nearest the fair price */
};

struct tw_strategy {
    struct tw_published pub;
    struct tw_strategy_params shared;
    uint64_t version;
    struct tw_strategy_params scratch;
    struct tw_strategy_params p;
    uint64_t refs;          /* its own counter of UserRefNums... */
    uint64_t *next_ref;     /* ...or the one it shares (tw_strategy_share_refs) */
    struct own own[MAX_OWN];
    uint64_t last_quote_ns[2][MAX_LEVELS];
    uint64_t last_take_ns;
    uint8_t halted;         /* tw_strategy_halt */
    struct tw_strategy_stats st;
};

struct tw_strategy *tw_strategy_create(uint64_t user_ref_base)
{
    if (user_ref_base > UINT32_MAX)
        return NULL; /* OUCH carries a UserRefNum in 4 bytes */
    struct tw_strategy *s = calloc(1, sizeof(*s));
    if (s) {
        s->refs = user_ref_base ? user_ref_base : 1;
        s->next_ref = &s->refs;
    }
    return s;
}

void tw_strategy_destroy(struct tw_strategy *s)
{
    free(s);
}

void tw_strategy_set_params(struct tw_strategy *s, const struct tw_strategy_params *p)
{
    tw_publish(&s->pub, &s->shared, p, sizeof(*p));
}

static void reload(struct tw_strategy *s)
{
    if (tw_take(&s->pub, &s->version, &s->shared, &s->p, &s->scratch, sizeof(s->p)))
        s->st.params_version = s->version / 2;
}

/* ---- actions and our own orders ---------------------------------------------------------- */

static void push(struct tw_actions *out, struct tw_strategy_action a)
{
    if (out->n < sizeof(out->a) / sizeof(out->a[0]))
        out->a[out->n++] = a;
}

static struct own *find_own(struct tw_strategy *s, uint64_t ref)
{
    for (int i = 0; i < MAX_OWN; i++)
        if (s->own[i].ref == ref && ref)
            return &s->own[i];
    return NULL;
}

static struct own *quote(struct tw_strategy *s, uint8_t side, uint8_t level)
{
    for (int i = 0; i < MAX_OWN; i++)
        if (s->own[i].ref && s->own[i].quote && s->own[i].side == side && s->own[i].level == level)
            return &s->own[i];
    return NULL;
}

static int new_order(struct tw_strategy *s, struct tw_actions *out, uint8_t side, uint32_t qty, uint32_t price,
                     int is_quote, int ioc, uint8_t level)
{
    struct own *slot = NULL;
    for (int i = 0; i < MAX_OWN && !slot; i++)
        if (!s->own[i].ref)
            slot = &s->own[i];
    if (!slot || out->n == sizeof(out->a) / sizeof(out->a[0]))
        return -1; /* too much in flight: wait for answers */
    if (*s->next_ref > UINT32_MAX)
        return -1; /* the day's UserRefNums are used up */
    uint64_t ref = (*s->next_ref)++;
    *slot = (struct own){ .ref = ref, .price = price, .open = qty, .side = side, .quote = (uint8_t)is_quote,
                          .level = level };
    push(out, (struct tw_strategy_action){ .user_ref = ref, .qty = qty, .price = price, .locate = (uint16_t)s->p.locate,
                                  .kind = TW_ACTION_NEW, .side = side ? 'S' : 'B', .ioc = (uint8_t)ioc });
    s->st.orders++;
    return 0;
}

/* Ask for the quote to go; it stops being our quote now (its answers still count). */
static void cancel(struct tw_strategy *s, struct tw_actions *out, struct own *o)
{
    push(out, (struct tw_strategy_action){ .user_ref = o->ref, .locate = (uint16_t)s->p.locate, .kind = TW_ACTION_CANCEL,
                                  .side = o->side ? 'S' : 'B' });
    o->quote = 0;
    s->st.cancels++;
}

/* Cancel the standing quotes, as many as one answer holds (the next update or timer does the rest). */
static void pull_quotes(struct tw_strategy *s, struct tw_actions *out)
{
    for (int i = 0; i < MAX_OWN && out->n < sizeof(out->a) / sizeof(out->a[0]); i++)
        if (s->own[i].ref && s->own[i].quote)
            cancel(s, out, &s->own[i]);
}

static uint32_t levels_of(const struct tw_strategy_params *p)
{
    return p->quote_levels == 0 ? 1 : (p->quote_levels > MAX_LEVELS ? MAX_LEVELS : p->quote_levels);
}

/* ---- the two strategies ------------------------------------------------------------------- */

static void market_maker(struct tw_strategy *s, struct tw_books *b, uint16_t locate, uint64_t now,
                         struct tw_actions *out)
{
    const struct tw_strategy_params *p = &s->p;
    int64_t micro = tw_books_micro_price(b, locate);
    uint32_t tick = p->tick ? p->tick : 1;
    if (micro < 0) { /* one side of the book is empty: no fair price */
        pull_quotes(s, out);
        return;
    }
    int64_t fair = micro - (int64_t)p->skew * s->st.position / 1000;
    int64_t bid = (fair - (int64_t)p->half_spread) / tick * tick;
    int64_t ask = (fair + (int64_t)p->half_spread + tick - 1) / tick * tick;
    if (ask <= bid)
        ask = bid + tick;
    int64_t best[2] = { bid, ask };
    uint32_t levels = levels_of(p);
    for (uint8_t level = 0; level < levels; level++) {
        for (uint8_t side = 0; side < 2; side++) {
            int64_t want = side == 0 ? best[0] - (int64_t)level * tick : best[1] + (int64_t)level * tick;
            struct own *q = quote(s, side, level);
            if (out->n + (q ? 2u : 1u) > sizeof(out->a) / sizeof(out->a[0]))
                return; /* the answer is full: the next update or timer goes on */
            int64_t size = (int64_t)p->quote_size * (level + 1); /* this quote and the nearer ones filled */
            int64_t after = s->st.position + (side == 0 ? size : -size);
            int allowed = want > 0 && (uint64_t)(after < 0 ? -after : after) <= p->max_position;
            if (!allowed) {
                if (q)
                    cancel(s, out, q);
                continue;
            }
            if (q) {
                int64_t moved = want - (int64_t)q->price;
                if ((moved < 0 ? -moved : moved) < (int64_t)p->min_move)
                    continue; /* close enough */
            }
            uint64_t *last = &s->last_quote_ns[side][level];
            if (*last && now - *last < p->refresh_ns)
                continue; /* throttled: the timer comes back to it */
            if (q)
                cancel(s, out, q);
            if (new_order(s, out, side, p->quote_size, (uint32_t)want, 1, 0, level) == 0)
                *last = now;
        }
    }
    for (int i = 0; i < MAX_OWN; i++) /* quotes of levels no longer wanted (the ladder got shorter) */
        if (s->own[i].ref && s->own[i].quote && s->own[i].level >= levels &&
            out->n < sizeof(out->a) / sizeof(out->a[0]))
            cancel(s, out, &s->own[i]);
}

static void taker(struct tw_strategy *s, struct tw_books *b, uint16_t locate, uint64_t now, struct tw_actions *out)
{
    const struct tw_strategy_params *p = &s->p;
    struct tw_book_level lv[8];
    uint32_t levels = p->levels ? (p->levels < 8 ? p->levels : 8) : 1;
    uint64_t size[2] = { 0, 0 };
    uint32_t touch[2] = { 0, 0 };
    for (uint8_t side = 0; side < 2; side++) {
        uint32_t n = tw_books_depth(b, locate, side, lv, levels);
        for (uint32_t i = 0; i < n; i++)
            size[side] += lv[i].shares;
        touch[side] = n ? lv[0].price : 0;
    }
    if (!touch[0] || !touch[1] || size[0] + size[1] == 0)
        return;
    if (s->last_take_ns && now - s->last_take_ns < p->cooldown_ns)
        return;
    int64_t imbalance = ((int64_t)size[0] - (int64_t)size[1]) * 10000 / (int64_t)(size[0] + size[1]);
    uint8_t side;
    if (imbalance >= (int64_t)p->imbalance_bps)
        side = 0; /* more bids than offers: buy before the price moves up */
    else if (-imbalance >= (int64_t)p->imbalance_bps)
        side = 1;
    else
        return;
    int64_t after = s->st.position + (side == 0 ? (int64_t)p->take_size : -(int64_t)p->take_size);
    if ((uint64_t)(after < 0 ? -after : after) > p->max_position)
        return;
    if (new_order(s, out, side, p->take_size, touch[side ^ 1], 0, 1, 0) == 0) /* at the far touch */
        s->last_take_ns = now;
}

/* ---- the interface ------------------------------------------------------------------------ */

static int tradable(struct tw_books *b, int stale, uint16_t locate)
{
    return !stale && tw_books_tradable(b, locate);
}

void tw_strategy_on_book(struct tw_strategy *s, struct tw_books *b, int stale, uint16_t locate, uint64_t now_ns,
                         struct tw_actions *out)
{
    out->n = 0;
    reload(s);
    if (s->p.kind == TW_STRATEGY_NONE || locate != s->p.locate)
        return;
    if (tw_books_market_closed(b)) { /* day orders end with the session: nothing more to send, not even cancels */
        s->st.skipped += s->p.enabled != 0;
        return;
    }
    if (!s->p.enabled || __atomic_load_n(&s->halted, __ATOMIC_ACQUIRE) || !tradable(b, stale, locate)) {
        s->st.skipped += s->p.enabled != 0;
        pull_quotes(s, out); /* a stale or halted book is never traded on */
        return;
    }
    s->st.book_updates++;
    if (s->p.kind == TW_STRATEGY_MARKET_MAKER)
        market_maker(s, b, locate, now_ns, out);
    else if (s->p.kind == TW_STRATEGY_TAKER)
        taker(s, b, locate, now_ns, out);
}

void tw_strategy_on_timer(struct tw_strategy *s, struct tw_books *b, int stale, uint64_t now_ns,
                          struct tw_actions *out)
{
    reload(s);
    if (s->p.kind == TW_STRATEGY_MARKET_MAKER) { /* quotes the throttle held back */
        tw_strategy_on_book(s, b, stale, (uint16_t)s->p.locate, now_ns, out);
    } else { /* no longer a market maker: its quotes must not stay behind */
        out->n = 0;
        pull_quotes(s, out);
    }
}

void tw_strategy_on_order(struct tw_strategy *s, uint64_t user_ref, uint32_t event, uint32_t qty, uint64_t now_ns,
                          struct tw_actions *out)
{
    out->n = 0;
    struct own *o = find_own(s, user_ref);
    if (!o)
        return;
    switch (event) {
    case TW_ORDER_EXECUTED:
        if (qty > o->open)
            qty = o->open;
        o->open -= qty;
        s->st.position += o->side == 0 ? (int64_t)qty : -(int64_t)qty;
        s->st.executions += qty;
        if (o->open == 0)
            memset(o, 0, sizeof(*o));
        break;
    case TW_ORDER_DONE:
    case TW_ORDER_DENIED:
        memset(o, 0, sizeof(*o)); /* a quote's side is free to quote again at the next update */
        break;
    default:
        break;
    }
}

void tw_strategy_stats(const struct tw_strategy *s, struct tw_strategy_stats *out)
{
    *out = s->st;
}

uint16_t tw_strategy_locate(struct tw_strategy *s)
{
    reload(s);
    return s->p.kind == TW_STRATEGY_NONE ? 0 : (uint16_t)s->p.locate;
}

void tw_strategy_halt(struct tw_strategy *s, uint8_t halt)
{
    __atomic_store_n(&s->halted, halt ? 1 : 0, __ATOMIC_RELEASE);
}

void tw_strategy_seed_position(struct tw_strategy *s, int64_t position)
{
    s->st.position = position;
}

void tw_strategy_forget_quotes(struct tw_strategy *s)
{
    for (int i = 0; i < MAX_OWN; i++)
        s->own[i].quote = 0;
}

void tw_strategy_share_refs(struct tw_strategy *s, struct tw_strategy *from)
{
    if (*s->next_ref > *from->next_ref)
        *from->next_ref = *s->next_ref; /* the series goes on from the later of the two */
    s->next_ref = from->next_ref;
}
