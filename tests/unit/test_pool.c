/* test_pool.c -- the worker's handler threads and the mailbox that brings their work back to the
 * loop: every job runs once and comes back once, jobs run in parallel, nothing is left behind at
 * stop, and posts from many threads all arrive, each thread's in its order. */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "arrpc.h"
#include "workers/mailbox.h"
#include "workers/pool.h"

#define WAIT_MS 10000 /* a generous bound on any wait: a hang fails instead of blocking ctest */

typedef struct {
    arrpc__job job; /* first */
    unsigned id;
    unsigned ran;    /* times run */
    unsigned thread; /* which thread ran it */
    pthread_barrier_t *barrier;
} test_job;

static void run_counting(arrpc__job *job, unsigned thread, void *arg)
{
    test_job *t = (test_job *)job;
    t->ran++;
    t->thread = thread;
    if (t->barrier) pthread_barrier_wait(t->barrier); /* returns only when all are running */
    (void)arg;
}

/* Takes mail until `want` items came back or limit_ms passed; returns how many came. Nudges the
 * pool (when given) as a worker's loop does, at least every millisecond while a job waits. */
static unsigned collect_within(arrpc__mailbox *box, arrpc__pool *pool, unsigned want,
                               unsigned *seen, unsigned nseen, unsigned limit_ms)
{
    unsigned got = 0;
    for (unsigned waited_ms = 0; got < want && waited_ms < limit_ms;) {
        struct pollfd pfd = {.fd = arrpc__mailbox_fd(box), .events = POLLIN};
        int wait_ms = pool && arrpc__pool_nudge_due_ns(pool) >= 0 ? 1 : 100;
        int ready = poll(&pfd, 1, wait_ms);
        if (pool) arrpc__pool_nudge(pool);
        if (ready <= 0) {
            waited_ms += (unsigned)wait_ms;
            continue;
        }
        for (arrpc__mail *m = arrpc__mailbox_take(box), *next; m; m = next) {
            next = m->next;
            test_job *t = (test_job *)m;
            if (t->id < nseen) seen[t->id]++;
            got++;
        }
    }
    return got;
}

static unsigned collect(arrpc__mailbox *box, arrpc__pool *pool, unsigned want, unsigned *seen,
                        unsigned nseen)
{
    return collect_within(box, pool, want, seen, nseen, WAIT_MS);
}

static void test_every_job_runs_once_and_comes_back_once(void **state)
{
    (void)state;
    enum { JOBS = 2000, THREADS = 4 };
    arrpc__mailbox *box = arrpc__mailbox_new();
    assert_non_null(box);
    arrpc__pool *pool = arrpc__pool_new(THREADS, box, NULL);
    assert_non_null(pool);
    test_job *jobs = calloc(JOBS, sizeof *jobs);
    unsigned *seen = calloc(JOBS, sizeof *seen);
    assert_non_null(jobs);
    assert_non_null(seen);
    for (unsigned i = 0; i < JOBS; i++) {
        jobs[i] = (test_job){.job.run = run_counting, .id = i};
        arrpc__pool_submit(pool, &jobs[i].job);
    }
    assert_int_equal(collect(box, pool, JOBS, seen, JOBS), JOBS);
    assert_int_equal(arrpc__pool_busy(pool), 0);
    for (unsigned i = 0; i < JOBS; i++) {
        assert_int_equal(jobs[i].ran, 1);
        assert_int_equal(seen[i], 1);
        assert_true(jobs[i].thread < THREADS);
    }
    arrpc__pool_free(pool);
    arrpc__mailbox_release(box);
    free(seen);
    free(jobs);
}

/* Four jobs that each wait for all four to be running at once can only finish on four threads. */
static void test_jobs_run_in_parallel(void **state)
{
    (void)state;
    enum { THREADS = 4 };
    arrpc__mailbox *box = arrpc__mailbox_new();
    assert_non_null(box);
    arrpc__pool *pool = arrpc__pool_new(THREADS, box, NULL);
    assert_non_null(pool);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, THREADS);
    test_job jobs[THREADS];
    unsigned seen[THREADS] = {0};
    for (unsigned i = 0; i < THREADS; i++) {
        jobs[i] = (test_job){.job.run = run_counting, .id = i, .barrier = &barrier};
        arrpc__pool_submit(pool, &jobs[i].job);
    }
    assert_int_equal(collect(box, pool, THREADS, seen, THREADS), THREADS);
    unsigned threads_used = 0;
    for (unsigned t = 0; t < THREADS; t++)
        for (unsigned i = 0; i < THREADS; i++)
            if (jobs[i].thread == t) {
                threads_used++;
                break;
            }
    assert_int_equal(threads_used, THREADS);
    arrpc__pool_free(pool);
    pthread_barrier_destroy(&barrier);
    arrpc__mailbox_release(box);
}

