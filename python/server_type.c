/* server_type.c -- arrpc._arrpc.Server: the C server (server/) calling a Python handler.
 *
 * The event loop and the waits run without the GIL; a handler call takes it (handler_call.c).
 * With workers = 0 the loop runs on a thread of this process. With workers >= 1 the pre-fork
 * master is forked (or, in the foreground, this process becomes it) while this thread holds the
 * GIL: the master runs no Python, and each worker it forks inherits an interpreter whose GIL its
 * one thread holds, which arrpy_after_fork_child turns into a working interpreter before the
 * worker accepts. */
#include <arrpc.h>
#include <poll.h>
#include <stdatomic.h>
#include <unistd.h>

#include "handler_call.h"
#include "module.h"

#define SERVE_POLL_MS 100 /* the foreground loop looks at Python's signals this often */

typedef struct {
    PyObject_HEAD arrpc_server *srv;
    PyObject *handler;
    unsigned workers;
    int started;           /* start() or serve() has run */
    atomic_int stop_asked; /* stop() was called: serve() returns */
    pid_t owner;           /* the process that made the server: workers are others */
} server_object;

static PyObject *server_fail(server_object *self, int code)
{
    return arrpy_raise(code, arrpc_server_errstr(self->srv));
}

static int python_handler(arrpc_call *call, const msgpack_object *request, msgpack_packer *response,
                          void *udata)
{
    server_object *self = udata;
    return arrpy_handler_call(self->handler, arrpy_rpc_error, call, request, response);
}

/* Each worker's init: it was forked with the GIL held by its only thread. */
static int worker_init(const char *arg, void **udata)
{
    (void)arg;
    server_object *self = *udata;
    if (getpid() != self->owner) arrpy_after_fork_child();
    return 0;
}

typedef struct {
    const char *host, *tls_cert, *tls_key, *tls_client_ca, *metrics_host, *handler_name;
    const char *pid_file;
    unsigned short port, metrics_port;
    unsigned workers, threads, idle_ms, handler_timeout_ms;
    Py_ssize_t max_message;
    int debug;
    PyObject *secret;
} server_settings;

static int apply_secret(arrpc_server *srv, PyObject *secret)
{
    Py_buffer view;
    if (secret == Py_None) return 0;
    if (PyObject_GetBuffer(secret, &view, PyBUF_SIMPLE) != 0) return -1;
    int rc = arrpc_server_set_auth_secret(srv, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return rc;
}

static int apply(server_object *self, const server_settings *s)
{
    arrpc_server *srv = self->srv;
    int rc = arrpc_server_set_workers(srv, s->workers);
    if (rc == 0) rc = arrpc_server_set_threads(srv, s->threads);
    if (rc == 0) rc = arrpc_server_set_handler_wake_check(srv, arrpy_wake_check);
    if (rc == 0) rc = arrpc_server_set_debug(srv, s->debug);
    if (rc == 0) rc = arrpc_server_set_idle_timeout(srv, s->idle_ms);
    if (rc == 0) rc = arrpc_server_set_handler_timeout(srv, s->handler_timeout_ms);
    if (rc == 0 && s->max_message > 0)
        rc = arrpc_server_set_max_message(srv, (size_t)s->max_message);
    if (rc == 0 && s->handler_name) rc = arrpc_server_set_handler_name(srv, s->handler_name);
    if (rc == 0 && s->tls_cert)
        rc = arrpc_server_set_tls(srv, s->tls_cert, s->tls_key, s->tls_client_ca);
    if (rc == 0 && s->metrics_host)
        rc = arrpc_server_set_metrics(srv, s->metrics_host, s->metrics_port);
    if (rc == 0 && s->pid_file) rc = arrpc_server_set_pid_file(srv, s->pid_file);
    if (rc == 0 && s->workers > 0)
        rc = arrpc_server_set_handler_lifecycle(srv, worker_init, NULL, NULL);
    if (rc == 0) rc = apply_secret(srv, s->secret);
    if (rc > 0 || (rc < 0 && PyErr_Occurred())) return -1;
    if (rc != 0) server_fail(self, rc);
    return rc != 0 ? -1 : 0;
}

static int server_init(server_object *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {
        "host",         "port",          "handler",     "debug",           "tls_certfile",
        "tls_keyfile",  "tls_client_ca", "auth_secret", "metrics_host",    "metrics_port",
        "workers",      "threads",       "max_message", "idle_timeout_ms", "handler_timeout_ms",
        "handler_name", "pid_file",      NULL};
    server_settings s = {.secret = Py_None, .handler_timeout_ms = ARRPC_DEFAULT_HANDLER_TIMEOUT_MS};
    PyObject *handler;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "sHO|$pzzzOzHIInIIzz", kwlist, &s.host, &s.port,
                                     &handler, &s.debug, &s.tls_cert, &s.tls_key, &s.tls_client_ca,
                                     &s.secret, &s.metrics_host, &s.metrics_port, &s.workers,
                                     &s.threads, &s.max_message, &s.idle_ms, &s.handler_timeout_ms,
                                     &s.handler_name, &s.pid_file))
        return -1;
    if (!PyCallable_Check(handler)) {
        PyErr_SetString(PyExc_TypeError, "the handler must be callable");
        return -1;
    }
    if (self->srv) {
        PyErr_SetString(PyExc_RuntimeError, "the server is initialised already");
        return -1;
    }
    self->handler = Py_NewRef(handler);
    self->workers = s.workers;
    self->owner = getpid();
    if (!(self->srv = arrpc_server_new(s.host, s.port, python_handler, self))) {
        PyErr_NoMemory();
        return -1;
    }
    return apply(self, &s);
}

