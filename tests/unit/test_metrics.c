/* test_metrics.c -- the counter blocks (metrics/metrics.c): counting requests and errors into the
 * right series, the bounded table of remote addresses and its overflow row, the reasons, the
 * latency buckets and their bounds, adding one block into another, the address label. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics/metrics.h"

/* A server's block is a few hundred KiB: too large for a test's stack. */
static int block_new(void **state)
{
    *state = arrpc__metrics_new(ARRPC_METRICS_ADDRS);
    return *state ? 0 : -1;
}

static int block_free(void **state)
{
    free(*state);
    return 0;
}

static arrpc__metrics *block(void)
{
    arrpc__metrics *m = arrpc__metrics_new(ARRPC_METRICS_ADDRS);
    assert_non_null(m);
    return m;
}

static uint64_t get(const _Atomic uint64_t *counter)
{
    return atomic_load(counter);
}

static const arrpc__series *series(const arrpc__metrics *m, uint32_t row, int sig, int tls)
{
    return &m->row[row].series[sig][tls];
}

/* ---- counting ----------------------------------------------------------------------------- */

static void test_a_request_adds_to_its_own_series_only(void **state)
{
    arrpc__metrics *m = *state;
    uint32_t row = arrpc__metrics_row_for(m, "10.0.0.1");
    arrpc__metrics_count_request(m, row, 1, 0, 2000000, 100);
    arrpc__metrics_count_request(m, row, 1, 0, 3000000, 50);
    const arrpc__series *s = series(m, row, 1, 0);
    assert_int_equal(get(&s->requests), 2);
    assert_int_equal(get(&s->seconds_ns), 5000000);
    assert_int_equal(get(&s->bytes), 150);
    /* Any non-zero flag counts as true. */
    arrpc__metrics_count_request(m, row, 7, -1, 1, 1);
    assert_int_equal(get(&series(m, row, 1, 1)->requests), 1);
    for (int sig = 0; sig < 2; sig++)
        for (int tls = 0; tls < 2; tls++)
            if (!sig) assert_int_equal(get(&series(m, row, sig, tls)->requests), 0);
    assert_int_equal(get(&series(m, ARRPC_METRICS_ADDRS, 1, 0)->requests), 0);
}

/* Requests counted untimed, then timed as a group: the histogram holds them all once timed. */
static void test_a_group_within_the_first_bucket_is_exact(void **state)
{
    arrpc__metrics *m = *state;
    uint32_t row = arrpc__metrics_row_for(m, "10.0.0.1");
    for (int i = 0; i < 16; i++)
        arrpc__metrics_count_untimed(m, row, 0, 0, 10);
    const arrpc__series *s = series(m, row, 0, 0);
    assert_int_equal(get(&s->requests), 16);
    assert_int_equal(get(&s->bytes), 160);
    assert_int_equal(get(&s->bucket[0]), 0); /* not timed yet: fewer in buckets, never more */
    arrpc__metrics_time(m, row, 0, 0, 16, 32000);
    assert_int_equal(get(&s->bucket[0]), 16);
    assert_int_equal(get(&s->seconds_ns), 32000);
    for (unsigned b = 1; b < ARRPC_METRICS_BUCKETS; b++)
        assert_int_equal(get(&s->bucket[b]), 0);
}

static void test_a_slow_group_counts_as_one_slow_request(void **state)
{
    arrpc__metrics *m = *state;
    uint32_t row = arrpc__metrics_row_for(m, "10.0.0.1");
    arrpc__metrics_time(m, row, 1, 0, 5, 300000000); /* 0.3 s: in the 0.5 s bucket */
    const arrpc__series *s = series(m, row, 1, 0);
    assert_int_equal(get(&s->bucket[0]), 4);
    assert_int_equal(get(&s->bucket[11]), 1);
    assert_int_equal(get(&s->seconds_ns), 300000000); /* the sum stays exact */
    arrpc__metrics_time(m, row, 1, 0, 1, 7);          /* a group of one is one request */
    assert_int_equal(get(&s->bucket[0]), 5);
}

static void test_errors_count_by_reason(void **state)
{
    arrpc__metrics *m = *state;
    uint32_t row = arrpc__metrics_row_for(m, "10.0.0.1");
    for (unsigned r = 0; r < ARRPC_REASON_COUNT; r++)
        for (unsigned n = 0; n <= r; n++)
            arrpc__metrics_count_error(m, row, 0, 1, (arrpc__reason)r);
    const arrpc__series *s = series(m, row, 0, 1);
    for (unsigned r = 0; r < ARRPC_REASON_COUNT; r++)
        assert_int_equal(get(&s->errors[r]), r + 1);
    assert_int_equal(get(&s->requests), 0); /* an error is not a request */
    assert_int_equal(get(&series(m, row, 0, 0)->errors[0]), 0);
}

