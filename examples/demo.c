/* demo.c -- a handler plugin for tests and benchmarks: `arrpcd --handler PATH/arrpc-demo.so`.
 *
 *   {"echo": x}      answers x
 *   {"fail": "msg"}  fails the call with "msg" (the client gets an RpcException)
 *   {"sleep": s}     sleeps s seconds (integer or float), then answers "slept"
 *   {"defer": s}     answers "deferred" s seconds later from the plugin's own timer thread
 *                    (arrpc_call_defer: the worker serves other requests meanwhile)
 *   {"defer_peer": s}  the same, answering the caller's address (arrpc_call_peer) instead
 *   {"crash": k}     crashes its process with a real fault: k true or "SIGSEGV" (a write
 *                    through a null pointer), "SIGBUS" (a read past the end of a mapped empty
 *                    file), "SIGFPE" (an integer division by zero), "SIGILL" (a trap
 *                    instruction), "abort" (abort(3))
 *   {"crash_after": [s, k]}  sleeps s seconds, then crashes as {"crash": k} (for crashes on
 *                    two handler threads at once)
 *   {"version": _}   answers ARRPC_DEMO_VERSION (tests swap builds to see a reload take effect)
 *   {"pid": _}       answers the worker's process id
 *   {"repeat": [s, n]}  answers the str or bin s repeated n times (a reply larger than its
 *                    request, for the reply size limit; n is capped at 1 GiB of output)
 *   {"init_arg": _}  answers the argument init was given (--handler-arg), or nil
 *   {"whoami": _}    answers {"peer": "IP:PORT", "tls_peer": subject or nil, "signed": bool}
 *   {"leak": n}      keeps n more bytes allocated for the worker's life, every page written so
 *                    that its resident memory grows (for --max-worker-rss); at most
 *                    DEMO_LEAK_MAX a call; answers the bytes leaked so far by this worker
 *   anything else    is echoed back whole
 *
 * Its lifecycle, for tests: init keeps its argument for {"init_arg": _}; an argument "fail:N"
 * makes init return N, and so does a file named by ARRPC_DEMO_INIT_FAIL_FILE holding N, when that
 * file exists (a test creates it to make a reload fail). fini appends "fini <pid>" to the file
 * named by ARRPC_DEMO_FINI_FILE, when set. */
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unistd.h>

#include <arrpc.h>

#include "demo.h"

#ifndef ARRPC_DEMO_VERSION
#define ARRPC_DEMO_VERSION "demo-1"
#endif

/* The value of a one-entry map {key: value} with the given key, or NULL. */
static const msgpack_object *only_entry(const msgpack_object *req, const char *key)
{
    size_t n = strlen(key);
    if (req->type != MSGPACK_OBJECT_MAP || req->via.map.size != 1) return NULL;
    const msgpack_object_kv *kv = &req->via.map.ptr[0];
    if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != n ||
        memcmp(kv->key.via.str.ptr, key, n) != 0)
        return NULL;
    return &kv->val;
}

#define DEMO_REPEAT_MAX (1024.0 * 1024.0 * 1024.0) /* bytes a repeat may answer */
#define DEMO_LEAK_MAX (64u * 1024u * 1024u)        /* bytes one {"leak": n} may keep */

/* {"leak": n}: a leak on purpose, as a handler with a slow leak would have. The blocks stay on a
 * list, never freed, so they are kept rather than lost (leak checkers at exit do not report
 * them); memset makes them resident, as a real leak's writes would. */
typedef struct demo_kept {
    struct demo_kept *next;
} demo_kept;

