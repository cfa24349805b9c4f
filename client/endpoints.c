/* endpoints.c -- the client's list of servers, round-robin and back-off (see endpoints.h). */
#include "endpoints.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arrpc.h"
#include "../core/net.h"

void arrpc__endpoints_free(arrpc__endpoints *eps)
{
    free(eps->list);
    eps->list = NULL;
    eps->count = eps->next = 0;
}

/* Drops the spaces around one entry [*start, *stop). */
static void trim(const char **start, const char **stop)
{
    while (*start < *stop && (**start == ' ' || **start == '\t'))
        (*start)++;
    while (*stop > *start && ((*stop)[-1] == ' ' || (*stop)[-1] == '\t'))
        (*stop)--;
}

/* One "HOST:PORT" entry of n bytes into e. */
static int parse_entry(const char *p, size_t n, arrpc__endpoint *e, char *err, size_t errlen)
{
    char entry[ARRPC_ENDPOINT_HOST_MAX + 16];
    if (n == 0) {
        snprintf(err, errlen, "an empty entry in the endpoint list");
        return ARRPC_EINVAL;
    }
    if (n >= sizeof entry) {
        snprintf(err, errlen, "endpoint '%.40s...' is too long", p);
        return ARRPC_EINVAL;
    }
    memcpy(entry, p, n);
    entry[n] = '\0';
    memset(e, 0, sizeof *e);
    if (arrpc__net_split_hostport(entry, e->host, sizeof e->host, &e->port) != 0 || e->port == 0) {
        snprintf(err, errlen, "endpoint '%s' is not HOST:PORT or [IPV6]:PORT with a port 1-65535",
                 entry);
        return ARRPC_EINVAL;
    }
    return 0;
}

int arrpc__endpoints_parse(const char *spec, arrpc__endpoints *eps, char *err, size_t errlen)
{
    memset(eps, 0, sizeof *eps);
    if (!spec || strlen(spec) > ARRPC_ENDPOINTS_SPEC_MAX) {
        snprintf(err, errlen, "the endpoint list is missing or longer than %u bytes",
                 ARRPC_ENDPOINTS_SPEC_MAX);
        return ARRPC_EINVAL;
    }
    size_t entries = 1;
    for (const char *c = spec; *c; c++)
        entries += *c == ',';
    if (entries > ARRPC_ENDPOINTS_MAX) {
        snprintf(err, errlen, "%zu endpoints: at most %u", entries, ARRPC_ENDPOINTS_MAX);
        return ARRPC_EINVAL;
    }
    if (!(eps->list = calloc(entries, sizeof *eps->list))) {
        snprintf(err, errlen, "no memory for %zu endpoints", entries);
        return ARRPC_ENOMEM;
    }
    for (const char *start = spec;; eps->count++) {
        const char *comma = strchr(start, ',');
        const char *stop = comma ? comma : start + strlen(start);
        const char *from = start;
        trim(&from, &stop);
        int rc = parse_entry(from, (size_t)(stop - from), &eps->list[eps->count], err, errlen);
        if (rc != 0) {
            arrpc__endpoints_free(eps);
            return rc;
        }
        if (!comma) break;
        start = comma + 1;
    }
    eps->count++;
    return 0;
}

int arrpc__endpoints_single(const char *host, uint16_t port, arrpc__endpoints *eps)
{
    memset(eps, 0, sizeof *eps);
    if (strlen(host) >= ARRPC_ENDPOINT_HOST_MAX) return ARRPC_EINVAL;
    if (!(eps->list = calloc(1, sizeof *eps->list))) return ARRPC_ENOMEM;
    strcpy(eps->list[0].host, host);
    eps->list[0].port = port;
    eps->count = 1;
    return 0;
}

size_t arrpc__endpoints_pick(arrpc__endpoints *eps, uint64_t now_ms)
{
    size_t soonest = eps->next % eps->count;
    for (size_t k = 0; k < eps->count; k++) {
        size_t i = (eps->next + k) % eps->count;
        if (eps->list[i].until_ms <= now_ms) {
            soonest = i;
            break;
        }
        if (eps->list[i].until_ms < eps->list[soonest].until_ms) soonest = i;
    }
    eps->next = (soonest + 1) % eps->count;
    eps->list[soonest].picks++;
    return soonest;
}

unsigned arrpc__endpoint_next_backoff(unsigned current)
{
    if (current == 0) return ARRPC_ENDPOINT_BACKOFF_INITIAL_MS;
    if (current >= ARRPC_ENDPOINT_BACKOFF_CAP_MS / ARRPC_ENDPOINT_BACKOFF_FACTOR)
        return ARRPC_ENDPOINT_BACKOFF_CAP_MS;
    return current * ARRPC_ENDPOINT_BACKOFF_FACTOR;
}

void arrpc__endpoint_failed(arrpc__endpoint *e, uint64_t now_ms)
{
    e->backoff_ms = arrpc__endpoint_next_backoff(e->backoff_ms);
    e->until_ms = now_ms + e->backoff_ms;
}

void arrpc__endpoint_succeeded(arrpc__endpoint *e)
{
    e->backoff_ms = 0;
    e->until_ms = 0;
}
