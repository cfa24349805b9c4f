/* fuzz_decode_diff.c -- the one-pass decoder (core/decode.c) against msgpack-c and the scanner.
 *
 * Input: byte 0 picks the limits (a size limit, and a depth limit of 1 to 64: past msgpack-c's 32
 * some of the time), the rest is one message, or not. Invariants:
 *  - never a crash, a leak or a read outside the input, whatever the bytes (ASan, UBSan);
 *  - the decoder accepts exactly what the scanner (core/scan.c) accepts under the same limits,
 *    and refuses the rest with the scanner's error code, or as truncated: a declared count larger
 *    than the bytes left ends the decoder's walk there (it allocates nothing for it), where the
 *    scanner goes on and may find another error in the bytes that are there;
 *  - read as the first of a stream (arrpc__decode_next), the message ends where the scanner says
 *    it ends; the decoder's error is the scanner's; when the decoder needs more bytes the scanner
 *    needs them too or has found an error further on;
 *  - on every input both accept within msgpack-c's depth, msgpack_unpack gives the same tree:
 *    the same type tags (POSITIVE vs NEGATIVE_INTEGER, FLOAT32 vs FLOAT64), floats bit for bit,
 *    strings of the same bytes, to the same last byte;
 *  - an accepted tree is no deeper than the limit.
 * msgpack-c only sees bytes the scanner accepted: it reserves whatever headers declare. */
#include <string.h>

#include "arrpc.h"
#include "core/decode.h"
#include "core/scan.h"
#include "fuzz.h"
#include "tests/same_object.h"

static const size_t max_messages[] = {8, 64, 1024, 1u << 20};
#define DEPTHS 64u

/* The scanner's and the decoder's verdicts on p[0, n) as a whole and as a stream's first. */
static void check_against_scanner(arrpc__scan *s, arrpc__decoder *d, const uint8_t *p, size_t n,
                                  msgpack_zone *zone)
{
    msgpack_object obj;
    int scanned = arrpc__scan_whole(s, p, n);
    int decoded = arrpc__decode_whole(d, p, n, zone, &obj);
    int truncated = strcmp(arrpc__decoder_error(d), "truncated message") == 0;
    FUZZ_CHECK(scanned == decoded || (truncated && scanned < 0));
    FUZZ_CHECK((decoded == 0) == (arrpc__decoder_error(d)[0] == '\0'));

    size_t scan_used = 0, decode_used = 0;
    arrpc__scan_reset(s);
    int scan_rc = arrpc__scan_feed(s, p, n, &scan_used);
    int decode_rc = arrpc__decode_next(d, p, n, zone, &obj, &decode_used);
    FUZZ_CHECK(scan_rc == decode_rc || (decode_rc == 0 && scan_rc < 0));
    if (decode_rc == 1) FUZZ_CHECK(decode_used == scan_used && decode_used <= n);
}

/* Both decoders on bytes the scanner accepted. */
static void check_against_msgpack_c(arrpc__decoder *d, const uint8_t *p, size_t n,
                                    unsigned max_depth, msgpack_zone *zone)
{
    msgpack_object ours, theirs;
    FUZZ_CHECK(arrpc__decode_whole(d, p, n, zone, &ours) == 0);
    unsigned depth = fuzz_depth(&ours);
    FUZZ_CHECK(depth <= max_depth);
    if (depth > FUZZ_MSGPACK_C_DEPTH) return; /* msgpack-c refuses what it cannot hold */
    size_t off = 0;
    FUZZ_CHECK(msgpack_unpack((const char *)p, n, &off, zone, &theirs) == MSGPACK_UNPACK_SUCCESS);
    FUZZ_CHECK(off == n);
    FUZZ_CHECK(same_object(&ours, &theirs));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t max_message = max_messages[data[0] & 3];
    unsigned max_depth = 1 + (data[0] >> 2) % DEPTHS;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    arrpc__scan *s = arrpc__scan_new(max_message, max_depth);
    arrpc__decoder *d = arrpc__decoder_new(max_message, max_depth);
    msgpack_zone zone;
    FUZZ_CHECK(s && d && msgpack_zone_init(&zone, 2048));
    check_against_scanner(s, d, p, n, &zone);
    if (arrpc__scan_whole(s, p, n) == 0) check_against_msgpack_c(d, p, n, max_depth, &zone);
    msgpack_zone_destroy(&zone);
    arrpc__decoder_free(d);
    arrpc__scan_free(s);
    return 0;
}
