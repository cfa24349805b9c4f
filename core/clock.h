/* clock.h -- the one monotonic clock of the library, in milliseconds and nanoseconds.
 *
 * Inline because the worker reads it on its hot path: once per loop iteration (ms, which also
 * anchors the per-request clock of fast_clock.h, and is that clock's fallback) and once per
 * handler call for the busy stamp (coarse ms). The monotonic clock does not move when the wall
 * clock is set, so deadlines and ages stay true. */
#ifndef ARRPC_CORE_CLOCK_H
#define ARRPC_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC: deadlines, timeouts, ages. */
static inline uint64_t arrpc__clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Nanoseconds on CLOCK_MONOTONIC: latencies. */
static inline uint64_t arrpc__clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Milliseconds on CLOCK_MONOTONIC_COARSE: the same clock read at the last tick, a few
 * nanoseconds instead of some twenty, and up to a tick (a few ms) behind arrpc__clock_ms. For
 * stamps that are compared only with other coarse readings (the busy stamp the master checks
 * against the handler timeout): a coarse reading may be earlier than a fine one taken before it,
 * so the two must never be mixed in one difference. */
static inline uint64_t arrpc__clock_coarse_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
