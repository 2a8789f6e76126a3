/* ouch.c — OUCH 5.0 messages: the Enter Order and Cancel Order the worker sends, and
 * the exchange's sequenced messages parsed into struct tw_ouch_msg. No socket here:
 * session.c carries them over SoupBinTCP. See order_entry.h.
 *
 * Enter Order (47 bytes): 'O', UserRefNum u32, side, quantity u32, symbol[8], price u64
 * (4 decimals), time in force, display, capacity, ISO eligibility, cross type, ClOrdID[14],
 * appendage length u16. Cancel Order (9 bytes): 'X', UserRefNum u32, quantity u32.
 */
#include <string.h>

#include "bytes.h"
#include "ouch.h"

void tw_ouch_encode_enter(uint8_t *m, uint32_t user_ref, uint8_t side, uint32_t qty, const char *symbol,
                          uint64_t price, uint8_t tif)
{
    memset(m, 0, TW_OUCH_ENTER_LEN);
    m[0] = 'O';
    wr32(m + 1, user_ref);
    m[5] = side;
    wr32(m + 6, qty);
    memcpy(m + 10, symbol, 8);
    for (int i = 10; i < 18; i++)
        if (m[i] == 0)
            m[i] = ' ';
    wr64(m + 18, price);
    m[26] = tif;
    m[27] = 'Y'; /* displayed */
    m[28] = 'A'; /* agency */
    m[29] = 'N'; /* not an intermarket sweep */
    m[30] = 'N'; /* no cross */
    memset(m + 31, ' ', 14);
    wr16(m + 45, 0); /* no appendage */
}

void tw_ouch_encode_cancel(uint8_t *m, uint32_t user_ref, uint32_t qty)
{
    m[0] = 'X';
    wr32(m + 1, user_ref);
    wr32(m + 5, qty);
}

uint64_t tw_ouch_ascii_number(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        if (p[i] >= '0' && p[i] <= '9')
            v = v * 10 + (uint64_t)(p[i] - '0');
    return v;
}

void tw_ouch_parse(struct tw_ouch_msg *m, const uint8_t *p, uint32_t len)
{
    memset(m, 0, sizeof(*m));
    m->type = len ? p[0] : 0;
    if (len >= 9)
        m->timestamp = rd64(p + 1);
    switch (m->type) {
    case 'A':
        if (len < 64)
            break;
        m->user_ref = rd32(p + 9);
        m->side = p[13];
        m->qty = rd32(p + 14);
        m->price = rd64(p + 26);
        m->order_ref = rd64(p + 36);
        m->state = p[47];
        break;
    case 'U':
        if (len < 68)
            break;
        m->orig_user_ref = rd32(p + 9);
        m->user_ref = rd32(p + 13);
        m->side = p[17];
        m->qty = rd32(p + 18);
        m->price = rd64(p + 30);
        m->order_ref = rd64(p + 40);
        m->state = p[51];
        break;
    case 'C':
        if (len < 18)
            break;
        m->user_ref = rd32(p + 9);
        m->qty = rd32(p + 13);
        m->reason = p[17];
        break;
    case 'E':
        if (len < 36)
            break;
        m->user_ref = rd32(p + 9);
        m->qty = rd32(p + 13);
        m->price = rd64(p + 17);
        m->liquidity = p[25];
        m->match = rd64(p + 26);
        break;
    case 'J':
        if (len < 29)
            break;
        m->user_ref = rd32(p + 9);
        m->reason = rd16(p + 13);
        break;
    case 'S':
        if (len >= 10)
            m->state = p[9];
        break;
    default: /* P I M B F D T R: the order it concerns, when it says */
        if (len >= 13)
            m->user_ref = rd32(p + 9);
        break;
    }
}

