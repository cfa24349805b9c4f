/* arrpcd.c -- the arrpc server program: options from the command line, a handler by name or plugin.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/net.h"
#include "../core/tls.h"
#include "arrpc.h"
#include "arrpcd.h"
#include "arrpcd_python.h"
#include "options.h"

#define EXIT_USAGE 2
#define EXIT_TEST_FAILED 1 /* arrpcd -t: the configuration would not start (as nginx -t) */
#define MAX_WORKER_RSS_MIB (1ul << 20) /* 1 TiB: any larger bound is no bound */
#define IDLE_TIMEOUT_MAX_S                                                                         \
    (UINT_MAX / 1000u) /* its milliseconds must fit the unsigned the API takes */
#define CONNECTION_AGE_MAX_S (IDLE_TIMEOUT_MAX_S / 2) /* age and jitter together fit too */

static arrpc_server *running;

static void on_stop_signal(int sig)
{
    (void)sig;
    if (running) arrpc_server_stop(running);
}

/* SIGUSR1 without workers: this process serves, so it reopens (a master relays USR1 itself). */
static void on_reopen_signal(int sig)
{
    (void)sig;
    if (running) arrpc_server_reopen_access_log(running);
}

static int set_access_log_format(void *opts, const char *arg)
{
    arrpcd_options *o = opts;
    if (strcmp(arg, "json") == 0)
        o->access_log_format = ARRPC_ACCESS_LOG_JSON;
    else if (strcmp(arg, "logfmt") == 0)
        o->access_log_format = ARRPC_ACCESS_LOG_LOGFMT;
    else {
        fprintf(stderr, "arrpcd: --access-log-format wants json or logfmt, not '%s'\n", arg);
        return -1;
    }
    return 0;
}

static void print_version(void)
{
    printf("arrpcd %s\nTLS: %s\n", ARRPC_VERSION, arrpc__tls_library());
}

/* --pythonpath DIR, given once per directory. */
static int add_pythonpath(void *opts, const char *dir)
{
    arrpcd_options *o = opts;
    if (o->npythonpath == ARRPCD_PYTHONPATH_MAX) {
        fprintf(stderr, "arrpcd: at most %d --pythonpath directories\n", ARRPCD_PYTHONPATH_MAX);
        return -1;
    }
    o->pythonpath[o->npythonpath++] = dir;
    return 0;
}

#define AT(member) ARRPC_OPT_AT(arrpcd_options, member)
#define SECONDS(name, member, max, text)                                                           \
    {                                                                                              \
        name, 0, ARRPC_OPT_UNSIGNED, "S", AT(member), 0, max, .help = text                         \
    }

