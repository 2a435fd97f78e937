// Backward passes of the training ops (train/TrainOps.h, TrainBlock.h) against central finite differences
// in float64 on small random shapes, the STE/LSQ gradients of the EfficientQAT quantizer against a hand
// computation, its min–max initialisation against RTN, baking idempotence, AdamW and the schedules.
//
// Tolerance: kFdTolerance = 1e-6, the largest |analytic − finite difference| relative to the largest
// gradient component of the tensor checked (step h = 1e-6 in double: truncation ~h², rounding ~1e-16/h,
// both far below; a wrong term in a backward pass shows up at 1e-2 or more).
#include <QTest>

#include <cmath>
#include <functional>
#include <random>

#include "common/Error.h"
#include "model/Model.h"
#include "quant/Rtn.h"
#include "quant/SyntheticData.h"
#include "train/FakeQuant.h"
#include "train/TrainBlock.h"
#include "train/TrainOps.h"

using namespace qs::core;
using namespace qs::core::train;

namespace {

constexpr double kFdTolerance = 1e-6;
constexpr double kFdStep = 1e-6;

using MatD = Mat<double>;
using VecD = Vec<double>;

MatD randomMat(std::mt19937_64 &rng, int64_t r, int64_t c, double scale = 1.0)
{
    std::normal_distribution<double> n(0.0, scale);
    MatD m(r, c);
    for (int64_t i = 0; i < m.size(); ++i)
        m.data()[i] = n(rng);
    return m;
}

VecD randomVec(std::mt19937_64 &rng, int64_t n, double mean = 0.0, double scale = 1.0)
{
    std::normal_distribution<double> d(mean, scale);
    VecD v(n);
    for (int64_t i = 0; i < n; ++i)
        v[i] = d(rng);
    return v;
}

// max |fd − analytic| / max |analytic| over the n parameters at theta.
double fdError(double *theta, int64_t n, const double *analytic, const std::function<double()> &loss)
{
    double maxErr = 0.0, maxG = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const double v = theta[i];
        theta[i] = v + kFdStep;
        const double lp = loss();
        theta[i] = v - kFdStep;
        const double lm = loss();
        theta[i] = v;
        const double fd = (lp - lm) / (2.0 * kFdStep);
        maxErr = std::max(maxErr, std::fabs(fd - analytic[i]));
        maxG = std::max(maxG, std::fabs(analytic[i]));
    }
    return maxG > 0.0 ? maxErr / maxG : maxErr;
}

double project(const MatD &y, const MatD &r)
{
    return (y.array() * r.array()).sum();
}

