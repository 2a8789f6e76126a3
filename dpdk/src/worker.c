/* worker.c — the lcore loop, wiring the stages: receive a burst (rx.c), return
 * early if it is empty, hand each datagram to the feed (mold.c), each message it
 * hands back to the decoder (itch.c, the only caller of the book), the books'
 * changes to the order path (orders.c: strategies -> risk -> venue), then the
 * housekeeping: retransmission, the venue's answers, the timer, the clocks. Live
 * (af_xdp) and replay (pcap) ports run this same code. Setup and lifecycle are
 * worker_setup.c's, the shared state loop.h's, the clocks clock.h's. See worker.h.
 */
#define _GNU_SOURCE /* recvmmsg (rx.h) */
#include <arpa/inet.h>
#include <unistd.h>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "loop.h"

#define STOP_CANCEL_NS 2000000000ull /* stop_cancel_ns 0: the venue's cancels get 2 s (as --cancel-timeout) */

/* ---- one datagram, from a port's frame or a socket ------------------------------------------
 * t_rx: CLOCK_MONOTONIC when its burst was read (the stamp's clock, read directly: a mapped
 * TSC on another CPU could be microseconds off); t_rx_tsc: the TSC then, for the short
 * stages that follow on this CPU. */
static inline void datagram(struct tw_worker *w, const struct tw_datagram *d, uint64_t t_rx, uint64_t t_rx_tsc)
{
    struct tw_worker_stats *st = w->st;
    uint64_t t_wire = d->t_wire > t_rx ? 0 : d->t_wire; /* a hardware clock's stamp: another timescale */
    uint64_t t_dec = rte_rdtsc();
    tw_loop_feed_step(w->feed, w->books, &w->sink, (uint32_t)d->line, d->payload, d->len);
    uint64_t t_app = rte_rdtsc();
    if (w->cfg.nstrategies) {
        struct tw_trigger tr = { .t_wire = t_wire, .t_rx = t_rx, .t_rx_tsc = t_rx_tsc, .t_dec_tsc = t_dec,
                                 .t_app_tsc = t_app, .line = (uint8_t)d->line,
                                 .seq = d->len >= TW_MOLD_HEADER ? rd64(d->payload + 10) : 0 };
        tw_orders_dispatch(&w->orders, tw_feed_is_stale(w->feed), &tr);
    }
    uint64_t queue = tw_clock_ns(&w->clock, t_dec - t_rx_tsc), apply = tw_clock_ns(&w->clock, t_app - t_dec);
    tw_hist_record(&st->hist[TW_STAGE_QUEUE], queue);
    tw_hist_record(&st->hist[TW_STAGE_APPLY], apply);
    if (t_wire) {
        tw_hist_record(&st->hist[TW_STAGE_WIRE], t_rx - t_wire);
        tw_hist_record(&st->hist[TW_STAGE_TOTAL], t_rx - t_wire + queue + apply);
    }
}

/* The recorder keeps every frame, at its arrival stamp (else its read) on CLOCK_REALTIME. */
static inline void record(struct tw_worker *w, int rc)
{
    if (rc == 0)
        w->st->recorded++;
    else
        w->st->record_dropped++;
}

static inline uint64_t record_ts(const struct tw_worker *w, uint64_t t_wire, uint64_t t_rx)
{
    return tw_clock_to_real(&w->clock, t_wire && t_wire <= t_rx ? t_wire : t_rx); /* a PHC stamp: the read */
}

/* ---- housekeeping: retransmission, answers, timer, clocks ------------------------------------ */

/* A gap is open, or answers may still come: read them, then do what mold says of the gap. */
static void service_gap(struct tw_worker *w, uint64_t now)
{
    int fd = w->cfg.retrans_fd;
    if (fd >= 0 && w->rr.asked_ns && now - w->rr.asked_ns < ANSWER_WINDOW_NS) {
        uint8_t buf[2048];
        int n;
        for (int i = 0; i < 64 && (n = tw_rx_answer(fd, buf, sizeof(buf), w->st)) >= 0; i++) {
            if (w->cfg.recorder)
                record(w, tw_recorder_datagram(w->cfg.recorder, 2, tw_clock_to_real(&w->clock, now), w->rt_saddr,
                                               w->rt_sport, w->rt_daddr, w->rt_dport, buf, (uint32_t)n));
            tw_loop_feed_step(w->feed, w->books, &w->sink, 2, buf, (uint32_t)n);
        }
    }
    uint8_t req[20];
    switch (tw_feed_gap_action(w->feed, &w->rr, now, req)) {
    case TW_GAP_GIVE_UP:
        tw_feed_skip_gap(w->feed);
        tw_loop_feed_apply(w->feed, w->books, &w->sink); /* what was held after the hole */
        break;
    case TW_GAP_ASK:
        if (tw_rx_request(fd, req, sizeof(req), w->st) == 0) {
            tw_feed_asked(&w->rr, now, req);
            struct tw_event ev = { .ts_ns = now, .type = TW_EV_RETRANS_REQUEST, .a = w->rr.asked_first,
                                   .b = w->rr.asked_count };
            tw_raise(&w->sink, &ev);
        }
        break;
    default:
        break;
    }
}

