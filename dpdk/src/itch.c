/* itch.c — every ITCH 5.0 message decoded, and the only caller of the book.
 *
 * Book messages (A F E C X D U) become book operations (book.c: place, execute,
 * reduce, delete, replace); the state messages become instrument state and
 * events: system events (S), the stock directory (R), trading actions (H), Reg
 * SHO restrictions (Y), market-wide circuit breakers (W), operational halts (h)
 * and hidden trades (P). Other types (crosses, imbalances, ...) have no state to
 * keep: they are counted as ignored. Events go to the sink the caller gives.
 * See feed.h.
 */
#include <string.h>

#include "bytes.h"
#include "internal.h"
#include "feed.h"

/* Expected length of each type byte; 0 for types that do not touch the book. */
static const uint8_t BOOK_LEN[256] = {
    ['A'] = 36, ['F'] = 40, ['E'] = 31, ['C'] = 36, ['X'] = 23, ['D'] = 19, ['U'] = 35,
};

static void raise_event(const struct tw_event_sink *sink, uint32_t type, uint16_t locate, uint8_t code,
                        const uint8_t *symbol)
{
    if (!sink || !sink->fn)
        return;
    struct tw_event ev = { .ts_ns = tw_mono_ns(), .type = type, .locate = locate, .code = code };
    if (symbol)
        memcpy(ev.symbol, symbol, 8);
    sink->fn(sink->ctx, &ev);
}

/* A message that is not a book message: 1 when it was a state message (S R H Y W h P)
 * and was taken, 0 otherwise. */
static int state(struct tw_books *b, const struct tw_event_sink *sink, const uint8_t *m, uint32_t len)
{
    uint32_t max_locate;
    struct tw_instrument *ins = tw_books_instruments(b, &max_locate);
    uint16_t locate = len >= 3 ? rd16(m + 1) : 0;
    struct tw_instrument *in = locate <= max_locate ? &ins[locate] : NULL;

    switch (m[0]) {
    case 'S':
        if (len != 12)
            return 0;
        tw_books_set_system_event(b, m[11]);
        raise_event(sink, TW_EV_SYSTEM, 0, m[11], NULL);
        return 1;
    case 'R':
        if (len != 39 || !in)
            return 0;
        memcpy(in->symbol, m + 11, 8);
        in->market_category = m[19];
        in->round_lot = rd32(m + 21);
        return 1;
    case 'H':
        if (len != 25 || !in)
            return 0;
        if (!in->symbol[0])
            memcpy(in->symbol, m + 11, 8);
        in->trading_state = m[19];
        raise_event(sink, TW_EV_TRADING_ACTION, locate, m[19], m + 11);
        return 1;
    case 'Y':
        if (len != 20 || !in)
            return 0;
        in->reg_sho = m[19];
        raise_event(sink, TW_EV_REG_SHO, locate, m[19], m + 11);
        return 1;
    case 'W':
        if (len != 12)
            return 0;
        raise_event(sink, TW_EV_MWCB, 0, m[11], NULL);
        return 1;
    case 'P': /* a trade against a hidden order: the last trade, no book change */
        if (len != 44 || !in)
            return 0;
        in->last_trade = rd32(m + 32);
        return 1;
    case 'h':
        if (len != 21 || !in)
            return 0;
        in->operational_halt = m[20] == 'H';
        raise_event(sink, TW_EV_OPERATIONAL_HALT, locate, m[20], m + 11);
        return 1;
    default:
        return 0;
    }
}

int tw_itch_apply(struct tw_books *b, const struct tw_event_sink *sink, const uint8_t *m, uint32_t len)
{
    if (len == 0) {
        tw_books_refused(b, TW_BOOK_EBADLENGTH);
        return TW_BOOK_EBADLENGTH;
    }
    uint8_t t = m[0];
    if (BOOK_LEN[t] == 0) {
        tw_books_other(b, state(b, sink, m, len));
        return 0; /* not a book message */
    }
    if (len != BOOK_LEN[t]) {
        tw_books_refused(b, TW_BOOK_EBADLENGTH);
        return TW_BOOK_EBADLENGTH;
    }
    switch (t) {
    case 'A':
    case 'F': /* side B or S; anything else is a bad field (side 2) */
        return tw_books_place(b, rd64(m + 11), rd16(m + 1), m[19] == 'S' ? 1 : m[19] == 'B' ? 0 : 2, rd32(m + 20),
                              rd32(m + 32));
    case 'E': /* executed at the resting order's price */
        return tw_books_execute(b, rd64(m + 11), rd32(m + 19), -1);
    case 'C': /* executed at the price it carries */
        return tw_books_execute(b, rd64(m + 11), rd32(m + 19), rd32(m + 32));
    case 'X': /* canceled shares */
        return tw_books_reduce(b, rd64(m + 11), rd32(m + 19));
    case 'D':
        return tw_books_delete(b, rd64(m + 11));
    default: /* 'U': original reference, new reference, shares, price */
        return tw_books_replace(b, rd64(m + 11), rd64(m + 19), rd32(m + 27), rd32(m + 31));
    }
}

void tw_itch_prefetch(const struct tw_books *b, const uint8_t *m, uint32_t len)
{
    if (len >= 19 && BOOK_LEN[m[0]])
        tw_books_prefetch(b, rd64(m + 11));
}

uint64_t tw_itch_apply_binaryfile(struct tw_books *b, const struct tw_event_sink *sink, const uint8_t *buf,
                                  uint64_t len)
{
    enum { AHEAD = 4 }; /* messages between a prefetch and its use */
    uint64_t off = 0, ahead = 0, n = 0;
    for (int i = 0; i < AHEAD && ahead + 2 <= len; i++) {
        uint16_t m = rd16(buf + ahead);
        if (ahead + 2 + m > len)
            break;
        tw_itch_prefetch(b, buf + ahead + 2, m);
        ahead += 2u + m;
    }
    while (off + 2 <= len) {
        uint16_t m = rd16(buf + off);
        if (off + 2 + m > len)
            break;
        if (ahead + 2 <= len) {
            uint16_t am = rd16(buf + ahead);
            if (ahead + 2 + am <= len) {
                tw_itch_prefetch(b, buf + ahead + 2, am);
                ahead += 2u + am;
            }
        }
        tw_itch_apply(b, sink, buf + off + 2, m);
        off += 2u + m;
        n++;
    }
    return n;
}
