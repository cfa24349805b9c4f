/* client.c -- the client: options, connect with back-off, send and batch, reconnect and resend
 * rules.
 *
 * The connection is kept between sends. Reconnect rule: a connection the server closed while it
 * was idle is replaced before the next send (the request was never written, so nothing can run
 * twice); a connection that fails with a request in flight is an error for that send, and the
 * connection is dropped, as it is after a timeout, so a late reply can never be taken for the
 * reply to the next request. One exception, for TLS: a server that ends an idle connection sends
 * close_notify first, and when that comes before any reply to a request we just wrote on the kept
 * connection, the server never read the request, so it is sent again on a new connection.
 * A client marked idempotent (arrpc_client_set_idempotent) also resends, once per call, the
 * requests a broken connection left without any byte of their reply (resendable below).
 * Connects go round-robin over the client's endpoints (endpoints.c); with one endpoint they are
 * the tries of 0.5.0.
 * Every send and batch that gets past the request check is counted once, at its end, for the
 * metrics (client_metrics.c). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <unistd.h>

#include "../core/auth.h"
#include "client.h"
#include "client_metrics.h"
#include "../core/log.h"
#include "../core/clock.h"
#include "../core/net.h"

int arrpc__client_fail(arrpc_client *cli, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cli->errstr, sizeof cli->errstr, fmt, ap);
    va_end(ap);
    ARRPC_DEBUG(cli->debug, "client: %s: %s", arrpc_errname(code), cli->errstr);
    return code;
}

/* A client over the endpoints in *eps (taken over); the other fields get their defaults. */
static arrpc_client *client_new(arrpc__endpoints *eps)
{
    arrpc_client *cli = calloc(1, sizeof *cli);
    if (!cli) {
        arrpc__endpoints_free(eps);
        return NULL;
    }
    cli->eps = *eps;
    cli->host = cli->eps.list[0].host;
    cli->port = cli->eps.list[0].port;
    cli->tries = ARRPC_DEFAULT_CON_MAX_RETRIES;
    cli->backoff_ms = ARRPC_DEFAULT_RETRY_BACKOFF_MS;
    cli->keepalive_s = ARRPC_DEFAULT_KEEPALIVE_S;
    cli->max_message = ARRPC_DEFAULT_MAX_MESSAGE;
    cli->max_depth = ARRPC_DEFAULT_MAX_DEPTH;
    cli->spin_ns = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? ARRPC_DEFAULT_CLIENT_SPIN_US * 1000u : 0;
    cli->fd = -1;
    arrpc__transport_tcp(&cli->io, -1);
    cli->scan = arrpc__scan_new(cli->max_message, cli->max_depth);
    cli->decoder = arrpc__decoder_new(cli->max_message, cli->max_depth);
    if (!cli->scan || !cli->decoder) {
        arrpc_client_free(cli);
        return NULL;
    }
    return cli;
}

arrpc_client *arrpc_client_new(const char *host, uint16_t port)
{
    arrpc__endpoints eps;
    if (arrpc__endpoints_single(host && *host ? host : "127.0.0.1", port, &eps) != 0) return NULL;
    return client_new(&eps);
}

arrpc_client *arrpc_client_new_endpoints(const char *endpoints, char *err, size_t errlen)
{
    char why[256];
    arrpc__endpoints eps;
    int rc = arrpc__endpoints_parse(endpoints, &eps, why, sizeof why);
    if (rc == 0) {
        arrpc_client *cli = client_new(&eps);
        if (cli) return cli;
        snprintf(why, sizeof why, "out of memory");
    }
    if (err && errlen > 0) snprintf(err, errlen, "%s", why);
    return NULL;
}

