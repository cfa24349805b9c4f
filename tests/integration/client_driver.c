/* client_driver.c -- the C client under test, driven line by line from Python over stdin/stdout.
 *
 *   client_driver --port P [--host H] [--timeout MS] [--connect-timeout MS] [--retries N]
 *                 [--backoff MS] [--secret-hex HEX] [--max-message BYTES] [--debug]
 *                 [--connect H:P,H:P... (in place of --host and --port)] [--idempotent]
 *                 [--tls-cafile F [--tls-self-signed] [--tls-server-name N]
 *                  [--tls-cert F --tls-key F]]
 *
 * Commands, one per line; each answers one line (batch: a line per reply after the first):
 *   send HEX          ok <reply bytes HEX> <decoded object packed again HEX> | err NAME TEXT
 *   batch HEX HEX...  ok N, then "STATUS HEX" per reply (STATUS: OK, ERPC, EAUTH) | err NAME TEXT
 *   close             ok
 *   timeout MS        ok (the call timeout for the next sends)
 *   metrics-on|off    ok (arrpc_client_set_metrics)
 *   serve HOST PORT   ok <bound port> | err NAME TEXT (arrpc_client_serve_metrics)
 *   metrics           ok N, then the N lines of arrpc_client_metrics_render's text
 * Bytes are hex so that any MessagePack fits on a line. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arrpc.h>

#include "options.h"

#define MAX_BATCH 100000

static void print_hex(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        printf("%02x", b[i]);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Decodes lowercase hex in place; returns the byte count or -1. */
static long unhex(char *s)
{
    size_t n = strlen(s);
    if (n % 2) return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        s[i] = (char)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

static void print_error(arrpc_client *cli, int rc)
{
    printf("err %s %s\n", arrpc_errname(rc), arrpc_client_errstr(cli));
}

static void do_send(arrpc_client *cli, char *hex)
{
    long n = unhex(hex);
    arrpc_response *res = NULL;
    int rc = n < 0 ? ARRPC_EINVAL : arrpc_client_send(cli, hex, (size_t)n, &res);
    if (rc != 0) {
        print_error(cli, rc);
        return;
    }
    size_t len;
    const void *data = arrpc_response_data(res, &len);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *arrpc_response_object(res));
    printf("ok ");
    print_hex(data, len);
    printf(" ");
    print_hex(sb.data, sb.size);
    printf("\n");
    msgpack_sbuffer_destroy(&sb);
    arrpc_response_free(res);
}

static void do_batch(arrpc_client *cli, char *args)
{
    static const void *reqs[MAX_BATCH];
    static size_t lens[MAX_BATCH];
    static arrpc_response *res[MAX_BATCH];
    size_t count = 0;
    for (char *tok = strtok(args, " "); tok && count < MAX_BATCH; tok = strtok(NULL, " ")) {
        long n = unhex(tok);
        reqs[count] = tok;
        lens[count++] = n < 0 ? 0 : (size_t)n;
    }
    int rc = arrpc_client_send_batch(cli, reqs, lens, count, res);
    if (rc != 0) {
        print_error(cli, rc);
        return;
    }
    printf("ok %zu\n", count);
    for (size_t i = 0; i < count; i++) {
        size_t len;
        const void *data = arrpc_response_data(res[i], &len);
        int st = arrpc_response_status(res[i]);
        printf("%s ", st == ARRPC_OK ? "OK" : arrpc_errname(st));
        print_hex(data, len);
        printf("\n");
        arrpc_response_free(res[i]);
    }
}

