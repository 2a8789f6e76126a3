/* control.c — the kill switch and the operator's commands, before the next burst.
 * The kill switch: the worker itself (the dead-man, a bad answer) or its control loop writes
 * kill_reason then kill = 1; the loop acts on it here, once per iteration. The word is one-way:
 * only a command releases it. Commands (tickwire kill, resume, reload, the risk manager's trips):
 * one datagram each on the worker's command socket (worker.h: struct tw_command), read when the
 * heartbeat moves (about every millisecond, never per packet), carried out in the order they
 * came, each raised as a TW_EV_COMMAND event with the sender's uid, gid and pid as the kernel gave
 * them (SCM_CREDENTIALS), and answered on the socketpair end the sender passed (SCM_RIGHTS).
 */
#define _GNU_SOURCE /* struct ucred, MSG_CMSG_CLOEXEC */
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "loop.h"
#include "orders.h"
#include "strategy.h"

#define CONTROL_BATCH 16 /* commands carried out per read at most: a flood cannot hold the loop */
#define CONTROL_FDS 4    /* descriptors taken from one message (the first answers; all are closed) */

struct tw_control {
    int fd;
    uint32_t euid;       /* the worker's user: it, and root, may command */
    uint64_t pid;        /* the worker's process (its main thread is the control loop) */
    uint64_t heartbeat;  /* the stats' heartbeat when the socket was last read */
    uint64_t count;      /* commands numbered so far */
    struct {
        uint64_t number; /* 0 while being written */
        struct tw_command cmd;
    } texts[TW_COMMAND_TEXTS];
};

struct tw_control *tw_control_open(int fd)
{
    struct tw_control *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->fd = fd;
    c->euid = (uint32_t)geteuid();
    c->pid = (uint64_t)getpid();
    return c;
}

void tw_control_close(struct tw_control *c)
{
    free(c);
}

/* A seqlock of one writer (the loop): the number is 0 while the slot is written. */
int tw_control_text(const struct tw_control *c, uint64_t number, struct tw_command *out)
{
    const __typeof__(c->texts[0]) *t = &c->texts[number % TW_COMMAND_TEXTS];
    if (number == 0 || __atomic_load_n(&t->number, __ATOMIC_ACQUIRE) != number)
        return -1;
    memcpy(out, &t->cmd, sizeof(*out));
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&t->number, __ATOMIC_RELAXED) == number ? 0 : -1;
}

