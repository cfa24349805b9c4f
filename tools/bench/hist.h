/* hist.h -- a small log-linear latency histogram (HDR style): 1% precision, fixed size, no
 * allocation.
 *
 * Values are nanoseconds. Below 2^HIST_SUB_BITS+1 ns every value has its own bucket; above, each
 * power of two is cut into 2^HIST_SUB_BITS equal buckets, so a bucket is never wider than 1/128
 * (0.8%) of the values it holds. Values above BENCH_HIST_MAX_NS land in the last bucket, but the
 * exact maximum is kept beside the buckets. One writer per histogram; merge to combine threads. */
#ifndef ARRPC_BENCH_HIST_H
#define ARRPC_BENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_SUB_BITS 7                          /* 128 buckets per power of two */
#define BENCH_HIST_MAX_NS (60ull * 1000 * 1000 * 1000) /* 60 s: the highest value told apart */
#define BENCH_HIST_MAGNITUDES 29                       /* the last covers [2^35, 2^36) ns > 60 s */
#define BENCH_HIST_BUCKETS                                                                         \
    ((2u << BENCH_HIST_SUB_BITS) + (BENCH_HIST_MAGNITUDES - 1) * (1u << BENCH_HIST_SUB_BITS))

typedef struct bench_hist {
    uint64_t count;
    uint64_t min, max; /* exact, ns; min is UINT64_MAX while empty */
    double sum;        /* ns, for the mean */
    uint64_t bucket[BENCH_HIST_BUCKETS];
} bench_hist;

void bench_hist_reset(bench_hist *h);
void bench_hist_record(bench_hist *h, uint64_t ns);
/* Adds every count of src to dst. */
void bench_hist_merge(bench_hist *dst, const bench_hist *src);
/* The value at or below which `pct` percent (0..100) of the recorded values lie: the highest value
 * of the bucket reached, capped by the exact maximum. 0 when empty. */
uint64_t bench_hist_percentile(const bench_hist *h, double pct);
double bench_hist_mean(const bench_hist *h);

/* Exposed for tests: the bucket of a value, and the lowest and highest values a bucket holds. */
unsigned bench_hist_index(uint64_t ns);
uint64_t bench_hist_bucket_low(unsigned index);
uint64_t bench_hist_bucket_high(unsigned index);

#endif
