/* pool.c -- one worker's handler threads (see pool.h).
 *
 * Waking a thread costs more than most calls: a futex wake, a context switch, and for Python
 * handlers a fight for the GIL with the thread already running. So a job submitted while a
 * thread is running a call that started less than ARRPC_POOL_PATIENCE_NS ago waits for that
 * thread to take it next (lazy wake). Threads exist for calls that wait; a call that waits is
 * noticed by its age: the owner's nudge (arrpc__pool_nudge) wakes an idle thread for a job left
 * waiting longer than the patience. */
#include "pool.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "../core/clock.h"

/* How long work may queue behind a running call before another thread is woken for it. Short
 * next to what a waiting handler waits (a database round trip), long next to a call that only
 * computes (an echo in Python takes a few microseconds). */
#define ARRPC_POOL_PATIENCE_NS 100000u
/* The owner looks at a waiting queue `patience` after its head began to wait, and again twice
 * as late each time a look was wasted (the queue had moved on: its calls compute) or the wake
 * check said "not now", up to this. A backlog of short calls then costs the loop a wake-up a
 * millisecond instead of one per patience (each a context switch: on a virtual machine some
 * 20 us of CPU), and a call that starts to wait after such a run is noticed within this. */
#define ARRPC_POOL_LOOK_GAP_MAX_NS 1000000u

/* A thread's seat: its own condition, so that a job can wake one chosen thread. */
typedef struct arrpc__pool_seat {
    arrpc__pool *pool;
    unsigned index;
    pthread_cond_t wake;
    int is_idle; /* on the idle stack */
    struct arrpc__pool_seat *next_idle;
    uint64_t started_ns;     /* when its current call started, or it was woken for one; 0: idle.
                                Under the lock */
    uint64_t quiet_since_ns; /* its oldest post not yet announced to the loop; 0: none. Its own */
} arrpc__pool_seat;

struct arrpc__pool {
    pthread_mutex_t lock;
    arrpc__job *head, *tail;
    /* Idle threads, the most recently idle on top: a job goes to the thread that ran the last
     * one, whose caches are warm and which the scheduler keeps near the loop. Waking whichever
     * thread a shared condition picks cost a c=1 client 2 ms at p99 on a 2-core machine. */
    arrpc__pool_seat *idle;
    int stopping;
    _Atomic unsigned busy;   /* queued or running */
    _Atomic unsigned queued; /* queued, for a thread's glance without the lock */
    /* Since when the queue's head has waited with no thread woken for it; 0: nothing waits so.
     * Read without the lock by the owner's nudge, to skip the lock when it is 0. */
    _Atomic uint64_t waiting_since_ns;
    arrpc__mailbox *done;
    void *arg;
    int (*wake_check)(void *udata); /* NULL: waking a thread always helps */
    void *wake_udata;
    /* The owner's: how long after the queue's head began to wait it looks (patience, doubling up
     * to ARRPC_POOL_LOOK_GAP_MAX_NS), and when it planned the last look (0: none). */
    uint64_t look_gap_ns, look_at_ns;
    unsigned nthreads;
    pthread_t thread[ARRPC_MAX_THREADS];
    arrpc__pool_seat seat[ARRPC_MAX_THREADS];
};

/* Takes seat off the idle stack, wherever it is; the lock is held. */
static void leave_idle(arrpc__pool *p, arrpc__pool_seat *seat)
{
    arrpc__pool_seat **at = &p->idle;
    while (*at && *at != seat)
        at = &(*at)->next_idle;
    if (*at) *at = seat->next_idle;
    seat->is_idle = 0;
}

/* The next job for seat. Until it takes the lock here, a seat that just finished a call still
 * counts as running one that started when that call did: if the call was short, the seat is
 * indeed about to take the next job (soon_taken). */
