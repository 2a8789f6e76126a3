/* itch_index.c — scan a NASDAQ BinaryFILE of ITCH messages (see feed.h).
 *
 * Two passes, each a straight walk over the length prefixes: a census sizes the
 * per-type arrays, the split copies each message into its array. No allocation;
 * the caller owns every buffer.
 */
#include <string.h>

#include "bytes.h"
#include "feed.h"

uint64_t tw_itch_census(const uint8_t *buf, uint64_t len, const uint16_t *expected,
                        uint64_t *counts, uint64_t *malformed)
{
    uint64_t off = 0;
    while (off + 2 <= len) {
        uint16_t n = rd16(buf + off);
        if (off + 2 + n > len)
            break;
        if (n && expected[buf[off + 2]] == n)
            counts[buf[off + 2]]++;
        else
            (*malformed)++;
        off += 2u + n;
    }
    return off;
}

uint64_t tw_itch_split(const uint8_t *buf, uint64_t len, const uint16_t *expected,
                       uint8_t **dest, uint64_t **offsets, uint64_t *cursor,
                       uint64_t *bad_offsets, uint64_t bad_cap, uint64_t *nbad)
{
    uint64_t off = 0;
    while (off + 2 <= len) {
        uint16_t n = rd16(buf + off);
        if (off + 2 + n > len)
            break;
        uint8_t t = n ? buf[off + 2] : 0;
        if (n && expected[t] == n) {
            if (dest[t]) {
                uint64_t row = cursor[t]++;
                memcpy(dest[t] + row * n, buf + off + 2, n);
                if (offsets && offsets[t])
                    offsets[t][row] = off;
            }
        } else {
            if (*nbad < bad_cap)
                bad_offsets[*nbad] = off;
            (*nbad)++;
        }
        off += 2u + n;
    }
    return off;
}
