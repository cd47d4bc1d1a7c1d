/* Correlation's sequential steps, which numpy does slowly or in many passes (cniscope.journeys): the stable
 * order of 64-bit keys, a fingerprint partition's rows, a partition's journeys put in place, journeys numbered by
 * first row. Each has a numpy fallback in cniscope.journeys giving the same arrays (tests/test_journeys_c.py); the
 * GIL is released: the other partitions go on meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* argsort_keys(keys, perm, sorted): the stable order of the uint64 `keys` (`perm`, uint32: position in `keys`
 * of each in order) and the keys in that order (`sorted`, uint64). A least-significant-digit radix sort, 11 bits a
 * pass, skipping the passes whose digit is the same in every key: linear, where numpy's stable argsort of 64-bit
 * numbers is a merge sort (3-4x the time for a partition's 500k fingerprints).
 *
 * Fingerprints are hashes: sorted by their top 31 bits (3 passes, not 6), keys that differ are mostly apart already;
 * the few runs of one top where they are not (about 60 in 500k keys) are put in order of the whole key by an
 * insertion sort (stable), which gives the order of the whole key. A run of that kind longer than `MIXED_RUN` (keys
 * that are no hashes) sorts the whole array by every digit instead. */
#define DIGIT_BITS 11
#define DIGITS 6
#define BUCKETS (1 << DIGIT_BITS)
#define TOP_DIGIT 3 /* the first digit of the top bits: bits 33 to 63 */
#define MIXED_RUN 64

/* the LSD passes over digits `from`..DIGITS-1 of `in` into `out_keys`/`out_perm` (tmp_*: scratch of n each) */
static void radix_passes(const uint64_t *in, Py_ssize_t n, int from, uint64_t *out_keys, uint32_t *out_perm,
                         uint64_t *tmp_keys, uint32_t *tmp_perm, Py_ssize_t *counts) {
    memset(counts, 0, DIGITS * BUCKETS * sizeof(Py_ssize_t));
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t k = in[i];
        for (int d = from; d < DIGITS; d++)
            counts[d * BUCKETS + ((k >> (d * DIGIT_BITS)) & (BUCKETS - 1))]++;
    }
    int passes[DIGITS], active = 0;
    for (int d = from; d < DIGITS && n; d++)
        if (counts[d * BUCKETS + ((in[0] >> (d * DIGIT_BITS)) & (BUCKETS - 1))] != n)
            passes[active++] = d;
    if (!active) {
        memcpy(out_keys, in, n * 8);
        for (Py_ssize_t i = 0; i < n; i++) out_perm[i] = (uint32_t)i;
        return;
    }
    const uint64_t *src_keys = in;
    const uint32_t *src_perm = NULL;  /* the identity */
    for (int j = 0; j < active; j++) {
        int d = passes[j];
        /* the last pass writes the outputs */
        uint64_t *dst_keys = (active - 1 - j) % 2 ? tmp_keys : out_keys;
        uint32_t *dst_perm = (active - 1 - j) % 2 ? tmp_perm : out_perm;
        Py_ssize_t *at = counts + d * BUCKETS, sum = 0;
        for (int b = 0; b < BUCKETS; b++) {
            Py_ssize_t c = at[b];
            at[b] = sum;
            sum += c;
        }
        int shift = d * DIGIT_BITS;
        for (Py_ssize_t i = 0; i < n; i++) {
            uint64_t k = src_keys[i];
            Py_ssize_t to = at[(k >> shift) & (BUCKETS - 1)]++;
            dst_keys[to] = k;
            dst_perm[to] = src_perm ? src_perm[i] : (uint32_t)i;
        }
        src_keys = dst_keys;
        src_perm = dst_perm;
    }
}

/* keys sorted by their top bits (stably) -> by the whole key (stably), in place: 0, or -1 where a run of one top
 * holding different keys is longer than MIXED_RUN */
