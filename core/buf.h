/* buf.h -- growable byte buffers with a hard size bound, and a msgpack_packer that writes into one.
 */
#ifndef ARRPC_CORE_BUF_H
#define ARRPC_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

#define ARRPC_BUF_KEEP (64u * 1024u) /* capacity kept by an emptied buffer; larger is released */

/* data[head, len) holds the bytes not yet consumed; [len, cap) is free space. */
typedef struct arrpc__buf {
    uint8_t *data;
    size_t head;
    size_t len;
    size_t cap;
} arrpc__buf;

static inline size_t arrpc__buf_used(const arrpc__buf *b)
{
    return b->len - b->head;
}

/* Makes room for `extra` more bytes after len, growing by doubling, moving unconsumed bytes to
 * the front first when that is enough. 0, or ARRPC_ENOMEM. */
int arrpc__buf_reserve(arrpc__buf *b, size_t extra);
int arrpc__buf_append(arrpc__buf *b, const void *p, size_t n);
/* Marks n bytes at head consumed; an emptied buffer restarts at 0 and drops excess capacity. */
void arrpc__buf_consume(arrpc__buf *b, size_t n);
/* Keeps only the first `keep` unconsumed bytes (to take back a partly packed reply). Offsets
 * are counted from head because reserve may move the bytes to the front. */
void arrpc__buf_truncate(arrpc__buf *b, size_t keep);
void arrpc__buf_free(arrpc__buf *b);

/* A msgpack_packer write callback whose data argument is an arrpc__buf. */
int arrpc__buf_pack_write(void *buf, const char *p, size_t n);

#endif
