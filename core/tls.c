/* tls.c -- TLS streams on wolfSSL behind the transport table: reading ahead, the table's
 * functions, sessions, error texts. Contexts (the policy, the files) are in tls_ctx.c. Every
 * object here is made by the process that uses it: workers after fork, never the master. */
#include <wolfssl/options.h> /* first: the build's feature macros */
#include <wolfssl/error-ssl.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "arrpc.h"
#include "tls.h"

/* ---- error texts ---------------------------------------------------------------------------- */

/* The failures a user can act on, in words; other codes get wolfSSL's own text. `same`: another
 * code with the same meaning, or 0 for none. */
static const struct error_text {
    int code, same;
    const char *text;
} error_texts[] = {
    {ASN_NO_SIGNER_E, 0, "the peer's certificate is not signed by a trusted CA"},
    {ASN_AFTER_DATE_E, 0, "the peer's certificate has expired"},
    {ASN_BEFORE_DATE_E, 0, "the peer's certificate is not valid yet"},
    {DOMAIN_NAME_MISMATCH, IPADDR_MISMATCH, "the server's certificate is not for this host name"},
    {NO_PEER_CERT, 0, "the peer sent no certificate"},
    {VERSION_ERROR, MATCH_SUITE_ERROR,
     "no TLS version or cipher suite in common (TLS 1.2+ with AEAD only)"},
};

/* A fatal alert names its reason when the peer sent one we recorded. */
static void describe_alert(WOLFSSL *ssl, char *buf, size_t len)
{
    WOLFSSL_ALERT_HISTORY h;
    if (ssl && wolfSSL_get_alert_history(ssl, &h) == WOLFSSL_SUCCESS && h.last_rx.code >= 0)
        snprintf(buf, len, "the peer refused the connection with the alert '%s'",
                 wolfSSL_alert_desc_string_long(h.last_rx.code));
    else
        snprintf(buf, len, "the peer refused the connection with a fatal alert");
}

/* The text error_texts has for code e, or NULL. */
static const char *known_error(int e)
{
    for (size_t i = 0; i < sizeof error_texts / sizeof error_texts[0]; i++)
        if (error_texts[i].code == e || (error_texts[i].same && error_texts[i].same == e))
            return error_texts[i].text;
    return NULL;
}

static void describe_error(WOLFSSL *ssl, int e, char *buf, size_t len)
{
    char text[WOLFSSL_MAX_ERROR_SZ];
    const char *known = known_error(e);
    if (known) {
        snprintf(buf, len, "%s", known);
    } else if (e == FATAL_ERROR) {
        describe_alert(ssl, buf, len);
    } else {
        wolfSSL_ERR_error_string_n((unsigned long)e, text, sizeof text);
        snprintf(buf, len, "%s", text);
    }
    size_t used = strlen(buf);
    if (used < len) snprintf(buf + used, len - used, " (wolfSSL error %d)", e);
}

/* ---- reading ahead -------------------------------------------------------------------------- */

/* wolfSSL asks the socket for a record's 5-byte header, then for its body: two recv calls per
 * small request. Reading ahead into a buffer of our own makes that one. Bodies at least as large
 * as the buffer go straight into wolfSSL's. */
#define READ_AHEAD 4096u

typedef struct read_ahead {
    int fd;
    unsigned head, len;
    uint8_t buf[READ_AHEAD];
} read_ahead;

static int recv_result(ssize_t n)
{
    if (n > 0) return (int)n;
    if (n == 0) return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return WOLFSSL_CBIO_ERR_WANT_READ;
    if (errno == EINTR) return WOLFSSL_CBIO_ERR_ISR;
    return errno == ECONNRESET ? WOLFSSL_CBIO_ERR_CONN_RST : WOLFSSL_CBIO_ERR_GENERAL;
}

