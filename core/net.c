/* net.c -- TCP socket chores (see net.h). */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "arrpc.h"

static int listen_on(const struct addrinfo *ai, int reuseport)
{
    int one = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, ARRPC_LISTEN_BACKLOG) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int arrpc__net_listen(const char *host, uint16_t port, int reuseport, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    int gai = getaddrinfo(host && *host ? host : NULL, service, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gai));
        return ARRPC_EINVAL;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = listen_on(ai, reuseport);
        saved = errno;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s:%u: %s", host, (unsigned)port, strerror(saved));
        errno = saved; /* callers tell "in use" (EADDRINUSE) from other failures */
        return ARRPC_ESYS;
    }
    return fd;
}

int arrpc__net_listen_group(const char *host, uint16_t port, char *err, size_t errlen)
{
    int probe = arrpc__net_listen(host, port, 0, err, errlen);
    if (probe < 0) return probe;
    port = arrpc__net_local_port(probe);
    close(probe);
    return arrpc__net_listen(host, port, 1, err, errlen);
}

int arrpc__net_listen_like(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return ARRPC_ESYS;
    struct addrinfo ai = {.ai_family = ss.ss_family,
                          .ai_socktype = SOCK_STREAM,
                          .ai_addr = (struct sockaddr *)&ss,
                          .ai_addrlen = len};
    int nfd = listen_on(&ai, 1);
    return nfd >= 0 ? nfd : ARRPC_ESYS;
}

uint16_t arrpc__net_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

void arrpc__net_addr_name(const struct sockaddr *sa, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, outlen, "%s:%u", ip, port);
}

int arrpc__net_peer_addr(int fd, struct sockaddr_storage *ss)
{
    socklen_t len = sizeof *ss;
    memset(ss, 0, sizeof *ss);
    return getpeername(fd, (struct sockaddr *)ss, &len) == 0 ? 0 : ARRPC_ESYS;
}

void arrpc__net_peer_name(int fd, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    arrpc__net_peer_addr(fd, &ss); /* on failure the family is 0: named "?:0" */
    arrpc__net_addr_name((const struct sockaddr *)&ss, out, outlen);
}

int arrpc__net_keepalive(int fd, unsigned idle_s, unsigned probes)
{
    int on = idle_s > 0, idle = (int)idle_s, interval = ARRPC_KEEPALIVE_INTERVAL_S,
        count = (int)probes;
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) != 0) return ARRPC_ESYS;
    if (!on) return 0;
    return setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) == 0 &&
                   setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) == 0 &&
                   setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count) == 0
               ? 0
               : ARRPC_ESYS;
}

int arrpc__parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    if (!s || !*s || *s == '-') return ARRPC_EINVAL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) return ARRPC_EINVAL;
    *out = v;
    return 0;
}

int arrpc__net_split_hostport(const char *spec, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon = strrchr(spec, ':');
    const char *start = spec, *stop = colon;
    unsigned long p;
    if (!colon || arrpc__parse_ulong(colon + 1, 0, 65535, &p) != 0) return ARRPC_EINVAL;
    if (*spec == '[') { /* [::1]:8080 */
        if (colon == spec || colon[-1] != ']') return ARRPC_EINVAL;
        start = spec + 1;
        stop = colon - 1;
    }
    size_t n = (size_t)(stop - start);
    if (n == 0 || n >= hostlen) return ARRPC_EINVAL;
    memcpy(host, start, n);
    host[n] = '\0';
    *port = (uint16_t)p;
    return 0;
}

int arrpc__net_wait(int fd, short events, uint64_t deadline_ms, short *revents)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int timeout = -1;
        if (deadline_ms) {
            uint64_t now = arrpc__clock_ms();
            if (now >= deadline_ms) return 0;
            uint64_t left = deadline_ms - now;
            timeout = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        int n = poll(&p, 1, timeout);
        if (n > 0) {
            *revents = p.revents;
            return 1;
        }
        if (n < 0 && errno != EINTR) return ARRPC_ESYS;
    }
}

/* One nonblocking connect: 0 with *fd set, or -1 with errno set (ETIMEDOUT past the deadline). */
static int connect_one(const struct addrinfo *ai, uint64_t deadline_ms, int *out)
{
    int one = 1, soerr = 0, fd;
    socklen_t len = sizeof soerr;
    short rev = 0;
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) goto fail;
    int ready = arrpc__net_wait(fd, POLLOUT, deadline_ms, &rev);
    if (ready == 0) errno = ETIMEDOUT;
    if (ready <= 0) goto fail;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) goto fail;
    if (soerr != 0) {
        errno = soerr;
        goto fail;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* requests are written whole */
    *out = fd;
    return 0;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int arrpc__net_connect(const char *host, uint16_t port, unsigned timeout_ms, char *err,
                       size_t errlen)
{
    return arrpc__net_connect_from(host, port, 0, timeout_ms, err, errlen);
}

int arrpc__net_connect_from(const char *host, uint16_t port, unsigned first, unsigned timeout_ms,
                            char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    int gai = getaddrinfo(host, service, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gai));
        return ARRPC_ECONNECT;
    }
    unsigned count = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        count++;
    struct addrinfo *start = res;
    for (unsigned i = 0; i < first % count; i++)
        start = start->ai_next;
    uint64_t deadline = timeout_ms ? arrpc__clock_ms() + timeout_ms : 0;
    int fd = -1, saved = 0;
    struct addrinfo *ai = start;
    for (unsigned tried = 0; tried < count && fd < 0; tried++) {
        if (connect_one(ai, deadline, &fd) != 0) saved = errno;
        ai = ai->ai_next ? ai->ai_next : res; /* from `first` round to the one before it */
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to %s:%u: %s", host, (unsigned)port, strerror(saved));
        return ARRPC_ECONNECT;
    }
    return fd;
}
