// Weight statistics against a slow obvious reference computed here in double, thread-count independence,
// non-finite values, constant tensors, progress and cancellation.
#include <QTest>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include <omp.h>

#include "VectorTensorData.h"
#include "common/Error.h"
#include "common/Progress.h"
#include "model/Model.h"
#include "stats/WeightStats.h"

using namespace qs::core;

namespace {

// Moments from the merged chunks against a plain double loop: both are double, so only rounding order
// differs. Relative to the quantity (or to σ for the mean, which may be near 0).
constexpr double kMomentTolerance = 1e-10;
// 1 thread against several: chunks are merged in a fixed order, so the design gives identical bits; the
// tolerance only states what the GUI may rely on.
constexpr double kThreadTolerance = 0.0;

using VectorTensorData = qs::test::VectorTensorData;

Tensor makeTensor(const std::string &name, int64_t rows, int64_t cols, std::vector<float> values)
{
    Tensor t;
    t.name = name;
    t.sourceName = name + ".weight";
    t.role = TensorRole::Q;
    t.rows = rows;
    t.cols = cols;
    t.storedBytes = uint64_t(rows * cols) * 4;
    t.data = std::make_shared<VectorTensorData>(std::move(values), cols);
    return t;
}

std::unique_ptr<Model> makeModel(std::vector<Tensor> tensors)
{
    auto m = std::make_unique<Model>();
    m->format = "test";
    m->path = "in-memory";
    m->tensors = std::move(tensors);
    return m;
}

// Gaussian bulk with a few planted large values, optionally NaN/Inf sprinkled in.
std::vector<float> sampleValues(int64_t n, uint32_t seed, bool nonFinite)
{
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal(0.01f, 0.05f);
    std::uniform_int_distribution<int64_t> pos(0, std::max<int64_t>(n - 1, 0));
    std::vector<float> v(static_cast<size_t>(n));
    for (float &x : v)
        x = normal(gen);
    for (int i = 0; i < int(n / 50) + 1 && n > 0; ++i)
        v[size_t(pos(gen))] *= (i % 2 ? -25.0f : 30.0f);
    if (n > 0 && n % 7 != 0)
        v[size_t(pos(gen))] = 0.0f;
    if (nonFinite && n > 3) {
        v[size_t(pos(gen))] = std::numeric_limits<float>::quiet_NaN();
        v[size_t(pos(gen))] = std::numeric_limits<float>::infinity();
        v[size_t(pos(gen))] = -std::numeric_limits<float>::infinity();
    }
    return v;
}

struct Reference
{
    uint64_t count = 0, nan = 0, inf = 0, zero = 0;
    double min = 0, max = 0, mean = 0, stddev = 0, skew = 0, kurt = 0;
    std::vector<double> rowAbs, colAbs;
};

Reference reference(const std::vector<float> &v, int64_t rows, int64_t cols)
{
    Reference r;
    r.rowAbs.assign(size_t(rows), 0.0);
    r.colAbs.assign(size_t(cols), 0.0);
    double sum = 0;
    r.min = std::numeric_limits<double>::infinity();
    r.max = -r.min;
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
            const double x = v[size_t(i * cols + j)];
            if (std::isnan(x)) {
                ++r.nan;
                continue;
            }
            if (std::isinf(x)) {
                ++r.inf;
                continue;
            }
            ++r.count;
            r.zero += x == 0.0;
            sum += x;
            r.min = std::min(r.min, x);
            r.max = std::max(r.max, x);
            r.rowAbs[size_t(i)] = std::max(r.rowAbs[size_t(i)], std::fabs(x));
            r.colAbs[size_t(j)] = std::max(r.colAbs[size_t(j)], std::fabs(x));
        }
    if (r.count == 0)
        return r;
    const double n = double(r.count);
    r.mean = sum / n;
    double m2 = 0, m3 = 0, m4 = 0;
    for (const float f : v) {
        if (!std::isfinite(f))
            continue;
        const double d = double(f) - r.mean;
        m2 += d * d;
        m3 += d * d * d;
        m4 += d * d * d * d;
    }
    r.stddev = std::sqrt(m2 / n);
    if (m2 > 0) {
        r.skew = std::sqrt(n) * m3 / std::pow(m2, 1.5);
        r.kurt = n * m4 / (m2 * m2) - 3.0;
    }
    return r;
}

