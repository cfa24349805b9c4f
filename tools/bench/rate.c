/* rate.c -- the open-loop schedule of --rate: when each request falls due, and a timer per thread
 * that wakes its loop for the next one.
 *
 * Connection `slot` of C sends its k-th request at t_start + (k * C + slot) / rate: the run's
 * requests fall due evenly, 1/rate apart, round-robin over the connections. Threads are dealt
 * connections round-robin too (thread t has slots t, t + T, t + 2T, ...), so within one thread
 * the due times also go round-robin over its connections, in slot order: its j-th request is
 * request j / n of its connection j % n. The thread keeps one counter, next_due, and needs no
 * search for the earliest connection. */
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bench.h"

uint64_t bench_rate_due(const bench_config *cfg, unsigned slot, uint64_t k)
{
    /* A double holds k * C exactly up to 2^53 requests, and the product to within a nanosecond
     * for runs far longer than -d allows. */
    double n = (double)k * (double)cfg->connections + (double)slot;
    return cfg->t_start + (uint64_t)(n * cfg->rate_ns);
}

int bench_rate_next(const bench_conn *c, uint64_t now, uint64_t *due)
{
    const bench_config *cfg = c->th->cfg;
    if (!cfg->rate) {
        *due = now;
        return 1;
    }
    *due = bench_rate_due(cfg, c->slot, c->issued);
    return *due <= now;
}

/* When the thread's j-th request falls due. */
static uint64_t thread_due(const bench_thread *th, uint64_t j)
{
    return bench_rate_due(th->cfg, th->conns[j % th->nconns].slot, j / th->nconns);
}

/* Sets the timer to fire at `at` (CLOCK_MONOTONIC, absolute). Setting it also clears an expiry
 * not yet read, so the timerfd, level-triggered in epoll, need never be read: each wake-up it
 * causes ends here with a later time. Should setting fail, the loop's tick still wakes it. */
static void timer_set(bench_thread *th, uint64_t at)
{
    if (at == th->timer_at) return;
    struct itimerspec its = {
        .it_value = {(time_t)(at / 1000000000ull), (long)(at % 1000000000ull)}};
    if (timerfd_settime(th->timerfd, TFD_TIMER_ABSTIME, &its, NULL) == 0) th->timer_at = at;
}

void bench_rate_advance(bench_thread *th, uint64_t now)
{
    uint64_t first = th->next_due, due;
    while ((due = thread_due(th, th->next_due)) <= now)
        th->next_due++;
    /* Each connection that has a request newly due sends it, once; a connection whose pipeline
     * is full sends it when a reply frees a slot (conn.c), its latency still counted from `due`. */
    for (uint64_t j = first; j < th->next_due && j < first + th->nconns; j++)
        bench_conn_fill(&th->conns[j % th->nconns], now);
    timer_set(th, due);
}

/* How many of slot's requests fall due before t. */
static uint64_t due_before(const bench_config *cfg, unsigned slot, uint64_t t)
{
    if (t <= cfg->t_start) return 0;
    double k = ((double)(t - cfg->t_start) / cfg->rate_ns - slot) / cfg->connections;
    uint64_t n = k > 0 ? (uint64_t)k : 0;
    while (n > 0 && bench_rate_due(cfg, slot, n - 1) >= t)
        n--;
    while (bench_rate_due(cfg, slot, n) < t)
        n++;
    return n;
}

uint64_t bench_rate_unsent(const bench_conn *c, uint64_t now)
{
    const bench_config *cfg = c->th->cfg;
    if (!cfg->rate || !cfg->t_end) return 0; /* -n: every counted request is sent */
    uint64_t end = now < cfg->t_end ? now : cfg->t_end;
    uint64_t owed = due_before(cfg, c->slot, end),
             before = due_before(cfg, c->slot, cfg->t_measure);
    uint64_t sent = c->issued > before ? c->issued : before;
    return owed > sent ? owed - sent : 0;
}

/* The thread's timer, in its epoll set with a NULL pointer: 0, or -1. */
int bench_rate_timer_new(bench_thread *th)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    th->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (th->timerfd < 0) return -1;
    return epoll_ctl(th->epfd, EPOLL_CTL_ADD, th->timerfd, &ev);
}
