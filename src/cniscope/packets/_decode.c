/* The frame decoder in C (cniscope.packets.decode): each frame read once, its fields written straight into
 * the chunk's column arrays.
 *
 * It is `fallback.decode_frame` statement for statement (the same headers, the same order of what is set
 * before a header is found cut or wrong, the same error texts), so its rows equal the reference's; the
 * tests hold it to that on crafted, cut and random frames. Every read is guarded by the frame's captured
 * end, itself clamped to the buffer's end (`need`): a frame whose lengths lie only stops early, as in the
 * fallback. The GIL is released while decoding: two decode threads run at once.
 *
 * Per row, the fields found go into the row of a `Block` (values, and a word whose bits say which columns are set, as
 * the fallback's dict of fields): an envelope moves the packet's fields to outer_* and clears them; every 64 rows the
 * block is written out (values, validity; per column, how many rows have a value). The frames
 * nearly every capture is made of (Ethernet or Linux cooked, IPv4, TCP or UDP, VXLAN) take a shorter way (`fast`),
 * which leaves any frame it would not decode whole to the general one. IPv6 addresses are written as the buffer
 * position of their 16 bytes (Python turns them into text, one inet_ntop per distinct address); errors are returned
 * as (row, text) pairs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(_WIN32)
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <sys/socket.h>
#endif
#if defined(__linux__)
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

/* rows decoded before they are written out, column by column, BLOCK at a time: one word of each validity bitmap.
 * Written row by row, a row's fields went to some 30 value arrays and as many validity arrays of a byte a row:
 * that many cache lines in play at once took more time than decoding. A block holds its rows' values column by
 * column, each as wide as in its array, and each row's columns that have a value: writing a column out copies its
 * values whole (zeros put under its nulls first) or, when few rows have one, zeros and those alone. */
#define BLOCK 64

/* the columns this decoder fills, in the table's order (fallback.DECODED without the text-only ones), with the bytes
 * a value takes in the array given for it (columns.NUMPY_TYPE; an IPv6 address: its int64 buffer position) */
#define COLUMN_LIST                                                                                                     \
    X(DIRECTION, "direction", 1) X(TRUNCATED, "truncated", 1) X(ETH_SRC, "eth_src", 8) X(ETH_DST, "eth_dst", 8)       \
    X(VLAN, "vlan", 2) X(ETHERTYPE, "ethertype", 2) X(TUNNEL, "tunnel", 1) X(VNI, "vni", 4)                           \
    X(OUTER_SRC, "outer_src", 4) X(OUTER_DST, "outer_dst", 4) X(OUTER_SRC6, "outer_src6", 8)                          \
    X(OUTER_DST6, "outer_dst6", 8) X(OUTER_SPORT, "outer_sport", 2) X(OUTER_DPORT, "outer_dport", 2)                  \
    X(OUTER_TTL, "outer_ttl", 1) X(OUTER_IP_ID, "outer_ip_id", 4) X(OUTER_LEN, "outer_len", 2)                        \
    X(OUTER_L4_CSUM_BAD, "outer_l4_csum_bad", 1) X(INNER_ETH_SRC, "inner_eth_src", 8)                                 \
    X(INNER_ETH_DST, "inner_eth_dst", 8) X(IP_VERSION, "ip_version", 1) X(SRC, "src", 4) X(DST, "dst", 4)             \
    X(SRC6, "src6", 8) X(DST6, "dst6", 8) X(IP_ID, "ip_id", 4) X(TTL, "ttl", 1) X(TOS, "tos", 1)                      \
    X(IP_LEN, "ip_len", 2) X(DF, "df", 1) X(MF, "mf", 1) X(FRAG_OFFSET, "frag_offset", 2) X(PROTO, "proto", 1)        \
    X(SPORT, "sport", 2) X(DPORT, "dport", 2) X(TCP_FLAGS, "tcp_flags", 1) X(SEQ, "seq", 4) X(ACK, "ack", 4)          \
    X(WIN, "win", 2) X(MSS, "mss", 2) X(WSCALE, "wscale", 1) X(SACK_OK, "sack_ok", 1) X(TSVAL, "tsval", 4)            \
    X(TSECR, "tsecr", 4) X(L4_CSUM_BAD, "l4_csum_bad", 1) X(ICMP_TYPE, "icmp_type", 1)                                \
    X(ICMP_CODE, "icmp_code", 1) X(ICMP_ID, "icmp_id", 2) X(ICMP_SEQ, "icmp_seq", 2) X(ICMP_MTU, "icmp_mtu", 2)       \
    X(QUOTED_SRC, "quoted_src", 4) X(QUOTED_DST, "quoted_dst", 4) X(QUOTED_PROTO, "quoted_proto", 1)                  \
    X(QUOTED_SPORT, "quoted_sport", 2) X(QUOTED_DPORT, "quoted_dport", 2) X(DNS_ID, "dns_id", 2)                      \
    X(DNS_QR, "dns_qr", 1) X(ARP_OP, "arp_op", 2) X(ARP_SHA, "arp_sha", 8) X(ARP_SPA, "arp_spa", 4)                   \
    X(ARP_TPA, "arp_tpa", 4) X(PAYLOAD_LEN, "payload_len", 4) X(PAYLOAD_DIGEST, "payload_digest", 8)

#define X(id, name, width) C_##id,
enum { COLUMN_LIST NCOL };
#undef X
_Static_assert(NCOL <= 64, "a row's columns are the bits of a word");
#define X(id, name, width) name,
static const char *NAMES[NCOL] = {COLUMN_LIST};
#undef X
#define X(id, name, width) width,
static const int WIDTH[NCOL] = {COLUMN_LIST};
#undef X
#define X(id, name, width) (width) == 1 ? 0 : (width) == 2 ? 1 : (width) == 4 ? 2 : 3,
static const int SHIFT[NCOL] = {COLUMN_LIST}; /* log2 of the width */
#undef X
/* where a column's BLOCK values start in a block: the widths before it, BLOCK times */
#define X(id, name, width) O_##id, O_##id##_END = O_##id + (width) - 1,
enum { COLUMN_LIST ROW_BYTES };
#undef X
#define X(id, name, width) O_##id * BLOCK,
static const int OFFSET[NCOL] = {COLUMN_LIST};
#undef X

/* fallback.PACKET: the innermost packet's columns, ip_version .. payload_digest */
#define FIRST_PACKET C_IP_VERSION
#define LAST_PACKET C_PAYLOAD_DIGEST
#define BIT(c) (1ULL << (c))
#define PACKET_COLUMNS ((BIT(LAST_PACKET) << 1) - BIT(FIRST_PACKET))

enum { ETH_IPV4 = 0x0800, ETH_IPV6 = 0x86DD, ETH_ARP = 0x0806, ETH_VLAN = 0x8100, ETH_QINQ = 0x88A8, ETH_TEB = 0x6558 };
enum { PROTO_ICMP = 1, PROTO_IPIP = 4, PROTO_TCP = 6, PROTO_UDP = 17, PROTO_IPV6 = 41, PROTO_ICMPV6 = 58 };
enum { TUNNEL_VXLAN = 1, TUNNEL_GENEVE = 2, TUNNEL_IPIP = 3, TUNNEL_FLANNEL = 4 };
enum {
    LT_NULL = 0, LT_ETHERNET = 1, LT_PPP = 9, LT_RAW_BSD = 12, LT_RAW_OPENBSD = 14, LT_PPP_HDLC = 50,
    LT_PPP_ETHER = 51, LT_RAW = 101, LT_C_HDLC = 104, LT_LOOP = 108, LT_LINUX_SLL = 113, LT_IPV4 = 228,
    LT_IPV6 = 229, LT_NFLOG = 239, LT_PKTAP = 258, LT_LINUX_SLL2 = 276,
};

#define DIGEST_BYTES 16
#define GOLDEN 0x9E3779B97F4A7C15ULL
#define ERRLEN 160

/* rows whose pages a kept table's column takes in one call, ahead of their writes (`populate`): a page's first write
 * took a fault each (1.6 us a page here, 1.35 in one call), and the decoder's columns are most of the table's fresh
 * pages (10M pcapng, the command's reading: 2.12 -> 2.03-2.08 s of CPU); 2048 and 16384 rows gained less than 4096 and
 * 8192 (more calls; pages zeroed further ahead of their writes, out of the cache by then) */
#define POPULATE 8192

/* frames ahead whose first two cache lines are asked for meanwhile: the mapped file's pages come from memory, and the
 * first read of each frame waited for them (C alone, 64k frames of 10M pcapng: 7.3-8.0 -> 6.6-6.9 ms) */
#define AHEAD 8

/* BLOCK rows' values, column after column, each as wide as in its array: what a row has no value in is left as it
 * was, never read; and per row, the columns it has a value in (bit c: column c) */
typedef struct {
    _Alignas(64) uint8_t values[ROW_BYTES * BLOCK];
    uint64_t rows[BLOCK];
} Block;

typedef struct {
    const uint8_t *buf; /* the frame's first byte */
    int64_t cap;        /* bytes captured (and inside the buffer) */
    int64_t base;       /* buffer position of the frame: IPv6 addresses are written as buffer positions */
    const uint8_t *kinds; /* UDP port -> tunnel kind */
    uint8_t *at[4];     /* the row in the block, for values of 1, 2, 4 and 8 bytes: at[0], at[1], at[2], at[3] */
    uint64_t m;         /* the columns the row has a value in (bit c: column c), as the fallback's dict of fields */
    int truncated;
    char *err;          /* ERRLEN bytes */
} Dec;

