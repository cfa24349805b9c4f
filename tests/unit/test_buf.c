/* test_buf.c -- growable buffers: append, consume, reserve, truncate, and the packer callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "arrpc.h"
#include "core/buf.h"

static void assert_holds(const arrpc__buf *b, const char *text)
{
    assert_int_equal(arrpc__buf_used(b), strlen(text));
    assert_memory_equal(b->data + b->head, text, strlen(text));
}

static void test_new_buffer_is_empty(void **state)
{
    (void)state;
    arrpc__buf b = {0};
    assert_int_equal(arrpc__buf_used(&b), 0);
    assert_int_equal(arrpc__buf_append(&b, "", 0), 0);
    assert_int_equal(arrpc__buf_used(&b), 0);
    arrpc__buf_free(&b);
}

static void test_append_keeps_bytes_in_order(void **state)
{
    (void)state;
    arrpc__buf b = {0};
    assert_int_equal(arrpc__buf_append(&b, "hello", 5), 0);
    assert_int_equal(arrpc__buf_append(&b, ", world", 7), 0);
    assert_holds(&b, "hello, world");
    assert_true(b.cap >= b.len);
    arrpc__buf_free(&b);
}

static void test_append_grows_past_any_initial_capacity(void **state)
{
    (void)state;
    arrpc__buf b = {0};
    uint8_t chunk[1000];
    for (size_t i = 0; i < 300; i++) { /* 300 kB, several doublings */
        memset(chunk, (int)(i & 0xff), sizeof chunk);
        assert_int_equal(arrpc__buf_append(&b, chunk, sizeof chunk), 0);
    }
    assert_int_equal(arrpc__buf_used(&b), 300000);
    for (size_t i = 0; i < 300; i++)
        assert_int_equal(b.data[i * 1000 + 999], i & 0xff);
    arrpc__buf_free(&b);
}

static void test_consume_advances_head(void **state)
{
    (void)state;
    arrpc__buf b = {0};
    assert_int_equal(arrpc__buf_append(&b, "abcdef", 6), 0);
    arrpc__buf_consume(&b, 2);
    assert_int_equal(b.head, 2);
    assert_holds(&b, "cdef");
    arrpc__buf_consume(&b, 3);
    assert_holds(&b, "f");
    arrpc__buf_free(&b);
}

/* An emptied buffer starts again at offset 0 and keeps a small allocation for reuse. */
static void test_consume_all_restarts_and_keeps_small_memory(void **state)
{
    (void)state;
    arrpc__buf b = {0};
    assert_int_equal(arrpc__buf_append(&b, "abc", 3), 0);
    uint8_t *data = b.data;
    size_t cap = b.cap;
    assert_true(cap <= ARRPC_BUF_KEEP);
    arrpc__buf_consume(&b, 3);
    assert_int_equal(b.head, 0);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    arrpc__buf_free(&b);
}

static void test_consume_all_releases_large_memory(void **state)
{
    (void)state;
    static uint8_t big[ARRPC_BUF_KEEP + 1];
    arrpc__buf b = {0};
    assert_int_equal(arrpc__buf_append(&b, big, sizeof big), 0);
    assert_true(b.cap > ARRPC_BUF_KEEP);
    arrpc__buf_consume(&b, 100);
    assert_non_null(b.data); /* not empty yet: nothing released */
    arrpc__buf_consume(&b, sizeof big - 100);
    assert_null(b.data);
    assert_int_equal(b.cap, 0);
    assert_int_equal(arrpc__buf_used(&b), 0);
    assert_int_equal(arrpc__buf_append(&b, "x", 1), 0); /* and it is still usable */
    assert_holds(&b, "x");
    arrpc__buf_free(&b);
}

static void test_reserve_with_room_changes_nothing(void **state)
{
    (void)state;
    arrpc__buf b = {0};
    assert_int_equal(arrpc__buf_append(&b, "abcd", 4), 0);
    arrpc__buf_consume(&b, 1);
    uint8_t *data = b.data;
    size_t cap = b.cap;
    assert_int_equal(arrpc__buf_reserve(&b, cap - b.len), 0);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_int_equal(b.head, 1);
    assert_holds(&b, "bcd");
    arrpc__buf_free(&b);
}

/* Fills a buffer to its capacity with a counting pattern, then consumes `consumed` bytes. */
static void fill_and_consume(arrpc__buf *b, size_t consumed)
{
    assert_int_equal(arrpc__buf_reserve(b, 1), 0);
    size_t cap = b->cap;
    for (size_t i = 0; i < cap; i++) {
        uint8_t byte = (uint8_t)i;
        assert_int_equal(arrpc__buf_append(b, &byte, 1), 0);
    }
    assert_int_equal(b->cap, cap);
    arrpc__buf_consume(b, consumed);
}

/* When the consumed front makes enough room, reserve moves the rest there instead of growing. */
static void test_reserve_moves_unconsumed_bytes_to_the_front(void **state)
{
    (void)state;
    arrpc__buf b = {0};
    fill_and_consume(&b, 1000);
    uint8_t *data = b.data;
    size_t cap = b.cap, used = arrpc__buf_used(&b);
    assert_int_equal(arrpc__buf_reserve(&b, 500), 0);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_int_equal(b.head, 0);
    assert_int_equal(arrpc__buf_used(&b), used);
    for (size_t i = 0; i < used; i++)
        assert_int_equal(b.data[i], (uint8_t)(i + 1000));
    assert_true(b.cap - b.len >= 500);
    arrpc__buf_free(&b);
}

