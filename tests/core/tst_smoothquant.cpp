// SmoothQuant (algorithms.md §4.5, §11 #8–#9): smoothing is FP-equivalent for α ∈ {0, 0.5, 0.85, 1}, the
// difficulty split (α = 0.5: equal per-channel maxima; α = 1: every activation max is 1), W8A8 with
// smoothing beats naive W8A8 on outlier channels for O1/O2/O3 and the per-channel fake_quant setting, and
// the per-token INT8 activation fake quantizer.
#include <QTest>

#include <cmath>

#include "common/Error.h"
#include "quant/SmoothQuant.h"
#include "quant/SyntheticData.h"

using namespace qs::core;

namespace {

struct Data
{
    int64_t tokens = 256, cols = 96;
    std::vector<float> x;                 // tokens × cols
    std::vector<std::vector<float>> ws;   // q, k, v
    std::vector<int64_t> rows{ 48, 32, 32 };
    std::vector<float> absmax;
};

Data makeData(double outlierScale = 40.0)
{
    Data d;
    SyntheticInputOptions o;
    o.tokens = d.tokens;
    o.channels = d.cols;
    o.seed = 31;
    o.outlierScale = outlierScale;
    o.deadChannels = 1;
    d.x = syntheticInputs(o);
    for (size_t i = 0; i < d.rows.size(); ++i)
        d.ws.push_back(syntheticWeights(d.rows[i], d.cols, 40 + i, 0.05));
    d.absmax.assign(size_t(d.cols), 0.0f);
    for (int64_t t = 0; t < d.tokens; ++t)
        for (int64_t j = 0; j < d.cols; ++j)
            d.absmax[size_t(j)] = std::max(d.absmax[size_t(j)], std::fabs(d.x[size_t(t * d.cols + j)]));
    return d;
}

std::vector<WeightView> views(const Data &d)
{
    std::vector<WeightView> v;
    for (size_t i = 0; i < d.ws.size(); ++i)
        v.push_back({ d.ws[i].data(), d.rows[i], d.cols });
    return v;
}

// Y = X·Wᵀ in double (tokens × rows, row-major).
std::vector<double> matmul(const std::vector<float> &x, const std::vector<float> &w, int64_t tokens, int64_t rows,
                           int64_t cols)
{
    std::vector<double> y(size_t(tokens * rows), 0.0);
    for (int64_t t = 0; t < tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) {
            double s = 0.0;
            for (int64_t j = 0; j < cols; ++j)
                s += double(x[size_t(t * cols + j)]) * double(w[size_t(r * cols + j)]);
            y[size_t(t * rows + r)] = s;
        }
    return y;
}

double sqDiff(const std::vector<double> &a, const std::vector<double> &b)
{
    double s = 0.0;
    for (size_t i = 0; i < a.size(); ++i)
        s += (a[i] - b[i]) * (a[i] - b[i]);
    return s;
}

double sqNorm(const std::vector<double> &a)
{
    double s = 0.0;
    for (double v : a)
        s += v * v;
    return s;
}

} // namespace

class TestSmoothQuant : public QObject
{
    Q_OBJECT
private slots:
    void fpEquivalence_data()
    {
        QTest::addColumn<double>("alpha");
        for (double a : { 0.0, 0.5, 0.85, 1.0 })
            QTest::newRow(QByteArray::number(a).constData()) << a;
    }

    void fpEquivalence()
    {
        QFETCH(double, alpha);
        const Data d = makeData();
        const SmoothQuantResult r = smoothLinears(d.absmax, views(d), alpha, "model.layers.0.input_layernorm");
        // The activation side as the folded norm produces it: x·(1/s).
        std::vector<float> xs = d.x;
        for (int64_t t = 0; t < d.tokens; ++t)
            for (int64_t j = 0; j < d.cols; ++j)
                xs[size_t(t * d.cols + j)] *= r.smoothing.normFold[size_t(j)];
        std::vector<float> xdiv = d.x;
        divideActivations(xdiv.data(), d.tokens, d.cols, r.smoothing.scales);
        for (size_t i = 0; i < d.ws.size(); ++i) {
            const std::vector<double> y = matmul(d.x, d.ws[i], d.tokens, d.rows[i], d.cols);
            const double rel = std::sqrt(sqDiff(matmul(xs, r.weights[i], d.tokens, d.rows[i], d.cols), y) / sqNorm(y));
            const double relDiv = std::sqrt(sqDiff(matmul(xdiv, r.weights[i], d.tokens, d.rows[i], d.cols), y) / sqNorm(y));
            QVERIFY2(rel < 1e-6 && relDiv < 1e-6, qPrintable(QStringLiteral("%1 %2").arg(rel).arg(relDiv)));
        }
    }

