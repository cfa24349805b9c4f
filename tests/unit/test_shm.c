/* test_shm.c -- the shared segment (shm/segment.c): creating and attaching it, folding a dead
 * worker's counts into the retired totals, summing, the busy stamps; and the two races the
 * segment is built for: a fold racing a sum (the seqlock), and two masters claiming one record
 * with a compare-and-swap, in two processes on a real shared mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "metrics/metrics.h"
#include "shm/segment.h"

#define ADDR "10.0.0.1"

typedef struct {
    arrpc__shm *shm;
    int fd;
} segment;

static int segment_new(void **state)
{
    segment *s = calloc(1, sizeof *s);
    if (!s) return -1;
    s->shm = arrpc__shm_create(&s->fd);
    *state = s;
    return s->shm ? 0 : -1;
}

static int segment_free(void **state)
{
    segment *s = *state;
    arrpc__shm_unmap(s->shm);
    close(s->fd);
    free(s);
    return 0;
}

/* Every request counted in a block, all rows and series. */
static uint64_t requests_in(const arrpc__metrics *m)
{
    uint64_t n = 0;
    for (uint32_t r = 0; r <= m->addrs; r++)
        for (int sig = 0; sig < 2; sig++)
            for (int tls = 0; tls < 2; tls++)
                n += atomic_load(&m->row[r].series[sig][tls].requests);
    return n;
}

static uint64_t sum_requests(const arrpc__shm *shm, uint32_t *connections)
{
    arrpc__metrics *sum = arrpc__metrics_new(ARRPC_METRICS_ADDRS);
    assert_non_null(sum);
    uint32_t c = 0;
    assert_int_equal(arrpc__shm_sum(shm, sum, &c), 0); /* no fold under way: always exact */
    if (connections) *connections = c;
    uint64_t n = requests_in(sum);
    free(sum);
    return n;
}

/* A worker's life as the master and the worker see it: a claimed record, `n` requests counted. */
static void worker_serves(arrpc__shm_worker *w, uint64_t n)
{
    arrpc__metrics_reset(arrpc__shm_metrics(w->metrics));
    uint32_t row = arrpc__metrics_row_for(arrpc__shm_metrics(w->metrics), ADDR);
    for (uint64_t i = 0; i < n; i++)
        arrpc__metrics_count_request(arrpc__shm_metrics(w->metrics), row, 0, 0, 1000, 10);
    atomic_store(&w->state, ARRPC_WORKER_READY);
}

/* ---- creating and attaching --------------------------------------------------------------- */

static void test_a_new_segment_is_stamped_and_free(void **state)
{
    segment *s = *state;
    assert_true(s->fd >= 0);
    assert_int_equal(s->shm->magic, ARRPC_SHM_MAGIC);
    assert_int_equal(s->shm->version, ARRPC_SHM_VERSION);
    assert_int_equal(s->shm->records, ARRPC_SHM_RECORDS);
    assert_int_equal(atomic_load(&s->shm->area[0].fold_seq), 0);
    assert_int_equal(atomic_load(&s->shm->area[1].fold_seq), 0);
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++)
        assert_int_equal(atomic_load(&s->shm->worker[r].state), ARRPC_WORKER_FREE);
    assert_int_equal(sum_requests(s->shm, NULL), 0);
    /* Records never share a cache line. */
    assert_int_equal(offsetof(arrpc__shm, worker) % ARRPC_CACHE_LINE, 0);
    assert_int_equal(sizeof(arrpc__shm_worker) % ARRPC_CACHE_LINE, 0);
}

/* What the next master maps from the handed-over fd is the same memory. */
static void test_attach_maps_the_same_segment(void **state)
{
    segment *s = *state;
    arrpc__shm *other = arrpc__shm_attach(s->fd);
    assert_non_null(other);
    assert_ptr_not_equal(other, s->shm);
    atomic_store(&other->worker[3].pid, 4242);
    assert_int_equal(atomic_load(&s->shm->worker[3].pid), 4242);
    arrpc__shm_unmap(other);
}