static void keep_text(struct tw_control *c, uint64_t number, const struct tw_command *cmd)
{
    __typeof__(c->texts[0]) *t = &c->texts[number % TW_COMMAND_TEXTS];
    __atomic_store_n(&t->number, 0, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(&t->cmd, cmd, sizeof(*cmd));
    __atomic_store_n(&t->number, number, __ATOMIC_RELEASE);
}

/* The orders are always a worker's own (struct tw_worker.orders): its config holds the socket. */
static struct tw_control *control_of(struct tw_orders *o)
{
    return ((struct tw_worker *)(void *)((char *)o - offsetof(struct tw_worker, orders)))->cfg.control;
}

/* ---- the kill switch at its three levels ------------------------------------------------------ */

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

/* The whole worker, by command: thrown with the command's reason (a switch already thrown keeps
 * its own), or released. */
static int whole(struct tw_orders *o, uint8_t kill, uint64_t reason)
{
    struct tw_worker_stats *st = o->st;
    if (kill && !st->killed)
        st->kill_reason = reason;
    __atomic_store_n(&st->kill, kill, __ATOMIC_RELEASE);
    if (kill != !!st->killed)
        kill_switch(o, kill);
    return 0;
}

/* Reload: the control loop's SIGHUP handler (appliance.feed.reloader) does it; the worker signals
 * its own main thread, never a pid from elsewhere. 1 when no handler is installed (the default
 * action would end the process). */
static int reload(const struct tw_control *c)
{
    struct sigaction sa;
    if (sigaction(SIGHUP, NULL, &sa) < 0)
        return 1;
    if (!(sa.sa_flags & SA_SIGINFO) && (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN))
        return 1;
    return syscall(SYS_tgkill, (pid_t)c->pid, (pid_t)c->pid, SIGHUP) < 0;
}

/* ---- commands ---------------------------------------------------------------------------------- */

static uint32_t carry_out(struct tw_orders *o, const struct tw_control *c, const struct tw_command *m,
                          const struct ucred *who, int risk_manager)
{
    if (!who || m->magic != TW_COMMAND_MAGIC)
        return TW_CMDR_MALFORMED;
    if (who->uid != 0 && who->uid != c->euid)
        return TW_CMDR_REFUSED;
    uint64_t arg = m->arg;
    switch (m->cmd) {
    case TW_CMD_KILL_INSTRUMENT:
    case TW_CMD_RELEASE_INSTRUMENT:
        return (uint32_t)instrument(o, arg, m->cmd == TW_CMD_KILL_INSTRUMENT);
    case TW_CMD_KILL_STRATEGY:
    case TW_CMD_RELEASE_STRATEGY:
        return (uint32_t)strategy(o, arg, m->cmd == TW_CMD_KILL_STRATEGY);
    case TW_CMD_KILL:
    case TW_CMD_RELEASE:
        return (uint32_t)whole(o, m->cmd == TW_CMD_KILL, risk_manager ? TW_KILL_RISK_MANAGER : TW_KILL_OPERATOR);
    case TW_CMD_RELOAD:
        return (uint32_t)reload(c);
    default:
        return TW_CMDR_MALFORMED;
    }
}

/* One message: carried out, numbered, kept, published, raised, answered; its descriptors closed. */
static void command(struct tw_orders *o, struct tw_control *c, const struct tw_command *m, int sized,
                    const struct ucred *who, const int *fds, int nfds)
{
    struct tw_worker_stats *st = o->st;
    struct tw_command none = { 0 };
    if (!sized)
        m = &none;
    int risk_manager = who && m->by == TW_BY_RISK_MANAGER && (uint64_t)who->pid == c->pid;
    uint64_t sent_before = st->kill_sent_ns;
    uint32_t result = carry_out(o, c, m, sized ? who : NULL, risk_manager);
    int kill = st->kill_sent_ns != sent_before; /* this command sent cancels (a kill already thrown sends none) */
    uint64_t now = tw_mono_ns(), number = ++c->count;
    keep_text(c, number, m);
    st->cmd = m->cmd;
    st->cmd_arg = m->arg;
    st->cmd_result = result;
    st->cmd_done_ns = now;
    st->cmd_done = number;
    st->cmd_seq++;
    struct tw_event ev = { .ts_ns = now, .type = TW_EV_COMMAND, .code = (uint8_t)m->cmd, .line = (uint8_t)result,
                           .a = m->request_id, .b = who ? who->uid : UINT32_MAX, .seq = who ? (uint64_t)who->pid : 0,
                           .value = number, .side = (uint8_t)risk_manager, .strategy = TW_ORDERS_NONE };
    ev.stage_ns[0] = who ? who->gid : UINT32_MAX;
    if ((m->cmd == TW_CMD_KILL_INSTRUMENT || m->cmd == TW_CMD_RELEASE_INSTRUMENT) && m->arg <= 0xFFFF)
        ev.locate = (uint16_t)m->arg;
    if ((m->cmd == TW_CMD_KILL_STRATEGY || m->cmd == TW_CMD_RELEASE_STRATEGY) && m->arg < o->nstrat)
        ev.strategy = (uint8_t)m->arg;
    tw_raise(o->events, &ev);
    struct tw_command_answer a = { .magic = TW_COMMAND_MAGIC, .result = result, .request_id = m->request_id,
                                   .number = number, .done_ns = now, .cancels = kill ? st->kill_cancels : 0,
                                   .cancels_sent_ns = kill ? st->kill_sent_ns : 0,
                                   .uid = who ? who->uid : UINT32_MAX, .gid = who ? who->gid : UINT32_MAX,
                                   .pid = who ? (uint64_t)who->pid : 0 };
    if (nfds) /* never blocks: a sender that does not read loses its answer */
        send(fds[0], &a, sizeof(a), MSG_DONTWAIT | MSG_NOSIGNAL);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
}

/* Up to CONTROL_BATCH messages waiting on the socket, each with its credentials and descriptors. */
static void read_commands(struct tw_orders *o, struct tw_control *c)
{
    for (int i = 0; i < CONTROL_BATCH; i++) {
        struct tw_command m;
        union {
            char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(CONTROL_FDS * sizeof(int))];
            struct cmsghdr align;
        } cbuf;
        struct iovec iov = { &m, sizeof(m) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
                             .msg_controllen = sizeof(cbuf.buf) };
        ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
        if (n < 0)
            return; /* nothing more (or an error: tried again at the next heartbeat) */
        struct ucred cred, *who = NULL;
        int fds[CONTROL_FDS], nfds = 0;
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
            if (h->cmsg_level != SOL_SOCKET)
                continue;
            if (h->cmsg_type == SCM_CREDENTIALS && h->cmsg_len >= CMSG_LEN(sizeof(cred))) {
                memcpy(&cred, CMSG_DATA(h), sizeof(cred));
                who = &cred;
            } else if (h->cmsg_type == SCM_RIGHTS) {
                size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t j = 0; j < k && nfds < CONTROL_FDS; j++)
                    memcpy(&fds[nfds++], CMSG_DATA(h) + j * sizeof(int), sizeof(int));
            }
        }
        command(o, c, &m, n == (ssize_t)sizeof(m), who, fds, nfds);
    }
}

void tw_control_poll(struct tw_orders *o)
{
    struct tw_worker_stats *st = o->st;
    uint64_t kill = __atomic_load_n(&st->kill, __ATOMIC_ACQUIRE);
    if (kill && !st->killed)
        kill_switch(o, 1);
    else if (!kill && st->killed) /* one-way: a release is a command, journaled with who asked */
        __atomic_store_n(&st->kill, 1, __ATOMIC_RELEASE);
    struct tw_control *c = control_of(o);
    if (c && st->heartbeat_ns != c->heartbeat) {
        c->heartbeat = st->heartbeat_ns;
        read_commands(o, c);
    }
}
