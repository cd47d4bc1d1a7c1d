/* Numbering conversations (cniscope.flows.number) in C: each sighting's direction-free tuple id hashed over the
 * table's column buffers (Arrow C streams of polars' chunks: no copy), in the same pass as what `number` keeps of
 * it; and keys numbered by first appearance. cniscope.flows has the polars/numpy path these replace, giving the
 * same conversations (tests/test_flows_c.py); the GIL is released while rows are worked.
 *
 * The ids are not polars' hash values: equal tuples get equal ids, and different ones differ but by chance (a
 * 64-bit hash of every field, nulls told apart from values; no fields packed into 64 bits and so lost).
 */
#include "_columns.h"

/* What a scan that ran without the GIL found wrong, said: `bad` its message, or "" when memory ran out. */
static void say_bad(const char *bad) {
    if (*bad)
        PyErr_SetString(PyExc_ValueError, bad);
    else
        PyErr_NoMemory();
}

/* Two rounds of wyhash's mix (_columns.h) over two 64-bit words make a 64-bit hash of them. Every word hashed here
 * holds its fields side by side (at most 64 bits of them, with their null flags), and none can be the secret it is
 * xor-ed with (their top bits are never all set), so no input is multiplied by 0. `seed`: one of S2, S3, S4 (never S0
 * or S1, which would cancel out). */
static inline uint64_t hash2(uint64_t a, uint64_t b, uint64_t seed) { return mix(S1 ^ seed, mix(a ^ S1, b ^ S0 ^ seed)); }

/* the columns `tuple_scan` is given, in this order */
enum {
    PROTO, SRC, DST, SRC6, DST6, SRC_NAME, DST_NAME, SPORT, DPORT, ICMP_ID,
    OUTER_SRC, OUTER_DST, OUTER_SRC6, OUTER_DST6, OUTER_SRC_NAME, OUTER_DST_NAME, OUTER_SPORT, OUTER_DPORT,
    TUNNEL, ARP_OP, ARP_SPA, ARP_TPA, JOURNEY, HOP, ROW, COLUMNS
};
static const char *NAMES[COLUMNS] = {
    "proto", "src", "dst", "src6", "dst6", "src_name", "dst_name", "sport", "dport", "icmp_id",
    "outer_src", "outer_dst", "outer_src6", "outer_dst6", "outer_src_name", "outer_dst_name", "outer_sport",
    "outer_dport", "tunnel", "arp_op", "arp_spa", "arp_tpa", "journey", "hop", "row",
};

/* Tuples are hashed a block of rows at a time, a column at a time: each column's values and null flags put in
 * arrays, and the words of each end, the choices (envelope or not, ARP or not) and the hashes made in loops over
 * the block (a value at a time, the row's fields one after the other, took 1.2x the CPU time). */
#define BLOCK 1024

typedef struct {
    uint32_t v[BLOCK], w[BLOCK];
    uint8_t ok[BLOCK], okw[BLOCK], inside[BLOCK], bare[BLOCK];
    /* the words of each end (`end_words`): the source's, the destination's, an envelope's end */
    uint64_t src_a[BLOCK], src_b[BLOCK], dst_a[BLOCK], dst_b[BLOCK], out_a[BLOCK], out_b[BLOCK];
    uint64_t tuple[BLOCK];
} Scratch;

/* Rows [start, start + n) of the stretch of a column into `v` (0 where null) and `ok` (1 where not); whether the
 * column is there at all (not all null): if not, `v` and `ok` are left as they were. The null flags 8 at a time,
 * a byte of the bitmap each. */
static int load(const Column *c, int64_t start, int n, uint32_t *restrict v, uint8_t *restrict ok) {
    if (!c->values)
        return 0;
    int i = 0;
    int64_t first = c->bit + start;
    switch (c->bits) {  /* Arrow's buffers are aligned to their values' size at least; 8 at a time: vectorised */
        case 8: {
            const uint8_t *p = c->values + first;
            for (; i + 8 <= n; i += 8)
                for (int k = 0; k < 8; k++) v[i + k] = p[i + k];
            for (; i < n; i++) v[i] = p[i];
            break;
        }
        case 16: {
            const uint16_t *p = (const uint16_t *)c->values + first;
            for (; i + 8 <= n; i += 8)
                for (int k = 0; k < 8; k++) v[i + k] = p[i + k];
            for (; i < n; i++) v[i] = p[i];
            break;
        }
        default:
            memcpy(v, (const uint32_t *)c->values + first, n * sizeof *v);
    }
    if (n < BLOCK) {  /* a block's rows past the stretch's end: what follows works whole blocks */
        memset(v + n, 0, (BLOCK - n) * sizeof *v);
        memset(ok + n, 0, BLOCK - n);
    }
    if (!c->validity) {
        memset(ok, 1, n);
        return 1;
    }
    const uint8_t *bits = c->validity;
    int64_t b = c->bit + start;
    for (i = 0; i < n && (b + i) & 7; i++) {
        ok[i] = (bits[(b + i) >> 3] >> ((b + i) & 7)) & 1;
        v[i] &= -(uint32_t)ok[i];
    }
    for (; i + 8 <= n; i += 8) {
        uint8_t byte = bits[(b + i) >> 3];
        uint64_t spread = SPREAD[byte];
        memcpy(ok + i, &spread, 8);
        if (!byte)
            memset(v + i, 0, 8 * sizeof *v);
        else if (byte != 0xff)
            for (int k = 0; k < 8; k++) v[i + k] &= -(uint32_t)ok[i + k];
    }
    for (; i < n; i++) {
        ok[i] = (bits[(b + i) >> 3] >> ((b + i) & 7)) & 1;
        v[i] &= -(uint32_t)ok[i];
    }
    return 1;
}

/* The words of one end of each row (an injective layout of its fields, nulls flagged): a = its IPv4 address | its
 * IPv6 address or host name << 32 (a category code, coalesced: one text has one code in every column), b = its
 * port | the three null flags << 16 (the port: ICMP echo's id where there is none, `port2` >= 0). `inside` (if
 * given) gets whether the address, IPv6 address or port was there. */
static void end_words(const Column *col, int ip, int ip6, int name, int port, int port2, int64_t start, int n,
                      Scratch *s, uint64_t *restrict a, uint64_t *restrict b, uint8_t *restrict inside) {
    uint32_t *restrict v = s->v, *restrict w = s->w;
    uint8_t *restrict ok = s->ok, *restrict okw = s->okw;
    if (load(&col[ip], start, n, v, ok)) {
        for (int i = 0; i < BLOCK; i++) {
            a[i] = v[i];
            b[i] = (uint64_t)ok[i] << 16;
        }
        if (inside)
            for (int i = 0; i < BLOCK; i++) inside[i] |= ok[i];
    } else {
        memset(a, 0, BLOCK * sizeof *a);
        memset(b, 0, BLOCK * sizeof *b);
    }
    int has6 = load(&col[ip6], start, n, v, ok);
    if (has6 && inside)
        for (int i = 0; i < BLOCK; i++) inside[i] |= ok[i];
    if (load(&col[name], start, n, w, okw)) {
        if (!has6) {
            memset(v, 0, BLOCK * sizeof *v);
            memset(ok, 0, BLOCK);
            has6 = 1;
        }
        for (int i = 0; i < BLOCK; i++) {
            v[i] = ok[i] ? v[i] : w[i];
            ok[i] |= okw[i];
        }
    }
    if (has6)
        for (int i = 0; i < BLOCK; i++) {
            a[i] |= (uint64_t)v[i] << 32;
            b[i] |= (uint64_t)ok[i] << 17;
        }
    if (!load(&col[port], start, n, v, ok)) {
        memset(v, 0, BLOCK * sizeof *v);
        memset(ok, 0, BLOCK);
    } else if (inside)
        for (int i = 0; i < BLOCK; i++) inside[i] |= ok[i];
    uint8_t missing = 0;
    if (port2 >= 0)
        for (int i = 0; i < BLOCK; i++) missing |= !ok[i];
    if (missing && load(&col[port2], start, n, w, okw))
        for (int i = 0; i < BLOCK; i++) {
            v[i] = ok[i] ? v[i] : w[i];
            ok[i] |= okw[i];
        }
    for (int i = 0; i < BLOCK; i++) b[i] |= v[i] | (uint64_t)ok[i] << 18;
}

/* The tuple ids of rows [start, start + n) of the stretch into `s->tuple`: ARP by its two addresses, an envelope
 * that shows no address of what it carries by its own ends, anything else by its protocol and ends (ICMP echo: its
 * id as the port); the ends either way round (their hashes added). What `flows.tuple_id` keys, the same rows equal.
 * Whether one of the rows is such an envelope, not of ARP (`flows._envelopes_as_seen` shows their ends). */
