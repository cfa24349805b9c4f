/* pool.h -- one worker's handler threads: jobs go in from the loop, run on one of N threads, and
 * come back through the loop's mailbox when they are done.
 *
 * The pool knows nothing of requests: a job is any struct that starts with an arrpc__job, and
 * `run` is called on a pool thread with that thread's index (0..N-1), which the caller uses to
 * keep per-thread state (a decoder, a busy stamp) without locks. Submitting never allocates. */
#ifndef ARRPC_WORKERS_POOL_H
#define ARRPC_WORKERS_POOL_H

#include <pthread.h>
#include <stdint.h>

#include "arrpc.h" /* ARRPC_MAX_THREADS */
#include "mailbox.h"

typedef struct arrpc__job arrpc__job;
struct arrpc__job {
    arrpc__mail mail; /* first: a finished job is posted to the mailbox as it is */
    arrpc__job *next_queued;
    void (*run)(arrpc__job *job, unsigned thread, void *arg);
};

/* A thread that finishes a call while more are queued posts it without waking the loop, until
 * its oldest such post is this old: under a backlog one wake-up of the loop (a context switch)
 * brings it several replies. The loop itself looks at the mailbox once quiet mail is this old
 * (calls.c), so no reply waits much longer whatever the thread's next call does. */
#define ARRPC_POOL_QUIET_NS 50000u

typedef struct arrpc__pool arrpc__pool;

/* Starts `threads` threads (1..ARRPC_MAX_THREADS) that call job->run(job, index, arg) and then
 * post the job to `done`. NULL when a thread cannot be started (then none is left running). */
arrpc__pool *arrpc__pool_new(unsigned threads, arrpc__mailbox *done, void *arg);
/* check(udata), when set, is asked before a nudge wakes a thread; 0 says a thread woken now
 * could not start a job (see arrpc_server_set_handler_wake_check), and the nudge asks again
 * later, backing off. Owner's thread only, before jobs are submitted. */
void arrpc__pool_set_wake_check(arrpc__pool *p, int (*check)(void *udata), void *udata);
/* Queues a job; the loop must not touch it until it comes back through the mailbox. A job
 * submitted while a thread is a moment into a short call waits for that thread instead of
 * waking another (see pool.c). */
void arrpc__pool_submit(arrpc__pool *p, arrpc__job *job);
/* Nanoseconds until a job that waits with no thread woken for it is due a nudge (0: now), or
 * -1 when none waits: the owner calls arrpc__pool_nudge then (its loop sleeps no longer). Notes
 * the planned look, so that a look the queue made moot spaces the next ones out. */
int64_t arrpc__pool_nudge_due_ns(arrpc__pool *p);
/* Wakes an idle thread for a job that has waited too long behind running calls (they are
 * waiting, not computing). Cheap when nothing waits: one atomic read. */
void arrpc__pool_nudge(arrpc__pool *p);
/* Jobs queued or running. */
unsigned arrpc__pool_busy(const arrpc__pool *p);
/* Runs every job already queued, then stops and joins the threads. Finished jobs stay in the
 * mailbox for the caller. */
void arrpc__pool_free(arrpc__pool *p);

#endif
