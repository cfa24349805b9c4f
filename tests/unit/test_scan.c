/* test_scan.c -- the resumable validator and framer: every type, every split point, every limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "arrpc.h"
#include "core/scan.h"

#define MIB (1024u * 1024u)
#define BIG 70000u /* more than 65535: forces the 32-bit length and count forms */

/* ---- helpers ------------------------------------------------------------------------------ */

typedef struct {
    uint8_t *p;
    size_t n;
} bytes;

static bytes from_sbuffer(msgpack_sbuffer *sb)
{
    bytes b = {(uint8_t *)sb->data, sb->size};
    sb->data = NULL; /* the test now owns the memory */
    msgpack_sbuffer_destroy(sb);
    return b;
}

static bytes copy_of(const void *p, size_t n)
{
    bytes b = {malloc(n ? n : 1), n};
    assert_non_null(b.p);
    memcpy(b.p, p, n);
    return b;
}

/* A payload of n filler bytes, packed raw after a header by the pack_* functions below. The
 * packing helpers return 0 like msgpack-c's own. */
static int pack_filler(msgpack_packer *pk, size_t n)
{
    char *fill = malloc(n ? n : 1);
    assert_non_null(fill);
    memset(fill, 'x', n);
    int rc = msgpack_pack_str_body(pk, fill, n); /* raw bytes: usable for bin and ext too */
    free(fill);
    return rc;
}

static int pack_nils(msgpack_packer *pk, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        rc |= msgpack_pack_nil(pk);
    return rc;
}

/* msgpack-c must agree that the bytes are one whole object: a check on the test data itself. */
static void assert_msgpack_c_accepts(const bytes *b)
{
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;
    assert_true(msgpack_zone_init(&zone, 2048));
    assert_int_equal(msgpack_unpack((const char *)b->p, b->n, &off, &zone, &obj),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, b->n);
    msgpack_zone_destroy(&zone);
}

/* Feeds all of b at once to a fresh default scanner and expects one whole message. */
static void assert_one_message(const bytes *b)
{
    arrpc__scan *s = arrpc__scan_new(ARRPC_DEFAULT_MAX_MESSAGE, ARRPC_DEFAULT_MAX_DEPTH);
    size_t used = 0;
    assert_non_null(s);
    assert_int_equal(arrpc__scan_feed(s, b->p, b->n, &used), 1);
    assert_int_equal(used, b->n);
    assert_int_equal(arrpc__scan_pending(s), 0);
    assert_string_equal(arrpc__scan_error(s), "");
    arrpc__scan_free(s);
}

static int feed(arrpc__scan *s, const void *p, size_t n, size_t *used)
{
    return arrpc__scan_feed(s, p, n, used);
}

