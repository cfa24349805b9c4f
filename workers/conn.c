/* conn.c -- one connection: read, scan, dispatch, queue replies, flush; closing is the loop's job.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "../core/fast_clock.h"
#include "../core/log.h"
#include "calls.h"
#include "loop.h"
#include "stats.h"

/* When an accepted connection reaches its age limit: the age plus its own share of the jitter,
 * so that connections opened together (after a restart) do not all close together. */
static uint64_t age_limit(arrpc__loop *loop)
{
    const arrpc__worker_config *cfg = loop->cfg;
    if (!cfg->max_connection_age_ms) return 0;
    uint64_t jitter =
        cfg->max_connection_age_jitter_ms
            ? arrpc__loop_random(loop) % ((uint64_t)cfg->max_connection_age_jitter_ms + 1)
            : 0;
    return loop->now_ms + cfg->max_connection_age_ms + jitter;
}

/* Names the peer and starts what must happen before requests: the PROXY header from a trusted
 * source, the TLS handshake. A handed-over connection did both in its first worker. */
static void start_setup(arrpc__loop *loop, arrpc__conn *c, const arrpc__conn_origin *from)
{
    c->last_active_ms = loop->now_ms;
    if (from) {
        snprintf(c->peer, sizeof c->peer, "%s", from->peer);
        c->close_after_ms = from->close_after_ms;
        return;
    }
    struct sockaddr_storage ss;
    arrpc__net_peer_addr(c->fd, &ss);
    arrpc__net_addr_name((const struct sockaddr *)&ss, c->peer, sizeof c->peer);
    c->close_after_ms = age_limit(loop);
    int looked_at = arrpc__proxy_expect(loop, c, (const struct sockaddr *)&ss);
    if (loop->tls) /* the client speaks first; the deadline keeps a silent one from staying */
        c->flags |= CONN_HANDSHAKE;
    if (looked_at || loop->tls) { /* counted once while any of the three is under way */
        c->handshake_until_ms = loop->now_ms + loop->cfg->tls_handshake_timeout_ms;
        loop->nhandshaking++;
    }
}

arrpc__conn *arrpc__conn_open(arrpc__loop *loop, int fd, const arrpc__conn_origin *from)
{
    arrpc__conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->scan = arrpc__scan_new(loop->cfg->max_message, loop->cfg->max_depth);
    c->kind = LOOP_CONN;
    c->fd = fd;
    c->events = EPOLLIN;
    if (!loop->tls)
        arrpc__transport_tcp(&c->io, fd);
    else if (arrpc__transport_tls_server(&c->io, fd, loop->tls) != 0)
        c->flags |= CONN_CLOSE; /* no memory for its TLS state: reaped at once */
    struct epoll_event ev = {.events = c->events, .data.ptr = c};
    if (!c->scan || epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        arrpc__scan_free(c->scan);
        free(c);
        return NULL;
    }
    start_setup(loop, c, from);
    arrpc__stats_open(loop, c);
    arrpc__loop_mark_list(loop, 1);
    c->next = loop->conns;
    if (loop->conns) loop->conns->prev = c;
    loop->conns = c;
    loop->nconns++;
    arrpc__loop_mark_list(loop, 0);
    ARRPC_DEBUG(loop->cfg->debug, "connection from %s opened", c->peer);
    return c;
}

void arrpc__conn_free(arrpc__loop *loop, arrpc__conn *c)
{
    ARRPC_DEBUG(loop->cfg->debug, "connection from %s closed", c->peer);
    arrpc__loop_mark_list(loop, 1); /* until it is gone: a crash must not see it half freed */
    if (c->prev)
        c->prev->next = c->next;
    else
        loop->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    loop->nconns--;
    arrpc__stats_close(loop, c);
    arrpc__calls_conn_free(loop, c);
    if (c->flags & CONN_LINGER) loop->nlingering--;
    if (c->flags & (CONN_HANDSHAKE | CONN_PROXY | CONN_SNIFF)) loop->nhandshaking--;
    c->io.ops->close(&c->io); /* the last descriptor: also out of the epoll set */
    arrpc__buf_free(&c->in);
    arrpc__buf_free(&c->out);
    arrpc__scan_free(c->scan);
    free(c->tls_peer);
    free(c);
    arrpc__loop_mark_list(loop, 0);
}

int arrpc__conn_idle(const arrpc__conn *c)
{
    return arrpc__buf_used(&c->in) == 0 && arrpc__buf_used(&c->out) == 0 &&
           !arrpc__calls_pending(c) && !(c->flags & (CONN_DOOMED | CONN_LINGER));
}

