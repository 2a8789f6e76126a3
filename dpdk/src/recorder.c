/* recorder.c — market data kept: every feed frame the worker receives, as pcap,
 * one capture per line, rotated at a size. See recorder.h.
 *
 * The worker (one producer) copies each frame into a ring of bytes and goes on;
 * (or, with cfg.single, every line into that one file, never rotated)
 * a writer thread of ours (one consumer) takes the records out and appends them
 * to the line's file through stdio, opening the next file when one passes
 * rotate_bytes. The worker never waits and never makes a syscall for this: a
 * full ring drops the frame and counts it.
 *
 * A record in the ring, 8-byte aligned:
 *   u32 len | u32 orig (low 24 bits: the length on the wire; high 8: the line) | u64 ts_ns (CLOCK_REALTIME)
 *   | len bytes | pad to 8
 * len WRAP marks the rest of the ring as unused: the next record is at the start.
 *
 * With keep_bytes, the writer thread keeps the folder's captures (this prefix, every line, earlier
 * runs' too) under that total: each time it opens a file it deletes the oldest closed ones (by
 * mtime) until the rest fit, never a file it has open, and names each on stderr.
 *
 * The files are classic pcap with nanosecond timestamps (magic 0xa1b23c4d),
 * link type Ethernet; a line read from a kernel socket has its datagram
 * written behind an Ethernet, IPv4 and UDP header made up from its addresses.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "internal.h"
#include "recorder.h"

#define WRAP 0xFFFFFFFFu
#define HDR 16u
#define LINES 3
static const char LINE_NAME[LINES] = { 'A', 'B', 'R' };

struct line_file {
    FILE *f;
    char name[128];       /* of the open file, in cfg.dir */
    uint64_t bytes;       /* of the open file */
    uint32_t index;       /* files opened so far */
    time_t failed_at;     /* the last open that failed: the next is tried a second later */
};

struct tw_recorder {
    struct tw_recorder_config cfg;
    uint8_t *ring;
    uint64_t mask;
    uint64_t head __attribute__((aligned(64))); /* written by the producer */
    uint64_t tail __attribute__((aligned(64))); /* written by the consumer */
    uint64_t dropped __attribute__((aligned(64)));
    struct line_file file[LINES];
    struct tw_recorder_stats st;  /* the consumer's, but frames/dropped read live */
    pthread_t thread;
    int running;
    volatile int stop;
};

static inline uint64_t align8(uint64_t x) { return (x + 7) & ~7ull; }

struct tw_recorder *tw_recorder_create(const struct tw_recorder_config *cfg)
{
    if (!cfg || (!cfg->dir[0] && !cfg->single[0]) || cfg->ring_bytes < 4096 ||
        (cfg->ring_bytes & (cfg->ring_bytes - 1)))
        return NULL;
    struct stat sb;
    if (!cfg->single[0] && (stat(cfg->dir, &sb) != 0 || !S_ISDIR(sb.st_mode)))
        return NULL;
    struct tw_recorder *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->cfg = *cfg;
    r->cfg.dir[sizeof(r->cfg.dir) - 1] = 0;
    r->cfg.prefix[sizeof(r->cfg.prefix) - 1] = 0;
    r->cfg.single[sizeof(r->cfg.single) - 1] = 0;
    if (!r->cfg.snaplen || r->cfg.snaplen > 65535)
        r->cfg.snaplen = 65535;
    if (r->cfg.snaplen < 128)
        r->cfg.snaplen = 128; /* room for the headers a socket's datagram is given */
    r->ring = calloc(1, cfg->ring_bytes);
    if (!r->ring) {
        free(r);
        return NULL;
    }
    tw_prefault(r->ring, cfg->ring_bytes); /* no page fault on the worker's copy */
    r->mask = cfg->ring_bytes - 1;
    return r;
}

/* ---- the producer: the worker's lcore --------------------------------------------------- */

/* Room for a record of n bytes at the head, wrapping first if it would not fit before the end:
 * the offset to write at, or -1 (full). */
static inline int64_t reserve(struct tw_recorder *r, uint64_t n)
{
    uint64_t head = r->head, tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
    uint64_t size = r->mask + 1, off = head & r->mask, until_end = size - off;
    uint64_t need = n <= until_end ? n : until_end + n; /* a record never straddles the end */
    if (size - (head - tail) < need + HDR)
        return -1; /* keep room for a wrap marker, so head never catches tail */
    if (n > until_end) {
        *(uint32_t *)(r->ring + off) = WRAP;
        __atomic_store_n(&r->head, head + until_end, __ATOMIC_RELEASE);
        off = 0;
    }
    return (int64_t)off;
}