// The documented bin rule, written out independently.
int64_t binOf(double y, double lo, double hi, int bins)
{
    const int64_t b = int64_t(std::floor((y - lo) * (double(bins) / (hi - lo))));
    return std::clamp<int64_t>(b, 0, bins - 1);
}

bool closeRel(double a, double b, double tol, double scale = 0.0)
{
    return std::fabs(a - b) <= tol * std::max({ std::fabs(a), std::fabs(b), scale, 1e-300 });
}

// Records totals and can cancel after a number of advances.
class RecordingProgress final : public Progress
{
public:
    explicit RecordingProgress(int cancelAfter = -1)
        : m_cancelAfter(cancelAfter)
    { }
    void setTotal(double total) override
    {
        m_total = total;
        ++m_setTotalCalls;
        m_done = 0;
    }
    void advance(double amount) override
    {
        double d = m_done.load();
        while (!m_done.compare_exchange_weak(d, d + amount)) { }
        m_advances.fetch_add(1);
    }
    void message(std::string_view) override { }
    bool isCancelled() const override { return m_cancelAfter >= 0 && m_advances.load() >= m_cancelAfter; }

    double total() const { return m_total; }
    double done() const { return m_done.load(); }
    int setTotalCalls() const { return m_setTotalCalls; }

private:
    int m_cancelAfter;
    double m_total = 0;
    int m_setTotalCalls = 0;
    std::atomic<double> m_done { 0 };
    std::atomic<int> m_advances { 0 };
};

void compareStatsExactly(const WeightStats &a, const WeightStats &b)
{
    auto same = [](double x, double y) { return x == y || std::fabs(x - y) <= kThreadTolerance * std::fabs(x); };
    QCOMPARE(a.count, b.count);
    QCOMPARE(a.nanCount, b.nanCount);
    QCOMPARE(a.infCount, b.infCount);
    QVERIFY(same(a.min, b.min));
    QVERIFY(same(a.max, b.max));
    QVERIFY(same(a.mean, b.mean));
    QVERIFY(same(a.stddev, b.stddev));
    QVERIFY(same(a.skewness, b.skewness));
    QVERIFY(same(a.kurtosis, b.kurtosis));
    QVERIFY(a.linearHistogram.counts == b.linearHistogram.counts);
    QVERIFY(a.symlogHistogram.counts == b.symlogHistogram.counts);
    QCOMPARE(a.outlierCount, b.outlierCount);
    QCOMPARE(a.topOutliers.size(), b.topOutliers.size());
    for (size_t i = 0; i < a.topOutliers.size(); ++i) {
        QCOMPARE(a.topOutliers[i].row, b.topOutliers[i].row);
        QCOMPARE(a.topOutliers[i].col, b.topOutliers[i].col);
    }
    QVERIFY(a.rowAbsMax == b.rowAbsMax);
    QVERIFY(a.colAbsMax == b.colAbsMax);
}

} // namespace