#define HOT static inline __attribute__((always_inline))

/* where row `j` of the block keeps its values */
static inline void row_at(Dec *d, Block *block, int j) {
    for (int k = 0; k < 4; k++) d->at[k] = block->values + (j << k);
}

HOT void put(Dec *d, int c, uint64_t x) {
    uint8_t *p = d->at[SHIFT[c]] + OFFSET[c];
    switch (WIDTH[c]) {
    case 1: *p = (uint8_t)x; break;
    case 2: { uint16_t y = (uint16_t)x; memcpy(p, &y, 2); break; }
    case 4: { uint32_t y = (uint32_t)x; memcpy(p, &y, 4); break; }
    default: memcpy(p, &x, 8); break;
    }
    d->m |= BIT(c);
}

HOT uint64_t get(const Dec *d, int c) {
    const uint8_t *p = d->at[SHIFT[c]] + OFFSET[c];
    switch (WIDTH[c]) {
    case 1: return *p;
    case 2: { uint16_t y; memcpy(&y, p, 2); return y; }
    case 4: { uint32_t y; memcpy(&y, p, 4); return y; }
    default: { uint64_t y; memcpy(&y, p, 8); return y; }
    }
}

/* out[to] = out.get(from): not set stays not set */
HOT void copy(Dec *d, int to, int from) {
    if (d->m & BIT(from)) put(d, to, get(d, from));
}

static inline uint32_t u8(const Dec *d, int64_t p) { return d->buf[p]; }
static inline uint32_t be16(const Dec *d, int64_t p) { return ((uint32_t)d->buf[p] << 8) | d->buf[p + 1]; }
static inline uint32_t le16(const Dec *d, int64_t p) { return ((uint32_t)d->buf[p + 1] << 8) | d->buf[p]; }
static inline uint32_t be32(const Dec *d, int64_t p) { return (be16(d, p) << 16) | be16(d, p + 2); }
static inline uint32_t le32(const Dec *d, int64_t p) { return (le16(d, p + 2) << 16) | le16(d, p); }
static inline uint64_t mac(const Dec *d, int64_t p) { return ((uint64_t)be16(d, p) << 32) | be32(d, p + 2); }

static int stop(Dec *d, int truncated, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, ERRLEN, fmt, ap);
    va_end(ap);
    d->truncated = truncated;
    return -1;
}

/* fallback `need_bytes`: the `size` bytes at `pos` were captured, else stop (truncated) */
static int need(Dec *d, int64_t pos, int64_t size, const char *what) {
    if (pos + size > d->cap) {
        int64_t have = d->cap - pos;
        return stop(d, 1, "truncated: %s needs %lld bytes at offset %lld, %lld captured", what, (long long)size,
                    (long long)pos, (long long)(have > 0 ? have : 0));
    }
    return 0;
}

/* -- checksum and digest ------------------------------------------------------------------------ */

/* the 16-bit big-endian word sum of n bytes at p (a zero byte padding an odd end), modulo 65535: summed as
 * little-endian 64-bit words, each carry added back in (2**64 is 1 modulo 65535), whose sum is the byte-swapped one,
 * i.e. 256 times it, modulo 65535 */
HOT uint64_t word_sum(const uint8_t *p, int64_t n) {
    uint64_t acc = 0, w;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        acc += w;
        acc += acc < w;
    }
    w = 0;
    memcpy(&w, p + i, (size_t)(n - i));
    acc += w;
    acc += acc < w;
    return (256 * (acc % 65535)) % 65535;
}

/* fallback `checksum`'s verdict on the `length` bytes at `pos` of `buf`, whole in it: 1 when wrong; `addr`: where the
 * IP header's source address is (the destination follows), `alen` 4 or 16 */
HOT int checksum_bad(const uint8_t *buf, int proto, int64_t pos, int64_t length, int64_t addr, int alen) {
    uint64_t pseudo = 0;
    if (proto != PROTO_ICMP) { /* ICMP over IPv4 sums its own bytes only */
        for (int i = 0; i < 2 * alen; i += 2) pseudo += ((uint32_t)buf[addr + i] << 8) | buf[addr + i + 1];
        if (alen == 4) pseudo += (uint64_t)proto + (uint64_t)length;
        else pseudo += ((uint64_t)length >> 16) + ((uint64_t)length & 0xFFFF) + (uint64_t)proto;
    }
    return (pseudo + word_sum(buf + pos, length)) % 65535 != 0;
}

/* fallback `checksum`: judged when the whole segment was captured and the addresses are known (not a
 * fragment; `alen` 0) */
static void checksum(Dec *d, int proto, int64_t pos, int64_t length, int64_t addr, int alen, int column) {
    if (alen == 0 || pos + length > d->cap) return;
    put(d, column, (uint64_t)checksum_bad(d->buf, proto, pos, length, addr, alen));
}

static inline uint64_t mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* fallback `payload` without its error: the payload's length and, when its first bytes were captured, its digest
 * (digest.py) */
HOT void payload_fields(Dec *d, int64_t pos, int64_t length) {
    put(d, C_PAYLOAD_LEN, (uint64_t)length);
    int64_t take = length < DIGEST_BYTES ? length : DIGEST_BYTES;
    if (length && pos + take <= d->cap) {
        uint8_t head[DIGEST_BYTES] = {0};
        if (pos + DIGEST_BYTES <= d->cap) { /* all 16 read at once (a copy of a length known only here was slow) */
            memcpy(head, d->buf + pos, DIGEST_BYTES);
            if (take < DIGEST_BYTES) memset(head + take, 0, (size_t)(DIGEST_BYTES - take));
        } else {
            memcpy(head, d->buf + pos, (size_t)take);
        }
        uint64_t a = 0, b = 0;
        for (int i = 7; i >= 0; i--) {
            a = (a << 8) | head[i];
            b = (b << 8) | head[8 + i];
        }
        put(d, C_PAYLOAD_DIGEST, mix(mix(a ^ ((uint64_t)length * GOLDEN)) ^ b));
    }
}

/* fallback `payload` */
static int payload(Dec *d, int64_t pos, int64_t length) {
    if (length < 0)
        return stop(d, 0, "transport header longer than the IP payload (%lld bytes left) at offset %lld", (long long)length,
                    (long long)pos);
    payload_fields(d, pos, length);
    return 0;
}

/* -- network and transport layers --------------------------------------------------------------- */

static int l3(Dec *d, uint32_t ethertype, int64_t pos, int depth);

static int ip_ethertype(Dec *d, int64_t pos, uint32_t *ethertype) {
    if (need(d, pos, 1, "IP version")) return -1;
    uint32_t version = u8(d, pos) >> 4;
    if (version == 4) *ethertype = ETH_IPV4;
    else if (version == 6) *ethertype = ETH_IPV6;
    else return stop(d, 0, "not an IP packet (version %u) at offset %lld", version, (long long)pos);
    return 0;
}

static int skip_vlans(Dec *d, uint32_t *ethertype, int64_t *pos, int outer) {
    int first = 1;
    while (*ethertype == ETH_VLAN || *ethertype == ETH_QINQ) {
        if (need(d, *pos, 4, "vlan")) return -1;
        if (outer && first) put(d, C_VLAN, be16(d, *pos) & 0x0FFF);
        first = 0;
        *ethertype = be16(d, *pos + 2);
        *pos += 4;
    }
    return 0;
}

/* the packet decoded so far is an envelope: its addresses to outer_*, the packet's columns restart */
static void envelope(Dec *d, int kind) {
    put(d, C_TUNNEL, (uint64_t)kind);
    copy(d, C_OUTER_SRC, C_SRC);
    copy(d, C_OUTER_DST, C_DST);
    copy(d, C_OUTER_SRC6, C_SRC6);
    copy(d, C_OUTER_DST6, C_DST6);
    copy(d, C_OUTER_TTL, C_TTL);
    copy(d, C_OUTER_IP_ID, C_IP_ID);
    copy(d, C_OUTER_LEN, C_IP_LEN);
    d->m &= ~PACKET_COLUMNS;
}

static int tcp_options(Dec *d, int64_t pos, int64_t end) {
    while (pos < end) {
        if (need(d, pos, 1, "TCP option")) return -1;
        uint32_t kind = u8(d, pos);
        if (kind == 0) return 0;
        if (kind == 1) {
            pos += 1;
            continue;
        }
        if (need(d, pos, 2, "TCP option")) return -1;
        uint32_t size = u8(d, pos + 1);
        if (size < 2 || pos + size > end)
            return stop(d, 0, "bad TCP option %u length %u at offset %lld", kind, size, (long long)pos);
        if (pos + size > d->cap) {
            char what[32];
            snprintf(what, sizeof what, "TCP option %u", kind);
            return need(d, pos, size, what);
        }
        if (kind == 2 && size == 4) put(d, C_MSS, be16(d, pos + 2));
        else if (kind == 3 && size == 3) put(d, C_WSCALE, u8(d, pos + 2));
        else if (kind == 4 && size == 2) put(d, C_SACK_OK, 1);
        else if (kind == 8 && size == 10) {
            put(d, C_TSVAL, be32(d, pos + 2));
            put(d, C_TSECR, be32(d, pos + 6));
        }
        pos += size;
    }
    return 0;
}

