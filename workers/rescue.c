/* rescue.c -- a handler crash answers its own request with an error and hands every other
 * connection of the worker, with its unsent replies and unanswered bytes, to another worker
 * (see rescue.h). Everything after the signal is async-signal-safe: system calls, atomics, and
 * reads of memory that no thread changes any more. No malloc, no stdio, no lock.
 *
 * The crashing request's own bytes are never sent on: a request that crashed a worker once would
 * crash the next one too, so it is answered with the error and dropped. */
#include "rescue.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "stats.h"

/* The signals a crash brings, named as the error reply names them. */
static const struct {
    int sig;
    const char *name;
} crash_signals[] = {
    {SIGSEGV, "SIGSEGV"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
    {SIGILL, "SIGILL"},   {SIGABRT, "SIGABRT"},
};
#define NSIGNALS (sizeof crash_signals / sizeof crash_signals[0])
/* Sent by a crashing handler thread to the loop's thread: stop where you are. */
#define FREEZE_SIGNAL (SIGRTMAX - 1)

enum { SKIPPED, SAVED, LOST };

typedef struct rescue_thread {
    pid_t tid; /* 0 until its first call */
    struct arrpc__call_job *volatile job;
} rescue_thread;

/* What crashed: the signal, and the connection whose call it cut (NULL: none known). */
typedef struct crash_info {
    int sig;
    arrpc__conn *conn;
    int inline_call; /* that call ran on the loop's thread (loop->marks describe it) */
} crash_info;

static struct {
    arrpc__loop *_Atomic loop; /* NULL: not installed, and a crash kills plainly */
    int fd;
    pid_t pid;
    _Atomic pid_t loop_tid;    /* the thread that owns the loop now (lead.c moves it) */
    _Atomic pid_t lead_tid[2]; /* the threads that may own it: the starting one, its standby */
    _Atomic int claimed; /* the first crashing thread rescues; any later one waits for the end */
    _Atomic int frozen;  /* how many of the loop's threads have stopped */
    _Atomic int lead_counted[2]; /* whether lead_tid[i] is in frozen: each counts once */
    unsigned nthreads;
    rescue_thread thread[ARRPC_MAX_THREADS + 2]; /* handler threads, then the loop's two */
    uint8_t *stacks;            /* alternate signal stacks: the loop's, then each thread's */
    arrpc__buf error[NSIGNALS]; /* the error replies, packed when installed */
    arrpc__pieces pieces;       /* one connection's bytes, built by the rescuing thread */
    struct iovec iov[1 + ARRPC_RESCUE_PIECES_MAX];
} R = {.fd = -1};

int arrpc__pieces_add(arrpc__pieces *pc, const void *p, size_t n)
{
    if (n == 0) return 0;
    if (pc->n == ARRPC_RESCUE_PIECES_MAX) return -1;
    pc->iov[pc->n++] = (struct iovec){.iov_base = (void *)p, .iov_len = n};
    pc->bytes += n;
    return 0;
}

static int signal_index(int sig)
{
    for (unsigned i = 0; i < NSIGNALS; i++)
        if (crash_signals[i].sig == sig) return (int)i;
    return -1;
}

int arrpc__pieces_add_crash(arrpc__pieces *pc, int sig)
{
    int i = signal_index(sig);
    if (i < 0) return -1;
    return arrpc__pieces_add(pc, R.error[i].data + R.error[i].head, arrpc__buf_used(&R.error[i]));
}

/* ---- async-signal-safe helpers ------------------------------------------------------------ */

static pid_t own_tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static _Noreturn void park(void)
{
    for (;;)
        pause(); /* until the rescuing thread's signal ends the process */
}

/* The signal's default action, on this thread, as soon as the handler returns: the master sees
 * the worker die of the signal that crashed it. */
static void die_on_return(int sig)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    syscall(SYS_tgkill, getpid(), own_tid(), sig); /* blocked in its handler: pending till then */
}

/* "worker 123: the handler crashed (SIGSEGV): 15 connections handed over, 1 closed" on stderr,
 * built without stdio. */
static char *put_uint(char *at, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n)
        *at++ = tmp[--n];
    return at;
}

