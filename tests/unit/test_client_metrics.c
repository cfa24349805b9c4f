/* test_client_metrics.c -- the client's counters and their text: a fresh client, counts after
 * counted sends and errors, label escaping, a buffer too small, the reason table, the HTTP
 * exporter's start and stop. Sends are counted through arrpc__client_metrics_count, the hook
 * arrpc_client_send_batch calls, so no server is needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/client.h"
#include "client/client_metrics.h"
#include "core/decode.h"
#include "metrics/metrics.h"

#define TEXT_MAX (64u * 1024u)
#define RPC_ERROR "arrpc.error.RpcException: boom"

static char *render(const arrpc_client *cli)
{
    char *buf = malloc(TEXT_MAX);
    size_t len = 0;
    assert_non_null(buf);
    assert_int_equal(arrpc_client_metrics_render(cli, buf, TEXT_MAX, &len), 0);
    assert_int_equal(strlen(buf), len);
    return buf;
}

/* The value of the one sample whose line starts with `name{` and contains `labels`; -1 if
 * none, and the test fails if there are two. */
static double sample(const char *text, const char *name, const char *labels)
{
    double value = -1;
    int found = 0;
    size_t nlen = strlen(name);
    for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
        const char *end = strchr(line, '\n'), *close = strstr(line, "} ");
        assert_non_null(end);
        if (strncmp(line, name, nlen) == 0 && line[nlen] == '{' && close && close < end) {
            char *lab = strndup(line, (size_t)(close - line));
            if (strstr(lab, labels)) {
                found++;
                value = strtod(close + 2, NULL);
            }
            free(lab);
        }
    }
    assert_true(found <= 1);
    return value;
}

static arrpc_response *reply(const char *bytes, size_t n)
{
    arrpc_response *res = NULL;
    arrpc__decoder *dec = arrpc__decoder_new(ARRPC_DEFAULT_MAX_MESSAGE, ARRPC_DEFAULT_MAX_DEPTH);
    assert_non_null(dec);
    assert_int_equal(arrpc__response_new(dec, (const uint8_t *)bytes, n, &res), 0);
    arrpc__decoder_free(dec);
    return res;
}

/* An RpcException reply: a msgpack str of RPC_ERROR. */
static arrpc_response *rpc_error_reply(void)
{
    char buf[64] = {(char)(0xa0 | (sizeof RPC_ERROR - 1))};
    memcpy(buf + 1, RPC_ERROR, sizeof RPC_ERROR - 1);
    return reply(buf, sizeof RPC_ERROR);
}

static void test_fresh_client(void **state)
{
    (void)state;
    arrpc_client *cli = arrpc_client_new("127.0.0.1", 1);
    char *text = render(cli); /* never counted: families without samples */
    assert_non_null(strstr(text, "# TYPE arrpc_client_req_seconds histogram\n"));
    assert_non_null(strstr(text, "# TYPE arrpc_client_req_bytes summary\n"));
    assert_non_null(strstr(text, "# TYPE arrpc_client_errors_total counter\n"));
    assert_non_null(strstr(text, "# TYPE arrpc_client_retries_total counter\n"));
    for (const char *line = text; *line; line = strchr(line, '\n') + 1)
        assert_int_equal(line[0], '#');
    free(text);
    assert_int_equal(arrpc_client_set_metrics(cli, 1), 0);
    text = render(cli); /* counting, nothing counted yet: still no samples */
    assert_null(strstr(text, "arrpc_client_req_seconds_count{"));
    free(text);
    assert_int_equal(arrpc_client_metrics_port(cli), 0);
    arrpc_client_free(cli);
}

static void test_not_counted_when_off(void **state)
{
    (void)state;
    arrpc_client *cli = arrpc_client_new("127.0.0.1", 1);
    size_t lens[1] = {10};
    arrpc__client_metrics_count(cli, ARRPC_ETIMEOUT, lens, 1, NULL, 0);
    assert_int_equal(arrpc_client_set_metrics(cli, 1), 0);
    assert_int_equal(arrpc_client_set_metrics(cli, 0), 0);
    arrpc__client_metrics_count(cli, ARRPC_ETIMEOUT, lens, 1, NULL, 0);
    assert_int_equal(arrpc__client_metrics_now(cli), 0);
    char *text = render(cli);
    assert_null(strstr(text, "_count{"));
    free(text);
    arrpc_client_free(cli);
}

