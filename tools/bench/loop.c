/* loop.c -- one benchmark thread: an epoll loop over its share of the connections. */
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "bench.h"

#define MAX_EVENTS 256
#define TICK_MS 5                         /* reconnects and --timeout checks */
#define PUBLISH_NS (200ull * 1000 * 1000) /* how fresh the live line's figures are */

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bench_stats_merge(bench_stats *dst, const bench_stats *src)
{
    dst->sent += src->sent;
    dst->replies += src->replies;
    dst->bytes_out += src->bytes_out;
    dst->bytes_in += src->bytes_in;
    dst->resent += src->resent;
    dst->lag.late += src->lag.late;
    dst->lag.unsent += src->lag.unsent;
    dst->lag.sum += src->lag.sum;
    if (src->lag.max > dst->lag.max) dst->lag.max = src->lag.max;
    for (unsigned k = 0; k < BENCH_ERR_COUNT; k++)
        dst->errors[k] += src->errors[k];
    if (src->last_reply > dst->last_reply) dst->last_reply = src->last_reply;
    bench_hist_merge(&dst->hist, &src->hist);
}

static void thread_publish(bench_thread *th)
{
    pthread_mutex_lock(&th->lock);
    th->published = th->stats;
    pthread_mutex_unlock(&th->lock);
}

/* Adds the thread's last published figures to *out (the live line's view, a little behind). */
void bench_thread_snapshot(bench_thread *th, bench_stats *out)
{
    pthread_mutex_lock(&th->lock);
    bench_stats_merge(out, &th->published);
    pthread_mutex_unlock(&th->lock);
}

static int thread_finished(const bench_thread *th, uint64_t now)
{
    const bench_config *cfg = th->cfg;
    if (atomic_load_explicit(th->stop, memory_order_relaxed)) return 1;
    if (cfg->t_end) return now >= cfg->t_end;
    if (now < cfg->t_measure || th->budget > 0) return 0;
    for (unsigned i = 0; i < th->nconns; i++)
        if (bench_conn_busy(&th->conns[i])) return 0;
    return 1;
}

void *bench_thread_main(void *arg)
{
    bench_thread *th = arg;
    struct epoll_event ev[MAX_EVENTS];
    uint64_t now = bench_now_ns(), next_tick = now, next_publish = now + PUBLISH_NS;
    for (unsigned i = 0; i < th->nconns; i++)
        bench_conn_connect(&th->conns[i], now);
    while (!thread_finished(th, now)) {
        int n = epoll_wait(th->epfd, ev, MAX_EVENTS, TICK_MS);
        for (int i = 0; i < n; i++)
            if (ev[i].data.ptr) bench_conn_event(ev[i].data.ptr, ev[i].events); /* else timerfd */
        now = bench_now_ns();
        if (th->cfg->rate) bench_rate_advance(th, now);
        if (now >= next_tick) {
            for (unsigned i = 0; i < th->nconns; i++)
                bench_conn_tick(&th->conns[i], now);
            next_tick = now + TICK_MS * 1000000ull;
        }
        if (now >= next_publish) {
            thread_publish(th);
            next_publish = now + PUBLISH_NS;
        }
    }
    for (unsigned i = 0; i < th->nconns; i++)
        th->stats.lag.unsent += bench_rate_unsent(&th->conns[i], now);
    thread_publish(th);
    arrpc__tls_thread_done(); /* the thread's TLS caches die with it */
    atomic_store(&th->exited, 1);
    return NULL;
}
