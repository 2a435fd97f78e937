#include "io/GgufBlocks.h"

#include <array>
#include <bit>
#include <cstring>

#include "common/Error.h"
#include "common/Half.h"
#include "common/HalfRows.h"

namespace qs::core {

static_assert(std::endian::native == std::endian::little, "GGUF decoding assumes a little-endian host");

namespace {

uint16_t loadU16(const uint8_t *p)
{
    uint16_t v;
    std::memcpy(&v, p, 2); // blocks sit at any byte offset; memcpy is the portable unaligned read
    return v;
}

uint32_t loadU32(const uint8_t *p)
{
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

float loadHalf(const uint8_t *p)
{
    return halfToFloat(loadU16(p));
}

// ---------------------------------------------------------------------------------------------------
// Reference decoders: one element at a time, transcribed from formats.md 2.6 with no cleverness, so that
// they can be checked by reading. Each takes a block and an element index inside it.

float refF32(const uint8_t *b, int)
{
    float v;
    std::memcpy(&v, b, 4);
    return v;
}

float refF16(const uint8_t *b, int)
{
    return halfToFloat(loadU16(b));
}

float refBF16(const uint8_t *b, int)
{
    return bf16ToFloat(loadU16(b));
}

float refQ8_0(const uint8_t *b, int i)
{
    const float d = loadHalf(b);
    const int8_t q = static_cast<int8_t>(b[2 + i]);
    return d * float(q);
}

float refQ4_0(const uint8_t *b, int i)
{
    const float d = loadHalf(b);
    const uint8_t *qs = b + 2;
    const int q = i < 16 ? (qs[i] & 0xF) : (qs[i - 16] >> 4);
    return d * float(q - 8);
}

float refQ4_1(const uint8_t *b, int i)
{
    const float d = loadHalf(b);
    const float m = loadHalf(b + 2);
    const uint8_t *qs = b + 4;
    const int q = i < 16 ? (qs[i] & 0xF) : (qs[i - 16] >> 4);
    return d * float(q) + m;
}

// The 5-bit quant of element i of a Q5_0/Q5_1 block: low nibble from qs, fifth bit from the u32 qh.
int q5Value(const uint8_t *qh, const uint8_t *qs, int i)
{
    const uint32_t high = loadU32(qh);
    const int lowBits = i < 16 ? (qs[i] & 0xF) : (qs[i - 16] >> 4);
    const int fifth = int((high >> i) & 1u);
    return lowBits | (fifth << 4);
}

float refQ5_0(const uint8_t *b, int i)
{
    const float d = loadHalf(b);
    return d * float(q5Value(b + 2, b + 6, i) - 16);
}

float refQ5_1(const uint8_t *b, int i)
{
    const float d = loadHalf(b);
    const float m = loadHalf(b + 2);
    return d * float(q5Value(b + 4, b + 8, i)) + m;
}

// Q4_K / Q5_K: 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes.
void kScaleMin(const uint8_t *scales, int j, int &sc, int &m)
{
    if (j < 4) {
        sc = scales[j] & 63;
        m = scales[j + 4] & 63;
    } else {
        sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
        m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
    }
}

float refQ4_K(const uint8_t *b, int i)
{
    const float d = loadHalf(b);
    const float dmin = loadHalf(b + 2);
    const uint8_t *scales = b + 4;
    const uint8_t *qs = b + 16;
    const int chunk = i / 64; // 64 elements share 32 bytes of qs
    const int inChunk = i % 64;
    const int l = inChunk % 32;
    const uint8_t byte = qs[32 * chunk + l];
    const int q = inChunk < 32 ? (byte & 0xF) : (byte >> 4);
    int sc = 0, m = 0;
    kScaleMin(scales, i / 32, sc, m);
    return d * float(sc) * float(q) - dmin * float(m);
}

float refQ6_K(const uint8_t *b, int i)
{
    const int n = i / 128; // half
    const uint8_t *ql = b + 64 * n;
    const uint8_t *qh = b + 128 + 32 * n;
    const int8_t *scales = reinterpret_cast<const int8_t *>(b + 192 + 8 * n);
    const float d = loadHalf(b + 208);
    const int r = i % 128;
    const int quarter = r / 32;
    const int l = r % 32;
    const int is = l / 16;
    int q = 0;
    int sc = 0;
    switch (quarter) {
    case 0:
        q = (ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4);
        sc = scales[is + 0];
        break;
    case 1:
        q = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
        sc = scales[is + 2];
        break;
    case 2:
        q = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
        sc = scales[is + 4];
        break;
    default:
        q = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        sc = scales[is + 6];
        break;
    }
    return d * float(sc) * float(q - 32);
}

template <float (*Element)(const uint8_t *, int), int BlockSize, int BlockBytes>
void referenceRow(const uint8_t *src, float *dst, int64_t n)
{
    for (int64_t i = 0; i < n; ++i)
        dst[i] = Element(src + (i / BlockSize) * BlockBytes, int(i % BlockSize));
}

// ---------------------------------------------------------------------------------------------------
// Fast decoders: a block at a time with fixed trip counts, per-block constants hoisted, and the same
// floating-point operations in the same order as the reference (so results are bit-identical).

void fastF32(const uint8_t *src, float *dst, int64_t n)
{
    std::memcpy(dst, src, size_t(n) * 4);
}

void fastF16(const uint8_t *src, float *dst, int64_t n)
{
    halfRowToFloat(src, dst, n);
}

void fastBF16(const uint8_t *src, float *dst, int64_t n)
{
    bf16RowToFloat(src, dst, n);
}

// Each block is first copied into a local array, for the same reasons as in convert16Row (HalfRows.h).

void fastQ8_0(const uint8_t *src, float *dst, int64_t n)
{
    for (int64_t b = 0; b < n / 32; ++b, src += 34, dst += 32) {
        uint8_t blk[34];
        std::memcpy(blk, src, sizeof blk);
        const float d = loadHalf(blk);
        for (int i = 0; i < 32; ++i)
            dst[i] = d * float(static_cast<int8_t>(blk[2 + i]));
    }
}

void fastQ4_0(const uint8_t *src, float *dst, int64_t n)
{
    for (int64_t b = 0; b < n / 32; ++b, src += 18, dst += 32) {
        uint8_t blk[18];
        std::memcpy(blk, src, sizeof blk);
        const float d = loadHalf(blk);
        const uint8_t *qs = blk + 2;
        for (int j = 0; j < 16; ++j) {
            dst[j] = d * float(int(qs[j] & 0xF) - 8);
            dst[j + 16] = d * float(int(qs[j] >> 4) - 8);
        }
    }
}

void fastQ4_1(const uint8_t *src, float *dst, int64_t n)
{
    for (int64_t b = 0; b < n / 32; ++b, src += 20, dst += 32) {
        uint8_t blk[20];
        std::memcpy(blk, src, sizeof blk);
        const float d = loadHalf(blk);
        const float m = loadHalf(blk + 2);
        const uint8_t *qs = blk + 4;
        for (int j = 0; j < 16; ++j) {
            dst[j] = d * float(qs[j] & 0xF) + m;
            dst[j + 16] = d * float(qs[j] >> 4) + m;
        }
    }
}

// Bit i of a Q5 block's qh, as a table: SSE has no per-lane variable shift, but it has compares.
constexpr std::array<uint32_t, 32> kBit = [] {
    std::array<uint32_t, 32> bits {};
    for (int i = 0; i < 32; ++i)
        bits[size_t(i)] = 1u << i;
    return bits;
}();

void fastQ5_0(const uint8_t *src, float *dst, int64_t n)
{
    for (int64_t b = 0; b < n / 32; ++b, src += 22, dst += 32) {
        uint8_t blk[22];
        std::memcpy(blk, src, sizeof blk);
        const float d = loadHalf(blk);
        const uint32_t qh = loadU32(blk + 2);
        const uint8_t *qs = blk + 6;
        for (int j = 0; j < 16; ++j) {
            const int lo = int(qs[j] & 0xF) | (int((qh & kBit[j]) != 0) << 4);
            const int hi = int(qs[j] >> 4) | (int((qh & kBit[j + 16]) != 0) << 4);
            dst[j] = d * float(lo - 16);
            dst[j + 16] = d * float(hi - 16);
        }
    }
}

void fastQ5_1(const uint8_t *src, float *dst, int64_t n)
{
    for (int64_t b = 0; b < n / 32; ++b, src += 24, dst += 32) {
        uint8_t blk[24];
        std::memcpy(blk, src, sizeof blk);
        const float d = loadHalf(blk);
        const float m = loadHalf(blk + 2);
        const uint32_t qh = loadU32(blk + 4);
        const uint8_t *qs = blk + 8;
        for (int j = 0; j < 16; ++j) {
            const int lo = int(qs[j] & 0xF) | (int((qh & kBit[j]) != 0) << 4);
            const int hi = int(qs[j] >> 4) | (int((qh & kBit[j + 16]) != 0) << 4);
            dst[j] = d * float(lo) + m;
            dst[j + 16] = d * float(hi) + m;
        }
    }
}

void fastQ4_K(const uint8_t *src, float *dst, int64_t n)
{
    for (int64_t b = 0; b < n / 256; ++b, src += 144, dst += 256) {
        uint8_t blk[144];
        std::memcpy(blk, src, sizeof blk);
        const float d = loadHalf(blk);
        const float dmin = loadHalf(blk + 2);
        const uint8_t *scales = blk + 4;
        const uint8_t *qs = blk + 16;
        for (int c = 0; c < 4; ++c) {
            int sc1 = 0, m1 = 0, sc2 = 0, m2 = 0;
            kScaleMin(scales, 2 * c, sc1, m1);
            kScaleMin(scales, 2 * c + 1, sc2, m2);
            const float d1 = d * float(sc1), min1 = dmin * float(m1);
            const float d2 = d * float(sc2), min2 = dmin * float(m2);
            const uint8_t *q = qs + 32 * c;
            float *y = dst + 64 * c;
            for (int l = 0; l < 32; ++l) {
                y[l] = d1 * float(q[l] & 0xF) - min1;
                y[l + 32] = d2 * float(q[l] >> 4) - min2;
            }
        }
    }
}

void fastQ6_K(const uint8_t *src, float *dst, int64_t n)
{
    for (int64_t b = 0; b < n / 256; ++b, src += 210, dst += 256) {
        uint8_t blk[210];
        std::memcpy(blk, src, sizeof blk);
        const float d = loadHalf(blk + 208);
        for (int half = 0; half < 2; ++half) {
            const uint8_t *ql = blk + 64 * half;
            const uint8_t *qh = blk + 128 + 32 * half;
            const uint8_t *sc = blk + 192 + 8 * half;
            float *y = dst + 128 * half;
            for (int is = 0; is < 2; ++is) {
                const float d0 = d * float(static_cast<int8_t>(sc[is + 0]));
                const float d1 = d * float(static_cast<int8_t>(sc[is + 2]));
                const float d2 = d * float(static_cast<int8_t>(sc[is + 4]));
                const float d3 = d * float(static_cast<int8_t>(sc[is + 6]));
                for (int l = 16 * is; l < 16 * is + 16; ++l) {
                    const int q0 = int(ql[l] & 0xF) | int(((qh[l] >> 0) & 3) << 4);
                    const int q1 = int(ql[l + 32] & 0xF) | int(((qh[l] >> 2) & 3) << 4);
                    const int q2 = int(ql[l] >> 4) | int(((qh[l] >> 4) & 3) << 4);
                    const int q3 = int(ql[l + 32] >> 4) | int(((qh[l] >> 6) & 3) << 4);
                    y[l] = d0 * float(q0 - 32);
                    y[l + 32] = d1 * float(q1 - 32);
                    y[l + 64] = d2 * float(q2 - 32);
                    y[l + 96] = d3 * float(q3 - 32);
                }
            }
        }
    }
}

} // namespace

const std::vector<GgmlTypeInfo> &ggmlTypes()
{
    // formats.md 2.5. Q8_1 and Q8_K are ggml's activation formats; their sizes are listed so that a file
    // using them parses, but nothing decodes them.
    static const std::vector<GgmlTypeInfo> types = {
        { 0, "F32", 1, 4, fastF32, referenceRow<refF32, 1, 4>, DType::F32 },
        { 1, "F16", 1, 2, fastF16, referenceRow<refF16, 1, 2>, DType::F16 },
        { 2, "Q4_0", 32, 18, fastQ4_0, referenceRow<refQ4_0, 32, 18>, DType::Q4_0 },
        { 3, "Q4_1", 32, 20, fastQ4_1, referenceRow<refQ4_1, 32, 20>, DType::Q4_1 },
        { 6, "Q5_0", 32, 22, fastQ5_0, referenceRow<refQ5_0, 32, 22>, DType::Q5_0 },
        { 7, "Q5_1", 32, 24, fastQ5_1, referenceRow<refQ5_1, 32, 24>, DType::Q5_1 },
        { 8, "Q8_0", 32, 34, fastQ8_0, referenceRow<refQ8_0, 32, 34>, DType::Q8_0 },
        { 9, "Q8_1", 32, 36, nullptr, nullptr, std::nullopt },
        { 10, "Q2_K", 256, 84, nullptr, nullptr, std::nullopt },
        { 11, "Q3_K", 256, 110, nullptr, nullptr, std::nullopt },
        { 12, "Q4_K", 256, 144, fastQ4_K, referenceRow<refQ4_K, 256, 144>, DType::Q4_K },
        { 13, "Q5_K", 256, 176, nullptr, nullptr, std::nullopt },
        { 14, "Q6_K", 256, 210, fastQ6_K, referenceRow<refQ6_K, 256, 210>, DType::Q6_K },
        { 15, "Q8_K", 256, 292, nullptr, nullptr, std::nullopt },
        { 16, "IQ2_XXS", 256, 66, nullptr, nullptr, std::nullopt },
        { 17, "IQ2_XS", 256, 74, nullptr, nullptr, std::nullopt },
        { 18, "IQ3_XXS", 256, 98, nullptr, nullptr, std::nullopt },
        { 19, "IQ1_S", 256, 50, nullptr, nullptr, std::nullopt },
        { 20, "IQ4_NL", 32, 18, nullptr, nullptr, std::nullopt },
        { 21, "IQ3_S", 256, 110, nullptr, nullptr, std::nullopt },
        { 22, "IQ2_S", 256, 82, nullptr, nullptr, std::nullopt },
        { 23, "IQ4_XS", 256, 136, nullptr, nullptr, std::nullopt },
        { 24, "I8", 1, 1, nullptr, nullptr, std::nullopt },
        { 25, "I16", 1, 2, nullptr, nullptr, std::nullopt },
        { 26, "I32", 1, 4, nullptr, nullptr, std::nullopt },
        { 27, "I64", 1, 8, nullptr, nullptr, std::nullopt },
        { 28, "F64", 1, 8, nullptr, nullptr, std::nullopt },
        { 29, "IQ1_M", 256, 56, nullptr, nullptr, std::nullopt },
        { 30, "BF16", 1, 2, fastBF16, referenceRow<refBF16, 1, 2>, DType::BF16 },
        { 34, "TQ1_0", 256, 54, nullptr, nullptr, std::nullopt },
        { 35, "TQ2_0", 256, 66, nullptr, nullptr, std::nullopt },
        { 39, "MXFP4", 32, 17, nullptr, nullptr, std::nullopt },
    };
    return types;
}

const GgmlTypeInfo *findGgmlType(uint32_t id)
{
    for (const GgmlTypeInfo &t : ggmlTypes())
        if (t.id == id)
            return &t;
    return nullptr;
}

const GgmlTypeInfo *findGgmlType(std::string_view name)
{
    for (const GgmlTypeInfo &t : ggmlTypes())
        if (name == t.name)
            return &t;
    return nullptr;
}

const GgmlTypeInfo &ggmlTypeFor(DType dtype)
{
    for (const GgmlTypeInfo &t : ggmlTypes())
        if (t.dtype == dtype)
            return t;
    // Every DType is a ggml type; reaching this means the table and the enum drifted apart.
    throw Error(std::string("no ggml type for dtype ") + dtypeName(dtype));
}

std::string decodableGgmlTypeNames()
{
    std::string names;
    for (const GgmlTypeInfo &t : ggmlTypes())
        if (t.dequantize)
            names += (names.empty() ? "" : ", ") + std::string(t.name);
    return names;
}

} // namespace qs::core
