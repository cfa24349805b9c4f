/* fuzz_json.c -- the JSON <-> MessagePack conversion of arrpc-call (tools/json_msgpack.c).
 *
 * Input: JSON text (what a user types), or, after a first byte 0x00, MessagePack bytes (what a
 * server answers). Invariants:
 *  - JSON that arrpc_json_loadb parses converts to exactly one whole MessagePack value, or fails
 *    only because of a malformed tagged object ({"$bin": ...}, {"$ext": ...}, {"$map": ...},
 *    {"$u64": ...}; integer literals above INT64_MAX arrive as the last);
 *  - that value converts back to JSON, equal to the input when the input has no tagged object,
 *    and that JSON converts to the same bytes again (and back to an equal value): after one
 *    round trip, the conversions are fixed points;
 *  - MessagePack that the scanner accepts converts to JSON unless a str is not UTF-8, and that
 *    JSON reaches the same fixed point;
 *  - JSON that came from MessagePack prints (arrpc_json_dumps: shortest reals, "$u64" as plain
 *    integers) as text that arrpc_json_loadb reads back to an equal value (unless an object
 *    key holds NUL, which jansson cannot read).
 * msgpack-c only ever sees bytes the scanner accepted. */
#include <stdlib.h>
#include <string.h>

#include "arrpc.h"
#include "core/scan.h"
#include "fuzz.h"
#include "json_msgpack.h"

#define MAX_MESSAGE (1u << 20)

static arrpc__scan *scan;

/* json -> MessagePack in sb (initialised here); 0 or -1. */
static int to_msgpack(json_t *j, msgpack_sbuffer *sb)
{
    char err[256] = "";
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int rc = arrpc_json_to_msgpack(j, &pk, err, sizeof err);
    FUZZ_CHECK(rc == 0 || (rc == -1 && err[0] != '\0'));
    if (rc == 0) FUZZ_CHECK(arrpc__scan_whole(scan, (const uint8_t *)sb->data, sb->size) == 0);
    return rc;
}

/* MessagePack bytes the scanner accepted -> a new JSON value, or NULL. */
static json_t *from_msgpack(const char *p, size_t n)
{
    char err[256] = "";
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    FUZZ_CHECK(msgpack_unpack_next(&u, p, n, NULL) == MSGPACK_UNPACK_SUCCESS);
    json_t *j = arrpc_json_from_msgpack(&u.data, err, sizeof err);
    FUZZ_CHECK(j != NULL || err[0] != '\0');
    msgpack_unpacked_destroy(&u);
    return j;
}

/* json_equal, except that object keys may hold NUL: jansson 2.14's json_equal looks keys up by
 * strlen and calls {"\u0000a": 1} unequal to itself. */
static int same_json(json_t *a, json_t *b)
{
    if (json_is_object(a) && json_is_object(b)) {
        if (json_object_size(a) != json_object_size(b)) return 0;
        for (void *it = json_object_iter(a); it; it = json_object_iter_next(a, it)) {
            json_t *other =
                json_object_getn(b, json_object_iter_key(it), json_object_iter_key_len(it));
            if (!other || !same_json(json_object_iter_value(it), other)) return 0;
        }
        return 1;
    }
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_json(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    }
    return json_equal(a, b);
}

/* True when some object in j has exactly one key and it is a tag. */
static int has_tag(json_t *j)
{
    const char *key;
    size_t i;
    json_t *v;
    if (json_is_object(j)) {
        if (json_object_size(j) == 1) {
            key = json_object_iter_key(json_object_iter(j));
            if (!strcmp(key, ARRPC_JSON_TAG_BIN) || !strcmp(key, ARRPC_JSON_TAG_EXT) ||
                !strcmp(key, ARRPC_JSON_TAG_MAP) || !strcmp(key, ARRPC_JSON_TAG_U64))
                return 1;
        }
        json_object_foreach(j, key, v)
        {
            if (has_tag(v)) return 1;
        }
    }
    if (json_is_array(j)) {
        json_array_foreach(j, i, v)
        {
            if (has_tag(v)) return 1;
        }
    }
    return 0;
}

/* Nesting of arrays and objects, never less than that of the MessagePack made from j. */
static unsigned json_depth(json_t *j)
{
    unsigned deepest = 0, d;
    const char *key;
    size_t i;
    json_t *v;
    if (json_is_object(j)) {
        json_object_foreach(j, key, v)
        {
            if ((d = json_depth(v)) > deepest) deepest = d;
        }
        return deepest + 1;
    }
    if (json_is_array(j)) {
        json_array_foreach(j, i, v)
        {
            if ((d = json_depth(v)) > deepest) deepest = d;
        }
        return deepest + 1;
    }
    return 0;
}

/* j came from MessagePack: its printed text must read back to an equal value, except that
 * jansson 2.14 prints an object key holding NUL (as \u0000) but refuses it when reading. */
static void check_printed(json_t *j)
{
    json_error_t jerr;
    char *text = arrpc_json_dumps(j);
    FUZZ_CHECK(text != NULL);
    json_t *back = arrpc_json_loadb(text, strlen(text), JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (back)
        FUZZ_CHECK(same_json(back, j));
    else
        FUZZ_CHECK(strstr(jerr.text, "NUL byte in object key") != NULL);
    json_decref(back);
    free(text);
}

/* j came from MessagePack: converting it again and back must change nothing. */
static void check_fixed_point(json_t *j, const msgpack_sbuffer *packed)
{
    check_printed(j);
    msgpack_sbuffer again;
    FUZZ_CHECK(to_msgpack(j, &again) == 0);
    if (packed)
        FUZZ_CHECK(again.size == packed->size && !memcmp(again.data, packed->data, again.size));
    json_t *back = from_msgpack(again.data, again.size);
    FUZZ_CHECK(back != NULL && same_json(back, j));
    json_decref(back);
    msgpack_sbuffer_destroy(&again);
}

static void check_json(const char *text, size_t n)
{
    json_error_t jerr;
    json_t *j = arrpc_json_loadb(text, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!j) return;
    if (json_depth(j) > FUZZ_MSGPACK_C_DEPTH) { /* msgpack-c could not decode it back */
        json_decref(j);
        return;
    }
    msgpack_sbuffer packed;
    if (to_msgpack(j, &packed) != 0) {
        FUZZ_CHECK(has_tag(j));
    } else {
        json_t *back = from_msgpack(packed.data, packed.size);
        FUZZ_CHECK(back != NULL);
        FUZZ_CHECK(has_tag(j) || same_json(back, j));
        check_fixed_point(back, &packed);
        json_decref(back);
    }
    msgpack_sbuffer_destroy(&packed);
    json_decref(j);
}

static void check_msgpack(const uint8_t *p, size_t n)
{
    if (arrpc__scan_whole(scan, p, n) != 0) return;
    json_t *j = from_msgpack((const char *)p, n);
    if (!j) return; /* a str that is not UTF-8: JSON cannot hold it */
    msgpack_sbuffer packed;
    FUZZ_CHECK(to_msgpack(j, &packed) == 0);
    json_t *back = from_msgpack(packed.data, packed.size);
    FUZZ_CHECK(back != NULL && same_json(back, j));
    check_fixed_point(back, &packed);
    json_decref(back);
    msgpack_sbuffer_destroy(&packed);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!scan && !(scan = arrpc__scan_new(MAX_MESSAGE, FUZZ_MSGPACK_C_DEPTH))) abort();
    if (size > 0 && data[0] == 0x00)
        check_msgpack(data + 1, size - 1);
    else
        check_json((const char *)data, size);
    return 0;
}
