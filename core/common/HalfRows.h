#pragma once
// Rows of stored 16-bit floats (F16, BF16) to float32, bit-exact like halfToFloat / bf16ToFloat, written
// so that GCC vectorises them at -O2 (used by the safetensors/llama2.c reader and the GGUF decoders).

#include <bit>
#include <cstdint>
#include <cstring>

namespace qs::core {

// Exact half -> float without branches on the value, so that it vectorises. The exponent and mantissa
// are moved into float position and rebiased with integer adds; subnormal halves are built as
// 2^-14 * (1 + m/1024) and 2^-14 is subtracted (exact), so no float denormal is ever touched (they are
// slow on x86 and flushed under FTZ/DAZ).
inline float halfToFloatBranchless(uint16_t h)
{
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t shifted = uint32_t(h & 0x7FFFu) << 13;
    const uint32_t exponent = shifted & 0x0F800000u;
    const uint32_t normal = shifted + (112u << 23);
    const uint32_t infNan = shifted | 0x7F800000u; // payload kept
    const uint32_t subnormal = std::bit_cast<uint32_t>(std::bit_cast<float>(shifted + (113u << 23)) - 0x1p-14f);
    // Select with masks rather than ?: so that GCC at -O2 keeps the loop free of branches.
    const uint32_t isInfNan = 0u - uint32_t(exponent == 0x0F800000u);
    const uint32_t isSubnormal = 0u - uint32_t(exponent == 0);
    const uint32_t bits = (normal & ~(isInfNan | isSubnormal)) | (infNan & isInfNan) | (subnormal & isSubnormal);
    return std::bit_cast<float>(bits | sign);
}

inline float bf16ToFloatBits(uint16_t b)
{
    return std::bit_cast<float>(uint32_t(b) << 16);
}

// 16-bit values go through a small local array: it is aligned and cannot alias dst, so the conversion
// loop has a fixed trip count and vectorises even at -O2. src need not be aligned.
template <float (*Convert)(uint16_t)> void convert16Row(const uint8_t *src, float *dst, int64_t n)
{
    constexpr int64_t kChunk = 64;
    uint16_t h[kChunk];
    int64_t i = 0;
    for (; i + kChunk <= n; i += kChunk) {
        std::memcpy(h, src + 2 * i, sizeof h);
        for (int64_t k = 0; k < kChunk; ++k)
            dst[i + k] = Convert(h[k]);
    }
    for (; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, src + 2 * i, 2);
        dst[i] = Convert(v);
    }
}

inline void halfRowToFloat(const uint8_t *src, float *dst, int64_t n)
{
    convert16Row<halfToFloatBranchless>(src, dst, n);
}

inline void bf16RowToFloat(const uint8_t *src, float *dst, int64_t n)
{
    convert16Row<bf16ToFloatBits>(src, dst, n);
}

} // namespace qs::core
