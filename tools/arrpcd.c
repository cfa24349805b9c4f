/* arrpcd.c -- the arrpc server program: options from the command line, a handler by name or plugin.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/net.h"
#include "../core/tls.h"
#include "arrpc.h"

#define EXIT_USAGE 2
#define IDLE_TIMEOUT_MAX_S                                                                         \
    (UINT_MAX / 1000u) /* its milliseconds must fit the unsigned the API takes */

typedef struct {
    char host[256];
    uint16_t port;
    const char *handler;
    const char *secret_file;
    const char *pid_file;
    const char *tls_cert, *tls_key, *tls_client_ca;
    unsigned long tls_handshake_timeout_s;
    unsigned long max_message, max_depth, max_connections, idle_timeout_s, drain_timeout_s;
    unsigned long request_timeout_s, write_timeout_s;
    unsigned long workers, handler_timeout_s, predrain_s;
    char metrics_host[256];
    uint16_t metrics_port;
    int debug;
} arrpcd_options;

static arrpc_server *running;

static void on_stop_signal(int sig)
{
    (void)sig;
    if (running) arrpc_server_stop(running);
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: arrpcd --listen HOST:PORT --handler NAME|PATH.so[:SYMBOL] [options]\n"
            "\n"
            "Serves arrpc (MessagePack RPC, wire-compatible with Python arrpc 0.5.0).\n"
            "\n"
            "  --listen HOST:PORT        address to listen on; port 0 picks a free one\n"
            "                            (default 127.0.0.1:8080)\n"
            "  --handler SPEC            'echo' (built in), or a plugin PATH.so whose symbol\n"
            "                            SYMBOL (default arrpc_handler) is an arrpc_handler_fn;\n"
            "                            each worker loads it, so SIGHUP serves a new file\n"
            "  --workers N               worker processes (default: the number of CPUs);\n"
            "                            0 serves in this process, without a master\n"
            "  --handler-timeout S       replace a worker stuck this long in one handler call\n"
            "                            (default %u, 0 = off)\n"
            "  --pid-file F              write the master's pid to F\n"
            "  --metrics-listen HOST:PORT  serve /metrics, /healthz, /readyz over HTTP\n"
            "                            (off by default; arrpc 0.5.0 used port 9095)\n"
            "  --pre-drain S             on SIGTERM, fail /readyz but keep serving S seconds\n"
            "                            before draining (default 0)\n"
            "  --auth-secret-file F      require requests signed with the secret in F\n"
            "                            (one trailing newline is ignored; re-read on SIGHUP)\n"
            "  --max-message BYTES       largest request or reply (default %u)\n"
            "  --max-depth N             deepest nesting of arrays and maps (default %u, max %u)\n"
            "  --max-connections N       open connections; more are closed at once (default %u)\n"
            "  --idle-timeout S          close connections idle this long (default 0: never)\n"
            "  --request-timeout S       a request begun must be whole within S seconds, else\n"
            "                            an error reply and close (default %u, 0 = off)\n"
            "  --write-timeout S         close connections whose replies go unread this long\n"
            "                            (default %u, 0 = off)\n"
            "  --drain-timeout S         on SIGTERM/SIGINT, wait this long for busy connections\n"
            "                            (default %u)\n"
            "  --tls-cert F              serve TLS with the PEM certificate chain in F\n"
            "  --tls-key F               the PEM private key of --tls-cert (required with it)\n"
            "  --tls-client-ca F         mutual TLS: clients must present a certificate signed\n"
            "                            by a CA in F (PEM)\n"
            "  --tls-handshake-timeout S close TLS handshakes not done in S seconds (default %u)\n"
            "                            TLS files are re-read on SIGHUP; TLS 1.2/1.3, AEAD only\n"
            "  --debug                   log every connection and request\n"
            "  --help, --version\n"
            "\n"
            "Signals to the master: HUP reload, USR2 binary upgrade, TERM/INT graceful stop,\n"
            "QUIT immediate stop, TTIN/TTOU one worker more/fewer (docs/operations.md).\n",
            ARRPC_DEFAULT_HANDLER_TIMEOUT_MS / 1000, ARRPC_DEFAULT_MAX_MESSAGE,
            ARRPC_DEFAULT_MAX_DEPTH, ARRPC_MAX_DEPTH_LIMIT, ARRPC_DEFAULT_MAX_CONNECTIONS,
            ARRPC_DEFAULT_REQUEST_TIMEOUT_MS / 1000, ARRPC_DEFAULT_WRITE_TIMEOUT_MS / 1000,
            ARRPC_DEFAULT_DRAIN_TIMEOUT_MS / 1000, ARRPC_DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS / 1000);
}

