/* client.h -- the client's state, shared by the files that implement it (client.c, client_io.c,
 * response.c). Users see only the opaque handle in arrpc.h. */
#ifndef ARRPC_CLIENT_CLIENT_H
#define ARRPC_CLIENT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "arrpc.h"
#include "../core/buf.h"
#include "../core/decode.h"
#include "../core/scan.h"
#include "../core/tls.h"
#include "../core/transport.h"
#include "endpoints.h"

#define ARRPC_CLIENT_ERRSTR_MAX 4352u /* a server message of 4096 bytes and our own context */
#define ARRPC_DEFAULT_RETRY_BACKOFF_MS 1000u
/* TCP keepalive on the client's sockets, so a server that vanished without a FIN or RST (a host
 * gone, a cable pulled) is noticed on an idle kept connection: the first probe after IDLE s
 * without traffic (ARRPC_DEFAULT_KEEPALIVE_S in arrpc.h, or
 * arrpc_client_set_keepalive), then every ARRPC_KEEPALIVE_INTERVAL_S (core/net.h), and the
 * connection is dropped after COUNT unanswered. */
#define ARRPC_CLIENT_KEEPALIVE_COUNT 3u

struct arrpc_client {
    arrpc__endpoints eps; /* the servers, at least one; eps.list[0].host names the metrics row */
    const char *host;     /* the endpoint connected to, or tried last: points into eps */
    uint16_t port;
    size_t current;              /* its index in eps */
    int idempotent;              /* requests may run twice: resend those a broken connection lost */
    unsigned keepalive_s;        /* TCP keepalive idle time; 0: off */
    unsigned timeout_ms;         /* bounds one send or batch once connected; 0: none */
    unsigned connect_timeout_ms; /* bounds one connect try; 0: none of our own */
    unsigned tries;              /* con_max_retries: connect tries per send */
    unsigned backoff_ms;         /* sleep step between tries: step, 2 step, 3 step ... */
    size_t max_message;
    unsigned max_depth;
    int debug;
    uint8_t *secret; /* NULL: requests go unsigned */
    size_t secret_len;
    int fd;              /* -1 while not connected */
    arrpc__transport io; /* the stream over fd, TCP or TLS; every read and write goes through it */
    int fresh;           /* connected during the current call */
    struct {
        char *cafile, *cert, *key, *name; /* cafile NULL: plain TCP; name NULL: the host */
        int self_signed;
        arrpc__tls_ctx *ctx; /* made from the files at the first connect */
        void *session;       /* the last connection's session, resumed by the next one */
        int session_saved;   /* taken from the current connection already */
    } tls;
    arrpc__scan *scan;       /* frames replies; also checks requests before they are sent */
    arrpc__decoder *decoder; /* turns a framed reply into objects, under the same limits */
    arrpc__buf in;           /* bytes read and not yet cut into replies */
    size_t scanned;          /* bytes of in already fed to the scanner */
    arrpc__buf out;          /* request bytes not yet written */
    struct arrpc__client_metrics *metrics; /* NULL until metrics are asked for (client_metrics.c) */
    uint64_t spin_ns;     /* arrpc_client_set_spin: longest spin for a reply; 0: never spin */
    unsigned spin_misses; /* spins in a row that ran out before the reply came (client_wait.c) */
    unsigned spin_skips;  /* waits left to sleep through without spinning first */
    int (*interrupt)(void *udata); /* arrpc_client_set_interrupt; NULL: none */
    void *interrupt_udata;
    char errstr[ARRPC_CLIENT_ERRSTR_MAX];
};

/* Records the text of an error and returns its code, so `return arrpc__client_fail(...)`. */
int arrpc__client_fail(arrpc_client *cli, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Forgets the connection and everything queued or half read on it. */
void arrpc__client_disconnect(arrpc_client *cli);

/* client_tls.c: TLS over the freshly connected fd (which cli->io then owns), handshake done by
 * deadline_ms. 0; ARRPC_ETLS for a certificate or policy failure (not worth retrying);
 * ARRPC_ECONNECT when the connection broke or timed out (worth another try); ARRPC_EINTR when the
 * interrupt check stopped it. Reason in why. */
int arrpc__client_tls_start(arrpc_client *cli, int fd, uint64_t deadline_ms, char *why,
                            size_t whylen);
/* After a successful exchange: keep the connection's session for the next reconnect. */
void arrpc__client_tls_keep_session(arrpc_client *cli);
void arrpc__client_tls_free(arrpc_client *cli);

/* Waits for events on the connection until deadline_ms (0: none), asking the interrupt check
 * between slices: 1 (*rev set), 0 at the deadline, ARRPC_EINTR when the check said stop, or
 * ARRPC_ESYS. */
int arrpc__client_wait(arrpc_client *cli, short events, uint64_t deadline_ms, short *rev);
/* Waits as arrpc__client_wait, for the replies of a call once its requests are written: spins
 * first (reads whether the socket has bytes, without sleeping) while that has lately paid off. */
int arrpc__client_wait_reply(arrpc_client *cli, uint64_t deadline_ms, short *rev);
/* Sleeps ms between connect tries: 0, or ARRPC_EINTR when the interrupt check said stop. */
int arrpc__client_sleep(arrpc_client *cli, uint64_t ms);

/* Writes cli->out and reads `count` replies into out[], until deadline_ms (0: none). Every reply
 * is a new response the caller owns. On error the responses read so far are in out[0, *got). */
int arrpc__client_exchange(arrpc_client *cli, size_t count, uint64_t deadline_ms,
                           arrpc_response **out, size_t *got);

/* Cuts every whole reply at the front of cli->in (bytes already read) into out[*got ...], up to
 * count replies; 0 also when the next reply is not whole yet, or an error (invalid reply). */
int arrpc__client_cut_replies(arrpc_client *cli, size_t count, arrpc_response **out, size_t *got);

/* A response from the n bytes of one whole reply (copied), decoded by dec. 0, ARRPC_ENOMEM, or
 * the decoder's error (reason in arrpc__decoder_error). */
int arrpc__response_new(arrpc__decoder *dec, const uint8_t *p, size_t n, arrpc_response **out);
/* The server's message of an error reply (after its prefix); NULL for other replies. */
const char *arrpc__response_message(const arrpc_response *res, size_t *len);

#endif
