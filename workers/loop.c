/* loop.c -- the epoll loop of one worker: accept, dispatch events, flush, close, time out, drain. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../core/log.h"
#include "loop.h"

#define LOOP_EVENTS 256
#define REJECT_LOG_INTERVAL_MS 1000u /* at most one "too many connections" line per second */

/* Tags that tell the loop's own descriptors from connections in epoll data. */
static char listen_tag, stop_tag;

typedef struct {
    int listen_fd;
    int stop_fd;
    int draining;
    uint64_t drain_until_ms;
    uint64_t last_reject_log_ms;
    uint64_t next_expire_ms;
} loop_control;

uint64_t arrpc__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void reject(arrpc__loop *loop, loop_control *ctl, int fd)
{
    close(fd);
    if (loop->now_ms - ctl->last_reject_log_ms >= REJECT_LOG_INTERVAL_MS) {
        arrpc__log("refusing connections: %u open, the limit (--max-connections)", loop->nconns);
        ctl->last_reject_log_ms = loop->now_ms;
    }
}

static void accept_some(arrpc__loop *loop, loop_control *ctl)
{
    for (int i = 0; i < ARRPC_ACCEPT_BATCH; i++) {
        int fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                arrpc__log("accept: %s", strerror(errno));
            return;
        }
        if (loop->nconns >= loop->cfg->max_connections) {
            reject(loop, ctl, fd);
            continue;
        }
        int one = 1; /* replies are whole messages: send them now, not after Nagle's delay */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!arrpc__conn_open(loop, fd))
            close(fd);
    }
}

static void start_drain(arrpc__loop *loop, loop_control *ctl)
{
    uint64_t ignored;
    ssize_t r = read(ctl->stop_fd, &ignored, sizeof ignored);
    (void)r;
    if (ctl->draining)
        return;
    ctl->draining = 1;
    ctl->drain_until_ms = loop->now_ms + loop->cfg->drain_timeout_ms;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, ctl->listen_fd, NULL);
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, ctl->stop_fd, NULL);
    ARRPC_DEBUG(loop->cfg->debug, "draining %u connections", loop->nconns);
}

/* Closes what timed out: lingering closes, idle connections, and everything once a drain is
 * over its deadline. A draining worker also closes each connection as soon as it is idle. */
static void expire(arrpc__loop *loop, loop_control *ctl)
{
    unsigned idle_ms = loop->cfg->idle_timeout_ms;
    int drain_over = ctl->draining && loop->now_ms >= ctl->drain_until_ms;
    for (arrpc__conn *c = loop->conns; c; c = c->next) {
        int idle = arrpc__conn_idle(c);
        if (drain_over || (ctl->draining && idle) ||
            ((c->flags & CONN_LINGER) && loop->now_ms >= c->linger_until_ms) ||
            (idle_ms && idle && loop->now_ms - c->last_active_ms >= idle_ms))
            c->flags |= CONN_CLOSE;
    }
}

static void flush_all(arrpc__loop *loop)
{
    while (loop->flush_list) {
        arrpc__conn *c = loop->flush_list;
        loop->flush_list = c->next_flush;
        arrpc__conn_flush(loop, c);
    }
}

/* Frees connections marked for closing; only here, never inside an event handler. */
static void reap(arrpc__loop *loop)
{
    arrpc__conn *c = loop->conns;
    while (c) {
        arrpc__conn *next = c->next;
        if (c->flags & CONN_CLOSE)
            arrpc__conn_free(loop, c);
        c = next;
    }
}

static int timer_wait_ms(const arrpc__loop *loop, const loop_control *ctl)
{
    if (ctl->draining || loop->nlingering || loop->cfg->idle_timeout_ms)
        return ARRPC_TIMER_TICK_MS;
    return -1;
}

static void run_iteration(arrpc__loop *loop, loop_control *ctl, struct epoll_event *events)
{
    int n = epoll_wait(loop->epfd, events, LOOP_EVENTS, timer_wait_ms(loop, ctl));
    loop->now_ms = arrpc__now_ms();
    for (int i = 0; i < n; i++) {
        void *tag = events[i].data.ptr;
        if (tag == &listen_tag)
            accept_some(loop, ctl);
        else if (tag == &stop_tag)
            start_drain(loop, ctl);
        else
            arrpc__conn_on_event(loop, tag, events[i].events);
    }
    flush_all(loop);
    /* Walking every connection is for timers only, so not on every busy iteration. */
    if (ctl->draining || (timer_wait_ms(loop, ctl) >= 0 && loop->now_ms >= ctl->next_expire_ms)) {
        expire(loop, ctl);
        ctl->next_expire_ms = loop->now_ms + ARRPC_TIMER_TICK_MS;
    }
    reap(loop);
}

static int loop_init(arrpc__loop *loop, const arrpc__worker_config *cfg, loop_control *ctl,
                     char *err, size_t errlen)
{
    loop->cfg = cfg;
    loop->now_ms = arrpc__now_ms();
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->scratch = malloc(ARRPC_READ_CHUNK);
    loop->dispatcher = arrpc__dispatcher_new(cfg);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &listen_tag};
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &stop_tag};
    if (loop->epfd < 0 || !loop->scratch || !loop->dispatcher ||
        epoll_ctl(loop->epfd, EPOLL_CTL_ADD, ctl->listen_fd, &lev) != 0 ||
        epoll_ctl(loop->epfd, EPOLL_CTL_ADD, ctl->stop_fd, &sev) != 0) {
        snprintf(err, errlen, "cannot start the worker loop: %s", strerror(errno));
        return ARRPC_ESYS;
    }
    return 0;
}

static void loop_destroy(arrpc__loop *loop)
{
    while (loop->conns)
        arrpc__conn_free(loop, loop->conns);
    arrpc__dispatcher_free(loop->dispatcher);
    free(loop->scratch);
    if (loop->epfd >= 0)
        close(loop->epfd);
}

int arrpc__worker_run(int listen_fd, int stop_fd, const arrpc__worker_config *cfg, char *err,
                      size_t errlen)
{
    arrpc__loop loop = {.epfd = -1};
    loop_control ctl = {.listen_fd = listen_fd, .stop_fd = stop_fd};
    struct epoll_event *events = calloc(LOOP_EVENTS, sizeof *events);
    int rc = events ? loop_init(&loop, cfg, &ctl, err, errlen) : ARRPC_ENOMEM;
    while (rc == 0 && !(ctl.draining && loop.nconns == 0))
        run_iteration(&loop, &ctl, events);
    loop_destroy(&loop);
    free(events);
    return rc;
}
