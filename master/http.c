/* http.c -- /metrics, /healthz and /readyz on libmicrohttpd, polled from the master's loop.
 *
 * libmicrohttpd runs without threads (external polling through its epoll descriptor, which
 * the master's epoll watches), only in the master, never in a worker: it is not fork-safe.
 * Connections are limited in number and time so that a slow or hostile HTTP client cannot
 * stall the loop; every answer is built in memory at once. */
#include "internal.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../metrics/http_reply.h"
#include "../core/log.h"
#include "../metrics/exposition.h"

#define HTTP_CONNECTION_LIMIT 32
#define HTTP_CONNECTION_TIMEOUT_S 5

struct arrpc__http {
    struct MHD_Daemon *daemon;
    arrpc__master *m;
    arrpc__labels labels;
    /* The last exact sum and a scratch block for the next one: large, so made once. A scrape
     * that cannot get an exact sum (another master stalled mid-fold) serves the last one. */
    arrpc__metrics *sum, *next;
    uint32_t connections; /* open connections as of `sum` */
    int warned;           /* the stalled fold was logged */
    double start_time;    /* the master's start, seconds since the epoch */
};

static int is_ready(const arrpc__master *m)
{
    return !m->stopping && !m->predrain_until_ms && arrpc__generation_ready(m, m->generation);
}

static unsigned workers_alive(const arrpc__master *m)
{
    unsigned n = 0;
    for (unsigned r = 0; r < ARRPC_SHM_RECORDS; r++)
        n += m->row[r].state == ARRPC_WORKER_READY || m->row[r].state == ARRPC_WORKER_RETIRING;
    return n;
}

/* A metric of the master's own, with the hostname and namespace labels. */
static void write_own(FILE *f, const arrpc__http *h, const char *name, const char *type,
                      const char *help, const char *extra_labels, double value)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s{hostname=", name, help, name, type, name);
    arrpc__exposition_quote(f, h->labels.hostname);
    fputs(",k8s_namespace=", f);
    arrpc__exposition_quote(f, h->labels.k8s_namespace);
    fprintf(f, "%s} %.17g\n", extra_labels, value);
}

static void write_restarts(FILE *f, const arrpc__http *h)
{
    const arrpc__shm *shm = h->m->shm;
    fputs("# HELP arrpc_server_worker_restarts_total Workers replaced, by cause.\n"
          "# TYPE arrpc_server_worker_restarts_total counter\n",
          f);
    for (unsigned c = 0; c < ARRPC_CAUSE_COUNT; c++) {
        uint64_t n = shm->area[0].restarts[c] + shm->area[1].restarts[c];
        fputs("arrpc_server_worker_restarts_total{hostname=", f);
        arrpc__exposition_quote(f, h->labels.hostname);
        fputs(",k8s_namespace=", f);
        arrpc__exposition_quote(f, h->labels.k8s_namespace);
        fprintf(f, ",cause=\"%s\"} %llu\n", arrpc__cause_label[c], (unsigned long long)n);
    }
}

/* What became of the connections of workers whose handler crashed (workers/rescue.c). */
static void write_crash_connections(FILE *f, const arrpc__http *h)
{
    const uint64_t count[] = {atomic_load_explicit(&h->sum->crash_saved, memory_order_relaxed),
                              atomic_load_explicit(&h->sum->crash_lost, memory_order_relaxed)};
    static const char *const result[] = {"saved", "lost"};
    fputs("# HELP arrpc_server_crash_connections_total Connections of a worker whose handler "
          "crashed: handed to another worker (saved) or closed (lost).\n"
          "# TYPE arrpc_server_crash_connections_total counter\n",
          f);
    for (unsigned i = 0; i < 2; i++) {
        fputs("arrpc_server_crash_connections_total{hostname=", f);
        arrpc__exposition_quote(f, h->labels.hostname);
        fputs(",k8s_namespace=", f);
        arrpc__exposition_quote(f, h->labels.k8s_namespace);
        fprintf(f, ",result=\"%s\"} %llu\n", result[i], (unsigned long long)count[i]);
    }
}