void arrpc__client_disconnect(arrpc_client *cli)
{
    if (cli->fd >= 0) {
        ARRPC_DEBUG(cli->debug, "client: closing the connection to %s:%u", cli->host,
                    (unsigned)cli->port);
        cli->io.ops->close(&cli->io); /* and the fd */
    }
    cli->fd = -1;
    arrpc__transport_tcp(&cli->io, -1);
    arrpc__buf_free(&cli->in);
    arrpc__buf_free(&cli->out);
    cli->scanned = 0;
    arrpc__scan_reset(cli->scan);
}

void arrpc_client_close(arrpc_client *cli)
{
    if (cli) arrpc__client_disconnect(cli);
}

void arrpc_client_free(arrpc_client *cli)
{
    if (!cli) return;
    arrpc__client_metrics_free(cli->metrics); /* stops its HTTP thread first */
    arrpc__client_disconnect(cli);
    arrpc__scan_free(cli->scan);
    arrpc__decoder_free(cli->decoder);
    arrpc__client_tls_free(cli);
    if (cli->secret) memset(cli->secret, 0, cli->secret_len);
    free(cli->secret);
    arrpc__endpoints_free(&cli->eps);
    free(cli);
}

const char *arrpc_client_errstr(const arrpc_client *cli)
{
    return cli ? cli->errstr : "no client";
}

/* ---- options ------------------------------------------------------------------------------ */

int arrpc_client_set_timeout(arrpc_client *cli, unsigned ms)
{
    cli->timeout_ms = ms;
    return 0;
}

int arrpc_client_set_connect_timeout(arrpc_client *cli, unsigned ms)
{
    cli->connect_timeout_ms = ms;
    return 0;
}

int arrpc_client_set_con_max_retries(arrpc_client *cli, unsigned tries)
{
    if (tries == 0) return ARRPC_EINVAL;
    cli->tries = tries;
    return 0;
}

int arrpc_client_set_retry_backoff(arrpc_client *cli, unsigned step_ms)
{
    cli->backoff_ms = step_ms;
    return 0;
}

int arrpc_client_set_idempotent(arrpc_client *cli, int on)
{
    if (!cli) return ARRPC_EINVAL;
    cli->idempotent = on != 0;
    return 0;
}

int arrpc_client_set_keepalive(arrpc_client *cli, unsigned idle_s)
{
    if (!cli || idle_s > ARRPC_CLIENT_KEEPALIVE_IDLE_MAX_S) return ARRPC_EINVAL;
    cli->keepalive_s = idle_s;
    return 0;
}

int arrpc_client_set_auth_secret(arrpc_client *cli, const void *secret, size_t len)
{
    if (len > ARRPC_AUTH_SECRET_MAX || (len > 0 && !secret)) return ARRPC_EINVAL;
    uint8_t *copy = NULL;
    if (len > 0 && !(copy = malloc(len))) return ARRPC_ENOMEM;
    if (len > 0) memcpy(copy, secret, len);
    if (cli->secret) memset(cli->secret, 0, cli->secret_len);
    free(cli->secret);
    cli->secret = copy;
    cli->secret_len = len;
    return 0;
}

/* The scanner and the decoder carry the limits, so changing them makes new ones; not while a
 * connection might have a reply half scanned. */
static int set_limits(arrpc_client *cli, size_t max_message, unsigned max_depth)
{
    if (cli->fd >= 0) return ARRPC_ESTATE;
    arrpc__scan *scan = arrpc__scan_new(max_message, max_depth);
    arrpc__decoder *decoder = arrpc__decoder_new(max_message, max_depth);
    if (!scan || !decoder) {
        arrpc__scan_free(scan);
        arrpc__decoder_free(decoder);
        return ARRPC_ENOMEM;
    }
    arrpc__scan_free(cli->scan);
    arrpc__decoder_free(cli->decoder);
    cli->scan = scan;
    cli->decoder = decoder;
    cli->max_message = max_message;
    cli->max_depth = max_depth;
    return 0;
}

int arrpc_client_set_max_message(arrpc_client *cli, size_t bytes)
{
    if (bytes == 0 || bytes > ARRPC_MAX_MESSAGE_LIMIT) return ARRPC_EINVAL;
    return set_limits(cli, bytes, cli->max_depth);
}

