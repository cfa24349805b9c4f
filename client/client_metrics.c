/* client_metrics.c -- the client's arrpc_client_* counters, their text, their HTTP exporter.
 *
 * One block of metrics/metrics.h counters in private memory, with one row in use: the server this
 * client sends to. The client's thread writes it; arrpc_client_metrics_render (any thread) and
 * the libmicrohttpd thread read it. Both read through a sequence count (a seqlock: odd while the
 * writer counts), so that one rendering never shows a request in one family and not yet in
 * another. The writer never waits; a reader retries, and after SNAPSHOT_TRIES it takes the last
 * copy, which can be off by the one send being counted. */
#include "client_metrics.h"
#include "../core/clock.h"
#include "../metrics/http_reply.h"

#include <microhttpd.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../metrics/exposition.h"
#include "client.h"
#include "../core/log.h"
#include "../core/net.h"

#define SNAPSHOT_TRIES 1000
#define HTTP_CONNECTION_LIMIT 8     /* scrapers at once; one Prometheus needs one */
#define HTTP_CONNECTION_TIMEOUT_S 5 /* a slow or silent HTTP client is dropped after this */

struct arrpc__client_metrics {
    int on;                    /* counting; turning it off keeps the counts */
    uint32_t row;              /* the server's row; UINT32_MAX before the first count */
    _Atomic uint32_t seq;      /* odd while the writer counts */
    arrpc__labels labels;      /* read once, never changed: the HTTP thread reads them too */
    struct MHD_Daemon *daemon; /* NULL: not served */
    uint16_t port;             /* the exporter's port, once served */
    arrpc__metrics *block;     /* ARRPC_CLIENT_METRICS_ADDRS servers, then "other" */
    /* Requests resent after a broken connection, by [signed_payload][tls] (not in block, which
     * holds 0.5.0's families only); remote is the host they are labelled with, set once. */
    _Atomic uint64_t retries[2][2];
    _Atomic int remote_set;
    char remote[ARRPC_ENDPOINT_HOST_MAX];
};

/* Client error code -> reason label; codes not listed count as "io". */
static const struct {
    int err;
    arrpc__reason reason;
} reason_of_error[] = {
    {ARRPC_ETIMEOUT, ARRPC_REASON_TIMEOUT},  {ARRPC_EAUTH, ARRPC_REASON_AUTH},
    {ARRPC_ERPC, ARRPC_REASON_RPC},          {ARRPC_ECONNECT, ARRPC_REASON_CONNECT},
    {ARRPC_EPROTO, ARRPC_REASON_INVALID},    {ARRPC_ETOOBIG, ARRPC_REASON_TOO_LARGE},
    {ARRPC_ETOODEEP, ARRPC_REASON_TOO_DEEP}, {ARRPC_ETLS, ARRPC_REASON_TLS},
    {ARRPC_ECLOSED, ARRPC_REASON_CLOSED},
};

int arrpc__client_metrics_reason(int err)
{
    if (err == ARRPC_OK || err == ARRPC_EINVAL) return ARRPC_REASON_COUNT;
    for (size_t i = 0; i < sizeof reason_of_error / sizeof reason_of_error[0]; i++)
        if (reason_of_error[i].err == err) return (int)reason_of_error[i].reason;
    return ARRPC_REASON_IO;
}

uint64_t arrpc__client_metrics_now(const arrpc_client *cli)
{
    return cli->metrics && cli->metrics->on ? arrpc__clock_ns() : 0;
}

/* ---- counting (the client's thread) ------------------------------------------------------- */

static void write_begin(arrpc__client_metrics *cm)
{
    uint32_t s = atomic_load_explicit(&cm->seq, memory_order_relaxed);
    atomic_store_explicit(&cm->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release); /* the odd count is seen before any counter */
}

static void write_end(arrpc__client_metrics *cm)
{
    uint32_t s = atomic_load_explicit(&cm->seq, memory_order_relaxed);
    atomic_store_explicit(&cm->seq, s + 1, memory_order_release);
}

