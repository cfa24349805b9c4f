/* test_decode.c -- the one-pass decoder (core/decode.c): every encoding of every type gives what
 * msgpack-c's msgpack_unpack gives, type tags included; every limit holds at its edge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "arrpc.h"
#include "core/decode.h"
#include "tests/same_object.h"

#define MIB (1024u * 1024u)
#define MSGPACK_C_DEPTH 32u /* MSGPACK_EMBED_STACK_SIZE: msgpack-c decodes no deeper */

/* One encoding: its bytes and the type tag msgpack-c gives it. */
typedef struct {
    const char *name;
    const char *bytes;
    size_t len;
    msgpack_object_type type;
} encoding;

#define E(name, lit, type)                                                                         \
    {                                                                                              \
        name, lit, sizeof lit - 1, MSGPACK_OBJECT_##type                                           \
    }
#define ZERO8 "\x00\x00\x00\x00\x00\x00\x00\x00"
#define FF8 "\xff\xff\xff\xff\xff\xff\xff\xff"

static const encoding encodings[] = {
    E("positive fixint 0", "\x00", POSITIVE_INTEGER),
    E("positive fixint 127", "\x7f", POSITIVE_INTEGER),
    E("negative fixint -1", "\xff", NEGATIVE_INTEGER),
    E("negative fixint -32", "\xe0", NEGATIVE_INTEGER),
    E("uint8 1", "\xcc\x01", POSITIVE_INTEGER),
    E("uint16 1", "\xcd\x00\x01", POSITIVE_INTEGER),
    E("uint32 1", "\xce\x00\x00\x00\x01", POSITIVE_INTEGER),
    E("uint64 1", "\xcf\x00\x00\x00\x00\x00\x00\x00\x01", POSITIVE_INTEGER),
    E("uint8 255", "\xcc\xff", POSITIVE_INTEGER),
    E("uint16 65535", "\xcd\xff\xff", POSITIVE_INTEGER),
    E("uint32 2^32-1", "\xce\xff\xff\xff\xff", POSITIVE_INTEGER),
    E("uint64 2^64-1", "\xcf" FF8, POSITIVE_INTEGER),
    E("int8 -1", "\xd0\xff", NEGATIVE_INTEGER),
    E("int16 -1", "\xd1\xff\xff", NEGATIVE_INTEGER),
    E("int32 -1", "\xd2\xff\xff\xff\xff", NEGATIVE_INTEGER),
    E("int64 -1", "\xd3" FF8, NEGATIVE_INTEGER),
    E("int8 1 (msgpack-c: positive)", "\xd0\x01", POSITIVE_INTEGER),
    E("int16 1", "\xd1\x00\x01", POSITIVE_INTEGER),
    E("int32 1", "\xd2\x00\x00\x00\x01", POSITIVE_INTEGER),
    E("int64 1", "\xd3\x00\x00\x00\x00\x00\x00\x00\x01", POSITIVE_INTEGER),
    E("int8 -128", "\xd0\x80", NEGATIVE_INTEGER),
    E("int16 -32768", "\xd1\x80\x00", NEGATIVE_INTEGER),
    E("int32 -2^31", "\xd2\x80\x00\x00\x00", NEGATIVE_INTEGER),
    E("int64 -2^63", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", NEGATIVE_INTEGER),
    E("int64 2^63-1", "\xd3\x7f\xff\xff\xff\xff\xff\xff\xff", POSITIVE_INTEGER),
    E("nil", "\xc0", NIL),
    E("false", "\xc2", BOOLEAN),
    E("true", "\xc3", BOOLEAN),
    E("float32 1.5", "\xca\x3f\xc0\x00\x00", FLOAT32),
    E("float32 -0.0", "\xca\x80\x00\x00\x00", FLOAT32),
    E("float32 NaN", "\xca\x7f\xc0\x00\x01", FLOAT32),
    E("float32 infinity", "\xca\x7f\x80\x00\x00", FLOAT32),
    E("float64 -2.5", "\xcb\xc0\x04\x00\x00\x00\x00\x00\x00", FLOAT64),
    E("float64 NaN", "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x01", FLOAT64),
    E("float64 smallest subnormal", "\xcb\x00\x00\x00\x00\x00\x00\x00\x01", FLOAT64),
    E("fixstr empty", "\xa0", STR),
    E("fixstr abc",
      "\xa3"
      "abc",
      STR),
    E("fixstr of 31",
      "\xbf"
      "0123456789012345678901234567890",
      STR),
    E("str8",
      "\xd9\x03"
      "abc",
      STR),
    E("str16",
      "\xda\x00\x03"
      "abc",
      STR),
    E("str32",
      "\xdb\x00\x00\x00\x03"
      "abc",
      STR),
    E("str8 empty", "\xd9\x00", STR),
    E("str not UTF-8 (passed as is)", "\xa2\xff\xfe", STR),
    E("bin8", "\xc4\x03\x00\x01\x02", BIN),
    E("bin16", "\xc5\x00\x03\x00\x01\x02", BIN),
    E("bin32", "\xc6\x00\x00\x00\x03\x00\x01\x02", BIN),
    E("bin8 empty", "\xc4\x00", BIN),
    E("fixarray empty", "\x90", ARRAY),
    E("fixarray",
      "\x93\x01\xa1"
      "a\xc0",
      ARRAY),
    E("fixarray of 15", "\x9f\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e", ARRAY),
    E("array16", "\xdc\x00\x02\x01\x02", ARRAY),
    E("array16 empty", "\xdc\x00\x00", ARRAY),
    E("array32", "\xdd\x00\x00\x00\x02\x01\x02", ARRAY),
    E("fixmap empty", "\x80", MAP),
    E("fixmap",
      "\x82\xa1"
      "a\x01\xa1"
      "b\x92\xc2\xc3",
      MAP),
    E("map16",
      "\xde\x00\x01\xa1"
      "a\x01",
      MAP),
    E("map16 empty", "\xde\x00\x00", MAP),
    E("map32",
      "\xdf\x00\x00\x00\x01\xa1"
      "a\x01",
      MAP),
    E("map with container keys", "\x81\x91\x80\x81\x90\xc0", MAP),
    E("fixext1", "\xd4\x05\x01", EXT),
    E("fixext2", "\xd5\x05\x01\x02", EXT),
    E("fixext4", "\xd6\x05\x01\x02\x03\x04", EXT),
    E("fixext8", "\xd7\x05\x01\x02\x03\x04\x05\x06\x07\x08", EXT),
    E("fixext16", "\xd8\x05" ZERO8 FF8, EXT),
    E("fixext1 of type -128", "\xd4\x80\x00", EXT),
    E("ext8",
      "\xc7\x03\x07"
      "abc",
      EXT),
    E("ext8 empty", "\xc7\x00\x07", EXT),
    E("ext16",
      "\xc8\x00\x02\x7f"
      "ab",
      EXT),
    E("ext32",
      "\xc9\x00\x00\x00\x02\x81"
      "ab",
      EXT),
    E("timestamp 32", "\xd6\xff\x5f\x5e\x10\x00", EXT),
    E("timestamp 64", "\xd7\xff\x00\x00\x00\x04\x5f\x5e\x10\x00", EXT),
    E("timestamp 96", "\xc7\x0c\xff\x00\x00\x00\x01\xff\xff\xff\xff\xff\xff\xff\xfe", EXT),
    E("nested mixture",
      "\x82\xa3"
      "req\x93\xcd\x01\x00\xd0\xfe\x81\xc0\x90\xa3"
      "ext\xd6\xff\x00\x00\x00\x01",
      MAP),
};

/* ---- helpers ------------------------------------------------------------------------------ */

typedef struct {
    arrpc__decoder *dec;
    msgpack_zone zone;
} fixture;

static void fixture_init(fixture *f, size_t max_message, unsigned max_depth)
{
    f->dec = arrpc__decoder_new(max_message, max_depth);
    assert_non_null(f->dec);
    assert_true(msgpack_zone_init(&f->zone, 2048));
}

static void fixture_free(fixture *f)
{
    arrpc__decoder_free(f->dec);
    msgpack_zone_destroy(&f->zone);
}

static int whole(fixture *f, const void *p, size_t n, msgpack_object *obj)
{
    msgpack_object ignored;
    return arrpc__decode_whole(f->dec, p, n, &f->zone, obj ? obj : &ignored);
}

/* Ours and msgpack-c's decoding of p[0, n) are the same tree, tags included. */
static void assert_same_as_msgpack_c(fixture *f, const void *p, size_t n)
{
    msgpack_object ours, theirs;
    size_t off = 0;
    assert_int_equal(whole(f, p, n, &ours), 0);
    assert_int_equal(msgpack_unpack(p, n, &off, &f->zone, &theirs), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, n);
    assert_true(same_object(&ours, &theirs));
}

/* `levels` copies of the container header `open`, then `leaf`, then `tail` once per level (the
 * values of maps nested through their keys). */
typedef struct {
    const char *open, *leaf, *tail;
    size_t open_len, leaf_len, tail_len;
} shape;

static uint8_t *nested(const shape *s, unsigned levels, size_t *n)
{
    *n = levels * (s->open_len + s->tail_len) + s->leaf_len;
    uint8_t *p = malloc(*n), *at = p;
    assert_non_null(p);
    for (unsigned i = 0; i < levels; i++, at += s->open_len)
        memcpy(at, s->open, s->open_len);
    memcpy(at, s->leaf, s->leaf_len);
    at += s->leaf_len;
    for (unsigned i = 0; i < levels; i++, at += s->tail_len)
        memcpy(at, s->tail, s->tail_len);
    return p;
}

/* ---- every encoding ----------------------------------------------------------------------- */

static void test_encoding(void **state)
{
    const encoding *e = *state;
    fixture f;
    fixture_init(&f, MIB, ARRPC_DEFAULT_MAX_DEPTH);
    msgpack_object obj;
    assert_int_equal(whole(&f, e->bytes, e->len, &obj), 0);
    assert_int_equal(obj.type, e->type);
    assert_string_equal(arrpc__decoder_error(f.dec), "");
    assert_same_as_msgpack_c(&f, e->bytes, e->len);
    if (obj.type == MSGPACK_OBJECT_EXT && obj.via.ext.type == -1) {
        msgpack_timestamp ts;
        assert_true(msgpack_object_to_timestamp(&obj, &ts));
    }
    /* Strings point into the input, as msgpack_unpack's do. */
    if (obj.type == MSGPACK_OBJECT_STR && obj.via.str.size > 0)
        assert_true(obj.via.str.ptr > e->bytes && obj.via.str.ptr < e->bytes + e->len);

    /* Inside an array twice, and as a map's key and value: the next slot is filled each time. */
    uint8_t wrapped[128];
    assert_true(1 + 2 * e->len <= sizeof wrapped);
    wrapped[0] = 0x92;
    memcpy(wrapped + 1, e->bytes, e->len);
    memcpy(wrapped + 1 + e->len, e->bytes, e->len);
    assert_same_as_msgpack_c(&f, wrapped, 1 + 2 * e->len);
    wrapped[0] = 0x81;
    assert_same_as_msgpack_c(&f, wrapped, 1 + 2 * e->len);

    /* Cut at every byte: truncated, never an object. */
    for (size_t cut = 0; cut < e->len; cut++) {
        size_t used = 12345;
        assert_int_equal(whole(&f, e->bytes, cut, NULL), ARRPC_EPROTO);
        assert_string_equal(arrpc__decoder_error(f.dec), "truncated message");
        assert_int_equal(
            arrpc__decode_next(f.dec, (const uint8_t *)e->bytes, cut, &f.zone, &obj, &used), 0);
    }
    /* A byte more: not one message as a whole; the first of several as the next one. */
    memcpy(wrapped, e->bytes, e->len);
    wrapped[e->len] = 0xc0;
    assert_int_equal(whole(&f, wrapped, e->len + 1, NULL), ARRPC_EPROTO);
    assert_string_equal(arrpc__decoder_error(f.dec), "bytes after the end of the message");
    size_t used = 0;
    assert_int_equal(arrpc__decode_next(f.dec, wrapped, e->len + 1, &f.zone, &obj, &used), 1);
    assert_int_equal(used, e->len);
    fixture_free(&f);
}

/* ---- limits ------------------------------------------------------------------------------- */

static const unsigned depth_limits[] = {1,
                                        2,
                                        3,
                                        MSGPACK_C_DEPTH,
                                        MSGPACK_C_DEPTH + 1,
                                        40,
                                        ARRPC_DEFAULT_MAX_DEPTH,
                                        1000,
                                        ARRPC_MAX_DEPTH_LIMIT};

/* Arrays, maps (nesting in the value, then in the key) and an empty container as the innermost
 * level: exactly `limit` levels decode, one more is ARRPC_ETOODEEP. */
static void test_depth_at_the_limit_and_one_over(void **state)
{
    (void)state;
    static const shape shapes[] = {
        {"\x91", "\xc0", "", 1, 1, 0},
        {"\x81\xc0", "\xc0", "", 2, 1, 0},
        {"\x81", "\xc0", "\xc0", 1, 1, 1}, /* {{{nil: nil}: nil} ...}: deep in the keys */
        {"\x91", "\x90", "", 1, 1, 0},     /* the innermost level is an empty array */
        {"\xdc\x00\x01", "\xde\x00\x00", "", 3, 3, 0},
    };
    for (size_t l = 0; l < sizeof depth_limits / sizeof depth_limits[0]; l++) {
        unsigned limit = depth_limits[l];
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            fixture f;
            fixture_init(&f, 64 * MIB, limit);
            int leaf_is_container = shapes[s].leaf[0] != '\xc0';
            unsigned levels = leaf_is_container ? limit - 1 : limit; /* of `open` */
            size_t n;
            uint8_t *ok = nested(&shapes[s], levels, &n);
            assert_int_equal(whole(&f, ok, n, NULL), 0);
            if (limit <= MSGPACK_C_DEPTH) assert_same_as_msgpack_c(&f, ok, n);
            free(ok);
            uint8_t *deep = nested(&shapes[s], levels + 1, &n);
            assert_int_equal(whole(&f, deep, n, NULL), ARRPC_ETOODEEP);
            assert_non_null(strstr(arrpc__decoder_error(f.dec), "nesting deeper"));
            free(deep);
            fixture_free(&f);
        }
    }
}

