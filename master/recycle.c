/* recycle.c -- replacing one worker that has passed a bound (--max-requests, --max-worker-rss,
 * --max-worker-lifetime) without failing a request or closing a plain-TCP connection.
 *
 * The worker says when it has served enough requests or grown too large (a cause in its shared
 * record, workers/recycle.c); the master knows how long each has lived. On its tick the master
 * picks one such worker of the serving generation, forks a replacement into the same slot and
 * generation, and keeps the replacement out of arrpc__row_of_slot until it accepts, so that the
 * old worker stays the slot's worker for reloads, scaling and upgrades meanwhile. Once the
 * replacement is ready, the old worker is retired into it exactly as a reload retires a whole
 * generation (arrpc__handover): every connection moves at a request boundary with its buffered
 * bytes, TLS connections stay until they close or the drain deadline. One recycle at a time,
 * until the old worker has exited, so the others keep serving and memory holds at most one
 * worker more than usual. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#include "../core/log.h"

void arrpc__recycle_init(arrpc__master *m)
{
    m->recycle.old = m->recycle.replacement = -1;
}

static int under_way(const arrpc__master *m)
{
    return m->recycle.old >= 0 || m->recycle.replacement >= 0;
}

/* Why worker r should be replaced, into reason; 0 when it need not be. */
static int wants_recycle(const arrpc__master *m, int r, char *reason, size_t len)
{
    const arrpc__worker_row *row = &m->row[r];
    uint64_t value = 0, limit = 0;
    switch (arrpc__shm_recycle_wanted(&m->shm->worker[r], &value, &limit)) {
    case ARRPC_RECYCLE_REQUESTS:
        snprintf(reason, len, "%llu requests >= %llu", (unsigned long long)value,
                 (unsigned long long)limit);
        return 1;
    case ARRPC_RECYCLE_RSS:
        snprintf(reason, len, "resident memory %llu MiB >= %llu MiB",
                 (unsigned long long)(value >> 20), (unsigned long long)(limit >> 20));
        return 1;
    case ARRPC_RECYCLE_NONE:
        break;
    }
    unsigned max_ms = m->cfg->max_lifetime_ms;
    uint64_t lived = m->now_ms - row->started_ms;
    if (max_ms && lived >= max_ms) {
        snprintf(reason, len, "lived %.1f s >= %.1f s", (double)lived / 1000.0,
                 (double)max_ms / 1000.0);
        return 1;
    }
    return 0;
}

static void start(arrpc__master *m, int old, const char *reason)
{
    int r = arrpc__spawn_worker(m, m->row[old].slot, m->row[old].generation);
    if (r < 0) {
        m->recycle.retry_at_ms = m->now_ms + ARRPC_RECYCLE_RETRY_MS;
        return;
    }
    m->recycle.old = old;
    m->recycle.replacement = r;
    m->recycle.cancelled = 0;
    snprintf(m->recycle.reason, sizeof m->recycle.reason, "%s", reason);
    ARRPC_DEBUG(m->cfg->worker.debug, "master: recycling worker %d: %s; starting worker %d",
                (int)m->row[old].pid, reason, (int)m->row[r].pid);
}

void arrpc__recycle_tick(arrpc__master *m)
{
    /* Not while the workers' set is changing for another reason: a reload replaces them all
     * anyway, and the first workers must be up before any is replaced. */
    if (under_way(m) || m->stopping || m->reload.active || m->upgrade_pid || !m->told_ready ||
        m->inherited_upgrade_fd >= 0 || m->now_ms < m->recycle.retry_at_ms)
        return;
    char reason[ARRPC_RECYCLE_REASON_MAX];
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++) {
        const arrpc__worker_row *row = &m->row[r];
        if (row->state == ARRPC_WORKER_READY && row->generation == m->generation &&
            m->slot[row->slot].active && wants_recycle(m, (int)r, reason, sizeof reason)) {
            start(m, (int)r, reason);
            return;
        }
    }
}

/* The worker that serves `slot` now: its own, or its adopter's when the slot was given up. */
static int serving_row(const arrpc__master *m, uint32_t slot)
{
    const arrpc__slot *s = &m->slot[slot];
    uint32_t serving = s->active || s->adopter < 0 ? slot : (uint32_t)s->adopter;
    return arrpc__row_of_slot(m, serving, m->generation);
}

int arrpc__recycle_on_ready(arrpc__master *m, int r)
{
    if (r != m->recycle.replacement) return 0;
    m->recycle.replacement = -1; /* from now on it is the slot's worker, or goes */
    if (m->stopping) return 1;   /* it got the stop like every other worker */
    int old = m->recycle.old;
    if (!m->recycle.cancelled && old >= 0 && m->row[old].state == ARRPC_WORKER_READY) {
        m->row[old].recycled = 1;
        arrpc__log("master: worker %d recycled: %s; worker %d takes its connections",
                   (int)m->row[old].pid, m->recycle.reason, (int)m->row[r].pid);
        arrpc__handover(m, old, r);
        return 1;
    }
    /* The old worker was retired by a reload, or a scale or an upgrade changed the slots: this
     * one is not needed. It hands whatever it accepted to the slot's worker and leaves. */
    m->row[r].spare = 1;
    m->recycle.old = -1;
    arrpc__handover(m, r, serving_row(m, m->row[r].slot));
    return 1;
}

void arrpc__recycle_on_exit(arrpc__master *m, int r)
{
    if (r == m->recycle.old) {
        /* Recycled (the usual end), or it died while its replacement started: then the
         * replacement is simply the slot's next worker. */
        m->recycle.old = -1;
        m->recycle.replacement = -1;
    } else if (r == m->recycle.replacement) {
        arrpc__log("master: recycling worker %d abandoned: its replacement exited before it was "
                   "ready; trying again in %u ms",
                   m->recycle.old >= 0 ? (int)m->row[m->recycle.old].pid : 0,
                   ARRPC_RECYCLE_RETRY_MS);
        m->recycle.old = m->recycle.replacement = -1;
        m->recycle.retry_at_ms = m->now_ms + ARRPC_RECYCLE_RETRY_MS;
    }
}

void arrpc__recycle_cancel(arrpc__master *m)
{
    if (m->recycle.replacement >= 0) m->recycle.cancelled = 1;
}
