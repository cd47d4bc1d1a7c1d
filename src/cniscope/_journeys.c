/* Correlation's sequential steps, which numpy does slowly or in many passes (cniscope.journeys): the stable
 * order of 64-bit keys, a fingerprint partition's rows, a partition's journeys put in place, journeys numbered by
 * first row. Each has a numpy fallback in cniscope.journeys giving the same arrays (tests/test_journeys_c.py); the
 * GIL is released: the other partitions go on meanwhile. Also each sighting's fingerprint, hashed over the table's
 * column buffers (polars' struct hash the fallback: other values, equal for the same rows), and one node's journeys
 * of a partition from its sorted keys (`one_node_partial` the fallback).
 */
#include "_columns.h"
#include <structmember.h> /* PyMemberDef: where a class of slots keeps each field */

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

/* ---- fingerprints: each sighting's key hashed over the table's column buffers -------------------------------- */

#define BLOCK 128

/* Rows [start, start + n) of the column's stretch into `v` (0 where null) and `ok` (1 where not); 0 for both where the
 * column is null or not given, and past `n`. */
static void load(const Column *c, int64_t start, int n, uint64_t *restrict v, uint8_t *restrict ok) {
    if (!c->bits || !c->values) {
        memset(v, 0, BLOCK * sizeof *v);
        memset(ok, 0, BLOCK);
        return;
    }
    int64_t b = c->bit + start;
    switch (c->bits) {
        case 1:
            for (int i = 0; i < n; i++) v[i] = (c->values[(b + i) >> 3] >> ((b + i) & 7)) & 1;
            break;
        case 8:
            for (int i = 0; i < n; i++) v[i] = c->values[b + i];
            break;
        case 16:
            for (int i = 0; i < n; i++) v[i] = ((const uint16_t *)c->values)[b + i];
            break;
        case 32:
            for (int i = 0; i < n; i++) v[i] = ((const uint32_t *)c->values)[b + i];
            break;
        default:
            memcpy(v, (const uint64_t *)c->values + b, n * sizeof *v);
    }
    if (n < BLOCK) {  /* a block's rows past the stretch's end: what follows works whole blocks */
        memset(v + n, 0, (BLOCK - n) * sizeof *v);
        memset(ok + n, 0, BLOCK - n);
    }
    if (!c->validity) {
        memset(ok, 1, n);
        return;
    }
    const uint8_t *bits = c->validity;
    int i = 0;
    for (; i < n && (b + i) & 7; i++) {
        ok[i] = (bits[(b + i) >> 3] >> ((b + i) & 7)) & 1;
        v[i] &= -(uint64_t)ok[i];
    }
    for (; i + 8 <= n; i += 8) {
        uint8_t byte = bits[(b + i) >> 3];
        uint64_t spread = SPREAD[byte];
        memcpy(ok + i, &spread, 8);
        if (!byte)
            memset(v + i, 0, 8 * sizeof *v);
        else if (byte != 0xff)
            for (int k = 0; k < 8; k++) v[i + k] &= -(uint64_t)ok[i + k];
    }
    for (; i < n; i++) {
        ok[i] = (bits[(b + i) >> 3] >> ((b + i) & 7)) & 1;
        v[i] &= -(uint64_t)ok[i];
    }
}

/* the columns `fingerprint_scan` is given, in this order (`journeys.FINGERPRINTED`): the key's fields (KEY_FIELDS, then
 * OPTIONAL_KEY_FIELDS: not given where left out of the key), the addresses, the envelope's, the tunnel */
enum {
    ETHERTYPE, PROTO, TCP_FLAGS, SEQ, ACK, TSVAL, TSECR, PAYLOAD_LEN, ICMP_TYPE, ICMP_ID, ICMP_SEQ, DNS_ID, DNS_QR, ARP_OP,
    ARP_SPA, ARP_TPA, IP_ID, PAYLOAD_DIGEST, KEYS_END,
    SRC = KEYS_END, DST, SRC6, DST6, SPORT, DPORT, ADDRESSES_END,
    ENVELOPE = ADDRESSES_END, ENVELOPE_END = ENVELOPE + 8,
    TUNNEL = ENVELOPE_END, FINGERPRINTED
};
/* the fields that tell one packet from the next of its kind (OWN_FIELDS): a key with none of them joins the addresses */
#define OWN_MASK (1ULL << SEQ | 1ULL << ACK | 1ULL << TSVAL | 1ULL << ICMP_ID | 1ULL << ICMP_SEQ | 1ULL << DNS_ID | \
                  1ULL << ARP_SPA | 1ULL << ARP_TPA | 1ULL << IP_ID | 1ULL << PAYLOAD_DIGEST)

#define WORDS 16  /* 64-bit words of a block's fields (the key's take 8, the envelope's 4) */

typedef struct {
    uint64_t v[BLOCK], flags[BLOCK], state[BLOCK], words[WORDS][BLOCK];
    uint8_t ok[BLOCK], own[BLOCK], special[BLOCK], inside[BLOCK], bare[BLOCK];
} Scratch;

/* Columns [from, to) of rows [start, start + n) packed side by side into `s->words` (a column's values never straddle
 * two words) and their null flags into `s->flags`, by the columns' widths alone: the same layout for every row, so
 * the words of two rows are equal exactly where their fields and null flags are. How many words. `none_own` (if
 * given): whether each row has none of the fields of OWN_MASK. */
/* the value of row `i` of a column's stretch (its first at `b` in its buffers) */
static inline uint64_t value_at(const Column *c, int64_t b, int i) {
    switch (c->bits) {
        case 1: return (c->values[(b + i) >> 3] >> ((b + i) & 7)) & 1;
        case 8: return c->values[b + i];
        case 16: return ((const uint16_t *)c->values)[b + i];
        case 32: return ((const uint32_t *)c->values)[b + i];
        default: return ((const uint64_t *)c->values)[b + i];
    }
}

/* Rows [start, start + n) of a column's stretch or-ed into the word `w` at `shift`, its null flag into `f` at `flag`
 * (`flagged`: 1 << flag) and `own` cleared where it is not null. A byte of null flags (8 rows) at a time: none of
 * the 8 there (most of a column of ICMP, DNS or ARP fields), or all of them, without looking at each. */
static void pack_column(const Column *c, int64_t start, int n, int shift, uint64_t flagged, uint64_t *restrict w,
                        uint64_t *restrict f, uint8_t *restrict own) {
    if (!c->values)
        return;  /* null in every row of the stretch */
    int64_t b = c->bit + start;
    const uint8_t *valid = c->validity;
    int i = 0;
    while (i < n) {
        if (valid && (((b + i) & 7) || i + 8 > n)) {  /* a row of a byte of flags cut by the block */
            if ((valid[(b + i) >> 3] >> ((b + i) & 7)) & 1) {
                w[i] |= value_at(c, b, i) << shift;
                f[i] |= flagged;
                own[i] = 0;
            }
            i++;
            continue;
        }
        int m = valid ? 8 : n - i;
        uint8_t byte = valid ? valid[(b + i) >> 3] : 0xff;
        if (byte == 0xff) {
            switch (c->bits) {
                case 8:
                    for (int k = i; k < i + m; k++) w[k] |= (uint64_t)c->values[b + k] << shift;
                    break;
                case 16:
                    for (int k = i; k < i + m; k++) w[k] |= (uint64_t)((const uint16_t *)c->values)[b + k] << shift;
                    break;
                case 32:
                    for (int k = i; k < i + m; k++) w[k] |= (uint64_t)((const uint32_t *)c->values)[b + k] << shift;
                    break;
                default:
                    for (int k = i; k < i + m; k++) w[k] |= value_at(c, b, k) << shift;
            }
            for (int k = i; k < i + m; k++) f[k] |= flagged;
            memset(own + i, 0, m);
        } else if (byte)
            for (int k = 0; k < 8; k++)
                if ((byte >> k) & 1) {
                    w[i + k] |= value_at(c, b, i + k) << shift;
                    f[i + k] |= flagged;
                    own[i + k] = 0;
                }
        i += m;
    }
}

/* Columns [from, to) of rows [start, start + n) packed side by side into `s->words` (a column's values never straddle
 * two words) and their null flags into `s->flags`, by the columns' widths alone: the same layout for every row, so
 * the words of two rows are equal exactly where their fields and null flags are. How many words. `none_own`:
 * whether each row has none of the fields of OWN_MASK (those columns' rows only; the others go to scratch). */
static int pack(const Column *col, int from, int to, int64_t start, int n, Scratch *s, uint8_t *restrict none_own) {
    int word = 0, shift = 0, flag = 0;
    memset(none_own, 1, BLOCK);
    memset(s->words[0], 0, sizeof s->words[0]);
    memset(s->flags, 0, sizeof s->flags);
    for (int k = from; k < to; k++) {
        const Column *c = &col[k];
        if (!c->bits)
            continue;  /* not given: null in every row */
        if (shift + c->bits > 64) {
            word++;
            shift = 0;
            memset(s->words[word], 0, sizeof s->words[word]);
        }
        pack_column(c, start, n, shift, 1ULL << flag, s->words[word], s->flags, OWN_MASK >> k & 1 ? none_own : s->ok);
        shift += c->bits;
        flag++;
    }
    return shift ? word + 1 : word;
}

