/* A parquet row group encoded in C (cniscope.report.parquet_parts): each column of a batch of the packet table as
 * one column chunk of one data page (v1; a dictionary page first for dictionary columns), compressed with LZ4_RAW
 * or not at all (the caller says, column by column: F_RAW), and the RowGroup's thrift bytes for the footer. What pyarrow's writer spends most of its time on
 * is done directly over the Arrow buffers: definition levels are the validity bitmap's bytes (the RLE/bit-packed
 * hybrid of bit width 1 is the bitmap, LSB first), runs of 16 or more equal bits as RLE runs; values PLAIN
 * (widened to INT32/INT64), DELTA_BINARY_PACKED, a dictionary column's indices, or, for integers of few values,
 * indices into a dictionary of them. The file reads back to the same Arrow table as pyarrow's
 * (tests/report/test_parquet_c.py); its bytes differ.
 *
 * liblz4 is opened at import (dlopen: no headers needed to build); without it only UNCOMPRESSED is offered and
 * the caller keeps pyarrow. Every buffer's size is checked against what the rows need, every offset and
 * dictionary index against its bounds; the GIL is released while a row group is encoded.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

/* column kinds and flags (parquet_parts: _INT32 ... _TEXT, _SIGNED ...) */
enum { K_INT32, K_INT64, K_BOOL, K_DICT, K_TEXT };
/* F_DICT: an integer column tries a dictionary; F_RAW: the column chunk is not compressed (where lz4 did not pay) */
enum { F_SIGNED = 1, F_STATS = 2, F_DELTA = 4, F_DICT = 8, F_RAW = 16 };
/* parquet.thrift */
enum { CODEC_NONE = 0, CODEC_LZ4_RAW = 7 };
enum { T_BOOLEAN = 0, T_INT32 = 1, T_INT64 = 2, T_BYTE_ARRAY = 6 };
enum { E_PLAIN = 0, E_RLE = 3, E_DELTA = 5, E_RLE_DICTIONARY = 8 };
enum { P_DATA = 0, P_DICTIONARY = 2 };
/* thrift compact protocol types */
enum { C_TRUE = 1, C_FALSE = 2, C_I32 = 5, C_I64 = 6, C_BINARY = 8, C_LIST = 9, C_STRUCT = 12 };

#define LZ4_MAX_INPUT 0x7E000000
#define PAGE_HEADER 192    /* a page header's bytes at most (with statistics) */
#define CHUNK_META 320     /* a ColumnChunk's thrift bytes at most, besides its name */
#define DICT_MAX 4096 /* a dictionary of integers: at most this many values, and a quarter of the rows' */
#define HASH_BITS 13   /* the slots of the hash table of a dictionary of integers of 4 or 8 bytes: twice DICT_MAX */
#define DELTA_BLOCK 128
#define DELTA_MINI 32

typedef int (*lz4_compress_t)(const char *, char *, int, int);
static lz4_compress_t lz4_compress;

static int64_t lz4_bound(int64_t n) { return n + n / 255 + 16; }

typedef struct {
    int kind, width, offset_width, flags;
    Py_buffer validity, values, offsets, data; /* buf NULL: not given */
    int64_t entries;                           /* K_DICT: the dictionary's */
    const char *name;
    Py_ssize_t name_len;
    /* worked out */
    int64_t count;                 /* non-null values */
    int64_t strings;               /* K_DICT: the bytes of the dictionary's text */
    int64_t data_bound, dict_bound; /* the uncompressed pages' bytes at most */
    int encoding, has_dict;
    int64_t dict_offset, data_offset, uncompressed, compressed;
    int64_t min, max; /* statistics: as int64 (unsigned columns: the bits) */
} Column;

typedef struct {
    uint8_t *p;
    int64_t n, cap;
} Out;

/* ---- little writers -------------------------------------------------------------------------------------- */

