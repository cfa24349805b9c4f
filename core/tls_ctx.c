/* tls_ctx.c -- wolfSSL contexts with arrpc's policy, made from the certificate, key and CA
 * files, and the shared key that seals session tickets.
 *
 * Policy, the same for server and client: TLS 1.2 minimum and the AEAD suites of tls.h only
 * (Debian's build would otherwise offer TLS 1.1, NULL, RC4 and 3DES). */
#include <wolfssl/options.h> /* first: the build's feature macros */
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "arrpc.h"
#include "tls.h"

/* A PEM private key file larger than this is refused by the ECC key check (a P-521 key in
 * PKCS#8 PEM is under 400 bytes). */
#define TLS_KEY_FILE_MAX 16384u
#define TLS_PUBKEY_DER_MAX 1024u /* a SubjectPublicKeyInfo, as DER */

void arrpc__tls_thread_done(void)
{
#ifdef FP_ECC
    wc_ecc_fp_free();
#endif
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void init_library(void)
{
    init_rc = wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : ARRPC_ETLS;
}

/* wolfSSL_Init once per process, whichever thread gets here first. */
static int tls_init(void)
{
    pthread_once(&init_once, init_library);
    return init_rc;
}

/* ---- session tickets ------------------------------------------------------------------------ */

int arrpc__tls_ticket_key_new(uint8_t key[ARRPC_TLS_TICKET_KEY_SIZE])
{
    return getrandom(key, ARRPC_TLS_TICKET_KEY_SIZE, 0) == ARRPC_TLS_TICKET_KEY_SIZE ? 0
                                                                                     : ARRPC_ESYS;
}

/* Seals (enc) or opens a session ticket in place with the server's shared key: ChaCha20-Poly1305
 * over the ticket, with the key's name, the nonce and the length as associated data. A ticket
 * sealed by another key (another server, or a binary upgrade) is rejected: a full handshake. */
static int ticket_cb(WOLFSSL *ssl, unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                     unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                     unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int enc, unsigned char *ticket,
                     int len, int *out_len, void *ctx)
{
    const uint8_t *k = ctx, *key = k + WOLFSSL_TICKET_NAME_SZ;
    uint8_t aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ + 2];
    (void)ssl;
    if (len < 0 || len > 0xffff) return WOLFSSL_TICKET_RET_REJECT;
    if (enc) {
        memcpy(name, k, WOLFSSL_TICKET_NAME_SZ);
        if (getrandom(iv, WOLFSSL_TICKET_IV_SZ, 0) != WOLFSSL_TICKET_IV_SZ)
            return WOLFSSL_TICKET_RET_FATAL;
        memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
    } else if (memcmp(name, k, WOLFSSL_TICKET_NAME_SZ) != 0) {
        return WOLFSSL_TICKET_RET_REJECT;
    }
    memcpy(aad, name, WOLFSSL_TICKET_NAME_SZ);
    memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);
    aad[sizeof aad - 2] = (uint8_t)(len >> 8);
    aad[sizeof aad - 1] = (uint8_t)len;
    int rc = enc ? wc_ChaCha20Poly1305_Encrypt(key, iv, aad, sizeof aad, ticket, (word32)len,
                                               ticket, mac)
                 : wc_ChaCha20Poly1305_Decrypt(key, iv, aad, sizeof aad, ticket, (word32)len, mac,
                                               ticket);
    if (rc != 0) return enc ? WOLFSSL_TICKET_RET_FATAL : WOLFSSL_TICKET_RET_REJECT;
    *out_len = len;
    return WOLFSSL_TICKET_RET_OK;
}

/* ---- contexts ------------------------------------------------------------------------------- */

/* A file that cannot be opened says why in errno's words, not wolfSSL's "bad file". */
static int readable(const char *path, const char *what, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f) {
        fclose(f);
        return 0;
    }
    snprintf(err, errlen, "cannot read the TLS %s %s: %s", what, path, strerror(errno));
    return ARRPC_ETLS;
}

static int load(int ret, const char *path, const char *what, char *err, size_t errlen)
{
    if (ret == WOLFSSL_SUCCESS) return 0;
    snprintf(err, errlen, "cannot load the TLS %s from %s: not a PEM %s, or unusable", what, path,
             what);
    return ARRPC_ETLS;
}

