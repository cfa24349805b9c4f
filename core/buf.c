/* buf.c -- growable byte buffers (see buf.h). */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

#include "arrpc.h"

#define BUF_MIN_CAP 4096u

int arrpc__buf_reserve(arrpc__buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return 0;
    size_t used = arrpc__buf_used(b);
    if (b->head > 0 && b->cap - used >= extra) {
        memmove(b->data, b->data + b->head, used);
        b->head = 0;
        b->len = used;
        return 0;
    }
    if (extra > SIZE_MAX / 2 - used) return ARRPC_ENOMEM;
    size_t cap = b->cap ? b->cap : BUF_MIN_CAP;
    while (cap - used < extra)
        cap *= 2;
    uint8_t *data = malloc(cap);
    if (!data) return ARRPC_ENOMEM;
    if (used) memcpy(data, b->data + b->head, used);
    free(b->data);
    b->data = data;
    b->head = 0;
    b->len = used;
    b->cap = cap;
    return 0;
}

int arrpc__buf_append(arrpc__buf *b, const void *p, size_t n)
{
    int rc = arrpc__buf_reserve(b, n);
    if (rc == 0 && n > 0) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
    return rc;
}

void arrpc__buf_consume(arrpc__buf *b, size_t n)
{
    b->head += n;
    if (b->head < b->len) return;
    b->head = b->len = 0;
    if (b->cap > ARRPC_BUF_KEEP) { /* one huge message must not pin its memory forever */
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

void arrpc__buf_truncate(arrpc__buf *b, size_t keep)
{
    if (keep < arrpc__buf_used(b)) b->len = b->head + keep;
}

void arrpc__buf_free(arrpc__buf *b)
{
    free(b->data);
    *b = (arrpc__buf){0};
}

int arrpc__buf_pack_write(void *buf, const char *p, size_t n)
{
    arrpc__buf *b = buf;
    if (n == 0) /* msgpack-c writes empty bodies with a NULL pointer; memcpy must not see it */
        return 0;
    if (b->data && b->cap - b->len >= n) { /* the usual case: msgpack-c writes a few bytes */
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
    }
    return arrpc__buf_append(b, p, n) == 0 ? 0 : -1;
}
