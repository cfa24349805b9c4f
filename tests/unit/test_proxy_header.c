/* test_proxy_header.c -- the PROXY protocol parser (v1 and v2) and the trusted-range lists. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arrpc.h"
#include "core/cidr.h"
#include "core/net.h"
#include "core/proxy_header.h"

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header: the signature, ver_cmd, fam_proto, then body (addresses and TLVs). */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam_proto, const uint8_t *body, size_t len)
{
    memcpy(out, v2_sig, 12);
    out[12] = ver_cmd;
    out[13] = fam_proto;
    out[14] = (uint8_t)(len >> 8);
    out[15] = (uint8_t)len;
    if (len) memcpy(out + 16, body, len);
    return 16 + len;
}

/* 192.0.2.7:4242 -> 198.51.100.1:9000 */
static const uint8_t inet_block[12] = {192, 0, 2, 7, 198, 51, 100, 1, 0x10, 0x92, 0x23, 0x28};

static size_t inet6_block(uint8_t *out)
{
    memset(out, 0, 36);
    inet_pton(AF_INET6, "2001:db8::7", out);
    inet_pton(AF_INET6, "2001:db8::1", out + 16);
    out[32] = 0x10, out[33] = 0x92; /* 4242 */
    out[34] = 0x23, out[35] = 0x28;
    return 36;
}

static const char *source_name(const arrpc__proxy_result *r, char *buf, size_t len)
{
    arrpc__net_addr_name((const struct sockaddr *)&r->source, buf, len);
    return buf;
}

/* Every proper prefix of a whole header needs more; the whole, with trailing stream bytes,
 * is done and says where the stream starts. */
static void assert_whole_header(const uint8_t *h, size_t len, arrpc__proxy_result *r)
{
    uint8_t with_data[ARRPC_PROXY_HEADER_MAX + 8];
    for (size_t i = 0; i < len; i++)
        assert_int_equal(arrpc__proxy_parse(h, i, r), ARRPC_PROXY_NEED_MORE);
    memcpy(with_data, h, len);
    memcpy(with_data + len, "\x81\xa1x\x01", 4); /* the first request follows at once */
    assert_int_equal(arrpc__proxy_parse(with_data, len + 4, r), ARRPC_PROXY_DONE);
    assert_int_equal(r->header_len, len);
}

static void test_v1_tcp4(void **state)
{
    (void)state;
    const char *h = "PROXY TCP4 192.0.2.7 198.51.100.1 4242 9000\r\n";
    arrpc__proxy_result r;
    char name[ARRPC_ADDR_MAX];
    assert_whole_header((const uint8_t *)h, strlen(h), &r);
    assert_int_equal(r.version, 1);
    assert_true(r.has_source);
    assert_string_equal(source_name(&r, name, sizeof name), "192.0.2.7:4242");
}

static void test_v1_tcp6(void **state)
{
    (void)state;
    const char *h = "PROXY TCP6 2001:db8::7 2001:db8::1 4242 9000\r\n";
    arrpc__proxy_result r;
    char name[ARRPC_ADDR_MAX];
    assert_whole_header((const uint8_t *)h, strlen(h), &r);
    assert_true(r.has_source);
    assert_string_equal(source_name(&r, name, sizeof name), "2001:db8::7:4242");
}

static void test_v1_unknown_keeps_the_peer(void **state)
{
    (void)state;
    const char *headers[] = {"PROXY UNKNOWN\r\n",
                             "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"};
    for (size_t i = 0; i < 2; i++) {
        arrpc__proxy_result r;
        assert_whole_header((const uint8_t *)headers[i], strlen(headers[i]), &r);
        assert_false(r.has_source);
    }
}

static void test_v1_longest_header_is_accepted(void **state)
{
    (void)state;
    const char *h = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_int_equal(strlen(h), ARRPC_PROXY_V1_MAX - 3); /* the format's 107 allow for slack */
    arrpc__proxy_result r;
    assert_whole_header((const uint8_t *)h, strlen(h), &r);
}

