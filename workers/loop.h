/* loop.h -- the state one worker's epoll loop shares with its connections. Internal to workers/. */
#ifndef ARRPC_WORKERS_LOOP_H
#define ARRPC_WORKERS_LOOP_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "../core/buf.h"
#include "../core/fast_clock.h"
#include "../core/net.h"
#include "../core/scan.h"
#include "../core/tls.h"
#include "../core/transport.h"
#include "dispatch.h"
#include "lead.h"
#include "worker.h"

#define ARRPC_LOOP_EVENTS 256 /* epoll events taken per wait */

enum {
    CONN_EOF = 1 << 0,       /* the peer finished sending (read returned 0) */
    CONN_DOOMED = 1 << 1,    /* an error reply is queued: close once it is written */
    CONN_CLOSE = 1 << 2,     /* close at the end of this loop iteration */
    CONN_LINGER = 1 << 3,    /* write side shut after an error: discard input until EOF */
    CONN_QUEUED = 1 << 4,    /* on the loop's flush list */
    CONN_HANDSHAKE = 1 << 5, /* TLS handshake under way: no data yet, a deadline runs */
    CONN_WARNED = 1 << 6,    /* a limit hit by its handler's replies was logged: log it once */
    CONN_PROXY = 1 << 7,     /* waiting for the PROXY header (proxy.c); the deadline runs */
    CONN_SNIFF = 1 << 8,     /* a source not trusted to send one: is its first data a PROXY
                                header? (proxy.c) */
};

/* What an epoll event's data points at: every such object starts with its kind. */
typedef enum {
    LOOP_CONN = 1,
    LOOP_LISTENER,   /* a listening socket: accept */
    LOOP_STOP,       /* readable when the worker should drain and exit */
    LOOP_CONTROL,    /* messages from the master */
    LOOP_HANDOFF_IN, /* connections handed over by a retiring worker */
    LOOP_MAIL,       /* finished handler calls and deferred answers (calls.c) */
    LOOP_REOPEN,     /* readable when the access log should be reopened (no master) */
} arrpc__loop_kind;

typedef struct arrpc__loop_source {
    arrpc__loop_kind kind;
    int fd;
    uint32_t slot; /* listeners: the slot whose socket this is */
} arrpc__loop_source;

#define ARRPC_LOOP_HANDOFF_IN_MAX 8

typedef struct arrpc__conn {
    arrpc__loop_kind kind; /* LOOP_CONN; first, see arrpc__loop_source */
    int fd;
    arrpc__transport io; /* the stream over fd: TCP or TLS */
    unsigned flags;
    uint32_t events; /* what epoll watches for it now */
    arrpc__buf in;   /* bytes read but not yet answered: at most one partial message... */
    size_t scanned;  /* ...of which this many were already fed to the scanner */
    arrpc__buf out;  /* replies not yet written */
    arrpc__scan *scan;
    uint64_t last_active_ms;
    uint64_t linger_until_ms;
    uint64_t handshake_until_ms; /* the PROXY header and the TLS handshake, both, by then */
    uint64_t sniff_until_ms;     /* CONN_SNIFF holding the beginning of a signature: until then */
    uint64_t close_after_ms;     /* past this, closed at its next idle moment; 0: never */
    uint64_t request_since_ms;   /* first byte of the unfinished request in `in`; 0: none */
    uint64_t write_since_ms;     /* last progress writing `out`, while it holds bytes; 0: empty */
    struct arrpc__conn *prev, *next; /* every connection of the loop */
    struct arrpc__conn *next_flush;  /* connections with replies to write this iteration */
    char peer[ARRPC_ADDR_MAX];
    char *tls_peer; /* the client certificate's subject (mutual TLS), read after the handshake */
    uint32_t metrics_row; /* its remote address's row in the worker's metrics block */
    /* Calls answered out of line (calls.c): replies waiting in request order, and the job that
     * carries this connection's call to a handler thread (one at a time). */
    struct arrpc__reply *replies, *replies_tail;
    unsigned nreplies;
    struct arrpc__call_job *job;
    int running; /* the job is on a handler thread: the connection is not freed meanwhile */
} arrpc__conn;

/* What the loop's thread is in the middle of, for a crash signal (rescue.c) to know which state
 * it may trust once that thread has stopped. Plain stores behind a signal fence: only a signal
 * handler that interrupted this thread, or a thread that saw it stopped in one, reads them. */
typedef struct arrpc__loop_marks {
    arrpc__conn *volatile busy; /* a connection whose buffers or replies are being changed */
    volatile int list_busy;     /* the connection list is being changed */
    /* A handler called inline: its connection, the bytes read after its request, how many of
     * c->out's bytes were there before it (after them: a half-packed reply), and the queued
     * reply it fills instead of c->out (NULL: none). */
    arrpc__conn *volatile call_conn;
    const uint8_t *call_rest;
    size_t call_rest_len;
    size_t call_out_keep;
    struct arrpc__reply *volatile call_reply;
    /* A crash on another thread asked this one to stop while it was changing something: it
     * stops as soon as it is done (arrpc__rescue_stop_here). */
    volatile int stop_pending;
} arrpc__loop_marks;

