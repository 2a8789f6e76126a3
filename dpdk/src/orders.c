/* orders.c — the order path: a book change asks the strategies that trade the
 * instrument; each new order passes the risk chain and goes into the venue's
 * corked buffer (venue.h), with the cancels; every decision of one packet leaves
 * in one send(). Each order sent carries its tick-to-trade stages. The venue's
 * answers move positions (risk) and reach the strategy that sent the order.
 * See orders.h.
 */
#include <stdlib.h>
#include <string.h>

#include "histogram.h"
#include "orders.h"
#include "strategy.h"

#define NONE TW_ORDERS_NONE

static void order_event(struct tw_orders *o, uint8_t code, uint64_t ref, uint64_t qty, uint64_t price, uint8_t side,
                        uint64_t ts, uint64_t seq, int strategy)
{
    struct tw_event ev = { .ts_ns = ts, .type = TW_EV_ORDER, .code = code, .a = ref, .b = qty, .price = price,
                           .side = side, .seq = seq, .strategy = strategy < 0 ? NONE : (uint8_t)strategy };
    tw_raise(o->events, &ev);
}

/* Which instruments the strategies trade, as their tables say now: the books watch them, and each
 * instrument's strategies are chained in slot order. Returns 0, or -1 (the books could not watch
 * one: a locate past max_locate), with nothing watched. */
static int watch_strategies(struct tw_orders *o)
{
    for (uint32_t i = 0; i < o->nstrat; i++)
        if (o->locate_of[i])
            tw_books_watch(o->books, o->locate_of[i], 0);
    memset(o->first_on, 0, 65536);
    for (uint32_t i = o->nstrat; i-- > 0;) { /* backwards: each instrument's chain in slot order */
        uint16_t loc = tw_strategy_locate(o->strategies[i]);
        o->locate_of[i] = loc;
        o->next_on[i] = NONE;
        if (loc == 0)
            continue; /* no instrument (kind none): only its timer runs */
        if (tw_books_watch(o->books, loc, 1) < 0) {
            for (uint32_t j = i; j < o->nstrat; j++) {
                if (j > i && o->locate_of[j])
                    tw_books_watch(o->books, o->locate_of[j], 0);
                o->locate_of[j] = 0;
            }
            memset(o->first_on, 0, 65536);
            return -1;
        }
        o->next_on[i] = o->first_on[loc] ? (uint8_t)(o->first_on[loc] - 1) : NONE;
        o->first_on[loc] = (uint8_t)(i + 1);
    }
    return 0;
}

int tw_orders_init(struct tw_orders *o, const struct tw_worker_config *c, struct tw_books *b,
                   struct tw_worker_stats *st, const struct tw_clock *clk, const struct tw_event_sink *events)
{
    o->strategies = c->strategies;
    o->nstrat = c->nstrategies;
    o->risk = c->risk;
    o->venue = (struct tw_venue){ &tw_session_venue, c->ouch };
    o->books = b;
    o->st = st;
    o->clock = clk;
    o->events = events;
    o->cancel_each = c->cancel_each;
    if (!(o->first_on = calloc(65536, 1)))
        return -1;
    if (watch_strategies(o) < 0) {
        free(o->first_on);
        o->first_on = NULL;
        return -1;
    }
    return 0;
}

void tw_orders_fini(struct tw_orders *o)
{
    for (uint32_t i = 0; i < o->nstrat; i++)
        if (o->locate_of[i])
            tw_books_watch(o->books, o->locate_of[i], 0);
    free(o->first_on);
    o->first_on = NULL;
}

/* An order that went out: its send and tick-to-trade figures, and its event with
 * every stage from the triggering packet's arrival stamp (tr NULL, or without a
 * stamp: a timer, a retransmission or the kill switch sent it, there is no packet
 * arrival to measure from). */
