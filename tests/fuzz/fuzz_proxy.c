/* fuzz_proxy.c -- the PROXY protocol header parser (core/proxy_header.c) over arbitrary first
 * bytes of a connection.
 *
 * Input: byte 0 picks a split point, the rest is the stream. Invariants:
 *  - the answer never depends on how the bytes arrived: a prefix says "need more", or already
 *    what the whole says (the same error, or the same header);
 *  - a header never claims more bytes than were given, nor more than the format's bound
 *    (ARRPC_PROXY_V1_MAX, ARRPC_PROXY_V2_MAX); exactly its bytes parse to the same header, and
 *    one byte fewer needs more;
 *  - a source address is IPv4 or IPv6; an error always says why;
 *  - the signature check (for unlisted sources) agrees with the parser: "not a header" exactly
 *    when the parser says the header is missing, and a prefix never decides otherwise. */
#include <string.h>
#include <sys/socket.h>

#include "core/proxy_header.h"
#include "fuzz.h"

static int same_header(const arrpc__proxy_result *a, const arrpc__proxy_result *b)
{
    return a->header_len == b->header_len && a->version == b->version &&
           a->has_source == b->has_source &&
           (!a->has_source || memcmp(&a->source, &b->source, sizeof a->source) == 0);
}

static void check_header(const uint8_t *p, size_t n, const arrpc__proxy_result *r)
{
    FUZZ_CHECK(r->header_len > 0 && r->header_len <= n);
    FUZZ_CHECK(r->version == 1 || r->version == 2);
    FUZZ_CHECK(r->header_len <= (r->version == 1 ? ARRPC_PROXY_V1_MAX : ARRPC_PROXY_V2_MAX));
    if (r->has_source)
        FUZZ_CHECK(r->source.ss_family == AF_INET || r->source.ss_family == AF_INET6);
    arrpc__proxy_result exact;
    FUZZ_CHECK(arrpc__proxy_parse(p, r->header_len, &exact) == ARRPC_PROXY_DONE);
    FUZZ_CHECK(same_header(r, &exact));
    FUZZ_CHECK(arrpc__proxy_parse(p, r->header_len - 1, &exact) == ARRPC_PROXY_NEED_MORE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1, split = data[0] % (n + 1);
    arrpc__proxy_result whole, part;
    arrpc__proxy_status st = arrpc__proxy_parse(p, n, &whole);
    if (st == ARRPC_PROXY_DONE) check_header(p, n, &whole);
    if (st < 0) FUZZ_CHECK(whole.why != NULL);
    if (st == ARRPC_PROXY_NEED_MORE) FUZZ_CHECK(n < ARRPC_PROXY_HEADER_MAX);
    arrpc__proxy_status early = arrpc__proxy_parse(p, split, &part);
    FUZZ_CHECK(early == ARRPC_PROXY_NEED_MORE || early == st);
    if (early == ARRPC_PROXY_DONE) FUZZ_CHECK(same_header(&part, &whole));
    arrpc__proxy_signature_match sig = arrpc__proxy_signature(p, n);
    FUZZ_CHECK((sig == ARRPC_PROXY_SIG_NONE) == (st == ARRPC_PROXY_MISSING));
    arrpc__proxy_signature_match sig_early = arrpc__proxy_signature(p, split);
    FUZZ_CHECK(sig_early == ARRPC_PROXY_SIG_PARTIAL || sig_early == sig);
    return 0;
}
