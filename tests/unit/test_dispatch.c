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
#include "workers/dispatch.h"

/* The exact texts of 0.5.0's error replies, spelled out rather than taken from the headers. */
#define RPC_PREFIX "arrpc.error.RpcException: "
#define AUTH_REPLY                                                                                 \
    "arrpc.error.AuthException: Invalid or missing message signature, make sure 'auth_secret' "    \
    "is set/correct"

#define MAX_MESSAGE 1024u

static const uint8_t secret[] = "s3cret";
#define SECRET_LEN (sizeof secret - 1)

/* What the test handlers saw and what some of them are told to do. */
typedef struct {
    int calls;
    int was_signed;
    size_t reply_bin; /* h_bin: bytes of the bin to answer with */
} ctx;

/* ---- handlers ----------------------------------------------------------------------------- */

static void seen(arrpc_call *call, void *udata)
{
    ctx *c = udata;
    c->calls++;
    c->was_signed = arrpc_call_signed(call);
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

static int h_two(arrpc_call *call, const msgpack_object *req, msgpack_packer *pk, void *udata)
{
    (void)req;
    seen(call, udata);
    msgpack_pack_int(pk, 1);
    msgpack_pack_int(pk, 2);
    return 0;
}

static int h_c1(arrpc_call *call, const msgpack_object *req, msgpack_packer *pk, void *udata)
{
    (void)req;
    seen(call, udata);
    return pk->callback(pk->data, "\xc1", 1) == 0 ? 0 : ARRPC_ENOMEM;
}

static int h_half_array(arrpc_call *call, const msgpack_object *req, msgpack_packer *pk,
                        void *udata)
{
    (void)req;
    seen(call, udata);
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 1);
    return 0;
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

/* Decodes the reply that starts at offset `at` of r->out; it must end the buffer. */
static void decode_reply(reply *r, size_t at)
{
    size_t off = 0;
    assert_int_equal(msgpack_unpack((const char *)r->out.data + r->out.head + at,
                                    arrpc__buf_used(&r->out) - at, &off, &r->zone, &r->obj),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(at + off, arrpc__buf_used(&r->out)); /* exactly one object */
}

static void run(const arrpc__worker_config *cfg, const void *msg, size_t n, reply *r)
{
    arrpc__dispatcher *d = arrpc__dispatcher_new(cfg);
    assert_non_null(d);
    *r = (reply){0};
    assert_true(msgpack_zone_init(&r->zone, 1024));
    assert_int_equal(arrpc__dispatch(d, msg, n, &r->out, &r->outcome), 0);
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

/* ---- handler results ---------------------------------------------------------------------- */

static void test_echo(void **state)
{
    (void)state;
    ctx c = {0};
    arrpc__worker_config cfg = config(h_echo, &c, 0);
    reply r;
    run(&cfg, sample, SAMPLE_LEN, &r);
    assert_int_equal(r.outcome, ARRPC_OUTCOME_OK);
    assert_reply_bytes(&r, sample, SAMPLE_LEN);
    assert_int_equal(c.calls, 1);
    assert_false(c.was_signed);
    reply_free(&r);
}

/* 0.5.0 leaves falsy requests unanswered; every request gets its reply here. */
static void test_falsy_requests_are_answered(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
    } falsy[] = {{"\x80", 1}, {"\x00", 1}, {"\xa0", 1}, {"\xc0", 1}, {"\xc2", 1}, {"\x90", 1}};
    for (size_t i = 0; i < sizeof falsy / sizeof falsy[0]; i++) {
        ctx c = {0};
        arrpc__worker_config cfg = config(h_echo, &c, 0);
        reply r;
        run(&cfg, falsy[i].bytes, falsy[i].len, &r);
        assert_reply_bytes(&r, falsy[i].bytes, falsy[i].len);
        reply_free(&r);
    }
}

static void test_call_fail_gives_exact_rpc_exception(void **state)
{
    (void)state;
    ctx c = {0};
    arrpc__worker_config cfg = config(h_fail, &c, 0);
    reply r;
    run(&cfg, sample, SAMPLE_LEN, &r);
    assert_int_equal(r.outcome, ARRPC_OUTCOME_RPC_ERROR);
    assert_str(&r.obj, "arrpc.error.RpcException: no such key: k1");
    reply_free(&r);
}

static void test_fail_after_packing_drops_the_partial_reply(void **state)
{
    (void)state;
    ctx c = {0};
    arrpc__worker_config cfg = config(h_pack_then_fail, &c, 0);
    reply r;
    run(&cfg, sample, SAMPLE_LEN, &r);
    assert_int_equal(r.outcome, ARRPC_OUTCOME_RPC_ERROR);
    assert_str(&r.obj, "arrpc.error.RpcException: changed my mind");
    reply_free(&r);
}

static void test_long_failure_message_is_cut(void **state)
{
    (void)state;
    ctx c = {0};
    arrpc__worker_config cfg = config(h_long_fail, &c, 0);
    reply r;
    run(&cfg, sample, SAMPLE_LEN, &r);
    assert_int_equal(r.obj.type, MSGPACK_OBJECT_STR);
    assert_int_equal(r.obj.via.str.size, strlen(RPC_PREFIX) + ARRPC_FAIL_MESSAGE_MAX - 1);
    reply_free(&r);
}

static void test_error_code_without_message_names_the_code(void **state)
{
    (void)state;
    ctx c = {0};
    arrpc__worker_config cfg = config(h_error_code, &c, 0);
    reply r;
    run(&cfg, sample, SAMPLE_LEN, &r);
    assert_int_equal(r.outcome, ARRPC_OUTCOME_RPC_ERROR);
    assert_str_with(&r.obj, RPC_PREFIX, arrpc_strerror(ARRPC_EINVAL));
    reply_free(&r);
}

static void test_packing_nothing_answers_nil(void **state)
{
    (void)state;
    ctx c = {0};
    arrpc__worker_config cfg = config(h_nothing, &c, 0);
    reply r;
    run(&cfg, sample, SAMPLE_LEN, &r);
    assert_int_equal(r.outcome, ARRPC_OUTCOME_OK);
    assert_reply_bytes(&r, "\xc0", 1);
    reply_free(&r);
}

static void test_invalid_replies_become_rpc_exceptions(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        arrpc_handler_fn handler;
    } cases[] = {
        {"two objects", h_two},
        {"byte 0xc1", h_c1},
        {"array missing an element", h_half_array},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ctx c = {0};
        arrpc__worker_config cfg = config(cases[i].handler, &c, 0);
        reply r;
        print_message("%s\n", cases[i].name);
        run(&cfg, sample, SAMPLE_LEN, &r);
        assert_int_equal(r.outcome, ARRPC_OUTCOME_BAD_REPLY);
        assert_str_with(&r.obj, RPC_PREFIX, "reply is invalid");
        reply_free(&r);
    }
}

/* bin16 has a 3-byte header: a bin of MAX_MESSAGE - 3 bytes is a reply of exactly the limit. */
static void test_reply_of_exactly_max_message_passes(void **state)
{
    (void)state;
    ctx c = {.reply_bin = MAX_MESSAGE - 3};
    arrpc__worker_config cfg = config(h_bin, &c, 0);
    reply r;
    run(&cfg, sample, SAMPLE_LEN, &r);
    assert_int_equal(r.outcome, ARRPC_OUTCOME_OK);
    assert_int_equal(arrpc__buf_used(&r.out), MAX_MESSAGE);
    assert_int_equal(r.obj.type, MSGPACK_OBJECT_BIN);
    reply_free(&r);
}

static void test_reply_over_max_message_is_an_rpc_exception(void **state)
{
    (void)state;
    ctx c = {.reply_bin = MAX_MESSAGE - 2};
    arrpc__worker_config cfg = config(h_bin, &c, 0);
    reply r;
    run(&cfg, sample, SAMPLE_LEN, &r);
    assert_int_equal(r.outcome, ARRPC_OUTCOME_BAD_REPLY);
    assert_str_with(&r.obj, RPC_PREFIX, "1024");
    reply_free(&r);
}

/* ---- request decoding --------------------------------------------------------------------- */

/* dispatch is given what the scanner framed, but checks again: bytes that are not exactly one
 * object are answered with an error, never passed on. */
static void test_undecodable_request_is_an_rpc_exception(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *bytes;
        size_t len;
    } cases[] = {
        {"byte 0xc1", "\xc1", 1},
        {"truncated", "\x92\x01", 2},
        {"trailing bytes", "\x01\x02", 2},
        {"empty", "", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ctx c = {0};
        arrpc__worker_config cfg = config(h_echo, &c, 0);
        reply r;
        print_message("%s\n", cases[i].name);
        run(&cfg, cases[i].bytes, cases[i].len, &r);
        assert_int_equal(r.outcome, ARRPC_OUTCOME_INVALID);
        assert_str(&r.obj, "arrpc.error.RpcException: invalid MessagePack");
        assert_int_equal(c.calls, 0);
        reply_free(&r);
    }
}

/* depth nested one-element arrays around a nil. */
static size_t nested(uint8_t *p, unsigned depth)
{
    memset(p, 0x91, depth);
    p[depth] = 0xc0;
    return depth + 1u;
}

/* msgpack-c decodes at most 32 levels (MSGPACK_EMBED_STACK_SIZE); up to there requests work. */
static void test_request_nested_32_deep_is_echoed(void **state)
{
    (void)state;
    uint8_t msg[64];
    size_t n = nested(msg, 32);
    ctx c = {0};
    arrpc__worker_config cfg = config(h_echo, &c, 0);
    reply r;
    run(&cfg, msg, n, &r);
    assert_int_equal(r.outcome, ARRPC_OUTCOME_OK);
    assert_reply_bytes(&r, msg, n);
    reply_free(&r);
}

/* Deeper than msgpack-c can decode: still exactly one reply, an RpcException. */
static void test_request_deeper_than_the_decoder_gets_one_error_reply(void **state)
{
    (void)state;
    uint8_t msg[64];
    size_t n = nested(msg, 40);
    ctx c = {0};
    arrpc__worker_config cfg = config(h_echo, &c, 0);
    reply r;
    run(&cfg, msg, n, &r);
    assert_int_not_equal(r.outcome, ARRPC_OUTCOME_OK);
    assert_str_with(&r.obj, RPC_PREFIX, "");
    reply_free(&r);
}

/* Replies are appended after what the buffer already holds, in order. */
static void test_replies_append_in_order(void **state)
{
    (void)state;
    ctx c = {0};
    arrpc__worker_config cfg = config(h_echo, &c, 0);
    arrpc__dispatcher *d = arrpc__dispatcher_new(&cfg);
    reply r = {0};
    arrpc__outcome outcome;
    assert_non_null(d);
    assert_true(msgpack_zone_init(&r.zone, 1024));
    assert_int_equal(arrpc__buf_append(&r.out, "xx", 2), 0);
    arrpc__buf_consume(&r.out, 1);
    assert_int_equal(arrpc__dispatch(d, (const uint8_t *)"\x01", 1, &r.out, &outcome), 0);
    assert_int_equal(arrpc__dispatch(d, (const uint8_t *)"\xc1", 1, &r.out, &outcome), 0);
    assert_int_equal(arrpc__dispatch(d, (const uint8_t *)"\x02", 1, &r.out, &outcome), 0);
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

/* The reply is checked where it was packed, counted from head: unconsumed bytes before it (and
 * consumed invalid ones before those) do not count, whether or not packing moved the bytes. */
static void test_reply_checked_after_unconsumed_output(void **state)
{
    (void)state;
    static const size_t fill[] = {2, 4096}; /* 4096: the reply does not fit, reserve moves */
    for (size_t i = 0; i < sizeof fill / sizeof fill[0]; i++) {
        ctx c = {0};
        arrpc__worker_config cfg = config(h_echo, &c, 0);
        arrpc__dispatcher *d = arrpc__dispatcher_new(&cfg);
        reply r = {0};
        arrpc__outcome outcome;
        uint8_t *invalid = malloc(fill[i]);
        assert_non_null(d);
        assert_non_null(invalid);
        memset(invalid, 0xc1, fill[i]);
        assert_true(msgpack_zone_init(&r.zone, 1024));
        assert_int_equal(arrpc__buf_append(&r.out, invalid, fill[i]), 0);
        arrpc__buf_consume(&r.out, fill[i] - 1); /* one unconsumed 0xc1 stays */
        assert_int_equal(arrpc__dispatch(d, (const uint8_t *)sample, SAMPLE_LEN, &r.out, &outcome),
                         0);
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

/* ---- signatures --------------------------------------------------------------------------- */

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

static void test_valid_envelope_reaches_handler_signed(void **state)
{
    (void)state;
    ctx c = {0};
    arrpc__worker_config cfg = config(h_echo, &c, 1);
    msgpack_sbuffer env = envelope(secret, SECRET_LEN, sample, SAMPLE_LEN);
    reply r;
    run(&cfg, env.data, env.size, &r);
    assert_int_equal(r.outcome, ARRPC_OUTCOME_OK);
    assert_int_equal(c.calls, 1);
    assert_true(c.was_signed);
    assert_reply_bytes(&r, sample, SAMPLE_LEN); /* the handler saw the inner request */
    reply_free(&r);
    msgpack_sbuffer_destroy(&env);
}

static void test_unsigned_request_gets_exact_auth_exception(void **state)
{
    (void)state;
    ctx c = {0};
    arrpc__worker_config cfg = config(h_echo, &c, 1);
    reply r;
    run(&cfg, sample, SAMPLE_LEN, &r);
    assert_int_equal(r.outcome, ARRPC_OUTCOME_AUTH_ERROR);
    assert_str(&r.obj, AUTH_REPLY);
    assert_int_equal(c.calls, 0);
    reply_free(&r);
}

static void test_envelope_signed_with_another_secret_is_refused(void **state)
{
    (void)state;
    ctx c = {0};
    arrpc__worker_config cfg = config(h_echo, &c, 1);
    msgpack_sbuffer env = envelope((const uint8_t *)"wrong", 5, sample, SAMPLE_LEN);
    reply r;
    run(&cfg, env.data, env.size, &r);
    assert_int_equal(r.outcome, ARRPC_OUTCOME_AUTH_ERROR);
    assert_str(&r.obj, AUTH_REPLY);
    assert_int_equal(c.calls, 0);
    reply_free(&r);
    msgpack_sbuffer_destroy(&env);
}

/* Without a secret an envelope is an ordinary request: passed on as is, not signed. */
static void test_envelope_without_secret_is_a_plain_request(void **state)
{
    (void)state;
    ctx c = {0};
    arrpc__worker_config cfg = config(h_echo, &c, 0);
    msgpack_sbuffer env = envelope(secret, SECRET_LEN, sample, SAMPLE_LEN);
    reply r;
    run(&cfg, env.data, env.size, &r);
    assert_int_equal(r.outcome, ARRPC_OUTCOME_OK);
    assert_false(c.was_signed);
    assert_reply_bytes(&r, env.data, env.size);
    reply_free(&r);
    msgpack_sbuffer_destroy(&env);
}

static void test_signed_data_that_is_not_one_object(void **state)
{
    (void)state;
    uint8_t deep[80];
    const struct {
        const char *name;
        const char *bytes;
        size_t len;
    } cases[] = {
        {"empty", "", 0},
        {"truncated", "\x93\x01\x02", 3},
        {"trailing bytes", "\x01\x02", 2},
        {"byte 0xc1", "\x91\xc1", 2},
        {"declares more than the limit", "\xdb\xff\xff\xff\xff", 5},
        {"deeper than max_depth", (const char *)deep, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].len;
        if (cases[i].bytes == (const char *)deep) len = nested(deep, ARRPC_DEFAULT_MAX_DEPTH + 1);
        ctx c = {0};
        arrpc__worker_config cfg = config(h_echo, &c, 1);
        msgpack_sbuffer env = envelope(secret, SECRET_LEN, cases[i].bytes, len);
        reply r;
        print_message("%s\n", cases[i].name);
        run(&cfg, env.data, env.size, &r);
        assert_int_equal(r.outcome, ARRPC_OUTCOME_INVALID);
        assert_str_with(&r.obj, RPC_PREFIX, "signed data is not one valid MessagePack object");
        assert_int_equal(c.calls, 0);
        reply_free(&r);
        msgpack_sbuffer_destroy(&env);
    }
}

/* Signed data is held to the server's own limits, which are tighter than what msgpack-c
 * would decode: nesting beyond max_depth, and more bytes than max_message. */
static void test_signed_data_within_the_limits_only(void **state)
{
    (void)state;
    uint8_t deep[8];
    static uint8_t big[MAX_MESSAGE + 1];
    big[0] = 0xc5; /* bin16 of MAX_MESSAGE - 2 zero bytes: MAX_MESSAGE + 1 in all */
    big[1] = (uint8_t)((MAX_MESSAGE - 2) >> 8);
    big[2] = (uint8_t)((MAX_MESSAGE - 2) & 0xff);
    const struct {
        const char *name;
        const uint8_t *bytes;
        size_t len;
    } cases[] = {
        {"one level deeper than max_depth", deep, nested(deep, 5)},
        {"one byte larger than max_message", big, sizeof big},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ctx c = {0};
        arrpc__worker_config cfg = config(h_echo, &c, 1);
        cfg.max_depth = 4;
        msgpack_sbuffer env = envelope(secret, SECRET_LEN, cases[i].bytes, cases[i].len);
        reply r;
        print_message("%s\n", cases[i].name);
        run(&cfg, env.data, env.size, &r);
        assert_int_equal(r.outcome, ARRPC_OUTCOME_INVALID);
        assert_str_with(&r.obj, RPC_PREFIX, "signed data is not one valid MessagePack object");
        assert_int_equal(c.calls, 0);
        reply_free(&r);
        msgpack_sbuffer_destroy(&env);
    }
}

static void test_signed_call_can_fail(void **state)
{
    (void)state;
    ctx c = {0};
    arrpc__worker_config cfg = config(h_fail, &c, 1);
    msgpack_sbuffer env = envelope(secret, SECRET_LEN, sample, SAMPLE_LEN);
    reply r;
    run(&cfg, env.data, env.size, &r);
    assert_int_equal(r.outcome, ARRPC_OUTCOME_RPC_ERROR);
    assert_true(c.was_signed);
    assert_str(&r.obj, "arrpc.error.RpcException: no such key: k1");
    reply_free(&r);
    msgpack_sbuffer_destroy(&env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo),
        cmocka_unit_test(test_falsy_requests_are_answered),
        cmocka_unit_test(test_call_fail_gives_exact_rpc_exception),
        cmocka_unit_test(test_fail_after_packing_drops_the_partial_reply),
        cmocka_unit_test(test_long_failure_message_is_cut),
        cmocka_unit_test(test_error_code_without_message_names_the_code),
        cmocka_unit_test(test_packing_nothing_answers_nil),
        cmocka_unit_test(test_invalid_replies_become_rpc_exceptions),
        cmocka_unit_test(test_reply_of_exactly_max_message_passes),
        cmocka_unit_test(test_reply_over_max_message_is_an_rpc_exception),
        cmocka_unit_test(test_undecodable_request_is_an_rpc_exception),
        cmocka_unit_test(test_request_nested_32_deep_is_echoed),
        cmocka_unit_test(test_request_deeper_than_the_decoder_gets_one_error_reply),
        cmocka_unit_test(test_replies_append_in_order),
        cmocka_unit_test(test_reply_checked_after_unconsumed_output),
        cmocka_unit_test(test_rpc_error_helper_packs_one_str),
        cmocka_unit_test(test_valid_envelope_reaches_handler_signed),
        cmocka_unit_test(test_unsigned_request_gets_exact_auth_exception),
        cmocka_unit_test(test_envelope_signed_with_another_secret_is_refused),
        cmocka_unit_test(test_envelope_without_secret_is_a_plain_request),
        cmocka_unit_test(test_signed_data_that_is_not_one_object),
        cmocka_unit_test(test_signed_data_within_the_limits_only),
        cmocka_unit_test(test_signed_call_can_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
