/* test_json_msgpack.c -- JSON <-> MessagePack conversion of arrpc-call: every type, the tagged
 * forms both ways, uint64 and shortest reals in the JSON text, and the inputs that must be
 * refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tools/json_msgpack.h"

/* JSON text -> MessagePack bytes in sb. */
static int pack_text(const char *text, msgpack_sbuffer *sb, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *v = arrpc_json_loadb(text, strlen(text), JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!v) fail_msg("%s does not load: %s", text, jerr.text);
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int rc = arrpc_json_to_msgpack(v, &pk, err, errlen);
    json_decref(v);
    return rc;
}

/* MessagePack bytes -> compact JSON text (caller frees), or NULL. */
static char *unpack_text(const char *p, size_t n)
{
    msgpack_unpacked u;
    char err[128];
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, p, n, NULL), MSGPACK_UNPACK_SUCCESS);
    json_t *j = arrpc_json_from_msgpack(&u.data, err, sizeof err);
    char *text = j ? arrpc_json_dumps(j) : NULL;
    json_decref(j);
    msgpack_unpacked_destroy(&u);
    return text;
}

/* JSON -> MessagePack -> JSON gives back the same text. */
static void assert_round_trip(const char *text)
{
    msgpack_sbuffer sb;
    char err[128];
    assert_int_equal(pack_text(text, &sb, err, sizeof err), 0);
    char *back = unpack_text(sb.data, sb.size);
    assert_non_null(back);
    assert_string_equal(back, text);
    free(back);
    msgpack_sbuffer_destroy(&sb);
}