/* Renders into a buffer sized by asking first, as a user's exporter would. */
static void do_metrics(arrpc_client *cli)
{
    size_t len = 0, lines = 0;
    char *buf = NULL;
    int rc = arrpc_client_metrics_render(cli, NULL, 0, &len);
    while (rc == ARRPC_ENOMEM) {
        size_t cap = len + 4096;
        free(buf);
        if (!(buf = malloc(cap))) break;
        rc = arrpc_client_metrics_render(cli, buf, cap, &len);
    }
    if (rc != 0 || !buf) {
        printf("err %s cannot render the metrics\n", arrpc_errname(rc));
        free(buf);
        return;
    }
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    printf("ok %zu\n%s", lines, buf);
    free(buf);
}

static void do_serve(arrpc_client *cli, char *args)
{
    char *host = strtok(args, " "), *port = strtok(NULL, " ");
    int rc = host && port ? arrpc_client_serve_metrics(cli, host, (uint16_t)strtoul(port, NULL, 10))
                          : ARRPC_EINVAL;
    if (rc != 0)
        print_error(cli, rc);
    else
        printf("ok %u\n", (unsigned)arrpc_client_metrics_port(cli));
}

typedef struct {
    const char *host, *secret_hex, *connect;
    unsigned long port, timeout_ms, connect_timeout_ms, retries, backoff_ms, max_message;
    const char *tls_cafile, *tls_server_name, *tls_cert, *tls_key;
    int tls_self_signed, debug, idempotent;
} driver_options;

#define AT(member) ARRPC_OPT_AT(driver_options, member)
#define MS(name, member, text)                                                                     \
    {                                                                                              \
        name, 0, ARRPC_OPT_UNSIGNED, "MS", AT(member), 0, UINT_MAX, .help = text                   \
    }

/* The C client's settings, named as arrpc-call names them where the two share one. */
static const arrpc_opt driver_opts[] = {
    {"host", 0, ARRPC_OPT_STRING, "H", AT(host), .help = "server address"},
    {"port", 0, ARRPC_OPT_UNSIGNED, "P", AT(port), 0, 65535, .help = "server port"},
    MS("timeout", timeout_ms, "arrpc_client_set_timeout (0: none)"),
    MS("connect-timeout", connect_timeout_ms, "arrpc_client_set_connect_timeout (0: none)"),
    {"retries", 0, ARRPC_OPT_UNSIGNED, "N", AT(retries), 0, UINT_MAX,
     .help = "arrpc_client_set_con_max_retries"},
    MS("backoff", backoff_ms, "arrpc_client_set_retry_backoff"),
    {"secret-hex", 0, ARRPC_OPT_STRING, "HEX", AT(secret_hex),
     .help = "arrpc_client_set_auth_secret, the secret in lowercase hex"},
    {"max-message", 0, ARRPC_OPT_UNSIGNED, "BYTES", AT(max_message), 0, ULONG_MAX,
     .help = "arrpc_client_set_max_message (0: the library's default)"},
    {"tls-cafile", 0, ARRPC_OPT_STRING, "F", AT(tls_cafile), .help = "arrpc_client_set_tls"},
    {"tls-self-signed", 0, ARRPC_OPT_FLAG, NULL, AT(tls_self_signed),
     .help = "the --tls-cafile file is the server's own certificate"},
    {"tls-server-name", 0, ARRPC_OPT_STRING, "N", AT(tls_server_name),
     .help = "arrpc_client_set_tls_server_name"},
    {"tls-cert", 0, ARRPC_OPT_STRING, "F", AT(tls_cert),
     .help = "arrpc_client_set_tls_client_cert, with --tls-key"},
    {"tls-key", 0, ARRPC_OPT_STRING, "F", AT(tls_key), .help = "the private key of --tls-cert"},
    {"debug", 0, ARRPC_OPT_FLAG, NULL, AT(debug), .help = "arrpc_client_set_debug"},
    {"connect", 0, ARRPC_OPT_STRING, "HOST:PORT,...", AT(connect),
     .help = "arrpc_client_new_endpoints, in place of --host and --port"},
    {"idempotent", 0, ARRPC_OPT_FLAG, NULL, AT(idempotent), .help = "arrpc_client_set_idempotent"},
    {"help", 0, ARRPC_OPT_HELP, .help = "print this help and exit"},
    {0},
};