/* ---- every type, hand-written bytes ------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *bytes;
    size_t len;
} raw_case;

#define RAW(name, lit)                                                                             \
    {                                                                                              \
        name, lit, sizeof lit - 1                                                                  \
    }

static const raw_case raw_cases[] = {
    RAW("nil", "\xc0"),
    RAW("false", "\xc2"),
    RAW("true", "\xc3"),
    RAW("positive fixint 0", "\x00"),
    RAW("positive fixint 127", "\x7f"),
    RAW("negative fixint -1", "\xff"),
    RAW("negative fixint -32", "\xe0"),
    RAW("uint8", "\xcc\xff"),
    RAW("uint16", "\xcd\xff\xff"),
    RAW("uint32", "\xce\xff\xff\xff\xff"),
    RAW("uint64", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff"),
    RAW("int8", "\xd0\x80"),
    RAW("int16", "\xd1\x80\x00"),
    RAW("int32", "\xd2\x80\x00\x00\x00"),
    RAW("int64", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00"),
    RAW("float32", "\xca\x3f\x80\x00\x00"),
    RAW("float64", "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00"),
    RAW("fixstr empty", "\xa0"),
    RAW("fixstr", "\xa3"
                  "abc"),
    RAW("fixstr 31", "\xbf"
                     "0123456789012345678901234567890"),
    RAW("str8", "\xd9\x03"
                "abc"),
    RAW("str8 empty", "\xd9\x00"),
    RAW("str16", "\xda\x00\x03"
                 "abc"),
    RAW("str32", "\xdb\x00\x00\x00\x03"
                 "abc"),
    RAW("bin8", "\xc4\x02\x00\xff"),
    RAW("bin8 empty", "\xc4\x00"),
    RAW("bin16", "\xc5\x00\x02\x00\xff"),
    RAW("bin32", "\xc6\x00\x00\x00\x02\x00\xff"),
    RAW("fixext1", "\xd4\x01\xaa"),
    RAW("fixext2", "\xd5\x01\xaa\xbb"),
    RAW("fixext4", "\xd6\xff\x00\x00\x00\x00"),
    RAW("fixext8", "\xd7\xff\x00\x00\x00\x00\x00\x00\x00\x00"),
    RAW("fixext16", "\xd8\x05"
                    "0123456789abcdef"),
    RAW("ext8", "\xc7\x03\x05"
                "abc"),
    RAW("ext8 empty", "\xc7\x00\x05"),
    RAW("ext16", "\xc8\x00\x03\x05"
                 "abc"),
    RAW("ext32", "\xc9\x00\x00\x00\x03\x05"
                 "abc"),
    RAW("fixarray empty", "\x90"),
    RAW("fixarray", "\x93\x01\x02\x03"),
    RAW("array16", "\xdc\x00\x02\xc0\xc3"),
    RAW("array16 empty", "\xdc\x00\x00"),
    RAW("array32", "\xdd\x00\x00\x00\x02\xc0\xc3"),
    RAW("fixmap empty", "\x80"),
    RAW("fixmap", "\x81\xa1k\xa1v"),
    RAW("map16", "\xde\x00\x01\x01\x02"),
    RAW("map32", "\xdf\x00\x00\x00\x01\x01\x02"),
    RAW("map32 empty", "\xdf\x00\x00\x00\x00"),
    RAW("nested", "\x82\xa1"
                  "a"
                  "\x92\x90\x81\xc0\x91\x80"
                  "\xa1"
                  "b"
                  "\xdc\x00\x01\xd4\x01\x02"),
    RAW("array of empties", "\x94\x90\x80\xa0\xc4\x00"),
};

static void test_every_type_hand_written(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof raw_cases / sizeof raw_cases[0]; i++) {
        bytes b = {(uint8_t *)raw_cases[i].bytes, raw_cases[i].len};
        print_message("%s\n", raw_cases[i].name);
        assert_msgpack_c_accepts(&b);
        assert_one_message(&b);
    }
}

/* ---- every type, packed by msgpack-c ------------------------------------------------------ */

static int pack_str(msgpack_packer *pk, size_t n)
{
    return msgpack_pack_str(pk, n) || pack_filler(pk, n);
}

static int pack_bin(msgpack_packer *pk, size_t n)
{
    return msgpack_pack_bin(pk, n) || pack_filler(pk, n);
}

static int pack_ext(msgpack_packer *pk, size_t n)
{
    return msgpack_pack_ext(pk, n, 7) || pack_filler(pk, n);
}

static int pack_array(msgpack_packer *pk, size_t n)
{
    return msgpack_pack_array(pk, n) || pack_nils(pk, n);
}

