/* segment.h -- the shared-memory segment: one cache-line-aligned record per worker process.
 *
 * Plain data and arithmetic, included by the master and the workers. The master creates the
 * segment before it forks (a memfd, so that a binary upgrade can hand it to the next master) and
 * assigns a record to each worker it starts; the worker writes its state and the "busy since"
 * stamp around each handler call; the master reads them. No locks: each field has one writer. */
#ifndef ARRPC_SHM_SEGMENT_H
#define ARRPC_SHM_SEGMENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "arrpc.h" /* ARRPC_MAX_WORKERS */

#define ARRPC_SHM_MAGIC 0x61727270u /* "arrp" */
#define ARRPC_SHM_VERSION 1u
#define ARRPC_CACHE_LINE 64
/* Records: during a reload a slot has a worker of the old and one of the new generation. */
#define ARRPC_SHM_RECORDS (2u * ARRPC_MAX_WORKERS)

typedef enum {
    ARRPC_WORKER_FREE = 0, /* record unused */
    ARRPC_WORKER_STARTING, /* forked, not yet accepting */
    ARRPC_WORKER_READY,    /* accepting and serving */
    ARRPC_WORKER_RETIRING, /* handing its connections on, accepting no more */
} arrpc__worker_state;

/* One worker's record. The master writes pid, slot and generation before the fork; the worker
 * writes state and busy_since_ms. Cache-line aligned so that workers never share a line. */
typedef struct arrpc__shm_worker {
    _Alignas(ARRPC_CACHE_LINE) _Atomic uint32_t state;
    _Atomic int32_t pid;
    uint32_t slot;
    uint32_t generation;
    /* CLOCK_MONOTONIC milliseconds when the running handler call started; 0 between calls. */
    _Atomic uint64_t busy_since_ms;
} arrpc__shm_worker;

typedef struct arrpc__shm {
    uint32_t magic;
    uint32_t version;
    uint32_t records;
    uint32_t reserved;
    arrpc__shm_worker worker[ARRPC_SHM_RECORDS];
} arrpc__shm;

/* Creates a zeroed segment in a memfd (close-on-exec). Returns the mapping and sets *fd, or NULL. */
arrpc__shm *arrpc__shm_create(int *fd);
/* Maps a segment handed over by fd (binary upgrade); NULL when it is not a compatible segment. */
arrpc__shm *arrpc__shm_attach(int fd);
void arrpc__shm_unmap(arrpc__shm *shm);

/* Stamps the start and end of a handler call. Cheap: a coarse clock and a relaxed store. */
void arrpc__shm_busy_begin(arrpc__shm_worker *w);
void arrpc__shm_busy_end(arrpc__shm_worker *w);

/* Milliseconds on the clock the busy stamps use. */
uint64_t arrpc__shm_clock_ms(void);

#endif
