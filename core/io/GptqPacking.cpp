#include "io/GptqPacking.h"

#include <cstring>

namespace qs::core {

bool gptqBitsSupported(int bits)
{
    return bits == 2 || bits == 3 || bits == 4 || bits == 8;
}

int gptqPackUnit(int bits)
{
    return bits == 3 ? 32 : 32 / bits;
}

void gptqPackQweight(const uint8_t *codes, int64_t n, int64_t k, int bits, int32_t *out)
{
    const int64_t rows = gptqPackedWords(k, bits);
    std::memset(out, 0, size_t(rows * n) * sizeof(int32_t));
    for (int64_t col = 0; col < n; ++col) {
        const uint8_t *row = codes + col * k;
        for (int64_t i = 0; i < k; ++i)
            gptqPackField(out + col, n, i, bits, row[i]);
    }
}

void gptqPackQzeros(const uint32_t *storedZeros, int64_t groups, int64_t n, int bits, int32_t *out)
{
    const int64_t words = gptqPackedWords(n, bits);
    std::memset(out, 0, size_t(groups * words) * sizeof(int32_t));
    for (int64_t g = 0; g < groups; ++g)
        for (int64_t i = 0; i < n; ++i)
            gptqPackField(out + g * words, 1, i, bits, storedZeros[g * n + i]);
}

} // namespace qs::core
