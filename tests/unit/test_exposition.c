/* test_exposition.c -- the Prometheus text of a known block (metrics/exposition.c), compared
 * byte for byte with the text spelled out here, and checked by promtool when it is installed:
 * label order and spelling, cumulative buckets, the overflow row last, label escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "metrics/exposition.h"
#include "metrics/metrics.h"

/* The text `write` gives for `sum`, on the heap. */
static char *render(const char *side, const arrpc__labels *l, const arrpc__metrics *sum)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    arrpc__exposition_write(f, side, l, sum);
    assert_int_equal(fclose(f), 0);
    return text;
}

static char *quoted(const char *value)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    arrpc__exposition_quote(f, value);
    assert_int_equal(fclose(f), 0);
    return text;
}

/* The known state: one request of 1 ms and 100 bytes from 10.0.0.1, unsigned, plain; two signed
 * TLS auth failures from it; one request of 20 s and 5 bytes, and one timeout, from addresses
 * past the table (the overflow row), over TLS. */
static arrpc__metrics *known_state(void)
{
    arrpc__metrics *m = arrpc__metrics_new(ARRPC_METRICS_ADDRS);
    assert_non_null(m);
    uint32_t row = arrpc__metrics_row_for(m, "10.0.0.1");
    arrpc__metrics_count_request(m, row, 0, 0, 1000000, 100);
    arrpc__metrics_count_error(m, row, 1, 1, ARRPC_REASON_AUTH);
    arrpc__metrics_count_error(m, row, 1, 1, ARRPC_REASON_AUTH);
    arrpc__metrics_count_request(m, ARRPC_METRICS_ADDRS, 0, 1, 20000000000u, 5);
    arrpc__metrics_count_error(m, ARRPC_METRICS_ADDRS, 0, 1, ARRPC_REASON_TIMEOUT);
    return m;
}

/* The expected text, laid out one sample per line: clang-format would fold the macros. */
/* clang-format off */
#define COMMON "hostname=\"pod-1\",k8s_namespace=\"ns\","
#define L_PLAIN COMMON "remote_address=\"10.0.0.1\",handler_func=\"echo\"," \
    "signed_payload=\"False\",tls=\"False\""
#define L_SIGNED_TLS COMMON "remote_address=\"10.0.0.1\",handler_func=\"echo\"," \
    "signed_payload=\"True\",tls=\"True\""
#define L_OTHER COMMON "remote_address=\"other\",handler_func=\"echo\"," \
    "signed_payload=\"False\",tls=\"True\""
#define BUCKET(labels, le, n) "arrpc_server_req_seconds_bucket{" labels ",le=\"" le "\"} " n "\n"
/* The sixteen bounds of a series with `a` requests up to 1 ms and `b` up to 10 s. */
#define BUCKETS(labels, a, b) \
    BUCKET(labels, "0.0001", "0") \
    BUCKET(labels, "0.00025", "0") \
    BUCKET(labels, "0.0005", "0") \
    BUCKET(labels, "0.001", a) \
    BUCKET(labels, "0.0025", a) \
    BUCKET(labels, "0.005", a) \
    BUCKET(labels, "0.01", a) \
    BUCKET(labels, "0.025", a) \
    BUCKET(labels, "0.05", a) \
    BUCKET(labels, "0.1", a) \
    BUCKET(labels, "0.25", a) \
    BUCKET(labels, "0.5", a) \
    BUCKET(labels, "1", a) \
    BUCKET(labels, "2.5", a) \
    BUCKET(labels, "5", a) \
    BUCKET(labels, "10", b)

