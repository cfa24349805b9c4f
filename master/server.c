/* server.c -- the public server API: options, bind, run in the foreground, stop. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../core/auth.h"
#include "../core/net.h"
#include "../workers/worker.h"
#include "arrpc.h"

#define SERVER_HOST_MAX 256
#define SERVER_ERR_MAX 512

typedef enum { SERVER_NEW, SERVER_BOUND, SERVER_RUNNING, SERVER_DONE } server_state;

struct arrpc_server {
    server_state state;
    char host[SERVER_HOST_MAX];
    uint16_t port;
    int listen_fd;
    int stop_fd; /* an eventfd: arrpc_server_stop writes it, the worker loop watches it */
    arrpc__worker_config cfg;
    char handler_name[128];
    uint8_t *secret;
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
    if (!host || !handler || strlen(host) >= SERVER_HOST_MAX)
        return NULL;
    arrpc_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->stop_fd < 0) {
        free(srv);
        return NULL;
    }
    snprintf(srv->host, sizeof srv->host, "%s", host);
    snprintf(srv->handler_name, sizeof srv->handler_name, "handler");
    srv->port = port;
    srv->listen_fd = -1;
    srv->cfg = (arrpc__worker_config){
        .handler = handler,
        .udata = udata,
        .handler_name = srv->handler_name,
        .max_message = ARRPC_DEFAULT_MAX_MESSAGE,
        .max_depth = ARRPC_DEFAULT_MAX_DEPTH,
        .max_connections = ARRPC_DEFAULT_MAX_CONNECTIONS,
        .drain_timeout_ms = ARRPC_DEFAULT_DRAIN_TIMEOUT_MS,
        .idle_timeout_ms = ARRPC_DEFAULT_IDLE_TIMEOUT_MS,
    };
    return srv;
}

void arrpc_server_free(arrpc_server *srv)
{
    if (!srv)
        return;
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    close(srv->stop_fd);
    free(srv->secret);
    free(srv);
}

/* Settings may change only before the server runs. */
static int settable(arrpc_server *srv)
{
    if (!srv)
        return ARRPC_EINVAL;
    if (srv->state >= SERVER_RUNNING)
        return set_err(srv, ARRPC_ESTATE, "settings cannot change while the server runs");
    return 0;
}

int arrpc_server_set_handler_name(arrpc_server *srv, const char *name)
{
    int rc = settable(srv);
    if (rc == 0 && (!name || strlen(name) >= sizeof srv->handler_name))
        rc = set_err(srv, ARRPC_EINVAL, "handler name missing or too long");
    if (rc == 0)
        snprintf(srv->handler_name, sizeof srv->handler_name, "%s", name);
    return rc;
}

int arrpc_server_set_auth_secret(arrpc_server *srv, const void *secret, size_t len)
{
    int rc = settable(srv);
    if (rc != 0)
        return rc;
    if (secret && (len == 0 || len > ARRPC_AUTH_SECRET_MAX))
        return set_err(srv, ARRPC_EINVAL, "auth secret must have 1 to %u bytes",
                       ARRPC_AUTH_SECRET_MAX);
    free(srv->secret);
    srv->secret = NULL;
    srv->cfg.secret = NULL;
    srv->cfg.secret_len = 0;
    if (!secret)
        return 0;
    if (!(srv->secret = malloc(len)))
        return set_err(srv, ARRPC_ENOMEM, "out of memory");
    memcpy(srv->secret, secret, len);
    srv->cfg.secret = srv->secret;
    srv->cfg.secret_len = len;
    return 0;
}

int arrpc_server_set_max_message(arrpc_server *srv, size_t bytes)
{
    int rc = settable(srv);
    if (rc == 0 && (bytes < 16 || bytes > ARRPC_MAX_MESSAGE_LIMIT))
        rc = set_err(srv, ARRPC_EINVAL, "max message must be 16 to %u bytes",
                     ARRPC_MAX_MESSAGE_LIMIT);
    if (rc == 0)
        srv->cfg.max_message = bytes;
    return rc;
}

int arrpc_server_set_max_depth(arrpc_server *srv, unsigned depth)
{
    int rc = settable(srv);
    if (rc == 0 && (depth < 1 || depth > ARRPC_MAX_DEPTH_LIMIT))
        rc = set_err(srv, ARRPC_EINVAL, "max depth must be 1 to %u", ARRPC_MAX_DEPTH_LIMIT);
    if (rc == 0)
        srv->cfg.max_depth = depth;
    return rc;
}

int arrpc_server_set_max_connections(arrpc_server *srv, unsigned count)
{
    int rc = settable(srv);
    if (rc == 0 && count < 1)
        rc = set_err(srv, ARRPC_EINVAL, "max connections must be at least 1");
    if (rc == 0)
        srv->cfg.max_connections = count;
    return rc;
}

int arrpc_server_set_drain_timeout(arrpc_server *srv, unsigned ms)
{
    int rc = settable(srv);
    if (rc == 0)
        srv->cfg.drain_timeout_ms = ms;
    return rc;
}

int arrpc_server_set_idle_timeout(arrpc_server *srv, unsigned ms)
{
    int rc = settable(srv);
    if (rc == 0)
        srv->cfg.idle_timeout_ms = ms;
    return rc;
}

int arrpc_server_set_debug(arrpc_server *srv, int on)
{
    int rc = settable(srv);
    if (rc == 0)
        srv->cfg.debug = on != 0;
    return rc;
}

int arrpc_server_bind(arrpc_server *srv)
{
    if (!srv)
        return ARRPC_EINVAL;
    if (srv->state != SERVER_NEW)
        return srv->state == SERVER_BOUND ? 0 : set_err(srv, ARRPC_ESTATE, "already running");
    int fd = arrpc__net_listen(srv->host, srv->port, 0, srv->err, sizeof srv->err);
    if (fd < 0)
        return fd;
    srv->listen_fd = fd;
    srv->state = SERVER_BOUND;
    return 0;
}

int arrpc_server_run(arrpc_server *srv)
{
    int rc = arrpc_server_bind(srv);
    if (rc != 0)
        return rc;
    srv->state = SERVER_RUNNING;
    rc = arrpc__worker_run(srv->listen_fd, srv->stop_fd, &srv->cfg, srv->err, sizeof srv->err);
    srv->state = SERVER_DONE;
    return rc;
}

void arrpc_server_stop(arrpc_server *srv)
{
    uint64_t one = 1;
    /* write() is async-signal-safe; the eventfd keeps the request until the loop reads it. */
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