static void mark_close(arrpc__conn *c)
{
    c->flags |= CONN_CLOSE;
}

void arrpc__conn_mark_close(arrpc__conn *c)
{
    mark_close(c);
}

void arrpc__conn_queue_flush(arrpc__loop *loop, arrpc__conn *c)
{
    if (c->flags & CONN_QUEUED) return;
    c->flags |= CONN_QUEUED;
    c->next_flush = loop->flush_list;
    loop->flush_list = c;
}

/* Reading is wanted unless the peer is done, an error ended the stream, or the client is not
 * reading its replies (backpressure: its unsent output passed the high-water mark). */
static void update_interest(arrpc__loop *loop, arrpc__conn *c, int want_write)
{
    uint32_t ev = 0;
    int paused = arrpc__buf_used(&c->out) >= ARRPC_OUTPUT_HIGH_WATER;
    /* A retiring worker reads no more from connections it hands over: what it has read, it
     * answers. TLS connections cannot move, so it keeps serving them. */
    int moving = loop->retiring && c->io.ops->can_hand_over;
    if (c->flags & CONN_PROXY)
        ev = EPOLLIN;
    else if (c->flags & CONN_HANDSHAKE)
        ev = c->io.want == ARRPC_WANT_WRITE ? EPOLLOUT : EPOLLIN;
    else if (c->flags & CONN_LINGER)
        ev |= EPOLLIN;
    else if (!(c->flags & (CONN_EOF | CONN_DOOMED | CONN_CLOSE)) && !paused && !moving &&
             !arrpc__calls_read_paused(c))
        ev |= EPOLLIN;
    if (c->io.want == ARRPC_WANT_READ && arrpc__buf_used(&c->out) && !(c->flags & CONN_LINGER))
        ev |= EPOLLIN; /* a TLS write waiting for the peer's bytes (a key update) */
    if (want_write) ev |= EPOLLOUT;
    if (ev == c->events || (c->flags & CONN_CLOSE)) return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, c->fd, &e) == 0)
        c->events = ev;
    else
        mark_close(c);
}

/* Tells a crash signal (rescue.c) which connection's handler runs inline now, and where the bytes
 * read after its request are: a crash answers that request with an error and hands the rest on. */
static void mark_call(arrpc__loop *loop, arrpc__conn *c, const uint8_t *rest, size_t rest_len)
{
    arrpc__loop_marks *m = &loop->marks;
    atomic_signal_fence(memory_order_seq_cst);
    if (c) {
        m->call_rest = rest;
        m->call_rest_len = rest_len;
        m->call_out_keep = arrpc__buf_used(&c->out);
    }
    atomic_signal_fence(memory_order_seq_cst);
    m->call_conn = c;
    atomic_signal_fence(memory_order_seq_cst);
}

/* Answers every whole request in p[0, n), starting the scan at c->scanned. Stops early on a
 * stream error (queueing its error reply) or when the output passes the high-water mark.
 * Returns the bytes of p consumed by answered requests.
 *
 * A request that starts in p is first framed by decoding it, which the answer then uses: one
 * walk over its bytes. Only one that is not whole (or not valid) goes to the resumable scanner,
 * which waits for the rest and words errors; the decoder walks it again once it is whole. */
static size_t answer_requests(arrpc__loop *loop, arrpc__conn *c, const uint8_t *p, size_t n)
{
    size_t done = 0;
    uint64_t started = 0; /* a request's clock starts where the previous one's stopped */
    while (!(c->flags & CONN_DOOMED) && arrpc__buf_used(&c->out) < ARRPC_OUTPUT_HIGH_WATER &&
           !arrpc__calls_blocked(c) && done + c->scanned < n) {
        size_t used = 0;
        int rc =
            c->scanned == 0 && arrpc__calls_frame(loop, p + done, n - done, &used)
                ? 1
                : arrpc__scan_feed(c->scan, p + done + c->scanned, n - done - c->scanned, &used);
        c->scanned += used;
        if (rc == 0) break;
        if (rc < 0) {
            arrpc__log("closing connection from %s: %s", c->peer, arrpc__scan_error(c->scan));
            arrpc__calls_answer_error(loop, c, arrpc__scan_error(c->scan),
                                      arrpc__stats_stream_reason(rc), c->scanned);
            arrpc__stats_stream_error(loop, c, rc);
            c->flags |= CONN_DOOMED;
            break;
        }
        if (!started) started = arrpc__fast_clock_ns(&loop->clock);
        mark_call(loop, c, p + done + c->scanned, n - done - c->scanned);
        int rc_answer = arrpc__calls_answer(loop, c, p + done, c->scanned, &started);
        mark_call(loop, NULL, NULL, 0);
        if (rc_answer != 0) {
            arrpc__log("closing connection from %s: out of memory", c->peer);
            mark_close(c);
            break;
        }
        done += c->scanned;
        c->scanned = 0;
        c->request_since_ms = 0; /* the next request's clock starts with its first byte */
    }
    if (arrpc__calls_untimed(loop)) arrpc__calls_time_group(loop, c, started);
    if (loop->pool) arrpc__calls_submit(loop, c); /* what was gathered for a handler thread */
    return done;
}

