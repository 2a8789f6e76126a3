/* worker_setup.c — the worker's setup and lifecycle around its loop (worker.c): create
 * and destroy, launch on an lcore, stop, wait, drain the events; and the feed step for
 * Python's Feed (tw_feed_packet, tw_feed_apply), the same the loop takes. See worker.h.
 */
#define _GNU_SOURCE /* recvmmsg (rx.h) */
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <rte_launch.h>

#include "loop.h"

int tw_feed_packet(struct tw_feed *f, struct tw_books *b, const struct tw_event_sink *sink, uint32_t line,
                   const uint8_t *pkt, uint32_t len)
{
    return tw_loop_feed_step(f, b, sink, line, pkt, len);
}

void tw_feed_apply(struct tw_feed *f, struct tw_books *b, const struct tw_event_sink *sink)
{
    tw_loop_feed_apply(f, b, sink);
}

/* ---- create, destroy ------------------------------------------------------------------------ */

static void ends(int fd, int peer, uint32_t *addr, uint16_t *port)
{
    struct sockaddr_in a;
    socklen_t n = sizeof(a);
    if ((peer ? getpeername(fd, (struct sockaddr *)&a, &n) : getsockname(fd, (struct sockaddr *)&a, &n)) == 0) {
        *addr = a.sin_addr.s_addr;
        *port = ntohs(a.sin_port);
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
    w->books = books;
    w->feed = feed;
    w->own_stats = stats == NULL;
    w->st = stats ? stats : calloc(1, sizeof(*w->st));
    if (!w->st)
        goto fail;
    if (cfg->nstrategies && tw_orders_init(&w->orders, &w->cfg, books, w->st, &w->clock, &w->sink) < 0)
        goto fail;
    if ((cfg->sock_fd[0] > 0 || cfg->sock_fd[1] > 0) && !(w->sk = calloc(1, sizeof(*w->sk))))
        goto fail;
    if (tw_event_ring_init(&w->events, name, cfg->event_ring_size, &w->st->events, &w->st->events_dropped) < 0)
        goto fail;
    w->sink = (struct tw_event_sink){ tw_event_ring_emit, &w->events };
    uint32_t max = cfg->retrans_max == 0 || cfg->retrans_max > 65534 ? 65534 : cfg->retrans_max; /* 0xFFFF: end */
    w->rr = (struct tw_rerequest){ .delay_ns = cfg->retrans_delay_ns, .interval_ns = cfg->retrans_interval_ns,
                                   .give_up_ns = cfg->give_up_ns, .max = max, .can_ask = cfg->retrans_fd >= 0 };
    if (cfg->retrans_fd >= 0) { /* once, at creation: the addresses a recorded answer is written with */
        ends(cfg->retrans_fd, 1, &w->rt_saddr, &w->rt_sport);
        ends(cfg->retrans_fd, 0, &w->rt_daddr, &w->rt_dport);
    }
    memset(w->st, 0, sizeof(*w->st));
    w->st->size = sizeof(*w->st);
    w->st->pid = (uint64_t)getpid();
    w->st->magic = TW_STATS_MAGIC;
    tw_feed_set_events(feed, &w->sink);
    if (cfg->risk)
        tw_risk_set_events(cfg->risk, &w->sink);
    return w;
fail: /* what was made, unmade: nothing watched, nothing allocated */
    if (w->orders.first_on)
        tw_orders_fini(&w->orders);
    if (w->own_stats)
        free(w->st);
    free(w->sk);
    free(w);
    return NULL;
}

void tw_worker_destroy(struct tw_worker *w)
{
    if (!w)
        return;
    tw_feed_set_events(w->feed, NULL);
    if (w->cfg.risk)
        tw_risk_set_events(w->cfg.risk, NULL);
    if (w->cfg.nstrategies)
        tw_orders_fini(&w->orders);
    tw_event_ring_fini(&w->events);
    if (w->own_stats)
        free(w->st);
    free(w->sk);
    free(w);
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
    if (w->driven) { /* no loop to notice: done now; the cancels sent, no loop to read their answers */
        if (tw_loop_resting(w) && !__atomic_load_n(&w->st->kill, __ATOMIC_ACQUIRE))
            tw_loop_kill(w, TW_KILL_STOPPING, tw_mono_ns());
        tw_loop_publish(w);
        w->st->heartbeat_ns = tw_clock_now(&w->clock);
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