static int leak(arrpc_call *call, const msgpack_object *v, msgpack_packer *res)
{
    static _Atomic(demo_kept *) kept; /* handler threads may leak at once */
    static _Atomic uint64_t leaked;
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > DEMO_LEAK_MAX)
        return arrpc_call_fail(call, "leak wants a byte count from 0 to %u", DEMO_LEAK_MAX);
    size_t n = (size_t)v->via.u64;
    demo_kept *block = n ? malloc(sizeof *block + n) : NULL;
    if (n && !block) return arrpc_call_fail(call, "leak: out of memory");
    if (block) {
        memset(block + 1, 0xa5, n);
        block->next = atomic_load(&kept);
        while (!atomic_compare_exchange_weak(&kept, &block->next, block)) {
        }
    }
    return msgpack_pack_uint64(res, atomic_fetch_add(&leaked, n) + n);
}

/* {"repeat": [s, n]}: s (str or bin) n times, packed as the same type. */
static int repeat(arrpc_call *call, const msgpack_object *v, msgpack_packer *res)
{
    if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size != 2 ||
        v->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        (v->via.array.ptr[0].type != MSGPACK_OBJECT_STR &&
         v->via.array.ptr[0].type != MSGPACK_OBJECT_BIN))
        return arrpc_call_fail(call, "repeat wants [str or bin, count]");
    const msgpack_object *s = &v->via.array.ptr[0];
    uint64_t n = v->via.array.ptr[1].via.u64;
    size_t len = s->via.str.size; /* str and bin share the layout */
    if ((double)len * (double)n > DEMO_REPEAT_MAX)
        return arrpc_call_fail(call, "repeat: more than 1 GiB");
    int is_str = s->type == MSGPACK_OBJECT_STR;
    int rc = is_str ? msgpack_pack_str(res, len * n) : msgpack_pack_bin(res, len * n);
    for (uint64_t i = 0; rc == 0 && i < n; i++)
        rc = is_str ? msgpack_pack_str_body(res, s->via.str.ptr, len)
                    : msgpack_pack_bin_body(res, s->via.bin.ptr, len);
    return rc;
}

static double as_seconds(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return (double)o->via.u64;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return o->via.f64 > 0 ? o->via.f64 : 0;
    default:
        return 0;
    }
}

/* What init leaves for the calls and fini: one per worker. */
typedef struct demo_state {
    char *arg; /* init's argument, our copy; NULL: none */
} demo_state;

/* The failure init is told to report: "fail:N" as its argument, or N in the fail file. */
static int told_to_fail(const char *arg)
{
    const char *path = getenv("ARRPC_DEMO_INIT_FAIL_FILE");
    int n = 0;
    if (arg && strncmp(arg, "fail:", 5) == 0) return atoi(arg + 5);
    FILE *f = path ? fopen(path, "r") : NULL;
    if (f) {
        if (fscanf(f, "%d", &n) != 1) n = 0;
        fclose(f);
    }
    return n;
}

ARRPC_API int arrpc_handler_init(const char *arg, void **udata)
{
    int fail = told_to_fail(arg);
    if (fail) return fail;
    demo_state *st = calloc(1, sizeof *st);
    if (!st || (arg && !(st->arg = strdup(arg)))) {
        free(st);
        return -1;
    }
    *udata = st;
    return 0;
}

ARRPC_API void arrpc_handler_fini(void *udata)
{
    demo_state *st = udata;
    const char *path = getenv("ARRPC_DEMO_FINI_FILE");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (f) {
        fprintf(f, "fini %ld\n", (long)getpid());
        fclose(f);
    }
    free(st->arg);
    free(st);
}

static int pack_str_or_nil(msgpack_packer *res, const char *s)
{
    return s ? msgpack_pack_str_with_body(res, s, strlen(s)) : msgpack_pack_nil(res);
}

