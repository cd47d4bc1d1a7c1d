/* What tells network models apart (cniscope.models.evidence: `scan`), counted in one pass over the packet table's
 * column buffers (Arrow C streams of polars' chunks: no copy), where polars made a dozen. The polars path in
 * cniscope.models.evidence gives the same counts and sets (tests/models/test_evidence_c.py); the GIL is released
 * while rows are worked.
 *
 * Each stretch of rows is worked a column at a time: the few rows that count for something (tunnelled, on the asked
 * ports, with an MSS, with an address of an envelope) are picked without a branch a row, then looked at one by one.
 * Every map here is small: it grows with what the capture holds (tunnels, addresses, MSS values), not its rows. */
#include "_columns.h"

/* the columns `scan` is given, in this order */
enum {
    TUNNEL, OUTER_DPORT, VNI, PROTO, SPORT, DPORT, SRC, DST, OUTER_SRC, OUTER_DST, MSS, TCP_FLAGS, IFACE, TTL, ARP_TPA,
    ETH_SRC, ETH_DST, INNER_ETH_SRC, INNER_ETH_DST, ARP_SHA, COLUMNS
};
static const char *NAMES[COLUMNS] = {
    "tunnel", "outer_dport", "vni", "proto", "sport", "dport", "src", "dst", "outer_src", "outer_dst", "mss", "tcp_flags",
    "iface", "ttl", "arp_tpa", "eth_src", "eth_dst", "inner_eth_src", "inner_eth_dst", "arp_sha",
};
/* each column's Arrow formats (column_bits): those read a column at a time have the one width they are read as */
static const char *FORMATS[COLUMNS] = {
    "CSI", "CSI", "CSI", "CSI", "CSI", "CSI", "I", "I", "I", "I", "S", "CSI", "CSI", "CSI", "I", "L", "L", "L", "L", "L",
};
#define FIRST_MAC ETH_SRC

/* what an IPv4 address was seen as (`evidence.TUNNELLED` ...): the source or destination of a tunnelled sighting, of
 * one on a pod's host veth, of BGP, of any sighting; an envelope's end */
enum { TUNNELLED = 1, VETH = 2, BGP = 4, EVERY = 8, OUTER = 16 };

/* an interface's kind (`iface_kinds`, uint16 by category code): bit 15 a pod's host veth, the rest a tunnel device's
 * number + 1 (0: none) */
#define KIND_VETH 0x8000u
#define KIND_DEVICE 0x7fffu

#define BLOCK 1024

/* An open-addressing map of uint64 keys to uint64 values, probed linearly, at most half full; a slot holds its key + 1
 * (0: empty; no key here is 2**64 - 1) and its value side by side. */
typedef struct {
    uint64_t (*slot)[2];
    size_t count, size;
} Map;

static inline size_t map_slot(uint64_t key, size_t size) { return (size_t)(mix(key ^ S0, S1) & (size - 1)); }

/* The map with `size` slots (a power of two), its keys moved over; -1 without the memory. */
static int map_resize(Map *m, size_t size) {
    uint64_t (*slot)[2] = PyMem_RawCalloc(size, sizeof *slot);
    if (!slot)
        return -1;
    for (size_t from = 0; from < m->size; from++) {
        if (!m->slot[from][0])
            continue;
        size_t to = map_slot(m->slot[from][0] - 1, size);
        while (slot[to][0])
            to = (to + 1) & (size - 1);
        slot[to][0] = m->slot[from][0];
        slot[to][1] = m->slot[from][1];
    }
    PyMem_RawFree(m->slot);
    m->slot = slot;
    m->size = size;
    return 0;
}

/* The value of `key`, made 0 if it was not there; NULL without the memory. */
static uint64_t *map_at(Map *m, uint64_t key) {
    if ((m->count + 1) * 2 > m->size && map_resize(m, m->size ? m->size * 2 : 256) < 0)
        return NULL;
    size_t s = map_slot(key, m->size);
    for (; m->slot[s][0]; s = (s + 1) & (m->size - 1))
        if (m->slot[s][0] == key + 1)
            return &m->slot[s][1];
    m->slot[s][0] = key + 1;
    m->count++;
    return &m->slot[s][1];
}

/* The map's keys and values side by side (uint64 pairs), as bytes. */
static PyObject *map_bytes(const Map *m) {
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(m->count * 16));
    if (!out)
        return NULL;
    uint64_t *w = (uint64_t *)PyBytes_AS_STRING(out);
    for (size_t s = 0; s < m->size; s++)
        if (m->slot[s][0]) {
            *w++ = m->slot[s][0] - 1;
            *w++ = m->slot[s][1];
        }
    return out;
}

/* Each address marked lately and its kinds, by its low bits: a capture's few hundred addresses recur. */
#define RECENT 4096

/* What is asked and what is found (`scan`'s arguments and results). */
typedef struct {
    const uint16_t *iface_kinds;
    size_t iface_codes;
    const uint32_t *ports;  /* proto << 16 | port */
    Py_ssize_t n_ports;
    const uint64_t *macs, *prefixes;
    Py_ssize_t n_macs, n_prefixes;
    const uint32_t *gateways;
    Py_ssize_t n_gateways;
    int every;
    uint8_t port_set[8192];  /* bit p: port p is asked (179 among them) */
    int64_t *port_rows, *mac_rows, *prefix_rows, *gateway_rows;
    int64_t bgp_rows;
    Map envelopes, addresses, syns, ttls;
    uint64_t envelope, envelope_rows;  /* the envelope of the rows just before, not yet counted in `envelopes` */
    uint64_t (*recent)[2];  /* RECENT (address, kinds) */
    uint64_t (*recent_ttls)[2];  /* RECENT (key of `ttls`, count not yet added to it) */
} Scan;