static char *put_str(char *at, const char *s)
{
    while (*s)
        *at++ = *s++;
    return at;
}

static void log_rescue(int sig, unsigned saved, unsigned lost, int fell_back)
{
    char line[192], *at = line;
    int i = signal_index(sig);
    at = put_str(at, "worker ");
    at = put_uint(at, (uint64_t)R.pid);
    at = put_str(at, ": crash signal ");
    at = i >= 0 ? put_str(at, crash_signals[i].name) : put_uint(at, (uint64_t)sig);
    if (fell_back) {
        at = put_str(at, ": its state could not be read safely; every connection closes\n");
    } else {
        at = put_str(at, ": ");
        at = put_uint(at, saved);
        at = put_str(at, " connections handed over, ");
        at = put_uint(at, lost);
        at = put_str(at, " closed\n");
    }
    ssize_t w = write(STDERR_FILENO, line, (size_t)(at - line));
    (void)w;
}

/* ---- one connection's hand-over message --------------------------------------------------- */

/* A memfd holding every piece, for bytes too many for one message. */
static int pieces_memfd(const arrpc__pieces *pc)
{
    int fd = memfd_create("arrpc-rescue", MFD_CLOEXEC);
    for (unsigned i = 0; fd >= 0 && i < pc->n; i++) {
        const uint8_t *p = pc->iov[i].iov_base;
        size_t left = pc->iov[i].iov_len;
        while (left) {
            ssize_t w = write(fd, p, left);
            if (w <= 0) {
                close(fd);
                return -1;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    return fd;
}

static int send_fds(const struct iovec *iov, size_t niov, const int *fds, int nfds)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 2)];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr msg = {.msg_iov = (struct iovec *)iov,
                         .msg_iovlen = niov,
                         .msg_control = ctl.buf,
                         .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    size_t total = 0;
    for (size_t i = 0; i < niov; i++)
        total += iov[i].iov_len;
    ssize_t n;
    do /* never blocking: a full socket loses this connection, not the whole rescue */
        n = sendmsg(R.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)total ? 0 : -1;
}

/* Writes what it can of the replies in pc to the client now, without waiting, and drops what
 * was written from pc: the client has its answers (the crashing request's error among them)
 * even while no worker is ready to take the connection. The rest travels with it. */
ARRPC_RESCUE_READS static void write_now(const arrpc__conn *c, arrpc__pieces *pc)
{
    struct msghdr msg = {.msg_iov = pc->iov, .msg_iovlen = pc->n < IOV_MAX ? pc->n : IOV_MAX};
    ssize_t n = pc->n ? sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) : -1;
    if (n <= 0) return;
    size_t left = (size_t)n, drop = 0;
    pc->bytes -= left;
    while (left && left >= pc->iov[drop].iov_len)
        left -= pc->iov[drop++].iov_len;
    if (left) {
        pc->iov[drop].iov_base = (uint8_t *)pc->iov[drop].iov_base + left;
        pc->iov[drop].iov_len -= left;
    }
    memmove(pc->iov, pc->iov + drop, (pc->n - drop) * sizeof pc->iov[0]);
    pc->n -= drop;
}

/* Sends c with the pieces gathered for it: reply_len bytes of replies, then its input. */
ARRPC_RESCUE_READS static int send_conn(const arrpc__conn *c, size_t reply_len)
{
    const arrpc__pieces *pc = &R.pieces;
    arrpc__handoff_header h = {.magic = ARRPC_HANDOFF_MAGIC,
                               .reply_len = reply_len,
                               .pending_len = pc->bytes - reply_len,
                               .close_after_ms = c->close_after_ms};
    memcpy(h.peer, c->peer, sizeof h.peer);
    int fds[2] = {c->fd, -1};
    size_t niov = 1;
    R.iov[0] = (struct iovec){.iov_base = &h, .iov_len = sizeof h};
    if (pc->bytes <= ARRPC_HANDOFF_INLINE_MAX && pc->n < IOV_MAX) { /* header + pieces */
        h.inline_len = (uint32_t)pc->bytes;
        memcpy(R.iov + 1, pc->iov, pc->n * sizeof pc->iov[0]);
        niov += pc->n;
    } else if ((fds[1] = pieces_memfd(pc)) < 0) {
        return -1;
    }
    int rc = send_fds(R.iov, niov, fds, fds[1] >= 0 ? 2 : 1);
    if (fds[1] >= 0) close(fds[1]);
    return rc;
}