static void sent_order(struct tw_orders *o, const struct tw_pending *p, const struct tw_trigger *tr, uint64_t t_sent,
                       uint64_t now)
{
    const struct tw_strategy_action *a = &p->a;
    const struct tw_clock *clk = o->clock;
    uint64_t t_risk = p->t_risk;
    struct tw_worker_stats *st = o->st;
    st->orders_sent++;
    tw_hist_record(&st->hist[TW_STAGE_SEND], tw_clock_ns(clk, t_sent - t_risk));
    struct tw_event ev = { .ts_ns = now, .type = TW_EV_ORDER, .code = 'O', .locate = a->locate, .a = a->user_ref,
                           .b = a->qty, .price = a->price, .side = a->side, .strategy = p->slot };
    memcpy(ev.symbol, p->symbol, sizeof(ev.symbol));
    if (tr) {
        ev.line = tr->line;
        ev.seq = tr->seq;
    }
    if (tr && tr->t_wire) {
        uint64_t stage[TW_OS_N] = {
            [TW_OS_WIRE] = tr->t_rx - tr->t_wire,
            [TW_OS_QUEUE] = tw_clock_ns(clk, tr->t_dec_tsc - tr->t_rx_tsc),
            [TW_OS_APPLY] = tw_clock_ns(clk, tr->t_app_tsc - tr->t_dec_tsc),
            [TW_OS_DECIDE] = tw_clock_ns(clk, p->t_decided_tsc - tr->t_app_tsc),
            [TW_OS_RISK] = tw_clock_ns(clk, t_risk - p->t_decided_tsc),
            [TW_OS_SEND] = tw_clock_ns(clk, t_sent - t_risk),
        };
        uint64_t total = 0;
        for (int i = 0; i < TW_OS_N; i++) {
            ev.stage_ns[i] = stage[i] > UINT32_MAX ? UINT32_MAX : (uint32_t)stage[i];
            total += stage[i];
        }
        tw_hist_record(&st->hist[TW_STAGE_TICK_TO_TRADE], total);
        ev.ts_ns = tr->t_wire;
    }
    tw_raise(o->events, &ev);
}

/* Carry out strategy slot's actions: each new order through the risk chain (its row), then into
 * the venue's corked buffer with the cancels; send_pending() sends what every decision of the
 * packet (or of the timer's round) queued, in one send(). */
static void queue_actions(struct tw_orders *o, uint32_t slot, const struct tw_actions *acts, int stale, uint64_t now,
                          uint64_t t_decided_tsc)
{
    struct tw_strategy *s = o->strategies[slot];
    struct tw_worker_stats *st = o->st;
    struct tw_actions none;
    if (acts->n == 0)
        return;
    if (!o->corked) {
        tw_venue_cork(&o->venue);
        o->corked = 1;
    }
    for (uint32_t i = 0; i < acts->n; i++) {
        const struct tw_strategy_action *a = &acts->a[i];
        if (a->kind == TW_ACTION_CANCEL) {
            tw_risk_message(o->risk, (uint8_t)slot, now); /* counted; a cancel is never held back */
            if (tw_venue_cancel(&o->venue, (uint32_t)a->user_ref, 0, now) == 0) {
                st->cancels_sent++;
                order_event(o, 'X', a->user_ref, 0, 0, a->side, now, 0, (int)slot);
            } else {
                st->send_failed++;
            }
            continue;
        }
        struct tw_order_intent in = { .user_ref = a->user_ref, .qty = a->qty, .price = a->price,
                                      .locate = a->locate, .side = a->side, .strategy = (uint8_t)slot };
        uint64_t r0 = rte_rdtsc();
        int rc = tw_risk_check(o->risk, o->books, stale, &in, now);
        uint64_t r1 = rte_rdtsc();
        tw_hist_record(&st->hist[TW_STAGE_RISK], tw_clock_ns(o->clock, r1 - r0));
        if (rc) {
            st->orders_denied++;
            tw_strategy_on_order(s, a->user_ref, TW_ORDER_DENIED, 0, now, &none);
            continue;
        }
        struct tw_instrument ins;
        tw_books_instrument(o->books, a->locate, &ins);
        if (o->npending == TW_ORDERS_MAX_PENDING ||
            tw_venue_enter(&o->venue, (uint32_t)a->user_ref, a->side, a->qty, ins.symbol, a->price,
                           a->ioc ? '3' : '0', now) < 0) {
            st->send_failed++;
            tw_risk_on_done(o->risk, a->user_ref);
            tw_strategy_on_order(s, a->user_ref, TW_ORDER_DENIED, 0, now, &none);
            continue;
        }
        struct tw_pending *p = &o->pending[o->npending++];
        p->a = *a;
        p->t_decided_tsc = t_decided_tsc;
        p->t_risk = r1;
        p->slot = (uint8_t)slot;
        memcpy(p->symbol, ins.symbol, sizeof(p->symbol));
    }
}