static void test_attach_refuses_what_is_not_a_segment(void **state)
{
    segment *s = *state;
    int small = memfd_create("not-a-segment", MFD_CLOEXEC);
    assert_true(small >= 0);
    assert_int_equal(ftruncate(small, 4096), 0);
    assert_null(arrpc__shm_attach(small));
    close(small);
    s->shm->version = ARRPC_SHM_VERSION + 1; /* a segment of another layout */
    assert_null(arrpc__shm_attach(s->fd));
    s->shm->version = ARRPC_SHM_VERSION;
    s->shm->magic = 0;
    assert_null(arrpc__shm_attach(s->fd));
}

/* ---- folding and summing ------------------------------------------------------------------ */

/* The sum is both areas plus every record in use; a free record's leftovers do not count. */
static void test_sum_counts_areas_and_live_records(void **state)
{
    segment *s = *state;
    worker_serves(&s->shm->worker[0], 3);
    worker_serves(&s->shm->worker[5], 4);
    atomic_store(&arrpc__shm_metrics(s->shm->worker[5].metrics)->connections, 2);
    arrpc__metrics_count_request(
        arrpc__shm_metrics(s->shm->area[1].retired),
        arrpc__metrics_row_for(arrpc__shm_metrics(s->shm->area[1].retired), ADDR), 1, 1, 1, 1);
    arrpc__metrics_count_request(arrpc__shm_metrics(s->shm->worker[9].metrics), 0, 0, 0, 1, 1);
    /* worker 9 is FREE: left over, not counted */
    uint32_t connections = 0;
    assert_int_equal(sum_requests(s->shm, &connections), 3 + 4 + 1);
    assert_int_equal(connections, 2);
}

/* A fold moves a record's counts into the area: the sum stays the same, the record is free and
 * zeroed, and the seqlock is even again, two steps on. */
static void test_fold_moves_counts_into_the_retired_totals(void **state)
{
    segment *s = *state;
    arrpc__shm_worker *w = &s->shm->worker[2];
    worker_serves(w, 5);
    worker_serves(&s->shm->worker[7], 1);
    atomic_store(&arrpc__shm_metrics(w->metrics)->connections, 1);
    arrpc__shm_busy_begin(w, 0);
    uint64_t before = sum_requests(s->shm, NULL);
    arrpc__shm_fold(s->shm, 1, 2);
    assert_int_equal(sum_requests(s->shm, NULL), before);
    assert_int_equal(requests_in(arrpc__shm_metrics(s->shm->area[1].retired)), 5);
    assert_int_equal(requests_in(arrpc__shm_metrics(s->shm->area[0].retired)), 0);
    assert_int_equal(atomic_load(&w->state), ARRPC_WORKER_FREE);
    assert_int_equal(arrpc__shm_busy_oldest(w), 0);
    assert_int_equal(requests_in(arrpc__shm_metrics(w->metrics)), 0);
    assert_int_equal(atomic_load(&arrpc__shm_metrics(w->metrics)->rows), 0);
    assert_int_equal(atomic_load(&s->shm->area[1].fold_seq), 2); /* the folding area's own */
    assert_int_equal(atomic_load(&s->shm->area[0].fold_seq), 0);
    uint32_t connections = 1;
    sum_requests(s->shm, &connections);
    assert_int_equal(connections, 0); /* a dead worker's gauge counts as zero */
}

/* Record after record served and folded, into one area and the other: the total only grows. */
static void test_counts_never_go_backwards_across_folds(void **state)
{
    segment *s = *state;
    uint64_t last = 0, served = 0;
    for (unsigned i = 0; i < 50; i++) {
        unsigned record = i % 3;
        worker_serves(&s->shm->worker[record], i + 1);
        served += i + 1;
        uint64_t now = sum_requests(s->shm, NULL);
        assert_true(now >= last);
        last = now;
        arrpc__shm_fold(s->shm, i % 2, record);
        assert_int_equal(sum_requests(s->shm, NULL), served);
    }
    assert_int_equal(atomic_load(&s->shm->area[0].fold_seq), 50);
    assert_int_equal(atomic_load(&s->shm->area[1].fold_seq), 50);
}

