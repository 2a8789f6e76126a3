/* clock.c — TSC calibration against CLOCK_MONOTONIC. See clock.h. */
#include <time.h>

#include "clock.h"
#include "internal.h"

void tw_clock_calibrate(struct tw_clock *c)
{
    uint64_t tsc = rte_rdtsc(), ns = tw_mono_ns();
    if (!c->mult)
        c->mult = (uint64_t)(((__uint128_t)1000000000ull << 32) / rte_get_tsc_hz());
    else if (tsc > c->tsc0 && ns > c->ns0)
        c->mult = (uint64_t)(((__uint128_t)(ns - c->ns0) << 32) / (tsc - c->tsc0));
    c->tsc0 = tsc;
    c->ns0 = ns;
    struct timespec a, r, b; /* read only: this clock is never set here */
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_REALTIME, &r);
    clock_gettime(CLOCK_MONOTONIC, &b);
    int64_t mono = ((int64_t)a.tv_sec + b.tv_sec) * 500000000ll + (a.tv_nsec + b.tv_nsec) / 2;
    c->real_off = (int64_t)r.tv_sec * 1000000000ll + r.tv_nsec - mono;
}
