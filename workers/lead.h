/* lead.h -- handler calls on the loop's own thread, the loop handed to a standby thread when one
 * runs long (leader/follower). Internal to workers/.
 *
 * With handler threads, every call used to leave the loop's thread: the loop woke a handler
 * thread and the thread woke the loop back, two context switches per batch of calls, which on a
 * virtual machine cost more CPU than a short call itself. Now, while a standby thread waits, the
 * loop runs its calls itself, as with --threads 0. A timer armed for the patience watches each
 * call; when one runs longer (it waits: a database, a sleep), the standby takes the loop over and
 * serves every other connection, and the thread left in the call finishes it as a handler thread
 * would, then becomes the standby. With no standby waiting (it is in a long call of its own),
 * calls go to the handler threads as before.
 *
 * Two threads can own the loop: the one that started it and the standby thread made here. One
 * owns it at a time; `state` says who may touch it (a counter bumped by every call and every
 * take-over, so that a late owner cannot mistake a newer call for its own). */
#ifndef ARRPC_WORKERS_LEAD_H
#define ARRPC_WORKERS_LEAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "../core/fast_clock.h"

struct arrpc__loop;
struct arrpc__dispatcher;

typedef struct arrpc__lead {
    int enabled;            /* handler threads, and a busy stamp to spare for the standby */
    int made;               /* arrpc__lead_start ran: its descriptors are set (-1 or open) */
    _Atomic uint64_t state; /* counter << 2 | LEAD_OWNED or LEAD_INLINE */
    _Atomic uint64_t call_since_ns; /* when the owner's current inline call began */
    _Atomic int standby_ready;      /* the other thread waits to take over */
    _Atomic int inline_active;      /* the owner is running inline calls: the timer matters */
    int timer_fd, stop_fd;
    uint64_t armed_at_ns; /* the owner's: when it last armed the timer */
    pthread_t standby;
    int standby_started;
    struct arrpc__dispatcher *dispatcher[2]; /* the starting thread's, the standby thread's */
    /* Each seat's own clock for its inline calls: a thread the standby took the loop from must
     * not read the loop's (the new owner anchors it meanwhile). */
    arrpc__fast_clock clock[2];
} arrpc__lead;

/* Sets up the standby thread when the loop has handler threads (after arrpc__calls_init). 0, or
 * an error with its text in err. */
int arrpc__lead_start(struct arrpc__loop *loop, char *err, size_t errlen);
/* The starting thread, done serving: stops the standby thread and waits for it. */
void arrpc__lead_finish(struct arrpc__loop *loop);
/* Whether a call may run on the loop's thread now: a standby waits to take over. */
int arrpc__lead_can_inline(const struct arrpc__loop *loop);
/* Around the inline calls of one loop iteration: arms and disarms the watch. */
void arrpc__lead_inline_begin(struct arrpc__loop *loop);
void arrpc__lead_inline_end(struct arrpc__loop *loop);
/* Around one inline call: the token begin returns, and end's answer, 1 while the caller still
 * owns the loop, 0 when the standby took it over meanwhile (then the caller must not touch the
 * loop again: it finishes its call as a handler thread does, and waits in arrpc__lead_wait). */
uint64_t arrpc__lead_call_begin(struct arrpc__loop *loop);
int arrpc__lead_call_end(struct arrpc__loop *loop, uint64_t token);
/* Waits as the standby: 1 once this thread took the loop over, 0 when the worker stops. */
int arrpc__lead_wait(struct arrpc__loop *loop);
/* This thread's dispatcher and rescue slot for inline calls (0: the starting thread). */
unsigned arrpc__lead_seat(void);

#endif
