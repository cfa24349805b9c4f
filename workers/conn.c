/* conn.c -- one connection: read, scan, dispatch, queue replies, flush; closing is the loop's job. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/log.h"
#include "loop.h"

static const char *outcome_name[] = {
    [ARRPC_OUTCOME_OK] = "ok",
    [ARRPC_OUTCOME_RPC_ERROR] = "rpc error",
    [ARRPC_OUTCOME_AUTH_ERROR] = "auth error",
    [ARRPC_OUTCOME_INVALID] = "invalid request",
    [ARRPC_OUTCOME_BAD_REPLY] = "invalid reply",
};

arrpc__conn *arrpc__conn_open(arrpc__loop *loop, int fd)
{
    arrpc__conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->scan = arrpc__scan_new(loop->cfg->max_message, loop->cfg->max_depth);
    c->kind = LOOP_CONN;
    c->fd = fd;
    c->events = EPOLLIN;
    struct epoll_event ev = {.events = c->events, .data.ptr = c};
    if (!c->scan || epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        arrpc__scan_free(c->scan);
        free(c);
        return NULL;
    }
    arrpc__net_peer_name(fd, c->peer, sizeof c->peer);
    c->last_active_ms = loop->now_ms;
    c->next = loop->conns;
    if (loop->conns)
        loop->conns->prev = c;
    loop->conns = c;
    loop->nconns++;
    ARRPC_DEBUG(loop->cfg->debug, "connection from %s opened", c->peer);
    return c;
}

void arrpc__conn_free(arrpc__loop *loop, arrpc__conn *c)
{
    ARRPC_DEBUG(loop->cfg->debug, "connection from %s closed", c->peer);
    if (c->prev)
        c->prev->next = c->next;
    else
        loop->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    loop->nconns--;
    if (c->flags & CONN_LINGER)
        loop->nlingering--;
    close(c->fd); /* also removes it from the epoll set */
    arrpc__buf_free(&c->in);
    arrpc__buf_free(&c->out);
    arrpc__scan_free(c->scan);
    free(c);
}

int arrpc__conn_idle(const arrpc__conn *c)
{
    return arrpc__buf_used(&c->in) == 0 && arrpc__buf_used(&c->out) == 0 &&
           !(c->flags & (CONN_DOOMED | CONN_LINGER));
}

static void mark_close(arrpc__conn *c)
{
    c->flags |= CONN_CLOSE;
}

void arrpc__conn_queue_flush(arrpc__loop *loop, arrpc__conn *c)
{
    if (c->flags & CONN_QUEUED)
        return;
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
    if (c->flags & CONN_LINGER)
        ev |= EPOLLIN;
    else if (!(c->flags & (CONN_EOF | CONN_DOOMED | CONN_CLOSE)) && !paused && !loop->retiring)
        ev |= EPOLLIN; /* a retiring worker reads no more: what it has read, it answers */
    if (want_write)
        ev |= EPOLLOUT;
    if (ev == c->events || (c->flags & CONN_CLOSE))
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, c->fd, &e) == 0)
        c->events = ev;
    else
        mark_close(c);
}

/* Answers every whole request in p[0, n), starting the scan at c->scanned. Stops early on a
 * stream error (queueing its error reply) or when the output passes the high-water mark.
 * Returns the bytes of p consumed by answered requests. */
static size_t answer_requests(arrpc__loop *loop, arrpc__conn *c, const uint8_t *p, size_t n)
{
    size_t done = 0;
    while (!(c->flags & CONN_DOOMED) && arrpc__buf_used(&c->out) < ARRPC_OUTPUT_HIGH_WATER &&
           done + c->scanned < n) {
        size_t used = 0;
        int rc = arrpc__scan_feed(c->scan, p + done + c->scanned, n - done - c->scanned, &used);
        c->scanned += used;
        if (rc == 0)
            break;
        if (rc < 0) {
            arrpc__log("closing connection from %s: %s", c->peer, arrpc__scan_error(c->scan));
            arrpc__dispatch_rpc_error(&c->out, arrpc__scan_error(c->scan));
            c->flags |= CONN_DOOMED;
            break;
        }
        arrpc__outcome outcome;
        if (arrpc__dispatch(loop->dispatcher, p + done, c->scanned, &c->out, &outcome) != 0) {
            arrpc__log("closing connection from %s: out of memory", c->peer);
            mark_close(c);
            break;
        }
        ARRPC_DEBUG(loop->cfg->debug, "request from %s: %zu bytes, %s", c->peer, c->scanned,
                    outcome_name[outcome]);
        done += c->scanned;
        c->scanned = 0;
    }
    return done;
}

