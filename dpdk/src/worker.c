/* worker.c — the lcore loop: rx bursts -> MoldUDP64 (mold.c) -> ITCH -> books
 * (book.c), with per-stage latency histograms, events into an rte_ring and
 * retransmission requests. Live (af_xdp) and replay (pcap) ports run this same
 * code. See worker.h.
 *
 * Time: the XDP stamp is CLOCK_MONOTONIC, taken on the CPU that ran the XDP
 * program; each rx burst reads CLOCK_MONOTONIC once (the same clock, valid
 * across CPUs). The stages inside a burst are TSC intervals on this CPU, turned
 * into nanoseconds at the rate the two clocks kept over the last 100 ms.
 */
#define _GNU_SOURCE /* recvmmsg */
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <linux/types.h>

#include "bytes.h"
#include "internal.h"
#include "worker.h"
#include "tw_meta.h"

#define ANSWER_WINDOW_NS 2000000000ull /* read answers for this long after a request */
#define MAX_PENDING (TW_WORKER_MAX_STRATEGIES * 8) /* every strategy's whole answer, for one send() */
#define SOCK_BURST 64
#define SOCK_FRAME 2048

/* recvmmsg buffers for the line sockets, made once */
struct sock_bufs {
    struct mmsghdr mm[SOCK_BURST];
    struct iovec iov[SOCK_BURST];
    struct sockaddr_in src[SOCK_BURST]; /* who sent it: the recorder's made-up header */
    uint8_t ctl[SOCK_BURST][CMSG_SPACE(sizeof(struct timespec))];
    uint8_t data[SOCK_BURST][SOCK_FRAME];
};

/* An order queued in the session's corked buffer, until the send() of its packet's decisions. */
struct pending {
    struct tw_strategy_action a;
    uint64_t t_decided_tsc; /* its decision's answer */
    uint64_t t_risk;        /* it passed the risk chain */
    char symbol[8];         /* as the Enter Order carried it, for its event */
    uint8_t slot;
};

/* The packet a decision answers, and when it went through each stage. */
struct trigger {
    uint64_t t_wire;        /* its arrival stamp, CLOCK_MONOTONIC (0: none usable) */
    uint64_t t_rx;          /* CLOCK_MONOTONIC when its burst was read */
    uint64_t t_rx_tsc, t_dec_tsc, t_app_tsc;
    uint64_t seq;           /* the MoldUDP64 sequence number of its first message */
    uint8_t line;
};

struct tw_worker {
    struct tw_worker_config cfg;
    struct tw_books *books;
    struct tw_feed *feed;
    struct tw_worker_stats *st;
    int own_stats;
    struct tw_event_ring events;
    struct tw_event_sink sink; /* the ring, as the stages raise into it */
    volatile int stop;
    /* TSC -> CLOCK_MONOTONIC */
    uint64_t tsc0, ns0, mult; /* ns = ns0 + (tsc - tsc0) * mult >> 32 */
    int64_t real_off;         /* CLOCK_REALTIME - CLOCK_MONOTONIC, for kernel socket stamps */
    uint64_t last_cal, first_packet;
    int driven;               /* by the caller's reads (tw_worker_datagram), not tw_worker_run */
    /* retransmission */
    uint64_t gap_since, asked_ns, asked_first, asked_count;
    /* trading */
    uint64_t last_ouch_poll;
    struct sock_bufs *sk;
    uint64_t open_refs[4096]; /* a kill switch's list of orders to cancel */
    /* the strategies: which trade an instrument (fixed at creation: a reload changes
     * parameters, never what a strategy trades) */
    uint32_t nstrat;
    uint16_t locate_of[TW_WORKER_MAX_STRATEGIES];
    uint8_t next_on[TW_WORKER_MAX_STRATEGIES]; /* the next strategy on the same instrument, NONE: no more */
    uint8_t *first_on;        /* [locate]: 1 + the first strategy trading it, 0: none */
    /* the retransmission socket's two ends (network order), for the recorder's headers */
    uint32_t rt_saddr, rt_daddr;
    uint16_t rt_sport, rt_dport;
    /* the orders of a packet's decisions (every strategy's), until their one send() */
    uint32_t npending;
    int corked;
    struct pending pending[MAX_PENDING];
};

#define NONE 255

/* Map the TSC onto CLOCK_MONOTONIC. The first call takes the rate DPDK measured;
 * later calls (every 100 ms) take the rate the two clocks actually kept since the
 * last one, so the mapping does not drift away from the XDP stamps. */
static void calibrate(struct tw_worker *w)
{
    uint64_t tsc = rte_rdtsc(), ns = tw_mono_ns();
    if (!w->mult)
        w->mult = (uint64_t)(((__uint128_t)1000000000ull << 32) / rte_get_tsc_hz());
    else if (tsc > w->tsc0 && ns > w->ns0)
        w->mult = (uint64_t)(((__uint128_t)(ns - w->ns0) << 32) / (tsc - w->tsc0));
    w->tsc0 = tsc;
    w->ns0 = ns;
    struct timespec a, r, b; /* read only: this clock is never set here */
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_REALTIME, &r);
    clock_gettime(CLOCK_MONOTONIC, &b);
    int64_t mono = ((int64_t)a.tv_sec + b.tv_sec) * 500000000ll + (a.tv_nsec + b.tv_nsec) / 2;
    w->real_off = (int64_t)r.tv_sec * 1000000000ll + r.tv_nsec - mono;
}

/* A TSC interval in nanoseconds. */
static inline uint64_t tsc_ns(const struct tw_worker *w, uint64_t ticks)
{
    return (uint64_t)(((__uint128_t)ticks * w->mult) >> 32);
}

static inline uint64_t now_ns(const struct tw_worker *w)
{
    return w->ns0 + (uint64_t)(((__uint128_t)(rte_rdtsc() - w->tsc0) * w->mult) >> 32);
}

