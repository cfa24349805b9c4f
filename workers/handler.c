/* handler.c -- built-in handlers and plugin loading with dlopen (see handler.h). */
#include "handler.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int arrpc__handler_echo(arrpc_call *call, const msgpack_object *request, msgpack_packer *response,
                        void *udata)
{
    (void)call;
    (void)udata;
    return msgpack_pack_object(response, *request) == 0 ? 0 : ARRPC_ENOMEM;
}

static const struct {
    const char *name;
    arrpc_handler_fn fn;
} builtins[] = {
    {"echo", arrpc__handler_echo},
};

static int is_path(const char *spec)
{
    const char *colon = strrchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    return memchr(spec, '/', len) || (len > 3 && memcmp(spec + len - 3, ".so", 3) == 0);
}

static int load_plugin(const char *spec, arrpc__handler *out, char *err, size_t errlen)
{
    char path[4096];
    const char *colon = strrchr(spec, ':');
    const char *symbol = colon ? colon + 1 : ARRPC_PLUGIN_DEFAULT_SYMBOL;
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (len >= sizeof path || !*symbol || strlen(symbol) >= sizeof out->name) {
        snprintf(err, errlen, "invalid handler '%s'", spec);
        return ARRPC_ELOAD;
    }
    memcpy(path, spec, len);
    path[len] = '\0';
    /* RTLD_LOCAL: two generations of one plugin must not resolve each other's symbols. */
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        snprintf(err, errlen, "cannot load handler plugin: %s", dlerror());
        return ARRPC_ELOAD;
    }
    void *sym = dlsym(dl, symbol);
    if (!sym) {
        snprintf(err, errlen, "handler plugin %s has no symbol '%s'", path, symbol);
        dlclose(dl);
        return ARRPC_ELOAD;
    }
    *out = (arrpc__handler){.dl = dl};
    memcpy(&out->fn, &sym,
           sizeof out->fn); /* object pointer to function pointer, as POSIX allows */
    snprintf(out->name, sizeof out->name, "%s", symbol);
    return 0;
}

void arrpc__handler_name_of(const char *spec, char *out, size_t len)
{
    const char *colon = strrchr(spec, ':');
    if (!is_path(spec))
        snprintf(out, len, "%s", spec);
    else
        snprintf(out, len, "%s", colon && colon[1] ? colon + 1 : ARRPC_PLUGIN_DEFAULT_SYMBOL);
}

int arrpc__handler_load(const char *spec, arrpc__handler *out, char *err, size_t errlen)
{
    if (is_path(spec)) return load_plugin(spec, out, err, errlen);
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        if (strcmp(spec, builtins[i].name) == 0) {
            *out = (arrpc__handler){.fn = builtins[i].fn};
            snprintf(out->name, sizeof out->name, "%s", builtins[i].name);
            return 0;
        }
    }
    snprintf(err, errlen, "unknown handler '%s' (built in: echo; or give PATH.so[:SYMBOL])", spec);
    return ARRPC_ELOAD;
}

void arrpc__handler_unload(arrpc__handler *h)
{
    if (h->dl) dlclose(h->dl);
    h->dl = NULL;
    h->fn = NULL;
}
