/* server.c -- the public server API: options, then either one in-process worker loop (workers
 * = 0) or the pre-fork master, in the foreground or in the background; stop. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/auth.h"
#include "../core/cidr.h"
#include "../core/net.h"
#include "../core/tls.h"
#include "../workers/handler.h"
#include "../workers/worker.h"
#include "arrpc.h"
#include "../master/master.h"

#define SERVER_HOST_MAX 256
#define SERVER_ERR_MAX 512
#define SERVER_PATH_MAX 4096
#define SERVER_START_TIMEOUT_MS 30000 /* background start: workers must accept by then */

typedef enum { SERVER_NEW, SERVER_BOUND, SERVER_RUNNING, SERVER_DONE } server_state;

struct arrpc_server {
    _Atomic server_state state; /* the background thread moves it to RUNNING and DONE */
    char host[SERVER_HOST_MAX];
    uint16_t port;
    int listen_fd;
    int stop_fd;   /* an eventfd: arrpc_server_stop writes it; the loop or master watches it */
    int reopen_fd; /* an eventfd: arrpc_server_reopen_access_log writes it; the same watch it */
    char access_log[SERVER_PATH_MAX];
    arrpc__worker_config cfg;
    arrpc__handler plugin; /* workers = 0 with a plugin: loaded at run */
    char plugin_spec[SERVER_PATH_MAX];
    char secret_file[SERVER_PATH_MAX];
    char pid_file[SERVER_PATH_MAX];
    char tls_cert[SERVER_PATH_MAX], tls_key[SERVER_PATH_MAX], tls_client_ca[SERVER_PATH_MAX];
    uint8_t tls_ticket_key[ARRPC_TLS_TICKET_KEY_SIZE]; /* same in every worker: resumption */
    unsigned workers;                                  /* 0: serve in this process */
    char metrics_host[SERVER_HOST_MAX];
    uint16_t metrics_port;
    unsigned predrain_ms;
    unsigned max_lifetime_ms;    /* recycle workers this old; 0: never */
    arrpc__cidr_list proxy_from; /* cfg.proxy_from points here when it is on */
    pid_t master_pid;            /* background pre-fork server: the master is our child */
    pthread_t thread;            /* background in-process server */
    int has_thread;
    int run_status;
    char handler_name[ARRPC_HANDLER_NAME_MAX];
    int handler_name_set; /* set by the user: metrics use it even with a plugin */
    char *handler_arg;    /* init's argument, our copy; NULL: none */
    uint8_t *secret;
    arrpc_server_reload_fn reload_fn; /* pre-fork: runs in the master on SIGHUP; NULL: none */
    void *reload_udata;
    int in_reload;                 /* reload_fn runs: the setters are open again */
    arrpc__master_config *serving; /* what run_master's master runs with */
    char err[SERVER_ERR_MAX];
};

static int set_err(arrpc_server *srv, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(srv->err, sizeof srv->err, fmt, ap);
    va_end(ap);
    return code;
}

arrpc_server *arrpc_server_new(const char *host, uint16_t port, arrpc_handler_fn handler,
                               void *udata)
{
    if (!host || strlen(host) >= SERVER_HOST_MAX) return NULL;
    arrpc_server *srv = calloc(1, sizeof *srv);
    if (!srv) return NULL;
    srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    srv->reopen_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->stop_fd < 0 || srv->reopen_fd < 0) {
        if (srv->stop_fd >= 0) close(srv->stop_fd);
        if (srv->reopen_fd >= 0) close(srv->reopen_fd);
        free(srv);
        return NULL;
    }
    snprintf(srv->host, sizeof srv->host, "%s", host);
    snprintf(srv->handler_name, sizeof srv->handler_name, "handler");
    srv->port = port;
    srv->listen_fd = -1;
    srv->cfg.handler_timeout_ms = ARRPC_DEFAULT_HANDLER_TIMEOUT_MS;
    srv->cfg = (arrpc__worker_config){
        .handler = handler,
        .udata = udata,
        .handler_name = srv->handler_name,
        .init_name = "the handler's init function",
        .max_message = ARRPC_DEFAULT_MAX_MESSAGE,
        .max_depth = ARRPC_DEFAULT_MAX_DEPTH,
        .max_connections = ARRPC_DEFAULT_MAX_CONNECTIONS,
        .drain_timeout_ms = ARRPC_DEFAULT_DRAIN_TIMEOUT_MS,
        .idle_timeout_ms = ARRPC_DEFAULT_IDLE_TIMEOUT_MS,
        .request_timeout_ms = ARRPC_DEFAULT_REQUEST_TIMEOUT_MS,
        .write_timeout_ms = ARRPC_DEFAULT_WRITE_TIMEOUT_MS,
        .tls_handshake_timeout_ms = ARRPC_DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS,
        .tcp_keepalive_s = ARRPC_DEFAULT_TCP_KEEPALIVE_S,
    };
    return srv;
}

