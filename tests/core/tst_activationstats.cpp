// Streaming activation statistics against a direct computation over the whole activation matrix: the
// collector sees the data in uneven chunks, the reference sees it at once. Dyadic test values (multiples of
// 1/16) make every sum exact in double, so those comparisons are exact, not approximate.
#include <QTest>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <omp.h>
#include <random>

#include "common/Error.h"
#include "stats/ActivationStats.h"
#include "stats/ChannelOutliers.h"

using namespace qs::core;

namespace {

// tokens × cols, row-major, as the forward pass hands it over.
struct Activations
{
    int64_t tokens = 0;
    int64_t cols = 0;
    std::vector<float> x;
    float &at(int64_t t, int64_t c) { return x[size_t(t * cols + c)]; }
    float at(int64_t t, int64_t c) const { return x[size_t(t * cols + c)]; }
};

Activations dyadic(int64_t tokens, int64_t cols, uint64_t seed)
{
    std::mt19937_64 rng(seed); // raw engine output is fixed by the standard; no distributions
    Activations a { tokens, cols, std::vector<float>(size_t(tokens * cols)) };
    for (float &v : a.x)
        v = float(int(rng() % 256) - 128) / 16.0f; // [-8, 8) in steps of 1/16
    return a;
}

Activations gaussianish(int64_t tokens, int64_t cols, uint64_t seed)
{
    std::mt19937_64 rng(seed);
    Activations a { tokens, cols, std::vector<float>(size_t(tokens * cols)) };
    for (float &v : a.x) {
        double s = 0.0;
        for (int k = 0; k < 4; ++k)
            s += double(rng() >> 11) * 0x1.0p-53 - 0.5;
        v = float(s * 1.7);
    }
    return a;
}

// Feeds rows [0, tokens) in chunks of the given sizes (cycled).
void feed(ActivationStatsCollector &c, int block, LinearInput in, const Activations &a, std::vector<int64_t> chunks)
{
    int64_t t = 0;
    size_t k = 0;
    while (t < a.tokens) {
        const int64_t n = std::min(chunks[k++ % chunks.size()], a.tokens - t);
        c.onLinearInput(block, in, a.x.data() + t * a.cols, n, a.cols);
        t += n;
    }
}

struct Reference
{
    std::vector<float> absMax;
    std::vector<double> sumAbs;
    std::vector<double> sumSquare;
    double min = std::numeric_limits<double>::infinity();
    double max = -std::numeric_limits<double>::infinity();
    Eigen::MatrixXd hessian;
};

Reference direct(const Activations &a)
{
    Reference r;
    r.absMax.assign(size_t(a.cols), 0.0f);
    r.sumAbs.assign(size_t(a.cols), 0.0);
    r.sumSquare.assign(size_t(a.cols), 0.0);
    // Plain loops over a plain array: the obvious reference, and fast in a sanitizer build.
    const size_t n = size_t(a.cols);
    std::vector<double> h(n * n, 0.0);
    for (int64_t t = 0; t < a.tokens; ++t) {
        const float *row = a.x.data() + t * a.cols;
        for (size_t i = 0; i < n; ++i) {
            const double v = row[i];
            r.absMax[i] = std::max(r.absMax[i], std::fabs(row[i]));
            r.sumAbs[i] += std::fabs(v);
            r.sumSquare[i] += v * v;
            r.min = std::min(r.min, v);
            r.max = std::max(r.max, v);
            double *hi = h.data() + i * n;
            for (size_t j = 0; j < n; ++j)
                hi[j] += v * double(row[j]);
        }
    }
    r.hessian = Eigen::Map<const Eigen::MatrixXd>(h.data(), a.cols, a.cols); // symmetric: layout is moot
    return r;
}

// Counts with half-open bins [e_i, e_{i+1}) read from the edges the result reports.
std::vector<uint64_t> binDirectly(const std::vector<float> &values, const std::vector<double> &edges)
{
    std::vector<uint64_t> counts(edges.size() - 1, 0);
    for (float v : values) {
        const auto it = std::upper_bound(edges.begin(), edges.end(), double(v));
        const long i = long(it - edges.begin()) - 1;
        if (i < 0 || i >= long(counts.size()))
            return {}; // a value outside the range: the caller's QCOMPARE fails
        ++counts[size_t(i)];
    }
    return counts;
}

double smallestPowerOfTwoAbove(double v)
{
    double r = 1.0;
    while (r <= v)
        r *= 2.0;
    while (r / 2.0 > v)
        r /= 2.0;
    return r;
}

} // namespace

