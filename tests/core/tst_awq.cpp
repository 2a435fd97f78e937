// AWQ (algorithms.md §5.5, §11 #10–#11): α = 0 is exactly RTN and the chosen loss ≤ the RTN loss, the
// scale normalisation, FP equivalence of the applied scales, the clipping search (ratio 1.0 is a no-op,
// clipped MSE ≤ unclipped, the Gram shortcut equals token-by-token partial dot products, q/k skipped),
// a custom loss module, and the whole runAwq step beating RTN on the calibration data.
#include <QTest>

#include <algorithm>
#include <cmath>

#include "common/Error.h"
#include "common/Progress.h"
#include "quant/Awq.h"
#include "quant/SyntheticData.h"

using namespace qs::core;

namespace {

struct Data
{
    int64_t tokens = 128, cols = 128;
    std::vector<float> x;
    std::vector<std::vector<float>> ws;
    std::vector<int64_t> rows{ 32, 32, 48 };
    std::vector<TensorRole> roles{ TensorRole::Q, TensorRole::K, TensorRole::V };
};

Data makeData()
{
    Data d;
    SyntheticInputOptions o;
    o.tokens = d.tokens;
    o.channels = d.cols;
    o.seed = 51;
    o.outlierScale = 15.0;
    d.x = syntheticInputs(o);
    for (size_t i = 0; i < d.rows.size(); ++i)
        d.ws.push_back(syntheticWeights(d.rows[i], d.cols, 60 + i, 0.05));
    return d;
}

std::vector<AwqLinear> linears(const Data &d)
{
    std::vector<AwqLinear> v;
    const char *names[] = { "q_proj", "k_proj", "v_proj" };
    for (size_t i = 0; i < d.ws.size(); ++i)
        v.push_back({ { d.ws[i].data(), d.rows[i], d.cols }, d.roles[i], names[i] });
    return v;
}

double mse(const std::vector<float> &a, const std::vector<float> &b)
{
    double s = 0.0;
    for (size_t i = 0; i < a.size(); ++i)
        s += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    return s / double(a.size());
}

AwqOptions opts(int bits = 3, int group = 32)
{
    AwqOptions o;
    o.spec = QuantSpec{ GridId::MinMaxAwq, bits, group, 1 };
    return o;
}

} // namespace

class TestAwq : public QObject
{
    Q_OBJECT
private slots:
    void scalesForAlpha()
    {
        const std::vector<float> mu{ 0.0f, 0.5f, 2.0f, 8.0f };
        const std::vector<float> s0 = awqScalesForAlpha(mu, 0.0);
        for (float v : s0)
            QCOMPARE(v, 1.0f); // exactly
        const std::vector<float> s = awqScalesForAlpha(mu, 0.5);
        // The dead channel is clamped to 1e-4 before normalisation; max·min = 1 after it.
        const double lo = std::max(1e-4, 0.0), hi = std::sqrt(8.0);
        QVERIFY(std::fabs(double(s[0]) - lo / std::sqrt(lo * hi)) < 1e-6 * double(s[0]) + 1e-9);
        QVERIFY(std::fabs(double(*std::max_element(s.begin(), s.end())) * double(*std::min_element(s.begin(), s.end())) - 1.0) < 1e-5);
        QVERIFY(s[3] > s[2] && s[2] > s[1]);
    }

    void alphaZeroIsRtnAndChosenBeatsIt()
    {
        const Data d = makeData();
        const ActivationView x{ d.x.data(), d.tokens, d.cols };
        NullProgress progress;
        const AwqOptions o = opts();
        const AwqScaleSearch s = searchAwqScales(x, linears(d), o, {}, progress);
        QCOMPARE(int(s.alphas.size()), 20);
        QCOMPARE(s.alphas[0], 0.0);
        QCOMPARE(s.alphas[19], 0.95);
        // The α = 0 loss is exactly the loss of group-wise RTN through the same module.
        const AwqModuleFn module = linearOutputsModule(x);
        std::vector<std::vector<float>> orig, rtn;
        for (size_t i = 0; i < d.ws.size(); ++i) {
            orig.push_back(d.ws[i]);
            const QuantizedTensor q = quantizeRtn({ d.ws[i].data(), d.rows[i], d.cols }, o.spec);
            rtn.push_back(q.dequantized);
        }
        const double rtnLoss = mse(module(rtn), module(orig));
        QCOMPARE(s.losses[0], rtnLoss);
        QCOMPARE(s.rtnLoss, rtnLoss);
        QVERIFY(s.bestLoss <= s.rtnLoss);
        QVERIFY(s.bestLoss < s.rtnLoss); // with outlier channels some α > 0 helps
        QVERIFY(s.bestAlpha > 0.0);
        QCOMPARE(s.bestLoss, *std::min_element(s.losses.begin(), s.losses.end()));
        qInfo("AWQ search: RTN loss %.4g, best alpha %.2f loss %.4g", s.rtnLoss, s.bestAlpha, s.bestLoss);
    }