/* Starts the request clock when the input holds the beginning of a request, stops it when the
 * input is empty. */
static void note_partial(arrpc__loop *loop, arrpc__conn *c)
{
    if (arrpc__buf_used(&c->in) == 0)
        c->request_since_ms = 0;
    else if (!c->request_since_ms)
        c->request_since_ms = loop->now_ms;
}

void arrpc__conn_refresh_interest(arrpc__loop *loop, arrpc__conn *c)
{
    update_interest(loop, c, (c->events & EPOLLOUT) != 0);
}

void arrpc__conn_answer_buffered(arrpc__loop *loop, arrpc__conn *c)
{
    size_t done = answer_requests(loop, c, c->in.data + c->in.head, arrpc__buf_used(&c->in));
    arrpc__buf_consume(&c->in, done);
    note_partial(loop, c);
}

/* Reads once. With no partial message pending the bytes land in the loop's scratch buffer, and
 * only what is left unanswered is copied into the connection's own buffer: an idle connection
 * holds no input memory. Returns bytes read, 0 at EOF, -1 when nothing (or an error) came. */
/* For a debug line after a failed read or write: errno's text, then the transport's reason when
 * it has one (TLS: "Protocol error the peer's certificate has expired (wolfSSL error -151)"). */
static const char *failure_text(const arrpc__conn *c, char *buf, size_t len)
{
    int err = errno;
    char why[256];
    const char *more = c->io.ops->last_error(&c->io, why, sizeof why);
    snprintf(buf, len, "%s %s", strerror(err), more ? more : "");
    return buf;
}

static ssize_t read_some(arrpc__loop *loop, arrpc__conn *c)
{
    ssize_t n;
    if (arrpc__buf_used(&c->in) == 0) {
        n = c->io.ops->read(&c->io, loop->scratch, ARRPC_READ_CHUNK);
        if (n <= 0) return n;
        size_t done = answer_requests(loop, c, loop->scratch, (size_t)n);
        if (arrpc__buf_append(&c->in, loop->scratch + done, (size_t)n - done) != 0) mark_close(c);
        note_partial(loop, c);
        return n;
    }
    if (c->in.cap - c->in.len < ARRPC_READ_CHUNK / 4 &&
        arrpc__buf_reserve(&c->in, ARRPC_READ_CHUNK) != 0) {
        mark_close(c);
        return -1;
    }
    n = c->io.ops->read(&c->io, c->in.data + c->in.len, c->in.cap - c->in.len);
    if (n > 0) {
        c->in.len += (size_t)n;
        arrpc__conn_answer_buffered(loop, c);
    }
    return n;
}

/* Whether to read again at once: TLS may hold decrypted (or undecrypted) bytes above the socket,
 * which no epoll event would announce. Not after a read that found nothing: what is held then is
 * part of a record, and only the socket can complete it. */
static int more_buffered(const arrpc__loop *loop, const arrpc__conn *c)
{
    return c->io.want != ARRPC_WANT_READ &&
           !(c->flags & (CONN_EOF | CONN_DOOMED | CONN_CLOSE | CONN_LINGER | CONN_HANDSHAKE)) &&
           arrpc__buf_used(&c->out) < ARRPC_OUTPUT_HIGH_WATER && !arrpc__calls_read_paused(c) &&
           !(loop->retiring && c->io.ops->can_hand_over) && c->io.ops->has_pending(&c->io);
}

