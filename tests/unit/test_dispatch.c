/* test_dispatch.c -- one whole request in, exactly one reply out: handlers, errors, signatures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "arrpc.h"
#include "core/auth.h"
#include "core/buf.h"
#include "core/decode.h"
#include "workers/dispatch.h"

/* The exact texts of 0.5.0's error replies, spelled out rather than taken from the headers. */
#define RPC_PREFIX "arrpc.error.RpcException: "
#define AUTH_REPLY                                                                                 \
    "arrpc.error.AuthException: Invalid or missing message signature, make sure 'auth_secret' "    \
    "is set/correct"

#define MAX_MESSAGE 1024u

static const uint8_t secret[] = "s3cret";
/* Who sends every request of these tests. */
static const arrpc__call_context caller = {.peer = "127.0.0.1:5000", .tls_peer = "/CN=client"};
#define SECRET_LEN (sizeof secret - 1)

/* What the test handlers saw and what some of them are told to do. */
typedef struct {
    int calls;
    int was_signed;
    const char *peer, *tls_peer; /* what the call said about its client */
    size_t reply_bin;            /* h_bin: bytes of the bin to answer with */
    const char *raw;             /* h_raw: the bytes to answer with */
    size_t raw_len;
} ctx;

/* ---- handlers ----------------------------------------------------------------------------- */

static void seen(arrpc_call *call, void *udata)
{
    ctx *c = udata;
    c->calls++;
    c->was_signed = arrpc_call_signed(call);
    c->peer = arrpc_call_peer(call);
    c->tls_peer = arrpc_call_tls_peer(call);
}

static int h_echo(arrpc_call *call, const msgpack_object *req, msgpack_packer *pk, void *udata)
{
    seen(call, udata);
    return msgpack_pack_object(pk, *req) == 0 ? 0 : ARRPC_ENOMEM;
}

static int h_fail(arrpc_call *call, const msgpack_object *req, msgpack_packer *pk, void *udata)
{
    (void)req;
    (void)pk;
    seen(call, udata);
    return arrpc_call_fail(call, "no such key: %s", "k1");
}

/* Packs half a reply, then fails: only the failure may reach the client. */
static int h_pack_then_fail(arrpc_call *call, const msgpack_object *req, msgpack_packer *pk,
                            void *udata)
{
    (void)req;
    seen(call, udata);
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 1);
    return arrpc_call_fail(call, "changed my mind");
}

static int h_long_fail(arrpc_call *call, const msgpack_object *req, msgpack_packer *pk, void *udata)
{
    (void)req;
    (void)pk;
    seen(call, udata);
    return arrpc_call_fail(call, "%0*d", (int)ARRPC_FAIL_MESSAGE_MAX * 2, 7);
}

static int h_error_code(arrpc_call *call, const msgpack_object *req, msgpack_packer *pk,
                        void *udata)
{
    (void)req;
    (void)pk;
    seen(call, udata);
    return ARRPC_EINVAL;
}

static int h_nothing(arrpc_call *call, const msgpack_object *req, msgpack_packer *pk, void *udata)
{
    (void)req;
    (void)pk;
    seen(call, udata);
    return 0;
}

/* Appends the case's raw bytes, unchecked, as the reply. */
static int h_raw(arrpc_call *call, const msgpack_object *req, msgpack_packer *pk, void *udata)
{
    const ctx *c = udata;
    (void)req;
    seen(call, udata);
    return pk->callback(pk->data, c->raw, c->raw_len) == 0 ? 0 : ARRPC_ENOMEM;
}