int arrpc_client_set_max_depth(arrpc_client *cli, unsigned depth)
{
    if (depth == 0 || depth > ARRPC_MAX_DEPTH_LIMIT) return ARRPC_EINVAL;
    return set_limits(cli, cli->max_message, depth);
}

int arrpc_client_set_debug(arrpc_client *cli, int on)
{
    cli->debug = on != 0;
    return 0;
}

/* ---- connecting --------------------------------------------------------------------------- */

/* The TLS handshake's deadline: the connect timeout's, else the call timeout's, else a default. */
static uint64_t handshake_deadline(const arrpc_client *cli)
{
    unsigned ms = cli->connect_timeout_ms ? cli->connect_timeout_ms
                  : cli->timeout_ms       ? cli->timeout_ms
                                          : ARRPC_DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS;
    return arrpc__clock_ms() + ms;
}

/* Keepalive probes on a connected socket; a socket that refuses them still works, so failures
 * are only logged. */
static void set_keepalive(const arrpc_client *cli, int fd)
{
    if (arrpc__net_keepalive(fd, cli->keepalive_s, ARRPC_CLIENT_KEEPALIVE_COUNT) != 0)
        ARRPC_DEBUG(cli->debug, "client: no TCP keepalive: %s", strerror(errno));
}

/* One try at the endpoint the round-robin picks: 0 (connected, cli->fd set), ARRPC_ETLS (a
 * certificate or policy refusal), ARRPC_EINTR (the interrupt check said stop during the
 * handshake) or ARRPC_ECONNECT, with the reason in why. */
static int connect_next(arrpc_client *cli, char *why, size_t whylen)
{
    uint64_t now = arrpc__clock_ms();
    cli->current = arrpc__endpoints_pick(&cli->eps, now);
    arrpc__endpoint *e = &cli->eps.list[cli->current];
    cli->host = e->host;
    cli->port = e->port;
    /* A name's addresses take turns going first, so clients spread over all of them. */
    int fd = arrpc__net_connect_from(cli->host, cli->port, e->picks - 1, cli->connect_timeout_ms,
                                     why, whylen);
    int rc = fd >= 0 ? 0 : ARRPC_ECONNECT;
    if (rc == 0) {
        set_keepalive(cli, fd);
        cli->fd = fd;
        rc = arrpc__client_tls_start(cli, fd, handshake_deadline(cli), why, whylen);
        if (rc != 0) arrpc__client_disconnect(cli);
    }
    if (rc == 0)
        arrpc__endpoint_succeeded(e);
    else
        arrpc__endpoint_failed(e, arrpc__clock_ms());
    return rc;
}

/* As 0.5.0, with rounds over the endpoint list in place of single tries: `tries` rounds, each
 * one try per endpoint (round-robin, those in back-off last), sleeping step, 2 step, 3 step ...
 * between rounds, none after the last. With one endpoint a round is one try, as before. A TLS
 * refusal (certificate, policy) ends the tries at once. */
static int connect_with_backoff(arrpc_client *cli)
{
    char why[512] = "";
    for (unsigned round = 1;; round++) {
        for (size_t k = 0; k < cli->eps.count; k++) {
            int rc = connect_next(cli, why, sizeof why);
            if (rc == 0) {
                ARRPC_DEBUG(cli->debug, "client: connected to %s:%u in round %u", cli->host,
                            (unsigned)cli->port, round);
                cli->fresh = 1;
                return 0;
            }
            if (rc == ARRPC_EINTR) return rc; /* the caller's reason is in errstr */
            if (rc == ARRPC_ETLS)             /* trying again will not help */
                return arrpc__client_fail(cli, ARRPC_ETLS, "TLS with %s:%u failed: %s", cli->host,
                                          (unsigned)cli->port, why);
            ARRPC_DEBUG(cli->debug, "client: round %u: %s", round, why);
        }
        if (round >= cli->tries) break;
        if (arrpc__client_sleep(cli, (uint64_t)round * cli->backoff_ms) != 0) return ARRPC_EINTR;
    }
    if (cli->eps.count == 1)
        return arrpc__client_fail(cli, ARRPC_ECONNECT,
                                  "failed to connect to %s:%u with %u attempts: %s", cli->host,
                                  (unsigned)cli->port, cli->tries, why);
    return arrpc__client_fail(cli, ARRPC_ECONNECT,
                              "failed to connect to any of %zu endpoints in %u rounds; last: %s",
                              cli->eps.count, cli->tries, why);
}