/* What the decisions queued leaves, in one send(); each order's event after it. */
static void send_pending(struct tw_orders *o, const struct tw_trigger *tr, uint64_t now)
{
    if (!o->corked)
        return;
    int up = tw_venue_flush(&o->venue, now) == 0;
    uint64_t t_sent = rte_rdtsc();
    for (uint32_t i = 0; up && i < o->npending; i++) /* a broken link: they come back from the poll as not sent */
        sent_order(o, &o->pending[i], tr, t_sent, now);
    o->npending = 0;
    o->corked = 0;
}

void tw_orders_cancel_open(struct tw_orders *o, uint16_t locate, uint8_t strategy)
{
    uint64_t now = tw_clock_now(o->clock);
    uint32_t n = tw_risk_open_orders(o->risk, locate, strategy, o->open_refs,
                                     sizeof(o->open_refs) / sizeof(o->open_refs[0]));
    for (uint32_t k = 0; k < o->nstrat; k++) /* their cancels are on their way: no longer quotes */
        if ((locate == 0 || o->locate_of[k] == locate) && (strategy == TW_RISK_ANY || k == strategy))
            tw_strategy_forget_quotes(o->strategies[k]);
    if (!o->cancel_each) /* one send(), or one each (the benchmark's baseline) */
        tw_venue_cork(&o->venue);
    uint64_t sent = 0;
    for (uint32_t i = 0; i < n; i++) {
        int owner = tw_risk_order_strategy(o->risk, o->open_refs[i]);
        tw_risk_message(o->risk, owner < 0 ? TW_RISK_ANY : (uint8_t)owner, now); /* counted; never held back */
        if (tw_venue_cancel(&o->venue, (uint32_t)o->open_refs[i], 0, now) == 0) {
            sent++;
            order_event(o, 'X', o->open_refs[i], 0, 0, 0, now, 0, owner);
        } else {
            o->st->send_failed++;
        }
    }
    if (!o->cancel_each)
        tw_venue_flush(&o->venue, now);
    o->st->cancels_sent += sent;
    o->st->kill_cancels = sent;
    o->st->kill_sent_ns = tw_mono_ns();
}

/* Strategy k's instrument changed: ask it, act on its answer. */
static void decide(struct tw_orders *o, uint32_t k, uint16_t locate, int stale)
{
    struct tw_actions acts;
    uint64_t t0 = rte_rdtsc();
    uint64_t now = tw_clock_now(o->clock);
    tw_strategy_on_book(o->strategies[k], o->books, stale, locate, now, &acts);
    uint64_t t1 = rte_rdtsc();
    tw_hist_record(&o->st->hist[TW_STAGE_DECIDE], tw_clock_ns(o->clock, t1 - t0));
    o->st->decisions++;
    queue_actions(o, k, &acts, stale, now, t1);
}