/* Stops a server running in the background and waits for it, without the GIL: its handler
 * threads may be waiting for it. */
static int stop_and_wait(server_object *self)
{
    int rc;
    Py_BEGIN_ALLOW_THREADS arrpc_server_stop(self->srv);
    rc = arrpc_server_wait(self->srv);
    Py_END_ALLOW_THREADS return rc;
}

static void server_dealloc(server_object *self)
{
    if (self->srv && self->started && getpid() == self->owner) stop_and_wait(self);
    if (self->srv) arrpc_server_free(self->srv);
    Py_XDECREF(self->handler);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int startable(server_object *self)
{
    if (!self->srv)
        PyErr_SetString(PyExc_ValueError, "the server is not initialised");
    else if (self->started)
        PyErr_SetString(PyExc_RuntimeError, "the server was started already");
    else
        return 1;
    return 0;
}

/* Starts in the background: returns once the server accepts. */
static PyObject *server_start(server_object *self, PyObject *unused)
{
    (void)unused;
    if (!startable(self)) return NULL;
    int rc;
    if (self->workers > 0) { /* forks the master: hold the GIL across the fork (see the top) */
        PyOS_BeforeFork();
        rc = arrpc_server_start(self->srv);
        PyOS_AfterFork_Parent();
    } else {
        Py_BEGIN_ALLOW_THREADS rc = arrpc_server_start(self->srv);
        Py_END_ALLOW_THREADS
    }
    if (rc != 0) return server_fail(self, rc);
    self->started = 1;
    Py_RETURN_NONE;
}

/* workers = 0 in the foreground: the loop runs on its thread while this one keeps looking at
 * Python's signals, so that Ctrl-C (KeyboardInterrupt) stops the server as it stops Python. */
static PyObject *serve_in_process(server_object *self)
{
    if (!server_start(self, NULL)) return NULL;
    while (!atomic_load(&self->stop_asked)) {
        Py_BEGIN_ALLOW_THREADS poll(NULL, 0, SERVE_POLL_MS);
        Py_END_ALLOW_THREADS if (PyErr_CheckSignals() != 0)
        {
            stop_and_wait(self);
            return NULL;
        }
    }
    int rc = stop_and_wait(self);
    return rc == 0 ? Py_NewRef(Py_None) : server_fail(self, rc);
}

/* Serves in the foreground until stop() (or, with workers, SIGTERM/SIGINT to this process, which
 * is then the master and runs no Python code meanwhile). */
static PyObject *server_serve(server_object *self, PyObject *unused)
{
    (void)unused;
    if (!startable(self)) return NULL;
    if (self->workers == 0) return serve_in_process(self);
    self->started = 1;
    int rc = arrpc_server_run(self->srv); /* the master: this thread keeps the GIL */
    self->started = 0;
    return rc == 0 ? Py_NewRef(Py_None) : server_fail(self, rc);
}

static PyObject *server_stop(server_object *self, PyObject *unused)
{
    (void)unused;
    atomic_store(&self->stop_asked, 1);
    if (self->srv && arrpy_in_handler()) { /* its own server: waiting would wait for itself */
        arrpc_server_stop(self->srv);
        Py_RETURN_NONE;
    }
    if (self->srv && self->started) {
        int rc = stop_and_wait(self);
        self->started = 0;
        if (rc != 0) return server_fail(self, rc);
    }
    Py_RETURN_NONE;
}

/* Asks a server to stop without waiting for it (from a handler, or a signal handler). */
static PyObject *server_request_stop(server_object *self, PyObject *unused)
{
    (void)unused;
    atomic_store(&self->stop_asked, 1);
    if (self->srv) arrpc_server_stop(self->srv);
    Py_RETURN_NONE;
}

static PyObject *server_bind(server_object *self, PyObject *unused)
{
    (void)unused;
    if (!self->srv) return PyErr_Format(PyExc_ValueError, "the server is not initialised");
    int rc = arrpc_server_bind(self->srv);
    if (rc != 0) return server_fail(self, rc);
    return PyLong_FromLong(arrpc_server_port(self->srv));
}

static PyObject *server_port(server_object *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLong(self->srv ? arrpc_server_port(self->srv) : 0);
}

static PyMethodDef server_methods[] = {
    {"start", (PyCFunction)server_start, METH_NOARGS, "Starts in the background."},
    {"serve", (PyCFunction)server_serve, METH_NOARGS, "Serves in the foreground until stopped."},
    {"stop", (PyCFunction)server_stop, METH_NOARGS, "Stops and waits for the server."},
    {"request_stop", (PyCFunction)server_request_stop, METH_NOARGS,
     "Asks the server to stop, without waiting."},
    {"bind", (PyCFunction)server_bind, METH_NOARGS, "Binds now; returns the port."},
    {"port", (PyCFunction)server_port, METH_NOARGS, "The bound port, 0 when not bound."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject arrpy_server_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "arrpc._arrpc.Server",
    .tp_basicsize = sizeof(server_object),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The C server; arrpc.Server wraps it with arrpc 0.5.0's signature.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)server_init,
    .tp_dealloc = (destructor)server_dealloc,
    .tp_methods = server_methods,
};
