/* test_errors.c -- the ARRPC_E* table: every code has its own name and text. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "arrpc.h"

/* The table as the X-macro states it, to compare the functions against. */
typedef struct {
    const char *name;
    int value;
    int enum_value;
    const char *text;
} code;

static const code codes[] = {
#define ARRPC_TEST_ROW(name, value, text) {#name, value, ARRPC_##name, text},
    ARRPC_ERRNO_MAP(ARRPC_TEST_ROW)
#undef ARRPC_TEST_ROW
};

#define N_CODES (sizeof codes / sizeof codes[0])

static void test_enum_matches_table(void **state)
{
    (void)state;
    assert_true(N_CODES >= 2);
    for (size_t i = 0; i < N_CODES; i++)
        assert_int_equal(codes[i].enum_value, codes[i].value);
    assert_int_equal(ARRPC_OK, 0);
}

static void test_every_code_has_its_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CODES; i++) {
        const char *text = arrpc_strerror(codes[i].value);
        assert_non_null(text);
        assert_true(strlen(text) > 0);
        assert_string_equal(text, codes[i].text);
    }
}

static void test_every_code_has_its_name(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CODES; i++) {
        const char *name = arrpc_errname(codes[i].value);
        assert_non_null(name);
        assert_true(strlen(name) > 0);
        assert_string_equal(name, codes[i].name);
    }
}

static void test_values_names_and_texts_are_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CODES; i++) {
        for (size_t j = i + 1; j < N_CODES; j++) {
            assert_int_not_equal(codes[i].value, codes[j].value);
            assert_string_not_equal(arrpc_strerror(codes[i].value), arrpc_strerror(codes[j].value));
            assert_string_not_equal(arrpc_errname(codes[i].value), arrpc_errname(codes[j].value));
        }
    }
}

/* Errors are 0 or negative, so that `rc < 0` means failure everywhere. */
static void test_errors_are_negative(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CODES; i++)
        if (strcmp(codes[i].name, "OK") != 0) assert_true(codes[i].value < 0);
}

static void test_unknown_values(void **state)
{
    (void)state;
    static const int unknown[] = {1, 42, -1000, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_string_equal(arrpc_strerror(unknown[i]), "unknown error");
        assert_string_equal(arrpc_errname(unknown[i]), "EUNKNOWN");
    }
    for (size_t i = 0; i < N_CODES; i++) /* no known code reads like an unknown one */
        assert_string_not_equal(arrpc_strerror(codes[i].value), "unknown error");
}

/* One past the lowest code is unknown: the table has no silent gaps at its end. */
static void test_one_below_the_lowest_code_is_unknown(void **state)
{
    (void)state;
    int lowest = 0;
    for (size_t i = 0; i < N_CODES; i++)
        if (codes[i].value < lowest) lowest = codes[i].value;
    assert_string_equal(arrpc_strerror(lowest - 1), "unknown error");
    assert_string_not_equal(arrpc_strerror(lowest), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enum_matches_table),
        cmocka_unit_test(test_every_code_has_its_text),
        cmocka_unit_test(test_every_code_has_its_name),
        cmocka_unit_test(test_values_names_and_texts_are_distinct),
        cmocka_unit_test(test_errors_are_negative),
        cmocka_unit_test(test_unknown_values),
        cmocka_unit_test(test_one_below_the_lowest_code_is_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
