#include "train/TrainOps.h"

#include <cmath>
#include <limits>

namespace qs::core::train {

template <class S> void rmsNormForward(const Mat<S> &x, const Vec<S> &g, double eps, Mat<S> &y, Vec<S> &invRms)
{
    const int64_t rows = x.rows(), cols = x.cols();
    y.resize(rows, cols);
    invRms.resize(rows);
    for (int64_t t = 0; t < rows; ++t) {
        double sum = 0.0;
        for (int64_t i = 0; i < cols; ++i)
            sum += double(x(t, i)) * double(x(t, i));
        const S r = S(1.0 / std::sqrt(sum / double(cols) + eps));
        invRms[t] = r;
        for (int64_t i = 0; i < cols; ++i)
            y(t, i) = g[i] * (x(t, i) * r);
    }
}

template <class S>
void rmsNormBackward(const Mat<S> &x, const Vec<S> &g, const Vec<S> &invRms, const Mat<S> &dy, Mat<S> &dx, Vec<S> *dg)
{
    const int64_t rows = x.rows(), cols = x.cols();
    dx.resize(rows, cols);
    for (int64_t t = 0; t < rows; ++t) {
        const S r = invRms[t];
        double dot = 0.0; // ⟨g ⊙ dy, x⟩
        for (int64_t i = 0; i < cols; ++i)
            dot += double(g[i]) * double(dy(t, i)) * double(x(t, i));
        const S c = S(dot / double(cols)) * r * r * r;
        for (int64_t i = 0; i < cols; ++i)
            dx(t, i) = r * g[i] * dy(t, i) - x(t, i) * c;
        if (dg)
            for (int64_t i = 0; i < cols; ++i)
                (*dg)[i] += dy(t, i) * x(t, i) * r;
    }
}

template <class S> void linearForward(const Mat<S> &x, const Mat<S> &w, const Vec<S> &b, Mat<S> &y)
{
    y.noalias() = x * w.transpose();
    if (b.size() > 0)
        y.rowwise() += b.transpose();
}

template <class S>
void linearBackward(const Mat<S> &x, const Mat<S> &w, const Mat<S> &dy, Mat<S> *dx, Mat<S> *dw, Vec<S> *db)
{
    if (dx)
        dx->noalias() = dy * w;
    if (dw)
        dw->noalias() += dy.transpose() * x;
    if (db)
        *db += dy.colwise().sum().transpose();
}

template <class S> RopeTable<S> makeRopeTable(const std::vector<double> &inverseFrequencies, int64_t rows)
{
    RopeTable<S> t;
    t.half = int(inverseFrequencies.size());
    t.cos.resize(rows, t.half);
    t.sin.resize(rows, t.half);
    for (int64_t p = 0; p < rows; ++p)
        for (int j = 0; j < t.half; ++j) {
            const double angle = double(p) * inverseFrequencies[size_t(j)];
            t.cos(p, j) = S(std::cos(angle));
            t.sin(p, j) = S(std::sin(angle));
        }
    return t;
}

namespace {

template <class S>
void rotate(Mat<S> &x, int64_t firstColumn, int heads, int headDim, const RopeTable<S> &t, S sign)
{
    const int half = headDim / 2;
    for (int64_t p = 0; p < x.rows(); ++p)
        for (int h = 0; h < heads; ++h) {
            const int64_t c0 = firstColumn + int64_t(h) * headDim;
            for (int j = 0; j < half; ++j) {
                const S c = t.cos(p, j), s = sign * t.sin(p, j);
                const S a = x(p, c0 + j), b = x(p, c0 + j + half);
                x(p, c0 + j) = a * c - b * s;
                x(p, c0 + j + half) = b * c + a * s;
            }
        }
}

} // namespace

template <class S> void ropeForward(Mat<S> &x, int64_t firstColumn, int heads, int headDim, const RopeTable<S> &t)
{
    rotate(x, firstColumn, heads, headDim, t, S(1));
}

template <class S> void ropeBackward(Mat<S> &dx, int64_t firstColumn, int heads, int headDim, const RopeTable<S> &t)
{
    rotate(dx, firstColumn, heads, headDim, t, S(-1));
}

template <class S>
void attentionForward(const AttentionShape &shape, const Mat<S> &q, const Mat<S> &k, const Mat<S> &v, Mat<S> &out,
                      std::vector<Mat<S>> &probs)
{
    const int64_t n = q.rows();
    const int d = shape.headDim;
    const int group = shape.heads / shape.kvHeads;
    const S scale = S(1.0 / std::sqrt(double(d)));
    out.resize(n, int64_t(shape.heads) * d);
    probs.resize(size_t(shape.heads));
    for (int h = 0; h < shape.heads; ++h) {
        const int g = h / group;
        Mat<S> &P = probs[size_t(h)];
        P.noalias() = (scale * q.middleCols(int64_t(h) * d, d)) * k.middleCols(int64_t(g) * d, d).transpose();
        for (int64_t i = 0; i < n; ++i) {
            S m = -std::numeric_limits<S>::infinity();
            for (int64_t j = 0; j <= i; ++j)
                m = std::max(m, P(i, j));
            S sum = 0;
            for (int64_t j = 0; j <= i; ++j) {
                P(i, j) = std::exp(P(i, j) - m);
                sum += P(i, j);
            }
            const S inv = S(1) / sum;
            for (int64_t j = 0; j <= i; ++j)
                P(i, j) *= inv;
            for (int64_t j = i + 1; j < n; ++j)
                P(i, j) = 0;
        }
        out.middleCols(int64_t(h) * d, d).noalias() = P * v.middleCols(int64_t(g) * d, d);
    }
}

template <class S>
void attentionBackward(const AttentionShape &shape, const Mat<S> &q, const Mat<S> &k, const Mat<S> &v,
                       const std::vector<Mat<S>> &probs, const Mat<S> &dout, Mat<S> &dq, Mat<S> &dk, Mat<S> &dv)
{
    const int64_t n = q.rows();
    const int d = shape.headDim;
    const int group = shape.heads / shape.kvHeads;
    const S scale = S(1.0 / std::sqrt(double(d)));
    dq.setZero(q.rows(), q.cols());
    dk.setZero(k.rows(), k.cols());
    dv.setZero(v.rows(), v.cols());
    Mat<S> dP;
    for (int h = 0; h < shape.heads; ++h) {
        const int g = h / group;
        const Mat<S> &P = probs[size_t(h)];
        const auto dO = dout.middleCols(int64_t(h) * d, d);
        dP.noalias() = dO * v.middleCols(int64_t(g) * d, d).transpose();
        dv.middleCols(int64_t(g) * d, d).noalias() += P.transpose() * dO;
        // Softmax backward row by row: dS = P ⊙ (dP − ⟨dP, P⟩_row); zero above the diagonal since P is.
        for (int64_t i = 0; i < n; ++i) {
            S dot = 0;
            for (int64_t j = 0; j <= i; ++j)
                dot += dP(i, j) * P(i, j);
            for (int64_t j = 0; j <= i; ++j)
                dP(i, j) = P(i, j) * (dP(i, j) - dot) * scale;
            for (int64_t j = i + 1; j < n; ++j)
                dP(i, j) = 0;
        }
        dq.middleCols(int64_t(h) * d, d).noalias() = dP * k.middleCols(int64_t(g) * d, d);
        dk.middleCols(int64_t(g) * d, d).noalias() += dP.transpose() * q.middleCols(int64_t(h) * d, d);
    }
}

template <class S> void swigluForward(const Mat<S> &gate, const Mat<S> &up, Mat<S> &y)
{
    y.resize(gate.rows(), gate.cols());
    for (int64_t t = 0; t < gate.rows(); ++t)
        for (int64_t i = 0; i < gate.cols(); ++i) {
            const S g = gate(t, i);
            y(t, i) = g / (S(1) + std::exp(-g)) * up(t, i);
        }
}

template <class S>
void swigluBackward(const Mat<S> &gate, const Mat<S> &up, const Mat<S> &dy, Mat<S> &dgate, Mat<S> &dup)
{
    dgate.resize(gate.rows(), gate.cols());
    dup.resize(gate.rows(), gate.cols());
    for (int64_t t = 0; t < gate.rows(); ++t)
        for (int64_t i = 0; i < gate.cols(); ++i) {
            const S g = gate(t, i);
            const S sig = S(1) / (S(1) + std::exp(-g));
            const S silu = g * sig;
            dup(t, i) = dy(t, i) * silu;
            dgate(t, i) = dy(t, i) * up(t, i) * sig * (S(1) + g * (S(1) - sig));
        }
}

template <class S> double mseLoss(const Mat<S> &y, const Mat<S> &t, Mat<S> *dy, double weight)
{
    const double n = double(y.size());
    double sum = 0.0;
    for (int64_t r = 0; r < y.rows(); ++r)
        for (int64_t c = 0; c < y.cols(); ++c) {
            const double e = double(y(r, c)) - double(t(r, c));
            sum += e * e;
        }
    if (dy)
        *dy += (S(2.0 * weight / n) * (y - t)).eval();
    return sum / n;
}

template <class S>
double crossEntropy(const Mat<S> &logits, const std::vector<int32_t> &targets, Mat<S> *dlogits, double weight)
{
    const int64_t vocab = logits.cols();
    int64_t scored = 0;
    for (int64_t r = 0; r < logits.rows(); ++r)
        scored += targets[size_t(r)] >= 0 ? 1 : 0;
    if (scored == 0)
        return 0.0;
    double total = 0.0;
    std::vector<double> p(static_cast<size_t>(vocab));
    for (int64_t r = 0; r < logits.rows(); ++r) {
        const int32_t target = targets[size_t(r)];
        if (target < 0)
            continue;
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t v = 0; v < vocab; ++v)
            m = std::max(m, double(logits(r, v)));
        double sum = 0.0;
        for (int64_t v = 0; v < vocab; ++v) {
            p[size_t(v)] = std::exp(double(logits(r, v)) - m);
            sum += p[size_t(v)];
        }
        total += std::log(sum) + m - double(logits(r, target));
        if (dlogits) {
            const double w = weight / double(scored);
            for (int64_t v = 0; v < vocab; ++v)
                (*dlogits)(r, v) += S(w * (p[size_t(v)] / sum - (v == target ? 1.0 : 0.0)));
        }
    }
    return total / double(scored);
}

