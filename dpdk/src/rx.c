/* rx.c — the receive stage: AF_XDP and pcap frames, and kernel UDP sockets, into
 * feed datagrams; the retransmission socket's reads and writes. The frame is parsed
 * with the XDP program's own helpers (xdp/include/parsing.h: bounds-check, return
 * the next header or -1), so the worker and the filter agree on what a feed packet
 * is. Nothing here knows MoldUDP64: the loop hands the datagram on. See rx.h.
 */
#define _GNU_SOURCE /* recvmmsg */
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <rte_mbuf.h>

#include <linux/types.h>

#include "parsing.h"
#include "rx.h"
#include "tw_meta.h"

/* The UDP payload of an IPv4 frame (up to two VLAN tags, not a fragment, lengths
 * within the frame), or NULL. */
static inline const uint8_t *udp_payload(uint8_t *p, uint32_t len, uint32_t *plen, uint32_t *daddr, uint16_t *dport,
                                         uint32_t *saddr, uint16_t *sport)
{
    void *end = p + len;
    struct cursor c = { .pos = p };
    struct iphdr *ip;
    struct udphdr *udp;
    int frag;
    if (parse_ethhdr(&c, end) != bpf_htons(ETH_P_IP))
        return NULL;
    if (parse_iphdr(&c, end, &ip, &frag) != IPPROTO_UDP || frag)
        return NULL;
    uint32_t ihl = ip->ihl * 4u, total = bpf_ntohs(ip->tot_len);
    if ((uint8_t *)ip + total > (uint8_t *)end || ihl + 8 > total)
        return NULL;
    int ulen = parse_udphdr(&c, end, &udp);
    if (ulen < 0 || (uint32_t)ulen + 8 > total - ihl)
        return NULL;
    *daddr = ip->daddr; /* network order, as the config holds it */
    *saddr = ip->saddr;
    *dport = bpf_ntohs(udp->dest);
    *sport = bpf_ntohs(udp->source);
    *plen = (uint32_t)ulen;
    return c.pos;
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

/* A datagram of line comes from the line's publisher, or the line names none (one compare). */
static inline int from_publisher(const struct tw_worker_config *c, int line, uint32_t saddr, uint16_t sport)
{
    if (line > 1 || line < 0 || !c->src_addr[line])
        return 1;
    return saddr == c->src_addr[line] && (!c->src_port[line] || sport == c->src_port[line]);
}

int tw_rx_frame(const struct tw_worker_config *c, const struct tw_worker_port *port, struct rte_mbuf *m,
                struct tw_worker_stats *st, struct tw_datagram *d)
{
    if (m->nb_segs != 1) {
        st->multi_segment++;
        return TW_RX_DROP;
    }
    uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *);
    uint32_t len = rte_pktmbuf_data_len(m);
    st->rx_bytes += len;
    d->t_wire = 0;
    d->line = port->line == TW_LINE_BY_DEST ? -1 : port->line;
    if (port->has_meta) {
        struct tw_xdp_meta *md = (struct tw_xdp_meta *)(p - sizeof(*md));
        if (m->data_off >= sizeof(*md) && md->magic == TW_META_MAGIC) {
            d->t_wire = md->rx_ns;
            d->line = md->line;
            md->magic = 0; /* the buffer comes back for another frame */
        } else {
            st->no_meta++;
        }
    }
    uint32_t daddr, saddr;
    uint16_t dport, sport;
    d->payload = udp_payload(p, len, &d->len, &daddr, &dport, &saddr, &sport);
    if (!d->payload) {
        st->not_udp++;
        return TW_RX_NOT_UDP;
    }
    if (d->line < 0)
        d->line = line_by_dest(c, daddr, dport, sport);
    if (__builtin_expect(!from_publisher(c, d->line, saddr, sport), 0))
        return TW_RX_REFUSED;
    return TW_RX_DATAGRAM;
}

uint32_t tw_rx_socket(struct tw_rx_sockets *sk, int fd, uint32_t burst, struct tw_worker_stats *st)
{
    for (uint32_t i = 0; i < burst; i++) {
        sk->iov[i] = (struct iovec){ sk->data[i], TW_SOCK_FRAME };
        sk->mm[i].msg_hdr = (struct msghdr){ .msg_iov = &sk->iov[i], .msg_iovlen = 1, .msg_name = &sk->src[i],
                                              .msg_namelen = sizeof(sk->src[i]), .msg_control = sk->ctl[i],
                                              .msg_controllen = sizeof(sk->ctl[i]) };
    }
    int n = recvmmsg(fd, sk->mm, burst, MSG_DONTWAIT, NULL);
    st->polls++;
    if (n <= 0) {
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            st->sock_errors++;
        return 0;
    }
    st->busy_polls++;
    return (uint32_t)n;
}

int tw_rx_socket_datagram(struct tw_rx_sockets *sk, uint32_t i, uint32_t line, const struct tw_worker_config *c,
                          const struct tw_clock *clk, struct tw_worker_stats *st, struct tw_datagram *d)
{
    const struct msghdr *h = &sk->mm[i].msg_hdr;
    uint32_t len = sk->mm[i].msg_len;
    st->rx_bytes += len;
    if (h->msg_flags & MSG_TRUNC) {
        st->multi_segment++;
        return -1;
    }
    uint64_t stamp = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(h); cm; cm = CMSG_NXTHDR((struct msghdr *)h, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
            stamp = tw_clock_from_real(clk, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
        }
    if (!stamp)
        st->no_meta++;
    *d = (struct tw_datagram){ .payload = sk->data[i], .len = len, .line = (int)line, .t_wire = stamp };
    if (__builtin_expect(!from_publisher(c, (int)line, sk->src[i].sin_addr.s_addr, ntohs(sk->src[i].sin_port)), 0))
        return TW_RX_REFUSED;
    return 0;
}

int tw_rx_answer(int fd, uint8_t *buf, uint32_t cap, struct tw_worker_stats *st)
{
    ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            st->retrans_errors++;
        return -1;
    }
    st->retrans_answers++;
    return (int)n;
}

int tw_rx_request(int fd, const uint8_t *req, uint32_t len, struct tw_worker_stats *st)
{
    if (send(fd, req, len, MSG_DONTWAIT) != (ssize_t)len) {
        st->retrans_errors++;
        return -1;
    }
    st->retrans_requests++;
    return 0;
}
