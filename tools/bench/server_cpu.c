/* server_cpu.c -- the CPU time a server process tree has used (--server-pid), read from /proc.
 *
 * Throughput on a shared machine moves 30% from one minute to the next; the server's CPU time per
 * reply moves far less, because it does not count the time the server waited for a CPU. So the
 * bench reads it at the start and the end of the measured window. A pre-fork server's work is done
 * by its children, so the sum covers the process, its threads and its descendants. Linux only. */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

/* Bounds on the walk, so that a fork bomb under the given pid cannot keep the bench reading. */
#define SERVER_CPU_MAX_PROCESSES 1024u
#define SERVER_CPU_MAX_DEPTH 8u

/* The first field of /proc/PID/task/TID/schedstat: nanoseconds spent running. */
static uint64_t task_ns(const char *path)
{
    FILE *f = fopen(path, "r");
    uint64_t ns = 0;
    if (!f) return 0; /* the task ended between the listing and the read: its time is lost */
    if (fscanf(f, "%" SCNu64, &ns) != 1) ns = 0;
    fclose(f);
    return ns;
}

/* Adds pid's threads' running time to *ns and walks its children. */
static void add_process(long pid, unsigned depth, unsigned *seen, uint64_t *ns)
{
    char path[96];
    if (depth > SERVER_CPU_MAX_DEPTH || *seen >= SERVER_CPU_MAX_PROCESSES) return;
    (*seen)++;
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *dir = opendir(path);
    if (!dir) return;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        long tid = strtol(e->d_name, NULL, 10);
        snprintf(path, sizeof path, "/proc/%ld/task/%ld/schedstat", pid, tid);
        *ns += task_ns(path);
        snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", pid, tid);
        FILE *f = fopen(path, "r");
        long child;
        while (f && fscanf(f, "%ld", &child) == 1)
            add_process(child, depth + 1, seen, ns);
        if (f) fclose(f);
    }
    closedir(dir);
}

int bench_server_cpu_ns(long pid, uint64_t *ns)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *dir = opendir(path);
    if (!dir) return -1; /* no such process, or no /proc */
    closedir(dir);
    unsigned seen = 0;
    *ns = 0;
    add_process(pid, 0, &seen, ns);
    return 0;
}
