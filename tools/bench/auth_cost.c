/* auth_cost.c -- arrpc-auth-cost: what checking one signed request's MAC costs a worker, alone.
 *
 * bench/compare.sh measures a signed request against a plain one through the whole server. This
 * measures the part only signing adds: arrpc__auth_verify of data of the bench request's size
 * (the HMAC-SHA256 of the data, its hex form and the constant-time comparison), and the HMAC on
 * its own, each timed over many calls in a loop, the best of several rounds (the least disturbed
 * by other work on a shared machine). Set against the CPU per reply of a plain request from
 * compare.sh, it gives the least that signing can cost a pipelined request while each request
 * carries its own MAC (docs/performance.md). Not installed: a yardstick, like arrpc-echo-limit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/auth.h"
#include "../../core/clock.h"
#include "../../core/sha256_hw.h"
#include "arrpc.h"
#include "../options.h"

#define COST_SIZE_MAX (1024u * 1024u) /* data bytes */
#define COST_CALLS_MAX 100000000u
#define COST_ROUNDS_MAX 100u
#define COST_SECRET "compare-sh-bench-secret" /* the secret bench/compare.sh signs with */

typedef struct {
    unsigned size, calls, rounds;
} cost_options;

static const arrpc_opt cost_opts[] = {
    {"size", 's', ARRPC_OPT_UNSIGNED, "BYTES", ARRPC_OPT_AT(cost_options, size), 0, COST_SIZE_MAX,
     .help = "bytes of signed data; the default, 17, is arrpc-bench's default request (a str of "
             "16 bytes) as its envelope carries it"},
    {"calls", 'n', ARRPC_OPT_UNSIGNED, "N", ARRPC_OPT_AT(cost_options, calls), 1, COST_CALLS_MAX,
     .help = "calls timed per round"},
    {"rounds", 'r', ARRPC_OPT_UNSIGNED, "N", ARRPC_OPT_AT(cost_options, rounds), 1, COST_ROUNDS_MAX,
     .help = "rounds; the fastest counts"},
    {"help", 'h', ARRPC_OPT_HELP, .help = "print this help and exit"},
    {0},
};

static const arrpc_opt_program cost_program = {
    .name = "arrpc-auth-cost",
    .man_section = "1",
    .synopsis = "[options]",
    .summary = "the CPU time one signed request's MAC check takes in a worker",
    .description = "Times arrpc's check of a signed request (the HMAC-SHA256 of its data, the hex "
                   "form and the comparison) and the HMAC alone, in nanoseconds per call, on the "
                   "SHA-256 path arrpcd uses on this CPU.",
    .opts = cost_opts,
};

/* The fastest round of `calls` calls of verify (or of the HMAC alone), in ns per call. */
static double best_ns(const cost_options *o, const arrpc__auth_envelope *env, int hmac_only)
{
    const uint8_t *key = (const uint8_t *)COST_SECRET;
    size_t key_len = sizeof COST_SECRET - 1;
    double best = 0;
    unsigned failures = 0;
    for (unsigned r = 0; r < o->rounds; r++) {
        uint8_t mac[32];
        uint64_t start = arrpc__clock_ns();
        for (unsigned i = 0; i < o->calls; i++)
            failures += hmac_only ? arrpc__auth_hmac_sha256(key, key_len, env->data, env->len, mac,
                                                            ARRPC_SHA256_AUTO) != 0
                                  : arrpc__auth_verify(key, key_len, env) != 0;
        double ns = (double)(arrpc__clock_ns() - start) / o->calls;
        if (r == 0 || ns < best) best = ns;
    }
    if (failures) fprintf(stderr, "arrpc-auth-cost: %u checks failed\n", failures);
    return best;
}

int main(int argc, char **argv)
{
    cost_options o = {.size = 17, .calls = 1000000, .rounds = 5}, defaults = o;
    int next, rc = arrpc_opt_parse(&cost_program, &o, &defaults, argc, argv, &next);
    if (rc != 0) return rc > 0 ? 0 : 2;
    if (next < argc) {
        fprintf(stderr, "arrpc-auth-cost: takes no operands ('%s')\n", argv[next]);
        return 2;
    }
    uint8_t *data = malloc(o.size ? o.size : 1);
    char sign[ARRPC_SIGN_HEX_LEN + 1];
    if (!data) return 1;
    memset(data, 'x', o.size);
    if (arrpc__auth_sign_hex((const uint8_t *)COST_SECRET, sizeof COST_SECRET - 1, data, o.size,
                             sign) != 0)
        return 1;
    arrpc__auth_envelope env = {.sign = sign, .data = data, .len = o.size};
    double verify = best_ns(&o, &env, 0), hmac = best_ns(&o, &env, 1);
    printf("signed data: %u bytes; SHA-256 on %s\n", o.size,
           arrpc__sha256_hw_available() ? "the CPU's SHA extensions" : "wolfCrypt");
    printf("MAC check (arrpc__auth_verify): %.1f ns\n", verify);
    printf("HMAC-SHA256 alone:              %.1f ns\n", hmac);
    printf("(fastest of %u rounds of %u calls each)\n", o.rounds, o.calls);
    free(data);
    return 0;
}