/* each row's hash state carried over `words` words and its null flags */
static void absorb(Scratch *s, int words, const uint8_t *only) {
    for (int w = 0; w + 1 < words; w += 2)
        for (int i = 0; i < BLOCK; i++)
            if (!only || only[i])
                s->state[i] = mix(s->words[w][i] ^ S1, s->words[w + 1][i] ^ s->state[i]);
    const uint64_t *last = words % 2 ? s->words[words - 1] : NULL;
    for (int i = 0; i < BLOCK; i++)
        if (!only || only[i])
            s->state[i] = mix((last ? last[i] : 0) ^ S1, s->flags[i] ^ S0 ^ s->state[i]);
}

/* whether each row is sent to link-local multicast (224.0.0.0/24, or an IPv6 destination among the `ff02` codes, which
 * ascend): hosts send identical ones, told apart by their addresses alone */
static void link_local(const Column *col, int64_t start, int n, const uint32_t *ff02, Py_ssize_t ff02s, Scratch *s) {
    load(&col[DST], start, n, s->v, s->ok);
    for (int i = 0; i < BLOCK; i++) s->special[i] |= s->ok[i] && (s->v[i] >> 8) == 0xE00000;
    if (!ff02s)
        return;
    load(&col[DST6], start, n, s->v, s->ok);
    for (int i = 0; i < n; i++)
        if (s->ok[i]) {
            Py_ssize_t lo = 0, hi = ff02s;
            while (lo < hi) {
                Py_ssize_t mid = (lo + hi) / 2;
                if (ff02[mid] < s->v[i]) lo = mid + 1; else hi = mid;
            }
            s->special[i] |= lo < ff02s && ff02[lo] == s->v[i];
        }
}

/* The fingerprints of rows [start, start + n) of the stretch into `out`, as `journeys.fingerprint` keys them: by the key's
 * fields; a row with none of its own (or sent to link-local multicast) by its addresses and ports too, or, an envelope
 * showing no address of what it carries, by the envelope's (their words hashed after the key's). */
static void block_keys(const Column *col, int64_t start, int n, const uint32_t *ff02, Py_ssize_t ff02s, Scratch *s,
                       uint64_t *out) {
    int words = pack(col, ETHERTYPE, KEYS_END, start, n, s, s->special);
    for (int i = 0; i < BLOCK; i++) s->state[i] = S2;
    absorb(s, words, NULL);
    link_local(col, start, n, ff02, ff02s, s);
    int special = 0;
    for (int i = 0; i < n; i++) special |= s->special[i];
    if (special) {
        memset(s->inside, 0, BLOCK);
        for (int k = SRC; k < ADDRESSES_END; k++) {
            load(&col[k], start, n, s->v, s->ok);
            for (int i = 0; i < BLOCK; i++) s->inside[i] |= s->ok[i];
        }
        load(&col[TUNNEL], start, n, s->v, s->ok);
        for (int i = 0; i < BLOCK; i++) {
            s->bare[i] = s->special[i] && !s->inside[i] && s->v[i];
            s->special[i] &= !s->bare[i];
        }
        words = pack(col, SRC, ADDRESSES_END, start, n, s, s->ok);
        absorb(s, words, s->special);
        words = pack(col, ENVELOPE, ENVELOPE_END, start, n, s, s->ok);
        absorb(s, words, s->bare);
    }
    for (int i = 0; i < n; i++) {  /* each kind its own tag: the envelope's words could be laid out as the addresses' */
        uint64_t tag = special ? (uint64_t)s->special[i] | (uint64_t)s->bare[i] << 1 : 0;
        out[i] = mix(s->state[i] ^ S3, tag ^ S0);
    }
}

/* fingerprint_scan(columns, ff02, rows, start, keys): the fingerprints of rows [start, start + len(keys)) of a table of
 * `rows` into `keys` (uint64). `columns`: a tuple of Arrow stream capsules (None: not given, null in every row) in the
 * order of the enum above, booleans or unsigned integers (categories by their codes); `ff02`: the codes (uint32,
 * ascending) of the IPv6 destinations in ff02::/16. Not polars' hash values: equal keys where `journeys.fingerprint`'s are
 * equal, different ones but by chance (a 64-bit hash of every field side by side, nulls told apart from values). */
static PyObject *fingerprint_scan(PyObject *self, PyObject *args) {
    PyObject *columns;
    Py_buffer ff02_, keys_;
    Py_ssize_t rows, start;
    if (!PyArg_ParseTuple(args, "O!y*nnw*", &PyTuple_Type, &columns, &ff02_, &rows, &start, &keys_))
        return NULL;
    PyObject *result = NULL;
    Column col[FINGERPRINTED];
    memset(col, 0, sizeof col);
    Scratch *scratch = NULL;
    Py_ssize_t n = keys_.len / 8;
    if (PyTuple_GET_SIZE(columns) != FINGERPRINTED) {
        PyErr_Format(PyExc_ValueError, "%d columns wanted", FINGERPRINTED);
        goto done;
    }
    if (start < 0 || rows < 0 || n > rows - start || ff02_.len % 4) {
        PyErr_SetString(PyExc_ValueError, "keys beyond the rows, or ff02 not uint32");
        goto done;
    }
    for (int k = 0; k < FINGERPRINTED; k++) {
        char name[32];
        snprintf(name, sizeof name, "%d of the fingerprint's", k);
        if (column_load(PyTuple_GET_ITEM(columns, k), rows, &col[k], name, "bCSIL") < 0)
            goto done;
    }
    scratch = PyMem_RawMalloc(sizeof *scratch);
    if (!scratch) {
        PyErr_NoMemory();
        goto done;
    }
    const uint32_t *ff02 = ff02_.buf;
    uint64_t *keys = keys_.buf;
    Py_ssize_t ff02s = ff02_.len / 4;
    int64_t done = 0;
    Py_BEGIN_ALLOW_THREADS
    for (int k = 0; k < FINGERPRINTED; k++)
        col[k].pos = start;
    while (done < n) {
        int64_t stretch = columns_seek(col, FINGERPRINTED, n - done);
        for (int64_t from = 0; from < stretch; from += BLOCK) {
            int m = stretch - from < BLOCK ? (int)(stretch - from) : BLOCK;
            block_keys(col, from, m, ff02, ff02s, scratch, keys + done + from);
        }
        for (int k = 0; k < FINGERPRINTED; k++)
            col[k].pos += stretch;
        done += stretch;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    for (int k = 0; k < FINGERPRINTED; k++)
        column_free(&col[k]);
    PyMem_RawFree(scratch);
    PyBuffer_Release(&ff02_);
    PyBuffer_Release(&keys_);
    return result;
}

/* ---- one node's journeys: bursts of a key, in place ------------------------------------------------------------ */

/* A set of the capture points seen in one burst: open addressing, a slot taken where its stamp is the burst's (no
 * clearing between bursts). */
typedef struct {
    uint64_t *point;
    Py_ssize_t *stamp;
    Py_ssize_t size;
} Seen;

/* whether `point` was in the set of burst `stamp` already; it is afterwards. 0, 1, or -1: no memory */
static int seen_add(Seen *seen, Py_ssize_t stamp, Py_ssize_t room, uint64_t point) {
    if (seen->size < 2 * room) {
        Py_ssize_t size = 64;
        while (size < 2 * room) size *= 2;
        PyMem_RawFree(seen->point);
        PyMem_RawFree(seen->stamp);
        seen->point = PyMem_RawMalloc(size * sizeof *seen->point);
        seen->stamp = PyMem_RawMalloc(size * sizeof *seen->stamp);
        if (!seen->point || !seen->stamp)
            return -1;
        for (Py_ssize_t i = 0; i < size; i++) seen->stamp[i] = -1;
        seen->size = size;
    }
    Py_ssize_t slot = (Py_ssize_t)(mix(point ^ S0, S1) & (uint64_t)(seen->size - 1));
    while (seen->stamp[slot] == stamp) {
        if (seen->point[slot] == point)
            return 1;
        slot = (slot + 1) & (seen->size - 1);
    }
    seen->stamp[slot] = stamp;
    seen->point[slot] = point;
    return 0;
}

#define SHORT_BURST 16  /* bursts up to this long are searched for a repeated point by comparing with each earlier one */

static inline uint64_t point_at(const uint8_t *point, int width, uint32_t at) {
    switch (width) {
        case 2: return ((const uint16_t *)point)[at];
        case 4: return ((const uint32_t *)point)[at];
        default: return ((const uint64_t *)point)[at];
    }
}

/* Where each burst starts in key order (`split`: 1 at a new key, a gap in time over `gap`, or a named capture point,
 * `named` and above, seen before in its burst as those two cut it); -1 where sightings at one time within a burst
 * have an Out (direction `out` of `mask`) before an In (they are to be put in order first), -2: no memory; else 0. */
static int burst_splits(const uint64_t *key, const uint32_t *perm, const int64_t *ts, const uint8_t *point, int width,
                        Py_ssize_t n, int64_t gap, uint64_t named, uint64_t mask, uint64_t out, uint8_t *split) {
    Seen seen = {0};
    int result = 0;
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i <= n && !result; i++) {
        int new = i == n || i == 0 || key[i] != key[i - 1] || (int64_t)((uint64_t)ts[perm[i]] - (uint64_t)ts[perm[i - 1]]) > gap;
        if (!new)
            continue;
        /* the burst [start, i): a named point seen before in it starts another */
        Py_ssize_t length = i - start;
        if (length > SHORT_BURST && point_at(point, width, perm[start]) >= named &&
                seen_add(&seen, start, length, point_at(point, width, perm[start])) < 0)
            result = -2;
        for (Py_ssize_t a = start + 1; a < i && result == 0; a++) {
            uint64_t p = point_at(point, width, perm[a]);
            split[a] = 0;
            if (p < named)
                continue;
            if (length <= SHORT_BURST) {
                for (Py_ssize_t b = start; b < a; b++)
                    if (point_at(point, width, perm[b]) == p) {
                        split[a] = 1;
                        break;
                    }
            } else {
                int was = seen_add(&seen, start, length, p);
                if (was < 0)
                    result = -2;
                split[a] = was == 1;
            }
        }
        if (i < n)
            split[i] = 1;
        start = i;
    }
    for (Py_ssize_t i = 1; i < n && !result; i++)
        if (!split[i] && ts[perm[i]] == ts[perm[i - 1]] && (point_at(point, width, perm[i - 1]) & mask) == out &&
            (point_at(point, width, perm[i]) & mask) != out)
            result = -1;
    PyMem_RawFree(seen.point);
    PyMem_RawFree(seen.stamp);
    return result;
}