static void write_metrics(FILE *f, arrpc__http *h)
{
    const arrpc__master *m = h->m;
    uint32_t connections;
    if (arrpc__shm_sum(m->shm, h->next, &connections) == 0) {
        arrpc__metrics *exact = h->next;
        h->next = h->sum;
        h->sum = exact;
        h->connections = connections;
    } else if (!h->warned) {
        arrpc__log("metrics: a fold in another master did not end; serving the last exact sum");
        h->warned = 1;
    }
    arrpc__exposition_write(f, "server", &h->labels, h->sum);
    write_restarts(f, h);
    uint64_t reloads = m->shm->area[0].reloads + m->shm->area[1].reloads;
    write_own(f, h, "arrpc_server_reloads_total", "counter", "Reloads completed (SIGHUP).", "",
              (double)reloads);
    write_own(f, h, "arrpc_server_workers", "gauge", "Worker processes alive.", "",
              workers_alive(m));
    write_own(f, h, "arrpc_server_connections", "gauge", "Open client connections.", "",
              h->connections);
    write_own(f, h, "arrpc_server_connections_aged_total", "counter",
              "Connections closed at an idle moment for their age (--max-connection-age).", "",
              (double)atomic_load_explicit(&h->sum->aged, memory_order_relaxed));
    write_crash_connections(f, h);
    write_own(f, h, "arrpc_server_generation", "gauge", "Generation of workers serving.", "",
              m->generation);
    write_own(f, h, "arrpc_server_start_time_seconds", "gauge",
              "Start time of the master, seconds since the epoch.", "", h->start_time);
    write_own(f, h, "arrpc_server_build_info", "gauge", "Version of arrpc, as a label.",
              ",version=\"" ARRPC_VERSION "\"", 1);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **state)
{
    arrpc__http *h = cls;
    (void)version, (void)upload_data, (void)upload_size, (void)state;
    if (!arrpc__http_method_allowed(method))
        return arrpc__http_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");
    if (strcmp(url, "/healthz") == 0) return arrpc__http_text(conn, MHD_HTTP_OK, "ok\n");
    if (strcmp(url, "/readyz") == 0)
        return is_ready(h->m) ? arrpc__http_text(conn, MHD_HTTP_OK, "ready\n")
                              : arrpc__http_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready\n");
    if (strcmp(url, "/metrics") != 0)
        return arrpc__http_text(conn, MHD_HTTP_NOT_FOUND,
                                "not found: try /metrics, /healthz, /readyz\n");
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    if (!f) return MHD_NO;
    write_metrics(f, h);
    fclose(f);
    return arrpc__http_reply(conn, MHD_HTTP_OK, body, len, ARRPC_HTTP_METRICS_TYPE);
}

arrpc__http *arrpc__http_start(arrpc__master *m, int listen_fd)
{
    arrpc__http *h = calloc(1, sizeof *h);
    if (!h || !(h->sum = arrpc__metrics_new(ARRPC_METRICS_ADDRS)) ||
        !(h->next = arrpc__metrics_new(ARRPC_METRICS_ADDRS))) {
        arrpc__http_stop(h);
        return NULL;
    }
    h->m = m;
    arrpc__labels_load(&h->labels);
    h->labels.handler_func = m->cfg->worker.handler_name;
    h->start_time = (double)time(NULL);
    h->daemon = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, h,
                                 MHD_OPTION_LISTEN_SOCKET, listen_fd, MHD_OPTION_CONNECTION_LIMIT,
                                 (unsigned)HTTP_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)HTTP_CONNECTION_TIMEOUT_S, MHD_OPTION_END);
    if (!h->daemon) {
        arrpc__http_stop(h);
        return NULL;
    }
    return h;
}

int arrpc__http_epoll_fd(const arrpc__http *h)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    return info ? info->epoll_fd : -1;
}

void arrpc__http_run(arrpc__http *h)
{
    if (h) MHD_run(h->daemon);
}

void arrpc__http_stop(arrpc__http *h)
{
    if (!h) return;
    if (h->daemon) MHD_stop_daemon(h->daemon);
    free(h->sum);
    free(h->next);
    free(h);
}
