/* master.c -- the process table and the single-threaded supervision loop (signalfd + epoll). */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/auth.h"
#include "../core/fdpass.h"
#include "../core/log.h"
#include "../core/net.h"
#include "../workers/control.h"

#define EV_TAG(kind, index) (((uint64_t)(kind) << 32) | (uint32_t)(index))

static void on_stop_request(arrpc__master *m);
static void start_stop(arrpc__master *m);
static void stop_now(arrpc__master *m);

static uint64_t now_ms(void)
{
    return arrpc__shm_clock_ms();
}

int arrpc__master_send(arrpc__master *m, int row, uint32_t type, uint32_t arg, int fd)
{
    arrpc__ctl_msg msg = {.type = type, .arg = arg};
    if (m->row[row].state == ARRPC_WORKER_FREE) return ARRPC_ESTATE;
    return arrpc__fd_send(m->row[row].ctl_fd, &msg, sizeof msg, &fd, fd >= 0 ? 1 : 0);
}

int arrpc__master_read_secret(arrpc__master *m)
{
    char err[512];
    uint8_t secret[sizeof m->secret];
    size_t len;
    if (!m->cfg->secret_file) return 0;
    /* Into a scratch buffer first: a failed re-read on SIGHUP keeps the secret that serves. */
    int rc = arrpc__auth_read_secret(m->cfg->secret_file, secret, &len, err, sizeof err);
    if (rc == 0) {
        memcpy(m->secret, secret, len);
        m->secret_len = len;
    } else {
        arrpc__log("master: %s", err);
    }
    explicit_bzero(secret, sizeof secret);
    return rc == 0 ? 0 : ARRPC_EINVAL;
}

static int live_rows(const arrpc__master *m)
{
    int n = 0;
    for (unsigned i = 0; i < ARRPC_SHM_RECORDS; i++)
        n += m->row[i].state != ARRPC_WORKER_FREE;
    return n;
}

static void on_ready(arrpc__master *m, int r)
{
    arrpc__worker_row *row = &m->row[r];
    if (row->state != ARRPC_WORKER_STARTING) return; /* told to retire before it was ready */
    row->state = ARRPC_WORKER_READY;
    arrpc__crash_on_ready(m);
    if (arrpc__recycle_on_ready(m, r)) return;
    arrpc__slot *slot = &m->slot[row->slot];
    if (slot->adopter >= 0) { /* reactivated by scale-up: its adopter stops watching it */
        int a = arrpc__row_of_slot(m, (uint32_t)slot->adopter, m->generation);
        if (a >= 0) arrpc__master_send(m, a, ARRPC_CTL_LISTEN_DROP, row->slot, -1);
        slot->adopter = -1;
    }
    if (m->reload.active && row->generation == m->reload.generation) arrpc__reload_on_ready(m);
    if (!m->told_ready && arrpc__generation_ready(m, m->generation)) {
        m->told_ready = 1;
        arrpc__log("master: listening on %s:%u with %u workers", m->cfg->host,
                   (unsigned)arrpc__net_local_port(m->slot[0].listen_fd), m->workers_wanted);
        if (m->cfg->ready_fd >= 0) {
            char ok = 1;
            ssize_t ignored = write(m->cfg->ready_fd, &ok, 1);
            (void)ignored;
        }
        arrpc__upgrade_tell_ready(m);
        arrpc__notify("READY=1"); /* after an upgrade this also makes us systemd's main pid */
    }
}

static void on_row_message(arrpc__master *m, int r)
{
    arrpc__ctl_msg msg;
    int fds[ARRPC_FDPASS_MAX], nfds = 0;
    ssize_t n = arrpc__fd_recv(m->row[r].ctl_fd, &msg, sizeof msg, fds, &nfds);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    if (n == (ssize_t)sizeof msg && msg.type == ARRPC_CTL_READY)
        on_ready(m, r);
    else if (n <= 0) /* the worker is exiting; SIGCHLD will tell how */
        epoll_ctl(m->epfd, EPOLL_CTL_DEL, m->row[r].ctl_fd, NULL);
}

