/* cidr.c -- address ranges: parsing a list, matching an address against it. */
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "arrpc.h"
#include "net.h"

#define CIDR_TEXT_MAX 64 /* one range as text: an IPv6 address, '/', three digits */

/* Whether the first `bits` bits of a and b are equal. */
static int prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0) return 0;
    if (!rest) return 1;
    uint8_t mask = (uint8_t)(0xFF << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

/* One "ADDRESS[/BITS]" of len bytes at text. 0, or -1. */
static int parse_one(const char *text, size_t len, arrpc__cidr *out)
{
    char addr[CIDR_TEXT_MAX];
    if (len == 0 || len >= sizeof addr) return -1;
    memcpy(addr, text, len);
    addr[len] = '\0';
    char *slash = strchr(addr, '/');
    if (slash) *slash = '\0';
    out->family = strchr(addr, ':') ? AF_INET6 : AF_INET;
    memset(out->addr, 0, sizeof out->addr);
    if (inet_pton(out->family, addr, out->addr) != 1) return -1;
    unsigned max = out->family == AF_INET ? 32 : 128;
    unsigned long bits = max;
    if (slash && arrpc__parse_ulong(slash + 1, 0, max, &bits) != 0) return -1;
    out->prefix = (unsigned)bits;
    for (unsigned i = out->prefix; i < max; i++) /* host bits: all zero */
        if (out->addr[i / 8] & (0x80 >> (i % 8))) return -1;
    return 0;
}

int arrpc__cidr_parse(const char *spec, arrpc__cidr_list *out, char *err, size_t errlen)
{
    out->count = 0;
    const char *at = spec ? spec : "";
    for (;;) {
        size_t len = strcspn(at, ",");
        if (out->count == ARRPC_CIDR_LIST_MAX) {
            snprintf(err, errlen, "more than %d address ranges", ARRPC_CIDR_LIST_MAX);
            return ARRPC_EINVAL;
        }
        if (parse_one(at, len, &out->range[out->count]) != 0) {
            snprintf(err, errlen,
                     "'%.*s' is not an address range (ADDRESS/BITS with the host bits zero)",
                     (int)(len < CIDR_TEXT_MAX ? len : CIDR_TEXT_MAX), at);
            return ARRPC_EINVAL;
        }
        out->count++;
        if (!at[len]) return 0;
        at += len + 1;
    }
}

int arrpc__cidr_match(const arrpc__cidr_list *list, const struct sockaddr *sa)
{
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    const uint8_t *addr;
    int family = sa->sa_family;
    if (family == AF_INET) {
        addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (family == AF_INET6) {
        addr = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (memcmp(addr, v4_mapped, sizeof v4_mapped) == 0) {
            family = AF_INET;
            addr += sizeof v4_mapped;
        }
    } else {
        return 0;
    }
    for (unsigned i = 0; i < list->count; i++)
        if (list->range[i].family == family &&
            prefix_equal(addr, list->range[i].addr, list->range[i].prefix))
            return 1;
    return 0;
}
