/* calls.c -- handler calls answered out of line: on handler threads, or later through a deferred
 * reply; their replies queued per connection and released in request order (see calls.h). */
#include "calls.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/fast_clock.h"
#include "../core/log.h"
#include "access_log.h"
#include "deferred.h"
#include "pool.h"
#include "rescue.h"
#include "stats.h"

/* One request's reply, in the connection's queue until every earlier one has left. */
typedef struct arrpc__reply {
    struct arrpc__reply *next;
    arrpc__conn *conn;
    int done;
    arrpc__buf bytes;
    arrpc_deferred *deferred; /* while it waits for a deferred answer */
    uint64_t deadline_ms;     /* that answer must come by then; 0: no limit */
    uint64_t started_ns;      /* the request's clock, for its latency */
    size_t request_bytes;
    int is_signed; /* the request came in a verified signature envelope */
} arrpc__reply;

/* One call of a batch: where its request is, and what the handler thread made of it. */
typedef struct {
    arrpc__reply *reply; /* filled by the thread; the loop's again once the job is back */
    size_t offset, len;  /* its request in the job's request buffer */
    uint64_t done_ns;    /* when its handler returned */
    arrpc__outcome outcome;
    arrpc_deferred *deferred;
    int dispatch_rc;
    int is_signed;
} arrpc__batched_call;

/* A connection's calls on their way to a handler thread and back: the whole requests the loop
 * had of it, up to ARRPC_CALLS_BATCH_MAX, run one after the other on one thread. One hand-over
 * per batch instead of per request: a pipelining client (a Python send_batch) no longer pays a
 * wake-up of the thread and one of the loop for every request. */
typedef struct arrpc__call_job {
    arrpc__job job; /* first */
    arrpc__conn *conn;
    arrpc__buf request;      /* copies: the loop's buffers move on while the calls run */
    arrpc__call_context ctx; /* points into the connection, which outlives the running call */
    unsigned ncalls;
    unsigned answered; /* calls the loop has answered already, while the rest ran */
    struct arrpc__call_job *next_batch, *prev_batch; /* loop->batches, while it runs */
    struct arrpc__call_job *next_inline; /* loop->inline_head, till the loop's thread runs it */
    arrpc__batched_call calls[ARRPC_CALLS_BATCH_MAX];
    /* For a crash on any thread (rescue.c), reset by each submit: calls a handler thread has
     * started (JOB_TAKEN_BACK once a rescue took the rest: they never run here, their requests go
     * to the next worker), calls whose results above are written, and the signal the call after
     * those crashed with. */
    _Atomic int started, finished, crashed;
} arrpc__call_job;

static const char *outcome_name[] = {
    [ARRPC_OUTCOME_OK] = "ok",
    [ARRPC_OUTCOME_RPC_ERROR] = "rpc error",
    [ARRPC_OUTCOME_AUTH_ERROR] = "auth error",
    [ARRPC_OUTCOME_INVALID] = "invalid request",
    [ARRPC_OUTCOME_BAD_REPLY] = "invalid reply",
    [ARRPC_OUTCOME_DEFERRED] = "deferred",
};

/* A request's time from its clock's start and stop. Both come from the loop's fast clock, which
 * never goes back; the clamp keeps any other pairing from turning into a huge unsigned time. */
static uint64_t elapsed_ns(uint64_t started_ns, uint64_t done_ns)
{
    return done_ns > started_ns ? done_ns - started_ns : 0;
}

/* One line of the access log; `outcome` is "ok" or the metrics' reason label. */
static void log_request(arrpc__loop *loop, const arrpc__conn *c, const char *outcome, int is_signed,
                        size_t bytes_in, size_t bytes_out, uint64_t started_ns, uint64_t done_ns)
{
    arrpc__access_fields x = {.peer = c->peer,
                              .outcome = outcome,
                              .bytes_in = bytes_in,
                              .bytes_out = bytes_out,
                              .duration_us = elapsed_ns(started_ns, done_ns) / 1000u,
                              .is_signed = is_signed};
    arrpc__access_log_add(loop->access_log, &x, done_ns);
}

/* Counts an answered request, all but its time. */
static void count_untimed(arrpc__loop *loop, arrpc__conn *c, arrpc__outcome outcome, int is_signed,
                          size_t bytes_in)
{
    arrpc__stats_request(loop, c, outcome, is_signed, bytes_in);
    loop->recycle.requests++; /* compared with its bound once per loop iteration */
    if (outcome == ARRPC_OUTCOME_BAD_REPLY && !(c->flags & CONN_WARNED)) {
        arrpc__log("connection from %s: the handler's reply was replaced by an error "
                   "(over --max-message, or not one object); logged once per connection",
                   c->peer);
        c->flags |= CONN_WARNED;
    }
    ARRPC_DEBUG(loop->cfg->debug, "request from %s: %zu bytes, %s", c->peer, bytes_in,
                outcome_name[outcome]);
}

/* Whether a request's time decides the next one's timing: under ARRPC_CLOCK_GROUP_FAST_NS it
 * lengthens the streak of fast requests, otherwise it ends it. */