static arrpc__job *next_job(arrpc__pool_seat *seat)
{
    arrpc__pool *p = seat->pool;
    pthread_mutex_lock(&p->lock);
    seat->started_ns = 0;
    while (!p->head && !p->stopping) {
        if (seat->quiet_since_ns) { /* the loop must hear of its posts before it sleeps */
            pthread_mutex_unlock(&p->lock);
            seat->quiet_since_ns = 0;
            arrpc__mailbox_wake(p->done);
            pthread_mutex_lock(&p->lock);
            continue;
        }
        if (!seat->is_idle) {
            seat->next_idle = p->idle;
            p->idle = seat;
            seat->is_idle = 1;
        }
        pthread_cond_wait(&seat->wake, &p->lock); /* a wake-up takes it off the stack */
    }
    if (seat->is_idle) leave_idle(p, seat); /* woken spuriously, and found work anyway */
    arrpc__job *job = p->head;
    if (job) {
        uint64_t now = arrpc__clock_ns();
        p->head = job->next_queued;
        if (!p->head) p->tail = NULL;
        atomic_fetch_sub_explicit(&p->queued, 1, memory_order_relaxed);
        seat->started_ns = now;
        /* The next job's wait starts now: it no longer queues behind this one. */
        atomic_store(&p->waiting_since_ns, p->head ? now : 0);
    }
    pthread_mutex_unlock(&p->lock);
    return job; /* NULL: stopping and nothing left */
}

/* Posts a finished job; quietly while more are queued and its quiet posts are young. The mailbox
 * is never closed while the pool runs. */
static void post_done(arrpc__pool_seat *seat, arrpc__job *job)
{
    arrpc__pool *p = seat->pool;
    if (atomic_load_explicit(&p->queued, memory_order_relaxed)) {
        uint64_t now = arrpc__clock_ns();
        if (!seat->quiet_since_ns) seat->quiet_since_ns = now;
        if (now - seat->quiet_since_ns < ARRPC_POOL_QUIET_NS) {
            arrpc__mailbox_post_quietly(p->done, &job->mail);
            return;
        }
    }
    seat->quiet_since_ns = 0;
    arrpc__mailbox_post(p->done, &job->mail); /* announces the quiet ones too */
}

static void *pool_thread(void *arg)
{
    arrpc__pool_seat *seat = arg;
    arrpc__pool *p = seat->pool;
    arrpc__job *job;
    while ((job = next_job(seat))) {
        job->run(job, seat->index, p->arg);
        atomic_fetch_sub(&p->busy, 1);
        post_done(seat, job);
    }
    arrpc__mailbox_wake(p->done); /* stopping: whatever it posted quietly */
    return NULL;
}

/* Takes the most recently idle thread off the stack, for the caller to signal once it has
 * let go of the lock (a thread woken under it would only block on it). NULL: all are busy, and
 * the next to finish finds the job. The lock is held. */
static arrpc__pool_seat *pop_idle(arrpc__pool *p)
{
    arrpc__pool_seat *seat = p->idle;
    if (!seat) return NULL;
    p->idle = seat->next_idle;
    seat->is_idle = 0;
    return seat;
}

/* Stops and joins the first `started` threads. */
static void stop_threads(arrpc__pool *p, unsigned started)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    for (arrpc__pool_seat *seat; (seat = pop_idle(p));)
        pthread_cond_signal(&seat->wake); /* under the lock here: stopping is rare */
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < started; i++)
        pthread_join(p->thread[i], NULL);
}

