/* tcp.c -- the plain TCP transport: the socket calls themselves. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

static ssize_t tcp_read(arrpc__transport *t, void *buf, size_t len)
{
    ssize_t n = recv(t->fd, buf, len, 0);
    t->want = n < 0 ? ARRPC_WANT_READ : 0;
    return n;
}

static ssize_t tcp_write(arrpc__transport *t, const void *buf, size_t len)
{
    ssize_t n = send(t->fd, buf, len, MSG_NOSIGNAL);
    if (n < 0) t->want = ARRPC_WANT_WRITE;
    return n;
}

static int tcp_handshake(arrpc__transport *t, char *why, size_t whylen)
{
    (void)t, (void)why, (void)whylen;
    return 1;
}

static int tcp_has_pending(const arrpc__transport *t)
{
    (void)t;
    return 0;
}

static void tcp_shutdown(arrpc__transport *t)
{
    shutdown(t->fd, SHUT_WR);
}

static void tcp_close(arrpc__transport *t)
{
    if (t->fd >= 0) close(t->fd);
    t->fd = -1;
}

const arrpc__transport_ops arrpc__tcp_ops = {
    .name = "tcp",
    .can_hand_over = 1,
    .read = tcp_read,
    .write = tcp_write,
    .handshake = tcp_handshake,
    .has_pending = tcp_has_pending,
    .shutdown = tcp_shutdown,
    .close = tcp_close,
};

void arrpc__transport_tcp(arrpc__transport *t, int fd)
{
    *t = (arrpc__transport){.ops = &arrpc__tcp_ops, .fd = fd};
}
