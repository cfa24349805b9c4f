/* client_type.c -- arrpc._arrpc.Client: the C client (client/) for Python. Requests are packed
 * in C, and the GIL is let go while the client waits on the network; while it waits, the
 * client's interrupt check takes the GIL back now and then to run Python's signal handlers, so
 * that Ctrl-C raises KeyboardInterrupt in a send that waits for a slow server. */
#include <arrpc.h>
#include <string.h>

#include "convert.h"
#include "module.h"

#define CLIENT_HOST_MAX 256

typedef struct {
    PyObject_HEAD arrpc_client *cli;
    msgpack_sbuffer buf; /* the request being packed, reused from send to send */
    int busy; /* a send is running: the C client and buf are in use (GIL held to change) */
} client_object;

static PyObject *client_fail(client_object *self, int code)
{
    return arrpy_raise(code, arrpc_client_errstr(self->cli));
}

/* A send lets go of the GIL, and runs Python's signal handlers while it waits: another thread,
 * or a signal handler, calling this client meanwhile would pull its buffers from under it. */
static PyObject *refuse_busy(void)
{
    PyErr_SetString(PyExc_RuntimeError,
                    "the client is in the middle of a send (from another thread, or a signal "
                    "handler running during it): use one client per thread");
    return NULL;
}

/* The Python-side settings checked one by one, so that an error names the option. */
static int configure(client_object *self, PyObject *secret, const char *cafile, int self_signed,
                     const char *cert, const char *key, const char *server_name)
{
    int rc = 0;
    if (secret != Py_None) {
        Py_buffer view;
        if (PyObject_GetBuffer(secret, &view, PyBUF_SIMPLE) != 0) return -1;
        rc = arrpc_client_set_auth_secret(self->cli, view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
    }
    if (rc == 0 && cafile) rc = arrpc_client_set_tls(self->cli, cafile, self_signed);
    if (rc == 0 && cert) rc = arrpc_client_set_tls_client_cert(self->cli, cert, key);
    if (rc == 0 && server_name) rc = arrpc_client_set_tls_server_name(self->cli, server_name);
    if (rc != 0) client_fail(self, rc);
    return rc != 0 ? -1 : 0;
}

static int client_init(client_object *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"host",
                             "port",
                             "timeout_ms",
                             "connect_timeout_ms",
                             "retries",
                             "backoff_ms",
                             "debug",
                             "auth_secret",
                             "tls_cafile",
                             "self_signed",
                             "tls_certfile",
                             "tls_keyfile",
                             "server_name",
                             "max_message",
                             "metrics",
                             "metrics_host",
                             "metrics_port",
                             "spin_us",
                             NULL};
    const char *host, *cafile = NULL, *cert = NULL, *key = NULL, *server_name = NULL;
    const char *metrics_host = NULL;
    unsigned short port, metrics_port = 0;
    unsigned timeout_ms = 0, connect_ms = 0, retries = ARRPC_DEFAULT_CON_MAX_RETRIES;
    unsigned backoff_ms = 1000;
    Py_ssize_t max_message = 0;
    int debug = 0, self_signed = 0, metrics = 0, spin_us = -1; /* -1: the library's default */
    PyObject *secret = Py_None;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "sH|$IIIIpOzpzzznpzHi", kwlist, &host, &port, &timeout_ms, &connect_ms,
            &retries, &backoff_ms, &debug, &secret, &cafile, &self_signed, &cert, &key,
            &server_name, &max_message, &metrics, &metrics_host, &metrics_port, &spin_us))
        return -1;
    if (self->busy) return refuse_busy() ? 0 : -1;
    if (self->cli) arrpc_client_free(self->cli);
    if (!(self->cli = arrpc_client_new(host, port))) {
        PyErr_NoMemory();
        return -1;
    }
    int rc = arrpc_client_set_timeout(self->cli, timeout_ms);
    if (rc == 0) rc = arrpc_client_set_connect_timeout(self->cli, connect_ms);
    if (rc == 0) rc = arrpc_client_set_con_max_retries(self->cli, retries);
    if (rc == 0) rc = arrpc_client_set_retry_backoff(self->cli, backoff_ms);
    if (rc == 0) rc = arrpc_client_set_debug(self->cli, debug);
    if (rc == 0 && max_message > 0)
        rc = arrpc_client_set_max_message(self->cli, (size_t)max_message);
    if (rc == 0 && spin_us >= 0) rc = arrpc_client_set_spin(self->cli, (unsigned)spin_us);
    if (rc != 0) {
        client_fail(self, rc);
        return -1;
    }
    if (configure(self, secret, cafile, self_signed, cert, key, server_name) != 0) return -1;
    if (metrics && (rc = arrpc_client_serve_metrics(self->cli, metrics_host, metrics_port)) != 0) {
        PyErr_Format(PyExc_OSError, "cannot serve the client's metrics: %s",
                     arrpc_client_errstr(self->cli));
        return -1;
    }
    return 0;
}

