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
    uint8_t header_size; /* bytes of the header, type byte included */
    value_kind kind;
    uint8_t fixed_payload; /* payload size of numbers and fixext, known from the type byte */
} type_info;

/* Decodes what the first byte of a value says about its header. */
static type_info type_of(uint8_t b)
{
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return (type_info){1, VALUE_SCALAR, 0};
    if (b <= 0x8f) return (type_info){1, VALUE_MAP, 0};
    if (b <= 0x9f) return (type_info){1, VALUE_ARRAY, 0};
    if (b <= 0xbf) return (type_info){1, VALUE_BYTES, 0};
    switch (b) {
    case 0xc4:
    case 0xd9:
        return (type_info){2, VALUE_BYTES, 0}; /* bin8, str8 */
    case 0xc5:
    case 0xda:
        return (type_info){3, VALUE_BYTES, 0}; /* bin16, str16 */
    case 0xc6:
    case 0xdb:
        return (type_info){5, VALUE_BYTES, 0}; /* bin32, str32 */
    case 0xc7:
        return (type_info){3, VALUE_BYTES, 0}; /* ext8: len, type */
    case 0xc8:
        return (type_info){4, VALUE_BYTES, 0}; /* ext16 */
    case 0xc9:
        return (type_info){6, VALUE_BYTES, 0}; /* ext32 */
    case 0xca:
        return (type_info){1, VALUE_SCALAR, 4}; /* float32 */
    case 0xcb:
        return (type_info){1, VALUE_SCALAR, 8}; /* float64 */
    case 0xcc:
    case 0xd0:
        return (type_info){1, VALUE_SCALAR, 1}; /* uint8, int8 */
    case 0xcd:
    case 0xd1:
        return (type_info){1, VALUE_SCALAR, 2};
    case 0xce:
    case 0xd2:
        return (type_info){1, VALUE_SCALAR, 4};
    case 0xcf:
    case 0xd3:
        return (type_info){1, VALUE_SCALAR, 8};
    case 0xd4:
        return (type_info){2, VALUE_SCALAR, 1}; /* fixext1: type, data */
    case 0xd5:
        return (type_info){2, VALUE_SCALAR, 2};
    case 0xd6:
        return (type_info){2, VALUE_SCALAR, 4};
    case 0xd7:
        return (type_info){2, VALUE_SCALAR, 8};
    case 0xd8:
        return (type_info){2, VALUE_SCALAR, 16};
    case 0xdc:
        return (type_info){3, VALUE_ARRAY, 0};
    case 0xdd:
        return (type_info){5, VALUE_ARRAY, 0};
    case 0xde:
        return (type_info){3, VALUE_MAP, 0};
    case 0xdf:
        return (type_info){5, VALUE_MAP, 0};
    }
    return (type_info){1, VALUE_INVALID, 0}; /* 0xc1, never used */
}

static uint64_t read_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* The length or element count a whole header declares. */
static uint64_t declared_count(const uint8_t *h, type_info t)
{
    uint8_t b = h[0];
    if (t.header_size == 1) {
        if (t.kind == VALUE_MAP || t.kind == VALUE_ARRAY) return b & 0x0f;
        if (t.kind == VALUE_BYTES) return b & 0x1f;
        return 0;
    }
    if (b >= 0xc7 && b <= 0xc9) /* ext: the length, then one type byte already in the header */
        return read_be(h + 1, t.header_size - 2u);
    return read_be(h + 1, t.header_size - 1u);
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

/* Acts on a whole header h, of type t. Returns 1 when it completed the message, 0 to go on, <0
 * on error. */
static int on_header(arrpc__scan *s, const uint8_t *h, type_info t)
{
    uint64_t count = declared_count(h, t);
    uint64_t room = s->max_message - s->offset; /* offset <= max_message was checked */
    s->header_have = s->header_need = 0;
    switch (t.kind) {
    case VALUE_INVALID:
        snprintf(s->error, sizeof s->error, "byte 0x%02x starts no MessagePack value", h[0]);
        return ARRPC_EPROTO;
    case VALUE_SCALAR:
        count = t.fixed_payload;
        __attribute__((fallthrough)); /* a number's payload is skipped like a string's */
    case VALUE_BYTES:
        if (count > room)
            return too_big(s, "declared length %llu exceeds the %llu-byte message limit", count);
        s->skip = count;
        return count == 0 ? value_done(s) : 0;
    case VALUE_ARRAY:
    case VALUE_MAP:
        if (t.kind == VALUE_MAP)
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

/* Passes over payload bytes. Returns 1 when that ended the message. */
static int skip_payload(arrpc__scan *s, size_t *i, size_t n)
{
    uint64_t take = s->skip < n - *i ? s->skip : n - *i;
    s->skip -= take;
    s->offset += take;
    *i += take;
    return s->skip == 0 ? value_done(s) : 0;
}

int arrpc__scan_feed(arrpc__scan *s, const uint8_t *p, size_t n, size_t *used)
{
    size_t i = 0;
    int rc = 0;
    while (i < n && rc == 0) {
        if (s->skip > 0) {
            rc = skip_payload(s, &i, n);
            continue;
        }
        if (s->header_need == 0) {
            type_info t = type_of(p[i]);
            if (n - i >= t.header_size) { /* the usual case: the whole header is here, no copy */
                const uint8_t *h = p + i;
                i += t.header_size;
                s->offset += t.header_size;
                rc = s->offset > s->max_message
                         ? too_big(s, "message of %llu bytes so far exceeds the %llu-byte limit",
                                   s->offset)
                         : on_header(s, h, t);
                continue;
            }
            s->header_need = t.header_size;
        }
        while (s->header_have < s->header_need && i < n) {
            s->header[s->header_have++] = p[i++];
            s->offset++;
        }
        if (s->offset > s->max_message)
            rc = too_big(s, "message of %llu bytes so far exceeds the %llu-byte limit", s->offset);
        else if (s->header_have == s->header_need)
            rc = on_header(s, s->header, type_of(s->header[0]));
    }
    *used = i;
    if (rc != 0) forget_message(s);
    return rc;
}

int arrpc__scan_whole(arrpc__scan *s, const uint8_t *p, size_t n)
{
    size_t used = 0;
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