static int order_within_tops(uint64_t *keys, uint32_t *perm, Py_ssize_t n) {
    const int shift = TOP_DIGIT * DIGIT_BITS;
    Py_ssize_t i = 1;
    while (i < n) {
        if (keys[i] == keys[i - 1] || (keys[i] >> shift) != (keys[i - 1] >> shift)) {
            i++;
            continue;
        }
        Py_ssize_t lo = i - 1, hi = i + 1;  /* the run of this top: [lo, hi) */
        while (lo > 0 && (keys[lo - 1] >> shift) == (keys[i] >> shift)) lo--;
        while (hi < n && (keys[hi] >> shift) == (keys[i] >> shift)) hi++;
        if (hi - lo > MIXED_RUN)
            return -1;
        for (Py_ssize_t a = lo + 1; a < hi; a++) {  /* insertion sort: an equal key stays after the earlier one */
            uint64_t k = keys[a];
            uint32_t p = perm[a];
            Py_ssize_t b = a;
            while (b > lo && keys[b - 1] > k) {
                keys[b] = keys[b - 1];
                perm[b] = perm[b - 1];
                b--;
            }
            keys[b] = k;
            perm[b] = p;
        }
        i = hi;
    }
    return 0;
}

static PyObject *argsort_keys(PyObject *self, PyObject *args) {
    Py_buffer keys, perm, sorted;
    if (!PyArg_ParseTuple(args, "y*w*w*", &keys, &perm, &sorted))
        return NULL;
    Py_ssize_t n = keys.len / 8;
    PyObject *result = NULL;
    uint64_t *tmp_keys = NULL;
    uint32_t *tmp_perm = NULL;
    Py_ssize_t *counts = NULL;
    if (perm.len < n * 4 || sorted.len < n * 8 || (uint64_t)n > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "perm holds fewer uint32 or sorted fewer uint64 than keys, or 2**32 keys or more");
        goto done;
    }
    tmp_keys = PyMem_RawMalloc(n * 8 + 8);
    tmp_perm = PyMem_RawMalloc(n * 4 + 4);
    counts = PyMem_RawCalloc(DIGITS * BUCKETS, sizeof(Py_ssize_t));
    if (!tmp_keys || !tmp_perm || !counts) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    radix_passes(keys.buf, n, TOP_DIGIT, sorted.buf, perm.buf, tmp_keys, tmp_perm, counts);
    if (order_within_tops(sorted.buf, perm.buf, n) < 0)
        radix_passes(keys.buf, n, 0, sorted.buf, perm.buf, tmp_keys, tmp_perm, counts);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyMem_RawFree(tmp_keys);
    PyMem_RawFree(tmp_perm);
    PyMem_RawFree(counts);
    PyBuffer_Release(&keys);
    PyBuffer_Release(&perm);
    PyBuffer_Release(&sorted);
    return result;
}

/* `a % d` without a division (Lemire, Kaser and Kurz, "Faster remainder by direct computation"): `m` is
 * fastmod_m(d); exact for every 64-bit a and d >= 1. */
static __uint128_t fastmod_m(uint64_t d) { return ~(__uint128_t)0 / d + 1; }

static uint64_t fastmod(uint64_t a, __uint128_t m, uint64_t d) {
    __uint128_t low = m * a;
    __uint128_t bottom = ((low & UINT64_MAX) * d) >> 64;
    return (uint64_t)((bottom + (low >> 64) * d) >> 64);
}

/* partition_sizes(keys, sizes): add to `sizes` (int64, one a partition) how many of the uint64 `keys` fall in each
 * partition (the key modulo the partition count). */
