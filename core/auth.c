/* auth.c -- the sign envelope: build it, and verify it in constant time (HMAC-SHA256 over the
 * CPU's SHA extensions when it has them, else wolfCrypt's SHA-256). */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "auth.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "arrpc.h"
#include "sha256_hw.h"

/* HMAC-SHA256 (RFC 2104) with the key's two padded blocks hashed once, not per message: the
 * SHA-256 states after them are kept (per thread, so that clients in several threads do not
 * share one) and copied for each message. That is 2 SHA-256 compressions per short message
 * instead of wc_HmacSetKey + wc_HmacFinal's 4, which halved the cost of a signed request.
 *
 * On CPUs with the SHA extensions the compressions run on them (core/sha256_hw.c, several times
 * faster than Debian's portable-C wolfCrypt), under a small SHA-256 of ours that only knows how
 * to finish a hash whose first block was the padded key. wolfCrypt stays the path elsewhere, and
 * also when the hardware path fails its one-time known-answer check. */
typedef struct {
    int ready;
    size_t key_len;
    uint8_t key[ARRPC_AUTH_SECRET_MAX]; /* to notice a new key (a reload, another secret) */
    wc_Sha256 inner, outer;             /* after (key ^ ipad) and (key ^ opad) */
    uint32_t hw_inner[8], hw_outer[8];  /* the same two states for the hardware path, if any */
} hmac_key;

static _Thread_local hmac_key cached_key;

/* SHA-256's initial state H0..H7 (FIPS 180-4). */
static const uint32_t sha256_iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

/* The key as HMAC uses it: hashed when longer than a block, then padded with zeros. */
static int padded_key(const uint8_t *key, size_t key_len, uint8_t block[WC_SHA256_BLOCK_SIZE])
{
    memset(block, 0, WC_SHA256_BLOCK_SIZE);
    if (key_len > WC_SHA256_BLOCK_SIZE) return wc_Sha256Hash(key, (word32)key_len, block);
    if (key_len > 0) memcpy(block, key, key_len);
    return 0;
}

/* The hardware path's inner and outer states: the IV after one block, the key ^ ipad / opad. */
static void hw_prepare(const uint8_t block[WC_SHA256_BLOCK_SIZE], uint32_t inner[8],
                       uint32_t outer[8])
{
    uint8_t pad[WC_SHA256_BLOCK_SIZE];
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = block[i] ^ 0x36;
    memcpy(inner, sha256_iv, sizeof sha256_iv);
    arrpc__sha256_hw_blocks(inner, pad, 1);
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = block[i] ^ 0x5c;
    memcpy(outer, sha256_iv, sizeof sha256_iv);
    arrpc__sha256_hw_blocks(outer, pad, 1);
    explicit_bzero(pad, sizeof pad);
}

static int hmac_prepare(hmac_key *k, const uint8_t *key, size_t key_len)
{
    uint8_t block[WC_SHA256_BLOCK_SIZE], pad[WC_SHA256_BLOCK_SIZE];
    if (k->ready) {
        wc_Sha256Free(&k->inner);
        wc_Sha256Free(&k->outer);
        k->ready = 0;
    }
    int ok = padded_key(key, key_len, block) == 0 && wc_InitSha256(&k->inner) == 0 &&
             wc_InitSha256(&k->outer) == 0;
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = block[i] ^ 0x36;
    ok = ok && wc_Sha256Update(&k->inner, pad, sizeof pad) == 0;
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = block[i] ^ 0x5c;
    ok = ok && wc_Sha256Update(&k->outer, pad, sizeof pad) == 0;
    if (ok && arrpc__sha256_hw_available()) hw_prepare(block, k->hw_inner, k->hw_outer);
    explicit_bzero(block, sizeof block);
    explicit_bzero(pad, sizeof pad);
    if (!ok) return -1;
    if (key_len > 0) memcpy(k->key, key, key_len);
    k->key_len = key_len;
    k->ready = 1;
    return 0;
}

/* Whole-word byte swaps and stores: built byte by byte, GCC assembled the words in registers,
 * stored them in pieces and read them back as vectors, stalling on every such load. */
static void store_be32(uint8_t *p, uint32_t v)
{
    v = __builtin_bswap32(v);
    memcpy(p, &v, sizeof v);
}

static void store_be64(uint8_t *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, sizeof v);
}

