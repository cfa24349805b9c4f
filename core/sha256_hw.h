/* sha256_hw.h -- the SHA-256 compression function on the x86 SHA extensions (SHA-NI), for the
 * CPUs that have them; core/auth.c falls back to wolfCrypt on the others. */
#ifndef ARRPC_CORE_SHA256_HW_H
#define ARRPC_CORE_SHA256_HW_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* 1 when this CPU has SHA-NI, SSSE3 and SSE4.1 (asked once, from CPUID), else 0. Always 0 on
 * anything but x86-64. */
int arrpc__sha256_hw_available(void);

#if defined(__x86_64__)
/* Runs SHA-256's compression over nblocks 64-byte blocks at data, updating state (the eight
 * words a..h, H0..H7 of FIPS 180-4). Padding is the caller's. Only when
 * arrpc__sha256_hw_available(): the instructions fault on other CPUs. */
void arrpc__sha256_hw_blocks(uint32_t state[8], const uint8_t *data, size_t nblocks);
/* The most data arrpc__sha256_hw_hmac_short takes: one block less the padding's 9 bytes. */
#define ARRPC_SHA256_HW_SHORT_MAX 55u
/* HMAC-SHA256 of len <= ARRPC_SHA256_HW_SHORT_MAX bytes from the states after the key's inner
 * and outer padded blocks: two compressions, the inner digest passed to the outer one in
 * registers rather than stored as bytes and loaded back. */
void arrpc__sha256_hw_hmac_short(const uint32_t inner[8], const uint32_t outer[8],
                                 const uint8_t *data, size_t len, uint8_t mac[32]);
#else
/* Never called: arrpc__sha256_hw_available() is 0 here. */
static inline void arrpc__sha256_hw_blocks(uint32_t state[8], const uint8_t *data, size_t nblocks)
{
    (void)state;
    (void)data;
    (void)nblocks;
    abort();
}
static inline void arrpc__sha256_hw_hmac_short(const uint32_t inner[8], const uint32_t outer[8],
                                               const uint8_t *data, size_t len, uint8_t mac[32])
{
    (void)inner;
    (void)outer;
    (void)data;
    (void)len;
    (void)mac;
    abort();
}
#define ARRPC_SHA256_HW_SHORT_MAX 0u
#endif

#endif
