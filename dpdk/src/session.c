/* session.c — the worker's order-entry session, SoupBinTCP 3.00 on a non-blocking
 * kernel TCP socket, driven from the loop by tw_ouch_poll: connect, login,
 * heartbeats, link timeout, reconnect, the send buffer (corked per decision). The
 * OUCH 5.0 messages it carries are ouch.c's. It is the live venue behind venue.h.
 * See order_entry.h.
 *
 * Sequenced messages are numbered from the login's "next sequence"; a reconnect
 * logs in asking for the first one not yet seen, so the server's replay brings
 * exactly the missed ones: no gap, no duplicate.
 *
 * What cannot be comes back from the poll as a TW_OUCH_MSG_BAD message of its own, with
 * its bytes, for the order path to throw the kill switch on: a Login Accepted on a session
 * already up (ignored: it does not renumber), one whose next sequence is not the one asked
 * for (messages missed or replayed twice), a sequenced message before the login's answer
 * (ignored).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bytes.h"
#include "internal.h"
#include "ouch.h"
#include "venue.h"
#include "order_entry.h"

#define BUF 65536
#define IN_BUF (65535 + 2) /* the largest SoupBinTCP packet fits whole */
#define MAX_QUEUED (BUF / 50) /* Enter Order packets (50 bytes) that fit the send buffer */

struct queued {                /* an order still in out[], not yet handed to the kernel */
    uint32_t user_ref;
    uint32_t end;              /* its last byte's offset in out[] + 1 */
};

struct tw_ouch {
    struct tw_ouch_config cfg;
    int fd;
    int corked;                /* packets wait for tw_ouch_flush */
    uint64_t last_attempt, last_sent, last_heard;
    uint8_t in[IN_BUF];
    uint32_t in_len;
    uint8_t out[BUF];
    uint32_t out_len;
    struct queued queued[MAX_QUEUED];
    uint32_t nqueued;
    uint32_t lost[MAX_QUEUED]; /* orders a broken link took from the buffer: reported by the next poll */
    uint32_t nlost;
    uint64_t asked_seq;        /* the next sequence the last login asked for (0: none sent: inject) */
    struct tw_ouch_stats st;
};

struct tw_ouch *tw_ouch_create(const struct tw_ouch_config *cfg)
{
    struct tw_ouch *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->cfg = *cfg;
    o->fd = -1;
    o->st.next_seq = cfg->next_seq ? cfg->next_seq : 1;
    return o;
}

static void disconnect(struct tw_ouch *o, enum tw_ouch_state next)
{
    for (uint32_t i = 0; i < o->nqueued && o->nlost < MAX_QUEUED; i++)
        o->lost[o->nlost++] = o->queued[i].user_ref; /* never written: the next poll says so */
    o->st.orders_lost += o->nqueued;
    o->nqueued = 0;
    if (o->fd >= 0) {
        close(o->fd);
        o->fd = -1;
        if (o->st.state == TW_OUCH_UP || o->st.state == TW_OUCH_LOGIN_SENT)
            o->st.disconnects++;
    }
    o->in_len = o->out_len = 0;
    o->st.state = next;
}

void tw_ouch_destroy(struct tw_ouch *o)
{
    if (!o)
        return;
    disconnect(o, TW_OUCH_DOWN);
    free(o);
}

/* ---- writing ----------------------------------------------------------------------------- */

static void flush(struct tw_ouch *o, uint64_t now)
{
    while (o->out_len && o->fd >= 0) {
        ssize_t n = send(o->fd, o->out, o->out_len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                disconnect(o, TW_OUCH_DOWN);
            return;
        }
        memmove(o->out, o->out + n, o->out_len - (uint32_t)n);
        o->out_len -= (uint32_t)n;
        o->last_sent = now;
        uint32_t keep = 0; /* orders now wholly in the kernel's hands leave the queue */
        for (uint32_t i = 0; i < o->nqueued; i++)
            if (o->queued[i].end > (uint32_t)n)
                o->queued[keep++] = (struct queued){ o->queued[i].user_ref, o->queued[i].end - (uint32_t)n };
        o->nqueued = keep;
    }
}

/* Queue one SoupBinTCP packet (type + payload) and, unless corked, try to send it now.
 * -1: not connected, or no room. An order queued here that a broken link then
 * takes from the buffer is reported by the next poll (TW_OUCH_MSG_NOT_SENT). */
