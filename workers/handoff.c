/* handoff.c -- giving a connection to another worker and taking one in (SCM_RIGHTS).
 *
 * A retiring worker sends each plain-TCP connection at a request boundary: every reply written,
 * nothing read left unanswered but the start of the next request, whose bytes travel with the
 * descriptor (inline when small, in a memfd when not). The receiving worker continues the stream
 * where the sender stopped; the client sees nothing. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../core/fdpass.h"
#include "../core/log.h"
#include "control.h"
#include "loop.h"

/* A memfd holding the pending bytes, for a partial request too large to travel inline. */
static int pending_memfd(const uint8_t *p, size_t n)
{
    int fd = memfd_create("arrpc-handoff", MFD_CLOEXEC);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, p + done, n - done);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)w;
    }
    return fd;
}

/* The receiver is gone (it stopped, or broke): no connection can follow. This worker then
 * drains instead, closing each connection once it is idle (expire in loop.c); retrying would
 * keep an idle connection, whose client may have left, open until the drain timeout. */
static void give_up(arrpc__loop *loop, const arrpc__conn *c)
{
    arrpc__log("hand-over of %s failed (%s); draining the rest instead", c->peer, strerror(errno));
    close(loop->handoff_out);
    loop->handoff_out = -1;
}

int arrpc__handoff_send(arrpc__loop *loop, arrpc__conn *c)
{
    uint8_t msg[sizeof(arrpc__handoff_header) + ARRPC_HANDOFF_INLINE_MAX];
    size_t pending = arrpc__buf_used(&c->in);
    const uint8_t *bytes = c->in.data + c->in.head;
    arrpc__handoff_header h = {
        .magic = ARRPC_HANDOFF_MAGIC, .pending_len = pending, .close_after_ms = c->close_after_ms};
    _Static_assert(sizeof h.peer == sizeof c->peer, "a peer name must fit the hand-over header");
    memcpy(h.peer, c->peer, sizeof h.peer);
    int fds[2] = {c->fd, -1}, nfds = 1;
    if (pending <= ARRPC_HANDOFF_INLINE_MAX) {
        h.inline_len = (uint32_t)pending;
        if (pending) memcpy(msg + sizeof h, bytes, pending);
    } else if ((fds[1] = pending_memfd(bytes, pending)) >= 0) {
        nfds = 2;
    } else {
        return ARRPC_ESYS;
    }
    memcpy(msg, &h, sizeof h);
    int rc = arrpc__fd_send(loop->handoff_out, msg, sizeof h + h.inline_len, fds, nfds);
    if (fds[1] >= 0) close(fds[1]);
    if (rc != 0) { /* EAGAIN: the receiver is behind; the next iteration tries again */
        if (errno != EAGAIN) give_up(loop, c);
        return rc;
    }
    ARRPC_DEBUG(loop->cfg->debug, "handed over %s with %zu pending bytes", c->peer, pending);
    /* Our descriptor is now a second reference to the socket: closing it closes nothing, and
     * so would not take it out of our epoll set either (epoll forgets a socket only when its
     * last descriptor closes): without this, its next event would name a freed connection. */
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    c->flags |= CONN_CLOSE;
    return 0;
}

/* Puts n bytes of a handed-over connection, at offset `at` of its memfd, at the end of b. */
static int load_memfd(arrpc__buf *b, int memfd, uint64_t at, uint64_t n)
{
    if (n == 0) return 0;
    if (arrpc__buf_reserve(b, n) != 0) return ARRPC_ENOMEM;
    ssize_t got = pread(memfd, b->data + b->len, n, (off_t)at);
    if (got != (ssize_t)n) return ARRPC_ESYS;
    b->len += n;
    return 0;
}

/* The header is one this worker can take: its sizes within bounds and the bytes all there. */
static int header_ok(const arrpc__loop *loop, const arrpc__handoff_header *h, size_t n, int nfds)
{
    uint64_t total = h->reply_len + h->pending_len;
    return h->magic == ARRPC_HANDOFF_MAGIC && n == sizeof *h + h->inline_len &&
           h->pending_len <= loop->cfg->max_message + ARRPC_READ_CHUNK &&
           h->reply_len <= ARRPC_HANDOFF_REPLY_MAX && (h->inline_len == total || nfds == 2);
}

/* Loads the reply bytes into c's output and the pending ones into its input. */
static int load_bytes(arrpc__conn *c, const arrpc__handoff_header *h, const uint8_t *bytes,
                      int memfd)
{
    if (memfd < 0)
        return arrpc__buf_append(&c->out, bytes, h->reply_len) ||
               arrpc__buf_append(&c->in, bytes + h->reply_len, h->pending_len);
    return load_memfd(&c->out, memfd, 0, h->reply_len) ||
           load_memfd(&c->in, memfd, h->reply_len, h->pending_len);
}

/* Gives a handed-over connection its place in this worker, with the bytes it brought. */
static void take_in(arrpc__loop *loop, const uint8_t *msg, size_t n, int *fds, int nfds)
{
    arrpc__handoff_header h;
    memcpy(&h, msg, sizeof h);
    int ok = header_ok(loop, &h, n, nfds);
    h.peer[sizeof h.peer - 1] = '\0';
    const arrpc__conn_origin from = {.peer = h.peer, .close_after_ms = h.close_after_ms};
    arrpc__conn *c = ok ? arrpc__conn_open(loop, fds[0], &from) : NULL;
    if (c) arrpc__loop_mark_busy(loop, c); /* its buffers fill while it is on the list */
    int rc = c ? load_bytes(c, &h, msg + sizeof h, nfds == 2 ? fds[1] : -1) : 0;
    if (nfds == 2) close(fds[1]);
    if (!c) {
        arrpc__log("refused a handed-over connection: bad message or out of memory");
        close(fds[0]);
        return;
    }
    if (rc != 0) {
        c->flags |= CONN_CLOSE;
        arrpc__loop_mark_busy(loop, NULL);
        return;
    }
    arrpc__conn_answer_buffered(loop, c); /* feeds the scanner from the first pending byte */
    arrpc__conn_queue_flush(loop, c);     /* the replies it brought leave first */
    arrpc__loop_mark_busy(loop, NULL);
}

void arrpc__handoff_receive(arrpc__loop *loop, arrpc__loop_source *src)
{
    uint8_t *msg = loop->scratch; /* ARRPC_READ_CHUNK bytes, more than a hand-over message */
    _Static_assert(sizeof(arrpc__handoff_header) + ARRPC_HANDOFF_INLINE_MAX <= ARRPC_READ_CHUNK,
                   "a hand-over message must fit the scratch buffer");
    for (;;) {
        int fds[ARRPC_FDPASS_MAX], nfds = 0;
        ssize_t n = arrpc__fd_recv(src->fd, msg, ARRPC_READ_CHUNK, fds, &nfds);
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) { /* the sender finished (EOF) or the socket broke: forget it */
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
            epoll_ctl(loop->epfd, EPOLL_CTL_DEL, src->fd, NULL);
            close(src->fd);
            src->kind = 0;
            return;
        }
        if (nfds < 1 || nfds > 2 || (size_t)n < sizeof(arrpc__handoff_header)) {
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
            continue;
        }
        take_in(loop, msg, (size_t)n, fds, nfds);
    }
}
