// ggml block types: the type table against formats.md 2.5, hand-built blocks of every decodable type
// against the spec formulas (2.6) written out independently here, and the fast decoders against the
// reference ones on random data at unaligned addresses.
#include <QElapsedTimer>
#include <QTest>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <set>

#include "common/Half.h"
#include "io/GgufBlocks.h"

using namespace qs::core;

namespace {

using Floats = QVector<float>;

void putHalf(QByteArray &b, int at, float v)
{
    const uint16_t h = floatToHalf(v);
    QCOMPARE_EQ(halfToFloat(h), v); // the test only uses values a half holds exactly
    b[at] = char(h & 0xFF);
    b[at + 1] = char(h >> 8);
}

// Q4_0 / Q4_1 nibble layout: byte j holds element j (low) and element j + 16 (high).
void putNibbles32(QByteArray &b, int at, const int *q)
{
    for (int j = 0; j < 16; ++j)
        b[at + j] = char((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
}

// Q5: the fifth bits of the 32 elements as a little-endian u32, element i at bit i.
void putFifthBits(QByteArray &b, int at, const int *q)
{
    uint32_t qh = 0;
    for (int i = 0; i < 32; ++i)
        qh |= uint32_t((q[i] >> 4) & 1) << i;
    for (int k = 0; k < 4; ++k)
        b[at + k] = char((qh >> (8 * k)) & 0xFF);
}

struct Block
{
    QByteArray bytes;
    Floats expected;
};

Block makeF32(const Floats &values)
{
    Block b;
    for (float v : values) {
        char raw[4];
        std::memcpy(raw, &v, 4);
        b.bytes.append(raw, 4);
    }
    b.expected = values;
    return b;
}

Block makeHalfLike(const QVector<uint16_t> &bits, bool bf16)
{
    Block b;
    for (uint16_t h : bits) {
        b.bytes.append(char(h & 0xFF));
        b.bytes.append(char(h >> 8));
        // Independent of Half.h: decode by the definitions.
        if (bf16) {
            const uint32_t f = uint32_t(h) << 16;
            b.expected.append(std::bit_cast<float>(f));
        } else {
            const int sign = (h >> 15) ? -1 : 1;
            const int e = (h >> 10) & 31;
            const int m = h & 1023;
            const float v = e == 31
                ? (m ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity())
                : e == 0 ? std::ldexp(float(m), -24)
                         : std::ldexp(float(1024 + m), e - 25);
            b.expected.append(float(sign) * v);
        }
    }
    return b;
}

Block makeQ8_0(float d, const int *q)
{
    Block b { QByteArray(34, 0), {} };
    putHalf(b.bytes, 0, d);
    for (int i = 0; i < 32; ++i) {
        b.bytes[2 + i] = char(int8_t(q[i]));
        b.expected.append(d * float(q[i]));
    }
    return b;
}

Block makeQ4_0(float d, const int *q)
{
    Block b { QByteArray(18, 0), {} };
    putHalf(b.bytes, 0, d);
    putNibbles32(b.bytes, 2, q);
    for (int i = 0; i < 32; ++i)
        b.expected.append(d * float(q[i] - 8));
    return b;
}

Block makeQ4_1(float d, float m, const int *q)
{
    Block b { QByteArray(20, 0), {} };
    putHalf(b.bytes, 0, d);
    putHalf(b.bytes, 2, m);
    putNibbles32(b.bytes, 4, q);
    for (int i = 0; i < 32; ++i)
        b.expected.append(d * float(q[i]) + m);
    return b;
}

Block makeQ5_0(float d, const int *q)
{
    Block b { QByteArray(22, 0), {} };
    putHalf(b.bytes, 0, d);
    putFifthBits(b.bytes, 2, q);
    putNibbles32(b.bytes, 6, q);
    for (int i = 0; i < 32; ++i)
        b.expected.append(d * float(q[i] - 16));
    return b;
}

Block makeQ5_1(float d, float m, const int *q)
{
    Block b { QByteArray(24, 0), {} };
    putHalf(b.bytes, 0, d);
    putHalf(b.bytes, 2, m);
    putFifthBits(b.bytes, 4, q);
    putNibbles32(b.bytes, 8, q);
    for (int i = 0; i < 32; ++i)
        b.expected.append(d * float(q[i]) + m);
    return b;
}

// Q4_K: 8 sub-blocks of 32 with 6-bit scale sc[j] and min mn[j]; packed as the spec's inverse says:
// j < 4 directly in bytes j (scale) and j + 4 (min); j >= 4 low nibbles in byte j + 4 (scale low, min
// high) and the top two bits in bits 6-7 of bytes j - 4 (scale) and j (min).
Block makeQ4_K(float d, float dmin, const int *sc, const int *mn, const int *q)
{
    Block b { QByteArray(144, 0), {} };
    putHalf(b.bytes, 0, d);
    putHalf(b.bytes, 2, dmin);
    uint8_t s[12] = {};
    for (int j = 0; j < 4; ++j) {
        s[j] = uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = uint8_t(mn[j] | ((mn[j + 4] >> 4) << 6));
        s[j + 8] = uint8_t((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
    }
    for (int k = 0; k < 12; ++k)
        b.bytes[4 + k] = char(s[k]);
    // 64 elements per 32 bytes: low nibbles are the first 32, high nibbles the next 32.
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l)
            b.bytes[16 + 32 * c + l] = char(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
    for (int i = 0; i < 256; ++i)
        b.expected.append(d * float(sc[i / 32]) * float(q[i]) - dmin * float(mn[i / 32]));
    return b;
}

// Q6_K: 16 sub-blocks of 16, each with a signed 8-bit scale; 6-bit quants split into low nibbles (ql) and
// two high bits (qh). Element e uses scale e / 16.
Block makeQ6_K(float d, const int *scales, const int *q)
{
    Block b { QByteArray(210, 0), {} };
    for (int n = 0; n < 2; ++n) {
        const int *h = q + 128 * n;
        for (int l = 0; l < 32; ++l) {
            b.bytes[64 * n + l] = char((h[l] & 0xF) | ((h[64 + l] & 0xF) << 4));
            b.bytes[64 * n + 32 + l] = char((h[32 + l] & 0xF) | ((h[96 + l] & 0xF) << 4));
            b.bytes[128 + 32 * n + l]
                = char((h[l] >> 4) | ((h[32 + l] >> 4) << 2) | ((h[64 + l] >> 4) << 4) | ((h[96 + l] >> 4) << 6));
        }
    }
    for (int k = 0; k < 16; ++k)
        b.bytes[192 + k] = char(int8_t(scales[k]));
    putHalf(b.bytes, 208, d);
    for (int e = 0; e < 256; ++e)
        b.expected.append(d * float(scales[e / 16]) * float(q[e] - 32));
    return b;
}

// Deterministic quant patterns covering every value of the bit width.
std::vector<int> pattern(int count, int bits, int stride, int start)
{
    std::vector<int> q(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i)
        q[size_t(i)] = (start + i * stride) & ((1 << bits) - 1);
    return q;
}

bool sameFloat(float a, float b)
{
    return (std::isnan(a) && std::isnan(b)) || std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

std::vector<float> decode(const GgmlTypeInfo &type, bool reference, const QByteArray &bytes, int64_t n, int misalign)
{
    // Copy to an odd address inside a heap buffer of exactly the right size, so unaligned access and
    // any overread show up (the sanitizer build checks both).
    std::vector<uint8_t> buffer(size_t(bytes.size() + misalign));
    std::memcpy(buffer.data() + misalign, bytes.constData(), size_t(bytes.size()));
    std::vector<float> out(static_cast<size_t>(n));
    (reference ? type.dequantizeReference : type.dequantize)(buffer.data() + misalign, out.data(), n);
    return out;
}

} // namespace

class TestGgufBlocks : public QObject
{
    Q_OBJECT
private slots:
    void typeTable_data()
    {
        QTest::addColumn<int>("id");
        QTest::addColumn<int>("blockSize");
        QTest::addColumn<int>("bytesPerBlock");
        QTest::addColumn<bool>("decodable");
        // formats.md 2.5, typed in again here.
        QTest::newRow("F32") << 0 << 1 << 4 << true;
        QTest::newRow("F16") << 1 << 1 << 2 << true;
        QTest::newRow("Q4_0") << 2 << 32 << 18 << true;
        QTest::newRow("Q4_1") << 3 << 32 << 20 << true;
        QTest::newRow("Q5_0") << 6 << 32 << 22 << true;
        QTest::newRow("Q5_1") << 7 << 32 << 24 << true;
        QTest::newRow("Q8_0") << 8 << 32 << 34 << true;
        QTest::newRow("Q2_K") << 10 << 256 << 84 << false;
        QTest::newRow("Q3_K") << 11 << 256 << 110 << false;
        QTest::newRow("Q4_K") << 12 << 256 << 144 << true;
        QTest::newRow("Q5_K") << 13 << 256 << 176 << false;
        QTest::newRow("Q6_K") << 14 << 256 << 210 << true;
        QTest::newRow("IQ2_XXS") << 16 << 256 << 66 << false;
        QTest::newRow("IQ4_NL") << 20 << 32 << 18 << false;
        QTest::newRow("IQ4_XS") << 23 << 256 << 136 << false;
        QTest::newRow("I8") << 24 << 1 << 1 << false;
        QTest::newRow("F64") << 28 << 1 << 8 << false;
        QTest::newRow("IQ1_M") << 29 << 256 << 56 << false;
        QTest::newRow("BF16") << 30 << 1 << 2 << true;
        QTest::newRow("TQ2_0") << 35 << 256 << 66 << false;
        QTest::newRow("MXFP4") << 39 << 32 << 17 << false;
    }
    void typeTable()
    {
        QFETCH(int, id);
        QFETCH(int, blockSize);
        QFETCH(int, bytesPerBlock);
        QFETCH(bool, decodable);
        const GgmlTypeInfo *t = findGgmlType(uint32_t(id));
        QVERIFY(t);
        QCOMPARE(QString::fromLatin1(t->name), QString::fromLatin1(QTest::currentDataTag()));
        QCOMPARE(findGgmlType(std::string_view(QTest::currentDataTag())), t);
        QCOMPARE(int(t->blockSize), blockSize);
        QCOMPARE(int(t->bytesPerBlock), bytesPerBlock);
        QCOMPARE(t->dequantize != nullptr, decodable);
        QCOMPARE(t->dequantizeReference != nullptr, decodable);
        QCOMPARE(t->dtype.has_value(), decodable);
        if (decodable) {
            QCOMPARE(&ggmlTypeFor(*t->dtype), t);
            QCOMPARE(QString::fromLatin1(dtypeName(*t->dtype)), QString::fromLatin1(t->name));
        }
    }
    void tableIsConsistent()
    {
        std::set<uint32_t> ids;
        std::set<std::string> names;
        for (const GgmlTypeInfo &t : ggmlTypes()) {
            QVERIFY(ids.insert(t.id).second);
            QVERIFY(names.insert(t.name).second);
            QVERIFY(t.blockSize > 0 && t.bytesPerBlock > 0);
        }
        // Removed or not implemented: a file naming them must be rejected, so they must not be listed.
        for (uint32_t removed : { 4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 40u, 41u, 42u, 1000u })
            QVERIFY2(!findGgmlType(removed), qPrintable(QString::number(removed)));
        QCOMPARE(QString::fromStdString(decodableGgmlTypeNames()),
            QStringLiteral("F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K, BF16"));
        QCOMPARE(ggmlBytesFor(*findGgmlType("Q4_K"), 512), uint64_t(288));
    }

    void handBuiltBlock_data()
    {
        QTest::addColumn<QString>("type");
        QTest::addColumn<QByteArray>("bytes");
        QTest::addColumn<Floats>("expected");
        auto row = [](const char *tag, const char *type, const Block &b) {
            QTest::newRow(tag) << QString::fromLatin1(type) << b.bytes << b.expected;
        };

        row("F32", "F32", makeF32({ 1.0f, -2.5f, 0.0f, -0.0f, 3.4e38f, 1e-45f, 1.0f / 3.0f }));
        row("F16 specials", "F16",
            makeHalfLike(
                { 0x0000, 0x8000, 0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x0400, 0x3555, 0x7C00, 0xFC00 }, false));
        row("BF16", "BF16", makeHalfLike({ 0x0000, 0x3F80, 0xC0A0, 0x7F7F, 0x0001, 0xFF80, 0x3EAB }, true));

        const std::vector<int> i8 = [] {
            std::vector<int> q;
            for (int i = 0; i < 32; ++i)
                q.push_back(i == 0 ? -128 : i == 1 ? 127 : (i * 37) % 255 - 127);
            return q;
        }();
        row("Q8_0 d=0.25", "Q8_0", makeQ8_0(0.25f, i8.data()));
        row("Q8_0 d=-1.5", "Q8_0", makeQ8_0(-1.5f, i8.data()));
        row("Q8_0 d=0", "Q8_0", makeQ8_0(0.0f, i8.data()));

        const std::vector<int> q4 = pattern(32, 4, 5, 3);
        row("Q4_0 d=0.5", "Q4_0", makeQ4_0(0.5f, q4.data()));
        row("Q4_0 d=-0.125", "Q4_0", makeQ4_0(-0.125f, q4.data()));
        row("Q4_1 d=0.25 m=-2", "Q4_1", makeQ4_1(0.25f, -2.0f, q4.data()));
        row("Q4_1 d=-0.5 m=1.5", "Q4_1", makeQ4_1(-0.5f, 1.5f, q4.data()));

        // Fifth bits set on a mix of low-half and high-half elements (bits 0..15 and 16..31 of qh).
        const std::vector<int> q5 = pattern(32, 5, 7, 1);
        row("Q5_0 d=0.5", "Q5_0", makeQ5_0(0.5f, q5.data()));
        row("Q5_0 d=-2", "Q5_0", makeQ5_0(-2.0f, q5.data()));
        std::vector<int> allHigh(32, 31);
        allHigh[3] = 0;
        allHigh[19] = 15;
        row("Q5_0 high bits", "Q5_0", makeQ5_0(1.0f, allHigh.data()));
        row("Q5_1 d=0.25 m=-4", "Q5_1", makeQ5_1(0.25f, -4.0f, q5.data()));
        row("Q5_1 high bits", "Q5_1", makeQ5_1(0.5f, 0.125f, allHigh.data()));

        // Q4_K scales and mins above 15 for j >= 4 exercise the split 6-bit packing.
        const int sc[8] = { 1, 63, 17, 32, 45, 63, 16, 33 };
        const int mn[8] = { 0, 5, 63, 40, 50, 17, 62, 31 };
        const std::vector<int> q4k = pattern(256, 4, 7, 3);
        row("Q4_K", "Q4_K", makeQ4_K(0.125f, 0.0625f, sc, mn, q4k.data()));
        row("Q4_K negative d", "Q4_K", makeQ4_K(-0.5f, 0.25f, sc, mn, q4k.data()));
        const int scHigh[8] = { 0, 0, 0, 0, 48, 32, 16, 63 };
        const int mnHigh[8] = { 0, 0, 0, 0, 63, 16, 32, 48 };
        row("Q4_K j>=4 only", "Q4_K", makeQ4_K(1.0f, 1.0f, scHigh, mnHigh, q4k.data()));

        // Q6_K signed scales including the extremes.
        const int s6[16] = { -128, 127, 1, -1, 64, -64, 3, -7, 0, 100, -100, 33, -33, 2, -2, 50 };
        const std::vector<int> q6 = pattern(256, 6, 11, 5);
        row("Q6_K", "Q6_K", makeQ6_K(0.0625f, s6, q6.data()));
        row("Q6_K negative d", "Q6_K", makeQ6_K(-0.25f, s6, q6.data()));
        const std::vector<int> q6edges = pattern(256, 6, 63, 0); // 0, 63, 62, ... hits both ends
        row("Q6_K edges", "Q6_K", makeQ6_K(1.0f, s6, q6edges.data()));
    }
    void handBuiltBlock()
    {
        QFETCH(QString, type);
        QFETCH(QByteArray, bytes);
        QFETCH(Floats, expected);
        const GgmlTypeInfo *t = findGgmlType(type.toStdString());
        QVERIFY(t);
        const int64_t n = expected.size();
        QCOMPARE(uint64_t(bytes.size()), ggmlBytesFor(*t, uint64_t(n)));
        for (bool reference : { true, false }) {
            for (int misalign : { 0, 1, 3 }) {
                const std::vector<float> got = decode(*t, reference, bytes, n, misalign);
                for (int64_t i = 0; i < n; ++i)
                    QVERIFY2(sameFloat(got[size_t(i)], expected[i]),
                        qPrintable(QStringLiteral("%1 element %2: got %3, expected %4")
                                       .arg(reference ? QStringLiteral("reference") : QStringLiteral("fast"))
                                       .arg(i)
                                       .arg(double(got[size_t(i)]))
                                       .arg(double(expected[i]))));
            }
        }
    }

    // A row of several blocks decodes block by block (catches stride mistakes).
    void multiBlockRow()
    {
        const std::vector<int> q4 = pattern(32, 4, 3, 1);
        const Block a = makeQ4_1(0.5f, -1.0f, q4.data());
        const Block b = makeQ4_1(-0.25f, 2.0f, q4.data());
        const GgmlTypeInfo &t = *findGgmlType("Q4_1");
        const std::vector<float> got = decode(t, false, a.bytes + b.bytes, 64, 1);
        for (int i = 0; i < 32; ++i) {
            QCOMPARE(got[size_t(i)], a.expected[i]);
            QCOMPARE(got[size_t(32 + i)], b.expected[i]);
        }
    }

    void fastMatchesReference_data()
    {
        QTest::addColumn<QString>("type");
        for (const GgmlTypeInfo &t : ggmlTypes())
            if (t.dequantize)
                QTest::newRow(t.name) << QString::fromLatin1(t.name);
    }
    void fastMatchesReference()
    {
        QFETCH(QString, type);
        const GgmlTypeInfo &t = *findGgmlType(type.toStdString());
        std::mt19937 rng(1234 + t.id);
        const int64_t n = 8 * 256; // whole blocks of every type
        QByteArray bytes(int(ggmlBytesFor(t, n)), 0);
        for (char &c : bytes)
            c = char(rng() & 0xFF);
        // Random bytes include inf/nan scales: both decoders must agree on those too.
        for (int misalign : { 0, 1, 2, 5 }) {
            const std::vector<float> ref = decode(t, true, bytes, n, misalign);
            const std::vector<float> fast = decode(t, false, bytes, n, misalign);
            for (int64_t i = 0; i < n; ++i)
                QVERIFY2(sameFloat(ref[size_t(i)], fast[size_t(i)]),
                    qPrintable(QStringLiteral("element %1: reference %2, fast %3")
                                   .arg(i)
                                   .arg(double(ref[size_t(i)]))
                                   .arg(double(fast[size_t(i)]))));
        }
    }

    // The fast F16 decoder uses an arithmetic conversion; check it on every one of the 65536 halves.
    void f16EveryValue()
    {
        QByteArray bytes;
        for (uint32_t h = 0; h < 0x10000u; ++h) {
            bytes.append(char(h & 0xFF));
            bytes.append(char(h >> 8));
        }
        const std::vector<float> fast = decode(*findGgmlType("F16"), false, bytes, 0x10000, 1);
        for (uint32_t h = 0; h < 0x10000u; ++h)
            QCOMPARE(std::bit_cast<uint32_t>(fast[h]), std::bit_cast<uint32_t>(halfToFloat(uint16_t(h))));
    }

    // Prints decode throughput, fast against reference, in the same process (house style 13). The
    // figures mean something only in an optimised build without sanitizers.
    void throughput()
    {
        const int64_t n = 256 * 1024;
        for (const char *name : { "F16", "BF16", "Q8_0", "Q4_0", "Q5_1", "Q4_K", "Q6_K" }) {
            const GgmlTypeInfo &t = *findGgmlType(name);
            std::vector<uint8_t> bytes(size_t(ggmlBytesFor(t, n)), 0x11);
            std::vector<float> out(static_cast<size_t>(n));
            double seconds[2] = {};
            for (int reference = 0; reference < 2; ++reference) {
                QElapsedTimer timer;
                timer.start();
                (reference ? t.dequantizeReference : t.dequantize)(bytes.data(), out.data(), n);
                seconds[reference] = std::max(1e-9, double(timer.nsecsElapsed()) * 1e-9);
            }
            qInfo("%-5s fast %8.1f Melem/s, reference %8.1f Melem/s (%.1fx)", name, double(n) / seconds[0] / 1e6,
                double(n) / seconds[1] / 1e6, seconds[1] / seconds[0]);
        }
    }
};

QTEST_GUILESS_MAIN(TestGgufBlocks)
#include "tst_ggufblocks.moc"
