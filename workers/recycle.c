/* recycle.c -- a worker past its request or memory bound asks to be replaced.
 *
 * The worker only knows and says; it does not leave. It writes why into its shared record, once,
 * and goes on serving; the master starts a replacement and, when that one accepts, tells this
 * worker to hand its connections over exactly as on a reload (master/recycle.c). So a worker
 * past its bound keeps answering until the hand-over, and nothing is dropped. */
#include "recycle.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <unistd.h>

#include "../core/log.h"
#include "../shm/segment.h"

/* A uniform number in [0, span]. getrandom: each forked worker draws its own, so workers started
 * together do not all reach their bound together. */
static uint64_t uniform_upto(uint64_t span)
{
    uint64_t r = 0;
    if (span == 0) return 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (uint64_t)getpid() * 2654435761u; /* no entropy yet: still differs per worker */
    return span == UINT64_MAX ? r : r % (span + 1);
}

void arrpc__loop_recycle_init(arrpc__loop *loop)
{
    const arrpc__worker_config *cfg = loop->cfg;
    if (cfg->max_requests) {
        uint64_t jitter = uniform_upto(cfg->max_requests_jitter);
        loop->recycle.max_requests =
            cfg->max_requests > UINT64_MAX - jitter ? UINT64_MAX : cfg->max_requests + jitter;
    }
    loop->recycle.armed = cfg->record && (loop->recycle.max_requests || cfg->max_rss_bytes);
    loop->recycle.next_rss_check_ms = loop->now_ms;
}

/* The resident size in bytes, from /proc/self/statm's second field (pages); 0 when unreadable. */
static uint64_t resident_bytes(void)
{
    char text[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return 0;
    text[n] = '\0';
    unsigned long long size, resident;
    if (sscanf(text, "%llu %llu", &size, &resident) != 2) return 0;
    long page = sysconf(_SC_PAGESIZE);
    return (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096);
}

static void ask(arrpc__loop *loop, arrpc__recycle_cause cause, uint64_t value, uint64_t limit)
{
    arrpc__shm_ask_recycle(loop->cfg->record, cause, value, limit);
    loop->recycle.armed = 0;
    ARRPC_DEBUG(loop->cfg->debug, "asking to be recycled (%s %llu >= %llu)",
                cause == ARRPC_RECYCLE_RSS ? "resident bytes" : "requests",
                (unsigned long long)value, (unsigned long long)limit);
}

void arrpc__loop_recycle_check(arrpc__loop *loop)
{
    uint64_t bound = loop->recycle.max_requests;
    if (bound && loop->recycle.requests >= bound) {
        ask(loop, ARRPC_RECYCLE_REQUESTS, loop->recycle.requests, bound);
        return;
    }
    uint64_t max_rss = loop->cfg->max_rss_bytes;
    if (!max_rss || loop->now_ms < loop->recycle.next_rss_check_ms) return;
    loop->recycle.next_rss_check_ms = loop->now_ms + ARRPC_RECYCLE_RSS_CHECK_MS;
    uint64_t rss = resident_bytes();
    if (rss >= max_rss) ask(loop, ARRPC_RECYCLE_RSS, rss, max_rss);
}
