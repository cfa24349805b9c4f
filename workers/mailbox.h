/* mailbox.h -- messages from any thread to one worker's event loop: a locked list and an eventfd
 * that the loop watches, so a handler thread or a deferred reply wakes the loop at once.
 *
 * Many senders, one reader (the loop's thread). A message is any struct that starts with an
 * arrpc__mail; the mailbox never allocates, so posting cannot fail. */
#ifndef ARRPC_WORKERS_MAILBOX_H
#define ARRPC_WORKERS_MAILBOX_H

#include <pthread.h>

typedef struct arrpc__mail {
    struct arrpc__mail *next;
} arrpc__mail;

typedef struct arrpc__mailbox {
    pthread_mutex_t lock;
    arrpc__mail *head, *tail; /* in the order they were posted */
    int fd;                   /* eventfd: readable while mail waits */
} arrpc__mailbox;

/* 0, or ARRPC_ESYS (no eventfd). */
int arrpc__mailbox_init(arrpc__mailbox *box);
/* Closes the eventfd; mail still in the box is the caller's to free first (take it). */
void arrpc__mailbox_destroy(arrpc__mailbox *box);
/* From any thread. The loop sees the mail after its next wake-up. */
void arrpc__mailbox_post(arrpc__mailbox *box, arrpc__mail *mail);
/* The loop's side: every mail posted so far, oldest first, as a list (NULL: none). Clears the
 * eventfd, so the loop sleeps until the next post. */
arrpc__mail *arrpc__mailbox_take(arrpc__mailbox *box);

#endif