#define PLAIN "remote_address=\"127.0.0.1\",signed_payload=\"False\",tls=\"False\""
#define SIGNED "remote_address=\"127.0.0.1\",signed_payload=\"True\",tls=\"False\""

static void test_retries_counted_when_on(void **state)
{
    (void)state;
    arrpc_client *cli = arrpc_client_new("127.0.0.1", 1);
    arrpc__client_metrics_count_retries(cli, 5); /* not counting yet */
    assert_int_equal(arrpc_client_set_metrics(cli, 1), 0);
    arrpc__client_metrics_count_retries(cli, 2);
    arrpc__client_metrics_count_retries(cli, 1);
    char *text = render(cli);
    assert_true(sample(text, "arrpc_client_retries_total", PLAIN) == 3);
    free(text);
    arrpc_client_free(cli);
}

static void test_counts(void **state)
{
    (void)state;
    arrpc_client *cli = arrpc_client_new("127.0.0.1", 1);
    assert_int_equal(arrpc_client_set_metrics(cli, 1), 0);
    arrpc_response *out[2] = {reply("\xc0", 1), rpc_error_reply()};
    size_t lens[2] = {100, 20};
    /* A batch of two, one failed by the server, that took 0.3 s. */
    uint64_t started = arrpc__client_metrics_now(cli) - 300000000u;
    arrpc__client_metrics_count(cli, 0, lens, 2, out, started);
    /* Transport failures: a timeout, a connect failure (never written), a closed connection. */
    arrpc__client_metrics_count(cli, ARRPC_ETIMEOUT, lens, 1, NULL, arrpc__client_metrics_now(cli));
    arrpc__client_metrics_count(cli, ARRPC_ECONNECT, lens, 1, NULL, 0);
    arrpc__client_metrics_count(cli, ARRPC_ECLOSED, lens, 1, NULL, arrpc__client_metrics_now(cli));
    arrpc__client_metrics_count(cli, ARRPC_EINVAL, lens, 1, NULL, 0); /* nothing sent: uncounted */
    /* Signed: another series. */
    assert_int_equal(arrpc_client_set_auth_secret(cli, "s", 1), 0);
    arrpc__client_metrics_count(cli, ARRPC_EAUTH, lens + 1, 1, NULL, 0);
    char *text = render(cli);
    assert_true(sample(text, "arrpc_client_req_seconds_count", PLAIN) == 5);
    assert_true(sample(text, "arrpc_client_req_seconds_bucket", PLAIN ",le=\"+Inf\"") == 5);
    assert_true(sample(text, "arrpc_client_req_seconds_bucket", PLAIN ",le=\"0.5\"") == 5);
    assert_true(sample(text, "arrpc_client_req_seconds_bucket", PLAIN ",le=\"0.25\"") == 3);
    double sum = sample(text, "arrpc_client_req_seconds_sum", PLAIN);
    assert_true(sum >= 0.6 && sum < 1.0);
    assert_true(sample(text, "arrpc_client_req_bytes_count", PLAIN) == 5);
    assert_true(sample(text, "arrpc_client_req_bytes_sum", PLAIN) == 420);
    assert_true(sample(text, "arrpc_client_errors_total", PLAIN ",reason=\"rpc\"") == 1);
    assert_true(sample(text, "arrpc_client_errors_total", PLAIN ",reason=\"timeout\"") == 1);
    assert_true(sample(text, "arrpc_client_errors_total", PLAIN ",reason=\"connect\"") == 1);
    assert_true(sample(text, "arrpc_client_errors_total", PLAIN ",reason=\"closed\"") == 1);
    assert_true(sample(text, "arrpc_client_errors_total", PLAIN ",reason=\"auth\"") == -1);
    assert_true(sample(text, "arrpc_client_req_seconds_count", SIGNED) == 1);
    assert_true(sample(text, "arrpc_client_req_bytes_sum", SIGNED) == 20);
    assert_true(sample(text, "arrpc_client_errors_total", SIGNED ",reason=\"auth\"") == 1);
    assert_null(strstr(text, "handler_func"));
    assert_non_null(strstr(text, "arrpc_client_req_seconds_count{hostname=\""));
    free(text);
    arrpc_response_free(out[0]);
    arrpc_response_free(out[1]);
    arrpc_client_free(cli);
}

