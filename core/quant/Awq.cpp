#include "quant/Awq.h"

#include <algorithm>
#include <cmath>

#include <Eigen/Core>

#include "common/Error.h"

namespace qs::core {

namespace {

using RowMatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr double kScaleFloor = 1e-4; // auto_scale: x_max.pow(ratio).clamp(min=1e-4)

std::string prefix(const std::string &name, const char *what)
{
    return (name.empty() ? std::string("layer") : name) + ": AWQ " + what + ": ";
}

// Validates the spec for AWQ (column groups or per channel) against the column count.
Grid awqGrid(const AwqOptions &o, int64_t cols, const std::string &what)
{
    if (o.spec.groupSize == 0)
        throw Error(what + ": AWQ needs group_size -1 or positive (per tensor is not supported)");
    if (o.spec.rowGroupSize != 1)
        throw Error(what + ": AWQ does not support row groups");
    const Grid grid = o.spec.makeGrid();
    grid.checkShape(cols, o.spec.groupSize, what);
    return grid;
}

void checkInputs(const ActivationView &x, const std::vector<AwqLinear> &linears, const std::string &pre)
{
    if (linears.empty())
        throw Error(pre + "no linears");
    if (!x.data || x.tokens <= 0 || x.channels <= 0)
        throw Error(pre + "no cached inputs");
    for (const AwqLinear &l : linears) {
        if (l.weight.cols != x.channels)
            throw Error(pre + (l.name.empty() ? std::string("a linear") : l.name) + " has " +
                        std::to_string(l.weight.cols) + " columns but the inputs have " + std::to_string(x.channels) +
                        " channels");
        checkFinite(l.weight.data, l.weight.rows, l.weight.cols, l.name.empty() ? pre + "weight" : l.name);
    }
}

} // namespace

AwqModuleFn linearOutputsModule(const ActivationView &x)
{
    return [x](const std::vector<std::vector<float>> &weights) {
        const Eigen::Map<const RowMatrixF> X(x.data, x.tokens, x.channels);
        std::vector<float> out;
        for (const std::vector<float> &w : weights) {
            const int64_t rows = int64_t(w.size()) / x.channels;
            const Eigen::Map<const RowMatrixF> W(w.data(), rows, x.channels);
            const size_t at = out.size();
            out.resize(at + size_t(x.tokens * rows));
            Eigen::Map<RowMatrixF> Y(out.data() + at, x.tokens, rows);
            Y.noalias() = X * W.transpose();
        }
        return out;
    };
}

std::vector<float> meanAbsPerChannel(const ActivationView &x)
{
    std::vector<double> sum(size_t(x.channels), 0.0);
    for (int64_t t = 0; t < x.tokens; ++t) {
        const float *row = x.data + t * x.channels;
        for (int64_t j = 0; j < x.channels; ++j)
            sum[size_t(j)] += std::fabs(double(row[j]));
    }
    std::vector<float> mu(size_t(x.channels));
    for (size_t j = 0; j < mu.size(); ++j)
        mu[j] = float(sum[j] / double(std::max<int64_t>(x.tokens, 1)));
    return mu;
}

std::vector<float> awqScalesForAlpha(std::span<const float> meanAbs, double alpha)
{
    std::vector<double> s(meanAbs.size());
    double lo = INFINITY, hi = 0.0;
    for (size_t j = 0; j < s.size(); ++j) {
        s[j] = std::max(std::pow(double(meanAbs[j]), alpha), kScaleFloor);
        lo = std::min(lo, s[j]);
        hi = std::max(hi, s[j]);
    }
    const double norm = std::sqrt(hi * lo);
    std::vector<float> out(s.size());
    for (size_t j = 0; j < s.size(); ++j)
        out[j] = float(s[j] / norm);
    return out;
}

AwqScaleSearch searchAwqScales(const ActivationView &x, const std::vector<AwqLinear> &linears, const AwqOptions &o,
                               const AwqModuleFn &moduleIn, Progress &progress, std::span<const float> meanAbs)
{
    const std::string pre = prefix(linears.empty() ? std::string() : linears.front().name, "scale search");
    checkInputs(x, linears, pre);
    if (o.nGrid < 1)
        throw Error(pre + "n_grid must be at least 1 (got " + std::to_string(o.nGrid) + ")");
    const int64_t cols = x.channels;
    const Grid grid = awqGrid(o, cols, pre + "grid");

    AwqScaleSearch r;
    if (!meanAbs.empty()) {
        if (int64_t(meanAbs.size()) != cols)
            throw Error(pre + "mean |x| has " + std::to_string(meanAbs.size()) + " channels, expected " +
                        std::to_string(cols));
        r.meanAbs.assign(meanAbs.begin(), meanAbs.end());
    } else {
        r.meanAbs = meanAbsPerChannel(x);
    }
    const AwqModuleFn module = moduleIn ? moduleIn : linearOutputsModule(x);

    std::vector<std::vector<float>> weights;
    for (const AwqLinear &l : linears)
        weights.emplace_back(l.weight.data, l.weight.data + l.weight.rows * l.weight.cols);
    const std::vector<float> yRef = module(weights);
    progress.throwIfCancelled();

    std::vector<std::vector<float>> candidates(linears.size());
    std::vector<float> scaled;
    r.bestIndex = -1;
    for (int i = 0; i < o.nGrid; ++i) {
        const double alpha = double(i) / double(o.nGrid);
        const std::vector<float> s = awqScalesForAlpha(r.meanAbs, alpha);
        for (size_t li = 0; li < linears.size(); ++li) {
            const WeightView &w = linears[li].weight;
            scaled.assign(w.data, w.data + w.rows * w.cols);
            for (int64_t row = 0; row < w.rows; ++row)
                for (int64_t j = 0; j < cols; ++j)
                    scaled[size_t(row * cols + j)] *= s[size_t(j)];
            std::vector<float> &c = candidates[li];
            c.resize(scaled.size());
            fakeQuantizeRtn(scaled.data(), w.rows, cols, grid, o.spec.groupSize, c.data());
            for (int64_t row = 0; row < w.rows; ++row)
                for (int64_t j = 0; j < cols; ++j)
                    c[size_t(row * cols + j)] /= s[size_t(j)];
        }
        const std::vector<float> y = module(candidates);
        if (y.size() != yRef.size())
            throw Error(pre + "the loss module returned " + std::to_string(y.size()) + " values, first " +
                        std::to_string(yRef.size()));
        double sum = 0.0;
        for (size_t k = 0; k < y.size(); ++k) {
            const double d = double(y[k]) - double(yRef[k]);
            sum += d * d;
        }
        const double loss = y.empty() ? 0.0 : sum / double(y.size());
        if (!std::isfinite(loss))
            throw Error(pre + "the loss at alpha " + std::to_string(alpha) + " is not finite");
        r.alphas.push_back(alpha);
        r.losses.push_back(loss);
        if (r.bestIndex < 0 || loss < r.bestLoss) {
            r.bestIndex = i;
            r.bestLoss = loss;
            r.bestAlpha = alpha;
            r.scales = s;
        }
        progress.advance(1.0);
        progress.throwIfCancelled();
    }
    r.rtnLoss = r.losses.front();
    return r;
}

AwqClip searchAwqClip(const WeightView &w, const ActivationView &x, const AwqOptions &o, Progress &progress,
                      const std::string &name)
{
    const std::string pre = prefix(name, "clip search");
    if (w.cols != x.channels)
        throw Error(pre + "the weight has " + std::to_string(w.cols) + " columns but the inputs " +
                    std::to_string(x.channels) + " channels");
    if (x.tokens <= 0)
        throw Error(pre + "no cached inputs");
    if (o.clipGrid < 1 || o.clipTokens < 1 || !(o.maxShrink >= 0.0 && o.maxShrink < 1.0))
        throw Error(pre + "clip grid and tokens must be positive and max_shrink in [0, 1)");
    const Grid grid = awqGrid(o, w.cols, pre + "grid");
    const int64_t rows = w.rows, cols = w.cols;
    const int64_t gs = o.spec.groupSize > 0 ? o.spec.groupSize : cols;
    const int ng = int((cols + gs - 1) / gs);
    const int candidates = std::max(1, int(o.maxShrink * double(o.clipGrid)));

    // Evenly strided tokens (the reference's input_feat[:, 0::T // n_sample]), at most clipTokens.
    const int64_t step = std::max<int64_t>(1, x.tokens / o.clipTokens);
    std::vector<int64_t> tokens;
    for (int64_t t = 0; t < x.tokens && int64_t(tokens.size()) < o.clipTokens; t += step)
        tokens.push_back(t);
    const int64_t T = int64_t(tokens.size());

    AwqClip c;
    c.rows = rows;
    c.numGroups = ng;
    c.groupSize = o.spec.groupSize;
    c.tokensUsed = int(T);
    c.maxVal.assign(size_t(rows * ng), 0.0f);
    c.shrinkStep.assign(size_t(rows * ng), 0);
    c.errUnclipped.assign(size_t(rows * ng), 0.0);
    c.errBest.assign(size_t(rows * ng), 0.0);

    for (int k = 0; k < ng; ++k) {
        const int64_t c0 = k * gs, gl = std::min(gs, cols - c0);
        RowMatrixF xg(T, gl);
        for (int64_t t = 0; t < T; ++t)
            for (int64_t j = 0; j < gl; ++j)
                xg(t, j) = x.data[tokens[size_t(t)] * cols + c0 + j];
        const Eigen::MatrixXf G = xg.transpose() * xg; // Σ_t x_t x_tᵀ over the group's channels

        std::vector<float> absmax(size_t(rows), 0.0f);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 0; j < gl; ++j)
                absmax[size_t(r)] = std::max(absmax[size_t(r)], std::fabs(w.data[r * cols + c0 + j]));

        RowMatrixF delta(rows, gl);
        for (int i = 0; i < candidates; ++i) {
            const float shrink = 1.0f - float(i) / float(o.clipGrid);
#pragma omp parallel for schedule(static) if (rows * gl > (int64_t(1) << 14))
            for (int64_t r = 0; r < rows; ++r) {
                const float mv = absmax[size_t(r)] * shrink;
                const float *src = w.data + r * cols + c0;
                float tmp[4096];
                std::vector<float> big;
                float *clamped = tmp;
                if (gl > 4096) {
                    big.resize(size_t(gl));
                    clamped = big.data();
                }
                for (int64_t j = 0; j < gl; ++j)
                    clamped[j] = std::clamp(src[j], -mv, mv);
                const GroupParams p = grid.params(clamped, gl);
                for (int64_t j = 0; j < gl; ++j)
                    delta(r, j) = grid.qdq(clamped[j], p) - src[j];
            }
            const RowMatrixF dg = delta * G;
            for (int64_t r = 0; r < rows; ++r) {
                const double err = double(dg.row(r).dot(delta.row(r))) / double(T);
                const size_t idx = size_t(r * ng + k);
                if (i == 0) {
                    c.errUnclipped[idx] = err;
                    c.errBest[idx] = err;
                    c.maxVal[idx] = absmax[size_t(r)];
                } else if (err < c.errBest[idx]) {
                    c.errBest[idx] = err;
                    c.maxVal[idx] = absmax[size_t(r)] * shrink;
                    c.shrinkStep[idx] = i;
                }
            }
        }
        progress.throwIfCancelled();
    }
    progress.advance(1.0);
    return c;
}