/* In --help's order; README.md's option table says the same. */
static const arrpc_opt arrpcd_opts[] = {
    {"config", 0, ARRPC_OPT_STRING, "F", AT(config), .cli_only = 1,
     .help = "read options from F first, one 'name = value' a line ('name' alone for a flag, "
             "# comments); the command line's options override it, and SIGHUP re-reads it"},
    {"test-config", 't', ARRPC_OPT_FLAG, NULL, AT(test_config), .cli_only = 1,
     .help = "check the configuration as a start would (files, plugin and its init, addresses "
             "free or held by the arrpcd of --pid-file), print 'configuration ok' and exit 0, or "
             "the reasons and exit 1"},
    {"listen", 0, ARRPC_OPT_HOSTPORT, "HOST:PORT", AT(listen), .restart = 1,
     .help = "address to listen on; port 0 picks a free one"},
    {"handler", 0, ARRPC_OPT_STRING, "SPEC", AT(handler),
     .help = "'echo' (built in), a plugin PATH.so whose symbol SYMBOL (default "
             "arrpc_handler) is an arrpc_handler_fn, or py:MODULE:FUNCTION, a Python function; "
             "each worker loads it (imports it), so SIGHUP serves a new file"},
    {"pythonpath", 0, ARRPC_OPT_CUSTOM, "DIR", .set = add_pythonpath,
     .help = "with --handler py:, a directory put in front of sys.path (repeat for more)"},
    {"handler-arg", 0, ARRPC_OPT_STRING, "STRING", AT(handler_arg),
     .help = "the argument of the plugin's SYMBOL_init, which each worker calls before it "
             "accepts (a non-zero return fails the start or the reload)"},
    {"workers", 0, ARRPC_OPT_UNSIGNED, "N", AT(workers), 0, ARRPC_MAX_WORKERS,
     .def = "the number of CPUs",
     .help = "worker processes; 0 serves in this process, without a master"},
    {"threads", 0, ARRPC_OPT_UNSIGNED, "N", AT(threads), 0, ARRPC_MAX_THREADS, .def = "0",
     .help = "handler threads per worker: a slow call then holds up only its own connection "
             "(the handler must be thread-safe); 0 runs handlers in the event loop"},
    SECONDS("handler-timeout", handler_timeout_s, IDLE_TIMEOUT_MAX_S,
            "replace a worker stuck this long in one handler call, and answer a deferred call "
            "unanswered this long with an error (0 = off)"),
    {"max-requests", 0, ARRPC_OPT_UNSIGNED, "N", AT(max_requests), 0, ULONG_MAX, .def = "0, never",
     .help = "recycle a worker after N requests (plus its share of --max-requests-jitter): a "
             "replacement takes its connections as on a reload, nothing is dropped"},
    {"max-requests-jitter", 0, ARRPC_OPT_UNSIGNED, "J", AT(max_requests_jitter), 0, ULONG_MAX,
     .def = "0",
     .help = "each worker's bound is --max-requests plus a random number from 0 to J, so that "
             "workers are not recycled together"},
    SECONDS("max-worker-lifetime", max_lifetime_s, IDLE_TIMEOUT_MAX_S,
            "recycle a worker that has run S seconds (0 = never)"),
    {"max-worker-rss", 0, ARRPC_OPT_UNSIGNED, "MIB", AT(max_rss_mib), 0, MAX_WORKER_RSS_MIB,
     .def = "0, never",
     .help = "recycle a worker whose resident memory reaches MIB mebibytes (checked about twice a "
             "second while it serves)"},
    {"pid-file", 0, ARRPC_OPT_STRING, "F", AT(pid_file), .restart = 1,
     .help = "write the master's pid to F"},
    {"metrics-listen", 0, ARRPC_OPT_HOSTPORT, "HOST:PORT", AT(metrics), .restart = 1,
     .def = "off; arrpc 0.5.0 used port 9095",
     .help = "serve /metrics, /healthz, /readyz over HTTP"},
    {"pre-drain", 0, ARRPC_OPT_UNSIGNED, "S", AT(predrain_s), 0, 3600, .def = "0",
     .help = "on SIGTERM, fail /readyz but keep serving S seconds before draining"},
    {"auth-secret-file", 0, ARRPC_OPT_STRING, "F", AT(secret_file),
     .help = "require requests signed with the secret in F (one trailing newline is ignored; "
             "re-read on SIGHUP)"},
    {"max-message", 0, ARRPC_OPT_UNSIGNED, "BYTES", AT(max_message), 16, ARRPC_MAX_MESSAGE_LIMIT,
     .help = "largest request or reply"},
    {"max-depth", 0, ARRPC_OPT_UNSIGNED, "N", AT(max_depth), 1, ARRPC_MAX_DEPTH_LIMIT,
     .show_max = 1, .help = "deepest nesting of arrays and maps"},
    {"max-connections", 0, ARRPC_OPT_UNSIGNED, "N", AT(max_connections), 1, 1000000,
     .help = "open connections; more are closed at once"},
    {"idle-timeout", 0, ARRPC_OPT_UNSIGNED, "S", AT(idle_timeout_s), 0, IDLE_TIMEOUT_MAX_S,
     .def = "0, never", .help = "close connections idle this long"},
    SECONDS("request-timeout", request_timeout_s, IDLE_TIMEOUT_MAX_S,
            "a request begun must be whole within S seconds, else an error reply and close "
            "(0 = off)"),
    SECONDS("write-timeout", write_timeout_s, IDLE_TIMEOUT_MAX_S,
            "close connections whose replies go unread this long (0 = off)"),
    SECONDS("drain-timeout", drain_timeout_s, 86400,
            "on SIGTERM/SIGINT, wait this long for busy connections"),
    {"tls-cert", 0, ARRPC_OPT_STRING, "F", AT(tls_cert),
     .help = "serve TLS (1.2/1.3, AEAD only) with the PEM certificate chain in F; TLS files are "
             "re-read on SIGHUP"},
    {"tls-key", 0, ARRPC_OPT_STRING, "F", AT(tls_key),
     .help = "the PEM private key of --tls-cert (required with it)"},
    {"tls-client-ca", 0, ARRPC_OPT_STRING, "F", AT(tls_client_ca),
     .help = "mutual TLS: clients must present a certificate signed by a CA in F (PEM)"},
    {"tls-handshake-timeout", 0, ARRPC_OPT_UNSIGNED, "S", AT(tls_handshake_timeout_s), 1, 3600,
     .help = "close TLS handshakes not done in S seconds"},
    {"access-log", 0, ARRPC_OPT_STRING, "F", AT(access_log), .def = "off",
     .help = "write one line per request to F ('-': standard output), opened by each worker "
             "with O_APPEND; SIGUSR1 to the master reopens it after a rotation"},
    {"access-log-format", 0, ARRPC_OPT_CUSTOM, "json|logfmt", .def = "json",
     .set = set_access_log_format,
     .help = "the access log's lines: JSON objects or logfmt key=value pairs (docs/operations.md)"},
    {"proxy-protocol", 0, ARRPC_OPT_STRING, "CIDR[,CIDR...]", AT(proxy_protocol), .def = "off",
     .help = "connections from these address ranges (balancers) must begin with a PROXY "
             "protocol header (v1 or v2), whose client address then stands for the peer; a "
             "header from any other address closes its connection"},
    SECONDS("max-connection-age", max_connection_age_s, CONNECTION_AGE_MAX_S,
            "close a connection older than S seconds at its next idle moment, so balancers "
            "spread load again (0 = never)"),
    SECONDS("max-connection-age-jitter", max_connection_age_jitter_s, CONNECTION_AGE_MAX_S,
            "add a random 0 to S seconds to each connection's age limit"),
    {"tcp-keepalive", 0, ARRPC_OPT_UNSIGNED, "S", AT(tcp_keepalive_s), 0, 32767,
     .help = "TCP keepalive: first probe after S idle seconds, then every 10 s, 6 probes "
             "(0 = off)"},
    {"debug", 0, ARRPC_OPT_FLAG, NULL, AT(debug), .help = "log every connection and request"},
    {"help", 0, ARRPC_OPT_HELP, .help = "print this help and exit"},
    {"version", 0, ARRPC_OPT_EXIT, .run = print_version,
     .help = "print the version and the TLS library, and exit"},
    {0},
};

