/* json_msgpack.h -- JSON <-> MessagePack for the command-line tools, with jansson. Pure: no I/O.
 *
 * JSON has no byte strings, extension types or non-string keys, so they take a tagged form: an
 * object with exactly one key that is one of the tags below. Both directions use it, so every
 * MessagePack value survives a round trip through JSON except as noted.
 *
 *   MessagePack                     JSON
 *   nil, true/false, str, array     null, true/false, string, array
 *   int                             integer; a uint above INT64_MAX becomes a real (lossy)
 *   float32, float64                real (read back as float64); NaN and infinities become null
 *   map, all keys str and distinct  object, in the map's order
 *   bin                             {"$bin": "<base64>"}
 *   ext                             {"$ext": [<type -128..127>, "<base64>"]}
 *   any other map                   {"$map": [[<key>, <value>], ...]}
 *
 * A map whose only key is a tag is written in the "$map" form too, so a literal {"$bin": ...}
 * map does not come back as bin. A str that is not valid UTF-8 cannot be JSON: it is an error. */
#ifndef ARRPC_TOOLS_JSON_MSGPACK_H
#define ARRPC_TOOLS_JSON_MSGPACK_H

#include <stddef.h>

#include <jansson.h>
#include <msgpack.h>

#define ARRPC_JSON_TAG_BIN "$bin"
#define ARRPC_JSON_TAG_EXT "$ext"
#define ARRPC_JSON_TAG_MAP "$map"

/* Packs v. 0, or -1 with the reason in err (a malformed tagged object, or out of memory). */
int arrpc_json_to_msgpack(json_t *v, msgpack_packer *pk, char *err, size_t errlen);

/* A new JSON value for o, or NULL with the reason in err. */
json_t *arrpc_json_from_msgpack(const msgpack_object *o, char *err, size_t errlen);

/* Base64 (RFC 4648, with padding). encode writes 4 * ceil(n / 3) chars and a NUL into out;
 * decode returns the byte count written to out (room for 3 * len / 4), or -1 on bad input. */
void arrpc_base64_encode(const unsigned char *p, size_t n, char *out);
long arrpc_base64_decode(const char *s, size_t len, unsigned char *out);

#endif