void arrpc__client_metrics_count(arrpc_client *cli, int rc, const size_t *lens, size_t count,
                                 arrpc_response *const *out, uint64_t started_ns)
{
    arrpc__client_metrics *cm = cli->metrics;
    if (!cm || !cm->on || rc == ARRPC_EINVAL) return;
    uint64_t ns = started_ns ? arrpc__clock_ns() - started_ns : 0;
    int is_signed = cli->secret != NULL, tls = cli->tls.cafile != NULL;
    write_begin(cm);
    if (cm->row == UINT32_MAX) cm->row = arrpc__metrics_row_for(cm->block, cli->eps.list[0].host);
    for (size_t i = 0; i < count; i++) {
        arrpc__metrics_count_request(cm->block, cm->row, is_signed, tls, ns, lens[i]);
        int reason = arrpc__client_metrics_reason(rc != 0 ? rc : arrpc_response_status(out[i]));
        if (reason != ARRPC_REASON_COUNT)
            arrpc__metrics_count_error(cm->block, cm->row, is_signed, tls, (arrpc__reason)reason);
    }
    write_end(cm);
}

void arrpc__client_metrics_count_retries(arrpc_client *cli, size_t requests)
{
    arrpc__client_metrics *cm = cli->metrics;
    if (!cm || !cm->on) return;
    if (!atomic_load_explicit(&cm->remote_set, memory_order_relaxed)) {
        snprintf(cm->remote, sizeof cm->remote, "%s", cli->eps.list[0].host);
        atomic_store_explicit(&cm->remote_set, 1, memory_order_release); /* after the text */
    }
    atomic_fetch_add_explicit(&cm->retries[cli->secret != NULL][cli->tls.cafile != NULL], requests,
                              memory_order_relaxed);
}

/* A family of its own after 0.5.0's three (whose names stay as they were), with their labels:
 * one series per (signed_payload, tls) pair that resent anything. */
static void write_retries(FILE *f, const arrpc__labels *l, arrpc__client_metrics *cm)
{
    static const char *const py_bool[2] = {"False", "True"};
    fputs("# HELP arrpc_client_retries_total Requests sent again on a new connection after the "
          "previous one broke before any byte of their reply (idempotent clients only)\n"
          "# TYPE arrpc_client_retries_total counter\n",
          f);
    if (!cm || !atomic_load_explicit(&cm->remote_set, memory_order_acquire)) return;
    for (int is_signed = 0; is_signed < 2; is_signed++)
        for (int tls = 0; tls < 2; tls++) {
            uint64_t n = atomic_load_explicit(&cm->retries[is_signed][tls], memory_order_relaxed);
            if (n == 0) continue;
            fputs("arrpc_client_retries_total{hostname=", f);
            arrpc__exposition_quote(f, l->hostname);
            fputs(",k8s_namespace=", f);
            arrpc__exposition_quote(f, l->k8s_namespace);
            fputs(",remote_address=", f);
            arrpc__exposition_quote(f, cm->remote);
            fprintf(f, ",signed_payload=\"%s\",tls=\"%s\"} %llu\n", py_bool[is_signed],
                    py_bool[tls], (unsigned long long)n);
        }
}

/* ---- reading (any thread) ----------------------------------------------------------------- */

static void snapshot(arrpc__client_metrics *cm, arrpc__metrics *into)
{
    for (unsigned tries = 0; tries < SNAPSHOT_TRIES; tries++) {
        uint32_t s = atomic_load_explicit(&cm->seq, memory_order_acquire);
        arrpc__metrics_reset(into);
        arrpc__metrics_add(into, cm->block);
        atomic_thread_fence(memory_order_acquire); /* the copy is done before seq is read again */
        if (!(s & 1) && atomic_load_explicit(&cm->seq, memory_order_relaxed) == s) return;
        sched_yield();
    }
}

/* The Prometheus text of cm (of no counts when cm is NULL) in a new string *text of *len bytes,
 * NUL-terminated. */
static int render_alloc(arrpc__client_metrics *cm, char **text, size_t *len)
{
    arrpc__metrics *snap = arrpc__metrics_new(ARRPC_CLIENT_METRICS_ADDRS);
    arrpc__labels fresh = {.handler_func = NULL};
    if (!snap) return ARRPC_ENOMEM;
    if (cm)
        snapshot(cm, snap);
    else
        arrpc__labels_load(&fresh);
    *text = NULL;
    FILE *f = open_memstream(text, len);
    if (f) {
        arrpc__exposition_write(f, "client", cm ? &cm->labels : &fresh, snap);
        write_retries(f, cm ? &cm->labels : &fresh, cm);
        fclose(f);
    }
    free(snap);
    return f && *text ? 0 : ARRPC_ENOMEM;
}