/* wolfSSL servers pick the first suite of their own list that the client offers. AES-GCM first
 * only when this wolfSSL has its AES-NI code: Debian's is built without it, and there AES-GCM
 * (portable C, GHASH included) costs a worker about 0.35 us per small request against
 * ChaCha20-Poly1305's 0.2 us (docs/performance.md). The same suites either way. */
#ifdef WOLFSSL_AESNI
#define ARRPC_TLS_CIPHERS                                                                          \
    ARRPC_TLS13_AES_SUITES ":" ARRPC_TLS13_CHACHA_SUITES ":" ARRPC_TLS12_AES_SUITES                \
                           ":" ARRPC_TLS12_CHACHA_SUITES
#else
#define ARRPC_TLS_CIPHERS                                                                          \
    ARRPC_TLS13_CHACHA_SUITES ":" ARRPC_TLS13_AES_SUITES ":" ARRPC_TLS12_CHACHA_SUITES             \
                              ":" ARRPC_TLS12_AES_SUITES
#endif

const char *arrpc__tls_library(void)
{
    static char text[128];
#ifdef WOLFSSL_AESNI
    const char *order = "AES-GCM first (this wolfSSL uses AES-NI)";
#else
    const char *order = "ChaCha20-Poly1305 first (this wolfSSL has no AES-NI)";
#endif
    snprintf(text, sizeof text, "wolfSSL %s, %s", wolfSSL_lib_version(), order);
    return text;
}

static WOLFSSL_CTX *policy_ctx(WOLFSSL_METHOD *method, char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx = method ? wolfSSL_CTX_new(method) : NULL;
    if (!ctx) {
        snprintf(err, errlen, "cannot make a TLS context (out of memory?)");
        return NULL;
    }
    if (wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_cipher_list(ctx, ARRPC_TLS_CIPHERS) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "this wolfSSL cannot be limited to TLS 1.2+ with AEAD suites");
        wolfSSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The SubjectPublicKeyInfo of the ECC private key in PEM file path: 1 with its length, 0 when
 * the key is not an ECC key, -1 when the file cannot be read. */
static int ecc_key_spki(const char *path, byte *out, word32 *len)
{
    byte *pem = malloc(2 * TLS_KEY_FILE_MAX), *der = pem + TLS_KEY_FILE_MAX;
    FILE *f = pem ? fopen(path, "rb") : NULL;
    size_t n = f ? fread(pem, 1, TLS_KEY_FILE_MAX, f) : 0;
    if (f) fclose(f);
    int der_len = n > 0 && n < TLS_KEY_FILE_MAX
                      ? wc_KeyPemToDer(pem, (int)n, der, TLS_KEY_FILE_MAX, NULL)
                      : -1;
    ecc_key key;
    word32 idx = 0;
    int rc = der_len > 0 && wc_ecc_init(&key) == 0;
    int ecc = rc && wc_EccPrivateKeyDecode(der, &idx, &key, (word32)der_len) == 0;
    if (ecc && key.type == ECC_PRIVATEKEY_ONLY) ecc = wc_ecc_make_pub(&key, NULL) == 0;
    int spki = ecc ? wc_EccPublicKeyToDer(&key, out, *len, 1) : 0;
    if (rc) wc_ecc_free(&key);
    if (pem) explicit_bzero(pem, 2 * TLS_KEY_FILE_MAX); /* a private key does not linger */
    free(pem);
    if (der_len <= 0) return -1;
    if (spki <= 0) return 0;
    *len = (word32)spki;
    return 1;
}

/* wolfSSL_CTX_check_private_key tells an RSA key from an ECC one, but (in Debian's wolfSSL 5.5)
 * accepts any ECC key of the certificate's curve: compare the public keys ourselves, so that a
 * wrong key fails the start (and arrpcd -t), not every handshake. */
static int ecc_key_matches(const char *cert, const char *key, char *err, size_t errlen)
{
    byte from_key[TLS_PUBKEY_DER_MAX], from_cert[TLS_PUBKEY_DER_MAX];
    word32 key_len = sizeof from_key;
    int cert_len = sizeof from_cert;
    if (ecc_key_spki(key, from_key, &key_len) != 1) return 0; /* not ECC: wolfSSL's check */
    WOLFSSL_X509 *x509 = wolfSSL_X509_load_certificate_file(cert, WOLFSSL_FILETYPE_PEM);
    int ok = x509 &&
             wolfSSL_X509_get_pubkey_buffer(x509, from_cert, &cert_len) == WOLFSSL_SUCCESS &&
             (word32)cert_len == key_len && memcmp(from_cert, from_key, key_len) == 0;
    wolfSSL_X509_free(x509);
    if (ok) return 0;
    snprintf(err, errlen, "the TLS key in %s does not belong to the certificate in %s", key, cert);
    return ARRPC_ETLS;
}

/* The certificate chain and its key, checked to belong together. */
static int load_identity(WOLFSSL_CTX *ctx, const char *cert, const char *key, char *err,
                         size_t errlen)
{
    int rc = readable(cert, "certificate", err, errlen);
    if (rc == 0) rc = readable(key, "key", err, errlen);
    if (rc == 0)
        rc = load(wolfSSL_CTX_use_certificate_chain_file(ctx, cert), cert, "certificate", err,
                  errlen);
    if (rc == 0)
        rc = load(wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM), key, "key", err,
                  errlen);
    if (rc == 0 && wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "the TLS key in %s does not belong to the certificate in %s", key,
                 cert);
        rc = ARRPC_ETLS;
    }
    return rc == 0 ? ecc_key_matches(cert, key, err, errlen) : rc;
}

