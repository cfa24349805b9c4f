/* dispatch.c -- one whole request in, exactly one reply out (see dispatch.h). */
#include "dispatch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/auth.h"
#include "../core/decode.h"
#include "../core/scan.h"
#include "../core/wire.h"
#include "../shm/segment.h"
#include "deferred.h"

struct arrpc_call {
    const arrpc__call_context *ctx;
    int is_signed;
    int failed;
    arrpc__dispatcher *d;
    arrpc_deferred *deferred;         /* taken by arrpc_call_defer */
    arrpc__call_context deferred_ctx; /* then ctx points here, into the handle's copies */
    char message[ARRPC_FAIL_MESSAGE_MAX];
};

struct arrpc__dispatcher {
    const arrpc__worker_config *cfg;
    unsigned busy_stamp;
    arrpc__mailbox *box;
    arrpc_deferred *deferred; /* the last call's, until taken */
    msgpack_zone zone;        /* the arena decoded requests live in, cleared after each request */
    arrpc__decoder *decoder;  /* requests and signed data, validated as they are decoded */
    arrpc__scan *check;       /* validates handler replies */
    int last_signed;
    struct { /* a request framed (and decoded, unless an envelope), for the dispatch of it */
        const uint8_t *msg;
        size_t n;
        int is_envelope; /* framed as a packed envelope (arrpc__auth_envelope_at): no obj */
        msgpack_object obj;
    } framed;
};

int arrpc__dispatcher_last_signed(const arrpc__dispatcher *d)
{
    return d->last_signed;
}

/* Shortens a string cut at `len` bytes to the last whole UTF-8 character, so that a client
 * decoding str as UTF-8 (arrpc 0.5.0 does) can read a truncated message. */
static void trim_partial_utf8(char *s, size_t len)
{
    size_t i = len;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
        i--; /* continuation bytes */
    if (i > 0 && ((unsigned char)s[i - 1] & 0x80)) {
        unsigned char lead = (unsigned char)s[i - 1];
        size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
        if (len - (i - 1) < need) s[i - 1] = '\0';
    }
}

void arrpc__dispatch_format_failure(char *buf, size_t cap, const char *fmt, va_list ap)
{
    int n = vsnprintf(buf, cap, fmt, ap);
    if (n >= (int)cap) trim_partial_utf8(buf, cap - 1);
}

int arrpc_call_fail(arrpc_call *call, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    arrpc__dispatch_format_failure(call->message, sizeof call->message, fmt, ap);
    va_end(ap);
    call->failed = 1;
    return ARRPC_ERPC;
}

arrpc_deferred *arrpc_call_defer(arrpc_call *call)
{
    if (!call || !call->d->box) return NULL;
    if (call->deferred) return call->deferred;
    call->deferred = arrpc__deferred_new(call->d->box, call->d->cfg->max_message, call->ctx->peer,
                                         call->ctx->tls_peer);
    if (call->deferred) { /* from now on the call's context lives as long as its handle */
        arrpc_deferred *d = call->deferred;
        call->deferred_ctx = (arrpc__call_context){d->peer, d->has_tls_peer ? d->tls_peer : NULL};
        call->ctx = &call->deferred_ctx;
    }
    return call->deferred;
}

arrpc_deferred *arrpc__dispatcher_take_deferred(arrpc__dispatcher *d)
{
    arrpc_deferred *taken = d->deferred;
    d->deferred = NULL;
    return taken;
}

int arrpc_call_signed(const arrpc_call *call)
{
    return call->is_signed;
}

const char *arrpc_call_peer(const arrpc_call *call)
{
    return call->ctx->peer;
}

const char *arrpc_call_tls_peer(const arrpc_call *call)
{
    return call->ctx->tls_peer;
}

arrpc__dispatcher *arrpc__dispatcher_new(const arrpc__worker_config *cfg, unsigned busy_stamp,
                                         arrpc__mailbox *box)
{
    arrpc__dispatcher *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->cfg = cfg;
    d->busy_stamp = busy_stamp;
    d->box = box;
    d->check = arrpc__scan_new(cfg->max_message, cfg->max_depth);
    d->decoder = arrpc__decoder_new(cfg->max_message, cfg->max_depth);
    if (!d->check || !d->decoder || !msgpack_zone_init(&d->zone, MSGPACK_ZONE_CHUNK_SIZE)) {
        arrpc__scan_free(d->check);
        arrpc__decoder_free(d->decoder);
        free(d);
        return NULL;
    }
    return d;
}

