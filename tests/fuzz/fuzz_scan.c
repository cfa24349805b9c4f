/* fuzz_scan.c -- the validator and framer (core/scan.c) over arbitrary streams.
 *
 * Input: byte 0 picks the limits, bytes 1-2 a split point, the rest is the stream. Invariants:
 *  - fed whole, in two pieces, or a byte at a time, the stream is cut into the same messages and
 *    ends the same way (the same error code, or the same bytes pending); feed never reports more
 *    bytes used than it was given, and 0 only when it used them all;
 *  - every message cut is one value that msgpack-c decodes to its last byte, and
 *    arrpc__scan_whole accepts it; on the whole stream, arrpc__scan_whole (whose one-pass walk
 *    answers first) says what feeding said of its first message;
 *  - the limits are tight: the message passes a scanner whose limits are exactly its size and
 *    depth, and fails with ARRPC_ETOOBIG one byte smaller, ARRPC_ETOODEEP one level shallower;
 *  - the decoded value, packed again by msgpack-c, is again one whole message, no larger.
 * msgpack-c only ever sees bytes the scanner accepted: it reserves whatever headers declare. */
#include <string.h>

#include "arrpc.h"
#include "core/scan.h"
#include "fuzz.h"

static const size_t max_messages[] = {8, 64, 1024, 1u << 20};

/* How one way of feeding the stream went. */
typedef struct {
    size_t *ends; /* stream offsets just after each message */
    size_t count;
    int rc;         /* 0, or the error that stopped the scan */
    size_t pending; /* bytes of an unfinished message at the end */
} outcome;

/* Feeds p[0, n) as pieces that end at cuts[0] < cuts[1] < ... < n. */
static void feed(arrpc__scan *s, const uint8_t *p, size_t n, const size_t *cuts, size_t ncuts,
                 outcome *o)
{
    size_t at = 0;
    o->count = 0;
    o->rc = 0;
    arrpc__scan_reset(s);
    for (size_t c = 0; c <= ncuts && o->rc == 0; c++) {
        size_t end = c < ncuts ? cuts[c] : n;
        while (at < end) {
            size_t used = (size_t)-1;
            int rc = arrpc__scan_feed(s, p + at, end - at, &used);
            FUZZ_CHECK(used <= end - at);
            FUZZ_CHECK(rc != 0 || used == end - at);
            at += used;
            if (rc < 0) {
                o->rc = rc;
                break;
            }
            if (rc == 1) o->ends[o->count++] = at;
        }
    }
    o->pending = o->rc == 0 ? arrpc__scan_pending(s) : 0;
    if (o->rc == 0) FUZZ_CHECK(o->pending == n - (o->count ? o->ends[o->count - 1] : 0));
}

static void same_outcome(const outcome *a, const outcome *b)
{
    FUZZ_CHECK(a->rc == b->rc);
    FUZZ_CHECK(a->count == b->count);
    FUZZ_CHECK(memcmp(a->ends, b->ends, a->count * sizeof a->ends[0]) == 0);
    FUZZ_CHECK(a->pending == b->pending);
}

/* rc of arrpc__scan_whole under the given limits (max_depth at least 1). */
static int whole_under(const uint8_t *p, size_t n, size_t max_message, unsigned max_depth)
{
    arrpc__scan *s = arrpc__scan_new(max_message, max_depth ? max_depth : 1);
    FUZZ_CHECK(s != NULL);
    int rc = arrpc__scan_whole(s, p, n);
    arrpc__scan_free(s);
    return rc;
}

/* Checks one message the scanner cut out of the stream. */
static void check_message(arrpc__scan *s, const uint8_t *p, size_t n, unsigned max_depth)
{
    FUZZ_CHECK(arrpc__scan_whole(s, p, n) == 0);
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;
    FUZZ_CHECK(msgpack_zone_init(&zone, 2048));
    FUZZ_CHECK(msgpack_unpack((const char *)p, n, &off, &zone, &obj) == MSGPACK_UNPACK_SUCCESS);
    FUZZ_CHECK(off == n);
    unsigned depth = fuzz_depth(&obj);
    FUZZ_CHECK(depth <= max_depth);
    FUZZ_CHECK(whole_under(p, n, n, depth) == 0);
    if (n > 1) FUZZ_CHECK(whole_under(p, n, n - 1, depth) == ARRPC_ETOOBIG);
    if (depth > 1) FUZZ_CHECK(whole_under(p, n, n, depth - 1) == ARRPC_ETOODEEP);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    FUZZ_CHECK(msgpack_pack_object(&pk, obj) == 0);
    FUZZ_CHECK(sb.size <= n);
    FUZZ_CHECK(whole_under((const uint8_t *)sb.data, sb.size, n, depth) == 0);
    msgpack_sbuffer_destroy(&sb);
    msgpack_zone_destroy(&zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    size_t max_message = max_messages[data[0] & 3];
    unsigned max_depth = 1 + (data[0] >> 2) % FUZZ_MSGPACK_C_DEPTH; /* msgpack-c checks messages */
    const uint8_t *p = data + 3;
    size_t n = size - 3;
    size_t split = ((size_t)data[1] << 8 | data[2]) % (n + 1);
    arrpc__scan *s = arrpc__scan_new(max_message, max_depth);
    size_t *ends = malloc(3 * (n + 1) * sizeof *ends), *cuts = malloc((n + 1) * sizeof *cuts);
    FUZZ_CHECK(s && ends && cuts);
    outcome whole = {ends, 0, 0, 0}, halves = {ends + n + 1, 0, 0, 0};
    outcome bytes = {ends + 2 * (n + 1), 0, 0, 0};
    feed(s, p, n, NULL, 0, &whole);
    feed(s, p, n, &split, 1, &halves);
    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    feed(s, p, n, cuts, n ? n - 1 : 0, &bytes);
    same_outcome(&whole, &halves);
    same_outcome(&whole, &bytes);
    /* arrpc__scan_whole (its one-pass walk first) agrees with the resumable path on the stream. */
    int once = arrpc__scan_whole(s, p, n);
    if (whole.count > 0 && whole.ends[0] == n)
        FUZZ_CHECK(once == 0);
    else
        FUZZ_CHECK(once == (whole.count == 0 && whole.rc < 0 ? whole.rc : ARRPC_EPROTO));
    for (size_t i = 0, start = 0; i < whole.count; start = whole.ends[i++])
        check_message(s, p + start, whole.ends[i] - start, max_depth);
    free(cuts);
    free(ends);
    arrpc__scan_free(s);
    return 0;
}
