/* tls.h -- TLS on wolfSSL behind the transport table: contexts with arrpc's policy (TLS 1.2 and
 * 1.3 only, AEAD suites only), streams over nonblocking sockets, sessions for resumption.
 *
 * Contexts read their files when they are made: a worker makes its own after fork, so a reload
 * (which forks new workers) serves what is on disk then. Nothing here forks or knows processes. */
#ifndef ARRPC_CORE_TLS_H
#define ARRPC_CORE_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "transport.h"

/* The suites arrpc offers and accepts: TLS 1.3's, then ECDHE with AES-GCM or ChaCha20-Poly1305.
 * Debian's wolfSSL would otherwise also negotiate NULL, RC4, 3DES, CBC and TLS 1.1 suites.
 * tls_ctx.c orders them (the server's order decides) by what the linked wolfSSL runs fastest. */
#define ARRPC_TLS13_AES_SUITES "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384"
#define ARRPC_TLS13_CHACHA_SUITES "TLS13-CHACHA20-POLY1305-SHA256"
#define ARRPC_TLS12_AES_SUITES                                                                     \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
#define ARRPC_TLS12_CHACHA_SUITES "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

typedef struct arrpc__tls_ctx arrpc__tls_ctx; /* a WOLFSSL_CTX */

/* What a client checks and shows. */
typedef struct arrpc__tls_client_files {
    const char *cafile;     /* CA certificates that may sign the server's (required) */
    int self_signed;        /* cafile is the server's own certificate: no name check (0.5.0) */
    const char *cert, *key; /* the client's certificate for mutual TLS; NULL: none */
} arrpc__tls_client_files;

/* Session tickets are sealed with this key (ChaCha20-Poly1305): a 16-byte name, then the key. */
#define ARRPC_TLS_TICKET_KEY_SIZE 48u

/* A server context: certificate chain, key, and when client_ca is not NULL, mutual TLS (a
 * client must present a certificate signed by a CA in that file). ticket_key: NULL, or
 * ARRPC_TLS_TICKET_KEY_SIZE bytes shared by every worker (and generation) of one server, so that
 * a client resumes its session whichever worker it lands on; it must outlive the context. NULL
 * with the reason in err. */
arrpc__tls_ctx *arrpc__tls_server_ctx(const char *cert, const char *key, const char *client_ca,
                                      const uint8_t *ticket_key, char *err, size_t errlen);
/* Fills a ticket key from the kernel's random source. 0, or ARRPC_ESYS. */
int arrpc__tls_ticket_key_new(uint8_t key[ARRPC_TLS_TICKET_KEY_SIZE]);
arrpc__tls_ctx *arrpc__tls_client_ctx(const arrpc__tls_client_files *f, char *err, size_t errlen);
void arrpc__tls_ctx_free(arrpc__tls_ctx *ctx);
/* Frees what wolfSSL keeps per thread (Debian's build caches ECC points in thread-local memory,
 * FP_ECC): call it on a thread that made TLS handshakes, before it exits. */
void arrpc__tls_thread_done(void);

/* TLS over connected socket fd (which the transport then owns, even on failure). A client gives
 * the name to check the server's certificate against (NULL: no check) and a session to resume
 * (NULL: none). 0, or ARRPC_ENOMEM / ARRPC_ETLS with the reason in err. */
int arrpc__transport_tls_server(arrpc__transport *t, int fd, arrpc__tls_ctx *ctx);
int arrpc__transport_tls_client(arrpc__transport *t, int fd, arrpc__tls_ctx *ctx,
                                const char *check_name, void *session, char *err, size_t errlen);

/* The session of an established client stream, for resuming on the next connection; free it with
 * arrpc__tls_session_free. NULL when there is none. */
void *arrpc__tls_session_get(arrpc__transport *t);
void arrpc__tls_session_free(void *session);
/* True when the stream resumed a session (an abbreviated handshake). */
int arrpc__tls_session_reused(const arrpc__transport *t);
/* The TLS library and the AEAD family it is told to prefer, for --version: "wolfSSL 5.5.4,
 * ChaCha20-Poly1305 first (this wolfSSL has no AES-NI)". */
const char *arrpc__tls_library(void);

#endif
