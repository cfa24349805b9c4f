/* loop.c -- the epoll loop of one worker: accept, dispatch events, flush, close, time out, drain.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/clock.h"
#include "../core/fdpass.h"
#include "../core/log.h"
#include "../shm/segment.h"
#include "access_log.h"
#include "calls.h"
#include "control.h"
#include "loop.h"
#include "pool.h"
#include "recycle.h"
#include "rescue.h"
#include "stats.h"

#define REJECT_LOG_INTERVAL_MS 1000u /* at most one "too many connections" line per second */

int arrpc__loop_watch(arrpc__loop *loop, arrpc__loop_source *src)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = src};
    return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, src->fd, &ev) == 0 ? 0 : ARRPC_ESYS;
}

uint64_t arrpc__loop_random(arrpc__loop *loop)
{
    uint64_t x = loop->random; /* xorshift64: never 0 once seeded non-zero */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return loop->random = x;
}

static void reject(arrpc__loop *loop, int fd)
{
    close(fd);
    if (loop->now_ms - loop->last_reject_log_ms >= REJECT_LOG_INTERVAL_MS) {
        arrpc__log("refusing connections: %u open, the limit (--max-connections)", loop->nconns);
        loop->last_reject_log_ms = loop->now_ms;
    }
}

static void accept_some(arrpc__loop *loop, int listen_fd)
{
    for (int i = 0; i < ARRPC_ACCEPT_BATCH && loop->accepting; i++) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                arrpc__log("accept: %s", strerror(errno));
            return;
        }
        if (loop->nconns >= loop->cfg->max_connections) {
            arrpc__stats_rejected(loop, fd);
            reject(loop, fd);
            continue;
        }
        int one = 1; /* replies are whole messages: send them now, not after Nagle's delay */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (loop->cfg->tcp_keepalive_s)
            arrpc__net_keepalive(fd, loop->cfg->tcp_keepalive_s, ARRPC_KEEPALIVE_PROBES);
        if (!arrpc__conn_open(loop, fd, NULL)) close(fd);
    }
}

void arrpc__loop_stop_accepting(arrpc__loop *loop)
{
    if (!loop->accepting) return;
    loop->accepting = 0;
    for (unsigned i = 0; i < loop->nlisteners; i++)
        epoll_ctl(loop->epfd, EPOLL_CTL_DEL, loop->listeners[i].fd, NULL);
}

void arrpc__loop_start_drain(arrpc__loop *loop)
{
    if (loop->draining) return;
    arrpc__loop_stop_accepting(loop);
    loop->draining = 1;
    loop->drain_until_ms = loop->now_ms + loop->cfg->drain_timeout_ms;
    ARRPC_DEBUG(loop->cfg->debug, "draining %u connections", loop->nconns);
}

/* The server's eventfd (arrpc_server_reopen_access_log, or SIGUSR1 to arrpcd without workers). */
static void on_reopen(arrpc__loop *loop)
{
    uint64_t count;
    ssize_t r = read(loop->reopen.fd, &count, sizeof count);
    (void)r;
    arrpc__access_log_reopen(loop->access_log);
}

static void on_stop(arrpc__loop *loop)
{
    char buf[128]; /* an eventfd needs 8 bytes, a signalfd 128: one read serves both */
    ssize_t r = read(loop->stop.fd, buf, sizeof buf);
    (void)r;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, loop->stop.fd, NULL);
    arrpc__loop_start_drain(loop);
}

/* Whether a connection may be handed over now: at a request boundary, everything answered and
 * written, and the stream in a state the next worker can continue (not before its PROXY header:
 * the next worker would take the header for requests). */
static int ready_for_handoff(const arrpc__conn *c)
{
    return c->io.ops->can_hand_over && /* TLS keys live in this process: never handed over */
           arrpc__buf_used(&c->out) == 0 && !arrpc__calls_pending(c) &&
           c->scanned == arrpc__buf_used(&c->in) &&
           !(c->flags & (CONN_EOF | CONN_DOOMED | CONN_LINGER | CONN_CLOSE | CONN_PROXY));
}

