#pragma once
// The result every quantization method yields for one linear weight W (rows = out_features × cols =
// in_features, PyTorch layout). It holds what exporters pack (codes, per-group scales and zeros, g_idx),
// what evaluation uses (the dequantized weights) and how it was made (grid, provenance of folded scales).
//
// Layout:
//   codes        rows × cols, row-major, uint8 in [0, 2^bits − 1] (signed grids are offset by 2^(bits−1))
//   scales/zeros rows × numGroups(), row-major: entry [r·numGroups + k] belongs to row r, group k
//   gIdx         cols: the group of every input column. Natural order is c / groupSize; GPTQ act-order
//                without static groups makes it non-monotonic (groups are then numbered in processing
//                order, as GPTQ checkpoints expect, formats.md §3.4). groupSize −1 → all zero.
//   dequantized  rows × cols, row-major: exactly dequantizeCode(code, scale, zero) for every element
//
// groupSize: −1 = one group per output row (per channel), g > 0 = groups of g input columns (the last
// one shorter when g does not divide cols). rowGroupSize > 1 means that many consecutive rows share one
// scale/zero (ZeroQuant/DeepSpeed row groups, or a per-tensor scale with rowGroupSize = rows): the
// values are then repeated on every row of the row group so the per-(row, group) layout stays uniform.
//
// Zero points: w = scale·(q − zero). Symmetric grids have the fixed zero 2^(bits−1) (not stored in
// files that know the grid); asymmetric grids an integer zero in [0, 2^bits − 1]. A fractional zero
// (e.g. one trained as fp16 by EfficientQAT) is allowed only when zeroKind is Float.
//
// Input scales (SmoothQuant s, AWQ s): when not empty, the weights were transformed as W·diag(s) BEFORE
// quantization and 1/s belongs to the producer of the input (RMSNorm γ, previous linear). dequantized
// and codes are then in that smoothed basis: use them together with the folded producer, or use
// effectiveWeights() = dequantized·diag(1/s) as a drop-in replacement for W in the unmodified model.

#include <cstdint>
#include <string>
#include <vector>

#include "quant/Grid.h"

namespace qs::core {

enum class ZeroPointKind : uint8_t {
    Implicit, // symmetric grid: zero = 2^(bits−1), nothing to store
    Integer,  // asymmetric: an integer zero in [0, 2^bits − 1], stored with bits bits
    Float,    // fractional zero (stored as f16 by exporters that support it)
};
const char *zeroPointKindName(ZeroPointKind k); // "implicit", "integer", "float"

struct QuantizedTensor
{
    std::string name;   // layer name (canonical), for messages and provenance
    std::string method; // "rtn", "gptq", ... (MethodRegistry names)

    int64_t rows = 0;
    int64_t cols = 0;
    int bits = 0;
    int groupSize = -1;
    int rowGroupSize = 1;
    GridId grid = GridId::MinMax;
    bool symmetric = false;
    SymConvention convention = SymConvention::None;
    RoundingMode rounding = RoundingMode::HalfToEven;
    ZeroPointKind zeroKind = ZeroPointKind::Integer;

    std::vector<uint8_t> codes;
    std::vector<float> scales;
    std::vector<float> zeros;
    std::vector<int32_t> gIdx;

    std::vector<float> inputScales; // empty, or cols values s (W was multiplied by diag(s))
    std::string inputScalesSource;  // "smoothquant" | "awq" | "" (provenance)

    std::vector<float> dequantized;

    int numGroups() const { return groupSize > 0 ? int((cols + groupSize - 1) / groupSize) : 1; }
    int qmax() const { return (1 << bits) - 1; }
    float scale(int64_t row, int group) const { return scales[size_t(row * numGroups() + group)]; }
    float zero(int64_t row, int group) const { return zeros[size_t(row * numGroups() + group)]; }
    bool actOrderGroups() const; // gIdx differs from natural order

    // Recomputes the weights from codes, scales, zeros and gIdx (rows × cols, row-major).
    std::vector<float> dequantize() const;
    // dequantized · diag(1/inputScales): the weights to use in place of W in the unmodified model.
    std::vector<float> effectiveWeights() const;

    // Storage rate of the quantized representation: bits per weight plus, per scale set, a 16-bit (f16)
    // scale and the zero point (bits bits when Integer, 16 when Float, none when Implicit), spread over
    // the weights sharing it:
    //     bpw = bits + numScaleSets·(16 + zeroBits) / (rows·cols),  numScaleSets = ⌈rows/rowGroupSize⌉·numGroups
    // which is bits + (16 + bits)/g for asymmetric groups of g (4-bit g128: 4.156) and bits + 16/g for
    // symmetric ones (GGUF Q4_0: 4.5, Q8_0: 8.5). GPTQ checkpoints also store a b-bit zero for symmetric
    // grids; their exporter reports its own file-level figure. Folded input scales cost nothing here.
    double bitsPerWeight() const;

    // Checks every invariant: sizes, codes in [0, qmax], zeros integer and in range unless Float, finite
    // scales, gIdx in range, row groups consistent, and dequantized == dequantizeCode(...) bit for bit.
    // Throws Error("<name>: ...") naming the first violation.
    void validate() const;
};

// The storage formula of QuantizedTensor::bitsPerWeight() on its own (groupSize −1 = whole row).
double bitsPerWeightFor(int bits, int groupSize, int64_t rows, int64_t cols, ZeroPointKind zeroKind,
                        int rowGroupSize = 1);

// Fills the grid description fields (grid, symmetric, convention, rounding, zeroKind, bits) from a grid.
void describeGrid(QuantizedTensor &t, const Grid &grid);

// A tensor of the given shape on the given grid with every array sized, gIdx in natural order and the
// grid fields filled (groupSize −1 or > 0; methods then fill codes, scales, zeros and dequantized).
QuantizedTensor allocateQuantized(int64_t rows, int64_t cols, const Grid &grid, int groupSize, int rowGroupSize = 1);

// Row-major view of a float weight matrix (rows × cols).
struct WeightView
{
    const float *data = nullptr;
    int64_t rows = 0;
    int64_t cols = 0;
};

// Throws Error("<what>: weight [r, c] is <value>") at the first NaN/Inf.
void checkFinite(const float *data, int64_t rows, int64_t cols, const std::string &what);

} // namespace qs::core
