/* fast_clock.c -- choosing the fast clock's path, calibrating the TSC against CLOCK_MONOTONIC,
 * anchoring (see fast_clock.h). */
#include "fast_clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#define CLOCKSOURCE_PATH "/sys/devices/system/clocksource/clocksource0/current_clocksource"
#define CPUID_POWER_LEAF 0x80000007u   /* advanced power management: EDX bit 8, invariant TSC */
#define CPUID_INVARIANT_TSC (1u << 8u) /* "TscInvariant" (AMD), "Invariant TSC" (Intel) */

/* One (CLOCK_MONOTONIC, TSC) pair: the TSC is the middle of the rdtsc bracket around the clock
 * read, so it is off by at most half the bracket's width. */
typedef struct {
    uint64_t ns, tsc, width;
} clock_pair;

static int invariant_tsc(void)
{
#if defined(__x86_64__)
    unsigned a, b, c, d;
    /* unsigned: GCC returns unsigned int, clang int */
    if ((unsigned)__get_cpuid_max(0x80000000u, NULL) < CPUID_POWER_LEAF) return 0;
    if (!__get_cpuid(CPUID_POWER_LEAF, &a, &b, &c, &d)) return 0;
    return (d & CPUID_INVARIANT_TSC) != 0;
#else
    return 0;
#endif
}

static int kernel_clocksource_is_tsc(void)
{
    char name[32] = "";
    FILE *f = fopen(CLOCKSOURCE_PATH, "re");
    if (!f) return 0;
    int ok = fgets(name, sizeof name, f) != NULL;
    fclose(f);
    return ok && strcmp(name, "tsc\n") == 0;
}

/* Why the TSC must not be used here, or NULL when it may. */
static const char *tsc_refused(void)
{
    const char *env = getenv(ARRPC_FAST_CLOCK_ENV);
    if (env && strcmp(env, "0") == 0) return "clock_gettime: turned off by " ARRPC_FAST_CLOCK_ENV;
#if !defined(__x86_64__)
    return "clock_gettime: not x86-64";
#endif
    if (!invariant_tsc()) return "clock_gettime: the CPU has no invariant TSC";
    if (!kernel_clocksource_is_tsc())
        return "clock_gettime: the kernel's clock source is not tsc (" CLOCKSOURCE_PATH ")";
    return NULL;
}

static clock_pair read_pair(void)
{
    clock_pair best = {.width = UINT64_MAX};
    for (int i = 0; i < ARRPC_FAST_CLOCK_PAIR_TRIES; i++) {
        uint64_t before = arrpc__fast_clock_ticks();
        uint64_t ns = arrpc__clock_ns();
        uint64_t after = arrpc__fast_clock_ticks();
        if (after < before) continue; /* moved to another CPU in between: try again */
        if (after - before < best.width)
            best = (clock_pair){
                .ns = ns, .tsc = before + (after - before) / 2, .width = after - before};
    }
    return best;
}

/* Sets fc's rate from two pairs ARRPC_FAST_CLOCK_CALIBRATION_NS apart. The ticks between them
 * are uncertain by half of each bracket, so the rate by (width_a + width_b) / 2 / ticks, the
 * bound kept in error_ppm. 0, or -1 when the rate is unusable (too unsure, or out of range). */
static int calibrate(arrpc__fast_clock *fc)
{
    clock_pair a = read_pair();
    struct timespec wait = {.tv_sec = 0, .tv_nsec = ARRPC_FAST_CLOCK_CALIBRATION_NS};
    nanosleep(&wait, NULL); /* interrupted: the pairs are simply closer, and the bound says so */
    clock_pair b = read_pair();
    if (a.width == UINT64_MAX || b.width == UINT64_MAX || b.tsc <= a.tsc || b.ns <= a.ns) return -1;
    uint64_t ticks = b.tsc - a.tsc, ns = b.ns - a.ns;
    if (ns >= (UINT64_C(1) << 31)) return -1; /* ns << 32 must fit: a 2 s wait is no calibration */
    fc->error_ppm = ((double)a.width + (double)b.width) / 2.0 / (double)ticks * 1e6;
    if (fc->error_ppm > ARRPC_FAST_CLOCK_MAX_ERROR_PPM) return -1;
    fc->mult = (ns << ARRPC_FAST_CLOCK_SHIFT) / ticks;
    if (fc->mult == 0) return -1; /* a counter faster than 2^32 ticks a nanosecond: not a TSC */
    fc->span_ticks = ((uint64_t)ARRPC_FAST_CLOCK_SPAN_NS << ARRPC_FAST_CLOCK_SHIFT) / fc->mult;
    /* The largest product a reading makes must not wrap. */
    return fc->span_ticks <= UINT64_MAX / fc->mult ? 0 : -1;
}

void arrpc__fast_clock_init(arrpc__fast_clock *fc)
{
    *fc = (arrpc__fast_clock){.why = tsc_refused()};
    if (!fc->why && calibrate(fc) == 0) {
        fc->tsc = 1;
        fc->why = "the TSC between clock_gettime anchors";
    } else if (!fc->why) {
        fc->why = "clock_gettime: the TSC's calibration was too unsure";
    }
    arrpc__fast_clock_anchor(fc);
}

uint64_t arrpc__fast_clock_anchor(arrpc__fast_clock *fc)
{
    if (!fc->tsc) return arrpc__clock_ns();
    uint64_t before = arrpc__fast_clock_ticks();
    uint64_t ns = arrpc__clock_ns();
    uint64_t after = arrpc__fast_clock_ticks();
    fc->anchor_ns = ns;
    fc->anchor_tsc = after >= before ? before + (after - before) / 2 : after;
    return ns;
}

uint64_t arrpc__fast_clock_reanchor(arrpc__fast_clock *fc)
{
    uint64_t ns = arrpc__fast_clock_anchor(fc);
    if (ns > fc->last_ns) fc->last_ns = ns;
    return fc->last_ns;
}
