/* decode.c -- MessagePack to msgpack_object in one pass that enforces the limits (see decode.h). */
#include "decode.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arrpc.h"

#define DECODE_ERROR_MAX 120

/* A map's entries are decoded as one run of 2 * size objects, key then value: that holds only if
 * msgpack_object_kv is exactly two objects with nothing between them. */
_Static_assert(sizeof(msgpack_object_kv) == 2 * sizeof(msgpack_object), "kv is two objects");
_Static_assert(offsetof(msgpack_object_kv, val) == sizeof(msgpack_object), "val follows key");

/* One open array or map: where its next element goes and how many are still due. */
typedef struct {
    msgpack_object *next;
    uint64_t left;
} decode_level;

struct arrpc__decoder {
    size_t max_message;
    unsigned max_depth;
    char error[DECODE_ERROR_MAX];
    decode_level stack[]; /* max_depth of them */
};

/* What decode_value did, besides 0 (the bytes end inside the value) and negative errors. */
enum { VALUE_DONE = 1, VALUE_OPENED = 2 };

/* The kinds of value a type byte from 0xc0 to 0xdf starts, the size of its header (type byte,
 * then any length or ext type) and the fixed size of a number's or a fixext's payload. Headers
 * and payloads are told apart as core/scan.c tells them, so that both refuse the same bytes with
 * the same error. */
typedef enum {
    K_INVALID,
    K_NIL,
    K_FALSE,
    K_TRUE,
    K_BIN,
    K_EXT,
    K_FIXEXT,
    K_FLOAT32,
    K_FLOAT64,
    K_UINT,
    K_INT,
    K_STR,
    K_ARRAY,
    K_MAP,
} kind;

typedef struct {
    uint8_t kind;
    uint8_t header_size;
    uint8_t payload; /* numbers and fixext; 0 for the rest */
} type_info;

/* clang-format off */
static const type_info types_c0[32] = {
    {K_NIL, 1, 0},     {K_INVALID, 1, 0}, {K_FALSE, 1, 0},   {K_TRUE, 1, 0},    /* 0xc0-0xc3 */
    {K_BIN, 2, 0},     {K_BIN, 3, 0},     {K_BIN, 5, 0},                        /* bin8/16/32 */
    {K_EXT, 3, 0},     {K_EXT, 4, 0},     {K_EXT, 6, 0},     /* ext8/16/32: length, type */
    {K_FLOAT32, 1, 4}, {K_FLOAT64, 1, 8},
    {K_UINT, 1, 1},    {K_UINT, 1, 2},    {K_UINT, 1, 4},    {K_UINT, 1, 8},    /* uint8..64 */
    {K_INT, 1, 1},     {K_INT, 1, 2},     {K_INT, 1, 4},     {K_INT, 1, 8},     /* int8..64 */
    {K_FIXEXT, 2, 1},  {K_FIXEXT, 2, 2},  {K_FIXEXT, 2, 4},  {K_FIXEXT, 2, 8},  /* fixext1..8 */
    {K_FIXEXT, 2, 16},                                                          /* fixext16 */
    {K_STR, 2, 0},     {K_STR, 3, 0},     {K_STR, 5, 0},                        /* str8/16/32 */
    {K_ARRAY, 3, 0},   {K_ARRAY, 5, 0},   {K_MAP, 3, 0},     {K_MAP, 5, 0},
};
/* clang-format on */

/* The big-endian unsigned number of width 1, 2, 4 or 8 at p. */
static uint64_t read_be(const uint8_t *p, unsigned width)
{
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
    switch (width) {
    case 1:
        return p[0];
    case 2:
        memcpy(&v16, p, 2);
        return __builtin_bswap16(v16);
    case 4:
        memcpy(&v32, p, 4);
        return __builtin_bswap32(v32);
    default:
        memcpy(&v64, p, 8);
        return __builtin_bswap64(v64);
    }
}

arrpc__decoder *arrpc__decoder_new(size_t max_message, unsigned max_depth)
{
    if (max_message == 0 || max_depth == 0 || max_depth > ARRPC_MAX_DEPTH_LIMIT) return NULL;
    arrpc__decoder *d = malloc(sizeof *d + max_depth * sizeof d->stack[0]);
    if (!d) return NULL;
    d->max_message = max_message;
    d->max_depth = max_depth;
    d->error[0] = '\0';
    return d;
}

void arrpc__decoder_free(arrpc__decoder *d)
{
    free(d);
}

const char *arrpc__decoder_error(const arrpc__decoder *d)
{
    return d->error;
}

/* Records why a message is refused. fmt names the offending number, then the size limit. */
static int too_big(arrpc__decoder *d, const char *fmt, uint64_t what)
{
    snprintf(d->error, sizeof d->error, fmt, (unsigned long long)what,
             (unsigned long long)d->max_message);
    return ARRPC_ETOOBIG;
}