void arrpc__dispatcher_free(arrpc__dispatcher *d)
{
    if (!d) return;
    arrpc__deferred_free(d->deferred);
    msgpack_zone_destroy(&d->zone);
    arrpc__scan_free(d->check);
    arrpc__decoder_free(d->decoder);
    free(d);
}

static int append_error(arrpc__buf *out, const char *prefix, const char *text)
{
    size_t plen = strlen(prefix), tlen = strlen(text), start = arrpc__buf_used(out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, arrpc__buf_pack_write);
    int failed = msgpack_pack_str(&pk, plen + tlen) || msgpack_pack_str_body(&pk, prefix, plen) ||
                 msgpack_pack_str_body(&pk, text, tlen);
    if (failed) /* never leave half a reply: the client would read garbage */
        arrpc__buf_truncate(out, start);
    return failed ? ARRPC_ENOMEM : 0;
}

int arrpc__dispatch_rpc_error(arrpc__buf *out, const char *text)
{
    return append_error(out, ARRPC_RPC_ERROR_PREFIX, text);
}

/* Runs the handler; replaces whatever it packed with an error reply when it failed or packed
 * something other than one object within the size limit. */
static arrpc__outcome call_handler(arrpc__dispatcher *d, const arrpc__call_context *ctx,
                                   const msgpack_object *req, int is_signed, arrpc__buf *out)
{
    arrpc_call call; /* not `= {...}`: zeroing its 4 KiB message per request cost more than the
                      * rest of the dispatch; the message is written only when the call fails */
    call.ctx = ctx;
    call.is_signed = is_signed;
    call.failed = 0;
    call.d = d;
    call.deferred = NULL;
    size_t start = arrpc__buf_used(out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, arrpc__buf_pack_write);
    if (d->cfg->record) /* the master kills a worker stuck past the handler timeout */
        arrpc__shm_busy_begin(d->cfg->record, d->busy_stamp);
    int rc = d->cfg->handler(&call, req, &pk, d->cfg->udata);
    if (d->cfg->record) arrpc__shm_busy_end(d->cfg->record, d->busy_stamp);
    if (call.deferred) { /* the handle answers: what the handler packed or returned is moot */
        arrpc__buf_truncate(out, start);
        d->deferred = call.deferred;
        return ARRPC_OUTCOME_DEFERRED;
    }
    if (rc != 0 || call.failed) {
        arrpc__buf_truncate(out, start);
        if (!call.failed)
            snprintf(call.message, sizeof call.message, "handler failed: %s", arrpc_strerror(rc));
        append_error(out, ARRPC_RPC_ERROR_PREFIX, call.message);
        return ARRPC_OUTCOME_RPC_ERROR;
    }
    return arrpc__dispatch_check_reply(d, out, start);
}

arrpc__outcome arrpc__dispatch_check_reply(arrpc__dispatcher *d, arrpc__buf *out, size_t start)
{
    size_t packed = arrpc__buf_used(out) - start;
    if (packed == 0) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, out, arrpc__buf_pack_write);
        msgpack_pack_nil(&pk);
        return ARRPC_OUTCOME_OK;
    }
    if (arrpc__scan_whole(d->check, out->data + out->head + start, packed) != 0) {
        char why[160];
        snprintf(why, sizeof why, "the handler's reply is invalid: %s",
                 arrpc__scan_error(d->check));
        arrpc__buf_truncate(out, start);
        append_error(out, ARRPC_RPC_ERROR_PREFIX, why);
        return ARRPC_OUTCOME_BAD_REPLY;
    }
    return ARRPC_OUTCOME_OK;
}

static arrpc__outcome auth_failed(arrpc__buf *out)
{
    append_error(out, ARRPC_AUTH_ERROR_PREFIX, ARRPC_AUTH_ERROR_TEXT);
    return ARRPC_OUTCOME_AUTH_ERROR;
}

/* The signed data of a request whose MAC matched, decoded only now: unauthenticated bytes never
 * reach the zone. */