static inline void ring_emit(struct tw_worker *w, const struct tw_event *ev)
{
    tw_raise(&w->sink, ev);
}

/* The messages the feed now has in sequence, into the books. */
static inline void feed_apply(struct tw_feed *f, struct tw_books *b, const struct tw_event_sink *sink)
{
    uint32_t mlen;
    for (const uint8_t *m; (m = tw_feed_next(f, &mlen));)
        if (tw_itch_apply(b, sink, m, mlen) < 0)
            tw_feed_book_error(f);
}

/* One packet through mold and itch. */
static inline int feed_step(struct tw_feed *f, struct tw_books *b, const struct tw_event_sink *sink, uint32_t line,
                            const uint8_t *pkt, uint32_t len)
{
    int rc = tw_feed_accept(f, line, pkt, len);
    uint32_t off = TW_MOLD_HEADER;
    uint16_t n;
    for (const uint8_t *m; (m = tw_mold_block(pkt, len, &off, &n));) /* a first pass starts the table loads */
        tw_itch_prefetch(b, m, n);
    feed_apply(f, b, sink);
    return rc;
}

void tw_feed_apply(struct tw_feed *f, struct tw_books *b, const struct tw_event_sink *sink)
{
    feed_apply(f, b, sink);
}

int tw_feed_packet(struct tw_feed *f, struct tw_books *b, const struct tw_event_sink *sink, uint32_t line,
                   const uint8_t *pkt, uint32_t len)
{
    return feed_step(f, b, sink, line, pkt, len);
}

/* Which instruments the strategies trade, as their tables say now: the books watch them, and each
 * instrument's strategies are chained in slot order. Returns 0, or -1 (the books could not watch
 * one: a locate past max_locate), with nothing watched. */
static int watch_strategies(struct tw_worker *w)
{
    for (uint32_t i = 0; i < w->nstrat; i++)
        if (w->locate_of[i])
            tw_books_watch(w->books, w->locate_of[i], 0);
    memset(w->first_on, 0, 65536);
    for (uint32_t i = w->nstrat; i-- > 0;) { /* backwards: each instrument's chain in slot order */
        uint16_t loc = tw_strategy_locate(w->cfg.strategies[i]);
        w->locate_of[i] = loc;
        w->next_on[i] = NONE;
        if (loc == 0)
            continue; /* no instrument (kind none): only its timer runs */
        if (tw_books_watch(w->books, loc, 1) < 0) {
            for (uint32_t j = i; j < w->nstrat; j++) {
                if (j > i && w->locate_of[j])
                    tw_books_watch(w->books, w->locate_of[j], 0);
                w->locate_of[j] = 0;
            }
            memset(w->first_on, 0, 65536);
            return -1;
        }
        w->next_on[i] = w->first_on[loc] ? (uint8_t)(w->first_on[loc] - 1) : NONE;
        w->first_on[loc] = (uint8_t)(i + 1);
    }
    return 0;
}

/* A strategy given another instrument by a new table: watch what they trade now. */
static void rewatch_if_moved(struct tw_worker *w)
{
    for (uint32_t i = 0; i < w->nstrat; i++)
        if (tw_strategy_locate(w->cfg.strategies[i]) != w->locate_of[i]) {
            watch_strategies(w);
            return;
        }
}

struct tw_worker *tw_worker_create(const struct tw_worker_config *cfg, struct tw_books *books,
                                   struct tw_feed *feed, struct tw_worker_stats *stats, const char *name)
{
    if (!cfg || !books || !feed || cfg->nports > TW_WORKER_MAX_PORTS || cfg->burst == 0 || cfg->burst > 64)
        return NULL;
    int trading = (cfg->nstrategies > 0) + (cfg->risk != NULL) + (cfg->ouch != NULL);
    if ((trading != 0 && trading != 3) || cfg->nstrategies > TW_WORKER_MAX_STRATEGIES)
        return NULL; /* strategies trade through risk and a session, or there is no trading */
    for (uint32_t i = 0; i < cfg->nstrategies; i++)
        if (!cfg->strategies[i])
            return NULL;
    struct tw_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->cfg = *cfg;
    if (w->cfg.retrans_max == 0 || w->cfg.retrans_max > 65534)
        w->cfg.retrans_max = 65534; /* a MoldUDP64 count; 0xFFFF means end of session */
    w->books = books;
    w->feed = feed;
    w->nstrat = cfg->nstrategies;
    w->own_stats = stats == NULL;
    w->st = stats ? stats : calloc(1, sizeof(*w->st));
    if (!w->st)
        goto fail;
    if (w->nstrat && (!(w->first_on = calloc(65536, 1)) || watch_strategies(w) < 0))
        goto fail;
    if ((cfg->sock_fd[0] > 0 || cfg->sock_fd[1] > 0) && !(w->sk = calloc(1, sizeof(*w->sk))))
        goto fail;
    if (tw_event_ring_init(&w->events, name, cfg->event_ring_size, &w->st->events, &w->st->events_dropped) < 0)
        goto fail;
    w->sink = (struct tw_event_sink){ tw_event_ring_emit, &w->events };
    if (cfg->retrans_fd >= 0) { /* once, at creation: the addresses a recorded answer is written with */
        struct sockaddr_in a;
        socklen_t n = sizeof(a);
        if (getpeername(cfg->retrans_fd, (struct sockaddr *)&a, &n) == 0) {
            w->rt_saddr = a.sin_addr.s_addr;
            w->rt_sport = ntohs(a.sin_port);
        }
        n = sizeof(a);
        if (getsockname(cfg->retrans_fd, (struct sockaddr *)&a, &n) == 0) {
            w->rt_daddr = a.sin_addr.s_addr;
            w->rt_dport = ntohs(a.sin_port);
        }
    }
    memset(w->st, 0, sizeof(*w->st));
    w->st->size = sizeof(*w->st);
    w->st->pid = (uint64_t)getpid();
    w->st->magic = TW_STATS_MAGIC;
    tw_books_set_events(books, tw_event_ring_emit, &w->events); /* risk.c's denials (transitional) */
    tw_feed_set_events(feed, &w->sink);
    return w;
fail: /* what was made, unmade: nothing watched, nothing allocated */
    for (uint32_t i = 0; i < w->nstrat; i++)
        if (w->locate_of[i])
            tw_books_watch(books, w->locate_of[i], 0);
    if (w->own_stats)
        free(w->st);
    free(w->sk);
    free(w->first_on);
    free(w);
    return NULL;
}