static int allowed(void *udata)
{
    return *(const int *)udata;
}

/* A wake check that says "not now" keeps every thread asleep, at submit and at each nudge (a
 * Python handler's threads would only queue for the GIL); the job runs once it says yes. */
static void test_a_wake_check_that_says_no_keeps_threads_asleep(void **state)
{
    (void)state;
    enum { NUDGING_MS = 30, SETTLE_MS = 100 };
    arrpc__mailbox *box = arrpc__mailbox_new();
    assert_non_null(box);
    arrpc__pool *pool = arrpc__pool_new(1, box, NULL);
    assert_non_null(pool);
    int allow = 1;
    arrpc__pool_set_wake_check(pool, allowed, &allow);
    test_job job = {.job.run = run_counting, .id = 0};
    unsigned seen[1] = {0};
    /* A first job, so that the thread has started; then time to fall asleep again (a thread
     * that has not takes the next job itself, as it should). */
    arrpc__pool_submit(pool, &job.job);
    assert_int_equal(collect(box, pool, 1, seen, 1), 1);
    struct timespec settle = {0, SETTLE_MS * 1000000L};
    nanosleep(&settle, NULL);
    allow = 0;
    job.ran = 0;
    arrpc__pool_submit(pool, &job.job);
    assert_int_equal(collect_within(box, pool, 1, seen, 1, NUDGING_MS), 0);
    assert_int_equal(arrpc__pool_busy(pool), 1); /* queued, not run */
    allow = 1;
    assert_int_equal(collect(box, pool, 1, seen, 1), 1);
    assert_int_equal(job.ran, 1);
    arrpc__pool_free(pool);
    arrpc__mailbox_release(box);
}

static int readable(const arrpc__mailbox *box)
{
    struct pollfd pfd = {.fd = arrpc__mailbox_fd(box), .events = POLLIN};
    return poll(&pfd, 1, 0) == 1;
}

static unsigned count_mail(arrpc__mail *m)
{
    unsigned n = 0;
    for (; m; m = m->next)
        n++;
    return n;
}

/* Quiet posts do not wake the loop, but say since when they wait; the next plain post, or a
 * wake, announces them; taking them clears everything. */
static void test_quiet_posts_wait_for_an_announcement(void **state)
{
    (void)state;
    arrpc__mailbox *box = arrpc__mailbox_new();
    assert_non_null(box);
    arrpc__mail m[4];
    assert_int_equal(arrpc__mailbox_post_quietly(box, &m[0]), 0);
    assert_int_equal(arrpc__mailbox_post_quietly(box, &m[1]), 0);
    assert_false(readable(box));
    assert_true(arrpc__mailbox_unannounced_since(box) > 0);
    assert_int_equal(arrpc__mailbox_post(box, &m[2]), 0); /* the list was not empty: still wakes */
    assert_true(readable(box));
    assert_int_equal(arrpc__mailbox_unannounced_since(box), 0);
    assert_int_equal(count_mail(arrpc__mailbox_take(box)), 3);
    assert_false(readable(box));
    assert_int_equal(arrpc__mailbox_post_quietly(box, &m[3]), 0);
    assert_false(readable(box));
    arrpc__mailbox_wake(box);
    assert_true(readable(box));
    assert_int_equal(count_mail(arrpc__mailbox_take(box)), 1);
    assert_int_equal(arrpc__mailbox_unannounced_since(box), 0);
    arrpc__mailbox_wake(box); /* nothing unannounced: no wake-up */
    assert_false(readable(box));
    arrpc__mailbox_release(box);
}