void arrpc_server_free(arrpc_server *srv)
{
    if (!srv) return;
    if (srv->has_thread || srv->master_pid > 0) { /* still running in the background */
        arrpc_server_stop(srv);
        arrpc_server_wait(srv);
    }
    if (srv->listen_fd >= 0) close(srv->listen_fd);
    close(srv->stop_fd);
    close(srv->reopen_fd);
    arrpc__handler_unload(&srv->plugin);
    free(srv->handler_arg);
    if (srv->secret) /* a secret should not linger in freed memory */
        explicit_bzero(srv->secret, srv->cfg.secret_len);
    free(srv->secret);
    explicit_bzero(srv->tls_ticket_key, sizeof srv->tls_ticket_key);
    free(srv);
}

/* Settings may change only before the server runs, or in its reload hook. */
static int settable(arrpc_server *srv)
{
    if (!srv) return ARRPC_EINVAL;
    if (srv->state >= SERVER_RUNNING && !srv->in_reload)
        return set_err(srv, ARRPC_ESTATE, "settings cannot change while the server runs");
    return 0;
}

/* The common setter: a number the server takes as it is. */
static int set_unsigned(arrpc_server *srv, unsigned *field, unsigned value)
{
    int rc = settable(srv);
    if (rc == 0) *field = value;
    return rc;
}

int arrpc_server_set_handler_name(arrpc_server *srv, const char *name)
{
    int rc = settable(srv);
    if (rc == 0 && (!name || strlen(name) >= sizeof srv->handler_name))
        rc = set_err(srv, ARRPC_EINVAL, "handler name missing or too long");
    if (rc == 0) snprintf(srv->handler_name, sizeof srv->handler_name, "%s", name);
    if (rc == 0) srv->handler_name_set = 1;
    return rc;
}

int arrpc_server_set_handler_lifecycle(arrpc_server *srv, arrpc_handler_init_fn init,
                                       arrpc_handler_fini_fn fini, const char *arg)
{
    int rc = settable(srv);
    char *copy = NULL;
    if (rc == 0 && arg && !(copy = strdup(arg))) rc = set_err(srv, ARRPC_ENOMEM, "out of memory");
    if (rc != 0) return rc;
    free(srv->handler_arg);
    srv->handler_arg = copy;
    srv->cfg.init = init;
    srv->cfg.fini = fini;
    srv->cfg.init_arg = copy;
    return 0;
}

int arrpc_server_set_handler_wake_check(arrpc_server *srv, arrpc_handler_wake_check_fn check)
{
    int rc = settable(srv);
    if (rc == 0) srv->cfg.wake_check = check;
    return rc;
}

/* Replaces the secret (NULL: none), wiping the old one. Checks nothing about the state. */
static int store_secret(arrpc_server *srv, const void *secret, size_t len)
{
    if (secret && (len == 0 || len > ARRPC_AUTH_SECRET_MAX))
        return set_err(srv, ARRPC_EINVAL, "auth secret must have 1 to %u bytes",
                       ARRPC_AUTH_SECRET_MAX);
    if (srv->secret) explicit_bzero(srv->secret, srv->cfg.secret_len);
    free(srv->secret);
    srv->secret = NULL;
    srv->cfg.secret = NULL;
    srv->cfg.secret_len = 0;
    if (!secret) return 0;
    if (!(srv->secret = malloc(len))) return set_err(srv, ARRPC_ENOMEM, "out of memory");
    memcpy(srv->secret, secret, len);
    srv->cfg.secret = srv->secret;
    srv->cfg.secret_len = len;
    return 0;
}