/* Back-off before the next start in a slot: none after a long healthy life, else doubling. */
static uint64_t respawn_delay(arrpc__slot *slot, int start_failed, uint64_t lived_ms)
{
    if (!start_failed && lived_ms >= ARRPC_RESPAWN_STABLE_MS) {
        slot->failures = 0;
        return 0;
    }
    unsigned shift = slot->failures < 16 ? slot->failures : 16;
    slot->failures++;
    uint64_t delay = (uint64_t)ARRPC_RESPAWN_BACKOFF_MIN_MS << shift;
    return delay < ARRPC_RESPAWN_BACKOFF_MAX_MS ? delay : ARRPC_RESPAWN_BACKOFF_MAX_MS;
}

static void describe_exit(int status, char *out, size_t len)
{
    if (WIFSIGNALED(status))
        snprintf(out, len, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(out, len, "exit status %d", WEXITSTATUS(status));
}

static void count_restart(arrpc__master *m, const arrpc__worker_row *row, int status,
                          int start_failed, int expected)
{
    arrpc__restart_cause cause;
    if (row->spare) return; /* a recycle's replacement that was not needed replaced nothing */
    if (row->kill_at_ms)
        cause = ARRPC_CAUSE_TIMEOUT;
    else if (start_failed && !expected)
        cause = ARRPC_CAUSE_START_FAILURE;
    else if (!expected)
        cause = ARRPC_CAUSE_CRASH;
    else if (row->state == ARRPC_WORKER_RETIRING && row->recycled && status == 0)
        cause = ARRPC_CAUSE_RECYCLE;
    else if (row->state == ARRPC_WORKER_RETIRING && row->generation < m->generation && status == 0)
        cause = ARRPC_CAUSE_RELOAD;
    else
        return; /* a planned stop or a scale-down is not a restart */
    atomic_fetch_add(&m->shm->area[m->area].restarts[cause], 1);
}

static void on_worker_exit(arrpc__master *m, int r, int status)
{
    arrpc__worker_row row = m->row[r];
    char how[96];
    describe_exit(status, how, sizeof how);
    arrpc__recycle_on_exit(m, r);
    close(row.ctl_fd);
    int start_failed = row.state == ARRPC_WORKER_STARTING;
    int expected = row.state == ARRPC_WORKER_RETIRING || m->stopping;
    m->row[r] = (arrpc__worker_row){.ctl_fd = -1, .rescue_fd = -1};
    arrpc__crash_on_exit(m, r, &row, status, expected); /* before its counts are folded */
    arrpc__shm_fold(m->shm, m->area, (unsigned)r);      /* its counts live on in our area */
    count_restart(m, &row, status, start_failed, expected);
    if (!expected || status != 0)
        arrpc__log("master: worker %d (slot %u, generation %u) %s%s", (int)row.pid, row.slot,
                   row.generation, how, start_failed ? " before it was ready" : "");
    if (m->reload.active && row.generation == m->reload.generation && !expected) {
        arrpc__reload_on_failure(m, start_failed ? "a new worker failed to start"
                                                 : "a new worker died");
        return;
    }
    if (start_failed && !m->told_ready && !expected && WIFEXITED(status) &&
        WEXITSTATUS(status) == ARRPC_EXIT_START_FAILED) {
        /* Never served: a broken configuration, not bad luck. Fail fast and loudly. */
        arrpc__log("master: the first workers cannot start; giving up");
        m->start_failed = 1;
        stop_now(m);
        return;
    }
    if (expected || row.generation != m->generation || !m->slot[row.slot].active) return;
    arrpc__slot *slot = &m->slot[row.slot];
    slot->restarts++;
    /* The loop's timers start it: the master never sleeps to back off. */
    slot->respawn_at_ms = m->now_ms + respawn_delay(slot, start_failed, m->now_ms - row.started_ms);
}

static void reap_children(arrpc__master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == m->upgrade_pid) {
            arrpc__upgrade_on_message(m); /* the new master died: the channel tells the rest */
            continue;
        }
        for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++)
            if (m->row[r].state != ARRPC_WORKER_FREE && m->row[r].pid == pid)
                on_worker_exit(m, (int)r, status);
    }
}

