/* rx.h — the receive stage: AF_XDP and pcap frames, and kernel sockets, into
 * datagrams the loop hands to the feed. C only. */
#ifndef TW_RX_H
#define TW_RX_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* recvmmsg */
#endif
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"
#include "worker.h"

struct rte_mbuf;

/* One UDP datagram of a feed line. */
struct tw_datagram {
    const uint8_t *payload;
    uint32_t len;
    int line;          /* 0 A, 1 B, 2 retransmission; -1 unknown (a frame that is not UDP) */
    uint64_t t_wire;   /* its arrival stamp, CLOCK_MONOTONIC (0: none) */
};

enum tw_rx_frame_result {
    TW_RX_DATAGRAM = 0,  /* *d is a datagram */
    TW_RX_NOT_UDP = -1,  /* not IPv4 UDP, a fragment, or truncated: counted; the frame is still recorded */
    TW_RX_DROP = -2,     /* more than one mbuf: counted and dropped */
    TW_RX_REFUSED = -3,  /* *d is a datagram of its line from someone not the line's publisher (config
                            src_addr/src_port): not for the feed, which counts it (tw_feed_refuse) */
};

/* A port's frame: its XDP arrival stamp and line (af_xdp with our filter), its UDP payload
 * (parsed with xdp/include/parsing.h, the XDP program's parser), the line from the
 * destination when the port does not say; TW_RX_REFUSED when its source is not the line's. */
int tw_rx_frame(const struct tw_worker_config *c, const struct tw_worker_port *port, struct rte_mbuf *m,
                struct tw_worker_stats *st, struct tw_datagram *d);

/* recvmmsg buffers for the line sockets, made once. */
#define TW_SOCK_BURST 64
#define TW_SOCK_FRAME 2048
struct tw_rx_sockets {
    struct mmsghdr mm[TW_SOCK_BURST];
    struct iovec iov[TW_SOCK_BURST];
    struct sockaddr_in src[TW_SOCK_BURST]; /* who sent it: the recorder's made-up header */
    uint8_t ctl[TW_SOCK_BURST][CMSG_SPACE(sizeof(struct timespec))];
    uint8_t data[TW_SOCK_BURST][TW_SOCK_FRAME];
};

/* What a line's socket has, in one recvmmsg (burst at most): how many were read (0 with
 * nothing or an error, counted). */
uint32_t tw_rx_socket(struct tw_rx_sockets *sk, int fd, uint32_t burst, struct tw_worker_stats *st);
/* Datagram i of that read: 0, -1 when it was cut short (counted), or TW_RX_REFUSED when its
 * source is not the line's publisher (c->src_addr/src_port). Its stamp: the kernel's
 * SO_TIMESTAMPNS receive time on CLOCK_MONOTONIC (0 without one, counted as no_meta). */
int tw_rx_socket_datagram(struct tw_rx_sockets *sk, uint32_t i, uint32_t line, const struct tw_worker_config *c,
                          const struct tw_clock *clk, struct tw_worker_stats *st, struct tw_datagram *d);

/* The retransmission socket: one answer into buf (its length), or -1 when none is waiting
 * (an error is counted); a request sent whole: 0 or -1 (counted). The socket is connected to the
 * re-request server, so the kernel hands it only the server's datagrams (its address and port). */
int tw_rx_answer(int fd, uint8_t *buf, uint32_t cap, struct tw_worker_stats *st);
int tw_rx_request(int fd, const uint8_t *req, uint32_t len, struct tw_worker_stats *st);

#endif
