// `quantscope-cli export ... --format gguf`: exit codes, the --json keys, the per-tensor table, and
// one-line user errors (exit 1) naming the flag or the file; nothing left behind on failure.
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTest>

#include "CliRunner.h"
#include "TestData.h"

using qs::test::runCli;

class TestCliExportGguf : public QObject
{
    Q_OBJECT

    QString m_dir;
    QString m_model;

private slots:
    void initTestCase()
    {
        QS_REQUIRE_TESTDATA(model, "models/stories260K-hf");
        m_model = model;
        m_dir = qs::test::outputDir() + QStringLiteral("/tst_cli_export_gguf");
        QDir(m_dir).removeRecursively();
        QVERIFY(QDir().mkpath(m_dir));
    }

    void jsonContract()
    {
        const QString out = m_dir + "/q8.gguf";
        const auto r = runCli({ "export", m_model, "--format", "gguf", "--out", out, "--type", "Q8_0", "--json", "--quiet" });
        QCOMPARE(r.exitCode, 0);
        const QJsonObject j = QJsonDocument::fromJson(r.out.toUtf8()).object();
        for (const char *key : { "format", "out", "bytes", "seconds", "tensors", "notes", "model" })
            QVERIFY2(j.contains(QLatin1String(key)), key);
        QCOMPARE(j.value("format").toString(), QStringLiteral("gguf"));
        QCOMPARE(j.value("out").toString(), out);
        QCOMPARE(qint64(j.value("bytes").toDouble()), QFileInfo(out).size());
        const QJsonArray tensors = j.value("tensors").toArray();
        QCOMPARE(tensors.size(), 3 + 5 * 9); // embed, norm, lm_head; 9 per block
        bool fallback = false;
        for (const QJsonValue &v : tensors) {
            const QJsonObject t = v.toObject();
            QVERIFY(t.contains("name") && t.contains("type") && t.contains("source"));
            if (t.value("name").toString() == "blk.0.ffn_down.weight") {
                QCOMPARE(t.value("type").toString(), QStringLiteral("F16"));
                fallback = t.value("note").toString().contains("172");
            }
            if (t.value("name").toString() == "blk.0.attn_q.weight")
                QCOMPARE(t.value("type").toString(), QStringLiteral("Q8_0"));
            if (t.value("name").toString() == "output_norm.weight")
                QCOMPARE(t.value("type").toString(), QStringLiteral("F32"));
        }
        QVERIFY(fallback);
        // The file opens as a model.
        const auto info = runCli({ "inspect", out, "--json" });
        QCOMPARE(info.exitCode, 0);
    }

    void tableOutput()
    {
        const QString out = m_dir + "/f16.gguf";
        const auto r = runCli({ "export", m_model, "--format", "gguf", "--out", out, "--quiet" });
        QCOMPARE(r.exitCode, 0);
        QVERIFY2(r.out.contains("wrote") && r.out.contains("token_embd.weight") && r.out.contains("F16"),
            qPrintable(r.out));
        QVERIFY(r.out.contains("note: tokenizer"));
    }

    void userErrors()
    {
        const QString out = m_dir + "/bad.gguf";
        auto r = runCli({ "export", m_model, "--format", "gguf", "--out", out, "--type", "Q3_K" });
        QCOMPARE(r.exitCode, 1);
        QCOMPARE(r.err.count('\n'), 1);
        QVERIFY2(r.err.contains("--type") && r.err.contains("Q3_K") && r.err.contains("Q4_K"), qPrintable(r.err));
        QVERIFY(!QFile::exists(out));

        r = runCli({ "export", m_dir + "/no-such-model", "--format", "gguf", "--out", out });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("no-such-model"), qPrintable(r.err));

        r = runCli({ "export", m_model, "--format", "gguf", "--out", m_dir + "/missing/x.gguf", "--quiet" });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("missing/x.gguf"), qPrintable(r.err));
        QVERIFY(!QFileInfo::exists(m_dir + "/missing"));

        // Nothing half-written anywhere.
        const QStringList left = QDir(m_dir).entryList({ "*.tmp-*" });
        QVERIFY2(left.isEmpty(), qPrintable(left.join(' ')));
    }
};

QTEST_GUILESS_MAIN(TestCliExportGguf)
#include "tst_cli_export_gguf.moc"
