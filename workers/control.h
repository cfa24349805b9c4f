/* control.h -- the messages between the master and a worker, and between two workers handing
 * over a connection. Both travel on SOCK_SEQPACKET socket pairs, descriptors with SCM_RIGHTS. */
#ifndef ARRPC_WORKERS_CONTROL_H
#define ARRPC_WORKERS_CONTROL_H

#include <stdint.h>

typedef enum {
    ARRPC_CTL_READY = 1,   /* worker -> master: accepting; arg: 0 */
    ARRPC_CTL_STOP,        /* master -> worker: drain and exit */
    ARRPC_CTL_RETIRE,      /* master -> worker: stop accepting, hand every connection over the
                              attached socket (or drain when none is attached), then exit */
    ARRPC_CTL_ADOPT,       /* master -> worker: take connections arriving on the attached socket */
    ARRPC_CTL_LISTEN_ADD,  /* master -> worker: also accept on the attached socket; arg: slot */
    ARRPC_CTL_LISTEN_DROP, /* master -> worker: stop accepting on slot arg's socket */
    ARRPC_CTL_REOPEN_LOG,  /* master -> worker: reopen the access log (SIGUSR1); arg: 0 */
} arrpc__ctl_type;

typedef struct arrpc__ctl_msg {
    uint32_t type;
    uint32_t arg;
} arrpc__ctl_msg;

/* A connection handed over: this header, then `inline_len` bytes: first `reply_len` bytes of
 * replies not yet written (the receiver writes them before anything else), then `pending_len`
 * bytes already read but not answered. The connection's descriptor is attached, and when the
 * bytes did not fit inline (reply_len + pending_len > inline_len) a memfd holding all of them,
 * in the same order, is attached too. A retiring worker hands over at a request boundary and
 * sends no reply bytes; a crashing worker (rescue.c) does. The peer's name travels because a
 * PROXY header, read once by the first worker, may have set it; the age limit travels so that
 * moving does not make a connection young again. */
#define ARRPC_HANDOFF_INLINE_MAX (32u * 1024u)
#define ARRPC_HANDOFF_MAGIC 0x68616e33u /* "han3": the header with reply bytes */
#define ARRPC_HANDOFF_PEER_MAX 64       /* ARRPC_ADDR_MAX */
/* Reply bytes one handed-over connection may bring: the output high-water mark plus a little
 * more than one largest reply would be enough for an inline worker; queued replies (threads,
 * deferred) can be more, so the bound is generous but fixed. */
#define ARRPC_HANDOFF_REPLY_MAX (64u * 1024u * 1024u)

typedef struct arrpc__handoff_header {
    uint32_t magic;
    uint32_t inline_len;
    uint64_t pending_len;
    uint64_t reply_len;
    uint64_t close_after_ms; /* 0: no age limit */
    char peer[ARRPC_HANDOFF_PEER_MAX];
} arrpc__handoff_header;

#endif