/* A retiring worker keeps its TLS connections until their clients close them; once the drain
 * deadline has passed it closes each at its next idle moment (close_notify: a client of ours then
 * knows no request was lost), and any still busy at twice the deadline. True when it acted. */
static int expire_kept_tls(arrpc__loop *loop, arrpc__conn *c, int idle)
{
    if (!loop->retiring || loop->draining || c->io.ops->can_hand_over ||
        (c->flags & (CONN_HANDSHAKE | CONN_LINGER)))
        return 0;
    uint64_t deadline = loop->drain_until_ms, hard = deadline + loop->cfg->drain_timeout_ms;
    if (loop->now_ms >= deadline && idle)
        arrpc__conn_close_gracefully(loop, c);
    else if (loop->now_ms >= hard)
        c->flags |= CONN_CLOSE;
    return 1;
}

/* A PROXY header or TLS handshake past its deadline (a limit: logged and counted), or one cut
 * by a drain. */
static void expire_handshake(arrpc__loop *loop, arrpc__conn *c)
{
    if (loop->draining) {
        c->flags |= CONN_CLOSE;
    } else if (c->flags & CONN_PROXY) {
        arrpc__proxy_expire(loop, c);
    } else {
        arrpc__log("closing connection from %s: TLS handshake not done in %u ms "
                   "(--tls-handshake-timeout)",
                   c->peer, loop->cfg->tls_handshake_timeout_ms);
        arrpc__stats_timeout(loop, c);
        c->flags |= CONN_CLOSE;
    }
}

/* Past its age limit, a connection ends at an idle moment, the way a drain ends it (FIN, or
 * close_notify under TLS, then the linger for the client's EOF): no request is cut. */
static void expire_aged(arrpc__loop *loop, arrpc__conn *c, int idle)
{
    if (!c->close_after_ms || loop->now_ms < c->close_after_ms || !idle ||
        (c->flags & (CONN_CLOSE | CONN_EOF | CONN_HANDSHAKE | CONN_PROXY)))
        return;
    ARRPC_DEBUG(loop->cfg->debug, "closing connection from %s: older than its age limit", c->peer);
    arrpc__stats_aged(loop, c);
    arrpc__conn_close_gracefully(loop, c);
}

/* Closes what timed out: lingering closes, idle connections, handshakes past their deadline,
 * requests that never complete, replies never read, connections past their age, and everything
 * once a drain is over its deadline. A draining worker closes each connection as soon as it is
 * idle; a retiring one hands it over instead (TLS ones: expire_kept_tls). */
static void expire(arrpc__loop *loop)
{
    unsigned idle_ms = loop->cfg->idle_timeout_ms;
    int drain_over = (loop->draining || loop->retiring) && loop->now_ms >= loop->drain_until_ms;
    for (arrpc__conn *c = loop->conns; c; c = c->next) {
        arrpc__loop_mark_busy(loop, c);
        if (loop->retiring && loop->handoff_out >= 0 && ready_for_handoff(c) &&
            arrpc__handoff_send(loop, c) == 0)
            continue; /* the connection now belongs to the other worker; CONN_CLOSE is set */
        if (c->flags & CONN_SNIFF) arrpc__proxy_sniff_expire(loop, c);
        if ((c->flags & (CONN_HANDSHAKE | CONN_PROXY)) &&
            (loop->now_ms >= c->handshake_until_ms || loop->draining)) {
            expire_handshake(loop, c); /* too slow, or this worker is stopping */
            continue;
        }
        if (loop->ndeferred) arrpc__calls_expire(loop, c);
        if (arrpc__conn_check_timeouts(loop, c)) continue;
        int idle = arrpc__conn_idle(c);
        if (loop->handoff_out >= 0 && expire_kept_tls(loop, c, idle)) continue;
        if (drain_over || ((loop->draining || loop->retiring) && idle && loop->handoff_out < 0) ||
            ((c->flags & CONN_LINGER) && loop->now_ms >= c->linger_until_ms) ||
            (idle_ms && idle && loop->now_ms - c->last_active_ms >= idle_ms))
            c->flags |= CONN_CLOSE;
        else
            expire_aged(loop, c, idle);
    }
    arrpc__loop_mark_busy(loop, NULL);
}

