/* mold_guard.c — who may speak for the feed (issue 16), and when to ask the re-request server.
 *
 * The feed's sequencing is mold.c's; here: refusals counted in tw_feed_state.refused and raised as
 * TW_EV_FEED_REFUSED at most once a second per (line, why) with the count since the last one (a
 * flood cannot fill the event ring); the configured session; the ranges asked, which answers must
 * fall in; and the re-request policy for an open gap. See feed.h.
 */
#include <string.h>

#include "mold.h"

/* ---- refusals: counted, raised at most once a second per (line, why) with the count since ---- */

static void raise_refused(struct tw_feed *f, uint32_t line, uint32_t why, uint64_t now, uint64_t seq)
{
    uint64_t n = f->refused_pending[line][why];
    f->refused_pending[line][why] = 0;
    f->pending -= n;
    f->refused_ns[line][why] = now;
    if (!f->events || !f->events->fn)
        return;
    struct tw_event ev = { .ts_ns = now, .type = TW_EV_FEED_REFUSED, .code = (uint8_t)why, .line = (uint8_t)line,
                           .a = n, .b = f->st.refused[line][why], .seq = seq };
    f->events->fn(f->events->ctx, &ev);
}

void tw_mold_refused(struct tw_feed *f, uint32_t line, uint32_t why, uint64_t seq)
{
    f->st.refused[line][why]++;
    f->refused_pending[line][why]++;
    f->pending++;
    uint64_t now = tw_mono_ns();
    if (!f->refused_ns[line][why] || now - f->refused_ns[line][why] >= TW_FEED_REFUSED_EVERY_MS * 1000000ull)
        raise_refused(f, line, why, now, seq);
}

/* What a flood left unraised, once its second is over. */
void tw_mold_flush_refused(struct tw_feed *f)
{
    uint64_t now = tw_mono_ns();
    for (uint32_t l = 0; l < 3; l++)
        for (uint32_t why = 0; why < TW_NREFUSALS; why++)
            if (f->refused_pending[l][why] && now - f->refused_ns[l][why] >= TW_FEED_REFUSED_EVERY_MS * 1000000ull)
                raise_refused(f, l, why, now, 0);
}

void tw_feed_refuse(struct tw_feed *f, uint32_t line, uint32_t why)
{
    if (line < 3 && why < TW_NREFUSALS)
        tw_mold_refused(f, line, why, 0);
}

/* An answer's sequence numbers all fall in one of the ranges asked. */
int tw_mold_asked_for(const struct tw_feed *f, uint64_t seq, uint16_t count)
{
    if (count == 0 || count == 0xFFFF)
        return 0; /* a heartbeat answers nothing we asked */
    for (uint32_t i = 0; i < TW_FEED_ASKED; i++)
        if (f->asked_count[i] && seq >= f->asked_first[i] && seq + count <= f->asked_first[i] + f->asked_count[i])
            return 1;
    return 0;
}

void tw_feed_expect_session(struct tw_feed *f, const uint8_t *session)
{
    f->session_fixed = session != NULL;
    f->have_session = session != NULL;
    if (session)
        memcpy(f->session, session, 10);
}

void tw_feed_answers_asked_only(struct tw_feed *f)
{
    f->answers_asked = 1;
}

void tw_feed_asked_range(struct tw_feed *f, uint64_t first, uint64_t count)
{
    uint32_t i = f->asked_next++ % TW_FEED_ASKED;
    f->asked_first[i] = first;
    f->asked_count[i] = count;
}

/* ---- re-requests: when to ask the retransmission server, when to give a gap up ---------- */

int tw_feed_gap_action(struct tw_feed *f, struct tw_rerequest *rr, uint64_t now, uint8_t req[20])
{
    uint64_t first, count;
    if (!tw_feed_missing(f, &first, &count) || count == 0) {
        rr->gap_since = 0;
        return TW_GAP_WAIT;
    }
    if (!rr->gap_since)
        rr->gap_since = now;
    if (rr->give_up_ns && now - rr->gap_since > rr->give_up_ns) {
        rr->gap_since = 0;
        rr->asked_ns = 0;
        rr->asked_count = 0;
        return TW_GAP_GIVE_UP;
    }
    if (!rr->can_ask || now - rr->gap_since < rr->delay_ns)
        return TW_GAP_WAIT; /* the other line may still bring it */
    int answered = first >= rr->asked_first + rr->asked_count;
    if (rr->asked_ns && !answered && now - rr->asked_ns < rr->interval_ns)
        return TW_GAP_WAIT;
    if (!f->have_session)
        return TW_GAP_WAIT;
    if (count > rr->max)
        count = rr->max;
    memcpy(req, f->session, 10);
    wr64(req + 10, first);
    wr16(req + 18, (uint16_t)count);
    tw_feed_asked_range(f, first, count); /* its answers are taken (sent or not: no wider than asked) */
    return TW_GAP_ASK;
}

void tw_feed_asked(struct tw_rerequest *rr, uint64_t now, const uint8_t req[20])
{
    rr->asked_ns = now;
    rr->asked_first = rd64(req + 10);
    rr->asked_count = rd16(req + 18);
}