static void note_time(arrpc__loop *loop, unsigned n, uint64_t ns)
{
    unsigned *streak = &loop->timing.fast_streak;
    if (ns > (uint64_t)n * ARRPC_CLOCK_GROUP_FAST_NS)
        *streak = 0;
    else if (*streak < ARRPC_CLOCK_GROUP_MAX) /* no further: it would only wrap */
        *streak += n;
}

void arrpc__calls_count(arrpc__loop *loop, arrpc__conn *c, arrpc__outcome outcome, int is_signed,
                        size_t bytes_in, size_t bytes_out, uint64_t started_ns, uint64_t done_ns)
{
    count_untimed(loop, c, outcome, is_signed, bytes_in);
    uint64_t ns = elapsed_ns(started_ns, done_ns);
    arrpc__stats_time(loop, c, is_signed, 1, ns);
    note_time(loop, 1, ns);
    if (loop->access_log) {
        arrpc__reason reason = arrpc__stats_reason_of(outcome);
        log_request(loop, c, reason == ARRPC_REASON_COUNT ? "ok" : arrpc__reason_label[reason],
                    is_signed, bytes_in, bytes_out, started_ns, done_ns);
    }
}

/* ---- grouped timing ----------------------------------------------------------------------- */

/* A clock reading per request was 4% of a pipelined worker's CPU where the clock is
 * clock_gettime (a VM's kvm-clock: bench/compare.sh c16 P16, with and without it). Where the
 * request clock is the TSC (fast_clock.h) a reading costs little, and every request is timed. */
static int may_go_untimed(const arrpc__loop *loop)
{
    return loop->timing.fast_streak >= ARRPC_CLOCK_GROUP_MAX && !loop->clock.tsc &&
           !loop->access_log;
}

uint64_t arrpc__calls_time_group(arrpc__loop *loop, arrpc__conn *c, uint64_t since_ns)
{
    uint64_t now = arrpc__fast_clock_ns(&loop->clock);
    unsigned *untimed = loop->timing.untimed, n = arrpc__calls_untimed(loop);
    if (n == 0) return now;
    int last = loop->timing.last_signed;
    uint64_t ns = elapsed_ns(since_ns, now);
    /* A group mixing plain and signed requests (rare: a client signs all or none) gives its time
     * to the last one's series; the others go to the first bucket of their own. */
    if (untimed[!last]) arrpc__stats_time(loop, c, !last, untimed[!last], 0);
    arrpc__stats_time(loop, c, last, untimed[last], ns);
    note_time(loop, n, ns);
    untimed[0] = untimed[1] = 0;
    return now;
}

/* Times a request answered on the fast path from the reading *clock_ns: at once with a new
 * reading, or as one of a group that is timed together once ARRPC_CLOCK_GROUP_MAX requests or
 * the read's end are reached. */
static void time_answered(arrpc__loop *loop, arrpc__conn *c, arrpc__outcome outcome, int is_signed,
                          size_t bytes_in, size_t bytes_out, uint64_t *clock_ns)
{
    if (!may_go_untimed(loop)) {
        uint64_t started_ns = *clock_ns;
        *clock_ns = arrpc__fast_clock_ns(&loop->clock);
        arrpc__calls_count(loop, c, outcome, is_signed, bytes_in, bytes_out, started_ns, *clock_ns);
        return;
    }
    count_untimed(loop, c, outcome, is_signed, bytes_in);
    loop->timing.untimed[is_signed != 0]++;
    loop->timing.last_signed = is_signed != 0;
    if (arrpc__calls_untimed(loop) >= ARRPC_CLOCK_GROUP_MAX)
        *clock_ns = arrpc__calls_time_group(loop, c, *clock_ns);
}

/* ---- the reply queue ---------------------------------------------------------------------- */

/* Freed replies kept for the next ones, with their buffers: a reply per request would otherwise
 * be a calloc, a malloc and two frees (perf: a tenth of a worker's time with pipelined calls on
 * the loop's thread). Bounded in number and in the buffer each keeps. */
#define ARRPC_SPARE_REPLIES_MAX 256u
#define ARRPC_SPARE_REPLY_BYTES_MAX 4096u

static arrpc__reply *queue_reply(arrpc__loop *loop, arrpc__conn *c, size_t request_bytes,
                                 uint64_t started_ns, int is_signed)
{
    arrpc__reply *r = loop->spare_replies;
    if (r) {
        loop->spare_replies = r->next;
        loop->nspare_replies--;
        arrpc__buf kept = r->bytes;
        kept.head = kept.len = 0;
        *r = (arrpc__reply){.bytes = kept};
    } else if (!(r = calloc(1, sizeof *r))) {
        return NULL;
    }
    r->conn = c;
    r->request_bytes = request_bytes;
    r->started_ns = started_ns;
    r->is_signed = is_signed;
    if (c->replies_tail)
        c->replies_tail->next = r;
    else
        c->replies = r;
    c->replies_tail = r;
    c->nreplies++;
    return r;
}

