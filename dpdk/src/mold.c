/* mold.c — MoldUDP64 sequencing for one session: A/B arbitration, gaps, recovery.
 * See feed.h.
 *
 * Every downstream packet from line A, line B or the retransmission answer is
 * taken by tw_feed_accept; tw_feed_next then hands the loop, one at a time, the
 * messages that are now in sequence: the packet's next expected message, then
 * any held messages that now follow it. One already handed out is a duplicate
 * (the other line's copy, usually) and only counted. One past the next expected
 * opens a gap: it is held in a fixed ring, indexed by sequence number, until the
 * missing messages arrive from the other line or from a retransmission;
 * meanwhile the books are stale. A gap wider than the ring cannot be recovered:
 * once two sources show it, the feed hands out what it held, skips ahead, and the
 * books stay stale until the caller rebuilds them. Mold knows nothing of books: the loop applies what it
 * is handed (itch.c). Gap events go to the sink the loop gives (tw_feed_set_events).
 *
 * Nobody but the exchange speaks for the feed (feed.h, issue 16): a configured session is the
 * only one taken; every source's newest sequence number is kept (shown[]), and a jump past the
 * ring, or a gap given up, moves the expected sequence only when two sources showed it; answers
 * are taken only within the ranges asked. The refusals, the session and the re-request policy are
 * mold_guard.c's; the feed's state, mold.h's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "mold.h"

static void raise_event(struct tw_feed *f, uint32_t type, uint64_t a, uint64_t b)
{
    if (!f->events || !f->events->fn)
        return;
    struct tw_event ev = { .ts_ns = tw_mono_ns(), .type = type, .a = a, .b = b };
    f->events->fn(f->events->ctx, &ev);
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

struct tw_feed *tw_feed_create(uint64_t max_held)
{
    if (max_held == 0)
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

void tw_feed_set_events(struct tw_feed *f, const struct tw_event_sink *sink)
{
    f->events = sink;
}

void tw_feed_book_error(struct tw_feed *f)
{
    f->st.book_errors++;
}

/* No held message follows any more: close the gap when none is left (recovered,
 * unless the hole was given up). */
static void drained(struct tw_feed *f)
{
    int given_up = f->given_up;
    f->given_up = 0;
    if (f->held == 0 && f->st.in_gap && f->st.next_seq > f->st.gap_to) {
        f->st.in_gap = 0;
        f->st.gap_to = 0;
        if (!given_up) {
            f->st.recovered++;
            if (!f->st.unrecoverable)
                f->st.stale = 0;
            raise_event(f, TW_EV_RECOVERED, f->st.next_seq, f->st.next_seq - f->gap_first);
        }
    }
    if (given_up && f->st.in_gap) /* a second hole past the first: it is a gap of its own now */
        f->gap_first = f->st.next_seq;
    if (f->doubt && !f->st.in_gap) { /* a message in sequence after a dropped jump: the books are whole */
        f->doubt = 0;
        if (!f->st.unrecoverable)
            f->st.stale = 0;
    }
}