/* Nesting goes down and comes back up: siblings after a deep branch are at their own level. */
static void test_depth_is_per_branch(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, MIB, 3);
    /* [[[1]], [[2]], {"a": [3]}]: three levels in each branch, never four */
    static const char three[] = "\x93\x91\x91\x01\x91\x91\x02\x81\xa1"
                                "a\x91\x03";
    assert_same_as_msgpack_c(&f, three, sizeof three - 1);
    static const char four[] = "\x93\x91\x91\x01\x91\x91\x02\x81\xa1"
                               "a\x91\x91\x03";
    assert_int_equal(whole(&f, four, sizeof four - 1, NULL), ARRPC_ETOODEEP);
    fixture_free(&f);
}

/* Declared lengths and counts are believed only as far as the bytes go: beyond the message
 * limit it is ARRPC_ETOOBIG at the header, beyond the bytes present a truncated message, and in
 * neither case is anything allocated for the declared elements. */
static void test_declared_counts_that_lie(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        int rc;
    } lies[] = {
        {"\xdd\xff\xff\xff\xff\x01", 6, ARRPC_ETOOBIG},     /* 4 G elements */
        {"\xdf\x80\x00\x00\x00\x01\x01", 7, ARRPC_ETOOBIG}, /* 2 G entries */
        {"\xdb\xff\xff\xff\xff"
         "abc",
         8, ARRPC_ETOOBIG},                                    /* a 4 GiB string */
        {"\xc6\x01\x00\x00\x00", 5, ARRPC_ETOOBIG},            /* a 16 MiB bin */
        {"\xc9\x7f\xff\xff\xff\x01", 6, ARRPC_ETOOBIG},        /* a 2 GiB ext */
        {"\xdd\x00\x01\x00\x00\x01\x02\x03", 8, ARRPC_EPROTO}, /* 65536 elements, 3 present */
        {"\xde\x10\x00\x01", 4, ARRPC_EPROTO},                 /* 4096 entries, 1 byte */
        {"\xda\x00\x0a"
         "abc",
         6, ARRPC_EPROTO}, /* 10 bytes declared, 3 present */
        {"\x92\x01", 2, ARRPC_EPROTO},
        {"\x93\x91\x92\x01", 4, ARRPC_EPROTO}, /* the inner count lies too */
    };
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        fixture f;
        fixture_init(&f, MIB, ARRPC_DEFAULT_MAX_DEPTH);
        assert_int_equal(whole(&f, lies[i].bytes, lies[i].len, NULL), lies[i].rc);
        assert_true(arrpc__decoder_error(f.dec)[0] != '\0');
        if (lies[i].bytes[0] != '\x93') assert_true(msgpack_zone_is_empty(&f.zone));
        fixture_free(&f);
    }
}