static inline void commit(struct tw_recorder *r, uint64_t n)
{
    __atomic_store_n(&r->head, r->head + n, __ATOMIC_RELEASE);
}

/* A record of total bytes begun at the head, its header written: where its data goes, or NULL
 * when the ring is full (counted). commit() makes it the consumer's. */
static inline uint8_t *begin(struct tw_recorder *r, uint8_t line, uint64_t ts_ns, uint32_t total, uint32_t orig,
                             uint64_t *n)
{
    *n = align8(HDR + total);
    int64_t off = reserve(r, *n);
    if (off < 0) {
        __atomic_store_n(&r->dropped, r->dropped + 1, __ATOMIC_RELAXED);
        return NULL;
    }
    uint8_t *p = r->ring + off;
    *(uint32_t *)p = total;
    *(uint32_t *)(p + 4) = (orig & 0xFFFFFFu) | (uint32_t)(line < LINES ? line : 0) << 24;
    memcpy(p + 8, &ts_ns, 8);
    return p + HDR;
}

int tw_recorder_frame(struct tw_recorder *r, uint8_t line, uint64_t ts_ns, const uint8_t *frame, uint32_t len)
{
    uint32_t orig = len;
    if (len > r->cfg.snaplen)
        len = r->cfg.snaplen;
    uint64_t n;
    uint8_t *p = begin(r, line, ts_ns, len, orig, &n);
    if (!p)
        return -1;
    memcpy(p, frame, len);
    commit(r, n);
    return 0;
}

int tw_recorder_datagram(struct tw_recorder *r, uint8_t line, uint64_t ts_ns, uint32_t saddr, uint16_t sport,
                         uint32_t daddr, uint16_t dport, const uint8_t *payload, uint32_t len)
{
    uint32_t orig = 42 + len; /* the headers say the whole datagram; the record keeps what fits */
    if (len > r->cfg.snaplen - 42)
        len = r->cfg.snaplen - 42; /* cut, as a capture's snaplen cuts */
    uint64_t n;
    uint8_t *e = begin(r, line, ts_ns, 42 + len, orig, &n);
    uint32_t wire_len = orig - 42;
    if (!e)
        return -1;
    /* Ethernet: an IPv4 multicast destination maps onto 01:00:5e + the group's low 23 bits */
    const uint8_t *d = (const uint8_t *)&daddr; /* network order */
    uint8_t dst[6] = { 0x01, 0x00, 0x5e, (uint8_t)(d[1] & 0x7f), d[2], d[3] };
    if ((d[0] & 0xf0) != 0xe0)
        memset(dst, 0, sizeof(dst));
    memcpy(e, dst, 6);
    memset(e + 6, 0, 6);
    wr16(e + 12, 0x0800);
    uint8_t *ip = e + 14;
    ip[0] = 0x45;
    ip[1] = 0;
    wr16(ip + 2, (uint16_t)(20 + 8 + wire_len));
    wr16(ip + 4, 0);
    wr16(ip + 6, 0x4000); /* don't fragment */
    ip[8] = 1;
    ip[9] = 17;
    wr16(ip + 10, 0);
    memcpy(ip + 12, &saddr, 4);
    memcpy(ip + 16, &daddr, 4);
    uint32_t sum = 0;
    for (int i = 0; i < 20; i += 2)
        sum += rd16(ip + i);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    wr16(ip + 10, (uint16_t)~sum);
    uint8_t *udp = ip + 20;
    wr16(udp, sport);
    wr16(udp + 2, dport);
    wr16(udp + 4, (uint16_t)(8 + wire_len));
    wr16(udp + 6, 0); /* no checksum: allowed for IPv4 */
    memcpy(udp + 8, payload, len);
    commit(r, n);
    return 0;
}

/* ---- the consumer: our writer thread --------------------------------------------------- */

struct kept {
    int64_t mtime_ns;
    uint64_t size;
    char name[128];
};