int arrpc_server_set_auth_secret(arrpc_server *srv, const void *secret, size_t len)
{
    int rc = settable(srv);
    return rc != 0 ? rc : store_secret(srv, secret, len);
}

int arrpc_server_set_max_message(arrpc_server *srv, size_t bytes)
{
    int rc = settable(srv);
    if (rc == 0 && (bytes < 16 || bytes > ARRPC_MAX_MESSAGE_LIMIT))
        rc = set_err(srv, ARRPC_EINVAL, "max message must be 16 to %u bytes",
                     ARRPC_MAX_MESSAGE_LIMIT);
    if (rc == 0) srv->cfg.max_message = bytes;
    return rc;
}

int arrpc_server_set_max_depth(arrpc_server *srv, unsigned depth)
{
    int rc = settable(srv);
    if (rc == 0 && (depth < 1 || depth > ARRPC_MAX_DEPTH_LIMIT))
        rc = set_err(srv, ARRPC_EINVAL, "max depth must be 1 to %u", ARRPC_MAX_DEPTH_LIMIT);
    if (rc == 0) srv->cfg.max_depth = depth;
    return rc;
}

int arrpc_server_set_max_connections(arrpc_server *srv, unsigned count)
{
    int rc = settable(srv);
    if (rc == 0 && count < 1) rc = set_err(srv, ARRPC_EINVAL, "max connections must be at least 1");
    if (rc == 0) srv->cfg.max_connections = count;
    return rc;
}

int arrpc_server_set_drain_timeout(arrpc_server *srv, unsigned ms)
{
    return srv ? set_unsigned(srv, &srv->cfg.drain_timeout_ms, ms) : ARRPC_EINVAL;
}

int arrpc_server_set_idle_timeout(arrpc_server *srv, unsigned ms)
{
    return srv ? set_unsigned(srv, &srv->cfg.idle_timeout_ms, ms) : ARRPC_EINVAL;
}

int arrpc_server_set_request_timeout(arrpc_server *srv, unsigned ms)
{
    return srv ? set_unsigned(srv, &srv->cfg.request_timeout_ms, ms) : ARRPC_EINVAL;
}

int arrpc_server_set_write_timeout(arrpc_server *srv, unsigned ms)
{
    return srv ? set_unsigned(srv, &srv->cfg.write_timeout_ms, ms) : ARRPC_EINVAL;
}

int arrpc_server_set_debug(arrpc_server *srv, int on)
{
    int rc = settable(srv);
    if (rc == 0) srv->cfg.debug = on != 0;
    return rc;
}

static int set_path(arrpc_server *srv, char *dst, const char *path, const char *what)
{
    int rc = settable(srv);
    if (rc == 0 && path && strlen(path) >= SERVER_PATH_MAX)
        rc = set_err(srv, ARRPC_EINVAL, "%s too long", what);
    if (rc == 0) snprintf(dst, SERVER_PATH_MAX, "%s", path ? path : "");
    return rc;
}

int arrpc_server_set_handler_plugin(arrpc_server *srv, const char *spec)
{
    return set_path(srv, srv ? srv->plugin_spec : NULL, spec, "handler plugin");
}

int arrpc_server_set_auth_secret_file(arrpc_server *srv, const char *path)
{
    return set_path(srv, srv ? srv->secret_file : NULL, path, "auth secret file");
}

int arrpc_server_set_pid_file(arrpc_server *srv, const char *path)
{
    return set_path(srv, srv ? srv->pid_file : NULL, path, "pid file");
}

int arrpc_server_set_access_log(arrpc_server *srv, const char *path, arrpc_access_log_format format)
{
    int rc = settable(srv);
    if (rc == 0 && format != ARRPC_ACCESS_LOG_JSON && format != ARRPC_ACCESS_LOG_LOGFMT)
        rc = set_err(srv, ARRPC_EINVAL, "unknown access log format %d", (int)format);
    if (rc == 0 && path && !*path) rc = set_err(srv, ARRPC_EINVAL, "empty access log path");
    if (rc == 0) rc = set_path(srv, srv->access_log, path, "access log path");
    if (rc != 0) return rc;
    srv->cfg.access_log = path ? srv->access_log : NULL;
    srv->cfg.access_log_format = format;
    return 0;
}