/* Finishes a SHA-256 whose first (and only) block so far was the padded key: the message's
 * whole blocks, then the padding (0x80, zeros, the length in bits as 64 bits big-endian, the
 * key's block included) in one or two more blocks, then the digest. */
static void hw_finish(uint32_t state[8], const uint8_t *data, size_t len,
                      uint8_t digest[WC_SHA256_DIGEST_SIZE])
{
    uint8_t tail[2 * WC_SHA256_BLOCK_SIZE];
    size_t whole = len / WC_SHA256_BLOCK_SIZE, rest = len % WC_SHA256_BLOCK_SIZE;
    size_t blocks = rest < WC_SHA256_BLOCK_SIZE - 8 ? 1 : 2; /* room for 0x80 and the length? */
    uint64_t bits = ((uint64_t)len + WC_SHA256_BLOCK_SIZE) * 8;
    if (whole > 0) arrpc__sha256_hw_blocks(state, data, whole);
    if (rest > 0) memcpy(tail, data + whole * WC_SHA256_BLOCK_SIZE, rest);
    tail[rest] = 0x80;
    memset(tail + rest + 1, 0, blocks * WC_SHA256_BLOCK_SIZE - 8 - rest - 1);
    store_be64(tail + blocks * WC_SHA256_BLOCK_SIZE - 8, bits);
    arrpc__sha256_hw_blocks(state, tail, blocks);
    for (size_t i = 0; i < 8; i++)
        store_be32(digest + 4 * i, state[i]);
}

static void hw_hmac(const uint32_t inner[8], const uint32_t outer[8], const void *data, size_t len,
                    uint8_t mac[WC_SHA256_DIGEST_SIZE])
{
    if (len <= ARRPC_SHA256_HW_SHORT_MAX) { /* most requests: one block each way, in registers */
        arrpc__sha256_hw_hmac_short(inner, outer, data, len, mac);
        return;
    }
    uint32_t state[8];
    uint8_t digest[WC_SHA256_DIGEST_SIZE];
    memcpy(state, inner, sizeof state);
    hw_finish(state, data, len, digest);
    memcpy(state, outer, sizeof state);
    hw_finish(state, digest, sizeof digest, mac);
}

/* RFC 4231 test case 2 through the hardware path: a wrong answer (a CPU or compiler that gets
 * the new instructions wrong) means wolfCrypt for the rest of the process. */
static int hw_passes_self_check(void)
{
    static const uint8_t expected[WC_SHA256_DIGEST_SIZE] = {
        0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
        0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
        0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    static const char data[] = "what do ya want for nothing?";
    uint8_t block[WC_SHA256_BLOCK_SIZE], mac[WC_SHA256_DIGEST_SIZE];
    uint32_t inner[8], outer[8];
    if (padded_key((const uint8_t *)"Jefe", 4, block) != 0) return 0;
    hw_prepare(block, inner, outer);
    hw_hmac(inner, outer, data, sizeof data - 1, mac);
    return memcmp(mac, expected, sizeof mac) == 0;
}

/* Whether ARRPC_SHA256_AUTO takes the hardware path, decided once per process. */
static int hw_in_use(void)
{
    static atomic_int decided; /* 0: not yet, 1: wolfCrypt, 2: hardware; racing threads agree */
    int v = atomic_load_explicit(&decided, memory_order_relaxed);
    if (v == 0) {
        v = arrpc__sha256_hw_available() && hw_passes_self_check() ? 2 : 1;
        atomic_store_explicit(&decided, v, memory_order_relaxed);
    }
    return v == 2;
}

static int wolf_hmac(hmac_key *k, const void *data, size_t len, uint8_t mac[WC_SHA256_DIGEST_SIZE])
{
    uint8_t inner[WC_SHA256_DIGEST_SIZE];
    wc_Sha256 hi, ho;
    if (wc_Sha256Copy(&k->inner, &hi) != 0) return -1;
    int ok = wc_Sha256Update(&hi, data, (word32)len) == 0 && wc_Sha256Final(&hi, inner) == 0;
    wc_Sha256Free(&hi);
    if (!ok || wc_Sha256Copy(&k->outer, &ho) != 0) return -1;
    ok = wc_Sha256Update(&ho, inner, sizeof inner) == 0 && wc_Sha256Final(&ho, mac) == 0;
    wc_Sha256Free(&ho);
    return ok ? 0 : -1;
}

int arrpc__auth_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                            uint8_t mac[32], arrpc__sha256_path path)
{
    if (key_len > ARRPC_AUTH_SECRET_MAX || len > UINT32_MAX) return ARRPC_EINVAL;
    if (path == ARRPC_SHA256_HW && !arrpc__sha256_hw_available()) return ARRPC_EINVAL;
    int hw = path == ARRPC_SHA256_HW || (path == ARRPC_SHA256_AUTO && hw_in_use());
    hmac_key *k = &cached_key;
    if (!k->ready || k->key_len != key_len || (key_len && memcmp(k->key, key, key_len) != 0)) {
        if (hmac_prepare(k, key, key_len) != 0) return ARRPC_EINVAL;
    }
    if (hw) {
        hw_hmac(k->hw_inner, k->hw_outer, data, len, mac);
        return 0;
    }
    return wolf_hmac(k, data, len, mac) == 0 ? 0 : ARRPC_EINVAL;
}