static void flush_all(arrpc__loop *loop)
{
    while (loop->flush_list) {
        arrpc__conn *c = loop->flush_list;
        loop->flush_list = c->next_flush;
        arrpc__loop_mark_busy(loop, c);
        arrpc__conn_flush(loop, c);
    }
    arrpc__loop_mark_busy(loop, NULL);
}

/* Frees connections marked for closing; only here, never inside an event handler. */
static void reap(arrpc__loop *loop)
{
    arrpc__conn *c = loop->conns;
    while (c) {
        arrpc__conn *next = c->next;
        if ((c->flags & CONN_CLOSE) && !c->running) /* a running call returns to it first */
            arrpc__conn_free(loop, c);
        c = next;
    }
}

static int timer_wait_ms(const arrpc__loop *loop)
{
    const arrpc__worker_config *cfg = loop->cfg;
    if (loop->draining || loop->retiring || loop->nlingering || loop->nhandshaking ||
        cfg->idle_timeout_ms || (loop->ndeferred && cfg->handler_timeout_ms) ||
        (loop->nconns &&
         (cfg->request_timeout_ms || cfg->write_timeout_ms || cfg->max_connection_age_ms)))
        return ARRPC_TIMER_TICK_MS; /* a worker without connections sleeps until one comes */
    return -1;
}

static void on_event(arrpc__loop *loop, void *ptr, uint32_t events)
{
    arrpc__loop_source *src = ptr;
    switch (src->kind) {
    case LOOP_CONN:
        arrpc__loop_mark_busy(loop, ptr);
        arrpc__conn_on_event(loop, ptr, events);
        arrpc__loop_mark_busy(loop, NULL);
        break;
    case LOOP_LISTENER:
        accept_some(loop, src->fd);
        break;
    case LOOP_STOP:
        on_stop(loop);
        break;
    case LOOP_CONTROL:
        arrpc__loop_on_control(loop);
        break;
    case LOOP_HANDOFF_IN:
        arrpc__handoff_receive(loop, src);
        break;
    case LOOP_MAIL:
        arrpc__calls_on_mail(loop);
        break;
    case LOOP_REOPEN:
        on_reopen(loop);
        break;
    }
}

/* Waits at most ns nanoseconds: a job queued behind a handler thread's call, or a batch running
 * on one, is due a look then (pool.c, calls.c), sooner than epoll_wait's milliseconds allow.
 * Kernels before 5.11 have no epoll_pwait2: one millisecond then. */
static int wait_ns(arrpc__loop *loop, struct epoll_event *events, int64_t ns)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)ns};
    int n = epoll_pwait2(loop->epfd, events, ARRPC_LOOP_EVENTS, &ts, NULL);
    if (n < 0 && errno == ENOSYS) n = epoll_wait(loop->epfd, events, ARRPC_LOOP_EVENTS, ns ? 1 : 0);
    return n;
}

/* The loop's clock read, which also anchors the request clock there. */
static uint64_t now_ms(arrpc__loop *loop)
{
    return arrpc__fast_clock_anchor(&loop->clock) / 1000000u;
}

/* One round of the loop; nonzero when the standby took the loop over meanwhile (an inline call
 * ran long): then this thread must not touch the loop again. */
