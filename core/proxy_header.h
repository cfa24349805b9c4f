/* proxy_header.h -- the PROXY protocol header (v1 text, v2 binary) a balancer puts before the
 * stream: bytes in, "need more", "done" or "not a valid header" out.
 *
 * Like the scanner it does no I/O and no allocation, so it is tested and fuzzed without a socket.
 * The caller feeds every byte received so far from the start of the connection; the answer
 * never depends on how the bytes were split. While it says "need more", every byte seen belongs
 * to the header (a v1 header ends at its first CRLF, a v2 header declares its length), so the
 * caller may consume them from the socket without reading into what follows. */
#ifndef ARRPC_CORE_PROXY_HEADER_H
#define ARRPC_CORE_PROXY_HEADER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest v1 header, "PROXY TCP6 " + two full IPv6 addresses + two ports + CRLF, as the
 * protocol itself bounds it. */
#define ARRPC_PROXY_V1_MAX 107u
/* Longest v2 header we accept, its 16 fixed bytes included. The format allows 65551; what
 * balancers send is 28 (IPv4) or 52 (IPv6) bytes plus a few TLVs (a unique id, an AWS endpoint
 * id, TLS details), well under 1 KiB. Longer is refused, so a connection holds at most this much
 * before it is known to be a valid one. */
#define ARRPC_PROXY_V2_MAX 1024u
#define ARRPC_PROXY_HEADER_MAX ARRPC_PROXY_V2_MAX /* the larger of the two */
/* Bytes that tell a header from anything else: v1 starts "PROXY ", v2 with a 12-byte
 * signature (the longer). */
#define ARRPC_PROXY_SIGNATURE_MAX 12u

typedef enum {
    ARRPC_PROXY_NEED_MORE = 0, /* every byte so far is a valid beginning of a header */
    ARRPC_PROXY_DONE = 1,      /* a whole header: see arrpc__proxy_result */
    ARRPC_PROXY_MISSING = -1,  /* the bytes do not start with either signature */
    ARRPC_PROXY_INVALID = -2,  /* a signature, then bytes the format does not allow */
    ARRPC_PROXY_TOO_LONG = -3, /* longer than ARRPC_PROXY_V1_MAX / ARRPC_PROXY_V2_MAX */
} arrpc__proxy_status;

typedef struct arrpc__proxy_result {
    size_t header_len; /* DONE: bytes the header took; the stream proper starts after them */
    int version;       /* DONE: 1 or 2 */
    /* DONE: 1 when the header names the client's address, copied into source; 0 when the
     * connection's own peer stands (v1 UNKNOWN, v2 LOCAL such as a balancer's health check,
     * v2 with an unspecified or Unix family or protocol). */
    int has_source;
    struct sockaddr_storage source; /* AF_INET or AF_INET6, port included */
    const char *why;                /* not DONE or NEED_MORE: what was wrong, for the log */
} arrpc__proxy_result;

typedef enum {
    ARRPC_PROXY_SIG_NONE = -1,   /* the bytes diverge from both signatures: not a header */
    ARRPC_PROXY_SIG_PARTIAL = 0, /* a beginning of a signature (or nothing yet): undecided */
    ARRPC_PROXY_SIG_WHOLE = 1,   /* a whole signature: a header, valid or not, begins here */
} arrpc__proxy_signature_match;

/* Whether p[0, n), the first n bytes of a connection, begin a PROXY header, looking at the
 * signature only: for a source that is not expected to send one (workers/proxy.c). */
arrpc__proxy_signature_match arrpc__proxy_signature(const uint8_t *p, size_t n);

/* Parses p[0, n), the first n bytes of a connection. */
arrpc__proxy_status arrpc__proxy_parse(const uint8_t *p, size_t n, arrpc__proxy_result *out);

#endif
