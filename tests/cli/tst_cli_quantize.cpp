// `quantscope-cli quantize` (specs/cli.md): the JSON contract keys, the run directory that `eval` accepts
// as MODEL, --list-methods, and one-line user errors (exit 1) naming the flag or file.
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTest>

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

class TestCliQuantize : public QObject
{
    Q_OBJECT

    QString m_dir;
    QString m_model;
    QString m_text;

private slots:
    void initTestCase()
    {
        QS_REQUIRE_TESTDATA(model, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(text, "text/tinystories_sample.txt");
        m_model = model;
        m_text = text;
        m_dir = qs::test::outputDir() + QStringLiteral("/tst_cli_quantize");
        QDir(m_dir).removeRecursively();
        QVERIFY(QDir().mkpath(m_dir));
    }

    void listMethods()
    {
        const auto r = runCli({ "quantize", "--list-methods", "--json" });
        QCOMPARE(r.exitCode, 0);
        const QJsonArray methods = QJsonDocument::fromJson(r.out.toUtf8()).array();
        QStringList names;
        for (const QJsonValue &m : methods)
            names << m.toObject().value("name").toString();
        for (const char *n : { "rtn", "zeroquant", "gptq", "smoothquant", "awq" })
            QVERIFY2(names.contains(QLatin1String(n)), n);
        const auto human = runCli({ "quantize", "--list-methods" });
        QCOMPARE(human.exitCode, 0);
        QVERIFY(human.out.contains("act_order"));
    }

    void quantizeJsonContractAndEvalOfRunDir()
    {
        const QString plan = writeFile(m_dir + "/plan.json", R"({
            "default": {"method": "rtn", "bits": 8, "group_size": 128, "symmetric": true},
            "rules": [{"match": "model.layers.*.mlp.down_proj", "method": "gptq", "bits": 4, "group_size": 32}],
            "skip": ["lm_head", "model.embed_tokens"]})");
        const QString out = m_dir + "/run";
        const auto r = runCli({ "quantize", m_model, "--plan", plan, "--calib", m_text, "--samples", "4", "--seqlen",
            "32", "--out", out, "--eval-text", m_text, "--ctx", "64", "--max-chunks", "3", "--json", "--quiet" });
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const QJsonObject j = parseObject(r.out);
        for (const char *key : { "layers", "bits_per_weight", "perplexity", "kld_mean", "seconds" })
            QVERIFY2(j.contains(QLatin1String(key)), key);
        const QJsonArray layers = j.value("layers").toArray();
        QCOMPARE(layers.size(), 35);
        for (const QJsonValue &v : layers) {
            const QJsonObject l = v.toObject();
            for (const char *key :
                { "name", "method", "bits", "group_size", "weight_mse", "rel_output_error", "sqnr_db", "seconds" })
                QVERIFY2(l.contains(QLatin1String(key)), key);
        }
        QCOMPARE(layers.at(6).toObject().value("name").toString(), QStringLiteral("model.layers.0.mlp.down_proj"));
        QCOMPARE(layers.at(6).toObject().value("method").toString(), QStringLiteral("gptq"));
        QCOMPARE(layers.at(6).toObject().value("group_size").toInt(), 32);
        QVERIFY(QFile::exists(out + "/run.json"));
        QVERIFY(QFile::exists(out + "/quantized.safetensors"));
        QVERIFY(QDir(m_dir).entryList({ "run.tmp-*" }, QDir::AllEntries | QDir::Hidden).isEmpty());

        // eval accepts the RUN_DIR as MODEL and measures the same model (same chunks, same numbers).
        const auto e = runCli({ "eval", out, "--text", m_text, "--ctx", "64", "--max-chunks", "3", "--reference",
            m_model, "--json", "--quiet" });
        QVERIFY2(e.exitCode == 0, qPrintable(e.err));
        const QJsonObject ej = parseObject(e.out);
        QCOMPARE(ej.value("perplexity").toDouble(), j.value("perplexity").toDouble());
        QCOMPARE(ej.value("kld_mean").toDouble(), j.value("kld_mean").toDouble());

        // Human output: the per-layer table and a summary.
        const auto h = runCli({ "quantize", m_model, "--plan", plan, "--calib", m_text, "--samples", "2", "--seqlen",
            "16", "--out", out, "--quiet" });
        QVERIFY2(h.exitCode == 0, qPrintable(h.err));
        QVERIFY(h.out.contains("model.layers.4.mlp.down_proj"));
        QVERIFY(h.out.contains("bits per weight"));
    }

    void userErrorsAreOneLineNamingTheFlag()
    {
        const QString bad = writeFile(
            m_dir + "/bad-plan.json", R"({"default": {"method": "rtn"}, "rules": [{"match": "*", "bits": 13}]})");
        auto r = runCli({ "quantize", m_model, "--plan", bad, "--calib", m_text, "--out", m_dir + "/x" });
        QCOMPARE(r.exitCode, 1);
        QCOMPARE(r.err.count('\n'), 1);
        QVERIFY2(
            r.err.contains("--plan") && r.err.contains(bad) && r.err.contains("rules[0]: bits"), qPrintable(r.err));

        r = runCli({ "quantize", m_model, "--plan", bad, "--out", m_dir + "/x" });
        QCOMPARE(r.exitCode, 1);
        QCOMPARE(r.err.count('\n'), 1);
        QVERIFY2(r.err.contains("--calib"), qPrintable(r.err));

        const QString good = writeFile(m_dir + "/good-plan.json", R"({"default": {"method": "rtn"}})");
        r = runCli({ "quantize", m_model, "--plan", good, "--calib", m_dir + "/nope.txt", "--out", m_dir + "/x" });
        QCOMPARE(r.exitCode, 1);
        QCOMPARE(r.err.count('\n'), 1);
        QVERIFY2(r.err.contains("--calib") && r.err.contains("nope.txt"), qPrintable(r.err));

        r = runCli(
            { "quantize", m_model, "--plan", m_dir + "/missing-plan.json", "--calib", m_text, "--out", m_dir + "/x" });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("missing-plan.json"), qPrintable(r.err));

        QVERIFY(QDir().mkpath(m_dir + "/occupied"));
        writeFile(m_dir + "/occupied/file.txt", "x");
        r = runCli({ "quantize", m_model, "--plan", good, "--calib", m_text, "--out", m_dir + "/occupied" });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("--out") && r.err.contains("not a run directory"), qPrintable(r.err));
        QVERIFY(!QFile::exists(m_dir + "/x"));
    }
};

QTEST_GUILESS_MAIN(TestCliQuantize)
#include "tst_cli_quantize.moc"