void arrpc_server_reopen_access_log(arrpc_server *srv)
{
    uint64_t one = 1;
    if (!srv) return;
    /* Like stop: an eventfd the loop or the master watches; async-signal-safe. */
    ssize_t ignored = write(srv->reopen_fd, &one, sizeof one);
    (void)ignored;
}

int arrpc_server_set_tls(arrpc_server *srv, const char *cert, const char *key,
                         const char *client_ca)
{
    int rc = settable(srv);
    if (rc == 0 && cert && !key) rc = set_err(srv, ARRPC_EINVAL, "a TLS certificate needs its key");
    if (rc == 0 && srv->in_reload && !cert != !srv->tls_cert[0])
        rc = set_err(srv, ARRPC_ESTATE, "a reload cannot turn TLS %s: that takes a restart",
                     cert ? "on" : "off");
    if (rc == 0) rc = set_path(srv, srv->tls_cert, cert, "TLS certificate path");
    if (rc == 0) rc = set_path(srv, srv->tls_key, cert ? key : NULL, "TLS key path");
    if (rc == 0)
        rc = set_path(srv, srv->tls_client_ca, cert ? client_ca : NULL, "TLS client CA path");
    if (rc != 0) return rc;
    if (cert && !srv->cfg.tls_ticket_key) {
        if (arrpc__tls_ticket_key_new(srv->tls_ticket_key) != 0)
            return set_err(srv, ARRPC_ESYS, "no random bytes for the TLS ticket key");
        srv->cfg.tls_ticket_key = srv->tls_ticket_key;
    }
    srv->cfg.tls_cert = srv->tls_cert[0] ? srv->tls_cert : NULL;
    srv->cfg.tls_key = srv->tls_key[0] ? srv->tls_key : NULL;
    srv->cfg.tls_client_ca = srv->tls_client_ca[0] ? srv->tls_client_ca : NULL;
    return 0;
}

int arrpc_server_set_tls_handshake_timeout(arrpc_server *srv, unsigned ms)
{
    int rc = settable(srv);
    if (rc == 0 && ms == 0)
        rc = set_err(srv, ARRPC_EINVAL, "the TLS handshake timeout must be at least 1 ms");
    if (rc == 0) srv->cfg.tls_handshake_timeout_ms = ms;
    return rc;
}

int arrpc_server_set_proxy_protocol(arrpc_server *srv, const char *ranges)
{
    int rc = settable(srv);
    if (rc != 0) return rc;
    srv->cfg.proxy_from = NULL;
    if (!ranges) return 0;
    char why[160];
    if (arrpc__cidr_parse(ranges, &srv->proxy_from, why, sizeof why) != 0)
        return set_err(srv, ARRPC_EINVAL, "proxy protocol sources: %s", why);
    srv->cfg.proxy_from = &srv->proxy_from;
    return 0;
}

int arrpc_server_set_max_connection_age(arrpc_server *srv, unsigned ms, unsigned jitter_ms)
{
    int rc = settable(srv);
    if (rc == 0 && (uint64_t)ms + jitter_ms > UINT32_MAX)
        rc = set_err(srv, ARRPC_EINVAL, "connection age plus jitter too large");
    if (rc == 0) {
        srv->cfg.max_connection_age_ms = ms;
        srv->cfg.max_connection_age_jitter_ms = ms ? jitter_ms : 0;
    }
    return rc;
}

int arrpc_server_set_tcp_keepalive(arrpc_server *srv, unsigned seconds)
{
    int rc = settable(srv);
    if (rc == 0 && seconds > ARRPC_TCP_KEEPALIVE_MAX_S) /* the kernel's own bound */
        rc = set_err(srv, ARRPC_EINVAL, "TCP keepalive at most %u seconds",
                     ARRPC_TCP_KEEPALIVE_MAX_S);
    if (rc == 0) srv->cfg.tcp_keepalive_s = seconds;
    return rc;
}

