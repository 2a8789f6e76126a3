/* mold.c — MoldUDP64 sequencing for one session: A/B arbitration, gaps, recovery.
 * See feed.h.
 *
 * Every downstream packet from line A, line B or the retransmission answer goes
 * through tw_feed_packet. A message whose sequence number is the next expected
 * is applied to the books at once, then any held messages that now follow. One
 * already applied is a duplicate (the other line's copy, usually) and only
 * counted. One past the next expected opens a gap: it is held in a fixed ring,
 * indexed by sequence number, until the missing messages arrive from the other
 * line or from a retransmission; meanwhile the books are stale. A gap wider than
 * the ring cannot be recovered: the feed skips ahead and the books stay stale
 * until the caller rebuilds them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "internal.h"
#include "feed.h"

#define MOLD_HEADER 20
#define SLOT_BYTES 64 /* the longest ITCH message is 50 bytes */

struct slot {
    uint64_t seq; /* 0: empty */
    uint16_t len;
    uint8_t data[SLOT_BYTES];
};

struct tw_feed {
    struct tw_books *books;
    struct slot *ring;
    uint64_t ring_size; /* a power of two */
    uint64_t held;
    uint8_t session[10];
    int have_session;
    uint64_t gap_first; /* the first sequence number missing when the gap opened */
    int join_late;      /* start from the first packet's sequence number, not 1 (pending) */
    int late;           /* the feed was asked to join late */
    int unsequenced;    /* apply every message in arrival order (captures with zeroed sequence numbers) */
    struct tw_feed_state st;
};

static void raise_event(struct tw_feed *f, uint32_t type, uint64_t a, uint64_t b)
{
    struct tw_event ev = { .ts_ns = tw_mono_ns(), .type = type, .a = a, .b = b };
    tw_books_raise(f->books, &ev);
}

/* A gap opens: next_seq .. missing_to are missing; gap_to is the newest held (or announced). */
static void open_gap(struct tw_feed *f, uint64_t gap_to, uint64_t missing_to)
{
    f->st.in_gap = 1;
    f->st.gaps++;
    f->st.stale = 1;
    f->st.gap_to = gap_to;
    f->gap_first = f->st.next_seq;
    raise_event(f, TW_EV_GAP, f->st.next_seq, missing_to - f->st.next_seq + 1);
}

struct tw_feed *tw_feed_create(struct tw_books *books, uint64_t max_held)
{
    if (!books || max_held == 0)
        return NULL;
    struct tw_feed *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    uint64_t size = 1;
    while (size < max_held)
        size <<= 1;
    f->ring = calloc(size, sizeof(struct slot));
    if (!f->ring) {
        free(f);
        return NULL;
    }
    tw_prefault(f->ring, size * sizeof(struct slot)); /* touched now, not on the first gap */
    f->ring_size = size;
    f->books = books;
    f->st.next_seq = 1;
    return f;
}

void tw_feed_destroy(struct tw_feed *f)
{
    if (!f)
        return;
    free(f->ring);
    free(f);
}

static void apply(struct tw_feed *f, const uint8_t *msg, uint16_t len)
{
    if (tw_books_apply(f->books, msg, len) < 0)
        f->st.book_errors++;
    f->st.applied++;
    f->st.next_seq++;
}

/* Apply held messages that now follow in sequence; close the gap when none is
 * left (recovered, unless the hole was given up). */
static void drain(struct tw_feed *f, int given_up)
{
    while (f->held) {
        struct slot *s = &f->ring[f->st.next_seq & (f->ring_size - 1)];
        if (s->seq != f->st.next_seq)
            break;
        apply(f, s->data, s->len);
        s->seq = 0;
        f->held--;
    }
    if (f->held == 0 && f->st.in_gap && f->st.next_seq > f->st.gap_to) {
        f->st.in_gap = 0;
        f->st.gap_to = 0;
        if (given_up)
            return;
        f->st.recovered++;
        if (!f->st.unrecoverable)
            f->st.stale = 0;
        raise_event(f, TW_EV_RECOVERED, f->st.next_seq, f->st.next_seq - f->gap_first);
    }
}

/* Returns 1 when msg was taken (held, or applied past an unrecoverable gap), 0 when not. */
static int hold(struct tw_feed *f, uint64_t seq, const uint8_t *msg, uint16_t len)
{
    if (seq - f->st.next_seq >= f->ring_size) {
        /* the gap is wider than what can be held: give the missing messages up,
         * applying what was held, in sequence order, first */
        uint64_t first = f->st.next_seq, applied_held = 0;
        for (uint64_t q = first; q < seq && q < first + f->ring_size && f->held; q++) {
            struct slot *h = &f->ring[q & (f->ring_size - 1)];
            if (h->seq == q) {
                if (tw_books_apply(f->books, h->data, h->len) < 0)
                    f->st.book_errors++;
                f->st.applied++;
                applied_held++;
                h->seq = 0;
                f->held--;
            }
        }
        for (uint64_t i = 0; i < f->ring_size; i++)
            f->ring[i].seq = 0;
        f->held = 0;
        uint64_t missing = seq - first - applied_held;
        raise_event(f, TW_EV_UNRECOVERABLE, first, missing);
        f->st.skipped += missing;
        f->st.unrecoverable++;
        f->st.stale = 1;
        f->st.next_seq = seq;
        f->st.in_gap = 0;
        f->st.gap_to = 0;
        apply(f, msg, len);
        return 1;
    }
    struct slot *s = &f->ring[seq & (f->ring_size - 1)];
    if (s->seq == seq) {
        f->st.duplicates++;
        return 0;
    }
    if (len > SLOT_BYTES) {
        f->st.malformed++;
        return 0;
    }
    s->seq = seq;
    s->len = len;
    memcpy(s->data, msg, len);
    f->held++;
    if (!f->st.in_gap)
        open_gap(f, seq, seq - 1);
    if (seq > f->st.gap_to)
        f->st.gap_to = seq; /* the newest message held: the gap is next_seq .. before the first held */
    return 1;
}

