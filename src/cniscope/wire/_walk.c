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

/* pcapng_blocks(data, pos, end, limit, big, kind, out, fields) -> (count, pos): the offsets of at most `limit`
 * consecutive blocks of type `kind` from `pos`, stopping at a block of another type or where fewer than 8 bytes (type
 * and length) are left before `end`; and for each block found its first 28 bytes as 7 words (block type, length, then an EPB's interface, timestamp high and low,
 * captured and wire lengths; zeros where they run past `end`) and its trailing length word (0 where the block runs
 * past `end` or is shorter than 12 bytes) into the 8 uint32 of its row of `fields`, in the host's byte order: the
 * reader checks them vectorized without gathering them again from the mapped file. */
static PyObject *pcapng_blocks(PyObject *self, PyObject *args) {
    Py_buffer data, out, fields;
    Py_ssize_t pos, end, limit, n = 0;
    int big;
    unsigned int kind;
    if (!PyArg_ParseTuple(args, "y*nnnpIw*w*", &data, &pos, &end, &limit, &big, &kind, &out, &fields))
        return NULL;
    if (!out_room(&out, limit) || fields.len < limit * 8 * (Py_ssize_t)sizeof(uint32_t)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "fields holds fewer than limit rows of 8 uint32");
        PyBuffer_Release(&data);
        PyBuffer_Release(&out);
        PyBuffer_Release(&fields);
        return NULL;
    }
    if (end > data.len) end = data.len;
    const uint8_t *bytes = data.buf;
    int64_t *offsets = out.buf;
    uint32_t *row = fields.buf;
    Py_BEGIN_ALLOW_THREADS
    while (n < limit && pos >= 0 && pos + 8 <= end && u32(bytes + pos, big) == kind) {
        uint32_t length = u32(bytes + pos + 4, big);
        offsets[n++] = pos;
        if (pos + 28 <= end)
            for (int k = 0; k < 7; k++) row[k] = u32(bytes + pos + 4 * k, big);
        else
            memset(row, 0, 7 * sizeof(uint32_t));
        row[7] = length >= 12 && pos + (Py_ssize_t)length <= end ? u32(bytes + pos + length - 4, big) : 0;
        row += 8;
        pos += (Py_ssize_t)length;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    PyBuffer_Release(&out);
    PyBuffer_Release(&fields);
    return Py_BuildValue("nn", n, pos);
}

static PyMethodDef methods[] = {
    {"pcap_records", pcap_records, METH_VARARGS, "Offsets of pcap records: (count, next position)."},
    {"pcapng_blocks", pcapng_blocks, METH_VARARGS,
     "Offsets and header words of consecutive pcapng blocks of one type: (count, next position)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_walk", NULL, -1, methods};

PyMODINIT_FUNC PyInit__walk(void) { return PyModule_Create(&module); }