class TestWeightStats : public QObject
{
    Q_OBJECT
private slots:
    void matchesReference_data()
    {
        QTest::addColumn<int>("rows");
        QTest::addColumn<int>("cols");
        QTest::addColumn<int>("chunkElements");
        QTest::addColumn<bool>("nonFinite");
        QTest::addColumn<double>("sigma");
        QTest::addColumn<int>("bins");
        QTest::newRow("1x1") << 1 << 1 << 65536 << false << 6.0 << 256;
        QTest::newRow("1x7 vector") << 1 << 7 << 65536 << false << 2.0 << 16;
        QTest::newRow("3x5 one row per chunk") << 3 << 5 << 1 << false << 2.0 << 7;
        QTest::newRow("17x33 chunks of 2 rows") << 17 << 33 << 70 << false << 6.0 << 256;
        QTest::newRow("64x200 default chunks") << 64 << 200 << 65536 << false << 6.0 << 256;
        QTest::newRow("64x200 many chunks") << 64 << 200 << 400 << false << 3.0 << 64;
        QTest::newRow("257x31 nan/inf") << 257 << 31 << 100 << true << 6.0 << 256;
        QTest::newRow("5x1000 wide rows") << 5 << 1000 << 10 << true << 4.0 << 1;
        QTest::newRow("1x4096 norm-like") << 1 << 4096 << 65536 << true << 6.0 << 4096;
    }
    void matchesReference()
    {
        QFETCH(int, rows);
        QFETCH(int, cols);
        QFETCH(int, chunkElements);
        QFETCH(bool, nonFinite);
        QFETCH(double, sigma);
        QFETCH(int, bins);
        const std::vector<float> values = sampleValues(int64_t(rows) * cols, uint32_t(rows * 131 + cols), nonFinite);
        const auto model = makeModel({ makeTensor("t", rows, cols, values) });
        StatsOptions o;
        o.chunkElements = chunkElements;
        o.outlierSigma = sigma;
        o.histogramBins = bins;
        o.topOutliers = 5;
        RecordingProgress progress;
        const WeightStats s = computeWeightStats(*model, model->tensors[0], o, progress);
        const Reference ref = reference(values, rows, cols);

        QCOMPARE(s.name, std::string("t"));
        QCOMPARE(s.rows, int64_t(rows));
        QCOMPARE(s.cols, int64_t(cols));
        QCOMPARE(s.count, ref.count);
        QCOMPARE(s.nanCount, ref.nan);
        QCOMPARE(s.infCount, ref.inf);
        QCOMPARE(s.zeroCount, ref.zero);
        QCOMPARE(s.min, ref.min);
        QCOMPARE(s.max, ref.max);
        QCOMPARE(s.absMax, std::max(std::fabs(ref.min), std::fabs(ref.max)));
        QVERIFY2(closeRel(s.mean, ref.mean, kMomentTolerance, ref.stddev),
            qPrintable(QStringLiteral("mean %1 vs %2").arg(s.mean, 0, 'g', 17).arg(ref.mean, 0, 'g', 17)));
        QVERIFY(closeRel(s.stddev, ref.stddev, kMomentTolerance));
        QVERIFY2(closeRel(s.skewness, ref.skew, kMomentTolerance, 1.0),
            qPrintable(QStringLiteral("skew %1 vs %2").arg(s.skewness, 0, 'g', 17).arg(ref.skew, 0, 'g', 17)));
        QVERIFY2(closeRel(s.kurtosis, ref.kurt, kMomentTolerance, 1.0),
            qPrintable(QStringLiteral("kurt %1 vs %2").arg(s.kurtosis, 0, 'g', 17).arg(ref.kurt, 0, 'g', 17)));

        // Per-channel absmax over finite values.
        QCOMPARE(s.rowAbsMax.size(), size_t(rows));
        QCOMPARE(s.colAbsMax.size(), size_t(cols));
        for (int i = 0; i < rows; ++i)
            QCOMPARE(double(s.rowAbsMax[size_t(i)]), ref.rowAbs[size_t(i)]);
        for (int j = 0; j < cols; ++j)
            QCOMPARE(double(s.colAbsMax[size_t(j)]), ref.colAbs[size_t(j)]);

        // Histograms: ranges from min/max, every finite value in exactly the bin of the documented rule.
        QCOMPARE(s.linearHistogram.counts.size(), size_t(bins));
        QCOMPARE(s.symlogHistogram.counts.size(), size_t(bins));
        if (ref.min < ref.max) {
            QCOMPARE(s.linearHistogram.lo, ref.min);
            QCOMPARE(s.linearHistogram.hi, ref.max);
        }
        if (ref.stddev > 0)
            QVERIFY(closeRel(s.symlogHistogram.scale, ref.stddev / 16.0, kMomentTolerance));
        else
            QCOMPARE(s.symlogHistogram.scale, ref.mean != 0 ? std::fabs(ref.mean) / 16.0 : 1.0);
        const double c = s.symlogHistogram.scale;
        auto symlog = [c](double x) { return (x < 0 ? -1.0 : 1.0) * std::log1p(std::fabs(x) / c); };
        if (ref.min < ref.max) {
            QCOMPARE(s.symlogHistogram.lo, symlog(ref.min));
            QCOMPARE(s.symlogHistogram.hi, symlog(ref.max));
        }
        // Symmetric-log edges by the documented formula; bin = interior edges <= x.
        std::vector<double> edges;
        const double w = (s.symlogHistogram.hi - s.symlogHistogram.lo) / bins;
        for (int i = 0; i <= bins; ++i) {
            const double y = s.symlogHistogram.lo + i * w;
            edges.push_back((y < 0 ? -1.0 : 1.0) * c * std::expm1(std::fabs(y)));
        }
        QVERIFY(edges == histogramEdges(s.symlogHistogram));
        auto symlogBin = [&](double x) {
            int64_t n = 0;
            for (int i = 1; i < bins; ++i)
                n += edges[size_t(i)] <= x;
            return n;
        };
        std::vector<uint64_t> lin(size_t(bins), 0), lg(size_t(bins), 0);
        for (const float f : values) {
            if (!std::isfinite(f))
                continue;
            if (ref.min == ref.max) { // degenerate range: the middle bin
                ++lin[size_t(bins / 2)];
                ++lg[size_t(bins / 2)];
                continue;
            }
            ++lin[size_t(binOf(f, s.linearHistogram.lo, s.linearHistogram.hi, bins))];
            ++lg[size_t(symlogBin(f))];
            // The edges agree with transforming the value, except within rounding of an edge.
            const int64_t viaTransform = binOf(symlog(f), s.symlogHistogram.lo, s.symlogHistogram.hi, bins);
            QVERIFY(std::abs(viaTransform - symlogBin(f)) <= 1);
        }
        QVERIFY(s.linearHistogram.counts == lin);
        QVERIFY(s.symlogHistogram.counts == lg);
        uint64_t sum = 0;
        for (const uint64_t n : s.linearHistogram.counts)
            sum += n;
        QCOMPARE(sum, ref.count);
        // The inverse transform gives back the range ends (axis labels).
        if (ref.min < ref.max)
            QVERIFY(closeRel(symlogInverse(s.symlogHistogram.hi, c), ref.max, 1e-12, ref.stddev));

        // Outliers: |x - mean| > k·σ, strongest first, ties by position.
        struct Pos
        {
            double dev;
            int64_t row, col;
            float value;
        };
        std::vector<Pos> outliers;
        for (int64_t i = 0; i < rows; ++i)
            for (int64_t j = 0; j < cols; ++j) {
                const float f = values[size_t(i * cols + j)];
                if (!std::isfinite(f))
                    continue;
                const double dev = std::fabs(double(f) - ref.mean);
                if (ref.stddev > 0 && dev > sigma * ref.stddev)
                    outliers.push_back({ dev, i, j, f });
            }
        std::sort(outliers.begin(), outliers.end(), [](const Pos &a, const Pos &b) {
            return a.dev != b.dev ? a.dev > b.dev : (a.row != b.row ? a.row < b.row : a.col < b.col);
        });
        QCOMPARE(s.outlierCount, uint64_t(outliers.size()));
        QCOMPARE(s.outlierSigma, sigma);
        QVERIFY(closeRel(s.outlierThreshold, sigma * ref.stddev, kMomentTolerance));
        QVERIFY(closeRel(s.outlierFraction, ref.count ? double(outliers.size()) / double(ref.count) : 0.0, 1e-15));
        QCOMPARE(s.topOutliers.size(), std::min<size_t>(outliers.size(), 5));
        for (size_t i = 0; i < s.topOutliers.size(); ++i) {
            QCOMPARE(s.topOutliers[i].row, outliers[i].row);
            QCOMPARE(s.topOutliers[i].col, outliers[i].col);
            QCOMPARE(s.topOutliers[i].value, outliers[i].value);
        }

        // Progress covers both passes exactly once.
        QCOMPARE(progress.setTotalCalls(), 1);
        QCOMPARE(progress.total(), 2.0 * rows * cols);
        QCOMPARE(progress.done(), progress.total());
    }