/* The `reason` label values, in order: dashboards and the client's table depend on them. */
static void test_reason_labels(void **state)
{
    (void)state;
    static const char *const expected[] = {
        "auth",
        "rpc",
        "invalid_message",
        "too_large",
        "too_deep",
        "invalid_reply",
        "connection_limit",
        "timeout",
        "tls_handshake",
        "connect",
        "closed",
        "io",
        "proxy_missing",
        "proxy_invalid",
        "proxy_too_long",
        "proxy_truncated",
        "proxy_untrusted",
    };
    assert_int_equal(ARRPC_REASON_COUNT, sizeof expected / sizeof expected[0]);
    for (unsigned r = 0; r < ARRPC_REASON_COUNT; r++)
        assert_string_equal(arrpc__reason_label[r], expected[r]);
    assert_int_equal(ARRPC_REASON_AUTH, 0);
    assert_int_equal(ARRPC_REASON_PROXY_UNTRUSTED, ARRPC_REASON_COUNT - 1);
}

/* ---- latency buckets ---------------------------------------------------------------------- */

/* The bucket a single request of ns nanoseconds lands in; ARRPC_METRICS_BUCKETS when none. */
static unsigned bucket_of(uint64_t ns)
{
    arrpc__metrics *m = block();
    arrpc__metrics_count_request(m, arrpc__metrics_row_for(m, "a"), 0, 0, ns, 1);
    unsigned found = ARRPC_METRICS_BUCKETS, n = 0;
    for (unsigned b = 0; b < ARRPC_METRICS_BUCKETS; b++)
        if (get(&m->row[0].series[0][0].bucket[b])) found = b, n++;
    assert_true(n <= 1); /* non-cumulative: one bucket at most */
    assert_int_equal(get(&m->row[0].series[0][0].requests), 1);
    free(m);
    return found;
}

/* Prometheus's `le` is "less than or equal": a request of exactly a bound is in that bucket. */
static void test_bucket_bounds_are_inclusive(void **state)
{
    (void)state;
    assert_int_equal(bucket_of(0), 0);
    for (unsigned b = 0; b < ARRPC_METRICS_BUCKETS; b++) {
        uint64_t le_ns = (uint64_t)(arrpc__bucket_le[b] * 1e9 + 0.5);
        assert_int_equal(bucket_of(le_ns), b);
        assert_int_equal(bucket_of(le_ns + 1), b + 1);
    }
    assert_int_equal(bucket_of(UINT64_MAX), ARRPC_METRICS_BUCKETS); /* only in +Inf */
}

static void test_bucket_bounds_ascend_from_100us_to_10s(void **state)
{
    (void)state;
    assert_true(arrpc__bucket_le[0] == 0.0001);
    assert_true(arrpc__bucket_le[ARRPC_METRICS_BUCKETS - 1] == 10.0);
    for (unsigned b = 1; b < ARRPC_METRICS_BUCKETS; b++)
        assert_true(arrpc__bucket_le[b] > arrpc__bucket_le[b - 1]);
}

/* ---- the table of remote addresses -------------------------------------------------------- */

static void test_an_address_keeps_its_row(void **state)
{
    arrpc__metrics *m = *state;
    assert_int_equal(arrpc__metrics_row_for(m, "10.0.0.1"), 0);
    assert_int_equal(arrpc__metrics_row_for(m, "10.0.0.2"), 1);
    assert_int_equal(arrpc__metrics_row_for(m, "10.0.0.1"), 0);
    assert_int_equal(atomic_load(&m->rows), 2);
    assert_string_equal(m->row[1].addr, "10.0.0.2");
}

/* ARRPC_METRICS_ADDRS addresses get rows of their own; every later one shares "other", and the
 * table never grows past its size. */
static void test_a_full_table_overflows_into_one_row(void **state)
{
    arrpc__metrics *m = *state;
    char addr[ARRPC_METRICS_ADDR_MAX];
    for (unsigned i = 0; i < ARRPC_METRICS_ADDRS; i++) {
        snprintf(addr, sizeof addr, "10.0.%u.%u", i / 256, i % 256);
        assert_int_equal(arrpc__metrics_row_for(m, addr), i);
    }
    assert_int_equal(atomic_load(&m->rows), ARRPC_METRICS_ADDRS);
    for (unsigned i = 0; i < 3; i++) {
        snprintf(addr, sizeof addr, "192.168.0.%u", i);
        uint32_t row = arrpc__metrics_row_for(m, addr);
        assert_int_equal(row, ARRPC_METRICS_ADDRS);
        arrpc__metrics_count_request(m, row, 0, 0, 1, 1);
    }
    assert_int_equal(atomic_load(&m->rows), ARRPC_METRICS_ADDRS);
    assert_int_equal(get(&series(m, ARRPC_METRICS_ADDRS, 0, 0)->requests), 3);
    assert_int_equal(arrpc__metrics_row_for(m, "10.0.0.7"), 7); /* known ones are still found */
    assert_string_equal(ARRPC_METRICS_OVERFLOW_LABEL, "other");
}