static int parse_args(int argc, char **argv, arrpcd_options *o)
{
    static const struct option longopts[] = {
        {"listen", required_argument, 0, 'l'},
        {"handler", required_argument, 0, 'H'},
        {"auth-secret-file", required_argument, 0, 's'},
        {"max-message", required_argument, 0, 'm'},
        {"max-depth", required_argument, 0, 'd'},
        {"max-connections", required_argument, 0, 'c'},
        {"idle-timeout", required_argument, 0, 'i'},
        {"drain-timeout", required_argument, 0, 't'},
        {"workers", required_argument, 0, 'w'},
        {"handler-timeout", required_argument, 0, 'T'},
        {"pid-file", required_argument, 0, 'p'},
        {"metrics-listen", required_argument, 0, 'M'},
        {"pre-drain", required_argument, 0, 'R'},
        {"tls-cert", required_argument, 0, 'C'},
        {"tls-key", required_argument, 0, 'K'},
        {"tls-client-ca", required_argument, 0, 'A'},
        {"tls-handshake-timeout", required_argument, 0, 'S'},
        {"request-timeout", required_argument, 0, 'q'},
        {"write-timeout", required_argument, 0, 'W'},
        {"debug", no_argument, 0, 'D'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0},
    };
    int opt, bad = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'l':
            if (arrpc__net_split_hostport(optarg, o->host, sizeof o->host, &o->port) != 0) {
                fprintf(stderr, "arrpcd: --listen wants HOST:PORT, not '%s'\n", optarg);
                bad = 1;
            }
            break;
        case 'H':
            o->handler = optarg;
            break;
        case 's':
            o->secret_file = optarg;
            break;
        case 'm':
            bad |= arrpc__parse_option("arrpcd", "--max-message", optarg, 16,
                                       ARRPC_MAX_MESSAGE_LIMIT, &o->max_message);
            break;
        case 'd':
            bad |= arrpc__parse_option("arrpcd", "--max-depth", optarg, 1, ARRPC_MAX_DEPTH_LIMIT,
                                       &o->max_depth);
            break;
        case 'c':
            bad |= arrpc__parse_option("arrpcd", "--max-connections", optarg, 1, 1000000,
                                       &o->max_connections);
            break;
        case 'i':
            bad |= arrpc__parse_option("arrpcd", "--idle-timeout", optarg, 0, IDLE_TIMEOUT_MAX_S,
                                       &o->idle_timeout_s);
            break;
        case 't':
            bad |= arrpc__parse_option("arrpcd", "--drain-timeout", optarg, 0, 86400,
                                       &o->drain_timeout_s);
            break;
        case 'q':
            bad |= arrpc__parse_option("arrpcd", "--request-timeout", optarg, 0, IDLE_TIMEOUT_MAX_S,
                                       &o->request_timeout_s);
            break;
        case 'W':
            bad |= arrpc__parse_option("arrpcd", "--write-timeout", optarg, 0, IDLE_TIMEOUT_MAX_S,
                                       &o->write_timeout_s);
            break;
        case 'w':
            bad |= arrpc__parse_option("arrpcd", "--workers", optarg, 0, ARRPC_MAX_WORKERS,
                                       &o->workers);
            break;
        case 'T':
            bad |= arrpc__parse_option("arrpcd", "--handler-timeout", optarg, 0, IDLE_TIMEOUT_MAX_S,
                                       &o->handler_timeout_s);
            break;
        case 'p':
            o->pid_file = optarg;
            break;
        case 'M':
            if (arrpc__net_split_hostport(optarg, o->metrics_host, sizeof o->metrics_host,
                                          &o->metrics_port) != 0) {
                fprintf(stderr, "arrpcd: --metrics-listen wants HOST:PORT, not '%s'\n", optarg);
                bad = 1;
            }
            break;
        case 'R':
            bad |= arrpc__parse_option("arrpcd", "--pre-drain", optarg, 0, 3600, &o->predrain_s);
            break;
        case 'C':
            o->tls_cert = optarg;
            break;
        case 'K':
            o->tls_key = optarg;
            break;
        case 'A':
            o->tls_client_ca = optarg;
            break;
        case 'S':
            bad |= arrpc__parse_option("arrpcd", "--tls-handshake-timeout", optarg, 1, 3600,
                                       &o->tls_handshake_timeout_s);
            break;
        case 'D':
            o->debug = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("arrpcd %s\nTLS: %s\n", ARRPC_VERSION, arrpc__tls_library());
            exit(0);
        default:
            bad = 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "arrpcd: unexpected argument '%s'\n", argv[optind]);
        bad = 1;
    }
    if (!o->tls_cert != !o->tls_key || (o->tls_client_ca && !o->tls_cert)) {
        fprintf(stderr,
                "arrpcd: --tls-cert and --tls-key go together; --tls-client-ca needs both\n");
        bad = 1;
    }
    if (!o->handler) {
        fprintf(stderr, "arrpcd: --handler is required\n");
        bad = 1;
    }
    return bad ? -1 : 0;
}

static int configure(arrpc_server *srv, const arrpcd_options *o)
{
    int rc =
        arrpc_server_set_handler_plugin(srv, o->handler) ||
        arrpc_server_set_workers(srv, (unsigned)o->workers) ||
        (o->metrics_host[0] && arrpc_server_set_metrics(srv, o->metrics_host, o->metrics_port)) ||
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
        .host = "127.0.0.1",
        .port = 8080,
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
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    arrpc_server *srv = arrpc_server_new(o.host, o.port, NULL, NULL);
    int status = 1;
    if (srv && configure(srv, &o) == 0) {
        /* Without workers this process serves: bind now to say where. With workers the
         * master binds and says it once every worker accepts. Scripts read the port there. */
        if (o.workers == 0 && arrpc_server_bind(srv) == 0)
            fprintf(stderr, "arrpcd: listening on %s:%u (in-process, handler %s)\n", o.host,
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
