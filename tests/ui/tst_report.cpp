// Reports end to end: two small RUN_DIRs made in-test with the pipeline on stories260K (RTN 8-bit and
// RTN 4-bit, evaluated on two chunks), a report in every format, and each file checked: PNG decodes at
// width·dpi/96 × height·dpi/96 pixels and is not blank (the Pareto chart shows its red front), SVG
// parses with the requested view box, PDF starts with %PDF, CSV has the right rows and columns, every
// README.md link exists. Cancel leaves nothing; an unwritable folder is an error naming it; the GUI's
// ReportExporter finishes or cancels with exactly one signal; the dialog remembers its settings.
#include <QAction>
#include <QApplication>
#include <QDir>
#include <QFile>
#include <QImage>
#include <QLineEdit>
#include <QListWidget>
#include <QRegularExpression>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStandardPaths>
#include <QSvgRenderer>
#include <QTest>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "JobRunner.h"
#include "MainWindow.h"
#include "ModelSession.h"
#include "RunsModel.h"
#include "Settings.h"
#include "TestData.h"
#include "common/Error.h"
#include "eval/TextSource.h"
#include "io/FormatRegistry.h"
#include "quant/Pipeline.h"
#include "quant/RunDir.h"
#include "report/ReportDialog.h"
#include "report/ReportInput.h"
#include "report/ReportWriter.h"

using namespace qs;
using namespace qs::ui;
namespace fs = std::filesystem;

namespace {

class CancelAfter final : public core::Progress
{
public:
    explicit CancelAfter(int advances) : m_left(advances) { }
    void setTotal(double) override { }
    void advance(double) override { --m_left; }
    void message(std::string_view) override { }
    bool isCancelled() const override { return m_left <= 0; }

private:
    std::atomic<int> m_left;
};

QStringList leftovers(const QString &parent, const QString &stem)
{
    return QDir(parent).entryList({ stem + QStringLiteral(".tmp-*") }, QDir::AllEntries | QDir::Hidden);
}

int csvRecords(const QString &path, int *columns)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return -1;
    const QList<QByteArray> lines = f.readAll().split('\n');
    int n = 0;
    for (const QByteArray &l : lines) {
        if (l.isEmpty())
            continue;
        if (!l.endsWith('\r'))
            return -2; // RFC 4180: CRLF
        // The test's names have no quotes or commas inside fields except the plan column, which is quoted.
        int c = 1;
        bool quoted = false;
        for (char ch : l) {
            if (ch == '"')
                quoted = !quoted;
            else if (ch == ',' && !quoted)
                ++c;
        }
        if (n == 0)
            *columns = c;
        else if (c != *columns)
            return -3;
        ++n;
    }
    return n;
}

} // namespace

class TestReport : public QObject
{
    Q_OBJECT

    QString m_out;
    QStringList m_runDirs;

    core::ReportOptions allFormats() const
    {
        core::ReportOptions o;
        o.width = 600;
        o.height = 400;
        o.dpi = 144;
        o.png = o.svg = o.pdf = o.csv = o.markdown = true;
        return o;
    }

