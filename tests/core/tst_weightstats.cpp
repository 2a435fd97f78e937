// Weight statistics against a slow obvious reference computed here in double, thread-count independence,
// non-finite values, constant tensors, progress and cancellation. Every case runs on float32 rows from a
// reader (the float path) and on stored F16/BF16 codes (the code-count path), which must agree with the
// same reference and with each other.
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
#include "common/Half.h"
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

// Stored 16-bit floats (F16 or BF16) that expose their bytes like a memory-mapped safetensors tensor. The
// reader may return rows in another order than stored (storedRowOf), like GGUF q/k, and counts the rows it
// converts, so a test can tell which path the statistics took.
class HalfTensorData final : public TensorData
{
public:
    HalfTensorData(std::vector<uint16_t> codes, int64_t cols, bool f16, std::vector<int64_t> storedRowOf = {})
        : m_codes(std::move(codes))
        , m_cols(cols)
        , m_f16(f16)
        , m_storedRowOf(std::move(storedRowOf))
    { }
    void readRows(int64_t firstRow, int64_t rowCount, float *out) const override
    {
        m_rowsRead += rowCount;
        for (int64_t i = 0; i < rowCount; ++i) {
            const int64_t row = firstRow + i;
            const int64_t stored = m_storedRowOf.empty() ? row : m_storedRowOf[size_t(row)];
            for (int64_t c = 0; c < m_cols; ++c) {
                const uint16_t h = m_codes[size_t(stored * m_cols + c)];
                out[i * m_cols + c] = m_f16 ? halfToFloat(h) : bf16ToFloat(h);
            }
        }
    }
    const uint8_t *storedData() const override { return reinterpret_cast<const uint8_t *>(m_codes.data()); }
    int64_t rowsRead() const { return m_rowsRead.load(); }

private:
    std::vector<uint16_t> m_codes;
    int64_t m_cols;
    bool m_f16;
    std::vector<int64_t> m_storedRowOf;
    mutable std::atomic<int64_t> m_rowsRead { 0 };
};

enum class Storage { F32, F16, BF16 };

// values rounded to what storage holds (the reference must see the stored values).
std::vector<float> roundTo(Storage storage, std::vector<float> values)
{
    for (float &x : values) {
        if (storage == Storage::F16)
            x = halfToFloat(floatToHalf(x));
        else if (storage == Storage::BF16)
            x = bf16ToFloat(floatToBf16(x));
    }
    return values;
}

// A tensor in the given storage; values must already be representable (roundTo). 16-bit tensors are
// "v_proj"s, stored in canonical order unless storedRowOf says otherwise.
Tensor makeStoredTensor(Storage storage, const std::string &name, int64_t rows, int64_t cols,
    const std::vector<float> &values, std::vector<int64_t> storedRowOf = {})
{
    if (storage == Storage::F32)
        return makeTensor(name, rows, cols, values);
    Tensor t;
    t.name = name;
    t.sourceName = name + ".weight";
    t.role = TensorRole::V;
    t.rows = rows;
    t.cols = cols;
    t.dtype = storage == Storage::F16 ? DType::F16 : DType::BF16;
    t.storedBytes = uint64_t(rows * cols) * 2;
    std::vector<uint16_t> codes(values.size());
    for (size_t i = 0; i < values.size(); ++i)
        codes[i] = storage == Storage::F16 ? floatToHalf(values[i]) : floatToBf16(values[i]);
    if (!storedRowOf.empty()) { // store row r at storedRowOf[r]
        std::vector<uint16_t> permuted(codes.size());
        for (int64_t r = 0; r < rows; ++r)
            std::copy_n(codes.begin() + r * cols, cols, permuted.begin() + storedRowOf[size_t(r)] * cols);
        codes = std::move(permuted);
    }
    t.data = std::make_shared<HalfTensorData>(std::move(codes), cols, storage == Storage::F16, std::move(storedRowOf));
    return t;
}

