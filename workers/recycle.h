/* recycle.h -- a worker noticing that it has passed its --max-requests or --max-worker-rss bound
 * and asking its master to replace it. Internal to workers/. */
#ifndef ARRPC_WORKERS_RECYCLE_H
#define ARRPC_WORKERS_RECYCLE_H

#include "loop.h"

/* How often a worker with --max-worker-rss reads its resident size (/proc/self/statm), at most:
 * a read costs a few microseconds, so it is done on the clock, never per request. */
#define ARRPC_RECYCLE_RSS_CHECK_MS 500u

/* Draws this worker's request bound (--max-requests plus a uniform share of the jitter) and arms
 * the checks; without a master (no shared record) nothing is armed. */
void arrpc__loop_recycle_init(arrpc__loop *loop);
/* Called once per loop iteration while armed: compares the request count with the bound and,
 * on the clock, the resident size with its bound; past one, says so in the shared record (once). */
void arrpc__loop_recycle_check(arrpc__loop *loop);

#endif