/* burst_journeys(key, perm, ts, point, rows, gap, named, mask, out, journey, hop) -> bool: each sighting's journey
 * (its first row) and hop into `journey` and `hop` (uint32, in the partition's own order) from the partition's keys
 * in order (`key`, uint64) and that order (`perm`, uint32: position in the partition of each), its times (int64, no
 * nulls) and capture points (uint16, 32 or 64) in its own order and its rows (uint32, ascending). On one node each
 * burst is a journey, in key order a run: a sighting's hop is its place in the run, its journey the run's earliest
 * row. False, and nothing written, where sightings at one time are to be put In before Out first. */
static PyObject *burst_journeys(PyObject *self, PyObject *args) {
    Py_buffer key_, perm_, ts_, point_, rows_, journey_, hop_;
    long long gap;
    unsigned long long named, mask, out;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*LKKKw*w*", &key_, &perm_, &ts_, &point_, &rows_, &gap, &named, &mask, &out,
                          &journey_, &hop_))
        return NULL;
    PyObject *result = NULL;
    uint8_t *split = NULL;
    Py_ssize_t n = key_.len / 8, width = n ? point_.len / n : 8;
    if (perm_.len != n * 4 || ts_.len != n * 8 || point_.len != n * width || (width != 2 && width != 4 && width != 8) ||
        rows_.len != n * 4 || journey_.len != n * 4 || hop_.len != n * 4) {
        PyErr_SetString(PyExc_ValueError, "lengths differ, or points not of 2, 4 or 8 bytes");
        goto done;
    }
    const uint32_t *perm = perm_.buf, *rows = rows_.buf;
    for (Py_ssize_t i = 0; i < n; i++)
        if (perm[i] >= n) {
            PyErr_SetString(PyExc_ValueError, "a position outside the partition");
            goto done;
        }
    split = PyMem_RawMalloc(n + 1);
    if (!split) {
        PyErr_NoMemory();
        goto done;
    }
    int found;
    Py_BEGIN_ALLOW_THREADS
    found = burst_splits(key_.buf, perm, ts_.buf, point_.buf, (int)width, n, gap, named, mask, out, split);
    if (found == 0) {
        uint32_t *journey = journey_.buf, *hop = hop_.buf;
        Py_ssize_t start = 0;
        for (Py_ssize_t i = 1; i <= n; i++) {
            if (i < n && !split[i])
                continue;
            uint32_t first = perm[start];  /* the run [start, i): its earliest row, rows ascending */
            for (Py_ssize_t a = start + 1; a < i; a++)
                if (perm[a] < first) first = perm[a];
            for (Py_ssize_t a = start; a < i; a++) {
                journey[perm[a]] = rows[first];
                hop[perm[a]] = (uint32_t)(a - start);
            }
            start = i;
        }
    }
    Py_END_ALLOW_THREADS
    if (found == -2)
        PyErr_NoMemory();
    else
        result = PyBool_FromLong(found == 0);
done:
    PyMem_RawFree(split);
    PyBuffer_Release(&key_);
    PyBuffer_Release(&perm_);
    PyBuffer_Release(&ts_);
    PyBuffer_Release(&point_);
    PyBuffer_Release(&rows_);
    PyBuffer_Release(&journey_);
    PyBuffer_Release(&hop_);
    return result;
}

/* One key's state as a partition's rows go by in time order: its last sighting's time and direction, the run (a
 * journey) it is in, and the named capture points of its burst (the first `INLINE` here, more in `Repeats`). */
#define INLINE 4
#define AHEAD 16  /* rows ahead whose keys' slots and entries are fetched */
typedef struct {
    uint64_t key;
    int64_t last;
    uint32_t first, hop, burst, points;
    uint8_t egress, pad[7];
    uint64_t point[INLINE];
} Entry;

/* The named points of bursts past their first INLINE: (entry, burst, point) in open addressing, grown at half full. */
typedef struct {
    uint64_t *point;
    uint32_t *entry, *burst;  /* entry + 1: 0 is an empty slot */
    size_t size, count;
} Repeats;

static int repeats_slot(const Repeats *r, uint32_t entry, uint32_t burst, uint64_t point, size_t *slot) {
    size_t at = (size_t)(mix(point ^ ((uint64_t)entry << 32 | burst) ^ S0, S1) & (r->size - 1));
    while (r->entry[at]) {
        if (r->entry[at] == entry + 1 && r->burst[at] == burst && r->point[at] == point) {
            *slot = at;
            return 1;
        }
        at = (at + 1) & (r->size - 1);
    }
    *slot = at;
    return 0;
}

/* add (entry, burst, point); 0, or -1: no memory */
static int repeats_add(Repeats *r, uint32_t entry, uint32_t burst, uint64_t point) {
    if (2 * (r->count + 1) > r->size) {
        Repeats grown = {0};
        grown.size = r->size ? 2 * r->size : 1024;
        grown.point = PyMem_RawMalloc(grown.size * sizeof *grown.point);
        grown.entry = PyMem_RawCalloc(grown.size, sizeof *grown.entry);
        grown.burst = PyMem_RawMalloc(grown.size * sizeof *grown.burst);
        if (!grown.point || !grown.entry || !grown.burst) {
            PyMem_RawFree(grown.point);
            PyMem_RawFree(grown.entry);
            PyMem_RawFree(grown.burst);
            return -1;
        }
        for (size_t i = 0; i < r->size; i++)
            if (r->entry[i]) {
                size_t at;
                repeats_slot(&grown, r->entry[i] - 1, r->burst[i], r->point[i], &at);
                grown.entry[at] = r->entry[i];
                grown.burst[at] = r->burst[i];
                grown.point[at] = r->point[i];
            }
        grown.count = r->count;
        PyMem_RawFree(r->point);
        PyMem_RawFree(r->entry);
        PyMem_RawFree(r->burst);
        *r = grown;
    }
    size_t at;
    if (!repeats_slot(r, entry, burst, point, &at)) {
        r->entry[at] = entry + 1;
        r->burst[at] = burst;
        r->point[at] = point;
        r->count++;
    }
    return 0;
}

/* whether the named `point` was seen in the entry's burst; it is afterwards. 0, 1, or -1: no memory */
static int entry_seen(Entry *e, uint32_t index, Repeats *more, uint64_t point) {
    uint32_t inline_points = e->points < INLINE ? e->points : INLINE;
    for (uint32_t k = 0; k < inline_points; k++)
        if (e->point[k] == point)
            return 1;
    if (e->points > INLINE) {
        size_t at;
        if (repeats_slot(more, index, e->burst, point, &at))
            return 1;
    }
    if (e->points < INLINE)
        e->point[e->points] = point;
    else if (repeats_add(more, index, e->burst, point) < 0)
        return -1;
    e->points++;
    return 0;
}

/* The rows' journeys and hops (into `journey` and `hop`, in row order) of a partition whose times ascend: a row
 * takes its key's entry (made at its first sighting); a new burst at a gap over `gap`, a new run there or at a named
 * point seen before in the burst. 0; -1: a time before the last, or sightings at one time in a run with an Out
 * before an In (the order `one_node_partial` gives differs); -2: no memory. */
