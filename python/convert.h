/* convert.h -- MessagePack objects to Python objects and back, as arrpc 0.5.0 saw them: a
 * request as msgpack.unpackb(data, raw=False) gives it, a reply packed as
 * msgpack.packb(obj, use_bin_type=True) packs it. Done in C for speed; only ExtType and
 * Timestamp are msgpack's Python types. Every function here needs the GIL. */
#ifndef ARRPC_PYTHON_CONVERT_H
#define ARRPC_PYTHON_CONVERT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <msgpack.h>

/* msgpack-python's own bound (DEFAULT_RECURSE_LIMIT): a reply nested deeper is refused. */
#define ARRPY_PACK_DEPTH_MAX 511
/* The MessagePack extension type that holds a timestamp. */
#define ARRPY_TIMESTAMP_EXT (-1)

/* Imports msgpack's ExtType and Timestamp; 0, or -1 with a Python error set. */
int arrpy_convert_init(void);

/* A new reference to the Python object for obj, or NULL with a Python error set (a str that is
 * not UTF-8, a map key that cannot be hashed...). */
PyObject *arrpy_from_msgpack(const msgpack_object *obj);

/* Packs obj; 0, or -1 with a Python error set (TypeError naming a type that cannot be packed,
 * OverflowError for an int out of range, ValueError past ARRPY_PACK_DEPTH_MAX). On error the
 * packer holds part of the object: the caller throws it away. */
int arrpy_pack(msgpack_packer *pk, PyObject *obj);

#endif
