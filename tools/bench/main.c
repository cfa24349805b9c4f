/* main.c -- arrpc-bench, the load generator: options, threads, the live line, the summary. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../../client/endpoints.h"
#include "../../core/net.h"
#include "arrpc.h"
#include "bench.h"
#include "../options.h"

#define EXIT_USAGE 2
#define DEFAULT_TARGET "127.0.0.1:8080"
#define DEFAULT_DURATION_S 10.0
#define DEFAULT_SIZE 16
#define MAX_CONNECTIONS 100000ul
#define MAX_PIPELINE 65536ul
#define MAX_THREADS 256ul
#define MAX_RATE 10000000ul            /* --rate: requests per second, over all threads */
#define POLL_NS (100ull * 1000 * 1000) /* how often the main thread looks around */

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Appends the addresses of one --connect entry: its IPv4 ones, or its IPv6 ones when it has
 * none (so "localhost" keeps meaning 127.0.0.1, as when the tool spoke IPv4 only). */
static int add_endpoints(bench_config *cfg, const arrpc__endpoint *e)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int gai = getaddrinfo(e->host, NULL, &hints, &res);
    if (gai != 0) {
        fprintf(stderr, "arrpc-bench: cannot resolve %s: %s\n", e->host, gai_strerror(gai));
        return -1;
    }
    int family = AF_INET6;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (ai->ai_family == AF_INET) family = AF_INET;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family != family) continue;
        if (cfg->nendpoints == BENCH_ENDPOINTS_MAX) {
            fprintf(stderr, "arrpc-bench: --connect: more than %d addresses\n",
                    BENCH_ENDPOINTS_MAX);
            freeaddrinfo(res);
            return -1;
        }
        bench_endpoint *b = &cfg->endpoints[cfg->nendpoints++];
        memcpy(&b->addr, ai->ai_addr, ai->ai_addrlen);
        b->addrlen = ai->ai_addrlen;
        if (family == AF_INET)
            ((struct sockaddr_in *)&b->addr)->sin_port = htons(e->port);
        else
            ((struct sockaddr_in6 *)&b->addr)->sin6_port = htons(e->port);
        snprintf(b->host, sizeof b->host, "%s", e->host);
    }
    freeaddrinfo(res);
    return 0;
}

/* --connect "HOST:PORT,..." into cfg->endpoints, every name resolved once. */
static int resolve(bench_config *cfg, const char *spec)
{
    char err[256];
    arrpc__endpoints eps;
    if (arrpc__endpoints_parse(spec, &eps, err, sizeof err) != 0) {
        fprintf(stderr, "arrpc-bench: --connect: %s\n", err);
        return -1;
    }
    int rc = (cfg->endpoints = calloc(BENCH_ENDPOINTS_MAX, sizeof *cfg->endpoints)) ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < eps.count; i++)
        rc = add_endpoints(cfg, &eps.list[i]);
    arrpc__endpoints_free(&eps);
    cfg->target = spec;
    return rc;
}

/* Options with no place in bench_config; the table below fills both. */
typedef struct {
    const char *target, *secret_file;
    const char *tls_cafile, *tls_cert, *tls_key, *tls_server_name;
    int tls_self_signed, quiet;
    unsigned long total;
} extra_options;

typedef struct {
    bench_config cfg;
    extra_options x;
} bench_options;

static void print_version(void)
{
    printf("arrpc-bench %s\n", ARRPC_VERSION);
}

static int set_proto(void *opts, const char *arg)
{
    bench_config *cfg = &((bench_options *)opts)->cfg;
    if (strcmp(arg, "arrpc") != 0 && strcmp(arg, "resp") != 0) {
        fprintf(stderr, "arrpc-bench: --proto is arrpc or resp, not '%s'\n", arg);
        return -1;
    }
    cfg->proto = arg[0] == 'r' ? BENCH_PROTO_RESP : BENCH_PROTO_ARRPC;
    return 0;
}

#define AT(member) ARRPC_OPT_AT(bench_options, member)
#define MAX_SECONDS_MS (10000000ul * 1000) /* -d, -w, --timeout: at most 1e7 s */