void tw_orders_dispatch(struct tw_orders *o, int stale, const struct tw_trigger *tr)
{
    uint16_t touched[TW_BOOKS_MAX_WATCHED];
    uint32_t n = tw_books_take_touched(o->books, touched);
    if (!n || !tw_venue_is_up(&o->venue))
        return; /* no session up: nothing to decide */
    for (uint32_t i = 0; i < n; i++)
        for (uint8_t k = (uint8_t)(o->first_on[touched[i]] - 1); k != NONE; k = o->next_on[k])
            decide(o, k, touched[i], stale);
    send_pending(o, tr, tw_clock_now(o->clock)); /* every decision of the packet in one send() */
}

void tw_orders_timer(struct tw_orders *o, int stale, uint64_t now)
{
    for (uint32_t i = 0; i < o->nstrat; i++)
        if (tw_strategy_locate(o->strategies[i]) != o->locate_of[i]) { /* a new table moved it */
            watch_strategies(o);
            break;
        }
    if (!tw_venue_is_up(&o->venue))
        return;
    struct tw_actions acts;
    for (uint32_t k = 0; k < o->nstrat; k++) {
        tw_strategy_on_timer(o->strategies[k], o->books, stale, now, &acts);
        queue_actions(o, k, &acts, stale, now, rte_rdtsc());
    }
    send_pending(o, NULL, now);
}

static int in_doubt(const struct tw_orders *o, uint32_t ref)
{
    for (uint32_t i = 0; i < 16 && i < o->ndoubt; i++)
        if (o->doubt[i] == ref)
            return 1;
    return 0;
}

/* An order an impossible answer named that risk no longer holds open (closed by it, or never ours): the
 * venue may still have it working, so it gets a cancel of its own now (the kill switch cancels only
 * what risk holds); that cancel's answer is then expected. */
static void doubt(struct tw_orders *o, uint32_t ref, uint64_t now)
{
    if (!ref || tw_risk_order_open(o->risk, ref) >= 0 || in_doubt(o, ref))
        return; /* risk holds it (the kill switch cancels it), or it has had its cancel */
    o->doubt[o->ndoubt++ % 16] = ref;
    tw_risk_message(o->risk, TW_RISK_ANY, now); /* counted; never held back */
    if (tw_venue_cancel(&o->venue, ref, 0, now) == 0) {
        o->st->cancels_sent++;
        order_event(o, 'X', ref, 0, 0, 0, now, 0, -1);
    } else {
        o->st->send_failed++;
    }
}


/* An answer that cannot be: its bytes where Python finds them (stats.bad_answer[n % 4]), its event,
 * and the kill switch thrown as another process would throw it (control.c cancels the open orders
 * at the top of the next iteration); risk refuses new orders from now on. */
static void bad_answer(struct tw_orders *o, const struct tw_ouch_msg *m, uint16_t code, int64_t open, int owner,
                       uint64_t now)
{
    struct tw_worker_stats *st = o->st;
    uint64_t n = ++st->bad_answers;
    struct tw_bad_answer_bytes *b = &st->bad_answer[n % 4];
    b->len = m->raw_len;
    b->code = code;
    memcpy(b->bytes, m->raw, sizeof(b->bytes));
    __atomic_store_n(&b->n, n, __ATOMIC_RELEASE);
    struct tw_event ev = { .ts_ns = now, .type = TW_EV_BAD_ANSWER, .code = (uint8_t)code, .a = m->user_ref, .b = n,
                           .seq = m->seq, .price = m->price, .side = m->side,
                           .strategy = owner < 0 ? NONE : (uint8_t)owner };
    ev.stage_ns[0] = m->type == TW_OUCH_MSG_BAD ? 0 : m->type; /* the OUCH type (0: the session's own finding) */
    ev.stage_ns[1] = m->qty;
    ev.stage_ns[2] = open < 0 ? UINT32_MAX : (uint32_t)open; /* what the order had open (UINT32_MAX: none) */
    tw_raise(o->events, &ev);
    doubt(o, m->user_ref, now);
    if (m->type == 'U')
        doubt(o, m->orig_user_ref, now);
    tw_risk_kill_all(o->risk, 1);
    if (!__atomic_load_n(&st->kill, __ATOMIC_ACQUIRE)) {
        st->kill_reason = TW_KILL_BAD_ANSWER;
        __atomic_store_n(&st->kill, 1, __ATOMIC_RELEASE);
    }
}