/* `address` given `kinds` too (ORed), unless the address marked last at its place in `recent` was it, with them
 * already: -1 without the memory. */
static inline int mark(Scan *s, uint64_t address, uint64_t kinds) {
    uint64_t *last = s->recent[address & (RECENT - 1)];
    if (last[0] == address && (last[1] & kinds) == kinds)
        return 0;
    uint64_t *value = map_at(&s->addresses, address);
    if (!value)
        return -1;
    *value |= kinds;
    last[0] = address;
    last[1] = *value;
    return 0;
}

static inline int count(Map *m, uint64_t key, uint64_t n) {
    uint64_t *value = map_at(m, key);
    if (!value)
        return -1;
    *value += n;
    return 0;
}

/* A sighting on a tunnel device counted for its `ttls` key: in `recent_ttls`, by the key's low bits, where the key
 * counted last at its place is added to the map when another takes it (a capture's few hundred keys recur: at 10M,
 * 2M sightings on flannel.1, the map probed for each took 50 ms). -1 without the memory. */
static inline int count_ttl(Scan *s, uint64_t key) {
    uint64_t *last = s->recent_ttls[(key ^ key >> 29 ^ key >> 40) & (RECENT - 1)];
    if (last[0] != key) {
        if (last[1] && count(&s->ttls, last[0], last[1]) < 0)
            return -1;
        last[0] = key;
        last[1] = 0;
    }
    last[1]++;
    return 0;
}

/* The value of row `i` of a column's stretch into `v`: whether it is there (not null). */
static inline int cell(const Column *c, int64_t i, uint32_t *v) {
    if (!c->values)
        return 0;
    int64_t j = c->bit + i;
    if (c->validity && !((c->validity[j >> 3] >> (j & 7)) & 1))
        return 0;
    *v = c->bits == 8 ? c->values[j] : c->bits == 16 ? ((const uint16_t *)c->values)[j] : ((const uint32_t *)c->values)[j];
    return 1;
}

/* The `n` (at most 64) bits of a bitmap from bit `first`, bit k for bit first + k. */
static inline uint64_t bitmap_bits(const uint8_t *map, int64_t first, int n) {
    const uint8_t *bits = map + (first >> 3);
    int shift = first & 7, bytes = (shift + n + 7) >> 3;
    uint64_t w = 0;
    for (int k = 0; k < bytes && k < 8; k++)
        w |= (uint64_t)bits[k] << (8 * k);
    w >>= shift;
    if (bytes == 9)
        w |= (uint64_t)bits[8] << (64 - shift);
    return n == 64 ? w : w & ((1ULL << n) - 1);
}

/* The null flags of `n` (at most 64) values from value `first` of a column's buffers, bit k for value first + k: 1
 * where there is a value. */
static inline uint64_t valid_bits(const Column *c, int64_t first, int n) {
    if (!c->values)
        return 0;
    if (!c->validity)
        return n == 64 ? UINT64_MAX : (1ULL << n) - 1;
    return bitmap_bits(c->validity, first, n);
}

/* Rows [start, start + n) of a column's stretch widened into `v`, 0 where null (or all 0: the column is not there).
 * 8 at a time: vectorised. */
static void load(const Column *c, int64_t start, int n, uint32_t *restrict v) {
    if (!c->values) {
        memset(v, 0, n * sizeof *v);
        return;
    }
    int64_t first = c->bit + start;
    int i = 0;
    if (c->bits == 8) {
        const uint8_t *p = c->values + first;
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) v[i + k] = p[i + k];
        for (; i < n; i++) v[i] = p[i];
    } else if (c->bits == 16) {
        const uint16_t *p = (const uint16_t *)c->values + first;
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) v[i + k] = p[i + k];
        for (; i < n; i++) v[i] = p[i];
    } else
        memcpy(v, (const uint32_t *)c->values + first, n * sizeof *v);
    if (!c->validity)
        return;
    for (i = 0; i < n; i += 64) {  /* nulls to 0 */
        int m = n - i < 64 ? n - i : 64;
        uint64_t valid = valid_bits(c, first + i, m);
        if (valid != (m == 64 ? UINT64_MAX : (1ULL << m) - 1))
            for (int k = 0; k < m; k++) v[i + k] &= -(uint32_t)((valid >> k) & 1);
    }
}

typedef struct {
    uint32_t a[BLOCK], b[BLOCK];
    uint16_t picked[BLOCK];
} Block;

/* The envelopes among rows [start, start + n): their kind, port and VNI counted (a run of rows with one, most often
 * every envelope of the capture, added when it ends), their inner ends marked TUNNELLED. */
static int block_envelopes(const Column *col, int64_t start, int n, Block *b, Scan *s) {
    if (!col[TUNNEL].values)
        return 0;
    load(&col[TUNNEL], start, n, b->a);
    int picked = 0;
    for (int i = 0; i < n; i++) {
        b->picked[picked] = (uint16_t)i;
        picked += b->a[i] != 0;
    }
    for (int k = 0; k < picked; k++) {
        int64_t row = start + b->picked[k];
        uint32_t port = 0, vni = 0, address;
        uint64_t has_port = cell(&col[OUTER_DPORT], row, &port), has_vni = cell(&col[VNI], row, &vni);
        uint64_t key = b->a[b->picked[k]] | has_port << 8 | (uint64_t)port << 9 | has_vni << 25 | (uint64_t)vni << 26;
        if (key == s->envelope)
            s->envelope_rows++;
        else {
            if (s->envelope_rows && count(&s->envelopes, s->envelope, s->envelope_rows) < 0)
                return -1;
            s->envelope = key;
            s->envelope_rows = 1;
        }
        if ((cell(&col[SRC], row, &address) && mark(s, address, TUNNELLED) < 0) ||
            (cell(&col[DST], row, &address) && mark(s, address, TUNNELLED) < 0))
            return -1;
    }
    return 0;
}

