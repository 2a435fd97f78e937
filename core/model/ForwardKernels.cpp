#include "model/ForwardKernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include <Eigen/Core>
#include <omp.h>

#include "common/Error.h"

namespace qs::core::kernels {

namespace {

using MatRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Strided = Eigen::OuterStride<>;
using ConstStridedMap = Eigen::Map<const MatRM, 0, Strided>;
using StridedMap = Eigen::Map<MatRM, 0, Strided>;

// Below this many values a row-wise loop is not worth waking the thread team (a parallel region costs a
// few microseconds on an idle machine and much more on a busy one).
constexpr int64_t kParallelThreshold = 1 << 18;
// Attention: multiply-adds of the scores and the weighted sum below which one thread does it all.
constexpr double kParallelAttentionMinWork = double(1 << 21);

// Queries per attention work item: large enough for a GEMM to pay off, small enough that a causal block
// skips most of the keys it cannot see and that short sequences still spread over the threads.
constexpr int64_t kQueryBlock = 32;

// x[i] = exp(x[i] − shift) for every element, returning their sum; vectorised through Eigen's polynomial
// exp (good to about an ulp, and several times faster than libm's scalar expf with its underflow handling,
// which the many tiny softmax weights hit). Elements go through fixed-size aligned chunks, the tail padded,
// so that every result and the summation order depend only on the values and n: Eigen expressions over a
// plain Map peel leading elements through the scalar path depending on the buffer's address, and the same
// data would then give different bits in different passes (breaking KLD(model, model) = 0).
float expShiftedSum(float *x, int64_t n, float shift)
{
    constexpr int64_t kLanes = 16;
    using Chunk = Eigen::Array<float, kLanes, 1>;
    float sum = 0.0f;
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        Chunk c = Eigen::Map<const Chunk>(x + i);
        c = (c - shift).exp();
        Eigen::Map<Chunk>(x + i) = c;
        sum += c.sum();
    }
    if (i < n) {
        Chunk c = Chunk::Constant(shift);
        std::copy(x + i, x + n, c.data());
        c = (c - shift).exp();
        for (int64_t j = 0; j < n - i; ++j) {
            x[i + j] = c[j];
            sum += c[j];
        }
    }
    return sum;
}

} // namespace

void rmsNorm(const float *x, const float *w, int64_t rows, int64_t cols, double eps, float *out)
{
#pragma omp parallel for schedule(static) if (rows * cols > kParallelThreshold)
    for (int64_t t = 0; t < rows; ++t) {
        const float *xr = x + t * cols;
        float *yr = out + t * cols;
        double sum = 0.0;
        for (int64_t i = 0; i < cols; ++i)
            sum += double(xr[i]) * double(xr[i]);
        const float inv = float(1.0 / std::sqrt(sum / double(cols) + eps));
        for (int64_t i = 0; i < cols; ++i)
            yr[i] = w[i] * (xr[i] * inv);
    }
}

void swiglu(const float *gateUp, int64_t rows, int64_t cols, float *out)
{
#pragma omp parallel for schedule(static) if (rows * cols > kParallelThreshold)
    for (int64_t t = 0; t < rows; ++t) {
        const float *g = gateUp + t * 2 * cols;
        const float *u = g + cols;
        float *y = out + t * cols;
        for (int64_t i = 0; i < cols; ++i)
            y[i] = -g[i];
        (void)expShiftedSum(y, cols, 0.0f);
        for (int64_t i = 0; i < cols; ++i)
            y[i] = g[i] / (1.0f + y[i]) * u[i];
    }
}

std::vector<double> ropeInverseFrequencies(const HyperParams &h, int64_t seqLen)
{
    const int d = h.headDim;
    const int half = d / 2;
    const RopeScaling &rs = h.ropeScaling;
    double base = h.ropeTheta;
    if (!(base > 0.0))
        throw Error("rope_theta " + std::to_string(base) + " is not positive");

    if (rs.type == "dynamic") {
        // Dynamic NTK (transformers' _compute_dynamic_ntk_parameters): the base grows once the sequence is
        // longer than the trained context; at or below it nothing changes.
        const double original = rs.originalMaxPositions > 0 ? rs.originalMaxPositions : h.maxPositions;
        if (original > 0 && double(seqLen) > original && d > 2)
            base *= std::pow(rs.factor * double(seqLen) / original - (rs.factor - 1.0), double(d) / double(d - 2));
    } else if (rs.type == "yarn" || rs.type == "longrope") {
        throw Error(
            "RoPE scaling '" + rs.type + "' is not supported by the forward pass (only linear, dynamic, llama3)");
    }

    std::vector<double> inv(static_cast<size_t>(half));
    for (int j = 0; j < half; ++j)
        inv[size_t(j)] = 1.0 / std::pow(base, double(2 * j) / double(d));

    if (rs.type == "linear") {
        for (double &f : inv)
            f /= rs.factor;
    } else if (rs.type == "llama3") {
        const double oldContext = rs.originalMaxPositions > 0 ? rs.originalMaxPositions : h.maxPositions;
        if (!(oldContext > 0) || !(rs.highFreqFactor > rs.lowFreqFactor))
            throw Error("llama3 RoPE scaling needs original_max_position_embeddings and high_freq_factor > "
                        "low_freq_factor");
        const double lowFreqWavelen = oldContext / rs.lowFreqFactor;
        const double highFreqWavelen = oldContext / rs.highFreqFactor;
        for (double &f : inv) {
            const double wavelen = 2.0 * std::numbers::pi / f;
            if (wavelen < highFreqWavelen)
                continue; // high frequency: kept
            if (wavelen > lowFreqWavelen) {
                f /= rs.factor; // low frequency: interpolated like "linear"
                continue;
            }
            const double smooth = (oldContext / wavelen - rs.lowFreqFactor) / (rs.highFreqFactor - rs.lowFreqFactor);
            f = (1.0 - smooth) * f / rs.factor + smooth * f;
        }
    }
    return inv;
}