static int time_runs(const uint64_t *key, const int64_t *ts, const uint8_t *point, int width, const uint32_t *rows,
                     Py_ssize_t n, int64_t gap, uint64_t named, uint64_t mask, uint64_t out, uint32_t *journey, uint32_t *hop) {
    size_t size = 1024;
    while (size < 2 * (size_t)n) size *= 2;
    uint32_t *slots = PyMem_RawCalloc(size, sizeof *slots);  /* entry + 1: 0 is an empty slot */
    size_t room = n < 1024 ? 1024 : (size_t)n / 4, used = 0;
    Entry *entries = PyMem_RawMalloc(room * sizeof *entries);
    Repeats more = {0};
    int result = slots && entries ? 0 : -2;
    for (Py_ssize_t i = 0; i < n && !result; i++) {
        if (i && ts[i] < ts[i - 1]) {
            result = -1;
            break;
        }
        if (i + 2 * AHEAD < n)  /* the slots, then the entries, of the keys ahead: misses of the cache meanwhile */
            __builtin_prefetch(&slots[mix(key[i + 2 * AHEAD] ^ S0, S1) & (size - 1)]);
        if (i + AHEAD < n) {
            uint32_t ahead = slots[mix(key[i + AHEAD] ^ S0, S1) & (size - 1)];
            if (ahead)
                __builtin_prefetch(&entries[ahead - 1]);
        }
        uint64_t k = key[i], p = point_at(point, width, (uint32_t)i);
        int egress = (p & mask) == out;
        size_t at = (size_t)(mix(k ^ S0, S1) & (size - 1));
        while (slots[at] && entries[slots[at] - 1].key != k) at = (at + 1) & (size - 1);
        Entry *e;
        int run = 0;  /* whether the run of the key's last sighting goes on */
        if (!slots[at]) {  /* the key's first sighting */
            if (used == room) {
                room *= 2;
                Entry *grown = PyMem_RawRealloc(entries, room * sizeof *entries);
                if (!grown) {
                    result = -2;
                    break;
                }
                entries = grown;
            }
            e = &entries[used];
            memset(e, 0, sizeof *e);
            e->key = k;
            slots[at] = (uint32_t)++used;
        } else {
            e = &entries[slots[at] - 1];
            run = (int64_t)((uint64_t)ts[i] - (uint64_t)e->last) <= gap;
            if (!run) {  /* a new burst: no point seen in it */
                e->burst++;
                e->points = 0;
            }
        }
        if (p >= named) {  /* a named point seen before in the burst starts another run */
            int seen = entry_seen(e, slots[at] - 1, &more, p);
            if (seen < 0) {
                result = -2;
                break;
            }
            run &= !seen;
        }
        if (run && ts[i] == e->last && e->egress && !egress) {
            result = -1;
            break;
        }
        if (run)
            e->hop++;
        else {
            e->first = (uint32_t)i;
            e->hop = 0;
        }
        e->last = ts[i];
        e->egress = (uint8_t)egress;
        journey[i] = rows[e->first];
        hop[i] = e->hop;
    }
    PyMem_RawFree(slots);
    PyMem_RawFree(entries);
    PyMem_RawFree(more.point);
    PyMem_RawFree(more.entry);
    PyMem_RawFree(more.burst);
    return result;
}

/* time_journeys(key, ts, point, rows, gap, named, mask, out, journey, hop) -> bool: `burst_journeys` for a partition
 * whose times ascend (and rows), in one pass over its rows in their order, without sorting: a key's sightings come in
 * the order a stable sort by key would put them. False, nothing written, where they do not ascend or sightings at
 * one time are to be put In before Out first. */
static PyObject *time_journeys(PyObject *self, PyObject *args) {
    Py_buffer key_, ts_, point_, rows_, journey_, hop_;
    long long gap;
    unsigned long long named, mask, out;
    if (!PyArg_ParseTuple(args, "y*y*y*y*LKKKw*w*", &key_, &ts_, &point_, &rows_, &gap, &named, &mask, &out,
                          &journey_, &hop_))
        return NULL;
    PyObject *result = NULL;
    uint32_t *scratch = NULL;
    Py_ssize_t n = key_.len / 8, width = n ? point_.len / n : 8;
    if (ts_.len != n * 8 || point_.len != n * width || (width != 2 && width != 4 && width != 8) || rows_.len != n * 4 ||
        journey_.len != n * 4 || hop_.len != n * 4 || (uint64_t)n > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "lengths differ, or points not of 2, 4 or 8 bytes");
        goto done;
    }
    scratch = PyMem_RawMalloc(2 * n * sizeof *scratch + 1);  /* the outputs may hold the keys (`_one_node_partitions`) */
    if (!scratch) {
        PyErr_NoMemory();
        goto done;
    }
    int found;
    Py_BEGIN_ALLOW_THREADS
    found = time_runs(key_.buf, ts_.buf, point_.buf, (int)width, rows_.buf, n, gap, named, mask, out, scratch, scratch + n);
    if (found == 0) {
        memcpy(journey_.buf, scratch, n * sizeof *scratch);
        memcpy(hop_.buf, scratch + n, n * sizeof *scratch);
    }
    Py_END_ALLOW_THREADS
    if (found == -2)
        PyErr_NoMemory();
    else
        result = PyBool_FromLong(found == 0);
done:
    PyMem_RawFree(scratch);
    PyBuffer_Release(&key_);
    PyBuffer_Release(&ts_);
    PyBuffer_Release(&point_);
    PyBuffer_Release(&rows_);
    PyBuffer_Release(&journey_);
    PyBuffer_Release(&hop_);
    return result;
}

/* ---- one node's journeys over the whole capture, in time order: the keys of the last burst gap only ------------ */

/* A key's state (as `Entry`), its named points past the first INLINE in an array of its own. */
typedef struct {
    uint64_t key;
    int64_t last;
    uint32_t first, hop, points, more_room;
    uint8_t egress, pad[7];
    uint64_t point[INLINE];
    uint64_t *more;
} Recent;

/* The keys seen since a time (open addressing of entry + 1 in `slots`, 0 empty; grown at half full). */
typedef struct {
    uint32_t *slots;
    Recent *entries;
    size_t size, used, room;
} Window;

static void window_clear(Window *w, int release) {
    for (size_t i = 0; i < w->used; i++) {
        PyMem_RawFree(w->entries[i].more);
        w->entries[i].more = NULL;
    }
    w->used = 0;
    if (w->slots)
        memset(w->slots, 0, w->size * sizeof *w->slots);
    if (release) {
        PyMem_RawFree(w->slots);
        PyMem_RawFree(w->entries);
        memset(w, 0, sizeof *w);
    }
}

static size_t window_find(const Window *w, uint64_t key, uint64_t hash) {
    size_t at = (size_t)(hash & (w->size - 1));
    while (w->slots[at] && w->entries[w->slots[at] - 1].key != key) at = (at + 1) & (w->size - 1);
    return at;
}

/* a new entry for `key` (its slot `*at` empty): NULL, no memory */
static Recent *window_add(Window *w, uint64_t key, uint64_t hash, size_t at) {
    if (w->used == w->room) {
        size_t room = w->room ? 2 * w->room : 1024;
        Recent *grown = PyMem_RawRealloc(w->entries, room * sizeof *grown);
        if (!grown)
            return NULL;
        w->entries = grown;
        w->room = room;
    }
    if (2 * (w->used + 1) > w->size) {
        size_t size = w->size ? 2 * w->size : 1024;
        uint32_t *slots = PyMem_RawCalloc(size, sizeof *slots);
        if (!slots)
            return NULL;
        PyMem_RawFree(w->slots);
        w->slots = slots;
        w->size = size;
        for (size_t i = 0; i < w->used; i++)
            w->slots[window_find(w, w->entries[i].key, mix(w->entries[i].key ^ S0, S1))] = (uint32_t)i + 1;
        at = window_find(w, key, hash);
    }
    Recent *e = &w->entries[w->used];
    memset(e, 0, sizeof *e);
    e->key = key;
    w->slots[at] = (uint32_t)++w->used;
    return e;
}

/* whether the named `point` was seen in the entry's burst; it is afterwards. 0, 1, or -1: no memory */
static int recent_seen(Recent *e, uint64_t point) {
    for (uint32_t k = 0; k < e->points; k++)
        if ((k < INLINE ? e->point[k] : e->more[k - INLINE]) == point)
            return 1;
    if (e->points < INLINE)
        e->point[e->points] = point;
    else {
        if (e->points - INLINE == e->more_room) {
            uint32_t room = e->more_room ? 2 * e->more_room : 8;
            uint64_t *grown = PyMem_RawRealloc(e->more, room * sizeof *grown);
            if (!grown)
                return -1;
            e->more = grown;
            e->more_room = room;
        }
        e->more[e->points - INLINE] = point;
    }
    e->points++;
    return 0;
}

/* the columns `window_runs` reads, in this order: the times, and the capture point's interface (its category code)
 * and direction */
enum { WINDOW_TS, WINDOW_IFACE, WINDOW_DIRECTION, WINDOW_COLUMNS };
#define NO_DIRECTION 256  /* `point_codes`' direction where it is null */

/* Row `r` of the stretch's capture point as `journeys.point_codes` makes it: (the interface's code + 1, 0 where null)
 * * `named` + the direction (NO_DIRECTION where null). */
static inline uint64_t point_in(const Column *iface, const Column *direction, int64_t r, uint64_t named) {
    int64_t a = iface->bit + r, b = direction->bit + r;
    uint64_t code = iface->values && (!iface->validity || ((iface->validity[a >> 3] >> (a & 7)) & 1))
        ? (uint64_t)((const uint32_t *)iface->values)[a] + 1 : 0;
    uint64_t d = direction->values && (!direction->validity || ((direction->validity[b >> 3] >> (b & 7)) & 1))
        ? direction->values[b] : NO_DIRECTION;
    return code * named + d;
}

/* The journeys (first rows) and hops of the rows whose key falls in `lane` of `lanes`, into `journey` and `hop` at
 * their rows: `time_runs` over the whole capture in row order, its times ascending. A key last seen over `gap` ago
 * starts a burst afresh, so only the keys of the last gap are kept: two windows, the current one since a time and the
 * one before it, each over `gap` long; a key of the one before is moved to the current one when seen. The capture
 * points are read from the columns (`point_in`), of the lane's rows only. 0; -1: a time before the last, or an Out
 * before an In at one time within a run; -2: no memory; -3: times with nulls. */