static inline uint8_t *put_uvarint(uint8_t *o, uint64_t v) {
    while (v >= 0x80) {
        *o++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *o++ = (uint8_t)v;
    return o;
}

static inline uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

static inline void store32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void store64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t load32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t load64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* Bits appended LSB first (parquet's bit packing), at most 32 a call. */
typedef struct {
    uint8_t *o;
    uint64_t acc;
    int n;
} Bits;

static inline void bits_put(Bits *b, uint64_t x, int w) {
    b->acc |= x << b->n;
    b->n += w;
    if (b->n >= 32) {
        store32(b->o, (uint32_t)b->acc);
        b->o += 4;
        b->acc >>= 32;
        b->n -= 32;
    }
}

static inline void bits_put64(Bits *b, uint64_t x, int w) {
    if (w > 32) {
        bits_put(b, x & 0xFFFFFFFFu, 32);
        bits_put(b, x >> 32, w - 32);
    } else
        bits_put(b, x, w);
}

static inline uint8_t *bits_end(Bits *b) {
    for (; b->n > 0; b->n -= 8) {
        *b->o++ = (uint8_t)b->acc;
        b->acc >>= 8;
    }
    return b->o;
}

/* ---- thrift compact protocol (the footer's and page headers' structs) ------------------------------------ */

typedef struct {
    Out *out;
    int16_t last[8];
    int depth;
    int over;
    int64_t *spans, nspans, base; /* where the file offsets' varints are, from `base` (t_offset) */
} Thrift;

static void t_byte(Thrift *t, uint8_t b) {
    if (t->out->n < t->out->cap)
        t->out->p[t->out->n++] = b;
    else
        t->over = 1;
}

static void t_bytes(Thrift *t, const void *s, int64_t k) {
    if (k <= t->out->cap - t->out->n) {
        memcpy(t->out->p + t->out->n, s, (size_t)k);
        t->out->n += k;
    } else
        t->over = 1;
}

static void t_uvarint(Thrift *t, uint64_t v) {
    uint8_t tmp[10];
    t_bytes(t, tmp, put_uvarint(tmp, v) - tmp);
}

static void t_field(Thrift *t, int id, int type) {
    int delta = id - t->last[t->depth];
    if (delta > 0 && delta <= 15)
        t_byte(t, (uint8_t)(delta << 4 | type));
    else {
        t_byte(t, (uint8_t)type);
        t_uvarint(t, zigzag(id));
    }
    t->last[t->depth] = (int16_t)id;
}

static void t_int(Thrift *t, int id, int type, int64_t v) {
    t_field(t, id, type);
    t_uvarint(t, zigzag(v));
}

/* an i64 field holding a file offset: where its varint lies noted, to be moved where the row group lands */
static void t_offset(Thrift *t, int id, int64_t v) {
    t_field(t, id, C_I64);
    int64_t start = t->out->n;
    t_uvarint(t, zigzag(v));
    t->spans[2 * t->nspans] = start - t->base;
    t->spans[2 * t->nspans + 1] = t->out->n - t->base;
    t->nspans++;
}

static void t_binary(Thrift *t, int id, const void *p, int64_t n) {
    t_field(t, id, C_BINARY);
    t_uvarint(t, (uint64_t)n);
    t_bytes(t, p, n);
}

/* a struct: a field (`id` > 0) or a list's element (0) */
static void t_begin(Thrift *t, int id) {
    if (id)
        t_field(t, id, C_STRUCT);
    t->last[++t->depth] = 0;
}

static void t_end(Thrift *t) {
    t_byte(t, 0);
    t->depth--;
}

static void t_list(Thrift *t, int id, int type, int64_t size) {
    t_field(t, id, C_LIST);
    if (size < 15)
        t_byte(t, (uint8_t)(size << 4 | type));
    else {
        t_byte(t, (uint8_t)(0xF0 | type));
        t_uvarint(t, (uint64_t)size);
    }
}

/* ---- checks: every size and offset the encoding reads -------------------------------------------------- */

static inline int popcount64(uint64_t x) { /* SWAR: without -mpopcnt, __builtin_popcountll is a call */
    x -= (x >> 1) & 0x5555555555555555ull;
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
    return (int)((x * 0x0101010101010101ull) >> 56);
}

static int64_t popcount_bits(const uint8_t *bm, int64_t rows) {
    int64_t count = 0, full = rows >> 3;
    int64_t i = 0;
    for (; i + 8 <= full; i += 8)
        count += popcount64(load64(bm + i));
    for (; i < full; i++)
        count += popcount64(bm[i]);
    if (rows & 7)
        count += popcount64(bm[full] & ((1u << (rows & 7)) - 1));
    return count;
}

static inline int64_t offset_at(const uint8_t *offsets, int width, int64_t i) {
    if (width == 4) {
        int32_t v;
        memcpy(&v, offsets + i * 4, 4);
        return v;
    }
    int64_t v;
    memcpy(&v, offsets + i * 8, 8);
    return v;
}

/* `n` + 1 offsets of `width` bytes, from 0 or more, never going down, the last within `data`: their span */
static const char *check_offsets(const Py_buffer *offsets, int width, int64_t n, const Py_buffer *data, int64_t *span) {
    if (width != 4 && width != 8)
        return "offsets neither 32 nor 64 bits";
    if (!offsets->buf || offsets->len / width < n + 1)
        return "offsets buffer too short";
    const uint8_t *p = offsets->buf;
    int64_t first = offset_at(p, width, 0), prev = first;
    if (first < 0)
        return "negative offset";
    for (int64_t i = 1; i <= n; i++) {
        int64_t v = offset_at(p, width, i);
        if (v < prev)
            return "offsets going down";
        prev = v;
    }
    if (prev > (data->buf ? data->len : 0))
        return "offsets beyond the data";
    *span = prev - first;
    return NULL;
}

/* the bit width of a dictionary's indices, as Arrow's: 1 for one entry */
static int dict_width(int64_t entries) {
    if (entries <= 1)
        return (int)entries;
    return 64 - __builtin_clzll((uint64_t)(entries - 1));
}

/* The column's sizes checked against `rows`, its non-null count and its pages' bounds worked out. */
static const char *check_column(Column *c, int64_t rows) {
    int64_t bitmap = (rows + 7) / 8;
    if (c->validity.buf && c->validity.len < bitmap)
        return "validity bitmap too short";
    c->count = c->validity.buf ? popcount_bits(c->validity.buf, rows) : rows;
    /* one run, or run headers of 5 bytes at most, one for each 2 bytes of bitmap */
    int64_t levels = c->count == rows || c->count == 0 ? 16 : 4 + 7 * (rows / 8) + 40;
    int64_t values = 0;
    int w = c->width;
    switch (c->kind) {
    case K_INT32:
    case K_INT64: {
        int out = c->kind == K_INT32 ? 4 : 8;
        if (!(w == 1 || w == 2 || w == 4 || w == 8) || w > out)
            return "integer column of a width the physical type cannot hold";
        if (!c->values.buf || c->values.len / w < rows)
            return "values buffer too short";
        values = c->flags & F_DELTA ? 50 + (rows / DELTA_BLOCK + 1) * (16 + DELTA_BLOCK * out) : rows * out;
        if (c->flags & F_DICT) {
            int64_t indices = 1 + (rows / 8 + 2) * (14 + 12); /* 12 bits at most */
            values = indices > values ? indices : values;
            c->dict_bound = (c->count / 4 < DICT_MAX ? c->count / 4 : DICT_MAX) * out; /* int_values' cap */
        }
        break;
    }
    case K_BOOL:
        if (!c->values.buf || c->values.len < bitmap)
            return "values bitmap too short";
        values = bitmap;
        break;
    case K_DICT: {
        if (!(w == 1 || w == 2 || w == 4 || w == 8))
            return "dictionary indices of an odd width";
        if (!c->values.buf || c->values.len / w < rows)
            return "indices buffer too short";
        if (c->entries < 0 || c->entries > INT32_MAX)
            return "dictionary size out of range";
        const char *bad = check_offsets(&c->offsets, c->offset_width, c->entries, &c->data, &c->strings);
        if (bad)
            return bad;
        values = 1 + (c->count / 8 + 2) * (14 + dict_width(c->entries)); /* 8 values: w bytes, or a run of 9 */
        c->dict_bound = 4 * c->entries + c->strings;
        break;
    }
    case K_TEXT: {
        int64_t span;
        const char *bad = check_offsets(&c->offsets, c->offset_width, rows, &c->data, &span);
        if (bad)
            return bad;
        values = 4 * rows + span;
        break;
    }
    default:
        return "unknown column kind";
    }
    c->data_bound = levels + values;
    if (c->data_bound > LZ4_MAX_INPUT || c->dict_bound > LZ4_MAX_INPUT)
        return "a page larger than 2 GB";
    return NULL;
}

/* ---- definition levels ----------------------------------------------------------------------------------- */

static uint8_t *literal_run(uint8_t *o, const uint8_t *bytes, int64_t n, int tail, uint8_t last) {
    if (n + (tail ? 1 : 0) == 0)
        return o;
    o = put_uvarint(o, (uint64_t)(n + (tail ? 1 : 0)) << 1 | 1);
    memcpy(o, bytes, (size_t)n);
    o += n;
    if (tail)
        *o++ = last;
    return o;
}

/* The levels of an optional column (0 null, 1 not) as the RLE/bit-packed hybrid of bit width 1 behind its 4-byte
 * length: the bitmap's bytes as bit-packed runs, 2 or more bytes all 0 or all 1 as RLE runs. */
static uint8_t *levels(uint8_t *o, const Column *c, int64_t rows) {
    uint8_t *size_at = o;
    o += 4;
    uint8_t *start = o;
    if (c->count == rows || c->count == 0) {
        o = put_uvarint(o, (uint64_t)rows << 1);
        *o++ = c->count ? 1 : 0;
    } else {
        const uint8_t *bm = c->validity.buf;
        int64_t full = rows >> 3, i = 0, lit = 0;
        while (i < full) {
            uint8_t b = bm[i];
            if ((b == 0 || b == 0xFF) && i + 1 < full && bm[i + 1] == b) {
                int64_t j = i + 2;
                while (j < full && bm[j] == b)
                    j++;
                o = literal_run(o, bm + lit, i - lit, 0, 0);
                o = put_uvarint(o, (uint64_t)(j - i) * 8 << 1);
                *o++ = b & 1;
                i = lit = j;
            } else
                i++;
        }
        int tail = (int)(rows & 7);
        o = literal_run(o, bm + lit, full - lit, tail, tail ? (uint8_t)(bm[full] & ((1u << tail) - 1)) : 0);
    }
    store32(size_at, (uint32_t)(o - start));
    return o;
}

/* ---- values ---------------------------------------------------------------------------------------------- */

/* The non-null values of an integer column, each widened (by its sign) to `DST` bytes, after one another; `bm`
 * NULL: every row's. Rows 64 at a time: a word of the bitmap all set is a loop the compiler vectorises (most words
 * of most columns), one all clear is skipped; the others a row at a time. */
#define GATHER(NAME, SRC, DST)                                                                                    \
    static uint8_t *NAME(uint8_t *restrict o, const uint8_t *restrict values, const uint8_t *bm, int64_t rows) {                 \
        int64_t base = 0;                                                                                         \
        for (; base < rows; base += 64) {                                                                         \
            int64_t n = rows - base < 64 ? rows - base : 64;                                                      \
            uint64_t m = n == 64 ? ~0ull : (1ull << n) - 1;                                                       \
            if (bm) {                                                                                             \
                uint64_t word = 0;                                                                                \
                memcpy(&word, bm + (base >> 3), (size_t)((n + 7) >> 3));                                          \
                m &= word;                                                                                        \
            }                                                                                                     \
            if (m == ~0ull) {                                                                                     \
                for (int k = 0; k < 64; k++) {                                                                    \
                    SRC v;                                                                                        \
                    memcpy(&v, values + (base + k) * (int64_t)sizeof(SRC), sizeof v);                             \
                    DST d = (DST)v;                                                                               \
                    memcpy(o + k * (int64_t)sizeof(DST), &d, sizeof d);                                           \
                }                                                                                                 \
                o += 64 * sizeof(DST);                                                                            \
                continue;                                                                                         \
            }                                                                                                     \
            for (; m; m &= m - 1) {                                                                               \
                SRC v;                                                                                            \
                memcpy(&v, values + (base + __builtin_ctzll(m)) * (int64_t)sizeof(SRC), sizeof v);                \
                DST d = (DST)v;                                                                                   \
                memcpy(o, &d, sizeof d);                                                                          \
                o += sizeof d;                                                                                    \
            }                                                                                                     \
        }                                                                                                         \
        return o;                                                                                                 \
    }

GATHER(gather_u8_32, uint8_t, int32_t)
GATHER(gather_i8_32, int8_t, int32_t)
GATHER(gather_u16_32, uint16_t, int32_t)
GATHER(gather_i16_32, int16_t, int32_t)
GATHER(gather_32_32, uint32_t, uint32_t)
GATHER(gather_u8_64, uint8_t, int64_t)
GATHER(gather_i8_64, int8_t, int64_t)
GATHER(gather_u16_64, uint16_t, int64_t)
GATHER(gather_i16_64, int16_t, int64_t)
GATHER(gather_u32_64, uint32_t, int64_t)
GATHER(gather_i32_64, int32_t, int64_t)
GATHER(gather_64_64, uint64_t, uint64_t)

typedef uint8_t *(*gather_t)(uint8_t *, const uint8_t *, const uint8_t *, int64_t);

static gather_t gather_for(const Column *c) {
    int s = c->flags & F_SIGNED;
    if (c->kind == K_INT32)
        switch (c->width) {
        case 1: return s ? gather_i8_32 : gather_u8_32;
        case 2: return s ? gather_i16_32 : gather_u16_32;
        default: return gather_32_32;
        }
    switch (c->width) {
    case 1: return s ? gather_i8_64 : gather_u8_64;
    case 2: return s ? gather_i16_64 : gather_u16_64;
    case 4: return s ? gather_i32_64 : gather_u32_64;
    default: return gather_64_64;
    }
}

/* min and max of `count` gathered values, by the column's sort order (signed or not) */
static void statistics(Column *c, const uint8_t *v, int64_t count) {
    int s = c->flags & F_SIGNED;
    if (c->kind == K_INT32) {
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        for (int64_t i = 0; i < count; i++) {
            uint32_t bits = load32(v + 4 * i);
            int64_t x = s ? (int64_t)(int32_t)bits : (int64_t)bits;
            lo = x < lo ? x : lo;
            hi = x > hi ? x : hi;
        }
        c->min = lo, c->max = hi;
    } else if (s) {
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        for (int64_t i = 0; i < count; i++) {
            int64_t x = (int64_t)load64(v + 8 * i);
            lo = x < lo ? x : lo;
            hi = x > hi ? x : hi;
        }
        c->min = lo, c->max = hi;
    } else {
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int64_t i = 0; i < count; i++) {
            uint64_t x = load64(v + 8 * i);
            lo = x < lo ? x : lo;
            hi = x > hi ? x : hi;
        }
        c->min = (int64_t)lo, c->max = (int64_t)hi;
    }
}

/* DELTA_BINARY_PACKED of `count` gathered values of `bytes` (4 or 8) each: blocks of 128 deltas in 4 miniblocks,
 * as Arrow writes it; INT32 deltas wrap at 32 bits, as readers add them. */
static uint8_t *delta(uint8_t *o, const uint8_t *v, int64_t count, int bytes) {
    uint64_t mask = bytes == 4 ? 0xFFFFFFFFu : UINT64_MAX;
    int shift = 64 - 8 * bytes;
#define VALUE(i) (bytes == 4 ? (uint64_t)load32(v + 4 * (i)) : load64(v + 8 * (i)))
#define SIGNED(x) ((int64_t)((x) << shift) >> shift) /* the low `bytes` of x, sign-extended */
    o = put_uvarint(o, DELTA_BLOCK);
    o = put_uvarint(o, DELTA_BLOCK / DELTA_MINI);
    o = put_uvarint(o, (uint64_t)count);
    uint64_t prev = count ? VALUE(0) : 0;
    o = put_uvarint(o, zigzag(SIGNED(prev)));
    int64_t d[DELTA_BLOCK];
    uint64_t a[DELTA_BLOCK];
    for (int64_t i = 1; i < count; i += DELTA_BLOCK) {
        int n = count - i < DELTA_BLOCK ? (int)(count - i) : DELTA_BLOCK;
        int64_t low = INT64_MAX;
        for (int k = 0; k < n; k++) {
            uint64_t x = VALUE(i + k);
            d[k] = SIGNED((x - prev) & mask);
            low = d[k] < low ? d[k] : low;
            prev = x;
        }
        o = put_uvarint(o, zigzag(low));
        uint8_t *widths = o;
        o += DELTA_BLOCK / DELTA_MINI;
        for (int mb = 0; mb < DELTA_BLOCK / DELTA_MINI; mb++) {
            int lo = mb * DELTA_MINI, hi = lo + DELTA_MINI;
            uint64_t top = 0;
            for (int k = lo; k < hi; k++) {
                a[k] = k < n ? ((uint64_t)d[k] - (uint64_t)low) & mask : 0;
                top |= a[k];
            }
            int w = top ? 64 - __builtin_clzll(top) : 0;
            widths[mb] = (uint8_t)w;
            if (lo >= n || w == 0)
                continue; /* no body for the miniblocks past the last value, nor of width 0 (frame: every delta 1) */
            Bits b = {o, 0, 0};
            for (int k = lo; k < hi; k++)
                bits_put64(&b, a[k], w);
            o = bits_end(&b);
        }
    }
#undef VALUE
#undef SIGNED
    return o;
}

/* `groups` groups of 8 of the values from `v[from]` bit-packed at width w (w <= 32), LSB first: w bytes a group;
 * values from `count` on are zeros. Up to 16 bits a group in one integer, not a value at a time, stored whole (8 or
 * 16 bytes: memcpy of w bytes was a call a group): the up to 7 bytes past its w are the next group's to write, and
 * past the last they fall in the page's slack (its bound has 14 bytes a group besides w) or the lz4 region after. */
static uint8_t *pack(uint8_t *o, const uint32_t *v, int64_t from, int64_t groups, int64_t count, int w) {
    for (int64_t g = 0; g < groups; g++, from += 8) {
        uint32_t tail[8] = {0};
        const uint32_t *p = v + from;
        if (from + 8 > count) {
            memcpy(tail, p, (size_t)(count - from) * 4);
            p = tail;
        }
        if (w <= 8) {
            uint64_t acc = 0;
            for (int k = 0; k < 8; k++)
                acc |= (uint64_t)p[k] << (k * w);
            store64(o, acc);
        } else if (w <= 16) {
            unsigned __int128 acc = 0;
            for (int k = 0; k < 8; k++)
                acc |= (unsigned __int128)p[k] << (k * w);
            store64(o, (uint64_t)acc);
            store64(o + 8, (uint64_t)(acc >> 64));
        } else {
            Bits b = {o, 0, 0};
            for (int k = 0; k < 8; k++)
                bits_put(&b, p[k], w);
            bits_end(&b);
        }
        o += w;
    }
    return o;
}

/* The RLE/bit-packed hybrid of `count` values below 2^w (w <= 32): 8 or more equal values at a group's start an
 * RLE run, the rest bit-packed 8 at a time. */
static uint8_t *hybrid(uint8_t *o, const uint32_t *v, int64_t count, int w) {
    int64_t i = 0, lit = 0;
    while (i < count) {
        int64_t j = i + 1;
        if (i + 7 < count && v[i + 7] == v[i]) /* else no run of 8: not scanned (runs of 2-7, a packet's sightings, */
            while (j < count && v[j] == v[i])  /* ended the scan at a branch hard to predict) */
                j++;
        if (j - i >= 8) {
            if (i > lit) {
                int64_t groups = (i - lit) / 8;
                o = put_uvarint(o, (uint64_t)groups << 1 | 1);
                o = pack(o, v, lit, groups, count, w);
            }
            o = put_uvarint(o, (uint64_t)(j - i) << 1);
            for (int k = 0; k < (w + 7) / 8; k++)
                *o++ = (uint8_t)(v[i] >> (8 * k));
            i = lit = j;
        } else
            i = i + 8 < count ? i + 8 : count;
    }
    if (count > lit) {
        int64_t groups = (count - lit + 7) / 8;
        o = put_uvarint(o, (uint64_t)groups << 1 | 1);
        o = pack(o, v, lit, groups, count, w);
    }
    return o;
}

/* The non-null indices as uint32, each checked to be within the dictionary. */
static const char *gather_indices(const Column *c, uint32_t *out, int64_t rows) {
    const uint8_t *bm = c->validity.buf, *values = c->values.buf;
    int w = c->width, s = c->flags & F_SIGNED;
    uint64_t entries = (uint64_t)c->entries;
    int64_t n = 0;
    for (int64_t base = 0; base < rows && n < c->count; base += 8) {
        unsigned m = bm ? bm[base >> 3] : 0xFF;
        if (rows - base < 8)
            m &= (1u << (rows - base)) - 1;
        while (m) {
            int64_t i = base + __builtin_ctz(m);
            m &= m - 1;
            uint64_t x;
            switch (w) {
            case 1: x = s ? (uint64_t)(int64_t)(int8_t)values[i] : values[i]; break;
            case 2: { uint16_t u; memcpy(&u, values + 2 * i, 2); x = s ? (uint64_t)(int64_t)(int16_t)u : u; break; }
            case 4: { uint32_t u = load32(values + 4 * i); x = s ? (uint64_t)(int64_t)(int32_t)u : u; break; }
            default: x = load64(values + 8 * i); break;
            }
            if (x >= entries)
                return "dictionary index out of range";
            out[n++] = (uint32_t)x;
        }
    }
    return NULL;
}

/* PLAIN byte arrays: each non-null value's 4-byte length and its bytes */
static uint8_t *plain_strings(uint8_t *o, const Column *c, int64_t n, const uint8_t *bm) {
    const uint8_t *offsets = c->offsets.buf, *data = c->data.buf;
    for (int64_t i = 0; i < n; i++) {
        if (bm && !(bm[i >> 3] >> (i & 7) & 1))
            continue;
        int64_t start = offset_at(offsets, c->offset_width, i), size = offset_at(offsets, c->offset_width, i + 1) - start;
        store32(o, (uint32_t)size);
        memcpy(o + 4, data + start, (size_t)size);
        o += 4 + size;
    }
    return o;
}

/* PLAIN booleans: the non-null values' bits, packed */
static uint8_t *plain_bools(uint8_t *o, const Column *c, int64_t rows) {
    const uint8_t *bm = c->validity.buf, *values = c->values.buf;
    if (c->count == rows) {
        int64_t bytes = (rows + 7) / 8;
        memcpy(o, values, (size_t)bytes);
        if (rows & 7)
            o[bytes - 1] &= (uint8_t)((1u << (rows & 7)) - 1);
        return o + bytes;
    }
    Bits b = {o, 0, 0};
    for (int64_t i = 0; i < (rows + 7) / 8; i++) {
        unsigned m = bm[i], v = values[i];
        if (rows - 8 * i < 8)
            m &= (1u << (rows - 8 * i)) - 1;
        if (m == 0xFF) {
            bits_put(&b, v, 8);
            continue;
        }
        unsigned packed = 0;
        int n = 0;
        for (; m; m &= m - 1)
            packed |= (v >> __builtin_ctz(m) & 1) << n++;
        bits_put(&b, packed, n);
    }
    return bits_end(&b);
}

/* ---- pages ----------------------------------------------------------------------------------------------- */

typedef struct {
    int64_t rows;
    int codec;
    Out out;
    /* scratch: gathered values, a dictionary's indices, its values, the page, the page compressed; `seen`: for each
     * value of 16 bits, (the column's stamp << 16 | its index) */
    uint8_t *gathered;
    uint32_t *indices;
    uint8_t *entries;
    uint32_t *seen;
    uint8_t *page, *packed;
    int64_t packed_cap;
    uint32_t stamp;
} Job;

/* The `count` gathered INT32 values of a column of 1- or 2-byte integers as indices (in job->indices) into a
 * dictionary of their distinct values in order of first appearance (in job->entries): its size, or 0 where there are
 * more than `cap`. A few bits a value where PLAIN takes 32, mostly zeros that lz4 was slow to squeeze. */
static int64_t small_dictionary(Job *job, const uint8_t *v, int64_t count, int64_t cap) {
    uint32_t *seen = job->seen, stamp = ++job->stamp << 16, *index = job->indices;
    int64_t n = 0;
    for (int64_t i = 0; i < count; i++) {
        uint32_t x = load32(v + 4 * i), k = x & 0xFFFF; /* 16 bits tell every value of 1 or 2 bytes apart */
        if ((seen[k] & 0xFFFF0000u) != stamp) {
            if (n == cap)
                return 0;
            seen[k] = stamp | (uint32_t)n;
            store32(job->entries + 4 * n++, x);
        }
        index[i] = seen[k] & 0xFFFF;
    }
    return n;
}

/* small_dictionary for gathered values of `BYTES` (4 or 8) of any width: the first 2^HASH_BITS of `seen` a hash
 * table of (stamp << 16 | index), probed linearly; a value equal to the one before takes its index unhashed. MACs,
 * addresses, lengths: a few hundred or thousand values a batch, 5-12 bits each where PLAIN took 32 or 64 for lz4 to
 * squeeze. */
#define WIDE_DICTIONARY(NAME, T, BYTES)                                                                           \
    static int64_t NAME(Job *job, const uint8_t *v, int64_t count, int64_t cap) {                                \
        uint32_t *slots = job->seen, stamp = ++job->stamp << 16, *index = job->indices, last_index = 0;          \
        int64_t n = 0;                                                                                            \
        for (int64_t i = 0; i < count; i++) {                                                                     \
            T x;                                                                                                  \
            memcpy(&x, v + BYTES * i, BYTES);                                                                     \
            uint32_t h = (uint32_t)(((uint64_t)x * 0x9E3779B97F4A7C15ull) >> (64 - HASH_BITS));                   \
            for (;; h = (h + 1) & ((1u << HASH_BITS) - 1)) {                                                      \
                uint32_t s = slots[h];                                                                            \
                if ((s & 0xFFFF0000u) != stamp) {                                                                 \
                    if (n == cap)                                                                                 \
                        return 0;                                                                                 \
                    slots[h] = stamp | (uint32_t)n;                                                               \
                    memcpy(job->entries + BYTES * n, &x, BYTES);                                                  \
                    last_index = (uint32_t)n++;                                                                   \
                    break;                                                                                        \
                }                                                                                                 \
                T e;                                                                                              \
                memcpy(&e, job->entries + BYTES * (s & 0xFFFF), BYTES);                                           \
                if (e == x) {                                                                                     \
                    last_index = s & 0xFFFF;                                                                      \
                    break;                                                                                        \
                }                                                                                                 \
            }                                                                                                     \
            index[i] = last_index;                                                                                \
        }                                                                                                         \
        return n;                                                                                                 \
    }

WIDE_DICTIONARY(dictionary32, uint32_t, 4)
WIDE_DICTIONARY(dictionary64, uint64_t, 8)

static void write_statistics(Thrift *t, int id, const Column *c, int64_t rows) {
    t_begin(t, id);
    uint8_t lo[8], hi[8];
    int bytes = c->kind == K_INT32 ? 4 : 8;
    store64(lo, (uint64_t)c->min);
    store64(hi, (uint64_t)c->max);
    if (c->count && (c->flags & F_SIGNED)) { /* the deprecated fields, as Arrow writes them for signed order */
        t_binary(t, 1, hi, bytes);
        t_binary(t, 2, lo, bytes);
    }
    t_int(t, 3, C_I64, rows - c->count);
    if (c->count) {
        t_binary(t, 5, hi, bytes);
        t_binary(t, 6, lo, bytes);
        t_field(t, 7, C_TRUE);
        t_field(t, 8, C_TRUE);
    }
    t_end(t);
}

/* The page at `body` (`size` bytes) compressed, behind its header, appended to the output. */
static const char *emit_page(Job *job, Column *c, int type, const uint8_t *body, int64_t size, int64_t values, int encoding,
                             int stats) {
    int64_t packed = size;
    if (job->codec == CODEC_LZ4_RAW && !(c->flags & F_RAW)) {
        int n = lz4_compress((const char *)body, (char *)job->packed, (int)size, (int)job->packed_cap);
        if (n <= 0)
            return "lz4 failed";
        body = job->packed, packed = n;
    }
    int64_t start = job->out.n;
    Thrift t = {&job->out, {0}, 0, 0, NULL, 0, 0};
    t_int(&t, 1, C_I32, type);
    t_int(&t, 2, C_I32, size);
    t_int(&t, 3, C_I32, packed);
    t_begin(&t, type == P_DATA ? 5 : 7);
    t_int(&t, 1, C_I32, values);
    t_int(&t, 2, C_I32, encoding);
    if (type == P_DATA) {
        t_int(&t, 3, C_I32, E_RLE);
        t_int(&t, 4, C_I32, E_RLE);
        if (stats)
            write_statistics(&t, 5, c, job->rows);
    } else
        t_field(&t, 3, C_FALSE); /* is_sorted */
    t_end(&t);
    t_byte(&t, 0);
    t_bytes(&t, body, packed);
    if (t.over)
        return "output buffer overrun";
    int64_t header = job->out.n - start - packed;
    c->uncompressed += header + size;
    c->compressed += header + packed;
    return NULL;
}

/* A dictionary page: a dictionary column's text (PLAIN), or an integer column's distinct values */
static const char *dictionary_page(Job *job, Column *c, int64_t entries) {
    c->has_dict = 1;
    c->dict_offset = 4 + job->out.n;
    if (c->kind == K_DICT) {
        uint8_t *end = plain_strings(job->page, c, entries, NULL);
        return emit_page(job, c, P_DICTIONARY, job->page, end - job->page, entries, E_PLAIN, 0);
    }
    return emit_page(job, c, P_DICTIONARY, job->entries, (c->kind == K_INT32 ? 4 : 8) * entries, entries, E_PLAIN, 0);
}

/* An integer column's non-null values gathered, their statistics, and a dictionary of them where asked and small
 * enough: its size (0: none, the values to be written PLAIN or delta-encoded). */
static int64_t int_values(Job *job, Column *c) {
    gather_for(c)(job->gathered, c->values.buf, c->count == job->rows ? NULL : c->validity.buf, job->rows);
    if (c->flags & F_STATS)
        statistics(c, job->gathered, c->count);
    if (!(c->flags & F_DICT) || c->count < 8)
        return 0;
    int64_t cap = c->count / 4 < DICT_MAX ? c->count / 4 : DICT_MAX;
    if (c->kind == K_INT64)
        return dictionary64(job, job->gathered, c->count, cap);
    return (c->width <= 2 ? small_dictionary : dictionary32)(job, job->gathered, c->count, cap);
}

static const char *encode_column(Job *job, Column *c) {
    int64_t rows = job->rows, entries = c->entries;
    int bytes = c->kind == K_INT32 ? 4 : 8, ints = c->kind == K_INT32 || c->kind == K_INT64;
    const char *bad = c->kind == K_DICT ? gather_indices(c, job->indices, rows) : NULL;
    if (bad)
        return bad;
    c->uncompressed = c->compressed = 0;
    c->has_dict = 0;
    if (ints)
        entries = int_values(job, c);
    if ((c->kind == K_DICT || entries) && (bad = dictionary_page(job, c, entries)))
        return bad;
    c->data_offset = 4 + job->out.n;
    uint8_t *o = levels(job->page, c, rows);
    if (c->has_dict) {
        c->encoding = E_RLE_DICTIONARY;
        int w = dict_width(entries);
        *o++ = (uint8_t)w;
        if (c->count)
            o = hybrid(o, job->indices, c->count, w);
    } else if (ints && (c->flags & F_DELTA) && c->count) {
        c->encoding = E_DELTA;
        o = delta(o, job->gathered, c->count, bytes);
    } else if (ints) {
        c->encoding = E_PLAIN;
        memcpy(o, job->gathered, (size_t)(c->count * bytes));
        o += c->count * bytes;
    } else if (c->kind == K_BOOL) {
        c->encoding = E_PLAIN;
        o = plain_bools(o, c, rows);
    } else {
        c->encoding = E_PLAIN;
        o = plain_strings(o, c, rows, c->validity.buf);
    }
    if (o - job->page > c->data_bound)
        return "page larger than its bound"; /* never: the bounds are worked out beforehand */
    int stats = (c->flags & F_STATS) && ints;
    return emit_page(job, c, P_DATA, job->page, o - job->page, rows, c->encoding, stats);
}

static void write_column_meta(Thrift *t, const Column *c, int64_t rows, int codec) {
    static const int types[] = {[K_INT32] = T_INT32, [K_INT64] = T_INT64, [K_BOOL] = T_BOOLEAN,
                                [K_DICT] = T_BYTE_ARRAY, [K_TEXT] = T_BYTE_ARRAY};
    t_begin(t, 0); /* ColumnChunk */
    t_int(t, 2, C_I64, 0); /* file_offset: 0, as Arrow writes it */
    t_begin(t, 3);         /* ColumnMetaData */
    t_int(t, 1, C_I32, types[c->kind]);
    if (c->has_dict) {
        t_list(t, 2, C_I32, 3);
        t_uvarint(t, zigzag(E_PLAIN));
        t_uvarint(t, zigzag(E_RLE));
        t_uvarint(t, zigzag(E_RLE_DICTIONARY));
    } else {
        t_list(t, 2, C_I32, 2);
        t_uvarint(t, zigzag(E_RLE));
        t_uvarint(t, zigzag(c->encoding));
    }
    t_list(t, 3, C_BINARY, 1);
    t_uvarint(t, (uint64_t)c->name_len);
    t_bytes(t, c->name, c->name_len);
    t_int(t, 4, C_I32, c->flags & F_RAW ? CODEC_NONE : codec);
    t_int(t, 5, C_I64, rows);
    t_int(t, 6, C_I64, c->uncompressed);
    t_int(t, 7, C_I64, c->compressed);
    t_offset(t, 9, c->data_offset);
    if (c->has_dict)
        t_offset(t, 11, c->dict_offset);
    if ((c->flags & F_STATS) && (c->kind == K_INT32 || c->kind == K_INT64))
        write_statistics(t, 12, c, rows);
    t_list(t, 13, C_STRUCT, c->has_dict ? 2 : 1); /* encoding_stats */
    if (c->has_dict) {
        t_begin(t, 0);
        t_int(t, 1, C_I32, P_DICTIONARY);
        t_int(t, 2, C_I32, E_PLAIN);
        t_int(t, 3, C_I32, 1);
        t_end(t);
    }
    t_begin(t, 0);
    t_int(t, 1, C_I32, P_DATA);
    t_int(t, 2, C_I32, c->encoding);
    t_int(t, 3, C_I32, 1);
    t_end(t);
    t_end(t);
    t_end(t);
}

/* The RowGroup struct, its offsets as in a file whose first column chunk starts at byte 4 (after "PAR1"), where
 * their varints lie in `spans` (two a column at most, and one). */
static const char *write_row_group(Job *job, const Column *cols, Py_ssize_t n, int64_t *spans, int64_t *nspans) {
    Thrift t = {&job->out, {0}, 0, 0, spans, 0, job->out.n};
    int64_t uncompressed = 0, compressed = 0;
    t_list(&t, 1, C_STRUCT, n);
    for (Py_ssize_t k = 0; k < n; k++) {
        write_column_meta(&t, &cols[k], job->rows, job->codec);
        uncompressed += cols[k].uncompressed;
        compressed += cols[k].compressed;
    }
    t_int(&t, 2, C_I64, uncompressed);
    t_int(&t, 3, C_I64, job->rows);
    t_offset(&t, 5, 4);
    t_int(&t, 6, C_I64, compressed);
    t_byte(&t, 0);
    *nspans = t.nspans;
    return t.over ? "output buffer overrun" : NULL;
}

/* ---- the entry point ------------------------------------------------------------------------------------- */

static int get_buffer(PyObject *obj, Py_buffer *view) {
    if (obj == Py_None)
        return 0;
    return PyObject_GetBuffer(obj, view, PyBUF_SIMPLE);
}

static void release(Column *c) {
    Py_buffer *views[] = {&c->validity, &c->values, &c->offsets, &c->data};
    for (int k = 0; k < 4; k++)
        if (views[k]->buf)
            PyBuffer_Release(views[k]);
}

/* (kind, width, offset width, flags, validity, values, offsets, data, entries, name) */
static int load_column(PyObject *spec, Column *c) {
    PyObject *validity, *values, *offsets, *data;
    long long entries;
    if (!PyTuple_Check(spec)) {
        PyErr_SetString(PyExc_TypeError, "a column is a tuple");
        return -1;
    }
    if (!PyArg_ParseTuple(spec, "iiiiOOOOLs#", &c->kind, &c->width, &c->offset_width, &c->flags, &validity, &values,
                          &offsets, &data, &entries, &c->name, &c->name_len))
        return -1;
    c->entries = entries;
    if (get_buffer(validity, &c->validity) < 0 || get_buffer(values, &c->values) < 0 ||
        get_buffer(offsets, &c->offsets) < 0 || get_buffer(data, &c->data) < 0)
        return -1;
    return 0;
}

/* encode(columns, rows, codec, out, scratch) -> (body, end, spans, sizes): the column chunks in out[:body], the
 * RowGroup's thrift bytes in out[body:end], where its file offsets' varints lie in them (int64 start, end pairs), and
 * each column chunk's (dictionary or not, uncompressed bytes, compressed bytes) as int64s; or (-1, bytes, b"", b"")
 * where `out` is too small, (-2, bytes, b"", b"") where `scratch` is. */
static PyObject *encode(PyObject *self, PyObject *args) {
    PyObject *specs;
    long long rows_arg;
    int codec;
    Py_buffer out_, scratch_;
    if (!PyArg_ParseTuple(args, "O!Liw*w*", &PyList_Type, &specs, &rows_arg, &codec, &out_, &scratch_))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = PyList_GET_SIZE(specs), loaded = 0;
    Column *cols = PyMem_Calloc((size_t)(n ? n : 1), sizeof *cols);
    if (!cols) {
        PyErr_NoMemory();
        goto done;
    }
    if (rows_arg < 1 || rows_arg > (1 << 30)) {
        PyErr_SetString(PyExc_ValueError, "rows out of range");
        goto done;
    }
    if (codec != CODEC_NONE && (codec != CODEC_LZ4_RAW || !lz4_compress)) {
        PyErr_SetString(PyExc_ValueError, "codec not available");
        goto done;
    }
    for (; loaded < n; loaded++)
        if (load_column(PyList_GET_ITEM(specs, loaded), &cols[loaded]) < 0) {
            loaded++;
            goto done;
        }
    if ((uintptr_t)scratch_.buf % 8) {
        PyErr_SetString(PyExc_ValueError, "scratch not aligned to 8 bytes");
        goto done;
    }
    int64_t rows = rows_arg, out_need = 64, page_max = 0;
    const char *bad = NULL;
    Py_ssize_t failed = -1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < n && !bad; k++) {
        Column *c = &cols[k];
        failed = k;
        bad = check_column(c, rows);
        if (bad)
            break;
        int64_t pages = c->data_bound > c->dict_bound ? c->data_bound : c->dict_bound;
        page_max = pages > page_max ? pages : page_max;
        out_need += 2 * PAGE_HEADER + lz4_bound(c->data_bound) + lz4_bound(c->dict_bound) + CHUNK_META + c->name_len;
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_Format(PyExc_ValueError, "column %zd: %s", failed, bad);
        goto done;
    }
    /* regions of 64-byte multiples: each aligned as the buffer is */
    int64_t gathered = (rows * 8 + 127) & ~63, indices = (rows * 4 + 127) & ~63, entries = DICT_MAX * 8;
    int64_t seen = 65536 * 4, scratch_need = gathered + indices + entries + seen + page_max + lz4_bound(page_max);
    if (out_.len < out_need || scratch_.len < scratch_need) {
        result = out_.len < out_need ? Py_BuildValue("(iLyy)", -1, (long long)out_need, "", "")
                                     : Py_BuildValue("(iLyy)", -2, (long long)scratch_need, "", "");
        goto done;
    }
    uint8_t *at = scratch_.buf;
    Job job = {rows, codec, {out_.buf, 0, out_.len}, at, (uint32_t *)(at + gathered), at + gathered + indices,
               (uint32_t *)(at + gathered + indices + entries), at + gathered + indices + entries + seen,
               at + gathered + indices + entries + seen + page_max, lz4_bound(page_max), 0};
    memset(job.seen, 0, (size_t)seen); /* stamps from 1 */
    int64_t body = 0, nspans = 0, *spans = PyMem_Malloc((size_t)(2 * n + 1) * 2 * sizeof(int64_t));
    int64_t *sizes = PyMem_Malloc((size_t)(n ? n : 1) * 3 * sizeof(int64_t));
    if (!spans || !sizes) {
        PyMem_Free(spans);
        PyMem_Free(sizes);
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < n && !bad; k++) {
        bad = encode_column(&job, &cols[k]);
        failed = k;
    }
    body = job.out.n;
    if (!bad)
        bad = write_row_group(&job, cols, n, spans, &nspans);
    Py_END_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < n && !bad; k++) {
        sizes[3 * k] = cols[k].has_dict;
        sizes[3 * k + 1] = cols[k].uncompressed;
        sizes[3 * k + 2] = cols[k].compressed;
    }
    if (bad)
        PyErr_Format(PyExc_ValueError, "column %zd: %s", failed, bad);
    else
        result = Py_BuildValue("(LLy#y#)", (long long)body, (long long)job.out.n, (const char *)spans,
                               (Py_ssize_t)(nspans * 2 * sizeof(int64_t)), (const char *)sizes,
                               (Py_ssize_t)(n * 3 * sizeof(int64_t)));
    PyMem_Free(spans);
    PyMem_Free(sizes);