static int packet(struct tw_ouch *o, uint8_t type, const uint8_t *payload, uint16_t len, uint64_t now)
{
    if (o->fd < 0 || o->out_len + 3u + len > BUF || o->nqueued == MAX_QUEUED)
        return -1;
    uint8_t *p = o->out + o->out_len;
    wr16(p, (uint16_t)(len + 1));
    p[2] = type;
    if (len)
        memcpy(p + 3, payload, len);
    o->out_len += 3u + len;
    if (type == 'U' && payload[0] == 'O')
        o->queued[o->nqueued++] = (struct queued){ rd32(payload + 1), o->out_len };
    if (!o->corked)
        flush(o, now);
    return 0;
}

void tw_ouch_cork(struct tw_ouch *o)
{
    o->corked = 1;
}

int tw_ouch_flush(struct tw_ouch *o, uint64_t now_ns)
{
    o->corked = 0;
    flush(o, now_ns);
    return o->st.state == TW_OUCH_UP ? 0 : -1;
}

/* Orders a broken link took from the buffer, as messages of their own. */
static uint32_t drain_lost(struct tw_ouch *o, struct tw_ouch_msg *out, uint32_t max)
{
    uint32_t n = 0;
    for (; n < o->nlost && n < max; n++) {
        memset(&out[n], 0, sizeof(out[n]));
        out[n].type = TW_OUCH_MSG_NOT_SENT;
        out[n].user_ref = o->lost[n];
    }
    memmove(o->lost, o->lost + n, (o->nlost - n) * sizeof(o->lost[0]));
    o->nlost -= n;
    return n;
}

static void send_login(struct tw_ouch *o, uint64_t now)
{
    uint8_t p[46];
    memcpy(p, o->cfg.username, 6);
    memcpy(p + 6, o->cfg.password, 10);
    memcpy(p + 16, o->cfg.session, 10);
    for (int i = 0; i < 26; i++)
        if (p[i] == 0)
            p[i] = ' ';
    char seq[21];
    snprintf(seq, sizeof(seq), "%20llu", (unsigned long long)o->st.next_seq);
    memcpy(p + 26, seq, 20);
    o->asked_seq = o->st.next_seq;
    packet(o, 'L', p, sizeof(p), now);
    o->st.state = TW_OUCH_LOGIN_SENT;
}

int tw_ouch_enter(struct tw_ouch *o, uint32_t user_ref, uint8_t side, uint32_t qty, const char *symbol,
                  uint64_t price, uint8_t tif, uint64_t now_ns)
{
    if (o->st.state != TW_OUCH_UP) {
        o->st.send_errors++;
        return -1;
    }
    uint8_t m[TW_OUCH_ENTER_LEN];
    tw_ouch_encode_enter(m, user_ref, side, qty, symbol, price, tif);
    if (packet(o, 'U', m, sizeof(m), now_ns) < 0) {
        o->st.send_errors++;
        return -1;
    }
    o->st.orders_sent++;
    return 0;
}

int tw_ouch_cancel(struct tw_ouch *o, uint32_t user_ref, uint32_t qty, uint64_t now_ns)
{
    if (o->st.state != TW_OUCH_UP) {
        o->st.send_errors++;
        return -1;
    }
    uint8_t m[TW_OUCH_CANCEL_LEN];
    tw_ouch_encode_cancel(m, user_ref, qty);
    if (packet(o, 'U', m, sizeof(m), now_ns) < 0) {
        o->st.send_errors++;
        return -1;
    }
    o->st.cancels_sent++;
    return 0;
}