static int pack_map(msgpack_packer *pk, size_t n)
{
    int rc = msgpack_pack_map(pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= msgpack_pack_uint32(pk, (uint32_t)i) | msgpack_pack_true(pk);
    return rc;
}

/* {"a": [1, -1, 3.5, "x"*300, bin 70000, ext], "b": {"c": nil, "d": [[], {}, [true]]}} */
static int pack_nested(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    pack_str(pk, 1);
    msgpack_pack_array(pk, 6);
    msgpack_pack_int(pk, 1);
    msgpack_pack_int(pk, -1);
    msgpack_pack_double(pk, 3.5);
    pack_str(pk, 300);
    pack_bin(pk, BIG);
    pack_ext(pk, 5);
    pack_str(pk, 1);
    msgpack_pack_map(pk, 2);
    pack_str(pk, 1);
    msgpack_pack_nil(pk);
    pack_str(pk, 1);
    msgpack_pack_array(pk, 3);
    msgpack_pack_array(pk, 0);
    msgpack_pack_map(pk, 0);
    msgpack_pack_array(pk, 1);
    return msgpack_pack_true(pk); /* the calls before fail only without memory, as would this */
}

typedef enum {
    P_NIL,
    P_TRUE,
    P_FALSE,
    P_INT,
    P_U8,
    P_U16,
    P_U32,
    P_U64,
    P_I8,
    P_I16,
    P_I32,
    P_I64,
    P_FLOAT,
    P_DOUBLE,
    P_STR,
    P_BIN,
    P_EXT,
    P_ARRAY,
    P_MAP,
    P_NESTED,
} pack_kind;

typedef struct {
    const char *name;
    pack_kind kind;
    int64_t n;     /* the number, or the length or count; -1 is all ones for P_U64 */
    uint8_t first; /* the type byte it must produce, so each format really is covered */
} packed_case;

static const packed_case packed_cases[] = {
    {"nil", P_NIL, 0, 0xc0},
    {"true", P_TRUE, 0, 0xc3},
    {"false", P_FALSE, 0, 0xc2},
    {"positive fixint", P_INT, 100, 0x64},
    {"negative fixint", P_INT, -5, 0xfb},
    {"uint8", P_U8, 200, 0xcc},
    {"uint16", P_U16, 60000, 0xcd},
    {"uint32", P_U32, 4000000000, 0xce},
    {"uint64", P_U64, -1, 0xcf},
    {"int8", P_I8, -100, 0xd0},
    {"int16", P_I16, -30000, 0xd1},
    {"int32", P_I32, INT32_MIN, 0xd2},
    {"int64", P_I64, INT64_MIN, 0xd3},
    {"float32", P_FLOAT, 0, 0xca},
    {"float64", P_DOUBLE, 0, 0xcb},
    {"fixstr", P_STR, 31, 0xbf},
    {"str8", P_STR, 32, 0xd9},
    {"str16", P_STR, 256, 0xda},
    {"str32", P_STR, BIG, 0xdb},
    {"bin8", P_BIN, 3, 0xc4},
    {"bin16", P_BIN, 256, 0xc5},
    {"bin32", P_BIN, BIG, 0xc6},
    {"fixext1", P_EXT, 1, 0xd4},
    {"fixext2", P_EXT, 2, 0xd5},
    {"fixext4", P_EXT, 4, 0xd6},
    {"fixext8", P_EXT, 8, 0xd7},
    {"fixext16", P_EXT, 16, 0xd8},
    {"ext8", P_EXT, 3, 0xc7},
    {"ext16", P_EXT, 256, 0xc8},
    {"ext32", P_EXT, BIG, 0xc9},
    {"fixarray", P_ARRAY, 15, 0x9f},
    {"array16", P_ARRAY, 16, 0xdc},
    {"array32", P_ARRAY, BIG, 0xdd},
    {"fixmap", P_MAP, 15, 0x8f},
    {"map16", P_MAP, 16, 0xde},
    {"map32", P_MAP, BIG, 0xdf},
    {"nested", P_NESTED, 0, 0x82},
};

#define N_PACKED (sizeof packed_cases / sizeof packed_cases[0])

/* Packs one case; 0 on success, as msgpack-c. */
static int pack_case(msgpack_packer *pk, const packed_case *c)
{
    size_t n = (size_t)c->n;
    switch (c->kind) {
    case P_NIL:
        return msgpack_pack_nil(pk);
    case P_TRUE:
        return msgpack_pack_true(pk);
    case P_FALSE:
        return msgpack_pack_false(pk);
    case P_INT:
        return msgpack_pack_int64(pk, c->n);
    case P_U8:
        return msgpack_pack_fix_uint8(pk, (uint8_t)c->n);
    case P_U16:
        return msgpack_pack_fix_uint16(pk, (uint16_t)c->n);
    case P_U32:
        return msgpack_pack_fix_uint32(pk, (uint32_t)c->n);
    case P_U64:
        return msgpack_pack_fix_uint64(pk, (uint64_t)c->n);
    case P_I8:
        return msgpack_pack_fix_int8(pk, (int8_t)c->n);
    case P_I16:
        return msgpack_pack_fix_int16(pk, (int16_t)c->n);
    case P_I32:
        return msgpack_pack_fix_int32(pk, (int32_t)c->n);
    case P_I64:
        return msgpack_pack_fix_int64(pk, c->n);
    case P_FLOAT:
        return msgpack_pack_float(pk, 1.5f);
    case P_DOUBLE:
        return msgpack_pack_double(pk, -2.25);
    case P_STR:
        return pack_str(pk, n);
    case P_BIN:
        return pack_bin(pk, n);
    case P_EXT:
        return pack_ext(pk, n);
    case P_ARRAY:
        return pack_array(pk, n);
    case P_MAP:
        return pack_map(pk, n);
    case P_NESTED:
        return pack_nested(pk);
    }
    return -1;
}

static bytes packed(const char *name)
{
    for (size_t i = 0; i < N_PACKED; i++) {
        if (strcmp(packed_cases[i].name, name) != 0) continue;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        assert_int_equal(pack_case(&pk, &packed_cases[i]), 0);
        return from_sbuffer(&sb);
    }
    fail_msg("no packed case %s", name);
    return (bytes){0};
}

static void test_every_type_packed(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_PACKED; i++) {
        bytes b = packed(packed_cases[i].name);
        print_message("%s\n", packed_cases[i].name);
        assert_int_equal(b.p[0], packed_cases[i].first);
        assert_msgpack_c_accepts(&b);
        assert_one_message(&b);
        free(b.p);
    }
}

