/* auth.c -- the sign envelope: build it, and verify it in constant time (wolfCrypt HMAC). */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "arrpc.h"

int arrpc__auth_sign_hex(const uint8_t *key, size_t key_len, const void *data, size_t len,
                         char hex[ARRPC_SIGN_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    uint8_t mac[WC_SHA256_DIGEST_SIZE];
    Hmac hmac;
    if (key_len > ARRPC_AUTH_SECRET_MAX || len > UINT32_MAX)
        return ARRPC_EINVAL;
    if (wc_HmacInit(&hmac, NULL, INVALID_DEVID) != 0)
        return ARRPC_EINVAL;
    int ok = wc_HmacSetKey(&hmac, WC_SHA256, key, (word32)key_len) == 0 &&
             wc_HmacUpdate(&hmac, data, (word32)len) == 0 && wc_HmacFinal(&hmac, mac) == 0;
    wc_HmacFree(&hmac);
    if (!ok)
        return ARRPC_EINVAL;
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
    if (env->type != MSGPACK_OBJECT_MAP || env->via.map.size != 2)
        return ARRPC_EAUTH;
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
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
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
    if (rc != 0)
        return rc;
    int failed = msgpack_pack_map(pk, 2) ||
                 msgpack_pack_str_with_body(pk, ARRPC_SIGN_KEY, strlen(ARRPC_SIGN_KEY)) ||
                 msgpack_pack_str_with_body(pk, hex, ARRPC_SIGN_HEX_LEN) ||
                 msgpack_pack_str_with_body(pk, ARRPC_DATA_KEY, strlen(ARRPC_DATA_KEY)) ||
                 msgpack_pack_bin_with_body(pk, request, len);
    return failed ? ARRPC_ENOMEM : 0;
}
