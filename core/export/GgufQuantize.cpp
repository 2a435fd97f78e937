#include "export/GgufQuantize.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "common/Error.h"
#include "common/Half.h"

namespace qs::core {

namespace {

constexpr float kGroupMaxEps = 1e-15f; // llama.cpp GROUP_MAX_EPS

void storeHalf(uint8_t *p, float v)
{
    const uint16_t h = floatToHalf(v);
    std::memcpy(p, &h, 2);
}

float halfRound(float v)
{
    return halfToFloat(floatToHalf(v));
}

// llama.cpp nearest_int: round half to even (valid for |x| < 2^22, which every caller guarantees by the
// clamps that follow; out-of-range values are clamped first so the int conversion stays defined).
inline int nearestInt(float x)
{
    x = std::isfinite(x) ? std::clamp(x, -4194303.0f, 4194303.0f) : 0.0f;
    return int(std::nearbyint(x));
}

// (int8_t)(v) of a value llama.cpp knows to be in range; clamped so a NaN or overflow cannot reach UB.
inline int truncToInt(float v)
{
    v = std::isfinite(v) ? std::clamp(v, -128.0f, 127.0f) : 0.0f;
    return int(v);
}

// ---------------------------------------------------------------------------------------------------
// Legacy block types (quantize_row_q*_ref).

void encodeF32(const float *x, uint8_t *y, int64_t n)
{
    std::memcpy(y, x, size_t(n) * 4);
}

void encodeF16(const float *x, uint8_t *y, int64_t n)
{
    for (int64_t i = 0; i < n; ++i)
        storeHalf(y + 2 * i, x[i]);
}

void encodeBF16(const float *x, uint8_t *y, int64_t n)
{
    for (int64_t i = 0; i < n; ++i) {
        const uint16_t b = floatToBf16(x[i]);
        std::memcpy(y + 2 * i, &b, 2);
    }
}

void encodeQ8_0(const float *x, uint8_t *y, int64_t n)
{
    for (int64_t b = 0; b < n / 32; ++b, x += 32, y += 34) {
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j)
            amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        storeHalf(y, d);
        for (int j = 0; j < 32; ++j)
            y[2 + j] = uint8_t(int8_t(std::clamp(std::round(x[j] * id), -128.0f, 127.0f)));
    }
}

// The element with the largest |x|, sign kept (first on ties), as llama.cpp's loops find it.
float signedMax(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; ++j)
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    return max;
}

void encodeQ4_0(const float *x, uint8_t *y, int64_t n)
{
    for (int64_t b = 0; b < n / 32; ++b, x += 32, y += 18) {
        const float d = signedMax(x, 32) / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        storeHalf(y, d);
        for (int j = 0; j < 16; ++j) {
            const int x0 = std::min(15, truncToInt(x[j] * id + 8.5f));
            const int x1 = std::min(15, truncToInt(x[j + 16] * id + 8.5f));
            y[2 + j] = uint8_t(x0 | (x1 << 4));
        }
    }
}

void encodeQ4_1(const float *x, uint8_t *y, int64_t n)
{
    for (int64_t b = 0; b < n / 32; ++b, x += 32, y += 20) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < 32; ++j) {
            min = std::min(min, x[j]);
            max = std::max(max, x[j]);
        }
        const float d = (max - min) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        storeHalf(y, d);
        storeHalf(y + 2, min);
        for (int j = 0; j < 16; ++j) {
            const int x0 = std::min(15, truncToInt((x[j] - min) * id + 0.5f));
            const int x1 = std::min(15, truncToInt((x[j + 16] - min) * id + 0.5f));
            y[4 + j] = uint8_t(x0 | (x1 << 4));
        }
    }
}

// Low nibbles into qs, fifth bits into the u32 qh (element j → bit j), as Q5_0/Q5_1 store them.
void packQ5(const int *q, uint8_t *qh, uint8_t *qs)
{
    uint32_t h = 0;
    for (int j = 0; j < 16; ++j) {
        qs[j] = uint8_t((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
        h |= uint32_t((q[j] & 0x10) >> 4) << j;
        h |= uint32_t((q[j + 16] & 0x10) >> 4) << (j + 16);
    }
    std::memcpy(qh, &h, 4);
}

void encodeQ5_0(const float *x, uint8_t *y, int64_t n)
{
    for (int64_t b = 0; b < n / 32; ++b, x += 32, y += 22) {
        const float d = signedMax(x, 32) / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        storeHalf(y, d);
        int q[32];
        for (int j = 0; j < 32; ++j)
            q[j] = std::min(31, truncToInt(x[j] * id + 16.5f));
        packQ5(q, y + 2, y + 6);
    }
}

void encodeQ5_1(const float *x, uint8_t *y, int64_t n)
{
    for (int64_t b = 0; b < n / 32; ++b, x += 32, y += 24) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < 32; ++j) {
            min = std::min(min, x[j]);
            max = std::max(max, x[j]);
        }
        const float d = (max - min) / 31.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        storeHalf(y, d);
        storeHalf(y + 2, min);
        int q[32];
        for (int j = 0; j < 32; ++j)
            q[j] = std::clamp(truncToInt((x[j] - min) * id + 0.5f), 0, 31); // (uint8_t) in the reference
        packQ5(q, y + 4, y + 8);
    }
}

