/* access_line.c -- one access-log line as JSON or logfmt (see access_line.h). Hand-written
 * appenders rather than snprintf: a line is formatted per request, on the worker's loop. */
#include "access_line.h"

#include <string.h>

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD, for bytes that are not UTF-8 */

static int in(unsigned char c, unsigned char lo, unsigned char hi)
{
    return c >= lo && c <= hi;
}

/* The length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), or 0. Stops at the string's NUL, which no continuation
 * byte matches. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    if (in(c, 0xc2, 0xdf)) return in(p[1], 0x80, 0xbf) ? 2 : 0;
    if (in(c, 0xe0, 0xef)) {
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return in(p[1], lo, hi) && in(p[2], 0x80, 0xbf) ? 3 : 0;
    }
    if (in(c, 0xf0, 0xf4)) {
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return in(p[1], lo, hi) && in(p[2], 0x80, 0xbf) && in(p[3], 0x80, 0xbf) ? 4 : 0;
    }
    return 0;
}

/* The escape of one ASCII byte inside quotes, or NULL when it stands for itself. */
static const char *ascii_escape(unsigned char c, char buf[7])
{
    static const char hex[] = "0123456789abcdef";
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    }
    if (c >= 0x20 && c != 0x7f) return NULL;
    memcpy(buf, "\\u00", 4);
    buf[4] = hex[c >> 4];
    buf[5] = hex[c & 0xf];
    buf[6] = '\0';
    return buf;
}

/* A logfmt value stands bare unless it is empty or holds a space, '=', a quote, a backslash, a
 * control byte or anything not ASCII. */
static int logfmt_bare(const char *s)
{
    if (!*s) return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '=' || *p == '"' || *p == '\\' || *p >= 0x7f) return 0;
    return 1;
}

/* Printable ASCII but the quote and the backslash: copied as it is. */
static int plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* The escaped body of s, without quotes, into at most cap bytes. */
static size_t escape_body(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t run = 0; /* most names are plain ASCII: copied in one go */
        while (plain(p[run]))
            run++;
        if (run) {
            if (run > cap - n) run = cap - n;
            memcpy(out + n, p, run);
            n += run;
            p += run;
            if (n == cap) break;
            continue;
        }
        char buf[7];
        const char *piece = (const char *)p;
        size_t len = utf8_len(p), step = len ? len : 1;
        if (len == 0) {
            piece = replacement;
            len = sizeof replacement - 1;
        } else if (len == 1 && (piece = ascii_escape(*p, buf)) != NULL) {
            len = strlen(piece);
        } else {
            piece = (const char *)p;
        }
        if (n + len > cap) break; /* never half an escape or half a character */
        memcpy(out + n, piece, len);
        n += len;
        p += step;
    }
    return n;
}

size_t arrpc__access_escape(char *out, size_t cap, const char *s, int logfmt)
{
    if (!logfmt) return escape_body(out, cap, s);
    if (logfmt_bare(s)) {
        size_t len = strlen(s);
        if (len > cap) len = cap; /* only ASCII here: any cut is between characters */
        memcpy(out, s, len);
        return len;
    }
    if (cap < 2) return 0;
    size_t n = 1 + escape_body(out + 1, cap - 2, s);
    out[0] = '"';
    out[n++] = '"';
    return n;
}

/* ---- appenders: each returns the new end ------------------------------------------------- */

static char *put(char *at, const char *s, size_t len)
{
    memcpy(at, s, len);
    return at + len;
}

#define PUT_LITERAL(at, s) put(at, s, sizeof s - 1)

static char *put_u64(char *at, uint64_t v)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *at++ = digits[--n];
    return at;
}

/* A number in exactly `width` digits, zero-padded. */
static char *put_fixed(char *at, unsigned long v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        at[i] = (char)('0' + v % 10);
    return at + width;
}

static char *put_bool(char *at, int v)
{
    return v ? PUT_LITERAL(at, "true") : PUT_LITERAL(at, "false");
}

