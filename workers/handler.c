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

/* Looks up a function of the plugin into *fn (size bytes, a function pointer); true if found. */
static int find_function(void *dl, const char *symbol, void *fn, size_t size)
{
    void *sym = dlsym(dl, symbol);
    if (sym) memcpy(fn, &sym, size); /* object pointer to function pointer, as POSIX allows */
    return sym != NULL;
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
    *out = (arrpc__handler){.dl = dl};
    snprintf(out->name, sizeof out->name, "%s", symbol);
    snprintf(out->init_name, sizeof out->init_name, "%s_init", symbol);
    if (!find_function(dl, out->name, &out->fn, sizeof out->fn)) {
        snprintf(err, errlen, "handler plugin %s has no symbol '%s'", path, symbol);
        dlclose(dl);
        *out = (arrpc__handler){0};
        return ARRPC_ELOAD;
    }
    char fini_name[sizeof out->init_name], wake_check_name[sizeof out->name + sizeof "_wake_check"];
    snprintf(fini_name, sizeof fini_name, "%s_fini", symbol);
    snprintf(wake_check_name, sizeof wake_check_name, "%s_wake_check", symbol);
    find_function(dl, out->init_name, &out->init, sizeof out->init); /* all three optional */
    find_function(dl, fini_name, &out->fini, sizeof out->fini);
    find_function(dl, wake_check_name, &out->wake_check, sizeof out->wake_check);
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
    h->init = NULL;
    h->fini = NULL;
    h->wake_check = NULL;
}

void arrpc__handler_apply(const arrpc__handler *h, arrpc__worker_config *cfg)
{
    cfg->handler = h->fn;
    cfg->udata = h->udata;
    cfg->handler_name = h->name;
    cfg->init = h->init;
    cfg->fini = h->fini;
    cfg->wake_check = h->wake_check;
    cfg->init_name = h->init_name;
}
