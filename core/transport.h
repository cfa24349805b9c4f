/* transport.h -- one connection's byte stream behind a small table of functions: plain TCP
 * (tcp.c) or TLS (tls.c). The worker loop and the client call through the table and never ask
 * which one they have, except to know that a TLS stream cannot be handed to another process. */
#ifndef ARRPC_CORE_TRANSPORT_H
#define ARRPC_CORE_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>

/* Bytes offered to one read, by the worker (its one scratch buffer, then a connection's buffer)
 * and by the client. 64 KiB: a pipelined batch of small requests arrives in one read and one
 * wake-up instead of one per request, four full TLS records (16 KiB each) fit, and the cost is
 * one buffer per worker, not per connection (an idle connection holds no input memory). */
#define ARRPC_READ_CHUNK (64u * 1024u)

/* What a call that returned -1 with errno EAGAIN waits for (t->want). A TLS read can need the
 * socket to be writable and a TLS write readable (handshake messages, key updates). */
enum { ARRPC_WANT_READ = 1, ARRPC_WANT_WRITE = 2 };

typedef struct arrpc__transport arrpc__transport;

typedef struct arrpc__transport_ops {
    const char *name; /* "tcp" or "tls", for logs */
    /* The whole state is in the kernel: the fd alone may move to another process. */
    int can_hand_over;
    /* > 0 bytes; 0 at the peer's end of stream; -1 with errno set (EAGAIN: wait for t->want). */
    ssize_t (*read)(arrpc__transport *t, void *buf, size_t len);
    ssize_t (*write)(arrpc__transport *t, const void *buf, size_t len);
    /* 1 when the stream is ready for data, 0 to be called again once t->want is ready, or an
     * error with the reason in why: ARRPC_ECLOSED (the peer went away), ARRPC_ETLS (refused). */
    int (*handshake)(arrpc__transport *t, char *why, size_t whylen);
    /* True when bytes are buffered above the socket: no epoll event will announce them. */
    int (*has_pending)(const arrpc__transport *t);
    void (*shutdown)(arrpc__transport *t); /* we send no more (TLS: close_notify, then FIN) */
    void (*close)(arrpc__transport *t);    /* frees the state and closes the fd */
} arrpc__transport_ops;

struct arrpc__transport {
    const arrpc__transport_ops *ops;
    int fd;
    int want;                /* ARRPC_WANT_* after an EAGAIN; 0 after a read that returned bytes */
    void *tls;               /* the WOLFSSL object; NULL for TCP */
    int peer_closed_cleanly; /* TLS: the peer sent close_notify (read returned 0 because of it) */
    int tls_err;             /* TLS: wolfSSL's code for the last failure; 0: none */
};

extern const arrpc__transport_ops arrpc__tcp_ops;

/* Plain TCP over a connected socket, which the transport then owns. */
void arrpc__transport_tcp(arrpc__transport *t, int fd);

#endif
