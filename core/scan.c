/* scan.c -- the resumable MessagePack validator and framer (see scan.h). */
#include "scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arrpc.h"

#define SCAN_HEADER_MAX 9 /* a type byte and an 8-byte length or value */
#define SCAN_ERROR_MAX 120

struct arrpc__scan {
    size_t max_message;
    unsigned max_depth;
    size_t offset;  /* bytes of the current message consumed so far */
    uint64_t skip;  /* payload bytes still to pass over (str, bin, ext, numbers) */
    unsigned depth; /* containers open */
    uint8_t header[SCAN_HEADER_MAX];
    uint8_t header_have; /* bytes of a header split across feeds */
    uint8_t header_need;
    char error[SCAN_ERROR_MAX];
    uint64_t left[]; /* elements still due at each open level, max_depth of them */
};

/* What a header declares once it is whole. */
typedef enum { VALUE_SCALAR, VALUE_BYTES, VALUE_ARRAY, VALUE_MAP, VALUE_INVALID } value_kind;

typedef struct {
    uint8_t header_size;   /* bytes of the header, type byte included */
    uint8_t kind;          /* a value_kind: a byte keeps the table at 768 bytes */
    uint8_t fixed_payload; /* payload size of numbers and fixext, known from the type byte */
} type_info;

/* clang-format off */
#define SCALAR1 {1, VALUE_SCALAR, 0} /* fixints, nil, false, true: the type byte is the value */
#define T4(...) __VA_ARGS__, __VA_ARGS__, __VA_ARGS__, __VA_ARGS__
#define T16(...) T4(__VA_ARGS__), T4(__VA_ARGS__), T4(__VA_ARGS__), T4(__VA_ARGS__)
#define T32(...) T16(__VA_ARGS__), T16(__VA_ARGS__)

/* What the first byte of a value says about its header, for every byte: one load where a switch
 * cost an indirect branch per value, mispredicted as often as the types in a message alternate
 * (it was 8% of a worker's time under pipelined load, perf). */
static const type_info type_table[256] = {
    T32(SCALAR1), T32(SCALAR1), T32(SCALAR1), T32(SCALAR1), /* 0x00-0x7f positive fixint */
    T16({1, VALUE_MAP, 0}),                                 /* 0x80-0x8f fixmap */
    T16({1, VALUE_ARRAY, 0}),                               /* 0x90-0x9f fixarray */
    T32({1, VALUE_BYTES, 0}),                               /* 0xa0-0xbf fixstr */
    [0xc0] = SCALAR1,               /* nil */
    [0xc1] = {1, VALUE_INVALID, 0}, /* never used */
    [0xc2] = SCALAR1,               /* false */
    [0xc3] = SCALAR1,               /* true */
    [0xc4] = {2, VALUE_BYTES, 0},   /* bin8 */
    [0xc5] = {3, VALUE_BYTES, 0},   /* bin16 */
    [0xc6] = {5, VALUE_BYTES, 0},   /* bin32 */
    [0xc7] = {3, VALUE_BYTES, 0},   /* ext8: length, type */
    [0xc8] = {4, VALUE_BYTES, 0},   /* ext16 */
    [0xc9] = {6, VALUE_BYTES, 0},   /* ext32 */
    [0xca] = {1, VALUE_SCALAR, 4},  /* float32 */
    [0xcb] = {1, VALUE_SCALAR, 8},  /* float64 */
    [0xcc] = {1, VALUE_SCALAR, 1},  /* uint8 .. uint64 */
    [0xcd] = {1, VALUE_SCALAR, 2},
    [0xce] = {1, VALUE_SCALAR, 4},
    [0xcf] = {1, VALUE_SCALAR, 8},
    [0xd0] = {1, VALUE_SCALAR, 1},  /* int8 .. int64 */
    [0xd1] = {1, VALUE_SCALAR, 2},
    [0xd2] = {1, VALUE_SCALAR, 4},
    [0xd3] = {1, VALUE_SCALAR, 8},
    [0xd4] = {2, VALUE_SCALAR, 1},  /* fixext1 .. fixext16: type, data */
    [0xd5] = {2, VALUE_SCALAR, 2},
    [0xd6] = {2, VALUE_SCALAR, 4},
    [0xd7] = {2, VALUE_SCALAR, 8},
    [0xd8] = {2, VALUE_SCALAR, 16},
    [0xd9] = {2, VALUE_BYTES, 0},   /* str8 */
    [0xda] = {3, VALUE_BYTES, 0},   /* str16 */
    [0xdb] = {5, VALUE_BYTES, 0},   /* str32 */
    [0xdc] = {3, VALUE_ARRAY, 0},   /* array16 */
    [0xdd] = {5, VALUE_ARRAY, 0},   /* array32 */
    [0xde] = {3, VALUE_MAP, 0},     /* map16 */
    [0xdf] = {5, VALUE_MAP, 0},     /* map32 */
    T32(SCALAR1),                   /* 0xe0-0xff negative fixint */
};
/* clang-format on */