static int tcp(Dec *d, int64_t pos, int64_t length, int64_t addr, int alen) {
    if (need(d, pos, 20, "tcp")) return -1;
    uint32_t flags = u8(d, pos + 13);
    int64_t doff = (int64_t)(u8(d, pos + 12) >> 4) * 4;
    put(d, C_SPORT, be16(d, pos));
    put(d, C_DPORT, be16(d, pos + 2));
    put(d, C_TCP_FLAGS, flags);
    put(d, C_SEQ, be32(d, pos + 4));
    if (flags & 16) put(d, C_ACK, be32(d, pos + 8));
    put(d, C_WIN, be16(d, pos + 14));
    put(d, C_SACK_OK, 0);
    if (length >= 20) checksum(d, PROTO_TCP, pos, length, addr, alen, C_L4_CSUM_BAD);
    if (doff < 20) return stop(d, 0, "TCP data offset %lld < 20 at offset %lld", (long long)doff, (long long)pos);
    if (payload(d, pos + doff, length - doff)) return -1;
    return tcp_options(d, pos + 20, pos + doff);
}

static int inner_ethernet(Dec *d, int64_t pos) {
    if (need(d, pos, 14, "ethernet")) return -1;
    put(d, C_INNER_ETH_DST, mac(d, pos));
    put(d, C_INNER_ETH_SRC, mac(d, pos + 6));
    uint32_t ethertype = be16(d, pos + 12);
    int64_t at = pos + 14;
    if (skip_vlans(d, &ethertype, &at, 0)) return -1;
    return l3(d, ethertype, at, 1);
}

static int udp_tunnel(Dec *d, int kind, int64_t pos) {
    if (kind == TUNNEL_VXLAN) {
        if (need(d, pos, 8, "vxlan")) return -1;
        put(d, C_VNI, be32(d, pos + 4) >> 8);
        return inner_ethernet(d, pos + 8);
    }
    if (kind == TUNNEL_GENEVE) {
        if (need(d, pos, 8, "geneve")) return -1;
        put(d, C_VNI, be32(d, pos + 4) >> 8);
        int64_t inner = pos + 8 + (int64_t)(u8(d, pos) & 0x3F) * 4;
        uint32_t proto = be16(d, pos + 2);
        if (proto == ETH_TEB) return inner_ethernet(d, inner);
        return l3(d, proto, inner, 1);
    }
    uint32_t ethertype;
    if (ip_ethertype(d, pos, &ethertype)) return -1;
    return l3(d, ethertype, pos, 1);
}

static int udp(Dec *d, int64_t pos, int64_t length, int outermost, int64_t addr, int alen) {
    if (need(d, pos, 8, "udp")) return -1;
    uint32_t sport = be16(d, pos), dport = be16(d, pos + 2);
    put(d, C_SPORT, sport);
    put(d, C_DPORT, dport);
    int kind = d->kinds[dport] ? d->kinds[dport] : d->kinds[sport];
    int tunnel = kind != 0 && outermost;
    /* a UDP length that disagrees with the IP header leaves the segment's extent in doubt; 0 over IPv4: none */
    int none = be16(d, pos + 6) == 0 && alen == 4;
    if (length >= 8 && be16(d, pos + 4) == length && !none)
        checksum(d, PROTO_UDP, pos, length, addr, alen, tunnel ? C_OUTER_L4_CSUM_BAD : C_L4_CSUM_BAD);
    if (tunnel) {
        envelope(d, kind);
        put(d, C_OUTER_SPORT, sport);
        put(d, C_OUTER_DPORT, dport);
        return udp_tunnel(d, kind, pos + 8);
    }
    if (payload(d, pos + 8, length - 8)) return -1;
    if ((sport == 53 || dport == 53) && length - 8 >= 4 && pos + 12 <= d->cap) {
        put(d, C_DNS_ID, be16(d, pos + 8));
        put(d, C_DNS_QR, (be16(d, pos + 10) & 0x8000) != 0);
    }
    return 0;
}

static int quoted(Dec *d, int64_t pos, int v6) {
    uint32_t proto;
    int64_t l4;
    if (v6) {
        if (need(d, pos, 40, "ipv6")) return -1;
        proto = u8(d, pos + 6);
        l4 = pos + 40;
    } else {
        if (need(d, pos, 20, "ipv4")) return -1;
        put(d, C_QUOTED_SRC, be32(d, pos + 12));
        put(d, C_QUOTED_DST, be32(d, pos + 16));
        proto = u8(d, pos + 9);
        l4 = pos + (int64_t)(u8(d, pos) & 15) * 4;
    }
    put(d, C_QUOTED_PROTO, proto);
    if (proto == PROTO_TCP || proto == PROTO_UDP) {
        if (need(d, l4, 4, "ports")) return -1;
        put(d, C_QUOTED_SPORT, be16(d, l4));
        put(d, C_QUOTED_DPORT, be16(d, l4 + 2));
    }
    return 0;
}

static int icmp(Dec *d, int64_t pos, int64_t length, int v6, int64_t addr, int alen) {
    if (need(d, pos, 8, "icmp")) return -1;
    uint32_t kind = u8(d, pos), code = u8(d, pos + 1);
    put(d, C_ICMP_TYPE, kind);
    put(d, C_ICMP_CODE, code);
    if (length >= 8) checksum(d, v6 ? PROTO_ICMPV6 : PROTO_ICMP, pos, length, addr, alen, C_L4_CSUM_BAD);
    if (payload(d, pos + 8, length - 8)) return -1;
    if (v6 ? (kind == 128 || kind == 129) : (kind == 0 || kind == 8)) {
        put(d, C_ICMP_ID, be16(d, pos + 4));
        put(d, C_ICMP_SEQ, be16(d, pos + 6));
    }
    if (v6 && kind == 2) {
        uint32_t mtu = be32(d, pos + 4);
        put(d, C_ICMP_MTU, mtu < 0xFFFF ? mtu : 0xFFFF);
    } else if (!v6 && kind == 3 && code == 4) put(d, C_ICMP_MTU, be16(d, pos + 6));
    int error = v6 ? (kind >= 1 && kind <= 4) : (kind == 3 || kind == 4 || kind == 5 || kind == 11 || kind == 12);
    return error ? quoted(d, pos + 8, v6) : 0;
}

/* fallback `l4`: `alen` 0 for a fragment (no checksum), else 4 or 16 with the addresses at `addr` */
static int l4(Dec *d, uint32_t proto, int64_t pos, int64_t length, int depth, int v4, int64_t addr, int alen) {
    if (proto == PROTO_TCP) return tcp(d, pos, length, addr, alen);
    if (proto == PROTO_UDP) return udp(d, pos, length, depth == 0, addr, alen);
    if (proto == PROTO_ICMP && v4) return icmp(d, pos, length, 0, addr, alen);
    if (proto == PROTO_ICMPV6 && !v4) return icmp(d, pos, length, 1, addr, alen);
    if ((proto == PROTO_IPIP || proto == PROTO_IPV6) && depth == 0) {
        envelope(d, TUNNEL_IPIP);
        return l3(d, proto == PROTO_IPIP ? ETH_IPV4 : ETH_IPV6, pos, 1);
    }
    return 0;
}

static int ipv4(Dec *d, int64_t pos, int depth) {
    if (need(d, pos, 20, "ipv4")) return -1;
    uint32_t vihl = u8(d, pos);
    if (vihl >> 4 != 4) return stop(d, 0, "IPv4 header with version %u at offset %lld", vihl >> 4, (long long)pos);
    int64_t ihl = (int64_t)(vihl & 15) * 4;
    int64_t total = be16(d, pos + 2);
    uint32_t frag = be16(d, pos + 6);
    put(d, C_IP_VERSION, 4);
    put(d, C_SRC, be32(d, pos + 12));
    put(d, C_DST, be32(d, pos + 16));
    put(d, C_IP_ID, be16(d, pos + 4));
    put(d, C_TTL, u8(d, pos + 8));
    put(d, C_TOS, u8(d, pos + 1));
    put(d, C_IP_LEN, (uint64_t)total);
    put(d, C_DF, (frag & 0x4000) != 0);
    put(d, C_MF, (frag & 0x2000) != 0);
    put(d, C_FRAG_OFFSET, (frag & 0x1FFF) * 8);
    put(d, C_PROTO, u8(d, pos + 9));
    if (ihl < 20) return stop(d, 0, "IPv4 header length %lld < 20 at offset %lld", (long long)ihl, (long long)pos);
    if (total < ihl)
        return stop(d, 0, "IPv4 total length %lld < header length %lld at offset %lld", (long long)total, (long long)ihl,
                    (long long)pos);
    if (need(d, pos, ihl, "IPv4 options")) return -1;
    if (frag & 0x1FFF) return 0;
    return l4(d, u8(d, pos + 9), pos + ihl, total - ihl, depth, 1, pos + 12, (frag & 0x2000) ? 0 : 4);
}