static const arrpc_opt_section arrpcd_sections[] = {
    {"SIGNALS", "Signals to the master: HUP reload, USR2 binary upgrade, TERM/INT graceful stop,\n"
                "QUIT immediate stop, TTIN/TTOU one worker more/fewer, USR1 reopen the access log\n"
                "(docs/operations.md)."},
    {"CONFIGURATION FILE",
     "--config F reads options from F before the command line: one option a line as\n"
     "'name = value' with the long name (listen = 127.0.0.1:8080), a flag as 'debug',\n"
     "'debug = true' or 'debug = false'. Blank lines and lines starting with # are\n"
     "skipped (a # inside a value is part of it). Lines longer than 8192 bytes, files\n"
     "larger than 1 MiB, unknown names and bad values are errors naming FILE:LINE.\n"
     "SIGHUP re-reads the file (the command line still overrides it). --listen,\n"
     "--metrics-listen, --pid-file, turning TLS on or off and going to 0 workers take a\n"
     "restart, and the log says so; a file with errors changes nothing."},
    {"EXIT STATUS", "Exit status: 0 after a stop, 1 when the server cannot start or fails\n"
                    "(or arrpcd -t finds a problem), 2 on bad usage (options or the file)."},
    {0},
};

static const arrpc_opt_program arrpcd_program = {
    .name = "arrpcd",
    .man_section = "8",
    .synopsis = "[--config F] [-t] --listen HOST:PORT --handler NAME|PATH.so[:SYMBOL] [options]",
    .summary = "the arrpc server",
    .description = "Serves arrpc (MessagePack RPC, wire-compatible with Python arrpc 0.5.0).",
    .opts = arrpcd_opts,
    .sections = arrpcd_sections,
};