/* Stops the loop's thread for a rescue under way on another thread; never returns. */
_Noreturn void arrpc__rescue_stop_here(void);

typedef struct arrpc__loop {
    const arrpc__worker_config *cfg;
    arrpc__loop_marks marks;
    int epfd;
    arrpc__loop_source listeners[ARRPC_WORKER_LISTENERS_MAX];
    unsigned nlisteners;
    arrpc__loop_source stop;
    arrpc__loop_source control; /* fd -1 when the worker runs without a master */
    arrpc__loop_source reopen;  /* fd -1 unless the server's reopen eventfd is watched here */
    struct arrpc__access_log *access_log; /* NULL: none */
    arrpc__loop_source handoff_in[ARRPC_LOOP_HANDOFF_IN_MAX];
    int handoff_out; /* where a retiring worker sends its connections; -1: none */
    int accepting;
    int draining; /* stop accepting; close connections as they become idle */
    int retiring; /* stop accepting and reading; hand connections over */
    uint64_t drain_until_ms;
    uint64_t next_expire_ms;
    uint64_t last_reject_log_ms;
    uint64_t last_proxy_log_ms; /* bad PROXY headers: one line a second (proxy.c)... */
    unsigned proxy_log_skipped; /* ...and how many were not logged since */
    arrpc__dispatcher *dispatcher;
    arrpc__conn *conns;
    unsigned nconns;
    unsigned nlingering;
    /* Connections still setting up: PROXY header, the check for one from an unlisted source
     * (CONN_SNIFF), or TLS handshake. While any is, the timer ticks. */
    unsigned nhandshaking;
    arrpc__tls_ctx *tls; /* made by this worker from the files; NULL: plain TCP */
    arrpc__conn *flush_list;
    uint8_t *scratch; /* one read buffer for every connection with no partial message */
    /* Out-of-line calls (calls.c): handler threads, each with its own dispatcher, and the
     * mailbox through which they and deferred answers wake the loop. */
    struct arrpc__pool *pool; /* NULL: handlers run inline */
    arrpc__dispatcher **thread_dispatchers;
    struct arrpc__mailbox *mailbox;
    arrpc__loop_source mail;
    unsigned ndeferred; /* deferred calls waiting for their answer */
    /* Batches of more than one call on handler threads (calls.c), whose finished calls the loop
     * answers while the rest run; when it looks next, and the gap between looks. */
    struct arrpc__call_job *batches;
    /* Batches gathered in this iteration to run on the loop's own thread (lead.h). */
    struct arrpc__call_job *inline_head, *inline_tail;
    struct arrpc__reply *spare_replies; /* freed replies kept for reuse (calls.c) */
    unsigned nspare_replies;
    arrpc__lead lead;
    uint64_t batch_look_at_ns, batch_look_gap_ns;
    struct arrpc_deferred *kept, *kept_tail; /* answered handles in quarantine */
    unsigned nkept;
    uint64_t now_ms; /* monotonic, refreshed once per iteration */
    /* Request latencies: anchored where now_ms is read, the TSC in between (fast_clock.h). Only
     * this loop's thread reads it; handler threads use arrpc__clock_ns. */
    arrpc__fast_clock clock;
    /* Grouped timing on the inline fast path (calls.c): requests answered since the last reading
     * and not timed yet, plain and signed, and which the last one was; how many requests in a
     * row took under ARRPC_CLOCK_GROUP_FAST_NS (groups start after ARRPC_CLOCK_GROUP_MAX). */
    struct {
        unsigned untimed[2];
        int last_signed;
        unsigned fast_streak;
    } timing;
    struct {
        uint64_t requests;     /* answered by this worker */
        uint64_t max_requests; /* its bound: --max-requests plus its jitter; 0: none */
        uint64_t next_rss_check_ms;
        int armed; /* a bound is set and the master has not been asked yet */
    } recycle;
    uint64_t random; /* xorshift state: connection age jitter; seeded per worker */
} arrpc__loop;

/* The loop starts (c) or stops (NULL) changing connection c; see arrpc__loop_marks. */
static inline void arrpc__loop_stop_if_asked(const arrpc__loop *loop)
{
    if (loop->marks.stop_pending && !loop->marks.busy && !loop->marks.list_busy)
        arrpc__rescue_stop_here();
}

static inline void arrpc__loop_mark_busy(arrpc__loop *loop, arrpc__conn *c)
{
    atomic_signal_fence(memory_order_seq_cst);
    loop->marks.busy = c;
    atomic_signal_fence(memory_order_seq_cst);
    if (!c) arrpc__loop_stop_if_asked(loop);
}

