/* net.h -- TCP socket chores: listening, connecting, naming addresses. */
#ifndef ARRPC_CORE_NET_H
#define ARRPC_CORE_NET_H

#include <stddef.h>
#include <stdint.h>

#define ARRPC_LISTEN_BACKLOG 4096 /* the kernel caps it at net.core.somaxconn */
#define ARRPC_ADDR_MAX 64         /* "[v6 address]:port" and NUL */

/* A nonblocking, close-on-exec listening socket on host:port (SO_REUSEADDR, and SO_REUSEPORT
 * when asked). Returns the fd, or ARRPC_ESYS / ARRPC_EINVAL with the reason in err. */
int arrpc__net_listen(const char *host, uint16_t port, int reuseport, char *err, size_t errlen);

/* The port a bound socket has; 0 on error. */
uint16_t arrpc__net_local_port(int fd);

/* "ip:port" of the peer of a connected socket ("?" when unknown). */
void arrpc__net_peer_name(int fd, char *out, size_t outlen);

/* Splits "HOST:PORT" or "[V6]:PORT" into host and port. 0, or ARRPC_EINVAL. */
int arrpc__net_split_hostport(const char *spec, char *host, size_t hostlen, uint16_t *port);

/* Parses a decimal number within [min, max]. 0, or ARRPC_EINVAL. */
int arrpc__parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out);

#endif
