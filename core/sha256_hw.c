/* sha256_hw.c -- SHA-256's compression function on the x86 SHA extensions (SHA-NI), written from
 * the instructions' definitions in Intel's SDM. Only this file is compiled for them (a target
 * attribute), so the rest of arrpc keeps the default -march; callers ask
 * arrpc__sha256_hw_available() first. */
#include "sha256_hw.h"

#if defined(__x86_64__)

#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>
#include <string.h>

#define CPUID1_ECX_SSSE3 (1u << 9)
#define CPUID1_ECX_SSE4_1 (1u << 19)
#define CPUID7_EBX_SHA (1u << 29)

static int cpu_has_sha(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if ((c & CPUID1_ECX_SSSE3) == 0 || (c & CPUID1_ECX_SSE4_1) == 0) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0; /* leaf 7 absent: no SHA */
    return (b & CPUID7_EBX_SHA) != 0;
}

int arrpc__sha256_hw_available(void)
{
    static atomic_int cached; /* 0: not asked yet, 1: no, 2: yes; racing askers agree */
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v == 0) {
        v = cpu_has_sha() ? 2 : 1;
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v == 2;
}

#define SHA_TARGET __attribute__((target("sha,sse4.1,ssse3")))

/* FIPS 180-4's round constants K0..K63, aligned for one 4-word load per 4 rounds. */
static const _Alignas(16) uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* Message words W[4i..4i+3] of a block, lane 0 = W[4i]: SHA-256 reads its words big-endian, so
 * each 4-byte lane is byte-swapped. */
static inline SHA_TARGET __m128i load_words(const uint8_t *p)
{
    const __m128i bswap32 = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    return _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), bswap32);
}

/* The next four schedule words W[t..t+3] from the previous sixteen (w0 = W[t-16..t-13], ...,
 * w3 = W[t-4..t-1]): W[t] = sigma1(W[t-2]) + W[t-7] + sigma0(W[t-15]) + W[t-16]. */
static inline SHA_TARGET __m128i schedule(__m128i w0, __m128i w1, __m128i w2, __m128i w3)
{
    /* sha256msg1: W[t-16] + sigma0(W[t-15]) for the four lanes (it needs W[t-12] from w1). */
    __m128i t = _mm_sha256msg1_epu32(w0, w1);
    /* + W[t-7]: the four words W[t-7..t-4] straddle w2 and w3, one lane to the right. */
    t = _mm_add_epi32(t, _mm_alignr_epi8(w3, w2, 4));
    /* sha256msg2: + sigma1(W[t-2]); lanes 2 and 3 use the lanes 0 and 1 it has just finished. */
    return _mm_sha256msg2_epu32(t, w3);
}

/* Rounds 4i..4i+3. sha256rnds2 does two rounds from CDGH (first operand), ABEF (second) and
 * W+K for them in the low two lanes of the third, and returns the new ABEF. Two rounds later C,
 * D, G, H are the old A, B, E, F, so the old ABEF register is the new CDGH: the two registers
 * swap roles after each call and are back in place after two. */
static inline SHA_TARGET void rounds4(__m128i *abef, __m128i *cdgh, __m128i w, int i)
{
    __m128i wk = _mm_add_epi32(w, _mm_load_si128((const __m128i *)&K[4 * i]));
    *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
    *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(wk, 0x0e)); /* lanes 2, 3 */
}

/* One block, message words W0..W15 in w0..w3, into the state held as ABEF and CDGH. */
static inline SHA_TARGET void compress(__m128i *abef, __m128i *cdgh, __m128i w0, __m128i w1,
                                       __m128i w2, __m128i w3)
{
    __m128i abef_in = *abef, cdgh_in = *cdgh;
    rounds4(abef, cdgh, w0, 0);
    rounds4(abef, cdgh, w1, 1);
    rounds4(abef, cdgh, w2, 2);
    rounds4(abef, cdgh, w3, 3);
    /* Rounds 16..63: each new group of words replaces the oldest of the four. */
    for (int i = 4; i < 16; i += 4) {
        w0 = schedule(w0, w1, w2, w3);
        rounds4(abef, cdgh, w0, i);
        w1 = schedule(w1, w2, w3, w0);
        rounds4(abef, cdgh, w1, i + 1);
        w2 = schedule(w2, w3, w0, w1);
        rounds4(abef, cdgh, w2, i + 2);
        w3 = schedule(w3, w0, w1, w2);
        rounds4(abef, cdgh, w3, i + 3);
    }
    /* Davies-Meyer feed-forward: the block's output is added to the state it started from. */
    *abef = _mm_add_epi32(*abef, abef_in);
    *cdgh = _mm_add_epi32(*cdgh, cdgh_in);
}