/* Whether row `i` of the stretch is to or from `port`. */
static inline int on_port(const Column *col, int64_t i, uint32_t port) {
    uint32_t v;
    return (cell(&col[SPORT], i, &v) && v == port) || (cell(&col[DPORT], i, &v) && v == port);
}

/* The sightings among rows [start, start + n) on an asked port (picked without a branch a row): each
 * plain (not tunnelled) one counted for each asked port of its protocol it is to or from; those of BGP (TCP 179)
 * counted if plain, their ends marked BGP either way. */
static int block_ports(const Column *col, int64_t start, int n, Block *b, Scan *s) {
    if (!col[PROTO].values || (!col[SPORT].values && !col[DPORT].values))
        return 0;
    load(&col[SPORT], start, n, b->a);
    load(&col[DPORT], start, n, b->b);
    int picked = 0;  /* (a null port is 0: looked at again below, if port 0 is asked) */
    for (int i = 0; i < n; i++) {
        uint32_t a = b->a[i] & 0xffff, d = b->b[i] & 0xffff;
        b->picked[picked] = (uint16_t)i;
        picked += ((s->port_set[a >> 3] >> (a & 7)) | (s->port_set[d >> 3] >> (d & 7))) & 1;
    }
    for (int k = 0; k < picked; k++) {
        int64_t row = start + b->picked[k];
        uint32_t proto, tunnel = 0, address;
        if (!cell(&col[PROTO], row, &proto))
            continue;
        int plain = !cell(&col[TUNNEL], row, &tunnel) || !tunnel;
        for (Py_ssize_t p = 0; plain && p < s->n_ports; p++)
            s->port_rows[p] += proto == s->ports[p] >> 16 && on_port(col, row, s->ports[p] & 0xffff);
        if (proto != 6 || !on_port(col, row, 179))
            continue;
        s->bgp_rows += plain;
        if ((cell(&col[SRC], row, &address) && mark(s, address, BGP) < 0) ||
            (cell(&col[DST], row, &address) && mark(s, address, BGP) < 0))
            return -1;
    }
    return 0;
}

/* Rows [start, start + n) on a pod's host veth (their ends marked VETH) or on a tunnel device (those with a source
 * and a TTL counted by both). */
static int block_interfaces(const Column *col, int64_t start, int n, Block *b, Scan *s) {
    if (!s->iface_codes || !col[IFACE].values)
        return 0;
    load(&col[IFACE], start, n, b->a);  /* (a null is code 0: looked at again below) */
    int picked = 0;
    for (int i = 0; i < n; i++) {
        uint32_t code = b->a[i];
        b->b[i] = code < s->iface_codes ? s->iface_kinds[code] : 0;
        b->picked[picked] = (uint16_t)i;
        picked += b->b[i] != 0;
    }
    for (int k = 0; k < picked; k++) {
        int64_t row = start + b->picked[k];
        uint32_t kind = b->b[b->picked[k]], code, src = 0, dst, ttl;
        if (!cell(&col[IFACE], row, &code))
            continue;
        int has_src = cell(&col[SRC], row, &src);
        if (kind & KIND_VETH && ((has_src && mark(s, src, VETH) < 0) || (cell(&col[DST], row, &dst) && mark(s, dst, VETH) < 0)))
            return -1;
        if (kind & KIND_DEVICE && has_src && cell(&col[TTL], row, &ttl) &&
                count_ttl(s, (uint64_t)(kind & KIND_DEVICE) << 40 | (uint64_t)ttl << 32 | src) < 0)
            return -1;
    }
    return 0;
}

/* Rows [start, start + n) of the columns' current stretch: envelopes, ports, interfaces. -1 without the memory. */
static int scan_block(const Column *col, int64_t start, int n, Block *b, Scan *s) {
    if (block_envelopes(col, start, n, b, s) < 0 || block_ports(col, start, n, b, s) < 0 || block_interfaces(col, start, n, b, s) < 0)
        return -1;
    return 0;
}

/* The rows of a column's stretch (`rows` rows) that hold a value: `body` with `i`, the row, and `v`, its value (`T`),
 * 64 rows at a time, those without one skipped. */
#define EACH_VALUE(c, rows, T, ...)                                                \
    do {                                                                          \
        const T *values_ = (const T *)(c)->values + (c)->bit;                     \
        for (int64_t at_ = 0; at_ < (rows); at_ += 64) {                          \
            int n_ = (rows) - at_ < 64 ? (int)((rows) - at_) : 64;                \
            for (uint64_t w_ = valid_bits((c), (c)->bit + at_, n_); w_; w_ &= w_ - 1) { \
                int64_t i = at_ + __builtin_ctzll(w_);                            \
                T v = values_[i];                                                 \
                __VA_ARGS__                                                       \
            }                                                                     \
        }                                                                         \
    } while (0)

/* The ends of the envelopes (OUTER), the SYNs with an MSS and a source, and with `every` each sighting's ends (EVERY),
 * of a stretch of `rows` rows. -1 without the memory. */
static int scan_sparse(const Column *col, int64_t rows, Scan *s) {
    int failed = 0;
    for (int c = OUTER_SRC; c <= OUTER_DST && col[c].values; c++)
        EACH_VALUE(&col[c], rows, uint32_t, { failed |= mark(s, v, OUTER) < 0; });
    if (col[MSS].values)
        EACH_VALUE(&col[MSS], rows, uint16_t, {
            uint32_t flags, src;
            if (cell(&col[TCP_FLAGS], i, &flags) && flags & 2 && cell(&col[SRC], i, &src))
                failed |= count(&s->syns, (uint64_t)v << 32 | src, 1) < 0;
        });
    for (int c = SRC; s->every && c <= DST && col[c].values; c++)
        EACH_VALUE(&col[c], rows, uint32_t, { failed |= mark(s, v, EVERY) < 0; });
    if (col[ARP_TPA].values)
        EACH_VALUE(&col[ARP_TPA], rows, uint32_t, {
            for (Py_ssize_t k = 0; k < s->n_gateways; k++)
                s->gateway_rows[k] += v == s->gateways[k];
        });
    return failed ? -1 : 0;
}