    void appliedScalesAreFpEquivalent()
    {
        const Data d = makeData();
        const ActivationView x{ d.x.data(), d.tokens, d.cols };
        const std::vector<float> s = awqScalesForAlpha(meanAbsPerChannel(x), 0.6);
        std::vector<float> xs = d.x;
        for (int64_t t = 0; t < d.tokens; ++t)
            for (int64_t j = 0; j < d.cols; ++j)
                xs[size_t(t * d.cols + j)] /= s[size_t(j)];
        std::vector<float> w = d.ws[0];
        for (int64_t r = 0; r < d.rows[0]; ++r)
            for (int64_t j = 0; j < d.cols; ++j)
                w[size_t(r * d.cols + j)] *= s[size_t(j)];
        const std::vector<float> y = linearOutputsModule(x)({ d.ws[0] });
        const std::vector<float> ys = linearOutputsModule({ xs.data(), d.tokens, d.cols })({ w });
        double ref = 0.0;
        for (float v : y)
            ref += double(v) * double(v);
        QVERIFY(mse(y, ys) * double(y.size()) < 1e-11 * ref);
    }

    void clipSearch()
    {
        const Data d = makeData();
        std::vector<float> w = d.ws[2];
        // Put a few weight outliers in so that clipping pays somewhere.
        for (int r = 0; r < 48; r += 5)
            w[size_t(r * d.cols + 7)] *= 8.0f;
        const WeightView wv{ w.data(), 48, d.cols };
        const ActivationView x{ d.x.data(), d.tokens, d.cols };
        NullProgress progress;
        AwqOptions o = opts(3, 32);
        o.clipTokens = 64;
        const AwqClip c = searchAwqClip(wv, x, o, progress, "v_proj");
        QCOMPARE(c.numGroups, 4);
        QCOMPARE(c.tokensUsed, 64);
        int clipped = 0;
        for (size_t i = 0; i < c.maxVal.size(); ++i) {
            QVERIFY(c.errBest[i] <= c.errUnclipped[i]);
            QVERIFY(c.shrinkStep[i] >= 0 && c.shrinkStep[i] < 10);
            clipped += c.shrinkStep[i] > 0;
        }
        QVERIFY(clipped > 0);
        // Step 0 is the unclipped group: its maxVal is the group absmax.
        for (int64_t r = 0; r < 48; ++r)
            for (int k = 0; k < 4; ++k) {
                const size_t i = size_t(r * 4 + k);
                if (c.shrinkStep[i] != 0)
                    continue;
                float amax = 0.0f;
                for (int j = 0; j < 32; ++j)
                    amax = std::max(amax, std::fabs(w[size_t(r * d.cols + k * 32 + j)]));
                QCOMPARE(c.maxVal[i], amax);
            }
        // Conformance of the Gram shortcut: row 0, group 0 at step 0 against token-by-token partial sums.
        {
            const Grid g = o.spec.makeGrid();
            const GroupParams p = g.params(w.data(), 32);
            const int64_t step = d.tokens / 64;
            double sum = 0.0;
            for (int t = 0; t < 64; ++t) {
                double part = 0.0;
                for (int j = 0; j < 32; ++j)
                    part += double(d.x[size_t(t * step * d.cols + j)]) * double(g.qdq(w[size_t(j)], p) - w[size_t(j)]);
                sum += part * part;
            }
            QVERIFY(std::fabs(sum / 64.0 - c.errUnclipped[0]) <= 1e-4 * sum / 64.0);
        }
        // max_shrink 0 leaves only the no-op candidate; applying it changes nothing.
        AwqOptions none = o;
        none.maxShrink = 0.0;
        const AwqClip c0 = searchAwqClip(wv, x, none, progress, "v_proj");
        std::vector<float> w2 = w;
        applyAwqClip(w2.data(), 48, d.cols, c0);
        QVERIFY(w2 == w);
        // Applying the real clip bounds every group.
        applyAwqClip(w2.data(), 48, d.cols, c);
        for (int64_t r = 0; r < 48; ++r)
            for (int64_t j = 0; j < d.cols; ++j)
                QVERIFY(std::fabs(w2[size_t(r * d.cols + j)]) <= c.maxVal[size_t(r * 4 + j / 32)]);
    }