/* A nibble's lowercase hex digit by arithmetic, not a table lookup indexed by the MAC:
 * (n + 6) >> 4 is 1 from 10 up, which moves '9' + 1 to 'a'. */
static char hex_digit(unsigned n)
{
    return (char)('0' + n + ((n + 6) >> 4) * ('a' - '0' - 10));
}

int arrpc__auth_sign_hex(const uint8_t *key, size_t key_len, const void *data, size_t len,
                         char hex[ARRPC_SIGN_HEX_LEN + 1])
{
    uint8_t mac[WC_SHA256_DIGEST_SIZE];
    int rc = arrpc__auth_hmac_sha256(key, key_len, data, len, mac, ARRPC_SHA256_AUTO);
    if (rc != 0) return rc;
    for (size_t i = 0; i < sizeof mac; i++) {
        hex[2 * i] = hex_digit(mac[i] >> 4);
        hex[2 * i + 1] = hex_digit(mac[i] & 0x0f);
    }
    hex[ARRPC_SIGN_HEX_LEN] = '\0';
    return 0;
}

static int key_is(const msgpack_object *o, const char *name)
{
    size_t n = strlen(name);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, name, n) == 0;
}

/* Compares the two signatures as 8-byte words, OR-ing their differences, with no early exit: the
 * time taken does not tell how much matched. */
static int signatures_equal(const char a[ARRPC_SIGN_HEX_LEN], const char b[ARRPC_SIGN_HEX_LEN])
{
    volatile uint64_t diff = 0;
    for (size_t i = 0; i < ARRPC_SIGN_HEX_LEN; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        diff |= x ^ y;
    }
    return diff == 0;
}

int arrpc__auth_open(const uint8_t *key, size_t key_len, const msgpack_object *env,
                     const uint8_t **data, size_t *len)
{
    const msgpack_object *sign = NULL, *body = NULL;
    if (env->type != MSGPACK_OBJECT_MAP || env->via.map.size != 2) return ARRPC_EAUTH;
    for (uint32_t i = 0; i < 2; i++) {
        const msgpack_object_kv *kv = &env->via.map.ptr[i];
        if (key_is(&kv->key, ARRPC_SIGN_KEY))
            sign = &kv->val;
        else if (key_is(&kv->key, ARRPC_DATA_KEY))
            body = &kv->val;
    }
    if (!sign || !body || sign->type != MSGPACK_OBJECT_STR ||
        sign->via.str.size != ARRPC_SIGN_HEX_LEN || body->type != MSGPACK_OBJECT_BIN)
        return ARRPC_EAUTH;
    arrpc__auth_envelope parts = {.sign = sign->via.str.ptr,
                                  .data = (const uint8_t *)body->via.bin.ptr,
                                  .len = body->via.bin.size};
    if (arrpc__auth_verify(key, key_len, &parts) != 0) return ARRPC_EAUTH;
    *data = parts.data;
    *len = parts.len;
    return 0;
}

int arrpc__auth_verify(const uint8_t *key, size_t key_len, const arrpc__auth_envelope *env)
{
    char expected[ARRPC_SIGN_HEX_LEN + 1];
    if (arrpc__auth_sign_hex(key, key_len, env->data, env->len, expected) != 0) return ARRPC_EAUTH;
    return signatures_equal(expected, env->sign) ? 0 : ARRPC_EAUTH;
}