static int recv_ahead(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    read_ahead *ra = ctx;
    (void)ssl;
    if (ra->head == ra->len) {
        ra->head = ra->len = 0;
        if ((unsigned)sz >= READ_AHEAD) return recv_result(recv(ra->fd, buf, (size_t)sz, 0));
        int n = recv_result(recv(ra->fd, ra->buf, READ_AHEAD, 0));
        if (n <= 0) return n;
        ra->len = (unsigned)n;
    }
    unsigned n = ra->len - ra->head < (unsigned)sz ? ra->len - ra->head : (unsigned)sz;
    memcpy(buf, ra->buf + ra->head, n);
    ra->head += n;
    return (int)n;
}

/* ---- the transport -------------------------------------------------------------------------- */

/* Turns a wolfSSL result that is not a success into the transport's convention. */
static ssize_t tls_result(arrpc__transport *t, int ret)
{
    int e = wolfSSL_get_error(t->tls, ret);
    switch (e) {
    case WOLFSSL_ERROR_WANT_READ:
        t->want = ARRPC_WANT_READ;
        errno = EAGAIN;
        return -1;
    case WOLFSSL_ERROR_WANT_WRITE:
        t->want = ARRPC_WANT_WRITE;
        errno = EAGAIN;
        return -1;
    case WOLFSSL_ERROR_ZERO_RETURN: /* close_notify: the peer ended the stream on purpose */
        t->peer_closed_cleanly = 1;
        return 0;
    case SOCKET_PEER_CLOSED_E: /* EOF without close_notify */
        return 0;
    case SOCKET_ERROR_E:
        errno = errno ? errno : ECONNRESET;
        return -1;
    }
    t->tls_err = e;
    errno = EPROTO;
    return -1;
}

static ssize_t tls_read(arrpc__transport *t, void *buf, size_t len)
{
    errno = 0;
    int n = wolfSSL_read(t->tls, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0) t->want = 0; /* until a read finds nothing: then want says it waits for the socket */
    return n > 0 ? n : tls_result(t, n);
}

/* After WANT_WRITE wolfSSL keeps what it encrypted and expects the same bytes again (more may
 * follow them): conn.c and the client always retry from the first unsent byte. */
static ssize_t tls_write(arrpc__transport *t, const void *buf, size_t len)
{
    errno = 0;
    int n = wolfSSL_write(t->tls, buf, len > INT_MAX ? INT_MAX : (int)len);
    return n > 0 ? n : tls_result(t, n);
}

static int tls_handshake(arrpc__transport *t, char *why, size_t whylen)
{
    errno = 0;
    int ret = wolfSSL_negotiate(t->tls);
    if (ret == WOLFSSL_SUCCESS) return 1;
    if (tls_result(t, ret) < 0 && errno == EAGAIN) return 0;
    if (!t->tls_err) t->tls_err = wolfSSL_get_error(t->tls, ret);
    if (t->tls_err == SOCKET_PEER_CLOSED_E || t->tls_err == WOLFSSL_ERROR_ZERO_RETURN ||
        t->tls_err == SOCKET_ERROR_E) {
        snprintf(why, whylen, "the peer closed the connection during the TLS handshake");
        return ARRPC_ECLOSED;
    }
    describe_error(t->tls, t->tls_err, why, whylen);
    return ARRPC_ETLS;
}

static int tls_has_pending(const arrpc__transport *t)
{
    const read_ahead *ra = wolfSSL_GetIOReadCtx(t->tls);
    return ra->head < ra->len || wolfSSL_has_pending(t->tls);
}

static void tls_shutdown(arrpc__transport *t)
{
    wolfSSL_shutdown(t->tls); /* sends close_notify; we do not wait for the peer's */
    arrpc__transport_half_close(t);
}

static void tls_close(arrpc__transport *t)
{
    free(wolfSSL_GetIOReadCtx(t->tls));
    wolfSSL_free(t->tls);
    t->tls = NULL;
    arrpc__transport_close_fd(t);
}

static const char *tls_last_error(const arrpc__transport *t, char *buf, size_t len)
{
    if (!t->tls || !t->tls_err) return NULL;
    buf[0] = '\0';
    describe_error(t->tls, t->tls_err, buf, len);
    return buf;
}