/* The 64-bit compares below vectorised where the machine has AVX2 (a clone of the function for it, chosen when the
 * module loads); SSE2 has no 64-bit compare. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__GLIBC__)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
#endif

/* Rows [at, end) of the MAC columns without nulls (`n_dense` of them) where any holds `wanted` (a MAC; a prefix with
 * `shift` 32: a value's top 16 of 48 bits) counted, 8 rows at a time: vectorised for the usual one or two columns
 * (Ethernet's source, and destination but in LINUX_SLL2). */
VECTOR_CLONES static uint64_t dense_rows(const uint64_t *const *dense, int n_dense, int64_t at, int64_t end,
                                         uint64_t wanted, int shift) {
    uint64_t found = 0;
    int64_t i = at;
    if (n_dense == 1) {
        const uint64_t *a = dense[0];
        for (; i + 8 <= end; i += 8)
            for (int j = 0; j < 8; j++) found += a[i + j] >> shift == wanted;
    } else if (n_dense == 2) {
        const uint64_t *a = dense[0], *b = dense[1];
        for (; i + 8 <= end; i += 8)
            for (int j = 0; j < 8; j++) found += (a[i + j] >> shift == wanted) | (b[i + j] >> shift == wanted);
    }
    for (; i < end; i++) {
        int any = 0;
        for (int d = 0; d < n_dense; d++)
            any |= dense[d][i] >> shift == wanted;
        found += any;
    }
    return found;
}

/* The rows of a stretch (`rows` rows) where any MAC column (Ethernet's, the inner frame's, ARP's sender) holds each
 * asked MAC, or a MAC under each asked prefix, counted (`s->n_macs` + `s->n_prefixes` at most 8: `scan`): a frame
 * counts once however many of its MACs match, as Wireshark's `eth.addr` counts it. The columns without nulls by
 * `dense_rows`, over 2048 rows at a time (in L1 after the first asked value); then the rows where another column holds
 * a value (most rows of the inner frames' and ARP's columns hold none), one by one, unless a column without nulls
 * counted them already. */
static void count_macs(const Column *col, int64_t rows, Scan *s) {
    int macs = (int)s->n_macs, n_asked = macs + (int)s->n_prefixes, n_dense = 0, n_sparse = 0;
    if (!n_asked)
        return;
    uint64_t asked[8], counted[8] = {0};
    int shift[8];
    const uint64_t *dense[COLUMNS - FIRST_MAC], *sparse_values[COLUMNS - FIRST_MAC];
    const Column *sparse[COLUMNS - FIRST_MAC];
    for (int k = 0; k < n_asked; k++) {
        asked[k] = k < macs ? s->macs[k] : s->prefixes[k - macs];
        shift[k] = k < macs ? 0 : 32;
    }
    for (int c = FIRST_MAC; c < COLUMNS; c++) {
        const Column *m = &col[c];
        if (!m->values)
            continue;
        const uint64_t *v = (const uint64_t *)m->values + m->bit;
        if (m->validity) {
            sparse[n_sparse] = m;
            sparse_values[n_sparse++] = v;
        } else {
            dense[n_dense++] = v;
        }
    }
    for (int64_t at = 0; n_dense && at < rows; at += 2048)
        for (int k = 0; k < n_asked; k++)
            counted[k] += dense_rows(dense, n_dense, at, rows - at < 2048 ? rows : at + 2048, asked[k], shift[k]);
    for (int64_t at = 0; n_sparse && at < rows; at += 64) {
        int n = rows - at < 64 ? (int)(rows - at) : 64;
        uint64_t valid[COLUMNS - FIRST_MAC], held = 0;
        for (int c = 0; c < n_sparse; c++)
            held |= valid[c] = valid_bits(sparse[c], sparse[c]->bit + at, n);
        for (; held; held &= held - 1) {
            int j = __builtin_ctzll(held);
            int64_t i = at + j;
            for (int k = 0; k < n_asked; k++) {
                int in_dense = 0, in_sparse = 0;
                for (int d = 0; d < n_dense; d++)
                    in_dense |= dense[d][i] >> shift[k] == asked[k];
                for (int c = 0; c < n_sparse; c++)
                    in_sparse |= (valid[c] >> j & 1) && sparse_values[c][i] >> shift[k] == asked[k];
                counted[k] += !in_dense && in_sparse;
            }
        }
    }
    for (int k = 0; k < n_asked; k++)
        *(k < macs ? &s->mac_rows[k] : &s->prefix_rows[k - macs]) += (int64_t)counted[k];
}

/* A contiguous buffer of `size`-byte items: how many, or -1 (the error set) if it is not one. */
static Py_ssize_t items(Py_buffer *b, Py_ssize_t size, const char *name) {
    if (b->len % size) {
        PyErr_Format(PyExc_ValueError, "%s: not %zd-byte items", name, size);
        return -1;
    }
    return b->len / size;
}