static int block_tuples(const Column *col, int64_t start, int n, Scratch *s) {
    memset(s->inside, 0, BLOCK);
    end_words(col, SRC, SRC6, SRC_NAME, SPORT, ICMP_ID, start, n, s, s->src_a, s->src_b, s->inside);
    end_words(col, DST, DST6, DST_NAME, DPORT, ICMP_ID, start, n, s, s->dst_a, s->dst_b, s->inside);
    int bare = 0;
    if (load(&col[TUNNEL], start, n, s->v, s->ok)) {
        for (int i = 0; i < BLOCK; i++) {
            s->bare[i] = !s->inside[i] && s->v[i];
            bare |= s->bare[i];
        }
    }
    if (bare) {  /* an envelope that shows nothing inside: its own ends */
        end_words(col, OUTER_SRC, OUTER_SRC6, OUTER_SRC_NAME, OUTER_SPORT, -1, start, n, s, s->out_a, s->out_b, NULL);
        for (int i = 0; i < BLOCK; i++)
            if (s->bare[i]) {
                s->src_a[i] = s->out_a[i];
                s->src_b[i] = s->out_b[i];
            }
        end_words(col, OUTER_DST, OUTER_DST6, OUTER_DST_NAME, OUTER_DPORT, -1, start, n, s, s->out_a, s->out_b, NULL);
        for (int i = 0; i < BLOCK; i++)
            if (s->bare[i]) {
                s->dst_a[i] = s->out_a[i];
                s->dst_b[i] = s->out_b[i];
            }
    }
    if (!load(&col[PROTO], start, n, s->v, s->ok)) {
        memset(s->v, 0, BLOCK * sizeof *s->v);
        memset(s->ok, 0, BLOCK);
    }
    for (int i = 0; i < BLOCK; i++) {
        uint64_t ends = hash2(s->src_a[i], s->src_b[i], S2) + hash2(s->dst_a[i], s->dst_b[i], S2);
        s->tuple[i] = hash2(ends, s->v[i] | (uint64_t)s->ok[i] << 8 | 1 << 9, S4);
    }
    int arp = 0;
    if (load(&col[ARP_OP], start, n, s->v, s->ok))
        for (int i = 0; i < BLOCK; i++) arp |= s->ok[i];
    if (arp) {
        memcpy(s->inside, s->ok, BLOCK);  /* the ARP rows */
        if (!load(&col[ARP_SPA], start, n, s->v, s->ok)) {
            memset(s->v, 0, BLOCK * sizeof *s->v);
            memset(s->ok, 0, BLOCK);
        }
        if (!load(&col[ARP_TPA], start, n, s->w, s->okw)) {
            memset(s->w, 0, BLOCK * sizeof *s->w);
            memset(s->okw, 0, BLOCK);
        }
        for (int i = 0; i < BLOCK; i++)
            if (s->inside[i]) {
                uint64_t ends = hash2(s->v[i] | (uint64_t)s->ok[i] << 32, 1, S3) + hash2(s->w[i] | (uint64_t)s->okw[i] << 32, 1, S3);
                s->tuple[i] = hash2(ends, 2 << 9, S4);
            }
    }
    int shown = 0;  /* `s->inside`: the ARP rows if there were any */
    for (int i = 0; bare && i < n; i++)
        shown |= s->bare[i] && !(arp && s->inside[i]);
    return shown;
}

/* A growing array of (journey, tuple): the sightings whose tuple differs from their journey's first; with `rows`,
 * each one's row too (`at`). */
typedef struct {
    uint32_t *journey;
    uint64_t *tuple;
    int64_t *at;
    int rows;
    Py_ssize_t count, room;
} Rewritten;

static int rewritten_add(Rewritten *r, uint32_t journey, uint64_t tuple, int64_t at) {
    if (r->count == r->room) {
        Py_ssize_t room = r->room ? r->room * 2 : 1024;
        uint32_t *j = PyMem_RawRealloc(r->journey, room * sizeof *j);
        if (j)
            r->journey = j;
        uint64_t *t = PyMem_RawRealloc(r->tuple, room * sizeof *t);
        if (t)
            r->tuple = t;
        int64_t *a = r->rows ? PyMem_RawRealloc(r->at, room * sizeof *a) : NULL;
        if (a)
            r->at = a;
        if (!j || !t || (r->rows && !a))
            return -1;
        r->room = room;
    }
    r->journey[r->count] = journey;
    if (r->rows)
        r->at[r->count] = at;
    r->tuple[r->count++] = tuple;
    return 0;
}

/* tuple_scan(columns, seen, leg, first_journey, first_tuple, first_row, tuples, start, stop, before) -> (journeys,
 * firsts, rewritten journeys, rewritten tuples, rewritten rows, bare): one pass over rows [start, stop) of a correlated
 * table. `columns`: a tuple of Arrow stream capsules (None: all null) in the order of NAMES, unsigned integers
 * (categories by their codes). Journeys must be numbered 0.. by first row, `before` of them before `start`: `seen`
 * (uint64, one a journey) gets each journey's tuple at its first row; `leg` (bool, one a row of the table) marks each
 * journey's first row and the rows whose tuple differs from it, which are also returned (uint32 journeys, uint64
 * tuples, as bytes); the first hops (hop 0) go to `first_*` (uint32, uint64, uint32; room for one a journey), their
 * count returned; `tuples` (uint64, one a row of the table, or None) gets every row's tuple; `bare`: whether an
 * envelope (not of ARP) shows nothing of what it carries. A row of a journey begun before `start` is not compared
 * with its first (another thread may be scanning it): it is returned among the rewritten, its leg marked, for the
 * caller to tell. With `before`, the rewritten rows' numbers (int64 bytes; else b""). Journeys after the last one
 * numbered are how many the rows [0, stop) begin. */
static PyObject *tuple_scan(PyObject *self, PyObject *args) {
    PyObject *columns, *tuples_obj;
    Py_buffer seen_, leg_, fj_, ft_, fr_, tuples_ = {0};
    Py_ssize_t start, stop, before;
    if (!PyArg_ParseTuple(args, "O!w*w*w*w*w*Onnn", &PyTuple_Type, &columns, &seen_, &leg_, &fj_, &ft_, &fr_, &tuples_obj,
                          &start, &stop, &before))
        return NULL;
    PyObject *result = NULL;
    Column col[COLUMNS];
    memset(col, 0, sizeof col);
    Rewritten rewritten = {0};
    Scratch *scratch = NULL;
    Py_ssize_t rows = leg_.len, journeys = seen_.len / 8, room = fj_.len / 4;
    if (tuples_obj != Py_None && PyObject_GetBuffer(tuples_obj, &tuples_, PyBUF_WRITABLE) < 0)
        goto done;
    if (PyTuple_GET_SIZE(columns) != COLUMNS) {
        PyErr_Format(PyExc_ValueError, "%d columns wanted", COLUMNS);
        goto done;
    }
    if (ft_.len != room * 8 || fr_.len != room * 4 || (tuples_.buf && tuples_.len != rows * 8)) {
        PyErr_SetString(PyExc_ValueError, "first_* or tuples of the wrong sizes");
        goto done;
    }
    if (start < 0 || start > stop || stop > rows || before < 0 || before > journeys) {
        PyErr_SetString(PyExc_ValueError, "rows or journeys out of range");
        goto done;
    }
    rewritten.rows = before > 0;
    for (int k = 0; k < COLUMNS; k++)
        if (column_load(PyTuple_GET_ITEM(columns, k), rows, &col[k], NAMES[k], "CSI") < 0)
            goto done;
    for (int k = JOURNEY; k <= ROW; k++)
        if (col[k].bits != 32) {
            PyErr_Format(PyExc_ValueError, "column %s: not uint32", NAMES[k]);
            goto done;
        }
    scratch = PyMem_RawMalloc(sizeof *scratch);
    if (!scratch) {
        PyErr_NoMemory();
        goto done;
    }
    uint64_t *seen = seen_.buf, *ft = ft_.buf, *out = tuples_.buf;
    uint8_t *leg = leg_.buf;
    uint32_t *fj = fj_.buf, *fr = fr_.buf;
    int64_t high = (int64_t)before - 1, done = start;
    for (int k = 0; k < COLUMNS; k++)
        col[k].pos = start;  /* (sought from the first chunk on) */
    int bare = 0;
    Py_ssize_t firsts = 0;
    const char *bad = NULL;
    Py_BEGIN_ALLOW_THREADS
    while (done < stop && !bad) {
        int64_t stretch = columns_seek(col, COLUMNS, stop - done);
        if (stretch <= 0) {
            bad = "a column ends early";
            break;
        }
        for (int k = JOURNEY; k <= ROW; k++)
            if (!col[k].values || col[k].validity)
                bad = "journey, hop or row with nulls";
        const uint32_t *journey = (const uint32_t *)col[JOURNEY].values + col[JOURNEY].bit,
                       *hop = (const uint32_t *)col[HOP].values + col[HOP].bit, *row = (const uint32_t *)col[ROW].values + col[ROW].bit;
        for (int64_t from = 0; from < stretch && !bad; from += BLOCK) {
            int n = stretch - from < BLOCK ? (int)(stretch - from) : BLOCK;
            bare |= block_tuples(col, from, n, scratch);
            if (out)
                memcpy(out + done + from, scratch->tuple, n * sizeof *out);
            for (int b = 0; b < n; b++) {
                int64_t i = from + b;
                uint64_t t = scratch->tuple[b];
                uint32_t j = journey[i];
                if ((int64_t)j > high) {  /* a journey's first row */
                    if ((int64_t)j != high + 1 || j >= journeys) {
                        bad = "journeys are not numbered by first row";
                        break;
                    }
                    high = j;
                    seen[j] = t;
                    leg[done + i] = 1;
                } else if ((Py_ssize_t)j < before || t != seen[j]) {  /* begun before `start`, or NAT rewrote it */
                    leg[done + i] = 1;
                    if (rewritten_add(&rewritten, j, t, done + i) < 0) {
                        bad = "";
                        break;
                    }
                } else
                    leg[done + i] = 0;
                if (hop[i] == 0) {
                    if (firsts == room) {
                        bad = "more first hops than journeys";
                        break;
                    }
                    fj[firsts] = j;
                    ft[firsts] = t;
                    fr[firsts++] = row[i];
                }
            }
        }
        for (int k = 0; k < COLUMNS; k++)
            col[k].pos += stretch;
        done += stretch;
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        say_bad(bad);
        goto done;
    }
    result = Py_BuildValue("nny#y#y#O", (Py_ssize_t)(high + 1), firsts, rewritten.count ? (const char *)rewritten.journey : "",
                           rewritten.count * 4, rewritten.count ? (const char *)rewritten.tuple : "", rewritten.count * 8,
                           rewritten.rows && rewritten.count ? (const char *)rewritten.at : "", rewritten.rows ? rewritten.count * 8 : 0,
                           bare ? Py_True : Py_False);
done:
    for (int k = 0; k < COLUMNS; k++)
        column_free(&col[k]);
    PyMem_RawFree(rewritten.journey);
    PyMem_RawFree(rewritten.tuple);
    PyMem_RawFree(rewritten.at);
    PyMem_RawFree(scratch);
    PyBuffer_Release(&seen_);
    PyBuffer_Release(&leg_);
    PyBuffer_Release(&fj_);
    PyBuffer_Release(&ft_);
    PyBuffer_Release(&fr_);
    if (tuples_.buf)
        PyBuffer_Release(&tuples_);
    return result;
}