void tw_worker_destroy(struct tw_worker *w)
{
    if (!w)
        return;
    tw_books_set_events(w->books, NULL, NULL);
    tw_feed_set_events(w->feed, NULL);
    for (uint32_t i = 0; i < w->nstrat; i++)
        if (w->locate_of[i])
            tw_books_watch(w->books, w->locate_of[i], 0);
    tw_event_ring_fini(&w->events);
    if (w->own_stats)
        free(w->st);
    free(w->sk);
    free(w->first_on);
    free(w);
}

/* ---- one frame ---------------------------------------------------------------------- */

/* The UDP payload of an IPv4 frame (up to two VLAN tags), or NULL. */
static inline const uint8_t *udp_payload(const uint8_t *p, uint32_t len, uint32_t *plen, uint32_t *daddr,
                                         uint16_t *dport, uint16_t *sport)
{
    uint32_t off = 12;
    if (len < 14)
        return NULL;
    uint16_t type = rd16(p + off);
    for (int tags = 0; (type == 0x8100 || type == 0x88a8) && tags < 2; tags++) {
        off += 4;
        if (off + 2 > len)
            return NULL;
        type = rd16(p + off);
    }
    off += 2;
    if (type != 0x0800 || off + 20 > len)
        return NULL;
    const uint8_t *ip = p + off;
    uint32_t ihl = (ip[0] & 0x0f) * 4u;
    uint32_t total = rd16(ip + 2);
    if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl || off + total > len || ip[9] != 17)
        return NULL;
    if (rd16(ip + 6) & 0x3fff) /* MF or a fragment offset */
        return NULL;
    if (ihl + 8 > total)
        return NULL;
    const uint8_t *udp = ip + ihl;
    uint32_t ulen = rd16(udp + 4);
    if (ulen < 8 || ulen > total - ihl)
        return NULL;
    memcpy(daddr, ip + 16, 4); /* network order, as the config holds it */
    *dport = rd16(udp + 2);
    *sport = rd16(udp);
    *plen = ulen - 8;
    return udp + 8;
}

static inline int line_by_dest(const struct tw_worker_config *c, uint32_t daddr, uint16_t dport, uint16_t sport)
{
    for (int l = 0; l < 2; l++) {
        if (c->group[l] == 0 && c->udp_port[l] == 0)
            continue;
        if ((c->group[l] == 0 || c->group[l] == daddr) && (c->udp_port[l] == 0 || c->udp_port[l] == dport))
            return l;
    }
    if (c->retrans_port && sport == c->retrans_port)
        return 2;
    return 0; /* any other datagram is taken as line A: foreign sessions are counted by mold.c */
}

/* ---- trading: strategy -> risk -> order entry ----------------------------------------------- */

static void order_event(struct tw_worker *w, uint8_t code, uint64_t ref, uint64_t qty, uint64_t price, uint8_t side,
                        uint64_t ts, uint64_t seq, int strategy)
{
    struct tw_event ev = { .ts_ns = ts, .type = TW_EV_ORDER, .code = code, .a = ref, .b = qty, .price = price,
                           .side = side, .seq = seq, .strategy = strategy < 0 ? NONE : (uint8_t)strategy };
    ring_emit(w, &ev);
}

/* An order that went out: its send and tick-to-trade figures, and its event with
 * every stage from the triggering packet's arrival stamp (tr NULL, or without a
 * stamp: a timer, a retransmission or the kill switch sent it, there is no packet
 * arrival to measure from). */
static void sent_order(struct tw_worker *w, const struct pending *p, const struct trigger *tr, uint64_t t_sent,
                       uint64_t now)
{
    const struct tw_strategy_action *a = &p->a;
    uint32_t slot = p->slot;
    uint64_t t_risk = p->t_risk;
    struct tw_worker_stats *st = w->st;
    st->orders_sent++;
    tw_hist_record(&st->hist[TW_STAGE_SEND], tsc_ns(w, t_sent - t_risk));
    struct tw_event ev = { .ts_ns = now, .type = TW_EV_ORDER, .code = 'O', .locate = a->locate, .a = a->user_ref,
                           .b = a->qty, .price = a->price, .side = a->side, .strategy = (uint8_t)slot };
    memcpy(ev.symbol, p->symbol, sizeof(ev.symbol));
    if (tr) {
        ev.line = tr->line;
        ev.seq = tr->seq;
    }
    if (tr && tr->t_wire) {
        uint64_t stage[TW_OS_N] = {
            [TW_OS_WIRE] = tr->t_rx - tr->t_wire,
            [TW_OS_QUEUE] = tsc_ns(w, tr->t_dec_tsc - tr->t_rx_tsc),
            [TW_OS_APPLY] = tsc_ns(w, tr->t_app_tsc - tr->t_dec_tsc),
            [TW_OS_DECIDE] = tsc_ns(w, p->t_decided_tsc - tr->t_app_tsc),
            [TW_OS_RISK] = tsc_ns(w, t_risk - p->t_decided_tsc),
            [TW_OS_SEND] = tsc_ns(w, t_sent - t_risk),
        };
        uint64_t total = 0;
        for (int i = 0; i < TW_OS_N; i++) {
            ev.stage_ns[i] = stage[i] > UINT32_MAX ? UINT32_MAX : (uint32_t)stage[i];
            total += stage[i];
        }
        tw_hist_record(&st->hist[TW_STAGE_TICK_TO_TRADE], total);
        ev.ts_ns = tr->t_wire;
    }
    ring_emit(w, &ev);
}