static int window_runs(const uint64_t *key, Column *col, Py_ssize_t n, int lane, int lanes, int64_t gap, uint64_t named,
                       uint64_t mask, uint64_t out, uint32_t *journey, uint32_t *hop) {
    Window now = {0}, before = {0};
    int result = 0;
    int64_t since = 0, previous = INT64_MIN;
    Py_ssize_t i = 0;
    const Column *ts = &col[WINDOW_TS], *iface = &col[WINDOW_IFACE], *direction = &col[WINDOW_DIRECTION];
    while (i < n && !result) {
        int64_t stretch = columns_seek(col, WINDOW_COLUMNS, n - i);
        if (stretch <= 0 || !ts->values || ts->validity) {
            result = -3;
            break;
        }
        const int64_t *times = (const int64_t *)ts->values + ts->bit;
        for (int64_t r = 0; r < stretch && !result; r++, i++) {
            int64_t t = times[r];
            if (t < previous) {
                result = -1;
                break;
            }
            previous = t;
            if (!i || (int64_t)((uint64_t)t - (uint64_t)since) > gap) {  /* a window over gap long ends */
                Window done = before;
                window_clear(&done, 0);
                before = now;
                now = done;
                since = t;
            }
            uint64_t k = key[i], hash = mix(k ^ S0, S1);
            if ((int)(((hash >> 32) * (uint64_t)lanes) >> 32) != lane)  /* the key's lane, without a division */
                continue;
            uint64_t p = point_in(iface, direction, r, named);
            int egress = (p & mask) == out, run = 0;
            size_t at = now.size ? window_find(&now, k, hash) : 0;
            Recent *e = now.size && now.slots[at] ? &now.entries[now.slots[at] - 1] : NULL;
            int fresh = !e;  /* not seen within the windows: a burst starts */
            if (!e) {
                Recent *old = NULL;
                if (before.used) {
                    size_t was = window_find(&before, k, hash);
                    if (before.slots[was])
                        old = &before.entries[before.slots[was] - 1];
                }
                e = window_add(&now, k, hash, at);
                if (!e) {
                    result = -2;
                    break;
                }
                if (old) {  /* moved to the current window, its points with it */
                    *e = *old;
                    old->more = NULL;
                    old->more_room = 0;
                    fresh = 0;
                }
            }
            run = !fresh && (int64_t)((uint64_t)t - (uint64_t)e->last) <= gap;
            if (!run)
                e->points = 0;
            if (p >= named) {
                int seen = recent_seen(e, p);
                if (seen < 0) {
                    result = -2;
                    break;
                }
                run &= !seen;
            }
            if (run && t == e->last && e->egress && !egress) {
                result = -1;
                break;
            }
            if (run)
                e->hop++;
            else {
                e->first = (uint32_t)i;
                e->hop = 0;
            }
            e->last = t;
            e->egress = (uint8_t)egress;
            journey[i] = e->first;
            hop[i] = e->hop;
        }
        for (int k = 0; k < WINDOW_COLUMNS; k++)
            col[k].pos += stretch;
    }
    window_clear(&now, 1);
    window_clear(&before, 1);
    return result;
}

/* window_journeys(key, ts, iface, direction, lane, lanes, gap, named, mask, out, journey, hop) -> bool: the journeys
 * (first rows) and hops of one node's whole capture into `journey` and `hop` (uint32), at the rows whose key (uint64)
 * falls in `lane` of `lanes` (one a thread: the others' rows are left as they were), from the times (an Arrow stream
 * of int64 without nulls, ascending) and the capture points' interfaces (uint32 category codes) and directions (uint8),
 * Arrow streams or None (null in every row). False where the times do not ascend or sightings at one time within a
 * run have an Out before an In (rows may be written). */
static PyObject *window_journeys(PyObject *self, PyObject *args) {
    PyObject *capsule[WINDOW_COLUMNS];
    Py_buffer key_, journey_, hop_;
    int lane, lanes;
    long long gap;
    unsigned long long named, mask, out;
    if (!PyArg_ParseTuple(args, "y*OOOiiLKKKw*w*", &key_, &capsule[WINDOW_TS], &capsule[WINDOW_IFACE], &capsule[WINDOW_DIRECTION],
                          &lane, &lanes, &gap, &named, &mask, &out, &journey_, &hop_))
        return NULL;
    PyObject *result = NULL;
    Column col[WINDOW_COLUMNS];
    memset(col, 0, sizeof col);
    static const char *names[WINDOW_COLUMNS] = {"ts", "iface", "direction"}, *formats[WINDOW_COLUMNS] = {"l", "I", "C"};
    Py_ssize_t n = key_.len / 8;
    if (key_.len != n * 8 || journey_.len != n * 4 || hop_.len != n * 4 || lanes < 1 || lane < 0 || lane >= lanes ||
            (uint64_t)n > UINT32_MAX || capsule[WINDOW_TS] == Py_None) {
        PyErr_SetString(PyExc_ValueError, "lengths differ, no times, or no such lane");
        goto done;
    }
    for (int k = 0; k < WINDOW_COLUMNS; k++)
        if (column_load(capsule[k], n, &col[k], names[k], formats[k]) < 0)
            goto done;
    int found;
    Py_BEGIN_ALLOW_THREADS
    found = window_runs(key_.buf, col, n, lane, lanes, gap, named, mask, out, journey_.buf, hop_.buf);
    Py_END_ALLOW_THREADS
    if (found == -2)
        PyErr_NoMemory();
    else if (found == -3)
        PyErr_SetString(PyExc_ValueError, "times with nulls");
    else
        result = PyBool_FromLong(found == 0);
done:
    for (int k = 0; k < WINDOW_COLUMNS; k++)
        column_free(&col[k]);
    PyBuffer_Release(&key_);
    PyBuffer_Release(&journey_);
    PyBuffer_Release(&hop_);
    return result;
}

/* Where the instances of a class of slots and no dict (results.Hop: half the memory of a hop with a dict) keep the
 * field `name`: its member's offset; -1 when the class has no such member holding an object, or has a dict. */
static Py_ssize_t slot_offset(PyTypeObject *type, PyObject *name) {
    if (type->tp_dictoffset != 0 || type->tp_members == NULL)
        return -1;
    const char *text = PyUnicode_AsUTF8(name);
    if (text == NULL) {
        PyErr_Clear();
        return -1;
    }
    for (PyMemberDef *member = type->tp_members; member->name != NULL; member++)
        if (strcmp(member->name, text) == 0)
            return member->type == T_OBJECT_EX && !(member->flags & READONLY) ? member->offset : -1;
    return -1;
}

/* `value` put as the field of `o` its class keeps at `offset` (`slot_offset`). */
static inline void put_attribute(PyObject *o, Py_ssize_t offset, PyObject *value) {
    Py_INCREF(value);
    Py_XSETREF(*(PyObject **)((char *)o + offset), value);
}

/* `slot_offset` of each of `k` names, or -1 with a TypeError: the objects made or filled here keep their fields in
 * slots (results.Hop, Journey, Flow, Endpoint). */
static int slot_offsets(PyTypeObject *type, PyObject *const *names, Py_ssize_t k, Py_ssize_t *offsets) {
    for (Py_ssize_t j = 0; j < k; j++)
        if ((offsets[j] = slot_offset(type, names[j])) < 0) {
            PyErr_Format(PyExc_TypeError, "%s keeps no field %R in a slot", type->tp_name, names[j]);
            return -1;
        }
    return 0;
}

/* same_items(items, name, held) -> bool: whether the `name` attribute of each of `items` is the very object (`is`) at its
 * place in `held`, as many of each: `journeys.hop_arrays`' check that journeys hold the hops materialised (read from the
 * slot where their class keeps it: 20,000 journeys 0.8 ms of Python iterators -> ~0.1 ms). */