/* ---- split points ------------------------------------------------------------------------- */

/* Messages whose headers and payloads straddle every kind of boundary. */
static bytes split_message(size_t i)
{
    static const char *const raw[] = {
        "\xcf\x01\x02\x03\x04\x05\x06\x07\x08",
        "\xdd\x00\x00\x00\x03\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00\xc9\x00\x00\x00\x02\x05xy\x90",
        ("\x81\xdb\x00\x00\x00\x01k\xdf\x00\x00\x00\x01\xd8\x01"
         "0123456789abcdef\xc4\x00"),
    };
    static const size_t raw_len[] = {9, 23, 32};
    if (i < 3) return copy_of(raw[i], raw_len[i]);
    return packed(i == 3 ? "nested" : "map16");
}

#define N_SPLIT 5

static void test_split_byte_by_byte(void **state)
{
    (void)state;
    for (size_t m = 0; m < N_SPLIT; m++) {
        bytes b = split_message(m);
        arrpc__scan *s = arrpc__scan_new(ARRPC_DEFAULT_MAX_MESSAGE, ARRPC_DEFAULT_MAX_DEPTH);
        assert_non_null(s);
        for (size_t i = 0; i < b.n; i++) {
            size_t used = 99;
            int rc = feed(s, b.p + i, 1, &used);
            assert_int_equal(rc, i + 1 == b.n ? 1 : 0);
            assert_int_equal(used, 1);
            assert_int_equal(arrpc__scan_pending(s), i + 1 == b.n ? 0 : i + 1);
        }
        arrpc__scan_free(s);
        free(b.p);
    }
}

static void test_split_in_two_at_every_offset(void **state)
{
    (void)state;
    arrpc__scan *s = arrpc__scan_new(ARRPC_DEFAULT_MAX_MESSAGE, ARRPC_DEFAULT_MAX_DEPTH);
    assert_non_null(s);
    for (size_t m = 0; m < N_SPLIT; m++) {
        bytes b = split_message(m);
        for (size_t cut = 1; cut < b.n; cut++) {
            size_t used = 0;
            assert_int_equal(feed(s, b.p, cut, &used), 0);
            assert_int_equal(used, cut);
            assert_int_equal(arrpc__scan_pending(s), cut);
            assert_int_equal(feed(s, b.p + cut, b.n - cut, &used), 1);
            assert_int_equal(used, b.n - cut);
            assert_int_equal(arrpc__scan_pending(s), 0);
        }
        free(b.p);
    }
    arrpc__scan_free(s);
}

/* Every proper prefix of a message is a truncated message, never a whole one. */
static void test_every_prefix_is_truncated(void **state)
{
    (void)state;
    arrpc__scan *s = arrpc__scan_new(ARRPC_DEFAULT_MAX_MESSAGE, ARRPC_DEFAULT_MAX_DEPTH);
    assert_non_null(s);
    for (size_t m = 0; m < 3; m++) {
        bytes b = split_message(m);
        for (size_t cut = 0; cut < b.n; cut++)
            assert_int_equal(arrpc__scan_whole(s, b.p, cut), ARRPC_EPROTO);
        assert_int_equal(arrpc__scan_whole(s, b.p, b.n), 0);
        free(b.p);
    }
    arrpc__scan_free(s);
}

static void test_feeding_nothing_changes_nothing(void **state)
{
    (void)state;
    arrpc__scan *s = arrpc__scan_new(64, 4);
    size_t used = 99;
    assert_non_null(s);
    assert_int_equal(feed(s, "", 0, &used), 0);
    assert_int_equal(used, 0);
    assert_int_equal(feed(s, "\x92\x01", 2, &used), 0);
    assert_int_equal(feed(s, "", 0, &used), 0);
    assert_int_equal(arrpc__scan_pending(s), 2);
    assert_int_equal(feed(s, "\x02", 1, &used), 1);
    arrpc__scan_free(s);
}

/* ---- pipelining --------------------------------------------------------------------------- */