static int ipv6(Dec *d, int64_t pos, int depth) {
    if (need(d, pos, 40, "ipv6")) return -1;
    uint32_t vtcfl = be32(d, pos);
    if (vtcfl >> 28 != 6) return stop(d, 0, "IPv6 header with version %u at offset %lld", vtcfl >> 28, (long long)pos);
    int64_t plen = be16(d, pos + 4);
    put(d, C_IP_VERSION, 6);
    put(d, C_SRC6, (uint64_t)(d->base + pos + 8));
    put(d, C_DST6, (uint64_t)(d->base + pos + 24));
    put(d, C_TTL, u8(d, pos + 7));
    put(d, C_TOS, (vtcfl >> 20) & 0xFF);
    put(d, C_IP_LEN, (uint64_t)(plen + 40));
    put(d, C_MF, 0);
    put(d, C_FRAG_OFFSET, 0);
    uint32_t nh = u8(d, pos + 6);
    int64_t p = pos + 40, remaining = plen;
    int fragmented = 0, checkable = 1; /* not the first of several fragments, no routing header */
    while (nh == 0 || nh == 43 || nh == 44 || nh == 60 || nh == 51) {
        int64_t size;
        if (nh == 43) checkable = 0;
        if (nh == 44) {
            if (need(d, p, 8, "ipv6-frag")) return -1;
            uint32_t offflags = be16(d, p + 2);
            put(d, C_IP_ID, be32(d, p + 4));
            put(d, C_FRAG_OFFSET, offflags & 0xFFF8);
            put(d, C_MF, offflags & 1);
            fragmented = (offflags & 0xFFF8) != 0;
            if (offflags & 1) checkable = 0;
            nh = u8(d, p);
            size = 8;
        } else {
            if (need(d, p, 2, "ipv6-ext")) return -1;
            size = nh == 51 ? ((int64_t)u8(d, p + 1) + 2) * 4 : ((int64_t)u8(d, p + 1) + 1) * 8;
            nh = u8(d, p);
        }
        p += size;
        remaining -= size;
        if (remaining < 0) {
            put(d, C_PROTO, nh);
            return stop(d, 0, "IPv6 extension headers run past the payload length %lld at offset %lld", (long long)plen,
                        (long long)pos);
        }
    }
    put(d, C_PROTO, nh);
    if (fragmented) return 0;
    return l4(d, nh, p, remaining, depth, 0, pos + 8, checkable ? 16 : 0);
}

static int arp(Dec *d, int64_t pos) {
    if (need(d, pos, 28, "arp")) return -1;
    put(d, C_ARP_OP, be16(d, pos + 6));
    if (u8(d, pos + 4) == 6 && u8(d, pos + 5) == 4) {
        put(d, C_ARP_SHA, mac(d, pos + 8));
        put(d, C_ARP_SPA, be32(d, pos + 14));
        put(d, C_ARP_TPA, be32(d, pos + 24));
    }
    return 0;
}

static int l3(Dec *d, uint32_t ethertype, int64_t pos, int depth) {
    put(d, C_ETHERTYPE, ethertype);
    if (ethertype == ETH_IPV4) return ipv4(d, pos, depth);
    if (ethertype == ETH_IPV6) return ipv6(d, pos, depth);
    if (ethertype == ETH_ARP) return arp(d, pos);
    return 0;
}

/* -- link layer ----------------------------------------------------------------------------------- */

static uint32_t af_ethertype(uint32_t family) {
    if (family == 2) return ETH_IPV4;
    if (family == 10 || family == 24 || family == 28 || family == 30) return ETH_IPV6;
    return 0;
}

static uint32_t ppp_ethertype(uint32_t protocol) {
    return protocol == 0x0021 ? ETH_IPV4 : protocol == 0x0057 ? ETH_IPV6 : 0;
}

static int ppp(Dec *d, int64_t pos, uint32_t *ethertype, int64_t *at) {
    if (need(d, pos, 1, "PPP protocol")) return -1;
    if (u8(d, pos) & 1) { /* protocol field compression: one byte */
        *ethertype = ppp_ethertype(u8(d, pos));
        *at = pos + 1;
        return 0;
    }
    if (need(d, pos, 2, "PPP protocol")) return -1;
    *ethertype = ppp_ethertype(be16(d, pos));
    *at = pos + 2;
    return 0;
}

static int nflog(Dec *d, int64_t at, uint32_t *ethertype, int64_t *found) {
    if (need(d, at, 4, "NFLOG header")) return -1;
    uint32_t family = u8(d, at);
    int64_t pos = at + 4;
    while (pos + 4 <= d->cap) {
        uint32_t length = le16(d, pos), kind = le16(d, pos + 2) & 0x7FFF;
        if (length < 4) break;
        if (kind == 9) {
            *ethertype = af_ethertype(family);
            *found = pos + 4;
            return 0;
        }
        pos += (length + 3) & ~3U;
    }
    return stop(d, pos + 4 > d->cap, "NFLOG without a packet (payload TLV) at offset %lld", (long long)at);
}

static int sll_common(Dec *d, uint32_t pkttype, uint32_t halen, int64_t addr) {
    if (pkttype <= 4) put(d, C_DIRECTION, pkttype);
    if (halen == 6) put(d, C_ETH_SRC, mac(d, addr));
    return 0;
}

static int link_layer(Dec *d, uint32_t linktype) {
    int64_t at = 0, pos = 0;
    uint32_t ethertype = 0;
    while (linktype == LT_PKTAP) { /* macOS: a header naming the interface, then a frame of its own link type */
        if (need(d, at, 8, "pktap")) return -1;
        uint32_t length = le32(d, at);
        if (length < 8) return stop(d, 0, "PKTAP header length %u at offset %lld", length, (long long)at);
        linktype = le32(d, at + 4);
        at += length;
    }
    switch (linktype) {
    case LT_ETHERNET:
        if (need(d, at, 14, "ethernet")) return -1;
        put(d, C_ETH_DST, mac(d, at));
        put(d, C_ETH_SRC, mac(d, at + 6));
        ethertype = be16(d, at + 12);
        pos = at + 14;
        if (skip_vlans(d, &ethertype, &pos, 1)) return -1;
        break;
    case LT_LINUX_SLL:
        if (need(d, at, 16, "sll")) return -1;
        sll_common(d, be16(d, at), be16(d, at + 4), at + 6);
        ethertype = be16(d, at + 14);
        pos = at + 16;
        if (skip_vlans(d, &ethertype, &pos, 1)) return -1;
        break;
    case LT_LINUX_SLL2:
        if (need(d, at, 20, "sll2")) return -1;
        sll_common(d, u8(d, at + 10), u8(d, at + 11), at + 12);
        ethertype = be16(d, at);
        pos = at + 20;
        if (skip_vlans(d, &ethertype, &pos, 1)) return -1;
        break;
    case LT_RAW:
    case LT_RAW_BSD:
    case LT_RAW_OPENBSD:
        if (ip_ethertype(d, at, &ethertype)) return -1;
        pos = at;
        break;
    case LT_IPV4:
        ethertype = ETH_IPV4;
        pos = at;
        break;
    case LT_IPV6:
        ethertype = ETH_IPV6;
        pos = at;
        break;
    case LT_NULL:
    case LT_LOOP: {
        if (need(d, at, 4, "loopback")) return -1;
        uint32_t family = be32(d, at);
        if (linktype == LT_NULL && family > 0xFFFF) family = __builtin_bswap32(family); /* a little-endian host's */
        ethertype = af_ethertype(family);
        pos = at + 4;
        break;
    }
    case LT_PPP:
    case LT_PPP_HDLC:
        if (need(d, at, 2, "PPP header")) return -1;
        pos = u8(d, at) == 0xFF && u8(d, at + 1) == 0x03 ? at + 2 : at;
        if (ppp(d, pos, &ethertype, &pos)) return -1;
        break;
    case LT_PPP_ETHER:
        if (need(d, at, 6, "PPPoE header")) return -1;
        if (ppp(d, at + 6, &ethertype, &pos)) return -1;
        break;
    case LT_C_HDLC:
        if (need(d, at, 4, "c-hdlc")) return -1;
        ethertype = be16(d, at + 2);
        pos = at + 4;
        break;
    case LT_NFLOG:
        if (nflog(d, at, &ethertype, &pos)) return -1;
        break;
    default:
        return 0; /* not a link type cniscope decodes: the frame is kept, undecoded */
    }
    return l3(d, ethertype, pos, 0);
}

/* -- the common frames --------------------------------------------------------------------------------------------- */

/* What a node's capture is nearly all made of, decoded with fewer tests and no calls: Ethernet or Linux cooked (v1, v2)
 * without a VLAN tag, IPv4 without options nor fragments, TCP or UDP, and VXLAN carrying the same. The general path's
 * statements in the same order, but for the errors: a frame the general path would stop in (or one with anything
 * else) is left to it, started again (`fast` returns 0, the fields it put unmarked). Its Dec never leaves these
 * inlined functions: its fields stay in registers, where a put through the block made the general path's reload. */

static inline uint32_t rd16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static inline uint32_t rd32(const uint8_t *p) { return (rd16(p) << 16) | rd16(p + 2); }
static inline uint64_t rdmac(const uint8_t *p) { return ((uint64_t)rd16(p) << 32) | rd32(p + 2); }