static int run_iteration(arrpc__loop *loop, struct epoll_event *events)
{
    int64_t due_ns = loop->pool ? arrpc__calls_due_ns(loop) : -1;
    int n = due_ns >= 0 ? wait_ns(loop, events, due_ns)
                        : epoll_wait(loop->epfd, events, ARRPC_LOOP_EVENTS, timer_wait_ms(loop));
    loop->now_ms = now_ms(loop);
    for (int i = 0; i < n; i++)
        on_event(loop, events[i].data.ptr, events[i].events);
    loop->now_ms = now_ms(loop); /* handlers may have run for a while: replies go out now */
    if (loop->inline_head && arrpc__calls_run_inline(loop) != 0) return ARRPC_LOOP_LOST;
    if (loop->pool) arrpc__calls_look(loop);
    flush_all(loop);
    if (loop->pool) arrpc__pool_nudge(loop->pool);
    /* Walking every connection is for timers and hand-over only, not every busy iteration. */
    if (loop->draining || loop->retiring ||
        (timer_wait_ms(loop) >= 0 && loop->now_ms >= loop->next_expire_ms)) {
        expire(loop);
        loop->next_expire_ms = loop->now_ms + ARRPC_TIMER_TICK_MS;
    }
    if (loop->recycle.armed) arrpc__loop_recycle_check(loop);
    reap(loop);
    arrpc__access_log_flush(loop->access_log); /* the round's lines: none waits longer */
    return 0;
}

static int loop_init(arrpc__loop *loop, const arrpc__worker_io *io, char *err, size_t errlen)
{
    arrpc__fast_clock_init(&loop->clock);
    ARRPC_DEBUG(loop->cfg->debug, "request clock: %s", loop->clock.why);
    loop->now_ms = now_ms(loop);
    /* Workers fork from one master: the pid keeps their sequences apart. */
    loop->random = (arrpc__clock_ns() ^ ((uint64_t)getpid() << 32)) | 1u;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->scratch = malloc(ARRPC_READ_CHUNK);
    loop->stop = (arrpc__loop_source){.kind = LOOP_STOP, .fd = io->stop_fd};
    loop->control = (arrpc__loop_source){.kind = LOOP_CONTROL, .fd = io->control_fd};
    loop->reopen = (arrpc__loop_source){.kind = LOOP_REOPEN, .fd = -1};
    loop->handoff_out = -1;
    loop->accepting = 1;
    int rc = (loop->epfd < 0 || !loop->scratch) ? ARRPC_ESYS : 0;
    if (rc == 0) rc = arrpc__calls_init(loop, err, errlen);
    if (rc != 0) return rc;
    if (rc == 0 && loop->cfg->tls_cert) { /* read here, in the worker: a reload reads them anew */
        loop->tls =
            arrpc__tls_server_ctx(loop->cfg->tls_cert, loop->cfg->tls_key, loop->cfg->tls_client_ca,
                                  loop->cfg->tls_ticket_key, err, errlen);
        if (!loop->tls) return ARRPC_ETLS;
    }
    if (loop->cfg->access_log) {
        loop->access_log = arrpc__access_log_open(loop->cfg, loop->tls != NULL, err, errlen);
        if (!loop->access_log) return ARRPC_ESYS;
        if (io->reopen_fd >= 0) loop->reopen.fd = io->reopen_fd;
    }
    for (unsigned i = 0; rc == 0 && i < io->nlisten && i < ARRPC_WORKER_LISTENERS_MAX; i++) {
        loop->listeners[i] =
            (arrpc__loop_source){.kind = LOOP_LISTENER,
                                 .fd = io->listen_fds[i],
                                 .slot = io->listen_slots ? io->listen_slots[i] : 0};
        loop->nlisteners++;
        rc = arrpc__loop_watch(loop, &loop->listeners[i]);
    }
    if (rc == 0) rc = arrpc__loop_watch(loop, &loop->stop);
    if (rc == 0 && loop->control.fd >= 0) rc = arrpc__loop_watch(loop, &loop->control);
    if (rc == 0) arrpc__loop_recycle_init(loop);
    if (rc == 0 && loop->reopen.fd >= 0) rc = arrpc__loop_watch(loop, &loop->reopen);
    if (rc == 0 && io->rescue_fd >= 0)
        return arrpc__rescue_install(loop, io->rescue_fd, err, errlen);
    if (rc != 0) snprintf(err, errlen, "cannot start the worker loop: %s", strerror(errno));
    return rc;
}