static void test_pipelined_messages_stop_at_each_end(void **state)
{
    (void)state;
    /* [1, 2], "abc", 7, {"k": nil}, then half of a str8 */
    static const uint8_t stream[] = "\x92\x01\x02"
                                    "\xa3"
                                    "abc"
                                    "\x07"
                                    "\x81\xa1k\xc0"
                                    "\xd9\x05"
                                    "ab";
    static const size_t ends[] = {3, 7, 8, 12};
    arrpc__scan *s = arrpc__scan_new(64, 4);
    size_t at = 0, used = 0;
    assert_non_null(s);
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        assert_int_equal(feed(s, stream + at, sizeof stream - 1 - at, &used), 1);
        assert_int_equal(at + used, ends[i]);
        at += used;
    }
    assert_int_equal(feed(s, stream + at, sizeof stream - 1 - at, &used), 0);
    assert_int_equal(used, 4);
    assert_int_equal(arrpc__scan_pending(s), 4);
    assert_int_equal(feed(s, "cde", 3, &used), 1);
    assert_int_equal(used, 3);
    arrpc__scan_free(s);
}

/* The limit applies per message: bytes of earlier messages do not count against the next. */
static void test_pipelined_messages_each_get_the_full_limit(void **state)
{
    (void)state;
    static const uint8_t msg[] = "\xd9\x06"
                                 "abcdef"; /* 8 bytes */
    arrpc__scan *s = arrpc__scan_new(8, 1);
    assert_non_null(s);
    for (int i = 0; i < 5; i++) {
        size_t used = 0;
        assert_int_equal(feed(s, msg, 8, &used), 1);
        assert_int_equal(used, 8);
    }
    arrpc__scan_free(s);
}

/* ---- limits: size ------------------------------------------------------------------------- */

/* A str8 of exactly total bytes (2-byte header). */
static bytes str8_of_total(size_t total)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(pack_str(&pk, total - 2), 0);
    bytes b = from_sbuffer(&sb);
    assert_int_equal(b.p[0], 0xd9);
    assert_int_equal(b.n, total);
    return b;
}

static void test_message_of_exactly_max_bytes_passes(void **state)
{
    (void)state;
    bytes b = str8_of_total(100);
    arrpc__scan *s = arrpc__scan_new(100, 4);
    size_t used = 0;
    assert_non_null(s);
    assert_int_equal(feed(s, b.p, b.n, &used), 1);
    assert_int_equal(used, 100);
    assert_int_equal(arrpc__scan_whole(s, b.p, b.n), 0);
    arrpc__scan_free(s);
    free(b.p);
}

static void test_message_one_byte_over_max_fails(void **state)
{
    (void)state;
    bytes b = str8_of_total(101);
    arrpc__scan *s = arrpc__scan_new(100, 4);
    size_t used = 0;
    assert_non_null(s);
    assert_int_equal(feed(s, b.p, b.n, &used), ARRPC_ETOOBIG);
    assert_true(used <= 2); /* refused from the header alone */
    assert_int_equal(arrpc__scan_whole(s, b.p, b.n), ARRPC_ETOOBIG);
    arrpc__scan_free(s);
    free(b.p);
}

/* Array of n nils: the limit is reached by the elements, each of one byte. */
static void test_array_at_and_over_max(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(pack_array(&pk, 100), 0); /* dc 00 64 + 100 nils = 103 bytes */
    bytes b = from_sbuffer(&sb);
    assert_int_equal(b.n, 103);
    arrpc__scan *fits = arrpc__scan_new(103, 2), *over = arrpc__scan_new(102, 2);
    assert_non_null(fits);
    assert_non_null(over);
    assert_int_equal(arrpc__scan_whole(fits, b.p, b.n), 0);
    assert_int_equal(arrpc__scan_whole(over, b.p, b.n), ARRPC_ETOOBIG);
    arrpc__scan_free(fits);
    arrpc__scan_free(over);
    free(b.p);
}

/* Each element is small and declared honestly, but together they pass the limit. */
static void test_elements_adding_up_over_max_fail(void **state)
{
    (void)state;
    static const uint8_t msg[] = "\x95"
                                 "\xa3xxx\xa3xxx\xa3xxx\xa3xxx\xa3xxx"; /* 21 bytes */
    arrpc__scan *s = arrpc__scan_new(20, 2);
    size_t used = 0;
    assert_non_null(s);
    assert_int_equal(feed(s, msg, sizeof msg - 1, &used), ARRPC_ETOOBIG);
    assert_true(used <= 18);
    arrpc__scan_reset(s);
    for (size_t i = 0; i < sizeof msg - 1; i++) { /* the same, a byte at a time */
        int rc = feed(s, msg + i, 1, &used);
        if (rc != 0) {
            assert_int_equal(rc, ARRPC_ETOOBIG);
            break;
        }
        assert_true(i + 1 < sizeof msg - 1);
    }
    arrpc__scan_free(s);
}

