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
/* Bytes of a peer identity kept, its NUL included (what arrpc_call_tls_peer promises). */
#define ARRPC_PEER_IDENTITY_MAX 512u

/* What a call that returned -1 with errno EAGAIN waits for (t->want). A TLS read can need the
 * socket to be writable and a TLS write readable (handshake messages, key updates). */
enum { ARRPC_WANT_READ = 1, ARRPC_WANT_WRITE = 2 };

typedef struct arrpc__transport arrpc__transport;

/* Every operation takes the transport it was set up on (arrpc__transport_tcp, or
 * arrpc__transport_tls_server/_client in tls.h); none blocks, since the fd is nonblocking. */
typedef struct arrpc__transport_ops {
    /* "tcp" or "tls", for logs. */
    const char *name;
    /* True when the whole state is in the kernel, so that the fd alone may move to another
     * process (the worker's hand-over). TLS: false, the session keys live in this process. */
    int can_hand_over;

    /* ---- the stream ---- */

    /* Reads up to len bytes into buf. Returns > 0 bytes; 0 at the peer's end of stream (TLS:
     * t->peer_closed_cleanly says whether close_notify came first); -1 with errno set: EAGAIN
     * when nothing is there yet (wait for t->want, which may be ARRPC_WANT_WRITE under TLS), any
     * other errno for a broken stream (last_error may then say more). */
    ssize_t (*read)(arrpc__transport *t, void *buf, size_t len);
    /* Writes up to len bytes of buf. Returns > 0 bytes taken, or -1 with errno set as for read.
     * After EAGAIN, call again with the same first unsent byte (TLS keeps what it encrypted). */
    ssize_t (*write)(arrpc__transport *t, const void *buf, size_t len);
    /* One step of setting up the stream. Returns 1 when it is ready for data (TCP: at once), 0
     * to be called again once t->want is ready, or an error with the reason in why:
     * ARRPC_ECLOSED (the peer went away), ARRPC_ETLS (refused: certificate, policy, alert). */
    int (*handshake)(arrpc__transport *t, char *why, size_t whylen);
    /* True when bytes are held above the socket (TLS: decrypted, or read ahead): no epoll event
     * will announce them, so the caller reads again at once. TCP: never. */
    int (*has_pending)(const arrpc__transport *t);

    /* ---- the end of the stream ---- */

    /* We send no more: TLS sends close_notify, then both send FIN. Reading may go on. */
    void (*shutdown)(arrpc__transport *t);
    /* FIN only, with no TLS record: after a failed handshake (whose alert is already written),
     * where there is no session to close. */
    void (*half_close)(arrpc__transport *t);
    /* Reads and discards up to len bytes straight from the socket, below any TLS, into buf as
     * scratch: for lingering after shutdown, when the stream is over and only the peer's EOF
     * matters. Returns as recv does: > 0, 0 at EOF, -1 with errno. Leaves t->want alone. */
    ssize_t (*drain)(arrpc__transport *t, void *buf, size_t len);
    /* Frees the state and closes the fd (which also takes it out of any epoll set). */
    void (*close)(arrpc__transport *t);

    /* ---- texts ---- */

    /* The reason of the last failed read, write or handshake, when the transport itself saw
     * more than errno says (TLS: the wolfSSL error, such as a bad record or a fatal alert),
     * written into buf (len > 0) as a sentence; returns buf. NULL when there is none (TCP:
     * always; errno says it all), and then neither buf nor errno is touched. */
    const char *(*last_error)(const arrpc__transport *t, char *buf, size_t len);
    /* What the stream is, for logs, written into buf (len > 0); returns buf. TCP: "tcp"; TLS
     * after the handshake: "TLSv1.3 TLS13-AES128-GCM-SHA256", with " (resumed)" after a
     * resumed session. Never NULL. */
    const char *(*describe)(const arrpc__transport *t, char *buf, size_t len);
    /* Who the peer proved to be, after the handshake: the subject of the certificate it
     * presented and we verified, on one line ("/O=Example/CN=client"), written into buf (len > 0;
     * ARRPC_PEER_IDENTITY_MAX fits any we keep, a longer one is cut); returns buf. NULL when the
     * peer presented none (TCP: always; TLS without mutual authentication). */
    const char *(*peer_identity)(const arrpc__transport *t, char *buf, size_t len);
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

/* The socket calls that end any stream, shared by tcp.c and tls.c: the half_close and drain
 * operations, and closing the fd (t->fd becomes -1; nothing when it is -1 already). */
void arrpc__transport_half_close(arrpc__transport *t);
ssize_t arrpc__transport_drain(arrpc__transport *t, void *buf, size_t len);
void arrpc__transport_close_fd(arrpc__transport *t);

#endif
