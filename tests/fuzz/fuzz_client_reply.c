/* fuzz_client_reply.c -- the client's reply reader (arrpc__client_cut_replies in
 * client/client_io.c, arrpc__response_new in client/response.c) over whatever a server might send.
 *
 * Input: byte 0 picks how many replies are due and the client's size limit, byte 1 the size of
 * the reads; the rest is the server's bytes. They are appended to the client's input buffer a
 * read at a time, cutting replies after each read, as arrpc__client_exchange does (without the
 * socket). Invariants:
 *  - read in one piece or in chunks, the bytes give the same replies and the same outcome;
 *  - the replies are consecutive pieces of the stream from its first byte, each decoded whole;
 *  - a reply is an RPC or auth error exactly when it is a str that starts with that error's
 *    prefix, and its message is the rest of the str;
 *  - no reply is larger than the client's limit, and what is not cut stays buffered. */
#include <string.h>

#include "arrpc.h"
#include "client/client.h"
#include "core/wire.h"
#include "fuzz.h"

#define MAX_DUE 16

static const size_t max_messages[] = {16, 256, 4096, 1u << 20};

typedef struct {
    arrpc_response *replies[MAX_DUE];
    size_t got;
    int rc;
    size_t left; /* bytes buffered, not cut */
} outcome;

static void check_status(const arrpc_response *res)
{
    static const struct {
        const char *prefix;
        int status;
    } kinds[] = {{ARRPC_RPC_ERROR_PREFIX, ARRPC_ERPC}, {ARRPC_AUTH_ERROR_PREFIX, ARRPC_EAUTH}};
    const msgpack_object *o = arrpc_response_object(res);
    int expect = ARRPC_OK;
    size_t plen = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t n = strlen(kinds[i].prefix);
        if (o->type == MSGPACK_OBJECT_STR && o->via.str.size >= n &&
            memcmp(o->via.str.ptr, kinds[i].prefix, n) == 0) {
            expect = kinds[i].status;
            plen = n;
        }
    }
    FUZZ_CHECK(arrpc_response_status(res) == expect);
    size_t len = 0;
    const char *msg = arrpc__response_message(res, &len);
    FUZZ_CHECK((msg == NULL) == (expect == ARRPC_OK));
    if (msg) FUZZ_CHECK(msg == o->via.str.ptr + plen && len == o->via.str.size - plen);
}

/* Reads p[0, n) `chunk` bytes at a time into a new client, cutting after each read. */
static void read_replies(const uint8_t *p, size_t n, size_t chunk, size_t due, size_t max_message,
                         outcome *o)
{
    arrpc_client *cli = arrpc_client_new("127.0.0.1", 9);
    FUZZ_CHECK(cli && arrpc_client_set_max_message(cli, max_message) == 0);
    o->got = 0;
    o->rc = 0;
    for (size_t at = 0; at < n && o->rc == 0 && o->got < due; at += chunk) {
        size_t take = n - at < chunk ? n - at : chunk;
        FUZZ_CHECK(arrpc__buf_append(&cli->in, p + at, take) == 0);
        o->rc = arrpc__client_cut_replies(cli, due, o->replies, &o->got);
        FUZZ_CHECK(o->got <= due);
    }
    o->left = arrpc__buf_used(&cli->in);
    arrpc_client_free(cli);
}

/* Returns the bytes the replies took. */
static size_t check_replies(const uint8_t *p, size_t n, const outcome *o, size_t max_message)
{
    size_t at = 0;
    for (size_t i = 0; i < o->got; i++) {
        size_t len = 0;
        const uint8_t *bytes = arrpc_response_data(o->replies[i], &len);
        FUZZ_CHECK(len > 0 && len <= max_message && at + len <= n);
        FUZZ_CHECK(memcmp(bytes, p + at, len) == 0);
        at += len;
        check_status(o->replies[i]);
    }
    FUZZ_CHECK(o->left <= n - at);
    return at;
}

static void same_outcome(const outcome *a, const outcome *b)
{
    FUZZ_CHECK(a->rc == b->rc && a->got == b->got);
    for (size_t i = 0; i < a->got; i++) {
        size_t la = 0, lb = 0;
        const void *pa = arrpc_response_data(a->replies[i], &la);
        const void *pb = arrpc_response_data(b->replies[i], &lb);
        FUZZ_CHECK(la == lb && memcmp(pa, pb, la) == 0);
        FUZZ_CHECK(arrpc_response_status(a->replies[i]) == arrpc_response_status(b->replies[i]));
    }
}

static void free_replies(outcome *o)
{
    for (size_t i = 0; i < o->got; i++)
        arrpc_response_free(o->replies[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t due = 1 + (data[0] & (MAX_DUE - 1));
    size_t max_message = max_messages[(data[0] >> 4) & 3];
    size_t chunk = 1 + data[1];
    const uint8_t *p = data + 2;
    size_t n = size - 2;
    outcome whole, chunked;
    read_replies(p, n, n ? n : 1, due, max_message, &whole);
    read_replies(p, n, chunk, due, max_message, &chunked);
    size_t took = check_replies(p, n, &whole, max_message);
    check_replies(p, n, &chunked, max_message);
    if (whole.rc == 0) FUZZ_CHECK(whole.left == n - took); /* the rest is kept for the next reply */
    same_outcome(&whole, &chunked);
    free_replies(&whole);
    free_replies(&chunked);
    return 0;
}
