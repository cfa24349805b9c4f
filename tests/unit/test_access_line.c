/* test_access_line.c -- access-log lines: JSON that jansson (strict about UTF-8 and control
 * characters) reads back field for field, logfmt whose quoted values are JSON strings, whatever
 * bytes the handler name or the peer hold; escapes never cut; the time's format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "arrpc.h"
#include "workers/access_line.h"

/* Bytes a hostile string could hold: quotes, backslashes, every control byte, DEL, bytes that
 * are not UTF-8 (a lone continuation, an overlong NUL, a surrogate, a cut 4-byte sequence, 0xff)
 * and well-formed characters of 2 and 4 bytes. */
static const char hostile[] = "a\"b\\c\n\r\t\x01\x1f\x7f|\x80|\xc0\x80|\xed\xa0\x80|\xf0\x9f\x98|"
                              "\xff|\xc3\xa9|\xf0\x9f\x98\x80 =end";
/* The same as the server writes it: each byte that is not UTF-8 becomes U+FFFD. */
static const char hostile_read_back[] =
    "a\"b\\c\n\r\t\x01\x1f\x7f|\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|"
    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|"
    "\xef\xbf\xbd|\xc3\xa9|\xf0\x9f\x98\x80 =end";

static arrpc__access_fields fields(const char *peer)
{
    return (arrpc__access_fields){.when = {.tv_sec = 0, .tv_nsec = 123456789},
                                  .peer = peer,
                                  .outcome = "invalid_message",
                                  .bytes_in = 12,
                                  .bytes_out = 5000000000u,
                                  .duration_us = 0,
                                  .is_signed = 1};
}

/* Formats one line and checks it is one line: a newline at the end and nowhere else. */
static size_t line_of(arrpc_access_log_format format, const char *handler, const char *peer,
                      char *out)
{
    arrpc__access_format f;
    arrpc__access_format_init(&f, format, handler, 1, 4242);
    arrpc__access_fields x = fields(peer);
    size_t n = arrpc__access_line(&f, &x, out);
    assert_true(n > 0 && n <= ARRPC_ACCESS_LINE_MAX);
    assert_int_equal(out[n - 1], '\n');
    assert_null(memchr(out, '\n', n - 1));
    out[n] = '\0';
    return n;
}

static void test_json_line_reads_back_every_field(void **state)
{
    (void)state;
    char line[ARRPC_ACCESS_LINE_MAX + 1];
    size_t n = line_of(ARRPC_ACCESS_LOG_JSON, hostile, hostile, line);
    json_error_t err;
    json_t *o = json_loadb(line, n, 0, &err);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "time")),
                        "1970-01-01T00:00:00.123456Z");
    assert_string_equal(json_string_value(json_object_get(o, "handler")), hostile_read_back);
    assert_string_equal(json_string_value(json_object_get(o, "peer")), hostile_read_back);
    assert_string_equal(json_string_value(json_object_get(o, "outcome")), "invalid_message");
    assert_int_equal(json_integer_value(json_object_get(o, "bytes_in")), 12);
    assert_true(json_is_true(json_object_get(o, "signed")));
    assert_true(json_is_true(json_object_get(o, "tls")));
    assert_int_equal(json_integer_value(json_object_get(o, "pid")), 4242);
    assert_int_equal(json_object_size(o), 10);
    assert_int_equal(json_integer_value(json_object_get(o, "bytes_out")), 5000000000);
    json_decref(o);
}

/* The longest names the server allows, made of the bytes that escape longest, still fit. */
static void test_longest_names_fit_in_one_line(void **state)
{
    (void)state;
    char handler[128], peer[64], line[ARRPC_ACCESS_LINE_MAX + 1];
    memset(handler, 0x01, sizeof handler - 1);
    handler[sizeof handler - 1] = '\0';
    memset(peer, 0x02, sizeof peer - 1);
    peer[sizeof peer - 1] = '\0';
    size_t n = line_of(ARRPC_ACCESS_LOG_JSON, handler, peer, line);
    json_t *o = json_loadb(line, n, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "handler")), handler);
    assert_string_equal(json_string_value(json_object_get(o, "peer")), peer);
    json_decref(o);
    line_of(ARRPC_ACCESS_LOG_LOGFMT, handler, peer, line);
}

