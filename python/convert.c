/* convert.c -- msgpack_object <-> PyObject with msgpack-python's rules (raw=False, use_list,
 * use_bin_type, ExtType, Timestamp), without calling msgpack-python for the common types. */
#include "convert.h"

static PyObject *ext_type;  /* msgpack.ExtType */
static PyObject *timestamp; /* msgpack.Timestamp */

int arrpy_convert_init(void)
{
    PyObject *msgpack = PyImport_ImportModule("msgpack");
    if (!msgpack) return -1;
    ext_type = PyObject_GetAttrString(msgpack, "ExtType");
    timestamp = ext_type ? PyObject_GetAttrString(msgpack, "Timestamp") : NULL;
    Py_DECREF(msgpack);
    return timestamp ? 0 : -1;
}

/* ---- MessagePack to Python ---------------------------------------------------------------- */

static PyObject *from_ext(const msgpack_object_ext *ext)
{
    if (ext->type == ARRPY_TIMESTAMP_EXT) /* unpackb's default timestamp=0: a Timestamp */
        return PyObject_CallMethod(timestamp, "from_bytes", "y#", ext->ptr, (Py_ssize_t)ext->size);
    return PyObject_CallFunction(ext_type, "iy#", (int)ext->type, ext->ptr, (Py_ssize_t)ext->size);
}

static PyObject *from_array(const msgpack_object_array *array)
{
    PyObject *list = PyList_New(array->size);
    for (uint32_t i = 0; list && i < array->size; i++) {
        PyObject *item = arrpy_from_msgpack(&array->ptr[i]);
        if (!item)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, i, item);
    }
    return list;
}

/* A map key: arrays become tuples, nested ones too, so that they can be keys. */
static PyObject *from_key(const msgpack_object *key)
{
    if (key->type != MSGPACK_OBJECT_ARRAY) return arrpy_from_msgpack(key);
    const msgpack_object_array *array = &key->via.array;
    PyObject *tuple = PyTuple_New(array->size);
    for (uint32_t i = 0; tuple && i < array->size; i++) {
        PyObject *item = from_key(&array->ptr[i]);
        if (!item)
            Py_CLEAR(tuple);
        else
            PyTuple_SET_ITEM(tuple, i, item);
    }
    return tuple;
}

static PyObject *from_map(const msgpack_object_map *map)
{
    PyObject *dict = PyDict_New();
    for (uint32_t i = 0; dict && i < map->size; i++) {
        PyObject *key = from_key(&map->ptr[i].key);
        PyObject *val = key ? arrpy_from_msgpack(&map->ptr[i].val) : NULL;
        if (!val || PyDict_SetItem(dict, key, val) != 0) Py_CLEAR(dict);
        Py_XDECREF(key);
        Py_XDECREF(val);
    }
    return dict;
}

PyObject *arrpy_from_msgpack(const msgpack_object *obj)
{
    switch (obj->type) {
    case MSGPACK_OBJECT_NIL:
        Py_RETURN_NONE;
    case MSGPACK_OBJECT_BOOLEAN:
        return PyBool_FromLong(obj->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return PyLong_FromUnsignedLongLong(obj->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return PyLong_FromLongLong(obj->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return PyFloat_FromDouble(obj->via.f64);
    case MSGPACK_OBJECT_STR:
        return PyUnicode_DecodeUTF8(obj->via.str.ptr, obj->via.str.size, NULL);
    case MSGPACK_OBJECT_BIN:
        return PyBytes_FromStringAndSize(obj->via.bin.ptr, obj->via.bin.size);
    case MSGPACK_OBJECT_EXT:
        return from_ext(&obj->via.ext);
    case MSGPACK_OBJECT_ARRAY:
        return from_array(&obj->via.array);
    case MSGPACK_OBJECT_MAP:
        return from_map(&obj->via.map);
    }
    PyErr_Format(PyExc_ValueError, "unknown MessagePack object type %d", (int)obj->type);
    return NULL;
}

/* ---- Python to MessagePack ---------------------------------------------------------------- */

static int packed(int rc)
{
    if (rc == 0) return 0;
    PyErr_NoMemory();
    return -1;
}

static int pack_long(msgpack_packer *pk, PyObject *obj)
{
    int overflow = 0;
    long long value = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (value == -1 && PyErr_Occurred()) return -1;
    if (overflow == 0) return packed(msgpack_pack_long_long(pk, value));
    unsigned long long big = overflow > 0 ? PyLong_AsUnsignedLongLong(obj) : 0;
    if (overflow < 0 || PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_SetString(PyExc_OverflowError, "Integer value out of range");
        return -1;
    }
    return packed(msgpack_pack_unsigned_long_long(pk, big));
}

static int pack_str(msgpack_packer *pk, PyObject *obj)
{
    Py_ssize_t len = 0;
    const char *utf8 = PyUnicode_AsUTF8AndSize(obj, &len); /* cached by str: no copy */
    if (!utf8) return -1;
    return packed(msgpack_pack_str(pk, (size_t)len) ||
                  msgpack_pack_str_body(pk, utf8, (size_t)len));
}

static int pack_bin(msgpack_packer *pk, const void *data, Py_ssize_t len)
{
    return packed(msgpack_pack_bin(pk, (size_t)len) ||
                  msgpack_pack_bin_body(pk, data, (size_t)len));
}

static int pack_buffer(msgpack_packer *pk, PyObject *obj)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_CONTIG_RO) != 0) return -1;
    int rc = pack_bin(pk, view.buf, view.len);
    PyBuffer_Release(&view);
    return rc;
}