static inline void arrpc__loop_mark_list(arrpc__loop *loop, int busy)
{
    atomic_signal_fence(memory_order_seq_cst);
    loop->marks.list_busy = busy;
    atomic_signal_fence(memory_order_seq_cst);
    if (!busy) arrpc__loop_stop_if_asked(loop);
}

/* A pseudo-random number, not for secrets: spreading connection ages. */
uint64_t arrpc__loop_random(arrpc__loop *loop);

/* Master commands and hand-over (control.c, handoff.c). */
void arrpc__loop_on_control(arrpc__loop *loop);
void arrpc__loop_start_drain(arrpc__loop *loop);
void arrpc__loop_stop_accepting(arrpc__loop *loop);
int arrpc__loop_watch(arrpc__loop *loop, arrpc__loop_source *src);
/* Hands c to the worker at the other end of loop->handoff_out. 0, or an error (then the caller
 * keeps serving c). */
int arrpc__handoff_send(arrpc__loop *loop, arrpc__conn *c);
/* Takes in the connections waiting on one hand-over socket. */
void arrpc__handoff_receive(arrpc__loop *loop, arrpc__loop_source *src);
/* Answers the requests already in c's input buffer (after a hand-over or backpressure). */
void arrpc__conn_answer_buffered(arrpc__loop *loop, arrpc__conn *c);
/* Re-derives what epoll should watch for c after the loop's own state changed (retiring). */
void arrpc__conn_refresh_interest(arrpc__loop *loop, arrpc__conn *c);
void arrpc__conn_queue_flush(arrpc__loop *loop, arrpc__conn *c);

/* What a connection handed over by another worker brings with it. */
typedef struct arrpc__conn_origin {
    const char *peer;        /* as the first worker named it (after any PROXY header) */
    uint64_t close_after_ms; /* its age limit, unchanged by the move */
} arrpc__conn_origin;

/* Connections: created on accept (from NULL) or hand-over, driven by epoll events, freed only by
 * the loop. */
arrpc__conn *arrpc__conn_open(arrpc__loop *loop, int fd, const arrpc__conn_origin *from);
/* Marks c for closing at the end of the loop iteration. */
void arrpc__conn_mark_close(arrpc__conn *c);

/* The PROXY protocol (proxy.c): whether c comes from a source that must send the header (then
 * c waits for it, CONN_PROXY; or else c is looked at for one it must not send, CONN_SNIFF), and
 * reading the header when c is readable. */
int arrpc__proxy_expect(arrpc__loop *loop, arrpc__conn *c, const struct sockaddr *peer);
void arrpc__proxy_on_readable(arrpc__loop *loop, arrpc__conn *c);
/* The header did not arrive by the deadline: logged, counted, closed. */
void arrpc__proxy_expire(arrpc__loop *loop, arrpc__conn *c);
/* A source outside the ranges (CONN_SNIFF, set by arrpc__proxy_expect): its first bytes are
 * checked for a PROXY signature, which closes the connection; anything else clears CONN_SNIFF
 * and the connection is an ordinary client, any bytes taken meanwhile already answered. */
void arrpc__proxy_sniff(arrpc__loop *loop, arrpc__conn *c);
/* The timer's part: the beginning of a signature that went no further is a client's data. */
void arrpc__proxy_sniff_expire(arrpc__loop *loop, arrpc__conn *c);
void arrpc__conn_on_event(arrpc__loop *loop, arrpc__conn *c, uint32_t events);
/* Writes queued replies; called for every queued connection before the loop sleeps. */
void arrpc__conn_flush(arrpc__loop *loop, arrpc__conn *c);
/* True when nothing is unanswered or unwritten: the connection may close at a request boundary. */
int arrpc__conn_idle(const arrpc__conn *c);
/* Ends a TLS connection at a request boundary: close_notify, then the linger for its EOF. */
void arrpc__conn_close_gracefully(arrpc__loop *loop, arrpc__conn *c);
/* Applies the request and write timeouts (the loop calls it from its timer); true when c is
 * being closed for one. Each is logged and counted once: c is then doomed or closing. */
int arrpc__conn_check_timeouts(arrpc__loop *loop, arrpc__conn *c);
void arrpc__conn_free(arrpc__loop *loop, arrpc__conn *c);

/* Serves while this thread owns the loop: ARRPC_LOOP_FINISHED when the worker is done,
 * ARRPC_LOOP_LOST when the standby took the loop over during a long inline call (lead.h). */
enum { ARRPC_LOOP_FINISHED = 0, ARRPC_LOOP_LOST = 1 };
int arrpc__loop_serve(arrpc__loop *loop, struct epoll_event *events);

#endif
