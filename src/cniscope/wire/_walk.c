/* The record walk numpy cannot do: where each record starts (cniscope.wire.walk).
 *
 * Each record's length says where the next one starts, so the walk cannot be
 * vectorized (benchmarks/walk.py: a reader's time a record, 192 ns with the
 * walk in Python, 63 with this one, at 10M packets). The walks trust every
 * length and only guard the reads themselves; the readers' walks check each record
 * or packet block as they go (`pcap_packets`, `pcapng_packets`), and nothing after
 * a bad one is used. The GIL is released: decoding goes on meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
    if (limit < 0 || limit > PY_SSIZE_T_MAX / 8 || out->len < limit * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "out holds fewer than limit int64 offsets");
        return 0;
    }
    return 1;
}

/* pcap_records(data, pos, stop, end, limit, big, out) -> (count, pos): the offsets of at most `limit` records from
 * `pos` while pos < stop, reading no byte at or past `end`; stops where fewer than 12 bytes (a header up to its caplen)
 * are left (the SLL2 converter's walk, wire.pcap.walk). */
static PyObject *pcap_records(PyObject *self, PyObject *args) {
    Py_buffer data, out;
    Py_ssize_t pos, stop, end, limit, n = 0;
    int big;
    if (!PyArg_ParseTuple(args, "y*nnnnpw*", &data, &pos, &stop, &end, &limit, &big, &out)) return NULL;
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
        if (pos + PREFETCH < end) __builtin_prefetch(bytes + pos + PREFETCH);
        offsets[n++] = pos;
        pos += 16 + (Py_ssize_t)u32(bytes + pos + 8, big);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    PyBuffer_Release(&out);
    return Py_BuildValue("nn", n, pos);
}

/* pcap_packets(data, pos, stop, end, limit, big, usec, max_caplen, offset, caplen, wirelen, ts) -> (count, pos, bad):
 * `pcap_records`' walk, each record checked as it is walked: for each, at its row of the outputs, where its frame
 * starts, its captured and wire lengths and its time in ns (the fraction in us where `usec`). `bad`: the first row
 * whose record is damaged (-1: none): a header cut by `end`, a captured length above `max_caplen` or past `end`, a
 * wire length of 0. The walk trusts each captured length as it goes: the reader uses nothing from the first bad row
 * on (sources.pcap._check says why it is bad). One pass: the header words gathered by the walk and checked in a second
 * pass took a quarter as long again as the walk (10M pcap). */
static PyObject *pcap_packets(PyObject *self, PyObject *args) {
    Py_buffer data, o[4];
    Py_ssize_t pos, stop, end, limit, n = 0, bad = -1;
    long long max_caplen;
    int big, usec;
    if (!PyArg_ParseTuple(args, "y*nnnnppLw*w*w*w*", &data, &pos, &stop, &end, &limit, &big, &usec, &max_caplen, &o[0],
                          &o[1], &o[2], &o[3]))
        return NULL;
    static const Py_ssize_t width[4] = {8, 4, 4, 8}; /* offset, caplen, wirelen, ts */
    int ok = limit >= 0 && limit <= PY_SSIZE_T_MAX / 8; /* no product below overflows */
    for (int k = 0; k < 4; k++) ok = ok && o[k].len >= limit * width[k];
    if (ok) {
        if (end > data.len) end = data.len;
        const uint8_t *bytes = data.buf;
        int64_t *offset = o[0].buf, *ts = o[3].buf;
        uint32_t *caplen = o[1].buf, *wirelen = o[2].buf;
        const int64_t scale = usec ? 1000 : 1;
        Py_BEGIN_ALLOW_THREADS
        while (n < limit && pos < stop && pos >= 0 && pos + 12 <= end) {
            if (pos + PREFETCH < end) __builtin_prefetch(bytes + pos + PREFETCH);
            int64_t sec = u32(bytes + pos, big), sub = u32(bytes + pos + 4, big), cap = u32(bytes + pos + 8, big);
            uint32_t wire = pos + 16 <= end ? u32(bytes + pos + 12, big) : 0;
            if (bad < 0 && (pos + 16 > end || cap > max_caplen || pos + 16 + cap > end || wire == 0)) bad = n;
            offset[n] = pos + 16;
            caplen[n] = (uint32_t)cap;
            wirelen[n] = wire;
            ts[n] = sec * 1000000000 + sub * scale;
            n++;
            pos += 16 + cap;
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&data);
    for (int k = 0; k < 4; k++) PyBuffer_Release(&o[k]);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "outputs: int64, uint32, uint32, int64 for limit records at least");
        return NULL;
    }
    return Py_BuildValue("nnn", n, pos, bad);
}

