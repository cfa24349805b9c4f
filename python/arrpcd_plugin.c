/* arrpcd_plugin.c -- arrpc-python.so, the plugin behind `arrpcd --handler py:MODULE:FUNCTION`.
 * It links libpython so that arrpcd does not: a worker loads it after fork, starts its own
 * interpreter in init, imports the module, and calls the function for every request; a reload
 * (SIGHUP) starts new workers, which import the module as it is on disk then.
 *
 * init's argument (arrpcd writes it): "MODULE:FUNCTION", then one directory per line to put at
 * the front of sys.path (--pythonpath). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler_call.h"

#define PLUGIN_ARG_MAX 65536 /* bytes of init's argument: the spec and the directories */

typedef struct {
    PyObject *function;
    PyObject *rpc_error; /* arrpc.error.RpcException, or NULL when arrpc cannot be imported */
} python_handler;

/* Modules with C code (msgpack's, the handler's own) resolve the interpreter's symbols in the
 * global namespace, where dlopen(RTLD_LOCAL) of this plugin did not put libpython. */
static void libpython_global(void)
{
    Dl_info info;
    if (dladdr((void *)Py_InitializeEx, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

/* sys.path gets each directory of lines (NUL-separated by the caller) in front, in order. */
static int add_paths(char *lines)
{
    PyObject *path = PySys_GetObject("path"); /* borrowed */
    Py_ssize_t at = 0;
    for (char *dir = lines; path && dir && *dir; at++) {
        char *next = strchr(dir, '\n');
        if (next) *next++ = '\0';
        PyObject *text = PyUnicode_DecodeFSDefault(dir);
        if (!text || PyList_Insert(path, at, text) != 0) {
            Py_XDECREF(text);
            return -1;
        }
        Py_DECREF(text);
        dir = next;
    }
    return path ? 0 : -1;
}

static PyObject *rpc_error_class(void)
{
    PyObject *mod = PyImport_ImportModule("arrpc.error");
    PyObject *cls = mod ? PyObject_GetAttrString(mod, "RpcException") : NULL;
    Py_XDECREF(mod);
    if (!cls) PyErr_Clear(); /* a handler without arrpc installed raises no RpcException */
    return cls;
}

/* Imports MODULE and finds FUNCTION in it; NULL with a Python error set. */
static PyObject *find_function(char *spec)
{
    char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || !colon[1]) {
        PyErr_Format(PyExc_ValueError, "expected py:MODULE:FUNCTION, got py:%s", spec);
        return NULL;
    }
    *colon = '\0';
    PyObject *mod = PyImport_ImportModule(spec);
    PyObject *fn = mod ? PyObject_GetAttrString(mod, colon + 1) : NULL;
    Py_XDECREF(mod);
    if (fn && !PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not callable", spec, colon + 1);
        Py_CLEAR(fn);
    }
    return fn;
}

static int start(char *arg, python_handler *h)
{
    char *paths = strchr(arg, '\n');
    if (paths) *paths++ = '\0';
    if (paths && add_paths(paths) != 0) return -1;
    if (arrpy_convert_init() != 0) return -1;
    if (!(h->function = find_function(arg))) return -1;
    h->rpc_error = rpc_error_class();
    return 0;
}

ARRPC_API int arrpc_python_handler_init(const char *arg, void **udata);
int arrpc_python_handler_init(const char *arg, void **udata)
{
    python_handler *h = calloc(1, sizeof *h);
    char *copy = arg && strlen(arg) < PLUGIN_ARG_MAX ? strdup(arg) : NULL;
    if (!h || !copy) {
        fprintf(stderr, "arrpc-python: no handler spec, or out of memory\n");
        free(h);
        free(copy);
        return 1;
    }
    libpython_global();
    Py_InitializeEx(0); /* 0: arrpcd's signal handling stays as it is */
    int rc = start(copy, h);
    free(copy);
    if (rc != 0) {
        fprintf(stderr, "arrpc-python: cannot load the handler %s:\n", arg);
        PyErr_Print();
        fflush(stderr);
        free(h);
        return 1;
    }
    *udata = h;
    arrpy_leave_python(); /* handler threads take the GIL when they call */
    return 0;
}

ARRPC_API int arrpc_python_handler(arrpc_call *call, const msgpack_object *request,
                                   msgpack_packer *response, void *udata);
ARRPC_API int arrpc_python_handler(arrpc_call *call, const msgpack_object *request,
                                   msgpack_packer *response, void *udata)
{
    python_handler *h = udata;
    return arrpy_handler_call(h->function, h->rpc_error, call, request, response);
}
