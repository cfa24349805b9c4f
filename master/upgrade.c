/* upgrade.c -- the binary upgrade (SIGUSR2): exec the program again with the listening
 * sockets, counters' segment and metrics socket, then hand the workers' connections over to the
 * new master's workers; and the new master's side of the same channel. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/fdpass.h"
#include "../core/log.h"
#include "../workers/control.h"

#define UPGRADE_WORKERS_ENV "ARRPC_UPGRADE_WORKERS"
#define UPGRADE_SHM_ENV "ARRPC_UPGRADE_SHM_FD"         /* the counters' segment */
#define UPGRADE_METRICS_ENV "ARRPC_UPGRADE_METRICS_FD" /* the exporter's listening socket */
#define CMDLINE_MAX 65536
#define ARGS_MAX 256
#define EXE_PATH_MAX 4096
#define DELETED_SUFFIX " (deleted)" /* how Linux names a running binary replaced on disk */

/* Messages from the new master to the old one on the upgrade channel. */
enum { UPGRADE_SLOT_READY = 1, UPGRADE_DONE };

/* A descriptor named by an environment variable, if set, made close-on-exec again. */
static int fd_from_env(const char *name)
{
    if (!getenv(name)) return -1;
    int fd = (int)arrpc__env_number(name);
    unsetenv(name);
    return fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 ? fd : -1;
}

void arrpc__upgrade_inherit(arrpc__master *m, int *shm_fd, int *metrics_fd)
{
    unsigned long for_pid = arrpc__env_number("LISTEN_PID");
    unsigned long workers = arrpc__env_number(UPGRADE_WORKERS_ENV);
    if (for_pid == (unsigned long)getpid() && getenv(ARRPC_UPGRADE_ENV)) {
        *shm_fd = fd_from_env(UPGRADE_SHM_ENV);
        *metrics_fd = fd_from_env(UPGRADE_METRICS_ENV);
        m->inherited_upgrade_fd = (int)arrpc__env_number(ARRPC_UPGRADE_ENV);
        fcntl(m->inherited_upgrade_fd, F_SETFD, FD_CLOEXEC);
        if (workers) m->workers_wanted = (unsigned)workers;
        m->old_master = getppid(); /* no upgrade of ours until it has gone */
    }
    /* Children must not mistake these for their own. */
    unsetenv(ARRPC_UPGRADE_ENV);
    unsetenv(UPGRADE_WORKERS_ENV);
}

/* The arguments this process was started with, to exec the same command again. */
static int read_cmdline(char *buf, size_t cap, char **argv)
{
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    int argc = 0;
    for (ssize_t i = 0; i < n && argc < ARGS_MAX - 1; i += (ssize_t)strlen(buf + i) + 1)
        argv[argc++] = buf + i;
    argv[argc] = NULL;
    return argc;
}

/* The program to exec. /proc/self/exe names the inode this master runs, which after a package
 * upgrade (a new file renamed over the old path) is the old, deleted binary: an upgrade would
 * start the old version again. Exec the path the binary was started from instead, which now
 * holds the new one; /proc/self/exe only when that path is gone. */
static const char *new_binary_path(char *path, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", path, size - 1);
    size_t suffix = strlen(DELETED_SUFFIX);
    if (n > 0) path[n] = '\0';
    if (n <= (ssize_t)suffix || strcmp(path + (n - (ssize_t)suffix), DELETED_SUFFIX) != 0)
        return "/proc/self/exe";
    path[n - (ssize_t)suffix] = '\0';
    if (access(path, X_OK) != 0) return "/proc/self/exe";
    arrpc__log("master: SIGUSR2: this binary was replaced on disk; starting the new %s", path);
    return path;
}

static void setenv_number(const char *name, long value)
{
    char text[32];
    snprintf(text, sizeof text, "%ld", value);
    setenv(name, text, 1);
}

/* In the child: put the sockets at 3.., then the channel, the counters' segment and the
 * metrics socket, and exec ourselves. */
static void exec_new_master(arrpc__master *m, int channel, const char *binary, char **argv)
{
    int extra[3] = {channel, m->shm_fd, m->metrics_fd};
    int count = (int)m->nslots + 3, high[ARRPC_MAX_WORKERS + 3];
    for (int i = 0; i < count; i++) { /* first out of the way, so dup2 below cannot clobber */
        int fd = i < (int)m->nslots ? m->slot[i].listen_fd : extra[i - (int)m->nslots];
        high[i] = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 1024) : -1;
    }
    for (int i = 0; i < count; i++)
        if (high[i] >= 0)
            dup2(high[i],
                 ARRPC_LISTEN_FDS_START + i); /* dup2 clears close-on-exec: these survive */
    int after = ARRPC_LISTEN_FDS_START + (int)m->nslots;
    setenv_number(UPGRADE_SHM_ENV, after + 1);
    if (m->metrics_fd >= 0) setenv_number(UPGRADE_METRICS_ENV, after + 2);
    char value[32];
    snprintf(value, sizeof value, "%u", m->nslots);
    setenv(ARRPC_LISTEN_FDS_ENV, value, 1);
    snprintf(value, sizeof value, "%ld", (long)getpid());
    setenv("LISTEN_PID", value, 1);
    snprintf(value, sizeof value, "%d", ARRPC_LISTEN_FDS_START + (int)m->nslots);
    setenv(ARRPC_UPGRADE_ENV, value, 1);
    snprintf(value, sizeof value, "%u", m->workers_wanted);
    setenv(UPGRADE_WORKERS_ENV, value, 1);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(binary, argv);
    _exit(127);
}