/* `pcapng_packets`' outputs, a row a block */
typedef struct {
    int64_t *offset;
    uint64_t *units;
    uint32_t *caplen, *wirelen, *lengths;
    int32_t *local;
    uint8_t *options;
} Packets;

/* `pcapng_packets`' walk, inlined once for each byte order (`big` a constant there, not a test a word: the reader's
 * walk of the 10M pcapng 118-129 -> 101-116 ms of CPU); how many blocks, `*at` moved past them */
static inline __attribute__((always_inline)) Py_ssize_t walk_packets(const uint8_t *bytes, Py_ssize_t *at, Py_ssize_t end,
        Py_ssize_t limit, const int big, long long max_caplen, const Packets *o, Py_ssize_t *bad_, long long *top_) {
    Py_ssize_t n = 0, pos = *at, bad = -1;
    long long top = -1;
    int64_t *offset = o->offset;
    uint64_t *units = o->units;
    uint32_t *caplen = o->caplen, *wirelen = o->wirelen, *lengths = o->lengths;
    int32_t *local = o->local;
    uint8_t *options = o->options;
    while (n < limit && pos >= 0 && pos + 8 <= end && u32(bytes + pos, big) == 6) {
        if (pos + PREFETCH < end) __builtin_prefetch(bytes + pos + PREFETCH);
        int64_t length = u32(bytes + pos + 4, big);
        uint32_t w[5] = {0, 0, 0, 0, 0}; /* interface, timestamp high and low, captured and wire lengths */
        int whole = pos + 28 <= end;
        if (whole)
            for (int k = 0; k < 5; k++) w[k] = u32(bytes + pos + 8 + 4 * k, big);
        int64_t tail = length >= 12 && pos + length <= end ? u32(bytes + pos + length - 4, big) : 0;
        int64_t cap = w[3];
        int sound = whole && length >= 32 && (length & 3) == 0 && pos + length <= end;
        if (bad < 0 && !(sound && tail == length && cap <= max_caplen && 28 + cap + 4 <= length)) bad = n;
        if ((long long)w[0] > top) top = w[0];
        offset[n] = pos + 28;
        caplen[n] = w[3];
        wirelen[n] = w[4];
        local[n] = (int32_t)w[0];
        units[n] = ((uint64_t)w[1] << 32) | w[2];
        options[n] = length > 28 + ((cap + 3) & ~3LL) + 4;
        lengths[n] = (uint32_t)length;
        n++;
        pos += length;
    }
    *at = pos;
    *bad_ = bad;
    *top_ = top;
    return n;
}

/* pcapng_packets(data, pos, end, limit, big, max_caplen, offset, caplen, wirelen, local, units, options, length)
 * -> (count, pos, bad, top): the consecutive enhanced packet blocks (EPB, type 6) from `pos`, at most `limit`, stopping
 * at a block of another type or where fewer than 8 bytes (type and length) are left before `end`, each checked as it
 * is walked: for each, at its row of the outputs, its packet's offset, captured and wire lengths, interface (of the
 * section), timestamp units, whether it carries options, and its block's length. `bad`: the first row whose block is
 * damaged (-1: none): its length not a multiple of 4, too short or running past `end`, a trailing length that
 * disagrees, a captured length above `max_caplen` or longer than its block. Nothing is read past `end` (a row's words
 * past it are zeros), and the walk trusts each length as it goes: the reader uses nothing from the first bad row on.
 * `top`: the largest interface a row names (-1: none), which the reader holds to the interfaces the section describes
 * by the end of the batch. One pass: the header words gathered by the walk and checked in a second pass took half as
 * long again as the walk (10M pcapng). sources.pcapng's `_check_numpy` is the same check in numpy. */