static void test_v1_over_107_bytes_is_too_long(void **state)
{
    (void)state;
    char h[200];
    memset(h, 'x', sizeof h);
    memcpy(h, "PROXY UNKNOWN ", 14);
    arrpc__proxy_result r;
    assert_int_equal(arrpc__proxy_parse((uint8_t *)h, 105, &r), ARRPC_PROXY_NEED_MORE);
    assert_int_equal(arrpc__proxy_parse((uint8_t *)h, 106, &r), ARRPC_PROXY_TOO_LONG);
    assert_int_equal(arrpc__proxy_parse((uint8_t *)h, sizeof h, &r), ARRPC_PROXY_TOO_LONG);
    memcpy(h + 105, "\r\n", 2); /* CRLF ending at byte 107: still allowed */
    assert_int_equal(arrpc__proxy_parse((uint8_t *)h, 107, &r), ARRPC_PROXY_DONE);
}

static void test_v1_malformed_lines_are_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "PROXY TCP4 192.0.2.7 198.51.100.1 4242\r\n",        /* a field missing */
        "PROXY TCP4 192.0.2.7 198.51.100.1 4242 9000 1\r\n", /* one too many */
        "PROXY TCP4 192.0.2.7  198.51.100.1 4242 9000\r\n",  /* two spaces */
        "PROXY TCP4 192.0.2.7 198.51.100.1  9000\r\n",       /* an empty port (fuzzer) */
        "PROXY TCP4  192.0.2.7 198.51.100.1 9000\r\n",
        "PROXY TCP4 2001:db8::7 198.51.100.1 4242 9000\r\n", /* v6 under TCP4 */
        "PROXY TCP6 192.0.2.7 2001:db8::1 4242 9000\r\n",    /* v4 under TCP6 */
        "PROXY TCP4 192.0.2.7 198.51.100.1 65536 9000\r\n",  /* port too big */
        "PROXY TCP4 192.0.2.7 198.51.100.1 -1 9000\r\n",     /* not a number */
        "PROXY TCP4 192.0.2.7 198.51.100.1 4242 900x\r\n",
        "PROXY UDP4 192.0.2.7 198.51.100.1 4242 9000\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 4242 9000\r\r\n", /* CR without LF */
        "PROXY \r\n",
        "PROXY UNKNOWNX\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        arrpc__proxy_result r;
        assert_int_equal(arrpc__proxy_parse((const uint8_t *)bad[i], strlen(bad[i]), &r),
                         ARRPC_PROXY_INVALID);
        assert_non_null(r.why);
    }
    arrpc__proxy_result r;
    const uint8_t nul[] = "PROXY UNKNOWN\0\r\n"; /* a text line has no NUL, even here */
    assert_int_equal(arrpc__proxy_parse(nul, sizeof nul - 1, &r), ARRPC_PROXY_INVALID);
    const uint8_t nul_tcp[] = "PROXY TCP4 1.2.3.4\0 1.2.3.4 1 2\r\n";
    assert_int_equal(arrpc__proxy_parse(nul_tcp, sizeof nul_tcp - 1, &r), ARRPC_PROXY_INVALID);
}

static void test_no_signature_is_missing(void **state)
{
    (void)state;
    const char *bad[] = {"\x81\xa1x\x01", "GET / HTTP/1.1\r\n", "PROXX", "proxy ", "\r\n\r\n\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        arrpc__proxy_result r;
        assert_int_equal(arrpc__proxy_parse((const uint8_t *)bad[i], strlen(bad[i]), &r),
                         ARRPC_PROXY_MISSING);
    }
    arrpc__proxy_result r;
    assert_int_equal(arrpc__proxy_parse((const uint8_t *)"", 0, &r), ARRPC_PROXY_NEED_MORE);
}

