/* cidr.h -- lists of address ranges ("10.0.0.0/8,fd00::/8") and whether an address is in one:
 * the sources trusted to send a PROXY protocol header. */
#ifndef ARRPC_CORE_CIDR_H
#define ARRPC_CORE_CIDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ARRPC_CIDR_LIST_MAX 32 /* ranges in one list: balancers, not a firewall */

typedef struct arrpc__cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network order; 4 bytes used for AF_INET */
    unsigned prefix;  /* leading bits that must match */
} arrpc__cidr;

typedef struct arrpc__cidr_list {
    arrpc__cidr range[ARRPC_CIDR_LIST_MAX];
    unsigned count;
} arrpc__cidr_list;

/* Parses comma-separated ranges, each ADDRESS/BITS or a bare ADDRESS (all its bits). Bits below
 * the prefix must be zero ("10.1.2.3/8" is refused: it is likely a typo). 0, or ARRPC_EINVAL
 * with the reason in err. */
int arrpc__cidr_parse(const char *spec, arrpc__cidr_list *out, char *err, size_t errlen);

/* True when sa (AF_INET or AF_INET6) is in one of the ranges. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, a dual-stack listener's IPv4 peer) matches the IPv4 ranges as a.b.c.d. */
int arrpc__cidr_match(const arrpc__cidr_list *list, const struct sockaddr *sa);

#endif
