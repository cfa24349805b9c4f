/* client_wait.c -- the client's waits (for the server, between connect tries) cut into slices,
 * so that the caller's interrupt check (arrpc_client_set_interrupt) runs while a send blocks.
 * Without a check a wait is one poll or one sleep, as before. */
#include <errno.h>
#include <time.h>

#include "client.h"
#include "../core/clock.h"
#include "../core/net.h"

int arrpc_client_set_interrupt(arrpc_client *cli, int (*check)(void *udata), void *udata)
{
    if (!cli) return ARRPC_EINVAL;
    cli->interrupt = check;
    cli->interrupt_udata = udata;
    return 0;
}

/* The end of the next slice: a slice from now, or the deadline when that comes first. */
static uint64_t slice_end(uint64_t deadline_ms)
{
    uint64_t end = arrpc__clock_ms() + ARRPC_CLIENT_INTERRUPT_POLL_MS;
    return deadline_ms && deadline_ms < end ? deadline_ms : end;
}

static int interrupted(arrpc_client *cli)
{
    if (!cli->interrupt(cli->interrupt_udata)) return 0;
    return arrpc__client_fail(cli, ARRPC_EINTR, "interrupted while waiting for %s:%u", cli->host,
                              (unsigned)cli->port);
}

int arrpc__client_wait(arrpc_client *cli, short events, uint64_t deadline_ms, short *rev)
{
    if (!cli->interrupt) return arrpc__net_wait(cli->fd, events, deadline_ms, rev);
    for (;;) {
        uint64_t end = slice_end(deadline_ms);
        int ready = arrpc__net_wait(cli->fd, events, end, rev);
        if (ready != 0) return ready;
        if (interrupted(cli)) return ARRPC_EINTR;
        if (deadline_ms && end >= deadline_ms) return 0;
    }
}

static void sleep_until(uint64_t end_ms)
{
    uint64_t now = arrpc__clock_ms();
    if (now >= end_ms) return;
    uint64_t ms = end_ms - now;
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int arrpc__client_sleep(arrpc_client *cli, uint64_t ms)
{
    uint64_t deadline = arrpc__clock_ms() + ms;
    if (!cli->interrupt) {
        sleep_until(deadline);
        return 0;
    }
    for (uint64_t end = slice_end(deadline);; end = slice_end(deadline)) {
        sleep_until(end);
        if (interrupted(cli)) return ARRPC_EINTR;
        if (end >= deadline) return 0;
    }
}
