/* scan.h -- a resumable MessagePack validator and framer: bytes in, "one whole message" out.
 *
 * It does no I/O and allocates nothing after arrpc__scan_new. It runs over incoming bytes before
 * msgpack-c sees them, because msgpack-c reserves memory for every element a header declares
 * before any element arrives: here a declared length or element count may never exceed the bytes
 * the message may still have, nesting is bounded, and the whole message is bounded. */
#ifndef ARRPC_CORE_SCAN_H
#define ARRPC_CORE_SCAN_H

#include <stddef.h>
#include <stdint.h>

typedef struct arrpc__scan arrpc__scan;

/* A scanner for messages of at most max_message bytes and max_depth nested containers
 * (max_depth <= ARRPC_MAX_DEPTH_LIMIT). NULL when out of memory or the limits are invalid. */
arrpc__scan *arrpc__scan_new(size_t max_message, unsigned max_depth);
void arrpc__scan_free(arrpc__scan *s);
/* Forgets any partial message: the next byte fed starts a new one. */
void arrpc__scan_reset(arrpc__scan *s);

/* Feeds n bytes that continue the stream. Returns:
 *   1  a message ended: *used is the number of bytes of p that belong to it (the rest, if any,
 *      starts the next message; the scanner is ready for it);
 *   0  every byte was consumed (*used == n) and the message is not complete yet;
 *  <0  ARRPC_EPROTO (a byte no MessagePack value starts with), ARRPC_ETOOBIG or ARRPC_ETOODEEP.
 *      The stream cannot be resynchronised after an error; reset before feeding again. */
int arrpc__scan_feed(arrpc__scan *s, const uint8_t *p, size_t n, size_t *used);

/* Bytes of the current (partial) message fed so far. */
size_t arrpc__scan_pending(const arrpc__scan *s);

/* A text naming the last error, e.g. "declared length 4294967295 exceeds the 16777216-byte
 * message limit"; empty when none. */
const char *arrpc__scan_error(const arrpc__scan *s);

/* Returns 0 when the n bytes at p are exactly one valid message within the scanner's limits,
 * otherwise a negative code (ARRPC_EPROTO also for a truncated message or trailing bytes). */
int arrpc__scan_whole(arrpc__scan *s, const uint8_t *p, size_t n);

#endif
