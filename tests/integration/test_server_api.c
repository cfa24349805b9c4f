/* test_server_api.c -- the library's server life cycle, in C: background start in-process and
 * pre-fork, a call through the C client, a draining stop. Forks and uses real sockets on
 * 127.0.0.1, so it is an integration test. */
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

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

/* ---- the access log through the API ---- */

#define LOG_WAIT_TRIES 250 /* 20 ms apart: 5 s for a line to appear */

/* Lines in the file at path (0 when it does not exist); each must hold the handler's name. */
static int lines_in(const char *path)
{
    char buf[8192];
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && fgets(buf, sizeof buf, f)) {
        assert_non_null(strstr(buf, "\"handler\":\"handler\""));
        n++;
    }
    if (f) fclose(f);
    return n;
}

/* Calls until the file at path holds a line (a worker may read the reopen message after the
 * call); returns the calls made. */
static int call_until_logged(uint16_t port, const char *path)
{
    int calls = 0;
    for (int i = 0; i < LOG_WAIT_TRIES && lines_in(path) == 0; i++) {
        if (i % 10 == 0) {
            assert_int_equal(call_once(port), 42);
            calls++;
        }
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    assert_true(lines_in(path) > 0);
    return calls;
}

static void access_log_in_background(unsigned workers)
{
    char dir[] = "/tmp/arrpc-api-log-XXXXXX", path[64], old[80];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/access.log", dir);
    snprintf(old, sizeof old, "%s.1", path);
    arrpc_server *srv = arrpc_server_new("127.0.0.1", 0, answer_42, NULL);
    assert_int_equal(arrpc_server_set_access_log(srv, path, (arrpc_access_log_format)7),
                     ARRPC_EINVAL);
    assert_int_equal(arrpc_server_set_access_log(srv, "", ARRPC_ACCESS_LOG_JSON), ARRPC_EINVAL);
    assert_int_equal(arrpc_server_set_access_log(srv, path, ARRPC_ACCESS_LOG_JSON), 0);
    assert_int_equal(arrpc_server_set_workers(srv, workers), 0);
    assert_int_equal(arrpc_server_bind(srv), 0);
    uint16_t port = arrpc_server_port(srv);
    assert_int_equal(arrpc_server_start(srv), 0);
    int calls = call_until_logged(port, path);
    assert_int_equal(rename(path, old), 0);
    arrpc_server_reopen_access_log(srv);
    calls += call_until_logged(port, path);
    arrpc_server_stop(srv);
    assert_int_equal(arrpc_server_wait(srv), 0);
    arrpc_server_free(srv);
    assert_int_equal(lines_in(old) + lines_in(path), calls); /* every call once, whole */
    assert_true(lines_in(old) >= 1);
    unlink(path);
    unlink(old);
    rmdir(dir);
}

static void test_access_log_in_process(void **state)
{
    (void)state;
    access_log_in_background(0);
}

static void test_access_log_prefork(void **state)
{
    (void)state;
    access_log_in_background(2);
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

/* ---- the reload hook, pre-fork ---- */

#define RELOAD_WAIT_STEPS 200 /* times RELOAD_WAIT_STEP_NS: how long a reload may take (10 s) */
#define RELOAD_WAIT_STEP_NS 50000000L

/* In the master, on SIGHUP: a new init argument for the next generation. Turning TLS on and
 * going to 0 workers must be refused there; if either is not, the hook fails the reload and the
 * old answer stays, which the test sees. */
static int reload_to_two(arrpc_server *srv, void *udata)
{
    (void)udata;
    if (arrpc_server_set_tls(srv, "/nonexistent.pem", "/nonexistent.key", NULL) != ARRPC_ESTATE ||
        arrpc_server_set_workers(srv, 0) != ARRPC_ESTATE)
        return -1;
    return arrpc_server_set_handler_lifecycle(srv, init_from_arg, count_fini, "2");
}

static long master_pid(const char *pid_file)
{
    FILE *f = fopen(pid_file, "r");
    long pid = 0;
    if (f && fscanf(f, "%ld", &pid) != 1) pid = 0;
    if (f) fclose(f);
    return pid;
}

static void test_reload_hook_changes_the_next_generation(void **state)
{
    (void)state;
    char pid_file[] = "/tmp/arrpc-test-reload-XXXXXX";
    int fd = mkstemp(pid_file);
    assert_true(fd >= 0);
    close(fd);
    arrpc_server *srv = lifecycle_server("1");
    assert_int_equal(arrpc_server_set_workers(srv, 1), 0);
    assert_int_equal(arrpc_server_set_pid_file(srv, pid_file), 0);
    assert_int_equal(arrpc_server_set_reload_hook(srv, reload_to_two, NULL), 0);
    assert_int_equal(arrpc_server_bind(srv), 0);
    uint16_t port = arrpc_server_port(srv);
    assert_int_equal(arrpc_server_start(srv), 0);
    assert_int_equal(call_once(port), 1);
    assert_int_equal(arrpc_server_set_reload_hook(srv, NULL, NULL), ARRPC_ESTATE); /* running */
    long pid = master_pid(pid_file);
    assert_true(pid > 0);
    assert_int_equal(kill((pid_t)pid, SIGHUP), 0);
    long answer = 1;
    struct timespec step = {0, RELOAD_WAIT_STEP_NS};
    for (int i = 0; i < RELOAD_WAIT_STEPS && answer != 2; i++, nanosleep(&step, NULL))
        answer = call_once(port);
    assert_int_equal(answer, 2);
    arrpc_server_stop(srv);
    assert_int_equal(arrpc_server_wait(srv), 0);
    arrpc_server_free(srv);
    unlink(pid_file);
}

/* ---- recycling set through the API, pre-fork ---- */

#define RECYCLE_BOUND 20u        /* requests per worker */
#define RECYCLE_CHANGES 3u       /* workers to see replaced */
#define RECYCLE_CALLS_MAX 200000 /* bounds the loop should recycling never happen */

static int answer_pid(arrpc_call *call, const msgpack_object *req, msgpack_packer *res, void *ud)
{
    (void)call, (void)req, (void)ud;
    return msgpack_pack_long(res, (long)getpid());
}

/* Calls on one client until its answers came from RECYCLE_CHANGES + 1 workers in turn; every
 * worker but the last answered at least RECYCLE_BOUND of them, and no call failed. */
static void call_through_recycles(uint16_t port)
{
    static const uint8_t request[] = {0xc0};
    arrpc_client *cli = arrpc_client_new("127.0.0.1", port);
    arrpc_client_set_timeout(cli, 10000);
    arrpc_client_set_con_max_retries(cli, 1);
    long last = 0;
    unsigned changes = 0, run = 0, failures = 0;
    for (unsigned i = 0; i < RECYCLE_CALLS_MAX && changes < RECYCLE_CHANGES && !failures; i++) {
        arrpc_response *res = NULL;
        if (arrpc_client_send(cli, request, sizeof request, &res) != 0) {
            failures++;
            break;
        }
        long pid = (long)arrpc_response_object(res)->via.i64;
        arrpc_response_free(res);
        if (last && pid != last) {
            assert_true(run >= RECYCLE_BOUND); /* the old worker reached its bound first */
            changes++;
            run = 0;
        }
        last = pid;
        run++;
    }
    arrpc_client_free(cli);
    assert_int_equal(failures, 0);
    assert_int_equal(changes, RECYCLE_CHANGES);
}

static void test_recycled_by_max_requests(void **state)
{
    (void)state;
    arrpc_server *srv = arrpc_server_new("127.0.0.1", 0, answer_pid, NULL);
    assert_int_equal(arrpc_server_set_workers(srv, 1), 0);
    assert_int_equal(arrpc_server_set_max_requests(srv, RECYCLE_BOUND, 0), 0);
    assert_int_equal(arrpc_server_bind(srv), 0);
    uint16_t port = arrpc_server_port(srv); /* the master takes the socket when it starts */
    assert_int_equal(arrpc_server_start(srv), 0);
    assert_int_equal(arrpc_server_set_max_requests(srv, 1, 0), ARRPC_ESTATE);
    assert_int_equal(arrpc_server_set_max_worker_lifetime(srv, 1000), ARRPC_ESTATE);
    assert_int_equal(arrpc_server_set_max_worker_rss(srv, 1u << 30), ARRPC_ESTATE);
    call_through_recycles(port);
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
        cmocka_unit_test(test_reload_hook_changes_the_next_generation),
        cmocka_unit_test(test_recycled_by_max_requests),
        cmocka_unit_test(test_access_log_in_process),
        cmocka_unit_test(test_access_log_prefork),
        cmocka_unit_test(test_deployment_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