/* Carry out strategy slot's actions: each new order through the risk chain (its row), then into
 * the session's corked buffer with the cancels; send_pending() sends what every decision of the
 * packet (or of the timer's round) queued, in one send(). */
static void queue_actions(struct tw_worker *w, uint32_t slot, const struct tw_actions *acts, int stale, uint64_t now,
                          uint64_t t_decided_tsc)
{
    const struct tw_worker_config *c = &w->cfg;
    struct tw_strategy *s = c->strategies[slot];
    struct tw_worker_stats *st = w->st;
    struct tw_actions none;
    if (acts->n == 0)
        return;
    if (!w->corked) {
        tw_ouch_cork(c->ouch);
        w->corked = 1;
    }
    for (uint32_t i = 0; i < acts->n; i++) {
        const struct tw_strategy_action *a = &acts->a[i];
        if (a->kind == TW_ACTION_CANCEL) {
            tw_risk_message(c->risk, (uint8_t)slot, now); /* counted; a cancel is never held back */
            if (tw_ouch_cancel(c->ouch, (uint32_t)a->user_ref, 0, now) == 0) {
                st->cancels_sent++;
                order_event(w, 'X', a->user_ref, 0, 0, a->side, now, 0, (int)slot);
            } else {
                st->send_failed++;
            }
            continue;
        }
        struct tw_order_intent in = { .user_ref = a->user_ref, .qty = a->qty, .price = a->price,
                                      .locate = a->locate, .side = a->side, .strategy = (uint8_t)slot };
        uint64_t r0 = rte_rdtsc();
        int rc = tw_risk_check(c->risk, w->books, stale, &in, now);
        uint64_t r1 = rte_rdtsc();
        tw_hist_record(&st->hist[TW_STAGE_RISK], tsc_ns(w, r1 - r0));
        if (rc) {
            st->orders_denied++;
            tw_strategy_on_order(s, a->user_ref, TW_ORDER_DENIED, 0, now, &none);
            continue;
        }
        struct tw_instrument ins;
        tw_books_instrument(w->books, a->locate, &ins);
        if (w->npending == MAX_PENDING ||
            tw_ouch_enter(c->ouch, (uint32_t)a->user_ref, a->side, a->qty, ins.symbol, a->price,
                          a->ioc ? '3' : '0', now) < 0) {
            st->send_failed++;
            tw_risk_on_done(c->risk, a->user_ref);
            tw_strategy_on_order(s, a->user_ref, TW_ORDER_DENIED, 0, now, &none);
            continue;
        }
        struct pending *p = &w->pending[w->npending++];
        p->a = *a;
        p->t_decided_tsc = t_decided_tsc;
        p->t_risk = r1;
        p->slot = (uint8_t)slot;
        memcpy(p->symbol, ins.symbol, sizeof(p->symbol));
    }
}

/* What the decisions queued leaves, in one send(); each order's event after it. */
static void send_pending(struct tw_worker *w, const struct trigger *tr, uint64_t now)
{
    if (!w->corked)
        return;
    int up = tw_ouch_flush(w->cfg.ouch, now) == 0;
    uint64_t t_sent = rte_rdtsc();
    for (uint32_t i = 0; up && i < w->npending; i++) /* a broken link: they come back from the poll as not sent */
        sent_order(w, &w->pending[i], tr, t_sent, now);
    w->npending = 0;
    w->corked = 0;
}

/* Cancel every open order of one instrument (0: all) and one strategy (TW_RISK_ANY: all): in
 * one send(), or one send() each with cancel_each (the benchmark's baseline). The strategies
 * whose quotes are among them forget them as quotes: their cancels are on their way. */
static void cancel_open(struct tw_worker *w, uint16_t locate, uint8_t strategy)
{
    const struct tw_worker_config *c = &w->cfg;
    uint64_t now = now_ns(w);
    uint32_t n = tw_risk_open_orders(c->risk, locate, strategy, w->open_refs,
                                     sizeof(w->open_refs) / sizeof(w->open_refs[0]));
    for (uint32_t k = 0; k < w->nstrat; k++)
        if ((locate == 0 || w->locate_of[k] == locate) && (strategy == TW_RISK_ANY || k == strategy))
            tw_strategy_forget_quotes(c->strategies[k]);
    if (!c->cancel_each)
        tw_ouch_cork(c->ouch);
    uint64_t sent = 0;
    for (uint32_t i = 0; i < n; i++) {
        int owner = tw_risk_order_strategy(c->risk, w->open_refs[i]);
        tw_risk_message(c->risk, owner < 0 ? TW_RISK_ANY : (uint8_t)owner, now); /* counted; never held back */
        if (tw_ouch_cancel(c->ouch, (uint32_t)w->open_refs[i], 0, now) == 0) {
            sent++;
            order_event(w, 'X', w->open_refs[i], 0, 0, 0, now, 0, owner);
        } else {
            w->st->send_failed++;
        }
    }
    if (!c->cancel_each)
        tw_ouch_flush(c->ouch, now);
    w->st->cancels_sent += sent;
    w->st->kill_cancels = sent;
    w->st->kill_sent_ns = tw_mono_ns();
}

/* Strategy k quotes unless the worker, it or its instrument is killed. */
static void quote_or_not(struct tw_worker *w, uint32_t k)
{
    uint64_t bit = 1ull << k;
    tw_strategy_halt(w->cfg.strategies[k], w->st->killed || (w->st->killed_strategy & bit) ||
                                               (w->st->killed_instrument & bit));
}

