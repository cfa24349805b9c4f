/* hist.c -- the log-linear latency histogram (see hist.h). */
#include "hist.h"

#include <string.h>

#define SUB (1u << BENCH_HIST_SUB_BITS) /* buckets per power of two above the linear range */
#define LINEAR (2u * SUB)               /* values below this have a bucket each */

void bench_hist_reset(bench_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

/* Values v < LINEAR map to v. Above, with m = floor(log2 v) - SUB_BITS (so v >> m lies in
 * [SUB, 2*SUB)), magnitude m >= 1 owns the SUB buckets from LINEAR + (m-1)*SUB. */
unsigned bench_hist_index(uint64_t ns)
{
    if (ns > BENCH_HIST_MAX_NS) ns = BENCH_HIST_MAX_NS;
    if (ns < LINEAR) return (unsigned)ns;
    unsigned m = (unsigned)(63 - __builtin_clzll(ns)) - BENCH_HIST_SUB_BITS;
    return LINEAR + (m - 1) * SUB + (unsigned)((ns >> m) - SUB);
}

uint64_t bench_hist_bucket_low(unsigned index)
{
    if (index < LINEAR) return index;
    unsigned m = (index - LINEAR) / SUB + 1;
    uint64_t sub = SUB + (index - LINEAR) % SUB;
    return sub << m;
}

uint64_t bench_hist_bucket_high(unsigned index)
{
    if (index < LINEAR) return index;
    unsigned m = (index - LINEAR) / SUB + 1;
    return bench_hist_bucket_low(index) + (1ull << m) - 1;
}

void bench_hist_record(bench_hist *h, uint64_t ns)
{
    h->bucket[bench_hist_index(ns)]++;
    h->count++;
    h->sum += (double)ns;
    if (ns < h->min) h->min = ns;
    if (ns > h->max) h->max = ns;
}

void bench_hist_merge(bench_hist *dst, const bench_hist *src)
{
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->bucket[i] += src->bucket[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
}

uint64_t bench_hist_percentile(const bench_hist *h, double pct)
{
    if (h->count == 0) return 0;
    if (pct >= 100.0) return h->max;
    /* The rank of the wanted value, 1-based: the smallest r with r >= pct% of count. */
    double want = pct / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want || rank == 0) rank++;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t v = bench_hist_bucket_high(i);
            if (v > h->max) v = h->max;
            if (v < h->min) v = h->min;
            return v;
        }
    }
    return h->max;
}

double bench_hist_mean(const bench_hist *h)
{
    return h->count ? h->sum / (double)h->count : 0.0;
}
