// `quantscope-cli export RUN_DIR --format gptq`: quantize → export → eval of the folder, the --json keys,
// exit codes, and one-line errors for what a GPTQ checkpoint cannot hold.
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTest>

#include <cmath>

#include "CliRunner.h"
#include "TestData.h"

using qs::test::runCli;

namespace {

QString writeFile(const QString &path, const QByteArray &contents)
{
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly))
        return {};
    f.write(contents);
    return path;
}

QJsonObject parseObject(const QString &text)
{
    return QJsonDocument::fromJson(text.toUtf8()).object();
}

} // namespace

class TestCliExportGptq : public QObject
{
    Q_OBJECT

    QString m_dir;
    QString m_model;
    QString m_text;

    QString quantize(const QByteArray &plan, const QString &name)
    {
        const QString planPath = writeFile(m_dir + "/" + name + ".json", plan);
        const QString out = m_dir + "/" + name;
        const auto r = runCli({ "quantize", m_model, "--plan", planPath, "--calib", m_text, "--samples", "4", "--seqlen",
            "32", "--out", out, "--quiet" });
        if (r.exitCode != 0)
            qWarning("%s", qPrintable(r.err));
        return r.exitCode == 0 ? out : QString();
    }

private slots:
    void initTestCase()
    {
        QS_REQUIRE_TESTDATA(model, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(text, "text/tinystories_sample.txt");
        m_model = model;
        m_text = text;
        m_dir = qs::test::outputDir() + QStringLiteral("/tst_cli_export_gptq");
        QDir(m_dir).removeRecursively();
        QVERIFY(QDir().mkpath(m_dir));
    }

    void exportThenEval()
    {
        const QString run = quantize(R"({"default": {"method": "gptq", "bits": 4, "group_size": 32, "symmetric": true},
                                         "skip": ["model.layers.*.mlp.*"]})", "run4");
        QVERIFY(!run.isEmpty());
        const QString out = m_dir + "/gptq4";
        const auto r = runCli({ "export", run, "--format", "gptq", "--out", out, "--json", "--quiet" });
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const QJsonObject j = parseObject(r.out);
        for (const char *key : { "format", "out", "bytes", "seconds", "tensors", "notes", "model" })
            QVERIFY2(j.contains(QLatin1String(key)), key);
        QCOMPARE(j.value("format").toString(), QStringLiteral("gptq"));
        QCOMPARE(j.value("model").toString(), run);
        QVERIFY(j.value("bytes").toDouble() > 0);
        int gptq = 0, f16 = 0;
        for (const QJsonValue &v : j.value("tensors").toArray()) {
            const QJsonObject t = v.toObject();
            QVERIFY(t.contains("name") && t.contains("type") && t.contains("source"));
            if (t.value("type").toString() == QStringLiteral("int4 g32 (GPTQ)")) {
                ++gptq;
                QCOMPARE(t.value("source").toString(), QStringLiteral("codes"));
            } else {
                QCOMPARE(t.value("type").toString(), QStringLiteral("F16"));
                ++f16;
            }
        }
        QCOMPARE(gptq, 20);
        QCOMPARE(f16, 2 + 5 * 2 + 5 * 3 + 1); // embed, lm_head, 2 norms and 3 float MLP linears per block, norm
        bool f16Note = false;
        for (const QJsonValue &n : j.value("notes").toArray())
            f16Note = f16Note || n.toString().contains(QStringLiteral("scales rounded to F16: max |Δw|"));
        QVERIFY(f16Note);
        QVERIFY(QFile::exists(out + "/model.safetensors"));
        QVERIFY(QFile::exists(out + "/config.json"));
        QVERIFY(QFile::exists(out + "/quantize_config.json"));
        QVERIFY(QFile::exists(out + "/tokenizer.json"));
        QVERIFY(QDir(m_dir).entryList({ "gptq4.tmp-*" }, QDir::AllEntries | QDir::Hidden).isEmpty());

        // The folder is a model: inspect shows GPTQ tensors, eval gives the RUN_DIR's perplexity up to F16.
        const auto ins = runCli({ "inspect", out, "--json" });
        QVERIFY2(ins.exitCode == 0, qPrintable(ins.err));
        QVERIFY(ins.out.contains(QStringLiteral("\"GPTQ\"")));
        const auto e1 = runCli({ "eval", run, "--text", m_text, "--ctx", "64", "--max-chunks", "3", "--json", "--quiet" });
        const auto e2 = runCli({ "eval", out, "--text", m_text, "--ctx", "64", "--max-chunks", "3", "--json", "--quiet" });
        QVERIFY2(e1.exitCode == 0, qPrintable(e1.err));
        QVERIFY2(e2.exitCode == 0, qPrintable(e2.err));
        const double p1 = parseObject(e1.out).value("perplexity").toDouble();
        const double p2 = parseObject(e2.out).value("perplexity").toDouble();
        QVERIFY2(p1 > 1.0 && std::fabs(p2 / p1 - 1.0) < 0.005, qPrintable(QString("%1 vs %2").arg(p2).arg(p1)));

        // Human output: the table and the notes.
        const auto h = runCli({ "export", run, "--format", "gptq", "--out", out, "--quiet" });
        QVERIFY2(h.exitCode == 0, qPrintable(h.err));
        QVERIFY(h.out.contains(QStringLiteral("model.layers.4.self_attn.o_proj")));
        QVERIFY(h.out.contains(QStringLiteral("note: checkpoint_format \"gptq\"")));
    }

    void refusalsAreOneLineErrors()
    {
        // 4 bits over the 172-wide MLP: qweight words cannot be filled.
        const QString run = quantize(R"({"default": {"method": "rtn", "bits": 4, "group_size": 32}})", "run172");
        QVERIFY(!run.isEmpty());
        auto r = runCli({ "export", run, "--format", "gptq", "--out", m_dir + "/never", "--quiet" });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains(QStringLiteral("cannot be written as a GPTQ checkpoint")), qPrintable(r.err));
        QVERIFY2(r.err.contains(QStringLiteral("172 input channels are not a multiple of 8")), qPrintable(r.err));
        QVERIFY(!QFile::exists(m_dir + "/never"));

        // A plain model is not a run.
        r = runCli({ "export", m_model, "--format", "gptq", "--out", m_dir + "/never", "--quiet" });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains(QStringLiteral("is not a quantization run directory")), qPrintable(r.err));

        // An occupied folder is not replaced.
        QVERIFY(QDir().mkpath(m_dir + "/occupied"));
        writeFile(m_dir + "/occupied/keep.txt", "x");
        const QString run8 = quantize(R"({"default": {"method": "rtn", "bits": 8, "group_size": -1}})", "run8");
        QVERIFY(!run8.isEmpty());
        r = runCli({ "export", run8, "--format", "gptq", "--out", m_dir + "/occupied", "--quiet" });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains(QStringLiteral("exists and is not a GPTQ checkpoint folder")), qPrintable(r.err));
        QVERIFY(QFile::exists(m_dir + "/occupied/keep.txt"));

        // --type belongs to gguf.
        r = runCli({ "export", run8, "--format", "gptq", "--type", "Q4_0", "--out", m_dir + "/never" });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains(QStringLiteral("--type applies to --format gguf only")), qPrintable(r.err));
    }
};

QTEST_GUILESS_MAIN(TestCliExportGptq)
#include "tst_cli_export_gptq.moc"
