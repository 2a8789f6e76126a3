/* histogram.c — HDR-style latency histograms: exact below 32, then 16 buckets
 * per power of two. See histogram.h. */
#include "histogram.h"

#define SUB 16u
#define NBUCKETS 592u /* (39 - 4 + 1) * 16 + 16: values up to 2^40 */

static inline uint32_t bucket(uint64_t v)
{
    if (v < 2 * SUB)
        return (uint32_t)v;
    uint32_t msb = 63u - (uint32_t)__builtin_clzll(v);
    uint32_t e = msb - 4u; /* shift that leaves 16..31 */
    uint32_t i = e * SUB + (uint32_t)(v >> e);
    return i < NBUCKETS ? i : NBUCKETS - 1;
}

void tw_hist_record(struct tw_hist *h, uint64_t v)
{
    h->buckets[bucket(v)]++;
    h->sum += v;
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count++;
}

uint64_t tw_hist_bucket_low(uint32_t i)
{
    if (i < 2 * SUB)
        return i;
    uint32_t e = i / SUB - 1u;
    return (uint64_t)(i - e * SUB) << e;
}

uint32_t tw_hist_nbuckets(void)
{
    return NBUCKETS;
}