static void free_reply(arrpc__loop *loop, arrpc__reply *r)
{
    if (loop->nspare_replies < ARRPC_SPARE_REPLIES_MAX &&
        r->bytes.cap <= ARRPC_SPARE_REPLY_BYTES_MAX) {
        r->next = loop->spare_replies;
        loop->spare_replies = r;
        loop->nspare_replies++;
        return;
    }
    arrpc__buf_free(&r->bytes);
    free(r);
}

/* Marks r answered and counts it, its clock stopped at done_ns. */
static void finish_reply_at(arrpc__loop *loop, arrpc__reply *r, arrpc__outcome outcome,
                            uint64_t done_ns)
{
    r->done = 1;
    arrpc__calls_count(loop, r->conn, outcome, r->is_signed, r->request_bytes,
                       arrpc__buf_used(&r->bytes), r->started_ns, done_ns);
}

static void finish_reply(arrpc__loop *loop, arrpc__reply *r, arrpc__outcome outcome)
{
    finish_reply_at(loop, r, outcome, arrpc__fast_clock_ns(&loop->clock));
}

/* Moves the answered replies at the head of c's queue to its output, in order. */
static void release_replies(arrpc__loop *loop, arrpc__conn *c)
{
    while (c->replies && c->replies->done) {
        arrpc__reply *r = c->replies;
        if (arrpc__buf_append(&c->out, r->bytes.data + r->bytes.head, arrpc__buf_used(&r->bytes)))
            c->flags |= CONN_CLOSE; /* no memory for the output: the stream cannot go on */
        c->replies = r->next;
        if (!c->replies) c->replies_tail = NULL;
        c->nreplies--;
        free_reply(loop, r);
    }
    arrpc__conn_queue_flush(loop, c);
}

/* Fills r from an error text, for a call that cannot be answered otherwise. */
static void fail_reply(arrpc__loop *loop, arrpc__reply *r, const char *text)
{
    arrpc__buf_truncate(&r->bytes, 0);
    arrpc__dispatch_rpc_error(&r->bytes, text);
    finish_reply(loop, r, ARRPC_OUTCOME_RPC_ERROR);
}

/* ---- deferred answers --------------------------------------------------------------------- */

static void detach(arrpc__loop *loop, arrpc__reply *r)
{
    r->deferred->slot = NULL;
    r->deferred->detached = 1;
    r->deferred = NULL;
    loop->ndeferred--;
}

static void keep_answered(arrpc__loop *loop, arrpc_deferred *d);

/* r takes d's answer: the bytes the answering thread packed, checked like an inline reply. */
static void take_answer(arrpc__loop *loop, arrpc__reply *r, arrpc_deferred *d)
{
    detach(loop, r);
    arrpc__buf_truncate(&r->bytes, 0);
    arrpc__outcome outcome = ARRPC_OUTCOME_BAD_REPLY;
    if (arrpc__buf_append(&r->bytes, d->reply.data + d->reply.head, arrpc__buf_used(&d->reply)) ==
        0)
        outcome = arrpc__dispatch_check_reply(loop->dispatcher, &r->bytes, 0);
    if (arrpc__buf_used(&d->reply) == 0) /* the answering thread ran out of memory */
        fail_reply(loop, r, "the deferred reply was lost (out of memory)");
    else
        finish_reply(loop, r, outcome);
    keep_answered(loop, d);
}

/* A deferred call's reply now waits in r for its answer, which must come within the handler
 * timeout. On a handler thread the plugin may answer before the thread returns: the answer is
 * then already here, and r takes it at once. The caller releases r. */
static void wait_for_answer(arrpc__loop *loop, arrpc__reply *r, arrpc_deferred *d)
{
    r->deferred = d;
    d->slot = r;
    unsigned limit = loop->cfg->handler_timeout_ms;
    r->deadline_ms = limit ? loop->now_ms + limit : 0;
    loop->ndeferred++;
    if (d->arrived) take_answer(loop, r, d);
}

/* An answered handle is kept (not freed) for a while, so that a second answer to it finds it
 * answered instead of memory that serves another call. */
static void keep_answered(arrpc__loop *loop, arrpc_deferred *d)
{
    arrpc__buf_free(&d->reply);
    d->next_kept = NULL;
    if (loop->kept_tail)
        loop->kept_tail->next_kept = d;
    else
        loop->kept = d;
    loop->kept_tail = d;
    if (++loop->nkept <= ARRPC_DEFERRED_QUARANTINE) return;
    arrpc_deferred *oldest = loop->kept;
    loop->kept = oldest->next_kept;
    loop->nkept--;
    arrpc__deferred_free(oldest);
}

