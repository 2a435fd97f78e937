// The GGUF block grids as quantization targets (quant/Grid.h): every gguf_* grid's codes and parameters pack
// into GGUF blocks (export/GgufQuantize.h) that decode through the ggml decoders to exactly the weights
// the quantizer produced; the affine grids gguf_q4_1 / gguf_q5_1 keep their error close to llama.cpp's own
// Q4_1 / Q5_1 recipe; the method registry offers them.
#include <QTest>

#include <cmath>
#include <cstring>

#include "common/Half.h"
#include "export/GgufQuantize.h"
#include "io/GgufBlocks.h"
#include "quant/Grid.h"
#include "quant/MethodRegistry.h"
#include "quant/QuantizedTensor.h"
#include "quant/Rtn.h"
#include "quant/SyntheticData.h"

using namespace qs::core;

namespace {

std::vector<float> gaussian(size_t n, uint64_t seed, double scale = 1.0, double offset = 0.0)
{
    SyntheticRng rng(seed);
    std::vector<float> v(n);
    for (float &x : v)
        x = float(offset + scale * rng.normal());
    return v;
}

double rms(const std::vector<float> &a, const std::vector<float> &b)
{
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i)
        s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    return std::sqrt(s / double(a.size()));
}

// Packs every row of q into blocks and decodes them with both decoders of the grid's ggml type.
void checkPackedDecodesExactly(const QuantizedTensor &q)
{
    QVERIFY2(ggufPackProblem(q).empty(), ggufPackProblem(q).c_str());
    const GgmlTypeInfo *type = ggmlTypeOfGrid(q);
    QVERIFY(type);
    std::vector<uint8_t> blocks(size_t(ggmlBytesFor(*type, uint64_t(q.cols))));
    std::vector<float> fast(size_t(q.cols)), ref(size_t(q.cols));
    for (int64_t r = 0; r < q.rows; ++r) {
        packQuantizedRow(q, r, blocks.data());
        type->dequantize(blocks.data(), fast.data(), q.cols);
        type->dequantizeReference(blocks.data(), ref.data(), q.cols);
        const float *expect = q.dequantized.data() + r * q.cols;
        for (int64_t c = 0; c < q.cols; ++c) {
            if (std::memcmp(&fast[size_t(c)], &expect[c], 4) != 0 || std::memcmp(&ref[size_t(c)], &expect[c], 4) != 0)
                QFAIL(qPrintable(QStringLiteral("%1 row %2 col %3: block decodes to %4 / %5, run has %6")
                                     .arg(QString::fromLatin1(type->name))
                                     .arg(r)
                                     .arg(c)
                                     .arg(double(fast[size_t(c)]), 0, 'g', 9)
                                     .arg(double(ref[size_t(c)]), 0, 'g', 9)
                                     .arg(double(expect[c]), 0, 'g', 9)));
        }
    }
}

} // namespace

class TestGgufGrids : public QObject
{
    Q_OBJECT

private slots:
    void tableAndRegistry()
    {
        for (const char *name : { "gguf_q4_1", "gguf_q5_1" }) {
            const GridInfo *g = findGrid(name);
            QVERIFY(g);
            QCOMPARE(g->requiredGroupSize, 32);
            QVERIFY(!g->symmetric);
            QVERIFY(g->fractionalZero);
            QVERIFY(g->f16Scale);
            const ParamSpec *grid = findQuantMethod("gptq")->param("grid");
            QVERIFY(grid);
            QVERIFY(std::find(grid->choices.begin(), grid->choices.end(), std::string(name)) != grid->choices.end());
        }
        QCOMPARE(std::string(gridInfo(GridId::GgufQ4_1).ggmlType), std::string("Q4_1"));
        QCOMPARE(std::string(gridInfo(GridId::GgufQ5_1).ggmlType), std::string("Q5_1"));
        QCOMPARE(gridInfo(GridId::GgufQ4_1).minBits, 4);
        QCOMPARE(gridInfo(GridId::GgufQ5_1).maxBits, 5);
        // Describing a tensor on the affine grids gives fractional (float) zero points.
        QuantizedTensor t;
        describeGrid(t, Grid(GridId::GgufQ4_1, 4));
        QCOMPARE(t.zeroKind, ZeroPointKind::Float);
        // The registry accepts them only with group size 32 and their bit width.
        MethodConfig c = MethodConfig::defaults("rtn");
        c.set("grid", std::string("gguf_q4_1"));
        c.set("bits", int64_t(4));
        c.set("group_size", int64_t(32));
        c.validate();
        c.set("group_size", int64_t(64));
        QVERIFY_THROWS_EXCEPTION(Error, c.validate());
        c.set("group_size", int64_t(32));
        c.set("bits", int64_t(5));
        QVERIFY_THROWS_EXCEPTION(Error, c.validate());
    }

