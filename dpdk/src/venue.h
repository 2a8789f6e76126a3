/* venue.h — the one seam through which the order path (orders.c) reaches the venue:
 * enter, cancel, cork, flush, is_up and poll for answers. Today the live SoupBinTCP/
 * OUCH session (session.c) stands behind it; a simulated venue can stand in its place
 * by giving its own ops, without touching strategies or risk. One indirect call per
 * order or cancel: nothing beside the send() it leads to. C only. */
#ifndef TW_VENUE_H
#define TW_VENUE_H
#include <stdint.h>

#include "order_entry.h"

struct tw_venue_ops {
    /* an order: 0 when queued, -1 when it cannot go (not up, no room); tif '0' day, '3' IOC */
    int (*enter)(void *impl, uint32_t user_ref, uint8_t side, uint32_t qty, const char *symbol, uint64_t price,
                 uint8_t tif, uint64_t now_ns);
    /* a cancel (qty: the new size, 0 cancels the rest): 0 or -1 */
    int (*cancel)(void *impl, uint32_t user_ref, uint32_t qty, uint64_t now_ns);
    /* hold what is queued until flush: a decision's orders and cancels leave together */
    void (*cork)(void *impl);
    /* send what is held: 0, or -1 when the link broke (its orders come back from poll as not sent) */
    int (*flush)(void *impl, uint64_t now_ns);
    int (*is_up)(const void *impl);
    /* the venue's answers (struct tw_ouch_msg: accepted, executed, canceled, rejected, not sent) */
    uint32_t (*poll)(void *impl, uint64_t now_ns, struct tw_ouch_msg *out, uint32_t max);
};

struct tw_venue {
    const struct tw_venue_ops *ops;
    void *impl;
};

/* session.c: the live SoupBinTCP/OUCH session as a venue (impl: its struct tw_ouch) */
extern const struct tw_venue_ops tw_session_venue;

static inline int tw_venue_enter(const struct tw_venue *v, uint32_t user_ref, uint8_t side, uint32_t qty,
                                 const char *symbol, uint64_t price, uint8_t tif, uint64_t now_ns)
{
    return v->ops->enter(v->impl, user_ref, side, qty, symbol, price, tif, now_ns);
}
static inline int tw_venue_cancel(const struct tw_venue *v, uint32_t user_ref, uint32_t qty, uint64_t now_ns)
{
    return v->ops->cancel(v->impl, user_ref, qty, now_ns);
}
static inline void tw_venue_cork(const struct tw_venue *v)
{
    v->ops->cork(v->impl);
}
static inline int tw_venue_flush(const struct tw_venue *v, uint64_t now_ns)
{
    return v->ops->flush(v->impl, now_ns);
}
static inline int tw_venue_is_up(const struct tw_venue *v)
{
    return v->ops->is_up(v->impl);
}
static inline uint32_t tw_venue_poll(const struct tw_venue *v, uint64_t now_ns, struct tw_ouch_msg *out,
                                     uint32_t max)
{
    return v->ops->poll(v->impl, now_ns, out, max);
}

#endif
