/* segment.h -- the shared-memory segment: one cache-line-aligned record per worker process.
 *
 * Plain data and arithmetic, included by the master and the workers. The master creates the
 * segment before it forks (a memfd, so that a binary upgrade can hand it to the next master) and
 * assigns a record to each worker it starts; the worker writes its counters and the "busy
 * since" stamp around each handler call; the master reads them. No locks: each field has one
 * writer at a time. */
#ifndef ARRPC_SHM_SEGMENT_H
#define ARRPC_SHM_SEGMENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "arrpc.h" /* ARRPC_MAX_WORKERS */
#include "../core/clock.h"
#include "../metrics/metrics.h"

#define ARRPC_SHM_MAGIC 0x61727270u /* "arrp" */
#define ARRPC_SHM_VERSION 5u
#define ARRPC_CACHE_LINE 64
/* Records: during a reload a slot has a worker of the old and one of the new generation. */
#define ARRPC_SHM_RECORDS (2u * ARRPC_MAX_WORKERS)
/* How long a sum waits for a fold to end. A fold takes microseconds; a master that holds one open
 * longer is descheduled or dead, and a scrape must not stall behind it. */
#define ARRPC_SHM_SUM_WAIT_MS 50u

/* Every block in the segment has room for this many bytes (ARRPC_METRICS_ADDRS addresses). */
#define ARRPC_SHM_METRICS_BYTES ARRPC_METRICS_BYTES(ARRPC_METRICS_ADDRS)

/* A busy stamp for the loop's thread and one per handler thread. */
#define ARRPC_SHM_BUSY_STAMPS (1u + ARRPC_MAX_THREADS)

/* A worker's life, one enum for the master's process table and the shared record. The master
 * moves its row through all four from what it knows first hand (it forks, it hears "ready", it
 * sends "retire", it reaps). The shared record's state is written only by masters and says only
 * whether the record is in use: STARTING when a master claims it (compare-and-swap from FREE,
 * since two masters share the segment during an upgrade), FREE again once arrpc__shm_fold has
 * taken the exited worker's counts. A worker never writes it. */
typedef enum {
    ARRPC_WORKER_FREE = 0, /* record unused */
    ARRPC_WORKER_STARTING, /* forked, not yet accepting; for a record: claimed */
    ARRPC_WORKER_READY,    /* accepting and serving */
    ARRPC_WORKER_RETIRING, /* handing its connections on, accepting no more */
} arrpc__worker_state;

/* One worker's record. The master writes state, pid, slot and generation before the fork; the
 * worker writes its pid again, busy_since_ms and its counters. Cache-line aligned so that
 * workers never share a line. */
typedef struct arrpc__shm_worker {
    _Alignas(ARRPC_CACHE_LINE) _Atomic uint32_t state;
    _Atomic int32_t pid;
    uint32_t slot;
    uint32_t generation;
    /* When each running handler call started (the busy stamps' clock, below); 0 between calls.
     * Stamp 0 is the loop's thread (inline calls), stamp 1 + i handler thread i. */
    _Atomic uint64_t busy_since_ms[ARRPC_SHM_BUSY_STAMPS];
    /* The worker's counters: an arrpc__metrics block of ARRPC_METRICS_ADDRS addresses, stored
     * as bytes because a block's rows are a flexible array (arrpc__shm_metrics gives it). */
    _Alignas(ARRPC_CACHE_LINE) unsigned char metrics[ARRPC_SHM_METRICS_BYTES];
} arrpc__shm_worker;

/* X(name, label): why a worker was replaced (arrpc_server_worker_restarts_total{cause}). */
#define ARRPC_RESTART_CAUSES(X)                                                                    \
    X(CRASH, "crash")                                                                              \
    X(TIMEOUT, "timeout")                                                                          \
    X(START_FAILURE, "start_failure")                                                              \
    X(RELOAD, "reload")

