#pragma once
// The uniform quantization grids every method reuses (specs/algorithms.md §1.1, §8.2), as one table.
//
// Every grid maps a group of weights to parameters (scale, zero) and each weight to an unsigned code
// q ∈ [0, 2^b − 1] such that the dequantized value is exactly   ŵ = scale · (q − zero)   (float
// arithmetic, see dequantizeCode()). Symmetric grids store signed codes offset by 2^(b−1), so their
// zero is the fixed 2^(b−1); asymmetric grids carry an integer zero in [0, 2^b − 1].
//
// Grids (ids are the values of the method parameter "grid", see gridTable()):
//   minmax        asymmetric min–max with 0 forced into the range (GPTQ reference quant.py);
//                 all-zero group → range (−1, +1). Half-to-even rounding. Never clips a one-signed group.
//   minmax_awq    asymmetric on the raw min/max (AWQ pseudo_quantize_tensor): scale floor 1e-5/qmax,
//                 z clamped to [0, qmax] — one-signed groups lose their far end (§1.1).
//   sym           convention (a), restricted signed: codes ±(2^(b−1) − 1), scale = absmax/(2^(b−1) − 1),
//                 absmax floored at 1e-5 (SmoothQuant fake quant, AWQ no-zero-point branch). Exactly
//                 sign-symmetric. b = 2 is ternary.
//   sym_full      convention (b), DeepSpeed SymQuantizer: codes −2^(b−1)..2^(b−1)−1, scale = absmax/2^(b−1)
//                 (absmax floored at 1e-5 like "sym"); +absmax clamps one step down.
//   sym_gptq      convention (c), GPTQ sym=True: unsigned codes, fixed z = 2^(b−1), scale = 2·absmax/qmax;
//                 all-zero group → absmax 1. (The reference keeps xmin = 0 for all-non-negative groups and
//                 then halves the scale, clipping their upper half; we use 2·absmax/qmax for every group.)
//   signed_max    convention (d), llama.cpp "signed max" at any bit width and group size: m = the element
//                 with the largest |x| (first one on ties), d = m/(−2^(b−1)), code = ⌊x/d + 2^(b−1) + ½⌋
//                 clamped to [0, qmax]. The extreme element is hit exactly; the scale may be negative.
//   gguf_q4_0     signed_max with b = 4, groups of 32 and the scale rounded to f16 (GGUF Q4_0 blocks).
//   gguf_q5_0     signed_max with b = 5, groups of 32, f16 scale (GGUF Q5_0 blocks).
//   gguf_q8_0     8-bit, groups of 32, d = absmax/127 rounded to f16, q = roundf(x/d) (half away from
//                 zero) in [−128, 127], code q + 128 (GGUF Q8_0 blocks).
//   gguf_q4_1     asymmetric 4-bit, groups of 32, stored exactly as GGUF Q4_1 blocks (x = d·q + m, d and m
//                 f16); see "Affine GGUF grids" below. Zero kind Float.
//   gguf_q5_1     the same with 5 bits (GGUF Q5_1 blocks).
//
// Affine GGUF grids (gguf_q4_1, gguf_q5_1). llama.cpp's Q4_1 decodes x = d·q + m in float; our one formula is
// scale·(q − zero). They agree bit for bit when every value d·(q − z) is exactly representable, so the grid
// picks its parameters to make that so: d = A·2^e with A a small integer (at most 6 significant bits),
// z = K/2^j (a dyadic fraction), m = −d·z an f16 value (|A·K| < 2^11, the exponent inside f16's range),
// and j ≤ 12 so that d·(q − z) has at most 24 significant bits for every code. Then scale·(q − zero) and
// d·q + m are both the exact value, whatever the evaluation order (FMA or not). The group's zero is the
// fraction z, stored with ZeroPointKind::Float (−m/d); exporters write d = scale and m = −scale·zero
// (exact in float and in f16). Per group, the mantissa width of A (1..6 bits) is chosen to minimise
// d/2 + |z − z₀|·d, with d₀ = (max − min)/qmax rounded UP to A's width (so the range is still covered)
// and z₀ = −min/d. Codes: q = ⌊(x − m)/d + ½⌋ clamped to [0, qmax] (llama.cpp's Q4_1 rounding, with
// x·(1/d)). A constant group c gets m = f16(c) and codes 0; an all-zero group d = 0, z = 0. Compared with
// llama.cpp's own Q4_1 recipe (m = min exactly in f16, d = (max − min)/15 in f16) the scale is up to 3 %
// coarser and the offset can sit up to ¼·d from the minimum; groups far from zero (|min| ≫ max − min)
// lose more. In return a run on these grids exports to Q4_1/Q5_1 blocks that decode to exactly the
// weights the run evaluated.
//
// GGUF grids and f16: the block scale d is stored as f16, so we round d to f16 BEFORE computing codes and
// use the rounded value for the codes and the dequantized weights. Decoding an exported block (formats.md
// §2.6: x = d·(q − 8) for Q4_0, d·q for Q8_0) then gives exactly our dequantized floats. llama.cpp itself
// picks codes with the unrounded fp32 1/d, so its codes can differ from ours where x/d lies within ~2^-11
// of a rounding boundary; both decode exactly to what each computed, ours to the values we evaluated.
// Like llama.cpp, codes use the reciprocal (x·(1/d)), and an all-zero block gets d = 0 with all codes at
// the zero point (no NaN).
//
// Rounding: minmax*/sym* use half-to-even (torch.round; std::nearbyint under the default FE_TONEAREST);
// Q8_0 uses half away from zero (roundf); Q4_0/Q5_0/signed_max use ⌊v + ½⌋ on non-negative v, computed as
// llama.cpp does (the offset is added before the floor, in float).

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qs::core {

enum class RoundingMode : uint8_t {
    HalfToEven,       // std::nearbyint (torch.round, llama.cpp nearest_int)
    HalfAwayFromZero, // std::round (C roundf, llama.cpp Q8_0)
    HalfUp,           // ⌊x + ½⌋ (llama.cpp Q4_0/Q5_0/Q4_1/Q5_1 truncation of non-negative x + ½)
};
const char *roundingModeName(RoundingMode m); // "half_to_even", "half_away_from_zero", "half_up"

inline float roundWith(float x, RoundingMode mode)
{
    switch (mode) {
    case RoundingMode::HalfToEven:
        return std::nearbyint(x);
    case RoundingMode::HalfAwayFromZero:
        return std::round(x);
    case RoundingMode::HalfUp:
        return std::floor(x + 0.5f);
    }
    return x;
}

// How a symmetric grid lays out its levels (algorithms.md §1.1, table "Symmetric"). None = asymmetric.
enum class SymConvention : uint8_t {
    None,
    Restricted,   // (a) ±(2^(b−1) − 1), absmax/(2^(b−1) − 1)
    FullSigned,   // (b) −2^(b−1)..2^(b−1)−1, absmax/2^(b−1)
    GptqMidpoint, // (c) unsigned, z = 2^(b−1), 2·absmax/qmax
    SignedMax,    // (d) llama.cpp Q4_0/Q5_0: d = signed max/(−2^(b−1))
};
const char *symConventionName(SymConvention c); // "none", "restricted", "full_signed", "gptq_midpoint", "signed_max"

enum class GridId : uint8_t {
    MinMax,
    MinMaxAwq,
    Sym,
    SymFull,
    SymGptq,
    SignedMax,
    GgufQ4_0,
    GgufQ5_0,
    GgufQ8_0,
    GgufQ4_1,
    GgufQ5_1,
};

struct GridInfo
{
    GridId id;
    const char *name;        // the "grid" parameter value
    const char *description; // one line for menus and --list-methods
    int minBits;
    int maxBits;
    int requiredGroupSize;   // 0: any group size; 32 for the GGUF block grids
    bool symmetric;          // zero point fixed at 2^(b−1) (not stored)
    SymConvention convention;
    RoundingMode rounding;
    bool f16Scale;           // scale rounded to f16 before computing codes (exact GGUF export)
    const char *ggmlType;    // ggml type these groups are blocks of ("Q4_0"), or "" when none
    bool fractionalZero = false; // asymmetric with a non-integer zero (ZeroPointKind::Float): gguf_q4_1/q5_1
};

// All grids, in GridId order. Drives the "grid" choice parameter, validation and help text.
const std::vector<GridInfo> &gridTable();
const GridInfo &gridInfo(GridId id);
const GridInfo *findGrid(std::string_view name); // nullptr when unknown
std::string gridNames();                         // "minmax, minmax_awq, sym, ..." (for messages)

// Running statistics of one group; every grid's parameters are a function of these.
struct RangeStats
{
    float min = INFINITY;
    float max = -INFINITY;
    float absmax = 0.0f;
    float signedMax = 0.0f; // the element with the largest |x|, sign kept; the first one on ties

    void add(float v)
    {
        min = v < min ? v : min;
        max = v > max ? v : max;
        const float a = std::fabs(v);
        if (a > absmax) {
            absmax = a;
            signedMax = v;
        }
    }
    // Combines statistics of consecutive spans (other follows this in element order).
    void merge(const RangeStats &other)
    {
        min = other.min < min ? other.min : min;
        max = other.max > max ? other.max : max;
        if (other.absmax > absmax) {
            absmax = other.absmax;
            signedMax = other.signedMax;
        }
    }
    bool empty() const { return !(min <= max); }
};

// Statistics of n contiguous values: the same result as add() on each in order, but with a min/max
// loop the compiler vectorises (the signed max is derived from min and max, scanning only on a tie).
RangeStats rangeOf(const float *v, int64_t n);

// Parameters of one group: ŵ = scale·(q − zero). inv is the reciprocal used by the grids that multiply
// (llama.cpp style: 0 when scale is 0); the others divide by scale as their references do.
struct GroupParams
{
    float scale = 1.0f;
    float zero = 0.0f;
    float inv = 1.0f;
};

// The one dequantization formula of the whole quantization engine (validation checks it bit for bit).
inline float dequantizeCode(uint8_t q, float scale, float zero)
{
    return scale * (float(q) - zero);
}

// A grid at a bit width. Cheap to copy; all methods are const and thread-safe.
class Grid
{
public:
    Grid() = default;
    // Throws Error when bits is outside the grid's range.
    Grid(GridId id, int bits);
    // Throws Error naming the unknown grid and listing the known ones.
    static Grid fromName(std::string_view name, int bits);

    GridId id() const { return m_id; }
    const GridInfo &info() const { return gridInfo(m_id); }
    int bits() const { return m_bits; }
    int qmax() const { return m_qmax; }
    bool symmetric() const { return info().symmetric; }

    // Throws Error when the group size (−1: whole row) or column count does not suit this grid
    // (GGUF grids need groups of exactly 32 and cols a multiple of 32). what names the tensor.
    void checkShape(int64_t cols, int groupSize, const std::string &what) const;

    GroupParams params(const RangeStats &s) const;
    GroupParams params(const float *v, int64_t n) const;

    uint8_t quantize(float w, const GroupParams &p) const;
    float qdq(float w, const GroupParams &p) const { return dequantizeCode(quantize(w, p), p.scale, p.zero); }

    // Quantizes n contiguous values with one parameter set; codes and/or deq may be null.
    void quantizeSpan(const float *w, int64_t n, const GroupParams &p, uint8_t *codes, float *deq) const;

private:
    GridId m_id = GridId::MinMax;
    int m_bits = 4;
    int m_qmax = 15;
    int m_half = 8; // 2^(b−1)
};

// Rounds a float to the nearest f16 value (as a float): what a GGUF/GPTQ file will hold.
float roundToHalf(float x);

} // namespace qs::core
