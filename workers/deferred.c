/* deferred.c -- answering a call later, from any thread (see deferred.h and arrpc.h). */
#include "deferred.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "dispatch.h"

arrpc_deferred *arrpc__deferred_new(arrpc__mailbox *box, size_t max_message, const char *peer,
                                    const char *tls_peer)
{
    arrpc_deferred *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    snprintf(d->peer, sizeof d->peer, "%s", peer ? peer : "");
    snprintf(d->tls_peer, sizeof d->tls_peer, "%s", tls_peer ? tls_peer : "");
    d->has_tls_peer = tls_peer != NULL;
    d->mail.kind = ARRPC_MAIL_DEFERRED;
    d->box = box;
    d->max_message = max_message;
    arrpc__mailbox_hold(box);
    return d;
}

void arrpc__deferred_free(arrpc_deferred *d)
{
    if (!d) return;
    arrpc__buf_free(&d->reply);
    arrpc__mailbox_release(d->box);
    free(d);
}

/* Hands the packed answer to the loop. Once the worker's loop has ended, nobody is left to send
 * it: the handle is freed here. */
static int deliver(arrpc_deferred *d)
{
    if (arrpc__mailbox_post(d->box, &d->mail) != 0) arrpc__deferred_free(d);
    return 0;
}

int arrpc_deferred_reply(arrpc_deferred *d, const void *packed, size_t len)
{
    if (!d || (!packed && len)) return ARRPC_EINVAL;
    if (atomic_exchange(&d->answered, 1)) return ARRPC_ESTATE;
    /* A reply over the limit is not copied: the loop answers "too large" for it, as it does for
     * an inline handler's. The check of the bytes themselves is the loop's (one object). */
    int rc = 0;
    if (len > d->max_message) {
        char why[96];
        snprintf(why, sizeof why, "the handler's reply is invalid: larger than %zu bytes",
                 d->max_message);
        arrpc__dispatch_rpc_error(&d->reply, why);
    } else if (arrpc__buf_append(&d->reply, len ? packed : "\xc0", len ? len : 1) != 0) {
        /* (nothing packed answers nil, as for an inline handler) */
        rc = ARRPC_ENOMEM; /* the reply is left empty: the loop answers with an error */
    }
    deliver(d);
    return rc;
}

int arrpc_deferred_fail(arrpc_deferred *d, const char *fmt, ...)
{
    if (!d || !fmt) return ARRPC_EINVAL;
    if (atomic_exchange(&d->answered, 1)) return ARRPC_ESTATE;
    char message[ARRPC_FAIL_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    arrpc__dispatch_format_failure(message, sizeof message, fmt, ap);
    va_end(ap);
    arrpc__dispatch_rpc_error(&d->reply, message); /* no memory: empty, answered as an error */
    deliver(d);
    return 0;
}