/* "2026-11-30T23:58:32.123456Z": the date and time are redone once a second. */
static char *put_time(arrpc__access_format *f, char *at, const struct timespec *when)
{
    if (when->tv_sec != f->second) {
        struct tm tm;
        gmtime_r(&when->tv_sec, &tm);
        char *p = put_fixed(f->second_text, (unsigned long)tm.tm_year + 1900, 4);
        *p++ = '-';
        p = put_fixed(p, (unsigned long)tm.tm_mon + 1, 2);
        *p++ = '-';
        p = put_fixed(p, (unsigned long)tm.tm_mday, 2);
        *p++ = 'T';
        p = put_fixed(p, (unsigned long)tm.tm_hour, 2);
        *p++ = ':';
        p = put_fixed(p, (unsigned long)tm.tm_min, 2);
        *p++ = ':';
        put_fixed(p, (unsigned long)tm.tm_sec, 2);
        f->second = when->tv_sec;
    }
    at = put(at, f->second_text, 19);
    *at++ = '.';
    at = put_fixed(at, (unsigned long)when->tv_nsec / 1000, 6);
    *at++ = 'Z';
    return at;
}

/* ---- the two formats --------------------------------------------------------------------- */

/* A JSON string member `,"key":"value"`, or a logfmt pair ` key=value`, bounded by end. */
static char *put_string_field(char *at, const char *end, const char *key, const char *value,
                              int logfmt)
{
    size_t klen = strlen(key);
    if (logfmt) {
        *at++ = ' ';
        at = put(at, key, klen);
        *at++ = '=';
        return at + arrpc__access_escape(at, (size_t)(end - at), value, 1);
    }
    at = PUT_LITERAL(at, ",\"");
    at = put(at, key, klen);
    at = PUT_LITERAL(at, "\":\"");
    at += arrpc__access_escape(at, (size_t)(end - at) - 1, value, 0);
    *at++ = '"';
    return at;
}

void arrpc__access_format_init(arrpc__access_format *f, arrpc_access_log_format format,
                               const char *handler_name, int tls, long pid)
{
    int logfmt = format == ARRPC_ACCESS_LOG_LOGFMT;
    f->format = format;
    f->second = -1;
    char *end = f->handler + sizeof f->handler;
    f->handler_len =
        (size_t)(put_string_field(f->handler, end, "handler", handler_name, logfmt) - f->handler);
    char *at = f->tail;
    at = logfmt ? PUT_LITERAL(at, " tls=") : PUT_LITERAL(at, ",\"tls\":");
    at = put_bool(at, tls);
    at = logfmt ? PUT_LITERAL(at, " pid=") : PUT_LITERAL(at, ",\"pid\":");
    at = put_u64(at, (uint64_t)pid);
    at = logfmt ? PUT_LITERAL(at, "\n") : PUT_LITERAL(at, "}\n");
    f->tail_len = (size_t)(at - f->tail);
}

/* The numbers of a line, in both formats: ` bytes_in=1` or `,"bytes_in":1`. */
static char *put_number_field(char *at, const char *key, size_t klen, uint64_t v, int logfmt)
{
    if (logfmt) {
        *at++ = ' ';
        at = put(at, key, klen);
        *at++ = '=';
    } else {
        at = PUT_LITERAL(at, ",\"");
        at = put(at, key, klen);
        at = PUT_LITERAL(at, "\":");
    }
    return put_u64(at, v);
}

#define NUMBER(at, key, v, logfmt) put_number_field(at, key, sizeof key - 1, v, logfmt)

size_t arrpc__access_line(arrpc__access_format *f, const arrpc__access_fields *x, char *out)
{
    int logfmt = f->format == ARRPC_ACCESS_LOG_LOGFMT;
    /* Room kept at the end for what follows the peer: the handler, numbers, the tail. */
    const char *peer_end = out + ARRPC_ACCESS_LINE_MAX - f->handler_len - f->tail_len - 160;
    char *at = out;
    at = logfmt ? PUT_LITERAL(at, "time=") : PUT_LITERAL(at, "{\"time\":\"");
    at = put_time(f, at, &x->when);
    if (!logfmt) *at++ = '"';
    at = put_string_field(at, peer_end, "peer", x->peer, logfmt);
    at = put(at, f->handler, f->handler_len);
    at = NUMBER(at, "bytes_in", x->bytes_in, logfmt);
    at = NUMBER(at, "bytes_out", x->bytes_out, logfmt);
    at = NUMBER(at, "duration_us", x->duration_us, logfmt);
    at = logfmt ? PUT_LITERAL(at, " outcome=") : PUT_LITERAL(at, ",\"outcome\":\"");
    at = put(at, x->outcome, strlen(x->outcome)); /* one of our own labels: nothing to escape */
    if (!logfmt) *at++ = '"';
    at = logfmt ? PUT_LITERAL(at, " signed=") : PUT_LITERAL(at, ",\"signed\":");
    at = put_bool(at, x->is_signed);
    at = put(at, f->tail, f->tail_len);
    return (size_t)(at - out);
}