static arrpc__outcome dispatch_signed_data(arrpc__dispatcher *d, const arrpc__call_context *ctx,
                                           const uint8_t *data, size_t len, arrpc__buf *out)
{
    msgpack_object inner;
    if (arrpc__decode_whole(d->decoder, data, len, &d->zone, &inner) != 0) {
        char why[160];
        snprintf(why, sizeof why, "signed data is not one valid MessagePack object: %s",
                 arrpc__decoder_error(d->decoder));
        append_error(out, ARRPC_RPC_ERROR_PREFIX, why);
        return ARRPC_OUTCOME_INVALID;
    }
    d->last_signed = 1;
    return call_handler(d, ctx, &inner, 1, out);
}

static arrpc__outcome dispatch_decoded(arrpc__dispatcher *d, const arrpc__call_context *ctx,
                                       const msgpack_object *obj, arrpc__buf *out)
{
    const arrpc__worker_config *cfg = d->cfg;
    if (!cfg->secret) return call_handler(d, ctx, obj, 0, out);
    const uint8_t *data;
    size_t len;
    if (arrpc__auth_open(cfg->secret, cfg->secret_len, obj, &data, &len) != 0)
        return auth_failed(out);
    return dispatch_signed_data(d, ctx, data, len, out);
}

/* An envelope read from its bytes (arrpc__auth_envelope_at): no objects at all before the MAC
 * is checked. */
static arrpc__outcome dispatch_envelope(arrpc__dispatcher *d, const arrpc__call_context *ctx,
                                        const arrpc__auth_envelope *env, arrpc__buf *out)
{
    if (arrpc__auth_verify(d->cfg->secret, d->cfg->secret_len, env) != 0) return auth_failed(out);
    return dispatch_signed_data(d, ctx, env->data, env->len, out);
}

int arrpc__dispatcher_frame(arrpc__dispatcher *d, const uint8_t *p, size_t n, size_t *len)
{
    if (d->framed.msg) msgpack_zone_clear(&d->zone); /* framed, then never dispatched */
    d->framed.msg = NULL;
    /* A signed request as clients pack it is framed by reading the envelope's few headers: the
     * generic decode of its map cost a signed request some 300 instructions (callgrind). */
    arrpc__auth_envelope env;
    d->framed.is_envelope =
        d->cfg->secret && arrpc__auth_envelope_at(p, n, &env, len) && *len <= d->cfg->max_message;
    if (d->framed.is_envelope) {
        d->framed.msg = p;
        d->framed.n = *len;
        return 1;
    }
    if (arrpc__decode_next(d->decoder, p, n, &d->zone, &d->framed.obj, len) != 1) {
        msgpack_zone_clear(&d->zone);
        return 0;
    }
    d->framed.msg = p;
    d->framed.n = *len;
    return 1;
}

int arrpc__dispatch(arrpc__dispatcher *d, const arrpc__call_context *ctx, const uint8_t *msg,
                    size_t n, arrpc__buf *out, arrpc__outcome *outcome)
{
    msgpack_object obj;
    size_t before = arrpc__buf_used(out);
    arrpc__auth_envelope env;
    size_t used = 0;
    int rc = 0, decoded = d->framed.msg == msg && d->framed.n == n && !d->framed.is_envelope;
    /* An envelope is read again from its bytes (a few headers), whether it was framed here or
     * on the loop's thread for a handler thread; within the limit, as the decoder would hold it. */
    int envelope = !decoded && d->cfg->secret && n <= d->cfg->max_message &&
                   arrpc__auth_envelope_at(msg, n, &env, &used) && used == n;
    if (decoded) /* decoded while framed */
        obj = d->framed.obj;
    else if (!envelope)
        rc = arrpc__decode_whole(d->decoder, msg, n, &d->zone, &obj);
    d->framed.msg = NULL;
    d->last_signed = 0;
    if (envelope) {
        *outcome = dispatch_envelope(d, ctx, &env, out);
    } else if (rc != 0) {
        /* The scanner framed it under the same limits, so only a failing zone gets here. */
        append_error(out, ARRPC_RPC_ERROR_PREFIX, "invalid MessagePack");
        *outcome = ARRPC_OUTCOME_INVALID;
    } else {
        *outcome = dispatch_decoded(d, ctx, &obj, out);
    }
    msgpack_zone_clear(&d->zone);
    return arrpc__buf_used(out) > before || *outcome == ARRPC_OUTCOME_DEFERRED ? 0 : ARRPC_ENOMEM;
}