static const arrpc_opt_program driver_program = {
    .name = "client_driver",
    .man_section = "1",
    .synopsis = "--port P [options]",
    .summary = "the C client under test, driven line by line",
    .description = "Reads commands on stdin and answers each on stdout (see client_driver.c).",
    .opts = driver_opts,
};

static arrpc_client *make_client(const driver_options *o)
{
    arrpc_client *cli = o->connect ? arrpc_client_new_endpoints(o->connect, NULL, 0)
                                   : arrpc_client_new(o->host, (uint16_t)o->port);
    char *secret = o->secret_hex ? strdup(o->secret_hex) : NULL;
    long slen = secret ? unhex(secret) : 0;
    if (!cli || slen < 0 || arrpc_client_set_timeout(cli, (unsigned)o->timeout_ms) ||
        arrpc_client_set_connect_timeout(cli, (unsigned)o->connect_timeout_ms) ||
        arrpc_client_set_con_max_retries(cli, (unsigned)o->retries) ||
        arrpc_client_set_retry_backoff(cli, (unsigned)o->backoff_ms) ||
        (o->max_message && arrpc_client_set_max_message(cli, o->max_message)) ||
        (slen > 0 && arrpc_client_set_auth_secret(cli, secret, (size_t)slen)) ||
        (o->tls_cafile && arrpc_client_set_tls(cli, o->tls_cafile, o->tls_self_signed)) ||
        (o->tls_cert && arrpc_client_set_tls_client_cert(cli, o->tls_cert, o->tls_key)) ||
        (o->tls_server_name && arrpc_client_set_tls_server_name(cli, o->tls_server_name)) ||
        arrpc_client_set_debug(cli, o->debug) || arrpc_client_set_idempotent(cli, o->idempotent)) {
        arrpc_client_free(cli);
        cli = NULL;
    }
    free(secret);
    return cli;
}

/* Options into a client: NULL after --help (*status 0) or on bad options (*status 2). */
static arrpc_client *client_from_args(int argc, char **argv, int *status)
{
    const driver_options defaults = {.host = "127.0.0.1", .retries = 5, .backoff_ms = 1000};
    driver_options o = defaults;
    int next, rc = arrpc_opt_parse(&driver_program, &o, &defaults, argc, argv, &next);
    arrpc_client *cli = rc == 0 ? make_client(&o) : NULL; /* operands after next are ignored */
    (void)next;
    *status = rc > 0 ? 0 : 2;
    return cli;
}

int main(int argc, char **argv)
{
    int status;
    arrpc_client *cli = client_from_args(argc, argv, &status);
    if (!cli) {
        if (status) fprintf(stderr, "client_driver: bad options\n");
        return status;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n') line[n - 1] = '\0';
        if (strncmp(line, "send ", 5) == 0)
            do_send(cli, line + 5);
        else if (strncmp(line, "batch ", 6) == 0)
            do_batch(cli, line + 6);
        else if (strcmp(line, "close") == 0) {
            arrpc_client_close(cli);
            printf("ok\n");
        } else if (strncmp(line, "timeout ", 8) == 0) {
            arrpc_client_set_timeout(cli, (unsigned)strtoul(line + 8, NULL, 10));
            printf("ok\n");
        } else if (strcmp(line, "metrics-on") == 0 || strcmp(line, "metrics-off") == 0) {
            arrpc_client_set_metrics(cli, strcmp(line, "metrics-on") == 0);
            printf("ok\n");
        } else if (strcmp(line, "metrics") == 0)
            do_metrics(cli);
        else if (strncmp(line, "serve ", 6) == 0)
            do_serve(cli, line + 6);
        else
            printf("err EINVAL unknown command\n");
        fflush(stdout);
    }
    free(line);
    arrpc_client_free(cli);
    return 0;
}
