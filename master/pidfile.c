/* pidfile.c -- the pid file: written whole at start, set aside as PATH.oldbin while a binary
 * upgrade's new master takes over (nginx's convention), removed at exit. */
#include "internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#define PIDFILE_PATH_MAX 4200 /* the path given (up to 4096) and a suffix */

int arrpc__pidfile_write(const char *path)
{
    char tmp[4096], line[32];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return ARRPC_EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ARRPC_ESYS;
    int len = snprintf(line, sizeof line, "%ld\n", (long)getpid());
    int ok = write(fd, line, (size_t)len) == len;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) { /* rename: readers never see a half-written file */
        unlink(tmp);
        return ARRPC_ESYS;
    }
    return 0;
}

static void oldbin_path(const char *pid_file, char *out, size_t len)
{
    snprintf(out, len, "%s.oldbin", pid_file);
}

void arrpc__pidfile_set_aside(const char *path)
{
    char old[PIDFILE_PATH_MAX];
    if (!path) return;
    oldbin_path(path, old, sizeof old);
    rename(path, old);
}

void arrpc__pidfile_restore(const char *path)
{
    char old[PIDFILE_PATH_MAX];
    if (!path) return;
    oldbin_path(path, old, sizeof old);
    rename(old, path);
}

/* Set aside: the file at the path is the new master's; ours is .oldbin. */
void arrpc__pidfile_remove(const char *path, int set_aside)
{
    char old[PIDFILE_PATH_MAX];
    if (!path) return;
    if (set_aside) {
        oldbin_path(path, old, sizeof old);
        unlink(old);
    } else {
        unlink(path);
    }
}