/* The signature alone, as checked on sources not expected to send a header: each proper
 * prefix is undecided, the whole signature is a header whatever follows, and the first byte
 * that diverges (a request starting with 'P', a TLS record) settles it as not one. */
static void test_signature_decides_on_the_fewest_bytes(void **state)
{
    (void)state;
    const uint8_t v1_start[] = "PROXY TCP4 1.2.3";
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(arrpc__proxy_signature(v1_start, i), ARRPC_PROXY_SIG_PARTIAL);
    for (size_t i = 6; i < sizeof v1_start; i++)
        assert_int_equal(arrpc__proxy_signature(v1_start, i), ARRPC_PROXY_SIG_WHOLE);
    for (size_t i = 0; i < 12; i++)
        assert_int_equal(arrpc__proxy_signature(v2_sig, i), ARRPC_PROXY_SIG_PARTIAL);
    assert_int_equal(arrpc__proxy_signature(v2_sig, 12), ARRPC_PROXY_SIG_WHOLE);
    const char *not_headers[] = {"P\x94",        "PROX\x01",     "PROXY\t",
                                 "\x16\x03\x01", "\r\n\r\n\x01", "\x94\x00\x01"};
    for (size_t i = 0; i < sizeof not_headers / sizeof not_headers[0]; i++)
        assert_int_equal(
            arrpc__proxy_signature((const uint8_t *)not_headers[i], strlen(not_headers[i])),
            ARRPC_PROXY_SIG_NONE);
}

static void test_v2_proxy_inet_and_inet6(void **state)
{
    (void)state;
    uint8_t h[64], block[36];
    char name[ARRPC_ADDR_MAX];
    arrpc__proxy_result r;
    size_t len = v2(h, 0x21, 0x11, inet_block, sizeof inet_block);
    assert_whole_header(h, len, &r);
    assert_int_equal(r.version, 2);
    assert_true(r.has_source);
    assert_string_equal(source_name(&r, name, sizeof name), "192.0.2.7:4242");
    len = v2(h, 0x21, 0x21, block, inet6_block(block));
    assert_whole_header(h, len, &r);
    assert_true(r.has_source);
    assert_string_equal(source_name(&r, name, sizeof name), "2001:db8::7:4242");
}

static void test_v2_local_keeps_the_peer_whatever_follows(void **state)
{
    (void)state;
    uint8_t h[64];
    arrpc__proxy_result r;
    size_t len = v2(h, 0x20, 0x00, NULL, 0);
    assert_whole_header(h, len, &r);
    assert_false(r.has_source);
    len = v2(h, 0x20, 0xFF, (const uint8_t *)"whatever", 8); /* ignored, as the format says */
    assert_whole_header(h, len, &r);
    assert_false(r.has_source);
}

static void test_v2_unspec_and_unix_keep_the_peer(void **state)
{
    (void)state;
    uint8_t h[300], unix_block[216] = {0};
    arrpc__proxy_result r;
    uint8_t fam_protos[] = {0x00, 0x10, 0x20}; /* UNSPEC; INET and INET6 with protocol UNSPEC */
    for (size_t i = 0; i < sizeof fam_protos; i++) {
        size_t len = v2(h, 0x21, fam_protos[i], unix_block, 36);
        assert_whole_header(h, len, &r);
        assert_false(r.has_source);
    }
    size_t len = v2(h, 0x21, 0x31, unix_block, sizeof unix_block);
    assert_whole_header(h, len, &r);
    assert_false(r.has_source);
}