    void sameResultForAnyThreadCount()
    {
        const int rows = 96, cols = 130;
        const std::vector<float> values = sampleValues(rows * cols, 99, true);
        const auto model = makeModel({ makeTensor("t", rows, cols, values) });
        StatsOptions o;
        o.chunkElements = 500; // many chunks, so several threads really share the work
        o.outlierSigma = 3.0;
        const int saved = omp_get_max_threads();
        NullProgress progress;
        omp_set_num_threads(1);
        const WeightStats one = computeWeightStats(*model, model->tensors[0], o, progress);
        for (int threads : { 2, 3, 8 }) {
            omp_set_num_threads(threads);
            const WeightStats many = computeWeightStats(*model, model->tensors[0], o, progress);
            compareStatsExactly(one, many);
        }
        omp_set_num_threads(saved);
        QVERIFY(one.outlierCount > 5); // the comparison covered outlier positions too
    }

    void constantTensor()
    {
        const int rows = 9, cols = 11;
        const auto model = makeModel({ makeTensor("c", rows, cols, std::vector<float>(rows * cols, 0.1f)) });
        StatsOptions o;
        o.chunkElements = 20;
        o.histogramBins = 10;
        NullProgress progress;
        const WeightStats s = computeWeightStats(*model, model->tensors[0], o, progress);
        QCOMPARE(s.count, uint64_t(rows * cols));
        QCOMPARE(s.mean, double(0.1f)); // exact, not 0.1f ± rounding of the merge
        QCOMPARE(s.stddev, 0.0);
        QCOMPARE(s.skewness, 0.0);
        QCOMPARE(s.kurtosis, 0.0);
        QCOMPARE(s.outlierCount, uint64_t(0));
        QCOMPARE(s.outlierFraction, 0.0);
        QVERIFY(s.topOutliers.empty());
        QCOMPARE(s.outlierThreshold, 0.0);
        // Degenerate range widened around the value: everything in the middle bin.
        QVERIFY(s.linearHistogram.lo < 0.1f && s.linearHistogram.hi > 0.1f);
        QCOMPARE(s.linearHistogram.counts[5], uint64_t(rows * cols));
        QCOMPARE(s.symlogHistogram.counts[5], uint64_t(rows * cols));
        QVERIFY(std::isfinite(s.symlogHistogram.scale) && s.symlogHistogram.scale > 0);
        QCOMPARE(s.colAbsMax[3], 0.1f);
    }

