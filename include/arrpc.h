/* arrpc.h -- MessagePack RPC over TCP, wire-compatible with the Python arrpc 0.5.0.
 *
 * One public header. Every object is an opaque handle with a create/free pair; optional settings
 * are setters called between _new and the first use. Functions that can fail return 0 or a
 * negative ARRPC_E* code; arrpc_strerror() names it, and each handle keeps the text of its last
 * error (arrpc_server_errstr, arrpc_client_errstr) with the detail the code cannot carry. */
#ifndef ARRPC_H
#define ARRPC_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ARRPC_API __attribute__((visibility("default")))
#else
#define ARRPC_API
#endif

#define ARRPC_VERSION "0.1.0"

/* ---- errors ------------------------------------------------------------------------------- */

/* X(name, value, text): the one table of error codes, shared by server, client and tools. */
#define ARRPC_ERRNO_MAP(X)                                                                         \
    X(OK, 0, "success")                                                                            \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(ECONNECT, -3, "cannot connect to the server")                                                \
    X(EAUTH, -4, "message authentication failed")                                                  \
    X(ETIMEOUT, -5, "timed out")                                                                   \
    X(ERPC, -6, "the remote procedure failed")                                                     \
    X(EPROTO, -7, "invalid MessagePack or protocol violation")                                     \
    X(ETOOBIG, -8, "message larger than the size limit")                                           \
    X(ETOODEEP, -9, "message nested deeper than the depth limit")                                  \
    X(ECLOSED, -10, "connection closed by the peer")                                               \
    X(EIO, -11, "input/output error")                                                              \
    X(ELOAD, -12, "cannot load the handler")                                                       \
    X(ESTATE, -13, "operation not allowed in the current state")                                   \
    X(ESYS, -14, "system call failed")

typedef enum {
#define ARRPC_ERR_ENUM(name, value, text) ARRPC_##name = value,
    ARRPC_ERRNO_MAP(ARRPC_ERR_ENUM)
#undef ARRPC_ERR_ENUM
} arrpc_err;

/* The text of an ARRPC_E* code; "unknown error" for a value not in the table. Never NULL. */
ARRPC_API const char *arrpc_strerror(int err);
/* The code's name without the prefix, e.g. "ETIMEOUT"; "EUNKNOWN" outside the table. */
ARRPC_API const char *arrpc_errname(int err);

/* ---- limits and defaults ------------------------------------------------------------------ */

#define ARRPC_DEFAULT_MAX_MESSAGE (16u * 1024u * 1024u) /* bytes of one request or response */
#define ARRPC_MAX_MESSAGE_LIMIT (1024u * 1024u * 1024u) /* the highest size an option may set */
#define ARRPC_DEFAULT_MAX_DEPTH 64u                     /* nesting of arrays and maps */
#define ARRPC_MAX_DEPTH_LIMIT 256u                      /* the highest depth an option may set */
#define ARRPC_DEFAULT_MAX_CONNECTIONS 10000u            /* per worker; more are accepted, closed */
#define ARRPC_DEFAULT_DRAIN_TIMEOUT_MS 30000u           /* graceful stop: wait for busy clients */
#define ARRPC_DEFAULT_IDLE_TIMEOUT_MS 0u                /* 0: idle connections are kept forever */

/* ---- server ------------------------------------------------------------------------------- */

typedef struct arrpc_server arrpc_server;
typedef struct arrpc_call arrpc_call;

/* A handler answers one request. `request` is valid for this call only (it lives in a per-batch
 * arena). It packs exactly one object into `response` and returns 0, or returns the value of
 * arrpc_call_fail() to answer with an RpcException. Packing nothing answers nil. */
typedef int (*arrpc_handler_fn)(arrpc_call *call, const msgpack_object *request,
                                msgpack_packer *response, void *udata);

/* Fails the call: the client receives "arrpc.error.RpcException: <message>". Returns ARRPC_ERPC,
 * so a handler can `return arrpc_call_fail(call, "no such key: %s", k);`. */
