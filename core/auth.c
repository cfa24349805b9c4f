/* auth.c -- the sign envelope: build it, and verify it in constant time (HMAC-SHA256 over
 * wolfCrypt's SHA-256). */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "arrpc.h"

/* HMAC-SHA256 (RFC 2104) with the key's two padded blocks hashed once, not per message: the
 * SHA-256 states after them are kept (per thread, so that clients in several threads do not
 * share one) and copied for each message. That is 2 SHA-256 compressions per short message
 * instead of wc_HmacSetKey + wc_HmacFinal's 4, which halved the cost of a signed request. */
typedef struct {
    int ready;
    size_t key_len;
    uint8_t key[ARRPC_AUTH_SECRET_MAX]; /* to notice a new key (a reload, another secret) */
    wc_Sha256 inner, outer;             /* after (key ^ ipad) and (key ^ opad) */
} hmac_key;

static _Thread_local hmac_key cached_key;

static int hmac_prepare(hmac_key *k, const uint8_t *key, size_t key_len)
{
    uint8_t block[WC_SHA256_BLOCK_SIZE] = {0}, pad[WC_SHA256_BLOCK_SIZE];
    if (k->ready) {
        wc_Sha256Free(&k->inner);
        wc_Sha256Free(&k->outer);
        k->ready = 0;
    }
    if (key_len > WC_SHA256_BLOCK_SIZE) { /* a long key is hashed first */
        if (wc_Sha256Hash(key, (word32)key_len, block) != 0) return -1;
    } else if (key_len > 0) {
        memcpy(block, key, key_len);
    }
    int ok = wc_InitSha256(&k->inner) == 0 && wc_InitSha256(&k->outer) == 0;
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = block[i] ^ 0x36;
    ok = ok && wc_Sha256Update(&k->inner, pad, sizeof pad) == 0;
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = block[i] ^ 0x5c;
    ok = ok && wc_Sha256Update(&k->outer, pad, sizeof pad) == 0;
    explicit_bzero(block, sizeof block);
    explicit_bzero(pad, sizeof pad);
    if (!ok) return -1;
    if (key_len > 0) memcpy(k->key, key, key_len);
    k->key_len = key_len;
    k->ready = 1;
    return 0;
}

static int hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                       uint8_t mac[WC_SHA256_DIGEST_SIZE])
{
    hmac_key *k = &cached_key;
    if (!k->ready || k->key_len != key_len || (key_len && memcmp(k->key, key, key_len) != 0)) {
        if (hmac_prepare(k, key, key_len) != 0) return -1;
    }
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

int arrpc__auth_sign_hex(const uint8_t *key, size_t key_len, const void *data, size_t len,
                         char hex[ARRPC_SIGN_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    uint8_t mac[WC_SHA256_DIGEST_SIZE];
    if (key_len > ARRPC_AUTH_SECRET_MAX || len > UINT32_MAX) return ARRPC_EINVAL;
    if (hmac_sha256(key, key_len, data, len, mac) != 0) return ARRPC_EINVAL;
    for (size_t i = 0; i < sizeof mac; i++) {
        hex[2 * i] = digits[mac[i] >> 4];
        hex[2 * i + 1] = digits[mac[i] & 0x0f];
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

/* Compares without an early exit, so the time taken does not tell how many bytes matched. */
static int equal_in_constant_time(const char *a, const char *b, size_t n)
{
    volatile unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
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
    char expected[ARRPC_SIGN_HEX_LEN + 1];
    if (arrpc__auth_sign_hex(key, key_len, body->via.bin.ptr, body->via.bin.size, expected) != 0)
        return ARRPC_EAUTH;
    if (!equal_in_constant_time(expected, sign->via.str.ptr, ARRPC_SIGN_HEX_LEN))
        return ARRPC_EAUTH;
    *data = (const uint8_t *)body->via.bin.ptr;
    *len = body->via.bin.size;
    return 0;
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
