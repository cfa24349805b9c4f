/* arrpc-call.c -- the command-line client: JSON in as MessagePack requests, replies out as JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../core/auth.h"
#include "arrpc.h"
#include "json_msgpack.h"
#include "options.h"

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

typedef struct {
    const char *host, *connect; /* connect: "HOST:PORT,...", in place of host and port */
    unsigned long port, retries, keepalive_s;
    int idempotent;
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

static void print_version(void)
{
    printf("arrpc-call %s\n", ARRPC_VERSION);
}

#define AT(member) ARRPC_OPT_AT(call_options, member)
#define MAX_WAIT_MS (86400ul * 24 * 1000) /* the longest --timeout and the like: 24 days */

static const arrpc_opt call_opts[] = {
    {"host", 0, ARRPC_OPT_STRING, "H", AT(host), .help = "server address"},
    {"port", 0, ARRPC_OPT_UNSIGNED, "P", AT(port), 1, 65535, .help = "server port"},
    {"connect", 0, ARRPC_OPT_STRING, "HOST:PORT,...", AT(connect), .def = "--host:--port",
     .help = "the servers, tried in turn (IPv6 as [ADDR]:P; a name's every address is tried); "
             "one that refuses is skipped for a while; --retries then counts rounds over the "
             "list; not with --host or --port"},
    {"idempotent", 0, ARRPC_OPT_FLAG, NULL, AT(idempotent),
     .help = "the requests may run twice: one the connection lost before any byte of its reply "
             "is sent again on a new connection (the next server of --connect)"},
    {"keepalive", 0, ARRPC_OPT_UNSIGNED, "S", AT(keepalive_s), 0, ARRPC_CLIENT_KEEPALIVE_IDLE_MAX_S,
     .help = "TCP keepalive: first probe after S idle seconds (0: off)"},
    {"auth-secret-file", 0, ARRPC_OPT_STRING, "F", AT(secret_file),
     .help = "sign requests with the secret in F (one trailing newline is ignored)"},
    {"timeout", 0, ARRPC_OPT_SECONDS_MS, "S", AT(timeout_ms), 0, MAX_WAIT_MS, .def = "never",
     .help = "give up on a reply after S seconds"},
    {"connect-timeout", 0, ARRPC_OPT_SECONDS_MS, "S", AT(connect_timeout_ms), 0, MAX_WAIT_MS,
     .def = "never", .help = "give up on one connect try after S seconds"},
    {"retries", 0, ARRPC_OPT_UNSIGNED, "N", AT(retries), 1, 1000,
     .help = "connect tries, 1 s, 2 s ... apart"},
    {"retry-backoff", 0, ARRPC_OPT_SECONDS_MS, "S", AT(backoff_ms), 0, MAX_WAIT_MS,
     .help = "the step between connect tries"},
    {"tls-cafile", 0, ARRPC_OPT_STRING, "F", AT(tls_cafile),
     .help = "speak TLS; the server's certificate must be signed by a CA in F (PEM) and carry "
             "the host's name"},
    {"tls-self-signed", 0, ARRPC_OPT_FLAG, NULL, AT(tls_self_signed),
     .help = "the --tls-cafile file is the server's own certificate: no name check"},
    {"tls-server-name", 0, ARRPC_OPT_STRING, "N", AT(tls_server_name), .def = "--host",
     .help = "the name the certificate must carry"},
    {"tls-cert", 0, ARRPC_OPT_STRING, "F", AT(tls_cert),
     .help = "our certificate, for mutual TLS (with --tls-key)"},
    {"tls-key", 0, ARRPC_OPT_STRING, "F", AT(tls_key), .help = "the private key of --tls-cert"},
    {"lines", 0, ARRPC_OPT_FLAG, NULL, AT(lines),
     .help = "read one JSON request per line from stdin, send them all pipelined, print one "
             "reply per line in order (blank lines are skipped; error replies are printed as "
             "their strings)"},
    {"debug", 0, ARRPC_OPT_FLAG, NULL, AT(debug),
     .help = "log the connection and each request on stderr"},
    {"help", 0, ARRPC_OPT_HELP, .help = "print this help and exit"},
    {"version", 0, ARRPC_OPT_EXIT, .run = print_version, .help = "print the version and exit"},
    {0},
};

