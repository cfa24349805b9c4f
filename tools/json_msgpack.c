/* json_msgpack.c -- JSON <-> MessagePack with jansson; the tagged forms are in json_msgpack.h.
 * Also the JSON text in and out around jansson: uint64 literals and shortest round-trip reals. */
#include "json_msgpack.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char b64_digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* The value of n decimal digits, if that is 1..20 digits and at most 2^64-1. */
static int parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* ---- base64 ------------------------------------------------------------------------------- */

void arrpc_base64_encode(const unsigned char *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        out[o++] = b64_digits[(v >> 18) & 63];
        out[o++] = b64_digits[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_digits[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64_digits[v & 63] : '=';
    }
    out[o] = '\0';
}

static int b64_value(char c)
{
    const char *at = c ? strchr(b64_digits, c) : NULL;
    return at ? (int)(at - b64_digits) : -1;
}

long arrpc_base64_decode(const char *s, size_t len, unsigned char *out)
{
    size_t o = 0;
    if (len % 4 != 0) return -1;
    for (size_t i = 0; i < len; i += 4) {
        int last = i + 4 == len;
        int pad = (s[i + 3] == '=') + (s[i + 2] == '=' && s[i + 3] == '=');
        if (pad && !last) return -1;
        uint32_t v = 0;
        for (int k = 0; k < 4 - pad; k++) {
            int d = b64_value(s[i + (size_t)k]);
            if (d < 0) return -1;
            v |= (uint32_t)d << (18 - 6 * k);
        }
        out[o++] = (unsigned char)(v >> 16);
        if (pad < 2) out[o++] = (unsigned char)(v >> 8);
        if (pad < 1) out[o++] = (unsigned char)v;
    }
    return (long)o;
}

/* ---- JSON to MessagePack ------------------------------------------------------------------ */

/* Decodes a base64 JSON string into a new buffer. */
static unsigned char *decode_b64(json_t *s, size_t *n, char *err, size_t errlen)
{
    size_t len = json_string_length(s);
    unsigned char *bytes = malloc(len / 4 * 3 + 1);
    long got = bytes ? arrpc_base64_decode(json_string_value(s), len, bytes) : -1;
    if (got < 0) {
        free(bytes);
        fail(err, errlen, "invalid base64");
        return NULL;
    }
    *n = (size_t)got;
    return bytes;
}

static int pack_bin(json_t *v, msgpack_packer *pk, char *err, size_t errlen)
{
    size_t n;
    unsigned char *bytes;
    if (!json_is_string(v))
        return fail(err, errlen, "%s wants a base64 string", ARRPC_JSON_TAG_BIN);
    if (!(bytes = decode_b64(v, &n, err, errlen))) return -1;
    int rc = msgpack_pack_bin_with_body(pk, bytes, n);
    free(bytes);
    return rc ? fail(err, errlen, "out of memory") : 0;
}

static int pack_ext(json_t *v, msgpack_packer *pk, char *err, size_t errlen)
{
    json_t *type = json_array_get(v, 0), *body = json_array_get(v, 1);
    size_t n;
    unsigned char *bytes;
    if (json_array_size(v) != 2 || !json_is_integer(type) || json_integer_value(type) < -128 ||
        json_integer_value(type) > 127 || !json_is_string(body))
        return fail(err, errlen, "%s wants [type -128..127, base64 string]", ARRPC_JSON_TAG_EXT);
    if (!(bytes = decode_b64(body, &n, err, errlen))) return -1;
    int rc = msgpack_pack_ext(pk, n, (int8_t)json_integer_value(type)) ||
             msgpack_pack_ext_body(pk, bytes, n);
    free(bytes);
    return rc ? fail(err, errlen, "out of memory") : 0;
}

static int pack_pairs(json_t *v, msgpack_packer *pk, char *err, size_t errlen)
{
    size_t i;
    json_t *pair;
    if (!json_is_array(v))
        return fail(err, errlen, "%s wants an array of [key, value] pairs", ARRPC_JSON_TAG_MAP);
    json_array_foreach(v, i, pair)
    {
        if (!json_is_array(pair) || json_array_size(pair) != 2)
            return fail(err, errlen, "%s entry %zu is not a [key, value] pair", ARRPC_JSON_TAG_MAP,
                        i);
    }
    if (msgpack_pack_map(pk, json_array_size(v))) return fail(err, errlen, "out of memory");
    json_array_foreach(v, i, pair)
    {
        if (arrpc_json_to_msgpack(json_array_get(pair, 0), pk, err, errlen) != 0 ||
            arrpc_json_to_msgpack(json_array_get(pair, 1), pk, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static int pack_u64(json_t *v, msgpack_packer *pk, char *err, size_t errlen)
{
    uint64_t u;
    if (!json_is_string(v) || parse_u64(json_string_value(v), json_string_length(v), &u) != 0)
        return fail(err, errlen, "%s wants a decimal string 0..18446744073709551615",
                    ARRPC_JSON_TAG_U64);
    return msgpack_pack_uint64(pk, u) ? fail(err, errlen, "out of memory") : 0;
}

typedef int (*tag_packer)(json_t *v, msgpack_packer *pk, char *err, size_t errlen);

static const struct {
    const char *tag;
    tag_packer pack;
} tags[] = {
    {ARRPC_JSON_TAG_BIN, pack_bin},
    {ARRPC_JSON_TAG_EXT, pack_ext},
    {ARRPC_JSON_TAG_MAP, pack_pairs},
    {ARRPC_JSON_TAG_U64, pack_u64},
};

/* The index in tags[] of a one-key object's key, or -1. */
static int tag_index(const char *key, size_t len)
{
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        if (strlen(tags[i].tag) == len && memcmp(tags[i].tag, key, len) == 0) return (int)i;
    }
    return -1;
}

static int pack_object(json_t *v, msgpack_packer *pk, char *err, size_t errlen)
{
    void *it = json_object_iter(v);
    if (json_object_size(v) == 1) {
        int t = tag_index(json_object_iter_key(it), json_object_iter_key_len(it));
        if (t >= 0) return tags[t].pack(json_object_iter_value(it), pk, err, errlen);
    }
    if (msgpack_pack_map(pk, json_object_size(v))) return fail(err, errlen, "out of memory");
    for (; it; it = json_object_iter_next(v, it)) {
        size_t klen = json_object_iter_key_len(it);
        if (msgpack_pack_str_with_body(pk, json_object_iter_key(it), klen))
            return fail(err, errlen, "out of memory");
        if (arrpc_json_to_msgpack(json_object_iter_value(it), pk, err, errlen) != 0) return -1;
    }
    return 0;
}

static int pack_array(json_t *v, msgpack_packer *pk, char *err, size_t errlen)
{
    size_t i;
    json_t *item;
    if (msgpack_pack_array(pk, json_array_size(v))) return fail(err, errlen, "out of memory");
    json_array_foreach(v, i, item)
    {
        if (arrpc_json_to_msgpack(item, pk, err, errlen) != 0) return -1;
    }
    return 0;
}

int arrpc_json_to_msgpack(json_t *v, msgpack_packer *pk, char *err, size_t errlen)
{
    int rc;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return pack_object(v, pk, err, errlen);
    case JSON_ARRAY:
        return pack_array(v, pk, err, errlen);
    case JSON_STRING:
        rc = msgpack_pack_str_with_body(pk, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        rc = msgpack_pack_int64(pk, json_integer_value(v));
        break;
    case JSON_REAL:
        rc = msgpack_pack_double(pk, json_real_value(v));
        break;
    case JSON_TRUE:
        rc = msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        rc = msgpack_pack_false(pk);
        break;
    default:
        rc = msgpack_pack_nil(pk);
        break;
    }
    return rc ? fail(err, errlen, "out of memory") : 0;
}

/* ---- MessagePack to JSON ------------------------------------------------------------------ */

static json_t *tagged(const char *tag, json_t *value)
{
    json_t *o = value ? json_object() : NULL;
    if (o && json_object_set_new(o, tag, value) == 0) return o;
    json_decref(o);
    json_decref(value);
    return NULL;
}

static json_t *b64_string(const char *p, size_t n)
{
    char *text = malloc(n / 3 * 4 + 5);
    if (!text) return NULL;
    arrpc_base64_encode((const unsigned char *)p, n, text);
    json_t *s = json_string(text);
    free(text);
    return s;
}

static json_t *from_ext(const msgpack_object_ext *e)
{
    json_t *pair = json_pack("[io]", (int)e->type, b64_string(e->ptr, e->size));
    return tagged(ARRPC_JSON_TAG_EXT, pair);
}

static json_t *from_array(const msgpack_object_array *a, char *err, size_t errlen)
{
    json_t *arr = json_array();
    for (uint32_t i = 0; arr && i < a->size; i++) {
        json_t *item = arrpc_json_from_msgpack(&a->ptr[i], err, errlen);
        if (!item || json_array_append_new(arr, item) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* The map as [[key, value], ...] under "$map". */
static json_t *from_map_pairs(const msgpack_object_map *m, char *err, size_t errlen)
{
    json_t *pairs = json_array();
    for (uint32_t i = 0; pairs && i < m->size; i++) {
        json_t *k = arrpc_json_from_msgpack(&m->ptr[i].key, err, errlen);
        json_t *v = k ? arrpc_json_from_msgpack(&m->ptr[i].val, err, errlen) : NULL;
        if (!v || json_array_append_new(pairs, json_pack("[oo]", k, v)) != 0) {
            json_decref(k);
            json_decref(pairs);
            return NULL;
        }
    }
    return tagged(ARRPC_JSON_TAG_MAP, pairs);
}

static int keys_plain(const msgpack_object_map *m)
{
    for (uint32_t i = 0; i < m->size; i++) {
        if (m->ptr[i].key.type != MSGPACK_OBJECT_STR) return 0;
    }
    return !(m->size == 1 && tag_index(m->ptr[0].key.via.str.ptr, m->ptr[0].key.via.str.size) >= 0);
}

/* A JSON object when that loses nothing: str keys, none repeated, not mistakable for a tag. The
 * keys are checked (set to null) before any value is converted: converting the values and then
 * falling back to the pairs form converted nested maps twice per level, 2^depth times in all. */
static json_t *from_map(const msgpack_object_map *m, char *err, size_t errlen)
{
    json_t *obj = keys_plain(m) ? json_object() : NULL;
    uint32_t i;
    for (i = 0; obj && i < m->size; i++) {
        const msgpack_object_str *k = &m->ptr[i].key.via.str;
        if (json_object_setn_new(obj, k->size ? k->ptr : "", k->size, json_null()) != 0)
            break; /* the key is not UTF-8, which the pairs form reports */
    }
    if (!obj || i < m->size || json_object_size(obj) != m->size) { /* or a key repeated */
        json_decref(obj);
        return from_map_pairs(m, err, errlen);
    }
    for (i = 0; i < m->size; i++) {
        const msgpack_object_str *k = &m->ptr[i].key.via.str;
        json_t *v = arrpc_json_from_msgpack(&m->ptr[i].val, err, errlen);
        if (!v || json_object_setn_new(obj, k->size ? k->ptr : "", k->size, v) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

static json_t *from_u64(uint64_t u)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, u);
    return tagged(ARRPC_JSON_TAG_U64, json_string(text));
}

/* The double nearest to f's shortest decimal form, so that float32 0.1 prints as 0.1. */
static double from_float32(float f)
{
    char text[32];
    for (int prec = 1; prec <= 9; prec++) { /* 9 digits always read back to the same float */
        snprintf(text, sizeof text, "%.*g", prec, (double)f);
        float back = strtof(text, NULL);
        if (memcmp(&back, &f, sizeof f) == 0) break;
    }
    return strtod(text, NULL);
}

static json_t *from_str(const msgpack_object_str *s, char *err, size_t errlen)
{
    json_t *j = json_stringn(s->size ? s->ptr : "", s->size); /* msgpack-c: ptr may be NULL */
    if (!j) fail(err, errlen, "a str of %u bytes is not valid UTF-8", s->size);
    return j;
}

json_t *arrpc_json_from_msgpack(const msgpack_object *o, char *err, size_t errlen)
{
    snprintf(err, errlen, "out of memory");
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > INT64_MAX) return from_u64(o->via.u64);
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
        return isfinite(o->via.f64) ? json_real(from_float32((float)o->via.f64)) : json_null();
    case MSGPACK_OBJECT_FLOAT64:
        return isfinite(o->via.f64) ? json_real(o->via.f64) : json_null();
    case MSGPACK_OBJECT_STR:
        return from_str(&o->via.str, err, errlen);
    case MSGPACK_OBJECT_BIN:
        return tagged(ARRPC_JSON_TAG_BIN, b64_string(o->via.bin.ptr, o->via.bin.size));
    case MSGPACK_OBJECT_EXT:
        return from_ext(&o->via.ext);
    case MSGPACK_OBJECT_ARRAY:
        return from_array(&o->via.array, err, errlen);
    case MSGPACK_OBJECT_MAP:
        return from_map(&o->via.map, err, errlen);
    }
    fail(err, errlen, "unknown MessagePack type %d", (int)o->type);
    return NULL;
}

/* ---- JSON text in: integers beyond jansson's long long ------------------------------------ */

#define INT64_MIN_DIGITS "9223372036854775808" /* -INT64_MIN */
#define INT64_MAX_DIGITS "9223372036854775807"
#define UINT64_MAX_DIGITS "18446744073709551615"

/* The length of the number token at p (loosely: '-' then digits . e E + -); *integral when it
 * is an optional '-' and digits only. jansson judges the token's syntax afterwards. */
static size_t number_token(const char *p, size_t n, int *integral)
{
    size_t i = p[0] == '-';
    *integral = 1;
    for (; i < n && p[i] && strchr("0123456789.eE+-", p[i]); i++) {
        if (p[i] < '0' || p[i] > '9') *integral = 0;
    }
    return i;
}

/* Whether k decimal digits d (no leading zero) are at most limit, a digit string. */
static int digits_at_most(const char *d, size_t k, const char *limit)
{
    size_t lk = strlen(limit);
    return k < lk || (k == lk && memcmp(d, limit, k) <= 0);
}

enum int_kind { INT_PLAIN, INT_U64, INT_OUT_OF_RANGE };

/* What the integer token p[0..n) is: jansson's, "$u64", or refused. A leading zero is left for
 * jansson to refuse. */
static enum int_kind classify_int(const char *p, size_t n)
{
    int neg = p[0] == '-';
    const char *d = p + neg;
    size_t k = n - (size_t)neg;
    if (k == 0 || (d[0] == '0' && k > 1)) return INT_PLAIN;
    if (digits_at_most(d, k, neg ? INT64_MIN_DIGITS : INT64_MAX_DIGITS)) return INT_PLAIN;
    if (!neg && digits_at_most(d, k, UINT64_MAX_DIGITS)) return INT_U64;
    return INT_OUT_OF_RANGE;
}

static void range_error(json_error_t *jerr, const char *p, size_t n, size_t at)
{
    memset(jerr, 0, sizeof *jerr);
    jerr->line = -1;
    jerr->column = -1;
    jerr->position = (int)at;
    snprintf(jerr->source, sizeof jerr->source, "<integer>");
    snprintf(jerr->text, sizeof jerr->text,
             "integer %.*s%s is out of range: MessagePack integers are -2^63 .. 2^64-1",
             n > 40 ? 40 : (int)n, p, n > 40 ? "..." : "");
}

/* The index just past the string literal that opens at text[i] (past len if unterminated). */
static size_t skip_string(const char *text, size_t len, size_t i)
{
    for (i++; i < len && text[i] != '"'; i++) {
        if (text[i] == '\\') i++;
    }
    return i + 1;
}

/* Appends the n bytes at plain, then the integer token at num[0..k) as {"$u64": "..."}, to
 * buf[o..); the new o. */
static size_t append_u64(char *buf, size_t o, const char *plain, size_t n, const char *num,
                         size_t k)
{
    memcpy(buf + o, plain, n);
    o += n;
    return o + (size_t)sprintf(buf + o, "{\"" ARRPC_JSON_TAG_U64 "\":\"%.*s\"}", (int)k, num);
}

/* text with each "$u64" integer rewritten, in a new buffer (NULL when there is none), or -1 with
 * jerr set for an integer out of range or out of memory. A rewrite of at least 19 digits adds 11
 * bytes, so 2 * len + 1 bytes always suffice. */
static int rewrite_u64(const char *text, size_t len, char **out, size_t *out_len,
                       json_error_t *jerr)
{
    char *buf = NULL;
    size_t o = 0, copied = 0, n; /* text[0..copied) is in buf[0..o) */
    int integral;
    for (size_t i = 0; i < len; i += n) {
        n = 1;
        if (text[i] == '"') n = skip_string(text, len, i) - i;
        if (text[i] != '-' && (text[i] < '0' || text[i] > '9')) continue;
        n = number_token(text + i, len - i, &integral);
        enum int_kind kind = integral ? classify_int(text + i, n) : INT_PLAIN;
        if (kind == INT_OUT_OF_RANGE) {
            free(buf);
            range_error(jerr, text + i, n, i);
            return -1;
        }
        if (kind != INT_U64) continue;
        if (!buf && !(buf = malloc(2 * len + 1))) {
            snprintf(jerr->text, sizeof jerr->text, "out of memory");
            return -1;
        }
        o = append_u64(buf, o, text + copied, i - copied, text + i, n);
        copied = i + n;
    }
    if (buf) {
        memcpy(buf + o, text + copied, len - copied);
        o += len - copied;
    }
    *out = buf;
    *out_len = o;
    return 0;
}

json_t *arrpc_json_loadb(const char *text, size_t len, size_t flags, json_error_t *jerr)
{
    char *rewritten;
    size_t n;
    if (rewrite_u64(text, len, &rewritten, &n, jerr) != 0) return NULL;
    json_t *v =
        rewritten ? json_loadb(rewritten, n, flags, jerr) : json_loadb(text, len, flags, jerr);
    free(rewritten);
    return v;
}

/* ---- JSON text out: shortest reals, "$u64" as integers ------------------------------------ */

/* The shortest %.Ng of d that strtod reads back to the same bits, with ".0" added when it would
 * otherwise read as an integer. Written positionally for decimal exponents up to 15, as Python
 * prints floats (100.0, not %g's 1e+02); the digits are the same, so it reads back the same. */
static void format_real(double d, char *text, size_t size)
{
    int prec = 1;
    for (; prec <= 17; prec++) { /* 17 digits always read back to the same double */
        snprintf(text, size, "%.*g", prec, d);
        double back = strtod(text, NULL);
        if (memcmp(&back, &d, sizeof d) == 0) break;
    }
    const char *e = strchr(text, 'e');
    int exponent = e ? atoi(e + 1) : 0;
    if (e && exponent >= 0 && exponent < 16)
        snprintf(text, size, "%.*f", prec - 1 > exponent ? prec - 1 - exponent : 0, d);
    if (strspn(text, "-0123456789") == strlen(text)) strncat(text, ".0", size - strlen(text) - 1);
}

/* The decimal string of a one-key {"$u64": "<decimal>"} object, or NULL. */
static const char *u64_text(json_t *v)
{
    void *it = json_object_size(v) == 1 ? json_object_iter(v) : NULL;
    json_t *s = it ? json_object_iter_value(it) : NULL;
    uint64_t u;
    if (!it || strcmp(json_object_iter_key(it), ARRPC_JSON_TAG_U64) != 0 || !json_is_string(s) ||
        parse_u64(json_string_value(s), json_string_length(s), &u) != 0)
        return NULL;
    return json_string_value(s);
}

static int dump_object(json_t *v, FILE *f)
{
    const char *u64 = u64_text(v);
    if (u64) return fputs(u64, f) < 0 ? -1 : 0;
    fputc('{', f);
    for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
        json_t *key = json_stringn_nocheck(json_object_iter_key(it), json_object_iter_key_len(it));
        int rc = key ? json_dumpf(key, f, JSON_ENCODE_ANY) : -1;
        json_decref(key);
        if (rc != 0 || fputc(':', f) == EOF || arrpc_json_dumpf(json_object_iter_value(it), f) != 0)
            return -1;
        if (json_object_iter_next(v, it)) fputc(',', f);
    }
    return fputc('}', f) == EOF ? -1 : 0;
}

int arrpc_json_dumpf(const json_t *v, FILE *f)
{
    json_t *m = (json_t *)v; /* jansson's getters take no const */
    char text[40];
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return dump_object(m, f);
    case JSON_ARRAY:
        fputc('[', f);
        for (size_t i = 0; i < json_array_size(m); i++) {
            if ((i > 0 && fputc(',', f) == EOF) || arrpc_json_dumpf(json_array_get(m, i), f) != 0)
                return -1;
        }
        return fputc(']', f) == EOF ? -1 : 0;
    case JSON_REAL:
        format_real(json_real_value(v), text, sizeof text);
        return fputs(text, f) < 0 ? -1 : 0;
    default:
        return json_dumpf(v, f, JSON_COMPACT | JSON_ENCODE_ANY);
    }
}

char *arrpc_json_dumps(const json_t *v)
{
    char *text = NULL;
    size_t n;
    FILE *f = open_memstream(&text, &n);
    if (!f) return NULL;
    int rc = arrpc_json_dumpf(v, f);
    if (fclose(f) != 0 || rc != 0) {
        free(text);
        return NULL;
    }
    return text;
}