// ---------------------------------------------------------------------------------------------------
// K-quants.

// llama.cpp make_qkx2_quants: affine fit x ≈ scale·l − min (min ≥ 0 returned in theMin).
float makeQkx2Quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *theMin, uint8_t *Laux,
    float rmin, float rdelta, int nstep)
{
    float min = x[0];
    float max = x[0];
    float sumW = weights[0];
    float sumX = sumW * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        const float w = weights[i];
        sumW += w;
        sumX += w * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i)
            L[i] = 0;
        *theMin = -min;
        return 0.0f;
    }
    float iscale = float(nmax) / (max - min);
    float scale = 1 / iscale;
    float bestError = 0;
    for (int i = 0; i < n; ++i) {
        const int l = nearestInt(iscale * (x[i] - min));
        L[i] = uint8_t(std::max(0, std::min(nmax, l)));
        const float diff = scale * float(L[i]) + min - x[i];
        bestError += weights[i] * diff * diff;
    }
    if (nstep < 1) {
        *theMin = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
        float sumL = 0, sumL2 = 0, sumXl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearestInt(iscale * (x[i] - min));
            l = std::max(0, std::min(nmax, l));
            Laux[i] = uint8_t(l);
            const float w = weights[i];
            sumL += w * float(l);
            sumL2 += w * float(l) * float(l);
            sumXl += w * float(l) * x[i];
        }
        const float D = sumW * sumL2 - sumL * sumL;
        if (D > 0) {
            float thisScale = (sumW * sumXl - sumX * sumL) / D;
            float thisMin = (sumL2 * sumX - sumL * sumXl) / D;
            if (thisMin > 0) {
                thisMin = 0;
                thisScale = sumXl / sumL2;
            }
            float curError = 0;
            for (int i = 0; i < n; ++i) {
                const float diff = thisScale * float(Laux[i]) + thisMin - x[i];
                curError += weights[i] * diff * diff;
            }
            if (curError < bestError) {
                for (int i = 0; i < n; ++i)
                    L[i] = Laux[i];
                bestError = curError;
                scale = thisScale;
                min = thisMin;
            }
        }
    }
    *theMin = -min;
    return scale;
}

