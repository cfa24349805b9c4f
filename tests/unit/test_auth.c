/* test_auth.c -- HMAC-SHA256 against RFC 4231 on both SHA-256 paths (wolfCrypt, SHA-NI), and the
 * sign envelope: open, refuse, wrap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "arrpc.h"
#include "core/auth.h"
#include "core/sha256_hw.h"

static const uint8_t secret[] = "correct horse battery staple";
#define SECRET_LEN (sizeof secret - 1)

/* ---- RFC 4231 ----------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    uint8_t key_byte; /* the key: key_len copies of key_byte; 0x01, 0x02... when key_byte is 0; */
    size_t key_len;   /* "Jefe" when key_len is 0 */
    const char *data;
    size_t data_len;
    const char *hex;
} vector;

#define REPEAT10(b) b b b b b b b b b b
#define REPEAT50(b) REPEAT10(b) REPEAT10(b) REPEAT10(b) REPEAT10(b) REPEAT10(b)

static const vector rfc4231[] = {
    {"test case 1", 0x0b, 20, "Hi There", 8,
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
    {"test case 2", 0, 0, "what do ya want for nothing?", 28,
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
    {"test case 3", 0xaa, 20, REPEAT50("\xdd"), 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
    {"test case 4", 0, 25, REPEAT50("\xcd"), 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
    {"test case 6", 0xaa, 131, "Test Using Larger Than Block-Size Key - Hash Key First", 54,
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
    {"test case 7", 0xaa, 131,
     "This is a test using a larger than block-size key and a larger than block-size data. The "
     "key needs to be hashed before being used by the HMAC algorithm.",
     152, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
};

static size_t vector_key(const vector *v, uint8_t key[static 131])
{
    if (v->key_len == 0) {
        memcpy(key, "Jefe", 4);
        return 4;
    }
    for (size_t i = 0; i < v->key_len; i++)
        key[i] = v->key_byte ? v->key_byte : (uint8_t)(i + 1);
    return v->key_len;
}

static void test_hmac_sha256_rfc4231(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rfc4231 / sizeof rfc4231[0]; i++) {
        const vector *v = &rfc4231[i];
        uint8_t key[131];
        size_t key_len = vector_key(v, key);
        char hex[ARRPC_SIGN_HEX_LEN + 1];
        print_message("%s\n", v->name);
        assert_int_equal(strlen(v->data), v->data_len);
        assert_int_equal(arrpc__auth_sign_hex(key, key_len, v->data, v->data_len, hex), 0);
        assert_string_equal(hex, v->hex);
    }
}

static void hex_encode(const uint8_t mac[32], char hex[ARRPC_SIGN_HEX_LEN + 1])
{
    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
}

/* The vectors through one SHA-256 path, forced. */
static void check_rfc4231_on(arrpc__sha256_path path)
{
    for (size_t i = 0; i < sizeof rfc4231 / sizeof rfc4231[0]; i++) {
        const vector *v = &rfc4231[i];
        uint8_t key[131], mac[32];
        size_t key_len = vector_key(v, key);
        char hex[ARRPC_SIGN_HEX_LEN + 1];
        print_message("%s\n", v->name);
        assert_int_equal(arrpc__auth_hmac_sha256(key, key_len, v->data, v->data_len, mac, path), 0);
        hex_encode(mac, hex);
        assert_string_equal(hex, v->hex);
    }
}

static void test_hmac_sha256_rfc4231_on_wolfcrypt(void **state)
{
    (void)state;
    check_rfc4231_on(ARRPC_SHA256_WOLFCRYPT);
}

static void test_hmac_sha256_rfc4231_on_sha_extensions(void **state)
{
    (void)state;
    if (!arrpc__sha256_hw_available()) skip(); /* no SHA-NI here, or valgrind hides it */
    check_rfc4231_on(ARRPC_SHA256_HW);
}

/* Forcing the hardware path where there is none is an error, not a silent fallback. */
static void test_hw_path_refused_without_sha_extensions(void **state)
{
    (void)state;
    uint8_t mac[32];
    if (arrpc__sha256_hw_available()) skip();
    assert_int_equal(arrpc__auth_hmac_sha256(secret, SECRET_LEN, "x", 1, mac, ARRPC_SHA256_HW),
                     ARRPC_EINVAL);
}

/* Deterministic bytes (xorshift32), so that a failure repeats. */
static void fill_pseudo_random(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed ? seed : 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)(x >> 24);
    }
}

/* Both paths agree on every message length across the padding's one-or-two-block boundary (55,
 * 56, 64) and several whole blocks, for keys shorter than, equal to and longer than a block;
 * and arrpc__auth_sign_hex writes the same MAC in hex. */
static void test_hw_path_matches_wolfcrypt(void **state)
{
    (void)state;
    static const size_t key_lens[] = {1, 20, 63, 64, 65, 131};
    uint8_t key[131], data[300];
    if (!arrpc__sha256_hw_available()) skip();
    for (size_t k = 0; k < sizeof key_lens / sizeof key_lens[0]; k++) {
        fill_pseudo_random(key, key_lens[k], (uint32_t)(k + 1) * 7919u);
        for (size_t len = 0; len <= sizeof data; len++) {
            uint8_t soft[32], hard[32];
            char hex[ARRPC_SIGN_HEX_LEN + 1], want[ARRPC_SIGN_HEX_LEN + 1];
            fill_pseudo_random(data, len, (uint32_t)len + 1);
            assert_int_equal(
                arrpc__auth_hmac_sha256(key, key_lens[k], data, len, soft, ARRPC_SHA256_WOLFCRYPT),
                0);
            assert_int_equal(
                arrpc__auth_hmac_sha256(key, key_lens[k], data, len, hard, ARRPC_SHA256_HW), 0);
            if (memcmp(soft, hard, 32) != 0)
                fail_msg("key of %zu bytes, message of %zu: the paths differ", key_lens[k], len);
            assert_int_equal(arrpc__auth_sign_hex(key, key_lens[k], data, len, hex), 0);
            hex_encode(soft, want);
            assert_string_equal(hex, want);
        }
    }
}

/* Python's hmac accepts an empty key; the same MAC must come out here. */
static void test_hmac_with_empty_key_and_data(void **state)
{
    (void)state;
    char hex[ARRPC_SIGN_HEX_LEN + 1];
    assert_int_equal(arrpc__auth_sign_hex((const uint8_t *)"", 0, "", 0, hex), 0);
    assert_string_equal(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

static void test_sign_refuses_a_secret_over_the_maximum(void **state)
{
    (void)state;
    static uint8_t key[ARRPC_AUTH_SECRET_MAX + 1];
    char hex[ARRPC_SIGN_HEX_LEN + 1];
    assert_int_equal(arrpc__auth_sign_hex(key, sizeof key - 1, "x", 1, hex), 0);
    assert_int_equal(arrpc__auth_sign_hex(key, sizeof key, "x", 1, hex), ARRPC_EINVAL);
}

/* ---- envelopes ---------------------------------------------------------------------------- */

/* A packed envelope and the object msgpack-c decodes from it (bin payloads point into buf). */
typedef struct {
    msgpack_sbuffer buf;
    msgpack_packer pk;
    msgpack_zone zone;
    msgpack_object obj;
} envelope;

static void env_init(envelope *e)
{
    msgpack_sbuffer_init(&e->buf);
    msgpack_packer_init(&e->pk, &e->buf, msgpack_sbuffer_write);
    assert_true(msgpack_zone_init(&e->zone, 1024));
}

static void env_destroy(envelope *e)
{
    msgpack_zone_destroy(&e->zone);
    msgpack_sbuffer_destroy(&e->buf);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* Decodes what was packed; the envelope must be exactly one object. */
static const msgpack_object *env_decode(envelope *e)
{
    size_t off = 0;
    assert_int_equal(msgpack_unpack(e->buf.data, e->buf.size, &off, &e->zone, &e->obj),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, e->buf.size);
    return &e->obj;
}

static const char request[] = "\x92\xa4"
                              "ping\x01"; /* ["ping", 1] */
#define REQUEST_LEN (sizeof request - 1)

static void hex_of(const uint8_t *key, size_t key_len, const char *data, size_t len,
                   char hex[ARRPC_SIGN_HEX_LEN + 1])
{
    assert_int_equal(arrpc__auth_sign_hex(key, key_len, data, len, hex), 0);
}

static int open_env(envelope *e, const uint8_t **data, size_t *len)
{
    return arrpc__auth_open(secret, SECRET_LEN, env_decode(e), data, len);
}

/* The envelope as 0.5.0 packs it, around `request`, with the signature given. */
static void pack_sign_then_data(envelope *e, const char *sign)
{
    msgpack_pack_map(&e->pk, 2);
    pack_str(&e->pk, "arrpc.sign");
    pack_str(&e->pk, sign);
    pack_str(&e->pk, "data");
    msgpack_pack_bin_with_body(&e->pk, request, REQUEST_LEN);
}

/* The same with the entries the other way round. */
static void pack_data_then_sign(envelope *e, const char *sign)
{
    msgpack_pack_map(&e->pk, 2);
    pack_str(&e->pk, "data");
    msgpack_pack_bin_with_body(&e->pk, request, REQUEST_LEN);
    pack_str(&e->pk, "arrpc.sign");
    pack_str(&e->pk, sign);
}

static void test_open_accepts_sign_then_data(void **state)
{
    (void)state;
    envelope e;
    char hex[ARRPC_SIGN_HEX_LEN + 1];
    const uint8_t *data = NULL;
    size_t len = 0;
    env_init(&e);
    hex_of(secret, SECRET_LEN, request, REQUEST_LEN, hex);
    pack_sign_then_data(&e, hex);
    assert_int_equal(open_env(&e, &data, &len), 0);
    assert_int_equal(len, REQUEST_LEN);
    assert_memory_equal(data, request, REQUEST_LEN);
    env_destroy(&e);
}

static void test_open_accepts_data_then_sign(void **state)
{
    (void)state;
    envelope e;
    char hex[ARRPC_SIGN_HEX_LEN + 1];
    const uint8_t *data = NULL;
    size_t len = 0;
    env_init(&e);
    hex_of(secret, SECRET_LEN, request, REQUEST_LEN, hex);
    pack_data_then_sign(&e, hex);
    assert_int_equal(open_env(&e, &data, &len), 0);
    assert_int_equal(len, REQUEST_LEN);
    assert_memory_equal(data, request, REQUEST_LEN);
    env_destroy(&e);
}

/* The data pointer is the bin payload inside the received bytes, not a copy. */
static void test_open_points_at_the_signed_bytes(void **state)
{
    (void)state;
    envelope e;
    const uint8_t *data = NULL;
    size_t len = 0;
    env_init(&e);
    assert_int_equal(arrpc__auth_wrap(secret, SECRET_LEN, request, REQUEST_LEN, &e.pk), 0);
    assert_int_equal(open_env(&e, &data, &len), 0);
    assert_int_equal(len, REQUEST_LEN);
    /* wrap packs "data" last, so its payload ends the buffer */
    assert_ptr_equal(data, (const uint8_t *)e.buf.data + e.buf.size - REQUEST_LEN);
    assert_memory_equal(data, request, REQUEST_LEN);
    env_destroy(&e);
}

/* How a bad envelope is built: each variant changes one thing about a good one. */
typedef enum {
    BAD_WRONG_SECRET,
    BAD_TAMPERED_DATA,
    BAD_MISSING_DATA,
    BAD_MISSING_SIGN,
    BAD_MISSPELLED_KEY,
    BAD_SIGN_TWICE,
    BAD_EXTRA_KEY,
    BAD_SIGN_AS_BIN,
    BAD_SIGN_AS_INT,
    BAD_DATA_AS_STR,
    BAD_SIGN_63,
    BAD_SIGN_65,
    BAD_SIGN_UPPERCASE,
    BAD_SIGN_EMPTY,
    BAD_NOT_A_MAP,
    BAD_KEY_AS_BIN,
} bad_kind;

static const struct {
    bad_kind kind;
    const char *name;
} bad_cases[] = {
    {BAD_WRONG_SECRET, "signed with another secret"},
    {BAD_TAMPERED_DATA, "data changed after signing"},
    {BAD_MISSING_DATA, "only the signature"},
    {BAD_MISSING_SIGN, "only the data"},
    {BAD_MISSPELLED_KEY, "\"date\" instead of \"data\""},
    {BAD_SIGN_TWICE, "two signatures, no data"},
    {BAD_EXTRA_KEY, "a third key"},
    {BAD_SIGN_AS_BIN, "signature packed as bin"},
    {BAD_SIGN_AS_INT, "signature is an integer"},
    {BAD_DATA_AS_STR, "data packed as str"},
    {BAD_SIGN_63, "signature of 63 characters"},
    {BAD_SIGN_65, "signature of 65 characters"},
    {BAD_SIGN_UPPERCASE, "signature in uppercase hex"},
    {BAD_SIGN_EMPTY, "empty signature"},
    {BAD_NOT_A_MAP, "an array"},
    {BAD_KEY_AS_BIN, "keys packed as bin"},
};

static void upper(char *s)
{
    for (; *s; s++)
        if (*s >= 'a' && *s <= 'f') *s = (char)(*s - 'a' + 'A');
}

/* Packs the signature entry's value (or entries) for a bad envelope. */
static void pack_bad_sign(msgpack_packer *pk, bad_kind kind, const char *hex)
{
    char text[ARRPC_SIGN_HEX_LEN + 2];
    snprintf(text, sizeof text, "%s", hex);
    switch (kind) {
    case BAD_SIGN_AS_BIN:
        msgpack_pack_bin_with_body(pk, hex, ARRPC_SIGN_HEX_LEN);
        return;
    case BAD_SIGN_AS_INT:
        msgpack_pack_int(pk, 0);
        return;
    case BAD_SIGN_63:
        text[63] = '\0';
        break;
    case BAD_SIGN_65:
        strcat(text, "0");
        break;
    case BAD_SIGN_UPPERCASE:
        upper(text);
        break;
    case BAD_SIGN_EMPTY:
        text[0] = '\0';
        break;
    default:
        break;
    }
    pack_str(pk, text);
}

static void pack_bad(msgpack_packer *pk, bad_kind kind)
{
    char hex[ARRPC_SIGN_HEX_LEN + 1];
    static const uint8_t other[] = "another secret";
    int key_as_bin = kind == BAD_KEY_AS_BIN;
    hex_of(kind == BAD_WRONG_SECRET ? other : secret,
           kind == BAD_WRONG_SECRET ? sizeof other - 1 : SECRET_LEN, request, REQUEST_LEN, hex);
    if (kind == BAD_NOT_A_MAP) {
        msgpack_pack_array(pk, 2);
        pack_str(pk, hex);
        msgpack_pack_bin_with_body(pk, request, REQUEST_LEN);
        return;
    }
    int entries = (kind == BAD_MISSING_DATA || kind == BAD_MISSING_SIGN) ? 1
                  : kind == BAD_EXTRA_KEY                                ? 3
                                                                         : 2;
    msgpack_pack_map(pk, (size_t)entries);
    if (kind != BAD_MISSING_SIGN) {
        if (key_as_bin)
            msgpack_pack_bin_with_body(pk, "arrpc.sign", 10);
        else
            pack_str(pk, "arrpc.sign");
        pack_bad_sign(pk, kind, hex);
    }
    if (kind == BAD_SIGN_TWICE) {
        pack_str(pk, "arrpc.sign");
        pack_str(pk, hex);
        return;
    }
    if (kind != BAD_MISSING_DATA) {
        if (key_as_bin)
            msgpack_pack_bin_with_body(pk, "data", 4);
        else
            pack_str(pk, kind == BAD_MISSPELLED_KEY ? "date" : "data");
        if (kind == BAD_DATA_AS_STR)
            msgpack_pack_str_with_body(pk, request, REQUEST_LEN);
        else if (kind == BAD_TAMPERED_DATA)
            msgpack_pack_bin_with_body(pk,
                                       "\x92\xa4"
                                       "pong\x01",
                                       REQUEST_LEN);
        else
            msgpack_pack_bin_with_body(pk, request, REQUEST_LEN);
    }
    if (kind == BAD_EXTRA_KEY) {
        pack_str(pk, "extra");
        msgpack_pack_nil(pk);
    }
}

static void test_open_refuses_bad_envelopes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        envelope e;
        const uint8_t *data = NULL;
        size_t len = 0;
        print_message("%s\n", bad_cases[i].name);
        env_init(&e);
        pack_bad(&e.pk, bad_cases[i].kind);
        assert_int_equal(open_env(&e, &data, &len), ARRPC_EAUTH);
        assert_null(data);
        env_destroy(&e);
    }
}

/* The 63- and 65-character cases really are one character off a valid signature. */
static void test_bad_signature_lengths_are_off_by_one(void **state)
{
    (void)state;
    static const struct {
        bad_kind kind;
        size_t len;
    } cases[] = {{BAD_SIGN_63, 63}, {BAD_SIGN_65, 65}, {BAD_SIGN_UPPERCASE, 64}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        envelope e;
        env_init(&e);
        pack_bad(&e.pk, cases[i].kind);
        const msgpack_object *o = env_decode(&e);
        assert_int_equal(o->via.map.ptr[0].val.type, MSGPACK_OBJECT_STR);
        assert_int_equal(o->via.map.ptr[0].val.via.str.size, cases[i].len);
        env_destroy(&e);
    }
}

/* ---- envelopes read from their bytes ------------------------------------------------------ */

/* What wrap packs around data of n bytes (bin8, bin16 and bin32 by size) is read from its bytes,
 * its parts pointing into them, and verified; every shorter prefix is not an envelope yet. */
static void test_envelope_at_reads_what_wrap_packs(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 7, 255, 256, 65535, 65536};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *data = malloc(sizes[i] + 1);
        assert_non_null(data);
        memset(data, 0x5a, sizes[i]);
        envelope e;
        env_init(&e);
        assert_int_equal(arrpc__auth_wrap(secret, SECRET_LEN, data, sizes[i], &e.pk), 0);
        const uint8_t *p = (const uint8_t *)e.buf.data;
        arrpc__auth_envelope env;
        size_t used = 0;
        assert_int_equal(arrpc__auth_envelope_at(p, e.buf.size, &env, &used), 1);
        assert_int_equal(used, e.buf.size);
        assert_int_equal(env.len, sizes[i]);
        assert_ptr_equal(env.data, p + e.buf.size - sizes[i]);
        assert_ptr_equal(env.sign, (const char *)p + 14); /* after fixmap, key, str8 header */
        assert_int_equal(arrpc__auth_verify(secret, SECRET_LEN, &env), 0);
        assert_int_equal(arrpc__auth_verify((const uint8_t *)"other", 5, &env), ARRPC_EAUTH);
        for (size_t cut = 0; cut < e.buf.size; cut += 1 + cut / 8)
            assert_int_equal(arrpc__auth_envelope_at(p, cut, &env, &used), 0);
        env_destroy(&e);
        free(data);
    }
}

static void test_envelope_at_reads_data_then_sign(void **state)
{
    (void)state;
    envelope e;
    char hex[ARRPC_SIGN_HEX_LEN + 1];
    env_init(&e);
    hex_of(secret, SECRET_LEN, request, REQUEST_LEN, hex);
    pack_data_then_sign(&e, hex);
    msgpack_pack_nil(&e.pk); /* the next request: not part of this one */
    arrpc__auth_envelope env;
    size_t used = 0;
    assert_int_equal(arrpc__auth_envelope_at((const uint8_t *)e.buf.data, e.buf.size, &env, &used),
                     1);
    assert_int_equal(used, e.buf.size - 1);
    assert_int_equal(env.len, REQUEST_LEN);
    assert_memory_equal(env.data, request, REQUEST_LEN);
    assert_int_equal(arrpc__auth_verify(secret, SECRET_LEN, &env), 0);
    env_destroy(&e);
}

/* Any other packing is left to the decoder and arrpc__auth_open, which decide as before. */
static void test_envelope_at_leaves_other_packings_to_the_decoder(void **state)
{
    (void)state;
    char hex[ARRPC_SIGN_HEX_LEN + 1];
    hex_of(secret, SECRET_LEN, request, REQUEST_LEN, hex);
    for (int variant = 0; variant < 6; variant++) {
        envelope e;
        env_init(&e);
        if (variant == 0) { /* map16 for two entries */
            msgpack_sbuffer_write(&e.buf, "\xde\x00\x02", 3);
        } else {
            msgpack_pack_map(&e.pk, variant == 1 ? 3 : 2);
        }
        pack_str(&e.pk, variant == 2 ? "data" : "arrpc.sign");
        if (variant == 2)
            msgpack_pack_bin_with_body(&e.pk, request, REQUEST_LEN); /* "data" twice */
        else if (variant == 3)
            msgpack_pack_str_with_body(&e.pk, hex, ARRPC_SIGN_HEX_LEN - 1); /* 63 characters */
        else if (variant == 4)
            msgpack_pack_bin_with_body(&e.pk, hex, ARRPC_SIGN_HEX_LEN); /* bin, not str */
        else
            pack_str(&e.pk, hex);
        pack_str(&e.pk, variant == 5 ? "date" : "data");
        msgpack_pack_bin_with_body(&e.pk, request, REQUEST_LEN);
        if (variant == 1) {
            pack_str(&e.pk, "more");
            msgpack_pack_nil(&e.pk);
        }
        arrpc__auth_envelope env;
        size_t used = 0;
        assert_int_equal(
            arrpc__auth_envelope_at((const uint8_t *)e.buf.data, e.buf.size, &env, &used), 0);
        const uint8_t *data; /* the decoder's verdict: map16 is an envelope, the rest are not */
        size_t len;
        assert_int_equal(open_env(&e, &data, &len), variant == 0 ? 0 : ARRPC_EAUTH);
        env_destroy(&e);
    }
}

/* ---- wrap --------------------------------------------------------------------------------- */

static void test_wrap_then_open_round_trip(void **state)
{
    (void)state;
    static const char *const requests[] = {"\xc0",
                                           ("\x92\xa4"
                                            "ping\x01"),
                                           "\x80", ""};
    static const size_t lens[] = {1, 7, 1, 0};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        envelope e;
        const uint8_t *data = NULL;
        size_t len = 99;
        env_init(&e);
        assert_int_equal(arrpc__auth_wrap(secret, SECRET_LEN, requests[i], lens[i], &e.pk), 0);
        assert_int_equal(open_env(&e, &data, &len), 0);
        assert_int_equal(len, lens[i]);
        assert_memory_equal(data, requests[i], lens[i]);
        env_destroy(&e);
    }
}

/* What wrap packs: a two-entry map, the signature as a 64-char str, the request as bin. */
static void test_wrap_packs_the_0_5_0_envelope(void **state)
{
    (void)state;
    envelope e;
    char hex[ARRPC_SIGN_HEX_LEN + 1];
    env_init(&e);
    hex_of(secret, SECRET_LEN, request, REQUEST_LEN, hex);
    assert_int_equal(arrpc__auth_wrap(secret, SECRET_LEN, request, REQUEST_LEN, &e.pk), 0);
    const msgpack_object *o = env_decode(&e);
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o->via.map.size, 2);
    const msgpack_object_kv *kv = o->via.map.ptr;
    assert_int_equal(kv[0].key.type, MSGPACK_OBJECT_STR);
    assert_memory_equal(kv[0].key.via.str.ptr, "arrpc.sign", 10);
    assert_int_equal(kv[0].val.type, MSGPACK_OBJECT_STR);
    assert_int_equal(kv[0].val.via.str.size, ARRPC_SIGN_HEX_LEN);
    assert_memory_equal(kv[0].val.via.str.ptr, hex, ARRPC_SIGN_HEX_LEN);
    assert_int_equal(kv[1].key.type, MSGPACK_OBJECT_STR);
    assert_memory_equal(kv[1].key.via.str.ptr, "data", 4);
    assert_int_equal(kv[1].val.type, MSGPACK_OBJECT_BIN);
    env_destroy(&e);
}