arrpc__pool *arrpc__pool_new(unsigned threads, arrpc__mailbox *done, void *arg)
{
    if (threads == 0 || threads > ARRPC_MAX_THREADS) return NULL;
    arrpc__pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    arrpc__mutex_init_adaptive(&p->lock);
    for (unsigned i = 0; i < threads; i++) {
        p->seat[i].pool = p;
        p->seat[i].index = i;
        pthread_cond_init(&p->seat[i].wake, NULL);
    }
    p->done = done;
    p->arg = arg;
    p->look_gap_ns = ARRPC_POOL_PATIENCE_NS;
    /* Signals stay with the loop's thread: a pool thread must never run a handler for them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    unsigned started = 0;
    for (; started < threads; started++) {
        if (pthread_create(&p->thread[started], NULL, pool_thread, &p->seat[started]) != 0) break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    p->nthreads = started;
    if (started < threads) {
        arrpc__pool_free(p);
        return NULL;
    }
    return p;
}

/* Whether a running thread will soon take the queue's work: one of them started its call less
 * than the patience ago. Not how much is queued: more threads would not make calls that compute
 * finish sooner (workers, not threads, are for cores; a GIL lets one run at a time anyway), and
 * calls that wait are found by their age. The lock is held. */
static int soon_taken(const arrpc__pool *p, uint64_t now)
{
    for (unsigned i = 0; i < p->nthreads; i++) {
        uint64_t started = p->seat[i].started_ns;
        if (started && now - started < ARRPC_POOL_PATIENCE_NS) return 1;
    }
    return 0;
}

void arrpc__pool_submit(arrpc__pool *p, arrpc__job *job)
{
    job->next_queued = NULL;
    atomic_fetch_add(&p->busy, 1);
    uint64_t now = arrpc__clock_ns();
    pthread_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next_queued = job;
    else
        p->head = job;
    p->tail = job;
    atomic_fetch_add_explicit(&p->queued, 1, memory_order_relaxed);
    /* The wake check is asked under the lock: it is cheap, and submitting is the owner's. */
    arrpc__pool_seat *seat =
        soon_taken(p, now) || (p->wake_check && !p->wake_check(p->wake_udata)) ? NULL : pop_idle(p);
    if (seat) /* counts as starting now: the next jobs wait for it rather than wake another */
        seat->started_ns = now;
    else if (!atomic_load(&p->waiting_since_ns))
        atomic_store(&p->waiting_since_ns, now);
    pthread_mutex_unlock(&p->lock);
    if (seat) pthread_cond_signal(&seat->wake);
}

void arrpc__pool_set_wake_check(arrpc__pool *p, int (*check)(void *udata), void *udata)
{
    p->wake_check = check;
    p->wake_udata = udata;
}

int64_t arrpc__pool_nudge_due_ns(arrpc__pool *p)
{
    uint64_t since = atomic_load(&p->waiting_since_ns), now = arrpc__clock_ns();
    if (!since) return p->look_at_ns = 0, -1;
    p->look_at_ns = since + p->look_gap_ns;
    return now >= p->look_at_ns ? 0 : (int64_t)(p->look_at_ns - now);
}

static void look_later(arrpc__pool *p)
{
    p->look_gap_ns = 2 * p->look_gap_ns < ARRPC_POOL_LOOK_GAP_MAX_NS ? 2 * p->look_gap_ns
                                                                     : ARRPC_POOL_LOOK_GAP_MAX_NS;
}

void arrpc__pool_nudge(arrpc__pool *p)
{
    uint64_t since = atomic_load(&p->waiting_since_ns);
    if (!since) {
        p->look_gap_ns = ARRPC_POOL_PATIENCE_NS; /* the queue ran dry: the next wait is new */
        return;
    }
    uint64_t now = arrpc__clock_ns();
    if (now - since < ARRPC_POOL_PATIENCE_NS) {
        if (p->look_at_ns && now >= p->look_at_ns) look_later(p); /* a look the queue made moot */
        return;
    }
    if (now - since < p->look_gap_ns) return; /* woken for something else before the look */
    if (p->wake_check && !p->wake_check(p->wake_udata)) {
        look_later(p);
        return;
    }
    p->look_gap_ns = ARRPC_POOL_PATIENCE_NS;
    pthread_mutex_lock(&p->lock);
    arrpc__pool_seat *seat = p->head ? pop_idle(p) : NULL;
    now = arrpc__clock_ns();
    if (seat) seat->started_ns = now;
    /* Woken for the head: the next job's wait starts over. No thread idle: the first to finish
     * takes the head itself (and restarts the clock if more wait), so nudging is pointless. */
    atomic_store(&p->waiting_since_ns, seat && p->head->next_queued ? now : 0);
    pthread_mutex_unlock(&p->lock);
    if (seat) pthread_cond_signal(&seat->wake);
}

unsigned arrpc__pool_busy(const arrpc__pool *p)
{
    return atomic_load(&p->busy);
}

void arrpc__pool_free(arrpc__pool *p)
{
    if (!p) return;
    stop_threads(p, p->nthreads);
    for (unsigned i = 0; i < ARRPC_MAX_THREADS; i++)
        if (p->seat[i].pool) pthread_cond_destroy(&p->seat[i].wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