    core::ReportInput input(int histograms) const
    {
        std::vector<std::string> dirs;
        for (const QString &d : m_runDirs)
            dirs.push_back(d.toStdString());
        core::ReportInputOptions o;
        o.autoHistograms = histograms;
        core::NullProgress progress;
        return core::loadReportInput({}, dirs, nullptr, o, progress);
    }

private slots:
    void initTestCase()
    {
        QStandardPaths::setTestModeEnabled(true);
        QCoreApplication::setOrganizationName(QStringLiteral("QuantScopeTest"));
        QCoreApplication::setApplicationName(QStringLiteral("tst_report"));
        QS_REQUIRE_TESTDATA(modelPath, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(textPath, "text/tinystories_sample.txt");
        m_out = qs::test::outputDir() + QStringLiteral("/tst_report");
        QDir(m_out).removeRecursively();
        QVERIFY(QDir().mkpath(m_out));

        std::shared_ptr<const core::Model> model = core::openModel(modelPath.toStdString());
        for (int bits : { 8, 4 }) {
            core::PipelineOptions o;
            o.calibrationText = textPath.toStdString();
            o.samples = 4;
            o.seqLen = 32;
            o.evalText = textPath.toStdString();
            o.eval.ctx = 64;
            o.eval.maxChunks = 2;
            const core::Plan plan = core::Plan::fromJson(nlohmann::json::parse(
                R"({"default": {"method": "rtn", "bits": )" + std::to_string(bits) + R"(, "group_size": 32}})"));
            core::PipelineCallbacks callbacks;
            core::NullProgress progress;
            const core::QuantRun run = core::runQuantization(model, plan, o, callbacks, progress);
            const QString dir = m_out + QStringLiteral("/rtn%1").arg(bits);
            core::writeRunDir(run, dir.toStdString(), progress);
            m_runDirs << dir;
        }
    }

    void everyFileExistsAndIsValid()
    {
        const core::ReportInput in = input(2);
        QCOMPARE(in.runs.size(), size_t(2));
        QCOMPARE(in.histograms.size(), size_t(2));
        const QString dir = m_out + QStringLiteral("/report");
        const core::ReportOptions o = allFormats();
        core::NullProgress progress;
        const std::vector<std::string> files = writeReport(in, o, dir.toStdString(), progress);
        QVERIFY(leftovers(m_out, QStringLiteral("report")).isEmpty());

        // 2 per-layer charts, the comparison, 2 Pareto charts, 2 histograms; 3 formats each.
        int png = 0, svg = 0, pdf = 0;
        for (const std::string &f : files) {
            const QString path = dir + QLatin1Char('/') + QString::fromStdString(f);
            QVERIFY2(QFileInfo(path).isFile() && QFileInfo(path).size() > 0, qPrintable(path));
            if (path.endsWith(QLatin1String(".png"))) {
                ++png;
                QImage image(path);
                QVERIFY2(!image.isNull(), qPrintable(path));
                QCOMPARE(image.size(), QSize(900, 600)); // 600·144/96 × 400·144/96
                QCOMPARE(qRound(image.dotsPerMeterX() * 0.0254), 144);
            } else if (path.endsWith(QLatin1String(".svg"))) {
                ++svg;
                QSvgRenderer renderer(path);
                QVERIFY2(renderer.isValid(), qPrintable(path));
                QCOMPARE(renderer.viewBox(), QRect(0, 0, 600, 400));
            } else if (path.endsWith(QLatin1String(".pdf"))) {
                ++pdf;
                QFile file(path);
                QVERIFY(file.open(QIODevice::ReadOnly));
                QVERIFY2(file.read(5) == "%PDF-", qPrintable(path));
            }
        }
        QCOMPARE(png, 7);
        QCOMPARE(svg, 7);
        QCOMPARE(pdf, 7);

        // The Pareto chart is drawn, not blank: enough ink, and the red front (#d93b3b) is there.
        const QImage pareto(dir + QStringLiteral("/charts/pareto-perplexity.png"));
        int ink = 0, red = 0;
        for (int y = 0; y < pareto.height(); ++y)
            for (int x = 0; x < pareto.width(); ++x) {
                const QColor c = pareto.pixelColor(x, y);
                ink += c != Qt::white ? 1 : 0;
                red += (qAbs(c.red() - 0xd9) < 24 && qAbs(c.green() - 0x3b) < 24 && qAbs(c.blue() - 0x3b) < 24) ? 1 : 0;
            }
        QVERIFY2(ink > pareto.width() * pareto.height() / 100, qPrintable(QString::number(ink)));
        QVERIFY2(red > 50, qPrintable(QString::number(red)));

        // Tables: runs.csv header + 2 runs × 9 columns; layers.csv header + 35 layers × (1 + 2·7).
        int columns = 0;
        QCOMPARE(csvRecords(dir + QStringLiteral("/tables/runs.csv"), &columns), 3);
        QCOMPARE(columns, 9);
        QCOMPARE(csvRecords(dir + QStringLiteral("/tables/layers.csv"), &columns), 36);
        QCOMPARE(columns, 15);

        // README.md: every link and embedded image exists, and the charts are embedded as PNG.
        QFile readme(dir + QStringLiteral("/README.md"));
        QVERIFY(readme.open(QIODevice::ReadOnly));
        const QString text = QString::fromUtf8(readme.readAll());
        const QRegularExpression link(QStringLiteral(R"(\]\(([^)]+)\))"));
        int links = 0;
        for (auto it = link.globalMatch(text); it.hasNext();) {
            const QString target = it.next().captured(1);
            QVERIFY2(QFileInfo::exists(dir + QLatin1Char('/') + target), qPrintable(target));
            ++links;
        }
        QCOMPARE(links, 7 * 3 + 4);
        QVERIFY(text.contains(QStringLiteral("![Bits per weight against perplexity](charts/pareto-perplexity.png)")));
        QVERIFY(text.contains(QStringLiteral("rtn4")) && text.contains(QStringLiteral("rtn8")));

        // Keep a copy of two charts for looking at (docs/images are chosen from these).
        const QString shots = qs::test::outputDir() + QStringLiteral("/report-charts");
        QDir(shots).removeRecursively();
        QDir().mkpath(shots);
        for (const QString &name : QDir(dir + QStringLiteral("/charts")).entryList({ QStringLiteral("*.png") }))
            QFile::copy(dir + QStringLiteral("/charts/") + name, shots + QLatin1Char('/') + name);
    }

    void cancelLeavesNothing()
    {
        const core::ReportInput in = input(0);
        const QString dir = m_out + QStringLiteral("/cancelled");
        CancelAfter cancel(2); // after the second chart is drawn
        QVERIFY_THROWS_EXCEPTION(core::Cancelled, writeReport(in, allFormats(), dir.toStdString(), cancel));
        QVERIFY(!QFileInfo::exists(dir));
        QVERIFY(leftovers(m_out, QStringLiteral("cancelled")).isEmpty());
    }

    void unwritableFolderIsNamed()
    {
        const core::ReportInput in = input(0);
        QString parent = m_out + QStringLiteral("/readonly");
        QVERIFY(QDir().mkpath(parent));
        QFile::setPermissions(parent, QFileDevice::ReadOwner | QFileDevice::ExeOwner);
        if (QFileInfo(parent).isWritable()) {
            // Running as root: permissions do not stop us; a read-only file system does.
            parent = QStringLiteral("/sys");
            if (!QFileInfo(parent).isDir())
                QSKIP("no unwritable folder to test with (running as root without /sys)");
        }
        const QString dir = parent + QStringLiteral("/quantscope-report-test");
        core::NullProgress progress;
        try {
            writeReport(in, allFormats(), dir.toStdString(), progress);
            QFAIL("expected an error");
        } catch (const core::Error &e) {
            const QString message = QString::fromUtf8(e.what());
            QVERIFY2(message.contains(dir), qPrintable(message));
            QVERIFY2(message.contains(QStringLiteral("temporary folder")), qPrintable(message));
        }
        QVERIFY(!QFileInfo::exists(dir));
        QFile::setPermissions(m_out + QStringLiteral("/readonly"),
            QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner);
    }

    void exporterFinishesOrCancels()
    {
        JobRunner runner(nullptr, 2);
        ReportExporter exporter(&runner);
        ReportExporter::Request request;
        for (const QString &d : m_runDirs)
            request.runDirs.push_back(d.toStdString());
        request.input.autoHistograms = 1;
        request.options.width = 400;
        request.options.height = 300;
        request.options.dpi = 96;
        request.dir = (m_out + QStringLiteral("/exported")).toStdString();
        QSignalSpy finished(&exporter, &ReportExporter::finished);
        QSignalSpy failed(&exporter, &ReportExporter::failed);
        QSignalSpy cancelled(&exporter, &ReportExporter::cancelled);
        QVERIFY(exporter.start(request));
        QVERIFY(!exporter.start(request)); // one at a time
        QTRY_COMPARE_WITH_TIMEOUT(finished.size() + failed.size() + cancelled.size(), 1, 60000);
        QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.at(0).at(0).toString()));
        QCOMPARE(finished.size(), 1);
        const QStringList files = finished.at(0).at(1).toStringList();
        QVERIFY(files.contains(QStringLiteral("charts/pareto-kld.png")));
        QVERIFY(files.contains(QStringLiteral("README.md")));
        QVERIFY(QFileInfo::exists(m_out + QStringLiteral("/exported/charts/pareto-kld.svg")));
        QImage small(m_out + QStringLiteral("/exported/charts/pareto-kld.png"));
        QCOMPARE(small.size(), QSize(400, 300));

