/* client.c -- the client: options, connect with back-off, send and batch, reconnect rules.
 *
 * The connection is kept between sends. Reconnect rule: a connection the server closed while it
 * was idle is replaced before the next send (the request was never written, so nothing can run
 * twice); a connection that fails with a request in flight is an error for that send, and the
 * connection is dropped, as it is after a timeout, so a late reply can never be taken for the
 * reply to the next request. One exception, for TLS: a server that ends an idle connection sends
 * close_notify first, and when that comes before any reply to a request we just wrote on the kept
 * connection, the server never read the request, so it is sent again on a new connection.
 * Every send and batch that gets past the request check is counted once, at its end, for the
 * metrics (client_metrics.c). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

arrpc_client *arrpc_client_new(const char *host, uint16_t port)
{
    arrpc_client *cli = calloc(1, sizeof *cli);
    if (!cli) return NULL;
    cli->host = strdup(host && *host ? host : "127.0.0.1");
    cli->port = port;
    cli->tries = ARRPC_DEFAULT_CON_MAX_RETRIES;
    cli->backoff_ms = ARRPC_DEFAULT_RETRY_BACKOFF_MS;
    cli->max_message = ARRPC_DEFAULT_MAX_MESSAGE;
    cli->max_depth = ARRPC_DEFAULT_MAX_DEPTH;
    cli->fd = -1;
    arrpc__transport_tcp(&cli->io, -1);
    cli->scan = arrpc__scan_new(cli->max_message, cli->max_depth);
    cli->decoder = arrpc__decoder_new(cli->max_message, cli->max_depth);
    if (!cli->host || !cli->scan || !cli->decoder) {
        arrpc_client_free(cli);
        return NULL;
    }
    return cli;
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
    free(cli->host);
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

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The TLS handshake's deadline: the connect timeout's, else the call timeout's, else a default. */
static uint64_t handshake_deadline(const arrpc_client *cli)
{
    unsigned ms = cli->connect_timeout_ms ? cli->connect_timeout_ms
                  : cli->timeout_ms       ? cli->timeout_ms
                                          : ARRPC_DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS;
    return arrpc__clock_ms() + ms;
}

/* As 0.5.0: `tries` attempts, sleeping step, 2 step, 3 step ... between them, none after the
 * last. A TLS refusal (certificate, policy) ends the tries at once. */
static int connect_with_backoff(arrpc_client *cli)
{
    char why[512] = "";
    for (unsigned attempt = 1;; attempt++) {
        int fd = arrpc__net_connect(cli->host, cli->port, cli->connect_timeout_ms, why, sizeof why);
        if (fd >= 0) {
            cli->fd = fd;
            int rc = arrpc__client_tls_start(cli, fd, handshake_deadline(cli), why, sizeof why);
            if (rc == 0) {
                ARRPC_DEBUG(cli->debug, "client: connected to %s:%u on attempt %u", cli->host,
                            (unsigned)cli->port, attempt);
                cli->fresh = 1;
                return 0;
            }
            arrpc__client_disconnect(cli);
            if (rc == ARRPC_ETLS) /* a certificate or policy refusal: trying again will not help */
                return arrpc__client_fail(cli, ARRPC_ETLS, "TLS with %s:%u failed: %s", cli->host,
                                          (unsigned)cli->port, why);
        }
        ARRPC_DEBUG(cli->debug, "client: attempt %u: %s", attempt, why);
        if (attempt >= cli->tries) break;
        sleep_ms((uint64_t)attempt * cli->backoff_ms);
    }
    return arrpc__client_fail(cli, ARRPC_ECONNECT,
                              "failed to connect to %s:%u with %u attempts: %s", cli->host,
                              (unsigned)cli->port, cli->tries, why);
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
    rc = queue_requests(cli, requests, lens, count);
    if (rc == 0) rc = arrpc__client_exchange(cli, count, deadline, out, &got);
    if (rc == ARRPC_ECLOSED && !cli->fresh && got == 0 && cli->io.peer_closed_cleanly &&
        arrpc__buf_used(&cli->in) == 0) {
        ARRPC_DEBUG(cli->debug, "client: the server ended the kept TLS connection before "
                                "reading the request: sending it on a new connection");
        arrpc__client_disconnect(cli);
        rc = ensure_connected(cli);
        if (rc == 0) rc = queue_requests(cli, requests, lens, count);
        if (rc == 0) rc = arrpc__client_exchange(cli, count, deadline, out, &got);
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
