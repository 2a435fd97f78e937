// ZeroQuant (algorithms.md §6.4, §11 #12): DeepSpeed-grid group-wise weights (input-column groups and the
// row-group variant), per-token error ≤ s_t/2, token scaling equivariance, token-wise beating per-tensor
// on tokens of very different magnitudes.
#include <QTest>

#include <cmath>

#include "common/Error.h"
#include "quant/SyntheticData.h"
#include "quant/ZeroQuant.h"

using namespace qs::core;

class TestZeroQuant : public QObject
{
    Q_OBJECT
private slots:
    void weightsInputColumnGroups()
    {
        const std::vector<float> w = syntheticWeights(12, 256, 1);
        ZeroQuantOptions o;
        const QuantizedTensor t = quantizeZeroQuantWeight({ w.data(), 12, 256 }, o, "model.layers.0.mlp.down_proj");
        t.validate();
        QCOMPARE(t.method, std::string("zeroquant"));
        QCOMPARE(t.bits, 8);
        QCOMPARE(t.groupSize, 128);
        QCOMPARE(t.convention, SymConvention::FullSigned);
        QCOMPARE(t.zeroKind, ZeroPointKind::Implicit);
        for (int64_t r = 0; r < 12; ++r)
            for (int k = 0; k < 2; ++k) {
                float amax = 0.0f;
                for (int j = 0; j < 128; ++j)
                    amax = std::max(amax, std::fabs(w[size_t(r * 256 + k * 128 + j)]));
                QCOMPARE(t.scale(r, k), amax / 128.0f); // 2·absmax/2^b
            }
        // +absmax clamps one step down to 127·s.
        const float v[] = { -1.0f, 0.25f, 1.0f, 0.5f };
        o.groupSize = -1;
        const QuantizedTensor c = quantizeZeroQuantWeight({ v, 1, 4 }, o);
        QCOMPARE(c.dequantized[2], 127.0f / 128.0f);
        QCOMPARE(c.dequantized[0], -1.0f);
    }

    void weightsRowGroups()
    {
        const std::vector<float> w = syntheticWeights(12, 64, 2);
        ZeroQuantOptions o;
        o.rowGroups = true;
        o.rowsPerGroup = 4;
        o.bits = 4;
        const QuantizedTensor t = quantizeZeroQuantWeight({ w.data(), 12, 64 }, o);
        t.validate();
        QCOMPARE(t.groupSize, -1);
        QCOMPARE(t.rowGroupSize, 4);
        QCOMPARE(t.bitsPerWeight(), 4.0 + 3.0 * 16.0 / (12.0 * 64.0));
        for (int g = 0; g < 3; ++g) {
            float amax = 0.0f;
            for (int i = g * 4 * 64; i < (g + 1) * 4 * 64; ++i)
                amax = std::max(amax, std::fabs(w[size_t(i)]));
            for (int r = g * 4; r < g * 4 + 4; ++r)
                QCOMPARE(t.scales[size_t(r)], amax / 8.0f);
        }
        o.rowsPerGroup = 0;
        QVERIFY_THROWS_EXCEPTION(Error, quantizeZeroQuantWeight({ w.data(), 12, 64 }, o));
    }

    void perTokenErrorBound()
    {
        const int64_t T = 32, C = 64;
        std::vector<float> x = syntheticWeights(T, C, 3, 1.0);
        for (int64_t t = 0; t < T; ++t) // very different token magnitudes
            for (int64_t j = 0; j < C; ++j)
                x[size_t(t * C + j)] *= float(std::pow(10.0, double(t % 7) - 3.0));
        for (int64_t j = 0; j < C; ++j)
            x[size_t(5 * C + j)] = 0.0f;
        for (SymConvention conv : { SymConvention::Restricted, SymConvention::FullSigned }) {
            ZeroQuantOptions o;
            o.activationConvention = conv;
            std::vector<float> q = x;
            std::vector<float> s;
            fakeQuantTokenwise(q.data(), T, C, o, &s);
            for (int64_t t = 0; t < T; ++t) {
                float amax = 0.0f;
                for (int64_t j = 0; j < C; ++j)
                    amax = std::max(amax, std::fabs(x[size_t(t * C + j)]));
                for (int64_t j = 0; j < C; ++j) {
                    const float v = x[size_t(t * C + j)], d = q[size_t(t * C + j)];
                    QVERIFY(std::isfinite(d));
                    // (b) clamps +absmax one step down: error up to s_t there, ≤ s_t/2 elsewhere.
                    const bool clipped = conv == SymConvention::FullSigned && v > 127.0f * s[size_t(t)];
                    QVERIFY2(std::fabs(v - d) <= (clipped ? 1.0f : 0.5f) * s[size_t(t)] + 1e-6f * std::fabs(v),
                             qPrintable(QStringLiteral("conv %1 token %2: %3 -> %4, s %5, amax %6")
                                            .arg(int(conv)).arg(t).arg(v).arg(d).arg(s[size_t(t)]).arg(amax)));
                }
            }
        }
        ZeroQuantOptions off;
        off.activationBits = 0;
        std::vector<float> q = x;
        fakeQuantTokenwise(q.data(), T, C, off);
        QVERIFY(q == x);
    }

    void tokenScalingEquivariance()
    {
        const int64_t T = 8, C = 48;
        const std::vector<float> x = syntheticWeights(T, C, 4, 1.0);
        std::vector<float> a = x;
        fakeQuantPerToken(a.data(), T, C);
        // Powers of two: exact.
        std::vector<float> b = x;
        for (int64_t j = 0; j < C; ++j)
            b[size_t(3 * C + j)] *= 4.0f;
        fakeQuantPerToken(b.data(), T, C);
        for (int64_t j = 0; j < C; ++j)
            QCOMPARE(b[size_t(3 * C + j)], 4.0f * a[size_t(3 * C + j)]);
        // Any c > 0: equal up to rounding ties (at most one step on a few elements).
        std::vector<float> c = x;
        for (int64_t j = 0; j < C; ++j)
            c[size_t(3 * C + j)] *= 3.3f;
        std::vector<float> sc;
        fakeQuantPerToken(c.data(), T, C, {}, &sc);
        int off = 0;
        for (int64_t j = 0; j < C; ++j) {
            const float diff = std::fabs(c[size_t(3 * C + j)] - 3.3f * a[size_t(3 * C + j)]);
            QVERIFY(diff <= sc[3] * 1.001f);
            off += diff > 1e-5f * sc[3];
        }
        QVERIFY(off <= 2);
    }

    void tokenwiseBeatsPerTensor()
    {
        const int64_t T = 64, C = 64;
        std::vector<float> x = syntheticWeights(T, C, 5, 1.0);
        for (int64_t t = 0; t < T; ++t)
            for (int64_t j = 0; j < C; ++j)
                x[size_t(t * C + j)] *= float(std::exp(double(t % 16) * 0.5 - 4.0));
        std::vector<float> tok = x, ten = x;
        fakeQuantPerToken(tok.data(), T, C);
        fakeQuantPerTensor(ten.data(), T, C);
        double eTok = 0.0, eTen = 0.0;
        for (size_t i = 0; i < x.size(); ++i) {
            eTok += double(tok[i] - x[i]) * double(tok[i] - x[i]);
            eTen += double(ten[i] - x[i]) * double(ten[i] - x[i]);
        }
        QVERIFY(eTok < eTen);
    }
};

QTEST_GUILESS_MAIN(TestZeroQuant)
#include "tst_zeroquant.moc"
