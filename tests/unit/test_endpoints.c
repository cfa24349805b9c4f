/* test_endpoints.c -- the client's endpoint list: parsing "h:p,h:p" (IPv6 in brackets, bad
 * entries refused with a reason), the back-off arithmetic, and the round-robin pick with a fake
 * clock (every call takes now_ms, so no time passes in these tests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "arrpc.h"
#include "client/endpoints.h"

static void parses_a_list_with_ipv6_and_spaces(void **state)
{
    (void)state;
    arrpc__endpoints eps;
    char err[256];
    assert_int_equal(arrpc__endpoints_parse("127.0.0.2:7001, [::1]:7002 ,db.example:65535", &eps,
                                            err, sizeof err),
                     0);
    assert_int_equal(eps.count, 3);
    assert_string_equal(eps.list[0].host, "127.0.0.2");
    assert_int_equal(eps.list[0].port, 7001);
    assert_string_equal(eps.list[1].host, "::1");
    assert_int_equal(eps.list[1].port, 7002);
    assert_string_equal(eps.list[2].host, "db.example");
    assert_int_equal(eps.list[2].port, 65535);
    arrpc__endpoints_free(&eps);
}

static void refuses_bad_lists_with_a_reason(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",      "h1:1,", ",h1:1",   "h1:1,,h2:2", "h1",     "h1:",         "h1:0",  "h1:65536",
        "h1:-1", ":80",   "[::1]80", "[::1:80",    "h1:80x", "h1:1, ,h2:2", "[]:80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        arrpc__endpoints eps;
        char err[256] = "";
        assert_int_equal(arrpc__endpoints_parse(bad[i], &eps, err, sizeof err), ARRPC_EINVAL);
        assert_true(strlen(err) > 0);
        assert_null(eps.list);
        assert_int_equal(eps.count, 0);
    }
}

static void refuses_more_than_the_limit(void **state)
{
    (void)state;
    char spec[ARRPC_ENDPOINTS_MAX * 16 + 16] = "";
    for (unsigned i = 0; i <= ARRPC_ENDPOINTS_MAX; i++)
        snprintf(spec + strlen(spec), sizeof spec - strlen(spec), "%sh%u:1", i ? "," : "", i);
    arrpc__endpoints eps;
    char err[256];
    assert_int_equal(arrpc__endpoints_parse(spec, &eps, err, sizeof err), ARRPC_EINVAL);
    *strrchr(spec, ',') = '\0'; /* exactly the limit */
    assert_int_equal(arrpc__endpoints_parse(spec, &eps, err, sizeof err), 0);
    assert_int_equal(eps.count, ARRPC_ENDPOINTS_MAX);
    arrpc__endpoints_free(&eps);
}

static void backoff_grows_by_the_factor_up_to_the_cap(void **state)
{
    (void)state;
    unsigned b = arrpc__endpoint_next_backoff(0);
    assert_int_equal(b, ARRPC_ENDPOINT_BACKOFF_INITIAL_MS);
    unsigned steps = 0;
    while (b < ARRPC_ENDPOINT_BACKOFF_CAP_MS && steps++ < 64) {
        unsigned next = arrpc__endpoint_next_backoff(b);
        assert_true(next == b * ARRPC_ENDPOINT_BACKOFF_FACTOR ||
                    next == ARRPC_ENDPOINT_BACKOFF_CAP_MS);
        b = next;
    }
    assert_int_equal(b, ARRPC_ENDPOINT_BACKOFF_CAP_MS);
    assert_int_equal(arrpc__endpoint_next_backoff(b), ARRPC_ENDPOINT_BACKOFF_CAP_MS);
}

static void failure_sets_and_success_clears_the_backoff(void **state)
{
    (void)state;
    arrpc__endpoint e = {.host = "h", .port = 1};
    arrpc__endpoint_failed(&e, 1000);
    assert_int_equal(e.until_ms, 1000 + ARRPC_ENDPOINT_BACKOFF_INITIAL_MS);
    arrpc__endpoint_failed(&e, 2000);
    assert_int_equal(e.until_ms,
                     2000 + ARRPC_ENDPOINT_BACKOFF_INITIAL_MS * ARRPC_ENDPOINT_BACKOFF_FACTOR);
    arrpc__endpoint_succeeded(&e);
    assert_int_equal(e.until_ms, 0);
    arrpc__endpoint_failed(&e, 3000); /* starts over from the initial back-off */
    assert_int_equal(e.until_ms, 3000 + ARRPC_ENDPOINT_BACKOFF_INITIAL_MS);
}