static void test_v2_tlvs_are_skipped_within_bounds(void **state)
{
    (void)state;
    uint8_t body[64], h[128];
    char name[ARRPC_ADDR_MAX];
    memcpy(body, inet_block, 12);
    /* PP2_TYPE_UNIQUE_ID with 5 bytes, then an empty PP2_TYPE_NOOP */
    memcpy(body + 12,
           "\x05\x00\x05"
           "abcde"
           "\x04\x00\x00",
           11);
    arrpc__proxy_result r;
    size_t len = v2(h, 0x21, 0x11, body, 23);
    assert_whole_header(h, len, &r);
    assert_string_equal(source_name(&r, name, sizeof name), "192.0.2.7:4242");
    len = v2(h, 0x21, 0x11, body, 22); /* the NOOP's length cut */
    assert_int_equal(arrpc__proxy_parse(h, len, &r), ARRPC_PROXY_INVALID);
    body[14] = 6; /* the unique id claims one byte more than there is before the NOOP... */
    len = v2(h, 0x21, 0x11, body, 20);
    assert_int_equal(arrpc__proxy_parse(h, len, &r), ARRPC_PROXY_INVALID);
}

static void test_v2_malformed_is_invalid(void **state)
{
    (void)state;
    uint8_t h[64];
    arrpc__proxy_result r;
    struct {
        uint8_t ver_cmd, fam_proto;
        size_t body;
    } bad[] = {
        {0x11, 0x11, 12}, /* version 1 */
        {0x31, 0x11, 12}, /* version 3 */
        {0x22, 0x11, 12}, /* command 2 */
        {0x21, 0x12, 12}, /* datagram */
        {0x21, 0x41, 12}, /* family 4 */
        {0x21, 0x13, 12}, /* protocol 3 */
        {0x21, 0x11, 11}, /* address block cut short */
        {0x21, 0x21, 12}, /* IPv6 with an IPv4 block */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t body[36] = {0};
        size_t len = v2(h, bad[i].ver_cmd, bad[i].fam_proto, body, bad[i].body);
        assert_int_equal(arrpc__proxy_parse(h, len, &r), ARRPC_PROXY_INVALID);
    }
    /* A wrong version is refused as soon as its byte arrives. */
    v2(h, 0x11, 0x11, inet_block, 12);
    assert_int_equal(arrpc__proxy_parse(h, 13, &r), ARRPC_PROXY_INVALID);
}

static void test_v2_longer_than_the_bound_is_too_long(void **state)
{
    (void)state;
    static uint8_t h[ARRPC_PROXY_V2_MAX + 1];
    memset(h, 0, sizeof h);
    arrpc__proxy_result r;
    size_t body = ARRPC_PROXY_V2_MAX - 16;
    uint8_t *tlv = h + 16 + 12;
    v2(h, 0x21, 0x11, inet_block, 12);
    h[14] = (uint8_t)(body >> 8), h[15] = (uint8_t)body;
    tlv[0] = 0x04; /* one NOOP TLV filling the rest */
    tlv[1] = (uint8_t)((body - 15) >> 8), tlv[2] = (uint8_t)(body - 15);
    assert_int_equal(arrpc__proxy_parse(h, ARRPC_PROXY_V2_MAX, &r), ARRPC_PROXY_DONE);
    body++;
    h[14] = (uint8_t)(body >> 8), h[15] = (uint8_t)body;
    assert_int_equal(arrpc__proxy_parse(h, 16, &r), ARRPC_PROXY_TOO_LONG);
    h[14] = h[15] = 0xFF;
    assert_int_equal(arrpc__proxy_parse(h, 16, &r), ARRPC_PROXY_TOO_LONG);
}

static void test_junk_never_reads_past_n(void **state)
{
    (void)state;
    /* Every length of a few junk patterns: never DONE past n, never a crash (ASan/valgrind). */
    uint8_t junk[256];
    for (unsigned seed = 0; seed < 64; seed++) {
        for (size_t i = 0; i < sizeof junk; i++)
            junk[i] = (uint8_t)(i * 31u + seed * 7u);
        memcpy(junk, seed & 1 ? (const uint8_t *)"PROXY " : v2_sig, seed & 1 ? 6 : 12);
        for (size_t n = 0; n <= sizeof junk; n++) {
            arrpc__proxy_result r;
            if (arrpc__proxy_parse(junk, n, &r) == ARRPC_PROXY_DONE) assert_true(r.header_len <= n);
        }
    }
}