class TestActivationStats : public QObject
{
    Q_OBJECT
private slots:
    void histogramRejectsBadBinCounts()
    {
        QVERIFY_THROWS_EXCEPTION(Error, DoublingHistogram(6));
        QVERIFY_THROWS_EXCEPTION(Error, DoublingHistogram(0));
        ActivationStatsOptions o;
        o.histogramBins = 10;
        QVERIFY_THROWS_EXCEPTION(Error, ActivationStatsCollector { o });
    }

    void histogramRangeIsAStrictPowerOfTwo()
    {
        DoublingHistogram h(8);
        h.add(0.0); // zeros before any range go to bin B/2
        h.add(0.0);
        QCOMPARE(h.range(), 0.0);
        h.add(0.9);
        QCOMPARE(h.range(), 1.0);
        QCOMPARE(h.counts()[4], uint64_t(2));
        h.add(1.0); // |v| == R is outside [-R, R): doubles
        QCOMPARE(h.range(), 2.0);
        h.add(-1.5); // bins of width 0.5 over [-2, 2): [-1.5, -1) is bin 1
        QCOMPARE(h.range(), 2.0);
        QCOMPARE(h.counts()[1], uint64_t(1));
        QCOMPARE(h.total(), uint64_t(5));
        const std::vector<double> e = h.edges();
        QCOMPARE(e.front(), -2.0);
        QCOMPARE(e.back(), 2.0);
        QCOMPARE(e[4], 0.0);
    }

    void histogramDoublingEqualsDirectBinning()
    {
        // Values arrive with growing magnitude, so the range doubles many times (by one and by several
        // octaves at once); the merged counts must equal binning everything at the final range.
        std::mt19937_64 rng(3);
        std::vector<float> values;
        DoublingHistogram h(64);
        double scale = 0.01;
        for (int step = 0; step < 12; ++step) {
            for (int i = 0; i < 200; ++i) {
                const double u = double(rng() >> 11) * 0x1.0p-53 * 2.0 - 1.0;
                const float v = float(u * scale);
                values.push_back(v);
                h.add(v);
            }
            scale *= (step % 3 == 0) ? 9.0 : 1.7;
        }
        values.push_back(0.0f);
        h.add(0.0);
        double absMax = 0.0;
        for (float v : values)
            absMax = std::max(absMax, double(std::fabs(v)));
        QCOMPARE(h.range(), smallestPowerOfTwoAbove(absMax));
        QCOMPARE(h.total(), uint64_t(values.size()));
        QCOMPARE(h.counts(), binDirectly(values, h.edges()));
    }

