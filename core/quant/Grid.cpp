#include "quant/Grid.h"

#include <algorithm>

#include <Eigen/Core>

#include "common/Error.h"
#include "common/Half.h"

namespace qs::core {

namespace {

// NaN-safe clamp: a NaN lands on lo instead of reaching an undefined float → int conversion.
inline float clampf(float x, float lo, float hi)
{
    x = x >= lo ? x : lo;
    return x <= hi ? x : hi;
}

// Absmax floor of the symmetric grids with a reference floor (SmoothQuant / AWQ clamp(min=1e-5)).
constexpr float kSymAbsmaxFloor = 1e-5f;
// Range floor of the AWQ asymmetric grid (pseudo_quantize_tensor).
constexpr float kAwqRangeFloor = 1e-5f;

// Parameters of the affine GGUF grids (gguf_q4_1, gguf_q5_1; Grid.h "Affine GGUF grids"): scale d and a
// dyadic zero z such that d·(q − z) is exact in float for every code and m = −d·z is an f16 value.
GroupParams ggufAffineParams(const RangeStats &s, int qmax)
{
    GroupParams p;
    p.scale = 0.0f;
    p.zero = 0.0f;
    p.inv = 0.0f;
    if (s.empty())
        return p;
    const float lo = s.min;
    const float hi = s.max;
    if (!(hi > lo)) {
        // Constant group: codes 0 and m = f16(c). d is a power of two with |m|/d in [16, 32), so z = −m/d
        // is m's 11-bit mantissa over 64: exact.
        const float m = roundToHalf(lo);
        if (m == 0.0f)
            return p;
        int e = 0;
        (void)std::frexp(std::fabs(m), &e);
        p.scale = std::ldexp(1.0f, std::max(e - 5, -24));
        p.zero = -m / p.scale;
        p.inv = 1.0f / p.scale;
        return p;
    }
    const float d0 = (hi - lo) / float(qmax);
    float bestCost = INFINITY;
    // One candidate d = a·2^ee: the finest dyadic zero z = k/2^j that keeps m = −d·z an f16 value and every
    // d·(q − z) exact in float (a·(|z| + qmax)·2^max(j, 0) < 2^24); kept when its cost is the lowest so far.
    auto consider = [&](float a, int ee) {
        const float d = std::ldexp(a, ee);
        const float z0 = -lo / d;
        for (int j = std::min(12, ee + 24); j > -40; --j) {
            const float k = std::nearbyint(std::ldexp(z0, j));
            const float z = std::ldexp(k, -j);
            const float span = a * (std::fabs(z) + float(qmax)) * std::ldexp(1.0f, std::max(j, 0));
            if (std::fabs(a * k) < 2048.0f && std::fabs(std::ldexp(a * k, ee - j)) <= 65504.0f && span < 16777216.0f) {
                const float cost = 0.5f * d + std::fabs(z - z0) * d;
                if (cost < bestCost) {
                    bestCost = cost;
                    p.scale = d;
                    p.zero = z;
                }
                return;
            }
        }
    };
    int e0 = 0;
    const bool finiteRange = std::isfinite(d0);
    if (finiteRange)
        (void)std::frexp(d0, &e0); // d0 = f·2^e0, f in [0.5, 1)
    for (int mantissaBits = 6; mantissaBits >= 1 && finiteRange; --mantissaBits) {
        const int ee = std::max(e0 - mantissaBits, -24);
        const float a = std::ceil(std::ldexp(d0, -ee)); // at most 2^mantissaBits: d ≥ d0
        if (std::ldexp(a, ee) <= 65504.0f)
            consider(a, ee);
    }
    // A group far from zero (|min| ≫ max − min): f16 cannot resolve it at d0; coarser powers of two can.
    for (int ee = finiteRange ? std::max(e0, -24) : 15; bestCost == INFINITY && ee <= 15; ++ee)
        consider(1.0f, ee);
    if (bestCost == INFINITY) { // only for ranges beyond f16 (|x| > 65504): the coarsest grid, clamped codes
        p.scale = 32768.0f;
        p.zero = 0.0f;
    }
    p.inv = 1.0f / p.scale;
    return p;
}

} // namespace

const char *roundingModeName(RoundingMode m)
{
    switch (m) {
    case RoundingMode::HalfToEven:
        return "half_to_even";
    case RoundingMode::HalfAwayFromZero:
        return "half_away_from_zero";
    case RoundingMode::HalfUp:
        return "half_up";
    }
    return "?";
}

const char *symConventionName(SymConvention c)
{
    switch (c) {
    case SymConvention::None:
        return "none";
    case SymConvention::Restricted:
        return "restricted";
    case SymConvention::FullSigned:
        return "full_signed";
    case SymConvention::GptqMidpoint:
        return "gptq_midpoint";
    case SymConvention::SignedMax:
        return "signed_max";
    }
    return "?";
}

const std::vector<GridInfo> &gridTable()
{
    using R = RoundingMode;
    using S = SymConvention;
    static const std::vector<GridInfo> table = {
        { GridId::MinMax, "minmax", "asymmetric min-max with 0 forced into the range (GPTQ reference)", 2, 8, 0,
          false, S::None, R::HalfToEven, false, "" },
        { GridId::MinMaxAwq, "minmax_awq", "asymmetric on the raw min/max, zero clamped (AWQ reference)", 2, 8, 0,
          false, S::None, R::HalfToEven, false, "" },
        { GridId::Sym, "sym", "symmetric, codes +-(2^(b-1)-1), scale absmax/(2^(b-1)-1) (SmoothQuant, AWQ)", 2, 8,
          0, true, S::Restricted, R::HalfToEven, false, "" },
        { GridId::SymFull, "sym_full", "symmetric, codes -2^(b-1)..2^(b-1)-1, scale absmax/2^(b-1) (DeepSpeed/ZeroQuant)",
          2, 8, 0, true, S::FullSigned, R::HalfToEven, false, "" },
        { GridId::SymGptq, "sym_gptq", "symmetric GPTQ: unsigned codes, zero 2^(b-1), scale 2*absmax/(2^b-1)", 2, 8, 0,
          true, S::GptqMidpoint, R::HalfToEven, false, "" },
        { GridId::SignedMax, "signed_max", "llama.cpp signed max: scale = max-|x| element/-2^(b-1), extreme hit exactly",
          2, 8, 0, true, S::SignedMax, R::HalfUp, false, "" },
        { GridId::GgufQ4_0, "gguf_q4_0", "GGUF Q4_0 blocks: 4-bit signed max, groups of 32, f16 scale", 4, 4, 32, true,
          S::SignedMax, R::HalfUp, true, "Q4_0" },
        { GridId::GgufQ5_0, "gguf_q5_0", "GGUF Q5_0 blocks: 5-bit signed max, groups of 32, f16 scale", 5, 5, 32, true,
          S::SignedMax, R::HalfUp, true, "Q5_0" },
        { GridId::GgufQ8_0, "gguf_q8_0", "GGUF Q8_0 blocks: 8-bit absmax/127, groups of 32, f16 scale, roundf", 8, 8, 32,
          true, S::Restricted, R::HalfAwayFromZero, true, "Q8_0" },
        { GridId::GgufQ4_1, "gguf_q4_1", "GGUF Q4_1 blocks: 4-bit affine d*q+m, groups of 32, f16 d and m (exact)", 4, 4,
          32, false, S::None, R::HalfUp, true, "Q4_1", true },
        { GridId::GgufQ5_1, "gguf_q5_1", "GGUF Q5_1 blocks: 5-bit affine d*q+m, groups of 32, f16 d and m (exact)", 5, 5,
          32, false, S::None, R::HalfUp, true, "Q5_1", true },
    };
    return table;
}

const GridInfo &gridInfo(GridId id)
{
    return gridTable()[size_t(id)];
}

const GridInfo *findGrid(std::string_view name)
{
    for (const GridInfo &g : gridTable())
        if (name == g.name)
            return &g;
    return nullptr;
}

std::string gridNames()
{
    std::string s;
    for (const GridInfo &g : gridTable()) {
        if (!s.empty())
            s += ", ";
        s += g.name;
    }
    return s;
}

float roundToHalf(float x)
{
    return halfToFloat(floatToHalf(x));
}

Grid::Grid(GridId id, int bits) : m_id(id), m_bits(bits)
{
    const GridInfo &g = gridInfo(id);
    if (bits < g.minBits || bits > g.maxBits) {
        if (g.minBits == g.maxBits)
            throw Error("grid '" + std::string(g.name) + "' needs bits = " + std::to_string(g.minBits) + " (got " +
                        std::to_string(bits) + ")");
        throw Error("grid '" + std::string(g.name) + "' supports bits " + std::to_string(g.minBits) + ".." +
                    std::to_string(g.maxBits) + " (got " + std::to_string(bits) + ")");
    }
    m_qmax = (1 << bits) - 1;
    m_half = 1 << (bits - 1);
}

Grid Grid::fromName(std::string_view name, int bits)
{
    const GridInfo *g = findGrid(name);
    if (!g)
        throw Error("unknown grid '" + std::string(name) + "' (known: " + gridNames() + ")");
    return Grid(g->id, bits);
}

void Grid::checkShape(int64_t cols, int groupSize, const std::string &what) const
{
    const GridInfo &g = info();
    if (groupSize == 0 || groupSize < -1)
        throw Error(what + ": group size must be -1 (whole row) or positive (got " + std::to_string(groupSize) + ")");
    if (g.requiredGroupSize > 0) {
        if (groupSize != g.requiredGroupSize)
            throw Error(what + ": grid '" + g.name + "' needs group_size " + std::to_string(g.requiredGroupSize) +
                        " (got " + std::to_string(groupSize) + ")");
        if (cols % g.requiredGroupSize != 0)
            throw Error(what + ": grid '" + g.name + "' needs a column count that is a multiple of " +
                        std::to_string(g.requiredGroupSize) + " (got " + std::to_string(cols) + ")");
    }
}

GroupParams Grid::params(const RangeStats &s) const
{
    GroupParams p;
    const float half = float(m_half);
    switch (m_id) {
    case GridId::MinMax: {
        float lo = s.empty() ? 0.0f : std::min(s.min, 0.0f);
        float hi = s.empty() ? 0.0f : std::max(s.max, 0.0f);
        if (lo == 0.0f && hi == 0.0f) {
            lo = -1.0f;
            hi = 1.0f;
        }
        p.scale = (hi - lo) / float(m_qmax);
        p.zero = std::nearbyint(-lo / p.scale);
        break;
    }
    case GridId::MinMaxAwq: {
        const float lo = s.empty() ? 0.0f : s.min;
        const float hi = s.empty() ? 0.0f : s.max;
        p.scale = std::max(hi - lo, kAwqRangeFloor) / float(m_qmax);
        p.zero = clampf(-std::nearbyint(lo / p.scale), 0.0f, float(m_qmax));
        break;
    }
    case GridId::Sym:
        p.scale = std::max(s.absmax, kSymAbsmaxFloor) / (half - 1.0f);
        p.zero = half;
        break;
    case GridId::SymFull:
        p.scale = std::max(s.absmax, kSymAbsmaxFloor) / half;
        p.zero = half;
        break;
    case GridId::SymGptq: {
        const float am = s.absmax == 0.0f ? 1.0f : s.absmax; // GPTQ: all-zero group → range (−1, +1)
        p.scale = (am + am) / float(m_qmax);
        p.zero = half;
        break;
    }
    case GridId::SignedMax:
        p.scale = s.signedMax / -half;
        p.zero = half;
        break;
    case GridId::GgufQ4_0:
    case GridId::GgufQ5_0:
        p.scale = roundToHalf(s.signedMax / -half);
        p.zero = half;
        break;
    case GridId::GgufQ8_0:
        p.scale = roundToHalf(s.absmax / 127.0f);
        p.zero = half;
        break;
    case GridId::GgufQ4_1:
    case GridId::GgufQ5_1:
        p = ggufAffineParams(s, m_qmax);
        break;
    }
    p.zero += 0.0f; // −0 → +0, so zero points compare bit for bit whatever order the statistics came in
    p.inv = p.scale != 0.0f ? 1.0f / p.scale : 0.0f;
    return p;
}

RangeStats rangeOf(const float *v, int64_t n)
{
    RangeStats s;
    if (n <= 0)
        return s;
    // A float min/max reduction does not vectorise without -ffast-math; Eigen's reductions use vector
    // min/max. Min and max are exact in any order (only the sign of a zero extreme could differ, and
    // params() normalises zero points).
    const Eigen::Map<const Eigen::ArrayXf> a(v, n);
    const float lo = a.minCoeff();
    const float hi = a.maxCoeff();
    s.min = lo;
    s.max = hi;
    s.absmax = std::max(-lo, hi);
    if (-lo > hi) {
        s.signedMax = lo;
    } else if (hi > -lo) {
        s.signedMax = hi;
    } else if (hi != 0.0f) { // |min| == |max|: the first element of that magnitude, as add() keeps it
        for (int64_t i = 0; i < n; ++i)
            if (std::fabs(v[i]) == s.absmax) {
                s.signedMax = v[i];
                break;
            }
    }
    return s;
}

GroupParams Grid::params(const float *v, int64_t n) const
{
    return params(rangeOf(v, n));
}

uint8_t Grid::quantize(float w, const GroupParams &p) const
{
    const float qmax = float(m_qmax);
    const float half = float(m_half);
    float q = 0.0f;
    switch (m_id) {
    case GridId::MinMax:
    case GridId::MinMaxAwq:
    case GridId::SymGptq:
        q = clampf(std::nearbyint(w / p.scale) + p.zero, 0.0f, qmax);
        break;
    case GridId::Sym:
        q = clampf(std::nearbyint(w / p.scale), 1.0f - half, half - 1.0f) + half;
        break;
    case GridId::SymFull:
        q = clampf(std::nearbyint(w / p.scale), -half, half - 1.0f) + half;
        break;
    case GridId::SignedMax:
    case GridId::GgufQ4_0:
    case GridId::GgufQ5_0:
        // llama.cpp: (int8_t)(x*id + 8.5f), i.e. the offset is added in float before truncating.
        q = clampf(std::floor(w * p.inv + (half + 0.5f)), 0.0f, qmax);
        break;
    case GridId::GgufQ8_0:
        q = clampf(std::round(w * p.inv), -128.0f, 127.0f) + 128.0f;
        break;
    case GridId::GgufQ4_1:
    case GridId::GgufQ5_1: {
        const float m = -(p.scale * p.zero); // exact by construction
        q = clampf(std::floor((w - m) * p.inv + 0.5f), 0.0f, qmax);
        break;
    }
    }
    return uint8_t(q);
}

void Grid::quantizeSpan(const float *w, int64_t n, const GroupParams &p, uint8_t *codes, float *deq) const
{
    // The switch sits outside the element loop so each case compiles to a plain (vectorisable) loop.
    auto run = [&](auto &&codeOf) {
        for (int64_t i = 0; i < n; ++i) {
            const uint8_t q = codeOf(w[i]);
            if (codes)
                codes[i] = q;
            if (deq)
                deq[i] = dequantizeCode(q, p.scale, p.zero);
        }
    };
    const float qmax = float(m_qmax);
    const float half = float(m_half);
    switch (m_id) {
    case GridId::MinMax:
    case GridId::MinMaxAwq:
    case GridId::SymGptq:
        run([&](float x) { return uint8_t(clampf(std::nearbyint(x / p.scale) + p.zero, 0.0f, qmax)); });
        break;
    case GridId::Sym:
        run([&](float x) { return uint8_t(clampf(std::nearbyint(x / p.scale), 1.0f - half, half - 1.0f) + half); });
        break;
    case GridId::SymFull:
        run([&](float x) { return uint8_t(clampf(std::nearbyint(x / p.scale), -half, half - 1.0f) + half); });
        break;
    case GridId::SignedMax:
    case GridId::GgufQ4_0:
    case GridId::GgufQ5_0: {
        const float off = half + 0.5f;
        run([&](float x) { return uint8_t(clampf(std::floor(x * p.inv + off), 0.0f, qmax)); });
        break;
    }
    case GridId::GgufQ8_0:
        run([&](float x) { return uint8_t(clampf(std::round(x * p.inv), -128.0f, 127.0f) + 128.0f); });
        break;
    case GridId::GgufQ4_1:
    case GridId::GgufQ5_1: {
        const float m = -(p.scale * p.zero);
        run([&](float x) { return uint8_t(clampf(std::floor((x - m) * p.inv + 0.5f), 0.0f, qmax)); });
        break;
    }
    }
}

} // namespace qs::core
