/* clock.c — TSC calibration against CLOCK_MONOTONIC. See clock.h. */
#include <time.h>

#include "clock.h"
#include "internal.h"

void tw_clock_calibrate(struct tw_clock *c)
{
    uint64_t tsc = rte_rdtsc(), ns = tw_mono_ns();
    if (!c->mult) {
        c->mult = (uint64_t)(((__uint128_t)1000000000ull << 32) / rte_get_tsc_hz());
    } else if (tsc > c->tsc0) {
        /* An interrupt between the two reads above makes an anchor late: the mapping then runs
         * ahead of CLOCK_MONOTONIC, and anchoring at ns now would step it back. Every `now - then`
         * against a time already handed out would wrap (the session's link timeout, a gap's
         * give-up, the rate buckets). So never anchor below what the clock reads now (told): the
         * rate measured over the next interval takes the difference out, without a step. */
        uint64_t told = c->ns0 + tw_clock_ns(c, tsc - c->tsc0); /* what the clock reads at tsc */
        c->mult = ns > c->ns0 ? (uint64_t)(((__uint128_t)(ns - c->ns0) << 32) / (tsc - c->tsc0))
                              : c->mult / 2; /* ahead by more than an interval: half speed until caught up */
        if (ns < told)
            ns = told;
    }
    c->tsc0 = tsc;
    c->ns0 = ns;
    struct timespec a, r, b; /* read only: this clock is never set here */
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_REALTIME, &r);
    clock_gettime(CLOCK_MONOTONIC, &b);
    int64_t mono = ((int64_t)a.tv_sec + b.tv_sec) * 500000000ll + (a.tv_nsec + b.tv_nsec) / 2;
    c->real_off = (int64_t)r.tv_sec * 1000000000ll + r.tv_nsec - mono;
}

uint64_t tw_clock_read(const struct tw_clock *c)
{
    return tw_clock_now(c);
}
