#include "quant/SmoothQuant.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "common/Error.h"

namespace qs::core {

namespace {

constexpr double kWeightMaxFloor = 1e-5; // smooth.py: weight_scales.clamp(min=1e-5)
constexpr double kScaleFloor = 1e-5;     // smooth.py: scales.clamp(min=1e-5)

} // namespace

const char *activationSchemeName(ActivationScheme s)
{
    switch (s) {
    case ActivationScheme::PerToken:
        return "per_token";
    case ActivationScheme::PerTensorDynamic:
        return "per_tensor_dynamic";
    case ActivationScheme::PerTensorStatic:
        return "per_tensor_static";
    }
    return "?";
}

SmoothingScales computeSmoothingScales(std::span<const float> a, const std::vector<WeightView> &linears, double alpha,
                                       const std::string &what)
{
    const std::string pre = (what.empty() ? std::string("smoothing") : what) + ": ";
    if (!(alpha >= 0.0 && alpha <= 1.0))
        throw Error(pre + "alpha must lie in [0, 1] (got " + std::to_string(alpha) + ")");
    if (linears.empty())
        throw Error(pre + "no linears to smooth");
    const int64_t cols = linears.front().cols;
    if (int64_t(a.size()) != cols)
        throw Error(pre + "activation absmax has " + std::to_string(a.size()) + " channels, the weights " +
                    std::to_string(cols) + " columns");
    for (size_t j = 0; j < a.size(); ++j)
        if (!std::isfinite(a[j]) || a[j] < 0.0f) {
            std::ostringstream os;
            os << pre << "activation absmax of channel " << j << " is " << a[j];
            throw Error(os.str());
        }

    SmoothingScales r;
    r.alpha = alpha;
    r.actAbsMax.assign(a.begin(), a.end());
    r.weightAbsMax.assign(size_t(cols), 0.0f);
    for (const WeightView &w : linears) {
        if (w.cols != cols)
            throw Error(pre + "linears sharing one input must have the same column count (" + std::to_string(w.cols) +
                        " vs " + std::to_string(cols) + ")");
        checkFinite(w.data, w.rows, w.cols, pre + "weight");
        for (int64_t row = 0; row < w.rows; ++row) {
            const float *src = w.data + row * cols;
            for (int64_t j = 0; j < cols; ++j)
                r.weightAbsMax[size_t(j)] = std::max(r.weightAbsMax[size_t(j)], std::fabs(src[j]));
        }
    }
    r.scales.resize(size_t(cols));
    r.normFold.resize(size_t(cols));
    for (int64_t j = 0; j < cols; ++j) {
        const double wj = std::max(double(r.weightAbsMax[size_t(j)]), kWeightMaxFloor);
        const double s = std::max(std::pow(double(a[size_t(j)]), alpha) / std::pow(wj, 1.0 - alpha), kScaleFloor);
        r.scales[size_t(j)] = float(s);
        r.normFold[size_t(j)] = float(1.0 / double(float(s))); // 1/s of the stored s, so the pair cancels best
    }
    return r;
}

void applyInputScales(float *w, int64_t rows, int64_t cols, std::span<const float> s)
{
#pragma omp parallel for schedule(static) if (rows * cols > (int64_t(1) << 16))
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < cols; ++j)
            w[r * cols + j] *= s[size_t(j)];
}

void divideActivations(float *x, int64_t tokens, int64_t channels, std::span<const float> s)
{
#pragma omp parallel for schedule(static) if (tokens * channels > (int64_t(1) << 16))
    for (int64_t t = 0; t < tokens; ++t)
        for (int64_t j = 0; j < channels; ++j)
            x[t * channels + j] /= s[size_t(j)];
}

SmoothQuantResult smoothLinears(std::span<const float> a, const std::vector<WeightView> &linears, double alpha,
                                const std::string &what)
{
    SmoothQuantResult r;
    r.smoothing = computeSmoothingScales(a, linears, alpha, what);
    for (const WeightView &w : linears) {
        std::vector<float> copy(w.data, w.data + w.rows * w.cols);
        applyInputScales(copy.data(), w.rows, w.cols, r.smoothing.scales);
        r.weights.push_back(std::move(copy));
    }
    return r;
}

QuantizedTensor quantizeSmoothedWeight(const WeightView &w, std::span<const float> s, const QuantSpec &spec,
                                       const std::string &name)
{
    if (!s.empty() && int64_t(s.size()) != w.cols)
        throw Error((name.empty() ? std::string("weight") : name) + ": " + std::to_string(s.size()) +
                    " smoothing scales for " + std::to_string(w.cols) + " columns");
    QuantizedTensor t = quantizeRtn(w, spec, name);
    t.method = "smoothquant";
    if (!s.empty()) {
        t.inputScales.assign(s.begin(), s.end());
        t.inputScalesSource = "smoothquant";
    }
    return t;
}

} // namespace qs::core