/* A header of several bytes that itself runs past the limit fails, whatever it declares. */
static void test_header_crossing_the_limit_fails(void **state)
{
    (void)state;
    static const raw_case cases[] = {
        RAW("array16 header at bytes 2-4 of 3", "\x91\xdc\x00\x01\xc0"),
        RAW("str8 header at bytes 2-3 of 2", "\x91\xd9\x00"),
        RAW("uint64 payload past the end", "\x91\xcf\x00\x00\x00\x00\x00\x00\x00\x00"),
    };
    static const size_t max[] = {3, 2, 3};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        arrpc__scan *s = arrpc__scan_new(max[i], 4);
        size_t used = 0;
        print_message("%s\n", cases[i].name);
        assert_non_null(s);
        assert_int_equal(arrpc__scan_whole(s, (const uint8_t *)cases[i].bytes, cases[i].len),
                         ARRPC_ETOOBIG);
        for (size_t j = 0; j < cases[i].len; j++) { /* and a byte at a time */
            int rc = feed(s, cases[i].bytes + j, 1, &used);
            assert_true(rc == 0 || rc == ARRPC_ETOOBIG);
            if (rc != 0) break;
            assert_true(j + 1 < cases[i].len);
        }
        arrpc__scan_free(s);
    }
}

/* A header alone declares more than the message may hold: refused before any payload. */
typedef struct {
    const char *name;
    const char *header;
    size_t len;
} header_case;

static const header_case huge_headers[] = {
    RAW("array32 4G", "\xdd\xff\xff\xff\xff"),
    RAW("str32 4G", "\xdb\xff\xff\xff\xff"),
    RAW("bin32 4G", "\xc6\xff\xff\xff\xff"),
    RAW("ext32 4G", "\xc9\xff\xff\xff\xff\x01"),
    RAW("map32 4G", "\xdf\xff\xff\xff\xff"),
    RAW("array32 16M", "\xdd\x01\x00\x00\x00"),
    RAW("str32 16M", "\xdb\x01\x00\x00\x00"),
    RAW("map32 8M entries = 16M elements", "\xdf\x00\x80\x00\x00"),
    RAW("array in array", "\x91\xdd\x00\xff\xff\xff"),
    RAW("str after 2 bytes", "\x92\xc0\xdb\x00\xff\xff\xfe"),
};

static void test_huge_declared_sizes_fail_from_the_header(void **state)
{
    (void)state;
    arrpc__scan *s = arrpc__scan_new(16 * MIB, ARRPC_DEFAULT_MAX_DEPTH);
    assert_non_null(s);
    for (size_t i = 0; i < sizeof huge_headers / sizeof huge_headers[0]; i++) {
        const header_case *c = &huge_headers[i];
        size_t used = 0;
        print_message("%s\n", c->name);
        arrpc__scan_reset(s);
        assert_int_equal(feed(s, c->header, c->len, &used), ARRPC_ETOOBIG);
        assert_int_equal(used, c->len);
        assert_non_null(strstr(arrpc__scan_error(s), "16777216"));
    }
    arrpc__scan_free(s);
}

/* The largest declarations that still fit the remaining bytes are accepted (and pending). */
static void test_declared_sizes_just_within_room_wait(void **state)
{
    (void)state;
    /* max 16 MiB: an array32 header takes 5 bytes, so 16 MiB - 5 one-byte elements fit */
    static const uint8_t array_header[] = "\xdd\x00\xff\xff\xfb";
    static const uint8_t map_header[] = "\xdf\x00\x7f\xff\xfd"; /* 2 x 8388605 = 16 MiB - 6 */
    arrpc__scan *s = arrpc__scan_new(16 * MIB, 4);
    size_t used = 0;
    assert_non_null(s);
    assert_int_equal(feed(s, array_header, 5, &used), 0);
    arrpc__scan_reset(s);
    assert_int_equal(feed(s, map_header, 5, &used), 0);
    arrpc__scan_free(s);
}

/* ---- limits: depth ------------------------------------------------------------------------ */

/* depth nested one-element containers around a nil; maps when use_map. */
static bytes nested(unsigned depth, int use_map)
{
    bytes b = {malloc(2u * depth + 1), 0};
    assert_non_null(b.p);
    for (unsigned i = 0; i < depth; i++) {
        if (use_map) {
            b.p[b.n++] = 0x81;
            b.p[b.n++] = 0x00; /* key 0; the value is the next level */
        } else {
            b.p[b.n++] = 0x91;
        }
    }
    b.p[b.n++] = 0xc0;
    return b;
}