static void scale(arrpc__master *m, int up)
{
    if (m->stopping || m->reload.active) {
        arrpc__log("master: ignoring %s during a %s", up ? "SIGTTIN" : "SIGTTOU",
                   m->stopping ? "stop" : "reload");
        return;
    }
    arrpc__recycle_cancel(m); /* a replacement still starting would miss the new socket layout */
    if (up)
        arrpc__scale_up(m, "SIGTTIN");
    else
        arrpc__scale_down(m, "SIGTTOU");
}

/* SIGUSR1, after logrotate renamed the access log: each worker writes what it holds to the old
 * file and opens the path anew. Workers still starting open it themselves. */
static void reopen_logs(arrpc__master *m)
{
    if (!m->cfg->worker.access_log) return;
    arrpc__log("master: reopening the access log %s", m->cfg->worker.access_log);
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++)
        if (m->row[r].state != ARRPC_WORKER_FREE)
            arrpc__master_send(m, (int)r, ARRPC_CTL_REOPEN_LOG, 0, -1);
}

static void on_signal(arrpc__master *m, int signo)
{
    switch (signo) {
    case SIGCHLD:
        reap_children(m);
        break;
    case SIGHUP:
        if (m->stopping) break;
        if (m->reload.active)
            m->reload.pending = 1;
        else
            arrpc__reload_start(m);
        break;
    case SIGTERM:
    case SIGINT:
        on_stop_request(m);
        break;
    case SIGQUIT:
        stop_now(m);
        break;
    case SIGTTIN:
        scale(m, 1);
        break;
    case SIGTTOU:
        scale(m, 0);
        break;
    case SIGUSR2:
        if (!m->stopping) arrpc__upgrade_start(m);
        break;
    case SIGUSR1:
        reopen_logs(m);
        break;
    }
}

static void read_signals(arrpc__master *m)
{
    struct signalfd_siginfo si;
    while (read(m->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
        on_signal(m, (int)si.ssi_signo);
}

/* SIGTERM with --pre-drain: fail /readyz but keep serving, so that a load balancer (or
 * Kubernetes, which signals while endpoints are still being removed) stops sending first. */
static void on_stop_request(arrpc__master *m)
{
    if (m->stopping || m->predrain_until_ms) return;
    if (m->cfg->predrain_ms && m->http) {
        m->predrain_until_ms = m->now_ms + m->cfg->predrain_ms;
        arrpc__log("master: not ready; draining in %u ms", m->cfg->predrain_ms);
        return;
    }
    start_stop(m);
}

/* Graceful stop: every worker drains (answers what it read, closes idle connections). */
static void start_stop(arrpc__master *m)
{
    if (m->stopping) return;
    m->stopping = 1;
    m->stop_deadline_ms = m->now_ms + m->cfg->worker.drain_timeout_ms + ARRPC_ABORT_GRACE_MS;
    arrpc__log("master: stopping gracefully");
    arrpc__notify("STOPPING=1");
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++)
        if (m->row[r].state != ARRPC_WORKER_FREE)
            arrpc__master_send(m, (int)r, ARRPC_CTL_STOP, 0, -1);
}

static void stop_now(arrpc__master *m)
{
    m->stopping = 1;
    m->stop_deadline_ms = m->now_ms;
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++)
        if (m->row[r].state != ARRPC_WORKER_FREE) kill(m->row[r].pid, SIGKILL);
}

/* A handler busy longer than the timeout: SIGABRT (a core dump shows where it hung), then
 * SIGKILL after a grace period. An idle worker has no stamp and is never touched. */