/* An open-addressing table of uint64 keys and their numbers, probed linearly; `number` 0: an empty slot, else the
 * key's number + 1. */
typedef struct {
    uint64_t *key;
    uint32_t *number;
    size_t size;
} Table;

static inline size_t slot_of(uint64_t key, size_t size) { return (size_t)(mix(key ^ S0, S1) & (size - 1)); }

static int table_make(Table *t, size_t size) {
    t->key = PyMem_RawMalloc(size * sizeof *t->key);
    t->number = PyMem_RawCalloc(size, sizeof *t->number);
    t->size = size;
    return t->key && t->number ? 0 : -1;
}

static void table_free(Table *t) {
    PyMem_RawFree(t->key);
    PyMem_RawFree(t->number);
}

/* number_first_seen(keys, numbers) -> count: each of the uint64 `keys` numbered 0.. by its first appearance into
 * `numbers` (uint32); how many distinct keys. The table grows with the distinct keys (at most half full), not with
 * the keys: the first hops of 2.7M journeys are 133k conversations at 10M. */
static PyObject *number_first_seen(PyObject *self, PyObject *args) {
    Py_buffer keys_, numbers_;
    if (!PyArg_ParseTuple(args, "y*w*", &keys_, &numbers_))
        return NULL;
    Py_ssize_t n = keys_.len / 8;
    uint32_t distinct = 0;
    PyObject *result = NULL;
    Table table = {0};
    int failed = 0;
    if (numbers_.len != n * 4 || (uint64_t)n >= UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "numbers holds not one uint32 a key, or 2**32 keys or more");
        goto done;
    }
    const uint64_t *keys = keys_.buf;
    uint32_t *numbers = numbers_.buf;
    Py_BEGIN_ALLOW_THREADS
    size_t size = 1024;  /* room for a conversation every 16 keys from the start: grown a step at a time from 1024
                          * slots, the 2.7M first hops at 10M took twice the time (the copies, and their fresh pages) */
    while (size < (size_t)n / 8)
        size <<= 1;
    failed = table_make(&table, size) < 0;
    for (Py_ssize_t i = 0; i < n && !failed; i++) {
        uint64_t k = keys[i];
        size_t mask = table.size - 1, s = slot_of(k, table.size);
        while (table.number[s] && table.key[s] != k)
            s = (s + 1) & mask;
        if (table.number[s]) {
            numbers[i] = table.number[s] - 1;
            continue;
        }
        table.key[s] = k;
        table.number[s] = ++distinct;
        numbers[i] = distinct - 1;
        if ((size_t)distinct * 2 > table.size) {  /* into a table twice the size */
            Table grown;
            if (table_make(&grown, table.size * 2) < 0) {
                table_free(&grown);
                failed = 1;
                break;
            }
            for (size_t from = 0; from < table.size; from++) {
                if (!table.number[from])
                    continue;
                size_t to = slot_of(table.key[from], grown.size);
                while (grown.number[to])
                    to = (to + 1) & (grown.size - 1);
                grown.key[to] = table.key[from];
                grown.number[to] = table.number[from];
            }
            table_free(&table);
            table = grown;
        }
    }
    Py_END_ALLOW_THREADS
    if (failed)
        PyErr_NoMemory();
    else
        result = PyLong_FromUnsignedLong(distinct);
done:
    table_free(&table);
    PyBuffer_Release(&keys_);
    PyBuffer_Release(&numbers_);
    return result;
}

/* gather(column, table, out): out[i] = table[column[i]] for a uint32 column without nulls (an Arrow stream
 * capsule) and a uint32 `table`: each sighting's flow from its journey's, read from the column's chunks in place
 * (numpy took them a slice at a time, each slice's chunks copied into one array first). */
static PyObject *gather(PyObject *self, PyObject *args) {
    PyObject *capsule;
    Py_buffer table_, out_;
    if (!PyArg_ParseTuple(args, "Oy*w*", &capsule, &table_, &out_))
        return NULL;
    Column c;
    Py_ssize_t rows = out_.len / 4, size = table_.len / 4;
    int bad = 0;
    if (column_load(capsule, rows, &c, "gathered", "CSI") == 0) {
        if (c.bits != 32) {
            PyErr_SetString(PyExc_ValueError, "the gathered column is not uint32");
            bad = 1;
        }
        const uint32_t *table = table_.buf;
        uint32_t *out = out_.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t at = 0, k = 0; k < c.count && !bad; k++) {
            const struct ArrowArray *a = &c.chunks[k];
            if (!a->length)
                continue;
            if (a->null_count != 0 && a->buffers[0]) {
                bad = 2;
                break;
            }
            const uint32_t *index = (const uint32_t *)a->buffers[1] + a->offset;
            for (int64_t i = 0; i < a->length; i++) {
                uint32_t j = index[i];
                if (j >= size) {
                    bad = 2;
                    break;
                }
                out[at + i] = table[j];
            }
            at += a->length;
        }
        Py_END_ALLOW_THREADS
        if (bad == 2)
            PyErr_SetString(PyExc_ValueError, "a null in the gathered column, or a value outside the table");
        column_free(&c);
    } else
        bad = 1;
    PyBuffer_Release(&table_);
    PyBuffer_Release(&out_);
    if (bad)
        return NULL;
    Py_RETURN_NONE;
}

/* the columns `leg_scan` is given, in this order: a conversation's legs as `flows._legs` shows them */
enum { L_FLOW, L_SRC, L_DST, L_SRC6, L_DST6, L_SRC_NAME, L_DST_NAME, L_SPORT, L_DPORT, L_ARP_SPA, L_ARP_TPA, LEG_COLUMNS };
static const char *LEG_NAMES[LEG_COLUMNS] = {
    "flow", "src", "dst", "src6", "dst6", "src_name", "dst_name", "sport", "dport", "arp_spa", "arp_tpa",
};

/* A row's values of those columns (0 where null) and their null flags (bit k: column k there): 48 bytes, no padding. */
typedef struct {
    uint32_t v[LEG_COLUMNS];
    uint32_t ok;
} LegKey;

/* The value of row `i` of a column's current stretch into `v`: whether it is there (not null). */
static inline int cell(const Column *c, int64_t i, uint32_t *v) {
    if (!c->values)
        return 0;
    if (c->validity) {
        int64_t b = c->bit + i;
        if (!((c->validity[b >> 3] >> (b & 7)) & 1))
            return 0;
    }
    int64_t j = c->bit + i;
    *v = c->bits == 8 ? c->values[j] : c->bits == 16 ? ((const uint16_t *)c->values)[j] : ((const uint32_t *)c->values)[j];
    return 1;
}

static inline uint64_t leg_hash(const LegKey *k) {
    uint64_t w[6];
    memcpy(w, k, sizeof w);
    return hash2(hash2(hash2(w[0], w[1], S2) ^ w[2], w[3], S3) ^ w[4], w[5], S4);
}

/* the columns of a leg's two ends, each beside the other's: a leg's mirror has them swapped */
static const int MIRRORED[][2] = {{L_SRC, L_DST}, {L_SRC6, L_DST6}, {L_SRC_NAME, L_DST_NAME}, {L_SPORT, L_DPORT},
                                  {L_ARP_SPA, L_ARP_TPA}};

/* `k` or its mirror (ends swapped, their null flags too), the same for both: swapped where the first pair of MIRRORED
 * whose two values (with their null flags) differ has the greater first: most often the first pair decides (the whole
 * key made mirrored and compared with it: `leg_scan` of 0.42M first sightings at 2M 20 -> 12.6 ms). */
static inline void leg_unmirrored(LegKey *k) {
    const size_t pairs = sizeof MIRRORED / sizeof *MIRRORED;
    int swap = 0;
    for (size_t e = 0; e < pairs; e++) {
        int a = MIRRORED[e][0], b = MIRRORED[e][1];
        uint64_t va = (uint64_t)((k->ok >> a) & 1) << 32 | k->v[a], vb = (uint64_t)((k->ok >> b) & 1) << 32 | k->v[b];
        if (va != vb) {
            swap = va > vb;
            break;
        }
    }
    if (!swap)
        return;
    uint32_t ok = k->ok;
    for (size_t e = 0; e < pairs; e++) {
        int a = MIRRORED[e][0], b = MIRRORED[e][1];
        uint32_t v = k->v[a];
        k->v[a] = k->v[b];
        k->v[b] = v;
        ok = (ok & ~(1u << a | 1u << b)) | ((k->ok >> b) & 1) << a | ((k->ok >> a) & 1) << b;
    }
    k->ok = ok;
}

/* The distinct rows seen so far (an open-addressing table of their indexes + 1, probed linearly, at most half full)
 * and where each was first seen. */
typedef struct {
    LegKey *key;
    int64_t *position;
    uint32_t *slot;
    size_t count, room, size;
} Distinct;

