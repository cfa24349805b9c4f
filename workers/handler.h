/* handler.h -- finding the handler a server runs: built in by name, or a plugin loaded with dlopen.
 */
#ifndef ARRPC_WORKERS_HANDLER_H
#define ARRPC_WORKERS_HANDLER_H

#include <stddef.h>

#include "arrpc.h"
#include "worker.h"

#define ARRPC_PLUGIN_DEFAULT_SYMBOL "arrpc_handler"
#define ARRPC_HANDLER_NAME_MAX 128

typedef struct arrpc__handler {
    arrpc_handler_fn fn;
    arrpc_handler_init_fn init;             /* a plugin's SYMBOL_init, when it has one; else NULL */
    arrpc_handler_fini_fn fini;             /* a plugin's SYMBOL_fini, when it has one; else NULL */
    arrpc_handler_wake_check_fn wake_check; /* a plugin's SYMBOL_wake_check; else NULL */
    void *udata;
    void *dl;                          /* the plugin's dlopen handle, NULL when built in */
    char name[ARRPC_HANDLER_NAME_MAX]; /* what metrics call it: "echo", or the symbol */
    char init_name[ARRPC_HANDLER_NAME_MAX + sizeof "_init"]; /* for the log of a failed init */
} arrpc__handler;

/* spec is a built-in name ("echo") or PATH.so[:SYMBOL]; a spec with a '/' or ending in ".so" is
 * a path. A plugin's SYMBOL_init, SYMBOL_fini and SYMBOL_wake_check are optional: whichever is
 * absent stays NULL (a symbol of that name with another signature cannot be told apart). 0, or
 * ARRPC_ELOAD with the reason in err. */
int arrpc__handler_load(const char *spec, arrpc__handler *out, char *err, size_t errlen);
void arrpc__handler_unload(arrpc__handler *h);
/* Makes cfg serve with h: its function, udata, name and lifecycle (replacing any set before; the
 * init argument stays). h must outlive the serving. */
void arrpc__handler_apply(const arrpc__handler *h, arrpc__worker_config *cfg);
/* The name a spec's handler will have (what metrics call it), without loading it. */
void arrpc__handler_name_of(const char *spec, char *out, size_t len);

/* The built-in echo: answers every request with the request itself. */
int arrpc__handler_echo(arrpc_call *call, const msgpack_object *request, msgpack_packer *response,
                        void *udata);

#endif