/* A pointer into the table, not a copy: a 3-byte struct passed by value was assembled on the
 * stack byte by byte and read back as one word, another store-forwarding stall per header. */
static const type_info *type_of(uint8_t b)
{
    return &type_table[b];
}

static uint64_t read_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* The length or element count a whole header declares. */
static uint64_t declared_count(const uint8_t *h, const type_info *t)
{
    uint8_t b = h[0];
    if (t->header_size == 1) {
        if (t->kind == VALUE_MAP || t->kind == VALUE_ARRAY) return b & 0x0f;
        if (t->kind == VALUE_BYTES) return b & 0x1f;
        return 0;
    }
    if (b >= 0xc7 && b <= 0xc9) /* ext: the length, then one type byte already in the header */
        return read_be(h + 1, t->header_size - 2u);
    return read_be(h + 1, t->header_size - 1u);
}

/* Records why a message is refused. fmt names the offending number, then the size limit. */
static int too_big(arrpc__scan *s, const char *fmt, uint64_t what)
{
    snprintf(s->error, sizeof s->error, fmt, (unsigned long long)what,
             (unsigned long long)s->max_message);
    return ARRPC_ETOOBIG;
}

/* Forgets the partial message but keeps the error text. */
static void forget_message(arrpc__scan *s)
{
    s->offset = 0;
    s->skip = 0;
    s->depth = 0;
    s->header_have = s->header_need = 0;
}

arrpc__scan *arrpc__scan_new(size_t max_message, unsigned max_depth)
{
    if (max_message == 0 || max_depth == 0 || max_depth > ARRPC_MAX_DEPTH_LIMIT) return NULL;
    arrpc__scan *s = calloc(1, sizeof *s + max_depth * sizeof s->left[0]);
    if (!s) return NULL;
    s->max_message = max_message;
    s->max_depth = max_depth;
    return s;
}

void arrpc__scan_free(arrpc__scan *s)
{
    free(s);
}

void arrpc__scan_reset(arrpc__scan *s)
{
    forget_message(s);
    s->error[0] = '\0';
}

size_t arrpc__scan_pending(const arrpc__scan *s)
{
    return s->offset;
}

const char *arrpc__scan_error(const arrpc__scan *s)
{
    return s->error;
}

/* One value ended: count it against the containers it closes. Returns 1 when the message is
 * whole. */
static int value_done(arrpc__scan *s)
{
    while (s->depth > 0) {
        if (--s->left[s->depth - 1] != 0) return 0;
        s->depth--;
    }
    return 1;
}

/* Acts on a whole header h, of type t, that ends offset bytes into the message; a string's or a
 * number's payload goes to *skip. Returns 1 when it completed the message, 0 to go on, <0 on
 * error. */
static int on_header(arrpc__scan *s, const uint8_t *h, const type_info *t, size_t offset,
                     uint64_t *skip)
{
    uint64_t count = declared_count(h, t);
    uint64_t room = s->max_message - offset; /* offset <= max_message was checked */
    s->header_have = s->header_need = 0;
    switch (t->kind) {
    case VALUE_INVALID:
        snprintf(s->error, sizeof s->error, "byte 0x%02x starts no MessagePack value", h[0]);
        return ARRPC_EPROTO;
    case VALUE_SCALAR:
        count = t->fixed_payload;
        __attribute__((fallthrough)); /* a number's payload is skipped like a string's */
    case VALUE_BYTES:
        if (count > room)
            return too_big(s, "declared length %llu exceeds the %llu-byte message limit", count);
        *skip = count;
        return count == 0 ? value_done(s) : 0;
    case VALUE_ARRAY:
    case VALUE_MAP:
        if (t->kind == VALUE_MAP)
            count *= 2;   /* a key and a value per entry; at most 2^33, no overflow */
        if (count > room) /* every element takes at least one byte */
            return too_big(s, "declared %llu elements exceed the %llu-byte message limit", count);
        if (s->depth == s->max_depth) { /* an empty container counts too, as msgpack-c counts */
            snprintf(s->error, sizeof s->error, "nesting deeper than the limit of %u",
                     s->max_depth);
            return ARRPC_ETOODEEP;
        }
        if (count == 0) return value_done(s);
        s->left[s->depth++] = count;
        return 0;
    }
    return ARRPC_EPROTO;
}

