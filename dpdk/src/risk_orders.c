/* risk_orders.c — what the risk checks count: our own open orders (by UserRefNum, with their
 * strategy), each instrument's position, open quantity and exposure, our best resting price on
 * each side (the self-match check), and the gross exposure. Orders open when the chain passes
 * them (or a restart seeds them) and close on the exchange's answers. See risk.h. */
#include "order_entry.h"
#include "risk_state.h"

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

static void update_exposure(struct tw_risk *r, struct instrument_risk *in)
{
    uint64_t e = exposure(in->position, in->open_qty[0], in->open_qty[1]);
    r->gross = r->gross - in->exposure + e;
    in->exposure = e;
}

void tw_risk_open_order(struct tw_risk *r, const struct tw_order_intent *o)
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

int tw_risk_seed_position(struct tw_risk *r, uint16_t locate, int64_t position)
{
    if (locate == 0 || locate > r->max_locate)
        return -1;
    struct instrument_risk *in = &r->ins[locate];
    in->position = position;
    update_exposure(r, in);
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

int64_t tw_risk_order_open(const struct tw_risk *r, uint64_t user_ref)
{
    const struct own_order *o = user_ref ? own_find((struct tw_risk *)r, user_ref) : NULL;
    return o ? (int64_t)o->open : -1;
}

/* ---- the venue's answers checked and applied (order_entry.h) -------------------------------- */

static int is_sell(uint8_t side) /* OUCH's sell sides: S, T short, E short exempt */
{
    return side == 'S' || side == 'T' || side == 'E';
}

/* Accepted: once, for the order as we sent it (its shares all open: fills come after it). A seeded
 * order's Accepted may still come after a restart, once. */
static int on_accepted(struct own_order *o, const struct tw_ouch_msg *m)
{
    if (o->flags == OWN_ACCEPTED)
        return TW_BAD_ACCEPTED_TWICE;
    int seeded = o->flags & OWN_SEEDED;
    o->flags = OWN_ACCEPTED;
    if (is_sell(m->side) != o->side || m->price != o->price || (!seeded && m->qty != o->open))
        return TW_BAD_ACCEPT_MISMATCH;
    return 0;
}

/* Executed: every share the venue says traded counts in the position (the venue's book is the
 * truth a restart and the OMS go by); more than is open, or through the limit, cannot be. */
static int on_executed(struct tw_risk *r, struct own_order *o, const struct tw_ouch_msg *m)
{
    int bad = !(o->flags & (OWN_ACCEPTED | OWN_SEEDED)) ? TW_BAD_NOT_ACCEPTED
              : m->qty > o->open         ? TW_BAD_OVERFILL
              : (o->side == 0 ? m->price > o->price : m->price < o->price) ? TW_BAD_FILL_PRICE
                                                                             : 0;
    struct instrument_risk *in = &r->ins[o->locate];
    uint32_t take = m->qty < o->open ? m->qty : o->open;
    in->position += o->side == 0 ? (int64_t)m->qty : -(int64_t)m->qty;
    in->open_qty[o->side] -= take;
    o->open -= take;
    update_exposure(r, in);
    if (o->open == 0)
        close_order(r, o);
    return bad;
}

/* Canceled: the decrement leaves the rest open (OUCH 5.0's Order Canceled carries it). */
static int on_canceled(struct tw_risk *r, struct own_order *o, const struct tw_ouch_msg *m)
{
    int bad = !(o->flags & (OWN_ACCEPTED | OWN_SEEDED)) ? TW_BAD_NOT_ACCEPTED
              : m->qty == 0 || m->qty > o->open ? TW_BAD_CANCEL_SIZE
                                                 : 0;
    if (m->qty >= o->open) {
        close_order(r, o);
        return bad;
    }
    struct instrument_risk *in = &r->ins[o->locate];
    in->open_qty[o->side] -= m->qty;
    o->open -= m->qty;
    update_exposure(r, in);
    return bad;
}

int tw_risk_answer(struct tw_risk *r, const struct tw_ouch_msg *m)
{
    struct own_order *o = NULL;
    switch (m->type) {
    case 'A':
    case 'E':
    case 'C':
    case 'J':
        if (!m->user_ref || !(o = own_find(r, m->user_ref)))
            return TW_BAD_UNKNOWN_ORDER;
        break;
    case 'U': /* a Replaced names the order it replaces; neither is ours to expect */
    case 'M':
        return TW_BAD_UNASKED_CHANGE;
    case 'B':
    case 'F':
        return TW_BAD_UNACCOUNTED;
    default: /* S system event, P cancel pending, I cancel reject (an order filled before our cancel), ... */
        return 0;
    }
    switch (m->type) {
    case 'A':
        return on_accepted(o, m);
    case 'E':
        return on_executed(r, o, m);
    case 'C':
        return on_canceled(r, o, m);
    default: { /* 'J': the Enter refused */
        int bad = o->flags == OWN_ACCEPTED ? TW_BAD_REJECT_ACCEPTED : 0;
        close_order(r, o);
        return bad;
    }
    }
}