    void zeroAndNonFiniteOnlyTensors()
    {
        NullProgress progress;
        const auto zeros = makeModel({ makeTensor("z", 4, 4, std::vector<float>(16, 0.0f)) });
        const WeightStats z = computeWeightStats(*zeros, zeros->tensors[0], StatsOptions::defaults(), progress);
        QCOMPARE(z.count, uint64_t(16));
        QCOMPARE(z.zeroCount, uint64_t(16));
        QCOMPARE(z.stddev, 0.0);
        QCOMPARE(z.symlogHistogram.scale, 1.0);
        QCOMPARE(z.linearHistogram.counts[128], uint64_t(16));

        std::vector<float> bad(12, std::numeric_limits<float>::quiet_NaN());
        bad[3] = std::numeric_limits<float>::infinity();
        const auto nans = makeModel({ makeTensor("n", 3, 4, bad) });
        RecordingProgress rec;
        const WeightStats n = computeWeightStats(*nans, nans->tensors[0], StatsOptions::defaults(), rec);
        QCOMPARE(n.count, uint64_t(0));
        QCOMPARE(n.nanCount, uint64_t(11));
        QCOMPARE(n.infCount, uint64_t(1));
        QCOMPARE(n.mean, 0.0);
        QCOMPARE(n.outlierFraction, 0.0);
        QCOMPARE(n.rowAbsMax, std::vector<float>(3, 0.0f));
        QCOMPARE(rec.done(), rec.total());
    }

