/* generation.c -- replacing workers without closing a connection: reload (SIGHUP) by
 * generations, and scaling by one worker up (SIGTTIN) or down (SIGTTOU). */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/log.h"
#include "../workers/control.h"

int arrpc__row_of_slot(const arrpc__master *m, uint32_t slot, uint32_t generation)
{
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++) {
        const arrpc__worker_row *row = &m->row[r];
        if ((row->state == ARRPC_WORKER_STARTING || row->state == ARRPC_WORKER_READY) &&
            row->slot == slot && row->generation == generation && (int)r != m->recycle.replacement)
            return (int)r;
    }
    return -1;
}

void arrpc__retire(arrpc__master *m, int row, int handoff_fd)
{
    arrpc__master_send(m, row, ARRPC_CTL_RETIRE, 0, handoff_fd);
    m->row[row].state = ARRPC_WORKER_RETIRING;
}

/* Without a socket pair, `from` drains instead. */
void arrpc__handover(arrpc__master *m, int from, int to)
{
    int sv[2] = {-1, -1};
    if (to >= 0 && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        arrpc__log("master: socketpair: %s; worker %d drains instead", strerror(errno),
                   (int)m->row[from].pid);
        to = -1;
    }
    if (to >= 0 && arrpc__master_send(m, to, ARRPC_CTL_ADOPT, 0, sv[1]) != 0) {
        close(sv[0]);
        sv[0] = -1;
    }
    arrpc__retire(m, from, sv[0]);
    if (sv[0] >= 0) close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
}

void arrpc__reload_start(arrpc__master *m)
{
    if (m->cfg->reconfigure && m->cfg->reconfigure(m->cfg->reconfigure_ctx) != 0) {
        arrpc__log("master: reload aborted: the new configuration was refused; generation %u "
                   "keeps serving",
                   m->generation);
        return;
    }
    if (arrpc__master_read_secret(m) != 0) {
        arrpc__log("master: reload aborted; generation %u keeps serving", m->generation);
        return;
    }
    uint32_t gen = ++m->next_generation;
    m->reload.active = 1;
    m->reload.generation = gen;
    m->reload.deadline_ms = m->now_ms + ARRPC_RELOAD_START_TIMEOUT_MS;
    arrpc__log("master: reload: starting generation %u", gen);
    arrpc__notify("RELOADING=1");
    for (uint32_t s = 0; s < m->nslots && m->reload.active; s++)
        if (m->slot[s].active && arrpc__spawn_worker(m, s, gen) < 0)
            arrpc__reload_on_failure(m, "cannot start a new worker");
}

int arrpc__generation_ready(const arrpc__master *m, uint32_t gen)
{
    for (uint32_t s = 0; s < m->nslots; s++) {
        if (!m->slot[s].active) continue;
        int r = arrpc__row_of_slot(m, s, gen);
        if (r < 0 || m->row[r].state != ARRPC_WORKER_READY) return 0;
    }
    return 1;
}

static void reload_finished(arrpc__master *m)
{
    m->reload.active = 0;
    arrpc__notify("READY=1");
    if (m->reload.pending) { /* a SIGHUP came meanwhile: files may have changed again */
        m->reload.pending = 0;
        arrpc__reload_start(m);
    } else if (m->reload.upgrade_pending && !m->stopping) { /* after every reload asked for */
        m->reload.upgrade_pending = 0;
        arrpc__upgrade_start(m);
    }
}

void arrpc__reload_on_ready(arrpc__master *m)
{
    uint32_t gen = m->reload.generation;
    if (!arrpc__generation_ready(m, gen)) return;
    for (uint32_t s = 0; s < m->nslots; s++) {
        if (!m->slot[s].active) continue;
        int old = arrpc__row_of_slot(m, s, m->generation);
        if (old >= 0) arrpc__handover(m, old, arrpc__row_of_slot(m, s, gen));
    }
    arrpc__log("master: reload: generation %u serving, generation %u handing over", gen,
               m->generation);
    atomic_fetch_add(&m->shm->area[m->area].reloads, 1);
    m->generation = gen;
    m->scale_after_reload = 1;
    reload_finished(m);
}