/* scan(columns, rows, iface_kinds, ports, macs, prefixes, gateways, every, port_rows, mac_rows, prefix_rows,
 * gateway_rows) -> (bgp_rows, envelopes, addresses, syns, ttls): one pass over `rows` rows of the packet table.
 * `columns`: a tuple of Arrow stream capsules (None: all null) in the order of NAMES, unsigned integers (the
 * interface by its category code). Asked: `iface_kinds` (uint16 by interface code: KIND_VETH, a tunnel device's
 * number + 1), `ports` (uint32: proto << 16 | port), `macs` (uint64), `prefixes` (uint64: a MAC's top 16 bits; at
 * most 8 MACs and prefixes), `gateways` (uint32, IPv4); `every`: every sighting's ends marked EVERY. Counted into
 * `*_rows` (int64, one an asked value, added to): the plain (not tunnelled) sightings to or from each port in its
 * protocol, the rows whose MAC columns hold each MAC or one under each prefix, the ARP targets equal to each
 * gateway. Returned: the plain sightings of BGP (TCP 179), and maps as their uint64 keys and values side by side
 * (bytes): the envelopes (tunnel | has port << 8 | port << 9 | has VNI << 25 | VNI << 26 -> sightings), the IPv4
 * addresses (-> what they were seen as: TUNNELLED, VETH, BGP, EVERY, OUTER), the SYNs with an MSS and a source (MSS <<
 * 32 | source -> sightings), those on a tunnel device with a source and a TTL (device << 40 | TTL << 32 | source ->
 * sightings). */
static PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *columns;
    Py_ssize_t rows;
    int every;
    Py_buffer kinds_, ports_, macs_, prefixes_, gateways_, port_rows_, mac_rows_, prefix_rows_, gateway_rows_;
    if (!PyArg_ParseTuple(args, "O!ny*y*y*y*y*pw*w*w*w*", &PyTuple_Type, &columns, &rows, &kinds_, &ports_, &macs_, &prefixes_,
                          &gateways_, &every, &port_rows_, &mac_rows_, &prefix_rows_, &gateway_rows_))
        return NULL;
    PyObject *result = NULL, *found[4] = {NULL, NULL, NULL, NULL};
    Column col[COLUMNS];
    memset(col, 0, sizeof col);
    Scan s = {.iface_kinds = kinds_.buf, .ports = ports_.buf, .macs = macs_.buf, .prefixes = prefixes_.buf,
              .gateways = gateways_.buf, .every = every, .port_rows = port_rows_.buf, .mac_rows = mac_rows_.buf,
              .prefix_rows = prefix_rows_.buf, .gateway_rows = gateway_rows_.buf};
    Block *block = NULL;
    Py_ssize_t codes = items(&kinds_, 2, "iface_kinds");
    if (codes < 0 || (s.n_ports = items(&ports_, 4, "ports")) < 0 || (s.n_macs = items(&macs_, 8, "macs")) < 0 ||
            (s.n_prefixes = items(&prefixes_, 8, "prefixes")) < 0 || (s.n_gateways = items(&gateways_, 4, "gateways")) < 0)
        goto done;
    s.iface_codes = (size_t)codes;
    if (port_rows_.len != s.n_ports * 8 || mac_rows_.len != s.n_macs * 8 || prefix_rows_.len != s.n_prefixes * 8 ||
            gateway_rows_.len != s.n_gateways * 8 || s.n_macs + s.n_prefixes > 8) {
        PyErr_SetString(PyExc_ValueError, "not one int64 count an asked value, or more than 8 MACs and prefixes");
        goto done;
    }
    if (PyTuple_GET_SIZE(columns) != COLUMNS || rows < 0) {
        PyErr_Format(PyExc_ValueError, "%d columns wanted", COLUMNS);
        goto done;
    }
    s.port_set[179 >> 3] |= 1 << (179 & 7);
    for (Py_ssize_t k = 0; k < s.n_ports; k++)
        s.port_set[(s.ports[k] & 0xffff) >> 3] |= 1 << (s.ports[k] & 7);
    for (int k = 0; k < COLUMNS; k++)
        if (column_load(PyTuple_GET_ITEM(columns, k), rows, &col[k], NAMES[k], FORMATS[k]) < 0)
            goto done;
    block = PyMem_RawMalloc(sizeof *block);
    s.recent = PyMem_RawMalloc(RECENT * sizeof *s.recent);
    s.recent_ttls = PyMem_RawCalloc(RECENT, sizeof *s.recent_ttls);  /* (a count of 0: no key there) */
    if (!block || !s.recent || !s.recent_ttls) {
        PyErr_NoMemory();
        goto done;
    }
    for (int k = 0; k < RECENT; k++) {  /* (an address is 32 bits: none is UINT64_MAX) */
        s.recent[k][0] = UINT64_MAX;
        s.recent[k][1] = 0;
    }
    int64_t done = 0;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    while (done < rows && !failed) {
        int64_t stretch = columns_seek(col, COLUMNS, rows - done);
        if (stretch <= 0) {
            failed = 2;
            break;
        }
        for (int64_t i = 0; i < stretch && !failed; i += BLOCK)
            failed = scan_block(col, i, stretch - i < BLOCK ? (int)(stretch - i) : BLOCK, block, &s) < 0;
        failed = failed || scan_sparse(col, stretch, &s) < 0;
        count_macs(col, stretch, &s);
        for (int k = 0; k < COLUMNS; k++)
            col[k].pos += stretch;
        done += stretch;
    }
    if (!failed && s.envelope_rows && count(&s.envelopes, s.envelope, s.envelope_rows) < 0)
        failed = 1;
    for (int k = 0; k < RECENT && !failed; k++)
        if (s.recent_ttls[k][1] && count(&s.ttls, s.recent_ttls[k][0], s.recent_ttls[k][1]) < 0)
            failed = 1;
    Py_END_ALLOW_THREADS
    if (failed) {
        if (failed == 2)
            PyErr_SetString(PyExc_ValueError, "a column ends early");
        else
            PyErr_NoMemory();
        goto done;
    }
    Map *maps[4] = {&s.envelopes, &s.addresses, &s.syns, &s.ttls};
    for (int k = 0; k < 4; k++)
        if (!(found[k] = map_bytes(maps[k])))
            goto done;
    result = Py_BuildValue("LOOOO", (long long)s.bgp_rows, found[0], found[1], found[2], found[3]);