/* Thrown (1): risk refuses every new order, the strategies stop and every open order
 * is cancelled now; released (0): they quote again from the next update (unless a
 * strategy or its instrument is killed on its own). `killed` is written last: a
 * reader that sees it sees the figures of what was done. */
static void kill_switch(struct tw_worker *w, uint64_t kill)
{
    const struct tw_worker_config *c = &w->cfg;
    tw_risk_kill_all(c->risk, (uint8_t)kill);
    for (uint32_t k = 0; k < w->nstrat; k++)
        tw_strategy_halt(c->strategies[k], kill || (w->st->killed_strategy >> k & 1) ||
                                               (w->st->killed_instrument >> k & 1));
    if (kill)
        cancel_open(w, 0, TW_RISK_ANY);
    w->st->killed_ns = tw_mono_ns();
    __atomic_store_n(&w->st->killed, kill, __ATOMIC_RELEASE);
}

/* A command from another process: an instrument or a strategy killed or released. */
static void command(struct tw_worker *w, uint64_t seq)
{
    const struct tw_worker_config *c = &w->cfg;
    struct tw_worker_stats *st = w->st;
    uint64_t cmd = st->cmd, arg = st->cmd_arg;
    st->cmd_result = 0;
    switch (cmd) {
    case TW_CMD_KILL_INSTRUMENT:
    case TW_CMD_RELEASE_INSTRUMENT: {
        uint8_t kill = cmd == TW_CMD_KILL_INSTRUMENT;
        if (arg == 0 || arg > 0xFFFF || tw_risk_kill_instrument(c->risk, (uint16_t)arg, kill) < 0) {
            st->cmd_result = 1;
            break;
        }
        for (uint32_t k = 0; k < w->nstrat; k++) {
            if (w->locate_of[k] != arg)
                continue;
            if (kill)
                st->killed_instrument |= 1ull << k;
            else
                st->killed_instrument &= ~(1ull << k);
            quote_or_not(w, k);
        }
        if (kill)
            cancel_open(w, (uint16_t)arg, TW_RISK_ANY);
        break;
    }
    case TW_CMD_KILL_STRATEGY:
    case TW_CMD_RELEASE_STRATEGY: {
        uint8_t kill = cmd == TW_CMD_KILL_STRATEGY;
        if (arg >= w->nstrat) {
            st->cmd_result = 1;
            break;
        }
        tw_risk_kill_strategy(c->risk, (uint8_t)arg, kill);
        if (kill)
            st->killed_strategy |= 1ull << arg;
        else
            st->killed_strategy &= ~(1ull << arg);
        quote_or_not(w, (uint32_t)arg);
        if (kill)
            cancel_open(w, 0, (uint8_t)arg);
        break;
    }
    default:
        st->cmd_result = 1;
        break;
    }
    st->cmd_done_ns = tw_mono_ns();
    __atomic_store_n(&st->cmd_done, seq, __ATOMIC_RELEASE);
}

/* Strategy k's instrument changed: ask it, act on its answer. */
static void decide(struct tw_worker *w, uint32_t k, uint16_t locate)
{
    struct tw_actions acts;
    int stale = tw_feed_is_stale(w->feed);
    uint64_t t0 = rte_rdtsc();
    uint64_t now = now_ns(w);
    tw_strategy_on_book(w->cfg.strategies[k], w->books, stale, locate, now, &acts);
    uint64_t t1 = rte_rdtsc();
    tw_hist_record(&w->st->hist[TW_STAGE_DECIDE], tsc_ns(w, t1 - t0));
    w->st->decisions++;
    queue_actions(w, k, &acts, stale, now, t1);
}

/* The watched instruments the books just changed: each one's strategies decide, in
 * the order the instruments changed (no session up: nothing to decide). */
static void dispatch(struct tw_worker *w, struct trigger *tr)
{
    uint16_t touched[TW_BOOKS_MAX_WATCHED];
    uint32_t n = tw_books_take_touched(w->books, touched);
    if (!n || !tw_ouch_is_up(w->cfg.ouch))
        return;
    for (uint32_t i = 0; i < n; i++)
        for (uint8_t k = (uint8_t)(w->first_on[touched[i]] - 1); k != NONE; k = w->next_on[k])
            decide(w, k, touched[i]);
    send_pending(w, tr, now_ns(w)); /* every decision of the packet in one send() */
}

/* The exchange's answers: positions (risk) and the strategy's own orders follow them;
 * the order's strategy is the one risk checked it for. */
static void answers(struct tw_worker *w, uint64_t now)
{
    const struct tw_worker_config *c = &w->cfg;
    struct tw_ouch_msg msgs[32];
    struct tw_actions none;
    uint32_t n = tw_ouch_poll(c->ouch, now, msgs, 32);
    for (uint32_t i = 0; i < n; i++) {
        const struct tw_ouch_msg *m = &msgs[i];
        uint8_t code = m->type;
        int owner = m->user_ref ? tw_risk_order_strategy(c->risk, m->user_ref) : -1;
        struct tw_strategy *s = owner >= 0 && (uint32_t)owner < w->nstrat ? c->strategies[owner] : NULL;
        switch (m->type) {
        case TW_OUCH_MSG_NOT_SENT: /* queued, then a broken link took it: it never left */
            w->st->send_failed++;
            tw_risk_on_done(c->risk, m->user_ref);
            if (s)
                tw_strategy_on_order(s, m->user_ref, TW_ORDER_DENIED, 0, now, &none);
            code = 'N';
            break;
        case 'A': /* live or dead ('D': it will not rest), its executions and cancels still follow */
            w->st->order_events++;
            if (s)
                tw_strategy_on_order(s, m->user_ref, TW_ORDER_ACCEPTED, m->qty, now, &none);
            break;
        case 'E':
            w->st->order_events++;
            if (tw_risk_on_execution(c->risk, m->user_ref, m->qty) < 0)
                w->st->unknown_orders++;
            if (s)
                tw_strategy_on_order(s, m->user_ref, TW_ORDER_EXECUTED, m->qty, now, &none);
            w->st->executed += m->qty;
            break;
        case 'C':
        case 'J':
            w->st->order_events++;
            if (tw_risk_on_done(c->risk, m->user_ref) < 0)
                w->st->unknown_orders++;
            if (s)
                tw_strategy_on_order(s, m->user_ref, TW_ORDER_DONE, 0, now, &none);
            break;
        default:
            w->st->order_events++;
            break;
        }
        if (m->user_ref)
            order_event(w, code, m->user_ref, m->qty, m->price, m->side, now, m->seq, owner);
    }
}