RopeTable makeRopeTable(const std::vector<double> &inverseFrequencies, int64_t firstPosition, int64_t count)
{
    RopeTable t;
    t.firstPosition = firstPosition;
    t.count = count;
    t.half = int(inverseFrequencies.size());
    t.cos.resize(size_t(count) * size_t(t.half));
    t.sin.resize(t.cos.size());
    for (int64_t p = 0; p < count; ++p)
        for (int j = 0; j < t.half; ++j) {
            // The angle in double: position · θ reaches 1e5 rad at long contexts, where float32 angles
            // would be off by several hundredths.
            const double angle = double(firstPosition + p) * inverseFrequencies[size_t(j)];
            t.cos[size_t(p) * size_t(t.half) + size_t(j)] = float(std::cos(angle));
            t.sin[size_t(p) * size_t(t.half) + size_t(j)] = float(std::sin(angle));
        }
    return t;
}

void applyRope(
    float *x, int64_t rows, int64_t rowStride, int heads, int headDim, int64_t firstPosition, const RopeTable &table)
{
    const int half = headDim / 2;
#pragma omp parallel for schedule(static) if (rows * heads * headDim > kParallelThreshold)
    for (int64_t t = 0; t < rows; ++t) {
        const int64_t p = firstPosition + t - table.firstPosition;
        const float *c = table.cos.data() + p * table.half;
        const float *s = table.sin.data() + p * table.half;
        float *row = x + t * rowStride;
        for (int h = 0; h < heads; ++h) {
            float *v = row + int64_t(h) * headDim;
            for (int j = 0; j < half; ++j) {
                const float a = v[j];
                const float b = v[j + half];
                v[j] = a * c[j] - b * s[j];
                v[j + half] = b * c[j] + a * s[j];
            }
        }
    }
}

void causalAttention(const AttentionShape &shape, const float *q, int64_t qStride, const float *k, const float *v,
    int64_t kvStride, int64_t rows, int64_t posOffset, float *out, int64_t outStride)
{
    const int d = shape.headDim;
    const int group = shape.numHeads / shape.numKvHeads;
    const float scale = float(1.0 / std::sqrt(double(d)));
    const int64_t queryBlocks = (rows + kQueryBlock - 1) / kQueryBlock;
    const int64_t items = int64_t(shape.numHeads) * queryBlocks;
    const int64_t totalKeys = posOffset + rows;

    // Causal: on average a query sees about half the keys beyond the cache.
    const double work = 2.0 * double(rows) * (double(posOffset) + 0.5 * double(rows)) * d * shape.numHeads;
#pragma omp parallel if (items > 1 && work > kParallelAttentionMinWork)
    {
        // The GEMMs below are small and run one per thread. Without this, a team of one (the region's `if`
        // false) would let Eigen open a nested parallel region for every one of them, whose spin
        // synchronisation costs far more than the product (70x slower passes on a busy machine).
        // The setting belongs to this region's implicit task and ends with it.
        omp_set_num_threads(1);
        // One score buffer per thread, sized for the widest block.
        std::vector<float> scores(size_t(std::min<int64_t>(kQueryBlock, rows)) * size_t(totalKeys));
#pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < items; ++item) {
            // Later query blocks see more keys: hand them out first so the tail of the loop is short work.
            const int64_t qb = queryBlocks - 1 - item % queryBlocks;
            const int h = int(item / queryBlocks);
            const int g = h / group;
            const int64_t i0 = qb * kQueryBlock;
            const int64_t n = std::min(kQueryBlock, rows - i0);
            const int64_t keys = posOffset + i0 + n; // the last query in the block sees this many keys

            const ConstStridedMap Q(q + i0 * qStride + int64_t(h) * d, n, d, Strided(qStride));
            const ConstStridedMap K(k + int64_t(g) * d, keys, d, Strided(kvStride));
            const ConstStridedMap V(v + int64_t(g) * d, keys, d, Strided(kvStride));
            Eigen::Map<MatRM> S(scores.data(), n, keys);
            // The 1/sqrt(d) scale rides on the GEMM's alpha.
            S.noalias() = (scale * Q) * K.transpose();

            for (int64_t i = 0; i < n; ++i) {
                float *row = scores.data() + i * keys;
                const int64_t visible = posOffset + i0 + i + 1; // causal: keys 0 .. own position
                // Max and elementwise scaling give the same bits in any order or vector width, so plain
                // Eigen maps are safe for them; the exp and sum go through expShiftedSum.
                Eigen::Map<Eigen::ArrayXf> p(row, visible);
                const float maxScore = p.maxCoeff();
                const float sum = expShiftedSum(row, visible, maxScore);
                p *= 1.0f / sum;
                std::fill(row + visible, row + keys, 0.0f);
            }
            StridedMap O(out + i0 * outStride + int64_t(h) * d, n, d, Strided(outStride));
            O.noalias() = S * V;
        }
    }
}

} // namespace qs::core::kernels
