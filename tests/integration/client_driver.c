/* client_driver.c -- the C client under test, driven line by line from Python over stdin/stdout.
 *
 *   client_driver --port P [--host H] [--timeout MS] [--connect-timeout MS] [--retries N]
 *                 [--backoff MS] [--secret-hex HEX] [--max-message BYTES] [--debug]
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
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arrpc.h>

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

static arrpc_client *make_client(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'p'},
        {"timeout", required_argument, 0, 't'},
        {"connect-timeout", required_argument, 0, 'c'},
        {"retries", required_argument, 0, 'r'},
        {"backoff", required_argument, 0, 'b'},
        {"secret-hex", required_argument, 0, 's'},
        {"max-message", required_argument, 0, 'm'},
        {"tls-cafile", required_argument, 0, 'A'},
        {"tls-self-signed", no_argument, 0, 'S'},
        {"tls-server-name", required_argument, 0, 'N'},
        {"tls-cert", required_argument, 0, 'C'},
        {"tls-key", required_argument, 0, 'K'},
        {"debug", no_argument, 0, 'D'},
        {0, 0, 0, 0},
    };
    const char *host = "127.0.0.1";
    unsigned long port = 0, timeout = 0, ctimeout = 0, retries = 5, backoff = 1000, maxmsg = 0;
    char *secret = NULL;
    const char *cafile = NULL, *name = NULL, *cert = NULL, *key = NULL;
    int opt, self_signed = 0, debug = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'H':
            host = optarg;
            break;
        case 'p':
            port = strtoul(optarg, NULL, 10);
            break;
        case 't':
            timeout = strtoul(optarg, NULL, 10);
            break;
        case 'c':
            ctimeout = strtoul(optarg, NULL, 10);
            break;
        case 'r':
            retries = strtoul(optarg, NULL, 10);
            break;
        case 'b':
            backoff = strtoul(optarg, NULL, 10);
            break;
        case 's':
            secret = optarg;
            break;
        case 'm':
            maxmsg = strtoul(optarg, NULL, 10);
            break;
        case 'A':
            cafile = optarg;
            break;
        case 'S':
            self_signed = 1;
            break;
        case 'N':
            name = optarg;
            break;
        case 'C':
            cert = optarg;
            break;
        case 'K':
            key = optarg;
            break;
        case 'D':
            debug = 1;
            break;
        default:
            return NULL;
        }
    }
    arrpc_client *cli = arrpc_client_new(host, (uint16_t)port);
    long slen = secret ? unhex(secret) : 0;
    if (!cli || slen < 0 || arrpc_client_set_timeout(cli, (unsigned)timeout) ||
        arrpc_client_set_connect_timeout(cli, (unsigned)ctimeout) ||
        arrpc_client_set_con_max_retries(cli, (unsigned)retries) ||
        arrpc_client_set_retry_backoff(cli, (unsigned)backoff) ||
        (maxmsg && arrpc_client_set_max_message(cli, maxmsg)) ||
        (slen > 0 && arrpc_client_set_auth_secret(cli, secret, (size_t)slen)) ||
        (cafile && arrpc_client_set_tls(cli, cafile, self_signed)) ||
        (cert && arrpc_client_set_tls_client_cert(cli, cert, key)) ||
        (name && arrpc_client_set_tls_server_name(cli, name)) ||
        arrpc_client_set_debug(cli, debug)) {
        arrpc_client_free(cli);
        return NULL;
    }
    return cli;
}

int main(int argc, char **argv)
{
    arrpc_client *cli = make_client(argc, argv);
    if (!cli) {
        fprintf(stderr, "client_driver: bad options\n");
        return 2;
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
