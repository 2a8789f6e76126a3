/* jitter.c — how long a core is taken away from a thread that never lets go of
 * it: a busy loop that reads the clock as fast as it can and keeps every gap
 * between two reads longer than a threshold (tickwire tune jitter). Not the hot
 * path: a diagnostic that stands in for the worker on its core. See lab.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "lab.h"

static inline uint64_t pow10u(uint32_t e)
{
    uint64_t v = 1;
    while (e--)
        v *= 10;
    return v;
}

static inline uint64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* the vDSO's TSC read: no syscall */
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Keep the gap among the longest ones (top is sorted longest first). */
static void keep(struct tw_gap_stats *st, uint64_t at, uint64_t len)
{
    uint32_t n = sizeof(st->top) / sizeof(st->top[0]);
    if (len <= st->top[n - 1].len_ns)
        return;
    uint32_t i = n - 1;
    while (i > 0 && st->top[i - 1].len_ns < len) {
        st->top[i] = st->top[i - 1];
        i--;
    }
    st->top[i].at_ns = at;
    st->top[i].len_ns = len;
}

int tw_gap_run(uint32_t cpu, uint64_t duration_ns, uint64_t threshold_ns, struct tw_gap_stats *out)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) < 0)
        return -errno;
    prctl(PR_SET_NAME, "tw-jitter"); /* the tracers tell it from what takes the core away */
    memset(out, 0, sizeof(*out));
    out->cpu = cpu;
    out->threshold_ns = threshold_ns;
    uint64_t start = mono(), prev = start, end = start + duration_ns;
    for (;;) {
        uint64_t now = mono();
        uint64_t gap = now - prev;
        out->samples++;
        if (gap > threshold_ns) {
            out->gaps++;
            out->gap_ns += gap;
            if (gap > out->max_ns)
                out->max_ns = gap;
            keep(out, prev, gap);
            for (uint32_t b = 0; b < 8; b++) /* 1 us, 10 us, ... 10 s and more */
                if (gap >= 1000ull * pow10u(b) && (b == 7 || gap < 1000ull * pow10u(b + 1)))
                    out->by_decade[b]++;
        }
        prev = now;
        if (now >= end)
            break;
    }
    out->elapsed_ns = prev - start;
    out->running_on = (uint32_t)sched_getcpu();
    return 0;
}
