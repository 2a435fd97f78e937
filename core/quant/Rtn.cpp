#include "quant/Rtn.h"

#include <algorithm>
#include <cstring>

#include "common/Error.h"

namespace qs::core {

namespace {

// Minimum work per OpenMP chunk: below it threads cost more than they save (small test tensors).
constexpr int64_t kParallelThreshold = int64_t(1) << 15;

} // namespace

QuantizedTensor quantizeRtn(const WeightView &w, const QuantSpec &spec, const std::string &name)
{
    const std::string what = name.empty() ? std::string("weight") : name;
    if (w.rows <= 0 || w.cols <= 0 || !w.data)
        throw Error(what + ": empty weight " + std::to_string(w.rows) + " x " + std::to_string(w.cols));
    const Grid grid = spec.makeGrid();

    int groupSize = spec.groupSize;
    int rowGroup = spec.rowGroupSize;
    if (rowGroup < 1)
        throw Error(what + ": rows per group must be at least 1 (got " + std::to_string(rowGroup) + ")");
    if (groupSize == 0) { // per tensor
        groupSize = -1;
        rowGroup = int(std::min<int64_t>(w.rows, INT32_MAX));
    }
    if (rowGroup > 1 && groupSize != -1)
        throw Error(what + ": row groups need group_size -1 (whole rows), got " + std::to_string(groupSize));
    rowGroup = int(std::min<int64_t>(rowGroup, w.rows));
    grid.checkShape(w.cols, groupSize, what);

    QuantizedTensor t = allocateQuantized(w.rows, w.cols, grid, groupSize, rowGroup);
    t.name = name;
    t.method = "rtn";
    const int64_t rows = w.rows, cols = w.cols;
    const int ng = t.numGroups();
    const int64_t gs = groupSize > 0 ? groupSize : cols;

    if (rowGroup == 1) {
        // Non-finite weights are detected while the row is in cache (an all-ones exponent, tested on the
        // bits so the loop vectorises) and reported with their position after the parallel loop.
        bool nonFinite = false;
#pragma omp parallel for schedule(static) reduction(|| : nonFinite) if (rows * cols > kParallelThreshold)
        for (int64_t r = 0; r < rows; ++r) {
            const float *src = w.data + r * cols;
            uint32_t bad = 0;
            for (int64_t c = 0; c < cols; ++c) {
                uint32_t bits;
                std::memcpy(&bits, src + c, 4);
                bad |= uint32_t((bits & 0x7F800000u) == 0x7F800000u);
            }
            if (bad) {
                nonFinite = true;
                continue;
            }
            for (int k = 0; k < ng; ++k) {
                const int64_t c0 = k * gs;
                const int64_t n = std::min(gs, cols - c0);
                const GroupParams p = grid.params(src + c0, n);
                t.scales[size_t(r * ng + k)] = p.scale;
                t.zeros[size_t(r * ng + k)] = p.zero;
                grid.quantizeSpan(src + c0, n, p, t.codes.data() + r * cols + c0, t.dequantized.data() + r * cols + c0);
            }
        }
        if (nonFinite)
            checkFinite(w.data, rows, cols, what); // throws, naming the first bad element
        return t;
    }

    checkFinite(w.data, rows, cols, what);

    // Row groups: one parameter set per block of rowGroup whole rows (statistics in row-major order).
    const int64_t blocks = (rows + rowGroup - 1) / rowGroup;
#pragma omp parallel for schedule(static) if (rows * cols > kParallelThreshold)
    for (int64_t b = 0; b < blocks; ++b) {
        const int64_t r0 = b * rowGroup, r1 = std::min(rows, r0 + rowGroup);
        RangeStats s;
        for (int64_t i = r0 * cols; i < r1 * cols; ++i)
            s.add(w.data[i]);
        const GroupParams p = grid.params(s);
        for (int64_t r = r0; r < r1; ++r) {
            t.scales[size_t(r)] = p.scale;
            t.zeros[size_t(r)] = p.zero;
        }
        grid.quantizeSpan(w.data + r0 * cols, (r1 - r0) * cols, p, t.codes.data() + r0 * cols,
                          t.dequantized.data() + r0 * cols);
    }
    return t;
}

void fakeQuantizeRtn(const float *w, int64_t rows, int64_t cols, const Grid &grid, int groupSize, float *out)
{
    const int64_t gs = groupSize > 0 ? groupSize : cols;
    const int64_t ng = (cols + gs - 1) / gs;
#pragma omp parallel for schedule(static) if (rows * cols > kParallelThreshold)
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t k = 0; k < ng; ++k) {
            const int64_t c0 = k * gs;
            const int64_t n = std::min(gs, cols - c0);
            const GroupParams p = grid.params(w + r * cols + c0, n);
            grid.quantizeSpan(w + r * cols + c0, n, p, nullptr, out + r * cols + c0);
        }
    }
}

} // namespace qs::core