/* What starting and every reload read the options from. */
typedef struct {
    int argc;
    char **argv;
    arrpcd_options defaults;
    arrpcd_options started; /* as the server started; what a reload cannot change stays so */
    arrpcd_options serving; /* as the serving generation was made */
    char *start_text;       /* the file's text at start, which started's strings point into */
    char *text;             /* the text serving's strings point into (when not start_text) */
} arrpcd_source;

/* What the option table cannot say on its own: options that go together. 0, or -1 (said). */
static int check_combinations(const arrpcd_options *o)
{
    int rc = 0;
    if (!o->tls_cert != !o->tls_key || (o->tls_client_ca && !o->tls_cert)) {
        fprintf(stderr,
                "arrpcd: --tls-cert and --tls-key go together; --tls-client-ca needs both\n");
        rc = -1;
    }
    if (!o->handler) {
        fprintf(stderr, "arrpcd: --handler is required\n");
        rc = -1;
    }
    return rc;
}

#define BAD_FILE (-2) /* read_options: the configuration file is wrong (said line by line) */

/* The options: the defaults, then the file --config names, then the command line over it (read
 * twice: first to learn the file's name). 0, 1 when --help or --version has answered, -1 on bad
 * usage, BAD_FILE (both said on stderr). *text holds the file's text (free it, also on
 * failure). */
static int read_options(const arrpcd_source *src, arrpcd_options *o, char **text)
{
    arrpcd_options cli = src->defaults;
    int next,
        rc = arrpc_opt_parse(&arrpcd_program, &cli, &src->defaults, src->argc, src->argv, &next);
    *text = NULL;
    *o = src->defaults;
    o->test_config = cli.test_config; /* so that -t fails as -t does, even on bad usage */
    if (rc != 0) return rc;
    if (next < src->argc) {
        fprintf(stderr, "arrpcd: unexpected argument '%s'\n", src->argv[next]);
        return -1;
    }
    if (!cli.config)
        *o = cli;
    else if (arrpc_opt_parse_file(&arrpcd_program, o, cli.config, text) != 0)
        return BAD_FILE;
    else /* the same arguments again, now over the file's values */
        arrpc_opt_parse(&arrpcd_program, o, &src->defaults, src->argc, src->argv, &next);
    return check_combinations(o);
}

/* Every setting from o, also the ones o leaves unset: a reload that drops an option from the
 * file must unset it. */