/* Freeing the pool runs what was queued first: no job is lost at a worker's clean exit. */
static void test_free_runs_the_queue_first(void **state)
{
    (void)state;
    enum { JOBS = 300 };
    arrpc__mailbox *box = arrpc__mailbox_new();
    assert_non_null(box);
    arrpc__pool *pool = arrpc__pool_new(1, box, NULL);
    assert_non_null(pool);
    test_job jobs[JOBS];
    unsigned seen[JOBS] = {0};
    for (unsigned i = 0; i < JOBS; i++) {
        jobs[i] = (test_job){.job.run = run_counting, .id = i};
        arrpc__pool_submit(pool, &jobs[i].job);
    }
    arrpc__pool_free(pool);
    assert_int_equal(collect(box, NULL, JOBS, seen, JOBS), JOBS);
    for (unsigned i = 0; i < JOBS; i++)
        assert_int_equal(jobs[i].ran, 1);
    arrpc__mailbox_release(box);
}

static void test_thread_counts_out_of_range_are_refused(void **state)
{
    (void)state;
    arrpc__mailbox *box = arrpc__mailbox_new();
    assert_non_null(box);
    assert_null(arrpc__pool_new(0, box, NULL));
    assert_null(arrpc__pool_new(ARRPC_MAX_THREADS + 1, box, NULL));
    arrpc__mailbox_release(box);
}

/* ---- the mailbox alone -------------------------------------------------------------------- */

#define POSTERS 4
#define POSTS 5000

typedef struct {
    arrpc__mail mail;
    unsigned poster, seq;
} numbered;

typedef struct {
    arrpc__mailbox *box;
    numbered *items;
    unsigned poster;
} poster_arg;

static void *poster(void *arg)
{
    poster_arg *a = arg;
    for (unsigned i = 0; i < POSTS; i++) {
        a->items[i] = (numbered){.poster = a->poster, .seq = i};
        arrpc__mailbox_post(a->box, &a->items[i].mail);
    }
    return NULL;
}

static void test_posts_from_many_threads_all_arrive_in_each_threads_order(void **state)
{
    (void)state;
    arrpc__mailbox *box = arrpc__mailbox_new();
    assert_non_null(box);
    pthread_t threads[POSTERS];
    poster_arg args[POSTERS];
    numbered *items = calloc(POSTERS * POSTS, sizeof *items);
    assert_non_null(items);
    for (unsigned p = 0; p < POSTERS; p++) {
        args[p] = (poster_arg){box, items + p * POSTS, p};
        assert_int_equal(pthread_create(&threads[p], NULL, poster, &args[p]), 0);
    }
    unsigned next[POSTERS] = {0}, got = 0, out_of_order = 0;
    while (got < POSTERS * POSTS) {
        struct pollfd pfd = {.fd = arrpc__mailbox_fd(box), .events = POLLIN};
        if (poll(&pfd, 1, WAIT_MS) <= 0) break; /* a lost wake-up ends here and fails below */
        for (arrpc__mail *m = arrpc__mailbox_take(box); m; m = m->next) {
            numbered *n = (numbered *)m;
            out_of_order += n->seq != next[n->poster];
            next[n->poster] = n->seq + 1;
            got++;
        }
    }
    for (unsigned p = 0; p < POSTERS; p++)
        pthread_join(threads[p], NULL);
    assert_int_equal(got, POSTERS * POSTS);
    assert_int_equal(out_of_order, 0);
    assert_null(arrpc__mailbox_take(box));
    /* Once closed, a post is refused and stays the poster's; the close returns what waited. */
    numbered late = {.poster = 0};
    assert_int_equal(arrpc__mailbox_post(box, &items[0].mail), 0);
    assert_ptr_equal(arrpc__mailbox_close(box), &items[0].mail);
    assert_int_equal(arrpc__mailbox_post(box, &late.mail), ARRPC_ECLOSED);
    arrpc__mailbox_hold(box); /* a late poster's reference outlives the loop's */
    arrpc__mailbox_release(box);
    assert_int_equal(arrpc__mailbox_post(box, &late.mail), ARRPC_ECLOSED);
    arrpc__mailbox_release(box);
    free(items);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_job_runs_once_and_comes_back_once),
        cmocka_unit_test(test_jobs_run_in_parallel),
        cmocka_unit_test(test_a_wake_check_that_says_no_keeps_threads_asleep),
        cmocka_unit_test(test_quiet_posts_wait_for_an_announcement),
        cmocka_unit_test(test_free_runs_the_queue_first),
        cmocka_unit_test(test_thread_counts_out_of_range_are_refused),
        cmocka_unit_test(test_posts_from_many_threads_all_arrive_in_each_threads_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
