/* arrpc-call.c -- the command-line client: JSON in as MessagePack requests, replies out as JSON. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../core/auth.h"
#include "../core/net.h"
#include "arrpc.h"
#include "json_msgpack.h"

/* Exit codes, documented in --help. */
enum {
    EXIT_OK = 0,
    EXIT_USAGE = 2, /* bad options, or input that is not JSON */
    EXIT_CONNECT = 3,
    EXIT_AUTH = 4,
    EXIT_TIMEOUT = 5,
    EXIT_RPC = 6,
    EXIT_OTHER = 7, /* protocol violations and everything else */
    EXIT_TLS = 8,   /* TLS handshake or certificate verification failed */
};

#define JSON_FLAGS_IN (JSON_DECODE_ANY | JSON_ALLOW_NUL)
#define JSON_FLAGS_OUT (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))

typedef struct {
    const char *host;
    unsigned long port, retries;
    unsigned timeout_ms, connect_timeout_ms, backoff_ms;
    const char *secret_file;
    const char *tls_cafile, *tls_cert, *tls_key, *tls_server_name;
    int tls_self_signed;
    const char *json; /* the request; NULL: read stdin */
    int lines, debug;
} call_options;

/* A batch of packed requests, one per input value. */
typedef struct {
    msgpack_sbuffer *bufs;
    const void **ptrs;
    size_t *lens;
    size_t count, cap;
} request_list;

static void usage(FILE *to)
{
    fprintf(to,
            "usage: arrpc-call [options] [JSON]\n"
            "\n"
            "Sends JSON (the argument, or stdin) as one MessagePack request to an arrpc\n"
            "server and prints the reply as JSON on stdout.\n"
            "\n"
            "  --host H                server address (default 127.0.0.1)\n"
            "  --port P                server port (default 8080)\n"
            "  --auth-secret-file F    sign requests with the secret in F (one trailing newline\n"
            "                          is ignored)\n"
            "  --timeout S             give up on a reply after S seconds (default: never)\n"
            "  --connect-timeout S     give up on one connect try after S seconds\n"
            "                          (default: never)\n"
            "  --retries N             connect tries (default %u), 1 s, 2 s ... apart\n"
            "  --retry-backoff S       the step between connect tries (default 1)\n"
            "  --tls-cafile F          speak TLS; the server's certificate must be signed by a\n"
            "                          CA in F (PEM) and carry the host's name\n"
            "  --tls-self-signed       F is the server's own certificate: no name check\n"
            "  --tls-server-name N     the name the certificate must carry (default: --host)\n"
            "  --tls-cert F, --tls-key F  our certificate and key, for mutual TLS\n"
            "  --lines                 read one JSON request per line from stdin, send them all\n"
            "                          pipelined, print one reply per line in order (blank lines\n"
            "                          are skipped; error replies are printed as their strings)\n"
            "  --debug                 log the connection and each request on stderr\n"
            "  --help, --version\n"
            "\n"
            "JSON has no byte strings: bin is written {\"$bin\": \"<base64>\"}, ext\n"
            "{\"$ext\": [type, \"<base64>\"]}, and a map with keys that are not strings\n"
            "{\"$map\": [[key, value], ...]}, in requests and replies alike.\n"
            "\n"
            "Exit status: 0 ok, 2 usage or invalid JSON, 3 cannot connect, 4 authentication\n"
            "failed, 5 timed out, 6 the remote procedure failed (its message on stderr),\n"
            "7 protocol or other error, 8 TLS handshake or certificate failure.\n",
            ARRPC_DEFAULT_CON_MAX_RETRIES);
}

static int parse_seconds(const char *opt, const char *arg, unsigned *ms)
{
    char *end = NULL;
    errno = 0;
    double s = strtod(arg, &end);
    if (errno != 0 || end == arg || *end != '\0' || !(s >= 0) || s > 86400.0 * 24) {
        fprintf(stderr, "arrpc-call: %s wants seconds, not '%s'\n", opt, arg);
        return 1;
    }
    *ms = (unsigned)(s * 1000.0 + 0.5);
    if (s > 0 && *ms == 0) *ms = 1;
    return 0;
}

