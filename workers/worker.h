/* worker.h -- what a worker is given: its listening socket, its options, a stop signal. */
#ifndef ARRPC_WORKERS_WORKER_H
#define ARRPC_WORKERS_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "arrpc.h"

#define ARRPC_OUTPUT_HIGH_WATER (1024u * 1024u) /* unsent reply bytes that pause reading */
#define ARRPC_ACCEPT_BATCH 64                   /* accepts per wake-up, so one socket can't hog */
#define ARRPC_LINGER_MS 2000u                   /* after an error reply, wait this long for EOF */
#define ARRPC_WORKER_LISTENERS_MAX 8 /* its own slot's socket and those adopted on scale-down */
#define ARRPC_TIMER_TICK_MS 250      /* how often timeouts are checked when any is set */

typedef struct arrpc__worker_config {
    arrpc_handler_fn handler;
    void *udata; /* given to init, which may replace it; then to every call and to fini */
    const char *handler_name;
    arrpc_handler_init_fn init; /* run once before accepting; NULL: none */
    arrpc_handler_fini_fn fini; /* run once after serving, when init succeeded; NULL: none */
    const char *init_arg;       /* init's argument; NULL: none */
    const char *init_name;      /* what the log calls init when it fails */
    arrpc_handler_wake_check_fn wake_check; /* with threads: may another one help? NULL: yes */
    const uint8_t *secret;                  /* NULL: requests are not signed */
    size_t secret_len;
    size_t max_message;
    unsigned max_depth;
    unsigned max_connections;
    unsigned drain_timeout_ms;
    unsigned idle_timeout_ms;    /* 0: none */
    unsigned request_timeout_ms; /* a request begun must arrive whole by then; 0: none */
    unsigned write_timeout_ms;   /* pending replies must make progress this often; 0: none */
    unsigned threads;            /* handler threads; 0: handlers run inline in the loop */
    unsigned handler_timeout_ms; /* a deferred call unanswered this long gets an error; 0: none */
    /* Recycling (pre-fork only: the master replaces the worker, workers/recycle.c asks it to):
     * after max_requests plus a random share of max_requests_jitter requests, or once its
     * resident memory reaches max_rss_bytes. 0: no such bound. */
    uint64_t max_requests, max_requests_jitter;
    uint64_t max_rss_bytes;
    /* TLS: certificate chain and key files, read by each worker when it starts (so a reload
     * serves the files on disk); client_ca: mutual TLS. NULL cert: plain TCP. */
    const char *tls_cert, *tls_key, *tls_client_ca;
    unsigned tls_handshake_timeout_ms; /* also bounds the wait for a PROXY header */
    /* Sources that must begin with a PROXY protocol header, whose address then stands for the
     * connection's peer; any other source must not send one. NULL: none (a header is then just
     * bytes of requests). */
    const struct arrpc__cidr_list *proxy_from;
    /* Close a connection at its first idle moment after max_connection_age_ms plus a random
     * part of up to max_connection_age_jitter_ms (its own, drawn when it opens); 0: never. */
    unsigned max_connection_age_ms, max_connection_age_jitter_ms;
    unsigned tcp_keepalive_s;      /* idle seconds before the first keepalive probe; 0: off */
    const uint8_t *tls_ticket_key; /* one per server, inherited by every worker it forks */
    const char *access_log;        /* path, "-" for standard output; NULL: no access log */
    arrpc_access_log_format access_log_format;
    int debug;
    struct arrpc__shm_worker
        *record; /* this worker's shared-memory record; NULL without a master */
} arrpc__worker_config;

/* The descriptors a worker runs with; none of them is closed by the worker. */
typedef struct arrpc__worker_io {
    const int *listen_fds; /* its slot's socket first, then any it adopted */
    const uint32_t *listen_slots;
    unsigned nlisten;
    int stop_fd;    /* readable (eventfd or pipe): drain and exit */
    int control_fd; /* SOCK_SEQPACKET to the master; -1 when there is none */
    int reopen_fd;  /* readable (eventfd): reopen the access log; -1 when the master relays */
    int rescue_fd;  /* SOCK_SEQPACKET: where a crash hands connections over (rescue.h); -1: none */
} arrpc__worker_io;

/* Runs init (a non-zero return is a failed start: ARRPC_ELOAD, nothing accepted), then serves
 * connections accepted on the listening sockets until stop_fd becomes readable or the
 * master says stop, then drains: stops accepting, answers what was read, closes connections as
 * they become idle, and the rest when the drain timeout passes. Told to retire, it hands its
 * connections to another worker instead. With a master it sends ARRPC_CTL_READY once accepting.
 * Then fini, however serving ended. Returns 0, or an error with its text in err. */
int arrpc__worker_run(const arrpc__worker_io *io, const arrpc__worker_config *cfg, char *err,
                      size_t errlen);

#endif