static void sleep_for(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int is_kind(const msgpack_object *v, const char *kind)
{
    return v->type == MSGPACK_OBJECT_STR && v->via.str.size == strlen(kind) &&
           memcmp(v->via.str.ptr, kind, v->via.str.size) == 0;
}

/* Real faults, not raise(): the worker must survive them the way it would a handler's bug. The
 * volatile pointers keep the compiler from seeing (and replacing) the undefined behaviour, and
 * a sanitized build must not turn the fault into its own report and abort. */
__attribute__((no_sanitize("undefined"))) static void crash(const msgpack_object *kind)
{
    static int *volatile nowhere = NULL;
    static volatile int zero = 0, seven = 7; /* 1 / x would be compiled without a division */
    if (is_kind(kind, "SIGBUS")) {
        int fd = memfd_create("demo-sigbus", 0); /* empty: its first page is past its end */
        volatile const char *p = fd >= 0 ? mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) : NULL;
        if (p && p != MAP_FAILED) (void)p[0];
    } else if (is_kind(kind, "SIGFPE")) {
        zero = seven / zero;
    } else if (is_kind(kind, "SIGILL")) {
        __builtin_trap();
    } else if (is_kind(kind, "abort")) {
        abort();
    } else if (is_kind(kind, "SIGSEGV") ||
               (kind->type == MSGPACK_OBJECT_BOOLEAN && kind->via.boolean)) {
        *nowhere = 1;
    }
}

/* {"peer": ..., "tls_peer": ..., "signed": ...}: what the call knows of its client. */
static int whoami(arrpc_call *call, msgpack_packer *res)
{
    return msgpack_pack_map(res, 3) || msgpack_pack_str_with_body(res, "peer", 4) ||
           pack_str_or_nil(res, arrpc_call_peer(call)) ||
           msgpack_pack_str_with_body(res, "tls_peer", 8) ||
           pack_str_or_nil(res, arrpc_call_tls_peer(call)) ||
           msgpack_pack_str_with_body(res, "signed", 6) ||
           (arrpc_call_signed(call) ? msgpack_pack_true(res) : msgpack_pack_false(res));
}

ARRPC_API int arrpc_handler(arrpc_call *call, const msgpack_object *req, msgpack_packer *res,
                            void *udata)
{
    const msgpack_object *v;
    const demo_state *st = udata;
    /* Anything but a one-entry map is echoed: the common case, decided before the list below. */
    if (req->type != MSGPACK_OBJECT_MAP || req->via.map.size != 1)
        return msgpack_pack_object(res, *req);
    if ((v = only_entry(req, "echo"))) return msgpack_pack_object(res, *v);
    if ((v = only_entry(req, "fail"))) {
        if (v->type == MSGPACK_OBJECT_STR)
            return arrpc_call_fail(call, "%.*s", (int)v->via.str.size, v->via.str.ptr);
        return arrpc_call_fail(call, "fail wants a string");
    }
    if ((v = only_entry(req, "sleep"))) {
        sleep_for(as_seconds(v));
        return msgpack_pack_str_with_body(res, "slept", 5);
    }
    if ((v = only_entry(req, "defer"))) return demo_defer(call, as_seconds(v), 0, res);
    if ((v = only_entry(req, "defer_peer"))) return demo_defer(call, as_seconds(v), 1, res);
    if (only_entry(req, "answer_twice")) return demo_answer_twice(call);
    if (only_entry(req, "version"))
        return msgpack_pack_str_with_body(res, ARRPC_DEMO_VERSION, strlen(ARRPC_DEMO_VERSION));
    if ((v = only_entry(req, "repeat"))) return repeat(call, v, res);
    if ((v = only_entry(req, "leak"))) return leak(call, v, res);
    if (only_entry(req, "pid")) return msgpack_pack_int64(res, (int64_t)getpid());
    if (only_entry(req, "init_arg")) return pack_str_or_nil(res, st ? st->arg : NULL);
    if (only_entry(req, "whoami")) return whoami(call, res);
    if ((v = only_entry(req, "crash"))) crash(v);
    if ((v = only_entry(req, "crash_after")) && v->type == MSGPACK_OBJECT_ARRAY &&
        v->via.array.size == 2) {
        sleep_for(as_seconds(&v->via.array.ptr[0]));
        crash(&v->via.array.ptr[1]);
    }
    return msgpack_pack_object(res, *req);
}
