/* request.c -- the one request every connection sends, built and signed once before the run. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/auth.h"
#include "../../core/buf.h"
#include "arrpc.h"
#include "bench.h"
#include "../json_msgpack.h"

#define RESP_PING "*1\r\n$4\r\nPING\r\n"
#define RESP_PONG "+PONG\r\n"

static int read_secret(const char *path, uint8_t *buf, size_t *len)
{
    char err[512];
    if (arrpc__auth_read_secret(path, buf, len, err, sizeof err) == 0) return 0;
    fprintf(stderr, "arrpc-bench: %s\n", err);
    return -1;
}

static int set_bytes(uint8_t **dst, const void *src, size_t n)
{
    *dst = malloc(n ? n : 1);
    if (!*dst) return -1;
    memcpy(*dst, src, n);
    return 0;
}

/* The request on the wire: the payload, or its sign envelope. */
static int wrap_payload(const uint8_t *key, size_t key_len, const arrpc__buf *payload,
                        arrpc__buf *wire)
{
    msgpack_packer pk;
    wire->head = wire->len = 0;
    if (!key) return arrpc__buf_append(wire, payload->data, payload->len);
    msgpack_packer_init(&pk, wire, arrpc__buf_pack_write);
    return arrpc__auth_wrap(key, key_len, payload->data, payload->len, &pk);
}

/* The payload: a str of `size` printable bytes. The request: it, or its sign envelope. */
static int pack_request(size_t size, const uint8_t *key, size_t key_len, arrpc__buf *payload,
                        arrpc__buf *wire)
{
    msgpack_packer pk;
    payload->head = payload->len = 0;
    if (arrpc__buf_reserve(payload, size + 8) != 0) return ARRPC_ENOMEM;
    msgpack_packer_init(&pk, payload, arrpc__buf_pack_write);
    if (msgpack_pack_str(&pk, size) != 0) return ARRPC_ENOMEM;
    for (size_t i = 0; i < size; i++)
        payload->data[payload->len++] = (uint8_t)('a' + i % 26);
    return wrap_payload(key, key_len, payload, wire);
}

/* The payload --request gives, from JSON as arrpc-call reads it; keeps the compact JSON for the
 * summary. 0, or -1 after saying why. */
static int pack_json(bench_config *cfg, const uint8_t *key, size_t key_len, arrpc__buf *payload,
                     arrpc__buf *wire)
{
    char err[256];
    json_error_t jerr;
    msgpack_packer pk;
    json_t *v =
        arrpc_json_loadb(cfg->request_json, strlen(cfg->request_json), JSON_DECODE_ANY, &jerr);
    if (!v) {
        fprintf(stderr, "arrpc-bench: --request is not JSON: %s\n", jerr.text);
        return -1;
    }
    msgpack_packer_init(&pk, payload, arrpc__buf_pack_write);
    int rc = arrpc_json_to_msgpack(v, &pk, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "arrpc-bench: --request: %s\n", err);
    else
        cfg->request_shown = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (rc == 0 && (!cfg->request_shown || wrap_payload(key, key_len, payload, wire) != 0)) {
        fprintf(stderr, "arrpc-bench: out of memory building the request\n");
        rc = -1;
    }
    return rc;
}

/* The reply an echo of the payload gives, for --verify: bytes and object. */
static int set_expect(bench_config *cfg, const arrpc__buf *payload)
{
    size_t off = 0;
    if (set_bytes(&cfg->expect, payload->data, payload->len) != 0) return -1;
    cfg->expect_len = payload->len;
    cfg->expect_zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    return cfg->expect_zone &&
                   msgpack_unpack((const char *)cfg->expect, cfg->expect_len, &off,
                                  cfg->expect_zone, &cfg->expect_obj) == MSGPACK_UNPACK_SUCCESS
               ? 0
               : -1;
}

/* The largest payload whose request is at most `total` bytes; *size_out, and 0 or -1. */
static int fit_total(size_t total, const uint8_t *key, size_t key_len, arrpc__buf *payload,
                     arrpc__buf *wire, size_t *size_out)
{
    size_t size = total;
    for (int i = 0; i < 64; i++) {
        if (pack_request(size, key, key_len, payload, wire) != 0) return -1;
        if (wire->len <= total) {
            *size_out = size;
            return 0;
        }
        size_t over = wire->len - total;
        if (size == 0) break;
        size = size > over ? size - over : 0;
    }
    fprintf(stderr, "arrpc-bench: no request is as small as --total %zu bytes\n", total);
    return -1;
}

static int build_arrpc(bench_config *cfg, const char *secret_file, size_t total)
{
    uint8_t key[ARRPC_AUTH_SECRET_MAX + 1];
    size_t key_len = 0;
    arrpc__buf payload = {0}, wire = {0};
    int rc = -1;
    if (secret_file && read_secret(secret_file, key, &key_len) != 0) return -1;
    const uint8_t *k = secret_file ? key : NULL;
    if (cfg->request_json) {
        if (pack_json(cfg, k, key_len, &payload, &wire) != 0) goto out;
    } else if (total) {
        if (fit_total(total, k, key_len, &payload, &wire, &cfg->payload_size) != 0) goto out;
        if (wire.len != total)
            fprintf(stderr, "arrpc-bench: no request has exactly %zu bytes; sending %zu\n", total,
                    wire.len);
    } else if (pack_request(cfg->payload_size, k, key_len, &payload, &wire) != 0) {
        fprintf(stderr, "arrpc-bench: out of memory building the request\n");
        goto out;
    }
    cfg->auth = k != NULL;
    if (set_bytes(&cfg->request, wire.data, wire.len) != 0) goto out;
    cfg->request_len = wire.len;
    rc = cfg->request_json ? 0 : set_expect(cfg, &payload); /* --request: no reply to expect */
out:
    memset(key, 0, sizeof key);
    arrpc__buf_free(&payload);
    arrpc__buf_free(&wire);
    return rc;
}

int bench_request_build(bench_config *cfg, const char *secret_file, size_t total)
{
    if (cfg->proto == BENCH_PROTO_ARRPC) {
        if (build_arrpc(cfg, secret_file, total) != 0) return -1;
    } else if (set_bytes(&cfg->request, RESP_PING, strlen(RESP_PING)) != 0 ||
               set_bytes(&cfg->expect, RESP_PONG, strlen(RESP_PONG)) != 0) {
        return -1;
    } else {
        cfg->request_len = strlen(RESP_PING);
        cfg->expect_len = strlen(RESP_PONG);
    }
    /* Replies echo requests: accept the server's default limit, or twice the request. */
    cfg->max_message = ARRPC_DEFAULT_MAX_MESSAGE;
    if (cfg->request_len > ARRPC_DEFAULT_MAX_MESSAGE / 2) cfg->max_message = cfg->request_len * 2;
    cfg->batch = malloc(cfg->request_len * cfg->pipeline);
    if (!cfg->batch) return -1;
    for (unsigned i = 0; i < cfg->pipeline; i++)
        memcpy(cfg->batch + (size_t)i * cfg->request_len, cfg->request, cfg->request_len);
    return 0;
}

void bench_request_free(bench_config *cfg)
{
    free(cfg->request);
    free(cfg->expect);
    free(cfg->batch);
    free(cfg->request_shown);
    cfg->request_shown = NULL;
    if (cfg->expect_zone) msgpack_zone_free(cfg->expect_zone);
    cfg->request = cfg->expect = cfg->batch = NULL;
    cfg->expect_zone = NULL;
}