void applyAwqClip(float *w, int64_t rows, int64_t cols, const AwqClip &clip)
{
    if (clip.maxVal.empty())
        return;
    const int64_t gs = clip.groupSize > 0 ? clip.groupSize : cols;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < cols; ++j) {
            const float mv = clip.maxVal[size_t(r * clip.numGroups + j / gs)];
            w[r * cols + j] = std::clamp(w[r * cols + j], -mv, mv);
        }
}

AwqResult runAwq(const ActivationView &x, const std::vector<AwqLinear> &linears, const AwqOptions &o,
                 const AwqModuleFn &module, Progress &progress, std::span<const float> meanAbs)
{
    AwqResult res;
    res.search = searchAwqScales(x, linears, o, module, progress, meanAbs);
    const std::vector<float> &s = res.search.scales;
    const int64_t cols = x.channels;
    res.normFold.resize(s.size());
    for (size_t j = 0; j < s.size(); ++j)
        res.normFold[j] = 1.0f / s[j];

    auto clips = [&](const AwqLinear &l) {
        return o.clip && (o.clipQK || (l.role != TensorRole::Q && l.role != TensorRole::K));
    };
    std::vector<float> xs;
    if (std::any_of(linears.begin(), linears.end(), clips)) {
        xs.assign(x.data, x.data + x.tokens * cols);
        for (int64_t t = 0; t < x.tokens; ++t)
            for (int64_t j = 0; j < cols; ++j)
                xs[size_t(t * cols + j)] /= s[size_t(j)];
    }
    const ActivationView scaledX{xs.data(), x.tokens, cols};

    for (const AwqLinear &l : linears) {
        std::vector<float> ws(l.weight.data, l.weight.data + l.weight.rows * cols);
        for (int64_t r = 0; r < l.weight.rows; ++r)
            for (int64_t j = 0; j < cols; ++j)
                ws[size_t(r * cols + j)] *= s[size_t(j)];
        AwqClip clip;
        if (clips(l)) {
            clip = searchAwqClip(WeightView{ws.data(), l.weight.rows, cols}, scaledX, o, progress, l.name);
            applyAwqClip(ws.data(), l.weight.rows, cols, clip);
        }
        QuantizedTensor t = quantizeRtn(WeightView{ws.data(), l.weight.rows, cols}, o.spec, l.name);
        t.method = "awq";
        t.inputScales = s;
        t.inputScalesSource = "awq";
        res.tensors.push_back(std::move(t));
        res.clips.push_back(std::move(clip));
        progress.throwIfCancelled();
    }
    return res;
}

} // namespace qs::core