int arrpc_server_set_workers(arrpc_server *srv, unsigned count)
{
    int rc = settable(srv);
    if (rc == 0 && srv->state == SERVER_BOUND) /* the socket was bound for the other model */
        rc = set_err(srv, ARRPC_ESTATE, "set the workers before binding");
    if (rc == 0 && count > ARRPC_MAX_WORKERS)
        rc = set_err(srv, ARRPC_EINVAL, "at most %u workers", ARRPC_MAX_WORKERS);
    if (rc == 0 && srv->in_reload && count == 0)
        rc = set_err(srv, ARRPC_ESTATE, "a reload cannot go to 0 workers: that takes a restart");
    if (rc == 0) srv->workers = count;
    return rc;
}

int arrpc_server_set_threads(arrpc_server *srv, unsigned count)
{
    int rc = settable(srv);
    if (rc == 0 && count > ARRPC_MAX_THREADS)
        rc = set_err(srv, ARRPC_EINVAL, "at most %u handler threads", ARRPC_MAX_THREADS);
    if (rc == 0) srv->cfg.threads = count;
    return rc;
}

int arrpc_server_set_metrics(arrpc_server *srv, const char *host, uint16_t port)
{
    int rc = settable(srv);
    if (rc == 0 && host && strlen(host) >= SERVER_HOST_MAX)
        rc = set_err(srv, ARRPC_EINVAL, "metrics host too long");
    if (rc == 0) {
        snprintf(srv->metrics_host, sizeof srv->metrics_host, "%s", host ? host : "");
        srv->metrics_port = port;
    }
    return rc;
}

int arrpc_server_set_pre_drain(arrpc_server *srv, unsigned ms)
{
    return srv ? set_unsigned(srv, &srv->predrain_ms, ms) : ARRPC_EINVAL;
}

int arrpc_server_set_handler_timeout(arrpc_server *srv, unsigned ms)
{
    return srv ? set_unsigned(srv, &srv->cfg.handler_timeout_ms, ms) : ARRPC_EINVAL;
}

int arrpc_server_set_reload_hook(arrpc_server *srv, arrpc_server_reload_fn fn, void *udata)
{
    int rc = settable(srv);
    if (rc == 0 && srv->in_reload)
        rc = set_err(srv, ARRPC_ESTATE, "the reload hook cannot replace itself");
    if (rc == 0) {
        srv->reload_fn = fn;
        srv->reload_udata = udata;
    }
    return rc;
}

int arrpc_server_set_max_requests(arrpc_server *srv, uint64_t requests, uint64_t jitter)
{
    int rc = srv ? settable(srv) : ARRPC_EINVAL;
    if (rc == 0) {
        srv->cfg.max_requests = requests;
        srv->cfg.max_requests_jitter = jitter;
    }
    return rc;
}

int arrpc_server_set_max_worker_lifetime(arrpc_server *srv, unsigned ms)
{
    return srv ? set_unsigned(srv, &srv->max_lifetime_ms, ms) : ARRPC_EINVAL;
}

int arrpc_server_set_max_worker_rss(arrpc_server *srv, uint64_t bytes)
{
    int rc = srv ? settable(srv) : ARRPC_EINVAL;
    if (rc == 0) srv->cfg.max_rss_bytes = bytes;
    return rc;
}

static int check_handler(arrpc_server *srv)
{
    if (!srv->cfg.handler && !srv->plugin_spec[0])
        return set_err(srv, ARRPC_EINVAL, "no handler: give one to arrpc_server_new or a plugin");
    return 0;
}

int arrpc_server_bind(arrpc_server *srv)
{
    if (!srv) return ARRPC_EINVAL;
    if (srv->state != SERVER_NEW)
        return srv->state == SERVER_BOUND ? 0 : set_err(srv, ARRPC_ESTATE, "already running");
    /* With workers, this is the first socket of the SO_REUSEPORT group the master
     * completes. */
    int fd = srv->workers ? arrpc__net_listen_group(srv->host, srv->port, srv->err, sizeof srv->err)
                          : arrpc__net_listen(srv->host, srv->port, 0, srv->err, sizeof srv->err);
    if (fd < 0) return fd;
    srv->listen_fd = fd;
    srv->state = SERVER_BOUND;
    return 0;
}