ARRPC_API int arrpc_call_fail(arrpc_call *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* True when the request arrived in a verified signature envelope. */
ARRPC_API int arrpc_call_signed(const arrpc_call *call);

/* A server for host:port answering with `handler`. Returns NULL only when out of memory. */
ARRPC_API arrpc_server *arrpc_server_new(const char *host, uint16_t port, arrpc_handler_fn handler,
                                         void *udata);
ARRPC_API void arrpc_server_free(arrpc_server *srv);

/* Optional settings, before arrpc_server_run. Each returns 0 or ARRPC_EINVAL / ARRPC_ESTATE. */
ARRPC_API int arrpc_server_set_handler_name(arrpc_server *srv, const char *name); /* metrics */
ARRPC_API int arrpc_server_set_auth_secret(arrpc_server *srv, const void *secret, size_t len);
ARRPC_API int arrpc_server_set_max_message(arrpc_server *srv, size_t bytes);
ARRPC_API int arrpc_server_set_max_depth(arrpc_server *srv, unsigned depth);
ARRPC_API int arrpc_server_set_max_connections(arrpc_server *srv, unsigned count);
ARRPC_API int arrpc_server_set_drain_timeout(arrpc_server *srv, unsigned ms);
ARRPC_API int arrpc_server_set_idle_timeout(arrpc_server *srv, unsigned ms);
ARRPC_API int arrpc_server_set_debug(arrpc_server *srv, int on);

/* Binds the listening socket now, so that arrpc_server_port() is known before running; run
 * binds by itself when this was not called. */
ARRPC_API int arrpc_server_bind(arrpc_server *srv);
/* Binds if needed, then serves in the calling thread until arrpc_server_stop. Returns 0 after a stop, or
 * an error (bind failure...) with the detail in arrpc_server_errstr. */
ARRPC_API int arrpc_server_run(arrpc_server *srv);
/* Asks a running server to stop: no new connections, every request already read is answered,
 * then connections close (busy ones after at most the drain timeout). Async-signal-safe and
 * thread-safe: it may be called from a signal handler or another thread. */
ARRPC_API void arrpc_server_stop(arrpc_server *srv);
/* The port the server listens on (useful after binding port 0); 0 before it is bound. */
ARRPC_API uint16_t arrpc_server_port(const arrpc_server *srv);
ARRPC_API const char *arrpc_server_errstr(const arrpc_server *srv);

/* ---- client ------------------------------------------------------------------------------- */

typedef struct arrpc_client arrpc_client;
typedef struct arrpc_response arrpc_response;

#define ARRPC_DEFAULT_CON_MAX_RETRIES 5u /* connect tries, 1 s, 2 s, 3 s ... apart */

/* A client for host:port. Nothing is connected until the first send. NULL when out of memory. */
ARRPC_API arrpc_client *arrpc_client_new(const char *host, uint16_t port);
ARRPC_API void arrpc_client_free(arrpc_client *cli);

ARRPC_API int arrpc_client_set_timeout(arrpc_client *cli, unsigned ms); /* 0: none (default) */
ARRPC_API int arrpc_client_set_connect_timeout(arrpc_client *cli, unsigned ms); /* per try */
ARRPC_API int arrpc_client_set_con_max_retries(arrpc_client *cli, unsigned tries);
ARRPC_API int arrpc_client_set_retry_backoff(arrpc_client *cli, unsigned step_ms); /* 1000 */
ARRPC_API int arrpc_client_set_auth_secret(arrpc_client *cli, const void *secret, size_t len);
ARRPC_API int arrpc_client_set_max_message(arrpc_client *cli, size_t bytes);
ARRPC_API int arrpc_client_set_max_depth(arrpc_client *cli, unsigned depth);
ARRPC_API int arrpc_client_set_debug(arrpc_client *cli, int on);

/* Sends one packed request (`len` bytes holding exactly one MessagePack object) and waits for
 * its reply. On 0, *out holds the reply (free it with arrpc_response_free). On ARRPC_ERPC and
 * ARRPC_EAUTH the server's message is in arrpc_client_errstr. */
ARRPC_API int arrpc_client_send(arrpc_client *cli, const void *request, size_t len,
                                arrpc_response **out);
/* Sends `count` packed requests pipelined on the connection; out[i] is the reply to the i-th.
 * A request the server failed has out[i] holding its error string response; the call returns
 * the first transport error, if any, after which no out[] entry is set. */
ARRPC_API int arrpc_client_send_batch(arrpc_client *cli, const void *const *requests,
                                      const size_t *lens, size_t count, arrpc_response **out);
ARRPC_API const char *arrpc_client_errstr(const arrpc_client *cli);
/* Closes the connection; the next send reconnects. */
ARRPC_API void arrpc_client_close(arrpc_client *cli);

/* A reply: the decoded object and the raw bytes it was decoded from. */
ARRPC_API const msgpack_object *arrpc_response_object(const arrpc_response *res);
ARRPC_API const void *arrpc_response_data(const arrpc_response *res, size_t *len);
/* For replies in a batch: ARRPC_OK, ARRPC_ERPC or ARRPC_EAUTH, from the error-string form. */
ARRPC_API int arrpc_response_status(const arrpc_response *res);
ARRPC_API void arrpc_response_free(arrpc_response *res);

#ifdef __cplusplus
}
#endif
#endif
