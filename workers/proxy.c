/* proxy.c -- the PROXY protocol on a worker's connections: a connection from a trusted source
 * (--proxy-protocol) begins with a header naming the client, read from the raw socket before
 * anything else (before the TLS handshake too), and that client becomes the connection's peer
 * for metrics, logs and handlers.
 *
 * The header is read without reading past it: the bytes after it belong to TLS or to the first
 * request. Each read peeks at what has arrived, asks the parser, and then takes from the socket
 * only bytes that belong to the header (all of them while it is incomplete: see
 * core/proxy_header.h). They gather in the connection's input buffer, which is empty until
 * requests start. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "../core/cidr.h"
#include "../core/log.h"
#include "../core/proxy_header.h"
#include "loop.h"
#include "stats.h"

#define PROXY_LOG_INTERVAL_MS 1000u /* at most one line a second about bad headers */

int arrpc__proxy_expect(arrpc__loop *loop, arrpc__conn *c, const struct sockaddr *peer)
{
    if (!loop->cfg->proxy_from || !arrpc__cidr_match(loop->cfg->proxy_from, peer)) return 0;
    c->flags |= CONN_PROXY;
    return 1;
}

/* A bad header closes the connection: there is no reply to send, since who is asking is not
 * known. One log line per connection, at most one a second for the whole worker (a broken
 * balancer would otherwise write one per connection it opens), and a count by reason. */
static void refuse(arrpc__loop *loop, arrpc__conn *c, arrpc__reason reason, const char *why)
{
    if (loop->now_ms - loop->last_proxy_log_ms >= PROXY_LOG_INTERVAL_MS) {
        if (loop->proxy_log_skipped)
            arrpc__log("closing connection from %s: %s (--proxy-protocol; and %u more since the "
                       "last such line)",
                       c->peer, why, loop->proxy_log_skipped);
        else
            arrpc__log("closing connection from %s: %s (--proxy-protocol)", c->peer, why);
        loop->last_proxy_log_ms = loop->now_ms;
        loop->proxy_log_skipped = 0;
    } else {
        loop->proxy_log_skipped++;
    }
    arrpc__stats_proxy_error(loop, c, reason);
    arrpc__conn_mark_close(c);
}

static const arrpc__reason reason_of_status[] = {
    [-ARRPC_PROXY_MISSING] = ARRPC_REASON_PROXY_MISSING,
    [-ARRPC_PROXY_INVALID] = ARRPC_REASON_PROXY_INVALID,
    [-ARRPC_PROXY_TOO_LONG] = ARRPC_REASON_PROXY_TOO_LONG,
};

/* The header is whole: its address (when it names one) becomes the peer, under which the
 * connection's requests count from now on. */
static void accept_header(arrpc__loop *loop, arrpc__conn *c, const arrpc__proxy_result *r)
{
    arrpc__buf_free(&c->in);
    c->flags &= ~CONN_PROXY;
    if (!(c->flags & CONN_HANDSHAKE)) loop->nhandshaking--; /* TLS: its handshake comes next */
    if (r->has_source) {
        char was[ARRPC_ADDR_MAX];
        memcpy(was, c->peer, sizeof was);
        arrpc__net_addr_name((const struct sockaddr *)&r->source, c->peer, sizeof c->peer);
        ARRPC_DEBUG(loop->cfg->debug, "connection from %s is from %s (PROXY v%d)", was, c->peer,
                    r->version);
    }
    arrpc__stats_peer_named(loop, c);
    c->last_active_ms = loop->now_ms;
}

void arrpc__proxy_on_readable(arrpc__loop *loop, arrpc__conn *c)
{
    size_t have = arrpc__buf_used(&c->in);
    if (arrpc__buf_reserve(&c->in, ARRPC_PROXY_HEADER_MAX - have) != 0) {
        arrpc__conn_mark_close(c);
        return;
    }
    uint8_t *end = c->in.data + c->in.len;
    ssize_t n = recv(c->fd, end, ARRPC_PROXY_HEADER_MAX - have, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) { /* a port check that connects and leaves is not an error; leaving mid-header is */
        if (n == 0 && have)
            refuse(loop, c, ARRPC_REASON_PROXY_TRUNCATED, "the stream ended inside the header");
        else
            arrpc__conn_mark_close(c);
        return;
    }
    arrpc__proxy_result r;
    arrpc__proxy_status st = arrpc__proxy_parse(c->in.data + c->in.head, have + (size_t)n, &r);
    if (st < 0) {
        refuse(loop, c, reason_of_status[-st], r.why);
        return;
    }
    size_t take = st == ARRPC_PROXY_DONE ? r.header_len - have : (size_t)n;
    if (recv(c->fd, end, take, 0) != (ssize_t)take) { /* they were there a moment ago */
        arrpc__conn_mark_close(c);
        return;
    }
    c->in.len += take;
    if (st == ARRPC_PROXY_DONE) accept_header(loop, c, &r);
}

void arrpc__proxy_expire(arrpc__loop *loop, arrpc__conn *c)
{
    refuse(loop, c, ARRPC_REASON_PROXY_TRUNCATED,
           arrpc__buf_used(&c->in) ? "the header did not arrive whole in time"
                                   : "no header arrived in time");
}