/* ---- fail safe: a trading worker stops quoting and cancels when Python cannot follow --------------
 * The dead-man switch: the control loop stamps stats.control_heartbeat_ns (CLOCK_MONOTONIC) every
 * round; a stamp older than deadman_ns means it hung or died while this loop trades blind (the risk
 * manager sees nothing, the events pile up). A dropped event means the journal misses an order or a
 * fill, and a restart would seed wrong positions. Either throws the kill switch; about every
 * millisecond, never per packet. */
static void fail_safe(struct tw_worker *w, uint64_t now)
{
    struct tw_worker_stats *st = w->st;
    uint64_t stamp = __atomic_load_n(&st->control_heartbeat_ns, __ATOMIC_ACQUIRE);
    if (!__atomic_load_n(&st->kill, __ATOMIC_ACQUIRE)) {
        if (st->events_dropped != w->seen_dropped)
            tw_loop_kill(w, TW_KILL_EVENTS_DROPPED, now);
        else if (w->cfg.deadman_ns && now > stamp && now - stamp > w->cfg.deadman_ns)
            tw_loop_kill(w, TW_KILL_DEADMAN, now);
    }
    w->seen_dropped = st->events_dropped; /* thrown already: nothing more to do (its own event may be one) */
}

/* On its way out (stopped, or a replay run dry) a trading worker leaves nothing resting at the venue:
 * with the session up and orders open it throws the kill switch (TW_KILL_STOPPING) unless it is thrown
 * already, and the loop goes on reading the venue's answers until no order is open, the session is
 * gone, or stop_cancel_ns has passed since the kill. 1 when the loop may end. */
static int may_end(struct tw_worker *w)
{
    struct tw_worker_stats *st = w->st;
    if (!tw_loop_resting(w))
        return 1;
    if (!__atomic_load_n(&st->kill, __ATOMIC_ACQUIRE))
        tw_loop_kill(w, TW_KILL_STOPPING, tw_mono_ns());
    if (!st->killed)
        return 0; /* thrown by another process a moment ago: acted on at the top of the iteration */
    uint64_t now = tw_mono_ns(), bound = w->cfg.stop_cancel_ns ? w->cfg.stop_cancel_ns : STOP_CANCEL_NS;
    return now > st->killed_ns && now - st->killed_ns > bound; /* read after the kill: killed_ns is not ahead */
}

static void housekeeping(struct tw_worker *w, uint64_t now, uint32_t got)
{
    struct tw_worker_stats *st = w->st;
    const struct tw_worker_config *c = &w->cfg;
    if (got) {
        st->last_packet_ns = now;
        if (!w->first_packet)
            w->first_packet = now;
        tw_loop_publish(w);
    }
    if (st->feed.in_gap || (w->rr.asked_ns && now - w->rr.asked_ns < ANSWER_WINDOW_NS)) {
        uint64_t t_dec = rte_rdtsc();
        service_gap(w, now);
        tw_loop_publish(w);
        if (c->nstrategies) { /* what the answers (or a skipped gap) changed; no arrival stamp to measure from */
            struct tw_trigger tr = { .t_rx = now, .t_rx_tsc = t_dec, .t_dec_tsc = t_dec, .t_app_tsc = rte_rdtsc(),
                                     .line = 2 };
            tw_orders_dispatch(&w->orders, tw_feed_is_stale(w->feed), &tr);
        }
    }
    if (c->ouch && now - w->last_answers >= c->ouch_poll_ns) {
        w->last_answers = now;
        tw_orders_answers(&w->orders, now);
    }
    if (now - st->heartbeat_ns > 1000000) {
        st->heartbeat_ns = now;
        if (c->nstrategies) {
            fail_safe(w, now);
            tw_orders_timer(&w->orders, tw_feed_is_stale(w->feed), now);
        }
        if (now - w->last_cal > 100000000ull) {
            tw_clock_calibrate(&w->clock);
            w->last_cal = now;
        }
    }
}

/* ---- the loop ---------------------------------------------------------------------------------- */

static inline uint32_t poll_port(struct tw_worker *w, uint32_t p)
{
    const struct tw_worker_port *port = &w->cfg.ports[p];
    struct rte_mbuf *pkts[64];
    uint16_t n = rte_eth_rx_burst(port->port_id, 0, pkts, w->cfg.burst);
    w->st->polls++;
    if (n == 0)
        return 0;
    uint64_t t_rx_tsc = rte_rdtsc(), t_rx = tw_mono_ns();
    w->st->busy_polls++;
    w->st->rx_packets[p] += n;
    for (uint16_t i = 0; i < n; i++) {
        if (i + 1 < n)
            rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
        struct tw_datagram d;
        int rc = tw_rx_frame(&w->cfg, port, pkts[i], w->st, &d);
        if (rc == TW_RX_DROP)
            continue;
        if (rc == TW_RX_DATAGRAM)
            datagram(w, &d, t_rx, t_rx_tsc);
        else if (rc == TW_RX_REFUSED) /* issue 16 (B): not the line's publisher: counted, raised, kept */
            tw_feed_refuse(w->feed, (uint32_t)d.line, TW_REFUSED_SOURCE);
        if (w->cfg.recorder) /* every frame, the ones we cannot read too, kept as it came: after the decision */
            record(w, tw_recorder_frame(w->cfg.recorder, (uint8_t)(d.line < 0 ? 0 : d.line),
                                        record_ts(w, d.t_wire, t_rx), rte_pktmbuf_mtod(pkts[i], uint8_t *),
                                        rte_pktmbuf_data_len(pkts[i])));
    }
    rte_pktmbuf_free_bulk(pkts, n);
    return n;
}