static PyObject *same_items(PyObject *self, PyObject *args) {
    PyObject *items, *name, *held;
    if (!PyArg_ParseTuple(args, "OUO", &items, &name, &held))
        return NULL;
    PyObject *a = PySequence_Fast(items, "same_items: items must be a sequence");
    PyObject *b = a ? PySequence_Fast(held, "same_items: held must be a sequence") : NULL;
    if (b == NULL) {
        Py_XDECREF(a);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(a);
    int same = n == PySequence_Fast_GET_SIZE(b), failed = 0;
    PyTypeObject *type = NULL;
    Py_ssize_t offset = -1;
    for (Py_ssize_t i = 0; same && i < n; i++) {
        PyObject *o = PySequence_Fast_GET_ITEM(a, i), *value;
        if (Py_TYPE(o) != type) {
            type = Py_TYPE(o);
            offset = slot_offset(type, name);
        }
        if (offset >= 0) {
            value = *(PyObject **)((char *)o + offset);  /* (borrowed: NULL where the slot is unset) */
            same = value != NULL && value == PySequence_Fast_GET_ITEM(b, i);
            continue;
        }
        if ((value = PyObject_GetAttr(o, name)) == NULL) {
            failed = 1;
            break;
        }
        same = value == PySequence_Fast_GET_ITEM(b, i);
        Py_DECREF(value);
    }
    Py_DECREF(a);
    Py_DECREF(b);
    if (failed)
        return NULL;
    return PyBool_FromLong(same);
}

#define NAMES_MAX 64 /* fields of a class make_objects makes */

/* make_objects(cls, names, columns, n): n instances of `cls` made as `results.maker`'s function makes them
 * (object.__new__, then each of `names` put in its slot, in order; a class keeping one elsewhere refused), the k-th name's value of
 * the i-th being `columns[k][i]` where `columns[k]` is a list or a one-dimensional array of n objects or of n 64-bit
 * integers (numpy's: no list of each column made first, 0.6 MB of fresh pages each at 73k hops), else `columns[k]`
 * itself. For the tens of thousands of hops and journeys materialising makes (results.made_many: the Python loop the
 * fallback). */
enum { COLUMN_CONSTANT, COLUMN_LIST, COLUMN_OBJECTS, COLUMN_INTEGERS };

/* What kind of column `column` is (`view` held for an array's), -1 on an array of another kind or length. */
static int column_kind(PyObject *column, Py_ssize_t n, Py_buffer *view) {
    if (PyList_Check(column))
        return PyList_GET_SIZE(column) == n ? COLUMN_LIST : -1;
    if (!PyObject_CheckBuffer(column) || PyBytes_Check(column) || PyByteArray_Check(column))
        return COLUMN_CONSTANT;
    if (PyObject_GetBuffer(column, view, PyBUF_FORMAT | PyBUF_ND) < 0)
        return -1;
    const char *format = view->format ? view->format : "B";
    int kind = view->ndim != 1 || view->shape[0] != n || view->itemsize != 8 ? -1
               : strcmp(format, "O") == 0                               ? COLUMN_OBJECTS
               : strcmp(format, "l") == 0 || strcmp(format, "q") == 0   ? COLUMN_INTEGERS
                                                                         : -1;
    if (kind < 0)
        PyBuffer_Release(view);
    return kind;
}

static PyObject *make_objects(PyObject *self, PyObject *args) {
    PyTypeObject *cls;
    PyObject *names, *columns;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "O!O!O!n", &PyType_Type, &cls, &PyTuple_Type, &names, &PyTuple_Type, &columns, &n))
        return NULL;
    Py_ssize_t k = PyTuple_GET_SIZE(names);
    if (n < 0 || PyTuple_GET_SIZE(columns) != k || k > NAMES_MAX) {
        PyErr_SetString(PyExc_ValueError, "make_objects: a column for each name (at most 64), and a count not below 0");
        return NULL;
    }
    Py_ssize_t offsets[NAMES_MAX];
    int kinds[NAMES_MAX];
    Py_buffer views[NAMES_MAX];
    Py_ssize_t held = 0; /* columns whose kind is known (and views held) */
    PyObject *empty = NULL, *out = NULL;
    for (; held < k; held++) {
        PyObject *column = PyTuple_GET_ITEM(columns, held);
        if (!PyUnicode_Check(PyTuple_GET_ITEM(names, held))) {
            PyErr_SetString(PyExc_TypeError, "make_objects: names are str");
            goto fail;
        }
        if ((kinds[held] = column_kind(column, n, &views[held])) < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "make_objects: a list or array column of another length or kind");
            goto fail;
        }
    }
    if (slot_offsets(cls, &PyTuple_GET_ITEM(names, 0), k, offsets) < 0)
        goto fail;
    empty = PyTuple_New(0);
    out = empty ? PyList_New(n) : NULL;
    if (out == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *made = PyBaseObject_Type.tp_new(cls, empty, NULL);
        if (made == NULL)
            goto fail;
        PyList_SET_ITEM(out, i, made);
        for (Py_ssize_t j = 0; j < k; j++) {
            PyObject *column = PyTuple_GET_ITEM(columns, j), *value;
            switch (kinds[j]) {
            case COLUMN_INTEGERS:
                if ((value = PyLong_FromLongLong(((const long long *)views[j].buf)[i])) == NULL)
                    goto fail;
                put_attribute(made, offsets[j], value);
                Py_DECREF(value);
                break;
            case COLUMN_OBJECTS:
                /* (an array's view is held: its length and items stay) */
                if ((value = ((PyObject *const *)views[j].buf)[i]) == NULL) {
                    PyErr_SetString(PyExc_ValueError, "make_objects: an array of objects with a hole");
                    goto fail;
                }
                put_attribute(made, offsets[j], value);
                break;
            case COLUMN_LIST:
                /* (a list column's length was checked above; Python code cannot run between: no callback here) */
                put_attribute(made, offsets[j], PyList_GET_ITEM(column, i));
                break;
            default:
                put_attribute(made, offsets[j], column);
            }
        }
    }
    for (Py_ssize_t j = 0; j < k; j++)
        if (kinds[j] == COLUMN_OBJECTS || kinds[j] == COLUMN_INTEGERS)
            PyBuffer_Release(&views[j]);
    Py_DECREF(empty);
    return out;
fail:
    for (Py_ssize_t j = 0; j < held; j++)
        if (kinds[j] == COLUMN_OBJECTS || kinds[j] == COLUMN_INTEGERS)
            PyBuffer_Release(&views[j]);
    Py_XDECREF(empty);
    Py_XDECREF(out);
    return NULL;
}

/* ---- distinct rows and pairs of rows: each numbered in order of first appearance --------------------------------- */

/* The layout of a row packed by `rows_pack`: its fields side by side in words (a field never straddles two), by their
 * widths alone, then a word of their null flags; the fields that are not ends first, then the ends (their own words
 * and flag word: a pair whose ends stay the same leaves them out). The same layout for every row: two rows' words
 * are equal exactly where their fields and null flags are. */
typedef struct {
    Py_ssize_t fields;
    int *word, *shift, *flag;  /* per field: its word, its place in it, its bit in its group's flag word */
    int rest, width;           /* words of the fields that are not ends (with their flag word); words in all */
} Layout;

static int layout_plan(const Column *col, const uint8_t *ends, Py_ssize_t fields, Layout *l) {
    int word = 0;
    for (int group = 0; group < 2; group++) {
        int shift = 0, flag = 0;
        for (Py_ssize_t f = 0; f < fields; f++) {
            if ((ends[f] != 0) != group)
                continue;
            int bits = col[f].bits ? col[f].bits : 1;
            if (shift + bits > 64) {
                word++;
                shift = 0;
            }
            if (flag == 64)
                return -1;
            l->word[f] = word, l->shift[f] = shift, l->flag[f] = flag++;
            shift += bits;
        }
        word += shift ? 1 : 0;
        if (!group)
            l->rest = word + 1;  /* (the flag word after the values) */
        for (Py_ssize_t f = 0; f < fields; f++)
            if ((ends[f] != 0) == group)
                l->flag[f] += 64 * word;  /* the flag word's place, in bits */
        word += 1;
    }
    l->width = word;
    return 0;
}

/* The first `m` rows of the columns' current stretch (column_seek) packed into `out` (m rows of l->width words). */
static void rows_pack(const Column *col, const Layout *l, int m, uint64_t *restrict out) {
    memset(out, 0, (size_t)m * l->width * sizeof *out);
    for (Py_ssize_t f = 0; f < l->fields; f++) {
        const Column *c = &col[f];
        if (!c->values)
            continue;  /* null in every row */
        int64_t b = c->bit;
        uint64_t *w = out + l->word[f], *flags = out + l->flag[f] / 64, flagged = 1ULL << (l->flag[f] % 64);
        int shift = l->shift[f];
        for (int i = 0; i < m; i++)
            if (!c->validity || ((c->validity[(b + i) >> 3] >> ((b + i) & 7)) & 1)) {
                w[(size_t)i * l->width] |= value_at(c, b, i) << shift;
                flags[(size_t)i * l->width] |= flagged;
            }
    }
}

/* the words of a key: of a row, its packed row; of a pair, its rows' packed rows, the ends of both zeroed where they
 * are the same in both, and whether they are */
static int key_make(const Layout *l, const uint64_t *prev, const uint64_t *cur, uint64_t *key) {
    if (!prev) {
        memcpy(key, cur, l->width * sizeof *key);
        return l->width;
    }
    int same = memcmp(prev + l->rest, cur + l->rest, (l->width - l->rest) * sizeof *key) == 0;
    memcpy(key, prev, l->width * sizeof *key);
    memcpy(key + l->width, cur, l->width * sizeof *key);
    if (same) {
        memset(key + l->rest, 0, (l->width - l->rest) * sizeof *key);
        memset(key + l->width + l->rest, 0, (l->width - l->rest) * sizeof *key);
    }
    key[2 * l->width] = (uint64_t)same;
    return 2 * l->width + 1;
}

static inline uint64_t key_hash(const uint64_t *key, int words) {
    uint64_t h = 0;
    for (int w = 0; w < words; w++)  /* independent products: no chain of mixes through the words */
        h += (key[w] ^ (S2 + (uint64_t)w)) * ((S1 + 2 * (uint64_t)w) | 1);
    return mix(h ^ S0, S4);
}

#define DISTINCT_BLOCK 256
#define DISTINCT_SLOTS 1024 /* a table's first slots: the few distinct rows of many are looked up in a table that stays in cache */

/* `*table` of `*size` slots (-1: free) made twice as large, the `count` keys of `words` words each found so far placed
 * in it again: grown as they are found, not sized for every row being distinct (197 distinct pairs of 73k hops were
 * looked up in a table of 2 MB, a cache miss a row). -1 when out of memory (the table as it was). */