/* One wrong character anywhere in the signature, in each of the eight words the comparison
 * reads, is refused. */
static void test_open_refuses_each_single_character_change(void **state)
{
    (void)state;
    char hex[ARRPC_SIGN_HEX_LEN + 1];
    hex_of(secret, SECRET_LEN, request, REQUEST_LEN, hex);
    for (size_t at = 0; at < ARRPC_SIGN_HEX_LEN; at++) {
        envelope e;
        const uint8_t *data = NULL;
        size_t len = 0;
        char bad[ARRPC_SIGN_HEX_LEN + 1];
        memcpy(bad, hex, sizeof bad);
        bad[at] = bad[at] == '0' ? '1' : '0';
        env_init(&e);
        pack_sign_then_data(&e, bad);
        assert_int_equal(open_env(&e, &data, &len), ARRPC_EAUTH);
        env_destroy(&e);
    }
}

static void test_open_with_another_secret_fails(void **state)
{
    (void)state;
    envelope e;
    const uint8_t *data = NULL;
    size_t len = 0;
    env_init(&e);
    assert_int_equal(arrpc__auth_wrap(secret, SECRET_LEN, request, REQUEST_LEN, &e.pk), 0);
    assert_int_equal(arrpc__auth_open(secret, SECRET_LEN - 1, env_decode(&e), &data, &len),
                     ARRPC_EAUTH);
    env_destroy(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_sha256_rfc4231),
        cmocka_unit_test(test_hmac_sha256_rfc4231_on_wolfcrypt),
        cmocka_unit_test(test_hmac_sha256_rfc4231_on_sha_extensions),
        cmocka_unit_test(test_hw_path_refused_without_sha_extensions),
        cmocka_unit_test(test_hw_path_matches_wolfcrypt),
        cmocka_unit_test(test_hmac_with_empty_key_and_data),
        cmocka_unit_test(test_sign_refuses_a_secret_over_the_maximum),
        cmocka_unit_test(test_open_accepts_sign_then_data),
        cmocka_unit_test(test_open_accepts_data_then_sign),
        cmocka_unit_test(test_open_points_at_the_signed_bytes),
        cmocka_unit_test(test_open_refuses_bad_envelopes),
        cmocka_unit_test(test_bad_signature_lengths_are_off_by_one),
        cmocka_unit_test(test_wrap_then_open_round_trip),
        cmocka_unit_test(test_wrap_packs_the_0_5_0_envelope),
        cmocka_unit_test(test_open_refuses_each_single_character_change),
        cmocka_unit_test(test_open_with_another_secret_fails),
        cmocka_unit_test(test_envelope_at_reads_what_wrap_packs),
        cmocka_unit_test(test_envelope_at_reads_data_then_sign),
        cmocka_unit_test(test_envelope_at_leaves_other_packings_to_the_decoder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
