/* metrics.h -- request counters in shared memory: one block per worker, written by that worker
 * alone with relaxed atomics, read and summed by the master at scrape time.
 *
 * Label sets are bounded whatever clients do: each block has a table of ARRPC_METRICS_ADDRS
 * remote addresses filled on first sight, and one overflow row ("other") for the rest. Error
 * reasons come from a fixed list. No lock anywhere, so a dead worker cannot leave one held. */
#ifndef ARRPC_METRICS_METRICS_H
#define ARRPC_METRICS_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define ARRPC_METRICS_ADDRS 256u       /* remote addresses per block before "other" */
#define ARRPC_CLIENT_METRICS_ADDRS 16u /* servers one client counts apart before "other" */
#define ARRPC_METRICS_ADDR_MAX 48      /* an IPv6 address and NUL */
#define ARRPC_METRICS_OVERFLOW_LABEL "other"
#define ARRPC_METRICS_BUCKETS 16 /* latency buckets, +Inf excluded */

/* X(name, label): the fixed list of error reasons (the `reason` label), shared by the server and
 * the client (client/client_metrics.c); new reasons go at the end. */
#define ARRPC_METRICS_REASONS(X)                                                                   \
    X(AUTH, "auth")                                                                                \
    X(RPC, "rpc")                                                                                  \
    X(INVALID, "invalid_message")                                                                  \
    X(TOO_LARGE, "too_large")                                                                      \
    X(TOO_DEEP, "too_deep")                                                                        \
    X(BAD_REPLY, "invalid_reply")                                                                  \
    X(CONN_LIMIT, "connection_limit")                                                              \
    X(TIMEOUT, "timeout")                                                                          \
    X(TLS, "tls_handshake")                                                                        \
    X(CONNECT, "connect")                 /* client: no connection could be made */                \
    X(CLOSED, "closed")                   /* client: the server closed before replying */          \
    X(IO, "io")                           /* client: read, write or system call failed */          \
    X(PROXY_MISSING, "proxy_missing")     /* server: a trusted source sent no PROXY header */      \
    X(PROXY_INVALID, "proxy_invalid")     /* server: a PROXY header the format does not allow */   \
    X(PROXY_TOO_LONG, "proxy_too_long")   /* server: longer than ARRPC_PROXY_V1_MAX / _V2_MAX */   \
    X(PROXY_TRUNCATED, "proxy_truncated") /* server: closed or timed out inside the header */      \
    X(PROXY_UNTRUSTED, "proxy_untrusted") /* server: a header from a source not in the list */

typedef enum {
#define ARRPC_REASON_ENUM(name, label) ARRPC_REASON_##name,
    ARRPC_METRICS_REASONS(ARRPC_REASON_ENUM)
#undef ARRPC_REASON_ENUM
        ARRPC_REASON_COUNT
} arrpc__reason;

extern const char *const arrpc__reason_label[ARRPC_REASON_COUNT];
/* Upper bounds in seconds of the latency buckets (Prometheus `le`). */
extern const double arrpc__bucket_le[ARRPC_METRICS_BUCKETS];

/* Counters of one label set: remote address x signed_payload x tls. */
typedef struct arrpc__series {
    _Atomic uint64_t requests;
    _Atomic uint64_t seconds_ns;                    /* sum of request durations */
    _Atomic uint64_t bytes;                         /* sum of request sizes */
    _Atomic uint64_t bucket[ARRPC_METRICS_BUCKETS]; /* non-cumulative; +Inf is `requests` */
    _Atomic uint64_t errors[ARRPC_REASON_COUNT];
} arrpc__series;

typedef struct arrpc__metrics_row {
    char addr[ARRPC_METRICS_ADDR_MAX];
    arrpc__series series[2][2]; /* [signed_payload][tls] */
} arrpc__metrics_row;

/* One writer's counters: `addrs` address rows, then the overflow row. The row count is fixed
 * when the block is made: a server's worker needs ARRPC_METRICS_ADDRS (any client may call it),
 * a client ARRPC_CLIENT_METRICS_ADDRS (the servers it calls). `rows` is published with release
 * order after a row's address is written, so a reader that loads it with acquire sees whole
 * addresses. */
typedef struct arrpc__metrics {
    _Atomic uint32_t rows;        /* address rows in use, overflow excluded */
    _Atomic uint32_t connections; /* open connections: a gauge */
    uint32_t addrs;               /* address rows before the overflow row */
    _Atomic uint32_t rescued;     /* a crashing worker finished counting crash_saved and _lost */
    _Atomic uint64_t aged;        /* connections closed for their age (--max-connection-age) */
    /* Connections of a worker whose handler crashed: handed to another worker with their
     * unsent replies and unanswered bytes (saved), or closed because they could not be (lost).
     * Written by the dying worker from its crash signal handler (workers/rescue.c). */
    _Atomic uint64_t crash_saved, crash_lost;
    arrpc__metrics_row row[]; /* addrs + 1 */
} arrpc__metrics;

/* Bytes of a block with room for `addrs` addresses. */
#define ARRPC_METRICS_BYTES(addrs)                                                                 \
    (sizeof(arrpc__metrics) + ((size_t)(addrs) + 1u) * sizeof(arrpc__metrics_row))

/* Makes the ARRPC_METRICS_BYTES(addrs) bytes at mem an empty block (shared memory, say). */
arrpc__metrics *arrpc__metrics_init(void *mem, uint32_t addrs);
/* An empty block on the heap, or NULL; free() it. */
arrpc__metrics *arrpc__metrics_new(uint32_t addrs);

/* The row for a remote address, added on first sight; the overflow row once the table is
 * full. Writer side; call once per connection, not per request. */
uint32_t arrpc__metrics_row_for(arrpc__metrics *m, const char *addr);
/* One request of `bytes` bytes that took ns: arrpc__metrics_count_untimed, then
 * arrpc__metrics_time(m, ..., 1, ns). */
void arrpc__metrics_count_request(arrpc__metrics *m, uint32_t row, int is_signed, int tls,
                                  uint64_t ns, uint64_t bytes);
/* A request counted (total and bytes) before its time is known; arrpc__metrics_time gives it
 * its place in the histogram later. Until then the histogram's buckets hold fewer requests than
 * its count, never more. */
void arrpc__metrics_count_untimed(arrpc__metrics *m, uint32_t row, int is_signed, int tls,
                                  uint64_t bytes);
/* Times n requests (n >= 1) that took ns together, read from one clock reading to the next.
 * How they split it is not known: n - 1 go to the first bucket and one is observed with ns.
 * Exact whenever ns is within the first bucket's bound, where all n belong anyway; the sum of
 * seconds is exact in every case. */
void arrpc__metrics_time(arrpc__metrics *m, uint32_t row, int is_signed, int tls, uint64_t n,
                         uint64_t ns);
void arrpc__metrics_count_error(arrpc__metrics *m, uint32_t row, int is_signed, int tls,
                                arrpc__reason reason);

/* Adds every counter of `from` into `into`, rows matched by address (the master folds a dead
 * worker's block into its retired totals this way); addresses `into` has no room for go to its
 * overflow row; the aged and crash counts too. Gauges are not carried over. */
void arrpc__metrics_add(arrpc__metrics *into, const arrpc__metrics *from);
/* Zeroes a block for a new writer; its size stays. */
void arrpc__metrics_reset(arrpc__metrics *m);

/* The IP part of "ip:port" (or "[v6]:port"), as the remote_address label shows it. */
void arrpc__metrics_addr_of(const char *peer, char out[ARRPC_METRICS_ADDR_MAX]);

#endif