static int distinct_grow(Distinct *d) {
    size_t room = d->room ? d->room * 2 : 1024, size = room * 2;
    LegKey *key = PyMem_RawRealloc(d->key, room * sizeof *key);
    if (key)
        d->key = key;
    int64_t *position = PyMem_RawRealloc(d->position, room * sizeof *position);
    if (position)
        d->position = position;
    uint32_t *slot = PyMem_RawCalloc(size, sizeof *slot);
    if (!key || !position || !slot || room >= UINT32_MAX) {
        PyMem_RawFree(slot);
        return -1;
    }
    for (size_t k = 0; k < d->count; k++) {  /* the keys into the larger table */
        size_t s = (size_t)leg_hash(&d->key[k]) & (size - 1);
        while (slot[s])
            s = (s + 1) & (size - 1);
        slot[s] = (uint32_t)k + 1;
    }
    PyMem_RawFree(d->slot);
    d->slot = slot;
    d->room = room;
    d->size = size;
    return 0;
}

/* Where `k` is kept (if new, first seen at `position`); -1 without the memory to keep it. */
static int64_t distinct_add(Distinct *d, const LegKey *k, int64_t position) {
    if (d->count == d->room && distinct_grow(d) < 0)
        return -1;
    size_t s = (size_t)leg_hash(k) & (d->size - 1);
    for (; d->slot[s]; s = (s + 1) & (d->size - 1))
        if (!memcmp(&d->key[d->slot[s] - 1], k, sizeof *k))
            return d->slot[s] - 1;
    d->key[d->count] = *k;
    d->position[d->count] = position;
    d->slot[s] = (uint32_t)++d->count;
    return (int64_t)d->count - 1;
}

/* A block of rows of the legs' columns, each column's values (0 where null) and null flags side by side (`load`). */
typedef struct {
    uint32_t v[LEG_COLUMNS][BLOCK];
    uint8_t ok[LEG_COLUMNS][BLOCK];
} LegBlock;

/* Each flow's last key seen, by the flow's low bits (a row most often repeats one): checked before the table. */
#define RECENT (1 << 16)

/* The distinct rows of `n` rows from `start` of the columns' current stretch into `d` (leg_scan); `leg`: the block's
 * marks, if any. -1 without the memory. */
static int leg_block(const Column *col, int64_t start, int n, LegBlock *b, const uint8_t *leg, unsigned long long limit,
                     int mirror, Distinct *d, uint32_t *recent, int64_t position) {
    for (int c = 0; c < LEG_COLUMNS; c++)
        if (!load(&col[c], start, n, b->v[c], b->ok[c])) {
            memset(b->v[c], 0, sizeof b->v[c]);
            memset(b->ok[c], 0, sizeof b->ok[c]);
        }
    for (int i = 0; i < n; i++) {
        if ((leg && !leg[i]) || !b->ok[L_FLOW][i] || b->v[L_FLOW][i] >= limit)
            continue;
        LegKey k = {.ok = 0};
        for (int c = 0; c < LEG_COLUMNS; c++) {
            k.v[c] = b->v[c][i];
            k.ok |= (uint32_t)b->ok[c][i] << c;
        }
        if (mirror)
            leg_unmirrored(&k);
        uint32_t *last = &recent[k.v[L_FLOW] & (RECENT - 1)];
        if (*last && !memcmp(&d->key[*last - 1], &k, sizeof k))
            continue;
        int64_t at = distinct_add(d, &k, position + i);
        if (at < 0)
            return -1;
        *last = (uint32_t)at + 1;
    }
    return 0;
}

/* leg_scan(columns, rows, leg, limit, mirror) -> positions: the first row of each distinct combination of the legs'
 * columns among the `rows` rows whose flow is below `limit` and that `leg` marks (bool, one a row; None: every row), in
 * row order (int64, as bytes): what `unique(maintain_order=True)` of those rows keeps, without the rows being copied;
 * with `mirror`, a row and its mirror (the ends swapped) are one. `columns`: a tuple of Arrow stream capsules (None:
 * all null) in the order of LEG_NAMES, unsigned integers (categories by their codes); each combination compared whole
 * (no hash stands for it). */
static PyObject *leg_scan(PyObject *self, PyObject *args) {
    PyObject *columns, *leg_obj;
    Py_ssize_t rows;
    unsigned long long limit;
    int mirror;
    if (!PyArg_ParseTuple(args, "O!nOKp", &PyTuple_Type, &columns, &rows, &leg_obj, &limit, &mirror))
        return NULL;
    Py_buffer leg_ = {0};
    PyObject *result = NULL;
    Column col[LEG_COLUMNS];
    memset(col, 0, sizeof col);
    Distinct d = {0};
    LegBlock *block = NULL;
    uint32_t *recent = NULL;
    if (leg_obj != Py_None && PyObject_GetBuffer(leg_obj, &leg_, PyBUF_SIMPLE) < 0)
        goto done;
    if (PyTuple_GET_SIZE(columns) != LEG_COLUMNS || rows < 0 || (leg_.buf && leg_.len != rows)) {
        PyErr_Format(PyExc_ValueError, "%d columns and one leg flag a row wanted", LEG_COLUMNS);
        goto done;
    }
    for (int k = 0; k < LEG_COLUMNS; k++)
        if (column_load(PyTuple_GET_ITEM(columns, k), rows, &col[k], LEG_NAMES[k], "CSI") < 0)
            goto done;
    block = PyMem_RawMalloc(sizeof *block);
    recent = PyMem_RawCalloc(RECENT, sizeof *recent);
    if (!block || !recent) {
        PyErr_NoMemory();
        goto done;
    }
    const uint8_t *leg = leg_.buf;
    int64_t done = 0;
    const char *bad = NULL;
    Py_BEGIN_ALLOW_THREADS
    while (done < rows && !bad) {
        int64_t stretch = columns_seek(col, LEG_COLUMNS, rows - done);
        if (stretch <= 0) {
            bad = "a column ends early";
            break;
        }
        for (int64_t i = 0; i < stretch && !bad; i += BLOCK) {
            int n = stretch - i < BLOCK ? (int)(stretch - i) : BLOCK;
            if (leg_block(col, i, n, block, leg ? leg + done + i : NULL, limit, mirror, &d, recent, done + i) < 0)
                bad = "";
        }
        for (int k = 0; k < LEG_COLUMNS; k++)
            col[k].pos += stretch;
        done += stretch;
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        say_bad(bad);
        goto done;
    }
    result = PyBytes_FromStringAndSize(d.count ? (const char *)d.position : "", (Py_ssize_t)(d.count * sizeof *d.position));
done:
    for (int k = 0; k < LEG_COLUMNS; k++)
        column_free(&col[k]);
    PyMem_RawFree(d.key);
    PyMem_RawFree(d.position);
    PyMem_RawFree(d.slot);
    PyMem_RawFree(block);
    PyMem_RawFree(recent);
    if (leg_.buf)
        PyBuffer_Release(&leg_);
    return result;
}

/* the columns `late_segments` is given, in this order */
enum { O_FLOW, O_SRC, O_SRC6, O_SPORT, O_PROTO, O_SEQ, O_PAYLOAD_LEN, ORDER_COLUMNS };
static const char *ORDER_NAMES[ORDER_COLUMNS] = {"flow", "src", "src6", "sport", "proto", "seq", "payload_len"};

/* A sender of a flow (its address, IPv6 address by its code, port, their null flags) and how far its sequence
 * numbers went: `base` its first segment's, `high` the highest end of its segments relative to it. */
typedef struct {
    uint32_t flow, src, src6, port;  /* port: the port | the three null flags << 16 */
} SenderKey;

typedef struct {
    SenderKey key;
    uint32_t base;
    uint64_t high;
} Sender;

typedef struct {
    Sender *sender;
    uint32_t *slot;  /* an open-addressing table of the senders' indexes + 1, probed linearly, at most half full */
    size_t count, size;
} Senders;

static inline uint64_t sender_hash(const SenderKey *k) {
    return hash2((uint64_t)k->flow | (uint64_t)k->src << 32, (uint64_t)k->src6 | (uint64_t)k->port << 32, S2);
}

static int senders_grow(Senders *t) {
    size_t size = t->size ? t->size * 2 : 2048;
    Sender *sender = PyMem_RawRealloc(t->sender, size / 2 * sizeof *sender);
    if (sender)
        t->sender = sender;
    uint32_t *slot = PyMem_RawCalloc(size, sizeof *slot);
    if (!sender || !slot || size / 2 >= UINT32_MAX) {
        PyMem_RawFree(slot);
        return -1;
    }
    for (size_t k = 0; k < t->count; k++) {
        size_t s = (size_t)sender_hash(&t->sender[k].key) & (size - 1);
        while (slot[s])
            s = (s + 1) & (size - 1);
        slot[s] = (uint32_t)k + 1;
    }
    PyMem_RawFree(t->slot);
    t->slot = slot;
    t->size = size;
    return 0;
}

/* The sender of `k`, added (with its first segment's `seq`) if new; NULL without the memory for it. */
static Sender *senders_find(Senders *t, const SenderKey *k, uint32_t seq) {
    if (t->count * 2 >= t->size && senders_grow(t) < 0)
        return NULL;
    size_t s = (size_t)sender_hash(k) & (t->size - 1);
    for (; t->slot[s]; s = (s + 1) & (t->size - 1)) {
        Sender *found = &t->sender[t->slot[s] - 1];
        if (!memcmp(&found->key, k, sizeof *k))
            return found;
    }
    Sender *added = &t->sender[t->count];
    added->key = *k;
    added->base = seq;
    added->high = 0;
    t->slot[s] = (uint32_t)++t->count;
    return added;
}

