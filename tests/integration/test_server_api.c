/* test_server_api.c -- the library's server life cycle, in C: background start in-process and
 * pre-fork, a call through the C client, a draining stop. Forks and uses real sockets on
 * 127.0.0.1, so it is an integration test. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arrpc.h"

static int answer_42(arrpc_call *call, const msgpack_object *req, msgpack_packer *res, void *ud)
{
    (void)call, (void)req, (void)ud;
    return msgpack_pack_int(res, 42);
}

/* One call through the client; returns the integer answered, or -1. */
static long call_once(uint16_t port)
{
    static const uint8_t request[] = {0xc0}; /* nil */
    arrpc_client *cli = arrpc_client_new("127.0.0.1", port);
    arrpc_client_set_timeout(cli, 5000);
    arrpc_client_set_con_max_retries(cli, 1);
    arrpc_response *res = NULL;
    long value = -1;
    if (arrpc_client_send(cli, request, sizeof request, &res) == 0 &&
        arrpc_response_object(res)->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        value = (long)arrpc_response_object(res)->via.u64;
    arrpc_response_free(res);
    arrpc_client_free(cli);
    return value;
}

static void run_in_background(unsigned workers)
{
    arrpc_server *srv = arrpc_server_new("127.0.0.1", 0, answer_42, NULL);
    assert_non_null(srv);
    assert_int_equal(arrpc_server_set_workers(srv, workers), 0);
    assert_int_equal(arrpc_server_bind(srv), 0);
    uint16_t port = arrpc_server_port(srv);
    assert_true(port > 0);
    assert_int_equal(arrpc_server_start(srv), 0); /* returns once it accepts */
    assert_int_equal(call_once(port), 42);
    assert_int_equal(arrpc_server_start(srv), ARRPC_ESTATE);
    arrpc_server_stop(srv);
    assert_int_equal(arrpc_server_wait(srv), 0);
    assert_int_equal(call_once(port), -1); /* stopped: nobody accepts */
    arrpc_server_free(srv);
}

static void test_background_in_process(void **state)
{
    (void)state;
    run_in_background(0);
}

static void test_background_prefork(void **state)
{
    (void)state;
    run_in_background(2);
}

/* ---- the lifecycle set through the API, in-process ---- */

static long init_value; /* what init read from its argument; the handler answers it */
static int finis;

static int answer_udata(arrpc_call *call, const msgpack_object *req, msgpack_packer *res, void *ud)
{
    (void)call, (void)req;
    return msgpack_pack_long(res, *(const long *)ud);
}

static int init_from_arg(const char *arg, void **udata)
{
    init_value = strtol(arg, NULL, 10);
    if (init_value < 0) return (int)-init_value; /* "-3": fail with 3 */
    *udata = &init_value;
    return 0;
}

static void count_fini(void *udata)
{
    assert_ptr_equal(udata, &init_value);
    finis++;
}

static arrpc_server *lifecycle_server(const char *arg)
{
    arrpc_server *srv = arrpc_server_new("127.0.0.1", 0, answer_udata, NULL);
    assert_non_null(srv);
    assert_int_equal(arrpc_server_set_handler_lifecycle(srv, init_from_arg, count_fini, arg), 0);
    return srv;
}

static void test_lifecycle_in_process(void **state)
{
    (void)state;
    char arg[] = "7";
    arrpc_server *srv = lifecycle_server(arg);
    arg[0] = '9'; /* the server keeps its own copy */
    finis = 0;
    assert_int_equal(arrpc_server_bind(srv), 0);
    assert_int_equal(arrpc_server_start(srv), 0);
    assert_int_equal(call_once(arrpc_server_port(srv)), 7);
    assert_int_equal(arrpc_server_set_handler_lifecycle(srv, NULL, NULL, NULL), ARRPC_ESTATE);
    assert_int_equal(finis, 0);
    arrpc_server_stop(srv);
    assert_int_equal(arrpc_server_wait(srv), 0);
    assert_int_equal(finis, 1);
    arrpc_server_free(srv);
}

static void test_lifecycle_failing_init(void **state)
{
    (void)state;
    arrpc_server *srv = lifecycle_server("-3");
    finis = 0;
    assert_int_equal(arrpc_server_run(srv), ARRPC_ELOAD);
    assert_non_null(strstr(arrpc_server_errstr(srv), "returned 3"));
    assert_int_equal(finis, 0);
    arrpc_server_free(srv);
}

static void test_run_without_handler_fails(void **state)
{
    (void)state;
    arrpc_server *srv = arrpc_server_new("127.0.0.1", 0, NULL, NULL);
    assert_int_equal(arrpc_server_run(srv), ARRPC_EINVAL);
    assert_non_null(strstr(arrpc_server_errstr(srv), "handler"));
    arrpc_server_free(srv);
}

static void test_settings_refused_while_running(void **state)
{
    (void)state;
    arrpc_server *srv = arrpc_server_new("127.0.0.1", 0, answer_42, NULL);
    assert_int_equal(arrpc_server_start(srv), 0);
    assert_int_equal(arrpc_server_set_max_message(srv, 1024), ARRPC_ESTATE);
    arrpc_server_stop(srv);
    assert_int_equal(arrpc_server_wait(srv), 0);
    arrpc_server_free(srv);
}

/* The deployment setters: bad values refused with a reason, good ones taken, none while running. */
static void test_deployment_settings(void **state)
{
    (void)state;
    arrpc_server *srv = arrpc_server_new("127.0.0.1", 0, answer_42, NULL);
    assert_int_equal(arrpc_server_set_proxy_protocol(srv, "10.0.0.1/8"), ARRPC_EINVAL);
    assert_non_null(strstr(arrpc_server_errstr(srv), "10.0.0.1/8"));
    assert_int_equal(arrpc_server_set_proxy_protocol(srv, "10.0.0.0/8,fd00::/8,192.0.2.1"), 0);
    assert_int_equal(arrpc_server_set_proxy_protocol(srv, NULL), 0);
    assert_int_equal(arrpc_server_set_tcp_keepalive(srv, 32768), ARRPC_EINVAL);
    assert_int_equal(arrpc_server_set_tcp_keepalive(srv, 0), 0);
    assert_int_equal(arrpc_server_set_max_connection_age(srv, UINT_MAX, 1), ARRPC_EINVAL);
    assert_int_equal(arrpc_server_set_max_connection_age(srv, 60000, 5000), 0);
    assert_int_equal(arrpc_server_start(srv), 0);
    assert_int_equal(arrpc_server_set_proxy_protocol(srv, "10.0.0.0/8"), ARRPC_ESTATE);
    assert_int_equal(arrpc_server_set_tcp_keepalive(srv, 60), ARRPC_ESTATE);
    assert_int_equal(arrpc_server_set_max_connection_age(srv, 0, 0), ARRPC_ESTATE);
    arrpc_server_stop(srv);
    assert_int_equal(arrpc_server_wait(srv), 0);
    arrpc_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_background_in_process),
        cmocka_unit_test(test_background_prefork),
        cmocka_unit_test(test_lifecycle_in_process),
        cmocka_unit_test(test_lifecycle_failing_init),
        cmocka_unit_test(test_run_without_handler_fails),
        cmocka_unit_test(test_settings_refused_while_running),
        cmocka_unit_test(test_deployment_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