void arrpc__reload_on_failure(arrpc__master *m, const char *why)
{
    uint32_t gen = m->reload.generation;
    arrpc__log("master: reload failed (%s); generation %u keeps serving", why, m->generation);
    /* New workers may already have accepted connections: they hand them back. */
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++) {
        arrpc__worker_row *row = &m->row[r];
        if ((row->state == ARRPC_WORKER_STARTING || row->state == ARRPC_WORKER_READY) &&
            row->generation == gen)
            arrpc__handover(m, (int)r, arrpc__row_of_slot(m, row->slot, m->generation));
    }
    reload_finished(m);
}

void arrpc__reload_check_deadline(arrpc__master *m)
{
    if (!m->reload.active || m->now_ms < m->reload.deadline_ms) return;
    uint32_t gen = m->reload.generation;
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++) /* never ready: nothing accepted */
        if (m->row[r].state == ARRPC_WORKER_STARTING && m->row[r].generation == gen)
            kill(m->row[r].pid, SIGKILL);
    arrpc__reload_on_failure(m, "new workers were not ready in time");
}

static unsigned active_slots(const arrpc__master *m)
{
    unsigned n = 0;
    for (uint32_t s = 0; s < m->nslots; s++)
        n += m->slot[s].active != 0;
    return n;
}

/* After a reload that changed the configured worker count, once the old generation is gone
 * (no worker is retiring): one step at a time to the new count, as SIGTTIN and SIGTTOU go.
 * A count changed by those signals since the last reload is then replaced. */
void arrpc__scale_check(arrpc__master *m)
{
    if (!m->scale_after_reload || m->reload.active || m->stopping) return;
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++)
        if (m->row[r].state == ARRPC_WORKER_RETIRING) return;
    m->scale_after_reload = 0;
    unsigned want = m->cfg->workers;
    if (want == m->workers_configured || want == 0) return;
    m->workers_configured = want;
    arrpc__log("master: reload: %u workers configured", want);
    for (unsigned n = active_slots(m); n < want; n++)
        arrpc__scale_up(m, "reload");
    for (unsigned n = active_slots(m); n > want && n > 1; n--)
        arrpc__scale_down(m, "reload");
}

/* One worker more: an inactive slot comes back (its adopter lets it go once the new worker is
 * ready), or a new socket joins the SO_REUSEPORT group. */
void arrpc__scale_up(arrpc__master *m, const char *why)
{
    uint32_t s = 0;
    while (s < m->nslots && m->slot[s].active)
        s++;
    if (s == m->nslots && arrpc__slot_bind(m) != 0) {
        arrpc__log("master: %s: cannot add a worker", why);
        return;
    }
    m->slot[s].active = 1;
    m->slot[s].failures = 0;
    m->workers_wanted = active_slots(m);
    arrpc__log("master: %s: %u workers", why, m->workers_wanted);
    arrpc__spawn_worker(m, s, m->generation);
}

/* One worker fewer: the last active slot's socket stays open and is adopted by another worker,
 * which also takes the retiring worker's connections; nothing queued is reset. */
void arrpc__scale_down(arrpc__master *m, const char *why)
{
    if (active_slots(m) <= 1) {
        arrpc__log("master: %s: keeping the last worker", why);
        return;
    }
    uint32_t s = m->nslots;
    while (s-- > 0 && !m->slot[s].active) {
    }
    uint32_t a = s;
    while (a-- > 0 && !m->slot[a].active) {
    }
    int from = arrpc__row_of_slot(m, s, m->generation);
    int to = arrpc__row_of_slot(m, a, m->generation);
    m->slot[s].active = 0;
    m->slot[s].respawn_at_ms = 0;
    for (uint32_t t = 0; t < m->nslots; t++) {
        if (t == s || (!m->slot[t].active && m->slot[t].adopter == (int)s)) {
            m->slot[t].adopter = (int)a;
            if (to >= 0) arrpc__master_send(m, to, ARRPC_CTL_LISTEN_ADD, t, m->slot[t].listen_fd);
        }
    }
    if (from >= 0) arrpc__handover(m, from, to);
    m->workers_wanted = active_slots(m);
    arrpc__log("master: %s: %u workers", why, m->workers_wanted);
}