static int h_bin(arrpc_call *call, const msgpack_object *req, msgpack_packer *pk, void *udata)
{
    ctx *c = udata;
    (void)req;
    seen(call, udata);
    char *fill = calloc(1, c->reply_bin);
    assert_non_null(fill);
    int failed = msgpack_pack_bin_with_body(pk, fill, c->reply_bin);
    free(fill);
    return failed ? ARRPC_ENOMEM : 0;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static arrpc__worker_config config(arrpc_handler_fn handler, ctx *c, int with_secret)
{
    return (arrpc__worker_config){
        .handler = handler,
        .udata = c,
        .handler_name = "test",
        .secret = with_secret ? secret : NULL,
        .secret_len = with_secret ? SECRET_LEN : 0,
        .max_message = MAX_MESSAGE,
        .max_depth = ARRPC_DEFAULT_MAX_DEPTH,
    };
}

/* One dispatch and the one object it appended. */
typedef struct {
    arrpc__buf out;
    msgpack_zone zone;
    msgpack_object obj;
    arrpc__outcome outcome;
} reply;

/* Decodes the reply that starts at offset `at` of r->out; it must be exactly one object that
 * ends the buffer. Our decoder, not msgpack-c's: echoed requests may be deeper than its 32. */
static void decode_reply(reply *r, size_t at)
{
    arrpc__decoder *dec = arrpc__decoder_new(ARRPC_MAX_MESSAGE_LIMIT, ARRPC_MAX_DEPTH_LIMIT);
    assert_non_null(dec);
    assert_int_equal(arrpc__decode_whole(dec, r->out.data + r->out.head + at,
                                         arrpc__buf_used(&r->out) - at, &r->zone, &r->obj),
                     0);
    arrpc__decoder_free(dec);
}

static void run(const arrpc__worker_config *cfg, const void *msg, size_t n, reply *r)
{
    arrpc__dispatcher *d = arrpc__dispatcher_new(cfg, 0, NULL);
    assert_non_null(d);
    *r = (reply){0};
    assert_true(msgpack_zone_init(&r->zone, 1024));
    assert_int_equal(arrpc__dispatch(d, &caller, msg, n, &r->out, &r->outcome), 0);
    arrpc__dispatcher_free(d);
    decode_reply(r, 0);
}

static void reply_free(reply *r)
{
    msgpack_zone_destroy(&r->zone);
    arrpc__buf_free(&r->out);
}

static void assert_str(const msgpack_object *o, const char *text)
{
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, strlen(text));
    assert_memory_equal(o->via.str.ptr, text, strlen(text));
}

/* A str reply that starts with prefix and mentions `mentions` somewhere after it. */
static void assert_str_with(const msgpack_object *o, const char *prefix, const char *mentions)
{
    char text[8192];
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_true(o->via.str.size < sizeof text);
    memcpy(text, o->via.str.ptr, o->via.str.size);
    text[o->via.str.size] = '\0';
    assert_true(strncmp(text, prefix, strlen(prefix)) == 0);
    assert_non_null(strstr(text + strlen(prefix), mentions));
}

/* The reply's bytes are exactly `bytes`. */
static void assert_reply_bytes(const reply *r, const void *bytes, size_t n)
{
    assert_int_equal(arrpc__buf_used(&r->out), n);
    assert_memory_equal(r->out.data + r->out.head, bytes, n);
}

static const char sample[] = "\x93\x01\xa3two\x81\xa1k\xc0"; /* [1, "two", {"k": nil}] */
#define SAMPLE_LEN (sizeof sample - 1)

/* depth nested one-element arrays around a nil. */
static size_t nested(uint8_t *p, unsigned depth)
{
    memset(p, 0x91, depth);
    p[depth] = 0xc0;
    return depth + 1u;
}

/* The envelope arrpc 0.5.0's client sends around `data`, signed with key. */
static msgpack_sbuffer envelope(const uint8_t *key, size_t key_len, const void *data, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(arrpc__auth_wrap(key, key_len, data, len, &pk), 0);
    return sb;
}

/* ---- one request, one reply: the table ---------------------------------------------------- */

/* How a case's request goes to dispatch. */
typedef enum {
    PLAIN,        /* the bytes as they are */
    SIGNED,       /* in an envelope signed with the server's secret */
    SIGNED_WRONG, /* in an envelope signed with another key */
} wrapping;

/* What the one reply must be. */
typedef enum {
    REPLY_DATA,     /* the request before wrapping: the handler echoed what it was given */
    REPLY_WIRE,     /* the bytes dispatched, envelope included */
    REPLY_BYTES,    /* exactly the `size` bytes of `text` */
    REPLY_STR,      /* a str, exactly `text` */
    REPLY_STR_WITH, /* a str: RPC_PREFIX, then `text` somewhere after it */
    REPLY_STR_LEN,  /* a str of `size` bytes */
    REPLY_BIN,      /* a bin; the whole reply is `size` bytes */
} reply_check;