    void difficultySplit()
    {
        const Data d = makeData();
        for (double alpha : { 0.5, 0.85, 1.0 }) {
            const SmoothQuantResult r = smoothLinears(d.absmax, views(d), alpha);
            std::vector<float> xs = d.x;
            divideActivations(xs.data(), d.tokens, d.cols, r.smoothing.scales);
            for (int64_t j = 0; j < d.cols; ++j) {
                float xmax = 0.0f, wmax = 0.0f;
                for (int64_t t = 0; t < d.tokens; ++t)
                    xmax = std::max(xmax, std::fabs(xs[size_t(t * d.cols + j)]));
                for (size_t i = 0; i < d.ws.size(); ++i)
                    for (int64_t row = 0; row < d.rows[i]; ++row)
                        wmax = std::max(wmax, std::fabs(r.weights[i][size_t(row * d.cols + j)]));
                const double a = d.absmax[size_t(j)], w = r.smoothing.weightAbsMax[size_t(j)];
                if (a == 0.0) { // the dead channel: s floors at 1e-5 and its activations stay 0
                    QCOMPARE(xmax, 0.0f);
                    continue;
                }
                // max|X̂_j| = (a_j w_j)^(1−α), max|Ŵ_j| = (a_j w_j)^α.
                QVERIFY(std::fabs(xmax - std::pow(a * w, 1.0 - alpha)) <= 1e-5 * std::pow(a * w, 1.0 - alpha) + 1e-7);
                QVERIFY(std::fabs(wmax - std::pow(a * w, alpha)) <= 1e-5 * std::pow(a * w, alpha));
                if (alpha == 0.5)
                    QVERIFY(std::fabs(xmax - wmax) <= 1e-5 * wmax);
                if (alpha == 1.0)
                    QCOMPARE(xmax, 1.0f);
            }
        }
    }

    void w8a8SmoothingBeatsNaive()
    {
        const Data d = makeData(60.0);
        const SmoothQuantResult r = smoothLinears(d.absmax, views(d), 0.5);
        struct Scheme
        {
            const char *name;
            int weightGroup;             // 0 per tensor, −1 per channel
            ActivationScheme activations;
        };
        const Scheme schemes[] = { { "O1", 0, ActivationScheme::PerToken },
                                   { "O2", 0, ActivationScheme::PerTensorDynamic },
                                   { "O3", 0, ActivationScheme::PerTensorStatic },
                                   { "fake_quant", -1, ActivationScheme::PerToken } };
        for (const Scheme &s : schemes) {
            double errNaive = 0.0, errSmooth = 0.0;
            for (int smoothed = 0; smoothed < 2; ++smoothed) {
                std::vector<float> xq = d.x;
                float staticMax = 0.0f;
                if (smoothed)
                    divideActivations(xq.data(), d.tokens, d.cols, r.smoothing.scales);
                for (float v : xq) // O3: calibrated on the (smoothed) data itself
                    staticMax = std::max(staticMax, std::fabs(v));
                if (s.activations == ActivationScheme::PerToken)
                    fakeQuantActivationsPerToken(xq.data(), d.tokens, d.cols, 8);
                else
                    fakeQuantPerTensor(xq.data(), d.tokens, d.cols, {}, s.activations == ActivationScheme::PerTensorStatic ? staticMax : -1.0f);
                for (size_t i = 0; i < d.ws.size(); ++i) {
                    const std::vector<float> &w = smoothed ? r.weights[i] : d.ws[i];
                    const QuantizedTensor q = quantizeSmoothedWeight(
                        { w.data(), d.rows[i], d.cols }, smoothed ? std::span<const float>(r.smoothing.scales) : std::span<const float>(),
                        QuantSpec{ GridId::Sym, 8, s.weightGroup, 1 }, "w");
                    q.validate();
                    const std::vector<double> y = matmul(d.x, d.ws[i], d.tokens, d.rows[i], d.cols);
                    const double e = sqDiff(matmul(xq, q.dequantized, d.tokens, d.rows[i], d.cols), y);
                    (smoothed ? errSmooth : errNaive) += e;
                }
            }
            qInfo("W8A8 %s: output error naive %.4g, smoothed (alpha 0.5) %.4g", s.name, errNaive, errSmooth);
            QVERIFY2(errSmooth < errNaive, s.name);
        }
    }