/* The quoted value after ` key=` in a logfmt line, read as the JSON string it is. */
static json_t *logfmt_value(const char *line, const char *key)
{
    char pattern[32];
    snprintf(pattern, sizeof pattern, " %s=\"", key);
    const char *at = strstr(line, pattern);
    assert_non_null(at);
    at += strlen(pattern) - 1;
    const char *end = at + 1;
    while (*end != '"')
        end += *end == '\\' ? 2 : 1;
    return json_loadb(at, (size_t)(end + 1 - at), JSON_DECODE_ANY, NULL);
}

static void test_logfmt_quotes_only_what_needs_it(void **state)
{
    (void)state;
    char line[ARRPC_ACCESS_LINE_MAX + 1];
    line_of(ARRPC_ACCESS_LOG_LOGFMT, "echo", "[::1]:5", line);
    assert_string_equal(line, "time=1970-01-01T00:00:00.123456Z peer=[::1]:5 handler=echo "
                              "bytes_in=12 bytes_out=5000000000 duration_us=0 "
                              "outcome=invalid_message signed=true tls=true pid=4242\n");
    line_of(ARRPC_ACCESS_LOG_LOGFMT, hostile, "", line);
    assert_non_null(strstr(line, " peer=\"\" handler=\""));
    json_t *v = logfmt_value(line, "handler");
    assert_non_null(v);
    assert_string_equal(json_string_value(v), hostile_read_back);
    json_decref(v);
}

/* An escape that does not fit is left out whole, as is a character. */
static void test_escape_never_cuts(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(arrpc__access_escape(out, 3, "\"\"\"", 0), 2);
    assert_memory_equal(out, "\\\"", 2);
    assert_int_equal(arrpc__access_escape(out, 5, "\x01", 0), 0);
    assert_int_equal(arrpc__access_escape(out, 3, "a\xc3\xa9", 0), 3);
    assert_int_equal(arrpc__access_escape(out, 2, "a\xc3\xa9", 0), 1);
    assert_int_equal(arrpc__access_escape(out, 4, "a b", 1), 4); /* quoted: "a b" needs 5 */
    assert_memory_equal(out, "\"a \"", 4);
}

/* Lines of the same second share its text; the next second is written anew. */
static void test_time_follows_the_clock(void **state)
{
    (void)state;
    arrpc__access_format f;
    arrpc__access_format_init(&f, ARRPC_ACCESS_LOG_LOGFMT, "h", 0, 1);
    char line[ARRPC_ACCESS_LINE_MAX + 1];
    arrpc__access_fields x = fields("p");
    x.when = (struct timespec){.tv_sec = 1798761599, .tv_nsec = 999999999};
    line[arrpc__access_line(&f, &x, line)] = '\0';
    assert_memory_equal(line, "time=2026-12-31T23:59:59.999999Z ", 33);
    x.when = (struct timespec){.tv_sec = 1798761600, .tv_nsec = 1000};
    x.bytes_out = UINT64_MAX; /* the widest number (jansson's integers are signed: as text) */
    line[arrpc__access_line(&f, &x, line)] = '\0';
    assert_memory_equal(line, "time=2027-01-01T00:00:00.000001Z ", 33);
    assert_non_null(strstr(line, " bytes_out=18446744073709551615 "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_line_reads_back_every_field),
        cmocka_unit_test(test_longest_names_fit_in_one_line),
        cmocka_unit_test(test_logfmt_quotes_only_what_needs_it),
        cmocka_unit_test(test_escape_never_cuts),
        cmocka_unit_test(test_time_follows_the_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