static const arrpc_opt bench_opts[] = {
    {"connect", 0, ARRPC_OPT_STRING, "HOST:PORT,...", AT(x.target),
     .help = "the servers, also given as the operand (IPv6 as [ADDR]:PORT; a name counts once "
             "per address): connections are spread over them round-robin; one that cannot "
             "connect tries the next (a connect error is counted only when every server "
             "failed in a row), and one moved away from its own server drains and goes back "
             "after a second"},
    {"idempotent", 0, ARRPC_OPT_FLAG, NULL, AT(cfg.idempotent),
     .help = "a connection that breaks (closed, reset) reconnects, to the next server, and "
             "resends the requests that got no byte of their reply, instead of counting an "
             "error (a half-read reply still counts as closed)"},
    {"connections", 'c', ARRPC_OPT_UNSIGNED, "N", AT(cfg.connections), 1, MAX_CONNECTIONS,
     .help = "connections"},
    {"pipeline", 'P', ARRPC_OPT_UNSIGNED, "N", AT(cfg.pipeline), 1, MAX_PIPELINE,
     .help = "requests in flight per connection"},
    {"threads", 't', ARRPC_OPT_UNSIGNED, "N", AT(cfg.threads), 1, MAX_THREADS,
     .help = "client threads, each with its own epoll loop"},
    {"duration", 'd', ARRPC_OPT_SECONDS_NS, "S", AT(cfg.duration_ns), 1, MAX_SECONDS_MS,
     .def = "10", .help = "measure for S seconds (decimals allowed)"},
    {"requests", 'n', ARRPC_OPT_UNSIGNED, "N", AT(cfg.requests), 1, ULONG_MAX,
     .help = "measure N requests instead of a duration"},
    {"warmup", 'w', ARRPC_OPT_SECONDS_NS, "S", AT(cfg.warmup_ns), 0, MAX_SECONDS_MS, .def = "0",
     .help = "run S seconds unmeasured first"},
    {"rate", 'R', ARRPC_OPT_UNSIGNED, "N", AT(cfg.rate), 1, MAX_RATE, .def = "none", .show_max = 1,
     .help = "open loop: N requests per second over all connections, due at fixed times whether "
             "or not earlier ones were answered (up to -P in flight per connection; one past that "
             "waits for a free slot); latency counts from the time a request was due, and the "
             "summary says how far behind that schedule the client fell"},
    {"request", 0, ARRPC_OPT_STRING, "JSON", AT(cfg.request_json),
     .help = "send this request, written as JSON (as arrpc-call takes it), e.g. '{\"sleep\": "
             "0.05}', instead of the --size str; its reply cannot be known, so --verify only "
             "checks that it is not an error (error replies are counted as errors anyway)"},
    {"size", 's', ARRPC_OPT_UNSIGNED, "BYTES", AT(cfg.payload_size), 0, ARRPC_MAX_MESSAGE_LIMIT / 4,
     .help = "payload: a str of BYTES bytes, which the demo plugin echoes"},
    {"total", 0, ARRPC_OPT_UNSIGNED, "BYTES", AT(x.total), 1, ARRPC_MAX_MESSAGE_LIMIT / 4,
     .help = "size the payload so that the whole request, envelope included, has BYTES bytes on "
             "the wire"},
    {"auth-secret-file", 0, ARRPC_OPT_STRING, "F", AT(x.secret_file),
     .help = "sign every request with the secret in F (the 0.5.0 envelope; signed once, the same "
             "bytes are resent)"},
    {"verify", 0, ARRPC_OPT_FLAG, NULL, AT(cfg.verify),
     .help = "check every reply against its request (an echo)"},
    {"timeout", 0, ARRPC_OPT_SECONDS_NS, "S", AT(cfg.timeout_ns), 1, MAX_SECONDS_MS, .def = "none",
     .help = "a request unanswered after S seconds counts as a timeout and its connection is "
             "reopened"},
    {"proto", 0, ARRPC_OPT_CUSTOM, "arrpc|resp", .set = set_proto, .def = "arrpc",
     .help = "resp sends RESP PING and expects +PONG (redis-server)"},
    {"json", 0, ARRPC_OPT_FLAG, NULL, AT(cfg.json), .help = "print the summary as one JSON object"},
    {"server-pid", 0, ARRPC_OPT_UNSIGNED, "PID", AT(cfg.server_pid), 1, INT_MAX,
     .help = "also report the CPU time PID, its threads and its child processes (a pre-fork "
             "server's workers) used in the measured window, per reply: steadier than qps on a "
             "busy machine (Linux /proc)"},
    {"quiet", 'q', ARRPC_OPT_FLAG, NULL, AT(x.quiet),
     .help = "no live line (it is shown only on a terminal anyway)"},
    {"help", 'h', ARRPC_OPT_HELP, .help = "print this help and exit"},
    {"version", 0, ARRPC_OPT_EXIT, .run = print_version, .help = "print the version and exit"},
    {"tls-cafile", 0, ARRPC_OPT_STRING, "F", AT(x.tls_cafile),
     .help = "speak TLS (one handshake per connection); the server's certificate must be signed "
             "by a CA in F (PEM)"},
    {"tls-self-signed", 0, ARRPC_OPT_FLAG, NULL, AT(x.tls_self_signed),
     .help = "the --tls-cafile file is the server's own certificate: no name check"},
    {"tls-server-name", 0, ARRPC_OPT_STRING, "N", AT(x.tls_server_name), .def = "the host",
     .help = "the name the certificate must carry"},
    {"tls-cert", 0, ARRPC_OPT_STRING, "F", AT(x.tls_cert),
     .help = "our certificate, for mutual TLS (with --tls-key)"},
    {"tls-key", 0, ARRPC_OPT_STRING, "F", AT(x.tls_key), .help = "the private key of --tls-cert"},
    {0},
};