static int configure(arrpc_server *srv, const arrpcd_options *o)
{
    const char *metrics = o->metrics.host[0] ? o->metrics.host : NULL;
    if (arrpcd_python_spec(o->handler)) {
        if (o->handler_arg) {
            fprintf(stderr, "arrpcd: --handler-arg is for plugins, not py: handlers\n");
            return -1;
        }
        if (arrpcd_python_configure(srv, o->handler, o->pythonpath, o->npythonpath) != 0) return -1;
    } else if (arrpc_server_set_handler_plugin(srv, o->handler) ||
               arrpc_server_set_handler_lifecycle(srv, NULL, NULL, o->handler_arg)) {
        fprintf(stderr, "arrpcd: %s\n", arrpc_server_errstr(srv));
        return -1;
    }
    int rc =
        arrpc_server_set_workers(srv, (unsigned)o->workers) ||
        arrpc_server_set_threads(srv, (unsigned)o->threads) ||
        arrpc_server_set_metrics(srv, metrics, o->metrics.port) ||
        arrpc_server_set_pre_drain(srv, (unsigned)o->predrain_s * 1000u) ||
        arrpc_server_set_handler_timeout(srv, (unsigned)o->handler_timeout_s * 1000u) ||
        arrpc_server_set_max_requests(srv, o->max_requests, o->max_requests_jitter) ||
        arrpc_server_set_max_worker_lifetime(srv, (unsigned)o->max_lifetime_s * 1000u) ||
        arrpc_server_set_max_worker_rss(srv, (uint64_t)o->max_rss_mib << 20) ||
        arrpc_server_set_max_message(srv, o->max_message) ||
        arrpc_server_set_max_depth(srv, (unsigned)o->max_depth) ||
        arrpc_server_set_max_connections(srv, (unsigned)o->max_connections) ||
        arrpc_server_set_idle_timeout(srv, (unsigned)o->idle_timeout_s * 1000u) ||
        arrpc_server_set_request_timeout(srv, (unsigned)o->request_timeout_s * 1000u) ||
        arrpc_server_set_write_timeout(srv, (unsigned)o->write_timeout_s * 1000u) ||
        arrpc_server_set_drain_timeout(srv, (unsigned)o->drain_timeout_s * 1000u) ||
        arrpc_server_set_debug(srv, o->debug) ||
        arrpc_server_set_auth_secret_file(srv, o->secret_file) ||
        arrpc_server_set_pid_file(srv, o->pid_file) ||
        arrpc_server_set_tls(srv, o->tls_cert, o->tls_key, o->tls_client_ca) ||
        arrpc_server_set_access_log(srv, o->access_log, o->access_log_format) ||
        arrpc_server_set_proxy_protocol(srv, o->proxy_protocol) ||
        arrpc_server_set_max_connection_age(srv, (unsigned)o->max_connection_age_s * 1000u,
                                            (unsigned)o->max_connection_age_jitter_s * 1000u) ||
        arrpc_server_set_tcp_keepalive(srv, (unsigned)o->tcp_keepalive_s) ||
        arrpc_server_set_tls_handshake_timeout(srv, (unsigned)o->tls_handshake_timeout_s * 1000u);
    if (rc) fprintf(stderr, "arrpcd: %s\n", arrpc_server_errstr(srv));
    return rc ? -1 : 0;
}

/* A reload's options keep the value from the start of what only a restart can change (from
 * started, whose strings live as long as the process), and the log says which. */
static void keep_restart_options(const arrpcd_source *src, arrpcd_options *next)
{
    const arrpcd_options *started = &src->started;
    char was[300], wants[300];
    for (const arrpc_opt *o = arrpcd_opts; o->name; o++) {
        if (!o->restart || arrpc_opt_same(o, started, next)) continue;
        arrpc__log("master: reload: --%s changed to '%s': that takes a restart; keeping '%s'",
                   o->name, arrpc_opt_value_text(o, next, wants, sizeof wants),
                   arrpc_opt_value_text(o, started, was, sizeof was));
        memcpy((char *)next + o->off, (const char *)started + o->off, o->size);
    }
    if (!started->tls_cert != !next->tls_cert) {
        arrpc__log("master: reload: turning TLS %s takes a restart; keeping the files it "
                   "started with",
                   next->tls_cert ? "on" : "off");
        next->tls_cert = started->tls_cert;
        next->tls_key = started->tls_key;
        next->tls_client_ca = started->tls_client_ca;
    }
    if (next->workers == 0) {
        arrpc__log("master: reload: --workers 0 (no master) takes a restart; keeping %lu",
                   src->serving.workers);
        next->workers = src->serving.workers;
    }
}

/* SIGHUP, in the master: the file and the command line read again; a file with errors changes
 * nothing. */
