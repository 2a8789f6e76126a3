/* lab_impair.c — the user-space half of the lab's link impairment (netem stand-in).
 *
 * xdp/lab_impair.bpf.c hands every egress frame of one veth to this relay through
 * a ring buffer. The relay decides, in netem's order: lose it; send a second copy;
 * hold it for delay +- jitter, or send it at once (reorder). Held frames wait in
 * a heap ordered by (due time, arrival order) and leave on an AF_PACKET socket
 * bound to the same veth, marked so the BPF program lets them pass.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>

#include "lab_impair.h"
#include "lab.h"

#define TW_IMPAIR_SLOTS 8192u            /* frames the relay can hold (16 MiB) */
#define TW_IMPAIR_IDLE_NS 50000000ull    /* wake at least every 50 ms to see a stop */
#define TW_TC_PRIORITY 1                 /* our filter's priority on clsact egress */

struct slot {
    uint32_t len;
    uint8_t data[TW_IMPAIR_SNAP];
};

struct pending {
    uint64_t due;
    uint64_t order; /* arrival order: ties leave first-in first-out */
    uint32_t slot;
};

struct relay {
    const struct tw_impair_params *p;
    struct tw_impair_stats *st;
    struct slot *slots;
    uint32_t free_slots[TW_IMPAIR_SLOTS];
    uint32_t nfree;
    struct pending heap[TW_IMPAIR_SLOTS];
    uint32_t nheap;
    uint64_t order;
    uint64_t rng;
    int tx_fd;
};

static volatile sig_atomic_t stop_requested;

void tw_impair_stop(void)
{
    stop_requested = 1;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: small, fast, deterministic for a seed. */
static inline uint64_t rnd(struct relay *r)
{
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return r->rng * 0x2545F4914F6CDD1Dull;
}

static inline int chance(struct relay *r, uint32_t ppm)
{
    return ppm && (rnd(r) % 1000000u) < ppm;
}

static inline int before(const struct pending *a, const struct pending *b)
{
    return a->due < b->due || (a->due == b->due && a->order < b->order);
}

static void heap_push(struct relay *r, struct pending e)
{
    uint32_t i = r->nheap++;
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(&e, &r->heap[parent]))
            break;
        r->heap[i] = r->heap[parent];
        i = parent;
    }
    r->heap[i] = e;
}

static struct pending heap_pop(struct relay *r)
{
    struct pending top = r->heap[0];
    struct pending last = r->heap[--r->nheap];
    uint32_t i = 0;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= r->nheap)
            break;
        if (c + 1 < r->nheap && before(&r->heap[c + 1], &r->heap[c]))
            c++;
        if (!before(&r->heap[c], &last))
            break;
        r->heap[i] = r->heap[c];
        i = c;
    }
    if (r->nheap)
        r->heap[i] = last;
    return top;
}

static void transmit(struct relay *r, const uint8_t *data, uint32_t len)
{
    if (send(r->tx_fd, data, len, 0) < 0)
        r->st->tx_errors++;
    else
        r->st->sent++;
}

static void hold(struct relay *r, const uint8_t *data, uint32_t len, uint64_t due)
{
    if (r->nfree == 0) {
        r->st->overflow++;
        return;
    }
    uint32_t s = r->free_slots[--r->nfree];
    r->slots[s].len = len;
    memcpy(r->slots[s].data, data, len);
    heap_push(r, (struct pending){ .due = due, .order = r->order++, .slot = s });
    r->st->queued = r->nheap;
}

static uint64_t delay_for(struct relay *r)
{
    const struct tw_impair_params *p = r->p;
    if (p->jitter_ns == 0)
        return p->delay_ns;
    uint64_t span = 2 * p->jitter_ns + 1;
    int64_t d = (int64_t)p->delay_ns - (int64_t)p->jitter_ns + (int64_t)(rnd(r) % span);
    return d < 0 ? 0 : (uint64_t)d;
}

static int on_frame(void *ctx, void *data, size_t size)
{
    struct relay *r = ctx;
    const struct tw_impair_frame *f = data;

    if (size < sizeof(f->len) || f->len > TW_IMPAIR_SNAP)
        return 0;
    r->st->seen++;
    if (chance(r, r->p->loss_ppm)) {
        r->st->lost++;
        return 0;
    }
    int copies = 1;
    if (chance(r, r->p->duplicate_ppm)) {
        copies = 2;
        r->st->duplicated++;
    }
    uint64_t t = now_ns();
    for (int c = 0; c < copies; c++) {
        if (r->p->delay_ns == 0 && r->p->jitter_ns == 0) {
            transmit(r, f->data, f->len);
        } else if (chance(r, r->p->reorder_ppm)) {
            r->st->reordered++;
            transmit(r, f->data, f->len);
        } else {
            hold(r, f->data, f->len, t + delay_for(r));
        }
    }
    return 0;
}