/* ---- one datagram, from a port's frame or a socket ----------------------------------------
 * t_wire: its arrival stamp (CLOCK_MONOTONIC, 0: none); t_rx: CLOCK_MONOTONIC when
 * its burst was read (the stamp's clock, read directly: a mapped TSC on another
 * CPU could be microseconds off); t_rx_tsc: the TSC then, for the short stages
 * that follow on this CPU. */
static inline void datagram(struct tw_worker *w, uint32_t line, const uint8_t *payload, uint32_t plen,
                            uint64_t t_wire, uint64_t t_rx, uint64_t t_rx_tsc)
{
    struct tw_worker_stats *st = w->st;
    uint64_t t_dec = rte_rdtsc();
    feed_step(w->feed, w->books, &w->sink, line, payload, plen);
    uint64_t t_app = rte_rdtsc();
    if (t_wire > t_rx)
        t_wire = 0; /* a hardware clock's stamp is on another timescale: no wire figures from it */
    if (w->nstrat) {
        struct trigger tr = { .t_wire = t_wire, .t_rx = t_rx, .t_rx_tsc = t_rx_tsc, .t_dec_tsc = t_dec,
                              .t_app_tsc = t_app, .seq = plen >= 20 ? rd64(payload + 10) : 0,
                              .line = (uint8_t)line };
        dispatch(w, &tr);
    }
    uint64_t queue = tsc_ns(w, t_dec - t_rx_tsc), apply = tsc_ns(w, t_app - t_dec);
    tw_hist_record(&st->hist[TW_STAGE_QUEUE], queue);
    tw_hist_record(&st->hist[TW_STAGE_APPLY], apply);
    if (t_wire) {
        tw_hist_record(&st->hist[TW_STAGE_WIRE], t_rx - t_wire);
        tw_hist_record(&st->hist[TW_STAGE_TOTAL], t_rx - t_wire + queue + apply);
    }
}

/* The recorder's timestamp: the arrival stamp (else the read) on CLOCK_REALTIME. */
static inline uint64_t record_ts(const struct tw_worker *w, uint64_t t_wire, uint64_t t_rx)
{
    return (uint64_t)((int64_t)(t_wire && t_wire <= t_rx ? t_wire : t_rx) + w->real_off); /* a PHC stamp: the read */
}

static inline void record(struct tw_worker *w, int rc)
{
    if (rc == 0)
        w->st->recorded++;
    else
        w->st->record_dropped++;
}

static inline void frame(struct tw_worker *w, const struct tw_worker_port *port, struct rte_mbuf *m,
                         uint64_t t_rx, uint64_t t_rx_tsc)
{
    struct tw_worker_stats *st = w->st;
    if (m->nb_segs != 1) {
        st->multi_segment++;
        return;
    }
    uint8_t *d = rte_pktmbuf_mtod(m, uint8_t *);
    uint32_t len = rte_pktmbuf_data_len(m);
    st->rx_bytes += len;
    uint64_t t_wire = 0;
    int line = port->line == TW_LINE_BY_DEST ? -1 : port->line;
    if (port->has_meta) {
        struct tw_xdp_meta *md = (struct tw_xdp_meta *)(d - sizeof(*md));
        if (m->data_off >= sizeof(*md) && md->magic == TW_META_MAGIC) {
            t_wire = md->rx_ns;
            line = md->line;
            md->magic = 0; /* the buffer comes back for another frame */
        } else {
            st->no_meta++;
        }
    }
    uint32_t plen, daddr;
    uint16_t dport, sport;
    const uint8_t *payload = udp_payload(d, len, &plen, &daddr, &dport, &sport);
    if (payload && line < 0)
        line = line_by_dest(&w->cfg, daddr, dport, sport);
    if (!payload)
        st->not_udp++;
    else
        datagram(w, (uint32_t)line, payload, plen, t_wire, t_rx, t_rx_tsc);
    if (w->cfg.recorder) /* every frame, the ones we cannot read too, kept as it came: after the decision */
        record(w, tw_recorder_frame(w->cfg.recorder, (uint8_t)(line < 0 ? 0 : line), record_ts(w, t_wire, t_rx), d,
                                    len));
}

/* A kernel receive stamp (CLOCK_REALTIME) on CLOCK_MONOTONIC, or 0. */
static inline uint64_t kernel_stamp(const struct tw_worker *w, uint64_t real_ns)
{
    int64_t mono = (int64_t)real_ns - w->real_off;
    return real_ns && mono > 0 ? (uint64_t)mono : 0;
}

