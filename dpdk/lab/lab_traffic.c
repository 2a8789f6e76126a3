/* lab_traffic.c — the lab's multicast sender and sink (see lab.h).
 *
 * The sender batches with sendmmsg and paces by the monotonic clock; the sink
 * batches with recvmmsg and tracks MoldUDP64 sequence numbers so a demo or a
 * test can tell a gap from a duplicate without Python touching each datagram.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "lab.h"

#define TW_MAX_BATCH 1024u
#define TW_SINK_BATCH 64u
#define TW_SINK_SNAP 2048u /* bytes of each datagram the sink keeps: headers only matter */
#define TW_MOLD_HEADER 20u /* session[10] sequence u64 count u16 */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int tw_udp_send(int fd, const uint8_t *payloads, uint32_t stride,
                const uint16_t *lengths, uint32_t n, uint32_t batch,
                uint64_t rate_pps, struct tw_send_stats *out)
{
    struct mmsghdr msgs[TW_MAX_BATCH];
    struct iovec iov[TW_MAX_BATCH];

    if (batch == 0 || batch > TW_MAX_BATCH || out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    uint64_t start = now_ns();
    uint32_t i = 0;
    while (i < n) {
        uint32_t k = n - i < batch ? n - i : batch;
        if (rate_pps) {
            /* do not send packet i before start + i / rate */
            uint64_t due = start + (uint64_t)((double)i * 1e9 / (double)rate_pps);
            while (now_ns() < due)
                ;
            uint64_t per_batch = rate_pps / 1000 ? rate_pps / 1000 : 1; /* ~1 ms of traffic */
            if (k > per_batch)
                k = (uint32_t)per_batch;
        }
        for (uint32_t j = 0; j < k; j++) {
            iov[j].iov_base = (void *)(payloads + (size_t)(i + j) * stride);
            iov[j].iov_len = lengths[i + j];
            memset(&msgs[j], 0, sizeof(msgs[j]));
            msgs[j].msg_hdr.msg_iov = &iov[j];
            msgs[j].msg_hdr.msg_iovlen = 1;
        }
        int sent = sendmmsg(fd, msgs, k, 0);
        out->calls++;
        if (sent < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == ENOBUFS)
                continue; /* the queue is full: try the same batch again */
            out->errors++;
            out->last_errno = errno;
            return -errno;
        }
        for (int j = 0; j < sent; j++)
            out->bytes += iov[j].iov_len;
        out->packets += (uint64_t)sent;
        i += (uint32_t)sent;
    }
    out->elapsed_ns = now_ns() - start;
    return 0;
}

static void sink_account(struct tw_sink_stats *s, const uint8_t *p, uint32_t len)
{
    uint64_t seq;
    uint16_t count;

    if (len < TW_MOLD_HEADER)
        return;
    memcpy(&seq, p + 10, sizeof(seq));
    memcpy(&count, p + 18, sizeof(count));
    seq = be64toh(seq);
    count = be16toh(count);
    if (count == 0 || count == 0xffff) /* heartbeat or end of session: no messages */
        return;
    if (s->mold_packets == 0) {
        memcpy(s->session, p, sizeof(s->session));
        s->first_seq = seq;
        s->next_seq = seq;
    }
    s->mold_packets++;
    s->messages += count;
    if (seq > s->next_seq) {
        s->gaps++;
        s->gap_messages += seq - s->next_seq;
    } else if (seq + count <= s->next_seq) {
        s->duplicates++;
        return;
    }
    if (seq + count > s->next_seq)
        s->next_seq = seq + count;
}

int tw_udp_sink(int fd, uint64_t max_packets, uint64_t idle_ns, uint64_t total_ns,
                const volatile int32_t *stop, struct tw_sink_stats *out)
{
    static __thread uint8_t bufs[TW_SINK_BATCH][TW_SINK_SNAP];
    struct mmsghdr msgs[TW_SINK_BATCH];
    struct iovec iov[TW_SINK_BATCH];

    if (out == NULL)
        return -EINVAL;
    uint64_t start = now_ns();
    uint64_t last = out->packets ? out->last_ns : start; /* a resumed call continues the counts */
    for (;;) {
        uint64_t t = now_ns();
        if (stop && *stop)
            return 0;
        if (max_packets && out->packets >= max_packets)
            return 1;
        if (out->packets && idle_ns && t - last >= idle_ns)
            return 1;
        if (total_ns && t - start >= total_ns)
            return 0;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int r = poll(&pfd, 1, 10);
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r <= 0)
            continue;
        for (uint32_t j = 0; j < TW_SINK_BATCH; j++) {
            iov[j].iov_base = bufs[j];
            iov[j].iov_len = TW_SINK_SNAP;
            memset(&msgs[j], 0, sizeof(msgs[j]));
            msgs[j].msg_hdr.msg_iov = &iov[j];
            msgs[j].msg_hdr.msg_iovlen = 1;
        }
        int got = recvmmsg(fd, msgs, TW_SINK_BATCH, MSG_DONTWAIT, NULL);
        if (got < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return -errno;
        }
        last = now_ns();
        if (out->packets == 0 && got > 0)
            out->first_ns = last;
        out->last_ns = last;
        for (int j = 0; j < got; j++) {
            uint32_t len = msgs[j].msg_len < TW_SINK_SNAP ? msgs[j].msg_len : TW_SINK_SNAP;
            out->packets++;
            out->bytes += msgs[j].msg_len;
            sink_account(out, bufs[j], len);
        }
    }
}
