/* test_hist.c -- the load generator's latency histogram: bucket bounds, precision, percentiles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "tools/bench/hist.h"

/* Every value falls inside its bucket, and a bucket is at most 1/128 of its values wide. */
static void buckets_hold_their_values(void **state)
{
    (void)state;
    for (uint64_t v = 0; v < BENCH_HIST_MAX_NS; v = v < 4096 ? v + 1 : v + v / 977 + 1) {
        unsigned i = bench_hist_index(v);
        assert_true(i < BENCH_HIST_BUCKETS);
        assert_true(bench_hist_bucket_low(i) <= v);
        assert_true(v <= bench_hist_bucket_high(i));
        uint64_t width = bench_hist_bucket_high(i) - bench_hist_bucket_low(i);
        assert_true(width * 128 <= bench_hist_bucket_low(i) + 127);
    }
}

/* Buckets follow each other without gaps or overlaps, and the index grows with the value. */
static void buckets_tile_the_range(void **state)
{
    (void)state;
    unsigned last = bench_hist_index(BENCH_HIST_MAX_NS);
    assert_true(last < BENCH_HIST_BUCKETS);
    for (unsigned i = 0; i < last; i++) {
        assert_int_equal(bench_hist_bucket_high(i) + 1, bench_hist_bucket_low(i + 1));
        assert_int_equal(bench_hist_index(bench_hist_bucket_low(i)), i);
        assert_int_equal(bench_hist_index(bench_hist_bucket_high(i)), i);
    }
}

static void values_beyond_the_range_are_clamped(void **state)
{
    bench_hist *h = malloc(sizeof *h);
    (void)state;
    bench_hist_reset(h);
    bench_hist_record(h, 3600ull * 1000000000ull);
    assert_int_equal(bench_hist_index(UINT64_MAX), bench_hist_index(BENCH_HIST_MAX_NS));
    assert_int_equal(h->max, 3600ull * 1000000000ull);
    assert_int_equal(bench_hist_percentile(h, 50), 3600ull * 1000000000ull); /* capped by max */
    free(h);
}

static void empty_histogram_reports_zero(void **state)
{
    bench_hist *h = malloc(sizeof *h);
    (void)state;
    bench_hist_reset(h);
    assert_int_equal(bench_hist_percentile(h, 99), 0);
    assert_true(bench_hist_mean(h) == 0.0);
    free(h);
}

/* 1..100000 us: every percentile is within 1% of the exact one; the extremes are exact. */
static void percentiles_are_within_one_percent(void **state)
{
    static const double pcts[] = {1, 10, 50, 90, 99, 99.9, 99.99};
    bench_hist *h = malloc(sizeof *h);
    (void)state;
    bench_hist_reset(h);
    for (uint64_t us = 1; us <= 100000; us++)
        bench_hist_record(h, us * 1000);
    assert_int_equal(h->count, 100000);
    assert_int_equal(h->min, 1000);
    assert_int_equal(h->max, 100000000);
    assert_int_equal(bench_hist_percentile(h, 100), 100000000);
    for (size_t i = 0; i < sizeof pcts / sizeof pcts[0]; i++) {
        double exact = pcts[i] * 1000.0 * 1000.0; /* the pct% value, in ns */
        double got = (double)bench_hist_percentile(h, pcts[i]);
        assert_true(got >= exact * 0.99 && got <= exact * 1.01);
    }
    double mean = bench_hist_mean(h);
    assert_true(mean > 50000.4e3 && mean < 50000.6e3);
    free(h);
}

/* Merging two halves gives what recording everything in one would. */
static void merge_equals_recording_together(void **state)
{
    bench_hist *a = malloc(sizeof *a), *b = malloc(sizeof *b), *all = malloc(sizeof *all);
    (void)state;
    bench_hist_reset(a);
    bench_hist_reset(b);
    bench_hist_reset(all);
    for (uint64_t v = 1; v < 200000; v += 7) {
        bench_hist_record(v % 2 ? a : b, v * 313);
        bench_hist_record(all, v * 313);
    }
    bench_hist_merge(a, b);
    assert_int_equal(a->count, all->count);
    assert_int_equal(a->min, all->min);
    assert_int_equal(a->max, all->max);
    for (double p = 0.5; p < 100; p += 0.5)
        assert_int_equal(bench_hist_percentile(a, p), bench_hist_percentile(all, p));
    free(a);
    free(b);
    free(all);
}

/* A single slow outlier among fast values shows at p99.9 only when it is that frequent. */
static void one_outlier_sets_max_not_p99(void **state)
{
    bench_hist *h = malloc(sizeof *h);
    (void)state;
    bench_hist_reset(h);
    for (int i = 0; i < 9999; i++)
        bench_hist_record(h, 50000);
    bench_hist_record(h, 2000000000);
    assert_true(bench_hist_percentile(h, 99) <= 50000 * 1.01);
    assert_true(bench_hist_percentile(h, 99.99) >= 50000);
    assert_int_equal(bench_hist_percentile(h, 100), 2000000000);
    assert_int_equal(h->max, 2000000000);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buckets_hold_their_values),
        cmocka_unit_test(buckets_tile_the_range),
        cmocka_unit_test(values_beyond_the_range_are_clamped),
        cmocka_unit_test(empty_histogram_reports_zero),
        cmocka_unit_test(percentiles_are_within_one_percent),
        cmocka_unit_test(merge_equals_recording_together),
        cmocka_unit_test(one_outlier_sets_max_not_p99),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