/* The instructions keep the state as two registers, lanes from high to low A B E F and C D G H;
 * state[] is a..h from low to high. Reverse both halves (D C B A, H G F E) and pair their upper
 * and lower 64 bits. */
static inline SHA_TARGET void load_state(const uint32_t state[8], __m128i *abef, __m128i *cdgh)
{
    __m128i dcba = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[0]), 0x1b);
    __m128i hgfe = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[4]), 0x1b);
    *abef = _mm_unpackhi_epi64(hgfe, dcba); /* low to high: F E B A */
    *cdgh = _mm_unpacklo_epi64(hgfe, dcba); /* H G D C */
}

/* Back to a..h: D C B A and H G F E from the upper and lower halves, then reversed. The two
 * registers hold a b c d and e f g h from lane 0 up: also the words of the digest. */
static inline SHA_TARGET void state_words(__m128i abef, __m128i cdgh, __m128i *abcd, __m128i *efgh)
{
    *abcd = _mm_shuffle_epi32(_mm_unpackhi_epi64(cdgh, abef), 0x1b);
    *efgh = _mm_shuffle_epi32(_mm_unpacklo_epi64(cdgh, abef), 0x1b);
}

SHA_TARGET void arrpc__sha256_hw_blocks(uint32_t state[8], const uint8_t *data, size_t nblocks)
{
    __m128i abef, cdgh, abcd, efgh;
    load_state(state, &abef, &cdgh);
    for (; nblocks > 0; nblocks--, data += 64)
        compress(&abef, &cdgh, load_words(data), load_words(data + 16), load_words(data + 32),
                 load_words(data + 48));
    state_words(abef, cdgh, &abcd, &efgh);
    _mm_storeu_si128((__m128i *)&state[0], abcd);
    _mm_storeu_si128((__m128i *)&state[4], efgh);
}

SHA_TARGET void arrpc__sha256_hw_hmac_short(const uint32_t inner[8], const uint32_t outer[8],
                                            const uint8_t *data, size_t len, uint8_t mac[32])
{
    /* The inner hash's one block: the data, 0x80, zeros, and the length in bits of everything
     * hashed, the key's block included, big-endian in the last 8 bytes. */
    uint8_t block[64] = {0};
    uint64_t bits = ((uint64_t)len + 64u) * 8u;
    memcpy(block, data, len);
    block[len] = 0x80;
    for (int i = 0; i < 8; i++)
        block[63 - i] = (uint8_t)(bits >> (8 * i));
    __m128i abef, cdgh, abcd, efgh;
    load_state(inner, &abef, &cdgh);
    compress(&abef, &cdgh, load_words(block), load_words(block + 16), load_words(block + 32),
             load_words(block + 48));
    state_words(abef, cdgh, &abcd, &efgh);
    /* The outer hash's one block: the inner digest's words as they are, 0x80, zeros, and the
     * length, (64 + 32) * 8 bits. */
    load_state(outer, &abef, &cdgh);
    compress(&abef, &cdgh, abcd, efgh, _mm_set_epi32(0, 0, 0, (int)0x80000000u),
             _mm_set_epi32((64 + 32) * 8, 0, 0, 0));
    state_words(abef, cdgh, &abcd, &efgh);
    const __m128i bswap32 = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    _mm_storeu_si128((__m128i *)mac, _mm_shuffle_epi8(abcd, bswap32));
    _mm_storeu_si128((__m128i *)(mac + 16), _mm_shuffle_epi8(efgh, bswap32));
}

#else

int arrpc__sha256_hw_available(void)
{
    return 0;
}

#endif