static int table_grow(int64_t **table, Py_ssize_t *size, const uint64_t *keys, Py_ssize_t count, int words) {
    Py_ssize_t grown_size = *size * 2;
    int64_t *grown = PyMem_RawMalloc((size_t)grown_size * sizeof *grown);
    if (!grown)
        return -1;
    memset(grown, 0xff, (size_t)grown_size * sizeof *grown);
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_ssize_t slot = (Py_ssize_t)(key_hash(keys + (size_t)k * words, words) & (uint64_t)(grown_size - 1));
        while (grown[slot] >= 0)
            slot = (slot + 1) & (grown_size - 1);
        grown[slot] = k;
    }
    PyMem_RawFree(*table);
    *table = grown;
    *size = grown_size;
    return 0;
}

/* distinct_rows(columns, n, ends, first, pairs, codes): each of the `n` rows' place (`codes`, int64 of n) among the
 * distinct rows of `columns` (a tuple of Arrow streams of "bCSILl", None: all null; with `pairs`, among the distinct
 * pairs of each row and the one before it), numbered in order of first appearance, and the first row of each (a
 * list). With `pairs`, a row whose `first` (uint8 of n) is not 0 is left out (-1): pairs are of the rows of one
 * journey, row 0 has none before it; `ends` (uint8 a column): the columns a pair whose two rows hold equal values in
 * every one of them (null equal to null) leaves out of its key. Nulls are equal to nulls only. As polars' group_by
 * (maintain_order=True) numbers them (`journeys._once_per_distinct`, `_changes_at`: the fallbacks). At most 64
 * columns of either kind. */
static PyObject *distinct_rows(PyObject *self, PyObject *args) {
    PyObject *columns;
    Py_buffer ends, first, codes_;
    Py_ssize_t n;
    int pairs;
    if (!PyArg_ParseTuple(args, "O!ny*y*pw*", &PyTuple_Type, &columns, &n, &ends, &first, &pairs, &codes_))
        return NULL;
    PyObject *out = NULL;
    Py_ssize_t fields = PyTuple_GET_SIZE(columns), loaded = 0, count = 0, room = 0;
    Column *col = PyMem_RawCalloc(fields ? fields : 1, sizeof *col);
    int *places = PyMem_RawMalloc(3 * (fields ? fields : 1) * sizeof *places);
    uint8_t *key_ends = PyMem_RawCalloc(fields ? fields : 1, 1);
    uint64_t *block = NULL, *keys = NULL, *key = NULL;
    int64_t *table = NULL, *reps = NULL;
    Layout l = {fields, places, places + fields, places + 2 * fields, 0, 0};
    if (!col || !places || !key_ends) {
        PyErr_NoMemory();
        goto done;
    }
    if (n < 0 || ends.len != fields || first.len != n || codes_.len != (Py_ssize_t)sizeof(int64_t) * n) {
        PyErr_SetString(PyExc_ValueError, "distinct_rows: ends of a column each, first and codes of n");
        goto done;
    }
    const uint8_t *is_first = first.buf;
    if (pairs && n && !is_first[0]) {
        PyErr_SetString(PyExc_ValueError, "distinct_rows: the first row has no row before it to pair with");
        goto done;
    }
    for (; loaded < fields; loaded++) {
        char name[48];
        snprintf(name, sizeof name, "%zd of the rows'", loaded);
        if (column_load(PyTuple_GET_ITEM(columns, loaded), n, &col[loaded], name, "bCSILl") < 0)
            goto done;
        key_ends[loaded] = pairs && ((const uint8_t *)ends.buf)[loaded];
    }
    if (layout_plan(col, key_ends, fields, &l) < 0) {
        PyErr_SetString(PyExc_ValueError, "distinct_rows: more than 64 columns of a kind");
        goto done;
    }
    Py_ssize_t size = DISTINCT_SLOTS;  /* (grown to keep at most half of it taken) */
    int words = pairs ? 2 * l.width + 1 : l.width;
    block = PyMem_RawMalloc((DISTINCT_BLOCK + 1) * l.width * sizeof *block);  /* (the first: the row before the block) */
    key = PyMem_RawMalloc(words * sizeof *key);
    table = PyMem_RawMalloc(size * sizeof *table);
    if (!block || !key || !table) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *codes = codes_.buf, done_rows = 0;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    memset(table, 0xff, size * sizeof *table);
    while (done_rows < n && !failed) {
        int m = (int)columns_seek(col, (int)fields, n - done_rows < DISTINCT_BLOCK ? n - done_rows : DISTINCT_BLOCK);
        rows_pack(col, &l, m, block + l.width);
        for (int k = 0; k < m && !failed; k++) {
            Py_ssize_t i = done_rows + k;
            if (pairs && is_first[i]) {
                codes[i] = -1;
                continue;
            }
            const uint64_t *cur = block + (size_t)(k + 1) * l.width;
            key_make(&l, pairs ? cur - l.width : NULL, cur, key);
            Py_ssize_t slot = (Py_ssize_t)(key_hash(key, words) & (uint64_t)(size - 1));
            for (;;) {
                int64_t at = table[slot];
                if (at < 0) {  /* a new one */
                    if (count == room) {
                        room = room ? 2 * room : 64;
                        uint64_t *grown = PyMem_RawRealloc(keys, (size_t)room * words * sizeof *keys);
                        int64_t *more = PyMem_RawRealloc(reps, (size_t)room * sizeof *reps);
                        keys = grown ? grown : keys;
                        reps = more ? more : reps;
                        if (!grown || !more) {
                            failed = 1;
                            break;
                        }
                    }
                    memcpy(keys + (size_t)count * words, key, words * sizeof *key);
                    table[slot] = count;
                    reps[count] = i;
                    codes[i] = count++;
                    if (2 * count > size && table_grow(&table, &size, keys, count, words) < 0)
                        failed = 1;
                    break;
                }
                if (memcmp(keys + (size_t)at * words, key, words * sizeof *key) == 0) {
                    codes[i] = at;
                    break;
                }
                slot = (slot + 1) & (size - 1);
            }
        }
        memcpy(block, block + (size_t)m * l.width, l.width * sizeof *block);  /* the last row: the next block's first's before */
        for (Py_ssize_t f = 0; f < fields; f++)
            col[f].pos += m;
        done_rows += m;
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    out = PyList_New(count);
    for (Py_ssize_t k = 0; out && k < count; k++) {
        PyObject *row = PyLong_FromSsize_t(reps[k]);
        if (!row) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, k, row);
    }
done:
    for (Py_ssize_t f = 0; f < loaded; f++)
        column_free(&col[f]);
    PyMem_RawFree(col);
    PyMem_RawFree(places);
    PyMem_RawFree(key_ends);
    PyMem_RawFree(block);
    PyMem_RawFree(key);
    PyMem_RawFree(keys);
    PyMem_RawFree(table);
    PyMem_RawFree(reps);
    PyBuffer_Release(&ends);
    PyBuffer_Release(&first);
    PyBuffer_Release(&codes_);
    return out;
}

/* put_field(groups, name, values): `name` put in the slot of each object of the tuples of the list `groups`, in order,
 * the k-th object's value `values[k]` (a list of as many values as the tuples hold objects). For the roles labelling
 * gives the hops of the journeys (results.set_roles: the Python loop the fallback). */
static PyObject *put_field(PyObject *self, PyObject *args) {
    PyObject *groups, *name, *values;
    if (!PyArg_ParseTuple(args, "O!UO!", &PyList_Type, &groups, &name, &PyList_Type, &values))
        return NULL;
    Py_ssize_t count = 0, k = 0;
    for (Py_ssize_t g = 0; g < PyList_GET_SIZE(groups); g++) {
        PyObject *group = PyList_GET_ITEM(groups, g);
        if (!PyTuple_Check(group)) {
            PyErr_SetString(PyExc_TypeError, "put_field: groups are tuples");
            return NULL;
        }
        count += PyTuple_GET_SIZE(group);
    }
    if (count != PyList_GET_SIZE(values)) {
        PyErr_SetString(PyExc_ValueError, "put_field: a value for each object");
        return NULL;
    }
    /* (no Python code runs below but the values' deallocators, which put nothing: the lists keep their lengths) */
    PyTypeObject *seen = NULL;
    Py_ssize_t offset = -1;
    for (Py_ssize_t g = 0; g < PyList_GET_SIZE(groups); g++) {
        PyObject *group = PyList_GET_ITEM(groups, g);
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(group); i++, k++) {
            PyObject *o = PyTuple_GET_ITEM(group, i);
            if (Py_TYPE(o) != seen) {
                seen = Py_TYPE(o);
                if (slot_offsets(seen, &name, 1, &offset) < 0)
                    return NULL;
            }
            put_attribute(o, offset, PyList_GET_ITEM(values, k));
        }
    }
    Py_RETURN_NONE;
}

/* ---- journeys' summaries: the text of TCP and UDP between IPv4 addresses, nearly every journey's ---------------- */

enum { S_PROTO, S_ARP_OP, S_SRC, S_DST, S_SPORT, S_DPORT, S_FLAGS, S_SEQ, S_ACK, S_LEN, S_DNS_ID, S_DNS_QR, S_FIELDS };
#define SUMMARY_FLAGS_MAX 32 /* a TCP flags text's length at most ("SFPRUEW." and the like) */