static void assert_match(const char *spec, const char *addr, int expected)
{
    arrpc__cidr_list list;
    char err[128];
    assert_int_equal(arrpc__cidr_parse(spec, &list, err, sizeof err), 0);
    struct sockaddr_storage ss = {0};
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, addr, &in->sin_addr), 1);
    }
    assert_int_equal(arrpc__cidr_match(&list, (struct sockaddr *)&ss), expected);
}

static void test_cidr_match(void **state)
{
    (void)state;
    assert_match("127.0.0.0/8", "127.0.0.1", 1);
    assert_match("127.0.0.0/8", "128.0.0.1", 0);
    assert_match("10.1.2.0/23", "10.1.3.255", 1);
    assert_match("10.1.2.0/23", "10.1.4.0", 0);
    assert_match("192.0.2.7", "192.0.2.7", 1);
    assert_match("192.0.2.7", "192.0.2.8", 0);
    assert_match("0.0.0.0/0", "203.0.113.9", 1);
    assert_match("0.0.0.0/0", "2001:db8::1", 0); /* an IPv4 range never takes IPv6 */
    assert_match("10.0.0.0/8,fd00::/8", "fd12::1", 1);
    assert_match("10.0.0.0/8,fd00::/8", "fe80::1", 0);
    assert_match("127.0.0.0/8", "::ffff:127.0.0.1", 1); /* dual-stack listener */
    assert_match("::1/128", "::1", 1);
    assert_match("::1", "127.0.0.1", 0);
}

static void test_cidr_refuses_bad_lists(void **state)
{
    (void)state;
    const char *bad[] = {
        "",       "10.0.0.0/33", "::/129",      "10.0.0.1/8",   "10.0.0.0/",   "10.0.0.0/x",
        "10.0.0", "10.0.0.0/8,", ",10.0.0.0/8", "host.example", "10.0.0.0/-1", "fd00::1/8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        arrpc__cidr_list list;
        char err[128] = "";
        assert_int_equal(arrpc__cidr_parse(bad[i], &list, err, sizeof err), ARRPC_EINVAL);
        assert_true(strlen(err) > 0);
    }
    char many[ARRPC_CIDR_LIST_MAX * 16] = "";
    for (int i = 0; i <= ARRPC_CIDR_LIST_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s10.0.%d.0/24", i ? "," : "",
                 i);
    arrpc__cidr_list list;
    char err[128];
    assert_int_equal(arrpc__cidr_parse(many, &list, err, sizeof err), ARRPC_EINVAL);
    *strrchr(many, ',') = '\0'; /* exactly the maximum */
    assert_int_equal(arrpc__cidr_parse(many, &list, err, sizeof err), 0);
    assert_int_equal(list.count, ARRPC_CIDR_LIST_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_tcp6),
        cmocka_unit_test(test_v1_unknown_keeps_the_peer),
        cmocka_unit_test(test_v1_longest_header_is_accepted),
        cmocka_unit_test(test_v1_over_107_bytes_is_too_long),
        cmocka_unit_test(test_v1_malformed_lines_are_invalid),
        cmocka_unit_test(test_no_signature_is_missing),
        cmocka_unit_test(test_signature_decides_on_the_fewest_bytes),
        cmocka_unit_test(test_v2_proxy_inet_and_inet6),
        cmocka_unit_test(test_v2_local_keeps_the_peer_whatever_follows),
        cmocka_unit_test(test_v2_unspec_and_unix_keep_the_peer),
        cmocka_unit_test(test_v2_tlvs_are_skipped_within_bounds),
        cmocka_unit_test(test_v2_malformed_is_invalid),
        cmocka_unit_test(test_v2_longer_than_the_bound_is_too_long),
        cmocka_unit_test(test_junk_never_reads_past_n),
        cmocka_unit_test(test_cidr_match),
        cmocka_unit_test(test_cidr_refuses_bad_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
