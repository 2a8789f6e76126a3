/* histogram.h — the face of the per-stage latency histograms.
 * Implemented by dpdk/src/histogram.c.
 * cffi reads it (joined with the other faces by dpdk/build_ext.py, preprocessor
 * lines stripped): plain declarations only. */
#ifndef TW_HISTOGRAM_H
#define TW_HISTOGRAM_H
#include <stdint.h>

/* ---- HDR-style histograms (dpdk/src/histogram.c) -----------------------------------
 * Log-linear buckets: values below 32 exactly, then 16 buckets per power of two
 * (about 6 % wide) up to 2^40 ns. One writer (the worker); readers copy the
 * counts while it runs: every field is one aligned 64-bit word. */

struct tw_hist {
    uint64_t count;
    uint64_t sum;
    uint64_t min;
    uint64_t max;
    uint64_t buckets[592];
};

void tw_hist_record(struct tw_hist *h, uint64_t value);
/* The smallest value bucket i holds (bucket i holds [low(i), low(i + 1))). */
uint64_t tw_hist_bucket_low(uint32_t i);
uint32_t tw_hist_nbuckets(void);

#endif