static int older(const void *a, const void *b)
{
    const struct kept *x = a, *y = b;
    if (x->mtime_ns != y->mtime_ns)
        return x->mtime_ns < y->mtime_ns ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* One of our captures: [PREFIX-]{A,B,R}-*.pcap */
static int ours(const struct tw_recorder *r, const char *name)
{
    size_t lead = strlen(r->cfg.prefix), n = strlen(name);
    if (lead && (strncmp(name, r->cfg.prefix, lead) != 0 || name[lead] != '-'))
        return 0;
    const char *p = name + lead + (lead ? 1 : 0);
    return (p[0] == 'A' || p[0] == 'B' || p[0] == 'R') && p[1] == '-' && n > 5 && strcmp(name + n - 5, ".pcap") == 0;
}

/* Keep the folder's captures under keep_bytes: the oldest closed ones go. The open files count
 * (what they hold so far) but are never deleted. */
static void prune(struct tw_recorder *r)
{
    if (!r->cfg.keep_bytes || r->cfg.single[0])
        return;
    DIR *d = opendir(r->cfg.dir);
    if (!d)
        return;
    struct kept *list = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    for (int l = 0; l < LINES; l++)
        if (r->file[l].f)
            total += r->file[l].bytes;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (!ours(r, e->d_name) || len >= sizeof(list->name))
            continue;
        int open_now = 0;
        for (int l = 0; l < LINES; l++)
            open_now |= r->file[l].f && strcmp(r->file[l].name, e->d_name) == 0;
        struct stat sb;
        if (open_now || fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode))
            continue;
        if (n == cap) {
            struct kept *more = realloc(list, (cap = cap ? cap * 2 : 64) * sizeof(*list));
            if (!more)
                break;
            list = more;
        }
        list[n].mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        list[n].size = (uint64_t)sb.st_size;
        memcpy(list[n].name, e->d_name, len + 1);
        total += list[n++].size;
    }
    if (n)
        qsort(list, n, sizeof(*list), older);
    for (size_t i = 0; i < n && total > r->cfg.keep_bytes; i++) {
        if (unlinkat(dirfd(d), list[i].name, 0) != 0)
            continue;
        total -= list[i].size;
        r->st.deleted_files++;
        r->st.deleted_bytes += list[i].size;
        fprintf(stderr, "tickwire recorder: deleted %s/%s (%llu bytes): the kept captures passed %llu MiB "
                        "(journal.market_data_keep_mb)\n", r->cfg.dir, list[i].name,
                (unsigned long long)list[i].size, (unsigned long long)(r->cfg.keep_bytes >> 20));
    }
    free(list);
    closedir(d);
}

static int open_next(struct tw_recorder *r, uint8_t line)
{
    struct line_file *lf = &r->file[line];
    if (lf->f) {
        if (fclose(lf->f) != 0)
            r->st.write_errors++;
        lf->f = NULL;
        r->st.rotations++;
    }
    char stamp[32], path[600];
    time_t now = time(NULL);
    if (lf->failed_at && now - lf->failed_at < 1)
        return -EAGAIN; /* the last open failed a moment ago: the records meanwhile are counted, not retried */
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    if (r->cfg.single[0])
        snprintf(path, sizeof(path), "%s", r->cfg.single);
    else {
        snprintf(lf->name, sizeof(lf->name), "%s%s%c-%s-%04u.pcap", r->cfg.prefix, r->cfg.prefix[0] ? "-" : "",
                 LINE_NAME[line], stamp, lf->index + 1);
        snprintf(path, sizeof(path), "%s/%s", r->cfg.dir, lf->name);
    }
    /* the one file goes on where this recorder left it before a stop (it has its header then) */
    struct stat sb;
    int resume = r->cfg.single[0] && lf->index > 0 && stat(path, &sb) == 0 && sb.st_size >= 24;
    lf->f = fopen(path, resume ? "ab" : "wb");
    if (!lf->f) {
        r->st.write_errors++;
        lf->failed_at = now;
        return -errno;
    }
    lf->failed_at = 0;
    lf->index++;
    setvbuf(lf->f, NULL, _IOFBF, 1 << 20);
    if (resume) {
        lf->bytes = (uint64_t)ftell(lf->f);
        r->st.files++;
        return 0;
    }
    uint8_t gh[24];
    memcpy(gh, (uint32_t[]){ 0xa1b23c4d }, 4);    /* nanosecond pcap, in this host's byte order */
    memcpy(gh + 4, (uint16_t[]){ 2, 4 }, 4);       /* version 2.4 */
    memset(gh + 8, 0, 8);                          /* thiszone, sigfigs */
    memcpy(gh + 16, (uint32_t[]){ r->cfg.snaplen, 1 }, 8); /* snaplen, LINKTYPE_ETHERNET */
    if (fwrite(gh, sizeof(gh), 1, lf->f) != 1)
        r->st.write_errors++;
    lf->bytes = sizeof(gh);
    r->st.files++;
    prune(r);
    return 0;
}

