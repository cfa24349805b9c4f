/* segment.c -- creating, attaching and stamping the shared segment (see segment.h). */
#include "segment.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

const char *const arrpc__cause_label[ARRPC_CAUSE_COUNT] = {
#define ARRPC_CAUSE_LABEL(name, label) label,
    ARRPC_RESTART_CAUSES(ARRPC_CAUSE_LABEL)
#undef ARRPC_CAUSE_LABEL
};

#define SUM_TRIES 8 /* a scrape retries while folds keep happening, then takes what it has */

void arrpc__shm_fold(arrpc__shm *shm, unsigned area, unsigned record)
{
    arrpc__shm_worker *w = &shm->worker[record];
    atomic_fetch_add(&shm->fold_seq, 1); /* odd: a fold in progress */
    arrpc__metrics_add(&shm->area[area].retired, &w->metrics);
    arrpc__metrics_reset(&w->metrics);
    atomic_store(&w->busy_since_ms, 0);
    atomic_store(&w->state, ARRPC_WORKER_FREE); /* last: another master may claim it now */
    atomic_fetch_add(&shm->fold_seq, 1);
}

static uint32_t sum_once(const arrpc__shm *shm, arrpc__metrics *sum)
{
    uint32_t connections = 0;
    arrpc__metrics_reset(sum);
    for (unsigned a = 0; a < 2; a++)
        arrpc__metrics_add(sum, &shm->area[a].retired);
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++) {
        const arrpc__shm_worker *w = &shm->worker[r];
        if (atomic_load(&w->state) == ARRPC_WORKER_FREE) continue;
        arrpc__metrics_add(sum, &w->metrics);
        connections += atomic_load_explicit(&w->metrics.connections, memory_order_relaxed);
    }
    return connections;
}

uint32_t arrpc__shm_sum(const arrpc__shm *shm, arrpc__metrics *sum)
{
    uint32_t connections = 0;
    for (int i = 0; i < SUM_TRIES; i++) {
        uint64_t before = atomic_load(&shm->fold_seq);
        connections = sum_once(shm, sum);
        if (before % 2 == 0 && atomic_load(&shm->fold_seq) == before) break;
    }
    return connections;
}

arrpc__shm *arrpc__shm_create(int *fd)
{
    int mfd = memfd_create("arrpc-shm", MFD_CLOEXEC);
    if (mfd < 0) return NULL;
    if (ftruncate(mfd, sizeof(arrpc__shm)) != 0) {
        close(mfd);
        return NULL;
    }
    arrpc__shm *shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (shm == MAP_FAILED) {
        close(mfd);
        return NULL;
    }
    shm->magic = ARRPC_SHM_MAGIC;
    shm->version = ARRPC_SHM_VERSION;
    shm->records = ARRPC_SHM_RECORDS;
    *fd = mfd;
    return shm;
}

arrpc__shm *arrpc__shm_attach(int fd)
{
    off_t size = lseek(fd, 0, SEEK_END);
    if (size != (off_t)sizeof(arrpc__shm)) return NULL;
    arrpc__shm *shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (shm == MAP_FAILED) return NULL;
    if (shm->magic != ARRPC_SHM_MAGIC || shm->version != ARRPC_SHM_VERSION) {
        munmap(shm, sizeof *shm);
        return NULL;
    }
    return shm;
}

void arrpc__shm_unmap(arrpc__shm *shm)
{
    if (shm) munmap(shm, sizeof *shm);
}

/* The coarse clock costs a few nanoseconds; a few milliseconds of error do not matter to a
 * timeout counted in seconds. */
void arrpc__shm_busy_begin(arrpc__shm_worker *w)
{
    uint64_t now = arrpc__shm_clock_ms();
    atomic_store_explicit(&w->busy_since_ms, now ? now : 1, memory_order_relaxed);
}

void arrpc__shm_busy_end(arrpc__shm_worker *w)
{
    atomic_store_explicit(&w->busy_since_ms, 0, memory_order_relaxed);
}
