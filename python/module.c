/* module.c -- the arrpc._arrpc extension module: its types, and arrpc.error's classes for the
 * errors of the C library. */
#include <arrpc.h>

#include "convert.h"
#include "module.h"

PyObject *arrpy_connect_error, *arrpy_auth_error, *arrpy_timeout_error, *arrpy_rpc_error;

/* Which Python exception each error of the C library becomes. Transport failures that leave the
 * connection unusable are ConnectException; a reply the client could not read is RpcException. */
static PyObject *class_of(int code)
{
    switch (code) {
    case ARRPC_ECONNECT:
    case ARRPC_ECLOSED:
    case ARRPC_EIO:
    case ARRPC_ETLS:
    case ARRPC_ESYS:
        return arrpy_connect_error;
    case ARRPC_EAUTH:
        return arrpy_auth_error;
    case ARRPC_ETIMEOUT:
        return arrpy_timeout_error;
    case ARRPC_EINVAL:
        return PyExc_ValueError;
    case ARRPC_ENOMEM:
        return PyExc_MemoryError;
    default:
        return arrpy_rpc_error;
    }
}

PyObject *arrpy_exception(int code, const char *text)
{
    return PyObject_CallFunction(class_of(code), "s", text);
}

PyObject *arrpy_raise(int code, const char *text)
{
    PyObject *exc = arrpy_exception(code, text);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static int import_errors(void)
{
    PyObject *mod = PyImport_ImportModule("arrpc.error");
    if (!mod) return -1;
    arrpy_connect_error = PyObject_GetAttrString(mod, "ConnectException");
    arrpy_auth_error = PyObject_GetAttrString(mod, "AuthException");
    arrpy_timeout_error = PyObject_GetAttrString(mod, "RpcTimeoutException");
    arrpy_rpc_error = PyObject_GetAttrString(mod, "RpcException");
    Py_DECREF(mod);
    return arrpy_connect_error && arrpy_auth_error && arrpy_timeout_error && arrpy_rpc_error ? 0
                                                                                             : -1;
}

static struct PyModuleDef arrpc_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "arrpc._arrpc",
    .m_doc = "The C core of the arrpc package: use arrpc.Client and arrpc.Server.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__arrpc(void);
PyMODINIT_FUNC PyInit__arrpc(void)
{
    if (import_errors() != 0 || arrpy_convert_init() != 0) return NULL;
    if (PyType_Ready(&arrpy_client_type) < 0 || PyType_Ready(&arrpy_server_type) < 0) return NULL;
    PyObject *mod = PyModule_Create(&arrpc_module);
    if (!mod) return NULL;
    if (PyModule_AddObjectRef(mod, "Client", (PyObject *)&arrpy_client_type) < 0 ||
        PyModule_AddObjectRef(mod, "Server", (PyObject *)&arrpy_server_type) < 0 ||
        PyModule_AddStringConstant(mod, "core_version", ARRPC_VERSION) < 0 ||
        PyModule_AddIntConstant(mod, "MAX_THREADS", ARRPC_MAX_THREADS) < 0 ||
        PyModule_AddIntConstant(mod, "MAX_WORKERS", ARRPC_MAX_WORKERS) < 0 ||
        PyModule_AddIntConstant(mod, "DEFAULT_MAX_MESSAGE", ARRPC_DEFAULT_MAX_MESSAGE) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
