/* fuzz.h -- what the libFuzzer harnesses share: an invariant check that aborts with its reason,
 * and the small MessagePack helpers two or more of them need. */
#ifndef ARRPC_TESTS_FUZZ_H
#define ARRPC_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <msgpack.h>

/* A broken invariant is a crash, so libFuzzer keeps the input that broke it. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* msgpack-c decodes at most this many nested containers (MSGPACK_EMBED_STACK_SIZE as Debian built
 * it). Harnesses that hold arrpc against msgpack-c stay within it; ARRPC_MAX_DEPTH_LIMIT is far
 * above it now that arrpc decodes with its own decoder (core/decode.c). */
#define FUZZ_MSGPACK_C_DEPTH 32u

/* Nesting of arrays and maps as the scanner counts it: an empty container is one level. */
static inline unsigned fuzz_depth(const msgpack_object *o)
{
    unsigned deepest = 0, d;
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if ((d = fuzz_depth(&o->via.array.ptr[i])) > deepest) deepest = d;
        return deepest + 1;
    }
    if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if ((d = fuzz_depth(&o->via.map.ptr[i].key)) > deepest) deepest = d;
            if ((d = fuzz_depth(&o->via.map.ptr[i].val)) > deepest) deepest = d;
        }
        return deepest + 1;
    }
    return 0;
}

#endif
