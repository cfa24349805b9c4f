/* arrpcd.c -- the arrpc server program: options from the command line, a handler by name or plugin.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/net.h"
#include "../core/tls.h"
#include "arrpc.h"
#include "arrpcd_python.h"
#include "options.h"

#define EXIT_USAGE 2
#define IDLE_TIMEOUT_MAX_S                                                                         \
    (UINT_MAX / 1000u) /* its milliseconds must fit the unsigned the API takes */

typedef struct {
    arrpc_opt_hostport listen, metrics;
    const char *handler, *handler_arg;
    const char *secret_file;
    const char *pid_file;
    const char *tls_cert, *tls_key, *tls_client_ca;
    unsigned long tls_handshake_timeout_s;
    unsigned long max_message, max_depth, max_connections, idle_timeout_s, drain_timeout_s;
    unsigned long request_timeout_s, write_timeout_s;
    unsigned long workers, threads, handler_timeout_s, predrain_s;
    int debug;
    const char *pythonpath[ARRPCD_PYTHONPATH_MAX]; /* --pythonpath, in order */
    size_t npythonpath;
} arrpcd_options;

static arrpc_server *running;

static void on_stop_signal(int sig)
{
    (void)sig;
    if (running) arrpc_server_stop(running);
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
    {"listen", 0, ARRPC_OPT_HOSTPORT, "HOST:PORT", AT(listen),
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
    {"pid-file", 0, ARRPC_OPT_STRING, "F", AT(pid_file), .help = "write the master's pid to F"},
    {"metrics-listen", 0, ARRPC_OPT_HOSTPORT, "HOST:PORT", AT(metrics),
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
    {"debug", 0, ARRPC_OPT_FLAG, NULL, AT(debug), .help = "log every connection and request"},
    {"help", 0, ARRPC_OPT_HELP, .help = "print this help and exit"},
    {"version", 0, ARRPC_OPT_EXIT, .run = print_version,
     .help = "print the version and the TLS library, and exit"},
    {0},
};

static const arrpc_opt_section arrpcd_sections[] = {
    {"SIGNALS", "Signals to the master: HUP reload, USR2 binary upgrade, TERM/INT graceful stop,\n"
                "QUIT immediate stop, TTIN/TTOU one worker more/fewer (docs/operations.md)."},
    {"EXIT STATUS", "Exit status: 0 after a stop, 1 when the server cannot start or fails,\n"
                    "2 on bad usage."},
    {0},
};

static const arrpc_opt_program arrpcd_program = {
    .name = "arrpcd",
    .man_section = "8",
    .synopsis = "--listen HOST:PORT --handler NAME|PATH.so[:SYMBOL] [options]",
    .summary = "the arrpc server",
    .description = "Serves arrpc (MessagePack RPC, wire-compatible with Python arrpc 0.5.0).",
    .opts = arrpcd_opts,
    .sections = arrpcd_sections,
};

/* 0, 1 when --help or --version has answered, -1 on bad usage (said on stderr). */
static int parse_args(int argc, char **argv, arrpcd_options *o, const arrpcd_options *defaults)
{
    int next, rc = arrpc_opt_parse(&arrpcd_program, o, defaults, argc, argv, &next);
    if (rc > 0) return rc;
    if (next < argc) {
        fprintf(stderr, "arrpcd: unexpected argument '%s'\n", argv[next]);
        rc = -1;
    }
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

static int configure(arrpc_server *srv, const arrpcd_options *o)
{
    if (arrpcd_python_spec(o->handler)) {
        if (o->handler_arg) {
            fprintf(stderr, "arrpcd: --handler-arg is for plugins, not py: handlers\n");
            return -1;
        }
        if (arrpcd_python_configure(srv, o->handler, o->pythonpath, o->npythonpath) != 0) return -1;
    } else if (arrpc_server_set_handler_plugin(srv, o->handler) ||
               (o->handler_arg &&
                arrpc_server_set_handler_lifecycle(srv, NULL, NULL, o->handler_arg))) {
        fprintf(stderr, "arrpcd: %s\n", arrpc_server_errstr(srv));
        return -1;
    }
    int rc =
        arrpc_server_set_workers(srv, (unsigned)o->workers) ||
        arrpc_server_set_threads(srv, (unsigned)o->threads) ||
        (o->metrics.host[0] && arrpc_server_set_metrics(srv, o->metrics.host, o->metrics.port)) ||
        arrpc_server_set_pre_drain(srv, (unsigned)o->predrain_s * 1000u) ||
        arrpc_server_set_handler_timeout(srv, (unsigned)o->handler_timeout_s * 1000u) ||
        arrpc_server_set_max_message(srv, o->max_message) ||
        arrpc_server_set_max_depth(srv, (unsigned)o->max_depth) ||
        arrpc_server_set_max_connections(srv, (unsigned)o->max_connections) ||
        arrpc_server_set_idle_timeout(srv, (unsigned)o->idle_timeout_s * 1000u) ||
        arrpc_server_set_request_timeout(srv, (unsigned)o->request_timeout_s * 1000u) ||
        arrpc_server_set_write_timeout(srv, (unsigned)o->write_timeout_s * 1000u) ||
        arrpc_server_set_drain_timeout(srv, (unsigned)o->drain_timeout_s * 1000u) ||
        arrpc_server_set_debug(srv, o->debug) ||
        (o->secret_file && arrpc_server_set_auth_secret_file(srv, o->secret_file)) ||
        (o->pid_file && arrpc_server_set_pid_file(srv, o->pid_file)) ||
        (o->tls_cert && arrpc_server_set_tls(srv, o->tls_cert, o->tls_key, o->tls_client_ca)) ||
        arrpc_server_set_tls_handshake_timeout(srv, (unsigned)o->tls_handshake_timeout_s * 1000u);
    if (rc) fprintf(stderr, "arrpcd: %s\n", arrpc_server_errstr(srv));
    return rc ? -1 : 0;
}

static void install_signals(void)
{
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
    arrpcd_options o = {
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
    };
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    o.workers = cpus > 0 ? (unsigned long)cpus : 1;
    const arrpcd_options defaults = o;
    int rc = parse_args(argc, argv, &o, &defaults);
    if (rc != 0) {
        if (rc < 0) arrpc_opt_write_help(stderr, &arrpcd_program, &defaults);
        return rc < 0 ? EXIT_USAGE : 0;
    }
    arrpc_server *srv = arrpc_server_new(o.listen.host, o.listen.port, NULL, NULL);
    int status = 1;
    if (srv && configure(srv, &o) == 0) {
        /* Without workers this process serves: bind now to say where. With workers the
         * master binds and says it once every worker accepts. Scripts read the port there. */
        if (o.workers == 0 && arrpc_server_bind(srv) == 0)
            fprintf(stderr, "arrpcd: listening on %s:%u (in-process, handler %s)\n", o.listen.host,
                    (unsigned)arrpc_server_port(srv), o.handler);
        running = srv;
        install_signals();
        status = arrpc_server_run(srv) == 0 ? 0 : 1;
        if (status) fprintf(stderr, "arrpcd: %s\n", arrpc_server_errstr(srv));
    }
    running = NULL;
    arrpc_server_free(srv);
    return status;
}
