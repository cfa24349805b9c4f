/* segment.c -- creating, attaching and stamping the shared segment (see segment.h). */
#include "segment.h"

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

arrpc__shm *arrpc__shm_create(int *fd)
{
    int mfd = memfd_create("arrpc-shm", MFD_CLOEXEC);
    if (mfd < 0)
        return NULL;
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
    if (size != (off_t)sizeof(arrpc__shm))
        return NULL;
    arrpc__shm *shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (shm == MAP_FAILED)
        return NULL;
    if (shm->magic != ARRPC_SHM_MAGIC || shm->version != ARRPC_SHM_VERSION) {
        munmap(shm, sizeof *shm);
        return NULL;
    }
    return shm;
}

void arrpc__shm_unmap(arrpc__shm *shm)
{
    if (shm)
        munmap(shm, sizeof *shm);
}

uint64_t arrpc__shm_clock_ms(void)
{
    struct timespec ts;
    /* The coarse clock costs a few nanoseconds; a few milliseconds of error do not matter to a
     * timeout counted in seconds. Every process reads the same clock. */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void arrpc__shm_busy_begin(arrpc__shm_worker *w)
{
    uint64_t now = arrpc__shm_clock_ms();
    atomic_store_explicit(&w->busy_since_ms, now ? now : 1, memory_order_relaxed);
}

void arrpc__shm_busy_end(arrpc__shm_worker *w)
{
    atomic_store_explicit(&w->busy_since_ms, 0, memory_order_relaxed);
}