/* `tcp` and `tcp_options` at `pos`, `length` bytes, the addresses at `addr` */
HOT int fast_tcp(Dec *f, int64_t pos, int64_t length, int64_t addr) {
    if (pos + 20 > f->cap) return 0;
    const uint8_t *p = f->buf + pos;
    int64_t doff = (int64_t)(p[12] >> 4) * 4, end = pos + doff;
    if (doff < 20 || length < doff || end > f->cap) return 0; /* an error, or options cut */
    uint32_t flags = p[13];
    put(f, C_SPORT, rd16(p));
    put(f, C_DPORT, rd16(p + 2));
    put(f, C_TCP_FLAGS, flags);
    put(f, C_SEQ, rd32(p + 4));
    if (flags & 16) put(f, C_ACK, rd32(p + 8));
    put(f, C_WIN, rd16(p + 14));
    put(f, C_SACK_OK, 0);
    if (pos + length <= f->cap) put(f, C_L4_CSUM_BAD, (uint64_t)checksum_bad(f->buf, PROTO_TCP, pos, length, addr, 4));
    payload_fields(f, end, length - doff);
    for (int64_t o = pos + 20; o < end;) {
        const uint8_t *q = f->buf + o;
        if (q[0] == 0) break;
        if (q[0] == 1) {
            o += 1;
            continue;
        }
        if (o + 2 > end || q[1] < 2 || o + q[1] > end) return 0;
        if (q[0] == 2 && q[1] == 4) put(f, C_MSS, rd16(q + 2));
        else if (q[0] == 3 && q[1] == 3) put(f, C_WSCALE, q[2]);
        else if (q[0] == 4 && q[1] == 2) put(f, C_SACK_OK, 1);
        else if (q[0] == 8 && q[1] == 10) {
            put(f, C_TSVAL, rd32(q + 2));
            put(f, C_TSECR, rd32(q + 6));
        }
        o += q[1];
    }
    return 1;
}

/* `udp` at `pos` not in a tunnel, its ports read */
HOT int fast_udp(Dec *f, int64_t pos, int64_t length, int64_t addr, uint32_t sport, uint32_t dport) {
    const uint8_t *p = f->buf + pos;
    if (length < 8) return 0; /* an error */
    put(f, C_SPORT, sport);
    put(f, C_DPORT, dport);
    if (rd16(p + 4) == length && rd16(p + 6) != 0 && pos + length <= f->cap)
        put(f, C_L4_CSUM_BAD, (uint64_t)checksum_bad(f->buf, PROTO_UDP, pos, length, addr, 4));
    payload_fields(f, pos + 8, length - 8);
    if ((sport == 53 || dport == 53) && length - 8 >= 4 && pos + 12 <= f->cap) {
        put(f, C_DNS_ID, rd16(p + 8));
        put(f, C_DNS_QR, (rd16(p + 10) & 0x8000) != 0);
    }
    return 1;
}

/* `ipv4` without options nor fragments: its fields, and its segment's length and protocol */
HOT int fast_ipv4(Dec *f, int64_t pos, int64_t *length, uint32_t *proto) {
    if (pos + 20 > f->cap) return 0;
    const uint8_t *p = f->buf + pos;
    uint32_t total = rd16(p + 2), frag = rd16(p + 6);
    if (p[0] != 0x45 || total < 20 || (frag & 0x3FFF)) return 0;
    put(f, C_IP_VERSION, 4);
    put(f, C_SRC, rd32(p + 12));
    put(f, C_DST, rd32(p + 16));
    put(f, C_IP_ID, rd16(p + 4));
    put(f, C_TTL, p[8]);
    put(f, C_TOS, p[1]);
    put(f, C_IP_LEN, total);
    put(f, C_DF, (frag & 0x4000) != 0);
    put(f, C_MF, 0);
    put(f, C_FRAG_OFFSET, 0);
    put(f, C_PROTO, p[9]);
    *length = (int64_t)total - 20;
    *proto = p[9];
    return 1;
}

/* the packet a VXLAN envelope carries: IPv4, TCP or UDP (a tunnel's port no tunnel there) */
HOT int fast_inner(Dec *f, int64_t pos) {
    int64_t length;
    uint32_t proto;
    if (!fast_ipv4(f, pos, &length, &proto)) return 0;
    if (proto == PROTO_TCP) return fast_tcp(f, pos + 20, length, pos + 12);
    if (proto != PROTO_UDP || pos + 28 > f->cap) return 0;
    return fast_udp(f, pos + 20, length, pos + 12, rd16(f->buf + pos + 20), rd16(f->buf + pos + 22));
}

/* `udp` of a VXLAN port at `pos`: the envelope, then `udp_tunnel` and `inner_ethernet` */
HOT int fast_vxlan(Dec *f, int64_t pos, int64_t length, int64_t addr, uint32_t sport, uint32_t dport) {
    const uint8_t *p = f->buf + pos;
    if (pos + 8 + 8 + 14 > f->cap) return 0;
    if (length >= 8 && rd16(p + 4) == length && rd16(p + 6) != 0 && pos + length <= f->cap)
        put(f, C_OUTER_L4_CSUM_BAD, (uint64_t)checksum_bad(f->buf, PROTO_UDP, pos, length, addr, 4));
    put(f, C_TUNNEL, TUNNEL_VXLAN); /* `envelope`: the IPv4 header's fields are the envelope's */
    put(f, C_OUTER_SRC, get(f, C_SRC));
    put(f, C_OUTER_DST, get(f, C_DST));
    put(f, C_OUTER_TTL, get(f, C_TTL));
    put(f, C_OUTER_IP_ID, get(f, C_IP_ID));
    put(f, C_OUTER_LEN, get(f, C_IP_LEN));
    f->m &= ~PACKET_COLUMNS;
    put(f, C_OUTER_SPORT, sport);
    put(f, C_OUTER_DPORT, dport);
    put(f, C_VNI, rd32(p + 12) >> 8);
    p += 16;
    if (rd16(p + 12) != ETH_IPV4) return 0;
    put(f, C_INNER_ETH_DST, rdmac(p));
    put(f, C_INNER_ETH_SRC, rdmac(p + 6));
    put(f, C_ETHERTYPE, ETH_IPV4);
    return fast_inner(f, pos + 30);
}

/* the frame from its IPv4 header at `pos` on */
HOT int fast_outer(Dec *f, int64_t pos) {
    int64_t length;
    uint32_t proto;
    if (!fast_ipv4(f, pos, &length, &proto)) return 0;
    if (proto == PROTO_TCP) return fast_tcp(f, pos + 20, length, pos + 12);
    if (proto != PROTO_UDP || pos + 28 > f->cap) return 0;
    uint32_t sport = rd16(f->buf + pos + 20), dport = rd16(f->buf + pos + 22);
    int kind = f->kinds[dport] ? f->kinds[dport] : f->kinds[sport];
    if (kind == 0) return fast_udp(f, pos + 20, length, pos + 12, sport, dport);
    if (kind == TUNNEL_VXLAN) return fast_vxlan(f, pos + 20, length, pos + 12, sport, dport);
    return 0;
}

/* `link_layer` of the link types above, carrying IPv4 */
HOT int fast(Dec *f, uint32_t linktype) {
    const uint8_t *p = f->buf;
    int64_t pos;
    if (linktype == LT_ETHERNET) {
        if (f->cap < 14 || rd16(p + 12) != ETH_IPV4) return 0;
        put(f, C_ETH_DST, rdmac(p));
        put(f, C_ETH_SRC, rdmac(p + 6));
        pos = 14;
    } else if (linktype == LT_LINUX_SLL2) {
        if (f->cap < 20 || rd16(p) != ETH_IPV4) return 0;
        if (p[10] <= 4) put(f, C_DIRECTION, p[10]);
        if (p[11] == 6) put(f, C_ETH_SRC, rdmac(p + 12));
        pos = 20;
    } else if (linktype == LT_LINUX_SLL) {
        if (f->cap < 16 || rd16(p + 14) != ETH_IPV4) return 0;
        if (rd16(p) <= 4) put(f, C_DIRECTION, rd16(p));
        if (rd16(p + 4) == 6) put(f, C_ETH_SRC, rdmac(p + 6));
        pos = 16;
    } else {
        return 0;
    }
    put(f, C_ETHERTYPE, ETH_IPV4);
    return fast_outer(f, pos);
}

/* -- the chunk -------------------------------------------------------------------------------------- */

typedef struct {
    Py_ssize_t row;
    char text[ERRLEN];
} Error;

typedef struct {
    uint8_t *values;
    uint64_t *valid; /* an Arrow validity bitmap: bit j of word k is row 64 k + j */
} Out;

#if defined(__SSE2__)
#include <emmintrin.h>
/* a whole block's `size` bytes (a multiple of 64) copied, or zeroed, 16 at a time: -O2 made memcpy and memset of
 * these known sizes `rep movs` and `rep stos`, which take long to start */
static inline void block_copy(uint8_t *v, const uint8_t *x, size_t size) {
    for (size_t k = 0; k < size; k += 16) _mm_storeu_si128((__m128i *)(v + k), _mm_loadu_si128((const __m128i *)(x + k)));
}
static inline void block_zero(uint8_t *v, size_t size) {
    for (size_t k = 0; k < size; k += 16) _mm_storeu_si128((__m128i *)(v + k), _mm_setzero_si128());
}
#else
static inline void block_copy(uint8_t *v, const uint8_t *x, size_t size) { memcpy(v, x, size); }
static inline void block_zero(uint8_t *v, size_t size) { memset(v, 0, size); }
#endif

/* the set bits of `x` (SWAR: without -mpopcnt, __builtin_popcountll is a call to libgcc's, twice a column a block:
 * 10 ms of the 10M pcapng's decoding) */
static inline int popcount64(uint64_t x) {
    x -= (x >> 1) & 0x5555555555555555ull;
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
    return (int)((x * 0x0101010101010101ull) >> 56);
}

/* `count` values of `width` bytes from `x` (the block's column) to `v`, zeros where `ok` has no row: when most rows
 * have one, zeros under the others in the block, then all copied; else zeros, then those few */