static void client_dealloc(client_object *self)
{
    if (self->cli) arrpc_client_free(self->cli);
    msgpack_sbuffer_destroy(&self->buf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *client_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    client_object *self = (client_object *)type->tp_alloc(type, 0);
    if (self) msgpack_sbuffer_init(&self->buf);
    return (PyObject *)self;
}

static int usable(client_object *self)
{
    if (self->cli) return 1;
    PyErr_SetString(PyExc_ValueError, "the client is not initialised");
    return 0;
}

static int claim(client_object *self)
{
    if (!usable(self)) return 0;
    if (self->busy) return refuse_busy() != NULL;
    self->busy = 1;
    return 1;
}

static PyObject *unclaim(client_object *self, PyObject *result)
{
    self->busy = 0;
    return result;
}

/* Packs obj into dst; 0, or -1 with a Python error set. */
static int pack_request(msgpack_sbuffer *dst, PyObject *obj)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, dst, msgpack_sbuffer_write);
    return arrpy_pack(&pk, obj);
}

/* The reply as a Python object; a batch's failed item as its exception (not raised). */
static PyObject *reply_object(arrpc_response *res)
{
    const msgpack_object *obj = arrpc_response_object(res);
    int status = arrpc_response_status(res);
    if (status == ARRPC_OK) return arrpy_from_msgpack(obj);
    /* "arrpc.error.<Name>: <message>": the item's exception carries the message alone */
    const char *text = obj->via.str.ptr;
    size_t len = obj->via.str.size;
    const char *colon = memchr(text, ':', len);
    size_t skip = colon && (size_t)(colon - text) + 2 <= len ? (size_t)(colon - text) + 2 : 0;
    PyObject *message = PyUnicode_DecodeUTF8(text + skip, (Py_ssize_t)(len - skip), "replace");
    if (!message) return NULL;
    PyObject *exc =
        PyObject_CallOneArg(status == ARRPC_EAUTH ? arrpy_auth_error : arrpy_rpc_error, message);
    Py_DECREF(message);
    return exc;
}

/* The interrupt check of a waiting send (udata: the calling thread's saved state): Python's
 * signal handlers run; one that raised (KeyboardInterrupt) stops the send, its exception set. */
static int signal_raised(void *udata)
{
    PyThreadState **saved = udata;
    PyEval_RestoreThread(*saved);
    int raised = PyErr_CheckSignals() != 0;
    *saved = PyEval_SaveThread();
    return raised;
}

/* Lets go of the GIL for a blocking call of the C client, interruptible by Python's signals. */
#define WAIT_WITHOUT_GIL(self, call)                                                               \
    do {                                                                                           \
        PyThreadState *saved_ = PyEval_SaveThread();                                               \
        arrpc_client_set_interrupt((self)->cli, signal_raised, &saved_);                           \
        call;                                                                                      \
        arrpc_client_set_interrupt((self)->cli, NULL, NULL);                                       \
        PyEval_RestoreThread(saved_);                                                              \
    } while (0)

/* A failed call's exception: a signal handler's own (KeyboardInterrupt), else the client's. */
static PyObject *call_failed(client_object *self, int rc)
{
    if (rc == ARRPC_EINTR && PyErr_Occurred()) return NULL;
    return rc == ARRPC_ENOMEM ? PyErr_NoMemory() : client_fail(self, rc);
}

