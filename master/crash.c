/* crash.c -- a worker that died of a signal: its connections saved by its rescue (workers/
 * rescue.c) go to a live worker, and those it could not save are counted lost.
 *
 * Each worker gets a SOCK_SEQPACKET pair at spawn; the master keeps its end unread. A worker
 * whose handler crashes writes one hand-over message per connection there before it dies; the
 * kernel keeps them (and the descriptors they carry) after it exits. The master then passes its
 * end, as a hand-over source, to a ready worker now, or to the next one that becomes ready. */
#include "internal.h"

#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/log.h"
#include "../workers/control.h"

/* Makes the rescue socket pair of a worker about to be forked: sv[0] the master's end. */
int arrpc__crash_socketpair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0
               ? 0
               : ARRPC_ESYS;
}

/* A worker killed by a signal without finishing its rescue (SIGKILL, a fault inside the rescue,
 * a state it could not read): every connection it had open is lost. */
static void count_unrescued(arrpc__master *m, int r)
{
    arrpc__metrics *b = arrpc__shm_metrics(m->shm->worker[r].metrics);
    if (atomic_load_explicit(&b->rescued, memory_order_acquire)) return;
    uint32_t open = atomic_load_explicit(&b->connections, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->crash_lost, open, memory_order_relaxed);
}

static int has_messages(int fd)
{
    char byte;
    return recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* Passes a rescue socket to a ready worker; -1 when there is none. Any generation will do: a
 * worker of the old one during a reload hands the connections on when it retires. */
static int deliver(arrpc__master *m, int fd)
{
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++) {
        const arrpc__worker_row *row = &m->row[r];
        if (row->state != ARRPC_WORKER_READY) continue;
        if (arrpc__master_send(m, (int)r, ARRPC_CTL_ADOPT, 0, fd) != 0) continue;
        arrpc__log("master: worker %d takes the connections a crashed worker saved", (int)row->pid);
        close(fd);
        return 0;
    }
    return -1;
}

static void keep_pending(arrpc__master *m, int fd)
{
    if (m->crash.npending == ARRPC_CRASH_PENDING_MAX) { /* crashes faster than starts */
        arrpc__log("master: too many crashed workers' connections waiting; closing the oldest");
        close(m->crash.pending[0]);
        for (unsigned i = 1; i < m->crash.npending; i++)
            m->crash.pending[i - 1] = m->crash.pending[i];
        m->crash.npending--;
    }
    m->crash.pending[m->crash.npending++] = fd;
}

void arrpc__crash_on_exit(arrpc__master *m, int r, const arrpc__worker_row *row, int status,
                          int expected)
{
    if (!expected && WIFSIGNALED(status)) count_unrescued(m, r);
    int fd = row->rescue_fd;
    if (fd < 0) return;
    if (m->stopping || !has_messages(fd))
        close(fd);
    else if (deliver(m, fd) != 0)
        keep_pending(m, fd); /* the first worker to be ready takes them */
}

void arrpc__crash_on_ready(arrpc__master *m)
{
    unsigned kept = 0;
    for (unsigned i = 0; i < m->crash.npending; i++)
        if (deliver(m, m->crash.pending[i]) != 0) m->crash.pending[kept++] = m->crash.pending[i];
    m->crash.npending = kept;
}

void arrpc__crash_close_all(arrpc__master *m)
{
    for (unsigned i = 0; i < m->crash.npending; i++)
        close(m->crash.pending[i]);
    m->crash.npending = 0;
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++)
        if (m->row[r].rescue_fd >= 0) {
            close(m->row[r].rescue_fd);
            m->row[r].rescue_fd = -1;
        }
}
