/* test_fast_clock.c -- the worker's per-request clock (core/fast_clock.h): readings never go back,
 * across many reads and anchors; they agree with CLOCK_MONOTONIC after a sleep shorter and one
 * longer than a span; and with ARRPC_FAST_CLOCK=0 every reading is the monotonic clock itself.
 * On a machine where the TSC may not be used every case runs the fallback, which must pass too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/fast_clock.h"

#define READS 200000          /* readings checked for order... */
#define READS_PER_ANCHOR 1000 /* ...with an anchor between every this many */
/* How far a reading may be from CLOCK_MONOTONIC read around it. The calibration's bound
 * (ARRPC_FAST_CLOCK_MAX_ERROR_PPM over one span) is 1 us; this is generous on purpose. */
#define AGREEMENT_NS 100000u

static void sleep_ns(long ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void init_clock(arrpc__fast_clock *fc)
{
    arrpc__fast_clock_init(fc);
    print_message("path: %s (calibration bound %.1f ppm)\n", fc->why, fc->error_ppm);
}

static void readings_never_go_back(void **state)
{
    (void)state;
    arrpc__fast_clock fc;
    init_clock(&fc);
    uint64_t last = arrpc__fast_clock_ns(&fc);
    for (int i = 1; i < READS; i++) {
        if (i % READS_PER_ANCHOR == 0) {
            uint64_t anchor = arrpc__fast_clock_anchor(&fc);
            uint64_t next = arrpc__fast_clock_ns(&fc);
            assert_true(next >= anchor); /* never below the anchor */
            assert_true(next >= last);
            last = next;
            continue;
        }
        uint64_t now = arrpc__fast_clock_ns(&fc);
        assert_true(now >= last);
        last = now;
    }
}

/* A reading taken after sleeping `ns` from an anchor lies between two monotonic reads around it,
 * give or take AGREEMENT_NS. */
static void check_agreement_after(long ns)
{
    arrpc__fast_clock fc;
    init_clock(&fc);
    uint64_t anchor = arrpc__fast_clock_anchor(&fc);
    sleep_ns(ns);
    uint64_t before = arrpc__clock_ns();
    uint64_t fast = arrpc__fast_clock_ns(&fc);
    uint64_t after = arrpc__clock_ns();
    print_message("slept %ld ns: fast clock %lld ns from the monotonic window\n", ns,
                  fast < before  ? -(long long)(before - fast)
                  : fast > after ? (long long)(fast - after)
                                 : 0LL);
    assert_true(fast + AGREEMENT_NS >= before);
    assert_true(fast <= after + AGREEMENT_NS);
    assert_true(fast >= anchor);
    /* Past a span the reading anchored again: the anchor is the monotonic clock of then. */
    if (fc.tsc && (uint64_t)ns > ARRPC_FAST_CLOCK_SPAN_NS) assert_true(fc.anchor_ns >= before);
}

static void agrees_within_a_span(void **state)
{
    (void)state;
    check_agreement_after(ARRPC_FAST_CLOCK_SPAN_NS / 2); /* extrapolated from the anchor */
}

static void agrees_past_a_span(void **state)
{
    (void)state;
    check_agreement_after(ARRPC_FAST_CLOCK_SPAN_NS * 2); /* anchored again by the reading */
}

static void the_forced_fallback_is_the_monotonic_clock(void **state)
{
    (void)state;
    assert_int_equal(setenv(ARRPC_FAST_CLOCK_ENV, "0", 1), 0);
    arrpc__fast_clock fc;
    init_clock(&fc);
    assert_int_equal(unsetenv(ARRPC_FAST_CLOCK_ENV), 0);
    assert_false(fc.tsc);
    for (int i = 0; i < READS_PER_ANCHOR; i++) {
        uint64_t before = arrpc__clock_ns();
        uint64_t fast = arrpc__fast_clock_ns(&fc);
        uint64_t anchor = arrpc__fast_clock_anchor(&fc);
        uint64_t after = arrpc__clock_ns();
        assert_true(before <= fast && fast <= anchor && anchor <= after);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(readings_never_go_back),
        cmocka_unit_test(agrees_within_a_span),
        cmocka_unit_test(agrees_past_a_span),
        cmocka_unit_test(the_forced_fallback_is_the_monotonic_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
