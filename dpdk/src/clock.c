/* clock.c — TSC calibration against CLOCK_MONOTONIC. See clock.h. */
#include <time.h>

#include "clock.h"
#include "internal.h"

/* An interrupt between the two reads makes a calibration's pair late: anchored there, the
 * mapping runs ahead of CLOCK_MONOTONIC, and the next anchor would step it back. Every
 * `now - then` against a time already handed out would then wrap (the session's link timeout,
 * a gap's give-up, the rate buckets). So the clock is never anchored below what it reads now
 * (told): it slews instead, running slower than the measured rate just enough to meet
 * CLOCK_MONOTONIC over the next interval, and never slower than half of it (a clock that
 * crawled would hold back the loop's timers and its own next calibration). */
void tw_clock_calibrate(struct tw_clock *c)
{
    uint64_t tsc = rte_rdtsc(), ns = tw_mono_ns(), anchor = ns;
    if (!c->mult) {
        c->mult = (uint64_t)(((__uint128_t)1000000000ull << 32) / rte_get_tsc_hz());
    } else if (tsc > c->tsc_m && ns > c->ns_m) {
        /* the rate the two clocks kept since the last calibration's own reads */
        uint64_t rate = (uint64_t)(((__uint128_t)(ns - c->ns_m) << 32) / (tsc - c->tsc_m));
        uint64_t told = c->ns0 + tw_clock_ns(c, tsc - c->tsc0); /* what the clock reads at tsc */
        if (told > ns) {
            uint64_t ahead = told - ns, span = ns - c->ns_m; /* the next interval: about as long */
            uint64_t keep = ahead < span / 2 ? span - ahead : span - span / 2;
            rate = (uint64_t)((__uint128_t)rate * keep / span);
            anchor = told;
        }
        c->mult = rate;
    } else if (tsc > c->tsc0) {
        uint64_t told = c->ns0 + tw_clock_ns(c, tsc - c->tsc0);
        if (told > ns)
            anchor = told;
    }
    c->tsc_m = tsc;
    c->ns_m = ns;
    c->tsc0 = tsc;
    c->ns0 = anchor;
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
