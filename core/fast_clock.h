/* fast_clock.h -- a cheaper nanosecond clock for one thread's per-request path: CLOCK_MONOTONIC
 * read once per loop iteration (the anchor), the CPU's time-stamp counter counted on from there.
 *
 * A worker times every request for its latency histogram. clock_gettime costs about twice a bare
 * rdtsc, and at one read per request it was several percent of a pipelined worker's CPU. Here a
 * reading is anchor_ns + (rdtsc - anchor_tsc) * mult >> ARRPC_FAST_CLOCK_SHIFT: one multiply and
 * one shift, no division. The anchor is taken anew once per loop iteration, and by the reading
 * itself once ARRPC_FAST_CLOCK_SPAN_NS have passed since it, so a rate error never adds up past
 * one span. Readings never go back and never fall below the current anchor.
 *
 * The TSC is used only where it is as good as the kernel's own clock: on x86-64 with an invariant
 * TSC (constant rate, running in every power state) while the kernel's clock source is `tsc`
 * (the kernel then checked that the CPUs' counters agree). Anywhere else, or with
 * ARRPC_FAST_CLOCK=0 in the environment, every reading is arrpc__clock_ns() (see clock.h).
 *
 * Not thread-safe: each clock belongs to one thread (a worker's loop). Readings are on the same
 * time line as arrpc__clock_ns, within the error bound documented in docs/performance.md. */
#ifndef ARRPC_CORE_FAST_CLOCK_H
#define ARRPC_CORE_FAST_CLOCK_H

#include <stdint.h>

#include "clock.h"

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

/* The longest a reading extrapolates from its anchor: past it, the reading anchors again. Keeps
 * the error of a long loop iteration (an inline handler that runs for seconds) to one span's,
 * and keeps ticks * mult far below 2^64. */
#define ARRPC_FAST_CLOCK_SPAN_NS 10000000u
/* How long calibration waits between its two (monotonic, TSC) pairs, once per clock. */
#define ARRPC_FAST_CLOCK_CALIBRATION_NS 2000000u
/* Tries per calibration pair: the one with the narrowest rdtsc bracket around clock_gettime
 * counts (an interrupt in between widens the bracket). */
#define ARRPC_FAST_CLOCK_PAIR_TRIES 5
/* A calibration less sure than this (parts per million of rate) is not used: the clock falls
 * back to arrpc__clock_ns. */
#define ARRPC_FAST_CLOCK_MAX_ERROR_PPM 100u
/* The fixed-point scale of mult: nanoseconds per tick times 2^32. */
#define ARRPC_FAST_CLOCK_SHIFT 32
/* Set to "0", turns the TSC path off (tests, or a machine whose TSC is suspect). */
#define ARRPC_FAST_CLOCK_ENV "ARRPC_FAST_CLOCK"

typedef struct arrpc__fast_clock {
    int tsc;             /* 1: the TSC path; 0: every reading is arrpc__clock_ns() */
    uint64_t mult;       /* nanoseconds per tick << ARRPC_FAST_CLOCK_SHIFT */
    uint64_t span_ticks; /* ARRPC_FAST_CLOCK_SPAN_NS in ticks */
    uint64_t anchor_ns;  /* CLOCK_MONOTONIC at the anchor... */
    uint64_t anchor_tsc; /* ...and the TSC then (the middle of a bracket around that read) */
    uint64_t last_ns;    /* the latest reading: none after it is smaller */
    double error_ppm;    /* calibration's bound on its rate error */
    const char *why;     /* which path and why, for a debug line */
} arrpc__fast_clock;

/* Chooses the path and, for the TSC, calibrates (sleeping ARRPC_FAST_CLOCK_CALIBRATION_NS) and
 * anchors. Once per thread that owns a clock; never fails (the fallback always works). */
void arrpc__fast_clock_init(arrpc__fast_clock *fc);

/* Reads CLOCK_MONOTONIC and, on the TSC path, makes that the anchor of the readings that follow.
 * Returns the monotonic reading in nanoseconds (not clamped: it is the kernel's clock). */
uint64_t arrpc__fast_clock_anchor(arrpc__fast_clock *fc);

/* Anchors again (the span ran out, or the counter went back) and returns the reading then;
 * called by arrpc__fast_clock_ns only. */
uint64_t arrpc__fast_clock_reanchor(arrpc__fast_clock *fc);

static inline uint64_t arrpc__fast_clock_ticks(void)
{
#if defined(__x86_64__)
    return __rdtsc();
#else
    return 0; /* never read: the TSC path is x86-64 only */
#endif
}

/* Nanoseconds on CLOCK_MONOTONIC's time line, monotonic per clock. */
static inline uint64_t arrpc__fast_clock_ns(arrpc__fast_clock *fc)
{
    if (!fc->tsc) return arrpc__clock_ns();
    /* Unsigned: a counter behind the anchor (another CPU's, a hair behind) wraps past the span. */
    uint64_t ticks = arrpc__fast_clock_ticks() - fc->anchor_tsc;
    if (ticks > fc->span_ticks) return arrpc__fast_clock_reanchor(fc);
    uint64_t ns = fc->anchor_ns + ((ticks * fc->mult) >> ARRPC_FAST_CLOCK_SHIFT);
    if (ns < fc->last_ns) return fc->last_ns;
    return fc->last_ns = ns;
}

#endif