static const char expected_server_text[] =
    "# HELP arrpc_server_req_seconds Time spent on requests, in seconds.\n"
    "# TYPE arrpc_server_req_seconds histogram\n"
    BUCKETS(L_PLAIN, "1", "1")
    BUCKET(L_PLAIN, "+Inf", "1")
    "arrpc_server_req_seconds_sum{" L_PLAIN "} 0.001000000\n"
    "arrpc_server_req_seconds_count{" L_PLAIN "} 1\n"
    BUCKETS(L_OTHER, "0", "0")
    BUCKET(L_OTHER, "+Inf", "1")
    "arrpc_server_req_seconds_sum{" L_OTHER "} 20.000000000\n"
    "arrpc_server_req_seconds_count{" L_OTHER "} 1\n"
    "# HELP arrpc_server_req_bytes Size of requests, in bytes.\n"
    "# TYPE arrpc_server_req_bytes summary\n"
    "arrpc_server_req_bytes_sum{" L_PLAIN "} 100\n"
    "arrpc_server_req_bytes_count{" L_PLAIN "} 1\n"
    "arrpc_server_req_bytes_sum{" L_OTHER "} 5\n"
    "arrpc_server_req_bytes_count{" L_OTHER "} 1\n"
    "# HELP arrpc_server_errors_total Requests that failed, by reason.\n"
    "# TYPE arrpc_server_errors_total counter\n"
    "arrpc_server_errors_total{" L_SIGNED_TLS ",reason=\"auth\"} 2\n"
    "arrpc_server_errors_total{" L_OTHER ",reason=\"timeout\"} 1\n";
/* clang-format on */

static const arrpc__labels server_labels = {"pod-1", "ns", "echo"};

static void test_a_known_state_gives_the_expected_text(void **state)
{
    (void)state;
    arrpc__metrics *m = known_state();
    char *text = render("server", &server_labels, m);
    assert_string_equal(text, expected_server_text);
    free(text);
    free(m);
}

/* The client's families: the same shapes, named for the client, without handler_func. */
static void test_the_client_side_has_no_handler_label(void **state)
{
    (void)state;
    arrpc__metrics *m = arrpc__metrics_new(ARRPC_METRICS_ADDRS);
    assert_non_null(m);
    arrpc__metrics_count_error(m, arrpc__metrics_row_for(m, "127.0.0.1"), 0, 0,
                               ARRPC_REASON_CONNECT);
    static const arrpc__labels client_labels = {"pod-1", "", NULL};
    char *text = render("client", &client_labels, m);
    assert_string_equal(text,
                        "# HELP arrpc_client_req_seconds Time spent on requests, in seconds.\n"
                        "# TYPE arrpc_client_req_seconds histogram\n"
                        "# HELP arrpc_client_req_bytes Size of requests, in bytes.\n"
                        "# TYPE arrpc_client_req_bytes summary\n"
                        "# HELP arrpc_client_errors_total Requests that failed, by reason.\n"
                        "# TYPE arrpc_client_errors_total counter\n"
                        "arrpc_client_errors_total{hostname=\"pod-1\",k8s_namespace=\"\","
                        "remote_address=\"127.0.0.1\",signed_payload=\"False\","
                        "tls=\"False\",reason=\"connect\"} 1\n");
    free(text);
    free(m);
}

static void test_an_empty_block_gives_only_help_and_type(void **state)
{
    (void)state;
    arrpc__metrics *m = arrpc__metrics_new(ARRPC_METRICS_ADDRS);
    assert_non_null(m);
    char *text = render("server", &server_labels, m);
    for (const char *line = text; *line; line = strchr(line, '\n') + 1)
        assert_true(line[0] == '#');
    free(text);
    free(m);
}

static void test_label_values_are_escaped(void **state)
{
    (void)state;
    static const struct {
        const char *value, *text;
    } cases[] = {
        {"plain", "\"plain\""},
        {"", "\"\""},
        {"a\"b", "\"a\\\"b\""},
        {"back\\slash", "\"back\\\\slash\""},
        {"two\nlines", "\"two\\nlines\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = quoted(cases[i].value);
        assert_string_equal(text, cases[i].text);
        free(text);
    }
}

/* promtool (Debian's prometheus package) reads the text as Prometheus would. Optional: skipped
 * where promtool is not installed; the integration suite checks a live server's text too. */
static void test_promtool_accepts_the_text(void **state)
{
    (void)state;
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        print_message("promtool not found: skipped (apt-get install prometheus)\n");
        skip();
    }
    arrpc__metrics *m = known_state();
    char *text = render("server", &server_labels, m);
    FILE *p = popen("promtool check metrics", "w");
    assert_non_null(p);
    fputs(text, p);
    int status = pclose(p);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    free(text);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_known_state_gives_the_expected_text),
        cmocka_unit_test(test_the_client_side_has_no_handler_label),
        cmocka_unit_test(test_an_empty_block_gives_only_help_and_type),
        cmocka_unit_test(test_label_values_are_escaped),
        cmocka_unit_test(test_promtool_accepts_the_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