static void assert_depth_boundary(unsigned max_depth, int use_map)
{
    arrpc__scan *s = arrpc__scan_new(MIB, max_depth);
    bytes ok = nested(max_depth, use_map), deep = nested(max_depth + 1, use_map);
    size_t used = 0;
    assert_non_null(s);
    assert_int_equal(feed(s, ok.p, ok.n, &used), 1);
    assert_int_equal(used, ok.n);
    assert_int_equal(feed(s, deep.p, deep.n, &used), ARRPC_ETOODEEP);
    assert_non_null(strstr(arrpc__scan_error(s), "nesting"));
    arrpc__scan_reset(s);
    assert_int_equal(arrpc__scan_whole(s, deep.p, deep.n), ARRPC_ETOODEEP);
    arrpc__scan_free(s);
    free(ok.p);
    free(deep.p);
}

static void test_depth_exactly_max_passes_one_more_fails(void **state)
{
    (void)state;
    static const unsigned depths[] = {1, 2, 3, 32, ARRPC_DEFAULT_MAX_DEPTH, ARRPC_MAX_DEPTH_LIMIT};
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        assert_depth_boundary(depths[i], 0);
        assert_depth_boundary(depths[i], 1);
    }
}

/* Closing containers frees their levels: siblings at max depth are fine. */
static void test_depth_counts_open_containers_only(void **state)
{
    (void)state;
    /* [[[1]], [[2]], [[3]]] at max depth 3 */
    static const uint8_t msg[] = "\x93\x91\x91\x01\x91\x91\x02\x91\x91\x03";
    arrpc__scan *s = arrpc__scan_new(64, 3);
    assert_non_null(s);
    assert_int_equal(arrpc__scan_whole(s, msg, sizeof msg - 1), 0);
    arrpc__scan_free(s);
}

static void test_new_rejects_invalid_limits(void **state)
{
    (void)state;
    assert_null(arrpc__scan_new(0, 4));
    assert_null(arrpc__scan_new(64, 0));
    assert_null(arrpc__scan_new(64, ARRPC_MAX_DEPTH_LIMIT + 1));
    arrpc__scan *s = arrpc__scan_new(1, ARRPC_MAX_DEPTH_LIMIT);
    assert_non_null(s);
    arrpc__scan_free(s);
}

/* ---- invalid bytes and error texts -------------------------------------------------------- */

static void test_c1_is_a_protocol_error(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
    } cases[] = {{"\xc1", 1}, {"\x92\x01\xc1", 3}, {"\x81\xc1", 2}, {"\x81\xa1k\xc1", 4}};
    arrpc__scan *s = arrpc__scan_new(64, 4);
    assert_non_null(s);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t used = 0;
        arrpc__scan_reset(s);
        assert_int_equal(feed(s, cases[i].bytes, cases[i].len, &used), ARRPC_EPROTO);
        assert_int_equal(used, cases[i].len);
        assert_non_null(strstr(arrpc__scan_error(s), "0xc1"));
    }
    arrpc__scan_free(s);
}

typedef struct {
    const char *name;
    const char *bytes;
    size_t len;
    int rc;
    const char *mentions;
} error_case;

static void test_error_text_names_the_reason(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"invalid byte", "\xc1", 1, ARRPC_EPROTO, "0xc1"},
        {"declared length", "\xdb\x00\x00\x01\x00", 5, ARRPC_ETOOBIG, "declared length 256"},
        {"declared elements", "\xdc\x01\x00", 3, ARRPC_ETOOBIG, "declared 256 elements"},
        {"map counts keys and values", "\xde\x00\x20", 3, ARRPC_ETOOBIG, "declared 64 elements"},
        {"too deep", "\x91\x91\x91\x91\xc0", 5, ARRPC_ETOODEEP, "limit of 3"},
        {"truncated", "\x92\x01", 2, ARRPC_EPROTO, "truncated"},
        {"trailing", "\x01\x02", 2, ARRPC_EPROTO, "after the end"},
    };
    arrpc__scan *s = arrpc__scan_new(64, 3);
    assert_non_null(s);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("%s\n", cases[i].name);
        assert_int_equal(arrpc__scan_whole(s, (const uint8_t *)cases[i].bytes, cases[i].len),
                         cases[i].rc);
        assert_true(strlen(arrpc__scan_error(s)) > 0);
        assert_non_null(strstr(arrpc__scan_error(s), cases[i].mentions));
    }
    arrpc__scan_free(s);
}

/* ---- scan_whole and reset ----------------------------------------------------------------- */

