// GGUF block encoders (export/GgufQuantize.h) against the spec (formats.md §2.6, algorithms.md §8.2):
// hand-built inputs whose blocks are known byte for byte, llama.cpp's own accuracy test
// (tests/test-quantize-fns.cpp: x = 0.1 + 2·cos(i + offset), error sqrt(Σdiff²)/n below a named tolerance
// per type), per-element error bounds of the legacy types, and K-quant inputs that must round-trip exactly.
// Decoding always goes through io/GgufBlocks (fast and reference decoders).
#include <QTest>

#include <cmath>
#include <cstring>

#include "common/Error.h"
#include "common/Half.h"
#include "export/GgufQuantize.h"
#include "io/GgufBlocks.h"
#include "quant/SyntheticData.h"

using namespace qs::core;

namespace {

const GgmlTypeInfo &type(const char *name)
{
    return *findGgmlType(std::string_view(name));
}

std::vector<uint8_t> encode(const GgmlTypeInfo &t, const std::vector<float> &x)
{
    std::vector<uint8_t> b(size_t(ggmlBytesFor(t, x.size())));
    quantizeGgufRow(t, x.data(), b.data(), int64_t(x.size()));
    return b;
}

std::vector<float> decode(const GgmlTypeInfo &t, const std::vector<uint8_t> &b, size_t n)
{
    std::vector<float> fast(n), ref(n);
    t.dequantize(b.data(), fast.data(), int64_t(n));
    t.dequantizeReference(b.data(), ref.data(), int64_t(n));
    if (std::memcmp(fast.data(), ref.data(), n * 4) != 0)
        throw Error(std::string(t.name) + ": fast and reference decoders disagree");
    return fast;
}

float halfAt(const std::vector<uint8_t> &b, size_t offset)
{
    return halfToFloat(uint16_t(b[offset] | (b[offset + 1] << 8)));
}

// llama.cpp test-quantize-fns.cpp: generate_data and array_rmse (sqrt of the summed squares over n).
std::vector<float> cosineData(size_t n, float offset)
{
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i)
        v[i] = 0.1f + 2.0f * std::cos(float(i) + offset);
    return v;
}

double arrayRmse(const std::vector<float> &a, const std::vector<float> &b)
{
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i)
        s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    return std::sqrt(s) / double(a.size());
}

} // namespace

class TestGgufEncode : public QObject
{
    Q_OBJECT

private slots:
    void writableTypes()
    {
        QCOMPARE(ggufWritableTypeList(), std::string("F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K"));
        QVERIFY(findWritableGgmlType("Q4_K"));
        QVERIFY(!findWritableGgmlType("Q3_K")); // decodable size known, but not written
        std::vector<float> x(33, 1.0f);
        std::vector<uint8_t> b(64);
        QVERIFY_THROWS_EXCEPTION(Error, quantizeGgufRow(type("Q8_0"), x.data(), b.data(), 33));
        QVERIFY_THROWS_EXCEPTION(Error, quantizeGgufRow(type("Q2_K"), x.data(), b.data(), 0));
    }

    // llama.cpp's accuracy bar (algorithms.md §8.2): < 0.002 for Q4_0..Q8_0, Q4_K, Q6_K on 4096 values.
    void llamaCppAccuracy_data()
    {
        QTest::addColumn<QString>("name");
        QTest::addColumn<double>("tolerance");
        QTest::newRow("F32") << "F32" << 0.0;
        QTest::newRow("F16") << "F16" << 1e-5;
        QTest::newRow("BF16") << "BF16" << 1e-4;
        for (const char *t : { "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q6_K" })
            QTest::newRow(t) << QString::fromLatin1(t) << 0.002;
    }

    void llamaCppAccuracy()
    {
        QFETCH(QString, name);
        QFETCH(double, tolerance);
        const GgmlTypeInfo &t = type(name.toLatin1().constData());
        for (float offset : { 0.0f, 0.5f, 17.0f }) {
            const std::vector<float> x = cosineData(4096, offset);
            const std::vector<float> y = decode(t, encode(t, x), x.size());
            const double err = arrayRmse(x, y);
            QVERIFY2(err <= tolerance, qPrintable(QStringLiteral("%1 offset %2: %3").arg(name).arg(offset).arg(err)));
        }
    }