static void test_label_escaping(void **state)
{
    (void)state;
    arrpc_client *cli = arrpc_client_new("a\"b\\c\nd", 1);
    assert_int_equal(arrpc_client_set_metrics(cli, 1), 0);
    size_t lens[1] = {1};
    arrpc__client_metrics_count(cli, ARRPC_ECONNECT, lens, 1, NULL, 0);
    char *text = render(cli);
    assert_non_null(strstr(text, "remote_address=\"a\\\"b\\\\c\\nd\",signed_payload"));
    free(text);
    arrpc_client_free(cli);
}

static void test_buffer_too_small(void **state)
{
    (void)state;
    arrpc_client *cli = arrpc_client_new("127.0.0.1", 1);
    assert_int_equal(arrpc_client_set_metrics(cli, 1), 0);
    size_t lens[1] = {1}, len = 0, len2 = 0;
    arrpc__client_metrics_count(cli, ARRPC_ETIMEOUT, lens, 1, NULL, 0);
    assert_int_equal(arrpc_client_metrics_render(cli, NULL, 0, &len), ARRPC_ENOMEM);
    assert_true(len > 100);
    char *buf = malloc(len + 1);
    memset(buf, 'x', len + 1);
    assert_int_equal(arrpc_client_metrics_render(cli, buf, 10, &len2), ARRPC_ENOMEM);
    assert_int_equal(len2, len);
    assert_int_equal(buf[0], '\0');
    assert_int_equal(arrpc_client_metrics_render(cli, buf, len, &len2), ARRPC_ENOMEM);
    assert_int_equal(arrpc_client_metrics_render(cli, buf, len + 1, &len2), 0);
    assert_int_equal(len2, len);
    assert_int_equal(strlen(buf), len);
    assert_int_equal(arrpc_client_metrics_render(cli, NULL, 5, &len2), ARRPC_EINVAL);
    assert_int_equal(arrpc_client_metrics_render(cli, buf, len + 1, NULL), ARRPC_EINVAL);
    free(buf);
    arrpc_client_free(cli);
}

static void test_reasons(void **state)
{
    (void)state;
    static const struct {
        int err;
        const char *label; /* NULL: not an error that is counted */
    } cases[] = {
        {ARRPC_OK, NULL},
        {ARRPC_EINVAL, NULL},
        {ARRPC_ETIMEOUT, "timeout"},
        {ARRPC_EAUTH, "auth"},
        {ARRPC_ERPC, "rpc"},
        {ARRPC_ECONNECT, "connect"},
        {ARRPC_EPROTO, "invalid_message"},
        {ARRPC_ETOOBIG, "too_large"},
        {ARRPC_ETOODEEP, "too_deep"},
        {ARRPC_ETLS, "tls_handshake"},
        {ARRPC_ECLOSED, "closed"},
        {ARRPC_EIO, "io"},
        {ARRPC_ESYS, "io"},
        {ARRPC_ENOMEM, "io"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int r = arrpc__client_metrics_reason(cases[i].err);
        if (!cases[i].label)
            assert_int_equal(r, ARRPC_REASON_COUNT);
        else
            assert_string_equal(arrpc__reason_label[r], cases[i].label);
    }
}

static void test_serve_start_stop(void **state)
{
    (void)state;
    arrpc_client *cli = arrpc_client_new("127.0.0.1", 1);
    assert_int_equal(arrpc_client_serve_metrics(cli, NULL, 0), ARRPC_EINVAL);
    assert_int_equal(arrpc_client_serve_metrics(cli, "127.0.0.1", 0), 0);
    assert_true(arrpc_client_metrics_port(cli) > 0);
    assert_non_null(cli->metrics); /* serving turns counting on */
    assert_true(arrpc__client_metrics_now(cli) > 0);
    assert_int_equal(arrpc_client_serve_metrics(cli, "127.0.0.1", 0), ARRPC_ESTATE);
    arrpc_client_free(cli); /* stops the thread: valgrind and ASan see no leak */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_client),     cmocka_unit_test(test_not_counted_when_off),
        cmocka_unit_test(test_counts),           cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_buffer_too_small), cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_serve_start_stop), cmocka_unit_test(test_retries_counted_when_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