static void test_whole_exact_truncated_trailing(void **state)
{
    (void)state;
    static const uint8_t msg[] = "\x93\x01\xa2hi\xc3\xff"; /* [1, "hi", true] then -1 */
    arrpc__scan *s = arrpc__scan_new(64, 4);
    assert_non_null(s);
    assert_int_equal(arrpc__scan_whole(s, msg, 6), 0);
    assert_string_equal(arrpc__scan_error(s), "");
    assert_int_equal(arrpc__scan_whole(s, msg, 5), ARRPC_EPROTO);
    assert_int_equal(arrpc__scan_whole(s, msg, 7), ARRPC_EPROTO);
    assert_int_equal(arrpc__scan_whole(s, msg, 0), ARRPC_EPROTO);
    assert_int_equal(arrpc__scan_pending(s), 0);
    assert_int_equal(arrpc__scan_whole(s, msg + 6, 1), 0); /* nothing left over from before */
    arrpc__scan_free(s);
}

/* scan_whole forgets a partial message fed before it. */
static void test_whole_ignores_earlier_partial_feed(void **state)
{
    (void)state;
    arrpc__scan *s = arrpc__scan_new(64, 4);
    size_t used = 0;
    assert_non_null(s);
    assert_int_equal(feed(s, "\x92\x01", 2, &used), 0);
    assert_int_equal(arrpc__scan_whole(s, (const uint8_t *)"\x05", 1), 0);
    arrpc__scan_free(s);
}

static void test_reset_forgets_partial_message_and_error(void **state)
{
    (void)state;
    arrpc__scan *s = arrpc__scan_new(64, 4);
    size_t used = 0;
    assert_non_null(s);
    assert_int_equal(feed(s, "\xdc\x00", 2, &used), 0); /* half an array16 header */
    assert_int_equal(arrpc__scan_pending(s), 2);
    arrpc__scan_reset(s);
    assert_int_equal(arrpc__scan_pending(s), 0);
    assert_int_equal(feed(s, "\x91\x07", 2, &used), 1);
    assert_int_equal(used, 2);

    assert_int_equal(feed(s, "\xc1", 1, &used), ARRPC_EPROTO);
    assert_string_not_equal(arrpc__scan_error(s), "");
    arrpc__scan_reset(s);
    assert_string_equal(arrpc__scan_error(s), "");
    assert_int_equal(feed(s, "\x07", 1, &used), 1);
    arrpc__scan_free(s);
}

/* A partial payload is forgotten too: the next byte is a new type byte, not string content. */
static void test_reset_in_the_middle_of_a_payload(void **state)
{
    (void)state;
    arrpc__scan *s = arrpc__scan_new(64, 4);
    size_t used = 0;
    assert_non_null(s);
    assert_int_equal(feed(s, "\xa5xy", 3, &used), 0);
    arrpc__scan_reset(s);
    assert_int_equal(feed(s, "\xc1", 1, &used), ARRPC_EPROTO);
    arrpc__scan_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type_hand_written),
        cmocka_unit_test(test_every_type_packed),
        cmocka_unit_test(test_split_byte_by_byte),
        cmocka_unit_test(test_split_in_two_at_every_offset),
        cmocka_unit_test(test_every_prefix_is_truncated),
        cmocka_unit_test(test_feeding_nothing_changes_nothing),
        cmocka_unit_test(test_pipelined_messages_stop_at_each_end),
        cmocka_unit_test(test_pipelined_messages_each_get_the_full_limit),
        cmocka_unit_test(test_message_of_exactly_max_bytes_passes),
        cmocka_unit_test(test_message_one_byte_over_max_fails),
        cmocka_unit_test(test_array_at_and_over_max),
        cmocka_unit_test(test_elements_adding_up_over_max_fail),
        cmocka_unit_test(test_header_crossing_the_limit_fails),
        cmocka_unit_test(test_huge_declared_sizes_fail_from_the_header),
        cmocka_unit_test(test_declared_sizes_just_within_room_wait),
        cmocka_unit_test(test_depth_exactly_max_passes_one_more_fails),
        cmocka_unit_test(test_depth_counts_open_containers_only),
        cmocka_unit_test(test_new_rejects_invalid_limits),
        cmocka_unit_test(test_c1_is_a_protocol_error),
        cmocka_unit_test(test_error_text_names_the_reason),
        cmocka_unit_test(test_whole_exact_truncated_trailing),
        cmocka_unit_test(test_whole_ignores_earlier_partial_feed),
        cmocka_unit_test(test_reset_forgets_partial_message_and_error),
        cmocka_unit_test(test_reset_in_the_middle_of_a_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