int arrpc_client_metrics_render(const arrpc_client *cli, char *buf, size_t cap, size_t *len)
{
    if (!cli || !len || (cap > 0 && !buf)) return ARRPC_EINVAL;
    char *text = NULL;
    int rc = render_alloc(cli->metrics, &text, len);
    if (rc != 0) return rc;
    if (*len >= cap) {
        if (cap > 0) buf[0] = '\0';
        rc = ARRPC_ENOMEM;
    } else {
        memcpy(buf, text, *len + 1);
    }
    free(text);
    return rc;
}

/* ---- options ------------------------------------------------------------------------------ */

static arrpc__client_metrics *metrics_new(void)
{
    arrpc__client_metrics *cm = calloc(1, sizeof *cm);
    if (!cm || !(cm->block = arrpc__metrics_new(ARRPC_CLIENT_METRICS_ADDRS))) {
        free(cm);
        return NULL;
    }
    cm->row = UINT32_MAX;
    arrpc__labels_load(&cm->labels);
    cm->labels.handler_func = NULL; /* the client has no handler_func label */
    return cm;
}

int arrpc_client_set_metrics(arrpc_client *cli, int on)
{
    if (!cli) return ARRPC_EINVAL;
    if (on && !cli->metrics && !(cli->metrics = metrics_new())) return ARRPC_ENOMEM;
    if (cli->metrics) cli->metrics->on = on != 0;
    return 0;
}

void arrpc__client_metrics_free(arrpc__client_metrics *cm)
{
    if (!cm) return;
    if (cm->daemon) MHD_stop_daemon(cm->daemon); /* joins its thread, closes the listening socket */
    free(cm->block);
    free(cm);
}

/* ---- the HTTP exporter (libmicrohttpd's thread) ------------------------------------------- */

/* GET (or HEAD) /metrics; 405 for other methods, 404 for other paths. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **state)
{
    (void)version, (void)upload_data, (void)upload_size, (void)state;
    if (!arrpc__http_method_allowed(method))
        return arrpc__http_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");
    if (strcmp(url, "/metrics") != 0)
        return arrpc__http_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n");
    char *text = NULL;
    size_t len = 0;
    if (render_alloc(cls, &text, &len) != 0) return MHD_NO;
    return arrpc__http_reply(conn, MHD_HTTP_OK, text, len, ARRPC_HTTP_METRICS_TYPE);
}

int arrpc_client_serve_metrics(arrpc_client *cli, const char *host, uint16_t port)
{
    if (!cli || !host || !*host) return ARRPC_EINVAL;
    int rc = arrpc_client_set_metrics(cli, 1);
    if (rc != 0) return rc;
    arrpc__client_metrics *cm = cli->metrics;
    if (cm->daemon)
        return arrpc__client_fail(cli, ARRPC_ESTATE, "metrics are served already on port %u",
                                  (unsigned)cm->port);
    char err[256];
    int fd = arrpc__net_listen(host, port, 0, err, sizeof err);
    if (fd < 0) return arrpc__client_fail(cli, ARRPC_ESYS, "metrics: %s", err);
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | (cli->debug ? MHD_USE_ERROR_LOG : 0);
    cm->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, cm, MHD_OPTION_LISTEN_SOCKET,
                                  fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTION_LIMIT,
                                  MHD_OPTION_CONNECTION_TIMEOUT,
                                  (unsigned)HTTP_CONNECTION_TIMEOUT_S, MHD_OPTION_END);
    if (!cm->daemon) {
        close(fd);
        return arrpc__client_fail(cli, ARRPC_ESYS, "metrics: cannot start the HTTP exporter");
    }
    cm->port = arrpc__net_local_port(fd);
    ARRPC_DEBUG(cli->debug, "client: metrics on http://%s:%u/metrics", host, (unsigned)cm->port);
    return 0;
}

uint16_t arrpc_client_metrics_port(const arrpc_client *cli)
{
    return cli && cli->metrics && cli->metrics->daemon ? cli->metrics->port : 0;
}