/* An idle connection has nothing to read. Readable means the server closed it (EOF, reset) or
 * sent bytes no request asked for; either way it cannot carry the next request. */
static int idle_connection_usable(const arrpc_client *cli)
{
    struct pollfd p = {.fd = cli->fd, .events = POLLIN};
    return arrpc__buf_used(&cli->in) == 0 && !cli->io.ops->has_pending(&cli->io) &&
           poll(&p, 1, 0) == 0;
}

static int ensure_connected(arrpc_client *cli)
{
    if (cli->fd >= 0 && !idle_connection_usable(cli)) {
        ARRPC_DEBUG(cli->debug, "client: the idle connection was closed by the server");
        arrpc__client_disconnect(cli);
    }
    return cli->fd >= 0 ? 0 : connect_with_backoff(cli);
}

/* ---- sending ------------------------------------------------------------------------------ */

/* Checks that each request is exactly one valid message: a malformed one would desynchronise
 * the stream, and the server would answer it with an error and close. */
static int check_requests(arrpc_client *cli, const void *const *requests, const size_t *lens,
                          size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (!requests[i] || lens[i] == 0)
            return arrpc__client_fail(cli, ARRPC_EINVAL, "request %zu is empty", i);
        int rc = arrpc__scan_whole(cli->scan, requests[i], lens[i]);
        if (rc != 0)
            return arrpc__client_fail(cli, ARRPC_EINVAL, "request %zu is not one valid message: %s",
                                      i, arrpc__scan_error(cli->scan));
    }
    return 0;
}

static int queue_requests(arrpc_client *cli, const void *const *requests, const size_t *lens,
                          size_t count)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, &cli->out, arrpc__buf_pack_write);
    for (size_t i = 0; i < count; i++) {
        int rc = cli->secret
                     ? arrpc__auth_wrap(cli->secret, cli->secret_len, requests[i], lens[i], &pk)
                     : arrpc__buf_append(&cli->out, requests[i], lens[i]);
        if (rc != 0) return arrpc__client_fail(cli, rc, "cannot queue request %zu", i);
    }
    return 0;
}

static void free_responses(arrpc_response **out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        arrpc_response_free(out[i]);
        out[i] = NULL;
    }
}

/* Queues requests and reads their replies into out[]; *got: replies read (on error too). */
static int exchange(arrpc_client *cli, const void *const *requests, const size_t *lens,
                    size_t count, uint64_t deadline, arrpc_response **out, size_t *got)
{
    *got = 0;
    int rc = queue_requests(cli, requests, lens, count);
    return rc == 0 ? arrpc__client_exchange(cli, count, deadline, out, got) : rc;
}

/* After a failed exchange: may the requests without a reply go out again on a new connection?
 * Only for an idempotent client, only when the connection broke (closed, reset, a read or write
 * error) and only when the first of them got no byte of its reply (a half-read reply means the
 * server ran it). A timeout is never resent: the server may still be running the request. */
static int resendable(const arrpc_client *cli, int rc)
{
    return cli->idempotent && (rc == ARRPC_ECLOSED || rc == ARRPC_EIO) &&
           arrpc__buf_used(&cli->in) == 0;
}

/* The TLS exception of the reconnect rule (top of this file): close_notify before any reply on
 * the kept connection means the server never read the request. */