#define ANY_ERROR (-1) /* expected outcome: anything but ARRPC_OUTCOME_OK */

typedef struct dispatch_case {
    const char *name;
    arrpc_handler_fn handler;
    int with_secret;    /* the server requires signatures */
    unsigned max_depth; /* 0: ARRPC_DEFAULT_MAX_DEPTH */
    size_t reply_bin;   /* h_bin's answer */
    const char *raw;    /* h_raw's answer */
    size_t raw_len;
    wrapping wrap;
    const void *request; /* NULL: sample */
    size_t len;
    unsigned nest; /* not 0: the request is `nest` nested one-element arrays around a nil */
    int outcome;   /* an arrpc__outcome, or ANY_ERROR */
    reply_check check;
    const char *text;
    size_t size;
    int was_signed; /* whether the handler, if it ran, saw a verified signature */
} dispatch_case;

/* Signed data one byte larger than MAX_MESSAGE: a bin16 of MAX_MESSAGE - 2 zero bytes. */
static const uint8_t big_bin[MAX_MESSAGE + 1] = {0xc5, (MAX_MESSAGE - 2) >> 8,
                                                 (MAX_MESSAGE - 2) & 0xff};

#define SIGNED_NOT_ONE_OBJECT "signed data is not one valid MessagePack object"
#define INVALID_MSGPACK "arrpc.error.RpcException: invalid MessagePack"

