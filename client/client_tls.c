/* client_tls.c -- the client's TLS: options, the handshake under a deadline, the kept session.
 *
 * One session is kept across sends on a connection (0.5.0 handshakes on every send) and resumed
 * after a reconnect: the first successful exchange on a connection saves it (a TLS 1.3 server's
 * ticket arrives before the first reply). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "../core/log.h"
#include "../core/net.h"

static int set_str(char **dst, const char *value)
{
    char *copy = NULL;
    if (value && !(copy = strdup(value))) return ARRPC_ENOMEM;
    free(*dst);
    *dst = copy;
    return 0;
}

/* Files or names changed: the next connect makes a new context; the old session may not fit. */
static int tls_changed(arrpc_client *cli)
{
    if (cli->fd >= 0) return ARRPC_ESTATE;
    arrpc__tls_ctx_free(cli->tls.ctx);
    cli->tls.ctx = NULL;
    arrpc__tls_session_free(cli->tls.session);
    cli->tls.session = NULL;
    return 0;
}

int arrpc_client_set_tls(arrpc_client *cli, const char *cafile, int self_signed)
{
    int rc = cli ? tls_changed(cli) : ARRPC_EINVAL;
    if (rc == 0) rc = set_str(&cli->tls.cafile, cafile);
    if (rc == 0) cli->tls.self_signed = self_signed != 0;
    return rc;
}

int arrpc_client_set_tls_client_cert(arrpc_client *cli, const char *cert, const char *key)
{
    int rc = cli ? tls_changed(cli) : ARRPC_EINVAL;
    if (rc == 0 && cert && !key) rc = ARRPC_EINVAL;
    if (rc == 0) rc = set_str(&cli->tls.cert, cert);
    if (rc == 0) rc = set_str(&cli->tls.key, cert ? key : NULL);
    return rc;
}

int arrpc_client_set_tls_server_name(arrpc_client *cli, const char *name)
{
    int rc = cli ? tls_changed(cli) : ARRPC_EINVAL;
    return rc == 0 ? set_str(&cli->tls.name, name) : rc;
}

void arrpc__client_tls_free(arrpc_client *cli)
{
    tls_changed(cli);
    free(cli->tls.cafile);
    free(cli->tls.cert);
    free(cli->tls.key);
    free(cli->tls.name);
}

void arrpc__client_tls_keep_session(arrpc_client *cli)
{
    if (cli->tls.session_saved) return;
    void *session = arrpc__tls_session_get(&cli->io); /* NULL over TCP */
    if (!session) return;
    arrpc__tls_session_free(cli->tls.session);
    cli->tls.session = session;
    cli->tls.session_saved = 1;
}

static int handshake(arrpc_client *cli, uint64_t deadline_ms, char *why, size_t whylen)
{
    for (;;) {
        int rc = cli->io.ops->handshake(&cli->io, why, whylen);
        if (rc == 1) return 0;
        if (rc < 0) /* the peer went away mid-handshake: worth another try; a refusal is not */
            return rc == ARRPC_ECLOSED ? ARRPC_ECONNECT : ARRPC_ETLS;
        short rev = 0;
        short want = cli->io.want == ARRPC_WANT_WRITE ? POLLOUT : POLLIN;
        int ready = arrpc__client_wait(cli, want, deadline_ms, &rev);
        if (ready == ARRPC_EINTR) return ready;
        if (ready <= 0) {
            snprintf(why, whylen, "%s",
                     ready == 0 ? "the TLS handshake timed out"
                                : "poll failed during the TLS handshake");
            return ARRPC_ECONNECT;
        }
    }
}

int arrpc__client_tls_start(arrpc_client *cli, int fd, uint64_t deadline_ms, char *why,
                            size_t whylen)
{
    if (!cli->tls.cafile) {
        arrpc__transport_tcp(&cli->io, fd);
        return 0;
    }
    if (!cli->tls.ctx) {
        arrpc__tls_client_files files = {.cafile = cli->tls.cafile,
                                         .self_signed = cli->tls.self_signed,
                                         .cert = cli->tls.cert,
                                         .key = cli->tls.key};
        cli->tls.ctx = arrpc__tls_client_ctx(&files, why, whylen);
        if (!cli->tls.ctx) {
            arrpc__transport_tcp(&cli->io, fd);
            return ARRPC_ETLS;
        }
    }
    const char *name = cli->tls.self_signed ? NULL : cli->tls.name ? cli->tls.name : cli->host;
    int rc = arrpc__transport_tls_client(&cli->io, fd, cli->tls.ctx, name, cli->tls.session, why,
                                         whylen);
    if (rc == 0) rc = handshake(cli, deadline_ms, why, whylen);
    cli->tls.session_saved = 0;
    if (rc == 0 && cli->debug) {
        char desc[128];
        arrpc__log("client: TLS with %s:%u: %s", cli->host, (unsigned)cli->port,
                   cli->io.ops->describe(&cli->io, desc, sizeof desc));
    }
    return rc;
}