done:
    for (int k = 0; k < 4; k++)
        Py_XDECREF(found[k]);
    for (int k = 0; k < COLUMNS; k++)
        column_free(&col[k]);
    PyMem_RawFree(s.envelopes.slot);
    PyMem_RawFree(s.addresses.slot);
    PyMem_RawFree(s.syns.slot);
    PyMem_RawFree(s.ttls.slot);
    PyMem_RawFree(s.recent);
    PyMem_RawFree(s.recent_ttls);
    PyMem_RawFree(block);
    PyBuffer_Release(&kinds_);
    PyBuffer_Release(&ports_);
    PyBuffer_Release(&macs_);
    PyBuffer_Release(&prefixes_);
    PyBuffer_Release(&gateways_);
    PyBuffer_Release(&port_rows_);
    PyBuffer_Release(&mac_rows_);
    PyBuffer_Release(&prefix_rows_);
    PyBuffer_Release(&gateway_rows_);
    return result;
}

/* code_counts(column, rows) -> counts: how many times each value of a uint32 column of `rows` rows (an Arrow stream
 * capsule: a categorical column's codes) appears, nulls left out: int64 by value, as bytes, up to the greatest value
 * (b"" if none). The codes that follow one another are often the same, and one counter would wait on its own last
 * increment: below 4096 (most captures' names), counted in four tables, a row's by its place modulo 4. */
static PyObject *code_counts(PyObject *self, PyObject *args) {
    PyObject *capsule;
    Py_ssize_t rows;
    Column c;
    if (!PyArg_ParseTuple(args, "On", &capsule, &rows) || column_load(capsule, rows, &c, "codes", "I") < 0)
        return NULL;
    int64_t (*low)[4] = PyMem_RawCalloc(4096, sizeof *low), *counts = NULL;
    size_t size = 0, used = 0;  /* `counts`: of every code, its room grown as codes come */
    int failed = !low;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < c.count && !failed; k++) {
        c.at = k;
        c.pos = 0;
        if (!c.chunks[k].length)
            continue;  /* (column_seek would go on to the next chunk, counted twice then) */
        int64_t n = column_seek(&c);
        const uint32_t *codes = (const uint32_t *)c.values + c.bit;
        for (int64_t i = 0; c.values && i < n; i++) {
            uint32_t code = codes[i];
            if (c.validity && !((c.validity[(c.bit + i) >> 3] >> ((c.bit + i) & 7)) & 1))
                continue;
            if (code < 4096) {
                low[code][i & 3]++;
                continue;
            }
            if (code >= size) {  /* room up to this code, twice what there was at least */
                size_t grown = (size_t)code + 1 > 2 * size ? (size_t)code + 1 : 2 * size;
                int64_t *more = PyMem_RawRealloc(counts, grown * sizeof *more);
                if (!more) {
                    failed = 1;
                    break;
                }
                memset(more + size, 0, (grown - size) * sizeof *more);
                counts = more;
                size = grown;
            }
            counts[code]++;
        }
    }
    if (!failed && size < 4096) {  /* the four tables' sums into `counts` */
        int64_t *more = PyMem_RawRealloc(counts, 4096 * sizeof *more);
        if (more) {
            memset(more + size, 0, (4096 - size) * sizeof *more);
            counts = more;
            size = 4096;
        } else
            failed = 1;
    }
    for (size_t code = 0; !failed && code < 4096; code++)
        counts[code] = low[code][0] + low[code][1] + low[code][2] + low[code][3];
    used = failed ? 0 : size;
    while (used && !counts[used - 1])
        used--;
    Py_END_ALLOW_THREADS
    column_free(&c);
    PyObject *result = failed ? PyErr_NoMemory() : PyBytes_FromStringAndSize(used ? (const char *)counts : "", (Py_ssize_t)(used * 8));
    PyMem_RawFree(low);
    PyMem_RawFree(counts);
    return result;
}

/* The true values of a boolean column among `n` (at most 64) rows of its stretch from row `start`: bit k for row
 * start + k (nulls are not true). */
static inline uint64_t true_bits(const Column *c, int64_t start, int n) {
    return c->values ? bitmap_bits(c->values, c->bit + start, n) & valid_bits(c, c->bit + start, n) : 0;
}

/* What `bad_checksums` finds: the rows written so far, the interfaces' counts, the journeys seen (a bit each). */
typedef struct {
    uint32_t *inner, *journeys, *outer;
    int64_t n_inner, n_outer, packets;
    int64_t *counts;  /* by interface code, `codes` of them */
    size_t codes;
    uint64_t *seen;  /* `words` words of bits by journey */
    size_t words;
} Bad;

/* `*table` (of `*size` items of `item` bytes) grown, zeroed, to hold item `index` at least; -1 without the memory. */
static int grow(void **table, size_t *size, size_t item, size_t index) {
    if (index < *size)
        return 0;
    size_t grown = index + 1 > 2 * *size ? index + 1 : 2 * *size;
    uint8_t *more = PyMem_RawRealloc(*table, grown * item);
    if (!more)
        return -1;
    memset(more + *size * item, 0, (grown - *size) * item);
    *table = more;
    *size = grown;
    return 0;
}

enum { CSUM_BAD, CSUM_PROTO, CSUM_OUTER, CSUM_IFACE, CSUM_JOURNEY, CSUM_COLUMNS };
static const char *CSUM_NAMES[CSUM_COLUMNS] = {"l4_csum_bad", "proto", "outer_l4_csum_bad", "iface", "journey"};
static const char *CSUM_FORMATS[CSUM_COLUMNS] = {"b", "CSI", "b", "I", "I"};

