// Round-to-nearest (algorithms.md §1.2): per tensor, per channel and group-wise, symmetric and asymmetric,
// 2–8 bits; every result passes QuantizedTensor::validate(); thread count does not change the result.
#include <QTest>

#include <omp.h>

#include <cmath>
#include <limits>

#include "common/Error.h"
#include "quant/Rtn.h"
#include "quant/SyntheticData.h"

using namespace qs::core;

class TestRtn : public QObject
{
    Q_OBJECT
private slots:
    void shapesAndGrids_data()
    {
        QTest::addColumn<int>("grid");
        QTest::addColumn<int>("bits");
        QTest::addColumn<int>("groupSize");
        for (GridId id : { GridId::MinMax, GridId::MinMaxAwq, GridId::Sym, GridId::SymFull, GridId::SymGptq,
                           GridId::SignedMax }) {
            for (int bits : { 2, 3, 4, 8 }) {
                for (int gs : { -1, 0, 32, 48 }) {
                    const QByteArray name = QByteArray(gridInfo(id).name) + "/b" + QByteArray::number(bits) + "/g" +
                                            QByteArray::number(gs);
                    QTest::newRow(name.constData()) << int(id) << bits << gs;
                }
            }
        }
    }

    void shapesAndGrids()
    {
        QFETCH(int, grid);
        QFETCH(int, bits);
        QFETCH(int, groupSize);
        const int64_t rows = 5, cols = 100; // 48 does not divide 100: a short last group
        const std::vector<float> w = syntheticWeights(rows, cols, 3);
        const QuantSpec spec{ GridId(grid), bits, groupSize, 1 };
        const QuantizedTensor t = quantizeRtn({ w.data(), rows, cols }, spec, "model.layers.0.mlp.up_proj");
        t.validate();
        QCOMPARE(t.method, std::string("rtn"));
        QCOMPARE(t.rows, rows);
        QCOMPARE(t.bits, bits);
        QCOMPARE(t.symmetric, gridInfo(GridId(grid)).symmetric);
        if (groupSize == 0) {
            QCOMPARE(t.groupSize, -1);
            QCOMPARE(t.rowGroupSize, int(rows));
            for (float s : t.scales)
                QCOMPARE(s, t.scales[0]);
        } else {
            QCOMPARE(t.groupSize, groupSize);
            QCOMPARE(t.numGroups(), groupSize > 0 ? int((cols + groupSize - 1) / groupSize) : 1);
        }
        QVERIFY(!t.actOrderGroups());
        // Same values through the fake-quant path (per tensor has no fake-quant form).
        if (groupSize != 0) {
            std::vector<float> fq(size_t(rows * cols));
            fakeQuantizeRtn(w.data(), rows, cols, spec.makeGrid(), groupSize, fq.data());
            QVERIFY(fq == t.dequantized);
        }
    }

    void gptqStyleRtnByHand()
    {
        // The GPTQ repo's RTN: per row, asymmetric, 0 forced into the range, half to even.
        const float row[] = { -0.3f, 0.9f, 0.2f, 0.45f };
        const QuantizedTensor t = quantizeRtn({ row, 1, 4 }, { GridId::MinMax, 2, -1, 1 }, "r");
        const float scale = (0.9f - -0.3f) / 3.0f;
        const float zero = std::nearbyint(0.3f / scale);
        QCOMPARE(t.scales[0], scale);
        QCOMPARE(t.zeros[0], zero);
        for (int i = 0; i < 4; ++i) {
            const float q = std::min(3.0f, std::max(0.0f, std::nearbyint(row[i] / scale) + zero));
            QCOMPARE(float(t.codes[size_t(i)]), q);
            QCOMPARE(t.dequantized[size_t(i)], scale * (q - zero));
        }
    }

    void errorFallsWithBits()
    {
        const std::vector<float> w = syntheticWeights(16, 256, 8);
        double prev = 1e30;
        for (int bits = 2; bits <= 8; ++bits) {
            const QuantizedTensor t = quantizeRtn({ w.data(), 16, 256 }, { GridId::MinMax, bits, 64, 1 });
            double mse = 0.0;
            for (size_t i = 0; i < w.size(); ++i)
                mse += double(w[i] - t.dequantized[i]) * double(w[i] - t.dequantized[i]);
            QVERIFY(mse < prev);
            prev = mse;
        }
        QVERIFY(prev / double(w.size()) < 1e-4); // 8 bits: tiny
    }

    void rowGroups()
    {
        const std::vector<float> w = syntheticWeights(10, 40, 4);
        const QuantizedTensor t = quantizeRtn({ w.data(), 10, 40 }, { GridId::SymFull, 8, -1, 4 }, "rg");
        t.validate();
        QCOMPARE(t.rowGroupSize, 4);
        QCOMPARE(t.scales[0], t.scales[3]);
        QCOMPARE(t.scales[8], t.scales[9]); // last row group has 2 rows
        float amax = 0.0f;
        for (int i = 0; i < 4 * 40; ++i)
            amax = std::max(amax, std::fabs(w[size_t(i)]));
        QCOMPARE(t.scales[0], amax / 128.0f);
        QVERIFY_THROWS_EXCEPTION(Error, quantizeRtn({ w.data(), 10, 40 }, { GridId::SymFull, 8, 8, 4 }, "rg"));
    }

    void rejectsBadInput()
    {
        std::vector<float> w = syntheticWeights(3, 64, 5);
        w[70] = std::numeric_limits<float>::quiet_NaN();
        try {
            quantizeRtn({ w.data(), 3, 64 }, {}, "model.layers.1.self_attn.q_proj");
            QFAIL("no error");
        } catch (const Error &e) {
            const std::string m = e.what();
            QVERIFY(m.find("model.layers.1.self_attn.q_proj") == 0);
            QVERIFY(m.find("[1, 6]") != std::string::npos);
        }
        w[70] = 0.0f;
        QVERIFY_THROWS_EXCEPTION(Error, quantizeRtn({ w.data(), 3, 64 }, { GridId::MinMax, 1, 32, 1 }));
        QVERIFY_THROWS_EXCEPTION(Error, quantizeRtn({ w.data(), 3, 64 }, { GridId::MinMax, 4, -2, 1 }));
        QVERIFY_THROWS_EXCEPTION(Error, quantizeRtn({ w.data(), 3, 64 }, { GridId::GgufQ4_0, 4, 64, 1 }));
        QVERIFY_THROWS_EXCEPTION(Error, quantizeRtn({ nullptr, 0, 0 }, {}));
    }

    void threadCountDoesNotMatter()
    {
        const std::vector<float> w = syntheticWeights(300, 256, 6);
        const int saved = omp_get_max_threads();
        omp_set_num_threads(1);
        const QuantizedTensor a = quantizeRtn({ w.data(), 300, 256 }, { GridId::MinMaxAwq, 3, 64, 1 });
        omp_set_num_threads(std::max(2, saved));
        const QuantizedTensor b = quantizeRtn({ w.data(), 300, 256 }, { GridId::MinMaxAwq, 3, 64, 1 });
        omp_set_num_threads(saved);
        QVERIFY(a.codes == b.codes);
        QVERIFY(a.dequantized == b.dequantized);
        QVERIFY(a.scales == b.scales);
    }
};

QTEST_GUILESS_MAIN(TestRtn)
#include "tst_rtn.moc"
