/* arrpcd_plugin.c -- arrpc-python.so, the plugin behind `arrpcd --handler py:MODULE:FUNCTION`.
 * It links libpython so that arrpcd does not: a worker loads it after fork, starts its own
 * interpreter in init, imports the module, and calls the function for every request; a reload
 * (SIGHUP) starts new workers, which import the module as it is on disk then.
 *
 * init's argument (arrpcd writes it): "MODULE:FUNCTION", then one directory per line to put at
 * the front of sys.path (--pythonpath). arrpcd also calls arrpc_python_handler_name once, in a
 * short-lived process of its own, to label its metrics with the function's __name__. */
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

/* Starts the interpreter and loads the handler of arg into h; 0, or 1 after printing why. */
static int load(const char *arg, python_handler *h)
{
    char *copy = arg && strlen(arg) < PLUGIN_ARG_MAX ? strdup(arg) : NULL;
    if (!copy) {
        fprintf(stderr, "arrpc-python: no handler spec, or out of memory\n");
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
        return 1;
    }
    return 0;
}

ARRPC_API int arrpc_python_handler_init(const char *arg, void **udata);
int arrpc_python_handler_init(const char *arg, void **udata)
{
    python_handler *h = calloc(1, sizeof *h);
    if (!h || load(arg, h) != 0) {
        free(h);
        return 1;
    }
    *udata = h;
    arrpy_leave_python(); /* handler threads take the GIL when they call */
    return 0;
}

ARRPC_API int arrpc_python_handler_wake_check(void *udata);
int arrpc_python_handler_wake_check(void *udata)
{
    return arrpy_wake_check(udata);
}

/* The handler's __name__ into out (0), as 0.5.0 labelled its metrics: an alias (handle =
 * other) or a decorated function is known by the name of what it resolves to. -1 when the
 * module cannot be loaded or the object has no str __name__ that fits. The interpreter stays
 * up: arrpcd calls this in a process that exits right after. */
ARRPC_API int arrpc_python_handler_name(const char *arg, char *out, size_t len);
int arrpc_python_handler_name(const char *arg, char *out, size_t len)
{
    python_handler h = {0};
    if (load(arg, &h) != 0) return -1;
    PyObject *name = PyObject_GetAttrString(h.function, "__name__");
    const char *text = name && PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
    int rc = text && *text && strlen(text) < len ? 0 : -1;
    if (rc == 0) memcpy(out, text, strlen(text) + 1);
    PyErr_Clear();
    Py_XDECREF(name);
    return rc;
}

ARRPC_API int arrpc_python_handler(arrpc_call *call, const msgpack_object *request,
                                   msgpack_packer *response, void *udata);
ARRPC_API int arrpc_python_handler(arrpc_call *call, const msgpack_object *request,
                                   msgpack_packer *response, void *udata)
{
    python_handler *h = udata;
    return arrpy_handler_call(h->function, h->rpc_error, call, request, response);
}
