/* net.h -- TCP socket chores: listening, connecting, naming addresses, waiting with deadlines. */
#ifndef ARRPC_CORE_NET_H
#define ARRPC_CORE_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "clock.h" /* the deadlines below are arrpc__clock_ms() values */

#define ARRPC_LISTEN_BACKLOG 4096 /* the kernel caps it at net.core.somaxconn */
#define ARRPC_ADDR_MAX 64         /* "[v6 address]:port" and NUL */

/* A nonblocking, close-on-exec listening socket on host:port (SO_REUSEADDR, and SO_REUSEPORT
 * when asked). Returns the fd, or ARRPC_ESYS (errno the last bind's or listen's) / ARRPC_EINVAL
 * with the reason in err. */
int arrpc__net_listen(const char *host, uint16_t port, int reuseport, char *err, size_t errlen);

/* The first socket of a SO_REUSEPORT group on host:port. The address is claimed without
 * SO_REUSEPORT first, because with it we could silently join the group of another server that
 * already listens there (as the same user) and share its traffic; that claim fails instead,
 * and picks the port when port is 0. */
int arrpc__net_listen_group(const char *host, uint16_t port, char *err, size_t errlen);

/* Another listening socket on the same address as listening socket `fd`, which must have
 * SO_REUSEPORT (the kernel then spreads connections over both). Returns the fd or ARRPC_ESYS. */
int arrpc__net_listen_like(int fd);

/* The port a bound socket has; 0 on error. */
uint16_t arrpc__net_local_port(int fd);

/* "ip:port" of the peer of a connected socket ("?:0" when unknown). */
void arrpc__net_peer_name(int fd, char *out, size_t outlen);
/* The peer's address of a connected socket. 0, or ARRPC_ESYS (then ss's family is 0). */
int arrpc__net_peer_addr(int fd, struct sockaddr_storage *ss);
/* "ip:port" of an AF_INET or AF_INET6 address ("?:0" for any other family). */
void arrpc__net_addr_name(const struct sockaddr *sa, char *out, size_t outlen);

/* TCP keepalive on a connected socket: the first probe after idle_s seconds without traffic,
 * then one every ARRPC_KEEPALIVE_INTERVAL_S; after `probes` unanswered ones the kernel resets
 * the connection (a peer that vanished: a host gone, a NAT entry dropped). 0 turns keepalive
 * off. 0, or ARRPC_ESYS. */
#define ARRPC_KEEPALIVE_INTERVAL_S 10
#define ARRPC_KEEPALIVE_PROBES 6        /* the server's: accepted sockets */
#define ARRPC_TCP_KEEPALIVE_MAX_S 32767 /* Linux refuses a longer TCP_KEEPIDLE */
int arrpc__net_keepalive(int fd, unsigned idle_s, unsigned probes);

/* Splits "HOST:PORT" or "[V6]:PORT" into host and port. 0, or ARRPC_EINVAL. */
int arrpc__net_split_hostport(const char *spec, char *host, size_t hostlen, uint16_t *port);

/* Waits for events on fd until deadline_ms (an arrpc__clock_ms() value; 0: no deadline), retrying
 * after signals. Returns 1 with *revents set, 0 when the deadline passed, ARRPC_ESYS on error. */
int arrpc__net_wait(int fd, short events, uint64_t deadline_ms, short *revents);

/* Connects a nonblocking, close-on-exec TCP socket (TCP_NODELAY) to host:port, trying each
 * address in turn until timeout_ms has passed (0: only the kernel's own limit). Returns the fd,
 * or ARRPC_ECONNECT with the reason in err. */
int arrpc__net_connect(const char *host, uint16_t port, unsigned timeout_ms, char *err,
                       size_t errlen);
/* The same, starting at the address numbered first (modulo their count) in getaddrinfo's order
 * and wrapping round: callers that connect again and again spread over a name's addresses. */
int arrpc__net_connect_from(const char *host, uint16_t port, unsigned first, unsigned timeout_ms,
                            char *err, size_t errlen);

/* Parses a decimal number within [min, max]. 0, or ARRPC_EINVAL. */
int arrpc__parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out);

#endif
