/* arrpcd.h -- what the server program's files share: its options, as the option table fills
 * them from the command line and the configuration file. */
#ifndef ARRPC_TOOLS_ARRPCD_H
#define ARRPC_TOOLS_ARRPCD_H

#include "arrpc.h"
#include "arrpcd_python.h"
#include "options.h"

typedef struct {
    const char *config; /* --config F: options read before the command line's */
    int test_config;    /* -t: check what a start would check, then exit */
    arrpc_opt_hostport listen, metrics;
    const char *handler, *handler_arg;
    const char *secret_file;
    const char *pid_file;
    const char *tls_cert, *tls_key, *tls_client_ca;
    const char *access_log;
    arrpc_access_log_format access_log_format;
    unsigned long tls_handshake_timeout_s;
    unsigned long max_message, max_depth, max_connections, idle_timeout_s, drain_timeout_s;
    unsigned long request_timeout_s, write_timeout_s;
    unsigned long workers, threads, handler_timeout_s, predrain_s;
    unsigned long max_requests, max_requests_jitter, max_lifetime_s, max_rss_mib;
    const char *proxy_protocol;
    unsigned long max_connection_age_s, max_connection_age_jitter_s, tcp_keepalive_s;
    int debug;
    const char *pythonpath[ARRPCD_PYTHONPATH_MAX]; /* --pythonpath, in order */
    size_t npythonpath;
} arrpcd_options;

/* arrpcd -t: checks everything a start with o would check (the secret file, the TLS files, the
 * handler plugin and its init and fini, the listen and metrics addresses), says on stderr what
 * fails, and returns 0 when nothing does. */
int arrpcd_check(const arrpcd_options *o);

#endif