static int parse_args(int argc, char **argv, call_options *o)
{
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'p'},
        {"auth-secret-file", required_argument, 0, 's'},
        {"timeout", required_argument, 0, 't'},
        {"connect-timeout", required_argument, 0, 'c'},
        {"retries", required_argument, 0, 'r'},
        {"retry-backoff", required_argument, 0, 'b'},
        {"lines", no_argument, 0, 'l'},
        {"tls-cafile", required_argument, 0, 'A'},
        {"tls-self-signed", no_argument, 0, 'S'},
        {"tls-server-name", required_argument, 0, 'N'},
        {"tls-cert", required_argument, 0, 'C'},
        {"tls-key", required_argument, 0, 'K'},
        {"debug", no_argument, 0, 'D'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0},
    };
    int opt, bad = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'H':
            o->host = optarg;
            break;
        case 'p':
            bad |= arrpc__parse_option("arrpc-call", "--port", optarg, 1, 65535, &o->port);
            break;
        case 's':
            o->secret_file = optarg;
            break;
        case 't':
            bad |= parse_seconds("--timeout", optarg, &o->timeout_ms);
            break;
        case 'c':
            bad |= parse_seconds("--connect-timeout", optarg, &o->connect_timeout_ms);
            break;
        case 'r':
            bad |= arrpc__parse_option("arrpc-call", "--retries", optarg, 1, 1000, &o->retries);
            break;
        case 'b':
            bad |= parse_seconds("--retry-backoff", optarg, &o->backoff_ms);
            break;
        case 'l':
            o->lines = 1;
            break;
        case 'A':
            o->tls_cafile = optarg;
            break;
        case 'S':
            o->tls_self_signed = 1;
            break;
        case 'N':
            o->tls_server_name = optarg;
            break;
        case 'C':
            o->tls_cert = optarg;
            break;
        case 'K':
            o->tls_key = optarg;
            break;
        case 'D':
            o->debug = 1;
            break;
        case 'h':
            usage(stdout);
            exit(EXIT_OK);
        case 'V':
            printf("arrpc-call %s\n", ARRPC_VERSION);
            exit(EXIT_OK);
        default:
            bad = 1;
        }
    }
    if (optind < argc) o->json = argv[optind++];
    if ((o->tls_self_signed || o->tls_cert || o->tls_server_name) && !o->tls_cafile) {
        fprintf(stderr, "arrpc-call: TLS options need --tls-cafile\n");
        bad = 1;
    }
    if (!o->tls_cert != !o->tls_key) {
        fprintf(stderr, "arrpc-call: --tls-cert and --tls-key go together\n");
        bad = 1;
    }
    if (optind < argc || (o->lines && o->json)) {
        fprintf(stderr, "arrpc-call: one JSON argument at most, and none with --lines\n");
        bad = 1;
    }
    return bad ? -1 : 0;
}

static int read_secret(const char *path, uint8_t *buf, size_t *len)
{
    char err[512];
    if (arrpc__auth_read_secret(path, buf, len, err, sizeof err) == 0) return 0;
    fprintf(stderr, "arrpc-call: %s\n", err);
    return -1;
}

/* ---- requests ----------------------------------------------------------------------------- */

static void requests_free(request_list *r)
{
    for (size_t i = 0; i < r->count; i++)
        msgpack_sbuffer_destroy(&r->bufs[i]);
    free(r->bufs);
    free(r->ptrs);
    free(r->lens);
}