// llama.cpp make_qx_quants with rmse_type 1 and no importance weights (weights x²); L gets l + nmax.
float makeQxQuants(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0;
    float amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < kGroupMaxEps) {
        for (int i = 0; i < n; ++i)
            L[i] = 0;
        return 0.0f;
    }
    float iscale = -float(nmax) / max;
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearestInt(iscale * x[i]);
        l = std::max(-nmax, std::min(nmax - 1, l));
        L[i] = int8_t(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * float(l);
        suml2 += w * float(l) * float(l);
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0)
            continue;
        iscale = -(float(nmax) + 0.1f * float(is)) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearestInt(iscale * x[i]);
            l = std::max(-nmax, std::min(nmax - 1, l));
            const float w = x[i] * x[i];
            sumlx += w * x[i] * float(l);
            suml2 += w * float(l) * float(l);
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                const int l = nearestInt(iscale * x[i]);
                L[i] = int8_t(nmax + std::max(-nmax, std::min(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

void kScaleMin(const uint8_t *q, int j, uint8_t &d, uint8_t &m)
{
    if (j < 4) {
        d = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        d = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        m = uint8_t((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

void encodeQ4_K(const float *x, uint8_t *y, int64_t n)
{
    for (int64_t b = 0; b < n / 256; ++b, x += 256, y += 144) {
        uint8_t L[256];
        uint8_t Laux[32];
        float weights[32];
        float mins[8];
        float scales[8];
        float maxScale = 0;
        float maxMin = 0;
        for (int j = 0; j < 8; ++j) {
            float sumX2 = 0;
            for (int l = 0; l < 32; ++l)
                sumX2 += x[32 * j + l] * x[32 * j + l];
            const float avX = std::sqrt(sumX2 / 32);
            for (int l = 0; l < 32; ++l)
                weights[l] = avX + std::fabs(x[32 * j + l]);
            scales[j] = makeQkx2Quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.0f, 0.1f, 20);
            if (scales[j] > maxScale)
                maxScale = scales[j];
            if (mins[j] > maxMin)
                maxMin = mins[j];
        }
        const float invScale = maxScale > 0 ? 63.0f / maxScale : 0.0f;
        const float invMin = maxMin > 0 ? 63.0f / maxMin : 0.0f;
        uint8_t *sc = y + 4;
        std::memset(sc, 0, 12);
        for (int j = 0; j < 8; ++j) {
            const uint8_t ls = uint8_t(std::min(63, std::max(0, nearestInt(invScale * scales[j]))));
            const uint8_t lm = uint8_t(std::min(63, std::max(0, nearestInt(invMin * mins[j]))));
            if (j < 4) {
                sc[j] = ls;
                sc[j + 4] = lm;
            } else {
                sc[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
                sc[j - 4] |= uint8_t((ls >> 4) << 6);
                sc[j - 0] |= uint8_t((lm >> 4) << 6);
            }
        }
        storeHalf(y, maxScale / 63.0f);
        storeHalf(y + 2, maxMin / 63.0f);
        const float dAll = halfToFloat(uint16_t(y[0] | (y[1] << 8)));
        const float dminAll = halfToFloat(uint16_t(y[2] | (y[3] << 8)));
        for (int j = 0; j < 8; ++j) {
            uint8_t s = 0, m = 0;
            kScaleMin(sc, j, s, m);
            const float d = dAll * float(s);
            if (d == 0.0f)
                continue;
            const float dm = dminAll * float(m);
            for (int ii = 0; ii < 32; ++ii) {
                const int l = nearestInt((x[32 * j + ii] + dm) / d);
                L[32 * j + ii] = uint8_t(std::max(0, std::min(15, l)));
            }
        }
        uint8_t *q = y + 16;
        for (int j = 0; j < 256; j += 64) {
            for (int l = 0; l < 32; ++l)
                q[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
            q += 32;
        }
    }
}

void encodeQ6_K(const float *x, uint8_t *y, int64_t n)
{
    for (int64_t b = 0; b < n / 256; ++b, x += 256, y += 210) {
        int8_t L[256];
        float scales[16];
        float maxScale = 0;
        float maxAbsScale = 0;
        for (int ib = 0; ib < 16; ++ib) {
            const float scale = makeQxQuants(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            const float absScale = std::fabs(scale);
            if (absScale > maxAbsScale) {
                maxAbsScale = absScale;
                maxScale = scale;
            }
        }
        if (maxAbsScale < kGroupMaxEps) {
            std::memset(y, 0, 210);
            continue;
        }
        const float iscale = -128.0f / maxScale;
        storeHalf(y + 208, 1 / iscale);
        int8_t *sc = reinterpret_cast<int8_t *>(y + 192);
        for (int ib = 0; ib < 16; ++ib)
            sc[ib] = int8_t(std::max(-128, std::min(127, nearestInt(iscale * scales[ib]))));
        const float dAll = halfToFloat(uint16_t(y[208] | (y[209] << 8)));
        for (int j = 0; j < 16; ++j) {
            const float d = dAll * float(sc[j]);
            if (d == 0.0f)
                continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearestInt(x[16 * j + ii] / d);
                l = std::max(-32, std::min(31, l));
                L[16 * j + ii] = int8_t(l + 32);
            }
        }
        uint8_t *ql = y;
        uint8_t *qh = y + 128;
        for (int j = 0; j < 256; j += 128) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = uint8_t(L[j + l + 0] & 0xF);
                const uint8_t q2 = uint8_t(L[j + l + 32] & 0xF);
                const uint8_t q3 = uint8_t(L[j + l + 64] & 0xF);
                const uint8_t q4 = uint8_t(L[j + l + 96] & 0xF);
                ql[l + 0] = uint8_t(q1 | (q3 << 4));
                ql[l + 32] = uint8_t(q2 | (q4 << 4));
                qh[l] = uint8_t((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4)
                    | ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
    }
}

struct Encoder
{
    const char *name;
    void (*encode)(const float *, uint8_t *, int64_t);
};

const std::vector<Encoder> &encoders()
{
    static const std::vector<Encoder> table = {
        { "F32", encodeF32 },
        { "F16", encodeF16 },
        { "BF16", encodeBF16 },
        { "Q8_0", encodeQ8_0 },
        { "Q4_0", encodeQ4_0 },
        { "Q4_1", encodeQ4_1 },
        { "Q5_0", encodeQ5_0 },
        { "Q5_1", encodeQ5_1 },
        { "Q4_K", encodeQ4_K },
        { "Q6_K", encodeQ6_K },
    };
    return table;
}

bool halfExact(float v)
{
    return std::isfinite(v) && halfRound(v) == v;
}

} // namespace

const std::vector<std::string> &ggufWritableTypeNames()
{
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (const Encoder &e : encoders())
            v.emplace_back(e.name);
        return v;
    }();
    return names;
}

std::string ggufWritableTypeList()
{
    std::string s;
    for (const std::string &n : ggufWritableTypeNames())
        s += (s.empty() ? "" : ", ") + n;
    return s;
}

const GgmlTypeInfo *findWritableGgmlType(std::string_view name)
{
    for (const Encoder &e : encoders())
        if (name == e.name)
            return findGgmlType(name);
    return nullptr;
}

void quantizeGgufRow(const GgmlTypeInfo &type, const float *src, uint8_t *dst, int64_t n)
{
    if (n < 0 || n % type.blockSize != 0)
        throw Error(std::string("GGUF ") + type.name + ": " + std::to_string(n) + " elements are not a multiple of "
            + std::to_string(type.blockSize));
    for (const Encoder &e : encoders())
        if (std::string_view(type.name) == e.name) {
            e.encode(src, dst, n);
            return;
        }
    throw Error(std::string("GGUF type ") + type.name + " cannot be written (writable: " + ggufWritableTypeList() + ")");
}

const GgmlTypeInfo *ggmlTypeOfGrid(const QuantizedTensor &t)
{
    const GridInfo &g = gridInfo(t.grid);
    if (g.ggmlType == nullptr || *g.ggmlType == '\0')
        return nullptr;
    return findGgmlType(std::string_view(g.ggmlType));
}

std::string ggufPackProblem(const QuantizedTensor &t)
{
    const GgmlTypeInfo *type = ggmlTypeOfGrid(t);
    if (!type)
        return std::string("grid '") + gridInfo(t.grid).name + "' is not a GGUF block grid";
    if (t.groupSize != int(type->blockSize) || t.cols % type->blockSize != 0)
        return "group size " + std::to_string(t.groupSize) + " / " + std::to_string(t.cols)
            + " columns do not make whole blocks of " + std::to_string(type->blockSize);
    if (t.rowGroupSize != 1)
        return "row groups cannot be stored in GGUF blocks";
    if (t.actOrderGroups())
        return "act-order g_idx (groups not in column order) cannot be stored in GGUF blocks";
    const bool affine = t.grid == GridId::GgufQ4_1 || t.grid == GridId::GgufQ5_1;
    const float fixedZero = float(1 << (t.bits - 1));
    for (size_t i = 0; i < t.scales.size(); ++i) {
        const float d = t.scales[i];
        if (!halfExact(d))
            return "scale " + std::to_string(d) + " is not an f16 value (changed after quantization?)";
        if (affine) {
            const float m = 0.0f - d * t.zeros[i];
            if (!halfExact(m))
                return "offset " + std::to_string(m) + " is not an f16 value";
        } else if (t.zeros[i] != fixedZero) {
            return "zero point " + std::to_string(t.zeros[i]) + " differs from the block type's "
                + std::to_string(int(fixedZero));
        }
    }
    return {};
}

void packQuantizedRow(const QuantizedTensor &t, int64_t row, uint8_t *dst)
{
    const GgmlTypeInfo &type = *ggmlTypeOfGrid(t);
    const int ng = t.numGroups();
    const uint8_t *codes = t.codes.data() + row * t.cols;
    for (int k = 0; k < ng; ++k, codes += 32, dst += type.bytesPerBlock) {
        const float d = t.scale(row, k);
        switch (t.grid) {
        case GridId::GgufQ8_0:
            storeHalf(dst, d);
            for (int j = 0; j < 32; ++j)
                dst[2 + j] = uint8_t(int8_t(int(codes[j]) - 128));
            break;
        case GridId::GgufQ4_0:
            storeHalf(dst, d);
            for (int j = 0; j < 16; ++j)
                dst[2 + j] = uint8_t((codes[j] & 0xF) | ((codes[j + 16] & 0xF) << 4));
            break;
        case GridId::GgufQ4_1:
            storeHalf(dst, d);
            storeHalf(dst + 2, 0.0f - d * t.zero(row, k));
            for (int j = 0; j < 16; ++j)
                dst[4 + j] = uint8_t((codes[j] & 0xF) | ((codes[j + 16] & 0xF) << 4));
            break;
        case GridId::GgufQ5_0: {
            storeHalf(dst, d);
            int q[32];
            for (int j = 0; j < 32; ++j)
                q[j] = codes[j];
            packQ5(q, dst + 2, dst + 6);
            break;
        }
        case GridId::GgufQ5_1: {
            storeHalf(dst, d);
            storeHalf(dst + 2, 0.0f - d * t.zero(row, k));
            int q[32];
            for (int j = 0; j < 32; ++j)
                q[j] = codes[j];
            packQ5(q, dst + 4, dst + 8);
            break;
        }
        default:
            throw Error(t.name + ": grid '" + gridInfo(t.grid).name + "' has no GGUF block layout");
        }
    }
}

} // namespace qs::core
