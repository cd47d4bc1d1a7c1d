/* Polars' columns read in C, shared by _journeys.c and _flows.c: the Arrow C data interface's structs, a column's
 * chunks as an Arrow C stream hands them over (no copy), stretches of rows within one chunk, and the hashing both
 * build their keys with. Each extension includes its own copy (every function here is static). */
#ifndef CNISCOPE_COLUMNS_H
#define CNISCOPE_COLUMNS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* The Arrow C data interface (arrow.apache.org/docs/format/CDataInterface.html), ABI-stable; _decode.c exports
 * through it what these read. */
struct ArrowSchema {
    const char *format;
    const char *name;
    const char *metadata;
    int64_t flags;
    int64_t n_children;
    struct ArrowSchema **children;
    struct ArrowSchema *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};

struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

struct ArrowArrayStream {
    int (*get_schema)(struct ArrowArrayStream *, struct ArrowSchema *out);
    int (*get_next)(struct ArrowArrayStream *, struct ArrowArray *out);
    const char *(*get_last_error)(struct ArrowArrayStream *);
    void (*release)(struct ArrowArrayStream *);
    void *private_data;
};

/* One column: its chunks, and where the rows being worked start in the current one (`at`, `pos`). `bits`: 1 (a
 * boolean), 8, 16, 32 or 64; 0: not given (a column of nulls). `values` NULL: every value of the stretch is null;
 * `validity` NULL: none is. Row i of the stretch is value `bit + i` of `values` and bit `bit + i` of `validity`. */
typedef struct {
    struct ArrowArray *chunks;
    Py_ssize_t count, at;
    int64_t pos;
    int bits;
    const uint8_t *values;
    const uint8_t *validity;
    int64_t bit;  /* the stretch's first row in the chunk's buffers (its offset counted) */
} Column;

static inline void column_free(Column *c) {
    for (Py_ssize_t i = 0; i < c->count; i++)
        if (c->chunks[i].release)
            c->chunks[i].release(&c->chunks[i]);
    PyMem_RawFree(c->chunks);
    c->chunks = NULL;
    c->count = 0;
}

/* The bits of a value of Arrow format `f` when `formats` lists it ("b": boolean, "C" "S" "I" "L": unsigned of 1, 2,
 * 4, 8 bytes, "l": signed of 8), else 0. */
static inline int column_bits(const char *f, const char *formats) {
    if (!f[0] || f[1] || !strchr(formats, f[0]))
        return 0;
    switch (f[0]) {
        case 'b': return 1;
        case 'C': return 8;
        case 'S': return 16;
        case 'I': return 32;
        case 'L': case 'l': return 64;
        default: return 0;
    }
}

/* The chunks of the Arrow stream in `capsule` (None: a column of nulls), of one of the `formats` (column_bits), `rows`
 * values in all; `name` for the error. The stream is released (the capsule's destructor then has nothing to do). */
static inline int column_load(PyObject *capsule, Py_ssize_t rows, Column *c, const char *name, const char *formats) {
    memset(c, 0, sizeof *c);
    if (capsule == Py_None)
        return 0;
    struct ArrowArrayStream *stream = PyCapsule_GetPointer(capsule, "arrow_array_stream");
    if (!stream)
        return -1;
    if (!stream->release) {
        PyErr_Format(PyExc_ValueError, "column %s: the stream was consumed already", name);
        return -1;
    }
    struct ArrowSchema schema;
    int failed = 0;
    if (stream->get_schema(stream, &schema) != 0) {
        PyErr_Format(PyExc_ValueError, "column %s: no schema", name);
        failed = 1;
    } else {
        c->bits = column_bits(schema.format, formats);
        if (!c->bits) {
            PyErr_Format(PyExc_ValueError, "column %s: format %s, not one of %s", name, schema.format, formats);
            failed = 1;
        }
        if (schema.release)
            schema.release(&schema);
    }
    Py_ssize_t room = 0;
    int64_t total = 0;
    while (!failed) {
        struct ArrowArray array;
        if (stream->get_next(stream, &array) != 0) {
            PyErr_Format(PyExc_ValueError, "column %s: a chunk could not be had", name);
            failed = 1;
            break;
        }
        if (!array.release)
            break;  /* the end */
        if (c->count == room) {
            room = room ? room * 2 : 64;
            struct ArrowArray *grown = PyMem_RawRealloc(c->chunks, room * sizeof *grown);
            if (!grown) {
                array.release(&array);
                PyErr_NoMemory();
                failed = 1;
                break;
            }
            c->chunks = grown;
        }
        c->chunks[c->count++] = array;  /* released with the others from here on */
        if (array.n_buffers != 2 || array.length < 0 || array.offset < 0 || (array.length && array.null_count != array.length &&
                (!array.buffers[1] || (array.null_count != 0 && !array.buffers[0])))) {
            PyErr_Format(PyExc_ValueError, "column %s: a chunk without its values or null flags", name);
            failed = 1;
            break;
        }
        total += array.length;
    }
    stream->release(stream);
    if (!failed && total != rows) {
        PyErr_Format(PyExc_ValueError, "column %s: %lld values for %zd rows", name, (long long)total, rows);
        failed = 1;
    }
    if (failed) {
        column_free(c);
        return -1;
    }
    return 0;
}

/* Make the column's stretch start at its row `pos` of its current chunk; how many rows the chunk has left. */
static inline int64_t column_seek(Column *c) {
    if (!c->bits)
        return INT64_MAX;
    while (c->at < c->count && c->pos >= c->chunks[c->at].length) {
        c->pos -= c->chunks[c->at].length;
        c->at++;
    }
    if (c->at >= c->count)
        return 0;
    const struct ArrowArray *a = &c->chunks[c->at];
    c->bit = a->offset + c->pos;
    c->values = a->null_count == a->length ? NULL : a->buffers[1];
    c->validity = a->null_count == 0 ? NULL : a->buffers[0];
    return a->length - c->pos;
}

/* Each of the `n` columns sought (column_seek); the rows all of them have left in their current chunks, at most
 * `most`: the next stretch to work. */
static inline int64_t columns_seek(Column *col, int n, int64_t most) {
    for (int k = 0; k < n; k++) {
        int64_t left = column_seek(&col[k]);
        if (left < most)
            most = left;
    }
    return most;
}

/* each byte of a validity bitmap spread to 8 bytes of 0 or 1 (little-endian: bit k to byte k); spread_make() fills
 * it when the module loads */
static uint64_t SPREAD[256];

static inline void spread_make(void) {
    for (int byte = 0; byte < 256; byte++)
        for (int k = 0; k < 8; k++)
            SPREAD[byte] |= (uint64_t)((byte >> k) & 1) << (8 * k);
}

/* wyhash's mix (a 128-bit product folded) and secrets */
static inline uint64_t mix(uint64_t a, uint64_t b) {
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

#define S0 0xa0761d6478bd642fULL
#define S1 0xe7037ed1a0b428dbULL
#define S2 0x8ebc6af09c88c6e3ULL
#define S3 0x589965cc75374cc3ULL
#define S4 0x1d8e4e27c47d124fULL

#endif
