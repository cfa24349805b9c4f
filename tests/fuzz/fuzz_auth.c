/* fuzz_auth.c -- the sign envelope (core/auth.c) and the signed path of the dispatcher.
 *
 * Input: one request as it would arrive, signed or not (the corpus has envelopes signed with
 * FUZZ_SECRET). Invariants:
 *  - arrpc__auth_open on what the bytes decode to accepts only an envelope whose signature is
 *    the HMAC of its data, and then hands back exactly that bin's bytes; an envelope that
 *    arrpc__auth_envelope_at reads from the bytes themselves is one valid message with the same
 *    parts and the same verdict, and a dispatch framed first answers as one that is not;
 *  - the envelope arrpc__auth_wrap builds around the input opens to exactly the input, and one
 *    changed bit in its signature or its data makes it fail;
 *  - arrpc__dispatch with the secret set (an echo handler) answers the input, and the envelope
 *    around it, with exactly one reply: the auth error for anything not correctly signed, the
 *    echo for signed data that is one valid message, an RpcException for any other signed data;
 *  - where the CPU has the SHA extensions, the HMAC on them equals wolfCrypt's, with the input
 *    split into a key (as many bytes as the first says) and the data after it.
 * msgpack-c only ever sees bytes the scanner accepted. */
#include <string.h>

#include "arrpc.h"
#include "core/auth.h"
#include "core/buf.h"
#include "core/scan.h"
#include "core/sha256_hw.h"
#include "core/wire.h"
#include "fuzz.h"
#include "workers/dispatch.h"

#define FUZZ_SECRET "fuzz secret" /* tests/fuzz/make_corpus.py signs with it too */
#define SECRET_LEN (sizeof FUZZ_SECRET - 1)
#define MAX_MESSAGE (1u << 20)

static const uint8_t *secret = (const uint8_t *)FUZZ_SECRET;
static arrpc__worker_config cfg;
static arrpc__dispatcher *dispatcher;
static arrpc__scan *scan;

static int echo(arrpc_call *call, const msgpack_object *req, msgpack_packer *pk, void *udata)
{
    (void)call;
    (void)udata;
    return msgpack_pack_object(pk, *req) == 0 ? 0 : ARRPC_ENOMEM;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cfg = (arrpc__worker_config){.handler = echo,
                                 .secret = secret,
                                 .secret_len = SECRET_LEN,
                                 .max_message = MAX_MESSAGE,
                                 .max_depth = FUZZ_MSGPACK_C_DEPTH};
    dispatcher = arrpc__dispatcher_new(&cfg, 0, NULL);
    scan = arrpc__scan_new(MAX_MESSAGE, FUZZ_MSGPACK_C_DEPTH);
    FUZZ_CHECK(dispatcher && scan);
    return 0;
}

/* The bytes msgpack-c packs for str, or for o when str is NULL. */
static void pack_into(msgpack_sbuffer *sb, const char *str, const msgpack_object *o)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (str)
        FUZZ_CHECK(msgpack_pack_str_with_body(&pk, str, strlen(str)) == 0);
    else
        FUZZ_CHECK(msgpack_pack_object(&pk, *o) == 0);
}

/* Dispatches msg (a whole message) and checks its one reply: the bytes of `expect`, or when that
 * is NULL a str that starts with `prefix`. */
static const arrpc__call_context caller = {.peer = "127.0.0.1:5000"};