/* The line sockets: what each has, in one recvmmsg a line. Returns datagrams read. */
static uint32_t poll_sockets(struct tw_worker *w)
{
    struct tw_worker_stats *st = w->st;
    struct sock_bufs *sk = w->sk;
    uint32_t got = 0;
    for (uint32_t l = 0; l < 2; l++) {
        int fd = w->cfg.sock_fd[l];
        if (fd <= 0)
            continue;
        for (uint32_t i = 0; i < w->cfg.burst; i++) {
            sk->iov[i] = (struct iovec){ sk->data[i], SOCK_FRAME };
            sk->mm[i].msg_hdr = (struct msghdr){ .msg_iov = &sk->iov[i], .msg_iovlen = 1,
                                                  .msg_name = &sk->src[i], .msg_namelen = sizeof(sk->src[i]),
                                                  .msg_control = sk->ctl[i], .msg_controllen = sizeof(sk->ctl[i]) };
        }
        int n = recvmmsg(fd, sk->mm, w->cfg.burst, MSG_DONTWAIT, NULL);
        st->polls++;
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                st->sock_errors++;
            continue;
        }
        uint64_t t_rx_tsc = rte_rdtsc(), t_rx = tw_mono_ns();
        st->busy_polls++;
        st->rx_packets[l] += (uint64_t)n;
        for (int i = 0; i < n; i++) {
            const struct msghdr *h = &sk->mm[i].msg_hdr;
            uint32_t len = sk->mm[i].msg_len;
            st->rx_bytes += len;
            if (h->msg_flags & MSG_TRUNC) {
                st->multi_segment++;
                continue;
            }
            uint64_t stamp = 0;
            for (struct cmsghdr *cm = CMSG_FIRSTHDR(h); cm; cm = CMSG_NXTHDR((struct msghdr *)h, cm))
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
                    stamp = kernel_stamp(w, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
                }
            if (!stamp)
                st->no_meta++;
            datagram(w, l, sk->data[i], len, stamp, t_rx, t_rx_tsc);
            if (w->cfg.recorder)
                record(w, tw_recorder_datagram(w->cfg.recorder, (uint8_t)l, record_ts(w, stamp, t_rx),
                                               sk->src[i].sin_addr.s_addr, ntohs(sk->src[i].sin_port),
                                               w->cfg.group[l], w->cfg.udp_port[l], sk->data[i], len));
        }
        got += (uint32_t)n;
    }
    return got;
}

/* ---- retransmission ------------------------------------------------------------------ */

/* A gap is open, or answers may still come: read them, give up a gap that has
 * lasted too long, ask (again) when the other line has had its chance. */
static void service_gap(struct tw_worker *w, uint64_t now)
{
    struct tw_worker_stats *st = w->st;
    int fd = w->cfg.retrans_fd;
    if (fd >= 0 && w->asked_ns && now - w->asked_ns < ANSWER_WINDOW_NS) {
        uint8_t buf[2048];
        for (int i = 0; i < 64; i++) {
            ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (n < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    st->retrans_errors++;
                break;
            }
            st->retrans_answers++;
            if (w->cfg.recorder)
                record(w, tw_recorder_datagram(w->cfg.recorder, 2, (uint64_t)((int64_t)now + w->real_off), w->rt_saddr,
                                               w->rt_sport, w->rt_daddr, w->rt_dport, buf, (uint32_t)n));
            feed_step(w->feed, w->books, &w->sink, 2, buf, (uint32_t)n);
        }
    }
    uint64_t first, count;
    if (!tw_feed_missing(w->feed, &first, &count) || count == 0) {
        w->gap_since = 0;
        return;
    }
    if (!w->gap_since)
        w->gap_since = now;
    if (w->cfg.give_up_ns && now - w->gap_since > w->cfg.give_up_ns) {
        tw_feed_skip_gap(w->feed);
        feed_apply(w->feed, w->books, &w->sink); /* what was held after the hole */
        w->gap_since = 0;
        w->asked_ns = 0;
        w->asked_count = 0;
        return;
    }
    if (fd < 0 || now - w->gap_since < w->cfg.retrans_delay_ns)
        return; /* the other line may still bring it */
    int answered = first >= w->asked_first + w->asked_count;
    if (w->asked_ns && !answered && now - w->asked_ns < w->cfg.retrans_interval_ns)
        return;
    uint8_t session[10];
    int known;
    tw_feed_session(w->feed, session, &known);
    if (!known)
        return;
    if (count > w->cfg.retrans_max)
        count = w->cfg.retrans_max;
    uint8_t req[20];
    memcpy(req, session, 10);
    wr64(req + 10, first);
    wr16(req + 18, (uint16_t)count);
    if (send(fd, req, sizeof(req), MSG_DONTWAIT) != (ssize_t)sizeof(req)) {
        st->retrans_errors++;
        return;
    }
    st->retrans_requests++;
    w->asked_ns = now;
    w->asked_first = first;
    w->asked_count = count;
    struct tw_event ev = { .ts_ns = now, .type = TW_EV_RETRANS_REQUEST, .a = first, .b = count };
    ring_emit(w, &ev);
}

/* ---- the loop ------------------------------------------------------------------------- */

static void publish(struct tw_worker *w)
{
    tw_feed_state(w->feed, &w->st->feed);
    tw_books_stats(w->books, &w->st->book);
    w->st->live_orders = tw_books_live_orders(w->books);
}

/* The first time round: the clocks mapped, the start noted. */
static void begin(struct tw_worker *w)
{
    calibrate(w);
    uint64_t now = now_ns(w);
    w->last_cal = now;
    w->st->started_ns = now;
    w->st->heartbeat_ns = now;
}

/* Everything in a loop iteration but reading packets: statistics, retransmission,
 * the session's answers, the strategy's timer, the clocks. */
