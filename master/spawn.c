/* spawn.c -- forking one worker into a slot, and what the child does before it serves. */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/log.h"
#include "../workers/handler.h"

#ifdef ARRPC_LEAK_CHECK
#include <sanitizer/lsan_interface.h>
#endif

static int worker_stop_fd = -1;

static void on_worker_stop_signal(int sig)
{
    uint64_t one = 1;
    (void)sig;
    ssize_t ignored = write(worker_stop_fd, &one, sizeof one); /* async-signal-safe */
    (void)ignored;
}

/* The child inherits the master's blocked signals and handlers: give it its own. SIGTERM and
 * SIGINT drain it (a Ctrl-C reaches the whole process group); the master's signals are ignored
 * (USR1 too: the master relays it, and `systemctl kill -s USR1` reaches every process). */
static void worker_signals(void)
{
    static const int ignored[] = {SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGPIPE};
    struct sigaction stop = {.sa_handler = on_worker_stop_signal};
    sigemptyset(&stop.sa_mask);
    sigaction(SIGTERM, &stop, NULL);
    sigaction(SIGINT, &stop, NULL);
    signal(SIGQUIT, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        signal(ignored[i], SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Descriptors of the master that a worker must not hold: others' control sockets would keep
 * them open after the master closes its ends. */
static void close_master_fds(arrpc__master *m, int keep_row)
{
    close(m->epfd);
    close(m->sigfd);
    if (m->cfg->stop_fd >= 0) close(m->cfg->stop_fd);
    if (m->cfg->reopen_fd >= 0) close(m->cfg->reopen_fd);
    if (m->upgrade_fd >= 0) close(m->upgrade_fd);
    if (m->inherited_upgrade_fd >= 0) close(m->inherited_upgrade_fd);
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++)
        if ((int)r != keep_row && m->row[r].ctl_fd >= 0) close(m->row[r].ctl_fd);
    if (m->http) /* libmicrohttpd is the master's: its descriptors, never its calls */
        close(arrpc__http_epoll_fd(m->http));
    if (m->metrics_fd >= 0) close(m->metrics_fd);
    arrpc__crash_close_all(m); /* other workers' rescue sockets, and those waiting */
}

/* Its own slot's socket first, then those of inactive slots it adopted. */
static unsigned listen_set(const arrpc__master *m, uint32_t slot, int *fds, uint32_t *slots)
{
    unsigned n = 0;
    fds[n] = m->slot[slot].listen_fd;
    slots[n++] = slot;
    for (uint32_t s = 0; s < m->nslots && n < ARRPC_WORKER_LISTENERS_MAX; s++) {
        if (!m->slot[s].active && m->slot[s].adopter == (int)slot) {
            fds[n] = m->slot[s].listen_fd;
            slots[n++] = s;
        }
    }
    return n;
}

static void worker_main(arrpc__master *m, int r, int ctl_fd, int rescue_fd, pid_t master_pid)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* a worker never outlives its master for long */
    if (getppid() != master_pid) _exit(ARRPC_EXIT_START_FAILED);
    worker_signals();
    close_master_fds(m, r);
    worker_stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    arrpc__shm_worker *record = &m->shm->worker[r];
    atomic_store(&record->pid, (int32_t)getpid());
    arrpc__worker_config cfg = m->cfg->worker;
    cfg.record = record;
    if (m->cfg->secret_file) { /* as last read, at start or on SIGHUP */
        cfg.secret = m->secret;
        cfg.secret_len = m->secret_len;
    }
    char err[512];
    arrpc__handler handler;
    if (m->cfg->plugin) { /* loaded here, after the fork: a reload picks up the file on disk */
        if (arrpc__handler_load(m->cfg->plugin, &handler, err, sizeof err) != 0) {
            arrpc__log("worker: %s", err);
            _exit(ARRPC_EXIT_START_FAILED);
        }
        arrpc__handler_apply(&handler, &cfg);
    }
    int fds[ARRPC_WORKER_LISTENERS_MAX];
    uint32_t slots[ARRPC_WORKER_LISTENERS_MAX];
    arrpc__worker_io io = {
        .listen_fds = fds,
        .listen_slots = slots,
        .stop_fd = worker_stop_fd,
        .control_fd = ctl_fd,
        .reopen_fd = -1, /* the master relays: ARRPC_CTL_REOPEN_LOG */
        .rescue_fd = rescue_fd,
    };
    io.nlisten = listen_set(m, record->slot, fds, slots);
    if (worker_stop_fd < 0 || arrpc__worker_run(&io, &cfg, err, sizeof err) != 0) {
        arrpc__log("worker: %s", worker_stop_fd < 0 ? strerror(errno) : err);
        _exit(ARRPC_EXIT_START_FAILED);
    }
#ifdef ARRPC_LEAK_CHECK
    __lsan_do_leak_check(); /* _exit skips LeakSanitizer; what a finished worker leaked is real */
#endif
    _exit(0);
}

/* A record free in the segment, claimed with a compare-and-swap: during a binary upgrade two
 * masters share the segment, and neither may take (and reset) a record the other uses. */
static int claim_row(arrpc__master *m)
{
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++) {
        uint32_t free_state = ARRPC_WORKER_FREE;
        if (m->row[r].state == ARRPC_WORKER_FREE &&
            atomic_compare_exchange_strong(&m->shm->worker[r].state, &free_state,
                                           ARRPC_WORKER_STARTING))
            return (int)r;
    }
    return -1;
}

int arrpc__spawn_worker(arrpc__master *m, uint32_t slot, uint32_t generation)
{
    int sv[2], r = claim_row(m);
    if (r < 0) {
        arrpc__log("master: cannot start a worker for slot %u: no free record", slot);
        return ARRPC_ESYS;
    }
    arrpc__shm_worker *record = &m->shm->worker[r];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        arrpc__log("master: cannot start a worker for slot %u: %s", slot, strerror(errno));
        atomic_store(&record->state, ARRPC_WORKER_FREE);
        return ARRPC_ESYS;
    }
    arrpc__metrics_reset(
        arrpc__shm_metrics(record->metrics)); /* folded when its last writer exited */
    atomic_store(&record->pid, 0);
    arrpc__shm_busy_clear(record);
    atomic_store(&record->recycle_cause, ARRPC_RECYCLE_NONE);
    record->slot = slot;
    record->generation = generation;
    int rescue[2] = {-1, -1}; /* without one, a crash closes every connection (as before) */
    if (arrpc__crash_socketpair(rescue) != 0)
        arrpc__log("master: no rescue socket for a worker of slot %u: %s", slot, strerror(errno));
    pid_t master_pid = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        if (rescue[0] >= 0) close(rescue[0]);
        worker_main(m, r, sv[1], rescue[1], master_pid);
    }
    close(sv[1]);
    if (rescue[1] >= 0) close(rescue[1]);
    if (pid < 0) {
        arrpc__log("master: fork: %s", strerror(errno));
        close(sv[0]);
        if (rescue[0] >= 0) close(rescue[0]);
        atomic_store(&record->state, ARRPC_WORKER_FREE);
        return ARRPC_ESYS;
    }
    m->row[r] = (arrpc__worker_row){.state = ARRPC_WORKER_STARTING,
                                    .pid = pid,
                                    .ctl_fd = sv[0],
                                    .rescue_fd = rescue[0],
                                    .slot = slot,
                                    .generation = generation,
                                    .started_ms = m->now_ms};
    arrpc__master_watch(m, sv[0], EV_ROW, (uint32_t)r);
    return r;
}
