/* module.h -- what the extension's files share: the arrpc.error classes and error raising. */
#ifndef ARRPC_PYTHON_MODULE_H
#define ARRPC_PYTHON_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* arrpc.error's classes, imported once when the module loads. */
extern PyObject *arrpy_connect_error, *arrpy_auth_error, *arrpy_timeout_error, *arrpy_rpc_error;

/* Raises the Python exception for an ARRPC_E* code with message `text`; returns NULL. */
PyObject *arrpy_raise(int code, const char *text);
/* The exception object (not raised) for a code: a new reference, NULL with an error set. */
PyObject *arrpy_exception(int code, const char *text);

extern PyTypeObject arrpy_client_type;
extern PyTypeObject arrpy_server_type;

#endif
