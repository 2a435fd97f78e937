#include "quant/QuantizedTensor.h"

#include <cmath>
#include <cstring>
#include <sstream>

#include "common/Error.h"

namespace qs::core {

namespace {

std::string where(const QuantizedTensor &t)
{
    return t.name.empty() ? std::string("quantized tensor") : t.name;
}

bool sameBits(float a, float b)
{
    uint32_t x, y;
    std::memcpy(&x, &a, 4);
    std::memcpy(&y, &b, 4);
    return x == y;
}

} // namespace

const char *zeroPointKindName(ZeroPointKind k)
{
    switch (k) {
    case ZeroPointKind::Implicit:
        return "implicit";
    case ZeroPointKind::Integer:
        return "integer";
    case ZeroPointKind::Float:
        return "float";
    }
    return "?";
}

bool QuantizedTensor::actOrderGroups() const
{
    if (groupSize <= 0)
        return false;
    for (int64_t c = 0; c < int64_t(gIdx.size()); ++c)
        if (gIdx[size_t(c)] != int32_t(c / groupSize))
            return true;
    return false;
}

std::vector<float> QuantizedTensor::dequantize() const
{
    std::vector<float> out(size_t(rows * cols));
    const int ng = numGroups();
#pragma omp parallel for schedule(static) if (rows * cols > (int64_t(1) << 16))
    for (int64_t r = 0; r < rows; ++r) {
        const float *s = scales.data() + r * ng;
        const float *z = zeros.data() + r * ng;
        const uint8_t *q = codes.data() + r * cols;
        float *o = out.data() + r * cols;
        for (int64_t c = 0; c < cols; ++c) {
            const int32_t k = gIdx[size_t(c)];
            o[c] = dequantizeCode(q[c], s[k], z[k]);
        }
    }
    return out;
}

std::vector<float> QuantizedTensor::effectiveWeights() const
{
    std::vector<float> out = dequantized;
    if (inputScales.empty())
        return out;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
            out[size_t(r * cols + c)] /= inputScales[size_t(c)];
    return out;
}

double bitsPerWeightFor(int bits, int groupSize, int64_t rows, int64_t cols, ZeroPointKind zeroKind, int rowGroupSize)
{
    if (rows <= 0 || cols <= 0)
        return double(bits);
    const int64_t groups = groupSize > 0 ? (cols + groupSize - 1) / groupSize : 1;
    const int64_t rg = rowGroupSize > 0 ? rowGroupSize : 1;
    const int64_t sets = (rows + rg - 1) / rg * groups;
    const int zeroBits = zeroKind == ZeroPointKind::Implicit ? 0 : zeroKind == ZeroPointKind::Integer ? bits : 16;
    return double(bits) + double(sets) * double(16 + zeroBits) / (double(rows) * double(cols));
}

double QuantizedTensor::bitsPerWeight() const
{
    return bitsPerWeightFor(bits, groupSize, rows, cols, zeroKind, rowGroupSize);
}

void describeGrid(QuantizedTensor &t, const Grid &grid)
{
    const GridInfo &g = grid.info();
    t.grid = g.id;
    t.bits = grid.bits();
    t.symmetric = g.symmetric;
    t.convention = g.convention;
    t.rounding = g.rounding;
    t.zeroKind = g.symmetric ? ZeroPointKind::Implicit
                             : g.fractionalZero ? ZeroPointKind::Float : ZeroPointKind::Integer;
}

QuantizedTensor allocateQuantized(int64_t rows, int64_t cols, const Grid &grid, int groupSize, int rowGroupSize)
{
    QuantizedTensor t;
    t.rows = rows;
    t.cols = cols;
    t.groupSize = groupSize;
    t.rowGroupSize = rowGroupSize;
    describeGrid(t, grid);
    const int ng = t.numGroups();
    t.codes.assign(size_t(rows * cols), 0);
    t.dequantized.assign(size_t(rows * cols), 0.0f);
    t.scales.assign(size_t(rows * ng), 0.0f);
    t.zeros.assign(size_t(rows * ng), 0.0f);
    t.gIdx.resize(size_t(cols));
    for (int64_t c = 0; c < cols; ++c)
        t.gIdx[size_t(c)] = groupSize > 0 ? int32_t(c / groupSize) : 0;
    return t;
}

void checkFinite(const float *data, int64_t rows, int64_t cols, const std::string &what)
{
    const int64_t n = rows * cols;
    for (int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(data[i])) {
            std::ostringstream os;
            os << what << ": weight [" << i / cols << ", " << i % cols << "] is " << data[i];
            throw Error(os.str());
        }
    }
}