static void release_due(struct relay *r, uint64_t t)
{
    while (r->nheap && r->heap[0].due <= t) {
        struct pending e = heap_pop(r);
        transmit(r, r->slots[e.slot].data, r->slots[e.slot].len);
        r->free_slots[r->nfree++] = e.slot;
    }
    r->st->queued = r->nheap;
}

static int open_tx(int ifindex)
{
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0); /* protocol 0: never receives */
    if (fd < 0)
        return -errno;
    int one = 1;
    uint32_t mark = TW_IMPAIR_MARK;
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = ifindex };
    if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0 ||
        bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int tw_impair_run(const char *bpf_object, int ifindex,
                  const struct tw_impair_params *params, struct tw_impair_stats *stats)
{
    struct bpf_object *obj = NULL;
    struct ring_buffer *rb = NULL;
    struct relay *r = NULL;
    int err, attached = 0, epfd;

    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
    LIBBPF_OPTS(bpf_tc_opts, tc, .priority = TW_TC_PRIORITY);

    if (!bpf_object || !params || !stats || ifindex <= 0)
        return -EINVAL;
    memset(stats, 0, sizeof(*stats));
    stop_requested = 0;

    r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->tx_fd = -1;
    r->slots = calloc(TW_IMPAIR_SLOTS, sizeof(struct slot));
    if (!r->slots) {
        err = -ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < TW_IMPAIR_SLOTS; i++)
        r->free_slots[i] = TW_IMPAIR_SLOTS - 1 - i;
    r->nfree = TW_IMPAIR_SLOTS;
    r->p = params;
    r->st = stats;
    r->rng = params->seed ? params->seed : 0x9E3779B97F4A7C15ull;
    r->tx_fd = open_tx(ifindex);
    if (r->tx_fd < 0) {
        err = r->tx_fd;
        goto out;
    }

    obj = bpf_object__open_file(bpf_object, NULL);
    if (!obj) {
        err = -errno;
        goto out;
    }
    err = bpf_object__load(obj);
    if (err)
        goto out;
    struct bpf_program *prog = bpf_object__find_program_by_name(obj, "tw_impair");
    struct bpf_map *ring = bpf_object__find_map_by_name(obj, "impair_rb");
    if (!prog || !ring) {
        err = -ENOENT;
        goto out;
    }
    rb = ring_buffer__new(bpf_map__fd(ring), on_frame, r, NULL);
    if (!rb) {
        err = -errno;
        goto out;
    }
    err = bpf_tc_hook_create(&hook);
    if (err && err != -EEXIST)
        goto out;
    tc.prog_fd = bpf_program__fd(prog);
    err = bpf_tc_attach(&hook, &tc);
    if (err)
        goto out;
    attached = 1;

    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    epfd = ring_buffer__epoll_fd(rb);
    while (!stop_requested) {
        uint64_t t = now_ns();
        uint64_t wait = TW_IMPAIR_IDLE_NS;
        if (r->nheap)
            wait = r->heap[0].due > t ? r->heap[0].due - t : 0;
        if (wait > TW_IMPAIR_IDLE_NS)
            wait = TW_IMPAIR_IDLE_NS;
        struct timespec ts = { .tv_sec = (time_t)(wait / 1000000000ull),
                               .tv_nsec = (long)(wait % 1000000000ull) };
        struct epoll_event ev;
        int n = epoll_pwait2(epfd, &ev, 1, &ts, NULL);
        if (n < 0 && errno != EINTR) {
            err = -errno;
            break;
        }
        if (n > 0)
            ring_buffer__consume(rb);
        release_due(r, now_ns());
    }
    if (stop_requested)
        err = 0;

out:
    if (attached) {
        /* detach our filter only; the clsact qdisc may hold others */
        tc.prog_fd = tc.prog_id = 0;
        tc.flags = 0;
        bpf_tc_detach(&hook, &tc);
        if (rb)
            ring_buffer__consume(rb);
    }
    if (r && r->nheap)
        release_due(r, UINT64_MAX); /* what was held still leaves, in order */
    ring_buffer__free(rb);
    bpf_object__close(obj);
    if (r) {
        if (r->tx_fd >= 0)
            close(r->tx_fd);
        free(r->slots);
        free(r);
    }
    return err;
}
