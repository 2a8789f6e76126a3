/* control.c — the kill switch and the operator's commands, read from the worker's
 * shared stats once per loop iteration. Another process (tickwire feed kill, kill
 * --instrument/--strategy, resume) writes kill, or cmd and cmd_arg then cmd_seq + 1;
 * the loop carries it out here and publishes what it did. See worker.h.
 */
#include "orders.h"
#include "strategy.h"

/* Strategy k quotes unless the worker (killed: the kill switch as it is, or is being thrown), it
 * or its instrument is killed. */
static void quote_or_not(struct tw_orders *o, uint32_t k, uint64_t killed)
{
    const struct tw_worker_stats *st = o->st;
    uint64_t bit = 1ull << k;
    tw_strategy_halt(o->strategies[k], killed || (st->killed_strategy & bit) || (st->killed_instrument & bit));
}

/* Thrown (1): risk refuses every new order, the strategies stop and every open order
 * is cancelled now; released (0): they quote again from the next update (unless a
 * strategy or its instrument is killed on its own). `killed` is written last: a
 * reader that sees it sees the figures of what was done. */
static void kill_switch(struct tw_orders *o, uint64_t kill)
{
    struct tw_worker_stats *st = o->st;
    tw_risk_kill_all(o->risk, (uint8_t)kill);
    for (uint32_t k = 0; k < o->nstrat; k++)
        quote_or_not(o, k, kill); /* `killed` is still the old value: the new one is written last */
    if (kill)
        tw_orders_cancel_open(o, 0, TW_RISK_ANY);
    st->killed_ns = tw_mono_ns();
    __atomic_store_n(&st->killed, kill, __ATOMIC_RELEASE);
}

/* An instrument killed or released: risk refuses its new orders, the strategies trading it stop,
 * its open orders are cancelled. 1 when the locate is out of range. */
static int instrument(struct tw_orders *o, uint64_t arg, uint8_t kill)
{
    struct tw_worker_stats *st = o->st;
    if (arg == 0 || arg > 0xFFFF || tw_risk_kill_instrument(o->risk, (uint16_t)arg, kill) < 0)
        return 1;
    for (uint32_t k = 0; k < o->nstrat; k++) {
        if (o->locate_of[k] != arg)
            continue;
        if (kill)
            st->killed_instrument |= 1ull << k;
        else
            st->killed_instrument &= ~(1ull << k);
        quote_or_not(o, k, st->killed);
    }
    if (kill)
        tw_orders_cancel_open(o, (uint16_t)arg, TW_RISK_ANY);
    return 0;
}

/* A strategy killed or released: it stops, risk refuses its orders, its open orders are
 * cancelled. 1 when there is no such slot. */
static int strategy(struct tw_orders *o, uint64_t arg, uint8_t kill)
{
    struct tw_worker_stats *st = o->st;
    if (arg >= o->nstrat)
        return 1;
    tw_risk_kill_strategy(o->risk, (uint8_t)arg, kill);
    if (kill)
        st->killed_strategy |= 1ull << arg;
    else
        st->killed_strategy &= ~(1ull << arg);
    quote_or_not(o, (uint32_t)arg, st->killed);
    if (kill)
        tw_orders_cancel_open(o, 0, (uint8_t)arg);
    return 0;
}

/* A command from another process. */
static void command(struct tw_orders *o, uint64_t seq)
{
    struct tw_worker_stats *st = o->st;
    uint64_t cmd = st->cmd, arg = st->cmd_arg;
    switch (cmd) {
    case TW_CMD_KILL_INSTRUMENT:
    case TW_CMD_RELEASE_INSTRUMENT:
        st->cmd_result = (uint64_t)instrument(o, arg, cmd == TW_CMD_KILL_INSTRUMENT);
        break;
    case TW_CMD_KILL_STRATEGY:
    case TW_CMD_RELEASE_STRATEGY:
        st->cmd_result = (uint64_t)strategy(o, arg, cmd == TW_CMD_KILL_STRATEGY);
        break;
    default:
        st->cmd_result = 1;
        break;
    }
    st->cmd_done_ns = tw_mono_ns();
    __atomic_store_n(&st->cmd_done, seq, __ATOMIC_RELEASE);
}

void tw_control_poll(struct tw_orders *o)
{
    struct tw_worker_stats *st = o->st;
    uint64_t kill = __atomic_load_n(&st->kill, __ATOMIC_ACQUIRE);
    if (kill != st->killed)
        kill_switch(o, kill);
    uint64_t seq = __atomic_load_n(&st->cmd_seq, __ATOMIC_ACQUIRE);
    if (seq != st->cmd_done)
        command(o, seq);
}
