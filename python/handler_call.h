/* handler_call.h -- running a Python handler for a call of the C server: the GIL taken around
 * the call only, the request converted, the reply packed, exceptions answered as errors. Shared
 * by arrpc.Server (the extension) and arrpcd's Python plugin. */
#ifndef ARRPC_PYTHON_HANDLER_CALL_H
#define ARRPC_PYTHON_HANDLER_CALL_H

#include <arrpc.h>

#include "convert.h"

/* Calls handler(request) and packs its reply into response, or answers the call with an
 * RpcException: the handler's message for arrpc.error.RpcException (rpc_error), "<TypeName>:
 * <message>" for any other exception (its traceback printed to stderr, once), "cannot pack the
 * reply: ..." for a reply msgpack cannot pack. Takes and lets go of the GIL itself: the calling
 * thread must not hold it. */
int arrpy_handler_call(PyObject *handler, PyObject *rpc_error, arrpc_call *call,
                       const msgpack_object *request, msgpack_packer *response);

/* In a process forked from a Python process whose forking thread held the GIL: makes the
 * interpreter whole again (PyOS_AfterFork_Child) and lets go of the GIL so that handler threads
 * can take it. */
void arrpy_after_fork_child(void);

/* True on a thread that is running a handler now (a handler cannot wait for its own server). */
int arrpy_in_handler(void);

/* The handler's wake check (arrpc_handler_wake_check_fn): 0 while one of the handler's threads
 * already waits for the GIL, since one more woken thread would only wait behind it. */
int arrpy_wake_check(void *udata);

/* The calling thread lets go of the GIL it holds, and keeps its thread state for the next call. */
void arrpy_leave_python(void);

#endif