static char *put_text(char *at, const char *text, size_t len) {
    memcpy(at, text, len);
    return at + len;
}

static char *put_number(char *at, uint64_t v) {
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *at++ = digits[--n];
    return at;
}

static char *put_hostport(char *at, uint64_t ip, int port_ok, uint64_t port) {
    for (int s = 24; s >= 0; s -= 8) {
        at = put_number(at, (ip >> s) & 255);
        if (s)
            *at++ = '.';
    }
    if (port_ok) {
        *at++ = ':';
        at = put_number(at, port);
    }
    return at;
}

/* The summaries of n rows whose S_FIELDS fields' values (uint64) and null flags (uint8: 1 where not null) are `v` and
 * `ok`, field after field; `flag_texts`: a list of 256 str, each TCP flags value's text (ASCII). */
static PyObject *summary_texts(const uint64_t *v, const uint8_t *ok, Py_ssize_t n, PyObject *flag_texts) {
    const char *flags[256];
    Py_ssize_t flag_lens[256];
    if (PyList_GET_SIZE(flag_texts) != 256) {
        PyErr_SetString(PyExc_ValueError, "summaries_at: a text for each of the 256 flags values");
        return NULL;
    }
    for (int f = 0; f < 256; f++) {
        PyObject *text = PyList_GET_ITEM(flag_texts, f);
        flags[f] = PyUnicode_Check(text) ? PyUnicode_AsUTF8AndSize(text, &flag_lens[f]) : NULL;
        if (flags[f] == NULL || flag_lens[f] > SUMMARY_FLAGS_MAX) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "summaries_at: flags texts are str of 32 bytes at most");
            return NULL;
        }
    }
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
#define FIELD(f) v[(Py_ssize_t)(f) * n + i]
#define HAS(f) ok[(Py_ssize_t)(f) * n + i]
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t proto = FIELD(S_PROTO), tcp_flags = FIELD(S_FLAGS);
        int ends = !HAS(S_ARP_OP) && HAS(S_SRC) && HAS(S_DST) && HAS(S_PROTO);
        int tcp = ends && proto == 6 && HAS(S_FLAGS), udp = ends && proto == 17;
        if (!(tcp || udp) || tcp_flags > 255) {
            Py_INCREF(Py_None);
            PyList_SET_ITEM(out, i, Py_None);
            continue;
        }
        char text[256], *at = text;  /* at most 4 + 2 * 21 + 3 + 2 + 32 + 1 + 2 * 15 + 16 + 20 + 6 + 5 (< 200) */
        at = put_text(at, tcp ? "TCP " : "UDP ", 4);
        at = put_hostport(at, FIELD(S_SRC), HAS(S_SPORT), FIELD(S_SPORT));
        at = put_text(at, " > ", 3);
        at = put_hostport(at, FIELD(S_DST), HAS(S_DPORT), FIELD(S_DPORT));
        if (tcp) {
            at = put_text(at, " [", 2);
            at = put_text(at, flags[tcp_flags], (size_t)flag_lens[tcp_flags]);
            *at++ = ']';
            if (HAS(S_SEQ))
                at = put_number(put_text(at, " seq ", 5), FIELD(S_SEQ));
            if (HAS(S_ACK) && (tcp_flags & 16))
                at = put_number(put_text(at, " ack ", 5), FIELD(S_ACK));
        } else if (HAS(S_DNS_ID)) {
            at = put_text(at, " DNS ", 5);
            at = HAS(S_DNS_QR) && FIELD(S_DNS_QR) ? put_text(at, "answer", 6) : put_text(at, "query", 5);
            at = put_number(put_text(at, " id ", 4), FIELD(S_DNS_ID));
        }
        if (HAS(S_LEN))
            at = put_number(put_text(at, ", len ", 6), FIELD(S_LEN));
        PyObject *made = PyUnicode_DecodeASCII(text, at - text, NULL);
        if (made == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, made);
    }
#undef FIELD
#undef HAS
    return out;
}

/* summaries_at(columns, rows, at, flag_texts): `journeys._summaries`' text of each of the rows `at` (int64, each below
 * `rows`) that is TCP (with flags) or UDP between IPv4 addresses and no ARP, None for the others (Python writes those).
 * `columns`: the S_FIELDS fields (proto, arp_op, src, dst, sport, dport, tcp_flags, seq, ack, payload_len, dns_id,
 * dns_qr) as Arrow streams of "bCSIL" of `rows` values in one chunk each (None: all null), read in place; `flag_texts`:
 * a list of 256 str, each TCP flags value's text (ASCII). Each number is written as polars casts it to text, each
 * address as `ip4_expr` writes it. */
static PyObject *summaries_at(PyObject *self, PyObject *args) {
    PyObject *columns, *flag_texts;
    Py_buffer at_;
    Py_ssize_t rows;
    if (!PyArg_ParseTuple(args, "O!ny*O!", &PyTuple_Type, &columns, &rows, &at_, &PyList_Type, &flag_texts))
        return NULL;
    PyObject *out = NULL;
    Column col[S_FIELDS];
    memset(col, 0, sizeof col);
    Py_ssize_t loaded = 0, n = at_.len / (Py_ssize_t)sizeof(int64_t);
    const int64_t *at = at_.buf;
    uint64_t *v = NULL;
    uint8_t *ok = NULL;
    if (PyTuple_GET_SIZE(columns) != S_FIELDS || at_.len % sizeof(int64_t) || rows < 0) {
        PyErr_Format(PyExc_ValueError, "summaries_at: %d columns and int64 rows wanted", S_FIELDS);
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (at[i] < 0 || at[i] >= rows) {
            PyErr_SetString(PyExc_ValueError, "summaries_at: a row beyond the columns");
            goto done;
        }
    for (; loaded < S_FIELDS; loaded++) {
        char name[48];
        snprintf(name, sizeof name, "%zd of the summaries'", loaded);
        if (column_load(PyTuple_GET_ITEM(columns, loaded), rows, &col[loaded], name, "bCSIL") < 0)
            goto done;
        if (col[loaded].count > 1) {
            PyErr_Format(PyExc_ValueError, "summaries_at: column %s in %zd chunks, not one", name, col[loaded].count);
            loaded++;
            goto done;
        }
        column_seek(&col[loaded]);
    }
    v = PyMem_RawMalloc(S_FIELDS * (n ? n : 1) * sizeof *v);
    ok = PyMem_RawMalloc(S_FIELDS * (n ? n : 1));
    if (!v || !ok) {
        PyErr_NoMemory();
        goto done;
    }
    for (int f = 0; f < S_FIELDS; f++) {
        const Column *c = &col[f];
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t b = c->bit + at[i];
            int valid = c->values && (!c->validity || ((c->validity[b >> 3] >> (b & 7)) & 1));
            ok[f * n + i] = (uint8_t)valid;
            v[f * n + i] = valid ? value_at(c, b, 0) : 0;
        }
    }
    out = summary_texts(v, ok, n, flag_texts);
done:
    for (Py_ssize_t f = 0; f < loaded; f++)
        column_free(&col[f]);
    PyMem_RawFree(v);
    PyMem_RawFree(ok);
    PyBuffer_Release(&at_);
    return out;
}

/* ---- the report's conversations as JSON values ------------------------------------------------------------------ */

/* names read of conversations and endpoints, interned once (`names_made`) */
static PyMethodDef methods[] = {
    {"argsort_keys", argsort_keys, METH_VARARGS, "The stable order of uint64 keys, and the keys in it."},
    {"partition_sizes", partition_sizes, METH_VARARGS, "Add how many uint64 keys fall in each partition (key modulo count)."},
    {"partition_place", partition_place, METH_VARARGS, "Place each key's position in its partition."},
    {"partition_scatter", partition_scatter, METH_VARARGS, "Put a column in partition order."},
    {"merge_put", merge_put, METH_VARARGS, "A partition's journeys and hops in place in the capture's columns."},
    {"put_rows", put_rows, METH_VARARGS, "A partition's journeys and hops, in its row order, in place in the capture's columns."},
    {"burst_journeys", burst_journeys, METH_VARARGS, "One node's journeys and hops of a partition, in its own order."},
    {"time_journeys", time_journeys, METH_VARARGS, "burst_journeys of a partition whose times ascend, without sorting."},
    {"window_journeys", window_journeys, METH_VARARGS, "One node's journeys over the whole capture in time order."},
    {"fingerprint_scan", fingerprint_scan, METH_VARARGS, "Each sighting's fingerprint hashed over the table's columns."},
    {"rank_firsts", rank_firsts, METH_VARARGS, "Journeys given by first row -> numbered by first row, in place."},
    {"same_items", same_items, METH_VARARGS, "Whether each item's attribute is the very object at its place in another sequence."},
    {"make_objects", make_objects, METH_VARARGS, "Instances of a class, each field put in its slot, from lists or constants."},
    {"summaries_at", summaries_at, METH_VARARGS, "The summary of each of some rows that is TCP or UDP between IPv4 addresses."},
    {"put_field", put_field, METH_VARARGS, "A field put in each object's slot, the objects in tuples, a value each."},
    {"distinct_rows", distinct_rows, METH_VARARGS, "Rows, or pairs of rows, numbered by first appearance of each distinct one."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_journeys", NULL, -1, methods};

PyMODINIT_FUNC PyInit__journeys(void) {
    spread_make();
    return PyModule_Create(&module);
}