static const arrpc_opt_section bench_sections[] = {
    {"EXIT STATUS", "Exit status: 0 when some reply was counted, 1 when none was, 2 on bad usage."},
    {0},
};

static const arrpc_opt_program bench_program = {
    .name = "arrpc-bench",
    .man_section = "1",
    .synopsis = "[options] [HOST:PORT]",
    .summary = "load generator for arrpc and redis servers",
    .description =
        "Drives an arrpc server (or, with --proto resp, redis-server) with pipelined requests\n"
        "on many connections and reports throughput, errors and latency percentiles.",
    .opts = bench_opts,
    .sections = bench_sections,
    .stop_at_error = 1,
};

/* The options that make sense only together, and the defaults that depend on others. */
static int check_options(bench_config *cfg, const extra_options *x)
{
    int duration_set = cfg->duration_ns != 0; /* -d is at least 1 ms */
    if (duration_set && cfg->requests) {
        fprintf(stderr, "arrpc-bench: give -d or -n, not both\n");
        return -1;
    }
    if (cfg->proto == BENCH_PROTO_RESP &&
        (x->secret_file || x->total || cfg->request_json || cfg->payload_size != DEFAULT_SIZE)) {
        fprintf(stderr, "arrpc-bench: --size, --total, --request and --auth-secret-file are for "
                        "--proto arrpc\n");
        return -1;
    }
    if (cfg->request_json && (x->total || cfg->payload_size != DEFAULT_SIZE)) {
        fprintf(stderr, "arrpc-bench: --request sets the whole request: no --size or --total\n");
        return -1;
    }
    if ((x->tls_self_signed || x->tls_server_name || x->tls_cert) && !x->tls_cafile) {
        fprintf(stderr, "arrpc-bench: TLS options need --tls-cafile\n");
        return -1;
    }
    if (!x->tls_cert != !x->tls_key) {
        fprintf(stderr, "arrpc-bench: --tls-cert and --tls-key go together\n");
        return -1;
    }
    if (!cfg->requests && !duration_set) cfg->duration_ns = (uint64_t)(DEFAULT_DURATION_S * 1e9);
    if (cfg->threads > cfg->connections) cfg->threads = cfg->connections;
    if (cfg->rate) cfg->rate_ns = 1e9 / cfg->rate;
    cfg->live = !x->quiet;
    return 0;
}

/* 0, 1 when --help or --version has answered, -1 on bad usage (said on stderr). */
static int parse_options(int argc, char **argv, bench_options *o)
{
    const bench_options defaults = *o;
    int next, rc = arrpc_opt_parse(&bench_program, o, &defaults, argc, argv, &next);
    if (rc != 0) return rc;
    if (next < argc) o->x.target = argv[next++];
    if (next < argc) {
        fprintf(stderr, "arrpc-bench: unexpected argument '%s'\n", argv[next]);
        return -1;
    }
    return check_options(&o->cfg, &o->x);
}

/* One client context for every connection, from --tls-* (nothing without --tls-cafile). */
static int setup_tls(bench_config *cfg, const extra_options *x)
{
    char err[512];
    if (!x->tls_cafile) return 0;
    arrpc__tls_client_files files = {.cafile = x->tls_cafile,
                                     .self_signed = x->tls_self_signed,
                                     .cert = x->tls_cert,
                                     .key = x->tls_key};
    cfg->tls = arrpc__tls_client_ctx(&files, err, sizeof err);
    if (!cfg->tls) {
        fprintf(stderr, "arrpc-bench: %s\n", err);
        return -1;
    }
    cfg->tls_self_signed = x->tls_self_signed;
    cfg->tls_name = x->tls_self_signed ? NULL : x->tls_server_name;
    return 0;
}

