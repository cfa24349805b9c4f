/* exposition.c -- counters to Prometheus text (see exposition.h). */
#include "exposition.h"

#include <string.h>

static void read_line_file(const char *path, char *out, size_t len)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (fgets(out, (int)len, f)) out[strcspn(out, "\r\n")] = '\0';
    fclose(f);
}

void arrpc__labels_load(arrpc__labels *l)
{
    read_line_file("/etc/hostname", l->hostname, sizeof l->hostname);
    read_line_file(ARRPC_K8S_NAMESPACE_FILE, l->k8s_namespace, sizeof l->k8s_namespace);
}

void arrpc__exposition_quote(FILE *f, const char *value)
{
    fputc('"', f);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"') fputc('\\', f);
        if (*p == '\n')
            fputs("\\n", f);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* The label set of a series, without braces, as arrpc 0.5.0 names and spells them. */
static void write_labels(FILE *f, const arrpc__labels *l, const char *addr, int is_signed, int tls)
{
    fputs("hostname=", f);
    arrpc__exposition_quote(f, l->hostname);
    fputs(",k8s_namespace=", f);
    arrpc__exposition_quote(f, l->k8s_namespace);
    fputs(",remote_address=", f);
    arrpc__exposition_quote(f, addr);
    if (l->handler_func) {
        fputs(",handler_func=", f);
        arrpc__exposition_quote(f, l->handler_func);
    }
    /* Python prints booleans as True/False; dashboards match on that. */
    fprintf(f, ",signed_payload=\"%s\",tls=\"%s\"", is_signed ? "True" : "False",
            tls ? "True" : "False");
}

typedef void (*series_writer)(FILE *f, const char *side, const char *labels,
                              const arrpc__series *s);

static void write_seconds(FILE *f, const char *side, const char *labels, const arrpc__series *s)
{
    uint64_t n = s->requests, cumulative = 0;
    if (n == 0) return;
    for (unsigned b = 0; b < ARRPC_METRICS_BUCKETS; b++) {
        cumulative += s->bucket[b];
        fprintf(f, "arrpc_%s_req_seconds_bucket{%s,le=\"%g\"} %llu\n", side, labels,
                arrpc__bucket_le[b], (unsigned long long)cumulative);
    }
    fprintf(f, "arrpc_%s_req_seconds_bucket{%s,le=\"+Inf\"} %llu\n", side, labels,
            (unsigned long long)n);
    fprintf(f, "arrpc_%s_req_seconds_sum{%s} %.9f\n", side, labels, (double)s->seconds_ns / 1e9);
    fprintf(f, "arrpc_%s_req_seconds_count{%s} %llu\n", side, labels, (unsigned long long)n);
}

static void write_bytes(FILE *f, const char *side, const char *labels, const arrpc__series *s)
{
    if (s->requests == 0) return;
    fprintf(f, "arrpc_%s_req_bytes_sum{%s} %llu\n", side, labels, (unsigned long long)s->bytes);
    fprintf(f, "arrpc_%s_req_bytes_count{%s} %llu\n", side, labels,
            (unsigned long long)s->requests);
}

static void write_errors(FILE *f, const char *side, const char *labels, const arrpc__series *s)
{
    for (unsigned r = 0; r < ARRPC_REASON_COUNT; r++)
        if (s->errors[r])
            fprintf(f, "arrpc_%s_errors_total{%s,reason=\"%s\"} %llu\n", side, labels,
                    arrpc__reason_label[r], (unsigned long long)s->errors[r]);
}

/* Calls `write` for every series of every row in use, overflow row last. */
static void for_each_series(FILE *f, const char *side, const arrpc__labels *l,
                            const arrpc__metrics *sum, series_writer write)
{
    char labels[1024];
    for (uint32_t i = 0; i <= sum->addrs; i++) {
        if (i < sum->addrs && i >= sum->rows) continue;
        const arrpc__metrics_row *row = &sum->row[i];
        const char *addr = i == sum->addrs ? ARRPC_METRICS_OVERFLOW_LABEL : row->addr;
        for (int sig = 0; sig < 2; sig++) {
            for (int tls = 0; tls < 2; tls++) {
                FILE *lf = fmemopen(labels, sizeof labels, "w");
                if (!lf) return;
                write_labels(lf, l, addr, sig, tls);
                fclose(lf);
                write(f, side, labels, &row->series[sig][tls]);
            }
        }
    }
}

void arrpc__exposition_write(FILE *f, const char *side, const arrpc__labels *l,
                             const arrpc__metrics *sum)
{
    fprintf(f, "# HELP arrpc_%s_req_seconds Time spent on requests, in seconds.\n", side);
    fprintf(f, "# TYPE arrpc_%s_req_seconds histogram\n", side);
    for_each_series(f, side, l, sum, write_seconds);
    fprintf(f, "# HELP arrpc_%s_req_bytes Size of requests, in bytes.\n", side);
    fprintf(f, "# TYPE arrpc_%s_req_bytes summary\n", side);
    for_each_series(f, side, l, sum, write_bytes);
    fprintf(f, "# HELP arrpc_%s_errors_total Requests that failed, by reason.\n", side);
    fprintf(f, "# TYPE arrpc_%s_errors_total counter\n", side);
    for_each_series(f, side, l, sum, write_errors);
}