static inline void write_column(uint8_t *v, uint8_t *x, int width, int count, uint64_t ok, uint64_t rows) {
    size_t size = (size_t)count * (size_t)width;
    int whole = count == BLOCK;
    if (4 * popcount64(ok) >= count) {
        if (whole) block_copy(v, x, size);
        else memcpy(v, x, size);
        for (uint64_t m = rows & ~ok; m; m &= m - 1) memset(v + __builtin_ctzll(m) * width, 0, (size_t)width);
    } else {
        if (whole) block_zero(v, size);
        else memset(v, 0, size);
        for (uint64_t m = ok; m; m &= m - 1) {
            size_t at = (size_t)__builtin_ctzll(m) * (size_t)width;
            memcpy(v + at, x + at, (size_t)width);
        }
    }
}

#define WRITE_COLUMN(width)                                                                                   \
    do {                                                                                                      \
        if (count == BLOCK) write_column(v, x, width, BLOCK, ok, rows);                                       \
        else write_column(v, x, width, count, ok, rows);                                                      \
    } while (0)

/* -O2 leaves loops of known length scalar; -O3 vectorizes them */
#if defined(__GNUC__) && !defined(__clang__)
#define VECTORIZED __attribute__((optimize("O3")))
#else
#define VECTORIZED
#endif

/* one round of `transpose64`: the blocks of `j` rows and columns off the diagonal swapped, `m` their columns */
#define SWAP_BLOCKS(j, m)                                                                                         \
    for (int k = 0; k < 64; k += 2 * (j))                                                                         \
        for (int i = k; i < k + (j); i++) {                                                                       \
            uint64_t t = ((a[i] >> (j)) ^ a[i + (j)]) & (m);                                                      \
            a[i] ^= t << (j);                                                                                     \
            a[i + (j)] ^= t;                                                                                      \
        }

/* the 64 x 64 bit matrix `a` transposed in place: bit c of a[j] becomes bit j of a[c] (the rows' column masks become
 * the columns' row masks: a block's validity words); six rounds swapping ever smaller blocks across the diagonal,
 * unrolled (3 ns a row where a loop took 8) */
VECTORIZED static void transpose64(uint64_t a[64]) {
    SWAP_BLOCKS(32, 0x00000000FFFFFFFFULL)
    SWAP_BLOCKS(16, 0x0000FFFF0000FFFFULL)
    SWAP_BLOCKS(8, 0x00FF00FF00FF00FFULL)
    SWAP_BLOCKS(4, 0x0F0F0F0F0F0F0F0FULL)
    SWAP_BLOCKS(2, 0x3333333333333333ULL)
    SWAP_BLOCKS(1, 0x5555555555555555ULL)
}

/* the `count` rows from row `start` on (a multiple of BLOCK), into the kept columns any of them has a value for; every
 * kept column's validity word (0 where none has: the caller need not zero the bitmaps first), its rows with a value
 * counted into `counts`; `written` gets the columns whose values were written */
static void write_block(Block *block, int count, Py_ssize_t start, const Out *out, uint64_t kept, int64_t *counts,
                        uint64_t *written) {
    uint64_t rows = count == BLOCK ? ~0ULL : (1ULL << count) - 1, set[BLOCK];
    memcpy(set, block->rows, sizeof set);
    for (int j = count; j < BLOCK; j++) set[j] = 0;
    transpose64(set);
    for (int c = 0; c < NCOL; c++) {
        uint64_t ok = set[c], bit = BIT(c);
        if (!(kept & bit)) continue;
        out[c].valid[start / BLOCK] = ok;
        if (!ok) continue;
        counts[c] += popcount64(ok);
        *written |= bit;
        uint8_t *x = block->values + OFFSET[c], *v = out[c].values + start * WIDTH[c];
        switch (WIDTH[c]) {
        case 1: WRITE_COLUMN(1); break;
        case 2: WRITE_COLUMN(2); break;
        case 4: WRITE_COLUMN(4); break;
        default: WRITE_COLUMN(8); break;
        }
    }
}

#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
static long page_size;     /* set at import */
static int populating = 1; /* cleared where the kernel has no MADV_POPULATE_WRITE (before 5.14): faults, as before */

/* rows [from, to) of the columns in `columns` mapped now (MADV_POPULATE_WRITE: one call, no fault a page), from the
 * pages that hold them (the first may be the previous rows': already mapped, left as it is); a failure is left to the
 * faults */
static void populate(const Out *out, uint64_t columns, Py_ssize_t from, Py_ssize_t to) {
    for (int c = 0; c < NCOL && __atomic_load_n(&populating, __ATOMIC_RELAXED); c++) {
        if (!(columns & BIT(c))) continue;
        uintptr_t a = (uintptr_t)(out[c].values + from * WIDTH[c]), b = (uintptr_t)(out[c].values + to * WIDTH[c]);
        a &= ~(uintptr_t)(page_size - 1);
        b = (b + (uintptr_t)page_size - 1) & ~(uintptr_t)(page_size - 1);
        if (madvise((void *)a, b - a, MADV_POPULATE_WRITE) != 0 && errno == EINVAL)
            __atomic_store_n(&populating, 0, __ATOMIC_RELAXED);
    }
}
#else
static void populate(const Out *out, uint64_t columns, Py_ssize_t from, Py_ssize_t to) {}
#endif

static PyObject *release_all(Py_buffer *views, int count) {
    for (int i = 0; i < count; i++) PyBuffer_Release(&views[i]);
    return NULL;
}

/* decode(data, offset, caplen, linktype, kinds, values, valid, counts[, ifindex[, zeroed]]) -> [(row, error text), ...]:
 * `values` one array per column (need not be zeros: every row of a column some row has a value for is written, 0
 * under its nulls; the others are left as they are, to be dropped; an empty array: a column not kept, never written,
 * its count 0), `valid` the columns' validity bitmaps (uint64 words; every word of a kept column written, the others
 * left as they are), `counts` per column (int64) how many rows have a value (the null count without a pass over the
 * bitmap); `ifindex` (int64 a frame, optional, None: not wanted): the interface index of
 * each LINUX_SLL2 frame captured to its 8th byte, -1 for the others (decode names the interfaces a pcap does not:
 * gathered again in numpy, 4 ms a chunk of 64k); `zeroed` true: `values` are zeros already, and a block of BLOCK rows
 * none of which has a column's value is left unwritten (the pages of a rare column's blocks without one stay untouched) */
