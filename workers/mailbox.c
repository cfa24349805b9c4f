/* mailbox.c -- messages from any thread to a worker's loop (see mailbox.h). */
#include "mailbox.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "arrpc.h"
#include "../core/clock.h"

struct arrpc__mailbox {
    pthread_mutex_t lock;
    arrpc__mail *head, *tail; /* in the order they were posted */
    int closed;
    /* When mail was first posted quietly since the loop last took or was woken; 0: none. */
    _Atomic uint64_t unannounced_since_ns;
    int fd;
    _Atomic unsigned refs;
};

void arrpc__mutex_init_adaptive(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
}

arrpc__mailbox *arrpc__mailbox_new(void)
{
    arrpc__mailbox *box = calloc(1, sizeof *box);
    if (!box) return NULL;
    box->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (box->fd < 0) {
        free(box);
        return NULL;
    }
    arrpc__mutex_init_adaptive(&box->lock);
    atomic_init(&box->refs, 1);
    return box;
}

void arrpc__mailbox_hold(arrpc__mailbox *box)
{
    atomic_fetch_add(&box->refs, 1);
}

void arrpc__mailbox_release(arrpc__mailbox *box)
{
    if (!box || atomic_fetch_sub(&box->refs, 1) != 1) return;
    close(box->fd);
    pthread_mutex_destroy(&box->lock);
    free(box);
}

int arrpc__mailbox_fd(const arrpc__mailbox *box)
{
    return box->fd;
}

static void ring(arrpc__mailbox *box)
{
    uint64_t one = 1;
    ssize_t n = write(box->fd, &one, sizeof one);
    (void)n; /* fails only when the counter is full, and then the loop is woken anyway */
}

/* Appends mail; whether the loop must be woken for it (0 when quiet). */
static int append(arrpc__mailbox *box, arrpc__mail *mail, int quiet, int *wake)
{
    mail->next = NULL;
    pthread_mutex_lock(&box->lock);
    if (box->closed) {
        pthread_mutex_unlock(&box->lock);
        return ARRPC_ECLOSED;
    }
    /* One wake-up per batch: the loop takes everything at once, so a second write while the
     * first is unread would only cost a system call. The loop reads the eventfd before it takes
     * the list, so a post it did not take leaves the eventfd readable. */
    uint64_t since = atomic_load_explicit(&box->unannounced_since_ns, memory_order_relaxed);
    *wake = !quiet && (box->head == NULL || since);
    if (quiet && !since) since = arrpc__clock_ns();
    atomic_store_explicit(&box->unannounced_since_ns, quiet ? since : 0, memory_order_relaxed);
    if (box->tail)
        box->tail->next = mail;
    else
        box->head = mail;
    box->tail = mail;
    pthread_mutex_unlock(&box->lock);
    return 0;
}

int arrpc__mailbox_post(arrpc__mailbox *box, arrpc__mail *mail)
{
    int wake = 0, rc = append(box, mail, 0, &wake);
    if (wake) ring(box);
    return rc;
}

int arrpc__mailbox_post_quietly(arrpc__mailbox *box, arrpc__mail *mail)
{
    int wake = 0;
    return append(box, mail, 1, &wake);
}

void arrpc__mailbox_wake(arrpc__mailbox *box)
{
    pthread_mutex_lock(&box->lock);
    int wake = atomic_load_explicit(&box->unannounced_since_ns, memory_order_relaxed) != 0;
    atomic_store_explicit(&box->unannounced_since_ns, 0, memory_order_relaxed);
    pthread_mutex_unlock(&box->lock);
    if (wake) ring(box);
}

uint64_t arrpc__mailbox_unannounced_since(const arrpc__mailbox *box)
{
    return atomic_load_explicit(&box->unannounced_since_ns, memory_order_relaxed);
}

static arrpc__mail *take_locked(arrpc__mailbox *box)
{
    arrpc__mail *all = box->head;
    box->head = box->tail = NULL;
    atomic_store_explicit(&box->unannounced_since_ns, 0, memory_order_relaxed); /* all taken */
    return all;
}

arrpc__mail *arrpc__mailbox_take(arrpc__mailbox *box)
{
    uint64_t count;
    ssize_t n = read(box->fd, &count, sizeof count); /* first: see arrpc__mailbox_post */
    (void)n;
    pthread_mutex_lock(&box->lock);
    arrpc__mail *all = take_locked(box);
    pthread_mutex_unlock(&box->lock);
    return all;
}

arrpc__mail *arrpc__mailbox_close(arrpc__mailbox *box)
{
    pthread_mutex_lock(&box->lock);
    box->closed = 1;
    arrpc__mail *all = take_locked(box);
    pthread_mutex_unlock(&box->lock);
    return all;
}
