/* internal.h -- the master's state: one slot per listening socket, one row per worker process,
 * supervised from one single-threaded loop; and what each file of master/ offers the others.
 * Internal to master/: only the .c files there include it. */
#ifndef ARRPC_MASTER_INTERNAL_H
#define ARRPC_MASTER_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "../core/auth.h"
#include "../shm/segment.h"
#include "master.h"

#define ARRPC_RESPAWN_BACKOFF_MIN_MS 100u
#define ARRPC_RESPAWN_BACKOFF_MAX_MS 10000u
/* A worker that lived this long resets its slot's back-off. */
#define ARRPC_RESPAWN_STABLE_MS 5000u
#define ARRPC_ABORT_GRACE_MS 2000u /* SIGABRT to a stuck worker, SIGKILL this long after */
#define ARRPC_RELOAD_START_TIMEOUT_MS 15000u /* new workers must be ready within this */
#define ARRPC_MASTER_TICK_MS 200 /* how often the master looks at busy stamps and timers */
/* After a recycle's replacement failed to start, wait this long before trying another. */
#define ARRPC_RECYCLE_RETRY_MS ARRPC_RESPAWN_BACKOFF_MAX_MS
#define ARRPC_RECYCLE_REASON_MAX 96
#define ARRPC_LISTEN_FDS_ENV "LISTEN_FDS"
#define ARRPC_LISTEN_FDS_START 3 /* sd_listen_fds(3): passed sockets start at descriptor 3 */
#define ARRPC_UPGRADE_ENV "ARRPC_UPGRADE_FD" /* the binary-upgrade channel to the old master */
/* Crashed workers' rescue sockets held while no worker is ready to take them (crash.c). */
#define ARRPC_CRASH_PENDING_MAX 8

/* One worker process; rows are indexed like the shared-memory records.
 *
 * The row's state is the master's own view of the worker's life, and only the master writes it,
 * from what it knows first hand: STARTING when it forks, READY when the worker's "ready"
 * message arrives, RETIRING when it sends "retire", FREE when it reaps. It never follows a
 * worker's write to shared memory. The shared record's state only says whether a master has
 * claimed the record (see segment.h). */
typedef struct arrpc__worker_row {
    arrpc__worker_state state;
    pid_t pid;
    int ctl_fd;    /* the master's end of the control socket pair */
    int rescue_fd; /* the master's end of its rescue socket pair, never read here (crash.c) */
    uint32_t slot;
    uint32_t generation;
    uint64_t started_ms;
    uint64_t kill_at_ms; /* SIGKILL then, after a SIGABRT for a stuck handler; 0: not set */
    int recycled;        /* retired by a recycle: its exit counts as cause "recycle" */
    int spare;           /* a recycle's replacement that was not needed: its exit is no restart */
} arrpc__worker_row;

/* One listening socket. An active slot has a worker of its own; an inactive one (after a
 * scale-down) is served by the worker of slot `adopter`, so queued connections are never reset. */
typedef struct arrpc__slot {
    int listen_fd;
    int active;
    int adopter; /* for an inactive slot: the active slot whose worker accepts on it */
    unsigned restarts;
    unsigned failures;      /* start failures in a row, for the back-off */
    uint64_t respawn_at_ms; /* 0: no respawn pending */
} arrpc__slot;

typedef struct arrpc__http arrpc__http;

typedef struct arrpc__master {
    const arrpc__master_config *cfg; /* the options, as parsed: never written */
    arrpc__http *http;               /* the metrics exporter; NULL when off */
    int metrics_fd;                  /* its listening socket */
    unsigned area;                   /* the shared-memory area this master writes */
    uint64_t predrain_until_ms;      /* SIGTERM came: not ready, still serving until then */
    pid_t old_master;                /* after an upgrade: the master we replaced, until it exits */
    arrpc__shm *shm;
    int shm_fd;
    int epfd;
    int sigfd;
    arrpc__slot slot[ARRPC_MAX_WORKERS];
    unsigned nslots;             /* sockets bound (active or not) */
    unsigned workers_wanted;     /* active slots: cfg->workers, or as SIGTTIN/SIGTTOU changed it */
    unsigned workers_configured; /* cfg->workers as last applied: a reload that changes it scales */
    int scale_after_reload;      /* a reload succeeded: arrpc__scale_check compares the counts */
    arrpc__worker_row row[ARRPC_SHM_RECORDS];
    uint32_t generation; /* the generation that serves */
    uint32_t next_generation;
    struct {
        int active;
        uint32_t generation;
        uint64_t deadline_ms;
        int pending;         /* another SIGHUP came during this reload */
        int upgrade_pending; /* a SIGUSR2 came during it: the upgrade starts when it ends */
    } reload;
    /* One worker at a time is recycled (recycle.c): from the moment its replacement is forked
     * until the old worker has exited. */
    struct {
        int old;         /* the worker being replaced; -1: no recycle under way */
        int replacement; /* its replacement until that one is ready; -1: none. Hidden from
                            arrpc__row_of_slot meanwhile: the old worker serves the slot. */
        int cancelled;   /* a scale or an upgrade came first: the replacement is not needed */
        uint64_t retry_at_ms;
        char reason[ARRPC_RECYCLE_REASON_MAX];
    } recycle;
    struct {
        int pending[ARRPC_CRASH_PENDING_MAX]; /* rescue sockets waiting for a ready worker */
        unsigned npending;
    } crash;
    int stopping;
    uint64_t stop_deadline_ms;
    int told_ready;
    int start_failed; /* the first workers could not start: the master gives up */
    /* With cfg->secret_file: the secret last read from it, which new workers get instead of
     * cfg->worker.secret. */
    uint8_t secret[ARRPC_AUTH_SECRET_MAX + 1];
    size_t secret_len;
    uint64_t now_ms;
    int upgrade_fd; /* binary upgrade in progress: channel to the new master (old side) */
    pid_t upgrade_pid;
    int inherited_upgrade_fd; /* we are the new master: channel to the old one; -1 otherwise */
} arrpc__master;