#define QS_TRAIN_OPS_INSTANTIATE(S)                                                                              \
    template void rmsNormForward<S>(const Mat<S> &, const Vec<S> &, double, Mat<S> &, Vec<S> &);               \
    template void rmsNormBackward<S>(const Mat<S> &, const Vec<S> &, const Vec<S> &, const Mat<S> &, Mat<S> &,  \
                                     Vec<S> *);                                                                 \
    template void linearForward<S>(const Mat<S> &, const Mat<S> &, const Vec<S> &, Mat<S> &);                  \
    template void linearBackward<S>(const Mat<S> &, const Mat<S> &, const Mat<S> &, Mat<S> *, Mat<S> *,         \
                                    Vec<S> *);                                                                  \
    template RopeTable<S> makeRopeTable<S>(const std::vector<double> &, int64_t);                              \
    template void ropeForward<S>(Mat<S> &, int64_t, int, int, const RopeTable<S> &);                           \
    template void ropeBackward<S>(Mat<S> &, int64_t, int, int, const RopeTable<S> &);                          \
    template void attentionForward<S>(const AttentionShape &, const Mat<S> &, const Mat<S> &, const Mat<S> &,   \
                                      Mat<S> &, std::vector<Mat<S>> &);                                        \
    template void attentionBackward<S>(const AttentionShape &, const Mat<S> &, const Mat<S> &, const Mat<S> &,  \
                                       const std::vector<Mat<S>> &, const Mat<S> &, Mat<S> &, Mat<S> &,        \
                                       Mat<S> &);                                                               \
    template void swigluForward<S>(const Mat<S> &, const Mat<S> &, Mat<S> &);                                  \
    template void swigluBackward<S>(const Mat<S> &, const Mat<S> &, const Mat<S> &, Mat<S> &, Mat<S> &);       \
    template double mseLoss<S>(const Mat<S> &, const Mat<S> &, Mat<S> *, double);                              \
    template double crossEntropy<S>(const Mat<S> &, const std::vector<int32_t> &, Mat<S> *, double);

QS_TRAIN_OPS_INSTANTIATE(float)
QS_TRAIN_OPS_INSTANTIATE(double)

} // namespace qs::core::train