void QuantizedTensor::validate() const
{
    const std::string w = where(*this);
    auto failWith = [&](const std::string &what) { throw Error(w + ": " + what); };
    if (rows <= 0 || cols <= 0)
        failWith("empty shape " + std::to_string(rows) + " x " + std::to_string(cols));
    if (bits < 1 || bits > 8)
        failWith("bits " + std::to_string(bits) + " outside 1..8");
    if (groupSize == 0 || groupSize < -1)
        failWith("group size " + std::to_string(groupSize) + " (must be -1 or positive)");
    if (rowGroupSize < 1)
        failWith("row group size " + std::to_string(rowGroupSize));
    const int ng = numGroups();
    const size_t n = size_t(rows * cols);
    const size_t np = size_t(rows * ng);
    if (codes.size() != n || dequantized.size() != n)
        failWith("codes/dequantized hold " + std::to_string(codes.size()) + "/" + std::to_string(dequantized.size()) +
                 " values, expected " + std::to_string(n));
    if (scales.size() != np || zeros.size() != np)
        failWith("scales/zeros hold " + std::to_string(scales.size()) + "/" + std::to_string(zeros.size()) +
                 " values, expected " + std::to_string(np));
    if (gIdx.size() != size_t(cols))
        failWith("g_idx holds " + std::to_string(gIdx.size()) + " values, expected " + std::to_string(cols));
    if (!inputScales.empty() && inputScales.size() != size_t(cols))
        failWith("input scales hold " + std::to_string(inputScales.size()) + " values, expected " +
                 std::to_string(cols));
    for (float s : inputScales)
        if (!std::isfinite(s) || s <= 0.0f)
            failWith("input scale " + std::to_string(s) + " is not a positive finite number");

    // g_idx: in range, every group used by exactly groupSize columns except possibly one shorter group.
    std::vector<int64_t> perGroup(size_t(ng), 0);
    for (int64_t c = 0; c < cols; ++c) {
        const int32_t k = gIdx[size_t(c)];
        if (k < 0 || k >= ng)
            failWith("g_idx[" + std::to_string(c) + "] = " + std::to_string(k) + " outside 0.." + std::to_string(ng - 1));
        ++perGroup[size_t(k)];
    }
    if (groupSize > 0) {
        int shortGroups = 0;
        for (int k = 0; k < ng; ++k) {
            if (perGroup[size_t(k)] > groupSize)
                failWith("group " + std::to_string(k) + " has " + std::to_string(perGroup[size_t(k)]) +
                         " columns, more than the group size " + std::to_string(groupSize));
            if (perGroup[size_t(k)] < groupSize)
                ++shortGroups;
        }
        if (shortGroups > 1 || (shortGroups == 1 && cols % groupSize == 0))
            failWith("g_idx does not split the columns into groups of " + std::to_string(groupSize));
    }

    const float qmaxF = float(qmax());
    for (size_t i = 0; i < np; ++i) {
        const int64_t r = int64_t(i) / ng;
        const int k = int(int64_t(i) % ng);
        if (!std::isfinite(scales[i]))
            failWith("scale of row " + std::to_string(r) + ", group " + std::to_string(k) + " is not finite");
        const float z = zeros[i];
        if (!std::isfinite(z))
            failWith("zero of row " + std::to_string(r) + ", group " + std::to_string(k) + " is not finite");
        if (zeroKind != ZeroPointKind::Float) {
            if (z != std::nearbyint(z) || z < 0.0f || z > qmaxF)
                failWith("zero " + std::to_string(z) + " of row " + std::to_string(r) + ", group " + std::to_string(k) +
                         " is not an integer in 0.." + std::to_string(qmax()));
            if (zeroKind == ZeroPointKind::Implicit && z != float(1 << (bits - 1)))
                failWith("symmetric zero of row " + std::to_string(r) + " is " + std::to_string(z) + ", expected " +
                         std::to_string(1 << (bits - 1)));
        }
        if (rowGroupSize > 1 && r % rowGroupSize != 0) {
            const size_t first = size_t((r - r % rowGroupSize) * ng + k);
            if (!sameBits(scales[i], scales[first]) || !sameBits(z, zeros[first]))
                failWith("row " + std::to_string(r) + " differs from the first row of its row group");
        }
    }

    const int qmaxI = qmax();
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
            const size_t i = size_t(r * cols + c);
            if (codes[i] > qmaxI)
                failWith("code " + std::to_string(codes[i]) + " at [" + std::to_string(r) + ", " + std::to_string(c) +
                         "] exceeds " + std::to_string(qmaxI));
            const size_t p = size_t(r * ng + gIdx[size_t(c)]);
            const float expect = dequantizeCode(codes[i], scales[p], zeros[p]);
            if (!sameBits(expect, dequantized[i])) {
                std::ostringstream os;
                os << "dequantized [" << r << ", " << c << "] = " << dequantized[i] << " but scale*(q - zero) = "
                   << expect;
                failWith(os.str());
            }
        }
    }
}

} // namespace qs::core
