/* client_wait.c -- the client's waits (for the server, between connect tries) cut into slices,
 * so that the caller's interrupt check (arrpc_client_set_interrupt) runs while a send blocks.
 * Without a check a wait is one poll or one sleep, as before. A wait for replies may spin first
 * (arrpc_client_set_spin). */
#include <errno.h>
#include <poll.h>
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

/* ---- spinning for a reply ----------------------------------------------------------------- */

/* After this many spins in a row ran out, the next 2^n - 1 waits sleep at once: a server that
 * answers slower than the spin costs a spin now and then, at most one in 1024 waits. */
#define SPIN_BACKOFF_MAX 10u

int arrpc_client_set_spin(arrpc_client *cli, unsigned us)
{
    if (!cli || us > ARRPC_CLIENT_SPIN_MAX_US) return ARRPC_EINVAL;
    cli->spin_ns = (uint64_t)us * 1000u;
    cli->spin_misses = cli->spin_skips = 0;
    return 0;
}

/* Asks whether the socket has something, without sleeping, until it has (1, *rev set) or the
 * spin has run out (0). Bytes at the socket are enough, TLS records included: the caller reads. */
static int spin(const arrpc_client *cli, short *rev)
{
    uint64_t until = arrpc__clock_ns() + cli->spin_ns;
    struct pollfd p = {.fd = cli->fd, .events = POLLIN};
    do {
        int n = poll(&p, 1, 0);
        if (n > 0) {
            *rev = p.revents;
            return 1;
        }
        if (n < 0 && errno != EINTR) return 0; /* the sleeping wait reports it */
    } while (arrpc__clock_ns() < until);
    return 0;
}

int arrpc__client_wait_reply(arrpc_client *cli, uint64_t deadline_ms, short *rev)
{
    if (cli->spin_ns && cli->spin_skips == 0) {
        if (spin(cli, rev)) {
            cli->spin_misses = 0;
            return 1;
        }
        if (cli->spin_misses < SPIN_BACKOFF_MAX) cli->spin_misses++;
        cli->spin_skips = (1u << cli->spin_misses) - 1u;
    } else if (cli->spin_skips) {
        cli->spin_skips--;
    }
    return arrpc__client_wait(cli, POLLIN, deadline_ms, rev);
}
