/* test_client_wait.c -- arrpc_client_set_interrupt: a send waiting for a reply that never comes,
 * or sleeping between connect tries, ends with ARRPC_EINTR once the check says so (and not
 * before), the connection is closed, and the client sends again afterwards. The servers are
 * loopback sockets of the test itself on ephemeral ports: one that accepts (through the kernel's
 * backlog) and never answers, one port that refuses. */
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "arrpc.h"

#define CHECKS_BEFORE_STOP 3 /* the check says "go on" this many times, then "stop" */

typedef struct {
    int calls;
} check_state;

static int stop_at_third(void *udata)
{
    check_state *s = udata;
    return ++s->calls >= CHECKS_BEFORE_STOP;
}

/* A loopback socket bound to an ephemeral port, listening when asked; *port set. */
static int loopback_socket(int listening, uint16_t *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    if (listening) assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int send_nil(arrpc_client *cli)
{
    arrpc_response *res = NULL;
    int rc = arrpc_client_send(cli, "\xc0", 1, &res);
    arrpc_response_free(res);
    return rc;
}

static void waiting_for_a_reply_is_interrupted(void **state)
{
    (void)state;
    uint16_t port;
    int silent = loopback_socket(1, &port); /* connects succeed; nothing ever answers */
    arrpc_client *cli = arrpc_client_new("127.0.0.1", port);
    check_state s = {0};
    assert_int_equal(arrpc_client_set_interrupt(cli, stop_at_third, &s), 0);
    assert_int_equal(send_nil(cli), ARRPC_EINTR);
    assert_int_equal(s.calls, CHECKS_BEFORE_STOP);
    assert_non_null(strstr(arrpc_client_errstr(cli), "interrupted"));
    /* the next send starts on a new connection and is interrupted again the same way */
    s.calls = 0;
    assert_int_equal(send_nil(cli), ARRPC_EINTR);
    assert_int_equal(s.calls, CHECKS_BEFORE_STOP);
    arrpc_client_free(cli);
    close(silent);
}

static void back_off_between_connect_tries_is_interrupted(void **state)
{
    (void)state;
    uint16_t port;
    int refusing = loopback_socket(0, &port); /* bound, not listening: connects are refused */
    arrpc_client *cli = arrpc_client_new("127.0.0.1", port);
    check_state s = {0};
    assert_int_equal(arrpc_client_set_con_max_retries(cli, 1000), 0); /* hours of back-off */
    assert_int_equal(arrpc_client_set_interrupt(cli, stop_at_third, &s), 0);
    assert_int_equal(send_nil(cli), ARRPC_EINTR);
    assert_int_equal(s.calls, CHECKS_BEFORE_STOP);
    arrpc_client_free(cli);
    close(refusing);
}

static int never(void *udata)
{
    (void)udata;
    return 0;
}

static void a_check_that_never_stops_changes_nothing(void **state)
{
    (void)state;
    uint16_t port;
    int refusing = loopback_socket(0, &port);
    arrpc_client *cli = arrpc_client_new("127.0.0.1", port);
    assert_int_equal(arrpc_client_set_con_max_retries(cli, 2), 0);
    assert_int_equal(arrpc_client_set_retry_backoff(cli, 250), 0); /* two slices and a half */
    assert_int_equal(arrpc_client_set_interrupt(cli, never, NULL), 0);
    assert_int_equal(send_nil(cli), ARRPC_ECONNECT);
    assert_int_equal(arrpc_client_set_interrupt(cli, NULL, NULL), 0);
    assert_int_equal(send_nil(cli), ARRPC_ECONNECT);
    assert_int_equal(arrpc_client_set_interrupt(NULL, never, NULL), ARRPC_EINVAL);
    arrpc_client_free(cli);
    close(refusing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(waiting_for_a_reply_is_interrupted),
        cmocka_unit_test(back_off_between_connect_tries_is_interrupted),
        cmocka_unit_test(a_check_that_never_stops_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