static void on_answer(arrpc__loop *loop, arrpc_deferred *d)
{
    d->arrived = 1;
    arrpc__reply *r = d->slot; /* a reply lives as long as its connection */
    if (!r) {
        if (d->detached) keep_answered(loop, d); /* timed out or closed: dropped */
        return; /* else its handler thread has not returned yet: wait_for_answer takes it */
    }
    arrpc__conn *c = r->conn;
    arrpc__loop_mark_busy(loop, c);
    take_answer(loop, r, d);
    release_replies(loop, c);
    if (!arrpc__calls_blocked(c)) arrpc__conn_answer_buffered(loop, c);
    arrpc__loop_mark_busy(loop, NULL);
}

void arrpc__calls_expire(arrpc__loop *loop, arrpc__conn *c)
{
    int any = 0;
    for (arrpc__reply *r = c->replies; r; r = r->next) {
        if (!r->deferred || !r->deadline_ms || loop->now_ms < r->deadline_ms) continue;
        arrpc__log("connection from %s: a deferred call was not answered in %u ms "
                   "(--handler-timeout); its client gets an error",
                   c->peer, loop->cfg->handler_timeout_ms);
        detach(loop, r);
        fail_reply(loop, r, "handler timed out");
        any = 1;
    }
    if (!any) return;
    release_replies(loop, c);
    if (!arrpc__calls_blocked(c)) arrpc__conn_answer_buffered(loop, c);
}

void arrpc__calls_conn_free(arrpc__loop *loop, arrpc__conn *c)
{
    while (c->replies) {
        arrpc__reply *r = c->replies;
        c->replies = r->next;
        if (r->deferred) detach(loop, r);
        free_reply(loop, r);
    }
    c->replies_tail = NULL;
    c->nreplies = 0;
    if (c->job) arrpc__buf_free(&c->job->request);
    free(c->job);
    c->job = NULL;
}

/* ---- handler threads ---------------------------------------------------------------------- */

enum { JOB_TAKEN_BACK = -1 };

/* clock: the running seat's (lead.h), when the loop's owner runs the call; NULL on a handler
 * thread. */
static void run_call(arrpc__call_job *j, arrpc__batched_call *call, arrpc__dispatcher *d,
                     arrpc__fast_clock *clock)
{
    call->dispatch_rc = arrpc__dispatch(d, &j->ctx, j->request.data + call->offset, call->len,
                                        &call->reply->bytes, &call->outcome);
    call->deferred =
        call->outcome == ARRPC_OUTCOME_DEFERRED ? arrpc__dispatcher_take_deferred(d) : NULL;
    call->is_signed = arrpc__dispatcher_last_signed(d);
    call->done_ns = clock ? arrpc__fast_clock_ns(clock) : arrpc__clock_ns();
}

/* Runs j's calls in order with d, as rescue slot `slot` (a handler thread's index, or the loop's
 * owner's, lead.h, which passes its seat's clock). */
static void run_batch(arrpc__call_job *j, arrpc__dispatcher *d, unsigned slot,
                      arrpc__fast_clock *clock)
{
    arrpc__rescue_thread_call(slot, j);
    for (int i = 0; i < (int)j->ncalls; i++) {
        int expected = i;
        if (!atomic_compare_exchange_strong(&j->started, &expected, i + 1))
            break; /* a crash took the rest back: the worker is ending, the next one runs them */
        run_call(j, &j->calls[i], d, clock);
        atomic_store_explicit(&j->finished, i + 1, memory_order_release); /* after its results */
    }
    arrpc__rescue_thread_call(slot, NULL);
}

static void run_job(arrpc__job *job, unsigned thread, void *arg)
{
    run_batch((arrpc__call_job *)job, ((arrpc__dispatcher **)arg)[thread], thread, NULL);
}

/* The loop looks at running batches this long after the first was submitted, and after each look
 * twice as long as before, up to ARRPC_CALLS_LOOK_GAP_MAX_NS: a batch of calls that compute is
 * back before the first look, and one held by a call that waits costs a few wake-ups. */
#define ARRPC_CALLS_LOOK_FIRST_NS 100000u
#define ARRPC_CALLS_LOOK_GAP_MAX_NS 1000000u

static void batch_list_add(arrpc__loop *loop, arrpc__call_job *j)
{
    if (!loop->batches) {
        loop->batch_look_gap_ns = ARRPC_CALLS_LOOK_FIRST_NS;
        loop->batch_look_at_ns = arrpc__clock_ns() + ARRPC_CALLS_LOOK_FIRST_NS;
    }
    j->prev_batch = NULL;
    j->next_batch = loop->batches;
    if (loop->batches) loop->batches->prev_batch = j;
    loop->batches = j;
}

static void batch_list_remove(arrpc__loop *loop, arrpc__call_job *j)
{
    if (j->prev_batch)
        j->prev_batch->next_batch = j->next_batch;
    else if (loop->batches == j)
        loop->batches = j->next_batch;
    if (j->next_batch) j->next_batch->prev_batch = j->prev_batch;
    j->next_batch = j->prev_batch = NULL;
}

/* The reply of a call back from its handler thread, counted with the time its handler returned:
 * read on that thread with arrpc__clock_ns, against a start on the loop's fast clock, which
 * agrees with it to well under a microsecond (core/fast_clock.h; elapsed_ns clamps). */
