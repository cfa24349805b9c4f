/* endpoints.h -- the client's list of servers: parsing "host:port,host:port", picking the next
 * one to connect to (round-robin, skipping those in back-off), and the back-off arithmetic.
 *
 * Pure: no I/O, no clock of its own (every call takes now_ms, an arrpc__clock_ms() value), so the
 * unit tests drive it with a fake clock. Names are not resolved here: connecting does that, each
 * time, so a name whose addresses change is followed on the next reconnect. */
#ifndef ARRPC_CLIENT_ENDPOINTS_H
#define ARRPC_CLIENT_ENDPOINTS_H

#include <stddef.h>
#include <stdint.h>

#define ARRPC_ENDPOINTS_MAX 64u         /* servers in one list */
#define ARRPC_ENDPOINT_HOST_MAX 256u    /* a DNS name (253) or an IPv6 address, and the NUL */
#define ARRPC_ENDPOINTS_SPEC_MAX 16384u /* the whole "h:p,h:p" text */
/* An endpoint that refused or failed is skipped for INITIAL ms, then FACTOR times longer after
 * each further failure, at most CAP ms; a successful connect clears it. */
#define ARRPC_ENDPOINT_BACKOFF_INITIAL_MS 100u
#define ARRPC_ENDPOINT_BACKOFF_FACTOR 2u
#define ARRPC_ENDPOINT_BACKOFF_CAP_MS 5000u

typedef struct arrpc__endpoint {
    char host[ARRPC_ENDPOINT_HOST_MAX]; /* without the brackets of "[::1]:p" */
    uint16_t port;
    unsigned backoff_ms; /* the last back-off given; 0 when the endpoint is in good standing */
    uint64_t until_ms;   /* skipped before this time (arrpc__clock_ms); 0: not in back-off */
    unsigned picks;      /* times picked: which of a name's addresses is tried first */
} arrpc__endpoint;

typedef struct arrpc__endpoints {
    arrpc__endpoint *list;
    size_t count;
    size_t next; /* where the round-robin looks first */
} arrpc__endpoints;

/* Parses "HOST:PORT[,HOST:PORT...]" (IPv6 as "[ADDR]:PORT"; spaces around entries ignored) into
 * *eps, which it allocates. 0, ARRPC_EINVAL (reason in err: an empty entry, a missing or bad
 * port, port 0, more than ARRPC_ENDPOINTS_MAX entries, a text over ARRPC_ENDPOINTS_SPEC_MAX) or
 * ARRPC_ENOMEM. On error *eps is left empty. */
int arrpc__endpoints_parse(const char *spec, arrpc__endpoints *eps, char *err, size_t errlen);

/* One endpoint: for arrpc_client_new(host, port). 0, ARRPC_EINVAL (host too long), ENOMEM. */
int arrpc__endpoints_single(const char *host, uint16_t port, arrpc__endpoints *eps);

void arrpc__endpoints_free(arrpc__endpoints *eps);

/* The index of the endpoint to connect to now: the next one in round-robin order that is not in
 * back-off, or, when all are, the one whose back-off ends first. Advances the round-robin and
 * the endpoint's picks. */
size_t arrpc__endpoints_pick(arrpc__endpoints *eps, uint64_t now_ms);

/* The back-off that follows `current` ms (0: none yet): INITIAL, then times FACTOR, up to CAP. */
unsigned arrpc__endpoint_next_backoff(unsigned current);

/* The endpoint refused or failed at now_ms: skipped for its next back-off. */
void arrpc__endpoint_failed(arrpc__endpoint *e, uint64_t now_ms);

/* The endpoint took a connection: no back-off any more. */
void arrpc__endpoint_succeeded(arrpc__endpoint *e);

#endif
