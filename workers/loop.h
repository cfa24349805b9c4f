/* loop.h -- the state one worker's epoll loop shares with its connections. Internal to workers/. */
#ifndef ARRPC_WORKERS_LOOP_H
#define ARRPC_WORKERS_LOOP_H

#include <stdint.h>

#include "../core/buf.h"
#include "../core/net.h"
#include "../core/scan.h"
#include "dispatch.h"
#include "worker.h"

enum {
    CONN_EOF = 1 << 0,     /* the peer finished sending (read returned 0) */
    CONN_DOOMED = 1 << 1,  /* an error reply is queued: close once it is written */
    CONN_CLOSE = 1 << 2,   /* close at the end of this loop iteration */
    CONN_LINGER = 1 << 3,  /* write side shut after an error: discard input until EOF */
    CONN_QUEUED = 1 << 4,  /* on the loop's flush list */
};

typedef struct arrpc__conn {
    int fd;
    unsigned flags;
    uint32_t events;       /* what epoll watches for it now */
    arrpc__buf in;         /* bytes read but not yet answered: at most one partial message... */
    size_t scanned;        /* ...of which this many were already fed to the scanner */
    arrpc__buf out;        /* replies not yet written */
    arrpc__scan *scan;
    uint64_t last_active_ms;
    uint64_t linger_until_ms;
    struct arrpc__conn *prev, *next; /* every connection of the loop */
    struct arrpc__conn *next_flush;  /* connections with replies to write this iteration */
    char peer[ARRPC_ADDR_MAX];
} arrpc__conn;

typedef struct arrpc__loop {
    const arrpc__worker_config *cfg;
    int epfd;
    arrpc__dispatcher *dispatcher;
    arrpc__conn *conns;
    unsigned nconns;
    unsigned nlingering;
    arrpc__conn *flush_list;
    uint8_t *scratch;      /* one read buffer for every connection with no partial message */
    uint64_t now_ms;       /* monotonic, refreshed once per iteration */
} arrpc__loop;

uint64_t arrpc__now_ms(void);

/* Connections: created on accept, driven by epoll events, freed only by the loop. */
arrpc__conn *arrpc__conn_open(arrpc__loop *loop, int fd);
void arrpc__conn_on_event(arrpc__loop *loop, arrpc__conn *c, uint32_t events);
/* Writes queued replies; called for every queued connection before the loop sleeps. */
void arrpc__conn_flush(arrpc__loop *loop, arrpc__conn *c);
/* True when nothing is unanswered or unwritten: the connection may close at a request boundary. */
int arrpc__conn_idle(const arrpc__conn *c);
void arrpc__conn_free(arrpc__loop *loop, arrpc__conn *c);

#endif