#define CHECK_FD(theta, analytic, lossFn)                                                                         \
    do {                                                                                                        \
        const double err_ = fdError((theta).data(), (theta).size(), (analytic).data(), lossFn);                 \
        QVERIFY2(err_ < kFdTolerance, qPrintable(QStringLiteral(#theta ": relative error %1").arg(err_)));     \
    } while (false)

HyperParams smallHyperParams()
{
    HyperParams h;
    h.hiddenSize = 16;
    h.intermediateSize = 24;
    h.numLayers = 1;
    h.numHeads = 4;
    h.numKvHeads = 2;
    h.headDim = 4;
    h.vocabSize = 11;
    h.rmsEps = 1e-5;
    h.ropeTheta = 10000.0;
    return h;
}

TrainBlock<double> randomBlock(std::mt19937_64 &rng, LinearMode mode)
{
    TrainBlock<double> b;
    b.shape = BlockShape::fromHyperParams(smallHyperParams());
    const int64_t H = b.shape.hidden, I = b.shape.intermediate, qd = b.shape.qDim(), kvd = b.shape.kvDim();
    const int64_t rows[7] = { qd, kvd, kvd, H, I, I, H };
    const int64_t cols[7] = { H, H, H, qd, H, H, I };
    for (int i = 0; i < kBlockLinears; ++i) {
        TrainLinear<double> &l = b.lin[size_t(i)];
        l.mode = mode;
        l.w = randomMat(rng, rows[i], cols[i], 0.4);
        if (i <= 3) // q/k/v/o biases (Llama with attention_bias)
            l.bias = randomVec(rng, rows[i], 0.0, 0.1);
    }
    b.attnNorm = randomVec(rng, H, 1.0, 0.2);
    b.mlpNorm = randomVec(rng, H, 1.0, 0.2);
    return b;
}

} // namespace

class TestTrainOps : public QObject
{
    Q_OBJECT
private slots:
    void rmsNorm()
    {
        std::mt19937_64 rng(1);
        MatD x = randomMat(rng, 5, 7);
        VecD g = randomVec(rng, 7, 1.0, 0.3);
        const MatD r = randomMat(rng, 5, 7);
        auto loss = [&] {
            MatD y;
            VecD inv;
            rmsNormForward<double>(x, g, 1e-5, y, inv);
            return project(y, r);
        };
        MatD y, dx;
        VecD inv, dg = VecD::Zero(7);
        rmsNormForward<double>(x, g, 1e-5, y, inv);
        rmsNormBackward<double>(x, g, inv, r, dx, &dg);
        CHECK_FD(x, dx, loss);
        CHECK_FD(g, dg, loss);
    }

    void linear()
    {
        std::mt19937_64 rng(2);
        MatD x = randomMat(rng, 4, 6), w = randomMat(rng, 3, 6);
        VecD b = randomVec(rng, 3);
        const MatD r = randomMat(rng, 4, 3);
        auto loss = [&] {
            MatD y;
            linearForward<double>(x, w, b, y);
            return project(y, r);
        };
        MatD dx, dw = MatD::Zero(3, 6);
        VecD db = VecD::Zero(3);
        linearBackward<double>(x, w, r, &dx, &dw, &db);
        CHECK_FD(x, dx, loss);
        CHECK_FD(w, dw, loss);
        CHECK_FD(b, db, loss);
    }

    void rope()
    {
        std::mt19937_64 rng(3);
        const std::vector<double> inv = { 1.0, 0.3, 0.05 }; // head dim 6
        const RopeTable<double> t = makeRopeTable<double>(inv, 5);
        MatD x = randomMat(rng, 5, 2 + 2 * 6); // two heads after two other columns
        const MatD r = randomMat(rng, 5, 14);
        auto loss = [&] {
            MatD y = x;
            ropeForward<double>(y, 2, 2, 6, t);
            return project(y, r);
        };
        MatD dx = r;
        ropeBackward<double>(dx, 2, 2, 6, t);
        CHECK_FD(x, dx, loss);
        // Rotate-half pairing: position 1 rotates (x_0, x_3) of the first head by angle 1·θ_0.
        MatD y = x;
        ropeForward<double>(y, 2, 2, 6, t);
        QVERIFY(std::fabs(y(1, 2) - (x(1, 2) * std::cos(1.0) - x(1, 5) * std::sin(1.0))) < 1e-12);
        QVERIFY(std::fabs(y(1, 5) - (x(1, 5) * std::cos(1.0) + x(1, 2) * std::sin(1.0))) < 1e-12);
        QVERIFY(y.col(0) == x.col(0));
    }

    void attention()
    {
        std::mt19937_64 rng(4);
        const AttentionShape s { 4, 2, 3 };
        const int64_t n = 6;
        MatD q = randomMat(rng, n, 12), k = randomMat(rng, n, 6), v = randomMat(rng, n, 6);
        const MatD r = randomMat(rng, n, 12);
        auto loss = [&] {
            MatD out;
            std::vector<MatD> p;
            attentionForward<double>(s, q, k, v, out, p);
            return project(out, r);
        };
        MatD out, dq, dk, dv;
        std::vector<MatD> p;
        attentionForward<double>(s, q, k, v, out, p);
        attentionBackward<double>(s, q, k, v, p, r, dq, dk, dv);
        CHECK_FD(q, dq, loss);
        CHECK_FD(k, dk, loss);
        CHECK_FD(v, dv, loss);
        // Causality: the first query sees only the first key; head 3 reads KV head 1.
        QVERIFY(std::fabs(out(0, 9) - v(0, 3)) < 1e-12);
        QCOMPARE(p[0](0, 1), 0.0);
    }

    void swiglu()
    {
        std::mt19937_64 rng(5);
        MatD g = randomMat(rng, 3, 5, 2.0), u = randomMat(rng, 3, 5);
        const MatD r = randomMat(rng, 3, 5);
        auto loss = [&] {
            MatD y;
            swigluForward<double>(g, u, y);
            return project(y, r);
        };
        MatD dg, du;
        swigluBackward<double>(g, u, r, dg, du);
        CHECK_FD(g, dg, loss);
        CHECK_FD(u, du, loss);
    }

    void losses()
    {
        std::mt19937_64 rng(6);
        MatD logits = randomMat(rng, 5, 9, 2.0);
        const std::vector<int32_t> targets = { 3, -1, 0, 8, 5 };
        MatD dl = MatD::Zero(5, 9);
        const double ce = crossEntropy<double>(logits, targets, &dl, 0.5);
        CHECK_FD(logits, dl, [&] { return 0.5 * crossEntropy<double>(logits, targets, nullptr); });
        // By hand for row 0: log Σ exp − logit[target].
        double ref = 0.0;
        for (int row : { 0, 2, 3, 4 }) {
            double s = 0.0;
            for (int v = 0; v < 9; ++v)
                s += std::exp(logits(row, v));
            ref += std::log(s) - logits(row, targets[size_t(row)]);
        }
        QVERIFY(std::fabs(ce - ref / 4.0) < 1e-12);
        QVERIFY(dl.row(1).isZero());

        MatD y = randomMat(rng, 3, 4);
        const MatD t = randomMat(rng, 3, 4);
        MatD dy = MatD::Zero(3, 4);
        mseLoss<double>(y, t, &dy);
        CHECK_FD(y, dy, [&] { return mseLoss<double>(y, t, nullptr); });
    }

    // The whole block (RMSNorm, q/k/v with biases, RoPE, GQA attention, o, residuals, SwiGLU MLP) with
    // float linears and trained norms: input, every weight and both norms.
    void blockFloat()
    {
        std::mt19937_64 rng(7);
        TrainBlock<double> b = randomBlock(rng, LinearMode::Float);
        b.trainAttnNorm = b.trainMlpNorm = true;
        MatD x = randomMat(rng, 6, 16);
        const MatD r = randomMat(rng, 6, 16);
        auto loss = [&] {
            b.prepare();
            return project(b.forward(x, nullptr), r);
        };
        b.prepare();
        TrainBlock<double>::Cache c;
        const MatD y = b.forward(x, &c);
        BlockGrads<double> g;
        b.zeroGrads(g);
        const MatD dx = b.backward(c, r, g, true);
        CHECK_FD(x, dx, loss);
        for (int i = 0; i < kBlockLinears; ++i) {
            const MatD dw = b.parameterGradients(i, g).dw;
            CHECK_FD(b.lin[size_t(i)].w, dw, loss);
        }
        CHECK_FD(b.attnNorm, g.dAttnNorm, loss);
        CHECK_FD(b.mlpNorm, g.dMlpNorm, loss);
        // Without the input gradient (first block of E2E-QP) the parameter gradients are the same.
        BlockGrads<double> g2;
        b.zeroGrads(g2);
        QVERIFY(b.backward(c, r, g2, false).size() == 0);
        for (int i = 0; i < kBlockLinears; ++i)
            QVERIFY((g2.dweff[size_t(i)] - g.dweff[size_t(i)]).cwiseAbs().maxCoeff() < 1e-12);
        QVERIFY((g2.dAttnNorm - g.dAttnNorm).cwiseAbs().maxCoeff() < 1e-12);
    }

    // E2E-QP: frozen codes, ŵ = (q − z)·s is linear in s, so ∂loss/∂s = Σ ∂loss/∂ŵ·(q − z) is exact and
    // finite differences through the whole block must agree.
    void blockFrozenCodesScaleGradient()
    {
        std::mt19937_64 rng(8);
        TrainBlock<double> b = randomBlock(rng, LinearMode::Fixed);
        for (int i : { 0, 3, 6 }) {
            TrainLinear<double> &l = b.lin[size_t(i)];
            l.mode = LinearMode::FrozenCodes;
            l.quant = GroupQuantizer<double>(l.w.rows(), l.w.cols(), 3, 4, i == 3);
            l.quant.init(l.w);
            l.codes = l.quant.codes(l.w);
        }
        MatD x = randomMat(rng, 5, 16);
        const MatD r = randomMat(rng, 5, 16);
        auto loss = [&] {
            b.prepare();
            return project(b.forward(x, nullptr), r);
        };
        b.prepare();
        TrainBlock<double>::Cache c;
        b.forward(x, &c);
        BlockGrads<double> g;
        b.zeroGrads(g);
        b.backward(c, r, g, false);
        for (int i : { 0, 3, 6 }) {
            const VecD ds = b.parameterGradients(i, g).ds;
            QVERIFY(ds.cwiseAbs().maxCoeff() > 0.0);
            CHECK_FD(b.lin[size_t(i)].quant.scale, ds, loss);
        }
        // ∂ŵ/∂s = q − z per element.
        const TrainLinear<double> &l = b.lin[0];
        MatD ones = MatD::Zero(l.w.rows(), l.w.cols());
        ones(2, 5) = 1.0;
        VecD ds;
        l.quant.dequantizeBackward(l.codes, ones, ds);
        const int k = l.quant.groupOf(5);
        QCOMPARE(ds[2 * l.quant.numGroups() + k],
                 double(l.codes[size_t(2 * l.w.cols() + 5)]) - l.quant.effectiveZero(2, k));
    }

    // Block-AP's STE/LSQ gradients, element by element against the formulas of §7.1.
    void steLsqGradients()
    {
        std::mt19937_64 rng(9);
        const int64_t rows = 3, cols = 10;
        for (bool symmetric : { false, true }) {
            MatD w = randomMat(rng, rows, cols, 0.5);
            GroupQuantizer<double> q(rows, cols, 2, 4, symmetric); // groups of 4, 4, 2
            q.init(w);
            q.scale *= 0.6; // shrink the range so that some weights clamp
            q.zero[1] += 0.4; // a fractional zero: the forward pass uses ⌊z⌉
            const MatD dwhat = randomMat(rng, rows, cols);
            MatD what, dw;
            VecD ds, dz;
            q.fakeQuant(w, what);
            q.fakeQuantBackward(w, dwhat, dw, ds, dz);
            VecD eds = VecD::Zero(ds.size()), edz = VecD::Zero(dz.size());
            int clamped = 0, inRange = 0;
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t c = 0; c < cols; ++c) {
                    const int k = int(c / 4);
                    const int64_t i = r * 3 + k;
                    const double s = q.scale[i];
                    const double z = symmetric ? 2.0 : std::nearbyint(std::clamp(q.zero[i], 0.0, 3.0));
                    const double u = w(r, c) / s;
                    const double qv = std::nearbyint(u) + z;
                    const double code = std::clamp(qv, 0.0, 3.0);
                    QCOMPARE(what(r, c), s * (code - z));
                    if (qv >= 0.0 && qv <= 3.0) {
                        ++inRange;
                        QCOMPARE(dw(r, c), dwhat(r, c)); // ∂ŵ/∂w = 1
                        eds[i] += dwhat(r, c) * (std::nearbyint(u) - u);
                    } else {
                        ++clamped;
                        QCOMPARE(dw(r, c), 0.0); // ∂ŵ/∂w = 0
                        eds[i] += dwhat(r, c) * (code - z);
                        if (!symmetric)
                            edz[i] -= dwhat(r, c) * s;
                    }
                }
            QVERIFY(clamped > 0 && inRange > 0);
            QVERIFY((ds - eds).cwiseAbs().maxCoeff() < 1e-12);
            QVERIFY((dz - edz).cwiseAbs().maxCoeff() < 1e-12);
            if (!symmetric)
                QVERIFY(dz.cwiseAbs().maxCoeff() > 0.0);
        }
        // A scale held by its clamp gets no gradient.
        MatD w = randomMat(rng, 1, 4);
        GroupQuantizer<double> q(1, 4, 3, -1, false);
        q.init(w);
        q.scale[0] = 1e-6;
        MatD dw;
        VecD ds, dz;
        q.fakeQuantBackward(w, MatD::Ones(1, 4), dw, ds, dz);
        QCOMPARE(ds[0], 0.0);
    }

    // Min–max initialisation = RTN on grid minmax_awq / sym_gptq, bit for bit (zero epochs is RTN).
    void initIsRtn_data()
    {
        QTest::addColumn<int>("bits");
        QTest::addColumn<int>("groupSize");
        QTest::addColumn<bool>("symmetric");
        for (int bits : { 2, 3, 4 })
            for (int gs : { -1, 32, 48 })
                for (bool sym : { false, true })
                    QTest::addRow("b%d/g%d/%s", bits, gs, sym ? "sym" : "asym") << bits << gs << sym;
    }
    void initIsRtn()
    {
        QFETCH(int, bits);
        QFETCH(int, groupSize);
        QFETCH(bool, symmetric);
        const int64_t rows = 6, cols = 100;
        const std::vector<float> w = syntheticWeights(rows, cols, 11);
        const Mat<float> wm = Eigen::Map<const Mat<float>>(w.data(), rows, cols);
        GroupQuantizer<float> q(rows, cols, bits, groupSize, symmetric);
        q.init(wm);
        const QuantizedTensor t = q.toQuantized(wm, "model.layers.0.mlp.up_proj");
        t.validate();
        const QuantizedTensor ref = quantizeRtn({ w.data(), rows, cols },
                                                QuantSpec { symmetric ? GridId::SymGptq : GridId::MinMaxAwq, bits,
                                                            groupSize, 1 });
        QCOMPARE(t.grid, ref.grid);
        QCOMPARE(t.zeroKind, ref.zeroKind);
        QVERIFY(t.codes == ref.codes);
        QVERIFY(t.scales == ref.scales);
        QVERIFY(t.zeros == ref.zeros);
        QVERIFY(t.dequantized == ref.dequantized);
        Mat<float> fq;
        q.fakeQuant(wm, fq);
        QVERIFY(std::equal(fq.data(), fq.data() + fq.size(), t.dequantized.begin()));
    }

    // Baking: the dequantized weights re-quantize to the stored codes with the same parameters.
    void bakingIsIdempotent()
    {
        std::mt19937_64 rng(12);
        Mat<float> w = randomMat(rng, 8, 40, 0.3).cast<float>();
        GroupQuantizer<float> q(8, 40, 3, 16, false);
        q.init(w);
        w += (0.05 * randomMat(rng, 8, 40)).cast<float>(); // as if trained
        for (int64_t i = 0; i < q.scale.size(); ++i) {
            q.scale[i] *= 0.9f;
            q.zero[i] += 0.3f;
        }
        const QuantizedTensor t = q.toQuantized(w, "x");
        t.validate();
        for (float z : t.zeros)
            QCOMPARE(z, std::nearbyint(z)); // integer zero points
        const Mat<float> baked = Eigen::Map<const Mat<float>>(t.dequantized.data(), 8, 40);
        QVERIFY(q.codes(baked) == t.codes);
        Mat<float> fq;
        q.fakeQuant(w, fq);
        QVERIFY(std::equal(fq.data(), fq.data() + fq.size(), t.dequantized.begin()));
        // And the E2E-QP dequantization of the frozen codes is the same.
        Mat<float> dq;
        q.dequantize(t.codes, dq);
        QVERIFY(std::equal(dq.data(), dq.data() + dq.size(), t.dequantized.begin()));
    }

    void adamw()
    {
        double p[2] = { 1.0, -2.0 };
        const double g1[2] = { 0.5, -0.1 };
        const double g2[2] = { 0.2, 0.3 };
        AdamWState<double> st;
        AdamWOptions o;
        o.weightDecay = 0.1;
        const double lr = 0.01, eps = 1e-8;
        adamwStep(p, g1, 2, st, o, lr);
        // Step 1: m̂ = g, v̂ = g², so the update is lr·g/(|g| + eps) after the decay p·(1 − lr·wd).
        const double e10 = 1.0 * (1.0 - 0.001) - 0.01 * 0.5 / (0.5 + eps);
        const double e11 = -2.0 * (1.0 - 0.001) - 0.01 * -0.1 / (0.1 + eps);
        QVERIFY(std::fabs(p[0] - e10) < 1e-14);
        QVERIFY(std::fabs(p[1] - e11) < 1e-14);
        adamwStep(p, g2, 2, st, o, lr);
        // Step 2 by hand: m = 0.9·0.1·g1 + 0.1·g2, v = 0.999·0.001·g1² + 0.001·g2², bias corrections
        // 1 − 0.9² = 0.19 and 1 − 0.999² = 0.001999.
        const double m0 = 0.9 * 0.05 + 0.1 * 0.2, v0 = 0.999 * 0.001 * 0.25 + 0.001 * 0.04;
        const double m1 = 0.9 * -0.01 + 0.1 * 0.3, v1 = 0.999 * 0.001 * 0.01 + 0.001 * 0.09;
        const double e20 = e10 * 0.999 - 0.01 * (m0 / 0.19) / (std::sqrt(v0 / 0.001999) + eps);
        const double e21 = e11 * 0.999 - 0.01 * (m1 / 0.19) / (std::sqrt(v1 / 0.001999) + eps);
        QVERIFY(std::fabs(p[0] - e20) < 1e-12);
        QVERIFY(std::fabs(p[1] - e21) < 1e-12);
        QCOMPARE(st.step, int64_t(2));
        // lr = 0 leaves the parameters unchanged.
        const double before[2] = { p[0], p[1] };
        adamwStep(p, g1, 2, st, o, 0.0);
        QCOMPARE(p[0], before[0]);
        QCOMPARE(p[1], before[1]);
    }

    void schedules()
    {
        QCOMPARE(cosineLr(1.0, 0.05, 0, 10), 1.0);
        QVERIFY(std::fabs(cosineLr(1.0, 0.05, 10, 10) - 0.05) < 1e-15);
        QVERIFY(std::fabs(cosineLr(1.0, 0.05, 5, 10) - 0.525) < 1e-15);
        QVERIFY(cosineLr(1.0, 0.0, 7, 10) < cosineLr(1.0, 0.0, 6, 10));
        // Warm-up over 4 steps: 0.25, 0.5, 0.75, 1, then the cosine from step 4 over the remaining 6.
        QCOMPARE(cosineLr(1.0, 0.0, 0, 10, 4), 0.25);
        QCOMPARE(cosineLr(1.0, 0.0, 3, 10, 4), 1.0);
        QCOMPARE(cosineLr(1.0, 0.0, 4, 10, 4), 1.0);
        QVERIFY(std::fabs(cosineLr(1.0, 0.0, 7, 10, 4) - 0.5) < 1e-15);
    }
};

QTEST_GUILESS_MAIN(TestTrainOps)
#include "tst_train_ops.moc"