/* late_segments(columns, rows, resent) -> flows: the TCP data segments (payload, not re-sent: `resent`, bool one a
 * row, or None) that start below the highest sequence end their sender had sent before them, relative to its first
 * segment's (`flows._out_of_order`), in row order: the flow of each (uint32, as bytes). `columns`: Arrow stream
 * capsules (None: all null) in the order of ORDER_NAMES, unsigned integers (categories by their codes); rows in time
 * order. Senders are told apart by their values (no hash stands for them). */
static PyObject *late_segments(PyObject *self, PyObject *args) {
    PyObject *columns, *resent_obj;
    Py_ssize_t rows;
    if (!PyArg_ParseTuple(args, "O!nO", &PyTuple_Type, &columns, &rows, &resent_obj))
        return NULL;
    Py_buffer resent_ = {0};
    PyObject *result = NULL;
    Column col[ORDER_COLUMNS];
    memset(col, 0, sizeof col);
    Senders senders = {0};
    uint32_t *late = NULL;
    Py_ssize_t lates = 0, room = 0;
    if (resent_obj != Py_None && PyObject_GetBuffer(resent_obj, &resent_, PyBUF_SIMPLE) < 0)
        goto done;
    if (PyTuple_GET_SIZE(columns) != ORDER_COLUMNS || rows < 0 || (resent_.buf && resent_.len != rows)) {
        PyErr_Format(PyExc_ValueError, "%d columns and one flag a row wanted", ORDER_COLUMNS);
        goto done;
    }
    for (int k = 0; k < ORDER_COLUMNS; k++)
        if (column_load(PyTuple_GET_ITEM(columns, k), rows, &col[k], ORDER_NAMES[k], "CSI") < 0)
            goto done;
    const uint8_t *resent = resent_.buf;
    int64_t done = 0;
    const char *bad = NULL;
    Py_BEGIN_ALLOW_THREADS
    while (done < rows && !bad) {
        int64_t stretch = columns_seek(col, ORDER_COLUMNS, rows - done);
        if (stretch <= 0) {
            bad = "a column ends early";
            break;
        }
        for (int64_t i = 0; i < stretch; i++) {
            uint32_t proto, seq, length, port;
            SenderKey k;
            if ((resent && resent[done + i]) || !cell(&col[O_PROTO], i, &proto) || proto != 6 || !cell(&col[O_SEQ], i, &seq)
                || !cell(&col[O_PAYLOAD_LEN], i, &length) || !length || !cell(&col[O_FLOW], i, &k.flow))
                continue;
            k.src = k.src6 = port = 0;
            k.port = (uint32_t)cell(&col[O_SRC], i, &k.src) << 16 | (uint32_t)cell(&col[O_SRC6], i, &k.src6) << 17;
            k.port |= (uint32_t)cell(&col[O_SPORT], i, &port) << 18 | (port & 0xffff);
            Sender *sender = senders_find(&senders, &k, seq);
            if (!sender) {
                bad = "";
                break;
            }
            uint64_t rel = (uint32_t)(seq - sender->base);
            if (rel < sender->high) {
                if (lates == room) {
                    room = room ? room * 2 : 1024;
                    uint32_t *grown = PyMem_RawRealloc(late, room * sizeof *late);
                    if (!grown) {
                        bad = "";
                        break;
                    }
                    late = grown;
                }
                late[lates++] = k.flow;
            }
            if (rel + length > sender->high)
                sender->high = rel + length;
        }
        for (int k = 0; k < ORDER_COLUMNS; k++)
            col[k].pos += stretch;
        done += stretch;
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        say_bad(bad);
        goto done;
    }
    result = PyBytes_FromStringAndSize(lates ? (const char *)late : "", lates * (Py_ssize_t)sizeof *late);
done:
    for (int k = 0; k < ORDER_COLUMNS; k++)
        column_free(&col[k]);
    PyMem_RawFree(senders.sender);
    PyMem_RawFree(senders.slot);
    PyMem_RawFree(late);
    if (resent_.buf)
        PyBuffer_Release(&resent_);
    return result;
}

/* the columns `resends` is given, in this order */
enum { R_JOURNEY, R_FLOW, R_SRC, R_SRC6, R_SPORT, R_PROTO, R_SEQ, R_PAYLOAD_LEN, R_TCP_FLAGS, RESEND_COLUMNS };
static const char *RESEND_NAMES[RESEND_COLUMNS] = {
    "journey", "flow", "src", "src6", "sport", "proto", "seq", "payload_len", "tcp_flags",
};

#define TCP_FIN 1
#define TCP_SYN 2
#define TCP_RST 4
#define TCP_ACK 16

/* A segment's key (`flows._retransmissions`): its sender (flow, address, IPv6 address by its code, port) and either
 * its sequence number, length and control flags (a repeat) or its end (a tail: `seq` its end, `length` 0). `misc`:
 * the port | the control flags (SYN, FIN, ACK) << 16 | the null flags (flow, src, src6, sport, length) << 24 | 1 << 29
 * for a tail. 24 bytes, no padding. */
typedef struct {
    uint32_t flow, src, src6, seq, length, misc;
} ResendKey;

#define TAIL (1u << 29)
#define HAS_LENGTH (1u << 28)

/* A segment: its key as a repeat, its journey, and its place among the segments (for the order of what is found). */
typedef struct {
    ResendKey key;
    uint32_t journey, at;
} Segment;

/* The tail's key of a data segment (with a payload). */
static inline ResendKey tail_key(const ResendKey *k) {
    ResendKey t = *k;
    t.seq += t.length;
    t.length = 0;
    t.misc = (t.misc & ~(HAS_LENGTH | 0xffu << 16)) | TAIL;
    return t;
}

static inline uint64_t resend_hash(const ResendKey *k) {
    uint64_t w[3];
    memcpy(w, k, sizeof w);
    return hash2(hash2(w[0], w[1], S2) ^ w[2], 1, S3);
}

/* One flow's keys seen so far and the journey of each one's first segment: an open-addressing table of their indexes
 * + 1, probed linearly, at most half full; emptied for each flow, so that it stays in the cache (one table of every
 * segment's keys, 0.8M at 2M sightings, took longer than polars). */
typedef struct {
    ResendKey *key;
    uint32_t *journey, *slot;
    size_t count, size, room;  /* size: the slots in use (a power of 2), room: those allocated */
} Keys;

static void keys_free(Keys *t) {
    PyMem_RawFree(t->key);
    PyMem_RawFree(t->journey);
    PyMem_RawFree(t->slot);
}

/* Emptied, with room for `n` keys. */
static int keys_clear(Keys *t, size_t n) {
    size_t size = 64;
    while (size < 2 * n)
        size <<= 1;
    if (size > t->room) {
        keys_free(t);
        t->key = PyMem_RawMalloc(size / 2 * sizeof *t->key);
        t->journey = PyMem_RawMalloc(size / 2 * sizeof *t->journey);
        t->slot = PyMem_RawMalloc(size * sizeof *t->slot);
        t->room = t->key && t->journey && t->slot ? size : 0;
        if (!t->room)
            return -1;
    }
    t->count = 0;
    t->size = size;
    memset(t->slot, 0, size * sizeof *t->slot);
    return 0;
}

/* The journey of the first segment of key `k`; if `k` is new, -1 (`journey` kept as its first). */
static int64_t keys_first(Keys *t, const ResendKey *k, uint32_t journey) {
    size_t s = (size_t)resend_hash(k) & (t->size - 1);
    for (; t->slot[s]; s = (s + 1) & (t->size - 1))
        if (!memcmp(&t->key[t->slot[s] - 1], k, sizeof *k))
            return t->journey[t->slot[s] - 1];
    t->key[t->count] = *k;
    t->journey[t->count] = journey;
    t->slot[s] = (uint32_t)++t->count;
    return -1;
}

/* What was found: a segment's place, its journey and the journey it re-sends. */
typedef struct {
    uint32_t at, journey, original;
} Found;

typedef struct {
    Found *found;
    Py_ssize_t count, room;
} Founds;

static int founds_add(Founds *f, uint32_t at, uint32_t journey, uint32_t original) {
    if (f->count == f->room) {
        Py_ssize_t room = f->room ? f->room * 2 : 1024;
        Found *grown = PyMem_RawRealloc(f->found, room * sizeof *grown);
        if (!grown)
            return -1;
        f->found = grown;
        f->room = room;
    }
    f->found[f->count++] = (Found){at, journey, original};
    return 0;
}

static int by_place(const void *a, const void *b) {
    uint32_t x = ((const Found *)a)->at, y = ((const Found *)b)->at;
    return (x > y) - (x < y);
}

/* The (journey, original) pairs of `f` in the segments' order, as bytes. */
static PyObject *founds_bytes(Founds *f) {
    if (!f->count)
        return PyBytes_FromStringAndSize("", 0);
    qsort(f->found, f->count, sizeof *f->found, by_place);
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, f->count * 8);
    if (bytes) {
        uint32_t *pair = (uint32_t *)PyBytes_AS_STRING(bytes);
        for (Py_ssize_t k = 0; k < f->count; k++) {
            pair[2 * k] = f->found[k].journey;
            pair[2 * k + 1] = f->found[k].original;
        }
    }
    return bytes;
}

/* The TCP segments among the rows (data, SYN or FIN; not RST) with their keys, in row order, into `segments` (room for
 * one a row); how many, or -1 with `*bad` said. `*flows`: one more than the highest flow among them. */