static void test_plain_values_round_trip(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "null",
        "true",
        "false",
        "0",
        "-1",
        "127",
        "128",
        "-33",
        "9223372036854775807",
        "-9223372036854775808",
        "1.5",
        "-0.25",
        "\"\"",
        "\"h\\u00e9llo \\u2603 \\ud83d\\ude00\"",
        "[]",
        "{}",
        "[1,[2,[3,{\"a\":[]}]]]",
        "{\"b\":1,\"a\":2,\"c\":{\"x\":null}}",
        "\"nul\\u0000inside\"",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* jansson writes non-ASCII as UTF-8, so compare through a second parse */
        msgpack_sbuffer sb;
        char err[128];
        json_error_t jerr;
        assert_int_equal(pack_text(cases[i], &sb, err, sizeof err), 0);
        char *back = unpack_text(sb.data, sb.size);
        json_t *a = json_loads(cases[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        json_t *b = json_loads(back, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!json_equal(a, b))
            fail_msg("case %s came back as %s", cases[i], back ? back : "(null)");
        json_decref(a);
        json_decref(b);
        free(back);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_tagged_forms_round_trip(void **state)
{
    (void)state;
    assert_round_trip("{\"$bin\":\"\"}");
    assert_round_trip("{\"$bin\":\"AAEC/w==\"}");
    assert_round_trip("{\"$ext\":[5,\"aGk=\"]}");
    assert_round_trip("{\"$ext\":[-128,\"\"]}");
    assert_round_trip("{\"$map\":[[1,\"one\"],[[2],{\"$bin\":\"Ag==\"}]]}");
    assert_round_trip("{\"$map\":[[\"$bin\",\"not bin\"]]}");
    assert_round_trip("{\"$bin\":\"AA==\",\"other\":1}");
}

static void test_bin_packs_as_bin(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    char err[128];
    assert_int_equal(pack_text("{\"$bin\":\"aGk=\"}", &sb, err, sizeof err), 0);
    assert_int_equal(sb.size, 4);
    assert_memory_equal(sb.data, "\xc4\x02hi", 4);
    msgpack_sbuffer_destroy(&sb);
}

static void test_map_forms_from_msgpack(void **state)
{
    (void)state;
    /* {1: "a"}, {"k": 1, "k": 2}, {"$bin": "x"} all need the pairs form */
    static const struct {
        const char *bytes;
        size_t n;
        const char *json;
    } cases[] = {
        {"\x81\x01\xa1"
         "a",
         4, "{\"$map\":[[1,\"a\"]]}"},
        {"\x82\xa1k\x01\xa1k\x02", 7, "{\"$map\":[[\"k\",1],[\"k\",2]]}"},
        {"\x81\xa4$bin\xa1x", 8, "{\"$map\":[[\"$bin\",\"x\"]]}"},
        {"\x81\xa4$foo\xa1x", 8, "{\"$foo\":\"x\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = unpack_text(cases[i].bytes, cases[i].n);
        assert_non_null(text);
        assert_string_equal(text, cases[i].json);
        free(text);
    }
}

/* JSON text -> MessagePack -> JSON text gives want, and the MessagePack is bytes[0..n). */
static void assert_packs_and_prints(const char *text, const char *bytes, size_t n, const char *want)
{
    msgpack_sbuffer sb;
    char err[128];
    assert_int_equal(pack_text(text, &sb, err, sizeof err), 0);
    if (bytes) {
        assert_int_equal(sb.size, n);
        assert_memory_equal(sb.data, bytes, n);
    }
    char *back = unpack_text(sb.data, sb.size);
    assert_non_null(back);
    assert_string_equal(back, want);
    free(back);
    msgpack_sbuffer_destroy(&sb);
}

static void test_reals_print_shortest(void **state)
{
    (void)state;
    assert_packs_and_prints("0.1", "\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a", 9, "0.1");
    assert_packs_and_prints("1e300", NULL, 0, "1e+300");
    assert_packs_and_prints("100.0", NULL, 0, "100.0");
    assert_packs_and_prints("123456.0", NULL, 0, "123456.0");
    assert_packs_and_prints("1e15", NULL, 0, "1000000000000000.0");
    assert_packs_and_prints("1.5e15", NULL, 0, "1500000000000000.0");
    assert_packs_and_prints("1e16", NULL, 0, "1e+16");
    assert_packs_and_prints("5e-324", "\xcb\x00\x00\x00\x00\x00\x00\x00\x01", 9, "5e-324");
    assert_packs_and_prints("1.0", NULL, 0, "1.0");
    assert_packs_and_prints("-0.0", "\xcb\x80\x00\x00\x00\x00\x00\x00\x00", 9, "-0.0");
    assert_packs_and_prints("0.30000000000000004", NULL, 0, "0.30000000000000004");
    assert_packs_and_prints("1.7976931348623157e308", NULL, 0, "1.7976931348623157e+308");
    assert_packs_and_prints("[0.1,{\"a\":2.5}]", NULL, 0, "[0.1,{\"a\":2.5}]");
    assert_packs_and_prints("-1234567.0", NULL, 0, "-1234567.0");
}

static void test_float32_prints_shortest(void **state)
{
    (void)state;
    char *text = unpack_text("\xca\x3d\xcc\xcc\xcd", 5); /* float32 0.1 */
    assert_string_equal(text, "0.1");
    free(text);
    text = unpack_text("\xca\x80\x00\x00\x00", 5); /* float32 -0.0 */
    assert_string_equal(text, "-0.0");
    free(text);
    text = unpack_text("\xca\x7f\x7f\xff\xff", 5); /* FLT_MAX */
    assert_string_equal(text, "3.4028235e+38");
    free(text);
}

static void test_uint64_both_ways(void **state)
{
    (void)state;
    assert_packs_and_prints("9223372036854775808", "\xcf\x80\x00\x00\x00\x00\x00\x00\x00", 9,
                            "9223372036854775808");
    assert_packs_and_prints("18446744073709551615", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9,
                            "18446744073709551615");
    assert_packs_and_prints("-9223372036854775808", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9,
                            "-9223372036854775808");
    assert_packs_and_prints("[1,18446744073709551615,{\"k\":[9223372036854775808]}]", NULL, 0,
                            "[1,18446744073709551615,{\"k\":[9223372036854775808]}]");
    assert_packs_and_prints("{\"18446744073709551616\":\"a\\\"-9223372036854775809\"}", NULL, 0,
                            "{\"18446744073709551616\":\"a\\\"-9223372036854775809\"}");
    assert_packs_and_prints("{\"$u64\":\"5\"}", "\x05", 1, "5");
    /* a map {"$u64": "5"} stays a map */
    char *text = unpack_text("\x81\xa4$u64\xa1\x35", 8);
    assert_string_equal(text, "{\"$map\":[[\"$u64\",\"5\"]]}");
    free(text);
}

static void test_integers_out_of_range_are_refused(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "18446744073709551616",
        "-9223372036854775809",
        "[0,{\"a\":99999999999999999999999}]",
    };
    static const char *const named[] = {
        "18446744073709551616",
        "-9223372036854775809",
        "99999999999999999999999",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_error_t jerr;
        assert_null(arrpc_json_loadb(cases[i], strlen(cases[i]), JSON_DECODE_ANY, &jerr));
        if (!strstr(jerr.text, named[i])) fail_msg("%s: the error does not name it", jerr.text);
    }
}

static void test_nan_prints_null(void **state)
{
    (void)state;
    char *text = unpack_text("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", 9); /* NaN */
    assert_string_equal(text, "null");
    free(text);
    text = unpack_text("\xca\x3f\xc0\x00\x00", 5); /* float32 1.5 */
    assert_string_equal(text, "1.5");
    free(text);
}

static void test_invalid_utf8_str_is_an_error(void **state)
{
    (void)state;
    assert_null(unpack_text("\xa2\xc3\x28", 3));
}

/* {"": 1, "": {"": 1, "": ...}} 30 levels deep: each level has a repeated key, so each becomes the
 * "$map" form. Found by fuzz_json: converting values before checking keys did each level's
 * nested map twice, 2^30 conversions for 121 bytes; this must finish at once. */
static void test_repeated_keys_nested_deep_convert_once(void **state)
{
    (void)state;
    char bytes[4 * 30 + 1];
    for (size_t i = 0; i < 30; i++)
        memcpy(bytes + 4 * i, "\x82\xa0\x01\xa0", 4);
    bytes[4 * 30] = (char)0xc0;
    char *text = unpack_text(bytes, sizeof bytes);
    assert_non_null(text);
    assert_non_null(strstr(text, "{\"$map\":[[\"\",1],[\"\",{\"$map\":[[\"\",1],[\"\",{"));
    free(text);
}

static void test_malformed_tags_are_refused(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "{\"$bin\":5}",        "{\"$bin\":\"abc\"}",    "{\"$bin\":\"a===\"}",
        "{\"$bin\":\"!!!!\"}", "{\"$ext\":[300,\"\"]}", "{\"$ext\":[1]}",
        "{\"$ext\":\"x\"}",    "{\"$map\":[[1]]}",      "{\"$map\":{}}",
        "[{\"$bin\":null}]",   "{\"$u64\":5}",          "{\"$u64\":\"18446744073709551616\"}",
        "{\"$u64\":\"-1\"}",   "{\"$u64\":\"\"}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_sbuffer sb;
        char err[128] = "";
        assert_int_equal(pack_text(cases[i], &sb, err, sizeof err), -1);
        assert_true(err[0] != '\0');
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_base64_vectors(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                        "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char out[16];
        unsigned char back[16];
        arrpc_base64_encode((const unsigned char *)plain[i], strlen(plain[i]), out);
        assert_string_equal(out, coded[i]);
        long n = arrpc_base64_decode(coded[i], strlen(coded[i]), back);
        assert_int_equal(n, (long)strlen(plain[i]));
        assert_memory_equal(back, plain[i], (size_t)n);
    }
    unsigned char sink[8];
    assert_int_equal(arrpc_base64_decode("Zg=", 3, sink), -1);
    assert_int_equal(arrpc_base64_decode("Zg==Zg==", 8, sink), -1);
    assert_int_equal(arrpc_base64_decode("Z\0==", 4, sink), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_values_round_trip),
        cmocka_unit_test(test_tagged_forms_round_trip),
        cmocka_unit_test(test_bin_packs_as_bin),
        cmocka_unit_test(test_map_forms_from_msgpack),
        cmocka_unit_test(test_reals_print_shortest),
        cmocka_unit_test(test_float32_prints_shortest),
        cmocka_unit_test(test_uint64_both_ways),
        cmocka_unit_test(test_integers_out_of_range_are_refused),
        cmocka_unit_test(test_nan_prints_null),
        cmocka_unit_test(test_invalid_utf8_str_is_an_error),
        cmocka_unit_test(test_repeated_keys_nested_deep_convert_once),
        cmocka_unit_test(test_malformed_tags_are_refused),
        cmocka_unit_test(test_base64_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
