/* The record walk numpy cannot do: where each record starts (cniscope.wire.walk).
 *
 * Each record's length says where the next one starts, so the walk cannot be
 * vectorized (benchmarks/walk.py: a reader's time a record, 192 ns with the
 * walk in Python, 63 with this one, at 10M packets). Both functions trust
 * every length (the callers check the records they return, vectorized) and only
 * guard the reads themselves. The GIL is released: decoding goes on meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static uint32_t u32(const uint8_t *p, int big) {
    uint32_t v;
    memcpy(&v, p, 4);
    return big ? __builtin_bswap32(v) : v;
}

static int out_room(Py_buffer *out, Py_ssize_t limit) {
    if (out->len < limit * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "out holds fewer than limit int64 offsets");
        return 0;
    }
    return 1;
}

/* pcap_records(data, pos, stop, end, limit, big, out) -> (count, pos): the offsets of at most
 * `limit` records from `pos` while pos < stop, reading no byte at or past `end`; stops where
 * fewer than 12 bytes (a header up to its caplen) are left. */
static PyObject *pcap_records(PyObject *self, PyObject *args) {
    Py_buffer data, out;
    Py_ssize_t pos, stop, end, limit, n = 0;
    int big;
    if (!PyArg_ParseTuple(args, "y*nnnnpw*", &data, &pos, &stop, &end, &limit, &big, &out))
        return NULL;
    if (!out_room(&out, limit)) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&out);
        return NULL;
    }
    if (end > data.len) end = data.len;
    const uint8_t *bytes = data.buf;
    int64_t *offsets = out.buf;
    Py_BEGIN_ALLOW_THREADS
    while (n < limit && pos < stop && pos >= 0 && pos + 12 <= end) {
        offsets[n++] = pos;
        pos += 16 + (Py_ssize_t)u32(bytes + pos + 8, big);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    PyBuffer_Release(&out);
    return Py_BuildValue("nn", n, pos);
}

/* pcapng_packets(data, pos, end, limit, big, kind, out) -> (count, pos): the offsets of at most
 * `limit` consecutive blocks of type `kind` from `pos`; stops at a block of another type or
 * where fewer than 8 bytes (type and length) are left before `end`. */
static PyObject *pcapng_packets(PyObject *self, PyObject *args) {
    Py_buffer data, out;
    Py_ssize_t pos, end, limit, n = 0;
    int big;
    unsigned int kind;
    if (!PyArg_ParseTuple(args, "y*nnnpIw*", &data, &pos, &end, &limit, &big, &kind, &out))
        return NULL;
    if (!out_room(&out, limit)) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&out);
        return NULL;
    }
    if (end > data.len) end = data.len;
    const uint8_t *bytes = data.buf;
    int64_t *offsets = out.buf;
    Py_BEGIN_ALLOW_THREADS
    while (n < limit && pos >= 0 && pos + 8 <= end && u32(bytes + pos, big) == kind) {
        offsets[n++] = pos;
        pos += (Py_ssize_t)u32(bytes + pos + 4, big);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    PyBuffer_Release(&out);
    return Py_BuildValue("nn", n, pos);
}

static PyMethodDef methods[] = {
    {"pcap_records", pcap_records, METH_VARARGS, "Offsets of pcap records: (count, next position)."},
    {"pcapng_packets", pcapng_packets, METH_VARARGS, "Offsets of consecutive pcapng blocks of one type: (count, next position)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_walk", NULL, -1, methods};

PyMODINIT_FUNC PyInit__walk(void) { return PyModule_Create(&module); }