    void smoothedWeightRecordsScales()
    {
        const Data d = makeData();
        const SmoothQuantResult r = smoothLinears(d.absmax, views(d), 0.85);
        const QuantizedTensor q = quantizeSmoothedWeight({ r.weights[0].data(), d.rows[0], d.cols }, r.smoothing.scales);
        q.validate();
        QCOMPARE(q.method, std::string("smoothquant"));
        QCOMPARE(q.bits, 8);
        QCOMPARE(q.groupSize, -1);
        QCOMPARE(q.convention, SymConvention::Restricted);
        QCOMPARE(q.inputScalesSource, std::string("smoothquant"));
        QVERIFY(q.inputScales == r.smoothing.scales);
        // Per output channel: scale = row absmax / 127.
        float amax = 0.0f;
        for (int64_t j = 0; j < d.cols; ++j)
            amax = std::max(amax, std::fabs(r.weights[0][size_t(j)]));
        QCOMPARE(q.scales[0], amax / 127.0f);
        // effectiveWeights divides s back out. (Its distance to W is not small at α = 0.85: the outlier
        // channels dominate each row's INT8 range — the output error is what smoothing improves.)
        const std::vector<float> eff = q.effectiveWeights();
        for (int64_t row = 0; row < d.rows[0]; ++row)
            for (int64_t j = 0; j < d.cols; ++j)
                QCOMPARE(eff[size_t(row * d.cols + j)],
                         q.dequantized[size_t(row * d.cols + j)] / r.smoothing.scales[size_t(j)]);
        const QuantizedTensor plain = quantizeSmoothedWeight({ d.ws[0].data(), d.rows[0], d.cols }, {});
        QVERIFY(plain.inputScales.empty());
        QVERIFY(plain.effectiveWeights() == plain.dequantized);
    }

    void perTokenActivations()
    {
        std::vector<float> x = syntheticWeights(6, 40, 3, 2.0);
        for (int j = 0; j < 40; ++j)
            x[size_t(2 * 40 + j)] = 0.0f; // a padding token
        const std::vector<float> orig = x;
        std::vector<float> scales;
        fakeQuantPerToken(x.data(), 6, 40, {}, &scales);
        QCOMPARE(scales.size(), size_t(6));
        for (int t = 0; t < 6; ++t) {
            float amax = 0.0f;
            for (int j = 0; j < 40; ++j)
                amax = std::max(amax, std::fabs(orig[size_t(t * 40 + j)]));
            QCOMPARE(scales[size_t(t)], std::max(amax, 1e-5f) / 127.0f);
            for (int j = 0; j < 40; ++j) {
                const float v = x[size_t(t * 40 + j)];
                QVERIFY(std::isfinite(v));
                QVERIFY(std::fabs(v - orig[size_t(t * 40 + j)]) <= scales[size_t(t)] / 2 * (1 + 1e-6f));
            }
        }
        for (int j = 0; j < 40; ++j)
            QCOMPARE(x[size_t(2 * 40 + j)], 0.0f);
    }

    void rejectsBadInput()
    {
        const Data d = makeData();
        QVERIFY_THROWS_EXCEPTION(Error, computeSmoothingScales(d.absmax, views(d), 1.5));
        std::vector<float> shortA(10, 1.0f);
        QVERIFY_THROWS_EXCEPTION(Error, computeSmoothingScales(shortA, views(d), 0.5));
        std::vector<float> neg = d.absmax;
        neg[3] = -1.0f;
        QVERIFY_THROWS_EXCEPTION(Error, computeSmoothingScales(neg, views(d), 0.5));
        std::vector<WeightView> mixed = views(d);
        mixed[1].cols = 50;
        QVERIFY_THROWS_EXCEPTION(Error, computeSmoothingScales(d.absmax, mixed, 0.5));
        QVERIFY_THROWS_EXCEPTION(Error, fakeQuantPerToken(nullptr, 0, 0, { 8, SymConvention::GptqMidpoint }));
    }
};

QTEST_GUILESS_MAIN(TestSmoothQuant)
#include "tst_smoothquant.moc"
