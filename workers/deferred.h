/* deferred.h -- a call answered later, from any thread (arrpc_call_defer): the handle the handler
 * keeps, and how its answer travels to the worker's loop. Internal to workers/. */
#ifndef ARRPC_WORKERS_DEFERRED_H
#define ARRPC_WORKERS_DEFERRED_H

#include <stdatomic.h>
#include <stddef.h>

#include "../core/buf.h"
#include "../core/net.h"       /* ARRPC_ADDR_MAX */
#include "../core/transport.h" /* ARRPC_PEER_IDENTITY_MAX */
#include "arrpc.h"
#include "mailbox.h"

/* What the mail posted to a worker's loop is. */
enum { ARRPC_MAIL_JOB = 1, ARRPC_MAIL_DEFERRED };

struct arrpc__reply;

struct arrpc_deferred {
    arrpc__mail mail;    /* first; kind ARRPC_MAIL_DEFERRED, posted once answered */
    arrpc__mailbox *box; /* a reference, dropped when the handle is freed */
    _Atomic int answered;
    size_t max_message;
    /* The caller, copied when the call was deferred: a handler may keep these strings until it
     * answers, though the connection may be gone by then. */
    char peer[ARRPC_ADDR_MAX];
    char tls_peer[ARRPC_PEER_IDENTITY_MAX];
    int has_tls_peer;
    arrpc__buf reply; /* packed by the answering thread: the reply, or an RpcException */
    /* The loop's alone: */
    struct arrpc__reply *slot; /* where the reply goes, once the loop has wired the call */
    /* The answer reached the loop: possibly before the handler's thread returned and the call
     * was wired, and then wiring it answers at once. */
    int arrived;
    int detached; /* timed out or its connection closed: the answer is dropped */
    struct arrpc_deferred *next_kept; /* the quarantine of answered handles */
};

/* A handle answering through `box`; NULL when out of memory. */
arrpc_deferred *arrpc__deferred_new(arrpc__mailbox *box, size_t max_message, const char *peer,
                                    const char *tls_peer);
void arrpc__deferred_free(arrpc_deferred *d);

#endif
