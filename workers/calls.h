/* calls.h -- handler calls that do not answer inline: on the worker's handler threads, or later
 * through a deferred reply. Their replies wait in a per-connection queue and leave in request
 * order. Internal to workers/.
 *
 * Ordering. A connection runs one call at a time: while its calls are on a handler thread, the
 * loop does not start its next requests (the 0.5.0 semantics, a greenlet per connection), and
 * reads ahead only a bounded amount. The whole requests it has of a connection go to the thread
 * together, as one batch run in order (ARRPC_CALLS_BATCH_MAX). A deferred call has returned from
 * its handler, so the connection goes on with its next request while the reply waits; replies still
 * leave in request order. */
#ifndef ARRPC_WORKERS_CALLS_H
#define ARRPC_WORKERS_CALLS_H

#include <stddef.h>
#include <stdint.h>

#include "../metrics/metrics.h"
#include "loop.h"

/* Replies one connection may have waiting (deferred, or behind one that is); past it the loop
 * stops reading from the connection until some are answered. Bounds its memory. */
#define ARRPC_CONN_PENDING_MAX 1024u
/* Requests of one connection handed to a handler thread at once, run one after the other. */
#define ARRPC_CALLS_BATCH_MAX 16u
/* Answered deferred handles kept (not reused) so that a second answer to one of them is refused
 * rather than landing in another call. */
#define ARRPC_DEFERRED_QUARANTINE 1024u

/* The worker's side: handler threads when cfg->threads > 0, and the mailbox either they or a
 * deferred reply wake the loop through. 0, or an error with the reason in err. */
int arrpc__calls_init(arrpc__loop *loop, char *err, size_t errlen);
/* Finishes what the threads run, detaches every waiting deferred call, and frees the rest. Call
 * before the connections are freed. */
void arrpc__calls_stop(arrpc__loop *loop);
void arrpc__calls_destroy(arrpc__loop *loop);

/* Answers one whole request of c (n bytes at msg): inline into c->out when nothing of c's is out
 * of line, else through c's reply queue. *clock_ns is when the request's clock started (on
 * loop->clock); it is set to when this call left the loop, where the next request's clock starts.
 * 0, or ARRPC_ENOMEM (then c should be closed). */
int arrpc__calls_answer(arrpc__loop *loop, arrpc__conn *c, const uint8_t *msg, size_t n,
                        uint64_t *clock_ns);
/* Hands the requests arrpc__calls_answer gathered for c's handler thread to the pool, as one
 * batch; nothing when there are none or a batch of c's runs. The loop calls it after answering
 * what it read of c. */
void arrpc__calls_submit(arrpc__loop *loop, arrpc__conn *c);
/* Nanoseconds until the calls on handler threads are due a look (0: now; -1: none is): a job
 * queued too long behind running calls (pool.c), or a batch running long enough for its
 * finished calls to be answered before the rest. The loop sleeps no longer. */
int64_t arrpc__calls_due_ns(arrpc__loop *loop);
/* When due: takes mail a handler thread posted quietly and left unannounced (pool.h), and
 * answers the calls that finished in batches still running, so that a slow call does not hold
 * back the replies of calls before it. */
void arrpc__calls_look(arrpc__loop *loop);
/* Runs the batches gathered for the loop's own thread (lead.h), or hands them to the handler
 * threads when no standby waits. Nonzero when the standby took the loop over during one: the
 * caller no longer owns the loop. */
int arrpc__calls_run_inline(arrpc__loop *loop);
/* Frames the request that starts at p (n bytes there) by decoding it, for the
 * arrpc__calls_answer that follows on it: 1 with its size in *len when it is whole and valid,
 * 0 otherwise (also always with handler threads, which decode on their own thread). */
int arrpc__calls_frame(arrpc__loop *loop, const uint8_t *p, size_t n, size_t *len);
/* Queues "arrpc.error.RpcException: <text>" after c's waiting replies (for unreadable input or
 * a request that never completed, whose connection then closes) and writes its access-log line
 * with the reason it is counted under and the bytes of the request read so far. 0 or
 * ARRPC_ENOMEM. */