/* Hold a message past the next expected: 1 when held, 0 when not (a duplicate, or too long). */
static int hold(struct tw_feed *f, uint64_t seq, const uint8_t *msg, uint16_t len)
{
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

/* The gap up to seq is wider than what can be held: give the missing messages up. What
 * was held goes out first, in sequence order (FLUSH), then msg. */
static void too_wide(struct tw_feed *f, uint64_t seq, const uint8_t *msg, uint16_t len)
{
    uint64_t first = f->st.next_seq;
    f->mode = FLUSH;
    f->flush_first = f->flush_q = first;
    f->flush_end = seq < first + f->ring_size ? seq : first + f->ring_size;
    f->flush_applied = 0;
    f->forced_seq = seq;
    f->forced = msg;
    f->forced_len = len;
}

/* A message past the ring only one source shows: not held (no room), not believed yet; the gap
 * reaches it, so the other line, an answer or the give-up decides. */
static void far_unconfirmed(struct tw_feed *f, uint64_t seq)
{
    if (!f->st.in_gap)
        open_gap(f, seq, seq - 1);
    else if (seq > f->st.gap_to)
        f->st.gap_to = seq;
}

static const uint8_t *flush_next(struct tw_feed *f, uint32_t *len)
{
    while (f->flush_q < f->flush_end && f->held) {
        uint64_t q = f->flush_q++;
        struct slot *h = &f->ring[q & (f->ring_size - 1)];
        if (h->seq == q) {
            h->seq = 0;
            f->held--;
            f->st.applied++;
            f->flush_applied++;
            *len = h->len;
            return h->data;
        }
    }
    for (uint64_t i = 0; i < f->ring_size; i++)
        f->ring[i].seq = 0;
    f->held = 0;
    uint64_t missing = f->forced_seq - f->flush_first - f->flush_applied;
    raise_event(f, TW_EV_UNRECOVERABLE, f->flush_first, missing);
    f->st.skipped += missing;
    f->st.unrecoverable++;
    f->st.stale = 1;
    f->st.in_gap = 0;
    f->st.gap_to = 0;
    f->st.next_seq = f->forced_seq + 1;
    f->st.applied++;
    f->st.first_copy[f->line]++;
    f->mode = READ;
    *len = f->forced_len;
    return f->forced;
}

const uint8_t *tw_feed_next(struct tw_feed *f, uint32_t *len)
{
    for (;;) {
        if (f->mode == DRAIN) {
            struct slot *s = &f->ring[f->st.next_seq & (f->ring_size - 1)];
            if (f->held && s->seq == f->st.next_seq) {
                s->seq = 0;
                f->held--;
                f->st.applied++;
                f->st.next_seq++;
                *len = s->len;
                return s->data;
            }
            drained(f);
            f->mode = READ;
        }
        if (f->mode == FLUSH)
            return flush_next(f, len);
        if (!f->left)
            return NULL;
        uint16_t n = rd16(f->pkt + f->off);
        const uint8_t *msg = f->pkt + f->off + 2;
        f->off += 2u + n;
        f->left--;
        uint64_t seq = f->seq++;
        if (seq < f->st.next_seq) {
            f->st.duplicates++;
        } else if (seq == f->st.next_seq) {
            f->st.applied++;
            f->st.next_seq++;
            f->st.first_copy[f->line]++;
            f->mode = DRAIN; /* next: what was held after it */
            *len = n;
            return msg;
        } else if (seq - f->st.next_seq >= f->ring_size) {
            if (tw_mold_confirmed(f, seq))
                too_wide(f, seq, msg, n);
            else
                far_unconfirmed(f, seq);
        } else if (hold(f, seq, msg, n)) {
            f->st.first_copy[f->line]++;
        }
    }
}

int tw_feed_accept(struct tw_feed *f, uint32_t line, const uint8_t *pkt, uint32_t len)
{
    f->left = 0;
    if (line > 2)
        return -EINVAL;
    if (f->pending)
        tw_mold_flush_refused(f);
    f->st.packets[line]++;
    if (len < TW_MOLD_HEADER) {
        f->st.malformed++;
        return -EINVAL;
    }
    if (!f->have_session) {
        memcpy(f->session, pkt, 10);
        f->have_session = 1;
    } else if (memcmp(f->session, pkt, 10) != 0) {
        if (f->session_fixed) { /* not the configured session: refused, it never takes the feed */
            f->st.other_session++;
            tw_mold_refused(f, line, TW_REFUSED_SESSION, rd64(pkt + 10));
            return -EINVAL;
        }
        if (f->st.applied || f->held) {
            f->st.other_session++;
            return -EINVAL;
        }
        /* nothing taken from the first session yet: it was a stray datagram, this one decides */
        f->st.other_session++;
        memcpy(f->session, pkt, 10);
        memset(f->st.shown, 0, sizeof(f->st.shown)); /* what the stray showed says nothing of this one */
        f->join_late = f->late;
    }
    uint64_t seq = rd64(pkt + 10);
    uint16_t count = rd16(pkt + 18);
    if (line == 2 && f->answers_asked && !tw_mold_asked_for(f, seq, count)) {
        tw_mold_refused(f, 2, TW_REFUSED_UNASKED, seq);
        return -EINVAL;
    }
    if (f->join_late) {
        f->join_late = 0;
        f->st.next_seq = seq;
    }
    if (count == 0 || count == 0xFFFF) { /* heartbeat or end of session: seq is the next to come */
        if (seq && seq - 1 > f->st.shown[line])
            f->st.shown[line] = seq - 1; /* messages up to seq - 1 exist */
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
    /* the well-formed blocks: what comes before a malformed one stands */
    uint32_t off = TW_MOLD_HEADER, good = 0;
    const uint8_t *m;
    uint16_t n;
    while (good < count && (m = tw_mold_block(pkt, len, &off, &n)))
        good++;
    if (good && seq + good - 1 > f->st.shown[line] && !f->unsequenced)
        f->st.shown[line] = seq + good - 1;
    f->pkt = pkt;
    f->off = TW_MOLD_HEADER;
    f->line = line;
    f->left = good;
    f->seq = f->unsequenced ? f->st.next_seq : seq; /* unsequenced: every message is the next one */
    f->mode = READ;
    if (good < count) {
        f->st.malformed++;
        return -EINVAL;
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

/* A jump only one source showed, given up: it and what was held past the hole are dropped, the
 * expected sequence stays, and no source is taken to have shown more than what was applied. */
static void drop_jump(struct tw_feed *f)
{
    uint32_t by = 0;
    for (uint32_t l = 1; l < 3; l++)
        if (f->st.shown[l] > f->st.shown[by])
            by = l;
    uint64_t claimed = f->st.shown[by];
    for (uint64_t i = 0; i < f->ring_size; i++)
        f->ring[i].seq = 0;
    f->held = 0;
    f->left = 0;
    f->mode = READ;
    f->st.in_gap = 0;
    f->st.gap_to = 0;
    for (uint32_t l = 0; l < 3; l++)
        if (f->st.shown[l] >= f->st.next_seq)
            f->st.shown[l] = f->st.next_seq - 1;
    f->doubt = 1; /* stale until a message applies in sequence */
    tw_mold_refused(f, by, TW_REFUSED_JUMP, claimed);
}

int tw_feed_skip_gap(struct tw_feed *f)
{
    if (!f->st.in_gap)
        return 0;
    uint64_t first, count;
    tw_feed_missing(f, &first, &count);
    if (count && !tw_mold_confirmed(f, first + count - 1)) {
        drop_jump(f);
        return 1;
    }
    raise_event(f, TW_EV_UNRECOVERABLE, first, count);
    f->st.unrecoverable++;
    f->st.skipped += count;
    f->st.stale = 1;
    f->st.next_seq = first + count;
    f->left = 0;
    if (f->held) { /* tw_feed_next hands out what was held after the hole; the gap may stay open past a second */
        f->mode = DRAIN;
        f->given_up = 1;
    } else {
        f->st.in_gap = 0;
        f->st.gap_to = 0;
    }
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

int tw_feed_is_stale(const struct tw_feed *f)
{
    return f->st.stale;
}
