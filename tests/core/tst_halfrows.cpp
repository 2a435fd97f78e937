// Row conversion of stored 16-bit floats (HalfRows.h) against the scalar reference conversions, for every
// one of the 65536 codes (zeros, subnormals, normals, infinities, NaN payloads), from unaligned sources and
// with lengths that leave a tail after the 64-value chunks.
#include <QTest>

#include <cstring>
#include <vector>

#include "common/Half.h"
#include "common/HalfRows.h"

using namespace qs::core;

namespace {

uint32_t bitsOf(float f)
{
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
}

} // namespace

class TestHalfRows : public QObject
{
    Q_OBJECT
private slots:
    void everyCodeBitExact_data()
    {
        QTest::addColumn<bool>("f16");
        QTest::addColumn<int>("offset");
        QTest::addColumn<int>("length");
        QTest::newRow("f16 aligned, all") << true << 0 << 65536;
        QTest::newRow("f16 odd address, tail of 63") << true << 1 << 65535 - 64 * 3 - 1;
        QTest::newRow("f16 short row") << true << 3 << 5;
        QTest::newRow("bf16 aligned, all") << false << 0 << 65536;
        QTest::newRow("bf16 odd address, tail") << false << 1 << 65000;
    }
    void everyCodeBitExact()
    {
        QFETCH(bool, f16);
        QFETCH(int, offset);
        QFETCH(int, length);
        // Codes in a scrambled order so that neighbouring lanes differ in kind.
        std::vector<uint8_t> bytes(size_t(offset) + 2 * 65536 + 8, 0xCD);
        for (uint32_t i = 0; i < 65536; ++i) {
            const uint16_t code = uint16_t(i * 40503u);
            std::memcpy(bytes.data() + offset + 2 * i, &code, 2);
        }
        std::vector<float> out(size_t(length) + 1, -1.0f);
        const float sentinel = out.back();
        if (f16)
            halfRowToFloat(bytes.data() + offset, out.data(), length);
        else
            bf16RowToFloat(bytes.data() + offset, out.data(), length);
        for (int i = 0; i < length; ++i) {
            uint16_t code;
            std::memcpy(&code, bytes.data() + offset + 2 * i, 2);
            const float expected = f16 ? halfToFloat(code) : bf16ToFloat(code);
            if (bitsOf(out[size_t(i)]) != bitsOf(expected))
                QFAIL(qPrintable(QStringLiteral("code 0x%1: got 0x%2, expected 0x%3")
                                     .arg(code, 4, 16, QLatin1Char('0'))
                                     .arg(bitsOf(out[size_t(i)]), 8, 16, QLatin1Char('0'))
                                     .arg(bitsOf(expected), 8, 16, QLatin1Char('0'))));
        }
        QCOMPARE(bitsOf(out.back()), bitsOf(sentinel)); // nothing written past the row
    }
};

QTEST_MAIN(TestHalfRows)
#include "tst_halfrows.moc"