static void dispatch_expect(const uint8_t *msg, size_t n, const msgpack_sbuffer *expect,
                            const char *prefix)
{
    arrpc__buf out = {0}, framed_out = {0};
    arrpc__outcome outcome, framed_outcome;
    FUZZ_CHECK(arrpc__dispatch(dispatcher, &caller, msg, n, &out, &outcome) == 0);
    /* Framed first, as the loop's thread does, and not, as a handler thread's dispatch is: the
     * same reply (arrpc__dispatcher_frame decodes, or reads an envelope from its bytes). */
    size_t framed_len = 0;
    FUZZ_CHECK(arrpc__dispatcher_frame(dispatcher, msg, n, &framed_len) == 1 && framed_len == n);
    FUZZ_CHECK(arrpc__dispatch(dispatcher, &caller, msg, n, &framed_out, &framed_outcome) == 0);
    FUZZ_CHECK(framed_outcome == outcome && arrpc__buf_used(&framed_out) == arrpc__buf_used(&out));
    FUZZ_CHECK(
        memcmp(framed_out.data + framed_out.head, out.data + out.head, arrpc__buf_used(&out)) == 0);
    arrpc__buf_free(&framed_out);
    const char *reply = (const char *)out.data + out.head;
    size_t len = arrpc__buf_used(&out);
    FUZZ_CHECK(arrpc__scan_whole(scan, (const uint8_t *)reply, len) == 0);
    if (expect) {
        FUZZ_CHECK(len == expect->size && memcmp(reply, expect->data, len) == 0);
    } else {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        FUZZ_CHECK(msgpack_unpack_next(&u, reply, len, NULL) == MSGPACK_UNPACK_SUCCESS);
        const msgpack_object_str *str = &u.data.via.str;
        FUZZ_CHECK(u.data.type == MSGPACK_OBJECT_STR && str->size >= strlen(prefix) &&
                   memcmp(str->ptr, prefix, strlen(prefix)) == 0);
        msgpack_unpacked_destroy(&u);
    }
    arrpc__buf_free(&out);
}

/* Dispatches an envelope whose signature is right: the echo of its data, or an RpcException
 * when the data is not one valid message. */
static void dispatch_signed(const uint8_t *env, size_t env_len, const uint8_t *data, size_t len)
{
    if (arrpc__scan_whole(scan, data, len) != 0) {
        dispatch_expect(env, env_len, NULL, ARRPC_RPC_ERROR_PREFIX);
        return;
    }
    msgpack_unpacked inner;
    msgpack_sbuffer expect;
    msgpack_unpacked_init(&inner);
    FUZZ_CHECK(msgpack_unpack_next(&inner, (const char *)data, len, NULL) ==
               MSGPACK_UNPACK_SUCCESS);
    pack_into(&expect, NULL, &inner.data);
    dispatch_expect(env, env_len, &expect, NULL);
    msgpack_sbuffer_destroy(&expect);
    msgpack_unpacked_destroy(&inner);
}

/* An unsigned copy of env whose signature (which = 0) or data (which = 1) differs in one bit. */
static void check_tampered(const msgpack_object *env, int which, size_t at)
{
    msgpack_object_kv kv[2];
    memcpy(kv, env->via.map.ptr, sizeof kv);
    for (int i = 0; i < 2; i++) {
        msgpack_object *v = &kv[i].val;
        if ((which == 0) != (v->type == MSGPACK_OBJECT_STR) || v->via.str.size == 0) continue;
        char *copy = malloc(v->via.str.size);
        FUZZ_CHECK(copy != NULL);
        memcpy(copy, v->via.str.ptr, v->via.str.size);
        copy[at % v->via.str.size] ^= 1; /* str and bin share the layout {size, ptr} */
        v->via.str.ptr = copy;
        msgpack_object tampered = *env;
        tampered.via.map.ptr = kv;
        const uint8_t *data;
        size_t len;
        FUZZ_CHECK(arrpc__auth_open(secret, SECRET_LEN, &tampered, &data, &len) == ARRPC_EAUTH);
        free(copy);
    }
}

/* Decodes the n bytes at p (one whole message) into *obj in *zone, which the caller destroys,
 * and opens it as an envelope: arrpc__auth_open's result. */
static int decode_and_open(const uint8_t *p, size_t n, msgpack_zone *zone, msgpack_object *obj,
                           const uint8_t **data, size_t *len)
{
    size_t off = 0;
    FUZZ_CHECK(msgpack_zone_init(zone, 2048));
    FUZZ_CHECK(msgpack_unpack((const char *)p, n, &off, zone, obj) == MSGPACK_UNPACK_SUCCESS);
    return arrpc__auth_open(secret, SECRET_LEN, obj, data, len);
}

/* Where arrpc__auth_envelope_at reads an envelope from the input's first bytes, they are one
 * valid message, and the decoder with arrpc__auth_open finds the same parts in it. */