static int64_t segments_read(Column *col, Py_ssize_t rows, Segment *segments, uint32_t *flows, const char **bad) {
    int64_t done = 0, count = 0;
    while (done < rows) {
        int64_t stretch = columns_seek(col, RESEND_COLUMNS, rows - done);
        if (stretch <= 0) {
            *bad = "a column ends early";
            return -1;
        }
        for (int64_t i = 0; i < stretch; i++) {
            uint32_t journey, proto, flags = 0, port = 0;
            ResendKey k = {0};
            if (!cell(&col[R_JOURNEY], i, &journey)) {
                *bad = "journey with nulls";
                return -1;
            }
            cell(&col[R_TCP_FLAGS], i, &flags);
            int has_length = cell(&col[R_PAYLOAD_LEN], i, &k.length);
            if (!cell(&col[R_PROTO], i, &proto) || proto != 6 || !cell(&col[R_SEQ], i, &k.seq) || (flags & TCP_RST)
                || !((has_length && k.length) || (flags & (TCP_SYN | TCP_FIN))))
                continue;
            k.misc = (uint32_t)cell(&col[R_FLOW], i, &k.flow) << 24 | (uint32_t)cell(&col[R_SRC], i, &k.src) << 25
                     | (uint32_t)cell(&col[R_SRC6], i, &k.src6) << 26 | (uint32_t)cell(&col[R_SPORT], i, &port) << 27;
            k.misc |= (port & 0xffff) | (flags & (TCP_SYN | TCP_FIN | TCP_ACK)) << 16 | (uint32_t)has_length * HAS_LENGTH;
            if ((k.misc >> 24 & 1) && k.flow >= *flows)
                *flows = k.flow + 1;
            segments[count] = (Segment){k, journey, (uint32_t)count};
            count++;
        }
        for (int k = 0; k < RESEND_COLUMNS; k++)
            col[k].pos += stretch;
        done += stretch;
    }
    return count;
}

/* A segment's flow bucket: its flow, or `flows` (one more than the highest) for a null flow. */
static inline uint32_t bucket(const Segment *g, uint32_t flows) { return g->key.misc >> 24 & 1 ? g->key.flow : flows; }

/* The order of segments by flow (a null flow after every other), then row. */
static int by_flow(const void *a, const void *b) {
    const Segment *x = a, *y = b;
    uint64_t f = x->key.misc >> 24 & 1 ? x->key.flow : (uint64_t)1 << 32, g = y->key.misc >> 24 & 1 ? y->key.flow : (uint64_t)1 << 32;
    return f != g ? (f > g) - (f < g) : (x->at > y->at) - (x->at < y->at);
}

/* `n` segments in order of flow bucket, each flow's in row order, into `out`: counted into buckets; by qsort when the
 * flows' numbers are far more than the segments (a table of them would be larger than the segments). */
static int segments_sort(const Segment *segments, int64_t n, uint32_t flows, Segment *out) {
    if ((uint64_t)flows > 4 * (uint64_t)n + 1024) {
        memcpy(out, segments, n * sizeof *out);
        qsort(out, n, sizeof *out, by_flow);
        return 0;
    }
    int64_t *start = PyMem_RawCalloc((size_t)flows + 2, sizeof *start);
    if (!start)
        return -1;
    for (int64_t i = 0; i < n; i++)
        start[bucket(&segments[i], flows) + 1]++;
    for (size_t f = 1; f < (size_t)flows + 2; f++)
        start[f] += start[f - 1];
    for (int64_t i = 0; i < n; i++)
        out[start[bucket(&segments[i], flows)]++] = segments[i];
    PyMem_RawFree(start);
    return 0;
}

/* Each of `n` segments in order of flow that repeats a key of one before it in its flow into `found` (repeats, tails);
 * -1 without the memory. */
static int resends_find(const Segment *sorted, int64_t n, uint32_t flows, Founds found[2]) {
    Keys keys = {0};
    int failed = 0;
    for (int64_t from = 0, to; from < n && !failed; from = to) {
        uint32_t f = bucket(&sorted[from], flows);
        for (to = from + 1; to < n && bucket(&sorted[to], flows) == f; to++)
            ;
        if (keys_clear(&keys, 2 * (size_t)(to - from)) < 0) {
            failed = 1;
            break;
        }
        for (int64_t i = from; i < to && !failed; i++) {
            const Segment *g = &sorted[i];
            int64_t original = keys_first(&keys, &g->key, g->journey);
            failed = original >= 0 && founds_add(&found[0], g->at, g->journey, (uint32_t)original) < 0;
            if (failed || !(g->key.misc & HAS_LENGTH) || !g->key.length)
                continue;
            ResendKey tail = tail_key(&g->key);
            original = keys_first(&keys, &tail, g->journey);
            failed = original >= 0 && founds_add(&found[1], g->at, g->journey, (uint32_t)original) < 0;
        }
    }
    keys_free(&keys);
    return failed ? -1 : 0;
}

/* resends(columns, rows) -> (repeats, tails): the later TCP segments of first sightings in time order that re-send
 * one before them (`flows._retransmissions`), each as its journey and the journey of the first with its key, in row
 * order (uint32 pairs, as bytes): `repeats` those whose sender, sequence number, length and control flags (SYN, FIN,
 * ACK) repeat a segment's (data or SYN or FIN, not RST), `tails` the data segments whose sender and end repeat one's.
 * `columns`: Arrow stream capsules (None: all null) in the order of RESEND_NAMES, unsigned integers; journey without
 * nulls, fewer than 2**32 rows. The segments are put in order of flow and each flow's keys told apart by their values
 * (no hash stands for them) in a table of its own. */
static PyObject *resends(PyObject *self, PyObject *args) {
    PyObject *columns;
    Py_ssize_t rows;
    if (!PyArg_ParseTuple(args, "O!n", &PyTuple_Type, &columns, &rows))
        return NULL;
    PyObject *result = NULL;
    Column col[RESEND_COLUMNS];
    memset(col, 0, sizeof col);
    Founds found[2] = {{0}, {0}};
    if (PyTuple_GET_SIZE(columns) != RESEND_COLUMNS || rows < 0 || rows >= UINT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%d columns and fewer than 2**32 rows wanted", RESEND_COLUMNS);
        goto done;
    }
    for (int k = 0; k < RESEND_COLUMNS; k++)
        if (column_load(PyTuple_GET_ITEM(columns, k), rows, &col[k], RESEND_NAMES[k], "CSI") < 0)
            goto done;
    if (rows && col[R_JOURNEY].bits != 32) {
        PyErr_SetString(PyExc_ValueError, "column journey: not uint32");
        goto done;
    }
    const char *bad = NULL;
    Py_BEGIN_ALLOW_THREADS
    uint32_t flows = 0;
    /* room for one a row: only the pages written are had */
    Segment *segments = PyMem_RawMalloc((rows ? rows : 1) * sizeof *segments), *sorted = NULL;
    int64_t n = segments ? segments_read(col, rows, segments, &flows, &bad) : -1;
    if (n >= 0) {
        sorted = PyMem_RawMalloc((n ? n : 1) * sizeof *sorted);
        if (!sorted || segments_sort(segments, n, flows, sorted) < 0 || resends_find(sorted, n, flows, found) < 0)
            n = -1;
    }
    if (n < 0 && !bad)
        bad = "";
    PyMem_RawFree(segments);
    PyMem_RawFree(sorted);
    Py_END_ALLOW_THREADS
    if (bad) {
        say_bad(bad);
        goto done;
    }
    PyObject *repeats = founds_bytes(&found[0]), *tails = founds_bytes(&found[1]);
    if (repeats && tails)
        result = PyTuple_Pack(2, repeats, tails);
    Py_XDECREF(repeats);
    Py_XDECREF(tails);
done:
    for (int k = 0; k < RESEND_COLUMNS; k++)
        column_free(&col[k]);
    PyMem_RawFree(found[0].found);
    PyMem_RawFree(found[1].found);
    return result;
}

/* the columns `tallies` is given, in this order */
enum {
    T_FLOW, T_JOURNEY, T_TCP_FLAGS, T_TS, T_SEQ, T_ACK, T_PROTO, T_WIN, T_PAYLOAD_LEN, T_DNS_ID, T_DNS_QR, T_ICMP_TYPE,
    T_ICMP_SEQ, TALLY_COLUMNS
};
static const char *TALLY_NAMES[TALLY_COLUMNS] = {
    "flow", "journey", "tcp_flags", "ts", "seq", "ack", "proto", "win", "payload_len", "dns_id", "dns_qr", "icmp_type",
    "icmp_seq",
};

/* What `tallies` finds of a flow: its first row, first SYN's and first SYN-ACK's (-1: none); its times (least and
 * greatest, of its SYNs, SYN-ACKs and handshake's ACK: where `has_`); its counts; `asked`/`answers`/`both`: its DNS
 * queries' and ICMP echo requests' distinct ids (0: DNS, 1: echo), of its answers or replies, and of both. The layout
 * of `flows.TALLY`, numpy's view of it: no padding. */
typedef struct {
    int64_t head, syn, synack, first_ts, last_ts, syn_ts, synack_ts, ack_ts;
    uint32_t packets, bytes, retransmissions, zero_windows, fins, unreachable, resets, journeys;
    uint32_t asked[2], answers[2], both[2], synack_seq, unused;
    uint8_t has_ts, has_syn_ts, has_synack_ts, has_ack_ts, has_synack_seq, any_syn, unused_[2];
} Tally;

/* The value of row `i` of a boolean column's current stretch into `v`: whether it is there. */
static inline int bool_cell(const Column *c, int64_t i, uint32_t *v) {
    int64_t b = c->bit + i;
    if (!c->values || (c->validity && !((c->validity[b >> 3] >> (b & 7)) & 1)))
        return 0;
    *v = (c->values[b >> 3] >> (b & 7)) & 1;
    return 1;
}

/* The distinct (flow, kind, id) of DNS queries and answers and ICMP echo requests and replies (an open-addressing
 * table of keys + 1, probed linearly, at most half full), each with whether it was asked (bit 0) and answered (bit 1). */
typedef struct {
    uint64_t *key;
    uint8_t *seen;
    size_t count, size;
} Asked;