/* Hands c over: what it has not written, its queued replies, the error for the call that crashed
 * (when it is c's), then what it read and did not answer. */
ARRPC_RESCUE_READS static int save(const arrpc__loop *loop, arrpc__conn *c, const crash_info *k)
{
    const arrpc__loop_marks *m = &loop->marks;
    int inline_crash = c == k->conn && k->inline_call;
    if (c->flags & CONN_CLOSE) return SKIPPED; /* closing anyway, or handed over already */
    if (!c->io.ops->can_hand_over ||           /* TLS: its keys are in this process */
        (c->flags & (CONN_DOOMED | CONN_LINGER | CONN_HANDSHAKE | CONN_PROXY)) ||
        (c == m->busy && !inline_crash)) /* the loop stopped halfway through changing it */
        return LOST;
    arrpc__pieces *pc = &R.pieces;
    pc->n = 0;
    pc->bytes = 0;
    size_t out = inline_crash ? m->call_out_keep : arrpc__buf_used(&c->out);
    const uint8_t *unrun = NULL;
    size_t unrun_len = 0;
    if (arrpc__pieces_add(pc, c->out.data + c->out.head, out) != 0 ||
        arrpc__calls_rescue_replies(c, inline_crash ? m->call_reply : NULL, k->sig, pc, &unrun,
                                    &unrun_len) != 0 ||
        (inline_crash && !m->call_reply && arrpc__pieces_add_crash(pc, k->sig) != 0))
        return LOST;
    write_now(c, pc);
    size_t reply_len = pc->bytes;
    const uint8_t *in = inline_crash ? m->call_rest : c->in.data + c->in.head;
    size_t in_len = inline_crash ? m->call_rest_len : arrpc__buf_used(&c->in);
    if (reply_len > ARRPC_HANDOFF_REPLY_MAX || arrpc__pieces_add(pc, unrun, unrun_len) != 0 ||
        arrpc__pieces_add(pc, in, in_len) != 0)
        return LOST;
    return send_conn(c, reply_len) == 0 ? SAVED : LOST;
}

/* ---- the rescue --------------------------------------------------------------------------- */

/* Stops every thread that may own the loop but this one: the owner where its marks say the loop
 * is whole, the other at once (a standby, or a thread left in a long call, touches no loop). */
static int freeze_loop(pid_t self)
{
    int asked = 0;
    for (unsigned i = 0; i < 2; i++) {
        pid_t tid = atomic_load(&R.lead_tid[i]);
        if (tid && tid != self) {
            syscall(SYS_tgkill, R.pid, tid, FREEZE_SIGNAL);
            asked++;
        }
    }
    uint64_t until = now_ms() + ARRPC_RESCUE_FREEZE_MS;
    while (atomic_load(&R.frozen) < asked) {
        if (now_ms() >= until) return -1;
        sleep_ms(1);
    }
    return 0;
}

/* Calls on other handler threads finish within the bound, or their connections are lost. */
ARRPC_RESCUE_READS static void wait_for_calls(const arrpc__loop *loop)
{
    uint64_t until = now_ms() + ARRPC_RESCUE_WAIT_MS;
    for (;;) {
        int settled = 1;
        unsigned left = loop->nconns;
        for (const arrpc__conn *c = loop->conns; c && left && settled; c = c->next, left--)
            settled = arrpc__calls_settled(c);
        if (settled || now_ms() >= until) return;
        sleep_ms(1);
    }
}

/* Counts the calling thread, one of the loop's two, as stopped for the rescue: once, however
 * many of its ways to stop (a freeze, a crash of its own, the end of its call) it goes through. */
static void count_frozen(pid_t tid)
{
    for (unsigned i = 0; i < 2; i++)
        if (tid == atomic_load(&R.lead_tid[i])) {
            if (!atomic_exchange(&R.lead_counted[i], 1)) atomic_fetch_add(&R.frozen, 1);
            return;
        }
    atomic_fetch_add(&R.frozen, 1);
}