/* Connections are dealt round-robin (thread t has slots t, t + T, ...: rate.c counts on it); so
 * is the -n budget. */
static bench_thread *threads_new(const bench_config *cfg, atomic_int *stop)
{
    bench_thread *ths = calloc(cfg->threads, sizeof *ths);
    if (!ths) return NULL;
    for (unsigned t = 0; t < cfg->threads; t++) {
        bench_thread *th = &ths[t];
        th->index = t;
        th->cfg = cfg;
        th->stop = stop;
        th->nconns = cfg->connections / cfg->threads + (t < cfg->connections % cfg->threads);
        th->budget = cfg->requests / cfg->threads + (t < cfg->requests % cfg->threads);
        th->epfd = epoll_create1(EPOLL_CLOEXEC);
        th->timerfd = -1;
        th->conns = calloc(th->nconns, sizeof *th->conns);
        pthread_mutex_init(&th->lock, NULL);
        bench_hist_reset(&th->stats.hist);
        bench_hist_reset(&th->published.hist);
        if (th->epfd < 0 || !th->conns || (cfg->rate && bench_rate_timer_new(th) != 0)) return ths;
        for (unsigned i = 0; i < th->nconns; i++) {
            if (bench_conn_init(&th->conns[i], th) != 0) return ths;
            th->conns[i].slot = t + i * cfg->threads;
            th->conns[i].home = th->conns[i].endpoint = th->conns[i].slot % cfg->nendpoints;
        }
    }
    return ths;
}

static int threads_ready(const bench_config *cfg, const bench_thread *ths)
{
    for (unsigned t = 0; t < cfg->threads; t++) {
        if (ths[t].epfd < 0 || !ths[t].conns || (cfg->rate && ths[t].timerfd < 0)) return 0;
        for (unsigned i = 0; i < ths[t].nconns; i++)
            if (!ths[t].conns[i].in) return 0;
    }
    return 1;
}

static void threads_free(const bench_config *cfg, bench_thread *ths)
{
    for (unsigned t = 0; ths && t < cfg->threads; t++) {
        for (unsigned i = 0; ths[t].conns && i < ths[t].nconns; i++)
            bench_conn_free(&ths[t].conns[i]);
        free(ths[t].conns);
        if (ths[t].epfd >= 0) close(ths[t].epfd);
        if (ths[t].timerfd >= 0) close(ths[t].timerfd);
        pthread_mutex_destroy(&ths[t].lock);
    }
    free(ths);
}