    // Error per element: Q8_0 ≤ d/2 (plus the f16 rounding of d over 127 steps); Q4_0/Q5_0 ≤ one step for
    // the opposite-sign clamp, else half a step; Q4_1/Q5_1 ≤ half a step plus m's f16 rounding.
    void legacyErrorBounds()
    {
        SyntheticRng rng(5);
        std::vector<float> x(32 * 64);
        for (float &v : x)
            v = float(rng.normal() * 0.05 + (rng.uniform() < 0.1 ? 0.3 : 0.0));
        for (const char *name : { "Q8_0", "Q4_0", "Q5_0", "Q4_1", "Q5_1" }) {
            const GgmlTypeInfo &t = type(name);
            const std::vector<uint8_t> b = encode(t, x);
            const std::vector<float> y = decode(t, b, x.size());
            for (size_t blk = 0; blk < x.size() / 32; ++blk) {
                const size_t off = blk * t.bytesPerBlock;
                const float d16 = std::fabs(halfAt(b, off));
                float lo = x[blk * 32], hi = lo, amax = 0, smax = 0;
                for (int j = 0; j < 32; ++j) {
                    const float v = x[blk * 32 + size_t(j)];
                    lo = std::min(lo, v);
                    hi = std::max(hi, v);
                    if (std::fabs(v) > amax) {
                        amax = std::fabs(v);
                        smax = v;
                    }
                }
                double bound = 0;
                const std::string n = name;
                if (n == "Q8_0")
                    bound = 0.5 * d16 + 128.0 * std::fabs(d16 - amax / 127.0f);
                else if (n == "Q4_0" || n == "Q5_0")
                    bound = d16 + 16.0 * std::fabs(d16 - std::fabs(smax) / (n == "Q4_0" ? 8.0f : 16.0f));
                else
                    bound = 0.5 * d16 + 32.0 * std::fabs(d16 - (hi - lo) / (n == "Q4_1" ? 15.0f : 31.0f))
                        + std::fabs(halfAt(b, off + 2) - lo);
                for (int j = 0; j < 32; ++j) {
                    const size_t i = blk * 32 + size_t(j);
                    if (std::fabs(x[i] - y[i]) > bound * 1.0001 + 1e-7)
                        QFAIL(qPrintable(QStringLiteral("%1 block %2 elem %3: %4 -> %5 (bound %6)")
                                             .arg(QString::fromLatin1(name))
                                             .arg(blk)
                                             .arg(j)
                                             .arg(double(x[i]))
                                             .arg(double(y[i]))
                                             .arg(bound)));
                }
            }
        }
    }

    // Spec values: blocks built by hand from formats.md §2.6.
    void q8_0Bytes()
    {
        std::vector<float> x(32);
        for (int i = 0; i < 32; ++i)
            x[size_t(i)] = float(i - 16) * 0.5f; // absmax 8 → d = 8/127
        x[0] = -63.5f; // absmax 63.5 → d = 0.5 exactly
        const std::vector<uint8_t> b = encode(type("Q8_0"), x);
        QCOMPARE(b.size(), size_t(34));
        QCOMPARE(uint16_t(b[0] | (b[1] << 8)), uint16_t(0x3800)); // f16 0.5
        QCOMPARE(int8_t(b[2]), int8_t(-127));
        for (int i = 1; i < 32; ++i)
            QCOMPARE(int8_t(b[size_t(2 + i)]), int8_t(i - 16));
        QCOMPARE(decode(type("Q8_0"), b, 32), x);
    }