static int asked_grow(Asked *a) {
    size_t size = a->size ? a->size * 2 : 4096;
    uint64_t *key = PyMem_RawCalloc(size, sizeof *key);
    uint8_t *seen = PyMem_RawCalloc(size, 1);
    if (!key || !seen) {
        PyMem_RawFree(key);
        PyMem_RawFree(seen);
        return -1;
    }
    for (size_t s = 0; s < a->size; s++)
        if (a->key[s]) {
            size_t t = (size_t)mix(a->key[s] ^ S0, S1) & (size - 1);
            while (key[t])
                t = (t + 1) & (size - 1);
            key[t] = a->key[s];
            seen[t] = a->seen[s];
        }
    PyMem_RawFree(a->key);
    PyMem_RawFree(a->seen);
    a->key = key;
    a->seen = seen;
    a->size = size;
    return 0;
}

/* `id` (null: 0x10000) of `kind` seen in flow `f` asked (`bit` 1) or answering (2): its flow's counts of distinct
 * ones updated; -1 without the memory. */
static int asked_add(Asked *a, Tally *f, uint32_t flow, int kind, uint32_t id, uint8_t bit) {
    if (2 * (a->count + 1) > a->size && asked_grow(a) < 0)
        return -1;
    uint64_t key = ((uint64_t)flow << 18 | (uint64_t)kind << 17 | id) + 1;
    size_t s = (size_t)mix(key ^ S0, S1) & (a->size - 1);
    while (a->key[s] && a->key[s] != key)
        s = (s + 1) & (a->size - 1);
    if (!a->key[s]) {
        a->key[s] = key;
        a->count++;
    }
    if (a->seen[s] & bit)
        return 0;
    a->seen[s] |= bit;
    if (bit == 1)
        f->asked[kind]++;
    else
        f->answers[kind]++;
    if (a->seen[s] == 3)
        f->both[kind]++;
    return 0;
}

/* One pass over the rows (`pass` 0: all but the handshake's ACK; 1: that ACK, which needs the SYN-ACKs' least time),
 * each row's flow's entry of `of` (`flows` of them) updated; NULL, or what was wrong ("": no memory). */
static const char *tallies_pass(Column *col, Py_ssize_t rows, int pass, const uint8_t *resent, uint64_t kept, Tally *of,
                                uint32_t flows, Asked *asked) {
    for (int k = 0; k < TALLY_COLUMNS; k++)
        col[k].at = col[k].pos = 0;
    for (int64_t done = 0; done < rows;) {
        int64_t stretch = columns_seek(col, TALLY_COLUMNS, rows - done);
        if (stretch <= 0)
            return "a column ends early";
        for (int64_t i = 0; i < stretch; i++) {
            uint32_t flow, flags = 0, seq, ack, journey, value, proto, win, qr, type, id;
            if (!cell(&col[T_FLOW], i, &flow))
                continue;
            if (flow >= flows)
                return "a flow above the highest";
            Tally *t = &of[flow];
            cell(&col[T_TCP_FLAGS], i, &flags);
            const Column *c = &col[T_TS];
            int64_t at = c->bit + i, ts = 0;
            int has_ts = c->values && (!c->validity || ((c->validity[at >> 3] >> (at & 7)) & 1));
            if (has_ts)
                ts = ((const int64_t *)c->values)[at];
            int syn = flags & TCP_SYN, acked = flags & TCP_ACK;
            if (pass == 1) {
                if (acked && !(flags & (TCP_SYN | TCP_RST | TCP_FIN)) && has_ts && t->has_synack_ts && ts >= t->synack_ts
                    && cell(&col[T_ACK], i, &ack) && ((t->has_synack_seq && ack == t->synack_seq + 1) || ack == 1)
                    && (!t->has_ack_ts || ts < t->ack_ts)) {
                    t->ack_ts = ts;
                    t->has_ack_ts = 1;
                }
                continue;
            }
            if (t->head < 0)
                t->head = done + i;
            t->packets++;
            int again = resent && resent[done + i];
            t->retransmissions += again;
            if (!again && cell(&col[T_PAYLOAD_LEN], i, &value))
                t->bytes += value;  /* (wrapping round 2**32, as polars' sum of the UInt32 column) */
            if (has_ts) {
                if (!t->has_ts || ts < t->first_ts)
                    t->first_ts = ts;
                if (!t->has_ts || ts > t->last_ts)
                    t->last_ts = ts;
                t->has_ts = 1;
            }
            if (cell(&col[T_WIN], i, &win) && win == 0 && !(flags & TCP_RST) && cell(&col[T_PROTO], i, &proto) && proto == 6)
                t->zero_windows++;
            t->fins += (flags & TCP_FIN) != 0;
            int has_journey = cell(&col[T_JOURNEY], i, &journey);
            t->resets += (flags & TCP_RST) != 0;
            t->journeys += has_journey && journey < kept;
            if (syn && !acked) {
                if (t->syn < 0)
                    t->syn = done + i;
                t->any_syn = 1;
                if (has_ts && (!t->has_syn_ts || ts < t->syn_ts)) {
                    t->syn_ts = ts;
                    t->has_syn_ts = 1;
                }
            }
            if (syn && acked) {
                if (t->synack < 0) {
                    t->synack = done + i;
                    t->has_synack_seq = (uint8_t)cell(&col[T_SEQ], i, &seq);
                    t->synack_seq = t->has_synack_seq ? seq : 0;
                }
                if (has_ts && (!t->has_synack_ts || ts < t->synack_ts)) {
                    t->synack_ts = ts;
                    t->has_synack_ts = 1;
                }
            }
            if (bool_cell(&col[T_DNS_QR], i, &qr)) {
                if (!cell(&col[T_DNS_ID], i, &id))
                    id = 0x10000;
                if (asked_add(asked, t, flow, 0, id, qr ? 2 : 1) < 0)
                    return "";
            }
            if (cell(&col[T_ICMP_TYPE], i, &type)) {
                t->unreachable += type == 3;
                if (type == 8 || type == 128 || type == 0 || type == 129) {
                    if (!cell(&col[T_ICMP_SEQ], i, &id))
                        id = 0x10000;
                    if (asked_add(asked, t, flow, 1, id, type == 8 || type == 128 ? 1 : 2) < 0)
                        return "";
                }
            }
        }
        for (int k = 0; k < TALLY_COLUMNS; k++)
            col[k].pos += stretch;
        done += stretch;
    }
    return NULL;
}

/* The journeys of each flow below `kept`, and those of its RSTs (a null one as None), in row order: tuples of
 * Python ints into `journeys` and `resets` (`flows` each, NULL where a flow has no rows), sized by the counts of
 * `of`; `at` (2 * flows) counts what each has. Holds the GIL. */
static int tallies_fill(Column *col, Py_ssize_t rows, uint64_t kept, const Tally *of, uint32_t flows, PyObject **journeys,
                        PyObject **resets, uint32_t *at) {
    for (uint32_t f = 0; f < flows; f++)
        if (of[f].packets) {
            journeys[f] = PyTuple_New(of[f].journeys);
            resets[f] = PyTuple_New(of[f].resets);
            if (!journeys[f] || !resets[f])
                return -1;
        }
    for (int k = 0; k < TALLY_COLUMNS; k++)
        col[k].at = col[k].pos = 0;
    for (int64_t done = 0; done < rows;) {
        int64_t stretch = columns_seek(col, TALLY_COLUMNS, rows - done);
        if (stretch <= 0) {
            PyErr_SetString(PyExc_ValueError, "a column ends early");
            return -1;
        }
        for (int64_t i = 0; i < stretch; i++) {
            uint32_t flow, flags = 0, journey;
            if (!cell(&col[T_FLOW], i, &flow) || flow >= flows)
                continue;  /* (the passes refused a flow above the highest) */
            int has_journey = cell(&col[T_JOURNEY], i, &journey);
            cell(&col[T_TCP_FLAGS], i, &flags);
            PyObject *ids[2] = {has_journey && journey < kept ? journeys[flow] : NULL, flags & TCP_RST ? resets[flow] : NULL};
            for (int k = 0; k < 2; k++) {
                if (!ids[k] || at[2 * flow + k] >= (uint32_t)PyTuple_GET_SIZE(ids[k]))
                    continue;
                PyObject *id = has_journey ? PyLong_FromUnsignedLong(journey) : Py_NewRef(Py_None);
                if (!id)
                    return -1;
                PyTuple_SET_ITEM(ids[k], at[2 * flow + k]++, id);
            }
        }
        for (int k = 0; k < TALLY_COLUMNS; k++)
            col[k].pos += stretch;
        done += stretch;
    }
    return 0;
}

/* A list of the tuples of the flows that have rows (`tallies_fill`), in flow order; the tuples given over. */
static PyObject *tallies_list(PyObject **tuples, const Tally *of, uint32_t flows) {
    Py_ssize_t n = 0;
    for (uint32_t f = 0; f < flows; f++)
        n += of[f].packets != 0;
    PyObject *list = PyList_New(n);
    if (!list)
        return NULL;
    for (uint32_t f = 0, k = 0; f < flows; f++)
        if (of[f].packets) {
            PyList_SET_ITEM(list, k++, tuples[f]);
            tuples[f] = NULL;
        }
    return list;
}

