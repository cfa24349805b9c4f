/* response.c -- one reply: its bytes, the object decoded from them, and its error-string status. */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "../core/decode.h"
#include "../core/wire.h"

#define RESPONSE_ZONE_CHUNK 2048u /* most replies are small; larger ones get more chunks */

struct arrpc_response {
    msgpack_zone *zone; /* the arena of the decoded containers; strings point into data */
    msgpack_object obj;
    int status;        /* ARRPC_OK, ARRPC_ERPC or ARRPC_EAUTH */
    size_t prefix_len; /* of the error prefix, when status is not ARRPC_OK */
    size_t len;
    uint8_t data[];
};

static int str_starts_with(const msgpack_object *o, const char *prefix, size_t n)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size >= n &&
           memcmp(o->via.str.ptr, prefix, n) == 0;
}

/* The error replies: a str that starts with one of these prefixes (core/wire.h). */
static const struct error_kind {
    const char *prefix;
    size_t prefix_len;
    int status;
} error_kinds[] = {
    {ARRPC_RPC_ERROR_PREFIX, sizeof ARRPC_RPC_ERROR_PREFIX - 1, ARRPC_ERPC},
    {ARRPC_AUTH_ERROR_PREFIX, sizeof ARRPC_AUTH_ERROR_PREFIX - 1, ARRPC_EAUTH},
};

/* 0.5.0's client looks for the exception name anywhere in a str reply; we require it at the
 * start, which is where every server puts it, so a handler may answer text that mentions it. */
static void classify(arrpc_response *res)
{
    res->status = ARRPC_OK;
    for (size_t i = 0; i < sizeof error_kinds / sizeof error_kinds[0]; i++) {
        const struct error_kind *k = &error_kinds[i];
        if (str_starts_with(&res->obj, k->prefix, k->prefix_len)) {
            res->status = k->status;
            res->prefix_len = k->prefix_len;
        }
    }
}

int arrpc__response_new(arrpc__decoder *dec, const uint8_t *p, size_t n, arrpc_response **out)
{
    arrpc_response *res = malloc(sizeof *res + n);
    if (!res) return ARRPC_ENOMEM;
    memcpy(res->data, p, n);
    res->len = n;
    res->prefix_len = 0;
    res->zone = msgpack_zone_new(RESPONSE_ZONE_CHUNK);
    if (!res->zone) {
        free(res);
        return ARRPC_ENOMEM;
    }
    int rc = arrpc__decode_whole(dec, res->data, n, res->zone, &res->obj);
    if (rc != 0) {
        arrpc_response_free(res);
        return rc;
    }
    classify(res);
    *out = res;
    return 0;
}

const char *arrpc__response_message(const arrpc_response *res, size_t *len)
{
    if (res->status == ARRPC_OK) return NULL;
    *len = res->obj.via.str.size - res->prefix_len;
    return res->obj.via.str.ptr + res->prefix_len;
}

const msgpack_object *arrpc_response_object(const arrpc_response *res)
{
    return &res->obj;
}

const void *arrpc_response_data(const arrpc_response *res, size_t *len)
{
    if (len) *len = res->len;
    return res->data;
}

int arrpc_response_status(const arrpc_response *res)
{
    return res->status;
}

void arrpc_response_free(arrpc_response *res)
{
    if (!res) return;
    msgpack_zone_free(res->zone);
    free(res);
}