static arrpc__endpoints three(void)
{
    arrpc__endpoints eps;
    char err[256];
    assert_int_equal(arrpc__endpoints_parse("a:1,b:2,c:3", &eps, err, sizeof err), 0);
    return eps;
}

static void pick_goes_round_robin(void **state)
{
    (void)state;
    arrpc__endpoints eps = three();
    for (size_t i = 0; i < 7; i++)
        assert_int_equal(arrpc__endpoints_pick(&eps, 100), i % 3);
    assert_int_equal(eps.list[0].picks, 3); /* which of a name's addresses goes first */
    assert_int_equal(eps.list[1].picks, 2);
    arrpc__endpoints_free(&eps);
}

static void pick_skips_endpoints_in_backoff_until_it_ends(void **state)
{
    (void)state;
    arrpc__endpoints eps = three();
    uint64_t now = 10000;
    arrpc__endpoint_failed(&eps.list[1], now); /* b is out until now + INITIAL */
    assert_int_equal(arrpc__endpoints_pick(&eps, now), 0);
    assert_int_equal(arrpc__endpoints_pick(&eps, now), 2);
    assert_int_equal(arrpc__endpoints_pick(&eps, now), 0);
    assert_int_equal(arrpc__endpoints_pick(&eps, now), 2);
    now += ARRPC_ENDPOINT_BACKOFF_INITIAL_MS; /* b's back-off is over: it comes back in turn */
    assert_int_equal(arrpc__endpoints_pick(&eps, now), 0);
    assert_int_equal(arrpc__endpoints_pick(&eps, now), 1);
    arrpc__endpoints_free(&eps);
}

static void pick_takes_the_soonest_when_all_are_in_backoff(void **state)
{
    (void)state;
    arrpc__endpoints eps = three();
    uint64_t now = 10000;
    arrpc__endpoint_failed(&eps.list[0], now);
    arrpc__endpoint_failed(&eps.list[0], now); /* a: twice, the longest */
    arrpc__endpoint_failed(&eps.list[1], now + 5);
    arrpc__endpoint_failed(&eps.list[2], now + 1); /* c ends first */
    assert_int_equal(arrpc__endpoints_pick(&eps, now + 10), 2);
    arrpc__endpoint_failed(&eps.list[2], now + 10); /* c failed again: now b ends first */
    assert_int_equal(arrpc__endpoints_pick(&eps, now + 10), 1);
    arrpc__endpoints_free(&eps);
}

static void single_endpoint_is_always_picked(void **state)
{
    (void)state;
    arrpc__endpoints eps;
    assert_int_equal(arrpc__endpoints_single("localhost", 9, &eps), 0);
    arrpc__endpoint_failed(&eps.list[0], 50);
    assert_int_equal(arrpc__endpoints_pick(&eps, 50), 0);
    arrpc__endpoints_free(&eps);
}

static void client_new_endpoints_reports_a_bad_list(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(arrpc_client_new_endpoints("h1:1,h2", err, sizeof err));
    assert_non_null(strstr(err, "h2"));
    assert_null(arrpc_client_new_endpoints("h1:1,", NULL, 0)); /* err may be NULL */
    arrpc_client *cli = arrpc_client_new_endpoints("127.0.0.2:1,[::1]:2", err, sizeof err);
    assert_non_null(cli);
    assert_int_equal(arrpc_client_set_idempotent(cli, 1), 0);
    assert_int_equal(arrpc_client_set_keepalive(cli, ARRPC_CLIENT_KEEPALIVE_IDLE_MAX_S + 1),
                     ARRPC_EINVAL);
    assert_int_equal(arrpc_client_set_keepalive(cli, 0), 0);
    arrpc_client_free(cli);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_a_list_with_ipv6_and_spaces),
        cmocka_unit_test(refuses_bad_lists_with_a_reason),
        cmocka_unit_test(refuses_more_than_the_limit),
        cmocka_unit_test(backoff_grows_by_the_factor_up_to_the_cap),
        cmocka_unit_test(failure_sets_and_success_clears_the_backoff),
        cmocka_unit_test(pick_goes_round_robin),
        cmocka_unit_test(pick_skips_endpoints_in_backoff_until_it_ends),
        cmocka_unit_test(pick_takes_the_soonest_when_all_are_in_backoff),
        cmocka_unit_test(single_endpoint_is_always_picked),
        cmocka_unit_test(client_new_endpoints_reports_a_bad_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