/* The envelope's keys as fixstr, type byte included. */
#define PACKED_SIGN_KEY "\xaa" ARRPC_SIGN_KEY
#define PACKED_DATA_KEY "\xa4" ARRPC_DATA_KEY
#define MSGPACK_FIXMAP_2 0x82
#define MSGPACK_STR8 0xd9
#define MSGPACK_BIN8 0xc4
#define MSGPACK_BIN16 0xc5
#define MSGPACK_BIN32 0xc6

static int starts_with(const uint8_t *p, size_t n, const char *packed, size_t len)
{
    return n >= len && memcmp(p, packed, len) == 0;
}

/* One entry of a packed envelope at p[*at, n): 1 with *at past it, 0 when it is not one of the
 * two in the form arrpc__auth_envelope_at reads, is there a second time, or is cut short. */
static int envelope_entry(const uint8_t *p, size_t n, size_t *at, arrpc__auth_envelope *env)
{
    const size_t sign_key = sizeof PACKED_SIGN_KEY - 1, data_key = sizeof PACKED_DATA_KEY - 1;
    const uint8_t *q = p + *at;
    size_t left = n - *at;
    if (starts_with(q, left, PACKED_SIGN_KEY, sign_key)) {
        if (env->sign || left < sign_key + 2 + ARRPC_SIGN_HEX_LEN) return 0;
        if (q[sign_key] != MSGPACK_STR8 || q[sign_key + 1] != ARRPC_SIGN_HEX_LEN) return 0;
        env->sign = (const char *)q + sign_key + 2;
        *at += sign_key + 2 + ARRPC_SIGN_HEX_LEN;
        return 1;
    }
    if (!starts_with(q, left, PACKED_DATA_KEY, data_key) || env->data || left < data_key + 1)
        return 0;
    uint8_t type = q[data_key];
    size_t width = type == MSGPACK_BIN8    ? 1
                   : type == MSGPACK_BIN16 ? 2
                   : type == MSGPACK_BIN32 ? 4
                                           : 0;
    size_t header = data_key + 1 + width;
    if (width == 0 || left < header) return 0;
    uint64_t len = 0;
    for (size_t i = data_key + 1; i < header; i++)
        len = len << 8 | q[i];
    if (len > left - header) return 0;
    env->data = q + header;
    env->len = (size_t)len;
    *at += header + (size_t)len;
    return 1;
}

int arrpc__auth_envelope_at(const uint8_t *p, size_t n, arrpc__auth_envelope *env, size_t *used)
{
    size_t at = 1;
    *env = (arrpc__auth_envelope){0};
    if (n == 0 || p[0] != MSGPACK_FIXMAP_2) return 0;
    if (!envelope_entry(p, n, &at, env) || !envelope_entry(p, n, &at, env)) return 0;
    *used = at;
    return 1;
}

int arrpc__auth_read_secret(const char *path, uint8_t buf[ARRPC_AUTH_SECRET_MAX + 1], size_t *len,
                            char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read auth secret file %s: %s", path, strerror(errno));
        return ARRPC_EINVAL;
    }
    size_t n = fread(buf, 1, ARRPC_AUTH_SECRET_MAX + 1, f);
    fclose(f);
    if (n > 0 && buf[n - 1] == '\n') n--;
    if (n > 0 && buf[n - 1] == '\r') n--;
    if (n == 0 || n > ARRPC_AUTH_SECRET_MAX) {
        snprintf(err, errlen, "the auth secret in %s must have 1 to %u bytes", path,
                 ARRPC_AUTH_SECRET_MAX);
        return ARRPC_EINVAL;
    }
    *len = n;
    return 0;
}

int arrpc__auth_wrap(const uint8_t *key, size_t key_len, const void *request, size_t len,
                     msgpack_packer *pk)
{
    char hex[ARRPC_SIGN_HEX_LEN + 1];
    int rc = arrpc__auth_sign_hex(key, key_len, request, len, hex);
    if (rc != 0) return rc;
    int failed = msgpack_pack_map(pk, 2) ||
                 msgpack_pack_str_with_body(pk, ARRPC_SIGN_KEY, strlen(ARRPC_SIGN_KEY)) ||
                 msgpack_pack_str_with_body(pk, hex, ARRPC_SIGN_HEX_LEN) ||
                 msgpack_pack_str_with_body(pk, ARRPC_DATA_KEY, strlen(ARRPC_DATA_KEY)) ||
                 msgpack_pack_bin_with_body(pk, request, len);
    return failed ? ARRPC_ENOMEM : 0;
}