static PyObject *send_one(client_object *self, PyObject *obj)
{
    self->buf.size = 0;
    if (pack_request(&self->buf, obj) != 0) return NULL;
    arrpc_response *res = NULL;
    int rc;
    WAIT_WITHOUT_GIL(self, rc = arrpc_client_send(self->cli, self->buf.data, self->buf.size, &res));
    if (rc != 0) return call_failed(self, rc);
    PyObject *reply = arrpy_from_msgpack(arrpc_response_object(res));
    arrpc_response_free(res);
    return reply;
}

/* Offsets into one buffer holding every request of a batch, packed one after the other. */
static PyObject *send_packed_batch(client_object *self, Py_ssize_t n, const size_t *ends)
{
    const void **reqs = PyMem_Calloc((size_t)n + 1, sizeof *reqs);
    size_t *lens = PyMem_Calloc((size_t)n + 1, sizeof *lens);
    arrpc_response **out = PyMem_Calloc((size_t)n + 1, sizeof *out);
    PyObject *list = NULL;
    int rc = ARRPC_ENOMEM;
    if (reqs && lens && out) {
        for (Py_ssize_t i = 0; i < n; i++) {
            size_t start = i ? ends[i - 1] : 0;
            reqs[i] = self->buf.data + start;
            lens[i] = ends[i] - start;
        }
        WAIT_WITHOUT_GIL(self, rc = arrpc_client_send_batch(self->cli, reqs, lens, (size_t)n, out));
    }
    if (rc == 0 && (list = PyList_New(n)))
        for (Py_ssize_t i = 0; list && i < n; i++) {
            PyObject *item = reply_object(out[i]);
            if (!item)
                Py_CLEAR(list);
            else
                PyList_SET_ITEM(list, i, item);
        }
    for (Py_ssize_t i = 0; out && i < n; i++)
        arrpc_response_free(out[i]);
    PyMem_Free(reqs);
    PyMem_Free(lens);
    PyMem_Free(out);
    if (rc != 0) return call_failed(self, rc);
    return list;
}

static PyObject *client_send(client_object *self, PyObject *obj)
{
    return claim(self) ? unclaim(self, send_one(self, obj)) : NULL;
}

static PyObject *send_batch(client_object *self, PyObject *requests)
{
    PyObject *seq = PySequence_Fast(requests, "send_batch takes a list of requests");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    size_t *ends = PyMem_Calloc((size_t)n + 1, sizeof *ends);
    PyObject *result = ends ? NULL : PyErr_NoMemory();
    int ok = ends != NULL;
    self->buf.size = 0;
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        ok = pack_request(&self->buf, PySequence_Fast_GET_ITEM(seq, i)) == 0;
        if (ok) ends[i] = self->buf.size;
    }
    if (ok) result = n ? send_packed_batch(self, n, ends) : PyList_New(0);
    PyMem_Free(ends);
    Py_DECREF(seq);
    return result;
}

static PyObject *client_send_batch(client_object *self, PyObject *requests)
{
    return claim(self) ? unclaim(self, send_batch(self, requests)) : NULL;
}

static PyObject *client_close(client_object *self, PyObject *unused)
{
    (void)unused;
    if (self->busy) return refuse_busy();
    if (self->cli) arrpc_client_close(self->cli);
    Py_RETURN_NONE;
}

static PyObject *client_metrics_port(client_object *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLong(self->cli ? arrpc_client_metrics_port(self->cli) : 0);
}

static PyMethodDef client_methods[] = {
    {"send", (PyCFunction)client_send, METH_O, "Sends one request; returns its reply."},
    {"send_batch", (PyCFunction)client_send_batch, METH_O,
     "Sends a list of requests pipelined; returns their replies in order, a failed one as its "
     "exception."},
    {"close", (PyCFunction)client_close, METH_NOARGS, "Closes the connection."},
    {"metrics_port", (PyCFunction)client_metrics_port, METH_NOARGS,
     "The port of the metrics exporter, 0 when none."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject arrpy_client_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "arrpc._arrpc.Client",
    .tp_basicsize = sizeof(client_object),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The C client; arrpc.Client wraps it with arrpc 0.5.0's signature.",
    .tp_new = client_new,
    .tp_init = (initproc)client_init,
    .tp_dealloc = (destructor)client_dealloc,
    .tp_methods = client_methods,
};