static void settle_call(arrpc__loop *loop, const arrpc__batched_call *call)
{
    arrpc__reply *r = call->reply;
    r->is_signed = call->is_signed;
    if (call->dispatch_rc != 0) {
        fail_reply(loop, r, "out of memory");
    } else if (call->deferred) {
        wait_for_answer(loop, r, call->deferred);
    } else {
        finish_reply_at(loop, r, call->outcome, call->done_ns);
    }
}

/* Answers the calls of j from the first not yet answered up to `upto`. An answered call's reply
 * may leave (and be freed) at once: its pointer is cleared, so that no later reply that happens
 * to get its address passes for it (arrpc__calls_rescue_replies). */
static void answer_batched(arrpc__loop *loop, arrpc__call_job *j, unsigned upto)
{
    for (; j->answered < upto; j->answered++) {
        settle_call(loop, &j->calls[j->answered]);
        j->calls[j->answered].reply = NULL;
    }
}

/* The sooner of two dues in ns (-1: none). */
static int64_t sooner(int64_t a, int64_t b)
{
    return a < 0 || (b >= 0 && b < a) ? b : a;
}

static int64_t until(uint64_t at, uint64_t now)
{
    return now >= at ? 0 : (int64_t)(at - now);
}

int64_t arrpc__calls_due_ns(arrpc__loop *loop)
{
    int64_t due = arrpc__pool_nudge_due_ns(loop->pool);
    uint64_t quiet = arrpc__mailbox_unannounced_since(loop->mailbox);
    if (!loop->batches && !quiet) return due;
    uint64_t now = arrpc__clock_ns();
    if (quiet) due = sooner(due, until(quiet + ARRPC_POOL_QUIET_NS, now));
    return loop->batches ? sooner(due, until(loop->batch_look_at_ns, now)) : due;
}

/* Finished calls of batches still running, once their look is due. */
static void look_at_batches(arrpc__loop *loop)
{
    uint64_t now = arrpc__clock_ns();
    if (!loop->batches || now < loop->batch_look_at_ns) return;
    for (arrpc__call_job *j = loop->batches; j; j = j->next_batch) {
        unsigned finished = (unsigned)atomic_load_explicit(&j->finished, memory_order_acquire);
        if (finished <= j->answered) continue;
        arrpc__conn *c = j->conn;
        arrpc__loop_mark_busy(loop, c);
        answer_batched(loop, j, finished);
        release_replies(loop, c);
        arrpc__loop_mark_busy(loop, NULL);
    }
    loop->batch_look_gap_ns = 2 * loop->batch_look_gap_ns < ARRPC_CALLS_LOOK_GAP_MAX_NS
                                  ? 2 * loop->batch_look_gap_ns
                                  : ARRPC_CALLS_LOOK_GAP_MAX_NS;
    loop->batch_look_at_ns = now + loop->batch_look_gap_ns;
}

void arrpc__calls_look(arrpc__loop *loop)
{
    uint64_t quiet = arrpc__mailbox_unannounced_since(loop->mailbox);
    if (quiet && arrpc__clock_ns() - quiet >= ARRPC_POOL_QUIET_NS) arrpc__calls_on_mail(loop);
    look_at_batches(loop);
}

static void on_job_done(arrpc__loop *loop, arrpc__call_job *j)
{
    arrpc__conn *c = j->conn;
    arrpc__loop_mark_busy(loop, c);
    c->running = 0;
    if (j->ncalls > 1) batch_list_remove(loop, j);
    answer_batched(loop, j, j->ncalls);
    j->ncalls = j->answered = 0;
    arrpc__buf_truncate(&j->request, 0);
    release_replies(loop, c);
    if (c->flags & CONN_CLOSE) { /* reaped at the end of this iteration */
        arrpc__loop_mark_busy(loop, NULL);
        return;
    }
    c->request_since_ms = 0; /* a request that waited behind the call starts its clock now */
    arrpc__conn_answer_buffered(loop, c); /* what came while it ran */
    arrpc__conn_refresh_interest(loop, c);
    arrpc__loop_mark_busy(loop, NULL);
}

/* Adds a request of c to the batch its handler thread will run (arrpc__calls_submit). */
static int add_to_batch(arrpc__conn *c, arrpc__reply *r, const uint8_t *msg, size_t n)
{
    if (!c->job && !(c->job = calloc(1, sizeof *c->job))) return ARRPC_ENOMEM;
    arrpc__call_job *j = c->job;
    size_t offset = arrpc__buf_used(&j->request);
    if (arrpc__buf_append(&j->request, msg, n) != 0) return ARRPC_ENOMEM;
    j->calls[j->ncalls++] = (arrpc__batched_call){.reply = r, .offset = offset, .len = n};
    return 0;
}