/* Whether the h-byte header at offset `at` of an n-byte buffer is all there: 1, 0 when the
 * buffer ends first, ARRPC_ETOOBIG when the part of it present already passes the limit. */
static int header_fits(arrpc__decoder *d, size_t at, size_t h, size_t n)
{
    size_t seen = at + h < n ? at + h : n;
    if (seen > d->max_message)
        return too_big(d, "message of %llu bytes so far exceeds the %llu-byte limit", seen);
    return at + h <= n;
}

/* Whether `count` bytes (or elements of at least a byte each) declared by a header that ended
 * at `at` fit: 1, 0 when the buffer ends first, ARRPC_ETOOBIG when the message limit would. */
static int fits(arrpc__decoder *d, size_t at, uint64_t count, size_t n, const char *fmt)
{
    if (count > d->max_message - at) return too_big(d, fmt, count);
    return count <= n - at;
}

/* str, bin or ext: a length-prefixed run of bytes, referenced where it lies. */
static int decode_bytes(arrpc__decoder *d, const uint8_t *p, size_t n, size_t *pos, uint64_t len,
                        msgpack_object_type type, int8_t ext_type, msgpack_object *o)
{
    int rc = fits(d, *pos, len, n, "declared length %llu exceeds the %llu-byte message limit");
    if (rc <= 0) return rc;
    const char *at = (const char *)p + *pos;
    *pos += len;
    o->type = type;
    if (type == MSGPACK_OBJECT_EXT) {
        o->via.ext = (msgpack_object_ext){.type = ext_type, .size = (uint32_t)len, .ptr = at};
    } else { /* str and bin have the same layout */
        o->via.str.size = (uint32_t)len;
        o->via.str.ptr = at;
    }
    return VALUE_DONE;
}

/* An array or map of `count` entries whose header ended at *pos. Checks the count and the depth,
 * then allocates the elements, so nothing is reserved that the bytes left could not fill. */
static int open_container(arrpc__decoder *d, size_t n, size_t pos, unsigned depth,
                          msgpack_zone *zone, msgpack_object_type type, uint64_t count,
                          msgpack_object *o)
{
    uint64_t objects = type == MSGPACK_OBJECT_MAP ? 2 * count : count; /* at most 2^33 */
    int rc = fits(d, pos, objects, n, "declared %llu elements exceed the %llu-byte message limit");
    if (rc < 0) return rc;
    if (depth == d->max_depth) { /* an empty container counts too, as msgpack-c counts */
        snprintf(d->error, sizeof d->error, "nesting deeper than the limit of %u", d->max_depth);
        return ARRPC_ETOODEEP;
    }
    if (rc == 0) return 0;
    msgpack_object *first = NULL;
    if (count > 0 && !(first = msgpack_zone_malloc(zone, objects * sizeof *first))) {
        snprintf(d->error, sizeof d->error, "out of memory for %llu elements",
                 (unsigned long long)objects);
        return ARRPC_ENOMEM;
    }
    o->type = type;
    if (type == MSGPACK_OBJECT_MAP)
        o->via.map = (msgpack_object_map){(uint32_t)count, (msgpack_object_kv *)(void *)first};
    else
        o->via.array = (msgpack_object_array){(uint32_t)count, first};
    if (count == 0) return VALUE_DONE;
    d->stack[depth] = (decode_level){first, objects};
    return VALUE_OPENED;
}

/* An integer of the signedness msgpack-c gives it: negative values only are NEGATIVE_INTEGER. */
static void set_int(msgpack_object *o, int64_t v)
{
    o->type = v < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER : MSGPACK_OBJECT_POSITIVE_INTEGER;
    o->via.i64 = v; /* for a positive one, the same bits as via.u64 */
}

static double float_of(uint64_t bits, int is32)
{
    if (is32) {
        uint32_t b = (uint32_t)bits;
        float f;
        memcpy(&f, &b, sizeof f);
        return f;
    }
    double x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* A number or fixext: a payload of a size the type byte fixes. */
static int decode_fixed(arrpc__decoder *d, const uint8_t *p, size_t n, size_t *pos,
                        const type_info *t, msgpack_object *o)
{
    const uint8_t *h = p + *pos - t->header_size;
    if (t->kind == K_FIXEXT)
        return decode_bytes(d, p, n, pos, t->payload, MSGPACK_OBJECT_EXT, (int8_t)h[1], o);
    int rc =
        fits(d, *pos, t->payload, n, "declared length %llu exceeds the %llu-byte message limit");
    if (rc <= 0) return rc;
    uint64_t v = read_be(p + *pos, t->payload);
    *pos += t->payload;
    if (t->kind == K_UINT) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = v;
    } else if (t->kind == K_INT) { /* sign-extend from the width's top bit */
        unsigned shift = 64u - 8u * t->payload;
        set_int(o, (int64_t)(v << shift) >> shift);
    } else {
        o->type = t->kind == K_FLOAT32 ? MSGPACK_OBJECT_FLOAT32 : MSGPACK_OBJECT_FLOAT64;
        o->via.f64 = float_of(v, t->kind == K_FLOAT32);
    }
    return VALUE_DONE;
}

