/* segment.c -- creating, attaching and stamping the shared segment (see segment.h). */
#include "segment.h"

#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

const char *const arrpc__cause_label[ARRPC_CAUSE_COUNT] = {
#define ARRPC_CAUSE_LABEL(name, label) label,
    ARRPC_RESTART_CAUSES(ARRPC_CAUSE_LABEL)
#undef ARRPC_CAUSE_LABEL
};

void arrpc__shm_fold(arrpc__shm *shm, unsigned area, unsigned record)
{
    arrpc__shm_worker *w = &shm->worker[record];
    arrpc__shm_master *a = &shm->area[area];
    /* The writer's half of a seqlock: odd, release fence, the moves, even with release. */
    atomic_fetch_add_explicit(&a->fold_seq, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    arrpc__metrics_add(arrpc__shm_metrics(a->retired), arrpc__shm_metrics(w->metrics));
    arrpc__metrics_reset(arrpc__shm_metrics(w->metrics));
    arrpc__shm_busy_clear(w);
    atomic_store(&w->state, ARRPC_WORKER_FREE); /* last: another master may claim it now */
    atomic_fetch_add_explicit(&a->fold_seq, 1, memory_order_release);
}

static uint32_t sum_once(const arrpc__shm *shm, arrpc__metrics *sum)
{
    uint32_t connections = 0;
    arrpc__metrics_reset(sum);
    for (unsigned a = 0; a < 2; a++)
        arrpc__metrics_add(sum, arrpc__shm_metrics_const(shm->area[a].retired));
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++) {
        const arrpc__shm_worker *w = &shm->worker[r];
        if (atomic_load(&w->state) == ARRPC_WORKER_FREE) continue;
        const arrpc__metrics *m = arrpc__shm_metrics_const(w->metrics);
        arrpc__metrics_add(sum, m);
        connections += atomic_load_explicit(&m->connections, memory_order_relaxed);
    }
    return connections;
}

/* Both areas' fold counters; *quiet is false while either area has a fold under way. */
static void read_fold_seqs(const arrpc__shm *shm, uint64_t seq[2], int *quiet)
{
    *quiet = 1;
    for (unsigned a = 0; a < 2; a++) {
        seq[a] = atomic_load_explicit(&shm->area[a].fold_seq, memory_order_acquire);
        *quiet &= seq[a] % 2 == 0;
    }
}

int arrpc__shm_sum(const arrpc__shm *shm, arrpc__metrics *sum, uint32_t *connections)
{
    uint64_t deadline = arrpc__shm_clock_ms() + ARRPC_SHM_SUM_WAIT_MS;
    do {
        uint64_t before[2], after[2];
        int quiet, still_quiet;
        read_fold_seqs(shm, before, &quiet);
        if (quiet) {
            *connections = sum_once(shm, sum);
            atomic_thread_fence(memory_order_acquire); /* the reads above happen before... */
            read_fold_seqs(shm, after, &still_quiet);  /* ...these */
            if (before[0] == after[0] && before[1] == after[1]) return 0;
        }
        sched_yield();
    } while (arrpc__shm_clock_ms() < deadline);
    return ARRPC_ETIMEOUT;
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
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++)
        arrpc__metrics_init(shm->worker[r].metrics, ARRPC_METRICS_ADDRS);
    for (unsigned a = 0; a < 2; a++)
        arrpc__metrics_init(shm->area[a].retired, ARRPC_METRICS_ADDRS);
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
void arrpc__shm_busy_begin(arrpc__shm_worker *w, unsigned stamp)
{
    uint64_t now = arrpc__shm_clock_ms();
    atomic_store_explicit(&w->busy_since_ms[stamp], now ? now : 1, memory_order_relaxed);
}

void arrpc__shm_busy_end(arrpc__shm_worker *w, unsigned stamp)
{
    atomic_store_explicit(&w->busy_since_ms[stamp], 0, memory_order_relaxed);
}

uint64_t arrpc__shm_busy_oldest(const arrpc__shm_worker *w)
{
    uint64_t oldest = 0;
    for (unsigned i = 0; i < ARRPC_SHM_BUSY_STAMPS; i++) {
        uint64_t since = atomic_load_explicit(&w->busy_since_ms[i], memory_order_relaxed);
        if (since && (!oldest || since < oldest)) oldest = since;
    }
    return oldest;
}

void arrpc__shm_busy_clear(arrpc__shm_worker *w)
{
    for (unsigned i = 0; i < ARRPC_SHM_BUSY_STAMPS; i++)
        atomic_store(&w->busy_since_ms[i], 0);
}

void arrpc__shm_ask_recycle(arrpc__shm_worker *w, arrpc__recycle_cause cause, uint64_t value,
                            uint64_t limit)
{
    w->recycle_value = value;
    w->recycle_limit = limit;
    atomic_store_explicit(&w->recycle_cause, cause, memory_order_release);
}

arrpc__recycle_cause arrpc__shm_recycle_wanted(const arrpc__shm_worker *w, uint64_t *value,
                                               uint64_t *limit)
{
    arrpc__recycle_cause cause = atomic_load_explicit(&w->recycle_cause, memory_order_acquire);
    if (cause != ARRPC_RECYCLE_NONE) {
        *value = w->recycle_value;
        *limit = w->recycle_limit;
    }
    return cause;
}