static void on_readable(arrpc__loop *loop, arrpc__conn *c)
{
    if (c->flags & CONN_LINGER) { /* discard until the peer closes, so our error reply lands */
        ssize_t n = c->io.ops->drain(&c->io, loop->scratch, ARRPC_READ_CHUNK); /* TLS is over */
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) mark_close(c);
        return;
    }
    ssize_t n;
    int got = 0; /* data or EOF: a TLS record trickled in a byte at a time leaves the idle clock */
    do {
        n = read_some(loop, c);
        got |= n >= 0;
    } while (n > 0 && more_buffered(loop, c));
    if (n < 0 && errno == EAGAIN && c->io.want == ARRPC_WANT_WRITE)
        update_interest(loop, c, 1); /* a TLS read that must write first */
    if (n == 0) {
        c->flags |= CONN_EOF;
        if (arrpc__buf_used(&c->in) > 0)
            ARRPC_DEBUG(loop->cfg->debug, "connection from %s ended inside a request", c->peer);
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        char text[320];
        ARRPC_DEBUG(loop->cfg->debug, "connection from %s failed: %s", c->peer,
                    failure_text(c, text, sizeof text));
        mark_close(c);
        return;
    }
    if (got) c->last_active_ms = loop->now_ms;
    arrpc__conn_queue_flush(loop, c);
}

/* After an error reply is written: shut our side and wait a little for the peer's EOF, because
 * closing with unread input would send a reset that can destroy the reply in flight. */
static void linger(arrpc__loop *loop, arrpc__conn *c)
{
    c->flags = (c->flags & ~CONN_DOOMED) | CONN_LINGER;
    c->linger_until_ms = loop->now_ms + ARRPC_LINGER_MS;
    loop->nlingering++;
}

static void start_linger(arrpc__loop *loop, arrpc__conn *c)
{
    c->io.ops->shutdown(&c->io); /* TLS: close_notify first */
    linger(loop, c);
}

void arrpc__conn_flush(arrpc__loop *loop, arrpc__conn *c)
{
    c->flags &= ~CONN_QUEUED;
    if (arrpc__buf_used(&c->out) > 0 && !c->write_since_ms)
        c->write_since_ms = loop->now_ms; /* the write timeout counts from here */
    while (arrpc__buf_used(&c->out) > 0 && !(c->flags & CONN_CLOSE)) {
        ssize_t n = c->io.ops->write(&c->io, c->out.data + c->out.head, arrpc__buf_used(&c->out));
        if (n > 0) {
            arrpc__buf_consume(&c->out, (size_t)n);
            c->last_active_ms = loop->now_ms; /* idle time counts from the last reply, too */
            c->write_since_ms = loop->now_ms;
            /* Below the mark again: answer requests that backpressure held back. */
            if (arrpc__buf_used(&c->out) < ARRPC_OUTPUT_HIGH_WATER && arrpc__buf_used(&c->in))
                arrpc__conn_answer_buffered(loop, c);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            int again = errno == EAGAIN;
            update_interest(loop, c, again && c->io.want == ARRPC_WANT_WRITE);
            if (again) return;
            continue;
        }
        char text[320];
        ARRPC_DEBUG(loop->cfg->debug, "writing to %s failed: %s", c->peer,
                    failure_text(c, text, sizeof text));
        mark_close(c);
        return;
    }
    if (c->flags & CONN_CLOSE) return;
    if (arrpc__buf_used(&c->out) == 0) c->write_since_ms = 0;
    if (arrpc__calls_pending(c))
        ; /* replies still to come: the error reply or the close waits for them */
    else if (c->flags & CONN_DOOMED)
        start_linger(loop, c);
    else if ((c->flags & CONN_EOF) && arrpc__buf_used(&c->out) == 0)
        mark_close(c); /* the peer sent everything and has all its replies */
    update_interest(loop, c, 0);
    if (more_buffered(loop, c)) /* reading resumed after backpressure: TLS may hold bytes */
        on_readable(loop, c);
}

void arrpc__conn_close_gracefully(arrpc__loop *loop, arrpc__conn *c)
{
    if (c->flags & (CONN_LINGER | CONN_CLOSE)) return;
    start_linger(loop, c);
    update_interest(loop, c, 0);
}

/* A request begun more than the request timeout ago and still not whole (a slowloris, or a
 * client that died mid-request): one error reply, then the usual close after an error. Not
 * while backpressure holds the input back: that wait is the client's, and the write timeout's. */
static int request_overdue(const arrpc__loop *loop, const arrpc__conn *c)
{
    unsigned limit = loop->cfg->request_timeout_ms;
    return limit && c->request_since_ms && !(c->flags & (CONN_EOF | CONN_DOOMED)) &&
           arrpc__buf_used(&c->out) < ARRPC_OUTPUT_HIGH_WATER && !arrpc__calls_blocked(c) &&
           loop->now_ms - c->request_since_ms >= limit;
}

