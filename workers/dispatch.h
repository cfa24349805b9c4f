/* dispatch.h -- one whole request in, exactly one reply out: auth, decode, handler, errors. */
#ifndef ARRPC_WORKERS_DISPATCH_H
#define ARRPC_WORKERS_DISPATCH_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"
#include "worker.h"

struct arrpc__mailbox;

#define ARRPC_AUTH_ERROR_TEXT                                                                      \
    "Invalid or missing message signature, make sure 'auth_secret' is set/correct"
#define ARRPC_FAIL_MESSAGE_MAX                                                                     \
    4096u /* bytes of a handler's failure message that reach the client */

typedef struct arrpc__dispatcher arrpc__dispatcher;

/* Who sent a request: what arrpc_call_peer and arrpc_call_tls_peer answer. The strings belong to
 * the connection and outlive the call. */
typedef struct arrpc__call_context {
    const char *peer;     /* "IP:PORT" or "[IPv6]:PORT" */
    const char *tls_peer; /* the verified client certificate's subject; NULL: none */
} arrpc__call_context;

/* How one request went, for logs and metrics. */
typedef enum {
    ARRPC_OUTCOME_OK,
    ARRPC_OUTCOME_RPC_ERROR,  /* the handler failed the call */
    ARRPC_OUTCOME_AUTH_ERROR, /* missing or wrong signature */
    ARRPC_OUTCOME_INVALID,    /* well framed, but not a valid request (bad signed data) */
    ARRPC_OUTCOME_BAD_REPLY,  /* the handler's reply was invalid or too large */
    ARRPC_OUTCOME_DEFERRED,   /* the handler took the call (arrpc_call_defer): no reply yet */
} arrpc__outcome;

/* One per thread that runs handlers: `busy_stamp` is its stamp in the worker's shared record
 * (0: the loop's thread), `box` the mailbox deferred answers go to (NULL: calls cannot be
 * deferred). */
arrpc__dispatcher *arrpc__dispatcher_new(const arrpc__worker_config *cfg, unsigned busy_stamp,
                                         struct arrpc__mailbox *box);
/* After ARRPC_OUTCOME_DEFERRED: the handle the handler took, now the caller's to wire up. */
arrpc_deferred *arrpc__dispatcher_take_deferred(arrpc__dispatcher *d);
/* Whether the last request dispatched came in a verified signature envelope (for metrics). */
int arrpc__dispatcher_last_signed(const arrpc__dispatcher *d);
void arrpc__dispatcher_free(arrpc__dispatcher *d);

/* Answers the n bytes at msg, which the scanner found to be one whole message and ctx's client
 * sent, by appending exactly one reply to out. Returns ARRPC_ENOMEM only if even an error reply
 * could not be queued. */
int arrpc__dispatch(arrpc__dispatcher *d, const arrpc__call_context *ctx, const uint8_t *msg,
                    size_t n, arrpc__buf *out, arrpc__outcome *outcome);

/* Framing and decoding in one pass: when the n bytes at p begin with a whole, valid request,
 * decodes it, sets *len to its size and returns 1; the next arrpc__dispatch of exactly those
 * bytes uses the objects instead of decoding again. 0 when the request is not whole yet or not
 * valid: the caller frames it with the scanner, which can wait for more bytes and words the
 * error, and arrpc__dispatch decodes it as usual. */
int arrpc__dispatcher_frame(arrpc__dispatcher *d, const uint8_t *p, size_t n, size_t *len);

/* Appends the reply "arrpc.error.RpcException: <text>" (used for unreadable input too). */
int arrpc__dispatch_rpc_error(arrpc__buf *out, const char *text);
/* Checks the reply packed into out from offset `start` (exactly one object within the size
 * limit; nothing packed answers nil) and replaces it with an RpcException when it is not. */
arrpc__outcome arrpc__dispatch_check_reply(arrpc__dispatcher *d, arrpc__buf *out, size_t start);
/* A handler's failure message into buf, cut at a whole UTF-8 character when too long. */
void arrpc__dispatch_format_failure(char *buf, size_t cap, const char *fmt, va_list ap);

#endif
