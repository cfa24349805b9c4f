/* test_client_spin.c -- arrpc_client_set_spin: a wait for replies reads without sleeping while
 * that pays off, and a client whose spins keep running out stops spinning, for 1, 3, 7 ...
 * waits (at most 1023), so that a slow server costs it no CPU beyond the odd spin. The
 * connection is one end of a socketpair whose other end the test writes. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "arrpc.h"
#include "client/client.h"
#include "core/clock.h"

#define SHORT_WAIT_MS 2u /* a wait that ends with nothing to read */

typedef struct {
    arrpc_client *cli;
    int peer; /* the "server" end */
} pair;

static int setup(void **state)
{
    static pair p;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    p.cli = arrpc_client_new("127.0.0.1", 1);
    assert_non_null(p.cli);
    p.cli->fd = sv[0]; /* the wait polls cli->fd only; nothing else of the client is used */
    p.peer = sv[1];
    *state = &p;
    return 0;
}

static int teardown(void **state)
{
    pair *p = *state;
    close(p->cli->fd);
    p->cli->fd = -1;
    close(p->peer);
    arrpc_client_free(p->cli);
    return 0;
}

static int wait_short(arrpc_client *cli)
{
    short rev = 0;
    return arrpc__client_wait_reply(cli, arrpc__clock_ms() + SHORT_WAIT_MS, &rev);
}

static void spins_that_run_out_back_off(void **state)
{
    pair *p = *state;
    assert_int_equal(arrpc_client_set_spin(p->cli, 100), 0);
    /* nothing to read: each wait times out; spins run out at waits 1, 3, 7, 15 */
    unsigned expected_skips[] = {1, 0, 3, 2, 1, 0, 7};
    for (size_t i = 0; i < sizeof expected_skips / sizeof *expected_skips; i++) {
        assert_int_equal(wait_short(p->cli), 0);
        assert_int_equal(p->cli->spin_skips, expected_skips[i]);
    }
    assert_int_equal(p->cli->spin_misses, 3);
    for (int i = 0; i < 40; i++)
        (void)wait_short(p->cli);
    assert_true(p->cli->spin_skips < 1024u);
    /* at the cap, the back-off stops growing: 1023 waits */
    p->cli->spin_misses = 10;
    p->cli->spin_skips = 0;
    assert_int_equal(wait_short(p->cli), 0);
    assert_int_equal(p->cli->spin_skips, 1023);
}

static void a_reply_within_the_spin_clears_the_back_off(void **state)
{
    pair *p = *state;
    assert_int_equal(arrpc_client_set_spin(p->cli, 100), 0);
    p->cli->spin_misses = 4; /* as after a few slow replies; set_spin cleared the skips */
    assert_int_equal(write(p->peer, "\xc0", 1), 1);
    short rev = 0;
    assert_int_equal(arrpc__client_wait_reply(p->cli, arrpc__clock_ms() + 5000u, &rev), 1);
    assert_true(rev & POLLIN);
    assert_int_equal(p->cli->spin_misses, 0); /* it came while spinning: spinning pays off */
    assert_int_equal(p->cli->spin_skips, 0);
    char byte;
    assert_int_equal(read(p->cli->fd, &byte, 1), 1);
}

static void no_spin_never_backs_off(void **state)
{
    pair *p = *state;
    assert_int_equal(arrpc_client_set_spin(p->cli, 0), 0);
    assert_int_equal(wait_short(p->cli), 0);
    assert_int_equal(p->cli->spin_misses, 0);
    assert_int_equal(p->cli->spin_skips, 0);
    assert_int_equal(write(p->peer, "\xc0", 1), 1);
    short rev = 0;
    assert_int_equal(arrpc__client_wait_reply(p->cli, arrpc__clock_ms() + 5000u, &rev), 1);
    char byte;
    assert_int_equal(read(p->cli->fd, &byte, 1), 1);
}

static void the_spin_is_bounded(void **state)
{
    pair *p = *state;
    assert_int_equal(arrpc_client_set_spin(p->cli, ARRPC_CLIENT_SPIN_MAX_US + 1), ARRPC_EINVAL);
    assert_int_equal(arrpc_client_set_spin(NULL, 10), ARRPC_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(spins_that_run_out_back_off, setup, teardown),
        cmocka_unit_test_setup_teardown(a_reply_within_the_spin_clears_the_back_off, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(no_spin_never_backs_off, setup, teardown),
        cmocka_unit_test_setup_teardown(the_spin_is_bounded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
