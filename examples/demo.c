/* demo.c -- a handler plugin for tests and benchmarks: `arrpcd --handler PATH/arrpc-demo.so`.
 *
 *   {"echo": x}      answers x
 *   {"fail": "msg"}  fails the call with "msg" (the client gets an RpcException)
 *   {"sleep": s}     sleeps s seconds (integer or float), then answers "slept"
 *   {"defer": s}     answers "deferred" s seconds later from the plugin's own timer thread
 *                    (arrpc_call_defer: the worker serves other requests meanwhile)
 *   {"crash": true}  kills its process with SIGSEGV
 *   {"version": _}   answers ARRPC_DEMO_VERSION (tests swap builds to see a reload take effect)
 *   {"pid": _}       answers the worker's process id
 *   {"repeat": [s, n]}  answers the str or bin s repeated n times (a reply larger than its
 *                    request, for the reply size limit; n is capped at 1 GiB of output)
 *   anything else    is echoed back whole */
#include <signal.h>
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

ARRPC_API int arrpc_handler(arrpc_call *call, const msgpack_object *req, msgpack_packer *res,
                            void *udata)
{
    const msgpack_object *v;
    (void)udata;
    if ((v = only_entry(req, "echo"))) return msgpack_pack_object(res, *v);
    if ((v = only_entry(req, "fail"))) {
        if (v->type == MSGPACK_OBJECT_STR)
            return arrpc_call_fail(call, "%.*s", (int)v->via.str.size, v->via.str.ptr);
        return arrpc_call_fail(call, "fail wants a string");
    }
    if ((v = only_entry(req, "sleep"))) {
        double s = as_seconds(v);
        struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
        while (nanosleep(&ts, &ts) != 0) {
        }
        return msgpack_pack_str_with_body(res, "slept", 5);
    }
    if ((v = only_entry(req, "defer"))) return demo_defer(call, as_seconds(v), res);
    if (only_entry(req, "version"))
        return msgpack_pack_str_with_body(res, ARRPC_DEMO_VERSION, strlen(ARRPC_DEMO_VERSION));
    if ((v = only_entry(req, "repeat"))) return repeat(call, v, res);
    if (only_entry(req, "pid")) return msgpack_pack_int64(res, (int64_t)getpid());
    if ((v = only_entry(req, "crash")) && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean) {
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
    }
    return msgpack_pack_object(res, *req);
}