static inline uint32_t poll_socket(struct tw_worker *w, uint32_t l)
{
    uint32_t n = tw_rx_socket(w->sk, w->cfg.sock_fd[l], w->cfg.burst, w->st);
    if (n == 0)
        return 0;
    uint64_t t_rx_tsc = rte_rdtsc(), t_rx = tw_mono_ns();
    w->st->rx_packets[l] += n;
    for (uint32_t i = 0; i < n; i++) {
        struct tw_datagram d;
        int rc = tw_rx_socket_datagram(w->sk, i, l, &w->cfg, &w->clock, w->st, &d);
        if (rc == TW_RX_REFUSED) /* issue 16 (B): not the line's publisher: counted, raised */
            tw_feed_refuse(w->feed, l, TW_REFUSED_SOURCE);
        if (rc < 0)
            continue;
        datagram(w, &d, t_rx, t_rx_tsc);
        if (w->cfg.recorder)
            record(w, tw_recorder_datagram(w->cfg.recorder, (uint8_t)l, record_ts(w, d.t_wire, t_rx),
                                           w->sk->src[i].sin_addr.s_addr, ntohs(w->sk->src[i].sin_port),
                                           w->cfg.group[l], w->cfg.udp_port[l], d.payload, d.len));
    }
    return n;
}

int tw_worker_run(struct tw_worker *w)
{
    struct tw_worker_stats *st = w->st;
    const struct tw_worker_config *c = &w->cfg;
    tw_loop_begin(w);
    __atomic_store_n(&st->running, 1, __ATOMIC_RELEASE);
    for (int ending = 0;;) {
        if ((ending || __atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) && may_end(w))
            break;
        uint32_t got = 0;
        if (c->nstrategies)
            tw_control_poll(&w->orders);
        for (uint32_t p = 0; p < c->nports; p++)
            got += poll_port(w, p);
        for (uint32_t l = 0; w->sk && l < 2; l++)
            if (c->sock_fd[l] > 0)
                got += poll_socket(w, l);
        uint64_t now = tw_clock_now(&w->clock);
        housekeeping(w, now, got);
        if (!got) {
            /* a replay has run dry: nothing for idle_stop since its last packet (or since the start) */
            if (c->idle_stop_ns && now - (w->first_packet ? st->last_packet_ns : st->started_ns) > c->idle_stop_ns)
                ending = 1;
            if (c->idle_sleep_us)
                usleep(c->idle_sleep_us);
        }
    }
    tw_loop_publish(w);
    st->heartbeat_ns = tw_clock_now(&w->clock);
    __atomic_store_n(&st->running, 0, __ATOMIC_RELEASE);
    return 0;
}

/* The caller drives the worker from its own reads (tw_worker_datagram, tw_worker_service). */
static void drive(struct tw_worker *w)
{
    if (w->driven)
        return;
    w->driven = 1;
    tw_loop_begin(w);
    __atomic_store_n(&w->st->running, 1, __ATOMIC_RELEASE);
}

void tw_worker_datagram(struct tw_worker *w, uint32_t line, const uint8_t *payload, uint32_t len,
                        uint64_t kernel_stamp_ns)
{
    uint64_t t_rx_tsc = rte_rdtsc(), t_rx = tw_mono_ns();
    drive(w);
    if (w->cfg.nstrategies)
        tw_control_poll(&w->orders);
    struct tw_worker_stats *st = w->st;
    st->polls++;
    st->busy_polls++;
    st->rx_packets[line < 2 ? line : 0]++;
    st->rx_bytes += len;
    struct tw_datagram d = { .payload = payload, .len = len, .line = (int)line,
                             .t_wire = tw_clock_from_real(&w->clock, kernel_stamp_ns) };
    if (!d.t_wire)
        st->no_meta++;
    datagram(w, &d, t_rx, t_rx_tsc);
    if (w->cfg.recorder && line < 2)
        record(w, tw_recorder_datagram(w->cfg.recorder, (uint8_t)line, record_ts(w, d.t_wire, t_rx), 0, 0,
                                       w->cfg.group[line], w->cfg.udp_port[line], payload, len));
    housekeeping(w, tw_clock_now(&w->clock), 1);
}

void tw_worker_service(struct tw_worker *w)
{
    drive(w);
    if (w->cfg.nstrategies)
        tw_control_poll(&w->orders);
    housekeeping(w, tw_clock_now(&w->clock), 0);
}