static int requests_grow(request_list *r)
{
    size_t cap = r->cap ? r->cap * 2 : 16;
    msgpack_sbuffer *bufs = realloc(r->bufs, cap * sizeof *bufs);
    if (bufs) r->bufs = bufs;
    const void **ptrs = bufs ? realloc(r->ptrs, cap * sizeof *ptrs) : NULL;
    if (ptrs) r->ptrs = ptrs;
    size_t *lens = ptrs ? realloc(r->lens, cap * sizeof *lens) : NULL;
    if (!lens) return -1;
    r->lens = lens;
    r->cap = cap;
    return 0;
}

/* Parses one JSON text and packs it as the next request. */
static int requests_add(request_list *r, const char *text, size_t len, const char *where)
{
    json_error_t jerr;
    char err[256];
    json_t *v = json_loadb(text, len, JSON_FLAGS_IN, &jerr);
    if (!v) {
        fprintf(stderr, "arrpc-call: %s: invalid JSON: %s\n", where, jerr.text);
        return EXIT_USAGE;
    }
    if (r->count == r->cap && requests_grow(r) != 0) {
        json_decref(v);
        fprintf(stderr, "arrpc-call: out of memory\n");
        return EXIT_OTHER;
    }
    msgpack_sbuffer *sb = &r->bufs[r->count];
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int rc = arrpc_json_to_msgpack(v, &pk, err, sizeof err);
    json_decref(v);
    r->count++; /* even on failure, so that requests_free destroys the buffer */
    if (rc != 0) {
        fprintf(stderr, "arrpc-call: %s: %s\n", where, err);
        return EXIT_USAGE;
    }
    r->ptrs[r->count - 1] = sb->data;
    r->lens[r->count - 1] = sb->size;
    return EXIT_OK;
}

/* Reads all of f into a new NUL-terminated buffer. */
static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap), *bigger;
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        if (!(bigger = realloc(buf, cap * 2))) free(buf);
        buf = bigger;
        cap *= 2;
    }
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    }
    return 1;
}

static int read_requests(const call_options *o, request_list *r)
{
    if (o->json) return requests_add(r, o->json, strlen(o->json), "argument");
    if (!o->lines) {
        size_t len = 0;
        char *text = read_all(stdin, &len);
        int rc = text ? requests_add(r, text, len, "stdin") : EXIT_OTHER;
        free(text);
        return rc;
    }
    char *line = NULL, where[48];
    size_t cap = 0;
    ssize_t n;
    int rc = EXIT_OK;
    for (unsigned long no = 1; rc == EXIT_OK && (n = getline(&line, &cap, stdin)) >= 0; no++) {
        snprintf(where, sizeof where, "line %lu", no);
        if (!blank(line, (size_t)n)) rc = requests_add(r, line, (size_t)n, where);
    }
    free(line);
    return rc;
}

/* ---- replies ------------------------------------------------------------------------------ */

static int exit_code(int err)
{
    switch (err) {
    case ARRPC_OK:
        return EXIT_OK;
    case ARRPC_ECONNECT:
        return EXIT_CONNECT;
    case ARRPC_EAUTH:
        return EXIT_AUTH;
    case ARRPC_ETIMEOUT:
        return EXIT_TIMEOUT;
    case ARRPC_ERPC:
        return EXIT_RPC;
    case ARRPC_EINVAL:
        return EXIT_USAGE;
    case ARRPC_ETLS:
        return EXIT_TLS;
    default:
        return EXIT_OTHER;
    }
}

/* Prints one reply as a line of JSON. EXIT_OTHER when it has no JSON form (null is printed). */
static int print_reply(const arrpc_response *res)
{
    char err[256];
    json_t *j = arrpc_json_from_msgpack(arrpc_response_object(res), err, sizeof err);
    int rc = EXIT_OK;
    if (!j) {
        fprintf(stderr, "arrpc-call: the reply cannot be shown as JSON: %s\n", err);
        rc = EXIT_OTHER;
    }
    json_dumpf(j ? j : json_null(), stdout, JSON_FLAGS_OUT);
    fputc('\n', stdout);
    json_decref(j);
    return rc;
}

