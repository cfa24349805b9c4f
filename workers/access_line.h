/* access_line.h -- one access-log line, as JSON or logfmt: pure formatting, no I/O. */
#ifndef ARRPC_WORKERS_ACCESS_LINE_H
#define ARRPC_WORKERS_ACCESS_LINE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "arrpc.h"

/* Bytes of one line, newline included. The longest strings in a line are the handler name
 * (under 128 bytes) and the peer (under 64); escaped at worst 6 bytes per byte they still fit,
 * and an escaper that would pass the end stops before a whole escape instead. */
#define ARRPC_ACCESS_LINE_MAX 2048u
#define ARRPC_ACCESS_PART_MAX 1024u /* the parts formatted once: the handler's, and the tail */

/* What changes from one request to the next. */
typedef struct arrpc__access_fields {
    struct timespec when; /* wall-clock time (CLOCK_REALTIME) when the request was answered */
    const char *peer;
    const char *outcome; /* "ok", or the metrics' `reason` label */
    uint64_t bytes_in, bytes_out;
    uint64_t duration_us;
    int is_signed;
} arrpc__access_fields;

/* What stays the same for every line of one worker, formatted once, and the last second's
 * date and time, which lines of the same second share. */
typedef struct arrpc__access_format {
    arrpc_access_log_format format;
    char handler[ARRPC_ACCESS_PART_MAX]; /* `,"handler":"echo"` or ` handler=echo` */
    char tail[ARRPC_ACCESS_PART_MAX];    /* `,"tls":false,"pid":42}` and the newline */
    size_t handler_len, tail_len;
    time_t second;        /* whose text is in second_text; -1: none yet */
    char second_text[24]; /* "2026-11-30T23:58:32" */
} arrpc__access_format;

void arrpc__access_format_init(arrpc__access_format *f, arrpc_access_log_format format,
                               const char *handler_name, int tls, long pid);
/* Writes one line, newline included, to out (ARRPC_ACCESS_LINE_MAX bytes); returns its length. */
size_t arrpc__access_line(arrpc__access_format *f, const arrpc__access_fields *x, char *out);
/* Escapes s as the inside of a JSON string (quoting = 0) or as a logfmt value, quoted when it
 * must be (quoting = 1), into at most cap bytes; bytes that are not UTF-8 become U+FFFD, and an
 * escape that would not fit is left out whole. Returns the bytes written. */
size_t arrpc__access_escape(char *out, size_t cap, const char *s, int logfmt);

#endif
