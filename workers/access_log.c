/* access_log.c -- a worker's access log: the descriptor, the round's buffer, reopening (see
 * access_log.h). No lock: only the loop's thread writes lines (handler threads hand their
 * calls back to the loop, which counts and logs them), and each process has its own buffer. */
#include "access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/clock.h"
#include "../core/log.h"

struct arrpc__access_log {
    const char *path; /* "-": standard output, never reopened */
    int fd;
    size_t limit; /* write out before the buffer holds more than this */
    size_t used;
    uint64_t lost_lines, last_warn_ms;
    /* The wall clock minus the monotonic one, taken once per loop round (the first line's),
     * so that a line's time costs no clock read of its own. 0: take it at the next line. */
    int64_t wall_minus_mono_ns;
    arrpc__access_format format;
    char buf[ARRPC_ACCESS_LOG_BUFFER];
};

static int is_stdout(const char *path)
{
    return strcmp(path, "-") == 0;
}

static int open_path(const char *path)
{
    if (is_stdout(path)) return STDOUT_FILENO;
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, ARRPC_ACCESS_LOG_MODE);
}

/* Writes of whole lines stay whole: any size to a regular file, PIPE_BUF to anything else. */
static size_t write_limit(int fd)
{
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) return sizeof((arrpc__access_log *)0)->buf;
    return PIPE_BUF;
}

arrpc__access_log *arrpc__access_log_open(const arrpc__worker_config *cfg, int tls, char *err,
                                          size_t errlen)
{
    arrpc__access_log *log = malloc(sizeof *log);
    if (!log) {
        snprintf(err, errlen, "no memory for the access log");
        return NULL;
    }
    log->path = cfg->access_log;
    log->fd = open_path(log->path);
    if (log->fd < 0) {
        snprintf(err, errlen, "cannot open the access log %s: %s", log->path, strerror(errno));
        free(log);
        return NULL;
    }
    log->limit = write_limit(log->fd);
    log->used = 0;
    log->lost_lines = log->last_warn_ms = 0;
    log->wall_minus_mono_ns = 0;
    arrpc__access_format_init(&log->format, cfg->access_log_format, cfg->handler_name, tls,
                              (long)getpid());
    return log;
}

static size_t count_lines(const char *p, size_t n)
{
    size_t lines = 0;
    for (const char *end = p + n; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
        lines++;
    return lines;
}

/* Lines a write did not take are dropped (a disk full, a reader gone), and said at most once
 * a minute on stderr. Retrying a short write would only cut a line in two. */
static void note_lost(arrpc__access_log *log, const char *from, size_t n, int err)
{
    log->lost_lines += count_lines(from, n);
    uint64_t now = arrpc__clock_ms();
    if (log->last_warn_ms && now - log->last_warn_ms < ARRPC_ACCESS_LOG_WARN_INTERVAL_MS) return;
    arrpc__log("access log %s: %llu lines lost so far: %s", log->path,
               (unsigned long long)log->lost_lines, err ? strerror(err) : "short write");
    log->last_warn_ms = now;
}

void arrpc__access_log_flush(arrpc__access_log *log)
{
    if (!log) return;
    log->wall_minus_mono_ns = 0; /* the next round reads the wall clock again (NTP steps it) */
    if (log->used == 0) return;
    ssize_t n;
    do
        n = write(log->fd, log->buf, log->used);
    while (n < 0 && errno == EINTR);
    size_t done = n > 0 ? (size_t)n : 0;
    if (done < log->used) note_lost(log, log->buf + done, log->used - done, n < 0 ? errno : 0);
    log->used = 0;
}

static void wall_time(arrpc__access_log *log, uint64_t mono_ns, struct timespec *when)
{
    if (!log->wall_minus_mono_ns) {
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        int64_t wall_ns = (int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec;
        log->wall_minus_mono_ns = wall_ns - (int64_t)arrpc__clock_ns();
    }
    int64_t ns = (int64_t)mono_ns + log->wall_minus_mono_ns;
    when->tv_sec = (time_t)(ns / 1000000000);
    when->tv_nsec = (long)(ns % 1000000000);
}

void arrpc__access_log_add(arrpc__access_log *log, arrpc__access_fields *x, uint64_t done_ns)
{
    if (log->used + ARRPC_ACCESS_LINE_MAX > log->limit) arrpc__access_log_flush(log);
    wall_time(log, done_ns, &x->when);
    log->used += arrpc__access_line(&log->format, x, log->buf + log->used);
}

void arrpc__access_log_reopen(arrpc__access_log *log)
{
    arrpc__access_log_flush(log);
    if (is_stdout(log->path)) return;
    int fd = open_path(log->path);
    if (fd < 0) {
        arrpc__log("cannot reopen the access log %s: %s; writing on to the old file", log->path,
                   strerror(errno));
        return;
    }
    close(log->fd);
    log->fd = fd;
    log->limit = write_limit(fd);
}

void arrpc__access_log_close(arrpc__access_log *log)
{
    if (!log) return;
    arrpc__access_log_flush(log);
    if (!is_stdout(log->path)) close(log->fd);
    free(log);
}
