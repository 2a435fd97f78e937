#pragma once
// Round-to-nearest (algorithms.md §1.2): every group of every row gets its grid parameters from its own
// values and each weight its nearest code. The baseline of every table and the final step of AWQ and
// ZeroQuant. Always state the RTN variant next to a number: the GPTQ repo's RTN is per row, asymmetric
// min–max (grid minmax, groupSize −1); the AWQ paper's is g128 asymmetric (grid minmax_awq, 128).

#include <string>

#include "quant/Grid.h"
#include "quant/QuantizedTensor.h"

namespace qs::core {

// What grid and which granularity: shared by RTN, GPTQ, AWQ and ZeroQuant.
struct QuantSpec
{
    GridId grid = GridId::MinMax;
    int bits = 4;
    // −1: one group per output row (per channel); g > 0: groups of g input columns; 0: one scale for the
    // whole tensor (RTN/ZeroQuant/SmoothQuant only; stored as groupSize −1 with rowGroupSize = rows).
    int groupSize = 128;
    // Rows sharing one scale (ZeroQuant/DeepSpeed row groups); only with groupSize −1. 1 = per row.
    int rowGroupSize = 1;

    Grid makeGrid() const { return Grid(grid, bits); } // throws Error on bits outside the grid's range
};

// Quantizes W (row-major rows × cols) to the grid. Throws Error naming `name` on NaN/Inf weights, a
// group size the grid does not allow (GGUF grids: exactly 32), or rowGroupSize with column groups.
// Multi-threaded over rows; the result does not depend on the thread count.
QuantizedTensor quantizeRtn(const WeightView &w, const QuantSpec &spec, const std::string &name = {});

// Fake quantization only: returns the dequantized weights of quantizeRtn (same values) without keeping
// the codes. Used inside searches (AWQ) where only the float result matters.
void fakeQuantizeRtn(const float *w, int64_t rows, int64_t cols, const Grid &grid, int groupSize, float *out);

} // namespace qs::core