    void everyGgufGridPacksExactly_data()
    {
        QTest::addColumn<QString>("grid");
        QTest::addColumn<int>("bits");
        QTest::addColumn<double>("offset");
        QTest::addColumn<double>("scale");
        const std::pair<const char *, int> grids[] = { { "gguf_q4_0", 4 }, { "gguf_q5_0", 5 }, { "gguf_q8_0", 8 },
            { "gguf_q4_1", 4 }, { "gguf_q5_1", 5 } };
        for (const auto &[g, b] : grids) {
            QTest::addRow("%s centred", g) << QString::fromLatin1(g) << b << 0.0 << 0.02;
            QTest::addRow("%s offset", g) << QString::fromLatin1(g) << b << 0.05 << 0.01;
            QTest::addRow("%s far", g) << QString::fromLatin1(g) << b << 3.0 << 0.001;
            QTest::addRow("%s tiny", g) << QString::fromLatin1(g) << b << 0.0 << 1e-6;
            QTest::addRow("%s large", g) << QString::fromLatin1(g) << b << -100.0 << 300.0;
        }
    }

    void everyGgufGridPacksExactly()
    {
        QFETCH(QString, grid);
        QFETCH(int, bits);
        QFETCH(double, offset);
        QFETCH(double, scale);
        const int64_t rows = 24, cols = 128;
        std::vector<float> w = gaussian(size_t(rows * cols), 7, scale, offset);
        // Edge groups: all zero, constant, one outlier, exact zeros mixed in.
        for (int c = 0; c < 32; ++c) {
            w[size_t(c)] = 0.0f;
            w[size_t(cols + c)] = float(offset + scale);
            w[size_t(2 * cols + c)] = c == 5 ? float(offset + 40 * scale) : float(offset);
            if (c % 3 == 0)
                w[size_t(3 * cols + c)] = 0.0f;
        }
        QuantSpec spec;
        spec.grid = findGrid(grid.toStdString())->id;
        spec.bits = bits;
        spec.groupSize = 32;
        const QuantizedTensor q = quantizeRtn({ w.data(), rows, cols }, spec, "w");
        q.validate();
        checkPackedDecodesExactly(q);
        // Affine grids: never worse than a full step anywhere, and every value inside the covered range.
        if (spec.grid == GridId::GgufQ4_1 || spec.grid == GridId::GgufQ5_1)
            for (int64_t r = 0; r < rows; ++r)
                for (int k = 0; k < q.numGroups(); ++k) {
                    const float d = q.scale(r, k);
                    for (int j = 0; j < 32; ++j) {
                        const size_t i = size_t(r * cols + k * 32 + j);
                        const float tol = d + 1e-3f * std::fabs(w[i]);
                        if (std::fabs(w[i] - q.dequantized[i]) > tol)
                            QFAIL(qPrintable(QStringLiteral("row %1 col %2: %3 -> %4, step %5")
                                                 .arg(r)
                                                 .arg(k * 32 + j)
                                                 .arg(double(w[i]))
                                                 .arg(double(q.dequantized[i]))
                                                 .arg(double(d))));
                    }
                }
    }

