/* auth.h -- arrpc 0.5.0's sign envelope: {"arrpc.sign": hex HMAC-SHA256(secret, data), "data":
 * bin}. */
#ifndef ARRPC_CORE_AUTH_H
#define ARRPC_CORE_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

#define ARRPC_SIGN_KEY "arrpc.sign"
#define ARRPC_DATA_KEY "data"
#define ARRPC_SIGN_HEX_LEN 64       /* SHA-256 in lowercase hex, as Python's hexdigest() */
#define ARRPC_AUTH_SECRET_MAX 4096u /* bytes of a shared secret */

/* Writes the lowercase hex HMAC-SHA256 of data under key, NUL-terminated. 0 or ARRPC_EINVAL. */
int arrpc__auth_sign_hex(const uint8_t *key, size_t key_len, const void *data, size_t len,
                         char hex[ARRPC_SIGN_HEX_LEN + 1]);

/* Which SHA-256 an HMAC runs on: AUTO (what arrpc__auth_sign_hex uses) is the CPU's SHA
 * extensions when it has them and they passed a one-time known-answer check, else wolfCrypt. The
 * other two force one path, for tests that compare them. */
typedef enum {
    ARRPC_SHA256_AUTO,
    ARRPC_SHA256_WOLFCRYPT,
    ARRPC_SHA256_HW,
} arrpc__sha256_path;

/* HMAC-SHA256 of data under key into mac. 0, or ARRPC_EINVAL (key over ARRPC_AUTH_SECRET_MAX,
 * data over 4 GiB, a wolfCrypt failure, or ARRPC_SHA256_HW on a CPU without SHA extensions). */
int arrpc__auth_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                            uint8_t mac[32], arrpc__sha256_path path);

/* The parts of a sign envelope, pointing into the bytes it was read from. */
typedef struct {
    const char *sign; /* ARRPC_SIGN_HEX_LEN characters */
    const uint8_t *data;
    size_t len;
} arrpc__auth_envelope;

/* Reads an envelope straight from its bytes when it is packed as arrpc's clients and arrpc 0.5.0
 * (msgpack-python) pack it: a fixmap of the two entries in either order, the keys as fixstr,
 * the signature as a str8 of 64 characters, data as bin8, bin16 or bin32. 1 with its parts and
 * its length in *used when p starts with one whole such envelope; 0 otherwise, and then the
 * decoder and arrpc__auth_open decide (another encoding, other keys, too few bytes yet). */
int arrpc__auth_envelope_at(const uint8_t *p, size_t n, arrpc__auth_envelope *env, size_t *used);

/* 0 when env's signature is the HMAC of its data under key (compared in constant time), else
 * ARRPC_EAUTH. */
int arrpc__auth_verify(const uint8_t *key, size_t key_len, const arrpc__auth_envelope *env);

/* Checks that env is an envelope with exactly the two keys, a 64-character signature and bin
 * data, and that the signature matches the exact data bytes (compared in constant time). On 0,
 * *data and *len point at the signed bytes inside env. Otherwise ARRPC_EAUTH. */
int arrpc__auth_open(const uint8_t *key, size_t key_len, const msgpack_object *env,
                     const uint8_t **data, size_t *len);

/* Reads a shared secret from a file into buf (ARRPC_AUTH_SECRET_MAX + 1 bytes). One trailing
 * "\n" or "\r\n" is not part of it (editors add one). 0, or ARRPC_EINVAL with the reason in err
 * (unreadable, empty, longer than ARRPC_AUTH_SECRET_MAX). */
int arrpc__auth_read_secret(const char *path, uint8_t buf[ARRPC_AUTH_SECRET_MAX + 1], size_t *len,
                            char *err, size_t errlen);

/* Packs the envelope around a packed request. 0, or ARRPC_EINVAL / ARRPC_ENOMEM. */
int arrpc__auth_wrap(const uint8_t *key, size_t key_len, const void *request, size_t len,
                     msgpack_packer *pk);

#endif
