/* stats.h -- what a worker counts into its shared-memory block for the master's /metrics. */
#ifndef ARRPC_WORKERS_STATS_H
#define ARRPC_WORKERS_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "../metrics/metrics.h"
#include "loop.h"

void arrpc__stats_open(arrpc__loop *loop, arrpc__conn *c);
void arrpc__stats_close(arrpc__loop *loop, arrpc__conn *c);
/* c's peer was renamed (a PROXY header): its requests count under the new address. */
void arrpc__stats_peer_named(arrpc__loop *loop, arrpc__conn *c);
/* A PROXY header refused (a connection closed before any request), by reason. */
void arrpc__stats_proxy_error(arrpc__loop *loop, arrpc__conn *c, arrpc__reason reason);
/* A request answered: counted with its bytes and its outcome, timed by arrpc__stats_time. */
void arrpc__stats_request(arrpc__loop *loop, const arrpc__conn *c, arrpc__outcome outcome,
                          int is_signed, size_t bytes);
/* n requests of c (n >= 1) that took ns together, into the latency histogram (see
 * arrpc__metrics_time: exact for one request, and for n whose total is in the first bucket). */
void arrpc__stats_time(arrpc__loop *loop, const arrpc__conn *c, int is_signed, unsigned n,
                       uint64_t ns);
/* The reason a request that did not succeed is counted under (the `reason` label; the access
 * log's outcome); ok and deferred have none and give ARRPC_REASON_COUNT. */
arrpc__reason arrpc__stats_reason_of(arrpc__outcome outcome);
/* The reason of a scanner error code: too large, too deep, or invalid. */
arrpc__reason arrpc__stats_stream_reason(int err);
/* The stream could not be read (a scanner error code): counted by reason. */
void arrpc__stats_stream_error(arrpc__loop *loop, const arrpc__conn *c, int err);
/* A connection refused at the connection limit, before it had a record. */
void arrpc__stats_rejected(arrpc__loop *loop, int fd);
/* A TLS handshake that failed. */
void arrpc__stats_tls_failure(arrpc__loop *loop, const arrpc__conn *c);
/* A connection closed by a timeout that is a limit (request, write, TLS handshake); not the
 * idle timeout, which is ordinary. */
void arrpc__stats_timeout(arrpc__loop *loop, const arrpc__conn *c);
/* A connection closed at an idle moment for its age (--max-connection-age). */
void arrpc__stats_aged(arrpc__loop *loop, const arrpc__conn *c);
/* A crash's rescue is over: saved connections were handed over, lost ones close with the
 * worker. Marks the block rescued, so the master does not count its connections lost again.
 * Async-signal-safe (atomics only). */
void arrpc__stats_crash(arrpc__loop *loop, unsigned saved, unsigned lost);

#endif