    void q4_0Bytes()
    {
        // Signed max −4 → d = 0.5; element 0 → code 0; values k·0.5 for k in −8..7 are exact.
        std::vector<float> x(32);
        for (int i = 0; i < 32; ++i)
            x[size_t(i)] = 0.5f * float((i % 16) - 8);
        const std::vector<uint8_t> b = encode(type("Q4_0"), x);
        QCOMPARE(uint16_t(b[0] | (b[1] << 8)), uint16_t(0x3800));
        for (int j = 0; j < 16; ++j)
            QCOMPARE(int(b[size_t(2 + j)]), j | (j << 4)); // low nibble element j, high nibble element j + 16
        QCOMPARE(decode(type("Q4_0"), b, 32), x);
    }

    void q5Bytes()
    {
        // Q5_0: signed max −8 → d = 0.5; element i holds code i (values 0.5·(i − 16)).
        std::vector<float> x(32);
        for (int i = 0; i < 32; ++i)
            x[size_t(i)] = 0.5f * float(i - 16);
        const std::vector<uint8_t> b = encode(type("Q5_0"), x);
        QCOMPARE(uint16_t(b[0] | (b[1] << 8)), uint16_t(0x3800));
        uint32_t qh = 0;
        std::memcpy(&qh, b.data() + 2, 4);
        QCOMPARE(qh, 0xFFFF0000u); // codes 16..31 (elements 16..31) have their fifth bit set
        for (int j = 0; j < 16; ++j)
            QCOMPARE(int(b[size_t(6 + j)]), j | (j << 4));
        QCOMPARE(decode(type("Q5_0"), b, 32), x);
        // Q5_1: min 1, max 1 + 31·0.25 → d = 0.25, m = 1; element i holds code i.
        for (int i = 0; i < 32; ++i)
            x[size_t(i)] = 1.0f + 0.25f * float(i);
        const std::vector<uint8_t> c = encode(type("Q5_1"), x);
        QCOMPARE(halfAt(c, 0), 0.25f);
        QCOMPARE(halfAt(c, 2), 1.0f);
        std::memcpy(&qh, c.data() + 4, 4);
        QCOMPARE(qh, 0xFFFF0000u);
        QCOMPARE(decode(type("Q5_1"), c, 32), x);
    }

    void q4_1Bytes()
    {
        std::vector<float> x(32);
        for (int i = 0; i < 32; ++i)
            x[size_t(i)] = -2.0f + 0.125f * float(i % 16); // min −2, max −2 + 15/8 → d = 0.125
        const std::vector<uint8_t> b = encode(type("Q4_1"), x);
        QCOMPARE(halfAt(b, 0), 0.125f);
        QCOMPARE(halfAt(b, 2), -2.0f);
        for (int j = 0; j < 16; ++j)
            QCOMPARE(int(b[size_t(4 + j)]), j | (j << 4));
        QCOMPARE(decode(type("Q4_1"), b, 32), x);
    }

    // Q4_K: sub-block j holds a_j·q (q = 0..15, a_j = k_j/64, k_j up to 63): min 0, the fit finds a_j (up to
    // float rounding), d = 1/64, sc_j = k_j, so the block decodes to the input and the bytes follow the spec.
    void q4_KExact()
    {
        const int k[8] = { 63, 1, 17, 40, 5, 32, 62, 9 };
        std::vector<float> x(256);
        for (int j = 0; j < 8; ++j)
            for (int l = 0; l < 32; ++l)
                x[size_t(32 * j + l)] = float(k[j]) / 64.0f * float((l * 7 + j) % 16);
        const std::vector<uint8_t> b = encode(type("Q4_K"), x);
        QCOMPARE(b.size(), size_t(144));
        QCOMPARE(halfAt(b, 0), 1.0f / 64.0f);
        QCOMPARE(halfAt(b, 2), 0.0f);
        const uint8_t *sc = b.data() + 4;
        for (int j = 0; j < 4; ++j)
            QCOMPARE(int(sc[j] & 63), k[j]);
        for (int j = 4; j < 8; ++j)
            QCOMPARE(int((sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4)), k[j]);
        // qs: chunk c byte l = element 64c + l (low) and 64c + 32 + l (high).
        QCOMPARE(int(b[16] & 0xF), 0);
        QCOMPARE(int(b[16] >> 4), (0 * 7 + 1) % 16);
        const std::vector<float> y = decode(type("Q4_K"), b, 256);
        for (size_t i = 0; i < 256; ++i)
            QVERIFY2(std::fabs(y[i] - x[i]) <= 1e-6f * (1.0f + std::fabs(x[i])), qPrintable(QString::number(i)));
    }