/* The whole message counts against max_message: a bin that makes it exactly the limit passes,
 * one byte more is ARRPC_ETOOBIG even though every byte is there. */
static void test_message_size_limit(void **state)
{
    (void)state;
    enum { LIMIT = 1000 };
    uint8_t p[LIMIT + 1] = {0xc5, (LIMIT - 3) >> 8, (LIMIT - 3) & 0xff};
    fixture f;
    fixture_init(&f, LIMIT, 1);
    assert_int_equal(whole(&f, p, LIMIT, NULL), 0);
    p[1] = (LIMIT - 2) >> 8, p[2] = (LIMIT - 2) & 0xff;
    assert_int_equal(whole(&f, p, LIMIT + 1, NULL), ARRPC_ETOOBIG);
    assert_non_null(strstr(arrpc__decoder_error(f.dec), "1000-byte message limit"));
    /* an array of LIMIT - 1 nils is exactly the limit; the nil after it goes over */
    uint8_t nils[LIMIT + 2];
    memset(nils, 0xc0, sizeof nils);
    nils[0] = 0xdc, nils[1] = (LIMIT - 3) >> 8, nils[2] = (LIMIT - 3) & 0xff;
    assert_int_equal(whole(&f, nils, LIMIT, NULL), 0);
    size_t used = 0;
    msgpack_object obj;
    assert_int_equal(arrpc__decode_next(f.dec, nils, LIMIT + 2, &f.zone, &obj, &used), 1);
    assert_int_equal(used, LIMIT);
    nils[1] = (LIMIT - 2) >> 8, nils[2] = (LIMIT - 2) & 0xff;
    assert_int_equal(whole(&f, nils, LIMIT + 1, NULL), ARRPC_ETOOBIG);
    fixture_free(&f);
}