int tw_feed_packet(struct tw_feed *f, uint32_t line, const uint8_t *pkt, uint32_t len)
{
    if (line > 2)
        return -EINVAL;
    f->st.packets[line]++;
    if (len < MOLD_HEADER) {
        f->st.malformed++;
        return -EINVAL;
    }
    if (!f->have_session) {
        memcpy(f->session, pkt, 10);
        f->have_session = 1;
    } else if (memcmp(f->session, pkt, 10) != 0) {
        if (f->st.applied || f->held) {
            f->st.other_session++;
            return -EINVAL;
        }
        /* nothing taken from the first session yet: it was a stray datagram, this one decides */
        f->st.other_session++;
        memcpy(f->session, pkt, 10);
        f->join_late = f->late;
    }
    uint64_t seq = rd64(pkt + 10);
    uint16_t count = rd16(pkt + 18);
    if (f->join_late) {
        f->join_late = 0;
        f->st.next_seq = seq;
    }
    if (count == 0 || count == 0xFFFF) { /* heartbeat or end of session: seq is the next to come */
        if (count == 0xFFFF && !f->st.end_of_session) {
            f->st.end_of_session = 1;
            raise_event(f, TW_EV_END_OF_SESSION, seq, 0);
        }
        if (seq > f->st.next_seq + f->held && !f->st.in_gap)
            open_gap(f, seq - 1, seq - 1); /* messages we never saw: only a retransmission can bring them */
        else if (f->st.in_gap && seq - 1 > f->st.gap_to)
            f->st.gap_to = seq - 1; /* the hole reaches further than we knew */
        return 0;
    }
    /* a first pass over the blocks starts the order-table loads the second will need */
    for (uint32_t off = MOLD_HEADER, i = 0; i < count && off + 2 <= len; i++) {
        uint16_t n = rd16(pkt + off);
        if (off + 2u + n > len)
            break;
        tw_books_prefetch(f->books, pkt + off + 2, n);
        off += 2u + n;
    }
    uint32_t off = MOLD_HEADER;
    if (f->unsequenced)
        seq = f->st.next_seq; /* every message is the next one */
    for (uint16_t i = 0; i < count; i++, seq++) {
        if (off + 2 > len || off + 2u + rd16(pkt + off) > len) {
            f->st.malformed++; /* what came before in this packet stands */
            return -EINVAL;
        }
        uint16_t n = rd16(pkt + off);
        const uint8_t *msg = pkt + off + 2;
        off += 2u + n;
        if (seq < f->st.next_seq) {
            f->st.duplicates++;
        } else if (seq == f->st.next_seq) {
            apply(f, msg, n);
            f->st.first_copy[line]++;
            drain(f, 0);
        } else if (hold(f, seq, msg, n)) {
            f->st.first_copy[line]++;
        }
    }
    return 0;
}

void tw_feed_state(const struct tw_feed *f, struct tw_feed_state *out)
{
    *out = f->st;
}

int tw_feed_missing(const struct tw_feed *f, uint64_t *first, uint64_t *count)
{
    if (!f->st.in_gap)
        return 0;
    uint64_t end = f->st.gap_to;
    /* the first held message after next_seq bounds the hole */
    for (uint64_t s = f->st.next_seq; s <= f->st.gap_to && s < f->st.next_seq + f->ring_size; s++) {
        if (f->ring[s & (f->ring_size - 1)].seq == s) {
            end = s - 1;
            break;
        }
    }
    *first = f->st.next_seq;
    *count = end >= f->st.next_seq ? end - f->st.next_seq + 1 : 0;
    return 1;
}

int tw_feed_skip_gap(struct tw_feed *f)
{
    if (!f->st.in_gap)
        return 0;
    uint64_t first, count;
    tw_feed_missing(f, &first, &count);
    raise_event(f, TW_EV_UNRECOVERABLE, first, count);
    f->st.unrecoverable++;
    f->st.skipped += count;
    f->st.stale = 1;
    f->st.next_seq = first + count;
    if (f->held) {
        drain(f, 1); /* applies what was held after the hole; the gap may stay open past a second hole */
    } else {
        f->st.in_gap = 0;
        f->st.gap_to = 0;
    }
    if (f->st.in_gap) /* a second hole past the first: it is a gap of its own now */
        f->gap_first = f->st.next_seq;
    return 1;
}

void tw_feed_unsequenced(struct tw_feed *f)
{
    f->unsequenced = 1;
}

void tw_feed_join_late(struct tw_feed *f)
{
    f->join_late = f->late = 1;
}

void tw_feed_session(const struct tw_feed *f, uint8_t out[10], int *known)
{
    memcpy(out, f->session, 10);
    *known = f->have_session;
}

int tw_feed_is_stale(const struct tw_feed *f)
{
    return f->st.stale;
}
