/* test_handler.c -- finding a handler and its lifecycle: built in, or a plugin's SYMBOL,
 * SYMBOL_init and SYMBOL_fini; init before serving, fini after, a failing init refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "arrpc.h"
#include "workers/handler.h"
#include "workers/worker.h"

#define PLUGIN(file) ARRPC_TEST_LIB_DIR "/" file

static void test_builtin_has_no_lifecycle(void **state)
{
    (void)state;
    arrpc__handler h;
    char err[256];
    assert_int_equal(arrpc__handler_load("echo", &h, err, sizeof err), 0);
    assert_non_null(h.fn);
    assert_null(h.init);
    assert_null(h.fini);
    arrpc__handler_unload(&h);
}

/* The default symbol's lifecycle is arrpc_handler_init / _fini; a named one's is NAME_init. */
static void test_plugin_lifecycle_symbols(void **state)
{
    (void)state;
    static const struct {
        const char *spec, *init_name;
    } cases[] = {
        {PLUGIN("arrpc-demo.so"), "arrpc_handler_init"},
        {PLUGIN("arrpc-counter.so:counter"), "counter_init"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        arrpc__handler h;
        char err[512];
        assert_int_equal(arrpc__handler_load(cases[i].spec, &h, err, sizeof err), 0);
        assert_non_null(h.fn);
        assert_non_null(h.init);
        assert_non_null(h.fini);
        assert_string_equal(h.init_name, cases[i].init_name);
        arrpc__worker_config cfg = {0};
        arrpc__handler_apply(&h, &cfg);
        assert_ptr_equal(cfg.init, h.init);
        assert_string_equal(cfg.init_name, cases[i].init_name);
        arrpc__handler_unload(&h);
    }
}

/* A plugin whose symbol has no _init or _fini beside it loads all the same. */
static void test_plugin_without_lifecycle(void **state)
{
    (void)state;
    arrpc__handler h;
    char err[512];
    assert_int_equal(
        arrpc__handler_load(PLUGIN("arrpc-demo.so:arrpc_handler_fini"), &h, err, sizeof err),
        0); /* a symbol used as the handler only to have one with no _init */
    assert_null(h.init);
    assert_null(h.fini);
    arrpc__handler_unload(&h);
}

/* ---- the lifecycle around a worker's loop ------------------------------------------------- */

typedef struct {
    int inits, finis;
    int fail;         /* init returns this */
    const char *arg;  /* what init was given */
    void *fini_udata; /* what fini was given */
} lifecycle;

static lifecycle seen;
static int mine; /* its address is the udata init hands over */

static int t_init(const char *arg, void **udata)
{
    seen.inits++;
    seen.arg = arg;
    if (seen.fail) return seen.fail;
    *udata = &mine;
    return 0;
}

static void t_fini(void *udata)
{
    seen.finis++;
    seen.fini_udata = udata;
}

/* A worker with no socket, told to stop before it starts: it runs init, drains at once, and
 * runs fini. */
static int run_worker(const char *arg, char *err, size_t errlen)
{
    int stop = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(stop >= 0);
    arrpc__worker_config cfg = {
        .handler = arrpc__handler_echo,
        .init = t_init,
        .fini = t_fini,
        .init_arg = arg,
        .init_name = "t_init",
        .max_message = ARRPC_DEFAULT_MAX_MESSAGE,
        .max_depth = ARRPC_DEFAULT_MAX_DEPTH,
        .max_connections = 1,
    };
    arrpc__worker_io io = {.stop_fd = stop, .control_fd = -1, .reopen_fd = -1, .rescue_fd = -1};
    int rc = arrpc__worker_run(&io, &cfg, err, errlen);
    close(stop);
    return rc;
}

static void test_init_then_fini_with_its_udata(void **state)
{
    (void)state;
    char err[256];
    seen = (lifecycle){0};
    assert_int_equal(run_worker("hello", err, sizeof err), 0);
    assert_int_equal(seen.inits, 1);
    assert_string_equal(seen.arg, "hello");
    assert_int_equal(seen.finis, 1);
    assert_ptr_equal(seen.fini_udata, &mine);
}

static void test_failing_init_is_a_failed_start(void **state)
{
    (void)state;
    char err[256];
    seen = (lifecycle){.fail = 7};
    assert_int_equal(run_worker(NULL, err, sizeof err), ARRPC_ELOAD);
    assert_null(seen.arg);
    assert_int_equal(seen.finis, 0); /* fini only after an init that succeeded */
    assert_non_null(strstr(err, "t_init returned 7"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_has_no_lifecycle),
        cmocka_unit_test(test_plugin_lifecycle_symbols),
        cmocka_unit_test(test_plugin_without_lifecycle),
        cmocka_unit_test(test_init_then_fini_with_its_udata),
        cmocka_unit_test(test_failing_init_is_a_failed_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
