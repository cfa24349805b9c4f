/* handler_call.c -- a Python handler called from any thread of the C server. Each thread keeps
 * one thread state for its whole life (made by PyGILState_Ensure on its first call, so that code
 * in the handler that asks for the GIL state finds it), and swaps the GIL in and out around each
 * call: creating a thread state per call would cost more than the call. */
#include "handler_call.h"

#include <stdatomic.h>

static _Thread_local PyThreadState *saved_state; /* this thread's, while it has no GIL */
static _Thread_local int in_handler;             /* this thread runs a handler now */
/* Handler threads waiting for the GIL right now. A thread waiting for it when the worker would
 * wake another one for the queue means the GIL's holder is computing, not waiting: a second
 * waiter would only add a GIL hand-over per call (arrpy_wake_check). */
static _Atomic int gil_waiters;

int arrpy_in_handler(void)
{
    return in_handler;
}

int arrpy_wake_check(void *udata)
{
    (void)udata;
    return atomic_load_explicit(&gil_waiters, memory_order_relaxed) == 0;
}

static void enter_python(void)
{
    atomic_fetch_add_explicit(&gil_waiters, 1, memory_order_relaxed);
    if (saved_state)
        PyEval_RestoreThread(saved_state);
    else
        PyGILState_Ensure(); /* never released: the thread state lives as long as the thread */
    atomic_fetch_sub_explicit(&gil_waiters, 1, memory_order_relaxed);
}

void arrpy_leave_python(void)
{
    saved_state = PyEval_SaveThread();
}

void arrpy_after_fork_child(void)
{
    PyOS_AfterFork_Child();
    arrpy_leave_python();
}

/* The exception being handled, as the reply's error; prints the traceback of unexpected ones. */
static int answer_exception(arrpc_call *call, PyObject *rpc_error)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *text = value ? PyObject_Str(value) : NULL;
    const char *message = text ? PyUnicode_AsUTF8(text) : NULL;
    if (!message) {
        PyErr_Clear();
        message = "(the exception cannot be printed)";
    }
    int rc;
    if (rpc_error && PyErr_GivenExceptionMatches(type, rpc_error)) {
        rc = arrpc_call_fail(call, "%s", message);
    } else {
        const char *name = ((PyTypeObject *)type)->tp_name;
        const char *dot = strrchr(name, '.'); /* a C type's tp_name carries its module */
        rc = arrpc_call_fail(call, "%s: %s", dot ? dot + 1 : name, message);
        PySys_WriteStderr("arrpc: the handler raised %s; the client got an RpcException:\n",
                          dot ? dot + 1 : name);
        PyErr_Display(type, value, tb);
    }
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return rc;
}

/* A reply that cannot be packed: the error names it, and whatever was packed is replaced. */
static int answer_unpackable(arrpc_call *call)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *text = value ? PyObject_Str(value) : NULL;
    const char *message = text ? PyUnicode_AsUTF8(text) : NULL;
    int rc = arrpc_call_fail(call, "cannot pack the reply: %s", message ? message : "?");
    PyErr_Clear();
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return rc;
}

int arrpy_handler_call(PyObject *handler, PyObject *rpc_error, arrpc_call *call,
                       const msgpack_object *request, msgpack_packer *response)
{
    enter_python();
    in_handler = 1;
    int rc;
    PyObject *msg = arrpy_from_msgpack(request);
    PyObject *reply = msg ? PyObject_CallOneArg(handler, msg) : NULL;
    if (!reply)
        rc = answer_exception(call, rpc_error);
    else if (arrpy_pack(response, reply) != 0)
        rc = answer_unpackable(call);
    else
        rc = 0;
    Py_XDECREF(msg);
    Py_XDECREF(reply);
    in_handler = 0;
    arrpy_leave_python();
    return rc;
}
