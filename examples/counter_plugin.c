/* counter_plugin.c -- a plugin that holds a resource per worker, opened by init and closed by
 * fini: `arrpcd --handler PATH/arrpc-counter.so:counter --handler-arg /tmp/counts.log`.
 *
 * The symbol is "counter", so its lifecycle is counter_init and counter_fini. init opens the file
 * its argument names (appending) and fails the start when it cannot. Every request is answered
 * with {"pid": the worker's pid, "count": the calls this worker has answered, this one
 * included}; fini writes "<pid> answered <count>" to the file and closes it. A worker's count
 * starts at 0 and dies with it: a reload starts new counts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <arrpc.h>

typedef struct worker_count {
    FILE *log;
    uint64_t count;
} worker_count;

ARRPC_API int counter_init(const char *arg, void **udata)
{
    if (!arg) return EINVAL; /* the log's path is required: arrpcd --handler-arg PATH */
    worker_count *c = calloc(1, sizeof *c);
    if (!c) return ENOMEM;
    if (!(c->log = fopen(arg, "a"))) {
        int err = errno;
        free(c);
        return err; /* the log names it: "counter_init returned 13" is EACCES */
    }
    *udata = c;
    return 0;
}

ARRPC_API void counter_fini(void *udata)
{
    worker_count *c = udata;
    fprintf(c->log, "%ld answered %llu\n", (long)getpid(), (unsigned long long)c->count);
    fclose(c->log);
    free(c);
}

ARRPC_API int counter(arrpc_call *call, const msgpack_object *request, msgpack_packer *response,
                      void *udata)
{
    worker_count *c = udata;
    (void)call;
    (void)request;
    c->count++; /* one worker runs one call at a time: no lock needed */
    return msgpack_pack_map(response, 2) || msgpack_pack_str_with_body(response, "pid", 3) ||
           msgpack_pack_int64(response, (int64_t)getpid()) ||
           msgpack_pack_str_with_body(response, "count", 5) ||
           msgpack_pack_uint64(response, c->count);
}