void tw_orders_answers(struct tw_orders *o, uint64_t now)
{
    struct tw_ouch_msg msgs[32];
    uint32_t n = tw_venue_poll(&o->venue, now, msgs, 32);
    tw_orders_take_answers(o, msgs, n, now);
}

void tw_orders_take_answers(struct tw_orders *o, const struct tw_ouch_msg *msgs, uint32_t n, uint64_t now)
{
    struct tw_actions none;
    struct tw_worker_stats *st = o->st;
    for (uint32_t i = 0; i < n; i++) {
        const struct tw_ouch_msg *m = &msgs[i];
        uint8_t code = m->type;
        int owner = m->user_ref ? tw_risk_order_strategy(o->risk, m->user_ref) : -1;
        struct tw_strategy *s = owner >= 0 && (uint32_t)owner < o->nstrat ? o->strategies[owner] : NULL;
        if (m->type == TW_OUCH_MSG_BAD) { /* the session's own finding: nothing of it applied */
            bad_answer(o, m, m->reason, -1, -1, now);
            continue;
        }
        if (m->type == TW_OUCH_MSG_NOT_SENT) { /* queued, then a broken link took it: it never left */
            st->send_failed++;
            tw_risk_on_done(o->risk, m->user_ref);
            if (s)
                tw_strategy_on_order(s, m->user_ref, TW_ORDER_DENIED, 0, now, &none);
            order_event(o, 'N', m->user_ref, m->qty, m->price, m->side, now, m->seq, owner);
            continue;
        }
        st->order_events++;
        int64_t open = m->user_ref ? tw_risk_order_open(o->risk, m->user_ref) : -1;
        int bad = open < 0 && (m->type == 'C') && in_doubt(o, m->user_ref)
                      ? 0 /* the answer to our own cancel of an order in doubt */
                      : tw_risk_answer(o->risk, m); /* checked, then applied to positions and open orders */
        if (bad == TW_BAD_UNKNOWN_ORDER)
            st->unknown_orders++;
        if (m->user_ref)
            order_event(o, code, m->user_ref, m->qty, m->price, m->side, now, m->seq, owner);
        if (bad)
            bad_answer(o, m, (uint16_t)bad, open, owner, now);
        if (m->type == 'E')
            st->executed += m->qty;
        if (!s)
            continue;
        switch (m->type) {
        case 'A': /* live or dead ('D': it will not rest), its executions and cancels still follow */
            tw_strategy_on_order(s, m->user_ref, TW_ORDER_ACCEPTED, m->qty, now, &none);
            break;
        case 'E':
            tw_strategy_on_order(s, m->user_ref, TW_ORDER_EXECUTED, m->qty, now, &none);
            break;
        case 'C':
        case 'J':
            if (tw_risk_order_open(o->risk, m->user_ref) < 0) /* a partial cancel leaves it working */
                tw_strategy_on_order(s, m->user_ref, TW_ORDER_DONE, 0, now, &none);
            break;
        default:
            break;
        }
    }
}

uint32_t tw_orders_feed_answers(struct tw_risk *r, struct tw_ouch *session, struct tw_worker_stats *st,
                                const struct tw_event_sink *events, const uint8_t *data, uint32_t len,
                                uint64_t now_ns)
{
    struct tw_orders o = { .risk = r, .st = st, .events = events, .venue = { &tw_session_venue, session } };
    struct tw_ouch_msg msgs[64];
    uint32_t n = tw_ouch_inject(session, data, len, msgs, 64);
    tw_orders_take_answers(&o, msgs, n, now_ns);
    return n;
}