/* offset and skip stay in locals while the loop runs. Kept in *s they were stored as two 8-byte
 * fields and loaded back as one 16-byte pair (the compiler's vectorised update), a load that must
 * wait for both stores to retire: that stall was the hottest instruction of a pipelined worker. */
int arrpc__scan_feed(arrpc__scan *s, const uint8_t *p, size_t n, size_t *used)
{
    size_t i = 0, offset = s->offset;
    uint64_t skip = s->skip;
    int rc = 0;
    while (i < n && rc == 0) {
        if (skip > 0) { /* a payload: pass over what of it is here */
            uint64_t take = skip < n - i ? skip : n - i;
            skip -= take;
            offset += take;
            i += take;
            if (skip == 0) rc = value_done(s);
            continue;
        }
        if (s->header_need == 0) {
            const type_info *t = type_of(p[i]);
            if (n - i >= t->header_size) { /* the usual case: the whole header is here, no copy */
                const uint8_t *h = p + i;
                i += t->header_size;
                offset += t->header_size;
                rc = offset > s->max_message
                         ? too_big(s, "message of %llu bytes so far exceeds the %llu-byte limit",
                                   offset)
                         : on_header(s, h, t, offset, &skip);
                continue;
            }
            s->header_need = t->header_size;
        }
        while (s->header_have < s->header_need && i < n) {
            s->header[s->header_have++] = p[i++];
            offset++;
        }
        if (offset > s->max_message)
            rc = too_big(s, "message of %llu bytes so far exceeds the %llu-byte limit", offset);
        else if (s->header_have == s->header_need)
            rc = on_header(s, s->header, type_of(s->header[0]), offset, &skip);
    }
    *used = i;
    s->offset = offset;
    s->skip = skip;
    if (rc != 0) forget_message(s);
    return rc;
}

/* arrpc__scan_whole's walk when the whole message is in hand: no header is ever split, so nothing
 * is copied or carried between calls and the position stays in a register. It only says yes:
 * 1 when p[0, n) is exactly one value within the limits, 0 when it is not or may not be, and the
 * resumable path then decides and words the error. Checking each handler reply through the
 * resumable path cost a pipelined worker some 160 instructions per reply, about as much as the
 * echo handler itself (callgrind). Depth is counted in s->left as arrpc__scan_feed counts it. */
static int whole_at_once(arrpc__scan *s, const uint8_t *p, size_t n)
{
    if (n > s->max_message) return 0;
    size_t i = 0;
    unsigned depth = 0;
    while (i < n) {
        const type_info *t = type_of(p[i]);
        if (t->kind == VALUE_INVALID || n - i < t->header_size) return 0;
        uint64_t count = declared_count(p + i, t);
        i += t->header_size;
        if (t->kind == VALUE_ARRAY || t->kind == VALUE_MAP) {
            if (t->kind == VALUE_MAP) count *= 2;
            if (count > n - i || depth == s->max_depth) return 0; /* each element needs a byte */
            if (count > 0) {
                s->left[depth++] = count;
                continue;
            }
        } else {
            if (t->kind == VALUE_SCALAR) count = t->fixed_payload;
            if (count > n - i) return 0;
            i += count;
        }
        while (depth > 0 && --s->left[depth - 1] == 0) /* the value closes these containers */
            depth--;
        if (depth == 0) return i == n;
    }
    return 0;
}

int arrpc__scan_whole(arrpc__scan *s, const uint8_t *p, size_t n)
{
    size_t used = 0;
    s->error[0] = '\0';
    if (whole_at_once(s, p, n)) return 0;
    arrpc__scan_reset(s);
    int rc = arrpc__scan_feed(s, p, n, &used);
    if (rc == 1 && used == n) return 0;
    if (rc >= 0) {
        snprintf(s->error, sizeof s->error, "%s",
                 rc == 0 ? "truncated message" : "bytes after the end of the message");
        rc = ARRPC_EPROTO;
    }
    forget_message(s);
    return rc;
}