static const arrpc_opt_section call_sections[] = {
    {"JSON", "JSON has no byte strings: bin is written {\"$bin\": \"<base64>\"}, ext\n"
             "{\"$ext\": [type, \"<base64>\"]}, and a map with keys that are not strings\n"
             "{\"$map\": [[key, value], ...]}, in requests and replies alike. Integers go\n"
             "from -2^63 to 2^64-1; reals print in their shortest round-trip form."},
    {"EXIT STATUS",
     "Exit status: 0 ok, 2 usage or invalid JSON, 3 cannot connect, 4 authentication\n"
     "failed, 5 timed out, 6 the remote procedure failed (its message on stderr),\n"
     "7 protocol or other error, 8 TLS handshake or certificate failure."},
    {0},
};

static const arrpc_opt_program call_program = {
    .name = "arrpc-call",
    .man_section = "1",
    .synopsis = "[options] [JSON]",
    .summary = "call an arrpc server from the command line",
    .description = "Sends JSON (the argument, or stdin) as one MessagePack request to an arrpc\n"
                   "server and prints the reply as JSON on stdout.",
    .opts = call_opts,
    .sections = call_sections,
};

/* 0, 1 when --help or --version has answered, -1 on bad usage (said on stderr). */
static int parse_args(int argc, char **argv, call_options *o, const call_options *defaults)
{
    int next, rc = arrpc_opt_parse(&call_program, o, defaults, argc, argv, &next);
    if (rc > 0) return rc;
    if (next < argc) o->json = argv[next++];
    if ((o->tls_self_signed || o->tls_cert || o->tls_server_name) && !o->tls_cafile) {
        fprintf(stderr, "arrpc-call: TLS options need --tls-cafile\n");
        rc = -1;
    }
    if (!o->tls_cert != !o->tls_key) {
        fprintf(stderr, "arrpc-call: --tls-cert and --tls-key go together\n");
        rc = -1;
    }
    if (o->connect && (o->host != defaults->host || o->port != defaults->port)) {
        fprintf(stderr, "arrpc-call: --connect names the servers: no --host or --port\n");
        rc = -1;
    }
    if (next < argc || (o->lines && o->json)) {
        fprintf(stderr, "arrpc-call: one JSON argument at most, and none with --lines\n");
        rc = -1;
    }
    return rc;
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
    json_t *v = arrpc_json_loadb(text, len, JSON_FLAGS_IN, &jerr);
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
    arrpc_json_dumpf(j ? j : json_null(), stdout);
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
    char err[256] = "out of memory";
    arrpc_client *cli = o->connect ? arrpc_client_new_endpoints(o->connect, err, sizeof err)
                                   : arrpc_client_new(o->host, (uint16_t)o->port);
    if (!cli) {
        fprintf(stderr, "arrpc-call: --connect: %s\n", err);
        return NULL;
    }
    if (arrpc_client_set_timeout(cli, o->timeout_ms) ||
        arrpc_client_set_idempotent(cli, o->idempotent) ||
        arrpc_client_set_keepalive(cli, (unsigned)o->keepalive_s) ||
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
                      .keepalive_s = ARRPC_DEFAULT_KEEPALIVE_S,
                      .backoff_ms = 1000};
    const call_options defaults = o;
    int rc = parse_args(argc, argv, &o, &defaults);
    if (rc != 0) {
        if (rc < 0) arrpc_opt_write_help(stderr, &call_program, &defaults);
        return rc < 0 ? EXIT_USAGE : EXIT_OK;
    }
    request_list r = {0};
    rc = read_requests(&o, &r);
    arrpc_client *cli = NULL;
    if (rc == EXIT_OK && r.count > 0 && !(cli = make_client(&o))) rc = EXIT_USAGE;
    if (rc == EXIT_OK && cli) rc = o.lines ? call_lines(cli, &r) : call_one(cli, &r);
    arrpc_client_free(cli);
    requests_free(&r);
    if (fflush(stdout) != 0 && rc == EXIT_OK) rc = EXIT_OTHER;
    return rc;
}
