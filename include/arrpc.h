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
    X(ESYS, -14, "system call failed")                                                             \
    X(ETLS, -15, "TLS handshake or certificate verification failed")                               \
    X(EINTR, -16, "interrupted by the caller's check")

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
/* Nesting of arrays and maps, empty ones included. Our own decoder (not msgpack-c's, which stops
 * at 32) keeps a stack of 16 bytes per level of the limit, and the framing scanner 8 bytes per
 * level on every connection: so a modest default, and a ceiling for those who need more. */
#define ARRPC_DEFAULT_MAX_DEPTH 128u
#define ARRPC_MAX_DEPTH_LIMIT 10000u
#define ARRPC_DEFAULT_MAX_CONNECTIONS 10000u  /* per worker; more are accepted, closed */
#define ARRPC_DEFAULT_DRAIN_TIMEOUT_MS 30000u /* graceful stop: wait for busy clients */
#define ARRPC_MAX_WORKERS 128u                /* worker processes (and listening sockets) */
#define ARRPC_MAX_THREADS 64u /* handler threads per worker (arrpc_server_set_threads) */
#define ARRPC_DEFAULT_HANDLER_TIMEOUT_MS 30000u       /* pre-fork: a stuck worker is replaced */
#define ARRPC_DEFAULT_IDLE_TIMEOUT_MS 0u              /* 0: idle connections are kept forever */
#define ARRPC_DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS 10000u /* a TLS handshake must finish by then */
#define ARRPC_DEFAULT_TCP_KEEPALIVE_S 60u       /* idle seconds before the first keepalive probe */
#define ARRPC_DEFAULT_REQUEST_TIMEOUT_MS 30000u /* a request begun must arrive whole by then */
#define ARRPC_DEFAULT_WRITE_TIMEOUT_MS 30000u   /* unread replies: closed after this long */

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
/* The client's address as "IP:PORT" ("[IPv6]:PORT"), as the connection was accepted. Valid for
 * the call only, or, when asked after arrpc_call_defer, until the deferred call is answered. */
ARRPC_API const char *arrpc_call_peer(const arrpc_call *call);
/* Under mutual TLS, the subject of the client's verified certificate on one line, e.g.
 * "/O=Example/CN=client" (at most 511 bytes; longer ones are cut); NULL without TLS or without
 * a client certificate. Valid as arrpc_call_peer's answer is. */
ARRPC_API const char *arrpc_call_tls_peer(const arrpc_call *call);

/* A handler's per-process lifecycle (optional). init runs once in each worker process after it
 * is forked, before it accepts (with 0 workers: once, before serving), with the argument set by
 * arrpc_server_set_handler_lifecycle (NULL when none). *udata starts as the udata given to
 * arrpc_server_new (NULL for a plugin); what init leaves there is passed to every call of the
 * handler and to fini. A non-zero return is a failed start: the server does not serve (a failed
 * SIGHUP reload keeps the old workers serving), and the log names init and the value. fini runs
 * once when that process stops serving cleanly (stop, reload, scale-down), never after a crash or
 * SIGKILL, and only when init succeeded. */
typedef int (*arrpc_handler_init_fn)(const char *arg, void **udata);
typedef void (*arrpc_handler_fini_fn)(void *udata);
/* Whether a handler thread woken now could start running a call (optional; only with handler
 * threads). A worker wakes another thread for a call that has queued longer than the patience
 * (100 us) behind running calls, on the assumption that those calls wait; a handler whose calls
 * all need one lock (Python's GIL) knows better: 0 means "a thread woken now would only wait",
 * and the worker asks again later, after 0.1 ms, then twice as long each time, up to 2 ms. It
 * runs on the loop's thread, gets the handler's udata (after init), and must be cheap. */
typedef int (*arrpc_handler_wake_check_fn)(void *udata);

/* ---- deferred replies: answering a call later, from any thread ---------------------------- */

typedef struct arrpc_deferred arrpc_deferred;