void arrpc__conn_refresh_interest(arrpc__loop *loop, arrpc__conn *c)
{
    update_interest(loop, c, (c->events & EPOLLOUT) != 0);
}

void arrpc__conn_answer_buffered(arrpc__loop *loop, arrpc__conn *c)
{
    size_t done = answer_requests(loop, c, c->in.data + c->in.head, arrpc__buf_used(&c->in));
    arrpc__buf_consume(&c->in, done);
}

/* Reads once. With no partial message pending the bytes land in the loop's scratch buffer, and
 * only what is left unanswered is copied into the connection's own buffer: an idle connection
 * holds no input memory. Returns bytes read, 0 at EOF, -1 when nothing (or an error) came. */
static ssize_t read_some(arrpc__loop *loop, arrpc__conn *c)
{
    ssize_t n;
    if (arrpc__buf_used(&c->in) == 0) {
        n = recv(c->fd, loop->scratch, ARRPC_READ_CHUNK, 0);
        if (n <= 0)
            return n;
        size_t done = answer_requests(loop, c, loop->scratch, (size_t)n);
        if (arrpc__buf_append(&c->in, loop->scratch + done, (size_t)n - done) != 0)
            mark_close(c);
        return n;
    }
    if (c->in.cap - c->in.len < ARRPC_READ_CHUNK / 4 &&
        arrpc__buf_reserve(&c->in, ARRPC_READ_CHUNK) != 0) {
        mark_close(c);
        return -1;
    }
    n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
    if (n > 0) {
        c->in.len += (size_t)n;
        arrpc__conn_answer_buffered(loop, c);
    }
    return n;
}

static void on_readable(arrpc__loop *loop, arrpc__conn *c)
{
    if (c->flags & CONN_LINGER) { /* discard until the peer closes, so our error reply lands */
        ssize_t n = recv(c->fd, loop->scratch, ARRPC_READ_CHUNK, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            mark_close(c);
        return;
    }
    ssize_t n = read_some(loop, c);
    if (n == 0) {
        c->flags |= CONN_EOF;
        if (arrpc__buf_used(&c->in) > 0)
            ARRPC_DEBUG(loop->cfg->debug, "connection from %s ended inside a request", c->peer);
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        mark_close(c);
        return;
    }
    c->last_active_ms = loop->now_ms;
    arrpc__conn_queue_flush(loop, c);
}

/* After an error reply is written: shut our side and wait a little for the peer's EOF, because
 * closing with unread input would send a reset that can destroy the reply in flight. */
static void start_linger(arrpc__loop *loop, arrpc__conn *c)
{
    shutdown(c->fd, SHUT_WR);
    c->flags = (c->flags & ~CONN_DOOMED) | CONN_LINGER;
    c->linger_until_ms = loop->now_ms + ARRPC_LINGER_MS;
    loop->nlingering++;
}

void arrpc__conn_flush(arrpc__loop *loop, arrpc__conn *c)
{
    c->flags &= ~CONN_QUEUED;
    while (arrpc__buf_used(&c->out) > 0 && !(c->flags & CONN_CLOSE)) {
        ssize_t n = send(c->fd, c->out.data + c->out.head, arrpc__buf_used(&c->out), MSG_NOSIGNAL);
        if (n > 0) {
            arrpc__buf_consume(&c->out, (size_t)n);
            c->last_active_ms = loop->now_ms; /* idle time counts from the last reply, too */
            /* Below the mark again: answer requests that backpressure held back. */
            if (arrpc__buf_used(&c->out) < ARRPC_OUTPUT_HIGH_WATER && arrpc__buf_used(&c->in))
                arrpc__conn_answer_buffered(loop, c);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            update_interest(loop, c, errno == EAGAIN);
            if (errno == EAGAIN)
                return;
            continue;
        }
        mark_close(c);
        return;
    }
    if (c->flags & CONN_CLOSE)
        return;
    if (c->flags & CONN_DOOMED)
        start_linger(loop, c);
    else if ((c->flags & CONN_EOF) && arrpc__buf_used(&c->out) == 0)
        mark_close(c); /* the peer sent everything and has all its replies */
    update_interest(loop, c, 0);
}

void arrpc__conn_on_event(arrpc__loop *loop, arrpc__conn *c, uint32_t events)
{
    if (events & EPOLLIN)
        on_readable(loop, c);
    else if (events & (EPOLLERR | EPOLLHUP))
        mark_close(c);
    if ((events & EPOLLOUT) && !(c->flags & CONN_CLOSE))
        arrpc__conn_queue_flush(loop, c);
}