static void loop_destroy(arrpc__loop *loop)
{
    arrpc__rescue_uninstall();
    arrpc__calls_stop(loop); /* the handler threads finish first: their calls name connections */
    while (loop->conns)
        arrpc__conn_free(loop, loop->conns);
    for (unsigned i = 0; i < ARRPC_LOOP_HANDOFF_IN_MAX; i++)
        if (loop->handoff_in[i].kind) close(loop->handoff_in[i].fd);
    if (loop->handoff_out >= 0) close(loop->handoff_out);
    arrpc__calls_destroy(loop);
    arrpc__access_log_close(loop->access_log); /* after the last calls were answered */
    arrpc__tls_ctx_free(loop->tls);
    free(loop->scratch);
    if (loop->epfd >= 0) close(loop->epfd);
}

/* Whether a retiring worker may still hand connections to this one: it may while its end of
 * the hand-over socket is open. */
static int receiving(const arrpc__loop *loop)
{
    for (unsigned i = 0; i < ARRPC_LOOP_HANDOFF_IN_MAX; i++)
        if (loop->handoff_in[i].kind) return 1;
    return 0;
}

/* Done when draining or retiring and no connection is left, nor can come: a worker told to go
 * while another still hands it connections (a recycle's replacement caught by a reload) stays
 * until that one is done, or the drain deadline passes; leaving earlier would make the sender
 * close the rest. */
static int finished(const arrpc__loop *loop)
{
    return (loop->draining || loop->retiring) && loop->nconns == 0 &&
           (!receiving(loop) || loop->now_ms >= loop->drain_until_ms);
}

int arrpc__loop_serve(arrpc__loop *loop, struct epoll_event *events)
{
    while (!finished(loop))
        if (run_iteration(loop, events) != 0) return ARRPC_LOOP_LOST;
    return ARRPC_LOOP_FINISHED;
}

static int serve(const arrpc__worker_io *io, const arrpc__worker_config *cfg, char *err,
                 size_t errlen)
{
    arrpc__loop loop = {.epfd = -1, .cfg = cfg};
    struct epoll_event *events = calloc(ARRPC_LOOP_EVENTS, sizeof *events);
    int rc = events ? loop_init(&loop, io, err, errlen) : ARRPC_ENOMEM;
    if (rc == 0 && io->control_fd >= 0) {
        arrpc__ctl_msg ready = {.type = ARRPC_CTL_READY};
        arrpc__fd_send(io->control_fd, &ready, sizeof ready, NULL, 0);
    }
    if (rc == 0) rc = arrpc__lead_start(&loop, err, errlen);
    /* Lost: the standby serves; this thread waits as the standby, until it owns the loop again
     * or the worker is done. */
    while (rc == 0 && arrpc__loop_serve(&loop, events) == ARRPC_LOOP_LOST &&
           arrpc__lead_wait(&loop))
        ;
    arrpc__lead_finish(&loop);
    loop_destroy(&loop);
    free(events);
    return rc;
}

/* The handler's lifecycle around the loop: what init leaves in udata is what every call and fini
 * get, so the loop serves with a copy of the configuration holding it. */
int arrpc__worker_run(const arrpc__worker_io *io, const arrpc__worker_config *cfg, char *err,
                      size_t errlen)
{
    arrpc__worker_config own = *cfg;
    int rc = cfg->init ? cfg->init(cfg->init_arg, &own.udata) : 0;
    if (rc != 0) {
        snprintf(err, errlen, "%s returned %d; not serving",
                 cfg->init_name ? cfg->init_name : "the handler's init", rc);
        return ARRPC_ELOAD;
    }
    rc = serve(io, &own, err, errlen);
    if (cfg->fini) cfg->fini(own.udata);
    return rc;
}