void tw_ouch_drop(struct tw_ouch *o)
{
    if (o->fd >= 0) {
        struct linger lg = { .l_onoff = 1, .l_linger = 0 }; /* a reset, as a broken link looks */
        setsockopt(o->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    disconnect(o, TW_OUCH_DOWN);
    o->last_attempt = 0;
}

void tw_ouch_logout(struct tw_ouch *o)
{
    if (o->fd >= 0 && o->st.state == TW_OUCH_UP)
        packet(o, 'O', NULL, 0, o->last_sent);
    disconnect(o, TW_OUCH_ENDED);
}

/* ---- reading ----------------------------------------------------------------------------- */

/* The packet p (len bytes after its length field) as a message of its own: kept with its bytes. */
static void keep_raw(struct tw_ouch_msg *m, const uint8_t *p, uint16_t len)
{
    uint32_t whole = 2u + len, take = whole < TW_OUCH_RAW ? whole : TW_OUCH_RAW;
    m->raw_len = (uint16_t)(whole > 0xFFFF ? 0xFFFF : whole);
    memcpy(m->raw, p - 2, take);
}

static void bad(struct tw_ouch *o, struct tw_ouch_msg *m, uint16_t code, const uint8_t *p, uint16_t len)
{
    memset(m, 0, sizeof(*m));
    m->type = TW_OUCH_MSG_BAD;
    m->reason = code;
    m->seq = o->st.next_seq;
    keep_raw(m, p, len);
    o->st.bad_answers++;
}

/* Parse what has arrived; returns messages written to out. */
static uint32_t consume(struct tw_ouch *o, uint64_t now, struct tw_ouch_msg *out, uint32_t max)
{
    uint32_t n = 0, off = 0;
    while (off + 2 <= o->in_len) {
        uint16_t len = rd16(o->in + off);
        if (len == 0) {
            o->st.protocol_errors++;
            disconnect(o, TW_OUCH_DOWN);
            return n;
        }
        if (off + 2u + len > o->in_len)
            break;
        const uint8_t *p = o->in + off + 2;
        uint8_t type = p[0];
        if ((type == 'S' || type == 'A') && n == max)
            break; /* no room: it waits for the next call */
        switch (type) {
        case 'A': /* login accepted */
            if (len < 31) {
                o->st.protocol_errors++;
            } else if (o->st.state == TW_OUCH_UP) {
                bad(o, &out[n++], TW_BAD_LOGIN_MID_SESSION, p, len); /* the numbering stays */
            } else {
                uint64_t next = tw_ouch_ascii_number(p + 11, 20);
                if (o->asked_seq && next != o->asked_seq) /* numbered as the server says, and said */
                    bad(o, &out[n++], TW_BAD_LOGIN_SEQUENCE, p, len);
                memcpy(o->st.session, p + 1, 10);
                o->st.next_seq = next;
                o->st.state = TW_OUCH_UP;
                o->st.logins++;
            }
            break;
        case 'J':
            o->st.reject_reason = len >= 2 ? p[1] : 0;
            /* 'S', session not available (our last connection still holds it, as after a broken
             * link): try again after reconnect_ns; 'A', not authorized: never */
            disconnect(o, o->st.reject_reason == 'S' ? TW_OUCH_DOWN : TW_OUCH_REJECTED);
            return n;
        case 'S':
            if (o->st.state != TW_OUCH_UP) {
                bad(o, &out[n++], TW_BAD_BEFORE_LOGIN, p, len);
                break;
            }
            tw_ouch_parse(&out[n], p + 1, len - 1u);
            keep_raw(&out[n], p, len);
            out[n].seq = o->st.next_seq++;
            o->st.messages++;
            n++;
            break;
        case 'H':
            o->st.heartbeats_heard++;
            break;
        case 'Z':
            disconnect(o, TW_OUCH_ENDED);
            return n;
        default: /* '+' debug and anything new: skipped */
            break;
        }
        off += 2u + len;
    }
    memmove(o->in, o->in + off, o->in_len - off);
    o->in_len -= off;
    (void)now;
    return n;
}

uint32_t tw_ouch_poll(struct tw_ouch *o, uint64_t now, struct tw_ouch_msg *out, uint32_t max)
{
    uint32_t lost = drain_lost(o, out, max);
    if (lost)
        return lost; /* the rest next time: the caller polls again at once */
    switch (o->st.state) {
    case TW_OUCH_ENDED:
    case TW_OUCH_REJECTED:
        return 0;
    case TW_OUCH_DOWN: {
        if (o->last_attempt && now - o->last_attempt < o->cfg.reconnect_ns)
            return 0;
        o->last_attempt = now;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return 0;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(o->cfg.port) };
        sa.sin_addr.s_addr = o->cfg.addr;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
            close(fd);
            return 0;
        }
        o->fd = fd;
        o->st.state = TW_OUCH_CONNECTING;
        return 0;
    }
    case TW_OUCH_CONNECTING: {
        struct pollfd pfd = { .fd = o->fd, .events = POLLOUT };
        if (poll(&pfd, 1, 0) <= 0) {
            if (now - o->last_attempt > o->cfg.timeout_ns)
                disconnect(o, TW_OUCH_DOWN);
            return 0;
        }
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(o->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            disconnect(o, TW_OUCH_DOWN);
            return 0;
        }
        o->st.connects++;
        o->last_heard = now;
        send_login(o, now);
        return 0;
    }
    default:
        break;
    }
    /* logged in, or waiting for the answer to the login */
    flush(o, now);
    int closed = 0;
    for (;;) {
        if (o->fd < 0 || o->in_len == IN_BUF)
            break;
        ssize_t r = recv(o->fd, o->in + o->in_len, IN_BUF - o->in_len, MSG_DONTWAIT);
        if (r > 0) {
            o->in_len += (uint32_t)r;
            o->last_heard = now;
            continue;
        }
        closed = r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
        break;
    }
    uint32_t n = consume(o, now, out, max); /* what came before a close still counts (a J, a Z) */
    if (closed && o->fd >= 0)
        disconnect(o, TW_OUCH_DOWN); /* the exchange closed, or the link broke */
    if (o->fd >= 0 && now - o->last_heard > o->cfg.timeout_ns) {
        o->st.timeouts++;
        disconnect(o, TW_OUCH_DOWN);
    } else if (o->st.state == TW_OUCH_UP && now - o->last_sent >= o->cfg.heartbeat_ns) {
        if (packet(o, 'R', NULL, 0, now) == 0)
            o->st.heartbeats_sent++;
        o->last_sent = now;
    }
    return n;
}