/* A client's block is sized for the client: ARRPC_CLIENT_METRICS_ADDRS servers, then "other";
 * its size is a small fraction of a server worker's, and folding it into a server-sized block
 * (or the other way) keeps every count. */
static void test_a_client_sized_block_overflows_at_its_own_size(void **state)
{
    arrpc__metrics *server = *state, *client = arrpc__metrics_new(ARRPC_CLIENT_METRICS_ADDRS);
    assert_non_null(client);
    assert_int_equal(client->addrs, ARRPC_CLIENT_METRICS_ADDRS);
    assert_true(ARRPC_METRICS_BYTES(ARRPC_CLIENT_METRICS_ADDRS) * 10 <
                ARRPC_METRICS_BYTES(ARRPC_METRICS_ADDRS));
    char addr[ARRPC_METRICS_ADDR_MAX];
    for (unsigned i = 0; i < ARRPC_CLIENT_METRICS_ADDRS + 5; i++) {
        snprintf(addr, sizeof addr, "10.1.0.%u", i);
        uint32_t row = arrpc__metrics_row_for(client, addr);
        assert_int_equal(row, i < ARRPC_CLIENT_METRICS_ADDRS ? i : ARRPC_CLIENT_METRICS_ADDRS);
        arrpc__metrics_count_request(client, row, 0, 0, 1, 1);
        arrpc__metrics_count_request(server, arrpc__metrics_row_for(server, addr), 0, 0, 1, 1);
    }
    assert_int_equal(get(&series(client, ARRPC_CLIENT_METRICS_ADDRS, 0, 0)->requests), 5);
    arrpc__metrics *small = arrpc__metrics_new(ARRPC_CLIENT_METRICS_ADDRS);
    assert_non_null(small);
    arrpc__metrics_add(small, server); /* 21 addresses into 16 rows: 5 into "other" */
    assert_int_equal(get(&series(small, ARRPC_CLIENT_METRICS_ADDRS, 0, 0)->requests), 5);
    arrpc__metrics_reset(small);
    assert_int_equal(small->addrs, ARRPC_CLIENT_METRICS_ADDRS); /* a reset keeps the size */
    free(small);
    free(client);
}

/* An address longer than a row holds is cut, not written past the row. */
static void test_a_long_address_is_cut(void **state)
{
    arrpc__metrics *m = *state;
    char addr[2 * ARRPC_METRICS_ADDR_MAX];
    memset(addr, 'a', sizeof addr - 1);
    addr[sizeof addr - 1] = '\0';
    assert_int_equal(arrpc__metrics_row_for(m, addr), 0);
    assert_int_equal(strlen(m->row[0].addr), ARRPC_METRICS_ADDR_MAX - 1);
    assert_int_equal(m->row[1].addr[0], '\0');
}

static void test_the_address_label_is_the_ip_part(void **state)
{
    (void)state;
    static const struct {
        const char *peer, *label;
    } cases[] = {
        {"10.1.2.3:5555", "10.1.2.3"},
        {"[::1]:80", "::1"},
        {"[2001:db8::7]:65535", "2001:db8::7"},
        {"no-port", "no-port"},
        {"", ""},
        {"[fe80::1%eth0]:1", "fe80::1%eth0"},
        {"[1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa]:1",
         "1111:2222:3333:4444:5555:6666:7777:8888:9999:aa"}, /* cut to 47 bytes */
    };
    char out[ARRPC_METRICS_ADDR_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        arrpc__metrics_addr_of(cases[i].peer, out);
        assert_string_equal(out, cases[i].label);
    }
}

/* ---- adding blocks ------------------------------------------------------------------------ */

/* Rows are matched by address whatever their order; new addresses are added; the overflow row
 * goes to the overflow row; the connections gauge stays behind. */
