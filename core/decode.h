/* decode.h -- MessagePack bytes to a msgpack_object tree in one pass that also enforces the limits.
 *
 * It replaces msgpack-c's msgpack_unpack for whole messages: the same objects (same type tags,
 * str/bin/ext pointing into the input, containers allocated in a msgpack_zone, so handlers see
 * no difference), built in the same walk that checks the nesting depth, the message size and
 * every declared length and element count. It is iterative, with an explicit stack sized by the
 * depth limit when the decoder is made, so its depth is not msgpack-c's fixed 32 and no input
 * can make it recurse or allocate a stack. A declared element count is checked against the bytes
 * actually left before anything is allocated for it (every element takes at least one byte), so
 * the objects of a message take at most 24 bytes per byte of it.
 *
 * Unlike core/scan.h it is not resumable: it needs the message's bytes in one piece. */
#ifndef ARRPC_CORE_DECODE_H
#define ARRPC_CORE_DECODE_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

typedef struct arrpc__decoder arrpc__decoder;

/* A decoder for messages of at most max_message bytes and max_depth nested containers (empty
 * ones count; 1 <= max_depth <= ARRPC_MAX_DEPTH_LIMIT). NULL when out of memory or the limits
 * are invalid. One decoder serves one thread at a time. */
arrpc__decoder *arrpc__decoder_new(size_t max_message, unsigned max_depth);
void arrpc__decoder_free(arrpc__decoder *d);

/* Decodes the one message that starts at p into *obj, its containers allocated in zone and its
 * strings pointing into p (which must outlive obj). Returns:
 *   1  a whole message of *used bytes (more may follow it in p);
 *   0  p[0, n) is the beginning of a message, not all of it (nothing useful is left in zone
 *      beyond wasted space: clear it as usual);
 *  <0  ARRPC_EPROTO (a byte no value starts with), ARRPC_ETOOBIG, ARRPC_ETOODEEP or ARRPC_ENOMEM
 *      (the zone could not grow), with the reason in arrpc__decoder_error. */
int arrpc__decode_next(arrpc__decoder *d, const uint8_t *p, size_t n, msgpack_zone *zone,
                       msgpack_object *obj, size_t *used);

/* Decodes p[0, n), which must be exactly one message: 0, or a negative code as above
 * (ARRPC_EPROTO also for a truncated message or bytes after its end). */
int arrpc__decode_whole(arrpc__decoder *d, const uint8_t *p, size_t n, msgpack_zone *zone,
                        msgpack_object *obj);

/* A text naming the last error, worded as core/scan.c words it; empty when none. */
const char *arrpc__decoder_error(const arrpc__decoder *d);

#endif
