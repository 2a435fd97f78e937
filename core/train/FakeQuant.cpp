#include "train/FakeQuant.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "common/Error.h"

namespace qs::core::train {

template <class S>
GroupQuantizer<S>::GroupQuantizer(int64_t rows, int64_t cols, int bits, int groupSize, bool symmetric)
    : m_rows(rows), m_cols(cols), m_bits(bits), m_qmax((1 << bits) - 1), m_groupSize(groupSize), m_symmetric(symmetric)
{
    if (rows <= 0 || cols <= 0)
        throw Error("quantizer: empty shape");
    if (bits < 2 || bits > 8)
        throw Error("quantizer: bits " + std::to_string(bits) + " outside 2..8");
    if (groupSize == 0 || groupSize < -1)
        throw Error("quantizer: group size must be -1 or positive (got " + std::to_string(groupSize) + ")");
    m_numGroups = groupSize > 0 ? int((cols + groupSize - 1) / groupSize) : 1;
    scale = Vec<S>::Ones(rows * m_numGroups);
    zero = Vec<S>::Zero(rows * m_numGroups);
}

template <class S> void GroupQuantizer<S>::init(const Mat<S> &w)
{
    const S qmax = S(m_qmax);
    for (int64_t r = 0; r < m_rows; ++r)
        for (int k = 0; k < m_numGroups; ++k) {
            const int64_t c0 = m_groupSize > 0 ? int64_t(k) * m_groupSize : 0;
            const int64_t c1 = m_groupSize > 0 ? std::min<int64_t>(c0 + m_groupSize, m_cols) : m_cols;
            S lo = w(r, c0), hi = w(r, c0);
            for (int64_t c = c0; c < c1; ++c) {
                lo = std::min(lo, w(r, c));
                hi = std::max(hi, w(r, c));
            }
            const int64_t i = r * m_numGroups + k;
            if (m_symmetric) {
                S am = std::max(-lo, hi);
                if (am == S(0))
                    am = S(1);
                scale[i] = (am + am) / qmax;
                zero[i] = S(1 << (m_bits - 1));
            } else {
                // The same float expressions as the minmax_awq grid (quant/Grid.cpp), so zero epochs = RTN.
                scale[i] = std::max(hi - lo, S(1e-5)) / qmax;
                zero[i] = -std::nearbyint(lo / scale[i]) + S(0);
            }
        }
}

template <class S> S GroupQuantizer<S>::effectiveScale(int64_t row, int group) const
{
    return std::clamp(scale[row * m_numGroups + group], S(kMinScale), S(kMaxScale));
}

template <class S> S GroupQuantizer<S>::effectiveZero(int64_t row, int group) const
{
    if (m_symmetric)
        return S(1 << (m_bits - 1));
    const S z = zero[row * m_numGroups + group];
    // NaN-safe clamp, then round; +0 normalises −0.
    const S c = z >= S(0) ? (z <= S(m_qmax) ? z : S(m_qmax)) : S(0);
    return std::nearbyint(c) + S(0);
}

template <class S> void GroupQuantizer<S>::fakeQuant(const Mat<S> &w, Mat<S> &what) const
{
    what.resize(m_rows, m_cols);
    const S qmax = S(m_qmax);
    for (int64_t r = 0; r < m_rows; ++r)
        for (int k = 0; k < m_numGroups; ++k) {
            const S s = effectiveScale(r, k), z = effectiveZero(r, k);
            const int64_t c0 = m_groupSize > 0 ? int64_t(k) * m_groupSize : 0;
            const int64_t c1 = m_groupSize > 0 ? std::min<int64_t>(c0 + m_groupSize, m_cols) : m_cols;
            for (int64_t c = c0; c < c1; ++c) {
                const S q = std::clamp(std::nearbyint(w(r, c) / s) + z, S(0), qmax);
                what(r, c) = s * (q - z);
            }
        }
}

template <class S>
void GroupQuantizer<S>::fakeQuantBackward(const Mat<S> &w, const Mat<S> &dwhat, Mat<S> &dw, Vec<S> &ds,
                                          Vec<S> &dz) const
{
    dw.resize(m_rows, m_cols);
    ds.setZero(m_rows * m_numGroups);
    dz.setZero(m_rows * m_numGroups);
    const S qmax = S(m_qmax);
    for (int64_t r = 0; r < m_rows; ++r)
        for (int k = 0; k < m_numGroups; ++k) {
            const int64_t i = r * m_numGroups + k;
            const S raw = scale[i];
            const bool scaleFree = raw >= S(kMinScale) && raw <= S(kMaxScale);
            const S s = effectiveScale(r, k), z = effectiveZero(r, k);
            const int64_t c0 = m_groupSize > 0 ? int64_t(k) * m_groupSize : 0;
            const int64_t c1 = m_groupSize > 0 ? std::min<int64_t>(c0 + m_groupSize, m_cols) : m_cols;
            S gs = 0, gz = 0;
            for (int64_t c = c0; c < c1; ++c) {
                const S g = dwhat(r, c);
                const S u = w(r, c) / s;
                const S rounded = std::nearbyint(u);
                const S qv = rounded + z;
                if (qv >= S(0) && qv <= qmax) {
                    dw(r, c) = g;
                    gs += g * (rounded - u);
                } else {
                    dw(r, c) = 0;
                    const S q = qv < S(0) ? S(0) : qmax;
                    gs += g * (q - z);
                    gz -= g * s;
                }
            }
            ds[i] = scaleFree ? gs : S(0);
            dz[i] = m_symmetric ? S(0) : gz;
        }
}

template <class S> std::vector<uint8_t> GroupQuantizer<S>::codes(const Mat<S> &w) const
{
    std::vector<uint8_t> out(size_t(m_rows * m_cols));
    const S qmax = S(m_qmax);
    for (int64_t r = 0; r < m_rows; ++r)
        for (int64_t c = 0; c < m_cols; ++c) {
            const int k = groupOf(c);
            const S s = effectiveScale(r, k), z = effectiveZero(r, k);
            out[size_t(r * m_cols + c)] = uint8_t(std::clamp(std::nearbyint(w(r, c) / s) + z, S(0), qmax));
        }
    return out;
}

template <class S> void GroupQuantizer<S>::dequantize(const std::vector<uint8_t> &codes, Mat<S> &what) const
{
    what.resize(m_rows, m_cols);
    for (int64_t r = 0; r < m_rows; ++r)
        for (int64_t c = 0; c < m_cols; ++c) {
            const int k = groupOf(c);
            what(r, c) = effectiveScale(r, k) * (S(codes[size_t(r * m_cols + c)]) - effectiveZero(r, k));
        }
}

template <class S>
void GroupQuantizer<S>::dequantizeBackward(const std::vector<uint8_t> &codes, const Mat<S> &dwhat, Vec<S> &ds) const
{
    ds.setZero(m_rows * m_numGroups);
    for (int64_t r = 0; r < m_rows; ++r)
        for (int64_t c = 0; c < m_cols; ++c) {
            const int k = groupOf(c);
            ds[r * m_numGroups + k] += dwhat(r, c) * (S(codes[size_t(r * m_cols + c)]) - effectiveZero(r, k));
        }
    for (int64_t i = 0; i < ds.size(); ++i)
        if (!(scale[i] >= S(kMinScale) && scale[i] <= S(kMaxScale)))
            ds[i] = 0;
}

template <class S> QuantizedTensor GroupQuantizer<S>::toQuantized(const Mat<S> &w, const std::string &name) const
{
    const Grid grid(m_symmetric ? GridId::SymGptq : GridId::MinMaxAwq, m_bits);
    QuantizedTensor t = allocateQuantized(m_rows, m_cols, grid, m_groupSize);
    t.name = name;
    t.method = "efficientqat";
    t.codes = codes(w);
    for (int64_t r = 0; r < m_rows; ++r)
        for (int k = 0; k < m_numGroups; ++k) {
            t.scales[size_t(r * m_numGroups + k)] = float(effectiveScale(r, k));
            t.zeros[size_t(r * m_numGroups + k)] = float(effectiveZero(r, k));
        }
    for (int64_t r = 0; r < m_rows; ++r)
        for (int64_t c = 0; c < m_cols; ++c) {
            const size_t i = size_t(r * m_cols + c);
            const int k = groupOf(c);
            t.dequantized[i] = dequantizeCode(t.codes[i], t.scale(r, k), t.zero(r, k));
        }
    return t;
}

template <class S> void GroupQuantizer<S>::fromQuantized(const QuantizedTensor &t)
{
    if (t.rows != m_rows || t.cols != m_cols || t.groupSize != m_groupSize || t.bits != m_bits ||
        t.rowGroupSize != 1 || t.actOrderGroups())
        throw Error(t.name + ": quantized layout does not match the trainer's quantizer");
    for (int64_t i = 0; i < int64_t(t.scales.size()); ++i) {
        scale[i] = S(t.scales[size_t(i)]);
        zero[i] = S(t.zeros[size_t(i)]);
    }
}

template class GroupQuantizer<float>;
template class GroupQuantizer<double>;

template <class S>
void adamwStep(S *param, const S *grad, int64_t n, AdamWState<S> &state, const AdamWOptions &o, double lr)
{
    if (state.m.size() != size_t(n)) {
        state.m.assign(size_t(n), 0.0);
        state.v.assign(size_t(n), 0.0);
        state.step = 0;
    }
    ++state.step;
    const double c1 = 1.0 - std::pow(o.beta1, double(state.step));
    const double c2 = 1.0 - std::pow(o.beta2, double(state.step));
    for (int64_t i = 0; i < n; ++i) {
        double p = double(param[i]);
        const double g = double(grad[i]);
        p -= lr * o.weightDecay * p;
        double &m = state.m[size_t(i)];
        double &v = state.v[size_t(i)];
        m = o.beta1 * m + (1.0 - o.beta1) * g;
        v = o.beta2 * v + (1.0 - o.beta2) * g * g;
        p -= lr * (m / c1) / (std::sqrt(v / c2) + o.eps);
        param[i] = S(p);
    }
}

template void adamwStep<float>(float *, const float *, int64_t, AdamWState<float> &, const AdamWOptions &, double);
template void adamwStep<double>(double *, const double *, int64_t, AdamWState<double> &, const AdamWOptions &,
                                double);

double cosineLr(double lr, double lrMin, int64_t step, int64_t totalSteps, int64_t warmupSteps)
{
    if (warmupSteps > 0 && step < warmupSteps)
        return lr * double(step + 1) / double(warmupSteps);
    const int64_t span = std::max<int64_t>(1, totalSteps - warmupSteps);
    const double t = std::clamp(double(step - warmupSteps) / double(span), 0.0, 1.0);
    return lrMin + (lr - lrMin) * 0.5 * (1.0 + std::cos(std::numbers::pi * t));
}

} // namespace qs::core::train