static int closed_before_reading(const arrpc_client *cli, int rc, size_t got)
{
    return rc == ARRPC_ECLOSED && !cli->fresh && got == 0 && cli->io.peer_closed_cleanly &&
           arrpc__buf_used(&cli->in) == 0;
}

/* Connects if needed, writes the checked requests and reads their replies. *started: the
 * metrics clock when the first byte was queued (0 if never, or when not counting). */
static int transact(arrpc_client *cli, const void *const *requests, const size_t *lens,
                    size_t count, arrpc_response **out, uint64_t *started)
{
    cli->fresh = 0;
    int rc = ensure_connected(cli);
    if (rc != 0) return rc;
    *started = arrpc__client_metrics_now(cli);
    size_t got = 0;
    uint64_t deadline = cli->timeout_ms ? arrpc__clock_ms() + cli->timeout_ms : 0;
    rc = exchange(cli, requests, lens, count, deadline, out, &got);
    int unread = closed_before_reading(cli, rc, got); /* resent whether idempotent or not */
    int broke = !unread && (rc == ARRPC_ECLOSED || rc == ARRPC_EIO);
    if (broke) arrpc__endpoint_failed(&cli->eps.list[cli->current], arrpc__clock_ms());
    if (unread || (broke && resendable(cli, rc))) {
        size_t done = got, more = 0;
        ARRPC_DEBUG(cli->debug,
                    "client: the connection to %s:%u broke with %zu of %zu replies "
                    "read: sending the rest on a new connection",
                    cli->host, (unsigned)cli->port, done, count);
        if (broke) arrpc__client_metrics_count_retries(cli, count - done);
        arrpc__client_disconnect(cli);
        rc = ensure_connected(cli);
        if (rc == 0)
            rc = exchange(cli, requests + done, lens + done, count - done, deadline, out + done,
                          &more);
        got = done + more;
        if (rc == ARRPC_ECLOSED || rc == ARRPC_EIO) /* this one broke too */
            arrpc__endpoint_failed(&cli->eps.list[cli->current], arrpc__clock_ms());
    }
    if (rc == 0) arrpc__client_tls_keep_session(cli);
    /* After a failure nothing on this connection can be matched to a request any more; bytes
     * after the last reply mean the same. */
    if (rc != 0 || arrpc__buf_used(&cli->in) > 0) arrpc__client_disconnect(cli);
    if (rc != 0) free_responses(out, got);
    return rc;
}

int arrpc_client_send_batch(arrpc_client *cli, const void *const *requests, const size_t *lens,
                            size_t count, arrpc_response **out)
{
    if (!cli || (count > 0 && (!requests || !lens || !out))) return ARRPC_EINVAL;
    for (size_t i = 0; i < count; i++)
        out[i] = NULL;
    int rc = check_requests(cli, requests, lens, count);
    if (rc != 0 || count == 0) return rc;
    uint64_t started = 0;
    rc = transact(cli, requests, lens, count, out, &started);
    /* The one place sends and batches are counted; arrpc_client_send's ERPC and EAUTH come
     * from the reply's status, which the count reads from out[]. */
    arrpc__client_metrics_count(cli, rc, lens, count, out, started);
    return rc;
}

int arrpc_client_send(arrpc_client *cli, const void *request, size_t len, arrpc_response **out)
{
    if (!out) return ARRPC_EINVAL;
    *out = NULL;
    arrpc_response *res = NULL;
    int rc = arrpc_client_send_batch(cli, &request, &len, 1, &res);
    if (rc != 0) return rc;
    int status = arrpc_response_status(res);
    if (status != ARRPC_OK) {
        size_t mlen = 0;
        const char *msg = arrpc__response_message(res, &mlen);
        arrpc__client_fail(cli, status, "%.*s", (int)mlen, msg);
        arrpc_response_free(res);
        return status;
    }
    *out = res;
    return 0;
}
