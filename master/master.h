/* master.h -- the pre-fork master as the server facade sees it: the options it runs with and
 * the call that runs it. Its state and the files behind it are in internal.h. */
#ifndef ARRPC_MASTER_MASTER_H
#define ARRPC_MASTER_MASTER_H

#include <stdint.h>

#include "../workers/worker.h"

#define ARRPC_EXIT_START_FAILED 78 /* a worker that could not start (EX_CONFIG) */

/* What every worker is made from. The master never writes it: what changes while it runs (the
 * worker count, the secret read from secret_file, the sockets) is its own state. Only
 * reconfigure, on SIGHUP, may rewrite it, between two generations. */
typedef struct arrpc__master_config {
    arrpc__worker_config worker; /* limits, and the handler when it is not a plugin */
    const char *plugin;          /* PATH.so[:SYMBOL] loaded by each worker; NULL: worker.handler */
    const char *secret_file;     /* re-read on SIGHUP; NULL: worker.secret as given */
    const char *host;
    uint16_t port;
    unsigned workers;            /* asked for at start; SIGTTIN/SIGTTOU change the master's count */
    unsigned handler_timeout_ms; /* 0: off */
    const char *pid_file;        /* NULL: none */
    int ready_fd;                /* written once when every worker first accepts; -1: none */
    int stop_fd;                 /* readable: graceful stop (arrpc_server_stop); -1: none */
    int reopen_fd; /* readable: reopen the access logs (arrpc_server_reopen_access_log); -1 */
    int bound_fd;  /* slot 0's socket, already bound; the master takes it over at start; -1 */
    const char *metrics_host; /* NULL: no HTTP exporter */
    uint16_t metrics_port;
    unsigned predrain_ms; /* on SIGTERM, /readyz fails this long before draining */
    /* NULL, or called on SIGHUP before the new generation starts: it may rewrite worker, plugin,
     * secret_file, workers (never to 0), handler_timeout_ms, predrain_ms and max_lifetime_ms in the
     * struct this master runs with; the rest is read once at start. Non-zero: the reload is
     * abandoned. */
    int (*reconfigure)(void *ctx);
    void *reconfigure_ctx;
    unsigned max_lifetime_ms; /* a worker older than this is recycled; 0: never */
} arrpc__master_config;

/* Runs the master until a stop; returns the exit status for the process. */
int arrpc__master_run(const arrpc__master_config *cfg);

#endif
