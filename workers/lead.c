/* lead.c -- the loop's hand-over between its two owning threads (see lead.h). */
#include "lead.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "../core/clock.h"
#include "calls.h"
#include "loop.h"
#include "rescue.h"

/* How long an inline call may run before the standby takes the loop over: the patience of the
 * handler threads (pool.c), for the same reason. */
#define LEAD_PATIENCE_NS 100000u

enum { LEAD_OWNED = 0, LEAD_INLINE = 1 };

static _Thread_local unsigned seat; /* 0: the starting thread; 1: the standby thread */

unsigned arrpc__lead_seat(void)
{
    return seat;
}

static void arm(const arrpc__lead *l, uint64_t ns)
{
    struct itimerspec t = {
        .it_value = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)}};
    timerfd_settime(l->timer_fd, 0, &t, NULL);
}

int arrpc__lead_can_inline(const arrpc__loop *loop)
{
    return loop->lead.enabled &&
           atomic_load_explicit(&loop->lead.standby_ready, memory_order_relaxed);
}

void arrpc__lead_inline_begin(arrpc__loop *loop)
{
    atomic_store_explicit(&loop->lead.inline_active, 1, memory_order_relaxed);
    loop->lead.armed_at_ns = 0; /* the first call arms */
}

void arrpc__lead_inline_end(arrpc__loop *loop)
{
    atomic_store_explicit(&loop->lead.inline_active, 0, memory_order_relaxed);
    arm(&loop->lead, 0); /* a standby that re-arms meanwhile finds nothing to do, once */
}

uint64_t arrpc__lead_call_begin(arrpc__loop *loop)
{
    arrpc__lead *l = &loop->lead;
    uint64_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
    uint64_t token = ((s >> 2) + 1) << 2 | LEAD_INLINE, now = arrpc__clock_ns();
    /* The timer should fire only for a call that runs long, not every patience of a long run of
     * short calls (each firing wakes the standby): re-armed once half the patience has gone. */
    if (now - l->armed_at_ns > LEAD_PATIENCE_NS / 2) {
        arm(l, LEAD_PATIENCE_NS);
        l->armed_at_ns = now;
    }
    atomic_store_explicit(&l->call_since_ns, now, memory_order_relaxed);
    atomic_store_explicit(&l->state, token, memory_order_release); /* the loop is up for grabs */
    return token;
}

int arrpc__lead_call_end(arrpc__loop *loop, uint64_t token)
{
    uint64_t owned = (token & ~(uint64_t)3) | LEAD_OWNED;
    return atomic_compare_exchange_strong_explicit(&loop->lead.state, &token, owned,
                                                   memory_order_acq_rel, memory_order_acquire);
}

/* The standby's look when the timer fires: takes the loop over from a call past the patience;
 * else looks again when the current call will be, while inline calls run. */
static int try_take(arrpc__lead *l)
{
    if (!atomic_load_explicit(&l->inline_active, memory_order_relaxed)) return 0;
    uint64_t s = atomic_load_explicit(&l->state, memory_order_acquire);
    uint64_t since = atomic_load_explicit(&l->call_since_ns, memory_order_relaxed);
    uint64_t now = arrpc__clock_ns();
    if ((s & 3) != LEAD_INLINE || now - since < LEAD_PATIENCE_NS) {
        arm(l, (s & 3) == LEAD_INLINE ? since + LEAD_PATIENCE_NS - now : LEAD_PATIENCE_NS);
        return 0;
    }
    uint64_t taken = ((s >> 2) + 1) << 2 | LEAD_OWNED;
    return atomic_compare_exchange_strong_explicit(&l->state, &s, taken, memory_order_acq_rel,
                                                   memory_order_relaxed);
}

int arrpc__lead_wait(arrpc__loop *loop)
{
    arrpc__lead *l = &loop->lead;
    struct pollfd p[2] = {{.fd = l->stop_fd, .events = POLLIN},
                          {.fd = l->timer_fd, .events = POLLIN}};
    atomic_store(&l->standby_ready, 1);
    for (;;) {
        if (poll(p, 2, -1) < 0) continue; /* EINTR */
        if (p[0].revents) break;
        uint64_t ticks;
        if (!(p[1].revents & POLLIN) || read(l->timer_fd, &ticks, sizeof ticks) < 0) continue;
        if (try_take(l)) {
            atomic_store(&l->standby_ready, 0); /* the other thread is in its long call */
            arrpc__rescue_loop_thread();
            return 1;
        }
    }
    atomic_store(&l->standby_ready, 0);
    return 0;
}

/* The standby thread: waits, serves while it owns the loop, and tells the starting thread when
 * it was the one to see the worker finish. */
static void *standby_main(void *arg)
{
    arrpc__loop *loop = arg;
    seat = 1;
    arrpc__rescue_lead_thread(seat);
    struct epoll_event *events = calloc(ARRPC_LOOP_EVENTS, sizeof *events);
    while (events && arrpc__lead_wait(loop)) {
        if (arrpc__loop_serve(loop, events) == ARRPC_LOOP_FINISHED) {
            uint64_t one = 1;
            ssize_t n = write(loop->lead.stop_fd, &one, sizeof one);
            (void)n;
            break;
        }
    }
    free(events);
    return NULL;
}

int arrpc__lead_start(arrpc__loop *loop, char *err, size_t errlen)
{
    arrpc__lead *l = &loop->lead;
    l->timer_fd = l->stop_fd = -1;
    l->made = 1; /* from here arrpc__lead_finish has something to undo */
    unsigned threads = loop->cfg->threads;
    if (!threads || threads >= ARRPC_MAX_THREADS) return 0; /* no busy stamp left to spare */
    l->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    l->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    /* Not the loop's own dispatcher, even for the starting thread: a thread the loop was taken
     * from is still in its call while the new owner checks deferred answers with the loop's.
     * The loop's never runs a handler while there are threads, so busy stamp 0 is free. */
    l->dispatcher[0] = arrpc__dispatcher_new(loop->cfg, 0, loop->mailbox);
    l->clock[0] = l->clock[1] = loop->clock; /* calibrated once, anchored by each seat */
    l->dispatcher[1] = arrpc__dispatcher_new(loop->cfg, 1 + threads, loop->mailbox);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the standby unblocks what it needs as owner */
    int ok = l->timer_fd >= 0 && l->stop_fd >= 0 && l->dispatcher[0] && l->dispatcher[1] &&
             pthread_create(&l->standby, NULL, standby_main, loop) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!ok) {
        snprintf(err, errlen, "cannot start the loop's standby thread");
        return ARRPC_ESYS;
    }
    l->standby_started = 1;
    l->enabled = 1;
    return 0;
}

void arrpc__lead_finish(arrpc__loop *loop)
{
    arrpc__lead *l = &loop->lead;
    if (!l->made) return; /* the loop failed before arrpc__lead_start */
    if (l->stop_fd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(l->stop_fd, &one, sizeof one);
        (void)n;
    }
    if (l->standby_started) pthread_join(l->standby, NULL);
    l->standby_started = 0;
    l->enabled = 0;
    for (unsigned i = 0; i < 2; i++) {
        arrpc__dispatcher_free(l->dispatcher[i]);
        l->dispatcher[i] = NULL;
    }
    if (l->timer_fd >= 0) close(l->timer_fd);
    if (l->stop_fd >= 0) close(l->stop_fd);
    l->timer_fd = l->stop_fd = -1;
}