    void runAwqBeatsRtn()
    {
        const Data d = makeData();
        const ActivationView x{ d.x.data(), d.tokens, d.cols };
        NullProgress progress;
        const AwqOptions o = opts(3, 32);
        const AwqResult r = runAwq(x, linears(d), o, {}, progress);
        QCOMPARE(r.tensors.size(), size_t(3));
        // q/k are not clipped by default; v is.
        QVERIFY(r.clips[0].maxVal.empty() && r.clips[1].maxVal.empty());
        QVERIFY(!r.clips[2].maxVal.empty());
        std::vector<std::vector<float>> eff, rtn, orig;
        for (size_t i = 0; i < 3; ++i) {
            const QuantizedTensor &t = r.tensors[i];
            t.validate();
            QCOMPARE(t.method, std::string("awq"));
            QCOMPARE(t.inputScalesSource, std::string("awq"));
            QVERIFY(t.inputScales == r.search.scales);
            eff.push_back(t.effectiveWeights());
            rtn.push_back(quantizeRtn({ d.ws[i].data(), d.rows[i], d.cols }, o.spec).dequantized);
            orig.push_back(d.ws[i]);
        }
        for (size_t j = 0; j < r.normFold.size(); ++j)
            QCOMPARE(r.normFold[j], 1.0f / r.search.scales[j]);
        const AwqModuleFn module = linearOutputsModule(x);
        const std::vector<float> y = module(orig);
        const double eAwq = mse(module(eff), y), eRtn = mse(module(rtn), y);
        qInfo("AWQ layer output MSE %.4g vs RTN %.4g (3-bit g32)", eAwq, eRtn);
        QVERIFY(eAwq < eRtn);

        AwqOptions all = o;
        all.clipQK = true;
        all.nGrid = 2; // only the clipping matters here
        const AwqResult rq = runAwq(x, linears(d), all, {}, progress);
        QVERIFY(!rq.clips[0].maxVal.empty());
    }

    void customModule()
    {
        // A SwiGLU-like module over gate/up: silu(X·Gᵀ) ⊙ (X·Uᵀ), as a pipeline would supply.
        const Data d = makeData();
        const ActivationView x{ d.x.data(), d.tokens, d.cols };
        int calls = 0;
        const AwqModuleFn mlp = [&](const std::vector<std::vector<float>> &w) {
            ++calls;
            const std::vector<float> g = linearOutputsModule(x)({ w[0] });
            const std::vector<float> u = linearOutputsModule(x)({ w[1] });
            std::vector<float> out(g.size());
            for (size_t i = 0; i < g.size(); ++i)
                out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
            return out;
        };
        std::vector<AwqLinear> gu{ { { d.ws[0].data(), 32, d.cols }, TensorRole::Gate, "gate_proj" },
                                   { { d.ws[1].data(), 32, d.cols }, TensorRole::Up, "up_proj" } };
        NullProgress progress;
        AwqOptions o = opts();
        o.nGrid = 10;
        const AwqScaleSearch s = searchAwqScales(x, gu, o, mlp, progress);
        QCOMPARE(calls, 11); // the reference plus one per α
        QVERIFY(s.bestLoss <= s.rtnLoss);

        // Shape errors.
        std::vector<AwqLinear> bad = gu;
        bad[1].weight.cols = 64;
        QVERIFY_THROWS_EXCEPTION(Error, searchAwqScales(x, bad, o, mlp, progress));
        const AwqModuleFn wrongSize = [&](const std::vector<std::vector<float>> &) {
            return std::vector<float>(size_t(++calls), 0.0f);
        };
        QVERIFY_THROWS_EXCEPTION(Error, searchAwqScales(x, gu, o, wrongSize, progress));
        NullProgress cancelled;
        cancelled.cancel();
        QVERIFY_THROWS_EXCEPTION(Cancelled, searchAwqScales(x, gu, o, mlp, cancelled));
    }
};

QTEST_GUILESS_MAIN(TestAwq)
#include "tst_awq.moc"