void arrpc__calls_submit(arrpc__loop *loop, arrpc__conn *c)
{
    arrpc__call_job *j = c->job;
    if (c->running || !j || j->ncalls == 0) return;
    j->job.mail.kind = ARRPC_MAIL_JOB;
    j->job.run = run_job;
    j->conn = c;
    j->ctx = (arrpc__call_context){.peer = c->peer, .tls_peer = c->tls_peer};
    atomic_store_explicit(&j->started, 0, memory_order_relaxed); /* the pool's lock publishes */
    atomic_store_explicit(&j->finished, 0, memory_order_relaxed);
    atomic_store_explicit(&j->crashed, 0, memory_order_relaxed);
    j->answered = 0;
    c->running = 1;
    if (j->ncalls > 1) batch_list_add(loop, j);
    if (!arrpc__lead_can_inline(loop)) {
        arrpc__pool_submit(loop->pool, &j->job);
        return;
    }
    j->next_inline = NULL;
    if (loop->inline_tail)
        loop->inline_tail->next_inline = j;
    else
        loop->inline_head = j;
    loop->inline_tail = j;
}

static arrpc__call_job *next_inline(arrpc__loop *loop)
{
    arrpc__call_job *j = loop->inline_head;
    if (j && !(loop->inline_head = j->next_inline)) loop->inline_tail = NULL;
    return j;
}

int arrpc__calls_run_inline(arrpc__loop *loop)
{
    arrpc__call_job *j;
    if (!arrpc__lead_can_inline(loop)) { /* the standby is in a long call of its own */
        while ((j = next_inline(loop)))
            arrpc__pool_submit(loop->pool, &j->job);
        return 0;
    }
    unsigned seat = arrpc__lead_seat();
    arrpc__fast_clock *clock = &loop->lead.clock[seat];
    arrpc__fast_clock_anchor(clock);
    arrpc__lead_inline_begin(loop);
    while ((j = next_inline(loop))) {
        uint64_t token = arrpc__lead_call_begin(loop);
        run_batch(j, loop->lead.dispatcher[seat], loop->cfg->threads + seat, clock);
        if (!arrpc__lead_call_end(loop, token)) { /* the loop is the standby's now */
            arrpc__mailbox_post(loop->mailbox, &j->job.mail);
            return -1;
        }
        on_job_done(loop, j); /* may gather the connection's next batch, run in this round */
    }
    arrpc__lead_inline_end(loop);
    return 0;
}

/* ---- answering a request ------------------------------------------------------------------ */

/* Inline, into a reply of its own: used when earlier replies of c are still waiting. */
static int answer_queued_inline(arrpc__loop *loop, arrpc__conn *c, arrpc__reply *r,
                                const uint8_t *msg, size_t n)
{
    arrpc__outcome outcome;
    const arrpc__call_context ctx = {.peer = c->peer, .tls_peer = c->tls_peer};
    loop->marks.call_reply = r; /* a crash now answers r with the error */
    int rc = arrpc__dispatch(loop->dispatcher, &ctx, msg, n, &r->bytes, &outcome);
    loop->marks.call_reply = NULL;
    if (rc != 0) return ARRPC_ENOMEM;
    r->is_signed = arrpc__dispatcher_last_signed(loop->dispatcher);
    if (outcome == ARRPC_OUTCOME_DEFERRED)
        wait_for_answer(loop, r, arrpc__dispatcher_take_deferred(loop->dispatcher));
    else
        finish_reply(loop, r, outcome);
    release_replies(loop, c);
    return 0;
}

int arrpc__calls_frame(arrpc__loop *loop, const uint8_t *p, size_t n, size_t *len)
{
    return !loop->pool && arrpc__dispatcher_frame(loop->dispatcher, p, n, len);
}

int arrpc__calls_answer(arrpc__loop *loop, arrpc__conn *c, const uint8_t *msg, size_t n,
                        uint64_t *clock_ns)
{
    uint64_t started_ns = *clock_ns;
    if (!loop->pool && !c->replies) { /* the fast path: straight into the output */
        arrpc__outcome outcome;
        size_t before = arrpc__buf_used(&c->out);
        const arrpc__call_context ctx = {.peer = c->peer, .tls_peer = c->tls_peer};
        int rc = arrpc__dispatch(loop->dispatcher, &ctx, msg, n, &c->out, &outcome);
        if (rc != 0) return ARRPC_ENOMEM;
        int is_signed = arrpc__dispatcher_last_signed(loop->dispatcher);
        if (outcome != ARRPC_OUTCOME_DEFERRED) {
            time_answered(loop, c, outcome, is_signed, n, arrpc__buf_used(&c->out) - before,
                          clock_ns);
            return 0;
        }
        /* A group before it ends here, and then the deferred call's clock starts now. */
        int grouped = arrpc__calls_untimed(loop) > 0;
        *clock_ns = arrpc__calls_time_group(loop, c, started_ns);
        if (grouped) started_ns = *clock_ns;
        arrpc__buf_truncate(&c->out, before);
        arrpc__reply *r = queue_reply(loop, c, n, started_ns, is_signed);
        if (!r) return ARRPC_ENOMEM;
        wait_for_answer(loop, r, arrpc__dispatcher_take_deferred(loop->dispatcher));
        release_replies(loop, c);
        return 0;
    }
    if (arrpc__calls_untimed(loop)) /* a group of the fast path ends */
        started_ns = *clock_ns = arrpc__calls_time_group(loop, c, started_ns);
    arrpc__reply *r = queue_reply(loop, c, n, started_ns, 0); /* signed: known once dispatched */
    if (!r) return ARRPC_ENOMEM;
    int rc = loop->pool ? add_to_batch(c, r, msg, n) : answer_queued_inline(loop, c, r, msg, n);
    *clock_ns = arrpc__fast_clock_ns(&loop->clock);
    return rc;
}

