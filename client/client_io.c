/* client_io.c -- one exchange on the client's connection: write the queued requests while reading
 * and framing the replies, all under one deadline.
 *
 * Writing and reading are interleaved, never "write everything, then read": a server that stops
 * reading while its replies are not read (backpressure) would otherwise deadlock a large batch. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "client.h"
#include "../core/log.h"
#include "../core/net.h"

/* The scanner bounds a reply to max_message bytes, so cli->in never holds more than that plus
 * one read's worth. No I/O: tests/fuzz/fuzz_client_reply.c drives it without a socket. */
int arrpc__client_cut_replies(arrpc_client *cli, size_t count, arrpc_response **out, size_t *got)
{
    while (*got < count && cli->scanned < arrpc__buf_used(&cli->in)) {
        const uint8_t *p = cli->in.data + cli->in.head;
        size_t used = 0;
        int rc = arrpc__scan_feed(cli->scan, p + cli->scanned,
                                  arrpc__buf_used(&cli->in) - cli->scanned, &used);
        cli->scanned += used;
        if (rc < 0)
            return arrpc__client_fail(cli, rc, "invalid reply: %s", arrpc__scan_error(cli->scan));
        if (rc == 0) break;
        rc = arrpc__response_new(cli->decoder, p, cli->scanned, &out[*got]);
        if (rc != 0)
            return arrpc__client_fail(cli, rc, "cannot decode a reply of %zu bytes: %s",
                                      cli->scanned, arrpc__decoder_error(cli->decoder));
        ARRPC_DEBUG(cli->debug, "client: reply %zu of %zu, %zu bytes", *got + 1, count,
                    cli->scanned);
        (*got)++;
        arrpc__buf_consume(&cli->in, cli->scanned);
        cli->scanned = 0;
    }
    return 0;
}

/* After a failed read or write: ARRPC_ETLS when the transport has a reason of its own (only TLS
 * has: a bad record, an alert), with that reason; 0 when errno says it all (left untouched). */
static int transport_failed(arrpc_client *cli)
{
    char why[256];
    const char *reason = cli->io.ops->last_error(&cli->io, why, sizeof why);
    if (!reason) return 0;
    return arrpc__client_fail(cli, ARRPC_ETLS, "TLS with the server failed: %s", reason);
}

/* Reads what the socket has. 0 also when it had nothing after all (EAGAIN); *more: bytes came
 * and TLS holds more above the socket (poll would not see them). */
static int fill(arrpc_client *cli, size_t missing, int *more)
{
    *more = 0;
    if (arrpc__buf_reserve(&cli->in, ARRPC_READ_CHUNK) != 0)
        return arrpc__client_fail(cli, ARRPC_ENOMEM, "no memory for a reply");
    ssize_t n = cli->io.ops->read(&cli->io, cli->in.data + cli->in.len, cli->in.cap - cli->in.len);
    if (n > 0) {
        cli->in.len += (size_t)n;
        *more = cli->io.ops->has_pending(&cli->io);
        return 0;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    int rc = n < 0 ? transport_failed(cli) : 0;
    if (rc != 0) return rc;
    /* The request may have run: resending it could run it twice, so this is the caller's call. */
    if (n == 0 || errno == ECONNRESET)
        return arrpc__client_fail(cli, ARRPC_ECLOSED,
                                  "the server closed the connection with %zu repl%s due", missing,
                                  missing == 1 ? "y" : "ies");
    return arrpc__client_fail(cli, ARRPC_EIO, "cannot read from the server: %s", strerror(errno));
}

static int flush(arrpc_client *cli)
{
    ssize_t n =
        cli->io.ops->write(&cli->io, cli->out.data + cli->out.head, arrpc__buf_used(&cli->out));
    if (n >= 0) {
        arrpc__buf_consume(&cli->out, (size_t)n);
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    int rc = transport_failed(cli);
    if (rc != 0) return rc;
    if (errno == EPIPE || errno == ECONNRESET)
        return arrpc__client_fail(cli, ARRPC_ECLOSED,
                                  "the server closed the connection while a request was sent");
    return arrpc__client_fail(cli, ARRPC_EIO, "cannot write to the server: %s", strerror(errno));
}

int arrpc__client_exchange(arrpc_client *cli, size_t count, uint64_t deadline_ms,
                           arrpc_response **out, size_t *got)
{
    int rc = 0, more = 0;
    *got = 0;
    /* The socket is nearly always writable when a call starts: write first, and poll only for
     * what is left (one poll fewer per call: sequential calls are mostly system calls). */
    if (arrpc__buf_used(&cli->out)) rc = flush(cli);
    while (rc == 0 && *got < count) {
        short want = POLLIN | (arrpc__buf_used(&cli->out) ? POLLOUT : 0), rev = POLLIN;
        /* TLS may hold bytes above the socket, which poll cannot see: read them first. */
        int ready = more             ? 1
                    : want == POLLIN ? arrpc__client_wait_reply(cli, deadline_ms, &rev)
                                     : arrpc__client_wait(cli, want, deadline_ms, &rev);
        if (ready == ARRPC_EINTR) return ready;
        if (ready == 0)
            return arrpc__client_fail(cli, ARRPC_ETIMEOUT, "no reply within %u ms (%zu of %zu)",
                                      cli->timeout_ms, *got, count);
        if (ready < 0) return arrpc__client_fail(cli, ARRPC_ESYS, "poll: %s", strerror(errno));
        if ((rev & POLLOUT) && arrpc__buf_used(&cli->out)) rc = flush(cli);
        if (rc == 0 && (rev & (POLLIN | POLLHUP | POLLERR))) rc = fill(cli, count - *got, &more);
        if (rc == 0) rc = arrpc__client_cut_replies(cli, count, out, got);
    }
    return rc;
}
