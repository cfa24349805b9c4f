/* mailbox.c -- messages from any thread to a worker's loop (see mailbox.h). */
#include "mailbox.h"

#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "arrpc.h"

int arrpc__mailbox_init(arrpc__mailbox *box)
{
    box->head = box->tail = NULL;
    box->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (box->fd < 0) return ARRPC_ESYS;
    pthread_mutex_init(&box->lock, NULL);
    return 0;
}

void arrpc__mailbox_destroy(arrpc__mailbox *box)
{
    if (box->fd < 0) return;
    close(box->fd);
    box->fd = -1;
    pthread_mutex_destroy(&box->lock);
}

void arrpc__mailbox_post(arrpc__mailbox *box, arrpc__mail *mail)
{
    mail->next = NULL;
    pthread_mutex_lock(&box->lock);
    int was_empty = box->head == NULL;
    if (box->tail)
        box->tail->next = mail;
    else
        box->head = mail;
    box->tail = mail;
    pthread_mutex_unlock(&box->lock);
    /* One wake-up per batch: the loop takes everything at once, so a second write while the
     * first is unread would only cost a system call. */
    if (was_empty) {
        uint64_t one = 1;
        ssize_t n = write(box->fd, &one, sizeof one);
        (void)n; /* fails only when the counter is full, and then the loop is woken anyway */
    }
}

arrpc__mail *arrpc__mailbox_take(arrpc__mailbox *box)
{
    uint64_t count;
    ssize_t n = read(box->fd, &count, sizeof count); /* before taking: no post is missed */
    (void)n;
    pthread_mutex_lock(&box->lock);
    arrpc__mail *all = box->head;
    box->head = box->tail = NULL;
    pthread_mutex_unlock(&box->lock);
    return all;
}
