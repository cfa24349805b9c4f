/* same_object.h -- whether two decoded msgpack_object trees are the same value, type tags and all,
 * for the tests that hold our decoder (core/decode.c) against msgpack-c's msgpack_unpack.
 *
 * Stricter than msgpack_object_equal where it matters here: floats are compared by their bits
 * (msgpack_object_equal calls NaN unequal to itself), and FLOAT32 is not FLOAT64 nor a
 * POSITIVE_INTEGER a NEGATIVE_INTEGER. Recursive: tests compare trees msgpack-c could decode,
 * at most 32 levels deep. */
#ifndef ARRPC_TESTS_SAME_OBJECT_H
#define ARRPC_TESTS_SAME_OBJECT_H

#include <string.h>

#include <msgpack.h>

static inline int same_bytes(uint32_t na, const char *a, uint32_t nb, const char *b)
{
    return na == nb && (na == 0 || memcmp(a, b, na) == 0);
}

static inline int same_object(const msgpack_object *a, const msgpack_object *b)
{
    if (a->type != b->type) return 0;
    switch (a->type) {
    case MSGPACK_OBJECT_NIL:
        return 1;
    case MSGPACK_OBJECT_BOOLEAN:
        return a->via.boolean == b->via.boolean;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return a->via.u64 == b->via.u64;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return memcmp(&a->via.f64, &b->via.f64, sizeof a->via.f64) == 0;
    case MSGPACK_OBJECT_STR:
        return same_bytes(a->via.str.size, a->via.str.ptr, b->via.str.size, b->via.str.ptr);
    case MSGPACK_OBJECT_BIN:
        return same_bytes(a->via.bin.size, a->via.bin.ptr, b->via.bin.size, b->via.bin.ptr);
    case MSGPACK_OBJECT_EXT:
        return a->via.ext.type == b->via.ext.type &&
               same_bytes(a->via.ext.size, a->via.ext.ptr, b->via.ext.size, b->via.ext.ptr);
    case MSGPACK_OBJECT_ARRAY:
        if (a->via.array.size != b->via.array.size) return 0;
        for (uint32_t i = 0; i < a->via.array.size; i++)
            if (!same_object(&a->via.array.ptr[i], &b->via.array.ptr[i])) return 0;
        return 1;
    case MSGPACK_OBJECT_MAP:
        if (a->via.map.size != b->via.map.size) return 0;
        for (uint32_t i = 0; i < a->via.map.size; i++)
            if (!same_object(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
                !same_object(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
                return 0;
        return 1;
    }
    return 0;
}

#endif