    void everyStatisticMatchesDirectComputation()
    {
        // 150 columns: two full column blocks of 64 and a partial one. Planted outliers (median channel
        // absmax is about 8, threshold about 160 with k = 20):
        //   channel 5: 200 on every tenth token; channel 77: 300 once and 170 on every 25th token;
        //   channel 140: at least 165 on every token; channel 99: 150 everywhere (below the threshold).
        Activations a = dyadic(385, 150, 11);
        for (int64_t t = 0; t < a.tokens; ++t) {
            if (t % 10 == 3)
                a.at(t, 5) = 200.0f;
            if (t % 25 == 0)
                a.at(t, 77) = -170.0f;
            a.at(t, 140) = 165.0f + float(t % 7) / 16.0f;
            a.at(t, 99) = 150.0f;
        }
        a.at(201, 77) = 300.0f;

        ActivationStatsOptions o;
        o.collectHessians = true;
        ActivationStatsCollector c(o);
        feed(c, 2, LinearInput::MlpAct, a, { 1, 13, 64, 7, 300 });
        const std::vector<InputActivationStats> all = c.results();
        QCOMPARE(all.size(), size_t(1));
        const InputActivationStats &s = all[0];
        const Reference r = direct(a);

        QCOMPARE(s.block, 2);
        QCOMPARE(s.input, LinearInput::MlpAct);
        QCOMPARE(s.cols, int64_t(150));
        QCOMPARE(s.tokens, uint64_t(385));
        QCOMPARE(s.nonFiniteTokens, uint64_t(0));
        QCOMPARE(s.min, r.min);
        QCOMPARE(s.max, r.max);
        QCOMPARE(s.absMax, std::max(-r.min, r.max));
        QCOMPARE(s.channelAbsMax, r.absMax);
        for (size_t j = 0; j < 150; ++j) {
            // Exact: dyadic sums do not round, and both sides divide the same sum by the same count.
            QVERIFY(s.channelMeanAbs[j] == r.sumAbs[j] / 385.0);
            QVERIFY(s.channelMeanSquare[j] == r.sumSquare[j] / 385.0);
        }
        QVERIFY(s.hasHessian);
        QCOMPARE(s.hessian.rows(), Eigen::Index(150));
        QVERIFY(s.hessian == r.hessian); // exactly Σ x xᵀ, both triangles

        // Histogram: every value counted once, in the bin the final range puts it in.
        QCOMPARE(s.histogramRange, smallestPowerOfTwoAbove(300.0));
        QCOMPARE(s.histogramRange, 512.0);
        QCOMPARE(s.histogramCounts, binDirectly(a.x, s.histogramEdges()));

        // Outliers: the same rule on the directly computed maxima, and exact token shares.
        const ChannelOutliers expected = findOutlierChannels(r.absMax, 20.0);
        QCOMPARE(s.outlierFactor, 20.0);
        QCOMPARE(s.outlierMedian, expected.median);
        QCOMPARE(s.outlierThreshold, expected.threshold);
        QCOMPARE(s.outlierChannels, (std::vector<int> { 5, 77, 140 }));
        QVERIFY(s.outlierShareExact);
        QCOMPARE(s.outlierTokenShare.size(), size_t(3));
        for (size_t k = 0; k < 3; ++k) {
            const int ch = s.outlierChannels[k];
            int64_t above = 0;
            for (int64_t t = 0; t < a.tokens; ++t)
                above += std::fabs(double(a.at(t, ch))) > expected.threshold ? 1 : 0;
            QCOMPARE(s.outlierTokenShare[k], double(above) / 385.0);
        }
        QCOMPARE(s.outlierTokenShare[2], 1.0);
        QCOMPARE(s.outlierTokenShare[0], 39.0 / 385.0);
        QCOMPARE(s.outlierTokenShare[1], 17.0 / 385.0); // 16 × 170 and the 300

        QCOMPARE(s.layers(), (std::vector<std::string> { "model.layers.2.mlp.down_proj" }));
    }

    void realValuedInputsWithinRoundOff()
    {
        // Non-dyadic values: sums round differently in a different order, so compare with a tolerance.
        // 300 tokens cross a Hessian slab (256); 130 columns give partial column blocks and Hessian tiles.
        const Activations a = gaussianish(300, 130, 5);
        ActivationStatsOptions o;
        o.collectHessians = true;
        ActivationStatsCollector c(o);
        feed(c, 0, LinearInput::AttnIn, a, { 17, 283 });
        const InputActivationStats s = c.results().at(0);
        const Reference r = direct(a);
        QCOMPARE(s.channelAbsMax, r.absMax); // maxima are exact in any order
        for (size_t j = 0; j < 130; ++j) {
            QVERIFY(std::fabs(s.channelMeanAbs[j] - r.sumAbs[j] / 300.0) <= 1e-12 * (r.sumAbs[j] / 300.0));
            QVERIFY(std::fabs(s.channelMeanSquare[j] - r.sumSquare[j] / 300.0) <= 1e-12 * (r.sumSquare[j] / 300.0));
        }
        const double scale = r.hessian.cwiseAbs().maxCoeff();
        QVERIFY((s.hessian - r.hessian).cwiseAbs().maxCoeff() <= 1e-12 * scale);
        QVERIFY(s.hessian == s.hessian.transpose()); // symmetric exactly
        QCOMPARE(s.histogramCounts, binDirectly(a.x, s.histogramEdges()));
    }