void arrpc__upgrade_start(arrpc__master *m)
{
    static char cmdline[CMDLINE_MAX];
    static char exe_path[EXE_PATH_MAX];
    char *argv[ARGS_MAX];
    int sv[2];
    if (m->old_master && kill(m->old_master, 0) == 0 && getppid() == m->old_master) {
        /* Two masters must never write one counter area: wait until the last one is gone. */
        arrpc__log("master: SIGUSR2 ignored: the previous master %d is still handing over",
                   (int)m->old_master);
        return;
    }
    if (m->upgrade_pid || m->inherited_upgrade_fd >= 0) {
        arrpc__log("master: SIGUSR2 ignored: an upgrade is in progress");
        return;
    }
    if (m->reload.active) { /* as a SIGHUP during a reload: remembered, not lost */
        if (!m->reload.upgrade_pending)
            arrpc__log("master: SIGUSR2: the upgrade starts when the reload in progress ends");
        m->reload.upgrade_pending = 1;
        return;
    }
    if (read_cmdline(cmdline, sizeof cmdline, argv) <= 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        arrpc__log("master: SIGUSR2: cannot start the upgrade: %s", strerror(errno));
        return;
    }
    const char *binary = new_binary_path(exe_path, sizeof exe_path);
    arrpc__recycle_cancel(m);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        exec_new_master(m, sv[1], binary, argv);
    }
    close(sv[1]);
    if (pid < 0) {
        arrpc__log("master: SIGUSR2: fork: %s", strerror(errno));
        close(sv[0]);
        return;
    }
    arrpc__pidfile_set_aside(m->cfg->pid_file);
    m->upgrade_pid = pid;
    m->upgrade_fd = sv[0];
    arrpc__master_watch(m, sv[0], EV_UPGRADE, 0);
    arrpc__log("master: SIGUSR2: started new master %d", (int)pid);
}

/* The new master failed before it was ready: the old one goes on as if nothing happened. */
static void upgrade_abort(arrpc__master *m)
{
    arrpc__log("master: upgrade failed: the new master %d exited before it was ready; "
               "this master keeps serving",
               (int)m->upgrade_pid);
    arrpc__pidfile_restore(m->cfg->pid_file);
    close(m->upgrade_fd);
    m->upgrade_fd = -1;
    m->upgrade_pid = 0;
}

/* The new master is ready: our workers hand their connections to its workers, then we exit. */
static void upgrade_commit(arrpc__master *m)
{
    arrpc__log("master: upgrade: new master %d ready; handing over and exiting",
               (int)m->upgrade_pid);
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++) /* rows without a counterpart drain */
        if (m->row[r].state == ARRPC_WORKER_STARTING || m->row[r].state == ARRPC_WORKER_READY)
            arrpc__retire(m, (int)r, -1);
    m->stopping = 1;
    m->stop_deadline_ms = m->now_ms + m->cfg->worker.drain_timeout_ms + ARRPC_ABORT_GRACE_MS;
    close(m->upgrade_fd);
    m->upgrade_fd = -1;
}

void arrpc__upgrade_on_message(arrpc__master *m)
{
    if (m->upgrade_fd < 0) return;
    arrpc__ctl_msg msg;
    int fds[ARRPC_FDPASS_MAX], nfds = 0;
    ssize_t n = arrpc__fd_recv(m->upgrade_fd, &msg, sizeof msg, fds, &nfds);
    if (n < 0 && errno == EAGAIN) return;
    if (n != (ssize_t)sizeof msg) {
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        upgrade_abort(m);
        return;
    }
    if (msg.type == UPGRADE_DONE) {
        upgrade_commit(m);
        return;
    }
    int r = nfds > 0 ? arrpc__row_of_slot(m, msg.arg, m->generation) : -1;
    if (r >= 0) /* our worker of that slot retires into the new master's */
        arrpc__retire(m, r, fds[0]);
    int spare = m->recycle.replacement; /* a recycle's replacement of that slot, still starting */
    if (nfds > 0 && spare >= 0 && m->row[spare].slot == msg.arg) {
        m->row[spare].spare = 1;
        arrpc__retire(m, spare, fds[0]); /* both send into one socket: the new worker takes all */
    }
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
}

void arrpc__upgrade_tell_ready(arrpc__master *m)
{
    int ch = m->inherited_upgrade_fd;
    if (ch < 0) return;
    for (uint32_t s = 0; s < m->nslots; s++) {
        int r = arrpc__row_of_slot(m, s, m->generation);
        int sv[2];
        if (!m->slot[s].active || r < 0 ||
            socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
            continue;
        if (arrpc__master_send(m, r, ARRPC_CTL_ADOPT, 0, sv[1]) == 0) {
            arrpc__ctl_msg msg = {.type = UPGRADE_SLOT_READY, .arg = s};
            arrpc__fd_send(ch, &msg, sizeof msg, &sv[0], 1);
        }
        close(sv[0]);
        close(sv[1]);
    }
    arrpc__ctl_msg done = {.type = UPGRADE_DONE};
    arrpc__fd_send(ch, &done, sizeof done, NULL, 0);
    close(ch);
    m->inherited_upgrade_fd = -1;
}