static void check_stuck(arrpc__master *m)
{
    unsigned timeout = m->cfg->handler_timeout_ms;
    uint64_t now = arrpc__shm_clock_ms();
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++) {
        arrpc__worker_row *row = &m->row[r];
        if (row->state == ARRPC_WORKER_FREE) continue;
        if (row->kill_at_ms && now >= row->kill_at_ms) {
            kill(row->pid, SIGKILL);
            row->kill_at_ms = UINT64_MAX;
            continue;
        }
        uint64_t busy = arrpc__shm_busy_oldest(&m->shm->worker[r]);
        if (timeout && busy && !row->kill_at_ms && now - busy > timeout) {
            arrpc__log("master: worker %d busy in its handler for %llu ms: aborting it",
                       (int)row->pid, (unsigned long long)(now - busy));
            kill(row->pid, SIGABRT);
            row->kill_at_ms = now + ARRPC_ABORT_GRACE_MS;
        }
    }
}

static void run_timers(arrpc__master *m)
{
    check_stuck(m);
    for (uint32_t s = 0; s < m->nslots && !m->stopping; s++) {
        arrpc__slot *slot = &m->slot[s];
        if (slot->respawn_at_ms && m->now_ms >= slot->respawn_at_ms) {
            slot->respawn_at_ms = 0;
            if (slot->active && arrpc__row_of_slot(m, s, m->generation) < 0 &&
                arrpc__spawn_worker(m, s, m->generation) < 0)
                slot->respawn_at_ms = m->now_ms + ARRPC_RESPAWN_BACKOFF_MAX_MS;
        }
    }
    arrpc__reload_check_deadline(m);
    arrpc__scale_check(m);
    arrpc__recycle_tick(m);
    if (m->predrain_until_ms && m->now_ms >= m->predrain_until_ms) start_stop(m);
    arrpc__http_run(m->http); /* its connection timeouts, even when nothing arrives */
    if (m->stopping && m->now_ms >= m->stop_deadline_ms)
        for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++)
            if (m->row[r].state != ARRPC_WORKER_FREE) kill(m->row[r].pid, SIGKILL);
}

static void on_event(arrpc__master *m, uint64_t tag)
{
    uint32_t kind = (uint32_t)(tag >> 32), index = (uint32_t)tag;
    switch (kind) {
    case EV_SIGNAL:
        read_signals(m);
        break;
    case EV_STOP: {
        uint64_t v;
        ssize_t ignored = read(m->cfg->stop_fd, &v, sizeof v);
        (void)ignored;
        on_stop_request(m);
        break;
    }
    case EV_REOPEN: {
        uint64_t v;
        ssize_t ignored = read(m->cfg->reopen_fd, &v, sizeof v);
        (void)ignored;
        reopen_logs(m);
        break;
    }
    case EV_ROW:
        on_row_message(m, (int)index);
        break;
    case EV_UPGRADE:
        arrpc__upgrade_on_message(m);
        break;
    case EV_HTTP:
        arrpc__http_run(m->http);
        break;
    }
}

int arrpc__master_watch(arrpc__master *m, int fd, uint32_t kind, uint32_t index)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EV_TAG(kind, index)};
    return epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : ARRPC_ESYS;
}

static const int master_signals[] = {SIGCHLD, SIGHUP,  SIGTERM, SIGINT, SIGQUIT,
                                     SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};

static int master_init(arrpc__master *m)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof master_signals / sizeof master_signals[0]; i++)
        sigaddset(&set, master_signals[i]);
    signal(SIGPIPE, SIG_IGN);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return ARRPC_ESYS;
    int inherited_shm = -1;
    arrpc__upgrade_inherit(m, &inherited_shm, &m->metrics_fd);
    if (inherited_shm >= 0 && (m->shm = arrpc__shm_attach(inherited_shm))) {
        m->shm_fd = inherited_shm; /* counters continue where the old master's left off */
        m->area = 1 - atomic_load(&m->shm->area_in_use);
    } else {
        if (inherited_shm >= 0) close(inherited_shm);
        if (!(m->shm = arrpc__shm_create(&m->shm_fd))) return ARRPC_ESYS;
    }
    atomic_store(&m->shm->area_in_use, m->area);
    m->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    m->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (m->sigfd < 0 || m->epfd < 0 || arrpc__master_watch(m, m->sigfd, EV_SIGNAL, 0) != 0)
        return ARRPC_ESYS;
    if (m->cfg->stop_fd >= 0 && arrpc__master_watch(m, m->cfg->stop_fd, EV_STOP, 0) != 0)
        return ARRPC_ESYS;
    if (m->cfg->reopen_fd >= 0 && arrpc__master_watch(m, m->cfg->reopen_fd, EV_REOPEN, 0) != 0)
        return ARRPC_ESYS;
    return 0;
}