    void cancelThrows()
    {
        const int rows = 200, cols = 50;
        const auto model = makeModel({ makeTensor("t", rows, cols, sampleValues(rows * cols, 5, false)) });
        StatsOptions o;
        o.chunkElements = 100; // 100 chunks per pass
        RecordingProgress progress(/*cancelAfter=*/3);
        QVERIFY_THROWS_EXCEPTION(Cancelled, computeWeightStats(*model, model->tensors[0], o, progress));
        QVERIFY(progress.done() < progress.total());

        RecordingProgress modelProgress(/*cancelAfter=*/150); // during the second pass
        QVERIFY_THROWS_EXCEPTION(Cancelled, computeModelStats(*model, o, modelProgress));
    }

    void readerErrorsPropagate()
    {
        class FailingData final : public TensorData
        {
        public:
            void readRows(int64_t firstRow, int64_t, float *) const override
            {
                if (firstRow >= 6)
                    fail("broken.safetensors", "tensor 'x' is truncated");
            }
        };
        Tensor t = makeTensor("x", 10, 4, std::vector<float>(40, 1.0f));
        t.data = std::make_shared<FailingData>();
        const auto model = makeModel({ t });
        StatsOptions o;
        o.chunkElements = 4;
        NullProgress progress;
        try {
            computeWeightStats(*model, model->tensors[0], o, progress);
            QFAIL("no error");
        } catch (const Error &e) {
            QCOMPARE(QString::fromUtf8(e.what()), QStringLiteral("broken.safetensors: tensor 'x' is truncated"));
        }
    }

    void invalidOptions()
    {
        const auto model = makeModel({ makeTensor("t", 2, 2, { 1, 2, 3, 4 }) });
        NullProgress progress;
        StatsOptions o;
        o.histogramBins = 0;
        QVERIFY_THROWS_EXCEPTION(Error, computeWeightStats(*model, model->tensors[0], o, progress));
        o = StatsOptions::defaults();
        o.outlierSigma = 0.0;
        QVERIFY_THROWS_EXCEPTION(Error, computeWeightStats(*model, model->tensors[0], o, progress));
        o = StatsOptions::defaults();
        o.topOutliers = -1;
        QVERIFY_THROWS_EXCEPTION(Error, computeModelStats(*model, o, progress));
    }

    void modelStatsInTensorOrderAndTiedReuse()
    {
        const std::vector<float> emb = sampleValues(8 * 6, 1, false);
        Tensor embed = makeTensor("model.embed_tokens", 8, 6, emb);
        Tensor norm = makeTensor("model.norm", 1, 6, { 1, 1.1f, 0.9f, 1, 1, 1.2f });
        Tensor head = embed; // tied: same data object
        head.name = "lm_head";
        head.tied = true;
        const auto model = makeModel({ embed, norm, head });
        RecordingProgress progress;
        const std::vector<WeightStats> all = computeModelStats(*model, StatsOptions::defaults(), progress);
        QCOMPARE(all.size(), size_t(3));
        QCOMPARE(all[0].name, std::string("model.embed_tokens"));
        QCOMPARE(all[1].name, std::string("model.norm"));
        QCOMPARE(all[2].name, std::string("lm_head"));
        compareStatsExactly(all[0], all[2]);
        QCOMPARE(progress.setTotalCalls(), 1);
        QCOMPARE(progress.total(), 2.0 * (48 + 6)); // the tied copy is not read again
        QCOMPARE(progress.done(), progress.total());
        NullProgress np;
        compareStatsExactly(all[1], computeWeightStats(*model, model->tensors[1], StatsOptions::defaults(), np));
    }
};

QTEST_GUILESS_MAIN(TestWeightStats)
#include "tst_weightstats.moc"
