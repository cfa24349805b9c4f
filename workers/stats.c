/* stats.c -- counting one worker's requests and errors into its shared block (see stats.h).
 * Without a master there is no block, and every function here does nothing. */
#include "stats.h"

#include <stdatomic.h>

#include "../shm/segment.h"

static arrpc__metrics *block(const arrpc__loop *loop)
{
    return loop->cfg->record ? arrpc__shm_metrics(loop->cfg->record->metrics) : NULL;
}

static int is_tls(const arrpc__loop *loop)
{
    return loop->tls != NULL;
}

void arrpc__stats_peer_named(arrpc__loop *loop, arrpc__conn *c)
{
    arrpc__metrics *m = block(loop);
    if (!m) return;
    char addr[ARRPC_METRICS_ADDR_MAX];
    arrpc__metrics_addr_of(c->peer, addr);
    c->metrics_row = arrpc__metrics_row_for(m, addr); /* once per connection, not per request */
}

void arrpc__stats_open(arrpc__loop *loop, arrpc__conn *c)
{
    arrpc__metrics *m = block(loop);
    if (!m) return;
    if (!(c->flags & CONN_PROXY)) /* else named by its header, or by its refusal */
        arrpc__stats_peer_named(loop, c);
    atomic_fetch_add_explicit(&m->connections, 1, memory_order_relaxed);
}

void arrpc__stats_proxy_error(arrpc__loop *loop, arrpc__conn *c, arrpc__reason reason)
{
    arrpc__metrics *m = block(loop);
    if (!m) return;
    arrpc__stats_peer_named(loop, c); /* counted under the address that sent the bad header */
    arrpc__metrics_count_error(m, c->metrics_row, 0, is_tls(loop), reason);
}

void arrpc__stats_close(arrpc__loop *loop, arrpc__conn *c)
{
    arrpc__metrics *m = block(loop);
    (void)c;
    if (m) atomic_fetch_sub_explicit(&m->connections, 1, memory_order_relaxed);
}

static const arrpc__reason reason_of_outcome[] = {
    [ARRPC_OUTCOME_OK] = ARRPC_REASON_COUNT,
    [ARRPC_OUTCOME_RPC_ERROR] = ARRPC_REASON_RPC,
    [ARRPC_OUTCOME_AUTH_ERROR] = ARRPC_REASON_AUTH,
    [ARRPC_OUTCOME_INVALID] = ARRPC_REASON_INVALID,
    [ARRPC_OUTCOME_BAD_REPLY] = ARRPC_REASON_BAD_REPLY,
    [ARRPC_OUTCOME_DEFERRED] = ARRPC_REASON_COUNT,
};

arrpc__reason arrpc__stats_reason_of(arrpc__outcome outcome)
{
    return reason_of_outcome[outcome];
}

arrpc__reason arrpc__stats_stream_reason(int err)
{
    return err == ARRPC_ETOOBIG    ? ARRPC_REASON_TOO_LARGE
           : err == ARRPC_ETOODEEP ? ARRPC_REASON_TOO_DEEP
                                   : ARRPC_REASON_INVALID;
}

void arrpc__stats_time(arrpc__loop *loop, const arrpc__conn *c, int is_signed, unsigned n,
                       uint64_t ns)
{
    arrpc__metrics *m = block(loop);
    if (m) arrpc__metrics_time(m, c->metrics_row, is_signed, is_tls(loop), n, ns);
}

void arrpc__stats_request(arrpc__loop *loop, const arrpc__conn *c, arrpc__outcome outcome,
                          int is_signed, size_t bytes)
{
    arrpc__metrics *m = block(loop);
    if (!m) return;
    arrpc__metrics_count_untimed(m, c->metrics_row, is_signed, is_tls(loop), bytes);
    if (outcome != ARRPC_OUTCOME_OK)
        arrpc__metrics_count_error(m, c->metrics_row, is_signed, is_tls(loop),
                                   reason_of_outcome[outcome]);
}

void arrpc__stats_stream_error(arrpc__loop *loop, const arrpc__conn *c, int err)
{
    arrpc__metrics *m = block(loop);
    if (m)
        arrpc__metrics_count_error(m, c->metrics_row, 0, is_tls(loop),
                                   arrpc__stats_stream_reason(err));
}

void arrpc__stats_rejected(arrpc__loop *loop, int fd)
{
    arrpc__metrics *m = block(loop);
    if (!m) return;
    char peer[ARRPC_ADDR_MAX], addr[ARRPC_METRICS_ADDR_MAX];
    arrpc__net_peer_name(fd, peer, sizeof peer);
    arrpc__metrics_addr_of(peer, addr);
    arrpc__metrics_count_error(m, arrpc__metrics_row_for(m, addr), 0, is_tls(loop),
                               ARRPC_REASON_CONN_LIMIT);
}

void arrpc__stats_tls_failure(arrpc__loop *loop, const arrpc__conn *c)
{
    arrpc__metrics *m = block(loop);
    if (m) arrpc__metrics_count_error(m, c->metrics_row, 0, 1, ARRPC_REASON_TLS);
}

void arrpc__stats_timeout(arrpc__loop *loop, const arrpc__conn *c)
{
    arrpc__metrics *m = block(loop);
    if (m) arrpc__metrics_count_error(m, c->metrics_row, 0, is_tls(loop), ARRPC_REASON_TIMEOUT);
}

void arrpc__stats_aged(arrpc__loop *loop, const arrpc__conn *c)
{
    arrpc__metrics *m = block(loop);
    (void)c;
    if (m) atomic_fetch_add_explicit(&m->aged, 1, memory_order_relaxed);
}

void arrpc__stats_crash(arrpc__loop *loop, unsigned saved, unsigned lost)
{
    arrpc__metrics *m = block(loop);
    if (!m) return;
    atomic_fetch_add_explicit(&m->crash_saved, saved, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->crash_lost, lost, memory_order_relaxed);
    atomic_store_explicit(&m->rescued, 1, memory_order_release);
}