static void test_busy_stamps(void **state)
{
    segment *s = *state;
    arrpc__shm_worker *w = &s->shm->worker[0];
    uint64_t before = arrpc__shm_clock_ms();
    arrpc__shm_busy_begin(w, 0);
    uint64_t since = arrpc__shm_busy_oldest(w);
    assert_true(since != 0);
    assert_true(since >= before && since <= arrpc__shm_clock_ms());
    arrpc__shm_busy_end(w, 0);
    assert_int_equal(arrpc__shm_busy_oldest(w), 0);
    /* Handler threads have stamps of their own: the oldest running call is the one that counts,
     * and the loop's stamp ending does not hide a thread that is still busy. */
    atomic_store(&w->busy_since_ms[5], 1000);
    atomic_store(&w->busy_since_ms[ARRPC_SHM_BUSY_STAMPS - 1], 900);
    arrpc__shm_busy_begin(w, 0);
    arrpc__shm_busy_end(w, 0);
    assert_int_equal(arrpc__shm_busy_oldest(w), 900);
    arrpc__shm_busy_clear(w);
    assert_int_equal(arrpc__shm_busy_oldest(w), 0);
}

static void test_cause_labels(void **state)
{
    (void)state;
    static const char *const expected[] = {"crash", "timeout", "start_failure", "reload",
                                           "recycle"};
    assert_int_equal(ARRPC_CAUSE_COUNT, sizeof expected / sizeof expected[0]);
    for (unsigned c = 0; c < ARRPC_CAUSE_COUNT; c++)
        assert_string_equal(arrpc__cause_label[c], expected[c]);
}

/* ---- a fold racing a sum ------------------------------------------------------------------ */

#define RACE_RECORDS 4u
#define RACE_FOLDS 3000u
/* Under valgrind (ARRPC_TEST_UNDER_VALGRIND, set by tests/unit/CMakeLists.txt) threads run one at
 * a time and the summer, which never waited, starved the folder: 3000 folds took from 30 s to
 * past the 300 s timeout. The summer now yields after each sum, and fewer folds run there. */
#define RACE_FOLDS_UNDER_VALGRIND 200u

static unsigned race_folds(void)
{
    return getenv("ARRPC_TEST_UNDER_VALGRIND") ? RACE_FOLDS_UNDER_VALGRIND : RACE_FOLDS;
}

/* The folder publishes how many requests it has counted; the summer, how many sums it has done.
 * The folder waits for a sum after each fold, so that folds and sums interleave closely. */
typedef struct {
    arrpc__shm *shm;
    _Atomic uint64_t started; /* requests a worker has begun to count */
    _Atomic uint64_t served;  /* requests counted in full */
    _Atomic uint64_t sums;
    _Atomic int done;
    /* What the threads found; checked by the test's thread (cmocka asserts only there). */
    uint64_t bad_backwards, bad_double, bad_lost, bad_claims, checked, refused;
} race;

static void wait_for_a_sum(race *r)
{
    uint64_t seen = atomic_load(&r->sums);
    while (atomic_load(&r->sums) < seen + 2)
        sched_yield();
}

/* The master's side: fold a record, give it to a new worker that serves one request. */
static void *folder(void *arg)
{
    race *r = arg;
    for (unsigned i = 0, folds = race_folds(); i < folds; i++) {
        unsigned record = i % RACE_RECORDS;
        wait_for_a_sum(r);
        arrpc__shm_fold(r->shm, i % 2, record);
        uint32_t free_state = ARRPC_WORKER_FREE;
        r->bad_claims += !atomic_compare_exchange_strong(&r->shm->worker[record].state, &free_state,
                                                         ARRPC_WORKER_STARTING);
        atomic_fetch_add(&r->started, 1);
        worker_serves(&r->shm->worker[record], 1);
        atomic_fetch_add(&r->served, 1);
    }
    atomic_store(&r->done, 1);
    return NULL;
}

/* The scraper's side: a sum that says it is exact holds every request served before it began
 * and none twice (never more than were started when it ended), and never less than the last
 * exact sum. A sum may refuse (a fold held open past ARRPC_SHM_SUM_WAIT_MS, which a descheduled
 * folding thread can do on a loaded machine): refusals are counted, never checked as sums. */