static int pack_seq(msgpack_packer *pk, PyObject *obj, int depth);
static int pack_dict(msgpack_packer *pk, PyObject *obj, int depth);
static int pack_ext(msgpack_packer *pk, PyObject *obj);
static int pack_timestamp(msgpack_packer *pk, PyObject *obj);

static int pack_depth(msgpack_packer *pk, PyObject *obj, int depth)
{
    if (depth > ARRPY_PACK_DEPTH_MAX) {
        PyErr_SetString(PyExc_ValueError, "recursion limit exceeded");
        return -1;
    }
    if (obj == Py_None) return packed(msgpack_pack_nil(pk));
    if (obj == Py_True) return packed(msgpack_pack_true(pk));
    if (obj == Py_False) return packed(msgpack_pack_false(pk));
    if (PyLong_Check(obj)) return pack_long(pk, obj);
    if (PyFloat_Check(obj)) return packed(msgpack_pack_double(pk, PyFloat_AS_DOUBLE(obj)));
    if (PyUnicode_Check(obj)) return pack_str(pk, obj);
    if (PyBytes_Check(obj)) return pack_bin(pk, PyBytes_AS_STRING(obj), PyBytes_GET_SIZE(obj));
    if (PyByteArray_Check(obj) || PyMemoryView_Check(obj)) return pack_buffer(pk, obj);
    if (PyDict_Check(obj)) return pack_dict(pk, obj, depth);
    /* ExtType is a namedtuple: it is checked before tuples, as msgpack-python does. */
    int is = PyObject_IsInstance(obj, ext_type);
    if (is != 0) return is < 0 ? -1 : pack_ext(pk, obj);
    if (PyList_Check(obj) || PyTuple_Check(obj)) return pack_seq(pk, obj, depth);
    if ((is = PyObject_IsInstance(obj, timestamp)) != 0)
        return is < 0 ? -1 : pack_timestamp(pk, obj);
    PyErr_Format(PyExc_TypeError, "can not serialize '%.200s' object", Py_TYPE(obj)->tp_name);
    return -1;
}

int arrpy_pack(msgpack_packer *pk, PyObject *obj)
{
    return pack_depth(pk, obj, 0);
}

static int pack_seq(msgpack_packer *pk, PyObject *obj, int depth)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(obj); /* a list or a tuple: no copy is made */
    if (n > (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "list is too large");
        return -1;
    }
    if (packed(msgpack_pack_array(pk, (size_t)n)) != 0) return -1;
    PyObject **items = PySequence_Fast_ITEMS(obj);
    for (Py_ssize_t i = 0; i < n; i++)
        if (pack_depth(pk, items[i], depth + 1) != 0) return -1;
    return 0;
}

static int pack_dict(msgpack_packer *pk, PyObject *obj, int depth)
{
    Py_ssize_t n = PyDict_Size(obj), pos = 0;
    PyObject *key, *val;
    if (n > (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "dict is too large");
        return -1;
    }
    if (packed(msgpack_pack_map(pk, (size_t)n)) != 0) return -1;
    while (PyDict_Next(obj, &pos, &key, &val))
        if (pack_depth(pk, key, depth + 1) != 0 || pack_depth(pk, val, depth + 1) != 0) return -1;
    return 0;
}

static int pack_ext_body(msgpack_packer *pk, int8_t type, const char *data, Py_ssize_t len)
{
    return packed(msgpack_pack_ext(pk, (size_t)len, type) ||
                  msgpack_pack_ext_body(pk, data, (size_t)len));
}

static int pack_ext(msgpack_packer *pk, PyObject *obj)
{
    PyObject *code = PyObject_GetAttrString(obj, "code");
    PyObject *data = code ? PyObject_GetAttrString(obj, "data") : NULL;
    int rc = -1;
    long type = code ? PyLong_AsLong(code) : -1;
    if (data && !PyErr_Occurred()) {
        char *bytes;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(data, &bytes, &len) == 0)
            rc = pack_ext_body(pk, (int8_t)type, bytes, len);
    }
    Py_XDECREF(code);
    Py_XDECREF(data);
    return rc;
}

static int pack_timestamp(msgpack_packer *pk, PyObject *obj)
{
    PyObject *data = PyObject_CallMethod(obj, "to_bytes", NULL);
    if (!data) return -1;
    char *bytes;
    Py_ssize_t len;
    int rc = PyBytes_AsStringAndSize(data, &bytes, &len) == 0
                 ? pack_ext_body(pk, ARRPY_TIMESTAMP_EXT, bytes, len)
                 : -1;
    Py_DECREF(data);
    return rc;
}