    // The exactness construction costs little accuracy against llama.cpp's own Q4_1/Q5_1 recipe.
    void affineGridsCloseToLlamaCpp_data()
    {
        QTest::addColumn<QString>("grid");
        QTest::addColumn<QString>("type");
        QTest::addColumn<double>("offset");
        QTest::newRow("q4_1 centred") << "gguf_q4_1" << "Q4_1" << 0.0;
        QTest::newRow("q4_1 offset") << "gguf_q4_1" << "Q4_1" << 0.5;
        QTest::newRow("q5_1 centred") << "gguf_q5_1" << "Q5_1" << 0.0;
        QTest::newRow("q5_1 offset") << "gguf_q5_1" << "Q5_1" << 0.5;
    }

    void affineGridsCloseToLlamaCpp()
    {
        QFETCH(QString, grid);
        QFETCH(QString, type);
        QFETCH(double, offset);
        const int64_t rows = 64, cols = 256;
        const std::vector<float> w = gaussian(size_t(rows * cols), 11, 1.0, offset);
        QuantSpec spec;
        spec.grid = findGrid(grid.toStdString())->id;
        spec.bits = spec.grid == GridId::GgufQ4_1 ? 4 : 5;
        spec.groupSize = 32;
        const QuantizedTensor q = quantizeRtn({ w.data(), rows, cols }, spec, "w");
        const GgmlTypeInfo &t = *findGgmlType(type.toStdString());
        std::vector<uint8_t> blocks(size_t(ggmlBytesFor(t, uint64_t(rows * cols))));
        quantizeGgufRow(t, w.data(), blocks.data(), rows * cols);
        std::vector<float> llama(w.size());
        t.dequantize(blocks.data(), llama.data(), rows * cols);
        const double ours = rms(w, q.dequantized), theirs = rms(w, llama);
        qInfo("%s: rms error %.5f (llama.cpp recipe %.5f, ratio %.3f)", qPrintable(grid), ours, theirs, ours / theirs);
        QVERIFY2(ours < 1.12 * theirs, qPrintable(QString::number(ours / theirs)));
    }

    // A value that must be hit exactly: a constant group keeps f16(c); zero groups stay zero without NaN.
    void constantAndZeroGroups()
    {
        const Grid g(GridId::GgufQ4_1, 4);
        std::vector<float> c(32, 0.3f);
        const GroupParams p = g.params(c.data(), 32);
        QCOMPARE(g.qdq(0.3f, p), roundToHalf(0.3f));
        std::vector<float> z(32, 0.0f);
        const GroupParams pz = g.params(z.data(), 32);
        QCOMPARE(pz.scale, 0.0f);
        QCOMPARE(g.qdq(0.0f, pz), 0.0f);
        QVERIFY(!std::isnan(g.qdq(1.0f, pz)));
    }

    // What cannot be packed says why: another grid, or a scale moved off f16 by a later fold.
    void packProblems()
    {
        const std::vector<float> w = gaussian(8 * 64, 3, 0.1);
        QuantSpec spec;
        spec.grid = GridId::MinMax;
        spec.bits = 4;
        spec.groupSize = 32;
        const QuantizedTensor minmax = quantizeRtn({ w.data(), 8, 64 }, spec, "w");
        QVERIFY(ggufPackProblem(minmax).find("not a GGUF block grid") != std::string::npos);
        spec.grid = GridId::GgufQ4_0;
        QuantizedTensor q = quantizeRtn({ w.data(), 8, 64 }, spec, "w");
        QVERIFY(ggufPackProblem(q).empty());
        q.scales[3] *= 1.0001f;
        QVERIFY(ggufPackProblem(q).find("f16") != std::string::npos);
    }
};

QTEST_APPLESS_MAIN(TestGgufGrids)
#include "tst_gguf_grids.moc"
