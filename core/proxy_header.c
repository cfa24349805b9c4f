/* proxy_header.c -- parsing the PROXY protocol header, v1 and v2 (see proxy_header.h). */
#include "proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#define V1_SIG "PROXY "
#define V1_SIG_LEN 6u
#define V2_SIG_LEN 12u
#define V2_FIXED_LEN 16u /* signature, version and command, family and protocol, length */

static const uint8_t v2_sig[V2_SIG_LEN] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                           0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

enum { V2_LOCAL = 0, V2_PROXY = 1 };                            /* the command nibble */
enum { V2_UNSPEC = 0, V2_INET = 1, V2_INET6 = 2, V2_UNIX = 3 }; /* the family nibble */
enum { V2_STREAM = 1, V2_DGRAM = 2 };                           /* the protocol nibble */

/* Bytes of the address block each family needs: two addresses, then two ports (none for Unix
 * sockets: two 108-byte paths). */
static const size_t v2_address_len[] = {
    [V2_UNSPEC] = 0, [V2_INET] = 12, [V2_INET6] = 36, [V2_UNIX] = 216};

static arrpc__proxy_status fail(arrpc__proxy_result *out, arrpc__proxy_status status,
                                const char *why)
{
    out->why = why;
    return status;
}

/* A port in decimal: 1 to 5 digits, at most 65535. */
static int parse_port(const char *s, uint16_t *port)
{
    size_t len = strlen(s);
    if (len == 0 || len > 5 || strspn(s, "0123456789") != len) return -1;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (unsigned long)(s[i] - '0');
    if (v > 65535) return -1;
    *port = (uint16_t)v;
    return 0;
}

/* The next space-separated field of a v1 line, NUL-terminated in place; NULL when none. Two
 * spaces in a row make an empty field, which the format does not allow. */
static char *next_field(char **rest)
{
    char *field = *rest;
    if (!field || !*field) return NULL;
    char *space = strchr(field, ' ');
    *rest = space ? space + 1 : NULL;
    if (space) *space = '\0';
    return *field ? field : NULL;
}

/* "TCP4 SRC DST SPORT DPORT" or "TCP6 ..." after "PROXY ": the source becomes the result. */
static arrpc__proxy_status parse_v1_tcp(char *rest, int family, arrpc__proxy_result *out)
{
    char *src = next_field(&rest), *dst = next_field(&rest);
    char *sport = next_field(&rest), *dport = next_field(&rest);
    uint16_t src_port, dst_port;
    uint8_t dst_addr[sizeof(struct in6_addr)];
    if (!src || !dst || !sport || !dport || rest) /* an empty field is a missing one */
        return fail(out, ARRPC_PROXY_INVALID, "v1 header: wrong field count");
    if (parse_port(sport, &src_port) != 0 || parse_port(dport, &dst_port) != 0)
        return fail(out, ARRPC_PROXY_INVALID, "v1 header: bad port");
    if (inet_pton(family, dst, dst_addr) != 1)
        return fail(out, ARRPC_PROXY_INVALID, "v1 header: bad destination address");
    memset(&out->source, 0, sizeof out->source);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&out->source;
        in->sin_family = AF_INET;
        in->sin_port = htons(src_port);
        if (inet_pton(AF_INET, src, &in->sin_addr) != 1)
            return fail(out, ARRPC_PROXY_INVALID, "v1 header: bad source address");
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->source;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(src_port);
        if (inet_pton(AF_INET6, src, &in6->sin6_addr) != 1)
            return fail(out, ARRPC_PROXY_INVALID, "v1 header: bad source address");
    }
    out->has_source = 1;
    return ARRPC_PROXY_DONE;
}

/* The line of a v1 header, CRLF excluded (len < ARRPC_PROXY_V1_MAX). */
static arrpc__proxy_status parse_v1_line(const uint8_t *p, size_t len, arrpc__proxy_result *out)
{
    char line[ARRPC_PROXY_V1_MAX];
    memcpy(line, p, len);
    line[len] = '\0';
    if (strlen(line) != len) return fail(out, ARRPC_PROXY_INVALID, "v1 header: NUL byte");
    char *rest = line + V1_SIG_LEN;
    /* UNKNOWN may be followed by anything: the sender could not or would not say more. */
    if (strncmp(rest, "UNKNOWN", 7) == 0 && (rest[7] == '\0' || rest[7] == ' '))
        return ARRPC_PROXY_DONE;
    char *proto = next_field(&rest);
    if (proto && strcmp(proto, "TCP4") == 0) return parse_v1_tcp(rest, AF_INET, out);
    if (proto && strcmp(proto, "TCP6") == 0) return parse_v1_tcp(rest, AF_INET6, out);
    return fail(out, ARRPC_PROXY_INVALID, "v1 header: protocol not TCP4, TCP6 or UNKNOWN");
}