    // Q6_K: sub-block j holds 2^-e_j·l with l in −32..16 (the signed max −32 first): the first scale fits
    // exactly, d = −S/128, scales are powers of two apart, so the block decodes to the input exactly.
    void q6_KExact()
    {
        std::vector<float> x(256);
        for (int j = 0; j < 16; ++j) {
            const float a = std::ldexp(1.0f, -(j % 5) - 3);
            for (int l = 0; l < 16; ++l)
                x[size_t(16 * j + l)] = a * float(l == 0 ? -32 : (l * 5 + j) % 17);
        }
        const std::vector<uint8_t> b = encode(type("Q6_K"), x);
        QCOMPARE(b.size(), size_t(210));
        const std::vector<float> y = decode(type("Q6_K"), b, 256);
        for (size_t i = 0; i < 256; ++i)
            QCOMPARE(y[i], x[i]);
        // d = −S/128 with S = the sub-block scale of largest |·| (1/8 here, the first sub-block's).
        // All sub-block scales come out positive (l has the sign of x), so iscale = −128/S < 0 and d < 0.
        QCOMPARE(halfAt(b, 208), -1.0f / 8.0f / 128.0f);
        QCOMPARE(int(int8_t(b[192])), -128); // iscale·S = −128: min(127, ·) keeps it, stored as int8
    }

    // All-zero and constant inputs: no NaN anywhere, zeros decode to zeros.
    void degenerateInputs()
    {
        for (const char *name : { "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q6_K" }) {
            const GgmlTypeInfo &t = type(name);
            const std::vector<float> zeros(256, 0.0f);
            const std::vector<float> y = decode(t, encode(t, zeros), 256);
            for (float v : y)
                QCOMPARE(v, 0.0f);
            const std::vector<float> c(256, 0.75f);
            const std::vector<float> yc = decode(t, encode(t, c), 256);
            for (float v : yc) {
                QVERIFY(std::isfinite(v));
                QVERIFY2(std::fabs(v - 0.75f) < 0.05f, name);
            }
        }
    }

    // Gaussian weights: relative RMS error per type, a named tolerance each (measured, with margin).
    void gaussianRelativeError_data()
    {
        QTest::addColumn<QString>("name");
        QTest::addColumn<double>("tolerance");
        QTest::newRow("Q8_0") << "Q8_0" << 0.008;
        QTest::newRow("Q6_K") << "Q6_K" << 0.025;
        QTest::newRow("Q5_1") << "Q5_1" << 0.05;
        QTest::newRow("Q5_0") << "Q5_0" << 0.055;
        QTest::newRow("Q4_K") << "Q4_K" << 0.10;
        QTest::newRow("Q4_1") << "Q4_1" << 0.10;
        QTest::newRow("Q4_0") << "Q4_0" << 0.11;
    }

    void gaussianRelativeError()
    {
        QFETCH(QString, name);
        QFETCH(double, tolerance);
        SyntheticRng rng(9);
        std::vector<float> x(256 * 64);
        for (float &v : x)
            v = float(rng.normal() * 0.02);
        const GgmlTypeInfo &t = type(name.toLatin1().constData());
        const std::vector<float> y = decode(t, encode(t, x), x.size());
        double e = 0, s = 0;
        for (size_t i = 0; i < x.size(); ++i) {
            e += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
            s += double(x[i]) * x[i];
        }
        const double rel = std::sqrt(e / s);
        qInfo("%s: relative RMS error %.4f", qPrintable(name), rel);
        QVERIFY2(rel < tolerance, qPrintable(QString::number(rel)));
    }
};

QTEST_APPLESS_MAIN(TestGgufEncode)
#include "tst_gguf_encode.moc"