/* workers = 0: this process runs the one worker loop itself. */
/* The secret named by a file, read once: without a master there is no reload to re-read it.
 */
static int load_secret_file(arrpc_server *srv)
{
    uint8_t secret[ARRPC_AUTH_SECRET_MAX + 1];
    size_t len = 0;
    if (arrpc__auth_read_secret(srv->secret_file, secret, &len, srv->err, sizeof srv->err) != 0)
        return ARRPC_EINVAL;
    int rc = store_secret(srv, secret, len); /* also from a background thread, once running */
    explicit_bzero(secret, sizeof secret);
    return rc;
}

static int run_in_process(arrpc_server *srv)
{
    int rc = srv->listen_fd >= 0 ? 0 : arrpc_server_bind(srv);
    if (rc == 0 && srv->secret_file[0]) rc = load_secret_file(srv);
    if (rc == 0 && srv->plugin_spec[0] && !srv->plugin.fn) {
        rc = arrpc__handler_load(srv->plugin_spec, &srv->plugin, srv->err, sizeof srv->err);
        if (rc == 0) arrpc__handler_apply(&srv->plugin, &srv->cfg);
    }
    if (rc != 0) return rc;
    srv->state = SERVER_RUNNING;
    arrpc__worker_io io = {
        .listen_fds = &srv->listen_fd,
        .nlisten = 1,
        .stop_fd = srv->stop_fd,
        .control_fd = -1,
        .reopen_fd = srv->reopen_fd,
        .rescue_fd = -1, /* in-process: a crash ends the process, as it would any program */
    };
    rc = arrpc__worker_run(&io, &srv->cfg, srv->err, sizeof srv->err);
    srv->state = SERVER_DONE;
    return rc;
}

/* What a reload may change in the master's configuration, from the settings. The handler's
 * name stays as it started: the exporter labels every series with it. */
static void fill_reloadable(const arrpc_server *srv, arrpc__master_config *mc)
{
    const char *name = mc->worker.handler_name;
    mc->worker = srv->cfg;
    if (name) mc->worker.handler_name = name;
    mc->plugin = srv->plugin_spec[0] ? srv->plugin_spec : NULL;
    mc->secret_file = srv->secret_file[0] ? srv->secret_file : NULL;
    mc->workers = srv->workers;
    mc->handler_timeout_ms = srv->cfg.handler_timeout_ms;
    mc->predrain_ms = srv->predrain_ms;
    mc->max_lifetime_ms = srv->max_lifetime_ms;
}

/* The master's reconfigure: the user's hook with the setters open, then what they set. The
 * configuration is rebuilt even when the hook fails, so that it never points at a string a
 * setter has freed (the handler argument). */
static int reconfigure(void *ctx)
{
    arrpc_server *srv = ctx;
    srv->in_reload = 1;
    int rc = srv->reload_fn(srv, srv->reload_udata);
    srv->in_reload = 0;
    fill_reloadable(srv, srv->serving);
    return rc;
}

/* workers >= 1: this process becomes the master. ready_fd, when not -1, hears when all
 * accept. */
static int run_master(arrpc_server *srv, int ready_fd)
{
    arrpc__master_config mc = {
        .host = srv->host,
        .port = srv->port,
        .pid_file = srv->pid_file[0] ? srv->pid_file : NULL,
        .ready_fd = ready_fd,
        .stop_fd = srv->stop_fd,
        .reopen_fd = srv->reopen_fd,
        .bound_fd = srv->listen_fd,
        .metrics_host = srv->metrics_host[0] ? srv->metrics_host : NULL,
        .metrics_port = srv->metrics_port,
        .reconfigure = srv->reload_fn ? reconfigure : NULL,
        .reconfigure_ctx = srv,
        .max_lifetime_ms = srv->max_lifetime_ms,
    };
    fill_reloadable(srv, &mc);
    char name[ARRPC_HANDLER_NAME_MAX];
    if (srv->plugin_spec[0] && !srv->handler_name_set) { /* the workers load it; named alike */
        arrpc__handler_name_of(srv->plugin_spec, name, sizeof name);
        mc.worker.handler_name = name;
    }
    srv->serving = &mc;
    srv->listen_fd = -1; /* the master owns it now */
    srv->state = SERVER_RUNNING;
    int status = arrpc__master_run(&mc);
    srv->serving = NULL;
    srv->state = SERVER_DONE;
    return status == 0 ? 0 : set_err(srv, ARRPC_ESYS, "the server failed; see its log");
}

