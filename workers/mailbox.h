/* mailbox.h -- messages from any thread to one worker's event loop: a locked list and an eventfd
 * that the loop watches, so a handler thread or a deferred reply wakes the loop at once.
 *
 * Many senders, one reader (the loop's thread). A message is any struct that starts with an
 * arrpc__mail; posting never allocates. The mailbox is reference-counted: a deferred call that a
 * plugin's thread may answer after the worker's loop has ended holds a reference, so that its
 * late answer finds a closed mailbox instead of freed memory. */
#ifndef ARRPC_WORKERS_MAILBOX_H
#define ARRPC_WORKERS_MAILBOX_H

#include <pthread.h>
#include <stdint.h>

typedef struct arrpc__mail {
    struct arrpc__mail *next;
    unsigned kind; /* what the containing struct is: the owner's tag */
} arrpc__mail;

typedef struct arrpc__mailbox arrpc__mailbox;

/* A mutex that spins a little before it sleeps: the loop's and the handler threads' critical
 * sections are a few pointer moves, and sleeping on each brief collision cost a context switch
 * per request (perf: most of a threaded worker's time was futex wake and wait). */
void arrpc__mutex_init_adaptive(pthread_mutex_t *m);

/* A new mailbox with one reference (the loop's), or NULL. */
arrpc__mailbox *arrpc__mailbox_new(void);
void arrpc__mailbox_hold(arrpc__mailbox *box);
/* Drops a reference; the last one frees the mailbox and closes its eventfd. */
void arrpc__mailbox_release(arrpc__mailbox *box);
/* The eventfd the loop watches: readable while mail waits. */
int arrpc__mailbox_fd(const arrpc__mailbox *box);
/* From any thread. 0, or ARRPC_ECLOSED after arrpc__mailbox_close: the mail stays the caller's. */
int arrpc__mailbox_post(arrpc__mailbox *box, arrpc__mail *mail);
/* As arrpc__mailbox_post, but without waking the loop: for a sender that will post again soon,
 * so that one wake-up brings the loop several mails. The sender must see that the loop is woken
 * later: by its next arrpc__mailbox_post (which announces what was posted quietly too) or by
 * arrpc__mailbox_wake. */
int arrpc__mailbox_post_quietly(arrpc__mailbox *box, arrpc__mail *mail);
/* Wakes the loop if mail posted quietly still waits unannounced. From any thread. */
void arrpc__mailbox_wake(arrpc__mailbox *box);
/* Since when mail posted quietly has waited unannounced (arrpc__clock_ns); 0: none. A glance
 * without the lock, for the loop to bound how long it sleeps: a sender whose next call turns
 * out slow leaves its quiet posts to the loop's look. */
uint64_t arrpc__mailbox_unannounced_since(const arrpc__mailbox *box);
/* The loop's side: every mail posted so far, oldest first, as a list (NULL: none). Clears the
 * eventfd, so the loop sleeps until the next post. */
arrpc__mail *arrpc__mailbox_take(arrpc__mailbox *box);
/* Refuses later posts (the loop is ending) and returns what was still waiting. */
arrpc__mail *arrpc__mailbox_close(arrpc__mailbox *box);

#endif