static PyObject *partition_sizes(PyObject *self, PyObject *args) {
    Py_buffer keys, sizes;
    if (!PyArg_ParseTuple(args, "y*w*", &keys, &sizes))
        return NULL;
    Py_ssize_t n = keys.len / 8;
    uint64_t count = (uint64_t)(sizes.len / 8);
    if (count) {
        const uint64_t *k = keys.buf;
        int64_t *size = sizes.buf;
        __uint128_t m = fastmod_m(count);
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) size[fastmod(k[i], m, count)]++;
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&keys);
    PyBuffer_Release(&sizes);
    if (!count && n) {
        PyErr_SetString(PyExc_ValueError, "no partition");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* partition_place(keys, start, at, positions): put `start + i` for the i-th of the uint64 `keys` at
 * `positions[at[p]++]` (uint32), p its partition (`at`: int64, one a partition, each partition's next place). */
static PyObject *partition_place(PyObject *self, PyObject *args) {
    Py_buffer keys, at_, positions;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "y*nw*w*", &keys, &start, &at_, &positions))
        return NULL;
    Py_ssize_t n = keys.len / 8, room = positions.len / 4, bad = 0;
    uint64_t count = (uint64_t)(at_.len / 8);
    if (count && n) {
        const uint64_t *k = keys.buf;
        int64_t *at = at_.buf;
        uint32_t *out = positions.buf;
        __uint128_t m = fastmod_m(count);
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t to = at[fastmod(k[i], m, count)]++;
            if (to < 0 || to >= room) {
                bad = 1;
                break;
            }
            out[to] = (uint32_t)(start + i);
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&keys);
    PyBuffer_Release(&at_);
    PyBuffer_Release(&positions);
    if (bad || (!count && n)) {
        PyErr_SetString(PyExc_ValueError, "a place outside positions");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* partition_scatter(keys, at, values, out): put the i-th of `values` (one a key, of 1, 2, 4 or 8 bytes) at
 * `out[at[p]++]`, p the partition of the i-th of the uint64 `keys` (`at`: int64, one a partition): a column put in
 * partition order in one pass over its rows. */
#define SCATTER(type)                                                       \
    do {                                                                    \
        const type *from = values.buf;                                      \
        type *to = out.buf;                                                 \
        for (Py_ssize_t i = 0; i < n; i++) {                                \
            int64_t place = at[fastmod(k[i], m, count)]++;                  \
            if (place < 0 || place >= room) {                               \
                bad = 1;                                                    \
                break;                                                      \
            }                                                               \
            to[place] = from[i];                                            \
        }                                                                   \
    } while (0)
static PyObject *partition_scatter(PyObject *self, PyObject *args) {
    Py_buffer keys, at_, values, out;
    if (!PyArg_ParseTuple(args, "y*w*y*w*", &keys, &at_, &values, &out))
        return NULL;
    Py_ssize_t n = keys.len / 8, size = n ? values.len / n : 1, bad = 0;
    uint64_t count = (uint64_t)(at_.len / 8);
    if ((size != 1 && size != 2 && size != 4 && size != 8) || values.len != n * size) {
        PyErr_SetString(PyExc_ValueError, "values are not one of 1, 2, 4 or 8 bytes a key");
        goto done;
    }
    if (count && n) {
        const uint64_t *k = keys.buf;
        int64_t *at = at_.buf;
        Py_ssize_t room = out.len / size;
        __uint128_t m = fastmod_m(count);
        Py_BEGIN_ALLOW_THREADS
        switch (size) {
            case 1: SCATTER(uint8_t); break;
            case 2: SCATTER(uint16_t); break;
            case 4: SCATTER(uint32_t); break;
            default: SCATTER(uint64_t); break;
        }
        Py_END_ALLOW_THREADS
    }
    if (bad || (!count && n))
        PyErr_SetString(PyExc_ValueError, "a place outside out");
done:
    PyBuffer_Release(&keys);
    PyBuffer_Release(&at_);
    PyBuffer_Release(&values);
    PyBuffer_Release(&out);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

/* merge_put(perm, idx, firsts, journey, hop, out_journey, out_hop): a partition's journeys and hops in place in the
 * capture's columns (all uint32): for the i-th in hop order, at row a = idx[perm[i]], out_journey[a] =
 * firsts[journey[i]] (the journey's first row) and out_hop[a] = hop[i]. One pass, where numpy's took six (the rows,
 * two casts of them to 64 bits, the first rows, two scatters). */
static PyObject *merge_put(PyObject *self, PyObject *args) {
    Py_buffer perm, idx, firsts, journey, hop, out_journey, out_hop;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*w*w*", &perm, &idx, &firsts, &journey, &hop, &out_journey, &out_hop))
        return NULL;
    Py_ssize_t n = perm.len / 4, rows = idx.len / 4, journeys = firsts.len / 4, room = out_journey.len / 4, bad = 0;
    if (journey.len != perm.len || hop.len != perm.len || out_hop.len != out_journey.len)
        bad = 1;
    else {
        const uint32_t *p = perm.buf, *at = idx.buf, *first = firsts.buf, *j = journey.buf, *h = hop.buf;
        uint32_t *oj = out_journey.buf, *oh = out_hop.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            if (p[i] >= rows || j[i] >= journeys || at[p[i]] >= room) {
                bad = 1;
                break;
            }
            uint32_t a = at[p[i]];
            oj[a] = first[j[i]];
            oh[a] = h[i];
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&perm);
    PyBuffer_Release(&idx);
    PyBuffer_Release(&firsts);
    PyBuffer_Release(&journey);
    PyBuffer_Release(&hop);
    PyBuffer_Release(&out_journey);
    PyBuffer_Release(&out_hop);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "lengths differ, or a position, journey or row outside its array");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* put_rows(idx, journey, hop, out_journey, out_hop): a partition's journeys and hops, in its own row order, in place
 * in the capture's columns (all uint32): out_journey[idx[i]] = journey[i], out_hop[idx[i]] = hop[i]. */
static PyObject *put_rows(PyObject *self, PyObject *args) {
    Py_buffer idx, journey, hop, out_journey, out_hop;
    if (!PyArg_ParseTuple(args, "y*y*y*w*w*", &idx, &journey, &hop, &out_journey, &out_hop))
        return NULL;
    Py_ssize_t n = idx.len / 4, room = out_journey.len / 4, bad = 0;
    if (journey.len != idx.len || hop.len != idx.len || out_hop.len != out_journey.len)
        bad = 1;
    else {
        const uint32_t *at = idx.buf, *j = journey.buf, *h = hop.buf;
        uint32_t *oj = out_journey.buf, *oh = out_hop.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            uint32_t a = at[i];
            if (a >= room) {
                bad = 1;
                break;
            }
            oj[a] = j[i];
            oh[a] = h[i];
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&idx);
    PyBuffer_Release(&journey);
    PyBuffer_Release(&hop);
    PyBuffer_Release(&out_journey);
    PyBuffer_Release(&out_hop);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "lengths differ, or a row outside the columns");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* rank_firsts(journey): each sighting's journey given by its first row (uint32, at most its own row) -> numbered
 * 0.. by first row, in place: a first row takes the next number, any other row its first row's (numbered already). */
static PyObject *rank_firsts(PyObject *self, PyObject *args) {
    Py_buffer journey;
    if (!PyArg_ParseTuple(args, "w*", &journey))
        return NULL;
    Py_ssize_t n = journey.len / 4, bad = 0;
    uint32_t *j = journey.buf, done = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t first = j[i];
        if (first == (uint32_t)i)
            j[i] = done++;
        else if (first < (uint32_t)i)
            j[i] = j[first];
        else {
            bad = 1;
            break;
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&journey);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "a journey's first row after one of its rows");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"argsort_keys", argsort_keys, METH_VARARGS, "The stable order of uint64 keys, and the keys in it."},
    {"partition_sizes", partition_sizes, METH_VARARGS, "Add how many uint64 keys fall in each partition (key modulo count)."},
    {"partition_place", partition_place, METH_VARARGS, "Place each key's position in its partition."},
    {"partition_scatter", partition_scatter, METH_VARARGS, "Put a column in partition order."},
    {"merge_put", merge_put, METH_VARARGS, "A partition's journeys and hops in place in the capture's columns."},
    {"put_rows", put_rows, METH_VARARGS, "A partition's journeys and hops, in its row order, in place in the capture's columns."},
    {"rank_firsts", rank_firsts, METH_VARARGS, "Journeys given by first row -> numbered by first row, in place."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_journeys", NULL, -1, methods};

PyMODINIT_FUNC PyInit__journeys(void) { return PyModule_Create(&module); }