/* The `n` rows of the columns' stretch, whose first row is the table's row `first`: the bad ones written
 * and counted. The bad checksums (half the rows of some captures) are found 64 rows at a time from the bitmaps, and
 * only their protocols read (TCP or UDP nearly all). -1 without the memory, -2 for a bad row without a journey. */
static int bad_rows(const Column *col, int64_t n, int64_t first, Bad *b) {
    for (int64_t i = 0; i < n; i += 64) {
        int m = n - i < 64 ? (int)(n - i) : 64;
        uint64_t inner = true_bits(&col[CSUM_BAD], i, m), outer = true_bits(&col[CSUM_OUTER], i, m);
        for (uint64_t any = inner | outer; any; any &= any - 1) {
            int k = __builtin_ctzll(any);
            int64_t at = i + k;
            uint32_t row = (uint32_t)(first + at), code, journey = row, proto;
            if (inner >> k & 1 && !(cell(&col[CSUM_PROTO], at, &proto) && (proto == 6 || proto == 17))) {
                inner &= ~(1ULL << k);  /* not TCP nor UDP */
                if (!(outer >> k & 1))
                    continue;
            }
            if (cell(&col[CSUM_IFACE], at, &code)) {
                if (code >= b->codes && grow((void **)&b->counts, &b->codes, sizeof *b->counts, code) < 0)
                    return -1;
                b->counts[code]++;
            }
            if (outer >> k & 1)
                b->outer[b->n_outer++] = row;
            if (!(inner >> k & 1))
                continue;
            if (col[CSUM_JOURNEY].bits) {
                if (!cell(&col[CSUM_JOURNEY], at, &journey))
                    return -2;
                uint64_t *word = (journey >> 6) < b->words ? &b->seen[journey >> 6] : NULL;
                if (!word) {
                    if (grow((void **)&b->seen, &b->words, sizeof *b->seen, journey >> 6) < 0)
                        return -1;
                    word = &b->seen[journey >> 6];
                }
                b->packets += !(*word >> (journey & 63) & 1);
                *word |= 1ULL << (journey & 63);
                b->journeys[b->n_inner] = journey;
            } else
                b->packets++;  /* each row its own journey */
            b->inner[b->n_inner++] = row;
        }
    }
    return 0;
}

/* bad_checksums(columns, rows, inner, journeys, outer) -> (inner rows, outer rows, packets, counts): one pass over
 * `rows` rows (fewer than 2**32) of `columns` (Arrow stream capsules, None: all null, in the order of CSUM_NAMES; the
 * interface by its category code; no journey: each row its own). Written, in row order, into uint32 buffers of `rows`
 * items: the rows of TCP/UDP sightings whose checksum is bad (`inner`) and the journey of each (`journeys`; empty
 * without journeys), the rows whose outer checksum is bad (`outer`). Returned: how many of each, how many distinct
 * journeys the inner ones are, and how many bad rows (inner or outer) each interface code has (int64 by code, as
 * bytes, up to the greatest code counted; b"" if none). */
static PyObject *bad_checksums(PyObject *self, PyObject *args) {
    PyObject *columns, *result = NULL;
    Py_ssize_t rows;
    Py_buffer inner_, journeys_, outer_;
    if (!PyArg_ParseTuple(args, "O!nw*w*w*", &PyTuple_Type, &columns, &rows, &inner_, &journeys_, &outer_))
        return NULL;
    Column col[CSUM_COLUMNS];
    memset(col, 0, sizeof col);
    Bad b = {.inner = inner_.buf, .journeys = journeys_.buf, .outer = outer_.buf};
    if (PyTuple_GET_SIZE(columns) != CSUM_COLUMNS || rows < 0 || rows > (Py_ssize_t)UINT32_MAX ||
            inner_.len != rows * 4 || outer_.len != rows * 4) {
        PyErr_Format(PyExc_ValueError, "%d columns and buffers of `rows` uint32 wanted, fewer than 2**32 rows", CSUM_COLUMNS);
        goto done;
    }
    for (int k = 0; k < CSUM_COLUMNS; k++)
        if (column_load(PyTuple_GET_ITEM(columns, k), rows, &col[k], CSUM_NAMES[k], CSUM_FORMATS[k]) < 0)
            goto done;
    if (journeys_.len != (col[CSUM_JOURNEY].bits ? rows * 4 : 0)) {
        PyErr_SetString(PyExc_ValueError, "`journeys`: `rows` uint32 wanted with journeys, none without");
        goto done;
    }
    int64_t done = 0;
    int failed = 0;
    size_t used = 0;
    Py_BEGIN_ALLOW_THREADS
    while (done < rows && !failed) {
        int64_t stretch = columns_seek(col, CSUM_COLUMNS, rows - done);
        if (stretch <= 0) {
            failed = -3;
            break;
        }
        failed = bad_rows(col, stretch, done, &b);
        for (int k = 0; k < CSUM_COLUMNS; k++)
            col[k].pos += stretch;
        done += stretch;
    }
    used = b.codes;
    while (used && !b.counts[used - 1])
        used--;
    Py_END_ALLOW_THREADS
    if (failed) {
        if (failed == -1)
            PyErr_NoMemory();
        else
            PyErr_SetString(PyExc_ValueError, failed == -2 ? "a bad checksum's row has no journey" : "a column ends early");
        goto done;
    }
    result = Py_BuildValue("LLLy#", (long long)b.n_inner, (long long)b.n_outer, (long long)b.packets,
                           used ? (const char *)b.counts : "", (Py_ssize_t)(used * 8));
done:
    for (int k = 0; k < CSUM_COLUMNS; k++)
        column_free(&col[k]);
    PyMem_RawFree(b.counts);
    PyMem_RawFree(b.seen);
    PyBuffer_Release(&inner_);
    PyBuffer_Release(&journeys_);
    PyBuffer_Release(&outer_);
    return result;
}

