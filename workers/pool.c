/* pool.c -- one worker's handler threads (see pool.h). */
#include "pool.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

struct arrpc__pool {
    pthread_mutex_t lock;
    pthread_cond_t work; /* signalled when a job is queued, or at stop */
    arrpc__job *head, *tail;
    int stopping;
    _Atomic unsigned busy; /* queued or running */
    arrpc__mailbox *done;
    void *arg;
    unsigned nthreads;
    pthread_t thread[ARRPC_MAX_THREADS];
    struct arrpc__pool_seat {
        arrpc__pool *pool;
        unsigned index;
    } seat[ARRPC_MAX_THREADS];
};

static arrpc__job *next_job(arrpc__pool *p)
{
    pthread_mutex_lock(&p->lock);
    while (!p->head && !p->stopping)
        pthread_cond_wait(&p->work, &p->lock);
    arrpc__job *job = p->head;
    if (job) {
        p->head = job->next_queued;
        if (!p->head) p->tail = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    return job; /* NULL: stopping and nothing left */
}

static void *pool_thread(void *arg)
{
    struct arrpc__pool_seat *seat = arg;
    arrpc__pool *p = seat->pool;
    arrpc__job *job;
    while ((job = next_job(p))) {
        job->run(job, seat->index, p->arg);
        atomic_fetch_sub(&p->busy, 1);
        arrpc__mailbox_post(p->done, &job->mail); /* never closed while the pool runs */
    }
    return NULL;
}

/* Stops and joins the first `started` threads. */
static void stop_threads(arrpc__pool *p, unsigned started)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < started; i++)
        pthread_join(p->thread[i], NULL);
}

arrpc__pool *arrpc__pool_new(unsigned threads, arrpc__mailbox *done, void *arg)
{
    if (threads == 0 || threads > ARRPC_MAX_THREADS) return NULL;
    arrpc__pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    p->done = done;
    p->arg = arg;
    /* Signals stay with the loop's thread: a pool thread must never run a handler for them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    unsigned started = 0;
    for (; started < threads; started++) {
        p->seat[started] = (struct arrpc__pool_seat){p, started};
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

void arrpc__pool_submit(arrpc__pool *p, arrpc__job *job)
{
    job->next_queued = NULL;
    atomic_fetch_add(&p->busy, 1);
    pthread_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next_queued = job;
    else
        p->head = job;
    p->tail = job;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

unsigned arrpc__pool_busy(const arrpc__pool *p)
{
    return atomic_load(&p->busy);
}

void arrpc__pool_free(arrpc__pool *p)
{
    if (!p) return;
    stop_threads(p, p->nthreads);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