/* Takes the call out of the handler: once the handler returns, the connection goes on with its
 * next request, and this call is answered when arrpc_deferred_reply or arrpc_deferred_fail is
 * called, from any thread; replies still reach the client in request order. Whatever the
 * handler packs or returns after deferring is ignored. Calling it twice in one call gives the
 * same handle. NULL when out of memory (answer the call normally then).
 *
 * Answer each handle exactly once: the answer frees it. An answer that comes after the handler
 * timeout (arrpc_server_set_handler_timeout: the client got "arrpc.error.RpcException: handler
 * timed out") or after the client went away is dropped. A second answer to a handle is refused
 * with ARRPC_ESTATE while the worker remembers it (its last ARRPC_DEFERRED_QUARANTINE answered
 * handles, 1024), and is undefined after that, like a second free(). */
ARRPC_API arrpc_deferred *arrpc_call_defer(arrpc_call *call);
/* Answers with `len` bytes of one packed MessagePack object (copied; checked by the worker like
 * an inline reply: one object within the size limit, or the client gets an RpcException). 0,
 * ARRPC_EINVAL, ARRPC_ESTATE (already answered) or ARRPC_ENOMEM (answered with an error). */
ARRPC_API int arrpc_deferred_reply(arrpc_deferred *d, const void *packed, size_t len);
/* Answers "arrpc.error.RpcException: <message>". 0, ARRPC_EINVAL or ARRPC_ESTATE. */
ARRPC_API int arrpc_deferred_fail(arrpc_deferred *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A server for host:port answering with `handler` (NULL when a plugin is set instead). Returns
 * NULL only when out of memory. */
ARRPC_API arrpc_server *arrpc_server_new(const char *host, uint16_t port, arrpc_handler_fn handler,
                                         void *udata);
ARRPC_API void arrpc_server_free(arrpc_server *srv);

/* Optional settings, before arrpc_server_run. Each returns 0 or ARRPC_EINVAL / ARRPC_ESTATE. */
/* The handler's name in metrics (handler_func); default "handler", or a plugin's symbol. */
ARRPC_API int arrpc_server_set_handler_name(arrpc_server *srv, const char *name);
ARRPC_API int arrpc_server_set_auth_secret(arrpc_server *srv, const void *secret, size_t len);
ARRPC_API int arrpc_server_set_max_message(arrpc_server *srv, size_t bytes);
ARRPC_API int arrpc_server_set_max_depth(arrpc_server *srv, unsigned depth);
ARRPC_API int arrpc_server_set_max_connections(arrpc_server *srv, unsigned count);
ARRPC_API int arrpc_server_set_drain_timeout(arrpc_server *srv, unsigned ms);
ARRPC_API int arrpc_server_set_idle_timeout(arrpc_server *srv, unsigned ms);
/* A request whose first byte came this long ago and that is still not whole (a slowloris) gets
 * "arrpc.error.RpcException: request not completed in time" and its connection is closed.
 * 0: never; default ARRPC_DEFAULT_REQUEST_TIMEOUT_MS. */
ARRPC_API int arrpc_server_set_request_timeout(arrpc_server *srv, unsigned ms);
/* A connection with replies pending of which the client took no byte for this long (it sends
 * but does not read) is closed. 0: never; default ARRPC_DEFAULT_WRITE_TIMEOUT_MS. */
ARRPC_API int arrpc_server_set_write_timeout(arrpc_server *srv, unsigned ms);
ARRPC_API int arrpc_server_set_debug(arrpc_server *srv, int on);
/* The handler from a plugin, "PATH.so[:SYMBOL]" (default symbol arrpc_handler) or a built-in
 * name ("echo"). Each worker loads it when it starts, so a reload serves the file on disk. */
ARRPC_API int arrpc_server_set_handler_plugin(arrpc_server *srv, const char *spec);
/* The handler's init and fini (either may be NULL) and init's argument, copied (NULL: none).
 * With a plugin (arrpc_server_set_handler_plugin "PATH.so:SYMBOL"), init and fini are instead
 * the plugin's SYMBOL_init and SYMBOL_fini when it has them (arrpc_handler_init and
 * arrpc_handler_fini for the default symbol); arg is given to either. A failed init makes
 * arrpc_server_run (0 workers) return ARRPC_ELOAD, with "<init> returned <value>" in
 * arrpc_server_errstr. 0, ARRPC_ESTATE (running), ARRPC_ENOMEM. */
ARRPC_API int arrpc_server_set_handler_lifecycle(arrpc_server *srv, arrpc_handler_init_fn init,
                                                 arrpc_handler_fini_fn fini, const char *arg);
/* The handler's wake check (see arrpc_handler_wake_check_fn; NULL: none, the default). With a
 * plugin it is instead the plugin's SYMBOL_wake_check when it has one. 0 or ARRPC_ESTATE. */
ARRPC_API int arrpc_server_set_handler_wake_check(arrpc_server *srv,
                                                  arrpc_handler_wake_check_fn check);
/* A secret read from a file (one trailing newline ignored), re-read on every reload (SIGHUP). */
ARRPC_API int arrpc_server_set_auth_secret_file(arrpc_server *srv, const char *path);

/* TLS (wolfSSL; TLS 1.2 and 1.3, AEAD cipher suites only). cert: a PEM certificate chain, key:
 * its PEM private key; client_ca: NULL, or PEM CA certificates, and then every client must present
 * a certificate they signed (mutual TLS). Each worker reads the files when it starts, so SIGHUP
 * serves the files on disk then; a file that cannot be used makes the start (or the reload) fail.
 * A NULL cert turns TLS off. Connections over TLS are never handed to another worker on reload:
 * they stay with the old one until they close, or until the drain timeout, after which each is
 * closed at its next idle moment (close_notify; arrpc's client then reconnects by itself). */
ARRPC_API int arrpc_server_set_tls(arrpc_server *srv, const char *cert, const char *key,
                                   const char *client_ca);
/* A TLS handshake not finished this long after the connection was accepted is closed. Default
 * ARRPC_DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS; at least 1. */
ARRPC_API int arrpc_server_set_tls_handshake_timeout(arrpc_server *srv, unsigned ms);

/* PROXY protocol (v1 and v2) from balancers: `ranges` is a comma-separated list of address
 * ranges ("10.0.0.0/8,fd00::/8"; a bare address is one host). A connection from an address in
 * them must begin with a PROXY header, read before anything else (before the TLS handshake);
 * the client address it carries then stands for the peer in metrics, logs and
 * arrpc_call_peer. A header that is missing, malformed, too long, or not whole within the TLS
 * handshake timeout closes the connection (logged, counted in arrpc_server_errors_total by a
 * proxy_* reason). Connections from other addresses must not send one: one whose first bytes
 * are a PROXY signature is closed the same way (reason proxy_untrusted); any other is served as
 * usual. NULL: off (the default). 0, ARRPC_EINVAL (a bad range, the reason in
 * arrpc_server_errstr), ARRPC_ESTATE. */
ARRPC_API int arrpc_server_set_proxy_protocol(arrpc_server *srv, const char *ranges);
/* Connection aging: a connection older than ms plus its own random share of jitter_ms (drawn
 * when it opens, uniform in [0, jitter_ms]) is closed at its next idle moment (everything it
 * sent answered and written, no call pending), so that long-lived connections spread over hosts
 * a balancer added. A request sent just as the connection closes gets no reply: the client must
 * reconnect and may resend it only if it is safe to. 0: never (the default). */
ARRPC_API int arrpc_server_set_max_connection_age(arrpc_server *srv, unsigned ms,
                                                  unsigned jitter_ms);
/* TCP keepalive on accepted connections: the first probe after `seconds` without traffic, then
 * one every 10 s; 6 unanswered probes end the connection. Finds clients that vanished without a
 * FIN (a host gone, a NAT entry dropped). 0: off; at most 32767; default
 * ARRPC_DEFAULT_TCP_KEEPALIVE_S. */
ARRPC_API int arrpc_server_set_tcp_keepalive(arrpc_server *srv, unsigned seconds);

/* Process model. 0 workers (the default): the calling process serves, in one epoll loop.
 * N >= 1: a pre-fork master supervises N worker processes that share the port with
 * SO_REUSEPORT, and answers SIGHUP (reload), SIGUSR2 (binary upgrade), SIGTERM/SIGINT
 * (graceful stop), SIGQUIT, SIGTTIN/SIGTTOU (one worker more/fewer); see docs/operations.md.
 * With workers, the handler runs in the worker processes: state it changes is theirs. */
ARRPC_API int arrpc_server_set_workers(arrpc_server *srv, unsigned count);
/* Handler threads per worker (at most ARRPC_MAX_THREADS; default 0). With 0 a handler runs in
 * the worker's event loop: the fastest path for short calls, but a call that waits holds up
 * every connection of that worker. With N > 0 calls run on N threads while the loop goes on
 * reading, writing and accepting: a slow call holds up only its own connection. A connection's
 * requests are still handled one at a time and answered in order; calls of different
 * connections run in parallel, so the handler (and its udata) must be thread-safe. */
ARRPC_API int arrpc_server_set_threads(arrpc_server *srv, unsigned count);
/* Pre-fork: a worker busy in one handler call (on any of its threads) longer than this is killed
 * and replaced (SIGABRT, then SIGKILL). Any mode: a deferred call unanswered this long is
 * answered "arrpc.error.RpcException: handler timed out" and its late answer dropped.
 * 0 disables; default ARRPC_DEFAULT_HANDLER_TIMEOUT_MS. */
ARRPC_API int arrpc_server_set_handler_timeout(arrpc_server *srv, unsigned ms);
/* Pre-fork only: the master serves Prometheus metrics (the arrpc 0.5.0 names and labels, plus
 * a latency histogram and the master's own) at http://host:port/metrics, and /healthz and
 * /readyz for orchestrators. NULL host: off (the default). The original's port was 9095. */
ARRPC_API int arrpc_server_set_metrics(arrpc_server *srv, const char *host, uint16_t port);
/* Pre-fork only: on SIGTERM, /readyz fails at once but requests are served this long before the
 * drain starts (Kubernetes removes endpoints while it signals). Needs metrics. Default 0. */
ARRPC_API int arrpc_server_set_pre_drain(arrpc_server *srv, unsigned ms);
/* Pre-fork only: recycling, against slow leaks (all off by default). A worker is replaced once
 * it has answered `requests` plus a random number up to `jitter` of requests (drawn per worker,
 * so workers do not all go at once; requests 0: never), or lived `ms`
 * (arrpc_server_set_max_worker_lifetime; 0: never), or its resident memory reached `bytes`
 * (arrpc_server_set_max_worker_rss, read from /proc about twice a second while it serves;
 * 0: never). A replacement starts in its place and, once it accepts, the old worker hands
 * it every plain-TCP connection at a request boundary as on a reload (SIGHUP): no request fails,
 * no connection closes. TLS connections stay with the old worker until they close or the drain
 * timeout, as on a reload. One worker is recycled at a time; each counts in
 * arrpc_server_worker_restarts_total{cause="recycle"}. See docs/operations.md. */
ARRPC_API int arrpc_server_set_max_requests(arrpc_server *srv, uint64_t requests, uint64_t jitter);
ARRPC_API int arrpc_server_set_max_worker_lifetime(arrpc_server *srv, unsigned ms);
ARRPC_API int arrpc_server_set_max_worker_rss(arrpc_server *srv, uint64_t bytes);
/* Pre-fork only: the master's pid, written atomically, removed at exit; renamed PATH.oldbin
 * during a binary upgrade. */
ARRPC_API int arrpc_server_set_pid_file(arrpc_server *srv, const char *path);

/* Pre-fork only: fn runs in the master on every SIGHUP, before the new generation starts, and
 * may call this server's setters again (refused otherwise once the server runs). A reload
 * changes what the new generation is made of: the handler plugin and its init argument,
 * limits and timeouts, threads, debug, the TLS files, the secret file, the handler timeout,
 * pre-drain, and the worker count (never to or from 0). The address, the metrics address, the
 * pid file and whether TLS is on stay as the server started (arrpc_server_set_tls refuses to
 * turn TLS on or off in fn: handed-over plain connections cannot become TLS ones). A non-zero
 * return abandons the reload and the serving generation goes on; setters fn called before it
 * failed stay applied for workers started later. fn runs in the master's only thread: it must
 * not block for long. NULL: none (the default). */
typedef int (*arrpc_server_reload_fn)(arrpc_server *srv, void *udata);
ARRPC_API int arrpc_server_set_reload_hook(arrpc_server *srv, arrpc_server_reload_fn fn,
                                           void *udata);
/* The access log: one line per request, including requests that never reached the handler
 * (invalid, too large, bad signature, timed out), with the time (RFC 3339, UTC, microseconds),
 * peer, handler name, bytes in and out, duration in microseconds, outcome ("ok" or the reason
 * the metrics count the error under), signed, tls and the worker's pid; docs/operations.md.
 * Each worker opens `path` itself (O_APPEND, created 0640) and writes whole lines once per
 * event-loop round; "-" is standard output. NULL path: off (the default). */
typedef enum { ARRPC_ACCESS_LOG_JSON, ARRPC_ACCESS_LOG_LOGFMT } arrpc_access_log_format;
ARRPC_API int arrpc_server_set_access_log(arrpc_server *srv, const char *path,
                                          arrpc_access_log_format format);
/* After the log file was renamed: every worker writes what it holds to the old file and opens
 * `path` anew (SIGUSR1 to the master does the same). Async-signal-safe and thread-safe, like
 * arrpc_server_stop. Without an access log it has no effect; before the server runs, the file
 * is opened at start anyway. */
ARRPC_API void arrpc_server_reopen_access_log(arrpc_server *srv);

/* Binds the listening socket now, so that arrpc_server_port() is known before running; run
 * binds by itself when this was not called. */
ARRPC_API int arrpc_server_bind(arrpc_server *srv);
/* Binds if needed, then serves in the calling thread until arrpc_server_stop. Returns 0 after a
 * stop, or an error (bind failure...) with the detail in arrpc_server_errstr. */
ARRPC_API int arrpc_server_run(arrpc_server *srv);
/* Starts the server in the background and returns once it accepts connections: a thread with
 * 0 workers, a master child process otherwise (arrpc 0.5.0's start(background=True)). */
ARRPC_API int arrpc_server_start(arrpc_server *srv);
/* Waits for a background server to finish after arrpc_server_stop; 0 when it ended cleanly. */
ARRPC_API int arrpc_server_wait(arrpc_server *srv);
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

/* A client for host:port. Nothing is connected until the first send. NULL when out of memory.
 * A client is used by one thread at a time. */
ARRPC_API arrpc_client *arrpc_client_new(const char *host, uint16_t port);
/* A client for several servers: "HOST:PORT[,HOST:PORT...]" (at most 64; IPv6 as "[ADDR]:PORT").
 * Each connect takes the next endpoint in turn that is not in back-off (one that refused or
 * broke is skipped for 100 ms, doubling up to 5 s, cleared by a successful connect; when all are
 * in back-off, the one whose back-off ends first). A name is resolved at every connect and each
 * of its addresses tried. con_max_retries then counts rounds over the list (one try per endpoint,
 * the retry back-off between rounds). TLS checks each server's certificate against the host of
 * its own entry (unless arrpc_client_set_tls_server_name). The metrics' remote_address is the
 * first entry's host. NULL on a bad list (reason in err, errlen bytes; err may be NULL) or when
 * out of memory. docs/client-endpoints.md tells the whole story. */
ARRPC_API arrpc_client *arrpc_client_new_endpoints(const char *endpoints, char *err, size_t errlen);
ARRPC_API void arrpc_client_free(arrpc_client *cli);

/* Options; each returns 0 or ARRPC_EINVAL (ARRPC_ESTATE for limits while connected). The call
 * timeout bounds one send or batch from the first byte written to the last reply read; the
 * connect timeout bounds each connect try (not the back-off sleeps); both hold across
 * reconnects. */
ARRPC_API int arrpc_client_set_timeout(arrpc_client *cli, unsigned ms); /* 0: none (default) */
ARRPC_API int arrpc_client_set_connect_timeout(arrpc_client *cli, unsigned ms);    /* 0: none */
ARRPC_API int arrpc_client_set_con_max_retries(arrpc_client *cli, unsigned tries); /* >= 1 */
ARRPC_API int arrpc_client_set_retry_backoff(arrpc_client *cli, unsigned step_ms); /* 1000 */
ARRPC_API int arrpc_client_set_auth_secret(arrpc_client *cli, const void *secret, size_t len);
ARRPC_API int arrpc_client_set_max_message(arrpc_client *cli, size_t bytes); /* each way */
/* 1 .. ARRPC_MAX_DEPTH_LIMIT; ARRPC_DEFAULT_MAX_DEPTH by default. */
ARRPC_API int arrpc_client_set_max_depth(arrpc_client *cli, unsigned depth);
ARRPC_API int arrpc_client_set_debug(arrpc_client *cli, int on);
/* on: every request of this client may safely run twice (arrpc 0.5.0 had no such notion; off
 * by default). Then a request that got no byte of its reply because the connection closed,
 * was reset or failed is sent once more on a new connection (the next endpoint, when there are
 * several); in a batch, the requests from the first unanswered one on, in order. Off, nothing
 * is ever resent and such a send fails with ARRPC_ECLOSED as before. Timeouts are never resent. */
ARRPC_API int arrpc_client_set_idempotent(arrpc_client *cli, int on);
#define ARRPC_DEFAULT_KEEPALIVE_S 30u            /* arrpc_client_set_keepalive */
#define ARRPC_CLIENT_KEEPALIVE_IDLE_MAX_S 32767u /* Linux's limit for TCP_KEEPIDLE */
/* TCP keepalive on the client's connections: the first probe after idle_s seconds without
 * traffic (default ARRPC_DEFAULT_KEEPALIVE_S), then every 10 s, dropped after 3 unanswered; 0
 * turns it off. Takes effect at the next connect. ARRPC_EINVAL above
 * ARRPC_CLIENT_KEEPALIVE_IDLE_MAX_S. */
ARRPC_API int arrpc_client_set_keepalive(arrpc_client *cli, unsigned idle_s);
/* How long a send may spin for its reply before it sleeps. Waking a sleeping thread when the
 * reply comes costs tens of microseconds on many machines (and virtual machines), often more
 * than a server on the same host or rack takes to answer: a send that reads for its reply
 * without sleeping, for at most us microseconds, then sleeps in poll as before, makes sequential
 * calls to such a server up to twice as fast, for client CPU time it would otherwise spend asleep.
 * The client spins only while its recent waits (a moving average of the last few) were shorter
 * than us: against a server that answers slower it sleeps at once and costs nothing more. 0
 * never spins; default ARRPC_DEFAULT_CLIENT_SPIN_US, 0 on a machine with one online CPU (the
 * spin would take the CPU the server needs); at most ARRPC_CLIENT_SPIN_MAX_US. */
#define ARRPC_DEFAULT_CLIENT_SPIN_US 50u
#define ARRPC_CLIENT_SPIN_MAX_US 10000u
ARRPC_API int arrpc_client_set_spin(arrpc_client *cli, unsigned us);
/* How often a waiting send calls the interrupt check (arrpc_client_set_interrupt). */
#define ARRPC_CLIENT_INTERRUPT_POLL_MS 100u
/* check(udata), when set, is called at least every ARRPC_CLIENT_INTERRUPT_POLL_MS while a send
 * or batch waits for the server (its replies, the TLS handshake, the back-off sleep between
 * connect tries; not inside one connect try, which the connect timeout bounds); a nonzero
 * return abandons the call with ARRPC_EINTR and closes the connection (the request may have
 * run). For callers whose signal handlers only set a flag, such as Python's (Ctrl-C must raise
 * KeyboardInterrupt while a send waits). NULL check: never interrupted (the default). */
ARRPC_API int arrpc_client_set_interrupt(arrpc_client *cli, int (*check)(void *udata), void *udata);

/* TLS to the server (TLS 1.2 and 1.3, AEAD suites only). cafile: PEM CA certificates the
 * server's certificate must be signed by, and then its name must match the name set with
 * arrpc_client_set_tls_server_name (default: the host given to arrpc_client_new). self_signed:
 * cafile is the server's own certificate and no name is checked (arrpc 0.5.0's tls_self_signed).
 * NULL cafile turns TLS off. One TLS session is kept across sends, and resumed when the client
 * reconnects. A handshake or certificate failure is ARRPC_ETLS with the reason in
 * arrpc_client_errstr, and is not retried. */
ARRPC_API int arrpc_client_set_tls(arrpc_client *cli, const char *cafile, int self_signed);
/* The client's own certificate chain and key (PEM files) for servers that ask for one. */
ARRPC_API int arrpc_client_set_tls_client_cert(arrpc_client *cli, const char *cert,
                                               const char *key);
/* The name the server's certificate must carry (DNS name or IP address); also sent as SNI. */
ARRPC_API int arrpc_client_set_tls_server_name(arrpc_client *cli, const char *name);

/* Sends one packed request (`len` bytes holding exactly one MessagePack object) and waits for
 * its reply. On 0, *out holds the reply (free it with arrpc_response_free); otherwise *out is
 * NULL. On ARRPC_ERPC and ARRPC_EAUTH the server's message is in arrpc_client_errstr.
 * Errors: ARRPC_EINVAL (not one valid object: nothing is sent), ARRPC_ECONNECT, ARRPC_ETIMEOUT,
 * ARRPC_ECLOSED (the server closed the connection before replying: the request may have run),
 * ARRPC_EPROTO / ETOOBIG / ETOODEEP (the reply), ARRPC_EIO, ARRPC_ENOMEM, ARRPC_EINTR (the
 * interrupt check, arrpc_client_set_interrupt, stopped the wait). After a transport
 * error (any but EINVAL, ERPC, EAUTH) the connection is closed, so a late reply is never taken
 * for the next request's; a connection the server closed while idle is replaced before the
 * next request is written. */
ARRPC_API int arrpc_client_send(arrpc_client *cli, const void *request, size_t len,
                                arrpc_response **out);
/* Sends `count` packed requests pipelined on the connection; out[i] is the reply to the i-th.
 * A request the server failed has out[i] holding its error string response (see
 * arrpc_response_status). The call returns the first transport error, if any, and then every
 * out[] entry is NULL. */
ARRPC_API int arrpc_client_send_batch(arrpc_client *cli, const void *const *requests,
                                      const size_t *lens, size_t count, arrpc_response **out);
/* The text of the last failed call (successful calls leave it unchanged); never NULL. */
ARRPC_API const char *arrpc_client_errstr(const arrpc_client *cli);
/* Closes the connection; the next send reconnects. */
ARRPC_API void arrpc_client_close(arrpc_client *cli);

/* Prometheus metrics, as arrpc 0.5.0's Client(metrics=True): arrpc_client_req_seconds (a
 * histogram: _count, _sum, _bucket), arrpc_client_req_bytes (_count, _sum) and
 * arrpc_client_errors_total{reason}, with the labels hostname (/etc/hostname), k8s_namespace,
 * remote_address (the host given to arrpc_client_new), signed_payload and tls ("True" when the
 * client signs, or speaks TLS). Every send counts one request, and a batch one per request, failed
 * ones included: seconds run from the first byte written to the last reply read (a batch's
 * requests each count the whole batch's time; a send that never got a connection counts 0 s),
 * bytes are the request's own (before any signature envelope). A failed request also counts one
 * error by reason: rpc, auth, timeout, connect, closed, tls_handshake, invalid_message, too_large,
 * too_deep, io. ARRPC_EINVAL (nothing was sent) is not counted. One family beyond 0.5.0's:
 * arrpc_client_retries_total (the same labels, no reason), the requests an idempotent
 * client sent again on a new connection (arrpc_client_set_idempotent); a resent request is still
 * one request in the other families. */
/* Counting on (1) or off (0, the default; the counts so far are kept). 0, or ARRPC_ENOMEM. */
ARRPC_API int arrpc_client_set_metrics(arrpc_client *cli, int on);
/* The metrics as Prometheus text (format 0.0.4), NUL-terminated, into buf: for a user's own
 * exporter. *len receives the text's length without the NUL. When cap <= *len nothing is copied
 * (buf[0] is NUL when cap > 0) and ARRPC_ENOMEM is returned: call again with at least *len + 1
 * bytes, and some slack, since counts may grow in between (buf NULL and cap 0 only ask the
 * length). A client that never counted renders the families without samples. It only reads the
 * counters, so it may run on another thread while this client sends. */
ARRPC_API int arrpc_client_metrics_render(const arrpc_client *cli, char *buf, size_t cap,
                                          size_t *len);
/* Turns counting on and serves the metrics at http://host:port/metrics from a libmicrohttpd
 * thread in this process (0.5.0's metrics_port; it used 9095): GET /metrics only, 404 for other
 * paths, 405 for other methods; a few connections at once, each at most a few seconds.
 * Port 0 picks a free port (see arrpc_client_metrics_port). Each client serves its own counters
 * on its own port: several clients of one process cannot share a port. The thread is stopped by
 * arrpc_client_free. Not fork-safe: a child process has no exporter thread. 0, ARRPC_ESTATE
 * (served already), ARRPC_ESYS (cannot listen: detail in arrpc_client_errstr), ARRPC_ENOMEM. */
ARRPC_API int arrpc_client_serve_metrics(arrpc_client *cli, const char *host, uint16_t port);
/* The exporter's port once served, else 0. */
ARRPC_API uint16_t arrpc_client_metrics_port(const arrpc_client *cli);

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