static int on_reload(arrpc_server *srv, void *udata)
{
    arrpcd_source *src = udata;
    arrpcd_options next;
    char *text = NULL;
    if (read_options(src, &next, &text) != 0) {
        arrpc__log("master: reload: %s has errors (above): nothing changed", src->serving.config);
        free(text);
        return -1;
    }
    keep_restart_options(src, &next);
    if (configure(srv, &next) != 0) {
        free(text);
        return -1;
    }
    if (src->text != src->start_text) free(src->text);
    src->text = text;
    src->serving = next;
    return 0;
}

static void install_signals(void)
{
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct sigaction reopen = {.sa_handler = on_reopen_signal, .sa_flags = SA_RESTART};
    sigemptyset(&reopen.sa_mask);
    sigaction(SIGUSR1, &reopen, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* arrpcd -t: the exit status, as nginx -t's. */
static int test_failed(void)
{
    fprintf(stderr, "arrpcd: configuration test failed\n");
    return EXIT_TEST_FAILED;
}

static int test_config(const arrpcd_options *o)
{
    if (arrpcd_check(o) != 0) return test_failed();
    fprintf(stderr, "arrpcd: configuration ok\n");
    return 0;
}

/* Runs the server the options describe; the process's exit status. */
static int serve(arrpcd_source *src)
{
    const arrpcd_options *o = &src->serving;
    arrpc_server *srv = arrpc_server_new(o->listen.host, o->listen.port, NULL, NULL);
    int status = 1;
    if (srv && configure(srv, o) == 0 &&
        (!o->config || arrpc_server_set_reload_hook(srv, on_reload, src) == 0)) {
        /* Without workers this process serves: bind now to say where. With workers the
         * master binds and says it once every worker accepts. Scripts read the port there. */
        if (o->workers == 0 && arrpc_server_bind(srv) == 0)
            fprintf(stderr, "arrpcd: listening on %s:%u (in-process, handler %s)\n", o->listen.host,
                    (unsigned)arrpc_server_port(srv), o->handler);
        running = srv;
        install_signals();
        status = arrpc_server_run(srv) == 0 ? 0 : 1;
        if (status) fprintf(stderr, "arrpcd: %s\n", arrpc_server_errstr(srv));
    }
    running = NULL;
    arrpc_server_free(srv);
    return status;
}

int main(int argc, char **argv)
{
    arrpcd_source src = {.argc = argc, .argv = argv};
    arrpcd_options *d = &src.defaults;
    *d = (arrpcd_options){
        .listen = {"127.0.0.1", 8080},
        .max_message = ARRPC_DEFAULT_MAX_MESSAGE,
        .max_depth = ARRPC_DEFAULT_MAX_DEPTH,
        .max_connections = ARRPC_DEFAULT_MAX_CONNECTIONS,
        .idle_timeout_s = ARRPC_DEFAULT_IDLE_TIMEOUT_MS / 1000,
        .drain_timeout_s = ARRPC_DEFAULT_DRAIN_TIMEOUT_MS / 1000,
        .request_timeout_s = ARRPC_DEFAULT_REQUEST_TIMEOUT_MS / 1000,
        .write_timeout_s = ARRPC_DEFAULT_WRITE_TIMEOUT_MS / 1000,
        .handler_timeout_s = ARRPC_DEFAULT_HANDLER_TIMEOUT_MS / 1000,
        .tls_handshake_timeout_s = ARRPC_DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS / 1000,
        .tcp_keepalive_s = ARRPC_DEFAULT_TCP_KEEPALIVE_S,
    };
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    d->workers = cpus > 0 ? (unsigned long)cpus : 1;
    int rc = read_options(&src, &src.serving, &src.text), status;
    src.started = src.serving;
    src.start_text = src.text;
    if (rc > 0)
        status = 0;
    else if (rc < 0 && src.serving.test_config)
        status = test_failed();
    else if (rc < 0) {
        if (rc != BAD_FILE) arrpc_opt_write_help(stderr, &arrpcd_program, d);
        status = EXIT_USAGE;
    } else
        status = src.serving.test_config ? test_config(&src.serving) : serve(&src);
    if (src.text != src.start_text) free(src.text);
    free(src.start_text);
    return status;
}
