// SHA-256 against the FIPS 180-2 vectors and against the shared test data's SHA256SUMS (made by sha256sum).
#include <QFile>
#include <QTest>

#include <string>

#include "TestData.h"
#include "common/Error.h"
#include "common/Progress.h"
#include "common/Sha256.h"

using namespace qs::core;

class TestSha256 : public QObject
{
    Q_OBJECT
private slots:
    void fipsVectors_data()
    {
        QTest::addColumn<QByteArray>("message");
        QTest::addColumn<QByteArray>("digest");
        QTest::newRow("empty") << QByteArray()
                               << QByteArray("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        QTest::newRow("abc") << QByteArray("abc")
                             << QByteArray("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        QTest::newRow("448-bit") << QByteArray("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                                 << QByteArray("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
        QTest::newRow("896-bit") << QByteArray(
            "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
            "mnopqrstnopqrstu") << QByteArray("cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
        QTest::newRow("million a") << QByteArray(1000000, 'a')
                                   << QByteArray("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    }
    void fipsVectors()
    {
        QFETCH(QByteArray, message);
        QFETCH(QByteArray, digest);
        QCOMPARE(QByteArray::fromStdString(sha256Hex(message.constData(), size_t(message.size()))), digest);
    }

    void millionAInUnevenPieces()
    {
        // Pieces that straddle block boundaries in every way the buffer logic distinguishes.
        Sha256 h;
        const std::string a(1000, 'a');
        size_t done = 0;
        const size_t sizes[] = { 1, 63, 64, 65, 127, 128, 129, 1000, 7, 55, 56, 57 };
        size_t k = 0;
        while (done < 1000000) {
            const size_t n = std::min(sizes[k++ % std::size(sizes)], size_t(1000000) - done);
            h.update(a.data(), n);
            done += n;
        }
        QCOMPARE(h.finishHex(), std::string("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
    }

    void everySplitGivesTheSameDigest()
    {
        std::string message;
        for (int i = 0; i < 200; ++i)
            message.push_back(char(i * 37 + 11));
        const std::string whole = sha256Hex(message);
        for (size_t cut = 0; cut <= message.size(); ++cut) {
            Sha256 h;
            h.update(message.data(), cut);
            h.update(message.data() + cut, message.size() - cut);
            QCOMPARE(h.finishHex(), whole);
        }
        // finish() resets, so the hasher can be reused.
        Sha256 h;
        h.update(std::string_view("abc"));
        h.finish();
        h.update(std::string_view("abc"));
        QCOMPARE(h.finishHex(), std::string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    }

    void filesMatchSha256Sums_data()
    {
        QTest::addColumn<QString>("relative");
        QTest::newRow("wiki") << QStringLiteral("text/wiki.test.raw");
        QTest::newRow("tinystories") << QStringLiteral("text/tinystories_sample.txt");
        QTest::newRow("gguf") << QStringLiteral("models/stories260K.gguf");
    }
    void filesMatchSha256Sums()
    {
        QFETCH(QString, relative);
        QS_REQUIRE_TESTDATA(sums, "SHA256SUMS");
        QFile f(sums);
        QVERIFY(f.open(QIODevice::ReadOnly | QIODevice::Text));
        QByteArray expected;
        // Lines are "<hex>  ./<relative path>", as sha256sum writes them.
        while (!f.atEnd()) {
            const QByteArray line = f.readLine().trimmed();
            const int space = line.indexOf(' ');
            if (space > 0 && line.mid(space).trimmed() == "./" + relative.toUtf8())
                expected = line.left(space);
        }
        QVERIFY2(!expected.isEmpty(), qPrintable(relative + QStringLiteral(" not listed in SHA256SUMS")));
        const QString path = qs::test::testDataPath(relative);
        if (!QFileInfo::exists(path))
            QSKIP(qPrintable(QStringLiteral("test data missing: ") + path));
        QCOMPARE(QByteArray::fromStdString(sha256FileHex(path.toStdString())), expected);
    }

    void fileErrorsNameThePath()
    {
        const std::string missing = qs::test::outputDir().toStdString() + "/no-such-file-for-sha256.bin";
        try {
            sha256FileHex(missing);
            QFAIL("expected Error");
        } catch (const Error &e) {
            QVERIFY2(std::string(e.what()).find(missing) != std::string::npos, e.what());
        }
        try {
            sha256FileHex(qs::test::outputDir().toStdString());
            QFAIL("expected Error for a folder");
        } catch (const Error &e) {
            QVERIFY2(std::string(e.what()).find("folder") != std::string::npos, e.what());
        }
    }

    void progressAndCancel()
    {
        QS_REQUIRE_TESTDATA(path, "text/wiki.test.raw");
        NullProgress cancelled;
        cancelled.cancel();
        QVERIFY_THROWS_EXCEPTION(Cancelled, sha256FileHex(path.toStdString(), &cancelled));
    }
};

QTEST_GUILESS_MAIN(TestSha256)
#include "tst_sha256.moc"
