/* tcp.c -- the plain TCP transport: the socket calls themselves. */
#include <errno.h>
#include <stdio.h>
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

void arrpc__transport_half_close(arrpc__transport *t)
{
    shutdown(t->fd, SHUT_WR);
}

ssize_t arrpc__transport_drain(arrpc__transport *t, void *buf, size_t len)
{
    return recv(t->fd, buf, len, 0);
}

void arrpc__transport_close_fd(arrpc__transport *t)
{
    if (t->fd >= 0) close(t->fd);
    t->fd = -1;
}

static const char *tcp_last_error(const arrpc__transport *t, char *buf, size_t len)
{
    (void)t, (void)buf, (void)len;
    return NULL; /* errno said it all */
}

static const char *tcp_describe(const arrpc__transport *t, char *buf, size_t len)
{
    snprintf(buf, len, "%s", t->ops->name);
    return buf;
}

static const char *tcp_peer_identity(const arrpc__transport *t, char *buf, size_t len)
{
    (void)t, (void)buf, (void)len;
    return NULL; /* an address is not an identity */
}

/* Ending a TCP stream is sending FIN: shutdown and half_close are one call. */
const arrpc__transport_ops arrpc__tcp_ops = {
    .name = "tcp",
    .can_hand_over = 1,
    .read = tcp_read,
    .write = tcp_write,
    .handshake = tcp_handshake,
    .has_pending = tcp_has_pending,

    .shutdown = arrpc__transport_half_close,
    .half_close = arrpc__transport_half_close,
    .drain = arrpc__transport_drain,
    .close = arrpc__transport_close_fd,

    .last_error = tcp_last_error,
    .describe = tcp_describe,
    .peer_identity = tcp_peer_identity,
};

void arrpc__transport_tcp(arrpc__transport *t, int fd)
{
    *t = (arrpc__transport){.ops = &arrpc__tcp_ops, .fd = fd};
}