static void test_byte_c1_is_refused_anywhere(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, MIB, ARRPC_DEFAULT_MAX_DEPTH);
    assert_int_equal(whole(&f, "\xc1", 1, NULL), ARRPC_EPROTO);
    assert_string_equal(arrpc__decoder_error(f.dec), "byte 0xc1 starts no MessagePack value");
    assert_int_equal(whole(&f, "\x92\x01\xc1", 3, NULL), ARRPC_EPROTO);
    assert_int_equal(whole(&f, "\x81\xc1\x01", 3, NULL), ARRPC_EPROTO);
    fixture_free(&f);
}

/* An array as large as the bytes allow: every element is there, in order. */
static void test_large_array_and_map(void **state)
{
    (void)state;
    enum { COUNT = 70000 }; /* over 65535: the 32-bit forms */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_array(&pk, COUNT);
    for (int i = 0; i < COUNT; i++)
        msgpack_pack_int(&pk, i - COUNT / 2);
    msgpack_pack_map(&pk, COUNT);
    for (int i = 0; i < COUNT; i++)
        msgpack_pack_int(&pk, i), msgpack_pack_str_with_body(&pk, "v", 1);
    fixture f;
    fixture_init(&f, 16 * MIB, ARRPC_DEFAULT_MAX_DEPTH);
    assert_same_as_msgpack_c(&f, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    fixture_free(&f);
}

/* One decoder for many messages: the stack and error of one never leak into the next. */
static void test_decoder_is_reusable(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, MIB, 4);
    assert_int_equal(whole(&f, "\x91\x91\x91\x91\x91\xc0", 6, NULL), ARRPC_ETOODEEP);
    assert_int_equal(whole(&f, "\x92\x91\x91\x91\x01\x02", 6, NULL), 0);
    assert_string_equal(arrpc__decoder_error(f.dec), "");
    assert_same_as_msgpack_c(&f, "\x92\x91\x91\x91\x01\x02", 6);
    fixture_free(&f);
}