/* distinct_counts(keys, values, limit, most, probe) -> (counts, met, firsts, sizes, probes) or None: of each key of
 * `keys` (uint32, each below `most`) among its rows, how many distinct `values` (uint32, as many, each below `limit`)
 * it has (int64 by key: `most` of them); and of the keys in the order they were first met (`met`, uint32) their first
 * row (int64), their rows (int64), and their first `probe` values at most, one key's after another's (uint32): each
 * as bytes. A bit a value for each key met (a capture's few tunnel pairs: no hashing of its millions of envelopes'
 * journeys); None where those bits and probes would take more than 64 MB. */
static PyObject *distinct_counts(PyObject *self, PyObject *args) {
    Py_buffer keys_, values_;
    Py_ssize_t limit, most, probe;
    if (!PyArg_ParseTuple(args, "y*y*nnn", &keys_, &values_, &limit, &most, &probe))
        return NULL;
    PyObject *result = NULL;
    int64_t *counts = NULL, *firsts = NULL, *sizes = NULL;
    uint64_t **bits = NULL;
    uint32_t *order = NULL, **probes = NULL, *kept = NULL;
    Py_ssize_t n = keys_.len / 4, words = (limit + 63) / 64, met = 0, room = most ? most : 1;
    if (keys_.len % 4 || values_.len != keys_.len || limit < 0 || most < 0 || most > (1 << 24) || probe < 0 || probe > (1 << 20)) {
        PyErr_SetString(PyExc_ValueError, "as many uint32 keys as values, at most 2**24 keys and 2**20 probes");
        goto done;
    }
    counts = PyMem_RawCalloc(room, sizeof *counts);
    firsts = PyMem_RawMalloc(room * sizeof *firsts);
    sizes = PyMem_RawCalloc(room, sizeof *sizes);  /* by key while counting, by order after */
    bits = PyMem_RawCalloc(room, sizeof *bits);
    probes = PyMem_RawCalloc(room, sizeof *probes);
    order = PyMem_RawMalloc(room * sizeof *order);
    if (!counts || !firsts || !sizes || !bits || !probes || !order) {
        PyErr_NoMemory();
        goto done;
    }
    const uint32_t *keys = keys_.buf, *values = values_.buf;
    int failed = 0;  /* 1: no memory, 2: a key or value out of bounds, 3: too many bits */
    Py_ssize_t held = 0;  /* probe values kept in all */
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t key = keys[i], value = values[i];
        if (key >= (uint64_t)most || value >= (uint64_t)limit) {
            failed = 2;
            break;
        }
        uint64_t *mine = bits[key];
        if (!mine) {
            if ((uint64_t)(met + 1) * ((uint64_t)words * 8 + (uint64_t)probe * 4) > (64u << 20)) {
                failed = 3;
                break;
            }
            if (!(mine = bits[key] = PyMem_RawCalloc(words ? words : 1, 8)) ||
                    !(probes[key] = PyMem_RawMalloc((probe ? probe : 1) * sizeof **probes))) {
                failed = 1;
                break;
            }
            firsts[met] = i;
            order[met++] = key;
        }
        uint64_t bit = 1ULL << (value & 63);
        counts[key] += !(mine[value >> 6] & bit);
        mine[value >> 6] |= bit;
        if (sizes[key] < probe) {
            probes[key][sizes[key]] = value;
            held++;
        }
        sizes[key]++;
    }
    if (!failed && !(kept = PyMem_RawMalloc((held ? held : 1) * sizeof *kept)))
        failed = 1;
    Py_ssize_t at = 0;
    for (Py_ssize_t k = 0; !failed && k < met; k++) {  /* the probes, one key's after another's */
        uint32_t key = order[k];
        Py_ssize_t m = sizes[key] < probe ? (Py_ssize_t)sizes[key] : probe;
        memcpy(kept + at, probes[key], m * sizeof *kept);
        at += m;
    }
    Py_END_ALLOW_THREADS
    if (failed == 1)
        PyErr_NoMemory();
    else if (failed == 2)
        PyErr_SetString(PyExc_ValueError, "a key or value out of bounds");
    else if (failed == 3)
        result = Py_NewRef(Py_None);
    else {
        int64_t *rows = PyMem_RawMalloc((met ? met : 1) * sizeof *rows);
        if (!rows)
            PyErr_NoMemory();
        else {
            for (Py_ssize_t k = 0; k < met; k++)
                rows[k] = sizes[order[k]];
            result = Py_BuildValue("y#y#y#y#y#", (const char *)counts, most * 8, (const char *)order, met * 4,
                                   (const char *)firsts, met * 8, (const char *)rows, met * 8, (const char *)kept, held * 4);
            PyMem_RawFree(rows);
        }
    }
done:
    for (Py_ssize_t k = 0; bits && probes && k < most; k++) {
        PyMem_RawFree(bits[k]);
        PyMem_RawFree(probes[k]);
    }
    PyMem_RawFree(bits);
    PyMem_RawFree(probes);
    PyMem_RawFree(counts);
    PyMem_RawFree(firsts);
    PyMem_RawFree(sizes);
    PyMem_RawFree(order);
    PyMem_RawFree(kept);
    PyBuffer_Release(&keys_);
    PyBuffer_Release(&values_);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "What tells network models apart, counted in one pass over the packet table."},
    {"code_counts", code_counts, METH_VARARGS, "How many times each value of a uint32 column appears."},
    {"distinct_counts", distinct_counts, METH_VARARGS, "How many distinct values each key has, a bit a value."},
    {"bad_checksums", bad_checksums, METH_VARARGS, "The rows with a bad TCP/UDP checksum, inner or outer, in one pass."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_evidence", NULL, -1, methods};

PyMODINIT_FUNC PyInit__evidence(void) { return PyModule_Create(&module); }