/* A value whose type byte is 0xc0..0xdf and whose whole header ends at *pos. */
static int decode_typed(arrpc__decoder *d, const uint8_t *p, size_t n, size_t *pos, unsigned depth,
                        msgpack_zone *zone, const type_info *t, msgpack_object *o)
{
    const uint8_t *h = p + *pos - t->header_size;
    unsigned width = t->header_size - 1u; /* of the length or count */
    if (t->payload) return decode_fixed(d, p, n, pos, t, o);
    switch ((kind)t->kind) {
    case K_NIL:
        o->type = MSGPACK_OBJECT_NIL;
        return VALUE_DONE;
    case K_FALSE:
    case K_TRUE:
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = t->kind == K_TRUE;
        return VALUE_DONE;
    case K_STR:
    case K_BIN:
        return decode_bytes(d, p, n, pos, read_be(h + 1, width),
                            t->kind == K_STR ? MSGPACK_OBJECT_STR : MSGPACK_OBJECT_BIN, 0, o);
    case K_EXT: /* the length, then the ext type */
        return decode_bytes(d, p, n, pos, read_be(h + 1, width - 1u), MSGPACK_OBJECT_EXT,
                            (int8_t)h[width], o);
    case K_ARRAY:
    case K_MAP:
        return open_container(d, n, *pos, depth, zone,
                              t->kind == K_MAP ? MSGPACK_OBJECT_MAP : MSGPACK_OBJECT_ARRAY,
                              read_be(h + 1, width), o);
    default: /* K_INVALID; the numbers and fixext went to decode_fixed */
        break;
    }
    snprintf(d->error, sizeof d->error, "byte 0x%02x starts no MessagePack value", h[0]);
    return ARRPC_EPROTO;
}

/* Decodes the value at *pos into o and moves *pos past what it read. The fix- forms, the most
 * common in requests, are tested first; the rest go through the table. */
static int decode_value(arrpc__decoder *d, const uint8_t *p, size_t n, size_t *pos, unsigned depth,
                        msgpack_zone *zone, msgpack_object *o)
{
    int rc = header_fits(d, *pos, 1, n);
    if (rc <= 0) return rc;
    uint8_t b = p[*pos];
    if (b <= 0x7f || b >= 0xe0) {
        (*pos)++;
        set_int(o, (int8_t)b);
        return VALUE_DONE;
    }
    const type_info *t = b >= 0xc0 ? &types_c0[b - 0xc0] : NULL;
    if (t && (rc = header_fits(d, *pos, t->header_size, n)) <= 0) return rc;
    *pos += t ? t->header_size : 1u;
    if (t) return decode_typed(d, p, n, pos, depth, zone, t, o);
    if (b >= 0xa0) return decode_bytes(d, p, n, pos, b & 0x1fu, MSGPACK_OBJECT_STR, 0, o);
    return open_container(d, n, *pos, depth, zone,
                          b <= 0x8f ? MSGPACK_OBJECT_MAP : MSGPACK_OBJECT_ARRAY, b & 0x0fu, o);
}

int arrpc__decode_next(arrpc__decoder *d, const uint8_t *p, size_t n, msgpack_zone *zone,
                       msgpack_object *obj, size_t *used)
{
    size_t pos = 0;
    unsigned depth = 0; /* containers open; d->stack[0, depth) */
    msgpack_object *slot = obj;
    d->error[0] = '\0';
    for (;;) {
        int rc = decode_value(d, p, n, &pos, depth, zone, slot);
        if (rc <= 0) return rc;
        if (rc == VALUE_OPENED) {
            slot = d->stack[depth++].next;
            continue;
        }
        while (depth > 0 && --d->stack[depth - 1].left == 0) /* the value closes these */
            depth--;
        if (depth == 0) break;
        slot = ++d->stack[depth - 1].next;
    }
    *used = pos;
    return 1;
}

int arrpc__decode_whole(arrpc__decoder *d, const uint8_t *p, size_t n, msgpack_zone *zone,
                        msgpack_object *obj)
{
    size_t used = 0;
    int rc = arrpc__decode_next(d, p, n, zone, obj, &used);
    if (rc == 1 && used == n) return 0;
    if (rc >= 0) {
        snprintf(d->error, sizeof d->error, "%s",
                 rc == 0 ? "truncated message" : "bytes after the end of the message");
        rc = ARRPC_EPROTO;
    }
    return rc;
}