static void test_add_matches_rows_by_address(void **state)
{
    arrpc__metrics *into = *state, *from = block();
    arrpc__metrics_count_request(into, arrpc__metrics_row_for(into, "b"), 0, 0, 10, 1);
    arrpc__metrics_count_request(from, arrpc__metrics_row_for(from, "a"), 1, 1, 20, 2);
    arrpc__metrics_count_request(from, arrpc__metrics_row_for(from, "b"), 0, 0, 30, 3);
    arrpc__metrics_count_error(from, ARRPC_METRICS_ADDRS, 0, 0, ARRPC_REASON_TIMEOUT);
    atomic_store(&from->connections, 5);
    arrpc__metrics_add(into, from);
    arrpc__metrics_add(into, from); /* twice: everything counted twice */
    assert_int_equal(atomic_load(&into->rows), 2);
    assert_string_equal(into->row[0].addr, "b");
    assert_string_equal(into->row[1].addr, "a");
    assert_int_equal(get(&series(into, 0, 0, 0)->requests), 3);
    assert_int_equal(get(&series(into, 0, 0, 0)->seconds_ns), 70);
    assert_int_equal(get(&series(into, 0, 0, 0)->bytes), 7);
    assert_int_equal(get(&series(into, 1, 1, 1)->requests), 2);
    assert_int_equal(get(&series(into, 1, 1, 1)->bucket[0]), 2);
    assert_int_equal(get(&series(into, ARRPC_METRICS_ADDRS, 0, 0)->errors[ARRPC_REASON_TIMEOUT]),
                     2);
    assert_int_equal(atomic_load(&into->connections), 0);
    assert_int_equal(get(&series(from, 0, 1, 1)->requests), 1); /* `from` is left as it was */
    free(from);
}

/* A full block that is given new addresses counts them in its overflow row. */
static void test_add_into_a_full_block_overflows(void **state)
{
    arrpc__metrics *into = *state, *from = block();
    char addr[ARRPC_METRICS_ADDR_MAX];
    for (unsigned i = 0; i < ARRPC_METRICS_ADDRS; i++) {
        snprintf(addr, sizeof addr, "10.0.%u.%u", i / 256, i % 256);
        arrpc__metrics_row_for(into, addr);
    }
    arrpc__metrics_count_request(from, arrpc__metrics_row_for(from, "172.16.0.1"), 0, 0, 1, 1);
    arrpc__metrics_count_request(from, arrpc__metrics_row_for(from, "10.0.0.9"), 0, 0, 1, 1);
    arrpc__metrics_add(into, from);
    assert_int_equal(get(&series(into, ARRPC_METRICS_ADDRS, 0, 0)->requests), 1);
    assert_int_equal(get(&series(into, 9, 0, 0)->requests), 1);
    free(from);
}

/* The block-wide connection counts (aged, and what crashed workers saved and lost) live on in
 * the retired totals; the "rescued" mark belongs to one worker's life and stays behind. */
static void test_add_carries_connection_counts(void **state)
{
    arrpc__metrics *into = *state, *from = block();
    atomic_store(&from->aged, 2);
    atomic_store(&from->crash_saved, 17);
    atomic_store(&from->crash_lost, 3);
    atomic_store(&from->rescued, 1);
    arrpc__metrics_add(into, from);
    arrpc__metrics_add(into, from);
    assert_int_equal(get(&into->aged), 4);
    assert_int_equal(get(&into->crash_saved), 34);
    assert_int_equal(get(&into->crash_lost), 6);
    assert_int_equal(atomic_load(&into->rescued), 0);
    free(from);
}

static void test_reset_zeroes_the_block(void **state)
{
    arrpc__metrics *m = *state;
    arrpc__metrics_count_request(m, arrpc__metrics_row_for(m, "a"), 0, 0, 1, 1);
    atomic_store(&m->connections, 3);
    arrpc__metrics_reset(m);
    arrpc__metrics *zero = arrpc__metrics_new(ARRPC_METRICS_ADDRS);
    assert_non_null(zero);
    assert_memory_equal(m, zero, ARRPC_METRICS_BYTES(ARRPC_METRICS_ADDRS));
    free(zero);
}

#define BLOCK_TEST(f) cmocka_unit_test_setup_teardown(f, block_new, block_free)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BLOCK_TEST(test_a_request_adds_to_its_own_series_only),
        BLOCK_TEST(test_a_group_within_the_first_bucket_is_exact),
        BLOCK_TEST(test_a_slow_group_counts_as_one_slow_request),
        BLOCK_TEST(test_errors_count_by_reason),
        cmocka_unit_test(test_reason_labels),
        cmocka_unit_test(test_bucket_bounds_are_inclusive),
        cmocka_unit_test(test_bucket_bounds_ascend_from_100us_to_10s),
        BLOCK_TEST(test_an_address_keeps_its_row),
        BLOCK_TEST(test_a_full_table_overflows_into_one_row),
        BLOCK_TEST(test_a_client_sized_block_overflows_at_its_own_size),
        BLOCK_TEST(test_a_long_address_is_cut),
        cmocka_unit_test(test_the_address_label_is_the_ip_part),
        BLOCK_TEST(test_add_matches_rows_by_address),
        BLOCK_TEST(test_add_into_a_full_block_overflows),
        BLOCK_TEST(test_add_carries_connection_counts),
        BLOCK_TEST(test_reset_zeroes_the_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