static void test_invalid_limits(void **state)
{
    (void)state;
    assert_null(arrpc__decoder_new(0, 1));
    assert_null(arrpc__decoder_new(1, 0));
    assert_null(arrpc__decoder_new(1, ARRPC_MAX_DEPTH_LIMIT + 1));
    arrpc__decoder *d = arrpc__decoder_new(1, ARRPC_MAX_DEPTH_LIMIT);
    assert_non_null(d);
    arrpc__decoder_free(d);
    arrpc__decoder_free(NULL);
}

int main(void)
{
    enum { nencodings = sizeof encodings / sizeof encodings[0] };
    struct CMUnitTest tests[nencodings + 8] = {
        [nencodings] = cmocka_unit_test(test_depth_at_the_limit_and_one_over),
        cmocka_unit_test(test_depth_is_per_branch),
        cmocka_unit_test(test_declared_counts_that_lie),
        cmocka_unit_test(test_message_size_limit),
        cmocka_unit_test(test_byte_c1_is_refused_anywhere),
        cmocka_unit_test(test_large_array_and_map),
        cmocka_unit_test(test_decoder_is_reusable),
        cmocka_unit_test(test_invalid_limits),
    };
    for (size_t i = 0; i < nencodings; i++)
        tests[i] = (struct CMUnitTest){.name = encodings[i].name,
                                       .test_func = test_encoding,
                                       .initial_state = (void *)&encodings[i]};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