/* When it does not, reserve grows (doubling) and also starts the bytes at offset 0. */
static void test_reserve_grows_when_moving_is_not_enough(void **state)
{
    (void)state;
    arrpc__buf b = {0};
    fill_and_consume(&b, 10);
    size_t cap = b.cap, used = arrpc__buf_used(&b);
    assert_int_equal(arrpc__buf_reserve(&b, 11), 0);
    assert_int_equal(b.cap, 2 * cap);
    assert_int_equal(b.head, 0);
    assert_int_equal(arrpc__buf_used(&b), used);
    for (size_t i = 0; i < used; i++)
        assert_int_equal(b.data[i], (uint8_t)(i + 10));
    arrpc__buf_free(&b);
}

static void test_reserve_refuses_impossible_sizes(void **state)
{
    (void)state;
    arrpc__buf b = {0};
    assert_int_equal(arrpc__buf_append(&b, "keep", 4), 0);
    uint8_t *data = b.data;
    assert_int_equal(arrpc__buf_reserve(&b, SIZE_MAX), ARRPC_ENOMEM);
    assert_int_equal(arrpc__buf_reserve(&b, SIZE_MAX / 2), ARRPC_ENOMEM);
    assert_ptr_equal(b.data, data);
    assert_holds(&b, "keep");
    arrpc__buf_free(&b);
}

static void test_truncate_counts_from_head(void **state)
{
    (void)state;
    arrpc__buf b = {0};
    assert_int_equal(arrpc__buf_append(&b, "abcdef", 6), 0);
    arrpc__buf_consume(&b, 2);
    arrpc__buf_truncate(&b, 2);
    assert_holds(&b, "cd");
    arrpc__buf_truncate(&b, 10); /* longer than what is there: no change */
    assert_holds(&b, "cd");
    arrpc__buf_truncate(&b, 0);
    assert_int_equal(arrpc__buf_used(&b), 0);
    arrpc__buf_free(&b);
}

/* The pattern a reply uses: remember the length, append (which may move the bytes), take the
 * appended part back. The offset stays right because it is relative to head. */
static void test_truncate_after_reserve_moved_the_bytes(void **state)
{
    (void)state;
    arrpc__buf b = {0};
    fill_and_consume(&b, 1000);
    size_t start = arrpc__buf_used(&b);
    uint8_t first = b.data[b.head];
    static const uint8_t more[600] = {0};
    assert_int_equal(arrpc__buf_append(&b, more, sizeof more), 0);
    assert_int_equal(b.head, 0); /* it moved */
    arrpc__buf_truncate(&b, start);
    assert_int_equal(arrpc__buf_used(&b), start);
    assert_int_equal(b.data[b.head], first);
    assert_int_equal(b.data[b.head + start - 1], (uint8_t)(1000 + start - 1));
    arrpc__buf_free(&b);
}

static void test_free_resets_the_struct(void **state)
{
    (void)state;
    arrpc__buf b = {0};
    assert_int_equal(arrpc__buf_append(&b, "abc", 3), 0);
    arrpc__buf_consume(&b, 1);
    arrpc__buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.head, 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    arrpc__buf_free(&b); /* twice is harmless */
}

/* A packer writing into a buffer produces the same bytes as one writing into an sbuffer. */
static void pack_sample(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_int(pk, -7);
    msgpack_pack_str_with_body(pk, "text", 4);
    msgpack_pack_map(pk, 1);
    msgpack_pack_nil(pk);
    msgpack_pack_double(pk, 0.5);
}

static void test_pack_write_appends_packed_bytes(void **state)
{
    (void)state;
    arrpc__buf b = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    assert_int_equal(arrpc__buf_append(&b, "pre", 3), 0);
    arrpc__buf_consume(&b, 1);
    msgpack_packer_init(&pk, &b, arrpc__buf_pack_write);
    pack_sample(&pk);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_sample(&pk);
    assert_int_equal(arrpc__buf_used(&b), 2 + sb.size);
    assert_memory_equal(b.data + b.head, "re", 2);
    assert_memory_equal(b.data + b.head + 2, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    arrpc__buf_free(&b);
}

/* msgpack-c expects 0 for success and non-zero for failure from its write callback. */
static void test_pack_write_reports_failure(void **state)
{
    (void)state;
    arrpc__buf b = {0};
    assert_int_equal(arrpc__buf_pack_write(&b, "ab", 2), 0);
    assert_int_not_equal(arrpc__buf_pack_write(&b, "ab", SIZE_MAX), 0);
    assert_holds(&b, "ab");
    arrpc__buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_buffer_is_empty),
        cmocka_unit_test(test_append_keeps_bytes_in_order),
        cmocka_unit_test(test_append_grows_past_any_initial_capacity),
        cmocka_unit_test(test_consume_advances_head),
        cmocka_unit_test(test_consume_all_restarts_and_keeps_small_memory),
        cmocka_unit_test(test_consume_all_releases_large_memory),
        cmocka_unit_test(test_reserve_with_room_changes_nothing),
        cmocka_unit_test(test_reserve_moves_unconsumed_bytes_to_the_front),
        cmocka_unit_test(test_reserve_grows_when_moving_is_not_enough),
        cmocka_unit_test(test_reserve_refuses_impossible_sizes),
        cmocka_unit_test(test_truncate_counts_from_head),
        cmocka_unit_test(test_truncate_after_reserve_moved_the_bytes),
        cmocka_unit_test(test_free_resets_the_struct),
        cmocka_unit_test(test_pack_write_appends_packed_bytes),
        cmocka_unit_test(test_pack_write_reports_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