done:
    for (Py_ssize_t k = 0; k < loaded; k++)
        release(&cols[k]);
    PyMem_Free(cols);
    PyBuffer_Release(&out_);
    PyBuffer_Release(&scratch_);
    return result;
}

/* codes(values, validity, rows, indices) -> distinct or None: a categorical column's codes (uint32 a row, polars'
 * physical values; `validity` its bitmap or None) as indices into its distinct codes in order of first appearance,
 * written to `indices` (uint32 a row, 0 under a null), and those codes (uint32s); None where there are more than
 * CODES_MAX. What polars' own conversion to Arrow makes, a row at a time where this is a table's lookup. */
#define CODES_BITS 12
#define CODES_MAX (1 << (CODES_BITS - 1))
#define CODES_DIRECT 4096 /* codes below this looked up in a table of their own, the others hashed */
static PyObject *codes(PyObject *self, PyObject *args) {
    Py_buffer values, validity = {0}, indices;
    PyObject *validity_obj;
    long long rows_arg;
    if (!PyArg_ParseTuple(args, "y*OLw*", &values, &validity_obj, &rows_arg, &indices))
        return NULL;
    PyObject *result = NULL;
    uint32_t distinct[CODES_MAX], slots[1 << CODES_BITS], direct[CODES_DIRECT]; /* index + 1, 0 empty */
    int64_t rows = rows_arg, n = 0;
    if (get_buffer(validity_obj, &validity) < 0)
        goto done;
    if (rows < 0 || values.len / 4 < rows || indices.len / 4 < rows || (validity.buf && validity.len < (rows + 7) / 8)) {
        PyErr_SetString(PyExc_ValueError, "buffers shorter than the rows");
        goto done;
    }
    int over = 0;
    Py_BEGIN_ALLOW_THREADS
    memset(slots, 0, sizeof slots);
    memset(direct, 0, sizeof direct);
    const uint8_t *bm = validity.buf, *v = values.buf;
    uint32_t *out = indices.buf;
    for (int64_t base = 0; base < rows && !over; base += 64) {
        int64_t stop = rows - base < 64 ? rows : base + 64;
        uint64_t word = ~0ull;
        if (bm) {
            word = 0;
            memcpy(&word, bm + (base >> 3), (size_t)((stop - base + 7) >> 3));
            if (!word) { /* 64 nulls (src6, dst6: most rows) */
                memset(out + base, 0, (size_t)(stop - base) * 4);
                continue;
            }
        }
        for (int64_t i = base; i < stop; i++) {
            if (!(word >> (i - base) & 1)) {
                out[i] = 0;
                continue;
            }
            uint32_t x = load32(v + 4 * i), *slot;
            if (x < CODES_DIRECT) /* the codes of the first strings polars was given: iface's */
                slot = &direct[x];
            else {
                uint32_t h = (uint32_t)(((uint64_t)x * 0x9E3779B97F4A7C15ull) >> (64 - CODES_BITS));
                while (slots[h] && distinct[slots[h] - 1] != x)
                    h = (h + 1) & ((1u << CODES_BITS) - 1);
                slot = &slots[h];
            }
            if (!*slot) {
                if (n == CODES_MAX) {
                    over = 1;
                    break;
                }
                distinct[n] = x;
                *slot = (uint32_t)++n;
            }
            out[i] = *slot - 1;
        }
    }
    Py_END_ALLOW_THREADS
    if (over) {
        result = Py_None;
        Py_INCREF(result);
    } else
        result = PyBytes_FromStringAndSize((const char *)distinct, (Py_ssize_t)(n * 4));
done:
    PyBuffer_Release(&values);
    PyBuffer_Release(&indices);
    if (validity.buf)
        PyBuffer_Release(&validity);
    return result;
}

static PyMethodDef methods[] = {
    {"encode", encode, METH_VARARGS, "A batch's columns as a parquet row group: its column chunks and RowGroup thrift."},
    {"codes", codes, METH_VARARGS, "A categorical column's codes as indices into its distinct codes, and those codes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_parquet", NULL, -1, methods};

PyMODINIT_FUNC PyInit__parquet(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    void *lib = dlopen("liblz4.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib)
        lz4_compress = (lz4_compress_t)dlsym(lib, "LZ4_compress_default");
    if (PyModule_AddIntConstant(m, "LZ4", lz4_compress != NULL) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
