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

/* Read ahead: the pages of the mapped file come to the cache before the walk needs them (the walk's time at 10M
 * pcapng: 0.40 -> 0.32 s of CPU with 4 KiB ahead, 0.5 KiB gained a third of that; 0.65-0.68 -> 0.46-0.54 s at load 7).
 * A hint: it reads nothing, and is given only inside the buffer */
#define PREFETCH 4096

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

/* pcap_records(data, pos, stop, end, limit, big, out[, fields]) -> (count, pos): the offsets of at most
 * `limit` records from `pos` while pos < stop, reading no byte at or past `end`; stops where
 * fewer than 12 bytes (a header up to its caplen) are left. `fields` (optional, 4 uint32 a record): each record's
 * header words (seconds, fraction, captured and wire lengths) in the host's byte order, 0 for a word past `end`: the
 * reader checks them without gathering them again from the mapped file (2 ms a batch of 64k at 10M). */
static PyObject *pcap_records(PyObject *self, PyObject *args) {
    Py_buffer data, out, fields = {0};
    PyObject *fields_obj = Py_None;
    Py_ssize_t pos, stop, end, limit, n = 0;
    int big;
    if (!PyArg_ParseTuple(args, "y*nnnnpw*|O", &data, &pos, &stop, &end, &limit, &big, &out, &fields_obj))
        return NULL;
    int has_fields = fields_obj != Py_None;
    if (has_fields && PyObject_GetBuffer(fields_obj, &fields, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&out);
        return NULL;
    }
    if (!out_room(&out, limit) || (has_fields && fields.len < limit * 4 * (Py_ssize_t)sizeof(uint32_t))) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "fields holds fewer than limit rows of 4 uint32");
        PyBuffer_Release(&data);
        PyBuffer_Release(&out);
        if (has_fields) PyBuffer_Release(&fields);
        return NULL;
    }
    if (end > data.len) end = data.len;
    const uint8_t *bytes = data.buf;
    int64_t *offsets = out.buf;
    uint32_t *row = has_fields ? fields.buf : NULL;
    Py_BEGIN_ALLOW_THREADS
    while (n < limit && pos < stop && pos >= 0 && pos + 12 <= end) {
        if (pos + PREFETCH < end) __builtin_prefetch(bytes + pos + PREFETCH);
        if (row) {
            for (int k = 0; k < 3; k++) row[k] = u32(bytes + pos + 4 * k, big);
            row[3] = pos + 16 <= end ? u32(bytes + pos + 12, big) : 0;
            row += 4;
        }
        offsets[n++] = pos;
        pos += 16 + (Py_ssize_t)u32(bytes + pos + 8, big);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    PyBuffer_Release(&out);
    if (has_fields) PyBuffer_Release(&fields);
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
        if (pos + PREFETCH < end) __builtin_prefetch(bytes + pos + PREFETCH);
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

/* pcapng_check(fields, block, end, interfaces, snap0, max_caplen, big, offset, caplen, wirelen, local, units, options)
 * -> good: the packet blocks `pcapng_blocks` walked (offsets `block`, header words `fields`), checked one by one up to
 * the first bad one (its length not a multiple of 4, too short or running past `end`, a trailing length that
 * disagrees, an interface the section does not describe, a captured length above `max_caplen` or longer than its
 * block): how many are good, and for each of those its packet's offset, captured and wire lengths, interface (of the
 * section), timestamp units, and whether the block carries options. An SPB (type 3) has no interface (0) nor
 * timestamp, its third word is the wire length and its captured length is clipped to the wire length and to the
 * snap length of interface 0 (`snap0`, 0: none); an OPB's (type 2) interface is 16 bits, the high ones of its word in a
 * big-endian section (`big`). sources.pcapng's `_check_numpy` is the same check in numpy. */
static PyObject *pcapng_check(PyObject *self, PyObject *args) {
    Py_buffer f, b, o[6];
    Py_ssize_t end, interfaces;
    long long snap0, max_caplen;
    int big;
    if (!PyArg_ParseTuple(args, "y*y*nnLLpw*w*w*w*w*w*", &f, &b, &end, &interfaces, &snap0, &max_caplen, &big, &o[0], &o[1],
                          &o[2], &o[3], &o[4], &o[5]))
        return NULL;
    Py_ssize_t n = b.len / 8, i = 0;
    static const Py_ssize_t width[6] = {8, 4, 4, 4, 8, 1}; /* offset, caplen, wirelen, local, units, options */
    int ok = b.len == n * 8 && f.len == n * 8 * (Py_ssize_t)sizeof(uint32_t);
    for (int k = 0; k < 6; k++) ok = ok && o[k].len >= n * width[k];
    if (ok) {
        const uint32_t *fields = f.buf;
        const int64_t *block = b.buf;
        int64_t *offset = o[0].buf;
        uint64_t *units = o[4].buf;
        uint32_t *caplen = o[1].buf, *wirelen = o[2].buf;
        int32_t *local = o[3].buf;
        uint8_t *options = o[5].buf;
        Py_BEGIN_ALLOW_THREADS
        for (; i < n; i++) {
            const uint32_t *w = fields + 8 * i;
            int64_t at = block[i], length = w[1], iface = w[2];
            int spb = w[0] == 3, opb = w[0] == 2;
            int64_t header = spb ? 12 : 28;
            int sound = length >= header + 4 && (length & 3) == 0 && at + length <= end && at + 28 <= end;
            int64_t in = opb ? (big ? iface >> 16 : iface & 0xFFFF) : spb ? 0 : iface;
            int64_t wire = spb ? iface : w[6], cap = w[5];
            if (spb) {
                int64_t clip = wire < length - 16 ? wire : length - 16;
                cap = snap0 && snap0 < clip ? snap0 : clip;
            }
            if (!sound || (int64_t)w[7] != length || in >= interfaces || cap > max_caplen || header + cap + 4 > length) break;
            offset[i] = at + header;
            caplen[i] = (uint32_t)cap;
            wirelen[i] = (uint32_t)wire;
            local[i] = (int32_t)in;
            units[i] = ((uint64_t)w[3] << 32) | w[4];
            options[i] = !spb && length > header + ((cap + 3) & ~3LL) + 4;
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&f);
    PyBuffer_Release(&b);
    for (int k = 0; k < 6; k++) PyBuffer_Release(&o[k]);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "fields: 8 uint32 a block; outputs: int64, uint32, uint32, int32, uint64, uint8 "
                                          "a block at least");
        return NULL;
    }
    return PyLong_FromSsize_t(i);
}