static void check_envelope_at(const uint8_t *p, size_t n)
{
    arrpc__auth_envelope env;
    size_t used = 0;
    if (!arrpc__auth_envelope_at(p, n, &env, &used)) return;
    FUZZ_CHECK(used <= n && arrpc__scan_whole(scan, p, used) == 0);
    msgpack_zone zone;
    msgpack_object obj;
    const uint8_t *data = NULL;
    size_t len = 0;
    int opened = decode_and_open(p, used, &zone, &obj, &data, &len) == 0;
    FUZZ_CHECK(opened == (arrpc__auth_verify(secret, SECRET_LEN, &env) == 0));
    if (opened)
        FUZZ_CHECK(len == env.len && (len == 0 || data == env.data)); /* msgpack-c: no ptr for 0 */
    msgpack_zone_destroy(&zone);
}

/* The input as it came: decoded, opened, dispatched. */
static void check_as_received(const uint8_t *p, size_t n)
{
    check_envelope_at(p, n);
    if (arrpc__scan_whole(scan, p, n) != 0) return;
    msgpack_zone zone;
    msgpack_object obj;
    const uint8_t *data = NULL;
    size_t len = 0;
    if (decode_and_open(p, n, &zone, &obj, &data, &len) == 0) {
        char hex[ARRPC_SIGN_HEX_LEN + 1];
        FUZZ_CHECK(data >= p && data + len <= p + n);
        FUZZ_CHECK(arrpc__auth_sign_hex(secret, SECRET_LEN, data, len, hex) == 0);
        FUZZ_CHECK(memmem(p, n, hex, ARRPC_SIGN_HEX_LEN) != NULL);
        check_tampered(&obj, 0, n);
        if (len > 0) check_tampered(&obj, 1, n);
        dispatch_signed(p, n, data, len);
    } else {
        msgpack_sbuffer expect;
        pack_into(&expect, ARRPC_AUTH_ERROR_PREFIX ARRPC_AUTH_ERROR_TEXT, NULL);
        dispatch_expect(p, n, &expect, NULL);
        msgpack_sbuffer_destroy(&expect);
    }
    msgpack_zone_destroy(&zone);
}

/* The input as the signed data of a correct envelope. */
static void check_wrapped(const uint8_t *p, size_t n)
{
    msgpack_sbuffer env;
    msgpack_packer pk;
    msgpack_sbuffer_init(&env);
    msgpack_packer_init(&pk, &env, msgpack_sbuffer_write);
    FUZZ_CHECK(arrpc__auth_wrap(secret, SECRET_LEN, p, n, &pk) == 0);
    FUZZ_CHECK(arrpc__scan_whole(scan, (const uint8_t *)env.data, env.size) == 0);
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;
    FUZZ_CHECK(msgpack_zone_init(&zone, 2048));
    FUZZ_CHECK(msgpack_unpack(env.data, env.size, &off, &zone, &obj) == MSGPACK_UNPACK_SUCCESS);
    const uint8_t *data = NULL;
    size_t len = 0;
    FUZZ_CHECK(arrpc__auth_open(secret, SECRET_LEN, &obj, &data, &len) == 0);
    FUZZ_CHECK(len == n && memcmp(data, p, n) == 0);
    check_tampered(&obj, 0, n);
    if (n > 0) check_tampered(&obj, 1, n);
    dispatch_signed((const uint8_t *)env.data, env.size, p, n);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&env);
}

/* The two SHA-256 paths give one HMAC: p[0] is the key's length (up to 255 bytes, so keys longer
 * than a block are hashed first), the key follows, and the data is the rest. */
static void check_paths_agree(const uint8_t *p, size_t n)
{
    if (n == 0 || !arrpc__sha256_hw_available()) return;
    size_t key_len = p[0] < n - 1 ? p[0] : n - 1;
    const uint8_t *key = p + 1, *data = p + 1 + key_len;
    uint8_t soft[32], hard[32];
    FUZZ_CHECK(arrpc__auth_hmac_sha256(key, key_len, data, n - 1 - key_len, soft,
                                       ARRPC_SHA256_WOLFCRYPT) == 0);
    FUZZ_CHECK(
        arrpc__auth_hmac_sha256(key, key_len, data, n - 1 - key_len, hard, ARRPC_SHA256_HW) == 0);
    FUZZ_CHECK(memcmp(soft, hard, sizeof soft) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_MESSAGE / 2) return 0;
    check_as_received(data, size);
    check_wrapped(data, size);
    check_paths_agree(data, size);
    return 0;
}