/* What an epoll event of the master's loop belongs to: the kind in the high half of data.u64,
 * a row index in the low half. */
enum { EV_SIGNAL = 1, EV_STOP, EV_ROW, EV_UPGRADE, EV_HTTP, EV_REOPEN };

/* master.c */
int arrpc__master_watch(arrpc__master *m, int fd, uint32_t kind, uint32_t index);
int arrpc__master_send(arrpc__master *m, int row, uint32_t type, uint32_t arg, int fd);
int arrpc__master_read_secret(arrpc__master *m);
/* spawn.c: the new worker's row, or a negative error. */
int arrpc__spawn_worker(arrpc__master *m, uint32_t slot, uint32_t generation);
/* generation.c */
int arrpc__row_of_slot(const arrpc__master *m, uint32_t slot, uint32_t generation);
/* Tells worker `row` to retire, handing its connections into handoff_fd (-1: it drains). The
 * row is RETIRING from then on, whatever the worker does. */
void arrpc__retire(arrpc__master *m, int row, int handoff_fd);
/* Retires worker `from`, handing its connections to worker `to` over a new socket pair; with no
 * `to` (-1) it drains instead. */
void arrpc__handover(arrpc__master *m, int from, int to);
/* True when every active slot has a ready worker of generation `gen`. */
int arrpc__generation_ready(const arrpc__master *m, uint32_t gen);
void arrpc__reload_start(arrpc__master *m);
void arrpc__reload_on_ready(arrpc__master *m);
void arrpc__reload_on_failure(arrpc__master *m, const char *why);
void arrpc__reload_check_deadline(arrpc__master *m);
void arrpc__scale_check(arrpc__master *m); /* from the timers: see generation.c */
/* One worker more or fewer; why names the cause in the log ("SIGTTIN", "reload"). */
void arrpc__scale_up(arrpc__master *m, const char *why);
void arrpc__scale_down(arrpc__master *m, const char *why);
/* recycle.c: replacing one worker past its bounds (--max-requests, --max-worker-rss,
 * --max-worker-lifetime) through the hand-over. */
void arrpc__recycle_init(arrpc__master *m);
void arrpc__recycle_tick(arrpc__master *m);             /* from the master's timers */
int arrpc__recycle_on_ready(arrpc__master *m, int row); /* true when row was a replacement */
void arrpc__recycle_on_exit(arrpc__master *m, int row); /* before the row is cleared */
void arrpc__recycle_cancel(arrpc__master *m);           /* scaling or an upgrade starts */
/* crash.c: a worker that died of a signal. */
int arrpc__crash_socketpair(int sv[2]);
/* Before row r is cleared: counts what it could not save, passes on what it saved. */
void arrpc__crash_on_exit(arrpc__master *m, int r, const arrpc__worker_row *row, int status,
                          int expected);
void arrpc__crash_on_ready(arrpc__master *m);  /* a worker is ready: it takes what waits */
void arrpc__crash_close_all(arrpc__master *m); /* in a new worker, and when the master ends */
/* sockets.c */
/* The number in an environment variable; 0 when it is unset or not a number. */
unsigned long arrpc__env_number(const char *name);
/* The listening sockets at start: passed by LISTEN_FDS (systemd, or the old master), else the
 * one cfg->bound_fd names, completed by our own up to m->workers_wanted. */
int arrpc__sockets_inherit(arrpc__master *m);
int arrpc__slot_bind(arrpc__master *m); /* one more listening socket, as slot nslots */
/* upgrade.c */
/* We are the new master of a binary upgrade: the channel to the old one, its worker count, the
 * counters' segment and the metrics socket it handed over. */
void arrpc__upgrade_inherit(arrpc__master *m, int *shm_fd, int *metrics_fd);
void arrpc__upgrade_start(arrpc__master *m);
void arrpc__upgrade_on_message(arrpc__master *m);
void arrpc__upgrade_tell_ready(arrpc__master *m);
/* pidfile.c: NULL paths are no pid file. */
int arrpc__pidfile_write(const char *path);
void arrpc__pidfile_set_aside(const char *path); /* path -> path.oldbin, while upgrading */
void arrpc__pidfile_restore(const char *path);   /* path.oldbin -> path: the upgrade failed */
void arrpc__pidfile_remove(const char *path, int set_aside);
/* notify.c: "READY=1", "RELOADING=1", "STOPPING=1" to systemd, with MAINPID=<this pid>. */
void arrpc__notify(const char *state);
/* http.c: the exporter, polled from the master's loop. */
arrpc__http *arrpc__http_start(arrpc__master *m, int listen_fd);
int arrpc__http_epoll_fd(const arrpc__http *h);
void arrpc__http_run(arrpc__http *h);
void arrpc__http_stop(arrpc__http *h);

#endif