static PyObject *pcapng_packets(PyObject *self, PyObject *args) {
    Py_buffer data, o[7];
    Py_ssize_t pos, end, limit, n = 0, bad = -1;
    long long max_caplen, top = -1;
    int big;
    if (!PyArg_ParseTuple(args, "y*nnnpLw*w*w*w*w*w*w*", &data, &pos, &end, &limit, &big, &max_caplen, &o[0], &o[1], &o[2],
                          &o[3], &o[4], &o[5], &o[6]))
        return NULL;
    static const Py_ssize_t width[7] = {8, 4, 4, 4, 8, 1, 4}; /* offset, caplen, wirelen, local, units, options, length */
    int ok = limit >= 0 && limit <= PY_SSIZE_T_MAX / 8; /* no product below overflows */
    for (int k = 0; k < 7; k++) ok = ok && o[k].len >= limit * width[k];
    if (ok) {
        if (end > data.len) end = data.len;
        const uint8_t *bytes = data.buf;
        Packets out = {o[0].buf, o[4].buf, o[1].buf, o[2].buf, o[6].buf, o[3].buf, o[5].buf};
        Py_BEGIN_ALLOW_THREADS
        n = big ? walk_packets(bytes, &pos, end, limit, 1, max_caplen, &out, &bad, &top)
                : walk_packets(bytes, &pos, end, limit, 0, max_caplen, &out, &bad, &top);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&data);
    for (int k = 0; k < 7; k++) PyBuffer_Release(&o[k]);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "outputs: int64, uint32, uint32, int32, uint64, uint8, uint32 for limit blocks at least");
        return NULL;
    }
    return Py_BuildValue("nnnL", n, pos, bad, top);
}

/* Bytes between the reads of `populate`: a read's fault maps the pages around it that the page cache holds, 16 of 4 KiB
 * (the kernel's fault_around_bytes, 64 KiB by default; a read of every page: 30 ms for the 2M pcapng's, not 23); any it
 * leaves unmapped the walk maps itself */
#define POPULATE_STRIDE 65536

/* populate(data, start, stop): the pages of the mapped file `data` from `start` to `stop` mapped into the process now,
 * so that the walk takes none of their faults (at 2M pcapng the walk alone 102 -> 70 ms of CPU, for 23 ms of this),
 * by reading a byte every POPULATE_STRIDE, without the GIL: the walk ahead (`cniscope.ahead`) asks it on the core that
 * is idle while the command imports numpy. Faults, not madvise(MADV_POPULATE_READ), which maps them as fast but holds
 * the process's memory map lock meanwhile: the command's thread, mapping numpy's libraries, waited up to 16 ms for it
 * at a time (30 ms in all); a fault holds its own mapping's lock. */
static PyObject *populate(PyObject *self, PyObject *args) {
    Py_buffer data;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "y*nn", &data, &start, &stop)) return NULL;
    if (start < 0) start = 0;
    if (stop > data.len) stop = data.len;
    const volatile uint8_t *bytes = data.buf;
    Py_BEGIN_ALLOW_THREADS
    uint8_t sink = 0;
    for (Py_ssize_t at = start; at < stop; at += POPULATE_STRIDE) sink ^= bytes[at];
    (void)sink;
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    Py_RETURN_NONE;
}


/* A mapped capture that another program cuts while it is read (tcpdump -C/-W rewriting its ring, a copy in progress,
 * `truncate`) faults with SIGBUS on its pages past the new end: the process died at once, no report, no message. The
 * mappings the readers make are guarded here: a fault on a guarded page past the file's end maps zeros over the rest
 * of that mapping (the walks stop at a zeroed record, a header of length 0) and notes where the zeros begin, which the
 * reader asks (`cut`) after each batch to keep only the packets before it, and say so. mmap is a plain system call
 * the kernel completes or refuses, and the notes are atomics: nothing here takes a lock. A fault elsewhere goes to the
 * handler that was there before (Python's faulthandler, in tests) or ends the process as it would have. */
#define GUARDED 64

typedef struct {
    atomic_int used;         /* the slot taken (its fields being written, or written) */
    _Atomic uintptr_t start; /* 0: nothing guarded; set once the rest is written */
    uintptr_t end;  /* of its last page */
    Py_ssize_t len; /* the file's size when mapped */
    int fd;
    _Atomic intptr_t cut; /* the offset where zeros begin, -1: none */
} Guarded;

static Guarded guarded[GUARDED];
static struct sigaction before;
static atomic_int installed;

static void on_sigbus(int sig, siginfo_t *info, void *context) {
    uintptr_t at = (uintptr_t)info->si_addr, page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < GUARDED; i++) {
        uintptr_t start = atomic_load(&guarded[i].start);
        if (start == 0 || at < start || at >= guarded[i].end) continue;
        uintptr_t from = at & ~(page - 1);
        if (mmap((void *)from, guarded[i].end - from, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
            MAP_FAILED)
            break;
        intptr_t offset = (intptr_t)(from - start), seen = atomic_load(&guarded[i].cut);
        while ((seen < 0 || offset < seen) && !atomic_compare_exchange_weak(&guarded[i].cut, &seen, offset)) {}
        return; /* the read is done again, of zeros */
    }
    if (before.sa_flags & SA_SIGINFO) {
        before.sa_sigaction(sig, info, context);
    } else if (before.sa_handler != SIG_DFL && before.sa_handler != SIG_IGN) {
        before.sa_handler(sig);
    } else { /* the fault comes again on return, and ends the process as it would have */
        signal(SIGBUS, SIG_DFL);
    }
}