/* pcap_check(fields, starts, end, usec, max_caplen, offset, caplen, wirelen, ts) -> count: `pcap_records`' records
 * (their header words `fields`, 4 uint32 a record, and where they start) checked in order up to the first bad one (a
 * header cut by `end`, a captured length above `max_caplen` or past `end`, a wire length of 0), and for each good one
 * where its frame starts, its captured and wire lengths and its time in ns (the fraction in us where `usec`): what the
 * reader's numpy passes made of them, in one pass (sources.pcap._check says why the first bad one is bad). */
static PyObject *pcap_check(PyObject *self, PyObject *args) {
    Py_buffer f, s, o[4];
    Py_ssize_t end;
    long long max_caplen;
    int usec;
    if (!PyArg_ParseTuple(args, "y*y*npLw*w*w*w*", &f, &s, &end, &usec, &max_caplen, &o[0], &o[1], &o[2], &o[3]))
        return NULL;
    Py_ssize_t n = s.len / 8, i = 0;
    static const Py_ssize_t width[4] = {8, 4, 4, 8}; /* offset, caplen, wirelen, ts */
    int ok = s.len == n * 8 && f.len == n * 4 * (Py_ssize_t)sizeof(uint32_t);
    for (int k = 0; k < 4; k++) ok = ok && o[k].len >= n * width[k];
    if (ok) {
        const uint32_t *fields = f.buf;
        const int64_t *starts = s.buf;
        int64_t *offset = o[0].buf, *ts = o[3].buf;
        uint32_t *caplen = o[1].buf, *wirelen = o[2].buf;
        const int64_t scale = usec ? 1000 : 1;
        Py_BEGIN_ALLOW_THREADS
        for (; i < n; i++) {
            const uint32_t *w = fields + 4 * i;
            int64_t at = starts[i], cap = w[2];
            if (at + 16 > end || cap > max_caplen || at + 16 + cap > end || w[3] == 0) break;
            offset[i] = at + 16;
            caplen[i] = w[2];
            wirelen[i] = w[3];
            ts[i] = (int64_t)w[0] * 1000000000 + (int64_t)w[1] * scale;
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&f);
    PyBuffer_Release(&s);
    for (int k = 0; k < 4; k++) PyBuffer_Release(&o[k]);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "fields: 4 uint32 a record; starts: int64; outputs: int64, uint32, uint32, int64 "
                                          "a record at least");
        return NULL;
    }
    return PyLong_FromSsize_t(i);
}

static PyMethodDef methods[] = {
    {"pcap_records", pcap_records, METH_VARARGS, "Offsets of pcap records: (count, next position)."},
    {"pcapng_blocks", pcapng_blocks, METH_VARARGS,
     "Offsets and header words of consecutive pcapng blocks of one type: (count, next position)."},
    {"pcap_check", pcap_check, METH_VARARGS, "Check walked pcap records up to the first bad one: how many are good."},
    {"pcapng_check", pcapng_check, METH_VARARGS, "Check walked pcapng packet blocks up to the first bad one: how many are good."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_walk", NULL, -1, methods};

PyMODINIT_FUNC PyInit__walk(void) { return PyModule_Create(&module); }