/* The exporter: on the socket an old master handed over, or a new one. */
static int start_http(arrpc__master *m)
{
    char err[256];
    if (!m->cfg->metrics_host) {
        if (m->metrics_fd >= 0) close(m->metrics_fd);
        m->metrics_fd = -1;
        return 0;
    }
    if (m->metrics_fd < 0)
        m->metrics_fd =
            arrpc__net_listen(m->cfg->metrics_host, m->cfg->metrics_port, 0, err, sizeof err);
    if (m->metrics_fd < 0) {
        arrpc__log("master: metrics: %s", err);
        return ARRPC_ESYS;
    }
    m->http = arrpc__http_start(m, m->metrics_fd);
    if (!m->http || arrpc__master_watch(m, arrpc__http_epoll_fd(m->http), EV_HTTP, 0) != 0) {
        arrpc__log("master: cannot start the metrics exporter");
        return ARRPC_ESYS;
    }
    arrpc__log("master: metrics on http://%s:%u/metrics", m->cfg->metrics_host,
               (unsigned)arrpc__net_local_port(m->metrics_fd));
    return 0;
}

static void master_destroy(arrpc__master *m)
{
    arrpc__http_stop(m->http); /* closes the metrics socket too */
    arrpc__crash_close_all(m);
    for (uint32_t s = 0; s < m->nslots; s++)
        close(m->slot[s].listen_fd);
    if (m->sigfd >= 0) close(m->sigfd);
    if (m->epfd >= 0) close(m->epfd);
    arrpc__shm_unmap(m->shm);
    if (m->shm_fd >= 0) close(m->shm_fd);
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof master_signals / sizeof master_signals[0]; i++)
        sigaddset(&set, master_signals[i]);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static void serve(arrpc__master *m)
{
    struct epoll_event events[64];
    while (!(m->stopping && live_rows(m) == 0)) {
        int n = epoll_wait(m->epfd, events, 64, ARRPC_MASTER_TICK_MS);
        m->now_ms = now_ms();
        for (int i = 0; i < n; i++)
            on_event(m, events[i].data.u64);
        run_timers(m);
    }
}

int arrpc__master_run(const arrpc__master_config *cfg)
{
    arrpc__master *m = calloc(1, sizeof *m);
    if (!m) return 1;
    m->cfg = cfg;
    m->workers_wanted = m->workers_configured = cfg->workers;
    m->sigfd = m->epfd = m->shm_fd = m->upgrade_fd = m->inherited_upgrade_fd = -1;
    m->metrics_fd = -1;
    m->now_ms = now_ms();
    arrpc__recycle_init(m);
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++)
        m->row[r].ctl_fd = m->row[r].rescue_fd = -1;
    int status = 1;
    if (master_init(m) != 0 || arrpc__master_read_secret(m) != 0 ||
        arrpc__sockets_inherit(m) != 0 || start_http(m) != 0) {
        arrpc__log("master: cannot start: %s", strerror(errno));
        goto out;
    }
    m->generation = m->next_generation = 1;
    for (uint32_t s = 0; s < m->nslots; s++)
        if (m->slot[s].active) arrpc__spawn_worker(m, s, m->generation);
    if (cfg->pid_file && arrpc__pidfile_write(cfg->pid_file) != 0)
        arrpc__log("master: cannot write pid file %s: %s", cfg->pid_file, strerror(errno));
    serve(m);
    status = m->start_failed ? 1 : 0;
    arrpc__pidfile_remove(cfg->pid_file, m->upgrade_pid != 0);
out:
    master_destroy(m);
    explicit_bzero(m->secret, sizeof m->secret);
    free(m);
    return status;
}