ARRPC_RESCUE_READS static void rescue(arrpc__loop *loop, pid_t self, const crash_info *k)
{
    unsigned saved = 0, lost = 0;
    /* With the list half changed, no walk is safe: every connection closes as before, and the
     * master counts them lost (rescued stays 0). */
    if (freeze_loop(self) != 0 || loop->marks.list_busy) {
        log_rescue(k->sig, 0, 0, 1);
        return;
    }
    if (loop->pool) wait_for_calls(loop);
    unsigned left = loop->nconns; /* a walk bounded even if the list were damaged */
    for (arrpc__conn *c = loop->conns; c && left; c = c->next, left--) {
        int result = save(loop, c, k);
        saved += result == SAVED;
        lost += result == LOST;
    }
    arrpc__stats_crash(loop, saved, lost);
    log_rescue(k->sig, saved, lost, 0);
}

ARRPC_RESCUE_READS static rescue_thread *own_thread(pid_t tid)
{
    for (unsigned i = 0; i < R.nthreads + 2; i++)
        if (R.thread[i].tid == tid) return &R.thread[i];
    return NULL;
}

ARRPC_RESCUE_READS static void on_crash(int sig, siginfo_t *si, void *context)
{
    (void)context;
    arrpc__loop *loop = atomic_load(&R.loop);
    pid_t tid = own_tid();
    /* kill(2) from another process (the master aborting a stuck worker, an operator): no call
     * crashed, so none is answered with the error; a call still running is lost. */
    int external = si->si_code == SI_USER && si->si_pid != R.pid;
    rescue_thread *t = own_thread(tid);
    crash_info k = {.sig = sig};
    if (loop && !external && t && t->job) {
        arrpc__calls_job_crashed(t->job, sig); /* whoever rescues answers it with the error */
        k.conn = arrpc__calls_job_conn(t->job);
    } else if (loop && !external && tid == atomic_load(&R.loop_tid) && loop->marks.call_conn) {
        k.conn = loop->marks.call_conn;
        k.inline_call = 1;
    }
    if (!loop) {
        die_on_return(sig);
        return;
    }
    if (atomic_exchange(&R.claimed, 1)) { /* another thread rescues, and then ends us all */
        if (tid == atomic_load(&R.lead_tid[0]) || tid == atomic_load(&R.lead_tid[1]))
            count_frozen(tid); /* stopped: its marks say where */
        park();
    }
    rescue(loop, tid, &k);
    die_on_return(sig);
}

_Noreturn void arrpc__rescue_stop_here(void)
{
    sigset_t freeze;
    sigemptyset(&freeze);
    sigaddset(&freeze, FREEZE_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &freeze, NULL);
    count_frozen(own_tid());
    park();
}

/* The loop's thread stops here, or, when it is in the middle of changing a connection or the
 * list, as soon as it is done with that (arrpc__loop_stop_if_asked): the rescue then finds every
 * connection whole. */
ARRPC_RESCUE_READS static void on_freeze(int sig)
{
    (void)sig;
    arrpc__loop *loop = atomic_load(&R.loop);
    pid_t tid = own_tid();
    int owner = tid == atomic_load(&R.loop_tid);
    if (loop && owner && (loop->marks.busy || loop->marks.list_busy)) {
        loop->marks.stop_pending = 1;
        return;
    }
    /* A thread left in its call when the standby took the loop over touches no loop: like a
     * handler thread's, the call may finish (or crash, and be answered with the error) while
     * the rescue waits for calls, and the thread stops once it is over
     * (arrpc__rescue_thread_call). Stopped here, its call would be lost. */
    rescue_thread *t = own_thread(tid);
    if (loop && !owner && t && t->job) {
        count_frozen(tid);
        return;
    }
    arrpc__rescue_stop_here();
}

/* ---- setting up --------------------------------------------------------------------------- */

static void crash_set(sigset_t *set)
{
    sigemptyset(set);
    for (unsigned i = 0; i < NSIGNALS; i++)
        sigaddset(set, crash_signals[i].sig);
}