/* Error replies in a batch are printed like any reply; the status is the first failure's. */
static int report_batch(arrpc_response **res, size_t n)
{
    int rc = EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        int status = arrpc_response_status(res[i]), one = print_reply(res[i]);
        if (status != ARRPC_OK) {
            const msgpack_object *o = arrpc_response_object(res[i]);
            fprintf(stderr, "arrpc-call: request %zu: %.*s\n", i + 1, (int)o->via.str.size,
                    o->via.str.ptr);
            one = exit_code(status);
        }
        if (rc == EXIT_OK) rc = one;
    }
    return rc;
}

static arrpc_client *make_client(const call_options *o)
{
    uint8_t secret[ARRPC_AUTH_SECRET_MAX + 1];
    size_t secret_len = 0;
    if (o->secret_file && read_secret(o->secret_file, secret, &secret_len) != 0) return NULL;
    arrpc_client *cli = arrpc_client_new(o->host, (uint16_t)o->port);
    if (!cli || arrpc_client_set_timeout(cli, o->timeout_ms) ||
        arrpc_client_set_connect_timeout(cli, o->connect_timeout_ms) ||
        arrpc_client_set_con_max_retries(cli, (unsigned)o->retries) ||
        arrpc_client_set_retry_backoff(cli, o->backoff_ms) ||
        arrpc_client_set_debug(cli, o->debug) ||
        (secret_len && arrpc_client_set_auth_secret(cli, secret, secret_len)) ||
        (o->tls_cafile && arrpc_client_set_tls(cli, o->tls_cafile, o->tls_self_signed)) ||
        (o->tls_cert && arrpc_client_set_tls_client_cert(cli, o->tls_cert, o->tls_key)) ||
        (o->tls_server_name && arrpc_client_set_tls_server_name(cli, o->tls_server_name))) {
        fprintf(stderr, "arrpc-call: cannot set up the client\n");
        arrpc_client_free(cli);
        return NULL;
    }
    return cli;
}

/* One request: an error reply is reported on stderr, not printed as a result. */
static int call_one(arrpc_client *cli, const request_list *r)
{
    arrpc_response *res = NULL;
    int err = arrpc_client_send(cli, r->ptrs[0], r->lens[0], &res);
    if (err != 0) {
        fprintf(stderr, "arrpc-call: %s: %s\n", arrpc_strerror(err), arrpc_client_errstr(cli));
        return exit_code(err);
    }
    int rc = print_reply(res);
    arrpc_response_free(res);
    return rc;
}

static int call_lines(arrpc_client *cli, const request_list *r)
{
    arrpc_response **res = calloc(r->count, sizeof *res);
    if (!res) return EXIT_OTHER;
    int err = arrpc_client_send_batch(cli, r->ptrs, r->lens, r->count, res);
    int rc = exit_code(err);
    if (err != 0)
        fprintf(stderr, "arrpc-call: %s: %s\n", arrpc_strerror(err), arrpc_client_errstr(cli));
    else
        rc = report_batch(res, r->count);
    for (size_t i = 0; i < r->count; i++)
        arrpc_response_free(res[i]);
    free(res);
    return rc;
}

int main(int argc, char **argv)
{
    call_options o = {.host = "127.0.0.1",
                      .port = 8080,
                      .retries = ARRPC_DEFAULT_CON_MAX_RETRIES,
                      .backoff_ms = 1000};
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    request_list r = {0};
    int rc = read_requests(&o, &r);
    arrpc_client *cli = NULL;
    if (rc == EXIT_OK && r.count > 0 && !(cli = make_client(&o))) rc = EXIT_USAGE;
    if (rc == EXIT_OK && cli) rc = o.lines ? call_lines(cli, &r) : call_one(cli, &r);
    arrpc_client_free(cli);
    requests_free(&r);
    if (fflush(stdout) != 0 && rc == EXIT_OK) rc = EXIT_OTHER;
    return rc;
}
