// `quantscope-cli report` (specs/cli.md): two RUN_DIRs made with `quantize`, a report with --json listing
// every file written (all present; PNG of width·dpi/96 pixels read from its header; PDF with --pdf),
// and user errors (bad RUN_DIR, bad flag, a folder that is not a report) exiting 1 with a one-line
// message that names the culprit and writing nothing.
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

// Width and height from a PNG's IHDR chunk (bytes 16..23, big-endian).
QSize pngSize(const QString &path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    const QByteArray head = f.read(24);
    if (head.size() < 24 || !head.startsWith("\x89PNG\r\n\x1a\n") || head.mid(12, 4) != "IHDR")
        return {};
    auto be32 = [&](int at) {
        return (uchar(head[at]) << 24) | (uchar(head[at + 1]) << 16) | (uchar(head[at + 2]) << 8) | uchar(head[at + 3]);
    };
    return QSize(int(be32(16)), int(be32(20)));
}

} // namespace

class TestCliReport : public QObject
{
    Q_OBJECT

    QString m_dir;
    QStringList m_runs;

private slots:
    void initTestCase()
    {
        QS_REQUIRE_TESTDATA(model, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(text, "text/tinystories_sample.txt");
        m_dir = qs::test::outputDir() + QStringLiteral("/tst_cli_report");
        QDir(m_dir).removeRecursively();
        QVERIFY(QDir().mkpath(m_dir));
        for (int bits : { 8, 4 }) {
            const QString plan = writeFile(m_dir + QStringLiteral("/plan%1.json").arg(bits),
                QStringLiteral(R"({"default": {"method": "rtn", "bits": %1, "group_size": 32}})").arg(bits).toUtf8());
            const QString out = m_dir + QStringLiteral("/rtn%1").arg(bits);
            const auto r = runCli({ "quantize", model, "--plan", plan, "--calib", text, "--samples", "4", "--seqlen",
                "32", "--out", out, "--eval-text", text, "--ctx", "64", "--max-chunks", "2", "--quiet" });
            QVERIFY2(r.exitCode == 0, qPrintable(r.err));
            m_runs << out;
        }
    }

    void jsonListsEveryFileWritten()
    {
        const QString out = m_dir + QStringLiteral("/report");
        const auto r = runCli({ "report", m_runs.at(0), m_runs.at(1), "--out", out, "--pdf", "--width", "500",
            "--height", "300", "--dpi", "192", "--histograms", "1", "--json", "--quiet" });
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const QJsonObject j = QJsonDocument::fromJson(r.out.toUtf8()).object();
        QCOMPARE(j.value("out").toString(), out);
        QCOMPARE(j.value("runs").toArray().size(), 2);
        QCOMPARE(j.value("png_width").toInt(), 1000);
        QCOMPARE(j.value("png_height").toInt(), 600);
        const QJsonArray files = j.value("files").toArray();
        QStringList names;
        for (const QJsonValue &v : files) {
            names << v.toString();
            QVERIFY2(QFileInfo(out + QLatin1Char('/') + v.toString()).size() > 0, qPrintable(v.toString()));
        }
        for (const char *f : { "README.md", "report.json", "tables/runs.csv", "tables/runs.md", "tables/layers.csv",
                 "tables/layers.md", "charts/pareto-perplexity.png", "charts/pareto-perplexity.svg",
                 "charts/pareto-perplexity.pdf", "charts/pareto-kld.png", "charts/layer-error-rtn8.png",
                 "charts/layer-error-rtn4.svg", "charts/layer-error-comparison.png" })
            QVERIFY2(names.contains(QLatin1String(f)), f);
        // Nothing in the folder that the JSON does not list.
        int onDisk = 0;
        for (const QString &sub : { QStringLiteral("."), QStringLiteral("charts"), QStringLiteral("tables") })
            onDisk += int(QDir(out + QLatin1Char('/') + sub).entryList(QDir::Files).size());
        QCOMPARE(onDisk, int(files.size()));
        QCOMPARE(pngSize(out + QStringLiteral("/charts/pareto-kld.png")), QSize(1000, 600));
        QFile pdf(out + QStringLiteral("/charts/pareto-kld.pdf"));
        QVERIFY(pdf.open(QIODevice::ReadOnly));
        QVERIFY(pdf.read(5) == "%PDF-");

        // Defaults (cli.md): PNG and SVG charts, CSV and Markdown tables, no PDF; human output.
        const auto h = runCli({ "report", m_runs.at(0), m_runs.at(1), "--out", out, "--histograms", "0", "--quiet" });
        QVERIFY2(h.exitCode == 0, qPrintable(h.err));
        QVERIFY(h.out.contains(QStringLiteral("wrote ") + out));
        QVERIFY(QFileInfo::exists(out + QStringLiteral("/charts/pareto-kld.svg")));
        QVERIFY(!QFileInfo::exists(out + QStringLiteral("/charts/pareto-kld.pdf"))); // replaced whole
        QVERIFY(QDir(m_dir).entryList({ QStringLiteral("report.tmp-*") }, QDir::AllEntries).isEmpty());
    }

    void userErrorsExitOneNamingTheCulprit()
    {
        const QString out = m_dir + QStringLiteral("/bad");
        const QString missing = m_dir + QStringLiteral("/no-such-run");
        auto r = runCli({ "report", m_runs.at(0), missing, "--out", out, "--quiet" });
        QCOMPARE(r.exitCode, 1);
        QCOMPARE(r.err.count(QLatin1Char('\n')), 1);
        QVERIFY2(r.err.contains(missing), qPrintable(r.err));
        QVERIFY(!QFileInfo::exists(out));

        r = runCli({ "report", m_runs.at(0) });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains(QStringLiteral("--out")), qPrintable(r.err));

        r = runCli({ "report", "--out", out });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains(QStringLiteral("RUN_DIR")), qPrintable(r.err));

        r = runCli({ "report", m_runs.at(0), "--out", out, "--formats", "png,gif" });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains(QStringLiteral("--formats")) && r.err.contains(QStringLiteral("gif")), qPrintable(r.err));

        r = runCli({ "report", m_runs.at(0), "--out", out, "--dpi", "5" });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains(QStringLiteral("--dpi")), qPrintable(r.err));

        // A folder that is not a report is never replaced: the run directory itself, for instance.
        r = runCli({ "report", m_runs.at(0), "--out", m_runs.at(1) });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains(m_runs.at(1)) && r.err.contains(QStringLiteral("not a QuantScope report")),
            qPrintable(r.err));
        QVERIFY(QFileInfo::exists(m_runs.at(1) + QStringLiteral("/run.json")));
        QVERIFY(!QFileInfo::exists(out));

        const auto help = runCli({ "report", "--help" });
        QCOMPARE(help.exitCode, 0);
        QVERIFY(help.out.contains(QStringLiteral("--dpi")));
    }
};

QTEST_GUILESS_MAIN(TestCliReport)
#include "tst_cli_report.moc"