int arrpc_server_run(arrpc_server *srv)
{
    int rc = srv ? check_handler(srv) : ARRPC_EINVAL;
    if (rc != 0) return rc;
    if (srv->state >= SERVER_RUNNING) return set_err(srv, ARRPC_ESTATE, "already running");
    return srv->workers == 0 ? run_in_process(srv) : run_master(srv, -1);
}

static void *in_process_thread(void *arg)
{
    arrpc_server *srv = arg;
    srv->run_status = run_in_process(srv);
    arrpc__tls_thread_done(); /* this thread made the TLS handshakes */
    return NULL;
}

/* Forks the master; returns once its workers accept, or an error if it could not start. */
static int start_master_child(arrpc_server *srv)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) return set_err(srv, ARRPC_ESYS, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        _exit(run_master(srv, pipefd[1]) == 0 ? 0 : 1);
    }
    close(pipefd[1]);
    if (pid < 0) {
        close(pipefd[0]);
        return set_err(srv, ARRPC_ESYS, "fork: %s", strerror(errno));
    }
    if (srv->listen_fd >= 0) { /* the master child has it: after a stop, the port is free */
        close(srv->listen_fd);
        srv->listen_fd = -1;
    }
    srv->master_pid = pid;
    short revents = 0;
    char ok = 0;
    int waited =
        arrpc__net_wait(pipefd[0], POLLIN, arrpc__clock_ms() + SERVER_START_TIMEOUT_MS, &revents);
    int ready = waited == 1 && read(pipefd[0], &ok, 1) == 1 && ok == 1;
    close(pipefd[0]);
    if (ready) {
        srv->state = SERVER_RUNNING;
        return 0;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    srv->master_pid = 0;
    return set_err(srv, ARRPC_ESYS, "the server's workers did not start; see its log");
}

int arrpc_server_start(arrpc_server *srv)
{
    int rc = srv ? check_handler(srv) : ARRPC_EINVAL;
    if (rc != 0) return rc;
    if (srv->state >= SERVER_RUNNING) return set_err(srv, ARRPC_ESTATE, "already running");
    if (srv->workers > 0) return start_master_child(srv);
    if ((rc = arrpc_server_bind(srv)) != 0) return rc;
    srv->state = SERVER_RUNNING; /* from now on settings are refused, before the thread runs */
    if (pthread_create(&srv->thread, NULL, in_process_thread, srv) != 0) {
        srv->state = SERVER_BOUND;
        return set_err(srv, ARRPC_ESYS, "cannot start the server thread");
    }
    srv->has_thread = 1;
    return 0;
}

int arrpc_server_wait(arrpc_server *srv)
{
    if (!srv) return ARRPC_EINVAL;
    if (srv->has_thread) {
        pthread_join(srv->thread, NULL);
        srv->has_thread = 0;
        return srv->run_status;
    }
    if (srv->master_pid > 0) {
        int status = 0;
        while (waitpid(srv->master_pid, &status, 0) < 0 && errno == EINTR) {
        }
        srv->master_pid = 0;
        srv->state = SERVER_DONE;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return set_err(srv, ARRPC_ESYS, "the server exited with status %d", status);
    }
    return 0;
}

void arrpc_server_stop(arrpc_server *srv)
{
    uint64_t one = 1;
    if (srv->master_pid > 0) { /* a background master is our child: ask it as an operator would */
        kill(srv->master_pid, SIGTERM);
        return;
    }
    /* write() is async-signal-safe; the eventfd keeps the request until the loop reads it.
     */
    ssize_t ignored = write(srv->stop_fd, &one, sizeof one);
    (void)ignored;
}

uint16_t arrpc_server_port(const arrpc_server *srv)
{
    return srv && srv->listen_fd >= 0 ? arrpc__net_local_port(srv->listen_fd) : 0;
}

const char *arrpc_server_errstr(const arrpc_server *srv)
{
    return srv ? srv->err : "no server";
}