static void *summer(void *arg)
{
    race *r = arg;
    arrpc__metrics *sum = arrpc__metrics_new(ARRPC_METRICS_ADDRS);
    uint64_t last = 0;
    uint32_t connections;
    if (!sum) abort();
    while (!atomic_load(&r->done)) {
        uint64_t before = atomic_load(&r->served);
        int rc = arrpc__shm_sum(r->shm, sum, &connections);
        uint64_t total = requests_in(sum), after = atomic_load(&r->started);
        atomic_fetch_add(&r->sums, 1);
        if (rc != 0) {
            r->refused++;
            continue;
        }
        r->bad_backwards += total < last;
        r->bad_lost += total < before;
        r->bad_double += total > after;
        r->checked++;
        last = total;
        sched_yield(); /* let the folder in: under valgrind, threads run one at a time */
    }
    free(sum);
    return NULL;
}

static void test_a_fold_racing_a_sum_never_loses_or_doubles(void **state)
{
    segment *s = *state;
    race r = {.shm = s->shm};
    for (unsigned record = 0; record < RACE_RECORDS; record++) {
        worker_serves(&s->shm->worker[record], 1);
        atomic_fetch_add(&r.started, 1);
        atomic_fetch_add(&r.served, 1);
    }
    pthread_t a, b;
    assert_int_equal(pthread_create(&b, NULL, summer, &r), 0);
    assert_int_equal(pthread_create(&a, NULL, folder, &r), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    print_message("%llu exact sums checked against %u folds; %llu refused\n",
                  (unsigned long long)r.checked, race_folds(), (unsigned long long)r.refused);
    assert_int_equal(r.bad_backwards, 0);
    assert_int_equal(r.bad_lost, 0);
    assert_int_equal(r.bad_double, 0);
    assert_int_equal(r.bad_claims, 0);
    assert_true(r.checked >= race_folds());
    assert_int_equal(sum_requests(s->shm, NULL), RACE_RECORDS + race_folds());
}

/* A master killed between the two steps of a fold leaves its area's fold_seq odd for good: a
 * sum comes back within its wait and says it is not exact, in either area. */
static void test_a_fold_left_open_refuses_the_sum_without_stalling(void **state)
{
    segment *s = *state;
    arrpc__metrics *sum = arrpc__metrics_new(ARRPC_METRICS_ADDRS);
    assert_non_null(sum);
    uint32_t connections;
    worker_serves(&s->shm->worker[1], 2);
    for (unsigned a = 0; a < 2; a++) {
        atomic_store(&s->shm->area[a].fold_seq, 7);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        assert_int_equal(arrpc__shm_sum(s->shm, sum, &connections), ARRPC_ETIMEOUT);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        assert_true(t1.tv_sec - t0.tv_sec < 5); /* bounded: not a hang (not a timing check) */
        atomic_store(&s->shm->area[a].fold_seq, 8);
    }
    free(sum);
    assert_int_equal(sum_requests(s->shm, NULL), 2);
}

/* Two masters fold at once during an upgrade, one into each area: each area has its own
 * sequence, so the two odd steps cannot cancel out into an even one a reader would trust. */
static void test_two_folds_at_once_are_both_seen(void **state)
{
    segment *s = *state;
    arrpc__metrics *sum = arrpc__metrics_new(ARRPC_METRICS_ADDRS);
    assert_non_null(sum);
    uint32_t connections;
    atomic_store(&s->shm->area[0].fold_seq, 1);
    atomic_store(&s->shm->area[1].fold_seq, 1);
    assert_int_equal(arrpc__shm_sum(s->shm, sum, &connections), ARRPC_ETIMEOUT);
    atomic_store(&s->shm->area[0].fold_seq, 2);
    assert_int_equal(arrpc__shm_sum(s->shm, sum, &connections), ARRPC_ETIMEOUT);
    atomic_store(&s->shm->area[1].fold_seq, 2);
    assert_int_equal(arrpc__shm_sum(s->shm, sum, &connections), 0);
    free(sum);
}

/* ---- two claimers of one record ----------------------------------------------------------- */

#define CLAIM_ROUNDS 2000u
#define CLAIMERS 2

/* Shared by the parent and the claimers, outside the segment. */
typedef struct {
    _Atomic uint32_t round;
    _Atomic uint32_t ready[CLAIM_ROUNDS + 1];
    _Atomic uint32_t tried[CLAIM_ROUNDS + 1];
    _Atomic uint32_t won[CLAIM_ROUNDS + 1];
    _Atomic uint32_t winner[CLAIM_ROUNDS + 1];
} claim_board;

/* One claimer, as a second master would: its own mapping of the segment from the fd, the
 * compare-and-swap master/spawn.c's claim_row does on each round's record. */
static void claimer(int fd, claim_board *board, uint32_t id)
{
    arrpc__shm *shm = arrpc__shm_attach(fd);
    if (!shm) _exit(2);
    for (uint32_t round = 1; round <= CLAIM_ROUNDS; round++) {
        atomic_fetch_add(&board->ready[round], 1);
        /* Spin hard so that both claimers try at once; yield now and then for a busy machine. */
        for (unsigned spins = 1; atomic_load(&board->round) < round; spins++)
            if (spins % 100000 == 0) sched_yield();
        uint32_t free_state = ARRPC_WORKER_FREE;
        if (atomic_compare_exchange_strong(&shm->worker[round % ARRPC_SHM_RECORDS].state,
                                           &free_state, ARRPC_WORKER_STARTING)) {
            atomic_fetch_add(&board->won[round], 1);
            atomic_store(&board->winner[round], id);
        }
        atomic_fetch_add(&board->tried[round], 1);
    }
    arrpc__shm_unmap(shm);
    _exit(0);
}

/* Each round the parent frees the record with a fold, as when its worker exited, waits for both
 * claimers to be spinning, and lets them go at once: exactly one of them gets it, every time. */
static void test_two_claimers_one_winner(void **state)
{
    segment *s = *state;
    claim_board *board =
        mmap(NULL, sizeof *board, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(board != MAP_FAILED);
    for (uint32_t r = 0; r < ARRPC_SHM_RECORDS; r++)
        atomic_store(&s->shm->worker[r].state, ARRPC_WORKER_READY);
    pid_t pid[CLAIMERS];
    for (uint32_t c = 0; c < CLAIMERS; c++) {
        pid[c] = fork();
        assert_true(pid[c] >= 0);
        if (pid[c] == 0) claimer(s->fd, board, c + 1);
    }
    uint32_t wins[CLAIMERS + 1] = {0}, bad = 0;
    for (uint32_t round = 1; round <= CLAIM_ROUNDS; round++) {
        arrpc__shm_fold(s->shm, 0, round % ARRPC_SHM_RECORDS);
        while (atomic_load(&board->ready[round]) < CLAIMERS)
            sched_yield();
        atomic_store(&board->round, round);
        while (atomic_load(&board->tried[round]) < CLAIMERS)
            sched_yield();
        bad += atomic_load(&board->won[round]) != 1;
        wins[atomic_load(&board->winner[round])]++;
        assert_int_equal(atomic_load(&s->shm->worker[round % ARRPC_SHM_RECORDS].state),
                         ARRPC_WORKER_STARTING);
    }
    for (uint32_t c = 0; c < CLAIMERS; c++) {
        int status = 0;
        assert_int_equal(waitpid(pid[c], &status, 0), pid[c]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    print_message("%u rounds: claimer 1 won %u, claimer 2 won %u\n", CLAIM_ROUNDS, wins[1],
                  wins[2]);
    assert_int_equal(bad, 0);
    assert_int_equal(wins[0], 0);
    munmap(board, sizeof *board);
}

#define SEGMENT_TEST(f) cmocka_unit_test_setup_teardown(f, segment_new, segment_free)

int main(void)
{
    const struct CMUnitTest tests[] = {
        SEGMENT_TEST(test_a_new_segment_is_stamped_and_free),
        SEGMENT_TEST(test_attach_maps_the_same_segment),
        SEGMENT_TEST(test_attach_refuses_what_is_not_a_segment),
        SEGMENT_TEST(test_sum_counts_areas_and_live_records),
        SEGMENT_TEST(test_fold_moves_counts_into_the_retired_totals),
        SEGMENT_TEST(test_counts_never_go_backwards_across_folds),
        SEGMENT_TEST(test_busy_stamps),
        cmocka_unit_test(test_cause_labels),
        SEGMENT_TEST(test_a_fold_racing_a_sum_never_loses_or_doubles),
        SEGMENT_TEST(test_a_fold_left_open_refuses_the_sum_without_stalling),
        SEGMENT_TEST(test_two_folds_at_once_are_both_seen),
        SEGMENT_TEST(test_two_claimers_one_winner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
