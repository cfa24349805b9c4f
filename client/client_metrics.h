/* client_metrics.h -- the client's arrpc_client_* counters: counting a finished send or batch,
 * rendering them as Prometheus text, and serving them from a libmicrohttpd thread.
 *
 * The counters are a metrics/metrics.h block in private memory. The client's thread is its only
 * writer; readers (arrpc_client_metrics_render, the HTTP thread) copy it under a sequence count,
 * so the three families of one rendering agree with each other. */
#ifndef ARRPC_CLIENT_CLIENT_METRICS_H
#define ARRPC_CLIENT_CLIENT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "arrpc.h"

typedef struct arrpc__client_metrics arrpc__client_metrics;

/* Nanoseconds on CLOCK_MONOTONIC when the client counts, else 0 (no clock read). */
uint64_t arrpc__client_metrics_now(const arrpc_client *cli);

/* Counts one finished send or batch of `count` requests: rc is what arrpc_client_send_batch
 * returns, out[] its replies (a reply with an error status counts as that error), started_ns
 * the arrpc__client_metrics_now() value when the first byte was queued (0: nothing was written,
 * counted as 0 s). Does nothing when the client does not count. */
void arrpc__client_metrics_count(arrpc_client *cli, int rc, const size_t *lens, size_t count,
                                 arrpc_response *const *out, uint64_t started_ns);

/* Counts `requests` resent on a new connection (arrpc_client_retries_total). Does nothing when
 * the client does not count. */
void arrpc__client_metrics_count_retries(arrpc_client *cli, size_t requests);

/* The reason label for a client error code (ARRPC_REASON_COUNT for ARRPC_OK and ARRPC_EINVAL,
 * which are not counted as errors). */
int arrpc__client_metrics_reason(int err);

/* Stops the HTTP thread, if any, and frees the counters. NULL is fine. */
void arrpc__client_metrics_free(arrpc__client_metrics *cm);

#endif