static uintptr_t address_of(PyObject *obj, Py_ssize_t *len) {
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0) return 0;
    uintptr_t at = (uintptr_t)view.buf;
    *len = view.len;
    PyBuffer_Release(&view);
    return at;
}

/* guard(mapped, fd) -> key: the mapping of the open file `fd` guarded (0: not, the table full or the mapping empty) */
static PyObject *guard(PyObject *self, PyObject *args) {
    PyObject *obj;
    int fd;
    if (!PyArg_ParseTuple(args, "Oi", &obj, &fd)) return NULL;
    Py_ssize_t len = 0;
    uintptr_t at = address_of(obj, &len);
    if (at == 0 && PyErr_Occurred()) return NULL;
    if (at == 0 || len == 0) return PyLong_FromLong(0);
    if (!atomic_exchange(&installed, 1)) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_sigaction = on_sigbus;
        action.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&action.sa_mask);
        if (sigaction(SIGBUS, &action, &before) != 0) {
            atomic_store(&installed, 0);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
    }
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < GUARDED; i++) /* a slot left for pages unmapped since: two live mappings share no address */
        if (atomic_load(&guarded[i].start) == at) {
            atomic_store(&guarded[i].start, 0);
            atomic_store(&guarded[i].used, 0);
        }
    for (int i = 0; i < GUARDED; i++) {
        int free_slot = 0;
        if (!atomic_compare_exchange_strong(&guarded[i].used, &free_slot, 1)) continue;
        guarded[i].end = (at + (uintptr_t)len + page - 1) & ~(page - 1);
        guarded[i].len = len;
        guarded[i].fd = fd;
        atomic_store(&guarded[i].cut, -1);
        atomic_store(&guarded[i].start, at);
        return PyLong_FromUnsignedLongLong(at);
    }
    return PyLong_FromLong(0);
}

static Guarded *slot_of(uintptr_t at) {
    for (int i = 0; i < GUARDED; i++)
        if (at != 0 && atomic_load(&guarded[i].start) == at) return &guarded[i];
    return NULL;
}

/* unguard(key): the mapping unmapped, its slot free */
static PyObject *unguard(PyObject *self, PyObject *args) {
    unsigned long long key;
    if (!PyArg_ParseTuple(args, "K", &key)) return NULL;
    Guarded *slot = slot_of((uintptr_t)key);
    if (slot != NULL) {
        atomic_store(&slot->start, 0);
        atomic_store(&slot->used, 0);
    }
    Py_RETURN_NONE;
}

/* cut(mapped) -> offset or -1: where the file behind the guarded mapping `mapped` ends, once it was cut while read:
 * the first page of zeros, or the file's size now if smaller (the bytes of a last page past the file's end read as
 * zeros without a fault); -1 while the file is as long as it was mapped */
static PyObject *cut(PyObject *self, PyObject *args) {
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "O", &obj)) return NULL;
    Py_ssize_t len = 0;
    uintptr_t at = address_of(obj, &len);
    if (at == 0 && PyErr_Occurred()) return NULL;
    Guarded *slot = slot_of(at);
    if (slot == NULL) return PyLong_FromLong(-1);
    intptr_t offset = atomic_load(&slot->cut);
    struct stat st;
    if (fstat(slot->fd, &st) == 0 && st.st_size < slot->len && (offset < 0 || st.st_size < offset))
        offset = (intptr_t)st.st_size;
    return PyLong_FromSsize_t((Py_ssize_t)offset);
}

static PyMethodDef methods[] = {
    {"pcap_records", pcap_records, METH_VARARGS, "Offsets of pcap records: (count, next position)."},
    {"pcapng_packets", pcapng_packets, METH_VARARGS,
     "Consecutive pcapng packet blocks walked and checked: (count, next position, first bad row, largest interface)."},
    {"pcap_packets", pcap_packets, METH_VARARGS,
     "Consecutive pcap records walked and checked: (count, next position, first bad row)."},
    {"populate", populate, METH_VARARGS, "A mapped file's pages from start to stop mapped into the process now."},
    {"guard", guard, METH_VARARGS, "A mapping of an open file guarded against the file being cut: its key."},
    {"unguard", unguard, METH_VARARGS, "The guarded mapping of this key gone."},
    {"cut", cut, METH_VARARGS, "Where the guarded mapping's file was cut while read, or -1."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_walk", NULL, -1, methods};

PyMODINIT_FUNC PyInit__walk(void) { return PyModule_Create(&module); }