static const dispatch_case cases[] = {
    /* handler results */
    {"echo", h_echo, .outcome = ARRPC_OUTCOME_OK, .check = REPLY_DATA},
    /* 0.5.0 leaves falsy requests unanswered; every request gets its reply here. */
    {"falsy {} is answered", h_echo, .request = "\x80", .len = 1, .check = REPLY_DATA},
    {"falsy 0 is answered", h_echo, .request = "\x00", .len = 1, .check = REPLY_DATA},
    {"falsy \"\" is answered", h_echo, .request = "\xa0", .len = 1, .check = REPLY_DATA},
    {"falsy nil is answered", h_echo, .request = "\xc0", .len = 1, .check = REPLY_DATA},
    {"falsy false is answered", h_echo, .request = "\xc2", .len = 1, .check = REPLY_DATA},
    {"falsy [] is answered", h_echo, .request = "\x90", .len = 1, .check = REPLY_DATA},
    {"call_fail gives the exact RpcException", h_fail, .outcome = ARRPC_OUTCOME_RPC_ERROR,
     .check = REPLY_STR, .text = RPC_PREFIX "no such key: k1"},
    {"failing after packing drops the partial reply", h_pack_then_fail,
     .outcome = ARRPC_OUTCOME_RPC_ERROR, .check = REPLY_STR, .text = RPC_PREFIX "changed my mind"},
    {"a long failure message is cut", h_long_fail, .outcome = ARRPC_OUTCOME_RPC_ERROR,
     .check = REPLY_STR_LEN, .size = sizeof RPC_PREFIX - 1 + ARRPC_FAIL_MESSAGE_MAX - 1},
    {"an error code without a message names the code", h_error_code,
     .outcome = ARRPC_OUTCOME_RPC_ERROR, .check = REPLY_STR_WITH, .text = NULL /* strerror */},
    {"packing nothing answers nil", h_nothing, .check = REPLY_BYTES, .text = "\xc0", .size = 1},
    {"a reply of two objects is invalid", h_raw, .raw = "\x01\x02", .raw_len = 2,
     .outcome = ARRPC_OUTCOME_BAD_REPLY, .check = REPLY_STR_WITH, .text = "reply is invalid"},
    {"a reply with byte 0xc1 is invalid", h_raw, .raw = "\xc1", .raw_len = 1,
     .outcome = ARRPC_OUTCOME_BAD_REPLY, .check = REPLY_STR_WITH, .text = "reply is invalid"},
    {"a reply array missing an element is invalid", h_raw, .raw = "\x92\x01", .raw_len = 2,
     .outcome = ARRPC_OUTCOME_BAD_REPLY, .check = REPLY_STR_WITH, .text = "reply is invalid"},
    /* bin16 has a 3-byte header: a bin of MAX_MESSAGE - 3 bytes is a reply of the limit. */
    {"a reply of exactly max_message passes", h_bin, .reply_bin = MAX_MESSAGE - 3,
     .check = REPLY_BIN, .size = MAX_MESSAGE},
    {"a reply over max_message is an RpcException", h_bin, .reply_bin = MAX_MESSAGE - 2,
     .outcome = ARRPC_OUTCOME_BAD_REPLY, .check = REPLY_STR_WITH, .text = "1024"},

    /* request decoding: dispatch is given what the scanner framed, but checks again; bytes that
     * are not exactly one object are answered with an error, never passed on. */
    {"an undecodable request (byte 0xc1) is an RpcException", h_echo, .request = "\xc1", .len = 1,
     .outcome = ARRPC_OUTCOME_INVALID, .check = REPLY_STR, .text = INVALID_MSGPACK},
    {"an undecodable request (truncated) is an RpcException", h_echo, .request = "\x92\x01",
     .len = 2, .outcome = ARRPC_OUTCOME_INVALID, .check = REPLY_STR, .text = INVALID_MSGPACK},
    {"an undecodable request (trailing bytes) is an RpcException", h_echo, .request = "\x01\x02",
     .len = 2, .outcome = ARRPC_OUTCOME_INVALID, .check = REPLY_STR, .text = INVALID_MSGPACK},
    {"an undecodable request (empty) is an RpcException", h_echo, .request = "", .len = 0,
     .outcome = ARRPC_OUTCOME_INVALID, .check = REPLY_STR, .text = INVALID_MSGPACK},
    /* msgpack-c stops at 32 levels (MSGPACK_EMBED_STACK_SIZE); our decoder goes to max_depth.
     * One deeper, there is still exactly one reply, an RpcException. */
    {"a request nested 40 deep is echoed", h_echo, .nest = 40, .check = REPLY_DATA},
    {"a request nested max_depth deep is echoed", h_echo, .nest = ARRPC_DEFAULT_MAX_DEPTH,
     .check = REPLY_DATA},
    {"a request deeper than max_depth gets one error reply", h_echo,
     .nest = ARRPC_DEFAULT_MAX_DEPTH + 1, .outcome = ARRPC_OUTCOME_INVALID, .check = REPLY_STR,
     .text = INVALID_MSGPACK},

    /* signatures */
    {"a valid envelope reaches the handler signed", h_echo, .with_secret = 1, .wrap = SIGNED,
     .check = REPLY_DATA, .was_signed = 1},
    {"an unsigned request gets the exact AuthException", h_echo, .with_secret = 1,
     .outcome = ARRPC_OUTCOME_AUTH_ERROR, .check = REPLY_STR, .text = AUTH_REPLY},
    {"an envelope signed with another secret is refused", h_echo, .with_secret = 1,
     .wrap = SIGNED_WRONG, .outcome = ARRPC_OUTCOME_AUTH_ERROR, .check = REPLY_STR,
     .text = AUTH_REPLY},
    /* Without a secret an envelope is an ordinary request: passed on as is, not signed. */
    {"an envelope without a secret is a plain request", h_echo, .wrap = SIGNED,
     .check = REPLY_WIRE},
    {"signed data that is empty", h_echo, .with_secret = 1, .wrap = SIGNED, .request = "", .len = 0,
     .outcome = ARRPC_OUTCOME_INVALID, .check = REPLY_STR_WITH, .text = SIGNED_NOT_ONE_OBJECT},
    {"signed data that is truncated", h_echo, .with_secret = 1, .wrap = SIGNED,
     .request = "\x93\x01\x02", .len = 3, .outcome = ARRPC_OUTCOME_INVALID, .check = REPLY_STR_WITH,
     .text = SIGNED_NOT_ONE_OBJECT},
    {"signed data with trailing bytes", h_echo, .with_secret = 1, .wrap = SIGNED,
     .request = "\x01\x02", .len = 2, .outcome = ARRPC_OUTCOME_INVALID, .check = REPLY_STR_WITH,
     .text = SIGNED_NOT_ONE_OBJECT},
    {"signed data with byte 0xc1", h_echo, .with_secret = 1, .wrap = SIGNED, .request = "\x91\xc1",
     .len = 2, .outcome = ARRPC_OUTCOME_INVALID, .check = REPLY_STR_WITH,
     .text = SIGNED_NOT_ONE_OBJECT},
    {"signed data that declares more than the limit", h_echo, .with_secret = 1, .wrap = SIGNED,
     .request = "\xdb\xff\xff\xff\xff", .len = 5, .outcome = ARRPC_OUTCOME_INVALID,
     .check = REPLY_STR_WITH, .text = SIGNED_NOT_ONE_OBJECT},
    {"signed data deeper than max_depth", h_echo, .with_secret = 1, .wrap = SIGNED,
     .nest = ARRPC_DEFAULT_MAX_DEPTH + 1, .outcome = ARRPC_OUTCOME_INVALID, .check = REPLY_STR_WITH,
     .text = SIGNED_NOT_ONE_OBJECT},
    /* Signed data is held to the server's own limits: nesting beyond max_depth; and it cannot be
     * larger than max_message, because the envelope around it would be refused first. */
    {"signed data one level deeper than a max_depth of 4", h_echo, .with_secret = 1, .max_depth = 4,
     .wrap = SIGNED, .nest = 5, .outcome = ARRPC_OUTCOME_INVALID, .check = REPLY_STR_WITH,
     .text = SIGNED_NOT_ONE_OBJECT},
    {"an envelope of signed data larger than max_message is refused", h_echo, .with_secret = 1,
     .wrap = SIGNED, .request = big_bin, .len = sizeof big_bin, .outcome = ARRPC_OUTCOME_INVALID,
     .check = REPLY_STR, .text = INVALID_MSGPACK},
    {"a signed call can fail", h_fail, .with_secret = 1, .wrap = SIGNED,
     .outcome = ARRPC_OUTCOME_RPC_ERROR, .check = REPLY_STR, .text = RPC_PREFIX "no such key: k1",
     .was_signed = 1},
};

