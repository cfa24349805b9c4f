/* json_msgpack.h -- JSON <-> MessagePack for the command-line tools, with jansson. Pure: no I/O.
 *
 * JSON has no byte strings, extension types or non-string keys, so they take a tagged form: an
 * object with exactly one key that is one of the tags below. Both directions use it, so every
 * MessagePack value survives a round trip through JSON except as noted.
 *
 *   MessagePack                     JSON
 *   nil, true/false, str, array     null, true/false, string, array
 *   int                             integer, -2^63 .. 2^64-1 (see "$u64" below)
 *   float32, float64                real (read back as float64); NaN and infinities become null
 *   map, all keys str and distinct  object, in the map's order
 *   bin                             {"$bin": "<base64>"}
 *   ext                             {"$ext": [<type -128..127>, "<base64>"]}
 *   any other map                   {"$map": [[<key>, <value>], ...]}
 *   uint above INT64_MAX            {"$u64": "<decimal>"} in the json_t; printed as a plain integer
 *
 * jansson's integers are long long, so arrpc_json_loadb rewrites an integer literal above
 * INT64_MAX (and at most 2^64-1) into the "$u64" form before jansson sees it, and
 * arrpc_json_dumpf prints that form back as the literal. Reals are printed in the shortest form
 * that reads back to the same double; a float32 is first turned into the double nearest to its
 * own shortest form, so float32 0.1 prints as 0.1.
 *
 * A map whose only key is a tag is written in the "$map" form too, so a literal {"$bin": ...}
 * map does not come back as bin. A str that is not valid UTF-8 cannot be JSON: it is an error. */
#ifndef ARRPC_TOOLS_JSON_MSGPACK_H
#define ARRPC_TOOLS_JSON_MSGPACK_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>
#include <msgpack.h>

#define ARRPC_JSON_TAG_BIN "$bin"
#define ARRPC_JSON_TAG_EXT "$ext"
#define ARRPC_JSON_TAG_MAP "$map"
#define ARRPC_JSON_TAG_U64 "$u64"

/* json_loadb(text, len, flags, jerr), except that integer literals above INT64_MAX and at most
 * 2^64-1 become {"$u64": "<decimal>"}, and integers above 2^64-1 or below -2^63 are refused with
 * a message naming them. Error positions count in the rewritten text when there was a rewrite. */
json_t *arrpc_json_loadb(const char *text, size_t len, size_t flags, json_error_t *jerr);

/* Writes v as compact JSON (like JSON_COMPACT | JSON_ENCODE_ANY), reals in their shortest
 * round-trip form and "$u64" objects as plain integers. 0, or -1 on a write error. */
int arrpc_json_dumpf(const json_t *v, FILE *f);

/* The same into a new string (caller frees), or NULL when out of memory. */
char *arrpc_json_dumps(const json_t *v);

/* Packs v. 0, or -1 with the reason in err (a malformed tagged object, or out of memory). */
int arrpc_json_to_msgpack(json_t *v, msgpack_packer *pk, char *err, size_t errlen);

/* A new JSON value for o, or NULL with the reason in err. */
json_t *arrpc_json_from_msgpack(const msgpack_object *o, char *err, size_t errlen);

/* Base64 (RFC 4648, with padding). encode writes 4 * ceil(n / 3) chars and a NUL into out;
 * decode returns the byte count written to out (room for 3 * len / 4), or -1 on bad input. */
void arrpc_base64_encode(const unsigned char *p, size_t n, char *out);
long arrpc_base64_decode(const char *s, size_t len, unsigned char *out);

#endif
