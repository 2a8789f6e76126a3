/* itch.c — the ITCH messages that are not book messages, surfaced as state and
 * events: system events (S), the stock directory (R), trading actions (H), Reg
 * SHO restrictions (Y), market-wide circuit breakers (W) and operational halts
 * (h). Book messages (A F E C X D U) never come here: book.c applies them.
 * Other types (trades, crosses, imbalances, ...) have no state to keep. See
 * book.h.
 */
#include <string.h>

#include "bytes.h"
#include "internal.h"

static void raise_event(struct tw_books *b, uint32_t type, uint16_t locate, uint8_t code, const uint8_t *symbol)
{
    struct tw_event ev = { .ts_ns = tw_mono_ns(), .type = type, .locate = locate, .code = code };
    if (symbol)
        memcpy(ev.symbol, symbol, 8);
    tw_books_raise(b, &ev);
}

int tw_itch_state(struct tw_books *b, const uint8_t *m, uint32_t len)
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
        raise_event(b, TW_EV_SYSTEM, 0, m[11], NULL);
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
        raise_event(b, TW_EV_TRADING_ACTION, locate, m[19], m + 11);
        return 1;
    case 'Y':
        if (len != 20 || !in)
            return 0;
        in->reg_sho = m[19];
        raise_event(b, TW_EV_REG_SHO, locate, m[19], m + 11);
        return 1;
    case 'W':
        if (len != 12)
            return 0;
        raise_event(b, TW_EV_MWCB, 0, m[11], NULL);
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
        raise_event(b, TW_EV_OPERATIONAL_HALT, locate, m[20], m + 11);
        return 1;
    default:
        return 0;
    }
}

void tw_event_log_emit(void *ctx, const struct tw_event *ev)
{
    struct tw_event_log *log = ctx;
    if (log->n < log->cap)
        log->ev[log->n++] = *ev;
    else
        log->dropped++;
}
