/* mold.h — the MoldUDP64 feed's state, shared by its sequencing (mold.c) and its guard and
 * re-request policy (mold_guard.c). C only. See feed.h. */
#ifndef TW_MOLD_H
#define TW_MOLD_H
#include <stdint.h>

#include "internal.h"
#include "feed.h"

#define SLOT_BYTES 64 /* the longest ITCH message is 50 bytes */

struct slot {
    uint64_t seq; /* 0: empty */
    uint16_t len;
    uint8_t data[SLOT_BYTES];
};

/* What tw_feed_next does next: read the packet's blocks, hand out held messages that
 * now follow, or hand out what was held below a gap too wide to hold (then the
 * message that opened it). */
enum mode { READ = 0, DRAIN, FLUSH };

struct tw_feed {
    struct slot *ring;
    uint64_t ring_size; /* a power of two */
    uint64_t held;
    uint8_t session[10];
    int have_session;
    uint64_t gap_first; /* the first sequence number missing when the gap opened */
    int join_late;      /* start from the first packet's sequence number, not 1 (pending) */
    int late;           /* the feed was asked to join late */
    int unsequenced;    /* apply every message in arrival order (captures with zeroed sequence numbers) */
    const struct tw_event_sink *events; /* the loop's, or NULL */
    /* the packet being handed out */
    enum mode mode;
    int given_up;       /* the drain follows a hole given up (no recovery) */
    const uint8_t *pkt;
    uint32_t off, line;
    uint32_t left;      /* well-formed blocks still to read */
    uint64_t seq;       /* the next block's sequence number */
    /* FLUSH: held messages in [flush_q, flush_end) go first, then `forced` */
    uint64_t flush_q, flush_end, flush_first, flush_applied, forced_seq;
    const uint8_t *forced;
    uint16_t forced_len;
    /* who may speak for the feed (issue 16) */
    int session_fixed;  /* the session was configured: another is refused, never taken */
    int answers_asked;  /* retransmission answers only within asked_* */
    int doubt;          /* an unconfirmed jump was dropped: stale until a message applies in sequence */
    uint32_t asked_next;
    uint64_t asked_first[TW_FEED_ASKED], asked_count[TW_FEED_ASKED];
    uint64_t pending;   /* refusals not raised yet (any line, any reason) */
    uint64_t refused_pending[3][TW_NREFUSALS], refused_ns[3][TW_NREFUSALS];
    struct tw_feed_state st;
};

/* Two sources (line A, line B, the answers) have shown sequence numbers up to seq at least. */
static inline int tw_mold_confirmed(const struct tw_feed *f, uint64_t seq)
{
    return (f->st.shown[0] >= seq) + (f->st.shown[1] >= seq) + (f->st.shown[2] >= seq) >= 2;
}

/* mold_guard.c: a refusal counted and raised (rate-limited); what a flood left unraised, once its
 * second is over; whether an answer falls in a range asked */
void tw_mold_refused(struct tw_feed *f, uint32_t line, uint32_t why, uint64_t seq);
void tw_mold_flush_refused(struct tw_feed *f);
int tw_mold_asked_for(const struct tw_feed *f, uint64_t seq, uint16_t count);

#endif
