/* rescue.h -- what a worker does when a handler crashes: the crashing request gets an error
 * reply, and every other connection moves to another worker with its unsent replies and its
 * unanswered bytes, over the "rescue" socket the master gave the worker. Internal to workers/.
 *
 * The crash signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) is caught on an alternate stack in
 * every thread that serves; the first thread to catch one stops the loop's thread, waits a
 * bounded time for calls running on other handler threads, writes one hand-over message per
 * connection with async-signal-safe calls only, and then dies of the same signal, so that the
 * master sees (and counts) a crash. See docs/handlers.md, "When a handler crashes". */
#ifndef ARRPC_WORKERS_RESCUE_H
#define ARRPC_WORKERS_RESCUE_H

#include <stddef.h>
#include <sys/uio.h>

#include "calls.h" /* ARRPC_CONN_PENDING_MAX */
#include "loop.h"

/* Calls on other handler threads get this long to finish, so that their replies travel with
 * their connections instead of being lost. Below the master's grace between the SIGABRT and the
 * SIGKILL of a stuck worker (ARRPC_ABORT_GRACE_MS, 2 s), so a rescue is never cut by it. */
#define ARRPC_RESCUE_WAIT_MS 1000u
/* The loop's thread must stop within this, or nothing is saved (today's behaviour). */
#define ARRPC_RESCUE_FREEZE_MS 500u
/* Each serving thread's alternate signal stack. */
#define ARRPC_RESCUE_STACK_BYTES (64u * 1024u)
/* The send buffer asked for the rescue socket; the kernel caps it (net.core.wmem_max). Bytes
 * beyond ARRPC_HANDOFF_INLINE_MAX travel in a memfd, so each message is small. */
#define ARRPC_RESCUE_SNDBUF (4u * 1024u * 1024u)
/* Pieces of one connection's bytes: its output, each queued reply, its error, its input. */
#define ARRPC_RESCUE_PIECES_MAX (ARRPC_CONN_PENDING_MAX + 4u)

/* The bytes one connection still has to send, then those it read, as pointers into its own
 * buffers: nothing is copied or allocated. */
typedef struct arrpc__pieces {
    struct iovec iov[ARRPC_RESCUE_PIECES_MAX];
    unsigned n;
    size_t bytes;
} arrpc__pieces;

/* The rescue reads what other threads wrote before they stopped (the loop's thread in its
 * freeze handler, a handler thread in or after its call): an order that a signal and a
 * sleep-and-look give, which ThreadSanitizer cannot see. Those reads go unchecked; the rest of
 * a TSan build is checked as before. */
#define ARRPC_RESCUE_READS __attribute__((no_sanitize("thread")))

/* Adds n bytes at p; -1 when there is no room left (the connection cannot be saved). */
int arrpc__pieces_add(arrpc__pieces *pc, const void *p, size_t n);
/* Adds the error reply naming signal sig ("the handler crashed (SIGSEGV)"). */
int arrpc__pieces_add_crash(arrpc__pieces *pc, int sig);

/* Catches crash signals in this worker from now on, handing connections over rescue_fd (a
 * SOCK_SEQPACKET socket whose other end the master holds). Call on the loop's thread after the
 * handler threads exist. 0, or an error with its text in err. */
int arrpc__rescue_install(arrpc__loop *loop, int rescue_fd, char *err, size_t errlen);
/* A thread that may own the loop (lead.h; seat 0: the one that started it, 1: its standby)
 * starts: it catches crash signals on its own alternate stack, and a rescue stops it too. Its
 * inline calls use rescue slot threads + seat (arrpc__rescue_thread_call). */
void arrpc__rescue_lead_thread(unsigned seat);
/* The calling thread now owns the loop: it stops where its marks say the loop is whole. */
void arrpc__rescue_loop_thread(void);
/* The loop is going away: crashes from now on kill the worker plainly. */
void arrpc__rescue_uninstall(void);
/* Handler thread `thread` (or the loop's owner, in slot threads + seat) starts (job) or ends
 * (NULL) a call. The first call on a thread also
 * gives it its alternate stack and lets crash signals reach it. */
void arrpc__rescue_thread_call(unsigned thread, struct arrpc__call_job *job);

#endif