int arrpc__calls_answer_error(arrpc__loop *loop, arrpc__conn *c, const char *text,
                              arrpc__reason reason, size_t bytes_in);
/* True while c may not start another request: a call of its runs on a thread, its batch for
 * one is full, or its reply queue is full. The loop does not read from it meanwhile. */
int arrpc__calls_blocked(const arrpc__conn *c);
/* True while the loop should not read from c: a call of its runs and ARRPC_READ_CHUNK bytes of
 * its next requests are already buffered, or its reply queue is full. Reading on while a call
 * runs costs nothing when the client waits for its reply (most do), and spares two epoll_ctl
 * calls per request; the bound keeps a client that pipelines from filling memory. */
int arrpc__calls_read_paused(const arrpc__conn *c);
/* True while c has replies waiting (a call running, deferred, or queued behind one). */
int arrpc__calls_pending(const arrpc__conn *c);
/* The loop's mailbox source became readable: finished calls and deferred answers. */
void arrpc__calls_on_mail(arrpc__loop *loop);
/* Deferred calls of c past the handler timeout are answered with an RpcException. */
void arrpc__calls_expire(arrpc__loop *loop, arrpc__conn *c);
/* c is being freed: its waiting deferred calls are detached (their answers will be dropped). */
void arrpc__calls_conn_free(arrpc__loop *loop, arrpc__conn *c);

struct arrpc__pieces;

/* For a crash signal (rescue.c): async-signal-safe, no lock, no allocation. */
/* The call job j crashed with signal sig on its thread: its connection gets the error reply. */
void arrpc__calls_job_crashed(struct arrpc__call_job *j, int sig);
arrpc__conn *arrpc__calls_job_conn(const struct arrpc__call_job *j);
/* True unless a call of c is running on a handler thread. One still queued counts as settled:
 * arrpc__calls_rescue_replies takes it back. */
int arrpc__calls_settled(const arrpc__conn *c);
/* Adds c's waiting replies to pc in order: answered ones, a finished or crashed call's, and for
 * crash_reply (the reply an inline call that crashed with sig was filling) the error. A call no
 * handler thread has started is taken back (it never runs here) and its request returned in
 * *unrun (NULL: none), to go before c's unread bytes. -1 when c cannot be saved: a reply waits
 * for a deferred answer or a call that did not finish. */
int arrpc__calls_rescue_replies(const arrpc__conn *c, const struct arrpc__reply *crash_reply,
                                int sig, struct arrpc__pieces *pc, const uint8_t **unrun,
                                size_t *unrun_len);

/* Grouped timing (calls.c): after ARRPC_CLOCK_GROUP_MAX requests in a row that each took at
 * most ARRPC_CLOCK_GROUP_FAST_NS, the fast path reads the clock once per ARRPC_CLOCK_GROUP_MAX
 * requests (and at the end of a read) instead of once per request, unless the request clock is
 * the TSC or an access log wants each request's time. A group is timed with
 * arrpc__stats_time: exact when it stays within the first latency bucket (100 us; a group of
 * fast requests takes at most 16 * 2 us), and otherwise counted as one request that took the
 * group's time, the rest in the first bucket; such a group ends the streak, and requests are
 * timed one by one again. */
#define ARRPC_CLOCK_GROUP_MAX 16u
#define ARRPC_CLOCK_GROUP_FAST_NS 2000u

/* Times the requests of c answered since the reading since_ns that went untimed, if any, with a
 * new reading, which it returns. The fast path's caller calls it once the read is answered. */
uint64_t arrpc__calls_time_group(arrpc__loop *loop, arrpc__conn *c, uint64_t since_ns);

/* Requests answered and not timed yet (a group is open). */
static inline unsigned arrpc__calls_untimed(const arrpc__loop *loop)
{
    return loop->timing.untimed[0] + loop->timing.untimed[1];
}

/* Counts and logs one answered request (inline or not): bytes in and out, and when its clock
 * started and stopped (loop->clock; a stop before the start counts as no time). */
void arrpc__calls_count(arrpc__loop *loop, arrpc__conn *c, arrpc__outcome outcome, int is_signed,
                        size_t bytes_in, size_t bytes_out, uint64_t started_ns, uint64_t done_ns);

#endif