int64_t rowsRead(const Tensor &t)
{
    const auto *half = dynamic_cast<const HalfTensorData *>(t.data.get());
    return half ? half->rowsRead() : -1;
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

// Every field of s against the reference of the same values (documented bin rules, outliers strongest
// first with ties by position, top topN kept).
void verifyAgainstReference(
    const WeightStats &s, const std::vector<float> &values, int rows, int cols, double sigma, int bins, size_t topN)
{
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
    QCOMPARE(s.topOutliers.size(), std::min<size_t>(outliers.size(), topN));
    for (size_t i = 0; i < s.topOutliers.size(); ++i) {
        QCOMPARE(s.topOutliers[i].row, outliers[i].row);
        QCOMPARE(s.topOutliers[i].col, outliers[i].col);
        QCOMPARE(s.topOutliers[i].value, outliers[i].value);
    }
}

// The code-count path against the float path on the same values: moments to rounding of the summation
// order, everything else identical.
void compareAcrossPaths(const WeightStats &a, const WeightStats &b)
{
    QCOMPARE(a.count, b.count);
    QCOMPARE(a.nanCount, b.nanCount);
    QCOMPARE(a.infCount, b.infCount);
    QCOMPARE(a.zeroCount, b.zeroCount);
    QCOMPARE(a.min, b.min);
    QCOMPARE(a.max, b.max);
    QVERIFY(closeRel(a.mean, b.mean, kMomentTolerance, a.stddev));
    QVERIFY(closeRel(a.stddev, b.stddev, kMomentTolerance));
    QVERIFY(closeRel(a.skewness, b.skewness, kMomentTolerance, 1.0));
    QVERIFY(closeRel(a.kurtosis, b.kurtosis, kMomentTolerance, 1.0));
    QVERIFY(a.linearHistogram.counts == b.linearHistogram.counts);
    QVERIFY(a.symlogHistogram.counts == b.symlogHistogram.counts);
    QCOMPARE(a.outlierCount, b.outlierCount);
    QCOMPARE(a.topOutliers.size(), b.topOutliers.size());
    for (size_t i = 0; i < a.topOutliers.size(); ++i) {
        QCOMPARE(a.topOutliers[i].row, b.topOutliers[i].row);
        QCOMPARE(a.topOutliers[i].col, b.topOutliers[i].col);
        QCOMPARE(a.topOutliers[i].value, b.topOutliers[i].value);
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
        QTest::addColumn<int>("storage");
        QTest::addColumn<int>("rows");
        QTest::addColumn<int>("cols");
        QTest::addColumn<int>("chunkElements");
        QTest::addColumn<bool>("nonFinite");
        QTest::addColumn<double>("sigma");
        QTest::addColumn<int>("bins");
        const std::pair<Storage, const char *> storages[]
            = { { Storage::F32, "f32" }, { Storage::F16, "f16" }, { Storage::BF16, "bf16" } };
        for (const auto &[storage, label] : storages) {
            auto row = [&](const char *name) -> QTestData & {
                return QTest::newRow(qPrintable(QStringLiteral("%1 %2").arg(QLatin1String(label), QLatin1String(name))))
                    << int(storage);
            };
            row("1x1") << 1 << 1 << 65536 << false << 6.0 << 256;
            row("1x7 vector") << 1 << 7 << 65536 << false << 2.0 << 16;
            row("3x5 one row per chunk") << 3 << 5 << 1 << false << 2.0 << 7;
            row("17x33 chunks of 2 rows") << 17 << 33 << 70 << false << 6.0 << 256;
            row("64x200 default chunks") << 64 << 200 << 65536 << false << 6.0 << 256;
            row("64x200 many chunks") << 64 << 200 << 400 << false << 3.0 << 64;
            row("257x31 nan/inf") << 257 << 31 << 100 << true << 6.0 << 256;
            row("5x1000 wide rows") << 5 << 1000 << 10 << true << 4.0 << 1;
            row("1x4096 norm-like") << 1 << 4096 << 65536 << true << 6.0 << 4096;
            row("64x200 8192 bins (one histogram copy)") << 64 << 200 << 3000 << true << 3.0 << 8192;
        }
    }
    void matchesReference()
    {
        QFETCH(int, storage);
        QFETCH(int, rows);
        QFETCH(int, cols);
        QFETCH(int, chunkElements);
        QFETCH(bool, nonFinite);
        QFETCH(double, sigma);
        QFETCH(int, bins);
        const Storage st = Storage(storage);
        const std::vector<float> values
            = roundTo(st, sampleValues(int64_t(rows) * cols, uint32_t(rows * 131 + cols), nonFinite));
        const auto model = makeModel({ makeStoredTensor(st, "t", rows, cols, values) });
        StatsOptions o;
        o.chunkElements = chunkElements;
        o.outlierSigma = sigma;
        o.histogramBins = bins;
        o.topOutliers = 5;
        RecordingProgress progress;
        const WeightStats s = computeWeightStats(*model, model->tensors[0], o, progress);
        verifyAgainstReference(s, values, rows, cols, sigma, bins, 5);
        if (QTest::currentTestFailed())
            return;
        if (st != Storage::F32) // the code-count path: only the first rows were converted (the order check)
            QVERIFY(rowsRead(model->tensors[0]) <= 8);
        if (st == Storage::F32) { // symmetric-log bins by table lookup: the same result, bit for bit
            StatsOptions withTable = o;
            withTable.binTableMinElements = 0;
            NullProgress quiet;
            compareStatsExactly(s, computeWeightStats(*model, model->tensors[0], withTable, quiet));
        }

        // Progress covers both passes exactly once.
        QCOMPARE(progress.setTotalCalls(), 1);
        QCOMPARE(progress.total(), 2.0 * rows * cols);
        QCOMPARE(progress.done(), progress.total());
    }

    // The symmetric-log lookup table against the exact edge rule where it matters: values exactly on every
    // edge and one float step either side, narrow bins (many table ranges span three or more bins), and
    // both signs. Tables off and on must give the same histogram, which must match the reference.
    void symlogTableOnEdges_data()
    {
        QTest::addColumn<int>("bins");
        QTest::newRow("256 bins") << 256;
        QTest::newRow("7 bins") << 7;
        QTest::newRow("65536 bins (narrower than a table range)") << 65536;
    }
    void symlogTableOnEdges()
    {
        QFETCH(int, bins);
        const std::vector<float> base = sampleValues(4096, 17, false);
        const int64_t cols = 64;
        StatsOptions o;
        o.histogramBins = bins;
        NullProgress progress;
        // The edges depend on min, max and σ, and the values added change σ: repeat until the values put on
        // the edges are those of the tensor they are in (a fixed point, reached in a few rounds).
        std::vector<float> v = base, extra, previous;
        int rounds = 0;
        for (; rounds < 20; ++rounds) {
            v = base;
            v.insert(v.end(), extra.begin(), extra.end());
            v.resize((v.size() + size_t(cols) - 1) / size_t(cols) * size_t(cols), 0.0f);
            const auto m = makeModel({ makeTensor("t", int64_t(v.size()) / cols, cols, v) });
            const WeightStats st = computeWeightStats(*m, m->tensors[0], o, progress);
            previous = extra;
            extra.clear();
            for (const double e : histogramEdges(st.symlogHistogram)) {
                const float f = float(e);
                for (const float x : { std::nextafter(f, -INFINITY), f, std::nextafter(f, INFINITY) })
                    if (x > float(st.min) && x < float(st.max) && extra.size() < 3000)
                        extra.push_back(x);
            }
            if (extra == previous)
                break;
        }
        QVERIFY2(rounds < 20, "the edge values did not settle");
        const int64_t rows = int64_t(v.size()) / cols;
        const auto model = makeModel({ makeTensor("t", rows, cols, v) });
        o.binTableMinElements = int64_t(1) << 40; // off
        const WeightStats exact = computeWeightStats(*model, model->tensors[0], o, progress);
        o.binTableMinElements = 0; // on
        const WeightStats table = computeWeightStats(*model, model->tensors[0], o, progress);
        compareStatsExactly(exact, table);
        verifyAgainstReference(table, v, rows, cols, o.outlierSigma, bins, o.topOutliers);
    }

    // Signed zeros: -0 and +0 compare equal; the extremes are reported as +0 whichever the (vectorised)
    // min/max kept, on both paths.
    void signedZerosReportedAsPlusZero_data()
    {
        QTest::addColumn<int>("storage");
        QTest::newRow("f32") << int(Storage::F32);
        QTest::newRow("f16") << int(Storage::F16);
    }
    void signedZerosReportedAsPlusZero()
    {
        QFETCH(int, storage);
        std::vector<float> up, down;
        for (int i = 0; i < 256; ++i) {
            up.push_back(i % 3 == 0 ? -0.0f : (i % 3 == 1 ? 0.0f : float(i)));
            down.push_back(i % 3 == 0 ? -0.0f : (i % 3 == 1 ? 0.0f : -float(i)));
        }
        const auto model = makeModel({ makeStoredTensor(Storage(storage), "up", 16, 16, up),
            makeStoredTensor(Storage(storage), "down", 16, 16, down) });
        NullProgress progress;
        const WeightStats a = computeWeightStats(*model, model->tensors[0], StatsOptions::defaults(), progress);
        const WeightStats b = computeWeightStats(*model, model->tensors[1], StatsOptions::defaults(), progress);
        QCOMPARE(a.min, 0.0);
        QVERIFY(!std::signbit(a.min));
        QCOMPARE(b.max, 0.0);
        QVERIFY(!std::signbit(b.max));
        QCOMPARE(a.zeroCount, uint64_t(171));
    }

    void sameResultForAnyThreadCount_data()
    {
        QTest::addColumn<int>("storage");
        QTest::newRow("f32") << int(Storage::F32);
        QTest::newRow("f16") << int(Storage::F16);
        QTest::newRow("bf16") << int(Storage::BF16);
    }
    void sameResultForAnyThreadCount()
    {
        QFETCH(int, storage);
        const int rows = 96, cols = 130;
        const std::vector<float> values = roundTo(Storage(storage), sampleValues(rows * cols, 99, true));
        const auto model = makeModel({ makeStoredTensor(Storage(storage), "t", rows, cols, values) });
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

    // The same stored values through both paths, including many outliers tied at the same value (the
    // top-N list then depends on positions only) spread over rows of different absmax.
    void codeCountsAgreeWithFloatRows_data()
    {
        QTest::addColumn<int>("storage");
        QTest::addColumn<int>("topOutliers");
        QTest::newRow("f16 top 5") << int(Storage::F16) << 5;
        QTest::newRow("f16 top 0") << int(Storage::F16) << 0;
        QTest::newRow("f16 top 1000 (more than outliers)") << int(Storage::F16) << 1000;
        QTest::newRow("bf16 top 32") << int(Storage::BF16) << 32;
    }
    void codeCountsAgreeWithFloatRows()
    {
        QFETCH(int, storage);
        QFETCH(int, topOutliers);
        const int rows = 300, cols = 77;
        std::vector<float> v = sampleValues(rows * cols, 7, true);
        for (int i = 0; i < 40; ++i) // ties: the same strong value at 40 positions, and a weaker tie
            v[size_t((i * 7919) % (rows * cols))] = (i % 4 == 0) ? -6.0f : 8.0f;
        v = roundTo(Storage(storage), v);
        const auto model = makeModel({ makeStoredTensor(Storage(storage), "t", rows, cols, v),
            makeStoredTensor(Storage::F32, "t", rows, cols, v) });
        StatsOptions o;
        o.chunkElements = 1000;
        o.outlierSigma = 4.0;
        o.topOutliers = topOutliers;
        RecordingProgress progress;
        const WeightStats codes = computeWeightStats(*model, model->tensors[0], o, progress);
        QCOMPARE(progress.done(), progress.total());
        QVERIFY(rowsRead(model->tensors[0]) <= 8);
        const WeightStats floats = computeWeightStats(*model, model->tensors[1], o, progress);
        compareAcrossPaths(codes, floats);
        QVERIFY2(codes.outlierCount > 40,
            qPrintable(QStringLiteral("%1 outliers, sigma %2").arg(codes.outlierCount).arg(codes.stddev)));
        QCOMPARE(codes.topOutliers.size(), std::min<size_t>(size_t(topOutliers), codes.outlierCount));
    }

    // Every one of the 65536 codes once (±0, subnormals, the largest values, ±Inf, NaNs): absmax in code
    // space, counts and bins must match the reference on the decoded values.
    void everyCode_data()
    {
        QTest::addColumn<int>("storage");
        QTest::newRow("f16") << int(Storage::F16);
        QTest::newRow("bf16") << int(Storage::BF16);
    }
    void everyCode()
    {
        QFETCH(int, storage);
        const bool f16 = Storage(storage) == Storage::F16;
        std::vector<float> v(65536);
        for (uint32_t code = 0; code < 65536; ++code)
            v[code] = f16 ? halfToFloat(uint16_t(code)) : bf16ToFloat(uint16_t(code));
        std::shuffle(v.begin(), v.end(), std::mt19937(3));
        const int rows = 128, cols = 512;
        const auto model = makeModel({ makeStoredTensor(Storage(storage), "t", rows, cols, v) });
        StatsOptions o;
        o.chunkElements = 4096;
        o.topOutliers = 5;
        o.outlierSigma = 2.0;
        NullProgress progress;
        const WeightStats s = computeWeightStats(*model, model->tensors[0], o, progress);
        QVERIFY(rowsRead(model->tensors[0]) <= 8);
        QCOMPARE(s.infCount, uint64_t(2));
        QCOMPARE(s.nanCount, uint64_t(f16 ? 2046 : 254));
        QCOMPARE(s.zeroCount, uint64_t(2));
        verifyAgainstReference(s, v, rows, cols, o.outlierSigma, o.histogramBins, 5);
    }

    // A three-point distribution with exactly known moments, far from zero (mean/σ ≈ 360): shift ± a with
    // probability 1/16 each, shift otherwise. σ = a/√8, skewness 0, excess kurtosis 1/p - 3 = 5.
    void knownKurtosis_data()
    {
        QTest::addColumn<int>("storage");
        QTest::newRow("f32") << int(Storage::F32);
        QTest::newRow("f16") << int(Storage::F16);
        QTest::newRow("bf16") << int(Storage::BF16);
    }
    void knownKurtosis()
    {
        QFETCH(int, storage);
        const int rows = 256, cols = 1000;
        const float shift = 64.0f, a = 0.5f; // 63.5, 64 and 64.5 are exact in all three formats
        std::vector<float> v(size_t(rows * cols), shift);
        for (size_t i = 0; i < v.size(); ++i)
            v[i] = i % 16 == 0 ? shift + a : i % 16 == 8 ? shift - a : shift;
        std::shuffle(v.begin(), v.end(), std::mt19937(11));
        const auto model = makeModel({ makeStoredTensor(Storage(storage), "t", rows, cols, v) });
        StatsOptions o;
        o.chunkElements = 3000;
        NullProgress progress;
        const WeightStats s = computeWeightStats(*model, model->tensors[0], o, progress);
        QVERIFY(std::fabs(s.mean - 64.0) <= 1e-12);
        QVERIFY(std::fabs(s.stddev - 0.5 / std::sqrt(8.0)) <= 1e-12);
        QVERIFY(std::fabs(s.skewness) <= 1e-9);
        QVERIFY2(std::fabs(s.kurtosis - 5.0) <= 1e-9, qPrintable(QString::number(s.kurtosis, 'g', 17)));
        QCOMPARE(s.outlierCount, uint64_t(0)); // ± a is 2.83 σ
    }

    // Stored rows in another order than the reader's (GGUF q/k): per-row results must follow the
    // reader, so such tensors go through the float rows.
    void storedOrderDifferentFromReader()
    {
        const int rows = 40, cols = 64;
        const std::vector<float> v = roundTo(Storage::F16, sampleValues(rows * cols, 21, false));
        std::vector<int64_t> storedRowOf(rows);
        for (int r = 0; r < rows; ++r) // rotate-half-like: pairs swapped inside each group of 4 rows
            storedRowOf[size_t(r)] = r % 4 == 1 ? r + 1 : r % 4 == 2 ? r - 1 : r;
        Tensor permuted = makeStoredTensor(Storage::F16, "p", rows, cols, v, storedRowOf);
        Tensor qInGguf = makeStoredTensor(Storage::F16, "q", rows, cols, v);
        qInGguf.role = TensorRole::Q; // may be permuted in GGUF / llama2.c: not read from the stored bytes
        auto model = makeModel({ permuted, qInGguf, makeStoredTensor(Storage::F32, "f", rows, cols, v) });
        model->format = "gguf";
        StatsOptions o;
        o.chunkElements = 256;
        o.outlierSigma = 3.0;
        NullProgress progress;
        const WeightStats reference = computeWeightStats(*model, model->tensors[2], o, progress);
        QVERIFY(reference.outlierCount > 0);
        const WeightStats p = computeWeightStats(*model, model->tensors[0], o, progress);
        QVERIFY(rowsRead(model->tensors[0]) > 8); // the first rows did not match: float path
        compareStatsExactly(p, reference);
        const WeightStats q = computeWeightStats(*model, model->tensors[1], o, progress);
        QVERIFY(rowsRead(model->tensors[1]) >= 2 * rows);
        compareStatsExactly(q, reference);

        model->format = "safetensors"; // Hugging Face order: q is stored as read
        const WeightStats qHf = computeWeightStats(*model, model->tensors[1], o, progress);
        QCOMPARE(rowsRead(model->tensors[1]), 2 * rows + 8);
        compareAcrossPaths(qHf, reference);
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

        // The code-count path checks between chunks too.
        const auto halfModel = makeModel({ makeStoredTensor(
            Storage::F16, "h", rows, cols, roundTo(Storage::F16, sampleValues(rows * cols, 5, false))) });
        RecordingProgress halfProgress(/*cancelAfter=*/3);
        QVERIFY_THROWS_EXCEPTION(Cancelled, computeWeightStats(*halfModel, halfModel->tensors[0], o, halfProgress));
        QVERIFY(halfProgress.done() < halfProgress.total());
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