/* One record to its line's file. */
static void write_record(struct tw_recorder *r, uint8_t line, uint64_t ts, const uint8_t *data, uint32_t len,
                         uint32_t orig)
{
    uint8_t slot = r->cfg.single[0] ? 0 : line; /* one file: every line goes to the first's */
    struct line_file *lf = &r->file[slot];
    if (!lf->f || (!r->cfg.single[0] && r->cfg.rotate_bytes && lf->bytes >= r->cfg.rotate_bytes))
        if (open_next(r, slot) < 0)
            return; /* counted; the next record tries again */
    uint32_t rh[4] = { (uint32_t)(ts / 1000000000ull), (uint32_t)(ts % 1000000000ull), len, orig > len ? orig : len };
    if (fwrite(rh, sizeof(rh), 1, lf->f) != 1 || fwrite(data, len, 1, lf->f) != 1) {
        r->st.write_errors++;
        return;
    }
    lf->bytes += sizeof(rh) + len;
    r->st.frames[line]++;
    r->st.bytes[line] += len;
}

/* Everything in the ring now: how many records it wrote. */
static uint64_t drain(struct tw_recorder *r)
{
    uint64_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE), tail = r->tail, n = 0;
    while (tail != head) {
        uint64_t off = tail & r->mask;
        uint32_t len = *(uint32_t *)(r->ring + off);
        if (len == WRAP) {
            tail += (r->mask + 1) - off;
            continue;
        }
        uint32_t word = *(uint32_t *)(r->ring + off + 4);
        uint64_t ts;
        memcpy(&ts, r->ring + off + 8, 8);
        write_record(r, (uint8_t)(word >> 24), ts, r->ring + off + HDR, len, word & 0xFFFFFFu);
        tail += align8(HDR + len);
        n++;
        if ((n & 255) == 0)
            __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE); /* give room back as it goes */
    }
    __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE);
    return n;
}

static void *writer(void *arg)
{
    struct tw_recorder *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        if (drain(r) == 0) {
            for (int l = 0; l < LINES; l++)
                if (r->file[l].f)
                    fflush(r->file[l].f); /* quiet: what was written reaches the file */
            nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
        }
    }
    drain(r);
    return NULL;
}

int tw_recorder_start(struct tw_recorder *r)
{
    if (r->running)
        return 0;
    r->stop = 0;
    int rc = pthread_create(&r->thread, NULL, writer, r);
    if (rc)
        return -rc;
    pthread_setname_np(r->thread, "tw-recorder");
    r->running = 1;
    return 0;
}

void tw_recorder_stop(struct tw_recorder *r)
{
    if (r->running) {
        __atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
        pthread_join(r->thread, NULL);
        r->running = 0;
    } else {
        drain(r);
    }
    for (int l = 0; l < LINES; l++) {
        if (r->file[l].f && fclose(r->file[l].f) != 0)
            r->st.write_errors++;
        r->file[l].f = NULL;
    }
}

void tw_recorder_destroy(struct tw_recorder *r)
{
    if (!r)
        return;
    tw_recorder_stop(r);
    free(r->ring);
    free(r);
}

void tw_recorder_stats(const struct tw_recorder *r, struct tw_recorder_stats *out)
{
    *out = r->st; /* the writer's counters: a monitoring figure while it runs */
    out->dropped = __atomic_load_n(&r->dropped, __ATOMIC_RELAXED);
    uint64_t tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE); /* tail first: head only grows past it */
    uint64_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
    out->queued_bytes = head - tail;
}

/* ---- the benchmark's loops (bench/bench_recorder.py): kept in C so no Python call is timed ---- */

uint64_t tw_recorder_frames(struct tw_recorder *r, uint8_t line, const uint8_t *frame, uint32_t len, uint64_t n)
{
    uint64_t taken = 0;
    for (uint64_t i = 0; i < n; i++)
        taken += tw_recorder_frame(r, line, i, frame, len) == 0;
    return taken;
}

uint64_t tw_copy_frames(uint8_t *dst, uint64_t dst_len, const uint8_t *frame, uint32_t len, uint64_t n)
{
    uint64_t off = 0, sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (off + len > dst_len)
            off = 0;
        memcpy(dst + off, frame, len);
        sum += dst[off];
        off += (len + 7) & ~7u;
    }
    return sum; /* read back, so the copies are not optimised away */
}