/* This thread's alternate stack: a crash from a stack overflow still has room to run. */
static void give_stack(unsigned index)
{
    stack_t ss = {.ss_sp = R.stacks + (size_t)index * ARRPC_RESCUE_STACK_BYTES,
                  .ss_size = ARRPC_RESCUE_STACK_BYTES};
    sigaltstack(&ss, NULL);
}

void arrpc__rescue_thread_call(unsigned thread, struct arrpc__call_job *job)
{
    if (!atomic_load_explicit(&R.loop, memory_order_relaxed) || thread >= R.nthreads + 2) return;
    rescue_thread *t = &R.thread[thread];
    if (!t->tid) { /* a handler thread starts with every signal blocked (pool.c) */
        give_stack(1 + thread);
        sigset_t crash;
        crash_set(&crash);
        pthread_sigmask(SIG_UNBLOCK, &crash, NULL);
        t->tid = own_tid();
    }
    atomic_signal_fence(memory_order_seq_cst);
    t->job = job;
    atomic_signal_fence(memory_order_seq_cst);
    /* A rescue runs: a handler thread, or a loop thread left in its call, does nothing more.
     * (The loop's owner goes on to where its marks let it stop.) */
    if (!job && atomic_load(&R.claimed) && own_tid() != atomic_load(&R.loop_tid)) park();
}

static int pack_errors(void)
{
    for (unsigned i = 0; i < NSIGNALS; i++) {
        char text[64];
        snprintf(text, sizeof text, "the handler crashed (%s)", crash_signals[i].name);
        if (arrpc__dispatch_rpc_error(&R.error[i], text) != 0) return -1;
    }
    return 0;
}

int arrpc__rescue_install(arrpc__loop *loop, int rescue_fd, char *err, size_t errlen)
{
    R.fd = rescue_fd;
    R.pid = getpid();
    atomic_store(&R.loop_tid, own_tid());
    atomic_store(&R.lead_tid[0], own_tid());
    R.nthreads = loop->cfg->threads;
    int sndbuf = ARRPC_RESCUE_SNDBUF; /* best effort: the kernel caps it */
    setsockopt(rescue_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    size_t bytes = (size_t)(3 + R.nthreads) * ARRPC_RESCUE_STACK_BYTES;
    R.stacks =
        mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (R.stacks == MAP_FAILED || pack_errors() != 0) {
        if (R.stacks == MAP_FAILED) R.stacks = NULL;
        snprintf(err, errlen, "cannot prepare for handler crashes: out of memory");
        return ARRPC_ENOMEM;
    }
    give_stack(0);
    struct sigaction crash = {.sa_sigaction = on_crash, .sa_flags = SA_SIGINFO | SA_ONSTACK};
    crash_set(&crash.sa_mask); /* a fault inside the rescue then kills plainly */
    sigaddset(&crash.sa_mask, FREEZE_SIGNAL);
    struct sigaction freeze = crash;
    freeze.sa_flags = SA_ONSTACK;
    freeze.sa_handler = on_freeze;
    sigaction(FREEZE_SIGNAL, &freeze, NULL);
    for (unsigned i = 0; i < NSIGNALS; i++)
        sigaction(crash_signals[i].sig, &crash, NULL);
    atomic_store(&R.loop, loop);
    return 0;
}

void arrpc__rescue_lead_thread(unsigned seat)
{
    if (!atomic_load(&R.loop)) return;
    give_stack(1 + R.nthreads + seat);
    sigset_t set;
    crash_set(&set);
    sigaddset(&set, FREEZE_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    atomic_store(&R.lead_tid[seat], own_tid());
}

void arrpc__rescue_loop_thread(void)
{
    atomic_store(&R.loop_tid, own_tid());
}

void arrpc__rescue_uninstall(void)
{
    if (!atomic_load(&R.loop)) return;
    atomic_store(&R.loop, NULL);
    atomic_store(&R.lead_tid[1], 0);
    for (unsigned i = 0; i < NSIGNALS; i++)
        signal(crash_signals[i].sig, SIG_DFL);
    for (unsigned i = 0; i < NSIGNALS; i++)
        arrpc__buf_free(&R.error[i]);
    /* The stacks stay: a handler thread may still be on its way out. */
}