static void check_reply(const dispatch_case *k, const reply *r, const void *data, size_t len,
                        const msgpack_sbuffer *wire)
{
    switch (k->check) {
    case REPLY_DATA:
        assert_reply_bytes(r, data, len);
        break;
    case REPLY_WIRE:
        assert_reply_bytes(r, wire->data, wire->size);
        break;
    case REPLY_BYTES:
        assert_reply_bytes(r, k->text, k->size);
        break;
    case REPLY_STR:
        assert_str(&r->obj, k->text);
        break;
    case REPLY_STR_WITH:
        assert_str_with(&r->obj, RPC_PREFIX, k->text ? k->text : arrpc_strerror(ARRPC_EINVAL));
        break;
    case REPLY_STR_LEN:
        assert_int_equal(r->obj.type, MSGPACK_OBJECT_STR);
        assert_int_equal(r->obj.via.str.size, k->size);
        break;
    case REPLY_BIN:
        assert_int_equal(r->obj.type, MSGPACK_OBJECT_BIN);
        assert_int_equal(arrpc__buf_used(&r->out), k->size);
        break;
    }
}

/* The handler runs exactly when the request was decoded and, with a secret, verified. */
static void check_outcome(const dispatch_case *k, arrpc__outcome outcome, const ctx *c)
{
    if (k->outcome == ANY_ERROR) {
        assert_int_not_equal(outcome, ARRPC_OUTCOME_OK);
        return;
    }
    assert_int_equal(outcome, k->outcome);
    int ran = outcome != ARRPC_OUTCOME_INVALID && outcome != ARRPC_OUTCOME_AUTH_ERROR;
    assert_int_equal(c->calls, ran);
    if (!ran) return;
    assert_int_equal(c->was_signed, k->was_signed);
    assert_ptr_equal(c->peer, caller.peer); /* the connection's strings, not copies */
    assert_ptr_equal(c->tls_peer, caller.tls_peer);
}