/* v1: one line, ended by the first CR, which must be followed by LF. */
static arrpc__proxy_status parse_v1(const uint8_t *p, size_t n, arrpc__proxy_result *out)
{
    size_t limit = n < ARRPC_PROXY_V1_MAX - 1 ? n : ARRPC_PROXY_V1_MAX - 1; /* room for LF */
    const uint8_t *cr = memchr(p, '\r', limit);
    if (!cr) {
        if (n >= ARRPC_PROXY_V1_MAX - 1)
            return fail(out, ARRPC_PROXY_TOO_LONG, "v1 header longer than 107 bytes");
        return ARRPC_PROXY_NEED_MORE;
    }
    size_t cr_at = (size_t)(cr - p);
    if (cr_at + 1 == n) return ARRPC_PROXY_NEED_MORE;
    if (p[cr_at + 1] != '\n') return fail(out, ARRPC_PROXY_INVALID, "v1 header: CR without LF");
    out->version = 1;
    out->header_len = cr_at + 2;
    return parse_v1_line(p, cr_at, out);
}

/* The TLVs after the address block: each must lie wholly within the header. Their contents are
 * not used. */
static int v2_tlvs_fit(const uint8_t *p, size_t at, size_t end)
{
    while (at < end) {
        if (end - at < 3) return -1;
        size_t len = (size_t)p[at + 1] << 8 | p[at + 2];
        if (len > end - at - 3) return -1;
        at += 3 + len;
    }
    return 0;
}

static void v2_source(const uint8_t *block, int family, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (family == V2_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, block, 4);
        memcpy(&in->sin_port, block + 8, 2); /* both in network order */
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, block, 16);
        memcpy(&in6->sin6_port, block + 32, 2);
    }
}

/* v2, once its 16 fixed bytes and the length they declare have all arrived. */
static arrpc__proxy_status parse_v2_whole(const uint8_t *p, size_t total, arrpc__proxy_result *out)
{
    unsigned command = p[12] & 0x0F, family = p[13] >> 4, protocol = p[13] & 0x0F;
    if (command > V2_PROXY) return fail(out, ARRPC_PROXY_INVALID, "v2 header: unknown command");
    out->version = 2;
    out->header_len = total;
    if (command == V2_LOCAL) return ARRPC_PROXY_DONE; /* the rest is to be ignored */
    if (family > V2_UNIX || protocol > V2_DGRAM)
        return fail(out, ARRPC_PROXY_INVALID, "v2 header: unknown family or protocol");
    if (protocol == V2_DGRAM)
        return fail(out, ARRPC_PROXY_INVALID, "v2 header: a datagram source on a stream");
    size_t addresses = v2_address_len[family];
    if (total - V2_FIXED_LEN < addresses)
        return fail(out, ARRPC_PROXY_INVALID, "v2 header: address block cut short");
    if (v2_tlvs_fit(p, V2_FIXED_LEN + addresses, total) != 0)
        return fail(out, ARRPC_PROXY_INVALID, "v2 header: a TLV runs past the header");
    if ((family == V2_INET || family == V2_INET6) && protocol == V2_STREAM) {
        v2_source(p + V2_FIXED_LEN, (int)family, &out->source);
        out->has_source = 1;
    }
    return ARRPC_PROXY_DONE;
}

static arrpc__proxy_status parse_v2(const uint8_t *p, size_t n, arrpc__proxy_result *out)
{
    if (n > V2_SIG_LEN && (p[V2_SIG_LEN] >> 4) != 2)
        return fail(out, ARRPC_PROXY_INVALID, "v2 header: version is not 2");
    if (n < V2_FIXED_LEN) return ARRPC_PROXY_NEED_MORE;
    size_t total = V2_FIXED_LEN + ((size_t)p[14] << 8 | p[15]);
    if (total > ARRPC_PROXY_V2_MAX)
        return fail(out, ARRPC_PROXY_TOO_LONG, "v2 header longer than ARRPC_PROXY_V2_MAX");
    if (n < total) return ARRPC_PROXY_NEED_MORE;
    return parse_v2_whole(p, total, out);
}

arrpc__proxy_signature_match arrpc__proxy_signature(const uint8_t *p, size_t n)
{
    if (n == 0) return ARRPC_PROXY_SIG_PARTIAL;
    int v1 = p[0] == 'P';
    const uint8_t *sig = v1 ? (const uint8_t *)V1_SIG : v2_sig;
    size_t sig_len = v1 ? V1_SIG_LEN : V2_SIG_LEN;
    if (memcmp(p, sig, n < sig_len ? n : sig_len) != 0) return ARRPC_PROXY_SIG_NONE;
    return n < sig_len ? ARRPC_PROXY_SIG_PARTIAL : ARRPC_PROXY_SIG_WHOLE;
}

arrpc__proxy_status arrpc__proxy_parse(const uint8_t *p, size_t n, arrpc__proxy_result *out)
{
    *out = (arrpc__proxy_result){0};
    arrpc__proxy_signature_match sig = arrpc__proxy_signature(p, n);
    if (sig == ARRPC_PROXY_SIG_NONE)
        return fail(out, ARRPC_PROXY_MISSING, "no PROXY protocol header");
    if (sig == ARRPC_PROXY_SIG_PARTIAL) return ARRPC_PROXY_NEED_MORE;
    return p[0] == 'P' ? parse_v1(p, n, out) : parse_v2(p, n, out);
}