/* The line of a request that never reached the handler; its clock started with its first
 * byte, to the millisecond (0 when it came in one read). */
static void log_unanswered(arrpc__loop *loop, const arrpc__conn *c, arrpc__reason reason,
                           size_t bytes_in, size_t bytes_out)
{
    uint64_t ms = c->request_since_ms ? loop->now_ms - c->request_since_ms : 0;
    uint64_t now = arrpc__fast_clock_ns(&loop->clock);
    log_request(loop, c, arrpc__reason_label[reason], 0, bytes_in, bytes_out, now - ms * 1000000u,
                now);
}

int arrpc__calls_answer_error(arrpc__loop *loop, arrpc__conn *c, const char *text,
                              arrpc__reason reason, size_t bytes_in)
{
    arrpc__buf *into = &c->out;
    arrpc__reply *r = NULL;
    if (c->replies) { /* after the replies still waiting */
        if (!(r = queue_reply(loop, c, 0, arrpc__fast_clock_ns(&loop->clock), 0)))
            return ARRPC_ENOMEM;
        into = &r->bytes;
    }
    size_t before = arrpc__buf_used(into);
    int rc = arrpc__dispatch_rpc_error(into, text);
    if (loop->access_log) log_unanswered(loop, c, reason, bytes_in, arrpc__buf_used(into) - before);
    if (!r) return rc;
    r->done = 1; /* counted by the caller, as a stream error or a timeout */
    release_replies(loop, c);
    return 0;
}

int arrpc__calls_blocked(const arrpc__conn *c)
{
    return c->running || (c->job && c->job->ncalls == ARRPC_CALLS_BATCH_MAX) ||
           c->nreplies >= ARRPC_CONN_PENDING_MAX;
}

int arrpc__calls_read_paused(const arrpc__conn *c)
{
    return (c->running && arrpc__buf_used(&c->in) >= ARRPC_READ_CHUNK) ||
           c->nreplies >= ARRPC_CONN_PENDING_MAX;
}

int arrpc__calls_pending(const arrpc__conn *c)
{
    return c->running || c->replies != NULL;
}

void arrpc__calls_on_mail(arrpc__loop *loop)
{
    for (arrpc__mail *m = arrpc__mailbox_take(loop->mailbox), *next; m; m = next) {
        next = m->next;
        if (m->kind == ARRPC_MAIL_JOB)
            on_job_done(loop, (arrpc__call_job *)m);
        else
            on_answer(loop, (arrpc_deferred *)m);
    }
}

/* ---- a crash (rescue.c) ------------------------------------------------------------------ */

void arrpc__calls_job_crashed(arrpc__call_job *j, int sig)
{
    atomic_store_explicit(&j->crashed, sig, memory_order_release);
}

arrpc__conn *arrpc__calls_job_conn(const arrpc__call_job *j)
{
    return j->conn;
}

ARRPC_RESCUE_READS int arrpc__calls_settled(const arrpc__conn *c)
{
    const arrpc__call_job *j = c->job;
    if (!c->running || !j || atomic_load_explicit(&j->crashed, memory_order_acquire)) return 1;
    int started = atomic_load_explicit(&j->started, memory_order_acquire);
    return started <= 0 || atomic_load_explicit(&j->finished, memory_order_acquire) == started;
}

/* Stops c's batch before its next call: the calls no handler thread has started (a thread that
 * stayed asleep while the crashed one had the queue, pool.c wakes lazily; or the rest of the
 * crashing thread's own batch) never run here. Their requests, contiguous at the end of the
 * batch's buffer, go on before c's unread bytes. Returns how many calls had started. */
ARRPC_RESCUE_READS static int take_back(arrpc__call_job *j, const uint8_t **unrun,
                                        size_t *unrun_len)
{
    int started = atomic_exchange(&j->started, JOB_TAKEN_BACK);
    if (started < 0) started = 0; /* cannot happen: one rescue per process */
    if ((unsigned)started < j->ncalls) {
        *unrun = j->request.data + j->calls[started].offset;
        *unrun_len = arrpc__buf_used(&j->request) - j->calls[started].offset;
    }
    return started;
}

/* The reply of call i of c's batch: its bytes when it finished, the error when it is the call
 * that crashed; 1 when it was taken back (asked again elsewhere); -1 when its answer cannot
 * follow (still running, out of memory, or deferred). */