static int load_cas(WOLFSSL_CTX *ctx, const char *cafile, char *err, size_t errlen)
{
    int rc = readable(cafile, "CA file", err, errlen);
    if (rc == 0)
        rc = load(wolfSSL_CTX_load_verify_locations(ctx, cafile, NULL), cafile, "CA certificate",
                  err, errlen);
    return rc;
}

arrpc__tls_ctx *arrpc__tls_server_ctx(const char *cert, const char *key, const char *client_ca,
                                      const uint8_t *ticket_key, char *err, size_t errlen)
{
    if (tls_init() != 0) {
        snprintf(err, errlen, "wolfSSL_Init failed");
        return NULL;
    }
    WOLFSSL_CTX *ctx = policy_ctx(wolfSSLv23_server_method(), err, errlen);
    int rc = ctx ? load_identity(ctx, cert, key, err, errlen) : ARRPC_ETLS;
    if (rc == 0 && client_ca) rc = load_cas(ctx, client_ca, err, errlen);
    if (rc == 0 && ticket_key &&
        (wolfSSL_CTX_set_TicketEncCb(ctx, ticket_cb) != WOLFSSL_SUCCESS ||
         wolfSSL_CTX_set_TicketEncCtx(ctx, (void *)ticket_key) != WOLFSSL_SUCCESS)) {
        snprintf(err, errlen, "cannot set the TLS session ticket key");
        rc = ARRPC_ETLS;
    }
    if (rc == 0)
        wolfSSL_CTX_set_verify(ctx,
                               client_ca ? WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                         : WOLFSSL_VERIFY_NONE,
                               NULL);
    if (rc != 0 && ctx) {
        wolfSSL_CTX_free(ctx);
        ctx = NULL;
    }
    return (arrpc__tls_ctx *)ctx;
}

arrpc__tls_ctx *arrpc__tls_client_ctx(const arrpc__tls_client_files *f, char *err, size_t errlen)
{
    if (tls_init() != 0) {
        snprintf(err, errlen, "wolfSSL_Init failed");
        return NULL;
    }
    if (!f->cafile) {
        snprintf(err, errlen, "TLS needs a CA file (or the server's certificate, self-signed)");
        return NULL;
    }
    WOLFSSL_CTX *ctx = policy_ctx(wolfSSLv23_client_method(), err, errlen);
    int rc = ctx ? load_cas(ctx, f->cafile, err, errlen) : ARRPC_ETLS;
    if (rc == 0 && f->cert)
        rc = load_identity(ctx, f->cert, f->key ? f->key : f->cert, err, errlen);
    if (rc == 0) {
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
        wolfSSL_CTX_UseSessionTicket(ctx); /* TLS 1.2 resumption without server-side state */
    }
    if (rc != 0 && ctx) {
        wolfSSL_CTX_free(ctx);
        ctx = NULL;
    }
    return (arrpc__tls_ctx *)ctx;
}

void arrpc__tls_ctx_free(arrpc__tls_ctx *ctx)
{
    if (ctx) wolfSSL_CTX_free((WOLFSSL_CTX *)ctx);
}