        // Cancelled at once: exactly one cancelled signal and no folder.
        request.dir = (m_out + QStringLiteral("/exported-cancelled")).toStdString();
        QVERIFY(exporter.start(request));
        exporter.cancel();
        QTRY_COMPARE_WITH_TIMEOUT(cancelled.size(), 1, 60000);
        QTest::qWait(50);
        QCOMPARE(finished.size(), 1);
        QVERIFY(failed.isEmpty());
        QVERIFY(!exporter.isRunning());
        QVERIFY(!QFileInfo::exists(m_out + QStringLiteral("/exported-cancelled")));
        QVERIFY(leftovers(m_out, QStringLiteral("exported-cancelled")).isEmpty());

        // A bad RUN_DIR fails, naming it.
        request.runDirs = { (m_out + QStringLiteral("/no-such-run")).toStdString() };
        QVERIFY(exporter.start(request));
        QTRY_COMPARE_WITH_TIMEOUT(failed.size(), 1, 60000);
        QVERIFY2(failed.at(0).at(0).toString().contains(QStringLiteral("no-such-run")),
            qPrintable(failed.at(0).at(0).toString()));
    }

    void mainWindowHasTheAction()
    {
        MainWindow w;
        auto *action = w.findChild<QAction *>(QStringLiteral("exportReportAction"));
        QVERIFY(action);
        QVERIFY(action->isEnabled());
        QCOMPARE(action->shortcut(), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_E));
        // No other action of the window claims the same shortcut.
        for (QAction *other : w.findChildren<QAction *>())
            if (other != action && !other->shortcut().isEmpty())
                QVERIFY2(other->shortcut() != action->shortcut(), qPrintable(other->text()));
    }

    void dialogRemembersSettings()
    {
        JobRunner runner(nullptr, 1);
        ModelSession session(&runner);
        RunsModel runs(&session);
        Settings settings;
        {
            ReportDialog dialog(&runs, &settings);
            QCOMPARE(dialog.runList()->count(), 0);
            dialog.addRunFolder(m_runDirs.at(0));
            dialog.findChild<QSpinBox *>(QStringLiteral("reportWidth"))->setValue(1000);
            dialog.findChild<QSpinBox *>(QStringLiteral("reportDpi"))->setValue(300);
            dialog.setOutputFolder(m_out + QStringLiteral("/from-dialog"));
            const ReportExporter::Request r = dialog.request(nullptr);
            QCOMPARE(r.runDirs.size(), size_t(1));
            QCOMPARE(r.options.width, 1000);
            QCOMPARE(r.options.dpi, 300);
            dialog.saveSettings();
        }
        QCOMPARE(settings.reportWidth(), 1000);
        QCOMPARE(settings.reportDpi(), 300);
        ReportDialog again(&runs, &settings);
        QCOMPARE(again.findChild<QSpinBox *>(QStringLiteral("reportWidth"))->value(), 1000);
        QCOMPARE(again.findChild<QLineEdit *>(QStringLiteral("reportFolder"))->text(), m_out + QStringLiteral("/from-dialog"));
    }
};

QTEST_MAIN(TestReport)
#include "tst_report.moc"
