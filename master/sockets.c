/* sockets.c -- the slots' listening sockets: those passed by LISTEN_FDS (systemd, or the old
 * master on a binary upgrade: one code path), the one bound before the master ran, our own. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/net.h"

unsigned long arrpc__env_number(const char *name)
{
    unsigned long v = 0;
    const char *s = getenv(name);
    return s && arrpc__parse_ulong(s, 0, 1u << 30, &v) == 0 ? v : 0;
}

static void add_slot(arrpc__master *m, int fd)
{
    m->slot[m->nslots++] = (arrpc__slot){.listen_fd = fd, .adopter = -1};
}

static int adopt_fd(arrpc__master *m, int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
        return ARRPC_ESYS;
    add_slot(m, fd);
    return 0;
}

/* Slots beyond the worker count are served by the first workers, round robin. */
static void assign_slots(arrpc__master *m, unsigned workers)
{
    if (workers == 0 || workers > m->nslots) workers = m->nslots;
    for (uint32_t s = 0; s < m->nslots; s++) {
        m->slot[s].active = s < workers;
        m->slot[s].adopter = s < workers ? -1 : (int)(s % workers);
    }
    m->workers_wanted = workers;
}

int arrpc__slot_bind(arrpc__master *m)
{
    char err[256];
    int fd;
    if (m->nslots >= ARRPC_MAX_WORKERS) {
        arrpc__log("master: at the limit of %u worker slots", ARRPC_MAX_WORKERS);
        return ARRPC_EINVAL;
    }
    /* The first socket decides the address (a free port when asked for port 0, or the passed or
     * bound socket's); every later one joins its SO_REUSEPORT group. */
    if (m->nslots == 0)
        fd = arrpc__net_listen_group(m->cfg->host, m->cfg->port, err, sizeof err);
    else if ((fd = arrpc__net_listen_like(m->slot[0].listen_fd)) < 0)
        snprintf(err, sizeof err, "cannot add a listening socket: %s", strerror(errno));
    if (fd < 0) {
        arrpc__log("master: %s", err);
        return fd;
    }
    add_slot(m, fd);
    return 0;
}

static int bind_slots(arrpc__master *m, unsigned count)
{
    while (m->nslots < count)
        if (arrpc__slot_bind(m) != 0) return ARRPC_ESYS;
    return 0;
}

/* Sockets passed for this process by LISTEN_FDS, as slots; how many. */
static int adopt_listen_fds(arrpc__master *m)
{
    unsigned long n = arrpc__env_number(ARRPC_LISTEN_FDS_ENV);
    if (n == 0 || arrpc__env_number("LISTEN_PID") != (unsigned long)getpid()) return 0;
    for (unsigned long i = 0; i < n && i < ARRPC_MAX_WORKERS; i++)
        if (adopt_fd(m, ARRPC_LISTEN_FDS_START + (int)i) != 0) return ARRPC_ESYS;
    arrpc__log("master: using %lu inherited listening sockets", n);
    return (int)m->nslots;
}

int arrpc__sockets_inherit(arrpc__master *m)
{
    unsigned workers = m->workers_wanted;
    int inherited = adopt_listen_fds(m);
    if (inherited < 0) return ARRPC_ESYS;
    /* Children must not mistake these for their own. */
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDNAMES");
    if (inherited == 0 && m->cfg->bound_fd >= 0) /* bound by arrpc_server_bind: slot 0 */
        add_slot(m, m->cfg->bound_fd);
    if (inherited == 0 && bind_slots(m, workers) != 0) return ARRPC_ESYS;
    /* Under systemd with fewer sockets than workers, add our own to the group when the passed
     * socket allows it (ReusePort=yes); otherwise run one worker per passed socket. */
    if (m->nslots < workers && bind_slots(m, workers) != 0) workers = m->nslots;
    assign_slots(m, workers);
    return 0;
}