static void run_case(void **state)
{
    const dispatch_case *k = *state;
    ctx c = {.reply_bin = k->reply_bin, .raw = k->raw, .raw_len = k->raw_len};
    arrpc__worker_config cfg = config(k->handler, &c, k->with_secret);
    if (k->max_depth) cfg.max_depth = k->max_depth;
    uint8_t deep[ARRPC_DEFAULT_MAX_DEPTH + 8];
    const void *data = k->request ? k->request : sample;
    size_t len = k->request ? k->len : SAMPLE_LEN;
    if (k->nest) {
        assert_true(k->nest < sizeof deep);
        data = deep;
        len = nested(deep, k->nest);
    }
    msgpack_sbuffer wire = {.data = (char *)data, .size = len};
    if (k->wrap != PLAIN)
        wire = k->wrap == SIGNED ? envelope(secret, SECRET_LEN, data, len)
                                 : envelope((const uint8_t *)"wrong", 5, data, len);
    reply r;
    run(&cfg, wire.data, wire.size, &r);
    check_outcome(k, r.outcome, &c);
    check_reply(k, &r, data, len, &wire);
    reply_free(&r);
    if (k->wrap != PLAIN) msgpack_sbuffer_destroy(&wire);
}

/* ---- replies around other output ------------------------------------------------------- */

/* Replies are appended after what the buffer already holds, in order. */
static void test_replies_append_in_order(void **state)
{
    (void)state;
    ctx c = {0};
    arrpc__worker_config cfg = config(h_echo, &c, 0);
    arrpc__dispatcher *d = arrpc__dispatcher_new(&cfg, 0, NULL);
    reply r = {0};
    arrpc__outcome outcome;
    assert_non_null(d);
    assert_true(msgpack_zone_init(&r.zone, 1024));
    assert_int_equal(arrpc__buf_append(&r.out, "xx", 2), 0);
    arrpc__buf_consume(&r.out, 1);
    assert_int_equal(arrpc__dispatch(d, &caller, (const uint8_t *)"\x01", 1, &r.out, &outcome), 0);
    assert_int_equal(arrpc__dispatch(d, &caller, (const uint8_t *)"\xc1", 1, &r.out, &outcome), 0);
    assert_int_equal(arrpc__dispatch(d, &caller, (const uint8_t *)"\x02", 1, &r.out, &outcome), 0);
    assert_memory_equal(r.out.data + r.out.head, "x\x01", 2);
    size_t error_len = arrpc__buf_used(&r.out) - 3; /* "x", 0x01, the error, 0x02 */
    assert_int_equal(r.out.data[r.out.head + 2 + error_len], 0x02);
    arrpc__buf_truncate(&r.out, 2 + error_len);
    decode_reply(&r, 2);
    assert_str(&r.obj, "arrpc.error.RpcException: invalid MessagePack");
    assert_int_equal(c.calls, 2);
    arrpc__dispatcher_free(d);
    reply_free(&r);
}

/* A request framed by decoding it is answered from the objects decoded then, once: the bytes
 * are walked one time. What the decoder cannot frame whole is left to the scanner. */
