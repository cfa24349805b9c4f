/* report.c -- the live line, and the end-of-run summary as text or JSON. */
#include <inttypes.h>
#include <stdio.h>

#include "bench.h"

const char *const bench_err_key[BENCH_ERR_COUNT] = {
#define BENCH_ERR_KEY(name, key, text) key,
    BENCH_ERRORS(BENCH_ERR_KEY)
#undef BENCH_ERR_KEY
};
const char *const bench_err_text[BENCH_ERR_COUNT] = {
#define BENCH_ERR_TEXT(name, key, text) text,
    BENCH_ERRORS(BENCH_ERR_TEXT)
#undef BENCH_ERR_TEXT
};

static uint64_t errors_total(const bench_stats *s)
{
    uint64_t n = 0;
    for (unsigned k = 0; k < BENCH_ERR_COUNT; k++)
        n += s->errors[k];
    return n;
}

/* A duration in ns as "812 us", "3.41 ms" or "1.20 s", into buf. */
static const char *fmt_ns(char *buf, size_t len, double ns)
{
    if (ns < 1e6)
        snprintf(buf, len, "%.0f us", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, len, "%.2f ms", ns / 1e6);
    else
        snprintf(buf, len, "%.2f s", ns / 1e9);
    return buf;
}

static const char *fmt_bytes(char *buf, size_t len, double b)
{
    static const char *const unit[] = {"B", "kB", "MB", "GB", "TB"};
    unsigned u = 0;
    while (b >= 1000 && u < 4) {
        b /= 1000;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
    return buf;
}

void bench_report_live(FILE *to, double elapsed_s, int warming, uint64_t qps, const bench_stats *s)
{
    char p99[32];
    fprintf(to, "\r\033[K%6.1f s  %s%10" PRIu64 " req/s  errors %" PRIu64 "  p99 %s", elapsed_s,
            warming ? "(warm-up) " : "", qps, errors_total(s),
            fmt_ns(p99, sizeof p99, (double)bench_hist_percentile(&s->hist, 99.0)));
    fflush(to);
}

static const struct {
    const char *name, *json;
    double pct;
} percentiles[] = {
    {"p50", "p50", 50.0},
    {"p90", "p90", 90.0},
    {"p99", "p99", 99.0},
    {"p99.9", "p99_9", 99.9},
};

/* CPU seconds spread over the counted replies, in microseconds; 0 with no reply. */
static double per_reply_us(double cpu_s, const bench_stats *s)
{
    return s->replies ? cpu_s * 1e6 / (double)s->replies : 0.0;
}

/* The mean lag of the sent requests behind their due times, ns. */
static double lag_mean(const bench_stats *s)
{
    return s->sent ? s->lag.sum / (double)s->sent : 0.0;
}

/* --rate: the schedule, and how far behind it the client fell. */
static void text_schedule(FILE *to, const bench_config *cfg, const bench_stats *s)
{
    char a[32], b[32], c[32];
    if (!cfg->rate) return;
    fprintf(to, "  schedule    %u/s open loop, latency from each request's due time\n", cfg->rate);
    fprintf(to,
            "  lag         mean %s  max %s; %" PRIu64 " sent over %s late, %" PRIu64
            " never sent\n",
            fmt_ns(a, sizeof a, lag_mean(s)), fmt_ns(b, sizeof b, (double)s->lag.max), s->lag.late,
            fmt_ns(c, sizeof c, (double)BENCH_LATE_NS), s->lag.unsent);
}

void bench_report_text(FILE *to, const bench_config *cfg, const bench_result *r)
{
    const bench_stats *s = &r->total;
    char a[32], b[32];
    double el = r->elapsed_s > 0 ? r->elapsed_s : 1e-9;
    fprintf(
        to,
        "arrpc-bench %s, %s, %u connection%s x %u in flight, %u thread%s, request %zu bytes%s%s\n",
        cfg->target, cfg->proto == BENCH_PROTO_ARRPC ? "arrpc" : "RESP PING", cfg->connections,
        cfg->connections == 1 ? "" : "s", cfg->pipeline, cfg->threads, cfg->threads == 1 ? "" : "s",
        cfg->request_len, cfg->auth ? ", signed" : "", cfg->verify ? ", verified" : "");
    if (cfg->request_shown) fprintf(to, "  request     %s\n", cfg->request_shown);
    fprintf(to, "  time        %.3f s measured after %.2f s warm-up%s\n", r->elapsed_s,
            (double)cfg->warmup_ns / 1e9, r->interrupted ? " (interrupted)" : "");
    fprintf(to, "  replies     %" PRIu64 " of %" PRIu64 " sent, %.0f/s\n", s->replies, s->sent,
            (double)s->replies / el);
    text_schedule(to, cfg, s);
    if (cfg->idempotent)
        fprintf(to, "  resent      %" PRIu64 " after a broken connection (--idempotent)\n",
                s->resent);
    fprintf(to, "  errors      %" PRIu64 "\n", errors_total(s));
    for (unsigned k = 0; k < BENCH_ERR_COUNT; k++)
        if (s->errors[k])
            fprintf(to, "    %-9s %" PRIu64 "  (%s)\n", bench_err_key[k], s->errors[k],
                    bench_err_text[k]);
    fprintf(to, "  latency    ");
    for (unsigned i = 0; i < sizeof percentiles / sizeof percentiles[0]; i++)
        fprintf(to, " %s %s ", percentiles[i].name,
                fmt_ns(a, sizeof a, (double)bench_hist_percentile(&s->hist, percentiles[i].pct)));
    fprintf(to, " max %s\n", fmt_ns(a, sizeof a, (double)s->hist.max));
    fprintf(to, "              mean %s  min %s\n", fmt_ns(a, sizeof a, bench_hist_mean(&s->hist)),
            fmt_ns(b, sizeof b, s->hist.count ? (double)s->hist.min : 0));
    fprintf(to, "  bytes       sent %s", fmt_bytes(a, sizeof a, (double)s->bytes_out));
    fprintf(to, "  received %s\n", fmt_bytes(a, sizeof a, (double)s->bytes_in));
    fprintf(to, "  client CPU  user %.2f s  sys %.2f s  (%.0f%% of one core)\n", r->cpu_user_s,
            r->cpu_sys_s, 100.0 * (r->cpu_user_s + r->cpu_sys_s) / el);
    if (r->server_cpu_s >= 0)
        fprintf(to, "  server CPU  %.2f s  (%.0f%% of one core), %.2f us per reply\n",
                r->server_cpu_s, 100.0 * r->server_cpu_s / el, per_reply_us(r->server_cpu_s, s));
}

void bench_report_json(FILE *to, const bench_config *cfg, const bench_result *r)
{
    const bench_stats *s = &r->total;
    double el = r->elapsed_s > 0 ? r->elapsed_s : 1e-9;
    fprintf(to,
            "{\"target\": \"%s\", \"proto\": \"%s\", \"connections\": %u, \"pipeline\": %u, "
            "\"threads\": %u, \"request_bytes\": %zu, \"auth\": %s, \"verify\": %s,\n",
            cfg->target, cfg->proto == BENCH_PROTO_ARRPC ? "arrpc" : "resp", cfg->connections,
            cfg->pipeline, cfg->threads, cfg->request_len, cfg->auth ? "true" : "false",
            cfg->verify ? "true" : "false");
    fprintf(to, " \"request\": %s, \"rate\": ", cfg->request_shown ? cfg->request_shown : "null");
    if (cfg->rate)
        fprintf(to,
                "%u, \"lag_us\": {\"mean\": %.1f, \"max\": %.1f}, \"late\": %" PRIu64
                ", \"late_after_us\": %.0f, \"unsent\": %" PRIu64 ",\n",
                cfg->rate, lag_mean(s) / 1e3, (double)s->lag.max / 1e3, s->lag.late,
                (double)BENCH_LATE_NS / 1e3, s->lag.unsent);
    else
        fprintf(to, "null, \"lag_us\": null, \"late\": null, \"unsent\": null,\n");
    fprintf(to, " \"warmup_s\": %.3f, \"elapsed_s\": %.6f, \"interrupted\": %s,\n",
            (double)cfg->warmup_ns / 1e9, r->elapsed_s, r->interrupted ? "true" : "false");
    fprintf(to,
            " \"sent\": %" PRIu64 ", \"replies\": %" PRIu64 ", \"qps\": %.1f, \"resent\": %" PRIu64
            ", \"errors\": %" PRIu64 ",\n \"errors_by_kind\": {",
            s->sent, s->replies, (double)s->replies / el, s->resent, errors_total(s));
    for (unsigned k = 0; k < BENCH_ERR_COUNT; k++)
        fprintf(to, "%s\"%s\": %" PRIu64, k ? ", " : "", bench_err_key[k], s->errors[k]);
    fprintf(to, "},\n \"latency_us\": {\"min\": %.1f, \"mean\": %.1f",
            s->hist.count ? (double)s->hist.min / 1e3 : 0.0, bench_hist_mean(&s->hist) / 1e3);
    for (unsigned i = 0; i < sizeof percentiles / sizeof percentiles[0]; i++)
        fprintf(to, ", \"%s\": %.1f", percentiles[i].json,
                (double)bench_hist_percentile(&s->hist, percentiles[i].pct) / 1e3);
    fprintf(to, ", \"max\": %.1f},\n", (double)s->hist.max / 1e3);
    fprintf(to, " \"bytes_sent\": %" PRIu64 ", \"bytes_received\": %" PRIu64 ",\n", s->bytes_out,
            s->bytes_in);
    fprintf(to,
            " \"cpu\": {\"user_s\": %.3f, \"sys_s\": %.3f, \"percent_of_core\": %.1f, "
            "\"us_per_reply\": %.3f},\n",
            r->cpu_user_s, r->cpu_sys_s, 100.0 * (r->cpu_user_s + r->cpu_sys_s) / el,
            per_reply_us(r->cpu_user_s + r->cpu_sys_s, s));
    if (r->server_cpu_s < 0)
        fprintf(to, " \"server_cpu\": null}\n");
    else
        fprintf(to,
                " \"server_cpu\": {\"seconds\": %.6f, \"percent_of_core\": %.1f, "
                "\"us_per_reply\": %.3f}}\n",
                r->server_cpu_s, 100.0 * r->server_cpu_s / el, per_reply_us(r->server_cpu_s, s));
}
