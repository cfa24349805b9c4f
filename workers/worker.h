/* worker.h -- what a worker is given: its listening socket, its options, a stop signal. */
#ifndef ARRPC_WORKERS_WORKER_H
#define ARRPC_WORKERS_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "arrpc.h"

#define ARRPC_READ_CHUNK (64u * 1024u)        /* free input space offered to each read */
#define ARRPC_OUTPUT_HIGH_WATER (1024u * 1024u) /* unsent reply bytes that pause reading */
#define ARRPC_ACCEPT_BATCH 64                 /* accepts per wake-up, so one socket can't hog */
#define ARRPC_LINGER_MS 2000u                 /* after an error reply, wait this long for EOF */
#define ARRPC_TIMER_TICK_MS 250               /* how often timeouts are checked when any is set */

typedef struct arrpc__worker_config {
    arrpc_handler_fn handler;
    void *udata;
    const char *handler_name;
    const uint8_t *secret; /* NULL: requests are not signed */
    size_t secret_len;
    size_t max_message;
    unsigned max_depth;
    unsigned max_connections;
    unsigned drain_timeout_ms;
    unsigned idle_timeout_ms; /* 0: none */
    int debug;
} arrpc__worker_config;

/* Serves connections accepted on listen_fd until stop_fd becomes readable, then drains: stops
 * accepting, answers what was read, closes idle connections, and closes the rest when the drain
 * timeout passes. Neither fd is closed. Returns 0, or an error with its text in err. */
int arrpc__worker_run(int listen_fd, int stop_fd, const arrpc__worker_config *cfg, char *err,
                      size_t errlen);

#endif