/* Replies pending and not one byte of them taken for the write timeout: the client does not
 * read. It would not read an error reply either, so the connection is just closed. */
static int write_overdue(const arrpc__loop *loop, const arrpc__conn *c)
{
    unsigned limit = loop->cfg->write_timeout_ms;
    return limit && c->write_since_ms && arrpc__buf_used(&c->out) > 0 &&
           loop->now_ms - c->write_since_ms >= limit;
}

int arrpc__conn_check_timeouts(arrpc__loop *loop, arrpc__conn *c)
{
    if (c->flags & (CONN_CLOSE | CONN_LINGER | CONN_HANDSHAKE | CONN_PROXY)) return 0;
    if (write_overdue(loop, c)) {
        arrpc__log("closing connection from %s: its replies were not read for %u ms "
                   "(--write-timeout)",
                   c->peer, loop->cfg->write_timeout_ms);
        arrpc__stats_timeout(loop, c);
        mark_close(c);
        return 1;
    }
    if (!request_overdue(loop, c)) return 0;
    arrpc__log("closing connection from %s: request not completed in %u ms (--request-timeout)",
               c->peer, loop->cfg->request_timeout_ms);
    arrpc__stats_timeout(loop, c);
    if (arrpc__calls_answer_error(loop, c, "request not completed in time", ARRPC_REASON_TIMEOUT,
                                  arrpc__buf_used(&c->in)) != 0) {
        mark_close(c);
        return 1;
    }
    c->flags |= CONN_DOOMED;
    arrpc__conn_flush(loop, c); /* stops reading, writes the reply, then lingers for the EOF */
    return 1;
}

/* One step of the TLS handshake; on success the connection serves like any other. */
static void continue_handshake(arrpc__loop *loop, arrpc__conn *c)
{
    char why[256];
    int rc = c->io.ops->handshake(&c->io, why, sizeof why);
    if (rc == 0) {
        update_interest(loop, c, 0);
        return;
    }
    c->flags &= ~CONN_HANDSHAKE;
    loop->nhandshaking--;
    if (rc < 0) {
        ARRPC_DEBUG(loop->cfg->debug, "TLS handshake with %s failed: %s", c->peer, why);
        arrpc__stats_tls_failure(loop, c);
        /* wolfSSL has written its alert; closing now with the client's next bytes unread would
         * reset the connection and could destroy the alert: end our side, wait for its EOF. */
        c->io.ops->half_close(&c->io);
        linger(loop, c);
        update_interest(loop, c, 0);
        return;
    }
    c->last_active_ms = loop->now_ms;
    char who[ARRPC_PEER_IDENTITY_MAX]; /* read once: every call of the connection asks for it */
    if (c->io.ops->peer_identity(&c->io, who, sizeof who) && !(c->tls_peer = strdup(who))) {
        mark_close(c);
        return;
    }
    if (loop->cfg->debug) {
        char desc[128];
        arrpc__log("TLS with %s: %s", c->peer, c->io.ops->describe(&c->io, desc, sizeof desc));
    }
    update_interest(loop, c, 0);
    if (c->io.ops->has_pending(&c->io)) /* the first request came with the client's Finished */
        on_readable(loop, c);
}

void arrpc__conn_on_event(arrpc__loop *loop, arrpc__conn *c, uint32_t events)
{
    if (c->flags & CONN_PROXY) { /* what follows the header keeps the socket readable, and
                                    level-triggered epoll wakes the loop for it again */
        if (!(c->flags & CONN_CLOSE)) arrpc__proxy_on_readable(loop, c);
        return;
    }
    if (c->flags & CONN_SNIFF) { /* not its header: it goes on below as any client's data */
        if (!(c->flags & CONN_CLOSE)) arrpc__proxy_sniff(loop, c);
        if (c->flags & (CONN_SNIFF | CONN_CLOSE)) return;
    }
    if (c->flags & CONN_HANDSHAKE) {
        if (!(c->flags & CONN_CLOSE)) continue_handshake(loop, c);
        return;
    }
    if (events & EPOLLIN)
        on_readable(loop, c);
    else if (events & (EPOLLERR | EPOLLHUP))
        mark_close(c);
    if ((events & EPOLLOUT) && !(c->flags & CONN_CLOSE)) arrpc__conn_queue_flush(loop, c);
}
