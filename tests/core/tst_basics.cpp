// Half/bfloat16 conversions, the Q/K row permutation, errors and progress basics.
#include <QTest>

#include <cmath>
#include <cstring>
#include <limits>

#include "common/Error.h"
#include "common/Half.h"
#include "common/Progress.h"
#include "model/Model.h"

using namespace qs::core;

class TestBasics : public QObject
{
    Q_OBJECT
private slots:
    void halfRoundTripsEveryValue()
    {
        // Every finite half converts to float and back to the same bits.
        int checked = 0;
        for (uint32_t h = 0; h < 0x10000u; ++h) {
            const uint16_t bits = uint16_t(h);
            if ((bits & 0x7C00u) == 0x7C00u)
                continue; // inf/nan
            QCOMPARE(floatToHalf(halfToFloat(bits)), bits);
            ++checked;
        }
        QCOMPARE(checked, 63488);
    }
    void halfKnownValues()
    {
        QCOMPARE(halfToFloat(0x3C00), 1.0f);
        QCOMPARE(halfToFloat(0xC000), -2.0f);
        QCOMPARE(halfToFloat(0x7BFF), 65504.0f);
        QCOMPARE(halfToFloat(0x0001), std::ldexp(1.0f, -24));
        QCOMPARE(floatToHalf(65520.0f), uint16_t(0x7C00)); // rounds to inf
        QCOMPARE(floatToHalf(1.0f + std::ldexp(1.0f, -11)), uint16_t(0x3C00)); // tie -> even
        QCOMPARE(floatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), uint16_t(0x3C02)); // tie -> even (up)
        QVERIFY(std::isnan(halfToFloat(floatToHalf(std::numeric_limits<float>::quiet_NaN()))));
    }
    void bf16()
    {
        QCOMPARE(bf16ToFloat(0x3F80), 1.0f);
        QCOMPARE(floatToBf16(1.0f), uint16_t(0x3F80));
        QCOMPARE(floatToBf16(bf16ToFloat(0xC0A0)), uint16_t(0xC0A0));
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: rounds to even (1.0)
        QCOMPARE(floatToBf16(1.0f + std::ldexp(1.0f, -8)), uint16_t(0x3F80));
        QVERIFY(std::isnan(bf16ToFloat(floatToBf16(std::numeric_limits<float>::quiet_NaN()))));
    }
    void qkPermutationIsABijectionAndInverse()
    {
        for (int d : {2, 4, 8, 64, 128}) {
            const int heads = 3;
            std::vector<int> hit(size_t(heads * d), 0);
            for (int64_t r = 0; r < heads * d; ++r) {
                const int64_t hf = metaRowToHfRow(r, d);
                QVERIFY(hf >= 0 && hf < heads * d);
                QCOMPARE(hf / d, r / d); // stays in its head
                ++hit[size_t(hf)];
                QCOMPARE(hfRowToMetaRow(hf, d), r);
            }
            for (int h : hit)
                QCOMPARE(h, 1);
        }
        // formats.md 1.10: meta[h*d + 2j + s] = hf[h*d + s*d/2 + j]; d = 8: meta row 3 (j=1, s=1) is hf row 5.
        QCOMPARE(metaRowToHfRow(3, 8), int64_t(5));
        QCOMPARE(metaRowToHfRow(8 + 4, 8), int64_t(8 + 2));
    }
    void errorsNameTheFile()
    {
        try {
            fail("model.safetensors", "truncated");
            QFAIL("fail() returned");
        } catch (const Error &e) {
            QCOMPARE(QString::fromUtf8(e.what()), QStringLiteral("model.safetensors: truncated"));
        }
    }
    void progressCancel()
    {
        NullProgress p;
        p.throwIfCancelled();
        p.cancel();
        QVERIFY_THROWS_EXCEPTION(Cancelled, p.throwIfCancelled());
    }
    void layerNames()
    {
        QCOMPARE(QString::fromStdString(layerName(3, TensorRole::Q)), QStringLiteral("model.layers.3.self_attn.q_proj"));
        QCOMPARE(QString::fromStdString(layerName(0, TensorRole::Down)), QStringLiteral("model.layers.0.mlp.down_proj"));
        QCOMPARE(QString::fromUtf8(roleName(TensorRole::LmHead)), QStringLiteral("lm_head"));
    }
};

QTEST_GUILESS_MAIN(TestBasics)
#include "tst_basics.moc"