static double cpu_seconds(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void sleep_until(uint64_t t)
{
    uint64_t now = bench_now_ns();
    if (t <= now) return;
    struct timespec ts = {(time_t)((t - now) / 1000000000ull), (long)((t - now) % 1000000000ull)};
    nanosleep(&ts, NULL);
}

static void live_line(const bench_config *cfg, bench_thread *ths, uint64_t now, uint64_t *last)
{
    bench_stats s;
    memset(&s, 0, sizeof s);
    bench_hist_reset(&s.hist);
    for (unsigned t = 0; t < cfg->threads; t++)
        bench_thread_snapshot(&ths[t], &s);
    int warming = now < cfg->t_measure;
    bench_report_live(stderr, (double)(now - cfg->t_start) / 1e9, warming,
                      warming ? 0 : s.replies - *last, &s);
    *last = s.replies;
}

/* -d: the window is over; -n: every thread has sent its share and heard every answer. */
static int all_done(const bench_config *cfg, bench_thread *ths, uint64_t now)
{
    if (cfg->t_end) return now >= cfg->t_end;
    for (unsigned t = 0; t < cfg->threads; t++)
        if (!atomic_load(&ths[t].exited)) return 0;
    return 1;
}

/* Runs the threads; the main thread watches the clock, the live line and SIGINT. */
static int run(bench_config *cfg, bench_thread *ths, bench_result *r)
{
    atomic_int *stop = ths[0].stop;
    struct rusage ru0 = {0}, ru1;
    int have_ru0 = 0;
    uint64_t server_ns0 = 0, server_ns1 = 0;
    int have_server = 0;
    uint64_t last_replies = 0, next_live;
    cfg->t_start = bench_now_ns();
    cfg->t_measure = cfg->t_start + cfg->warmup_ns;
    cfg->t_end = cfg->duration_ns ? cfg->t_measure + cfg->duration_ns : 0;
    next_live = cfg->t_start + 1000000000ull;
    unsigned started = 0;
    for (; started < cfg->threads; started++)
        if (pthread_create(&ths[started].tid, NULL, bench_thread_main, &ths[started]) != 0) break;
    if (started < cfg->threads) {
        fprintf(stderr, "arrpc-bench: cannot start thread %u\n", started);
        atomic_store(stop, 1);
    }
    uint64_t now = bench_now_ns();
    while (started == cfg->threads && !all_done(cfg, ths, now) && !interrupted) {
        uint64_t next = now + POLL_NS;
        if (!have_ru0 && cfg->t_measure < next) next = cfg->t_measure;
        sleep_until(next);
        now = bench_now_ns();
        if (!have_ru0 && now >= cfg->t_measure) {
            have_ru0 = getrusage(RUSAGE_SELF, &ru0) == 0;
            have_server = cfg->server_pid && bench_server_cpu_ns(cfg->server_pid, &server_ns0) == 0;
        }
        if (cfg->live && now >= next_live) {
            live_line(cfg, ths, now, &last_replies);
            next_live += 1000000000ull;
        }
    }
    if (interrupted) atomic_store(stop, 1);
    for (unsigned t = 0; t < started; t++)
        pthread_join(ths[t].tid, NULL);
    uint64_t end = bench_now_ns();
    getrusage(RUSAGE_SELF, &ru1);
    have_server = have_server && bench_server_cpu_ns(cfg->server_pid, &server_ns1) == 0;
    if (cfg->live) fprintf(stderr, "\r\033[K");
    memset(r, 0, sizeof *r);
    bench_hist_reset(&r->total.hist);
    for (unsigned t = 0; t < cfg->threads; t++)
        bench_stats_merge(&r->total, &ths[t].stats);
    r->interrupted = interrupted;
    r->server_cpu_s =
        have_server && server_ns1 >= server_ns0 ? (double)(server_ns1 - server_ns0) / 1e9 : -1.0;
    if (cfg->t_end && end > cfg->t_end) end = cfg->t_end;
    if (!cfg->t_end && r->total.last_reply) end = r->total.last_reply;
    r->elapsed_s = end > cfg->t_measure ? (double)(end - cfg->t_measure) / 1e9 : 0.0;
    r->cpu_user_s = cpu_seconds(&ru1.ru_utime) - (have_ru0 ? cpu_seconds(&ru0.ru_utime) : 0);
    r->cpu_sys_s = cpu_seconds(&ru1.ru_stime) - (have_ru0 ? cpu_seconds(&ru0.ru_stime) : 0);
    return started == cfg->threads ? 0 : -1;
}

int main(int argc, char **argv)
{
    static bench_options o = {
        .cfg = {.connections = 16, .pipeline = 1, .threads = 1, .payload_size = DEFAULT_SIZE},
        .x = {.target = DEFAULT_TARGET}};
    static atomic_int stop;
    int rc = parse_options(argc, argv, &o);
    if (rc != 0) return rc > 0 ? 0 : EXIT_USAGE;
    bench_config *cfg = &o.cfg;
    const extra_options *x = &o.x;
    uint64_t ignored;
    if (cfg->server_pid && bench_server_cpu_ns(cfg->server_pid, &ignored) != 0) {
        fprintf(stderr, "arrpc-bench: --server-pid %ld: no such process (or no /proc to read)\n",
                cfg->server_pid);
        return EXIT_USAGE;
    }
    if (resolve(cfg, x->target) != 0 || setup_tls(cfg, x) != 0 ||
        bench_request_build(cfg, x->secret_file, x->total) != 0)
        return EXIT_USAGE;
    cfg->live = cfg->live && isatty(STDERR_FILENO);
    struct sigaction sa = {.sa_handler = on_interrupt};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    bench_thread *ths = threads_new(cfg, &stop);
    if (!ths || !threads_ready(cfg, ths)) {
        fprintf(stderr, "arrpc-bench: out of memory or descriptors for %u connections\n",
                cfg->connections);
        threads_free(cfg, ths);
        return 1;
    }
    bench_result r;
    rc = run(cfg, ths, &r);
    if (cfg->json)
        bench_report_json(stdout, cfg, &r);
    else
        bench_report_text(stdout, cfg, &r);
    threads_free(cfg, ths);
    bench_request_free(cfg);
    free(cfg->endpoints);
    return rc == 0 && r.total.replies > 0 ? 0 : 1;
}