    void resultsDoNotDependOnThreadCount()
    {
        const Activations a = gaussianish(300, 260, 9);
        const auto run = [&](int threads) {
            const int before = omp_get_max_threads();
            omp_set_num_threads(threads);
            ActivationStatsOptions o;
            o.collectHessians = true;
            ActivationStatsCollector c(o);
            // 280 × 260 values: above the size where the passes go parallel (and the Hessian's first slab
            // too); the 20-row tail runs on the calling thread.
            feed(c, 1, LinearInput::MlpIn, a, { 280, 20 });
            omp_set_num_threads(before);
            return c.takeResults().at(0);
        };
        const InputActivationStats one = run(1);
        const InputActivationStats three = run(3);
        QCOMPARE(one.channelAbsMax, three.channelAbsMax);
        QVERIFY(one.channelMeanAbs == three.channelMeanAbs);
        QVERIFY(one.channelMeanSquare == three.channelMeanSquare);
        QCOMPARE(one.histogramCounts, three.histogramCounts);
        QVERIFY(one.hessian == three.hessian);
        QCOMPARE(one.outlierChannels, three.outlierChannels);
        // And the parallel paths agree with the reference.
        const Reference r = direct(a);
        QCOMPARE(three.channelAbsMax, r.absMax);
        for (size_t j = 0; j < 260; ++j)
            QVERIFY(std::fabs(three.channelMeanSquare[j] - r.sumSquare[j] / 300.0) <= 1e-12 * (r.sumSquare[j] / 300.0));
        QVERIFY((three.hessian - r.hessian).cwiseAbs().maxCoeff() <= 1e-12 * r.hessian.cwiseAbs().maxCoeff());
        QCOMPARE(three.histogramCounts, binDirectly(a.x, three.histogramEdges()));
    }

    void outlierSharesStayExactAcrossPruning()
    {
        // The running threshold starts low (chunk A records many values) and then rises (chunk B), so the
        // budget forces a prune; what is left fits and the shares stay exact.
        const int64_t cols = 100;
        Activations a { 80, cols, std::vector<float>(size_t(80 * cols), 0.0f) };
        for (int64_t t = 0; t < 40; ++t)
            for (int64_t c = 0; c < cols; ++c)
                a.at(t, c) = (c < 10) ? 6.0f : ((t + c) % 2 ? 0.25f : -0.25f); // T_run = 5: 400 values kept
        for (int64_t t = 40; t < 80; ++t)
            for (int64_t c = 0; c < cols; ++c)
                a.at(t, c) = (c >= 50 && c < 55) ? 30.0f : ((t + c) % 2 ? 1.0f : -1.0f); // T_run = 20
        ActivationStatsOptions o;
        o.exceedanceBudget = 500; // 400 + 200 > 500: prune to 200 <= 250, no switch to bins
        ActivationStatsCollector c(o);
        feed(c, 0, LinearInput::AttnOut, a, { 40 });
        const InputActivationStats s = c.results().at(0);
        QCOMPARE(s.outlierThreshold, 20.0);
        QCOMPARE(s.outlierChannels, (std::vector<int> { 50, 51, 52, 53, 54 }));
        QVERIFY(s.outlierShareExact);
        for (double share : s.outlierTokenShare)
            QCOMPARE(share, 0.5);
    }

