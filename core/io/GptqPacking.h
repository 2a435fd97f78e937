#pragma once
// Bit packing of GPTQ checkpoints (formats.md §3.2), shared by the exporter (export/GptqExport) and the
// reader (io/GptqTensorData).
//
// One rule covers every bit width: the values along the packed dimension form one little-endian bit
// stream over consecutive int32 words; value i occupies stream bits [i·b, i·b + b). For b = 2, 4, 8 that
// is the sequential LSB-first packing (32/b values per word, none straddling); for b = 3 it is the
// "32 values in 3 words" layout whose values 10 and 21 straddle word boundaries. The packed dimension
// must hold a multiple of 32/gcd(32, b) values (16 for 2-bit, 32 for 3-bit, 8 for 4-bit, 4 for 8-bit) so
// that it fills whole words, which is what the loaders' shapes [K·b/32, N] and [G, N·b/32] assume.
//
//   qweight [K·b/32, N]  packed along K (rows of the word matrix), one stream per output column n
//   qzeros  [G, N·b/32]  packed along N (columns of the word matrix), one stream per group row g

#include <cstdint>
#include <string>

namespace qs::core {

// 2, 3, 4 or 8 (what GPTQ loaders accept).
bool gptqBitsSupported(int bits);

// Values per whole-word unit of the packed dimension: 16 (2-bit), 32 (3-bit), 8 (4-bit), 4 (8-bit).
int gptqPackUnit(int bits);

// Number of int32 words n values of `bits` bits fill; n must be a multiple of gptqPackUnit(bits).
inline int64_t gptqPackedWords(int64_t n, int bits) { return n * bits / 32; }

// Reads value `index` of a stream whose consecutive words lie `stride` words apart from `words`.
inline uint32_t gptqUnpackField(const int32_t *words, int64_t stride, int64_t index, int bits)
{
    const int64_t bit = index * bits;
    const int64_t w = bit >> 5;
    const int shift = int(bit & 31);
    const uint32_t mask = (uint32_t(1) << bits) - 1u;
    uint64_t v = uint32_t(words[w * stride]) >> shift;
    if (shift + bits > 32)
        v |= uint64_t(uint32_t(words[(w + 1) * stride])) << (32 - shift);
    return uint32_t(v) & mask;
}

// ORs value (masked to bits) into stream position `index` (the words must start zeroed).
inline void gptqPackField(int32_t *words, int64_t stride, int64_t index, int bits, uint32_t value)
{
    const uint32_t mask = (uint32_t(1) << bits) - 1u;
    value &= mask;
    const int64_t bit = index * bits;
    const int64_t w = bit >> 5;
    const int shift = int(bit & 31);
    words[w * stride] = int32_t(uint32_t(words[w * stride]) | (value << shift));
    if (shift + bits > 32)
        words[(w + 1) * stride] = int32_t(uint32_t(words[(w + 1) * stride]) | (value >> (32 - shift)));
}

// qweight [K·b/32, N] from codes in our layout [N rows = out][K cols = in] (row-major, one code per byte).
// out must hold K·b/32·N words. K must be a multiple of gptqPackUnit(bits).
void gptqPackQweight(const uint8_t *codes, int64_t n, int64_t k, int bits, int32_t *out);

// qzeros [G, N·b/32] from stored zero values [G][N] (already converted to the checkpoint's convention,
// e.g. zero − 1 for v1; masked to bits here). out must hold G·N·b/32 words.
void gptqPackQzeros(const uint32_t *storedZeros, int64_t groups, int64_t n, int bits, int32_t *out);

} // namespace qs::core
