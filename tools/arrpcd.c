/* arrpcd.c -- the arrpc server program: options from the command line, a handler by name or plugin. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/auth.h"
#include "../core/net.h"
#include "../workers/handler.h"
#include "arrpc.h"

#define EXIT_USAGE 2

typedef struct {
    char host[256];
    uint16_t port;
    const char *handler;
    const char *secret_file;
    unsigned long max_message, max_depth, max_connections, idle_timeout_s, drain_timeout_s;
    int debug;
} arrpcd_options;

static arrpc_server *running;

static void on_stop_signal(int sig)
{
    (void)sig;
    if (running)
        arrpc_server_stop(running);
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
            "                            SYMBOL (default arrpc_handler) is an arrpc_handler_fn\n"
            "  --auth-secret-file F      require requests signed with the secret in F\n"
            "                            (one trailing newline is ignored)\n"
            "  --max-message BYTES       largest request or reply (default %u)\n"
            "  --max-depth N             deepest nesting of arrays and maps (default %u, max %u)\n"
            "  --max-connections N       open connections; more are closed at once (default %u)\n"
            "  --idle-timeout S          close connections idle this long (default 0: never)\n"
            "  --drain-timeout S         on SIGTERM/SIGINT, wait this long for busy connections\n"
            "                            (default %u)\n"
            "  --debug                   log every connection and request\n"
            "  --help, --version\n",
            ARRPC_DEFAULT_MAX_MESSAGE, ARRPC_DEFAULT_MAX_DEPTH, ARRPC_MAX_DEPTH_LIMIT,
            ARRPC_DEFAULT_MAX_CONNECTIONS, ARRPC_DEFAULT_DRAIN_TIMEOUT_MS / 1000);
}

/* Reads the secret; a trailing "\n" or "\r\n" is not part of it (editors add one). */
static int read_secret(const char *path, uint8_t *buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "arrpcd: cannot read auth secret file %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t n = fread(buf, 1, ARRPC_AUTH_SECRET_MAX + 1, f);
    fclose(f);
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (n == 0 || n > ARRPC_AUTH_SECRET_MAX) {
        fprintf(stderr, "arrpcd: auth secret in %s must have 1 to %u bytes\n", path,
                ARRPC_AUTH_SECRET_MAX);
        return -1;
    }
    *len = n;
    return 0;
}

static int parse_number(const char *opt, const char *arg, unsigned long min, unsigned long max,
                        unsigned long *out)
{
    if (arrpc__parse_ulong(arg, min, max, out) == 0)
        return 0;
    fprintf(stderr, "arrpcd: %s wants a number from %lu to %lu, not '%s'\n", opt, min, max, arg);
    return -1;
}

static int parse_args(int argc, char **argv, arrpcd_options *o)
{
    static const struct option longopts[] = {
        {"listen", required_argument, 0, 'l'},       {"handler", required_argument, 0, 'H'},
        {"auth-secret-file", required_argument, 0, 's'},
        {"max-message", required_argument, 0, 'm'},  {"max-depth", required_argument, 0, 'd'},
        {"max-connections", required_argument, 0, 'c'},
        {"idle-timeout", required_argument, 0, 'i'}, {"drain-timeout", required_argument, 0, 't'},
        {"debug", no_argument, 0, 'D'},              {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},            {0, 0, 0, 0},
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
        case 'H': o->handler = optarg; break;
        case 's': o->secret_file = optarg; break;
        case 'm': bad |= parse_number("--max-message", optarg, 16, ARRPC_MAX_MESSAGE_LIMIT, &o->max_message); break;
        case 'd': bad |= parse_number("--max-depth", optarg, 1, ARRPC_MAX_DEPTH_LIMIT, &o->max_depth); break;
        case 'c': bad |= parse_number("--max-connections", optarg, 1, 1000000, &o->max_connections); break;
        case 'i': bad |= parse_number("--idle-timeout", optarg, 0, 86400 * 365, &o->idle_timeout_s); break;
        case 't': bad |= parse_number("--drain-timeout", optarg, 0, 86400, &o->drain_timeout_s); break;
        case 'D': o->debug = 1; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("arrpcd %s\n", ARRPC_VERSION); exit(0);
        default: bad = 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "arrpcd: unexpected argument '%s'\n", argv[optind]);
        bad = 1;
    }
    if (!o->handler) {
        fprintf(stderr, "arrpcd: --handler is required\n");
        bad = 1;
    }
    return bad ? -1 : 0;
}

static int configure(arrpc_server *srv, const arrpcd_options *o, const char *handler_name)
{
    uint8_t secret[ARRPC_AUTH_SECRET_MAX + 1];
    size_t secret_len = 0;
    if (o->secret_file && read_secret(o->secret_file, secret, &secret_len) != 0)
        return -1;
    int rc = arrpc_server_set_handler_name(srv, handler_name) ||
             arrpc_server_set_max_message(srv, o->max_message) ||
             arrpc_server_set_max_depth(srv, (unsigned)o->max_depth) ||
             arrpc_server_set_max_connections(srv, (unsigned)o->max_connections) ||
             arrpc_server_set_idle_timeout(srv, (unsigned)o->idle_timeout_s * 1000u) ||
             arrpc_server_set_drain_timeout(srv, (unsigned)o->drain_timeout_s * 1000u) ||
             arrpc_server_set_debug(srv, o->debug) ||
             (secret_len && arrpc_server_set_auth_secret(srv, secret, secret_len));
    if (rc)
        fprintf(stderr, "arrpcd: %s\n", arrpc_server_errstr(srv));
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
        .host = "127.0.0.1", .port = 8080,
        .max_message = ARRPC_DEFAULT_MAX_MESSAGE, .max_depth = ARRPC_DEFAULT_MAX_DEPTH,
        .max_connections = ARRPC_DEFAULT_MAX_CONNECTIONS,
        .idle_timeout_s = ARRPC_DEFAULT_IDLE_TIMEOUT_MS / 1000,
        .drain_timeout_s = ARRPC_DEFAULT_DRAIN_TIMEOUT_MS / 1000,
    };
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    char err[512];
    arrpc__handler handler;
    if (arrpc__handler_load(o.handler, &handler, err, sizeof err) != 0) {
        fprintf(stderr, "arrpcd: %s\n", err);
        return 1;
    }
    arrpc_server *srv = arrpc_server_new(o.host, o.port, handler.fn, handler.udata);
    int status = 1;
    if (srv && configure(srv, &o, handler.name) == 0) {
        if (arrpc_server_bind(srv) != 0) {
            fprintf(stderr, "arrpcd: %s\n", arrpc_server_errstr(srv));
        } else {
            /* Tests and scripts read the port from this line when they asked for port 0. */
            fprintf(stderr, "arrpcd: listening on %s:%u (handler %s%s)\n", o.host,
                    (unsigned)arrpc_server_port(srv), handler.name,
                    o.secret_file ? ", signed requests only" : "");
            running = srv;
            install_signals();
            status = arrpc_server_run(srv) == 0 ? 0 : 1;
            if (status)
                fprintf(stderr, "arrpcd: %s\n", arrpc_server_errstr(srv));
        }
    }
    running = NULL;
    arrpc_server_free(srv);
    arrpc__handler_unload(&handler);
    return status;
}