    void binnedSharesWhenOverBudget()
    {
        // A budget of 0 forces log-spaced bins at once: shares are estimates, flagged as such, and within
        // one bin's count of the exact value.
        Activations a = dyadic(400, 64, 21);
        for (int64_t t = 0; t < a.tokens; ++t) {
            a.at(t, 3) = 100.0f + float(t % 200); // spans the threshold (about 158)
            a.at(t, 9) = (t % 4 == 0) ? 400.0f : 1.0f;
        }
        ActivationStatsOptions exactOptions;
        ActivationStatsCollector exact(exactOptions);
        ActivationStatsOptions binnedOptions;
        binnedOptions.exceedanceBudget = 0;
        ActivationStatsCollector binned(binnedOptions);
        feed(exact, 4, LinearInput::AttnIn, a, { 50, 9 });
        feed(binned, 4, LinearInput::AttnIn, a, { 50, 9 });
        const InputActivationStats e = exact.results().at(0);
        const InputActivationStats b = binned.results().at(0);
        QVERIFY(e.outlierShareExact);
        QVERIFY(!b.outlierShareExact);
        QCOMPARE(b.outlierChannels, e.outlierChannels);
        QCOMPARE(e.outlierChannels, (std::vector<int> { 3, 9 }));
        QCOMPARE(b.outlierTokenShare[1], 0.25); // every exceedance far above the threshold: exact anyway
        QCOMPARE(e.outlierTokenShare[1], 0.25);
        // Channel 3: values 100..299, two tokens each; one 1/16-octave bin around ~158 holds at most
        // 158 · (2^(1/16) - 1) ≈ 7 distinct values, i.e. 14 tokens.
        QVERIFY2(std::fabs(b.outlierTokenShare[0] - e.outlierTokenShare[0]) <= 14.0 / 400.0,
            qPrintable(QString::number(b.outlierTokenShare[0]) + QLatin1String(" vs ")
                + QString::number(e.outlierTokenShare[0])));
    }

    void nonFiniteRowsAreSkipped()
    {
        Activations a = dyadic(50, 20, 4);
        Activations finite { 0, 20, {} };
        a.at(7, 3) = std::numeric_limits<float>::quiet_NaN();
        a.at(31, 19) = -std::numeric_limits<float>::infinity();
        for (int64_t t = 0; t < a.tokens; ++t)
            if (t != 7 && t != 31) {
                finite.x.insert(finite.x.end(), a.x.begin() + t * 20, a.x.begin() + (t + 1) * 20);
                ++finite.tokens;
            }
        ActivationStatsOptions o;
        o.collectHessians = true;
        ActivationStatsCollector c(o);
        feed(c, 0, LinearInput::MlpIn, a, { 8, 30, 12 });
        const InputActivationStats s = c.results().at(0);
        const Reference r = direct(finite);
        QCOMPARE(s.tokens, uint64_t(48));
        QCOMPARE(s.nonFiniteTokens, uint64_t(2));
        QCOMPARE(s.channelAbsMax, r.absMax);
        for (size_t j = 0; j < 20; ++j)
            QVERIFY(s.channelMeanSquare[j] == r.sumSquare[j] / 48.0);
        QVERIFY(s.hessian == r.hessian);
        QVERIFY(std::isfinite(s.min) && std::isfinite(s.max));

        // A chunk of nothing but non-finite rows still counts them.
        const float bad[4] = { std::numeric_limits<float>::infinity(), 0, 0, 0 };
        ActivationStatsCollector c2;
        c2.onLinearInput(0, LinearInput::AttnIn, bad, 1, 4);
        const InputActivationStats s2 = c2.results().at(0);
        QCOMPARE(s2.tokens, uint64_t(0));
        QCOMPARE(s2.nonFiniteTokens, uint64_t(1));
        QVERIFY(s2.outlierChannels.empty() || s2.outlierTokenShare.size() == s2.outlierChannels.size());
    }

