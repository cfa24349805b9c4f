/* bench.h -- arrpc-bench's shared types: the run's configuration, per-thread counters, connections.
 *
 * The program's shape: main.c reads options and starts threads; each thread (loop.c) runs one
 * epoll loop over its share of the connections (conn.c); request.c builds the one request every
 * connection sends, once; report.c prints the merged result. Nothing on the hot path allocates:
 * the request bytes are prebuilt (P copies back to back, so a connection writes all the requests
 * it may have in flight with one send), replies are framed in place in a per-connection buffer
 * that only grows, and send times live in a per-connection ring of P slots.
 *
 * With --rate the loop is open (rate.c): requests fall due on a fixed schedule whether or not
 * earlier ones were answered, and latency counts from the time a request was due, not from when
 * it could be sent, so a stalled server cannot hide behind the client's own waiting. */
#ifndef ARRPC_BENCH_H
#define ARRPC_BENCH_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <msgpack.h>

#include "../../core/tls.h"
#include "../../core/transport.h"
#include "hist.h"

typedef enum { BENCH_PROTO_ARRPC, BENCH_PROTO_RESP } bench_proto;

/* X(name, json key, meaning): the kinds of error the summary counts. */
#define BENCH_ERRORS(X)                                                                            \
    X(CONNECT, "connect", "could not connect")                                                     \
    X(CLOSED, "closed", "connection closed or reset by the server")                                \
    X(TIMEOUT, "timeout", "no reply within --timeout (the connection is reopened)")                \
    X(PROTO, "proto", "reply is not valid MessagePack / RESP, or arrives unasked")                 \
    X(VERIFY, "verify", "reply differs from its request (--verify)")                               \
    X(RPC, "rpc", "arrpc.error.RpcException reply")                                                \
    X(AUTH, "auth", "arrpc.error.AuthException reply")                                             \
    X(RESP, "resp", "RESP error reply (-ERR ...)")                                                 \
    X(IO, "io", "read or write failed")

typedef enum {
#define BENCH_ERR_ENUM(name, key, text) BENCH_ERR_##name,
    BENCH_ERRORS(BENCH_ERR_ENUM)
#undef BENCH_ERR_ENUM
        BENCH_ERR_COUNT
} bench_err;

extern const char *const bench_err_key[BENCH_ERR_COUNT];
extern const char *const bench_err_text[BENCH_ERR_COUNT];

#define BENCH_ENDPOINTS_MAX 256 /* addresses of --connect after resolving every name */

/* One server address of --connect: a name with several addresses gives one per address. */
typedef struct bench_endpoint {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[256]; /* as written in --connect: the TLS name when no --tls-server-name */
} bench_endpoint;

/* What the whole run shares, read-only once the threads start (times are CLOCK_MONOTONIC ns). */
typedef struct bench_config {
    const char *target;        /* "host:port[,host:port...]" as given */
    bench_endpoint *endpoints; /* connection `slot` starts at endpoint slot % nendpoints */
    unsigned nendpoints;
    int idempotent; /* a broken connection's unanswered requests are resent, not failed */
    bench_proto proto;
    unsigned connections, pipeline, threads;
    uint64_t requests;    /* -n: measured requests to send in all; 0 with -d */
    uint64_t duration_ns; /* -d: length of the measured window; 0 with -n */
    uint64_t warmup_ns, timeout_ns;
    int verify, json, live, auth;
    size_t payload_size;      /* --size as asked (arrpc) */
    unsigned rate;            /* --rate: requests per second over all connections; 0: closed loop */
    double rate_ns;           /* --rate: ns between two due times of the run, 1e9 / rate */
    const char *request_json; /* --request as given; NULL: the --size str */
    char *request_shown;      /* --request as compact JSON, for the summary */

    uint8_t *request; /* one request as written on the wire */
    size_t request_len;
    uint8_t *batch;  /* `pipeline` copies of request, back to back */
    uint8_t *expect; /* the reply an echo gives: the packed payload, or "+PONG\r\n"; NULL with
                      * --request, whose reply cannot be known */
    size_t expect_len;
    msgpack_object expect_obj; /* decoded expect, for --verify when bytes differ */
    msgpack_zone *expect_zone;
    size_t max_message;   /* largest reply accepted */
    arrpc__tls_ctx *tls;  /* --tls-cafile: every connection speaks TLS (one handshake each) */
    const char *tls_name; /* --tls-server-name; NULL: the endpoint's host (none if self-signed) */
    int tls_self_signed;
    long server_pid; /* --server-pid: whose CPU time to report; 0: none */

    uint64_t t_start, t_measure, t_end; /* t_end is 0 with -n */
} bench_config;

#define BENCH_LATE_NS                                                                              \
    (1000ull * 1000) /* --rate: a request sent this long after its time is late                    \
                      */

/* --rate: how far behind its schedule the client fell, over the requests due in the window. */
typedef struct bench_lag {
    uint64_t late;   /* sent more than BENCH_LATE_NS after their due time */
    uint64_t unsent; /* due in the window but never sent (a pipeline stuck behind a stall) */
    uint64_t max;    /* the largest lag, ns */
    double sum;      /* ns, over the `sent` requests; 0 in a closed loop, which sends at once */
} bench_lag;

