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

/* A connection's call on its way to a handler thread and back. */
typedef struct arrpc__call_job {
    arrpc__job job; /* first */
    arrpc__conn *conn;
    arrpc__reply *reply;     /* filled by the thread; the loop's again once the job is back */
    arrpc__buf request;      /* a copy: the loop's buffers move on while the call runs */
    arrpc__call_context ctx; /* points into the connection, which outlives the running call */
    arrpc__outcome outcome;
    arrpc_deferred *deferred;
    int dispatch_rc;
    int is_signed;
    /* For a crash on any thread (rescue.c): the call finished (its results above are written),
     * or crashed with this signal. Reset by each submit. */
    _Atomic int ran, crashed;
    /* Who has the job: 0 queued, JOB_STARTED a handler thread, JOB_TAKEN_BACK a rescue (then it
     * never runs here: its request goes to the next worker). */
    _Atomic int claim;
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

void arrpc__calls_count(arrpc__loop *loop, arrpc__conn *c, arrpc__outcome outcome, int is_signed,
                        size_t bytes_in, size_t bytes_out, uint64_t started_ns, uint64_t done_ns)
{
    arrpc__stats_request(loop, c, outcome, is_signed, bytes_in, elapsed_ns(started_ns, done_ns));
    loop->recycle.requests++; /* compared with its bound once per loop iteration */
    if (loop->access_log) {
        arrpc__reason reason = arrpc__stats_reason_of(outcome);
        log_request(loop, c, reason == ARRPC_REASON_COUNT ? "ok" : arrpc__reason_label[reason],
                    is_signed, bytes_in, bytes_out, started_ns, done_ns);
    }
    if (outcome == ARRPC_OUTCOME_BAD_REPLY && !(c->flags & CONN_WARNED)) {
        arrpc__log("connection from %s: the handler's reply was replaced by an error "
                   "(over --max-message, or not one object); logged once per connection",
                   c->peer);
        c->flags |= CONN_WARNED;
    }
    ARRPC_DEBUG(loop->cfg->debug, "request from %s: %zu bytes, %s", c->peer, bytes_in,
                outcome_name[outcome]);
}

/* ---- the reply queue ---------------------------------------------------------------------- */

static arrpc__reply *queue_reply(arrpc__conn *c, size_t request_bytes, uint64_t started_ns,
                                 int is_signed)
{
    arrpc__reply *r = calloc(1, sizeof *r);
    if (!r) return NULL;
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

static void free_reply(arrpc__reply *r)
{
    arrpc__buf_free(&r->bytes);
    free(r);
}

/* Marks r answered and counts it. */
static void finish_reply(arrpc__loop *loop, arrpc__reply *r, arrpc__outcome outcome)
{
    r->done = 1;
    arrpc__calls_count(loop, r->conn, outcome, r->is_signed, r->request_bytes,
                       arrpc__buf_used(&r->bytes), r->started_ns,
                       arrpc__fast_clock_ns(&loop->clock));
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
        free_reply(r);
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
        free_reply(r);
    }
    c->replies_tail = NULL;
    c->nreplies = 0;
    if (c->job) arrpc__buf_free(&c->job->request);
    free(c->job);
    c->job = NULL;
}

/* ---- handler threads ---------------------------------------------------------------------- */

enum { JOB_STARTED = 1, JOB_TAKEN_BACK = -1 };

static void run_job(arrpc__job *job, unsigned thread, void *arg)
{
    arrpc__call_job *j = (arrpc__call_job *)job;
    arrpc__dispatcher *d = ((arrpc__dispatcher **)arg)[thread];
    int queued = 0;
    if (!atomic_compare_exchange_strong(&j->claim, &queued, JOB_STARTED))
        return; /* a crash took it back: the worker is ending, the next one runs it */
    arrpc__rescue_thread_call(thread, j);
    j->dispatch_rc = arrpc__dispatch(d, &j->ctx, j->request.data + j->request.head,
                                     arrpc__buf_used(&j->request), &j->reply->bytes, &j->outcome);
    j->deferred = j->outcome == ARRPC_OUTCOME_DEFERRED ? arrpc__dispatcher_take_deferred(d) : NULL;
    j->is_signed = arrpc__dispatcher_last_signed(d);
    arrpc__rescue_thread_call(thread, NULL);
    atomic_store_explicit(&j->ran, 1, memory_order_release); /* after every result above */
}

static void on_job_done(arrpc__loop *loop, arrpc__call_job *j)
{
    arrpc__conn *c = j->conn;
    arrpc__loop_mark_busy(loop, c);
    c->running = 0;
    arrpc__buf_truncate(&j->request, 0);
    j->reply->is_signed = j->is_signed;
    if (j->dispatch_rc != 0)
        fail_reply(loop, j->reply, "out of memory");
    else if (j->deferred)
        wait_for_answer(loop, j->reply, j->deferred);
    else
        finish_reply(loop, j->reply, j->outcome);
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

static int submit(arrpc__loop *loop, arrpc__conn *c, arrpc__reply *r, const uint8_t *msg, size_t n)
{
    if (!c->job && !(c->job = calloc(1, sizeof *c->job))) return ARRPC_ENOMEM;
    arrpc__call_job *j = c->job;
    j->job.mail.kind = ARRPC_MAIL_JOB;
    j->job.run = run_job;
    j->conn = c;
    j->reply = r;
    j->ctx = (arrpc__call_context){.peer = c->peer, .tls_peer = c->tls_peer};
    if (arrpc__buf_append(&j->request, msg, n) != 0) return ARRPC_ENOMEM;
    atomic_store_explicit(&j->ran, 0, memory_order_relaxed); /* the pool's lock publishes */
    atomic_store_explicit(&j->crashed, 0, memory_order_relaxed);
    atomic_store_explicit(&j->claim, 0, memory_order_relaxed);
    c->running = 1;
    arrpc__pool_submit(loop->pool, &j->job);
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
        *clock_ns = arrpc__fast_clock_ns(&loop->clock);
        if (rc != 0) return ARRPC_ENOMEM;
        int is_signed = arrpc__dispatcher_last_signed(loop->dispatcher);
        if (outcome != ARRPC_OUTCOME_DEFERRED) {
            arrpc__calls_count(loop, c, outcome, is_signed, n, arrpc__buf_used(&c->out) - before,
                               started_ns, *clock_ns);
            return 0;
        }
        arrpc__buf_truncate(&c->out, before);
        arrpc__reply *r = queue_reply(c, n, started_ns, is_signed);
        if (!r) return ARRPC_ENOMEM;
        wait_for_answer(loop, r, arrpc__dispatcher_take_deferred(loop->dispatcher));
        release_replies(loop, c);
        return 0;
    }
    arrpc__reply *r = queue_reply(c, n, started_ns, 0); /* signed: known once dispatched */
    if (!r) return ARRPC_ENOMEM;
    int rc = loop->pool ? submit(loop, c, r, msg, n) : answer_queued_inline(loop, c, r, msg, n);
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
        if (!(r = queue_reply(c, 0, arrpc__fast_clock_ns(&loop->clock), 0))) return ARRPC_ENOMEM;
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
    return c->running || c->nreplies >= ARRPC_CONN_PENDING_MAX;
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
    return !c->running || !j || atomic_load_explicit(&j->ran, memory_order_acquire) ||
           atomic_load_explicit(&j->crashed, memory_order_acquire) ||
           atomic_load_explicit(&j->claim, memory_order_acquire) == 0;
}

/* The reply of c's call on a handler thread, if it finished or crashed. */
ARRPC_RESCUE_READS static int rescue_job_reply(const arrpc__call_job *j, arrpc__pieces *pc)
{
    int sig = atomic_load_explicit(&j->crashed, memory_order_acquire);
    if (sig) return arrpc__pieces_add_crash(pc, sig);
    if (!atomic_load_explicit(&j->ran, memory_order_acquire) || j->dispatch_rc != 0 || j->deferred)
        return -1; /* still running, out of memory, or deferred: its answer cannot follow */
    return arrpc__pieces_add(pc, j->reply->bytes.data + j->reply->bytes.head,
                             arrpc__buf_used(&j->reply->bytes));
}

/* Takes back c's call if no handler thread has started it: a thread that stayed asleep while
 * the crashed one had the queue (pool.c wakes lazily). Then it is the last reply of c (one call
 * at a time per connection), and its request goes on before c's unread bytes. */
ARRPC_RESCUE_READS static int take_back(arrpc__call_job *j, const uint8_t **unrun,
                                        size_t *unrun_len)
{
    int queued = 0;
    if (!atomic_compare_exchange_strong(&j->claim, &queued, JOB_TAKEN_BACK)) return 0;
    *unrun = j->request.data + j->request.head;
    *unrun_len = arrpc__buf_used(&j->request);
    return 1;
}

ARRPC_RESCUE_READS int arrpc__calls_rescue_replies(const arrpc__conn *c,
                                                   const arrpc__reply *crash_reply, int sig,
                                                   arrpc__pieces *pc, const uint8_t **unrun,
                                                   size_t *unrun_len)
{
    arrpc__call_job *j = c->running ? c->job : NULL;
    int taken_back = j && take_back(j, unrun, unrun_len);
    for (const arrpc__reply *r = c->replies; r; r = r->next) {
        int rc;
        if (r->done)
            rc = arrpc__pieces_add(pc, r->bytes.data + r->bytes.head, arrpc__buf_used(&r->bytes));
        else if (r == crash_reply)
            rc = arrpc__pieces_add_crash(pc, sig);
        else if (j && j->reply == r)
            rc = taken_back ? 0 : rescue_job_reply(j, pc); /* taken back: it is asked again */
        else
            rc = -1; /* waits for a deferred answer, which would come to this process */
        if (rc != 0) return -1;
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