void tw_ouch_stats(const struct tw_ouch *o, struct tw_ouch_stats *out)
{
    *out = o->st;
}

int tw_ouch_is_up(const struct tw_ouch *o)
{
    return o->st.state == TW_OUCH_UP;
}

uint32_t tw_ouch_inject(struct tw_ouch *o, const uint8_t *data, uint32_t len, struct tw_ouch_msg *out,
                        uint32_t max)
{
    if (o->st.state != TW_OUCH_UP && o->st.state != TW_OUCH_LOGIN_SENT) {
        o->st.state = TW_OUCH_LOGIN_SENT; /* as if connected, and a login asking for next_seq sent */
        o->asked_seq = o->st.next_seq;
    }
    uint32_t n = 0;
    while (len && o->st.state != TW_OUCH_ENDED && o->st.state != TW_OUCH_REJECTED) {
        uint32_t room = IN_BUF - o->in_len, take = len < room ? len : room;
        memcpy(o->in + o->in_len, data, take);
        o->in_len += take;
        data += take;
        len -= take;
        n += consume(o, 0, out + n, max - n);
        if (o->in_len == IN_BUF || n == max)
            break; /* a packet larger than the buffer cannot come (the length is 16 bits), or out is full */
        if (o->st.state == TW_OUCH_DOWN)
            break;
    }
    return n;
}

/* ---- the session as the order path's venue (venue.h) ------------------------------------- */

static int v_enter(void *o, uint32_t user_ref, uint8_t side, uint32_t qty, const char *symbol, uint64_t price,
                   uint8_t tif, uint64_t now_ns)
{
    return tw_ouch_enter(o, user_ref, side, qty, symbol, price, tif, now_ns);
}
static int v_cancel(void *o, uint32_t user_ref, uint32_t qty, uint64_t now_ns)
{
    return tw_ouch_cancel(o, user_ref, qty, now_ns);
}
static void v_cork(void *o)
{
    tw_ouch_cork(o);
}
static int v_flush(void *o, uint64_t now_ns)
{
    return tw_ouch_flush(o, now_ns);
}
static int v_is_up(const void *o)
{
    return tw_ouch_is_up(o);
}
static uint32_t v_poll(void *o, uint64_t now_ns, struct tw_ouch_msg *out, uint32_t max)
{
    return tw_ouch_poll(o, now_ns, out, max);
}

const struct tw_venue_ops tw_session_venue = {
    .enter = v_enter, .cancel = v_cancel, .cork = v_cork, .flush = v_flush, .is_up = v_is_up, .poll = v_poll,
};
