/* proxy.c -- the PROXY protocol on a worker's connections: a connection from a trusted source
 * (--proxy-protocol) begins with a header naming the client, read from the raw socket before
 * anything else (before the TLS handshake too), and that client becomes the connection's peer
 * for metrics, logs and handlers.
 *
 * The header is read without reading past it: the bytes after it belong to TLS or to the first
 * request. Each read peeks at what has arrived, asks the parser, and then takes from the socket
 * only bytes that belong to the header (all of them while it is incomplete: see
 * core/proxy_header.h). They gather in the connection's input buffer, which is empty until
 * requests start.
 *
 * A source outside the ranges must not send a header: a balancer missing from the list would
 * otherwise have its header's bytes answered as some forty requests. Its first bytes are peeked
 * at: a whole signature closes the connection; the first byte that is not part of one makes it
 * an ordinary client, with nothing taken from the socket. Only the beginning of a signature
 * ("P", which is also the request 80) is taken off the socket, so that level-triggered epoll
 * does not wake the loop for it again and again; if nothing completes the signature within
 * PROXY_SIGNATURE_WAIT_MS, those bytes are the client's first request. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "../core/cidr.h"
#include "../core/log.h"
#include "../core/proxy_header.h"
#include "loop.h"
#include "stats.h"

#define PROXY_LOG_INTERVAL_MS 1000u /* at most one line a second about bad headers */
/* How long the beginning of a signature from a source outside the ranges may wait for the rest
 * before it counts as requests. A balancer writes its header at once; checked on the timer's
 * tick (ARRPC_TIMER_TICK_MS), so the wait is up to that much longer. */
#define PROXY_SIGNATURE_WAIT_MS 200u

int arrpc__proxy_expect(arrpc__loop *loop, arrpc__conn *c, const struct sockaddr *peer)
{
    if (!loop->cfg->proxy_from) return 0;
    c->flags |= arrpc__cidr_match(loop->cfg->proxy_from, peer) ? CONN_PROXY : CONN_SNIFF;
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

/* Not a header: c is an ordinary client from here on. Bytes taken while deciding are its first
 * request(s), answered now: they are off the socket, and no event would announce them. */
static void serve_as_client(arrpc__loop *loop, arrpc__conn *c)
{
    c->flags &= ~CONN_SNIFF;
    if (!(c->flags & CONN_HANDSHAKE)) loop->nhandshaking--; /* TLS: its handshake comes next */
    if (!arrpc__buf_used(&c->in)) return;
    if (c->flags & CONN_HANDSHAKE) { /* bytes that are not TLS: the handshake would fail on them */
        ARRPC_DEBUG(loop->cfg->debug, "TLS handshake with %s failed: not a TLS record", c->peer);
        arrpc__stats_tls_failure(loop, c);
        arrpc__conn_mark_close(c);
        return;
    }
    c->last_active_ms = loop->now_ms;
    arrpc__conn_answer_buffered(loop, c);
    arrpc__conn_flush(loop, c); /* c is on no flush list yet, and the loop may sleep next */
}

void arrpc__proxy_sniff(arrpc__loop *loop, arrpc__conn *c)
{
    uint8_t seen[ARRPC_PROXY_SIGNATURE_MAX];
    size_t have = arrpc__buf_used(&c->in); /* below the signature's length, or decided */
    if (have) memcpy(seen, c->in.data + c->in.head, have); /* no buffer yet when empty */
    ssize_t n = recv(c->fd, seen + have, sizeof seen - have, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) { /* the end or an error: the request path meets it as it would have */
        serve_as_client(loop, c);
        return;
    }
    switch (arrpc__proxy_signature(seen, have + (size_t)n)) {
    case ARRPC_PROXY_SIG_WHOLE:
        refuse(loop, c, ARRPC_REASON_PROXY_UNTRUSTED, "a PROXY header from a source not listed");
        return;
    case ARRPC_PROXY_SIG_NONE:
        serve_as_client(loop, c);
        return;
    case ARRPC_PROXY_SIG_PARTIAL:
        break;
    }
    if (recv(c->fd, seen + have, (size_t)n, 0) != n || /* they were there a moment ago */
        arrpc__buf_append(&c->in, seen + have, (size_t)n) != 0) {
        arrpc__conn_mark_close(c);
        return;
    }
    if (!have) c->sniff_until_ms = loop->now_ms + PROXY_SIGNATURE_WAIT_MS;
}

void arrpc__proxy_sniff_expire(arrpc__loop *loop, arrpc__conn *c)
{
    if (arrpc__buf_used(&c->in) && loop->now_ms >= c->sniff_until_ms) serve_as_client(loop, c);
}