/* tallies(columns, rows, flows, kept, resent, out) -> (journeys, resets): of each flow 0..flows-1 among the rows
 * (first sightings in time order; `flows._stats`), a Tally into `out` (a buffer of `flows` of them): its first row,
 * first SYN's (SYN without ACK) and first SYN-ACK's (-1: none); its times, packets, payload bytes and re-sends (rows
 * `resent` marks, bool, None: none; their bytes not counted), zero windows (TCP, not RST), FINs, RSTs, ICMP
 * unreachables, and distinct DNS ids and echo sequence numbers asked, answered and both (null ids one value); its
 * handshake's ACK's time: the least of the pure ACKs (no SYN, RST or FIN) at or after the least time of its SYN-ACKs
 * that acknowledge the first SYN-ACK's sequence number + 1 (or 1: relative numbers). Of each flow that has rows, in
 * flow order, a tuple of its journeys below `kept` and one of its RSTs' journeys. `columns`: Arrow stream capsules
 * (None: all null) in the order of TALLY_NAMES: unsigned integers, ts int64, dns_qr boolean; each flow below `flows`
 * (or null: not counted). */
static PyObject *tallies(PyObject *self, PyObject *args) {
    PyObject *columns, *resent_obj;
    Py_ssize_t rows, flows;
    unsigned long long kept;
    Py_buffer out = {0}, resent_ = {0};
    if (!PyArg_ParseTuple(args, "O!nnKOw*", &PyTuple_Type, &columns, &rows, &flows, &kept, &resent_obj, &out))
        return NULL;
    PyObject *result = NULL, **tuples = NULL;
    Column col[TALLY_COLUMNS];
    memset(col, 0, sizeof col);
    uint32_t *at = NULL;
    Asked asked = {0};
    if (resent_obj != Py_None && PyObject_GetBuffer(resent_obj, &resent_, PyBUF_SIMPLE) < 0)
        goto done;
    if (PyTuple_GET_SIZE(columns) != TALLY_COLUMNS || rows < 0 || flows < 0 || flows > UINT32_MAX
            || (resent_.buf && resent_.len != rows)) {
        PyErr_Format(PyExc_ValueError, "%d columns, flows below 2**32 and a re-send flag a row wanted", TALLY_COLUMNS);
        goto done;
    }
    if (out.len != flows * (Py_ssize_t)sizeof(Tally)) {
        PyErr_SetString(PyExc_ValueError, "an output of the wrong size");
        goto done;
    }
    for (int k = 0; k < TALLY_COLUMNS; k++)
        if (column_load(PyTuple_GET_ITEM(columns, k), rows, &col[k], TALLY_NAMES[k], k == T_TS ? "l" : k == T_DNS_QR ? "b" : k == T_DNS_ID || k == T_ICMP_SEQ ? "CS" : "CSI") < 0)
            goto done;
    Tally *of = out.buf;
    const char *bad = NULL;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t f = 0; f < flows; f++)
        of[f] = (Tally){.head = -1, .syn = -1, .synack = -1};
    bad = tallies_pass(col, rows, 0, resent_.buf, kept, of, (uint32_t)flows, &asked);
    if (!bad)
        bad = tallies_pass(col, rows, 1, resent_.buf, kept, of, (uint32_t)flows, &asked);
    Py_END_ALLOW_THREADS
    if (bad) {
        say_bad(bad);
        goto done;
    }
    tuples = PyMem_Calloc(2 * (size_t)flows + 1, sizeof *tuples);
    at = PyMem_Calloc(2 * (size_t)flows + 1, sizeof *at);
    if (!tuples || !at) {
        PyErr_NoMemory();
        goto done;
    }
    if (tallies_fill(col, rows, kept, of, (uint32_t)flows, tuples, tuples + flows, at) < 0)
        goto done;
    PyObject *journeys = tallies_list(tuples, of, (uint32_t)flows);
    PyObject *resets = journeys ? tallies_list(tuples + flows, of, (uint32_t)flows) : NULL;
    if (resets)
        result = PyTuple_Pack(2, journeys, resets);
    Py_XDECREF(journeys);
    Py_XDECREF(resets);
done:
    if (tuples)
        for (Py_ssize_t k = 0; k < 2 * flows; k++)
            Py_XDECREF(tuples[k]);
    PyMem_Free(tuples);
    PyMem_Free(at);
    PyMem_RawFree(asked.key);
    PyMem_RawFree(asked.seen);
    for (int k = 0; k < TALLY_COLUMNS; k++)
        column_free(&col[k]);
    PyBuffer_Release(&out);
    if (resent_.buf)
        PyBuffer_Release(&resent_);
    return result;
}

/* SHA-1 (FIPS 180-4) of a message shorter than 56 bytes: one block. */
static inline uint32_t rol(uint32_t x, int n) { return x << n | x >> (32 - n); }

static void sha1_short(const uint8_t *data, size_t n, uint8_t digest[20]) {
    uint8_t block[64] = {0};
    memcpy(block, data, n);
    block[n] = 0x80;
    uint64_t bits = (uint64_t)n * 8;
    for (int k = 0; k < 8; k++)
        block[63 - k] = (uint8_t)(bits >> (8 * k));
    uint32_t w[16], h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)block[4 * t] << 24 | (uint32_t)block[4 * t + 1] << 16 | (uint32_t)block[4 * t + 2] << 8 | block[4 * t + 3];
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    /* each round's word of the schedule made as it is needed, in a ring of 16 (the 80 made first, in a loop the
     * compiler vectorised two words at a time, each load waiting on the stores before it: 20,000 ids 7.3 -> 3.6 ms),
     * and the four stages of 20 rounds each in a loop of its own */
#define SHA1_ROUNDS(from, f, k)                                                                                         \
    for (int t = from; t < from + 20; t++) {                                                                          \
        if (t >= 16)                                                                                                  \
            w[t & 15] = rol(w[(t - 3) & 15] ^ w[(t - 8) & 15] ^ w[(t - 14) & 15] ^ w[t & 15], 1);                     \
        uint32_t temp = rol(a, 5) + (f) + e + (uint32_t)(k) + w[t & 15];                                              \
        e = d;                                                                                                        \
        d = c;                                                                                                        \
        c = rol(b, 30);                                                                                               \
        b = a;                                                                                                        \
        a = temp;                                                                                                     \
    }
    SHA1_ROUNDS(0, (b & c) | (~b & d), 0x5A827999)
    SHA1_ROUNDS(20, b ^ c ^ d, 0x6ED9EBA1)
    SHA1_ROUNDS(40, (b & c) | (b & d) | (c & d), 0x8F1BBCDC)
    SHA1_ROUNDS(60, b ^ c ^ d, 0xCA62C1D6)
#undef SHA1_ROUNDS
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
    for (int k = 0; k < 5; k++)
        for (int j = 0; j < 4; j++)
            digest[4 * k + j] = (uint8_t)(h[k] >> (24 - 8 * j));
}

/* `n` bytes in base64 (RFC 4648, padded) into `out`; how many characters. */
static int base64(const uint8_t *in, int n, char *out) {
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int o = 0;
    for (int i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = digits[v >> 18 & 63];
        out[o++] = digits[v >> 12 & 63];
        out[o++] = i + 1 < n ? digits[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? digits[v & 63] : '=';
    }
    return o;
}

/* community_ids(records, size) -> list[str]: "1:" and the base64 of the SHA-1 of each `size`-byte record of `records`
 * (Community ID v1: each record the seed, addresses, protocol and ports packed; `flows.community_ids_v4`), size at
 * most 55 (one SHA-1 block). The ids are hashed into one buffer with the interpreter let go (the tally's thread: 11 ms
 * at 2M that the main thread's Python waited for), then made strings. */
#define ID_LEN 28 /* base64 of a 20-byte digest */
static PyObject *community_ids(PyObject *self, PyObject *args) {
    Py_buffer records;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "y*n", &records, &size))
        return NULL;
    PyObject *ids = NULL;
    char *text = NULL;
    if (size <= 0 || size > 55 || records.len % size) {
        PyErr_SetString(PyExc_ValueError, "records of 1 to 55 bytes each wanted");
        goto done;
    }
    Py_ssize_t count = records.len / size;
    text = PyMem_RawMalloc((size_t)count * ID_LEN + 1);
    if (!text) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        uint8_t digest[20];
        sha1_short((const uint8_t *)records.buf + i * size, (size_t)size, digest);
        base64(digest, 20, text + i * ID_LEN);
    }
    Py_END_ALLOW_THREADS
    ids = PyList_New(count);
    for (Py_ssize_t i = 0; ids && i < count; i++) {
        PyObject *id = PyUnicode_New(2 + ID_LEN, 127);
        if (!id) {
            Py_CLEAR(ids);
            break;
        }
        Py_UCS1 *chars = PyUnicode_1BYTE_DATA(id);
        chars[0] = '1', chars[1] = ':';
        memcpy(chars + 2, text + i * ID_LEN, ID_LEN);
        PyList_SET_ITEM(ids, i, id);
    }
done:
    PyMem_RawFree(text);
    PyBuffer_Release(&records);
    return ids;
}

static PyMethodDef methods[] = {
    {"tuple_scan", tuple_scan, METH_VARARGS, "Tuple ids of a correlated table's rows, and what numbering flows keeps of them."},
    {"number_first_seen", number_first_seen, METH_VARARGS, "uint64 keys numbered by first appearance."},
    {"gather", gather, METH_VARARGS, "A uint32 column's values looked up in a uint32 table."},
    {"late_segments", late_segments, METH_VARARGS, "The flows of the TCP segments that start below their sender's highest end."},
    {"resends", resends, METH_VARARGS, "The later TCP segments that re-send one before them, and its journey."},
    {"tallies", tallies, METH_VARARGS, "Each flow's first rows, times, counts and handshake's ACK, and its journeys."},
    {"community_ids", community_ids, METH_VARARGS, "Community IDs v1 of packed records."},
    {"leg_scan", leg_scan, METH_VARARGS, "The first row of each distinct combination of the legs' columns."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_flows", NULL, -1, methods};

PyMODINIT_FUNC PyInit__flows(void) {
    spread_make();
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "TALLY_SIZE", sizeof(Tally)) < 0)
        Py_CLEAR(m);
    return m;
}
