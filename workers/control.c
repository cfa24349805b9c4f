/* control.c -- a worker acting on its master's messages: stop, retire, adopt, listen more or less,
 * reopen the access log. */
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "../core/fdpass.h"
#include "../core/log.h"
#include "../shm/segment.h"
#include "access_log.h"
#include "control.h"
#include "loop.h"

/* Stop accepting and reading; what was read is answered, then each connection is handed over at
 * its next request boundary (see expire in loop.c). Without a hand-over socket this is a drain. */
static void retire(arrpc__loop *loop, int handoff_fd)
{
    if (loop->retiring || loop->draining) {
        if (handoff_fd >= 0) close(handoff_fd);
        return;
    }
    arrpc__loop_stop_accepting(loop);
    loop->retiring = 1;
    loop->handoff_out = handoff_fd;
    loop->drain_until_ms = loop->now_ms + loop->cfg->drain_timeout_ms;
    for (arrpc__conn *c = loop->conns; c; c = c->next) {
        arrpc__conn_refresh_interest(loop, c);
        arrpc__conn_queue_flush(loop, c);
    }
    ARRPC_DEBUG(loop->cfg->debug, "retiring: handing over %u connections", loop->nconns);
}

static void adopt(arrpc__loop *loop, int fd)
{
    for (unsigned i = 0; i < ARRPC_LOOP_HANDOFF_IN_MAX; i++) {
        arrpc__loop_source *src = &loop->handoff_in[i];
        if (src->kind) continue;
        *src = (arrpc__loop_source){.kind = LOOP_HANDOFF_IN, .fd = fd};
        if (arrpc__loop_watch(loop, src) == 0) return;
        src->kind = 0;
        break;
    }
    arrpc__log("cannot take hand-over socket: too many or epoll failed");
    close(fd);
}

static void listen_add(arrpc__loop *loop, int fd, uint32_t slot)
{
    if (loop->nlisteners == ARRPC_WORKER_LISTENERS_MAX || !loop->accepting) {
        close(fd);
        return;
    }
    arrpc__loop_source *src = &loop->listeners[loop->nlisteners];
    *src = (arrpc__loop_source){.kind = LOOP_LISTENER, .fd = fd, .slot = slot};
    if (arrpc__loop_watch(loop, src) == 0)
        loop->nlisteners++;
    else
        close(fd);
}

/* The master keeps every listening socket open; a worker only stops watching one. */
static void listen_drop(arrpc__loop *loop, uint32_t slot)
{
    for (unsigned i = 1; i < loop->nlisteners; i++) { /* never its own slot's socket, index 0 */
        if (loop->listeners[i].slot != slot) continue;
        epoll_ctl(loop->epfd, EPOLL_CTL_DEL, loop->listeners[i].fd, NULL);
        close(loop->listeners[i].fd); /* our copy, received with LISTEN_ADD */
        loop->listeners[i] = loop->listeners[--loop->nlisteners];
        if (i < loop->nlisteners) { /* it moved: epoll must point at its new place */
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &loop->listeners[i]};
            epoll_ctl(loop->epfd, EPOLL_CTL_MOD, loop->listeners[i].fd, &ev);
        }
        return;
    }
}

void arrpc__loop_on_control(arrpc__loop *loop)
{
    arrpc__ctl_msg msg;
    int fds[ARRPC_FDPASS_MAX], nfds = 0;
    ssize_t n = arrpc__fd_recv(loop->control.fd, &msg, sizeof msg, fds, &nfds);
    if (n == 0 || (n < 0 && errno != EAGAIN)) { /* the master is gone: finish and leave */
        epoll_ctl(loop->epfd, EPOLL_CTL_DEL, loop->control.fd, NULL);
        arrpc__loop_start_drain(loop);
        return;
    }
    int fd = nfds > 0 ? fds[0] : -1;
    for (int i = 1; i < nfds; i++)
        close(fds[i]);
    if (n != (ssize_t)sizeof msg) {
        if (fd >= 0) close(fd);
        return;
    }
    switch (msg.type) {
    case ARRPC_CTL_STOP:
        arrpc__loop_start_drain(loop);
        break;
    case ARRPC_CTL_RETIRE:
        retire(loop, fd);
        return;
    case ARRPC_CTL_ADOPT:
        if (fd >= 0) adopt(loop, fd);
        return;
    case ARRPC_CTL_LISTEN_ADD:
        if (fd >= 0) listen_add(loop, fd, msg.arg);
        return;
    case ARRPC_CTL_LISTEN_DROP:
        listen_drop(loop, msg.arg);
        break;
    case ARRPC_CTL_REOPEN_LOG:
        if (loop->access_log) arrpc__access_log_reopen(loop->access_log);
        break;
    }
    if (fd >= 0) close(fd);
}