/* What one thread counted in the measured window (with --rate, requests due in it). */
typedef struct bench_stats {
    uint64_t sent, replies, bytes_out, bytes_in;
    uint64_t resent; /* --idempotent: requests written again after their connection broke */
    bench_lag lag;
    uint64_t errors[BENCH_ERR_COUNT];
    uint64_t last_reply; /* time of the last counted reply */
    bench_hist hist;     /* latency of counted replies, ns */
} bench_stats;

typedef struct bench_thread bench_thread;

enum { BENCH_CONN_IDLE, BENCH_CONN_CONNECTING, BENCH_CONN_HANDSHAKE, BENCH_CONN_OPEN };

/* One connection: at most `pipeline` requests in flight, answered in order. */
typedef struct bench_conn {
    bench_thread *th;
    int fd, state;
    arrpc__transport io; /* the stream over fd: TCP, or TLS with --tls-cafile */
    int want_out;        /* EPOLLOUT is armed: a write is pending */
    unsigned slot;       /* its place among all connections, which sets its due times */
    unsigned home;       /* its endpoint in the round-robin spread (slot % nendpoints) */
    unsigned endpoint;   /* the endpoint it connects to: home, or the next after failures */
    unsigned failed;     /* connects failed in a row, over the endpoints */
    int leaving;         /* away from home for a while: drain, then reconnect at home */
    uint64_t issued;     /* requests sent so far: with --rate, the next one's number */
    uint64_t at;         /* IDLE: when to connect again; CONNECTING: when the connect began */
    uint64_t *due_at;    /* ring of pipeline slots: when each request in flight was due, where
                          * its latency starts (its send time in a closed loop) */
    uint64_t *sent_at;   /* the same slots: when each was sent, where --timeout starts */
    unsigned ring_head;  /* the oldest request in flight */
    unsigned inflight;   /* requests queued or written, not yet answered */
    size_t wpos, wend;   /* pending bytes cfg->batch[wpos, wend) */
    uint8_t *in;         /* received bytes: [in_head, in_len) not yet consumed */
    size_t in_cap, in_head, in_scan, in_len; /* in_scan: bytes already given to the framer */
    struct arrpc__scan *scan;
} bench_conn;

struct bench_thread {
    pthread_t tid;
    unsigned index;
    const bench_config *cfg;
    atomic_int *stop; /* set by the main thread (SIGINT) */
    int epfd;
    bench_conn *conns;
    unsigned nconns;
    uint64_t budget;   /* -n: measured requests this thread may still send */
    int timerfd;       /* --rate: wakes the loop when the next request falls due; -1 without */
    uint64_t timer_at; /* when timerfd is set to fire; 0: not set */
    uint64_t next_due; /* --rate: the thread's first request not yet due, counting its
                        * requests in the order they fall due (round-robin over conns) */
    bench_stats stats;
    pthread_mutex_t lock;  /* guards published */
    bench_stats published; /* a copy of stats a few times a second, for the live line */
    atomic_int exited;     /* the thread's loop has ended */
};

/* The result of the run, merged across threads. */
typedef struct bench_result {
    bench_stats total;
    double elapsed_s; /* the measured window */
    double cpu_user_s, cpu_sys_s;
    double server_cpu_s; /* --server-pid's process tree in the window; < 0: not measured */
    int interrupted;
} bench_result;

uint64_t bench_now_ns(void);

/* request.c */
int bench_request_build(bench_config *cfg, const char *secret_file, size_t total);
void bench_request_free(bench_config *cfg);

/* server_cpu.c: nanoseconds the process pid, its threads and its descendants have run. 0, or -1
 * when pid cannot be read. */
int bench_server_cpu_ns(long pid, uint64_t *ns);

/* conn.c */
int bench_conn_init(bench_conn *c, bench_thread *th);
void bench_conn_free(bench_conn *c);
void bench_conn_connect(bench_conn *c, uint64_t now);
void bench_conn_event(bench_conn *c, uint32_t events);
void bench_conn_tick(bench_conn *c, uint64_t now);
int bench_conn_fill(bench_conn *c, uint64_t now);
int bench_conn_busy(const bench_conn *c);

/* rate.c: the open-loop schedule. Connection `slot` of C sends its k-th request at
 * t_start + (k * C + slot) / rate seconds. */
uint64_t bench_rate_due(const bench_config *cfg, unsigned slot, uint64_t k);
/* 1 with *due when c may send a request now: always in a closed loop (*due is now). */
int bench_rate_next(const bench_conn *c, uint64_t now, uint64_t *due);
/* Sends what has fallen due on the thread's connections and sets its timer for the next. */
void bench_rate_advance(bench_thread *th, uint64_t now);
/* Requests c owed before min(now, t_end) and in the window, but never sent. */
uint64_t bench_rate_unsent(const bench_conn *c, uint64_t now);
int bench_rate_timer_new(bench_thread *th);

/* loop.c */
void *bench_thread_main(void *arg);
void bench_thread_snapshot(bench_thread *th, bench_stats *out);
void bench_stats_merge(bench_stats *dst, const bench_stats *src);

/* report.c */
void bench_report_live(FILE *to, double elapsed_s, int warming, uint64_t qps, const bench_stats *s);
void bench_report_text(FILE *to, const bench_config *cfg, const bench_result *r);
void bench_report_json(FILE *to, const bench_config *cfg, const bench_result *r);

#endif