static const char *tls_describe(const arrpc__transport *t, char *buf, size_t len)
{
    if (!t->tls)
        snprintf(buf, len, "%s", t->ops->name);
    else
        snprintf(buf, len, "%s %s%s", wolfSSL_get_version(t->tls), wolfSSL_get_cipher_name(t->tls),
                 wolfSSL_session_reused(t->tls) ? " (resumed)" : "");
    return buf;
}

/* Under mutual TLS the handshake succeeds only with a certificate the CA verified; without it
 * the server asks for none, so any certificate found here is a verified one. */
static const char *tls_peer_identity(const arrpc__transport *t, char *buf, size_t len)
{
    WOLFSSL_X509 *cert = t->tls ? wolfSSL_get_peer_certificate(t->tls) : NULL;
    if (!cert) return NULL;
    WOLFSSL_X509_NAME *subject = wolfSSL_X509_get_subject_name(cert);
    char *line = subject ? wolfSSL_X509_NAME_oneline(subject, buf, (int)len) : NULL;
    wolfSSL_X509_free(cert); /* a copy: wolfSSL keeps its own */
    return line;
}

/* Once the stream is over (half_close, drain) or torn down (close), TLS is just its socket. */
static const arrpc__transport_ops tls_ops = {
    .name = "tls",
    .can_hand_over = 0, /* the session keys live in this process */
    .read = tls_read,
    .write = tls_write,
    .handshake = tls_handshake,
    .has_pending = tls_has_pending,

    .shutdown = tls_shutdown,
    .half_close = arrpc__transport_half_close,
    .drain = arrpc__transport_drain,
    .close = tls_close,

    .last_error = tls_last_error,
    .describe = tls_describe,
    .peer_identity = tls_peer_identity,
};

static int tls_stream(arrpc__transport *t, int fd, arrpc__tls_ctx *ctx)
{
    *t = (arrpc__transport){.ops = &arrpc__tcp_ops, .fd = fd};
    WOLFSSL *ssl = wolfSSL_new((WOLFSSL_CTX *)ctx);
    read_ahead *ra = malloc(sizeof *ra);
    if (!ssl || !ra || wolfSSL_set_fd(ssl, fd) != WOLFSSL_SUCCESS) {
        wolfSSL_free(ssl);
        free(ra);
        return ARRPC_ENOMEM;
    }
    ra->fd = fd;
    ra->head = ra->len = 0;
    wolfSSL_SSLSetIORecv(ssl, recv_ahead);
    wolfSSL_SetIOReadCtx(ssl, ra); /* after set_fd, which points it at its own fd */
    t->ops = &tls_ops;
    t->tls = ssl;
    return 0;
}

int arrpc__transport_tls_server(arrpc__transport *t, int fd, arrpc__tls_ctx *ctx)
{
    return tls_stream(t, fd, ctx);
}

static int is_ip_literal(const char *name)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

int arrpc__transport_tls_client(arrpc__transport *t, int fd, arrpc__tls_ctx *ctx,
                                const char *check_name, void *session, char *err, size_t errlen)
{
    int rc = tls_stream(t, fd, ctx);
    if (rc != 0) {
        snprintf(err, errlen, "out of memory for a TLS stream");
        return rc;
    }
    WOLFSSL *ssl = t->tls;
    if (check_name && wolfSSL_check_domain_name(ssl, check_name) != WOLFSSL_SUCCESS)
        rc = ARRPC_ETLS;
    if (rc == 0 && check_name && !is_ip_literal(check_name) &&
        wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, check_name,
                       (unsigned short)strlen(check_name)) != WOLFSSL_SUCCESS)
        rc = ARRPC_ETLS;
    if (rc == 0 && session)
        wolfSSL_set_session(ssl,
                            session); /* a session the server no longer knows: full handshake */
    if (rc != 0) snprintf(err, errlen, "cannot set the TLS server name '%s'", check_name);
    return rc;
}

void *arrpc__tls_session_get(arrpc__transport *t)
{
    return t->tls ? wolfSSL_get1_session(t->tls) : NULL;
}

void arrpc__tls_session_free(void *session)
{
    if (session) wolfSSL_SESSION_free(session);
}

int arrpc__tls_session_reused(const arrpc__transport *t)
{
    return t->tls && wolfSSL_session_reused(t->tls);
}