static PyObject *decode(PyObject *self, PyObject *args) {
    PyObject *data_obj, *offset_obj, *caplen_obj, *linktype_obj, *kinds_obj, *values_obj, *valid_obj, *counts_obj;
    PyObject *ifindex_obj = Py_None;
    int zeroed = 0;
    if (!PyArg_ParseTuple(args, "OOOOOOOO|Op", &data_obj, &offset_obj, &caplen_obj, &linktype_obj, &kinds_obj, &values_obj,
                          &valid_obj, &counts_obj, &ifindex_obj, &zeroed))
        return NULL;
    if (!PyList_Check(values_obj) || PyList_GET_SIZE(values_obj) != NCOL) {
        PyErr_Format(PyExc_ValueError, "values: a list of %d arrays", NCOL);
        return NULL;
    }
    Py_buffer views[5 + NCOL + 3];
    int held = 0;
    PyObject *ins[5] = {data_obj, offset_obj, caplen_obj, linktype_obj, kinds_obj};
    for (int i = 0; i < 5; i++) {
        if (PyObject_GetBuffer(ins[i], &views[held], PyBUF_C_CONTIGUOUS) < 0) return release_all(views, held);
        held++;
    }
    Py_ssize_t n = views[1].len / 8, words = (views[1].len / 8 + BLOCK - 1) / BLOCK;
    if (views[1].len != n * 8 || views[2].len != n * 4 || views[3].len != n * 2 || views[4].len != 65536) {
        release_all(views, held);
        PyErr_SetString(PyExc_ValueError, "offset int64, caplen uint32, linktype uint16 (one each per frame), kinds 65536 bytes");
        return NULL;
    }
    PyObject *outs[2] = {valid_obj, counts_obj};
    for (int k = 0; k < 2; k++) {
        if (PyObject_GetBuffer(outs[k], &views[held], PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return release_all(views, held);
        held++;
    }
    if (views[5].len != NCOL * words * 8 || views[6].len != NCOL * 8) {
        release_all(views, held);
        PyErr_Format(PyExc_ValueError, "valid: %d bitmaps of a uint64 word per 64 frames; counts: %d int64", NCOL, NCOL);
        return NULL;
    }
    uint64_t *valid = views[5].buf;
    int64_t *counts = views[6].buf;
    memset(counts, 0, NCOL * sizeof *counts);
    Out out[NCOL];
    uint64_t kept = ~0ULL;
    for (int c = 0; c < NCOL; c++) {
        if (PyObject_GetBuffer(PyList_GET_ITEM(values_obj, c), &views[held], PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
            return release_all(views, held);
        held++;
        Py_buffer *vals = &views[held - 1];
        if (vals->len == 0 && n) { /* not kept */
            kept &= ~BIT(c);
            out[c] = (Out){NULL, valid + c * words};
            continue;
        }
        if (vals->len != (Py_ssize_t)WIDTH[c] * n) {
            release_all(views, held);
            PyErr_Format(PyExc_ValueError, "column %s: values of %d bytes per frame", NAMES[c], WIDTH[c]);
            return NULL;
        }
        out[c] = (Out){vals->buf, valid + c * words};
    }
    int64_t *ifindex = NULL;
    if (ifindex_obj != Py_None) {
        if (PyObject_GetBuffer(ifindex_obj, &views[held], PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
            return release_all(views, held);
        held++;
        if (views[held - 1].len != n * 8) {
            release_all(views, held);
            PyErr_SetString(PyExc_ValueError, "ifindex: one int64 per frame");
            return NULL;
        }
        ifindex = views[held - 1].buf;
    }
    const uint8_t *data = views[0].buf;
    int64_t size = views[0].len;
    const int64_t *offset = views[1].buf;
    const uint32_t *caplen = views[2].buf;
    const uint16_t *linktype = views[3].buf;
    Error *errors = NULL;
    Py_ssize_t nerr = 0, room = 0;
    int failed = 0;

    Block *block = aligned_alloc(64, sizeof(Block));
    if (block) memset(block, 0, sizeof(Block));
    else {
        release_all(views, held);
        return PyErr_NoMemory();
    }

    Py_BEGIN_ALLOW_THREADS
    char err[ERRLEN];
    int count = 0;
    uint64_t dense = ~0ULL; /* the columns every block of the last POPULATE rows was written to */
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t at = offset[i];
        if (i + AHEAD < n && offset[i + AHEAD] >= 0 && offset[i + AHEAD] <= size - 128) { /* a hint, inside the buffer */
            __builtin_prefetch(data + offset[i + AHEAD]);
            __builtin_prefetch(data + offset[i + AHEAD] + 64);
        }
        int64_t cap = at < 0 || at > size ? 0 : (int64_t)caplen[i] < size - at ? (int64_t)caplen[i] : size - at;
        Dec d = {.buf = data + (at < 0 || at > size ? 0 : at), .cap = cap, .base = at, .kinds = views[4].buf, .err = err};
        if (ifindex) ifindex[i] = linktype[i] == LT_LINUX_SLL2 && cap >= 8 ? (int64_t)be32(&d, 4) : -1;
        row_at(&d, block, count);
        put(&d, C_TRUNCATED, 0);
        put(&d, C_TUNNEL, 0);
        Dec f = d; /* in registers: never given to a function not inlined */
        if (fast(&f, linktype[i])) {
            d.m = f.m;
        } else {
            put(&d, C_TUNNEL, 0); /* what `fast` put is not marked, but for this value it may have changed */
            if (link_layer(&d, linktype[i])) {
                put(&d, C_TRUNCATED, (uint64_t)d.truncated);
                if (nerr == room) {
                    room = room ? 2 * room : 256;
                    Error *grown = realloc(errors, (size_t)room * sizeof(Error));
                    if (!grown) {
                        failed = 1;
                        break;
                    }
                    errors = grown;
                }
                errors[nerr].row = i;
                memcpy(errors[nerr].text, d.err, ERRLEN);
                nerr++;
            }
        }
        block->rows[count] = d.m;
        if (++count == BLOCK || i == n - 1) {
            uint64_t written = 0;
            write_block(block, count, i + 1 - count, out, kept, counts, &written);
            dense &= written;
            count = 0;
            if ((i + 1) % POPULATE == 0) { /* a kept table's pages are fresh: its next rows' in one call a column */
                if (zeroed && i + 1 < n) populate(out, dense, i + 1, i + 1 + POPULATE < n ? i + 1 + POPULATE : n);
                dense = ~0ULL;
            }
        }
    }
    for (int c = 0; c < NCOL; c++) {
        if (!counts[c] || counts[c] == n || zeroed) continue; /* not kept or no row, every block written, or zeros */
        for (Py_ssize_t k = 0; k < words; k++) /* zeros under the nulls of the blocks it was not written in */
            if (!out[c].valid[k]) {
                Py_ssize_t rows = n - k * BLOCK < BLOCK ? n - k * BLOCK : BLOCK;
                memset(out[c].values + k * BLOCK * WIDTH[c], 0, (size_t)(rows * WIDTH[c]));
            }
    }
    Py_END_ALLOW_THREADS

    free(block);
    release_all(views, held);
    if (failed) {
        free(errors);
        return PyErr_NoMemory();
    }
    PyObject *found = PyList_New(nerr);
    for (Py_ssize_t k = 0; found && k < nerr; k++) {
        PyObject *item = Py_BuildValue("(ns)", errors[k].row, errors[k].text);
        if (!item) {
            Py_CLEAR(found);
            break;
        }
        PyList_SET_ITEM(found, k, item);
    }
    free(errors);
    return found;
}

/* -- IPv6 addresses as a text column's codes (cniscope.packets.chunks._ipv6_column) --------------------------------- */

typedef struct {
    char text[INET6_ADDRSTRLEN];
    int32_t id; /* the address's code in the order first seen */
} Text;

static int text_order(const void *a, const void *b) { return strcmp(((const Text *)a)->text, ((const Text *)b)->text); }

static inline uint64_t load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* the rows of `valid` (uint64 words, bit j of word k row 64 k + j) below `n`, each as `row` in `body` */
#define EACH_ROW(valid, words, n, body)                                                                              \
    for (Py_ssize_t w_ = 0; w_ < (words); w_++) {                                                                    \
        uint64_t bits_ = (valid)[w_];                                                                                \
        if (w_ == (words) - 1 && (n) % 64) bits_ &= (1ULL << ((n) % 64)) - 1;                                        \
        for (; bits_; bits_ &= bits_ - 1) {                                                                          \
            Py_ssize_t row = w_ * 64 + __builtin_ctzll(bits_);                                                       \
            body                                                                                                     \
        }                                                                                                            \
    }

/* ipv6_column(data, position, valid, codes) -> (offsets, texts): the IPv6 addresses whose 16 bytes start at
 * `position` (int64 a row) in `data`, in the rows `valid` sets, as a text column's codes (int32 a row, written only in
 * those rows) into the distinct addresses' texts (inet_ntop, as socket.inet_ntop) in text order, returned as an Arrow
 * string array's int32 offsets and UTF-8 bytes. The numpy it replaces cost 0.6 ms a column of 256k rows, few of them
 * IPv6 (expanding the bitmap, np.unique of 16-byte values); here one hash table a column, its size the rows'. */
static PyObject *ipv6_column(PyObject *self, PyObject *args) {
    PyObject *objs[4];
    if (!PyArg_ParseTuple(args, "OOOO", &objs[0], &objs[1], &objs[2], &objs[3])) return NULL;
    Py_buffer views[4];
    int held = 0;
    for (int i = 0; i < 4; i++) {
        if (PyObject_GetBuffer(objs[i], &views[i], i == 3 ? PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS : PyBUF_C_CONTIGUOUS) < 0)
            return release_all(views, held);
        held++;
    }
    const uint8_t *data = views[0].buf;
    const int64_t *position = views[1].buf;
    const uint64_t *valid = views[2].buf;
    int32_t *codes = views[3].buf;
    Py_ssize_t size = views[0].len, n = views[1].len / 8, words = (n + 63) / 64;
    if (views[1].len != n * 8 || views[2].len != words * 8 || views[3].len != n * 4) {
        release_all(views, held);
        PyErr_SetString(PyExc_ValueError, "position int64 a row, valid a uint64 word per 64 rows, codes int32 a row");
        return NULL;
    }
    Py_ssize_t total = 0, k = 0, bytes = 0;
    EACH_ROW(valid, words, n, {
        if (position[row] < 0 || position[row] > size - 16) {
            release_all(views, held);
            return PyErr_Format(PyExc_ValueError, "row %zd: an address's position outside the buffer", row);
        }
        total++;
    })
    int shift = 60; /* a table of 2^(64 - shift) slots, at least twice the rows */
    while (shift > 1 && (1LL << (64 - shift)) < 2 * total) shift--;
    size_t cap = (size_t)1 << (64 - shift);
    int32_t *slot = malloc(cap * sizeof *slot), *rank = NULL;
    int64_t *first = malloc((size_t)(total ? total : 1) * sizeof *first); /* each distinct address's position */
    Text *texts = NULL;
    PyObject *offsets = NULL, *joined = NULL, *out = NULL;
    if (!slot || !first) goto nomemory;
    memset(slot, 0xff, cap * sizeof *slot); /* -1: empty */
    EACH_ROW(valid, words, n, {
        const uint8_t *a = data + position[row];
        size_t i = (size_t)(((load64(a) * GOLDEN) ^ load64(a + 8)) * GOLDEN >> shift);
        while (slot[i] >= 0 && memcmp(data + first[slot[i]], a, 16)) i = (i + 1) & (cap - 1);
        if (slot[i] < 0) {
            slot[i] = (int32_t)k;
            first[k++] = position[row];
        }
        codes[row] = slot[i];
    })
    if (!(texts = malloc((size_t)(k ? k : 1) * sizeof *texts)) || !(rank = malloc((size_t)(k ? k : 1) * sizeof *rank)))
        goto nomemory;
    for (Py_ssize_t id = 0; id < k; id++) {
        if (!inet_ntop(AF_INET6, data + first[id], texts[id].text, sizeof texts[id].text)) texts[id].text[0] = 0;
        texts[id].id = (int32_t)id;
    }
    qsort(texts, (size_t)k, sizeof *texts, text_order);
    for (Py_ssize_t s = 0; s < k; s++) {
        rank[texts[s].id] = (int32_t)s;
        bytes += (Py_ssize_t)strlen(texts[s].text);
    }
    EACH_ROW(valid, words, n, { codes[row] = rank[codes[row]]; })
    if (!(offsets = PyBytes_FromStringAndSize(NULL, (k + 1) * 4)) || !(joined = PyBytes_FromStringAndSize(NULL, bytes)))
        goto done;
    int32_t *at = (int32_t *)PyBytes_AS_STRING(offsets);
    char *to = PyBytes_AS_STRING(joined);
    at[0] = 0;
    for (Py_ssize_t s = 0; s < k; s++) {
        size_t len = strlen(texts[s].text);
        memcpy(to + at[s], texts[s].text, len);
        at[s + 1] = at[s] + (int32_t)len;
    }
    out = PyTuple_Pack(2, offsets, joined);
    goto done;
nomemory:
    PyErr_NoMemory();
done:
    Py_XDECREF(offsets);
    Py_XDECREF(joined);
    free(slot);
    free(first);
    free(texts);
    free(rank);
    release_all(views, held);
    return out;
}

/* -- chunk columns to polars: the Arrow C data interface (cniscope.packets.arrow) ----------------------------------- */

/* export(name, array) -> (schema capsule, array capsule) of an `arrow.Array` (format, length, null count, buffers, an
 * optional dictionary), its buffers pointed at, not copied: what `arrow._Column.__arrow_c_array__` makes with ctypes,
 * made here without a Python callback a struct (1.6 of the 2.6 ms a chunk of 50 columns took to reach polars). The
 * array holds a reference to `array` (and so to its numpy buffers) until polars releases it. */

struct ArrowSchema {
    const char *format, *name, *metadata;
    int64_t flags, n_children;
    struct ArrowSchema **children, *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};

struct ArrowArray {
    int64_t length, null_count, offset, n_buffers, n_children;
    const void **buffers;
    struct ArrowArray **children, *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

#define MAX_BUFFERS 3

typedef struct {
    PyObject *owner; /* what keeps the buffers alive; NULL for a dictionary (its parent's owner holds it) */
    const void *buffers[MAX_BUFFERS];
} ArrayPrivate;

static void schema_release(struct ArrowSchema *s) {
    if (!s->release) return;
    if (s->dictionary) {
        if (s->dictionary->release) s->dictionary->release(s->dictionary);
        free(s->dictionary);
    }
    free(s->private_data); /* the format and name texts */
    s->release = NULL;
}

static void array_release(struct ArrowArray *a) {
    if (!a->release) return;
    ArrayPrivate *p = a->private_data;
    if (a->dictionary) {
        if (a->dictionary->release) a->dictionary->release(a->dictionary);
        free(a->dictionary);
    }
#if PY_VERSION_HEX >= 0x030D0000
    int finalizing = Py_IsFinalizing();
#else
    int finalizing = _Py_IsFinalizing();
#endif
    if (p->owner && !finalizing) { /* polars may release on a thread of its own, without the GIL */
        PyGILState_STATE gil = PyGILState_Ensure();
        Py_DECREF(p->owner);
        PyGILState_Release(gil);
    }
    free(p);
    a->release = NULL;
}

/* the schema of `array` named `name` into `s` (zeroed); -1 with an exception set, `s` left releasable */
static int export_schema(struct ArrowSchema *s, const char *name, PyObject *array) {
    PyObject *fmt = PyObject_GetAttrString(array, "fmt"), *dictionary = NULL;
    if (!fmt) return -1;
    if (!PyBytes_Check(fmt)) {
        Py_DECREF(fmt);
        PyErr_SetString(PyExc_TypeError, "an Arrow array's format is bytes");
        return -1;
    }
    size_t flen = (size_t)PyBytes_GET_SIZE(fmt), nlen = strlen(name);
    char *texts = malloc(flen + nlen + 2);
    if (!texts) {
        Py_DECREF(fmt);
        PyErr_NoMemory();
        return -1;
    }
    memcpy(texts, PyBytes_AS_STRING(fmt), flen + 1);
    memcpy(texts + flen + 1, name, nlen + 1);
    Py_DECREF(fmt);
    *s = (struct ArrowSchema){.format = texts, .name = texts + flen + 1, .flags = 2 /* nullable */,
                              .release = schema_release, .private_data = texts};
    if (!(dictionary = PyObject_GetAttrString(array, "dictionary"))) return -1;
    int status = 0;
    if (dictionary != Py_None) {
        if (!(s->dictionary = calloc(1, sizeof(struct ArrowSchema)))) {
            PyErr_NoMemory();
            status = -1;
        } else {
            status = export_schema(s->dictionary, "", dictionary);
        }
    }
    Py_DECREF(dictionary);
    return status;
}

/* the buffers of `array` into `a` (zeroed), `owner` referenced until it is released; -1 with an exception set, `a`
 * left releasable */
static int export_buffers(struct ArrowArray *a, PyObject *array, PyObject *owner) {
    ArrayPrivate *p = calloc(1, sizeof(ArrayPrivate));
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    a->private_data = p;
    a->buffers = p->buffers;
    a->release = array_release;
    if (owner) {
        Py_INCREF(owner);
        p->owner = owner;
    }
    PyObject *length = PyObject_GetAttrString(array, "length"), *nulls = length ? PyObject_GetAttrString(array, "null_count") : NULL;
    PyObject *buffers = nulls ? PyObject_GetAttrString(array, "buffers") : NULL, *dictionary = NULL;
    int status = -1;
    if (!buffers) goto done;
    a->length = PyLong_AsLongLong(length);
    a->null_count = PyLong_AsLongLong(nulls);
    if (PyErr_Occurred()) goto done;
    if (!PyTuple_Check(buffers) || PyTuple_GET_SIZE(buffers) > MAX_BUFFERS) {
        PyErr_SetString(PyExc_ValueError, "an Arrow array's buffers: a tuple of at most 3");
        goto done;
    }
    a->n_buffers = PyTuple_GET_SIZE(buffers);
    for (Py_ssize_t k = 0; k < a->n_buffers; k++) {
        PyObject *buffer = PyTuple_GET_ITEM(buffers, k);
        if (buffer == Py_None) continue;
        Py_buffer view; /* the address outlives the view: `owner` holds the buffer */
        if (PyObject_GetBuffer(buffer, &view, PyBUF_C_CONTIGUOUS) < 0) goto done;
        p->buffers[k] = view.buf;
        PyBuffer_Release(&view);
    }
    if (!(dictionary = PyObject_GetAttrString(array, "dictionary"))) goto done;
    if (dictionary != Py_None) {
        if (!(a->dictionary = calloc(1, sizeof(struct ArrowArray)))) {
            PyErr_NoMemory();
            goto done;
        }
        if (export_buffers(a->dictionary, dictionary, NULL) < 0) goto done;
    }
    status = 0;
done:
    Py_XDECREF(length);
    Py_XDECREF(nulls);
    Py_XDECREF(buffers);
    Py_XDECREF(dictionary);
    return status;
}

/* a capsule's struct polars did not take (it moves it out, leaving it released) is released with it */
static void schema_capsule_gone(PyObject *capsule) {
    struct ArrowSchema *s = PyCapsule_GetPointer(capsule, "arrow_schema");
    if (!s) return;
    schema_release(s);
    free(s);
}

static void array_capsule_gone(PyObject *capsule) {
    struct ArrowArray *a = PyCapsule_GetPointer(capsule, "arrow_array");
    if (!a) return;
    array_release(a);
    free(a);
}

static PyObject *export(PyObject *self, PyObject *args) {
    const char *name;
    PyObject *array;
    if (!PyArg_ParseTuple(args, "yO", &name, &array)) return NULL;
    struct ArrowSchema *s = calloc(1, sizeof(struct ArrowSchema));
    struct ArrowArray *a = calloc(1, sizeof(struct ArrowArray));
    PyObject *schema = NULL, *out = NULL;
    if (!s || !a) {
        free(s);
        free(a);
        return PyErr_NoMemory();
    }
    if (export_schema(s, name, array) < 0 || export_buffers(a, array, array) < 0) goto fail;
    if (!(schema = PyCapsule_New(s, "arrow_schema", schema_capsule_gone))) goto fail;
    s = NULL; /* the capsule's now */
    if (!(out = PyCapsule_New(a, "arrow_array", array_capsule_gone))) goto fail;
    return Py_BuildValue("(NN)", schema, out);
fail:
    Py_XDECREF(schema);
    if (s) {
        schema_release(s);
        free(s);
    }
    array_release(a);
    free(a);
    return NULL;
}

static PyMethodDef methods[] = {
    {"decode", decode, METH_VARARGS, "Decode a chunk of frames into its column arrays; returns [(row, error text)]."},
    {"ipv6_column", ipv6_column, METH_VARARGS, "IPv6 addresses' codes into their distinct texts: (offsets, texts)."},
    {"export", export, METH_VARARGS, "An arrow.Array as Arrow C data interface capsules: (schema, array)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_decode", NULL, -1, methods};

PyMODINIT_FUNC PyInit__decode(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
    page_size = sysconf(_SC_PAGESIZE);
    if (page_size <= 0 || (page_size & (page_size - 1))) populating = 0;
#endif
    PyObject *names = PyTuple_New(NCOL);
    if (!names) goto fail;
    for (int c = 0; c < NCOL; c++) {
        PyObject *name = PyUnicode_FromString(NAMES[c]);
        if (!name) {
            Py_DECREF(names);
            goto fail;
        }
        PyTuple_SET_ITEM(names, c, name);
    }
    if (PyModule_AddObject(m, "COLUMNS", names) < 0) {
        Py_DECREF(names);
        goto fail;
    }
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