ARRPC_RESCUE_READS static int rescue_batched_reply(const arrpc__call_job *j, unsigned i,
                                                   int started, arrpc__pieces *pc)
{
    if (i >= (unsigned)started) return 1;
    int finished = atomic_load_explicit(&j->finished, memory_order_acquire);
    int sig = atomic_load_explicit(&j->crashed, memory_order_acquire);
    if (sig && i == (unsigned)finished) return arrpc__pieces_add_crash(pc, sig);
    const arrpc__batched_call *call = &j->calls[i];
    if (i >= (unsigned)finished || call->dispatch_rc != 0 || call->deferred) return -1;
    return arrpc__pieces_add(pc, call->reply->bytes.data + call->reply->bytes.head,
                             arrpc__buf_used(&call->reply->bytes));
}

/* Which call of the batch j fills r; -1: none. */
ARRPC_RESCUE_READS static int batch_index(const arrpc__call_job *j, const arrpc__reply *r)
{
    for (unsigned i = 0; j && i < j->ncalls; i++)
        if (j->calls[i].reply == r) return (int)i;
    return -1;
}

ARRPC_RESCUE_READS int arrpc__calls_rescue_replies(const arrpc__conn *c,
                                                   const arrpc__reply *crash_reply, int sig,
                                                   arrpc__pieces *pc, const uint8_t **unrun,
                                                   size_t *unrun_len)
{
    arrpc__call_job *j = c->running ? c->job : NULL;
    int started = j ? take_back(j, unrun, unrun_len) : 0, asked_again = 0;
    for (const arrpc__reply *r = c->replies; r; r = r->next) {
        int rc, i = batch_index(j, r);
        if (asked_again && i < 0)
            return -1; /* it would overtake the replies of the calls asked again elsewhere */
        if (r->done)
            rc = arrpc__pieces_add(pc, r->bytes.data + r->bytes.head, arrpc__buf_used(&r->bytes));
        else if (r == crash_reply)
            rc = arrpc__pieces_add_crash(pc, sig);
        else if (i >= 0)
            asked_again |= (rc = rescue_batched_reply(j, (unsigned)i, started, pc)) == 1;
        else
            rc = -1; /* waits for a deferred answer, which would come to this process */
        if (rc < 0) return -1;
    }
    return 0;
}

/* ---- the worker's side -------------------------------------------------------------------- */

int arrpc__calls_init(arrpc__loop *loop, char *err, size_t errlen)
{
    unsigned n = loop->cfg->threads;
    loop->mailbox = arrpc__mailbox_new();
    loop->dispatcher = loop->mailbox ? arrpc__dispatcher_new(loop->cfg, 0, loop->mailbox) : NULL;
    if (n) loop->thread_dispatchers = calloc(n, sizeof *loop->thread_dispatchers);
    int ok = loop->dispatcher && (!n || loop->thread_dispatchers);
    for (unsigned i = 0; ok && i < n; i++)
        ok = (loop->thread_dispatchers[i] =
                  arrpc__dispatcher_new(loop->cfg, 1 + i, loop->mailbox)) != NULL;
    if (ok && n)
        ok = (loop->pool = arrpc__pool_new(n, loop->mailbox, loop->thread_dispatchers)) != NULL;
    if (ok && n && loop->cfg->wake_check)
        arrpc__pool_set_wake_check(loop->pool, loop->cfg->wake_check, loop->cfg->udata);
    if (!ok) {
        snprintf(err, errlen, "cannot start %u handler threads", n);
        return ARRPC_ESYS;
    }
    loop->mail = (arrpc__loop_source){.kind = LOOP_MAIL, .fd = arrpc__mailbox_fd(loop->mailbox)};
    return arrpc__loop_watch(loop, &loop->mail);
}

void arrpc__calls_stop(arrpc__loop *loop)
{
    arrpc__pool_free(loop->pool); /* runs what was queued */
    loop->pool = NULL;
    if (loop->mailbox) arrpc__calls_on_mail(loop);
}

void arrpc__calls_destroy(arrpc__loop *loop)
{
    if (loop->mailbox) {
        /* Answers that came too late to be sent; later ones find the mailbox closed. */
        for (arrpc__mail *m = arrpc__mailbox_close(loop->mailbox), *next; m; m = next) {
            next = m->next;
            if (m->kind == ARRPC_MAIL_DEFERRED) arrpc__deferred_free((arrpc_deferred *)m);
        }
    }
    while (loop->spare_replies) {
        arrpc__reply *r = loop->spare_replies;
        loop->spare_replies = r->next;
        arrpc__buf_free(&r->bytes);
        free(r);
    }
    while (loop->kept) {
        arrpc_deferred *d = loop->kept;
        loop->kept = d->next_kept;
        arrpc__deferred_free(d);
    }
    loop->kept_tail = NULL;
    for (unsigned i = 0; loop->thread_dispatchers && i < loop->cfg->threads; i++)
        arrpc__dispatcher_free(loop->thread_dispatchers[i]);
    free(loop->thread_dispatchers);
    arrpc__dispatcher_free(loop->dispatcher);
    arrpc__mailbox_release(loop->mailbox);
}