    void selectionAndErrors()
    {
        ActivationStatsOptions o;
        o.blocks = { 0, 2, -1 };
        o.collectHessians = true;
        o.hessianBlocks = { 2 };
        o.hessianInputs = { LinearInput::MlpAct };
        ActivationStatsCollector c(o);
        QVERIFY(c.wantsBlock(0));
        QVERIFY(!c.wantsBlock(1));
        QVERIFY(c.wantsBlock(-1));
        QVERIFY(c.wantsHessian(2, LinearInput::MlpAct));
        QVERIFY(!c.wantsHessian(2, LinearInput::MlpIn));
        QVERIFY(!c.wantsHessian(0, LinearInput::MlpAct));

        HyperParams hp;
        hp.hiddenSize = 64;
        hp.intermediateSize = 172;
        hp.numLayers = 4;
        hp.numHeads = 4;
        QCOMPARE(c.hessianBytes(hp), uint64_t(172 * 172 * 8));

        const Activations small = dyadic(5, 8, 1);
        const Activations wide = dyadic(5, 16, 1);
        c.onLinearInput(-1, LinearInput::Head, small.x.data(), 5, 8);
        for (int block : { 2, 1, 0 }) {
            c.onLinearInput(block, LinearInput::MlpAct, wide.x.data(), 5, 16);
            c.onLinearInput(block, LinearInput::AttnIn, small.x.data(), 5, 8);
        }
        QVERIFY_THROWS_EXCEPTION(Error, c.onLinearInput(0, LinearInput::AttnIn, wide.x.data(), 5, 16));
        QVERIFY_THROWS_EXCEPTION(Error, c.onLinearInput(0, LinearInput::AttnOut, small.x.data(), 5, 0));

        const std::vector<InputActivationStats> r = c.results();
        // Block 1 was not selected; order is by block with the lm_head input last, then by input.
        QCOMPARE(r.size(), size_t(5));
        QCOMPARE(r[0].block, 0);
        QCOMPARE(r[0].input, LinearInput::AttnIn);
        QCOMPARE(r[1].input, LinearInput::MlpAct);
        QCOMPARE(r[2].block, 2);
        QCOMPARE(r[3].block, 2);
        QCOMPARE(r[4].block, -1);
        QCOMPARE(r[4].input, LinearInput::Head);
        QCOMPARE(r[4].layers(), (std::vector<std::string> { "lm_head" }));
        QCOMPARE(r[0].layers().size(), size_t(3));
        QVERIFY(!r[1].hasHessian);
        QVERIFY(r[3].hasHessian);
        QCOMPARE(r[3].hessian.rows(), Eigen::Index(16));

        const std::vector<InputActivationStats> taken = c.takeResults();
        QCOMPARE(taken.size(), size_t(5));
        QVERIFY(taken[3].hessian == r[3].hessian);
        QVERIFY(c.results().empty());
    }

    void summaryJson()
    {
        Activations a = dyadic(100, 40, 8);
        for (int64_t t = 0; t < a.tokens; ++t) {
            a.at(t, 12) = 400.0f;
            if (t % 2 == 0)
                a.at(t, 30) = -250.0f;
        }
        ActivationStatsCollector c;
        feed(c, 3, LinearInput::AttnIn, a, { 100 });
        const ActivationSummary m = summarizeActivations(c.results().at(0));
        QCOMPARE(m.outlierCount, 2);
        QCOMPARE(m.topOutliers.size(), size_t(2));
        QCOMPARE(m.topOutliers[0].channel, 12); // largest absmax first
        QCOMPARE(m.topOutliers[1].channel, 30);
        QCOMPARE(m.topOutliers[1].tokenShare, 0.5);
        const nlohmann::json j = m.toJson();
        for (const char *key : { "block", "input", "layers", "cols", "tokens", "non_finite_tokens", "min", "max",
                 "absmax", "mean_abs", "rms", "median_channel_absmax", "outlier_factor", "outlier_threshold",
                 "outlier_count", "top_outliers", "outlier_share_exact", "hessian" })
            QVERIFY2(j.contains(key), key);
        QCOMPARE(j["input"].get<std::string>(), std::string("attn_in"));
        QCOMPARE(j["layers"][0].get<std::string>(), std::string("model.layers.3.self_attn.q_proj"));
        QCOMPARE(j["top_outliers"][0]["channel"].get<int>(), 12);
        QCOMPARE(j["absmax"].get<double>(), 400.0);
        double sq = 0.0;
        for (float v : a.x)
            sq += double(v) * v;
        QVERIFY(std::fabs(m.rms - std::sqrt(sq / double(a.x.size()))) < 1e-9 * m.rms);
    }
};

QTEST_GUILESS_MAIN(TestActivationStats)
#include "tst_activationstats.moc"