static void housekeeping(struct tw_worker *w, uint64_t now, uint32_t got)
{
    struct tw_worker_stats *st = w->st;
    const struct tw_worker_config *c = &w->cfg;
    if (got) {
        st->last_packet_ns = now;
        if (!w->first_packet)
            w->first_packet = now;
        publish(w);
    }
    if (st->feed.in_gap || (w->asked_ns && now - w->asked_ns < ANSWER_WINDOW_NS)) {
        uint64_t t_dec = rte_rdtsc();
        service_gap(w, now);
        publish(w);
        if (w->nstrat) { /* what the answers (or a skipped gap) changed; no arrival stamp to measure from */
            uint64_t t = rte_rdtsc();
            struct trigger tr = { .t_rx = now, .t_rx_tsc = t_dec, .t_dec_tsc = t_dec, .t_app_tsc = t, .line = 2 };
            dispatch(w, &tr);
        }
    }
    if (c->ouch && now - w->last_ouch_poll >= c->ouch_poll_ns) {
        w->last_ouch_poll = now;
        answers(w, now);
    }
    if (now - st->heartbeat_ns > 1000000) {
        st->heartbeat_ns = now;
        if (w->nstrat)
            rewatch_if_moved(w);
        if (w->nstrat && tw_ouch_is_up(c->ouch)) { /* requotes the throttle held back */
            struct tw_actions acts;
            int stale = tw_feed_is_stale(w->feed);
            for (uint32_t k = 0; k < w->nstrat; k++) {
                tw_strategy_on_timer(c->strategies[k], w->books, stale, now, &acts);
                queue_actions(w, k, &acts, stale, now, rte_rdtsc());
            }
            send_pending(w, NULL, now);
        }
        if (now - w->last_cal > 100000000ull) {
            calibrate(w);
            w->last_cal = now;
        }
    }
}

/* The kill switch and other commands, before the next burst. */
static inline void check_kill(struct tw_worker *w)
{
    uint64_t kill = __atomic_load_n(&w->st->kill, __ATOMIC_ACQUIRE);
    if (kill != w->st->killed && w->nstrat)
        kill_switch(w, kill);
    uint64_t seq = __atomic_load_n(&w->st->cmd_seq, __ATOMIC_ACQUIRE);
    if (seq != w->st->cmd_done && w->nstrat)
        command(w, seq);
}

int tw_worker_run(struct tw_worker *w)
{
    struct tw_worker_stats *st = w->st;
    const struct tw_worker_config *c = &w->cfg;
    struct rte_mbuf *pkts[64];
    begin(w);
    __atomic_store_n(&st->running, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
        uint32_t got = 0;
        check_kill(w);
        for (uint32_t p = 0; p < c->nports; p++) {
            const struct tw_worker_port *port = &c->ports[p];
            uint16_t n = rte_eth_rx_burst(port->port_id, 0, pkts, c->burst);
            st->polls++;
            if (n == 0)
                continue;
            uint64_t t_rx_tsc = rte_rdtsc(), t_rx = tw_mono_ns();
            st->busy_polls++;
            st->rx_packets[p] += n;
            for (uint16_t i = 0; i < n; i++) {
                if (i + 1 < n)
                    rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
                frame(w, port, pkts[i], t_rx, t_rx_tsc);
            }
            rte_pktmbuf_free_bulk(pkts, n);
            got += n;
        }
        if (w->sk)
            got += poll_sockets(w);
        uint64_t now = now_ns(w);
        housekeeping(w, now, got);
        if (!got) {
            /* a replay has run dry: nothing for idle_stop since its last packet (or since the start) */
            if (c->idle_stop_ns && now - (w->first_packet ? st->last_packet_ns : st->started_ns) > c->idle_stop_ns)
                break;
            if (c->idle_sleep_us)
                usleep(c->idle_sleep_us);
        }
    }
    publish(w);
    st->heartbeat_ns = now_ns(w);
    __atomic_store_n(&st->running, 0, __ATOMIC_RELEASE);
    return 0;
}

/* The caller drives the worker from its own reads (tw_worker_datagram, tw_worker_service). */
static void drive(struct tw_worker *w)
{
    w->driven = 1;
    begin(w);
    __atomic_store_n(&w->st->running, 1, __ATOMIC_RELEASE);
}

void tw_worker_datagram(struct tw_worker *w, uint32_t line, const uint8_t *payload, uint32_t len,
                        uint64_t kernel_stamp_ns)
{
    uint64_t t_rx_tsc = rte_rdtsc(), t_rx = tw_mono_ns();
    if (!w->driven)
        drive(w);
    check_kill(w);
    struct tw_worker_stats *st = w->st;
    st->polls++;
    st->busy_polls++;
    st->rx_packets[line < 2 ? line : 0]++;
    st->rx_bytes += len;
    uint64_t stamp = kernel_stamp(w, kernel_stamp_ns);
    if (!stamp)
        st->no_meta++;
    datagram(w, line, payload, len, stamp, t_rx, t_rx_tsc);
    if (w->cfg.recorder && line < 2)
        record(w, tw_recorder_datagram(w->cfg.recorder, (uint8_t)line, record_ts(w, stamp, t_rx), 0, 0,
                                       w->cfg.group[line], w->cfg.udp_port[line], payload, len));
    housekeeping(w, now_ns(w), 1);
}

void tw_worker_service(struct tw_worker *w)
{
    if (!w->driven)
        drive(w);
    check_kill(w);
    housekeeping(w, now_ns(w), 0);
}

static int lcore_main(void *arg)
{
    return tw_worker_run(arg);
}

int tw_worker_launch(struct tw_worker *w, uint32_t lcore)
{
    __atomic_store_n(&w->stop, 0, __ATOMIC_RELEASE);
    /* running from now, not from when the lcore gets to it: a caller polling
     * `running` right after this call must not take the worker for finished */
    __atomic_store_n(&w->st->running, 1, __ATOMIC_RELEASE);
    int rc = rte_eal_remote_launch(lcore_main, w, lcore);
    if (rc < 0)
        __atomic_store_n(&w->st->running, 0, __ATOMIC_RELEASE);
    return rc;
}

void tw_worker_stop(struct tw_worker *w)
{
    __atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
    if (w->driven) { /* no loop to notice: done now */
        publish(w);
        w->st->heartbeat_ns = now_ns(w);
        __atomic_store_n(&w->st->running, 0, __ATOMIC_RELEASE);
    }
}

int tw_worker_wait(uint32_t lcore)
{
    return rte_eal_wait_lcore(lcore);
}

uint32_t tw_worker_events(struct tw_worker *w, struct tw_event *out, uint32_t max)
{
    return tw_event_ring_take(&w->events, out, max);
}