static void test_framed_request_is_decoded_once(void **state)
{
    (void)state;
    ctx c = {0};
    arrpc__worker_config cfg = config(h_echo, &c, 0);
    arrpc__dispatcher *d = arrpc__dispatcher_new(&cfg, 0, NULL);
    reply r = {0};
    arrpc__outcome outcome;
    assert_non_null(d);
    assert_true(msgpack_zone_init(&r.zone, 1024));
    uint8_t stream[] = {0x92, 0x01, 0x02, 0x93}; /* [1, 2], then the start of the next */
    size_t len = 0;
    assert_int_equal(arrpc__dispatcher_frame(d, stream, sizeof stream, &len), 1);
    assert_int_equal(len, 3);
    stream[1] = 0x07; /* the dispatch below must not read the bytes again */
    assert_int_equal(arrpc__dispatch(d, &caller, stream, len, &r.out, &outcome), 0);
    assert_reply_bytes(&r, "\x92\x01\x02", 3);
    arrpc__buf_consume(&r.out, 3);
    assert_int_equal(arrpc__dispatch(d, &caller, stream, len, &r.out, &outcome), 0);
    assert_reply_bytes(&r, "\x92\x07\x02", 3); /* used once: now decoded from the bytes */
    arrpc__buf_consume(&r.out, 3);

    static const struct {
        const char *bytes;
        size_t len;
    } unframed[] = {
        {"\x93\x01", 2}, {"\xc1", 1}, {"\x91\xc1", 2}, {"\xdb\xff\xff\xff\xff", 5}, {"", 0}};
    for (size_t i = 0; i < sizeof unframed / sizeof unframed[0]; i++)
        assert_int_equal(
            arrpc__dispatcher_frame(d, (const uint8_t *)unframed[i].bytes, unframed[i].len, &len),
            0);
    uint8_t deep[ARRPC_DEFAULT_MAX_DEPTH + 2];
    assert_int_equal(
        arrpc__dispatcher_frame(d, deep, nested(deep, ARRPC_DEFAULT_MAX_DEPTH + 1), &len), 0);
    assert_int_equal(c.calls, 2);
    arrpc__dispatcher_free(d);
    reply_free(&r);
}

/* The reply is checked where it was packed, counted from head: unconsumed bytes before it (and
 * consumed invalid ones before those) do not count, whether or not packing moved the bytes. */
static void test_reply_checked_after_unconsumed_output(void **state)
{
    (void)state;
    static const size_t fill[] = {2, 4096}; /* 4096: the reply does not fit, reserve moves */
    for (size_t i = 0; i < sizeof fill / sizeof fill[0]; i++) {
        ctx c = {0};
        arrpc__worker_config cfg = config(h_echo, &c, 0);
        arrpc__dispatcher *d = arrpc__dispatcher_new(&cfg, 0, NULL);
        reply r = {0};
        arrpc__outcome outcome;
        uint8_t *invalid = malloc(fill[i]);
        assert_non_null(d);
        assert_non_null(invalid);
        memset(invalid, 0xc1, fill[i]);
        assert_true(msgpack_zone_init(&r.zone, 1024));
        assert_int_equal(arrpc__buf_append(&r.out, invalid, fill[i]), 0);
        arrpc__buf_consume(&r.out, fill[i] - 1); /* one unconsumed 0xc1 stays */
        assert_int_equal(
            arrpc__dispatch(d, &caller, (const uint8_t *)sample, SAMPLE_LEN, &r.out, &outcome), 0);
        assert_int_equal(outcome, ARRPC_OUTCOME_OK);
        assert_int_equal(r.out.data[r.out.head], 0xc1);
        decode_reply(&r, 1);
        assert_int_equal(arrpc__buf_used(&r.out), 1 + SAMPLE_LEN);
        assert_memory_equal(r.out.data + r.out.head + 1, sample, SAMPLE_LEN);
        free(invalid);
        arrpc__dispatcher_free(d);
        reply_free(&r);
    }
}

static void test_rpc_error_helper_packs_one_str(void **state)
{
    (void)state;
    reply r = {0};
    assert_true(msgpack_zone_init(&r.zone, 1024));
    assert_int_equal(arrpc__dispatch_rpc_error(&r.out, "message too large"), 0);
    decode_reply(&r, 0);
    assert_str(&r.obj, "arrpc.error.RpcException: message too large");
    reply_free(&r);
}

int main(void)
{
    enum { ncases = sizeof cases / sizeof cases[0] };
    struct CMUnitTest tests[ncases + 4] = {
        [ncases] = cmocka_unit_test(test_replies_append_in_order),
        cmocka_unit_test(test_reply_checked_after_unconsumed_output),
        cmocka_unit_test(test_framed_request_is_decoded_once),
        cmocka_unit_test(test_rpc_error_helper_packs_one_str),
    };
    for (size_t i = 0; i < ncases; i++)
        tests[i] = (struct CMUnitTest){
            .name = cases[i].name, .test_func = run_case, .initial_state = (void *)&cases[i]};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
