/* events.c — the event sinks: the in-memory log (tests, replays) and the worker's
 * rte_ring that Python drains. Stages raise into whichever sink the loop gave them
 * (tw_raise). See events.h.
 */
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "internal.h"

void tw_event_log_emit(void *ctx, const struct tw_event *ev)
{
    struct tw_event_log *log = ctx;
    if (log->n < log->cap)
        log->ev[log->n++] = *ev;
    else
        log->dropped++;
}

int tw_event_ring_init(struct tw_event_ring *r, const char *name, uint32_t size, uint64_t *count,
                       uint64_t *dropped)
{
    r->ring = rte_ring_create_elem(name, sizeof(struct tw_event), size ? size : 4096, SOCKET_ID_ANY,
                                   RING_F_SP_ENQ | RING_F_SC_DEQ);
    r->count = count;
    r->dropped = dropped;
    return r->ring ? 0 : -1;
}

void tw_event_ring_fini(struct tw_event_ring *r)
{
    rte_ring_free(r->ring);
    r->ring = NULL;
}

void tw_event_ring_emit(void *ctx, const struct tw_event *ev)
{
    struct tw_event_ring *r = ctx;
    if (rte_ring_sp_enqueue_elem(r->ring, (void *)ev, sizeof(*ev)) == 0)
        (*r->count)++;
    else
        (*r->dropped)++;
}

uint32_t tw_event_ring_take(struct tw_event_ring *r, struct tw_event *out, uint32_t max)
{
    return rte_ring_sc_dequeue_burst_elem(r->ring, out, sizeof(*out), max, NULL);
}