typedef enum {
#define ARRPC_CAUSE_ENUM(name, label) ARRPC_CAUSE_##name,
    ARRPC_RESTART_CAUSES(ARRPC_CAUSE_ENUM)
#undef ARRPC_CAUSE_ENUM
        ARRPC_CAUSE_COUNT
} arrpc__restart_cause;

extern const char *const arrpc__cause_label[ARRPC_CAUSE_COUNT];

/* What one master adds up: the counts of its workers that have exited, and its own events.
 * Written only by that master. A binary upgrade hands the segment to the next master, which
 * writes the other area, so two masters never write the same one. */
typedef struct arrpc__shm_master {
    _Alignas(ARRPC_CACHE_LINE) _Atomic uint64_t restarts[ARRPC_CAUSE_COUNT];
    _Atomic uint64_t reloads;
    /* Odd while this area's master folds a worker's counts into `retired` (a seqlock). One per
     * area, so that two masters folding at once (during an upgrade) cannot make it even. */
    _Atomic uint64_t fold_seq;
    _Alignas(ARRPC_CACHE_LINE) unsigned char retired[ARRPC_SHM_METRICS_BYTES]; /* a block */
} arrpc__shm_master;

typedef struct arrpc__shm {
    uint32_t magic;
    uint32_t version;
    uint32_t records;
    _Atomic uint32_t area_in_use; /* the area the newest master writes */
    arrpc__shm_worker worker[ARRPC_SHM_RECORDS];
    arrpc__shm_master area[2];
} arrpc__shm;

/* Creates a zeroed segment in a memfd (close-on-exec). Returns the mapping and sets *fd, or NULL.
 */
arrpc__shm *arrpc__shm_create(int *fd);
/* Maps a segment handed over by fd (binary upgrade); NULL when it is not a compatible segment. */
arrpc__shm *arrpc__shm_attach(int fd);
void arrpc__shm_unmap(arrpc__shm *shm);

/* The counter block kept in `bytes` (a record's `metrics`, an area's `retired`), made by
 * arrpc__shm_create with ARRPC_METRICS_ADDRS addresses. */
static inline arrpc__metrics *arrpc__shm_metrics(unsigned char *bytes)
{
    return (arrpc__metrics *)(void *)bytes;
}
static inline const arrpc__metrics *arrpc__shm_metrics_const(const unsigned char *bytes)
{
    return (const arrpc__metrics *)(const void *)bytes;
}

/* Moves an exited worker's counts into `area` and frees its record for reuse. */
void arrpc__shm_fold(arrpc__shm *shm, unsigned area, unsigned record);
/* Everything counted so far, into `sum` (zeroed first): both areas and every live worker, and
 * the open connections of live workers into *connections (dead workers' gauges count as zero).
 * 0 when the sum is exact: no fold was under way while it was taken, so no exited worker's
 * counts were missed or counted twice. ARRPC_ETIMEOUT when a fold did not end within
 * ARRPC_SHM_SUM_WAIT_MS (its master stalled or died in the middle): `sum` is then unusable, and
 * the caller should serve its last exact sum rather than one that could go backwards later. */
int arrpc__shm_sum(const arrpc__shm *shm, arrpc__metrics *sum, uint32_t *connections);

/* Stamps the start and end of a handler call. Cheap: a coarse clock and a relaxed store. */
void arrpc__shm_busy_begin(arrpc__shm_worker *w, unsigned stamp);
void arrpc__shm_busy_end(arrpc__shm_worker *w, unsigned stamp);
/* The start of the longest-running call of the worker (its oldest stamp), or 0 when none runs. */
uint64_t arrpc__shm_busy_oldest(const arrpc__shm_worker *w);
/* Clears every stamp (a record given to a new worker, or folded). */
void arrpc__shm_busy_clear(arrpc__shm_worker *w);

/* Milliseconds on the clock the busy stamps use: the coarse one (core/clock.h), which the
 * master must read too when it ages a stamp, since the two clocks must not be mixed. */
static inline uint64_t arrpc__shm_clock_ms(void)
{
    return arrpc__clock_coarse_ms();
}

#endif
